// A JVM consumer of the helper's PKCS#12 keystore and truststore (docs/consumers.md, "Java
// keystores"), driven by tests/e2e/java.rs. Plain JSSE, no library: what a Kafka or Tomcat
// configured with `ssl.keystore.type=PKCS12` does.
//
//   java SpiffeJsse.java server PORT KEYSTORE TRUSTSTORE PASSWORD EXPECTED_CLIENT_ID
//       mutual TLS; re-reads both stores for every connection (so a rotation is served without
//       a restart); refuses a client whose URI SAN is not EXPECTED_CLIENT_ID; answers each
//       connection with "hello <client id> serial=<own leaf serial>".
//   java SpiffeJsse.java client PORT KEYSTORE TRUSTSTORE PASSWORD EXPECTED_SERVER_ID
//       prints the server's line and "server-id=<URI SAN> server-serial=<hex>"; exit 1 with the
//       reason when the handshake or the check fails.
//   java SpiffeJsse.java list KEYSTORE PASSWORD
//       prints "alias kind serial" for each entry.

import java.io.*;
import java.net.*;
import java.nio.charset.StandardCharsets;
import java.security.*;
import java.security.cert.*;
import java.util.*;
import javax.net.ssl.*;

public class SpiffeJsse {
    static KeyStore load(String path, char[] password) throws Exception {
        KeyStore ks = KeyStore.getInstance("PKCS12");
        try (InputStream in = new FileInputStream(path)) {
            ks.load(in, password);
        }
        return ks;
    }

    static SSLContext context(String keystore, String truststore, char[] password) throws Exception {
        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(load(keystore, password), password);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(load(truststore, password));
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
        return ctx;
    }

    static String spiffeId(X509Certificate cert) throws Exception {
        Collection<List<?>> sans = cert.getSubjectAlternativeNames();
        List<String> uris = new ArrayList<>();
        if (sans != null) {
            for (List<?> san : sans) {
                if (((Integer) san.get(0)) == 6) {
                    uris.add((String) san.get(1));
                }
            }
        }
        if (uris.size() != 1 || !uris.get(0).startsWith("spiffe://")) {
            throw new CertificateException("not an X.509-SVID: URI SANs " + uris);
        }
        return uris.get(0);
    }

    static String serial(X509Certificate cert) {
        return cert.getSerialNumber().toString(16);
    }

    static void server(String[] a) throws Exception {
        int port = Integer.parseInt(a[1]);
        char[] password = a[4].toCharArray();
        String expected = a[5];
        try (ServerSocket listener = new ServerSocket(port, 50, InetAddress.getLoopbackAddress())) {
            System.out.println("listening " + listener.getLocalPort());
            System.out.flush();
            while (true) {
                Socket raw = listener.accept();
                try {
                    SSLContext ctx = context(a[2], a[3], password);
                    SSLSocket tls = (SSLSocket) ctx.getSocketFactory()
                            .createSocket(raw, raw.getInetAddress().getHostAddress(), raw.getPort(), true);
                    tls.setUseClientMode(false);
                    tls.setNeedClientAuth(true);
                    tls.startHandshake();
                    SSLSession session = tls.getSession();
                    String peer = spiffeId((X509Certificate) session.getPeerCertificates()[0]);
                    if (!peer.equals(expected)) {
                        System.err.println("refused client " + peer);
                        tls.close();
                        continue;
                    }
                    String own = serial((X509Certificate) session.getLocalCertificates()[0]);
                    OutputStream out = tls.getOutputStream();
                    out.write(("hello " + peer + " serial=" + own + "\n").getBytes(StandardCharsets.UTF_8));
                    out.flush();
                    tls.close();
                } catch (Exception e) {
                    System.err.println("connection failed: " + e);
                    raw.close();
                }
            }
        }
    }

    static int client(String[] a) throws Exception {
        int port = Integer.parseInt(a[1]);
        char[] password = a[4].toCharArray();
        String expected = a[5];
        SSLContext ctx = context(a[2], a[3], password);
        try (SSLSocket tls = (SSLSocket) ctx.getSocketFactory().createSocket(InetAddress.getLoopbackAddress(), port)) {
            tls.startHandshake();
            X509Certificate server = (X509Certificate) tls.getSession().getPeerCertificates()[0];
            String id = spiffeId(server);
            if (!id.equals(expected)) {
                System.out.println("refused server " + id);
                return 1;
            }
            BufferedReader in = new BufferedReader(new InputStreamReader(tls.getInputStream(), StandardCharsets.UTF_8));
            System.out.println(in.readLine());
            System.out.println("server-id=" + id + " server-serial=" + serial(server));
            return 0;
        } catch (Exception e) {
            System.out.println("failed: " + e);
            return 1;
        }
    }

    static void list(String[] a) throws Exception {
        KeyStore ks = load(a[1], a[2].toCharArray());
        for (String alias : Collections.list(ks.aliases())) {
            String kind = ks.isKeyEntry(alias) ? "key" : ks.isCertificateEntry(alias) ? "trusted" : "other";
            X509Certificate cert = (X509Certificate) ks.getCertificate(alias);
            System.out.println(alias + " " + kind + " " + serial(cert));
        }
    }

    public static void main(String[] a) throws Exception {
        switch (a[0]) {
            case "server": server(a); break;
            case "client": System.exit(client(a)); break;
            case "list": list(a); break;
            default: throw new IllegalArgumentException(a[0]);
        }
    }
}
