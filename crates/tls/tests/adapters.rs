//! The tonic and hyper / axum adapters (`spiffe_workload_tls::adapters`).
//!
//! In process, on the fake Workload API: a tonic handler and an axum handler read the caller's
//! SPIFFE ID, the hyper-util client sees the server's, refused and stalled handshakes are
//! skipped without stopping the server, and a long-lived tonic channel keeps working across a
//! rotation of the client's SVID, its new connections presenting the new one.
//!
//! Against go-spiffe's `spiffegrpc/grpccredentials` (the Go peer's `grpc-server` /
//! `grpc-client` modes, tests/interop/go/grpc.go) on a real SPIRE 1.13.3: a Go gRPC client
//! calls our tonic server and our tonic client calls a Go gRPC server, over the standard gRPC
//! health service; each side reads the other's SPIFFE ID, and a wrong expected ID is refused
//! on both sides. And the channel across a rotation again, with SPIRE rotating a 30 s SVID.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed setup step should panic"
)]

use std::error::Error as StdError;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Extension;
use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use spiffe_helper_testkit::certs::{self, TestCa, TestSvid};
use spiffe_helper_testkit::fake::FakeAgent;
use spiffe_helper_testkit::interop::go_peer;
use spiffe_helper_testkit::spire::{Entry, Spire};
use spiffe_workload_client::{Endpoint as AgentEndpoint, WorkloadApiClient, X509Source};
use spiffe_workload_tls::adapters::{SpiffeHttpConnector, SpiffeIncoming, SpiffePeer, tonic_peer};
use spiffe_workload_tls::{Authorizer, mtls_client_config, mtls_server_config};
use tokio::io::AsyncReadExt as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint, Server};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

const TD: &str = "example.org";
const SERVER: &str = "spiffe://example.org/server";
const CLIENT: &str = "spiffe://example.org/client";
const INTRUDER: &str = "spiffe://example.org/intruder";
const SOMEONE_ELSE: &str = "spiffe://example.org/someone-else";

/// The leaf's serial as x509-parser prints it (`0a:1b:...`).
fn serial(der: &[u8]) -> String {
    x509_parser::parse_x509_certificate(der)
        .unwrap()
        .1
        .raw_serial_as_string()
}

/// The health service, answering SERVING with the caller's SPIFFE ID, leaf serial and address
/// in the response headers `spiffe-id`, `serial` and `remote-addr`.
struct Checker;

#[tonic::async_trait]
impl Health for Checker {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let peer = tonic_peer(&request).ok_or_else(|| Status::unauthenticated("no peer"))?;
        let id = peer
            .id()
            .ok_or_else(|| Status::unauthenticated("no SPIFFE ID"))?;
        let leaf = peer
            .certificates()
            .first()
            .ok_or_else(|| Status::unauthenticated("no certificate"))?;
        let mut response = Response::new(HealthCheckResponse {
            status: ServingStatus::Serving.into(),
        });
        let headers = response.metadata_mut();
        headers.insert("spiffe-id", id.to_string().parse().unwrap());
        headers.insert("serial", serial(leaf).parse().unwrap());
        let remote = peer
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        headers.insert("remote-addr", remote.parse().unwrap());
        Ok(response)
    }

    type WatchStream = Pin<
        Box<dyn tokio_stream::Stream<Item = Result<HealthCheckResponse, Status>> + Send + 'static>,
    >;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

/// A tonic server with the health service on an mTLS incoming; `max_age` recycles its
/// connections (tonic's `max_connection_age`).
async fn tonic_server(
    source: &X509Source,
    allow: Authorizer,
    max_age: Option<Duration>,
) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let incoming = SpiffeIncoming::new(listener, mtls_server_config(source, allow).unwrap());
    let addr = incoming.local_addr().unwrap();
    let mut builder = Server::builder();
    if let Some(age) = max_age {
        builder = builder.max_connection_age(age);
    }
    let router = builder.add_service(HealthServer::new(Checker));
    let task = tokio::spawn(async move {
        router.serve_with_incoming(incoming).await.unwrap();
    });
    (addr, task)
}

/// A tonic channel to `addr` over our connector, authorizing the server with `expect`.
async fn channel(
    source: &X509Source,
    expect: Authorizer,
    addr: SocketAddr,
) -> Result<Channel, tonic::transport::Error> {
    let config = mtls_client_config(source, expect).unwrap();
    Endpoint::try_from(format!("https://{addr}"))
        .unwrap()
        .connect_with_connector(SpiffeHttpConnector::new(config))
        .await
}

