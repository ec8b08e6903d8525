//! SPIFFE federation against real peers: our bundle endpoint client and watcher
//! (`spiffe_workload_tls::federation`) with both profiles of the SPIFFE Trust Domain and Bundle
//! standard against our own endpoint, go-spiffe v2's `federation.NewHandler` and SPIRE 1.13.3's
//! bundle endpoint; go-spiffe's `federation.FetchBundle` against our endpoint and the
//! `federation_serve` example; a rotation at the endpoint reaching a running mTLS server's next
//! handshake; and the faults (wrong endpoint ID, wrong trust domain, malformed document,
//! endpoint down, sequence going back).
//!
//! The examples are built by `cargo test`; the Go peer by `tests/interop/build-go-peer.sh`.

#![cfg(feature = "federation")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed setup step should panic"
)]

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use spiffe_helper_testkit::certs::{TestCa, TestSvid, pem_block};
use spiffe_helper_testkit::spire::{
    BundleEndpoint, BundleEndpointProfile, Entry, Spire, SpireOptions,
};
use spiffe_workload_client::{
    Backoff, BundleSource, CancellationToken, SpiffeBundle, TrustDomain, X509Bundle, X509BundleSet,
    X509Svid, X509SvidSource,
};
use spiffe_workload_tls::federation::{
    BundleEndpointClient, BundleEndpointHandler, EndpointProfile, FederatedBundleSource,
    FederationError, SharedSpiffeBundle, WithFederatedBundles, https_spiffe_server_config,
    https_web_server_config, serve_bundle_endpoint,
};
use spiffe_workload_tls::rustls::ServerConfig;
use spiffe_workload_tls::{
    Authorizer, SpiffeAcceptor, SpiffeConnector, mtls_client_config, mtls_server_config,
};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

const FOREIGN: &str = "foreign.test";
const LOCAL: &str = "local.test";
const ENDPOINT_ID: &str = "spiffe://foreign.test/bundle-endpoint";

fn td(name: &str) -> TrustDomain {
    name.parse().unwrap()
}

/// A bundle of `cas` with one JWT authority, `spiffe_sequence` and `spiffe_refresh_hint`.
fn bundle(name: &str, cas: &[&TestCa], sequence: u64, hint: i64) -> SpiffeBundle {
    let mut b = SpiffeBundle::new(td(name));
    for ca in cas {
        b.add_x509_authority(ca.der());
    }
    let mut doc: serde_json::Value = serde_json::from_slice(&b.marshal().unwrap()).unwrap();
    let mut jwk = spiffe_helper_testkit::jwt::SigningKey::p256().jwk(&format!("kid-{sequence}"));
    jwk["use"] = "jwt-svid".into();
    doc["keys"].as_array_mut().unwrap().push(jwk);
    let mut b = SpiffeBundle::parse(td(name), doc.to_string().as_bytes()).unwrap();
    b.set_sequence_number(Some(sequence));
    b.set_refresh_hint(Some(hint));
    b
}

fn x509_bundle(ca: &TestCa) -> X509Bundle {
    X509Bundle::new(td(&ca_td(ca)), vec![ca.der()])
}

fn ca_td(ca: &TestCa) -> String {
    let der = ca.der();
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .find_map(|n| match n {
            x509_parser::extensions::GeneralName::URI(u) => {
                u.strip_prefix("spiffe://").map(str::to_owned)
            }
            _ => None,
        })
        .unwrap()
}

fn svid(issued: &TestSvid) -> X509Svid {
    X509Svid::parse_der(&issued.chain.concat(), &issued.key_pkcs8).unwrap()
}

/// An SVID source whose SVID a test can replace, as an agent rotates it.
#[derive(Clone)]
struct Swappable {
    svid: Arc<Mutex<Arc<X509Svid>>>,
    bundles: Arc<X509BundleSet>,
}

impl Swappable {
    fn new(issued: &TestSvid, bundles: Vec<X509Bundle>) -> Self {
        Self {
            svid: Arc::new(Mutex::new(Arc::new(svid(issued)))),
            bundles: Arc::new(X509BundleSet::new(bundles)),
        }
    }

    fn set(&self, issued: &TestSvid) {
        *self.svid.lock().unwrap() = Arc::new(svid(issued));
    }
}

