//! The injector process, a TLS client that checks its certificate as the kube-apiserver does,
//! and admission requests.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use spiffe_helper_testkit::spire::Spire;

/// The Service name the SVID carries (`-dns`) and the client verifies.
pub const SERVICE_DNS: &str = "injector.spiffe-helper-injector.svc";

/// A running injector; killed on drop if the test did not stop it.
pub struct Injector {
    child: Option<Child>,
    /// The webhook's port on 127.0.0.1.
    pub port: u16,
    health_port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Injector {
    pub fn start(spire: &Spire, args: &[&str]) -> Self {
        Self::start_with_socket(spire.socket_path(), args)
    }

    /// Started with `socket` as the agent's (which may not exist).
    pub fn start_with_socket(socket: &Path, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("injector.log");
        let (port, health_port) = (free_port(), free_port());
        let child = Command::new(env!("CARGO_BIN_EXE_spiffe-helper-injector"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--health-listen", &format!("127.0.0.1:{health_port}")])
            .args(["--startup-timeout", "60s", "--log-level", "debug"])
            .args(args)
            .env(
                "SPIFFE_ENDPOINT_SOCKET",
                format!("unix://{}", socket.display()),
            )
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self {
            child: Some(child),
            port,
            health_port,
            log,
            _dir: dir,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `/healthz` until it answers.
    pub fn wait_listening(&mut self) {
        self.wait_probe("/healthz");
    }

    /// Polls `/readyz` until 200.
    pub fn wait_ready(&mut self) {
        self.wait_probe("/readyz");
    }

    fn wait_probe(&mut self, path: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("the injector exited early ({status}):\n{}", self.log());
            }
            if self
                .try_probe(path)
                .is_some_and(|(status, _)| status == 200)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("no 200 on {path} after 60 s:\n{}", self.log());
    }

    pub fn probe(&self, path: &str) -> (u16, String) {
        self.try_probe(path)
            .unwrap_or_else(|| panic!("no answer on {path}:\n{}", self.log()))
    }

    fn try_probe(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.health_port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        let (status, body) = exchange(&mut stream, "GET", path, None);
        Some((status, body))
    }

    /// SIGTERM, then the exit status (within 15 s).
    pub fn terminate(&mut self) -> ExitStatus {
        self.send_sigterm();
        self.wait_exit()
    }

    /// Sends SIGTERM and returns at once.
    pub fn send_sigterm(&self) {
        let child = self.child.as_ref().unwrap();
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    }

    /// The exit status, within 15 s.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("still running 15 s after SIGTERM:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// One HTTP/1.1 request on `stream`; the status and body.
pub fn exchange<S: std::io::Read + std::io::Write>(
    stream: &mut S,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    let body = body.unwrap_or("");
    stream
        .write_all(head(method, path, body.len()).as_bytes())
        .unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    read_response(stream)
}

/// A request's head, announcing `length` bytes of JSON.
pub fn head(method: &str, path: &str, length: usize) -> String {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: {SERVICE_DNS}\r\nContent-Type: application/json\r\n\
         Content-Length: {length}\r\nConnection: close\r\n\r\n"
    )
}

/// Reads a response to the end of the connection: the status and body.
pub fn read_response<S: std::io::Read>(stream: &mut S) -> (u16, String) {
    let mut raw = Vec::new();
    // A peer that closes without TLS close_notify still sent the whole response.
    if let Err(err) = stream.read_to_end(&mut raw) {
        assert!(!raw.is_empty(), "no response: {err}");
    }
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_owned())
}

/// A TLS connection to the webhook trusting only `bundle_pem` and checking the name
/// [`SERVICE_DNS`], as the kube-apiserver does with the webhook's `caBundle`.
pub fn tls_connect(port: u16, bundle_pem: &str) -> TlsStream {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(bundle_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(SERVICE_DNS).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// A client TLS stream.
pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// One request over a new [`tls_connect`] connection: the status, the body and the leaf
/// certificate the server presented.
pub fn tls_request(
    port: u16,
    bundle_pem: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String, Vec<u8>) {
    let mut tls = tls_connect(port, bundle_pem);
    let (status, body) = exchange(&mut tls, method, path, body);
    let leaf = tls.conn.peer_certificates().unwrap()[0].to_vec();
    (status, body, leaf)
}

/// An `AdmissionReview` of the creation of a pod with these annotations in namespace `demo`.
pub fn review(annotations: &Value) -> String {
    json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": "u-1",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "demo",
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"generateName": "app-", "annotations": annotations},
                "spec": {
                    "securityContext": {"runAsUser": 101},
                    "containers": [{"name": "app", "image": "app:1"}],
                },
            },
        }
    })
    .to_string()
}