/// What the server said in a Check: (status, spiffe-id header, serial header, remote-addr).
struct Checked {
    status: i32,
    caller: String,
    serial: String,
    remote: String,
}

async fn check(channel: Channel) -> Result<Checked, Status> {
    let reply = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await?;
    let header = |name: &str| {
        reply
            .metadata()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    Ok(Checked {
        caller: header("spiffe-id"),
        serial: header("serial"),
        remote: header("remote-addr"),
        status: reply.get_ref().status,
    })
}

/// The error and its sources, on one line.
fn chain(error: &dyn StdError) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        source = inner.source();
    }
    text
}

/// A fake agent serving one SVID of a fixed CA, and a source on it.
struct Agent {
    fake: FakeAgent,
    source: X509Source,
}

async fn agent(ca: &TestCa, svid: &TestSvid) -> Agent {
    let fake = FakeAgent::start().await;
    fake.push_x509(certs::x509_response(&[(svid, "")], &[ca.der()], &[]));
    let client = WorkloadApiClient::new(AgentEndpoint::parse(&fake.endpoint()).unwrap());
    let source = X509Source::builder().client(client).build().await.unwrap();
    Agent { fake, source }
}

struct Trio {
    ca: TestCa,
    server: Agent,
    client: Agent,
    intruder: Agent,
}

async fn trio() -> Trio {
    let ca = TestCa::root(TD);
    let hour = Duration::from_secs(3600);
    let server = agent(&ca, &ca.issue(SERVER, hour)).await;
    let client = agent(&ca, &ca.issue(CLIENT, hour)).await;
    let intruder = agent(&ca, &ca.issue(INTRUDER, hour)).await;
    Trio {
        ca,
        server,
        client,
        intruder,
    }
}

fn id(s: &str) -> spiffe_workload_client::SpiffeId {
    s.parse().unwrap()
}

/// The tonic handler reads the caller's ID and address; the server's authorizer refuses an
/// intruder and the client's refuses an unexpected server, and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tonic_handler_reads_the_callers_id_and_both_authorizers_hold() {
    let t = trio().await;
    let (addr, server) = tonic_server(&t.server.source, Authorizer::exact(id(CLIENT)), None).await;

    let ok = check(
        channel(&t.client.source, Authorizer::exact(id(SERVER)), addr)
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(ok.status, i32::from(ServingStatus::Serving));
    assert_eq!(ok.caller, CLIENT);
    let remote: SocketAddr = ok.remote.parse().unwrap();
    assert!(remote.ip().is_loopback(), "{remote}");

    // The server refuses the intruder (TLS 1.3: the client learns it on its first read).
    let refused = match channel(&t.intruder.source, Authorizer::exact(id(SERVER)), addr).await {
        Ok(channel) => check(channel).await.err().map(|e| chain(&e)),
        Err(e) => Some(chain(&e)),
    };
    assert!(refused.is_some(), "the intruder was served");

    // The client refuses a server that is not the one it expects, before any request.
    let wrong = channel(&t.client.source, Authorizer::exact(id(SOMEONE_ELSE)), addr)
        .await
        .err()
        .map(|e| chain(&e))
        .expect("an unexpected server was accepted");
    assert!(
        wrong.contains(&format!("peer {SERVER} is not authorized")),
        "{wrong}"
    );

    // A peer that speaks no TLS at all.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut raw, b"GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut sink)).await;

    // None of this ended the incoming stream.
    let again = check(
        channel(
            &t.client.source,
            Authorizer::member_of(TD.parse().unwrap()),
            addr,
        )
        .await
        .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(again.caller, CLIENT);
    assert!(!server.is_finished());
    server.abort();
}

/// A client that connects and never finishes its handshake is dropped after the timeout, and
/// the others are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_is_dropped_after_the_timeout() {
    let t = trio().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = mtls_server_config(&t.server.source, Authorizer::any()).unwrap();
    let incoming =
        SpiffeIncoming::with_handshake_timeout(listener, config, Duration::from_millis(300));
    let addr = incoming.local_addr().unwrap();
    let server = tokio::spawn(
        Server::builder()
            .add_service(HealthServer::new(Checker))
            .serve_with_incoming(incoming),
    );
    let started = Instant::now();
    let mut stalled = TcpStream::connect(addr).await.unwrap();
    let answered = check(
        channel(&t.client.source, Authorizer::any(), addr)
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(answered.caller, CLIENT);
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(5), stalled.read(&mut buf))
        .await
        .expect("the stalled connection is still open after 5 s");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    server.abort();
}