impl BundleSource for Swappable {
    type Bundle = X509Bundle;

    fn bundle_for(&self, trust_domain: &TrustDomain) -> Option<Arc<X509Bundle>> {
        self.bundles.bundle_for(trust_domain)
    }
}

impl X509SvidSource for Swappable {
    fn x509_svid(&self) -> Arc<X509Svid> {
        self.svid.lock().unwrap().clone()
    }
}

/// A bundle endpoint of ours on a loopback port; stops when dropped.
struct Endpoint {
    addr: SocketAddr,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Endpoint {
    async fn start(tls: ServerConfig, handler: BundleEndpointHandler) -> Self {
        Self::start_on(
            TcpListener::bind("127.0.0.1:0").await.unwrap(),
            tls,
            handler,
        )
    }

    fn start_on(listener: TcpListener, tls: ServerConfig, handler: BundleEndpointHandler) -> Self {
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve_bundle_endpoint(
            listener,
            Arc::new(tls),
            handler,
            stop.clone(),
        ));
        Self {
            addr,
            stop,
            task: Some(task),
        }
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// Stops accepting and waits until the listener is closed.
    async fn stop(mut self) -> SocketAddr {
        self.stop.cancel();
        self.task.take().unwrap().await.unwrap().unwrap();
        self.addr
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A Web PKI: a root and a server certificate for `127.0.0.1` and `localhost`, PEM.
struct WebPki {
    root: String,
    cert: String,
    key: String,
}

fn web_pki() -> WebPki {
    let root_key = KeyPair::generate().unwrap();
    let mut root = CertificateParams::new(Vec::<String>::new()).unwrap();
    root.distinguished_name
        .push(DnType::CommonName, "federation test web root");
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root_cert = root.self_signed(&root_key).unwrap();
    let issuer = Issuer::new(root, root_key);
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let leaf_cert = leaf.signed_by(&key, &issuer).unwrap();
    WebPki {
        root: root_cert.pem(),
        cert: leaf_cert.pem(),
        key: key.serialize_pem(),
    }
}

fn spiffe_client(url: &str, endpoint_id: &str, held: &TestCa) -> BundleEndpointClient {
    let profile =
        EndpointProfile::https_spiffe(endpoint_id.parse().unwrap(), x509_bundle(held)).unwrap();
    BundleEndpointClient::new(url, td(FOREIGN), profile).unwrap()
}

fn web_client(url: &str, roots_pem: &str) -> BundleEndpointClient {
    let profile = EndpointProfile::https_web_pem(roots_pem.as_bytes()).unwrap();
    BundleEndpointClient::new(url, td(FOREIGN), profile).unwrap()
}

/// An `https_spiffe` endpoint in foreign.test presenting an SVID of `ca`, serving `served`.
async fn spiffe_endpoint(ca: &TestCa, served: &SharedSpiffeBundle) -> (Endpoint, Swappable) {
    let source = Swappable::new(
        &ca.issue(ENDPOINT_ID, Duration::from_secs(3600)),
        vec![x509_bundle(ca)],
    );
    let tls = https_spiffe_server_config(&source).unwrap();
    let handler = BundleEndpointHandler::new(td(FOREIGN), served.clone());
    (Endpoint::start(tls, handler).await, source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_spiffe_fetch_replaces_the_bundle_it_authenticates_the_endpoint_with() {
    let (f1, f2) = (TestCa::root(FOREIGN), TestCa::root(FOREIGN));
    let served = SharedSpiffeBundle::new(bundle(FOREIGN, &[&f1, &f2], 7, 60));
    let (endpoint, endpoint_svid) = spiffe_endpoint(&f1, &served).await;

    let client = spiffe_client(&endpoint.url(), ENDPOINT_ID, &f1);
    let fetched = client.fetch().await.unwrap();
    assert_eq!(fetched, *served.get(), "the bundle arrives as served");
    assert_eq!(fetched.x509_authorities().len(), 2);
    assert_eq!(fetched.jwt_authorities().len(), 1);
    assert_eq!(fetched.sequence_number(), Some(7));
    assert_eq!(fetched.refresh_hint(), Some(60));
    assert_eq!(
        client.endpoint_bundle().unwrap().authorities(),
        [f1.der(), f2.der()],
        "the fetched bundle of the endpoint's own trust domain replaced the held one"
    );

    // The endpoint's SVID is now issued by the second authority: the client that took the
    // fetched bundle follows, one that still holds only the first does not.
    endpoint_svid.set(&f2.issue(ENDPOINT_ID, Duration::from_secs(3600)));
    assert_eq!(client.fetch().await.unwrap(), *served.get());
    let stale = spiffe_client(&endpoint.url(), ENDPOINT_ID, &f1);
    let refused = stale.fetch().await.unwrap_err();
    assert!(
        matches!(&refused, FederationError::Tls(r) if r.contains("does not verify")),
        "{refused}"
    );

    // An older bundle (lower sequence number) is returned but does not roll the held one back.
    served.set(bundle(FOREIGN, &[&f1], 6, 60));
    assert_eq!(client.fetch().await.unwrap().sequence_number(), Some(6));
    assert_eq!(
        client.endpoint_bundle().unwrap().authorities(),
        [f1.der(), f2.der()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_web_fetch_trusts_only_the_configured_roots() {
    let web = web_pki();
    let f1 = TestCa::root(FOREIGN);
    let served = SharedSpiffeBundle::new(bundle(FOREIGN, &[&f1], 1, 300));
    let tls = https_web_server_config(web.cert.as_bytes(), web.key.as_bytes()).unwrap();
    let endpoint =
        Endpoint::start(tls, BundleEndpointHandler::new(td(FOREIGN), served.clone())).await;

    for url in [
        endpoint.url(),
        format!("https://localhost:{}/any/path", endpoint.addr.port()),
    ] {
        let fetched = web_client(&url, &web.root).fetch().await.unwrap();
        assert_eq!(fetched, *served.get(), "{url}");
    }
    let other = web_pki();
    let refused = web_client(&endpoint.url(), &other.root)
        .fetch()
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, FederationError::Tls(r) if r.contains("invalid peer certificate")),
        "{refused}"
    );
}

/// A TLS endpoint answering every request with `body` (for documents our handler never
/// serves).
async fn raw_endpoint(tls: ServerConfig, body: &'static str) -> (SocketAddr, CancellationToken) {
    use hyper::service::service_fn;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let token = stop.clone();
    tokio::spawn(async move {
        loop {
            let tcp = tokio::select! {
                () = token.cancelled() => return,
                accepted = listener.accept() => accepted.unwrap().0,
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(
                        http_body_util::Full::new(hyper::body::Bytes::from_static(body.as_bytes())),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_are_refused_with_their_reason() {
    let f1 = TestCa::root(FOREIGN);
    let served = SharedSpiffeBundle::new(bundle(FOREIGN, &[&f1], 1, 300));
    let (endpoint, _) = spiffe_endpoint(&f1, &served).await;

    // The endpoint presents another SPIFFE ID than the one expected.
    let wrong_id = spiffe_client(&endpoint.url(), "spiffe://foreign.test/elsewhere", &f1);
    let refused = wrong_id.fetch().await.unwrap_err();
    assert!(
        matches!(&refused, FederationError::Tls(r) if r.contains("not authorized")),
        "{refused}"
    );
    // The held bundle must be the endpoint ID's trust domain's.
    let mismatch =
        EndpointProfile::https_spiffe("spiffe://other.test/x".parse().unwrap(), x509_bundle(&f1))
            .unwrap_err();
    assert!(
        matches!(mismatch, FederationError::Profile(_)),
        "{mismatch}"
    );

    // A bundle whose authority belongs to another trust domain.
    let other = TestCa::root("other.test");
    served.set(bundle(FOREIGN, &[&f1, &other], 2, 300));
    let client = spiffe_client(&endpoint.url(), ENDPOINT_ID, &f1);
    let refused = client.fetch().await.unwrap_err();
    assert!(
        matches!(&refused, FederationError::WrongTrustDomain { index: 1, found, .. } if found == "other.test"),
        "{refused}"
    );
    assert_eq!(
        client.endpoint_bundle().unwrap().authorities(),
        [f1.der()],
        "a refused bundle does not replace the held one"
    );

    // No bundle for the trust domain: the handler answers 503.
    served.set(bundle("third.test", &[&f1], 3, 300));
    let refused = client.fetch().await.unwrap_err();
    assert!(matches!(refused, FederationError::Status(503)), "{refused}");

    // Documents that are no SPIFFE bundle.
    let source = Swappable::new(&f1.issue(ENDPOINT_ID, Duration::from_secs(3600)), vec![]);
    for (body, want) in [
        ("{\"keys\": [", "SPIFFE bundle"),
        ("{\"spiffe_sequence\": 1}", "no keys member"),
        ("{\"keys\": []}", "holds no authority"),
    ] {
        let (addr, stop) = raw_endpoint(https_spiffe_server_config(&source).unwrap(), body).await;
        let refused = spiffe_client(&format!("https://{addr}"), ENDPOINT_ID, &f1)
            .fetch()
            .await
            .unwrap_err();
        assert!(refused.to_string().contains(want), "{body}: {refused}");
        stop.cancel();
    }

    // Not an https URL; nothing listening.
    let url = BundleEndpointClient::new(
        "http://127.0.0.1:1/",
        td(FOREIGN),
        EndpointProfile::https_web_pem(web_pki().root.as_bytes()).unwrap(),
    )
    .unwrap_err();
    assert!(matches!(url, FederationError::Url { .. }), "{url}");
    let addr = endpoint.stop().await;
    let down = spiffe_client(&format!("https://{addr}"), ENDPOINT_ID, &f1)
        .fetch()
        .await
        .unwrap_err();
    assert!(matches!(down, FederationError::Connect(_)), "{down}");
}

/// Binds `addr` again once the previous listener is gone.
async fn rebind(addr: SocketAddr) -> TcpListener {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) if Instant::now() > deadline => panic!("rebinding {addr}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn wait_status(
    source: &FederatedBundleSource,
    what: &str,
    ok: impl Fn(&spiffe_workload_tls::federation::FederationStatus) -> bool,
) {
    let mut rx = source.subscribe();
    tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|s| ok(s)))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}: {:?}", source.status()))
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_backs_off_while_the_endpoint_is_down_and_keeps_the_last_good_bundle() {
    let web = web_pki();
    let f1 = TestCa::root(FOREIGN);
    let first = bundle(FOREIGN, &[&f1], 1, 1);
    let served = SharedSpiffeBundle::new(first.clone());
    let tls = || https_web_server_config(web.cert.as_bytes(), web.key.as_bytes()).unwrap();
    let handler = BundleEndpointHandler::new(td(FOREIGN), served.clone());
    let endpoint = Endpoint::start(tls(), handler.clone()).await;
    let watcher = FederatedBundleSource::builder(web_client(&endpoint.url(), &web.root))
        .refresh_bounds(Duration::from_millis(100), Duration::from_secs(1))
        .backoff(Backoff::exact(
            Duration::from_millis(200),
            Duration::from_millis(400),
        ))
        .start();
    let got = watcher
        .wait_for_bundle(Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(*got, first);
    let held = watcher.bundle_for(&td(FOREIGN)).unwrap();
    assert_eq!(held.authorities(), [f1.der()]);
    assert!(watcher.bundle_for(&td(LOCAL)).is_none());

    // Down: failures are counted, spaced by the backoff, and the bundle stays.
    let addr = endpoint.stop().await;
    let mut rx = watcher.subscribe();
    let mut seen = Vec::new();
    while seen.len() < 4 {
        tokio::time::timeout(Duration::from_secs(10), rx.changed())
            .await
            .unwrap()
            .unwrap();
        let failures = rx.borrow_and_update().consecutive_failures();
        if failures > 0 && seen.last().is_none_or(|(n, _)| *n < failures) {
            seen.push((failures, Instant::now()));
        }
    }
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].1 - w[0].1).collect();
    assert!(
        gaps[0] >= Duration::from_millis(150) && gaps[1] >= Duration::from_millis(350),
        "retries are not backed off: {gaps:?}"
    );
    assert!(
        gaps.iter().all(|g| *g < Duration::from_secs(3)),
        "retries stall: {gaps:?}"
    );
    let status = watcher.status();
    assert!(
        status.last_error().unwrap().contains("connecting"),
        "{status:?}"
    );
    assert!(
        Arc::ptr_eq(&watcher.bundle_for(&td(FOREIGN)).unwrap(), &held),
        "the last good bundle stays in use"
    );

    // Back with a new bundle on the same address: taken, failures cleared.
    let second = bundle(FOREIGN, &[&f1, &TestCa::root(FOREIGN)], 2, 1);
    served.set(second.clone());
    let _endpoint = Endpoint::start_on(rebind(addr).await, tls(), handler);
    wait_status(&watcher, "the new bundle", |s| {
        s.bundle().is_some_and(|b| **b == second)
    })
    .await;
    let status = watcher.status();
    assert_eq!(status.consecutive_failures(), 0);
    assert!(status.last_error().is_none());
    assert_eq!(
        watcher
            .bundle_for(&td(FOREIGN))
            .unwrap()
            .authorities()
            .len(),
        2
    );

    // A bundle whose sequence number goes back is refused; the held one stays.
    served.set(bundle(FOREIGN, &[&TestCa::root(FOREIGN)], 1, 1));
    wait_status(&watcher, "the refusal", |s| s.consecutive_failures() > 0).await;
    let status = watcher.status();
    assert!(
        status
            .last_error()
            .unwrap()
            .contains("went back from 2 to 1"),
        "{status:?}"
    );
    assert_eq!(**status.bundle().unwrap(), second);
    watcher.shutdown();
}

/// One mTLS exchange with the server at `addr` as a foreign.test client: the server's answer,
/// or the error.
async fn call(addr: SocketAddr, client: &TestSvid, local_ca: &TestCa) -> Result<String, String> {
    let source = Swappable::new(client, vec![x509_bundle(local_ca)]);
    let config = mtls_client_config(
        &source,
        Authorizer::exact("spiffe://local.test/server".parse().unwrap()),
    )
    .unwrap();
    let (stream, _) = SpiffeConnector::new(config)
        .dial(addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut lines = tokio::io::BufReader::new(stream).lines();
    match lines.next_line().await {
        Ok(Some(line)) => Ok(line),
        Ok(None) => Err("closed".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bundle_rotation_at_the_endpoint_reaches_the_next_mtls_handshake() {
    let local = TestCa::root(LOCAL);
    let (f1, f2) = (TestCa::root(FOREIGN), TestCa::root(FOREIGN));
    let served = SharedSpiffeBundle::new(bundle(FOREIGN, &[&f1], 1, 1));
    let (endpoint, _) = spiffe_endpoint(&f1, &served).await;
    let watcher = FederatedBundleSource::builder(spiffe_client(&endpoint.url(), ENDPOINT_ID, &f1))
        .refresh_bounds(Duration::from_millis(100), Duration::from_secs(1))
        .start();
    watcher
        .wait_for_bundle(Duration::from_secs(20))
        .await
        .unwrap();

    // A local.test server trusting foreign.test clients through the watcher only.
    let own = Swappable::new(
        &local.issue("spiffe://local.test/server", Duration::from_secs(3600)),
        vec![x509_bundle(&local)],
    );
    let both = WithFederatedBundles::new(own).with(watcher.clone());
    let acceptor =
        SpiffeAcceptor::new(mtls_server_config(&both, Authorizer::member_of(td(FOREIGN))).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mtls = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok((mut stream, Some(peer))) = acceptor.accept(tcp).await {
                    let _ = stream.write_all(format!("hello {peer}\n").as_bytes()).await;
                    let _ = stream.shutdown().await;
                }
            });
        }
    });
    let old = f1.issue("spiffe://foreign.test/client", Duration::from_secs(3600));
    let new = f2.issue("spiffe://foreign.test/client", Duration::from_secs(3600));
    assert_eq!(
        call(addr, &old, &local).await.unwrap(),
        "hello spiffe://foreign.test/client"
    );
    assert!(call(addr, &new, &local).await.is_err(), "not yet trusted");

    // The foreign domain rotates: the endpoint now serves only the new authority.
    served.set(bundle(FOREIGN, &[&f2], 2, 1));
    wait_status(&watcher, "the rotated bundle", |s| {
        s.bundle().is_some_and(|b| b.sequence_number() == Some(2))
    })
    .await;
    assert_eq!(
        call(addr, &new, &local).await.unwrap(),
        "hello spiffe://foreign.test/client",
        "the running server accepts the new foreign CA"
    );
    let refused = call(addr, &old, &local).await.unwrap_err();
    assert!(!refused.is_empty(), "the removed CA is refused");
    mtls.abort();
}

// ---- go-spiffe ----

/// `target/<profile>/examples/<name>`, next to this test's own `deps/` directory.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(path.is_file(), "{} is missing", path.display());
    path
}

/// Runs a fetcher (the Go peer's `federation-fetch` or the `federation_fetch` example) and
/// returns its one line, or its stderr as the error.
fn run_fetch(mut cmd: Command, args: &[&str]) -> Result<String, String> {
    let out = cmd.args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() {
        assert_eq!(stdout.lines().count(), 1, "{stdout}");
        Ok(stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

fn go_fetch(args: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(spiffe_helper_testkit::interop::go_peer());
    cmd.arg("federation-fetch");
    run_fetch(cmd, args)
}

fn rust_fetch(args: &[&str]) -> Result<String, String> {
    run_fetch(Command::new(example("federation_fetch")), args)
}

/// A process that printed `listening on ADDR`; killed when dropped.
struct Listening {
    child: Child,
    addr: String,
}

impl Listening {
    fn spawn(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("did not start: {line:?}"))
            .to_owned();
        Self { child, addr }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(dir: &Path, name: &str, text: &[u8]) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

fn expected_line(b: &SpiffeBundle) -> String {
    format!(
        "trust_domain={} x509_authorities={} jwt_keys={} refresh_hint={} sequence={}",
        b.trust_domain(),
        b.x509_authorities().len(),
        b.jwt_authorities().len(),
        b.refresh_hint().unwrap(),
        b.sequence_number().unwrap()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_spiffe_fetches_from_our_endpoint_with_both_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let web = web_pki();
    let f1 = TestCa::root(FOREIGN);
    let served = SharedSpiffeBundle::new(bundle(FOREIGN, &[&f1, &TestCa::root(FOREIGN)], 4, 90));
    let want = expected_line(&served.get());
    let (spiffe, _) = spiffe_endpoint(&f1, &served).await;
    let tls = https_web_server_config(web.cert.as_bytes(), web.key.as_bytes()).unwrap();
    let web_endpoint =
        Endpoint::start(tls, BundleEndpointHandler::new(td(FOREIGN), served.clone())).await;
    let held = write(dir.path(), "held.pem", f1.pem().as_bytes());
    let roots = write(dir.path(), "roots.pem", web.root.as_bytes());

    let spiffe_args = [
        "--url",
        &spiffe.url(),
        "--trust-domain",
        FOREIGN,
        "--endpoint-id",
        ENDPOINT_ID,
        "--bundle",
        &held,
    ];
    let web_args = [
        "--url",
        &web_endpoint.url(),
        "--trust-domain",
        FOREIGN,
        "--web-roots",
        &roots,
    ];
    for args in [&spiffe_args[..], &web_args[..]] {
        let (go, rust) = tokio::task::spawn_blocking({
            let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
            move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                (go_fetch(&args), rust_fetch(&args))
            }
        })
        .await
        .unwrap();
        assert_eq!(
            go.as_deref(),
            Ok(want.as_str()),
            "go-spiffe FetchBundle {args:?}"
        );
        assert_eq!(
            rust.as_deref(),
            Ok(want.as_str()),
            "federation_fetch {args:?}"
        );
    }
    // go-spiffe refuses our endpoint under another ID, as we do.
    let wrong = [
        "--url",
        &spiffe.url(),
        "--trust-domain",
        FOREIGN,
        "--endpoint-id",
        "spiffe://foreign.test/elsewhere",
        "--bundle",
        &held,
    ];
    let wrong: Vec<String> = wrong.iter().map(|s| (*s).to_owned()).collect();
    let (go, rust) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = wrong.iter().map(String::as_str).collect();
        (go_fetch(&args), rust_fetch(&args))
    })
    .await
    .unwrap();
    assert!(go.is_err() && rust.is_err(), "{go:?} {rust:?}");
    assert_eq!(rust.unwrap_err().lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_fetch_from_go_spiffe_handler_with_both_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let web = web_pki();
    let f1 = TestCa::root(FOREIGN);
    let first = bundle(FOREIGN, &[&f1], 10, 120);
    let doc = write(dir.path(), "bundle.json", &first.marshal().unwrap());
    let issued = f1.issue(ENDPOINT_ID, Duration::from_secs(3600));
    let chain: String = issued
        .chain
        .iter()
        .map(|c| pem_block("CERTIFICATE", c))
        .collect();
    let svid_pem = write(dir.path(), "svid.pem", chain.as_bytes());
    let svid_key = write(
        dir.path(),
        "svid.key",
        pem_block("PRIVATE KEY", &issued.key_pkcs8).as_bytes(),
    );
    let cert = write(dir.path(), "web.pem", web.cert.as_bytes());
    let key = write(dir.path(), "web.key", web.key.as_bytes());
    let peer = tokio::task::spawn_blocking(spiffe_helper_testkit::interop::go_peer)
        .await
        .unwrap();
    let serve = |profile: &[&str]| {
        let mut cmd = Command::new(&peer);
        cmd.args([
            "federation-serve",
            "--listen",
            "127.0.0.1:0",
            "--trust-domain",
            FOREIGN,
        ])
        .args(["--bundle-json", &doc])
        .args(profile);
        Listening::spawn(cmd)
    };
    let go_spiffe = serve(&["--svid", &svid_pem, "--svid-key", &svid_key]);
    let go_web = serve(&["--cert", &cert, "--key", &key]);

    let spiffe = spiffe_client(&format!("https://{}", go_spiffe.addr), ENDPOINT_ID, &f1);
    let web_c = web_client(&format!("https://{}/bundle", go_web.addr), &web.root);
    assert_eq!(spiffe.fetch().await.unwrap(), first);
    assert_eq!(web_c.fetch().await.unwrap(), first);

    // go-spiffe marshals what it parsed: a rotation in its file arrives as is.
    let second = bundle(FOREIGN, &[&f1, &TestCa::root(FOREIGN)], 11, 120);
    std::fs::write(&doc, second.marshal().unwrap()).unwrap();
    assert_eq!(spiffe.fetch().await.unwrap(), second);
    assert_eq!(web_c.fetch().await.unwrap(), second);
    // The wrong endpoint ID is refused against go-spiffe's endpoint too.
    let wrong = spiffe_client(
        &format!("https://{}", go_spiffe.addr),
        "spiffe://foreign.test/elsewhere",
        &f1,
    );
    assert!(matches!(wrong.fetch().await, Err(FederationError::Tls(_))));
}

// ---- SPIRE 1.13.3 ----

fn spire_with_endpoint(profile: BundleEndpointProfile) -> Spire {
    Spire::start_with(SpireOptions {
        bundle_endpoint: Some(BundleEndpoint {
            profile,
            refresh_hint: Some(Duration::from_secs(60)),
        }),
        ..SpireOptions::default()
    })
}

/// SPIRE opens its bundle endpoint shortly after it reports healthy: retry for a while.
async fn fetch_until_up(client: &BundleEndpointClient) -> SpiffeBundle {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match client.fetch().await {
            Ok(b) => return b,
            Err(e) if Instant::now() > deadline => panic!("SPIRE's bundle endpoint: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(300)).await,
        }
    }
}

fn pem_count(pem: &str) -> usize {
    pem.matches("-----BEGIN CERTIFICATE-----").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spire_bundle_endpoint_https_spiffe_and_our_endpoint_of_its_agent() {
    let spire = spire_with_endpoint(BundleEndpointProfile::HttpsSpiffe);
    let example_td = spire.trust_domain().to_owned();
    let bundle_pem = spire.bundle_pem();
    let url = spire.bundle_endpoint_url().unwrap();
    let server_id = format!("spiffe://{example_td}/spire/server");
    let held = X509Bundle::parse_pem(td(&example_td), bundle_pem.as_bytes()).unwrap();
    let client = BundleEndpointClient::new(
        &url,
        td(&example_td),
        EndpointProfile::https_spiffe(server_id.parse().unwrap(), held).unwrap(),
    )
    .unwrap();
    let fetched = fetch_until_up(&client).await;
    assert_eq!(fetched.x509_authorities().len(), pem_count(&bundle_pem));
    assert!(
        !fetched.jwt_authorities().is_empty(),
        "SPIRE publishes its JWT keys"
    );
    assert_eq!(fetched.refresh_hint(), Some(60));
    assert!(fetched.sequence_number().is_some());

    // The example and go-spiffe see the same, and a wrong endpoint ID is refused.
    let dir = tempfile::tempdir().unwrap();
    let held_file = write(dir.path(), "held.pem", bundle_pem.as_bytes());
    let args = [
        "--url",
        &url,
        "--trust-domain",
        &example_td,
        "--endpoint-id",
        &server_id,
        "--bundle",
        &held_file,
    ];
    let want = format!(
        "trust_domain={example_td} x509_authorities={} jwt_keys={} refresh_hint=60 sequence={}",
        fetched.x509_authorities().len(),
        fetched.jwt_authorities().len(),
        fetched.sequence_number().unwrap()
    );
    assert_eq!(rust_fetch(&args).as_deref(), Ok(want.as_str()));
    assert_eq!(go_fetch(&args).as_deref(), Ok(want.as_str()));
    let mut wrong = args;
    let other_id = format!("spiffe://{example_td}/not-the-server");
    wrong[5] = &other_id;
    assert!(rust_fetch(&wrong).unwrap_err().contains("not authorized"));

    // federation_serve serves the bundle of the agent's trust domain with https_spiffe.
    let workload = format!("spiffe://{example_td}/bundle-endpoint");
    spire.create_entry(&Entry::new(&workload));
    spire.wait_for_svid(Duration::from_secs(60));
    let mut cmd = Command::new(example("federation_serve"));
    cmd.args(["--listen", "127.0.0.1:0", "--refresh-hint", "45"])
        .env("SPIFFE_ENDPOINT_SOCKET", spire.endpoint());
    let served = Listening::spawn(cmd);
    let ours_url = format!("https://{}", served.addr);
    let args = [
        "--url",
        &ours_url,
        "--trust-domain",
        &example_td,
        "--endpoint-id",
        &workload,
        "--bundle",
        &held_file,
    ];
    let want = format!(
        "trust_domain={example_td} x509_authorities={} jwt_keys={} refresh_hint=45 sequence=none",
        pem_count(&bundle_pem),
        fetched.jwt_authorities().len()
    );
    assert_eq!(
        go_fetch(&args).as_deref(),
        Ok(want.as_str()),
        "go-spiffe against federation_serve"
    );
    assert_eq!(rust_fetch(&args).as_deref(), Ok(want.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spire_bundle_endpoint_https_web() {
    let web = web_pki();
    let files = tempfile::tempdir().unwrap();
    let cert_file = files.path().join("endpoint.pem");
    let key_file = files.path().join("endpoint.key");
    std::fs::write(&cert_file, &web.cert).unwrap();
    std::fs::write(&key_file, &web.key).unwrap();
    let spire = spire_with_endpoint(BundleEndpointProfile::HttpsWeb {
        cert_file,
        key_file,
    });
    let name = spire.trust_domain().to_owned();
    let url = spire.bundle_endpoint_url().unwrap();
    let client = BundleEndpointClient::new(
        &url,
        td(&name),
        EndpointProfile::https_web_pem(web.root.as_bytes()).unwrap(),
    )
    .unwrap();
    let fetched = fetch_until_up(&client).await;
    assert_eq!(
        fetched.x509_authorities().len(),
        pem_count(&spire.bundle_pem())
    );
    assert!(!fetched.jwt_authorities().is_empty());
    assert_eq!(fetched.refresh_hint(), Some(60));
    let refused = web_client(&url, &web_pki().root).fetch().await.unwrap_err();
    assert!(matches!(refused, FederationError::Tls(_)), "{refused}");

    let roots = write(files.path(), "roots.pem", web.root.as_bytes());
    let args = [
        "--url",
        &url,
        "--trust-domain",
        &name,
        "--web-roots",
        &roots,
    ];
    let go = go_fetch(&args).unwrap();
    assert_eq!(rust_fetch(&args).unwrap(), go);
    assert!(go.starts_with(&format!("trust_domain={name} ")), "{go}");
}
