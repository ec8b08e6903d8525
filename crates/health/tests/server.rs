//! Real HTTP/1.1 over loopback against a bound `HealthServer`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use std::sync::Arc;

use spiffe_helper_health::{HealthError, HealthPaths, HealthServer, HealthState, TestHook};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const ID: &str = "spiffe://example.org/app";

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// One request on a fresh connection with `Connection: close`; reads to EOF.
async fn request(addr: SocketAddr, method: &str, path: &str, extra: &[(&str, &str)]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n");
    for (k, v) in extra {
        req = req + k + ": " + v + "\r\n";
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    parse(&raw)
}

fn parse(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn paths() -> HealthPaths {
    HealthPaths {
        liveness: "/live".into(),
        readiness: "/ready".into(),
    }
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A hook that reports each request entering the handler, then holds it for `hold`.
fn slow_handler(hold: Duration) -> (TestHook, mpsc::UnboundedReceiver<()>) {
    let (entered, rx) = mpsc::unbounded_channel();
    let hook: TestHook = Arc::new(move || {
        let entered = entered.clone();
        Box::pin(async move {
            entered.send(()).unwrap();
            tokio::time::sleep(hold).await;
        })
    });
    (hook, rx)
}

type Serving = (
    SocketAddr,
    CancellationToken,
    JoinHandle<Result<(), HealthError>>,
);

fn spawn(server: HealthServer) -> Serving {
    let addr = server.local_addr();
    let token = CancellationToken::new();
    let task = tokio::spawn(server.serve(token.clone()));
    (addr, token, task)
}

/// "At once" for a loaded 2-core machine, and far below the 60 s handler and 120 s drain the
/// shutdown tests tell it from.
const PROMPT: Duration = Duration::from_secs(10);

async fn start(state: HealthState) -> Serving {
    spawn(
        HealthServer::bind(loopback(), paths(), state)
            .await
            .unwrap(),
    )
}

async fn port_closed(addr: SocketAddr, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(addr).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn readiness_is_503_before_the_first_write_and_200_after() {
    let jwt = PathBuf::from("/certs/token.jwt");
    let state = HealthState::new(true, vec![jwt.clone()], None);
    let (addr, token, task) = start(state.clone()).await;

    let before = request(addr, "GET", "/ready", &[]).await;
    assert_eq!(before.status, 503);
    assert_eq!(before.header("content-type"), Some("application/json"));
    let body = before.json();
    assert_eq!(body["status"], "Service Unavailable");
    assert_eq!(
        body["health"]["file_write_statuses"]["x509_write_status"],
        "unwritten"
    );
    assert_eq!(request(addr, "GET", "/live", &[]).await.status, 200);

    let not_after = SystemTime::now() + Duration::from_secs(3600);
    state.x509_written(ID, not_after);
    assert_eq!(
        request(addr, "GET", "/ready", &[]).await.status,
        503,
        "JWT missing"
    );
    state.jwt_svid_written(&jwt, SystemTime::now() + Duration::from_secs(300));
    let after = request(addr, "GET", "/ready?verbose=1", &[]).await;
    assert_eq!(after.status, 200);
    let body = after.json();
    assert_eq!(body["status"], "OK");
    assert_eq!(
        body["health"]["file_write_statuses"],
        serde_json::json!({"x509_write_status": "written",
                           "jwt_write_status": {"/certs/token.jwt": "written"}})
    );
    assert_eq!(body["spiffe_id"], ID);

    // A failed write makes liveness 503; the next good write brings it back.
    state.x509_write_failed();
    let live = request(addr, "GET", "/live", &[]).await;
    assert_eq!(live.status, 503);
    assert_eq!(
        live.json()["health"]["file_write_statuses"]["x509_write_status"],
        "failed"
    );
    state.x509_written(ID, not_after + Duration::from_secs(1800));
    assert_eq!(request(addr, "GET", "/live", &[]).await.status, 200);

    token.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn unknown_paths_are_404_and_other_methods_405() {
    let (addr, token, task) = start(HealthState::new(false, vec![], None)).await;
    // The configured paths replace the defaults: /health/live is unknown here.
    for path in ["/", "/health/live", "/live/", "/livez", "/metricsx"] {
        assert_eq!(request(addr, "GET", path, &[]).await.status, 404, "{path}");
    }
    let post = request(addr, "POST", "/live", &[("Content-Length", "0")]).await;
    assert_eq!(post.status, 405);
    assert_eq!(post.header("allow"), Some("GET, HEAD"));
    assert_eq!(request(addr, "DELETE", "/metrics", &[]).await.status, 405);
    token.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn head_has_the_get_status_and_length_but_no_body() {
    let state = HealthState::new(true, vec![], None);
    let (addr, token, task) = start(state.clone()).await;
    for (path, status) in [("/ready", 503), ("/live", 200), ("/metrics", 200)] {
        let get = request(addr, "GET", path, &[]).await;
        let head = request(addr, "HEAD", path, &[]).await;
        assert_eq!(get.status, status, "{path}");
        assert_eq!(head.status, status, "{path}");
        assert!(!get.body.is_empty());
        assert!(head.body.is_empty(), "HEAD {path} sent a body");
        assert_eq!(
            head.header("content-length"),
            Some(get.body.len().to_string().as_str())
        );
        assert_eq!(head.header("content-type"), get.header("content-type"));
    }
    token.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_expiry_that_was_set() {
    let jwt = PathBuf::from("/certs/token.jwt");
    let state = HealthState::new(true, vec![jwt.clone()], None);
    let (addr, token, task) = start(state.clone()).await;
    let not_after = UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    state.x509_written(ID, not_after);
    state.x509_written(ID, not_after + Duration::from_secs(60));
    state.jwt_svid_written(&jwt, UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    state.jwt_svid_write_failed(&jwt);
    state.agent_connected(true);

    let reply = request(addr, "GET", "/metrics", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let text = reply.text();
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
            .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
    };
    for (name, kind) in [
        ("spiffe_helper_x509_svid_expiry_timestamp_seconds", "gauge"),
        ("spiffe_helper_jwt_svid_expiry_timestamp_seconds", "gauge"),
        ("spiffe_helper_x509_svid_rotations_total", "counter"),
        ("spiffe_helper_write_failures_total", "counter"),
        ("spiffe_helper_agent_reconnects_total", "counter"),
        ("spiffe_helper_signals_sent_total", "counter"),
        ("spiffe_helper_signals_failed_total", "counter"),
        ("spiffe_helper_child_starts_total", "counter"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {name} {kind}\n")),
            "{name} {kind} in\n{text}"
        );
    }
    // Every sample line is `name{labels} number`.
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let number = line.rsplit(' ').next().unwrap();
        assert!(number.parse::<f64>().is_ok(), "bad sample line {line:?}");
        assert!(line.starts_with("spiffe_helper_"), "{line:?}");
    }
    assert_eq!(
        value("spiffe_helper_x509_svid_expiry_timestamp_seconds"),
        Some(1_900_000_060.0)
    );
    assert!(text.contains(
        "spiffe_helper_jwt_svid_expiry_timestamp_seconds{path=\"/certs/token.jwt\"} 1800000000\n"
    ));
    assert_eq!(value("spiffe_helper_x509_svid_rotations_total"), Some(1.0));
    assert!(text.contains("spiffe_helper_write_failures_total{output=\"jwt_svid\"} 1\n"));

    // Prometheus asks for OpenMetrics and gets it, with the EOF trailer.
    let om = request(
        addr,
        "GET",
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )],
    )
    .await;
    assert_eq!(
        om.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(
        om.text()
            .contains("# TYPE spiffe_helper_x509_svid_expiry_timestamp_seconds gauge\n")
    );
    assert!(om.text().ends_with("# EOF\n"));
    token.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_taken_port_fails_bind_with_the_port_in_the_message() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = holder.local_addr().unwrap();
    let err = HealthServer::bind(addr, paths(), HealthState::new(true, vec![], None))
        .await
        .unwrap_err();
    let HealthError::Bind { port, .. } = &err else {
        panic!("unexpected {err:?}")
    };
    assert_eq!(*port, addr.port());
    let message = err.to_string();
    assert!(
        message.contains(&format!("port {}", addr.port())),
        "{message}"
    );
    assert!(message.contains("already in use"), "{message}");
    assert!(message.contains("health_checks.bind_port"), "{message}");
}

#[tokio::test]
async fn ipv6_literals_bind_and_bind_errors_name_the_address_and_port() {
    // [::1]: serves like 127.0.0.1 (skipped where the kernel has no IPv6 loopback).
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let v6: SocketAddr = "[::1]:0".parse().unwrap();
        let server = HealthServer::bind(v6, paths(), HealthState::new(false, vec![], None))
            .await
            .unwrap();
        let addr = server.local_addr();
        assert!(addr.is_ipv6(), "{addr}");
        let (_, stop, task) = spawn(server);
        assert_eq!(request(addr, "GET", "/live", &[]).await.status, 200);
        stop.cancel();
        let _ = task.await;

        let holder = std::net::TcpListener::bind("[::1]:0").unwrap();
        let taken = holder.local_addr().unwrap();
        let err = HealthServer::bind(taken, paths(), HealthState::new(true, vec![], None))
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains(&format!("[::1]:{}", taken.port())),
            "{message}"
        );
    }
    // An address this machine does not have (TEST-NET-1; bind only, nothing is sent).
    let foreign: SocketAddr = "192.0.2.1:18080".parse().unwrap();
    let err = HealthServer::bind(foreign, paths(), HealthState::new(true, vec![], None))
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("192.0.2.1:18080"), "{message}");
    assert!(message.contains("port 18080"), "{message}");
    assert!(message.contains("health_checks.bind_address"), "{message}");
}

#[tokio::test]
async fn cancel_closes_the_port_and_lets_an_in_flight_request_finish() {
    // The handler outlives the port check by seconds, and the drain timeout the handler by
    // far more, also on a loaded machine.
    let delay = Duration::from_secs(3);
    let (hook, mut entered) = slow_handler(delay);
    let server = HealthServer::bind(loopback(), paths(), HealthState::new(false, vec![], None))
        .await
        .unwrap()
        .with_test_hook(hook)
        .with_drain_timeout(Duration::from_secs(60));
    let (addr, token, task) = spawn(server);
    let started = Instant::now();
    let slow = tokio::spawn(request(addr, "GET", "/ready", &[]));
    entered.recv().await.unwrap();
    token.cancel();

    assert!(
        port_closed(addr, Duration::from_millis(1500)).await,
        "port still accepting"
    );
    assert!(
        !slow.is_finished(),
        "the slow request should still be in flight"
    );
    let reply = slow.await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["status"], "OK");
    assert!(started.elapsed() >= delay);
    tokio::time::timeout(PROMPT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn the_drain_wait_is_bounded() {
    let (hook, mut entered) = slow_handler(Duration::from_secs(60));
    let drain = Duration::from_secs(1);
    let server = HealthServer::bind(loopback(), paths(), HealthState::new(false, vec![], None))
        .await
        .unwrap()
        .with_test_hook(hook)
        .with_drain_timeout(drain);
    let (addr, token, task) = spawn(server);
    let stuck = tokio::spawn(async move {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.map(|_| buf)
    });
    entered.recv().await.unwrap();
    let cancelled_at = Instant::now();
    token.cancel();
    // Ends after the drain timeout, not when the 60 s handler would.
    tokio::time::timeout(PROMPT, task)
        .await
        .expect("shutdown ends at the drain timeout")
        .unwrap()
        .unwrap();
    let waited = cancelled_at.elapsed();
    assert!(waited >= drain, "stopped draining after {waited:?}");
    // The stuck request's connection was closed without an answer.
    let got = tokio::time::timeout(PROMPT, stuck).await.unwrap().unwrap();
    assert!(got.map_or(true, |b| b.is_empty()));
}

#[tokio::test]
async fn idle_keep_alive_connections_do_not_hold_up_shutdown() {
    // A drain timeout far beyond PROMPT: a shutdown that waited for the idle connection would
    // wait for all of it.
    let server = HealthServer::bind(loopback(), paths(), HealthState::new(false, vec![], None))
        .await
        .unwrap()
        .with_drain_timeout(Duration::from_secs(120));
    let (addr, token, task) = spawn(server);
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    token.cancel();
    tokio::time::timeout(PROMPT, task)
        .await
        .expect("waited for an idle connection")
        .unwrap()
        .unwrap();
    assert_eq!(
        idle.read(&mut buf).await.unwrap(),
        0,
        "idle connection should be closed"
    );
}