/// An axum router behind `serve` reads the caller with `Extension<SpiffePeer>`; hyper-util's
/// client, over the connector, negotiates HTTP/2 by ALPN and finds the server's peer in the
/// response's extensions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn axum_reads_the_caller_and_the_hyper_client_the_server() {
    let t = trio().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = mtls_server_config(&t.server.source, Authorizer::exact(id(CLIENT))).unwrap();
    let incoming = SpiffeIncoming::new(listener, config);
    let addr = incoming.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/whoami",
        axum::routing::get(|Extension(peer): Extension<SpiffePeer>| async move {
            peer.id().map(ToString::to_string).unwrap_or_default()
        }),
    );
    let server = tokio::spawn(spiffe_workload_tls::adapters::serve(incoming, app));

    let client = |source: &X509Source, expect: &str| {
        let config = mtls_client_config(source, Authorizer::exact(id(expect))).unwrap();
        Client::builder(TokioExecutor::new())
            .build::<_, Empty<Bytes>>(SpiffeHttpConnector::new(config))
    };
    let uri: http::Uri = format!("https://{addr}/whoami").parse().unwrap();
    let response = client(&t.client.source, SERVER)
        .get(uri.clone())
        .await
        .unwrap();
    assert_eq!(response.status(), http::StatusCode::OK);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let server_peer = response.extensions().get::<SpiffePeer>().unwrap().clone();
    assert_eq!(server_peer.id(), Some(&id(SERVER)));
    assert_eq!(server_peer.remote_addr(), Some(addr));
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, CLIENT.as_bytes());

    let wrong = client(&t.client.source, SOMEONE_ELSE)
        .get(uri.clone())
        .await
        .unwrap_err();
    assert!(
        chain(&wrong).contains("is not authorized"),
        "{}",
        chain(&wrong)
    );
    assert!(
        client(&t.intruder.source, SERVER)
            .get(uri.clone())
            .await
            .is_err()
    );

    // HTTP/1.1 when the client offers only that.
    let mut config = mtls_client_config(&t.client.source, Authorizer::any()).unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let http1 = Client::builder(TokioExecutor::new())
        .build::<_, Empty<Bytes>>(SpiffeHttpConnector::new(config))
        .get(uri)
        .await
        .unwrap();
    assert_eq!(http1.version(), http::Version::HTTP_11);
    assert_eq!(
        http1.into_body().collect().await.unwrap().to_bytes(),
        CLIENT.as_bytes()
    );
    server.abort();
}

/// `serve_with_shutdown`: on the signal the listener closes, the request in flight still gets
/// its answer, and the server returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hyper_shutdown_drains_the_request_in_flight_and_closes_the_listener() {
    let t = trio().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let config = mtls_server_config(&t.server.source, Authorizer::any()).unwrap();
    let incoming = SpiffeIncoming::new(listener, config);
    let addr = incoming.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/slow",
        axum::routing::get(|Extension(peer): Extension<SpiffePeer>| async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            peer.id().map(ToString::to_string).unwrap_or_default()
        }),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(spiffe_workload_tls::adapters::serve_with_shutdown(
        incoming,
        app,
        async move {
            let _ = stopped.await;
        },
    ));
    let config = mtls_client_config(&t.client.source, Authorizer::exact(id(SERVER))).unwrap();
    let client = Client::builder(TokioExecutor::new())
        .build::<_, Empty<Bytes>>(SpiffeHttpConnector::new(config));
    let in_flight = tokio::spawn(client.get(format!("https://{addr}/slow").parse().unwrap()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.send(()).unwrap();

    let response = in_flight.await.unwrap().unwrap();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, CLIENT.as_bytes());
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server did not return after its connections closed")
        .unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}

/// One tonic channel across a rotation of the client's SVID: every call succeeds, and once the
/// server recycles the connection (tonic's `max_connection_age`) the channel's new connection
/// presents the new SVID, read from the same source with no rebuild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tonic_channel_presents_the_rotated_svid_on_its_next_connection() {
    let t = trio().await;
    let (addr, server) = tonic_server(
        &t.server.source,
        Authorizer::exact(id(CLIENT)),
        Some(Duration::from_millis(500)),
    )
    .await;
    let channel = channel(&t.client.source, Authorizer::exact(id(SERVER)), addr)
        .await
        .unwrap();
    let first = check(channel.clone()).await.unwrap();

    let rotated = t.ca.issue(CLIENT, Duration::from_secs(3600));
    let rotated_serial = serial(&rotated.chain[0]);
    assert_ne!(first.serial, rotated_serial);
    t.client
        .fake
        .push_x509(certs::x509_response(&[(&rotated, "")], &[t.ca.der()], &[]));

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut calls = 0;
    loop {
        let next = check(channel.clone())
            .await
            .unwrap_or_else(|e| panic!("call {calls} failed during the rotation: {e}"));
        calls += 1;
        assert_eq!(next.caller, CLIENT);
        if next.serial == rotated_serial {
            break;
        }
        assert_eq!(next.serial, first.serial, "an unknown SVID");
        assert!(
            Instant::now() < deadline,
            "the rotated SVID was never presented"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(calls > 1, "rotated before the first reconnect");
    server.abort();
}

// ---- against go-spiffe's grpccredentials on a real SPIRE ----

fn spire_with_trio() -> Spire {
    let spire = Spire::start();
    for entry in [
        Entry::new(SERVER).entry_id("00-server").hint("server"),
        Entry::new(CLIENT).entry_id("10-client").hint("client"),
        Entry::new(INTRUDER)
            .entry_id("20-intruder")
            .hint("intruder"),
    ] {
        spire.create_entry(&entry);
    }
    spire.wait_for_svid(Duration::from_secs(60));
    spire
}

async fn spire_source(spire: &Spire, hint: &str) -> X509Source {
    X509Source::builder()
        .endpoint(AgentEndpoint::parse(&spire.endpoint()).unwrap())
        .hint(Some(hint))
        .build()
        .await
        .unwrap()
}

struct GoOutcome {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn go(peer: &Path, spire: &Spire, args: &[&str]) -> GoOutcome {
    let out = Command::new(peer)
        .args(args)
        .env("SPIFFE_ENDPOINT_SOCKET", spire.endpoint())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    GoOutcome {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
    }
}

/// A Go gRPC client on `grpccredentials.MTLSClientCredentials` calls our tonic server: each
/// side sees the other's ID; our authorizer refuses the intruder, go-spiffe's
/// `AuthorizeID` refuses our server when it expects another ID, `AuthorizeMemberOf` accepts it.
#[test]
fn go_grpccredentials_client_calls_our_tonic_server() {
    let peer = go_peer();
    let spire = spire_with_trio();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (addr, server) = rt.block_on(async {
        let source = spire_source(&spire, "server").await;
        tonic_server(&source, Authorizer::exact(id(CLIENT)), None).await
    });
    let addr = addr.to_string();
    let call = |args: &[&str]| {
        let mut all = vec!["grpc-client", "--connect", &addr];
        all.extend_from_slice(args);
        go(&peer, &spire, &all)
    };

    let ok = call(&["--hint", "client", "--expect", SERVER]);
    assert!(ok.ok, "{}", ok.stderr);
    assert_eq!(
        ok.stdout,
        format!("status=SERVING server={SERVER} caller={CLIENT}")
    );

    let intruder = call(&["--hint", "intruder", "--expect", SERVER]);
    assert!(!intruder.ok, "the intruder was served: {}", intruder.stdout);
    assert_eq!(intruder.stderr.lines().count(), 1, "{}", intruder.stderr);

    let wrong = call(&["--hint", "client", "--expect", SOMEONE_ELSE]);
    assert!(
        !wrong.ok,
        "an unexpected server was accepted: {}",
        wrong.stdout
    );
    assert!(wrong.stderr.contains("unexpected ID"), "{}", wrong.stderr);

    let td = call(&["--hint", "client", "--expect-td", TD]);
    assert!(td.ok, "{}", td.stderr);
    assert!(!server.is_finished());
    server.abort();
}

/// A Go gRPC server on `grpccredentials.MTLSServerCredentials`, killed (by pid) on drop.
struct GoServer {
    child: Child,
    stdout: BufReader<ChildStdout>,
    addr: SocketAddr,
}

impl GoServer {
    fn start(peer: &Path, spire: &Spire, args: &[&str]) -> GoServer {
        let mut child = Command::new(peer)
            .args(["grpc-server", "--listen", "127.0.0.1:0"])
            .args(args)
            .env("SPIFFE_ENDPOINT_SOCKET", spire.endpoint())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let addr = Self::line(&mut stdout);
        let addr = addr
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("Go server did not start: {addr:?}"))
            .parse()
            .unwrap();
        GoServer {
            child,
            stdout,
            addr,
        }
    }

    fn line(stdout: &mut BufReader<ChildStdout>) -> String {
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        line.trim().to_owned()
    }
}

impl Drop for GoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Our tonic client over the connector calls a Go gRPC server on
/// `grpccredentials.MTLSServerCredentials`: each side sees the other's ID; our authorizer
/// refuses the Go server when it expects another ID, go-spiffe's `AuthorizeID` refuses our
/// intruder.
#[test]
fn our_tonic_client_calls_a_go_grpccredentials_server() {
    let peer = go_peer();
    let spire = spire_with_trio();
    let mut server = GoServer::start(&peer, &spire, &["--hint", "server", "--allow", CLIENT]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (client, intruder) = rt.block_on(async {
        (
            spire_source(&spire, "client").await,
            spire_source(&spire, "intruder").await,
        )
    });
    let addr = server.addr;

    let ok = rt.block_on(async {
        let channel = channel(&client, Authorizer::exact(id(SERVER)), addr)
            .await
            .unwrap();
        check(channel).await.unwrap()
    });
    assert_eq!(ok.status, i32::from(ServingStatus::Serving));
    assert_eq!(ok.caller, CLIENT, "the Go server's spiffe-id header");
    assert_eq!(
        GoServer::line(&mut server.stdout),
        format!("call from {CLIENT}")
    );

    let wrong = rt
        .block_on(channel(&client, Authorizer::exact(id(SOMEONE_ELSE)), addr))
        .err()
        .map(|e| chain(&e))
        .expect("an unexpected Go server was accepted");
    assert!(
        wrong.contains(&format!("peer {SERVER} is not authorized")),
        "{wrong}"
    );

    let refused = rt.block_on(async {
        match channel(&intruder, Authorizer::exact(id(SERVER)), addr).await {
            Ok(channel) => check(channel).await.err().map(|e| chain(&e)),
            Err(e) => Some(chain(&e)),
        }
    });
    assert!(refused.is_some(), "the Go server served the intruder");

    let td = rt.block_on(async {
        check(
            channel(&client, Authorizer::member_of(TD.parse().unwrap()), addr)
                .await
                .unwrap(),
        )
        .await
        .unwrap()
    });
    assert_eq!(td.caller, CLIENT);
    // The next call the Go handler saw is this one: neither the intruder's nor the refused
    // channel's reached it.
    assert_eq!(
        GoServer::line(&mut server.stdout),
        format!("call from {CLIENT}")
    );
}

/// On a real SPIRE rotating a 30 s client SVID (at about half its life): one tonic channel
/// between our client and our server keeps answering every call, and once the server recycles
/// the connection its next one presents the SVID SPIRE rotated.
#[test]
fn a_tonic_channel_keeps_working_across_a_spire_rotation() {
    let spire = Spire::start();
    spire.create_entry(&Entry::new(SERVER).entry_id("00-server").hint("server"));
    spire.create_entry(
        &Entry::new(CLIENT)
            .entry_id("10-client")
            .hint("client")
            .x509_ttl(30),
    );
    spire.wait_for_svid(Duration::from_secs(60));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let server_source = spire_source(&spire, "server").await;
        let client_source = spire_source(&spire, "client").await;
        let (addr, server) = tonic_server(
            &server_source,
            Authorizer::exact(id(CLIENT)),
            Some(Duration::from_secs(2)),
        )
        .await;
        let channel = channel(&client_source, Authorizer::exact(id(SERVER)), addr)
            .await
            .unwrap();
        let first = check(channel.clone()).await.unwrap().serial;
        let deadline = Instant::now() + Duration::from_secs(75);
        let mut calls = 1;
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let next = check(channel.clone())
                .await
                .unwrap_or_else(|e| panic!("call {calls} failed during the rotation: {e}"));
            calls += 1;
            assert_eq!(next.caller, CLIENT);
            if next.serial != first {
                break;
            }
            assert!(Instant::now() < deadline, "no rotation within 75 s");
        }
        server.abort();
    });
}
