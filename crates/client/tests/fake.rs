//! Faults SPIRE cannot be made to produce, against the in-process fake Workload API: malformed
//! and empty messages, streams cut or ended with a status, calls that never answer. Each must be
//! reported with the right classification, and the reconnecting watch must keep going exactly
//! where it should.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed setup step should panic"
)]

use std::time::{Duration, Instant, SystemTime};

use spiffe_helper_testkit::certs::{self, TestCa, TestSvid};
use spiffe_helper_testkit::fake::{Behaviour, FakeAgent};
use spiffe_helper_testkit::pb;
use spiffe_workload_client::{
    Backoff, CancellationToken, ConnectionState, Endpoint, Error, StatusCode, WatchEvent,
    WorkloadApiClient, X509Context, X509Source,
};
use tokio_stream::{Stream, StreamExt};
use tonic::Code;

const ID: &str = "spiffe://example.org/workload";
const STEP: Duration = Duration::from_secs(5);
/// An upper bound for "at once" that a loaded 2-core CI machine still meets, and far below the
/// 20 s delays and timeouts the tests below tell it from.
const PROMPT: Duration = Duration::from_secs(10);

fn client_for(fake: &FakeAgent) -> WorkloadApiClient {
    WorkloadApiClient::new(Endpoint::parse(&fake.endpoint()).unwrap())
}

fn fast_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(10), Duration::from_millis(100))
}

fn response(ca: &TestCa, svids: &[(&TestSvid, &str)]) -> pb::X509svidResponse {
    certs::x509_response(svids, &[ca.der()], &[])
}

fn valid(ca: &TestCa) -> (TestSvid, pb::X509svidResponse) {
    let svid = ca.issue(ID, Duration::from_secs(3600));
    let msg = response(ca, &[(&svid, "")]);
    (svid, msg)
}

async fn next<S: Stream + Unpin>(stream: &mut S) -> S::Item {
    tokio::time::timeout(STEP, stream.next())
        .await
        .expect("stream item within 5 s")
        .expect("stream still open")
}

fn update<T: std::fmt::Debug>(event: Result<WatchEvent<T>, Error>) -> T {
    match event {
        Ok(WatchEvent::Update(value)) => value,
        other => panic!("expected an update, got {other:?}"),
    }
}

fn disconnect<T: std::fmt::Debug>(event: Result<WatchEvent<T>, Error>) -> Error {
    match event {
        Ok(WatchEvent::Disconnected { error, .. }) => error,
        other => panic!("expected a disconnect, got {other:?}"),
    }
}

#[tokio::test]
async fn fetch_returns_validated_context() {
    let fake = FakeAgent::start().await;
    let ca = TestCa::root("example.org");
    let foreign = TestCa::root("other.org");
    let a = ca.issue("spiffe://example.org/a", Duration::from_secs(600));
    let b = ca.issue("spiffe://example.org/b", Duration::from_secs(600));
    fake.push_x509(certs::x509_response(
        &[(&a, "first"), (&b, "second")],
        &[ca.der()],
        &[("other.org", vec![foreign.der()])],
    ));
    let ctx = client_for(&fake).fetch_x509_context().await.unwrap();
    assert_eq!(ctx.svids().len(), 2);
    assert_eq!(
        ctx.default_svid().spiffe_id().to_string(),
        "spiffe://example.org/a"
    );
    assert_eq!(ctx.default_svid().cert_chain(), a.chain.as_slice());
    assert_eq!(
        ctx.default_svid().private_key().der(),
        a.key_pkcs8.as_slice()
    );
    assert_eq!(
        ctx.svid_with_hint("second").unwrap().spiffe_id().path(),
        "/b"
    );
    assert_eq!(ctx.default_svid().bundle(), [ca.der()]);
    let td = "other.org".parse().unwrap();
    assert_eq!(ctx.federated_bundles()[&td], vec![foreign.der()]);
    fake.shutdown().await;
}

#[tokio::test]
async fn bad_der_and_empty_svids_are_invalid_and_skipped_by_the_watch() {
    let fake = FakeAgent::start().await;
    let ca = TestCa::root("example.org");
    let (_, good) = valid(&ca);
    let mut bad_der = good.clone();
    bad_der.svids[0].x509_svid = b"\x30\x82garbage".to_vec();
    fake.push_x509(bad_der.clone());
    let client = client_for(&fake);

    let err = client.fetch_x509_context().await.unwrap_err();
    assert!(matches!(err, Error::InvalidResponse { .. }), "{err:?}");
    assert!(err.to_string().contains("not valid DER"), "{err}");
    assert!(err.is_retryable());

    fake.push_x509(pb::X509svidResponse::default());
    let err = client.fetch_x509_context().await.unwrap_err();
    assert!(matches!(err, Error::EmptyResponse), "{err:?}");

    // The watch reports both as Invalid, keeps the stream open, and delivers the next good one.
    let watch = client.watch_x509_context_retrying(fast_backoff(), CancellationToken::new());
    tokio::pin!(watch);
    let calls = fake.x509_calls();
    assert!(matches!(
        next(&mut watch).await,
        Ok(WatchEvent::Invalid(Error::EmptyResponse))
    ));
    fake.push_x509(bad_der);
    assert!(matches!(
        next(&mut watch).await,
        Ok(WatchEvent::Invalid(Error::InvalidResponse { .. }))
    ));
    fake.push_x509(good.clone());
    let ctx = update(next(&mut watch).await);
    assert_eq!(
        ctx.default_svid().leaf(),
        good.svids[0].x509_svid.as_slice()
    );
    assert_eq!(
        fake.x509_calls(),
        calls + 1,
        "no reconnect for invalid messages"
    );
    assert_eq!(ctx, client.fetch_x509_context().await.unwrap());
}

#[tokio::test]
async fn cut_stream_is_retried_and_the_watch_reconnects() {
    let fake = FakeAgent::start().await;
    let ca = TestCa::root("example.org");
    let (_, good) = valid(&ca);
    fake.push_x509(good);
    fake.set_behaviour(Behaviour::CutAfter(1));
    let client = client_for(&fake);

    // A single stream: one message, then the end (reported as end of stream or as a retryable
    // status, depending on how tonic sees the missing trailers).
    let mut stream = client.watch_x509_context().await.unwrap();
    next(&mut stream).await.unwrap();
    match tokio::time::timeout(STEP, stream.next()).await.unwrap() {
        None => eprintln!("cut stream: plain end of stream"),
        Some(Err(e)) => {
            eprintln!("cut stream: {e}");
            assert!(e.is_retryable(), "{e:?}");
        }
        Some(Ok(_)) => panic!("stream should have been cut"),
    }

    let watch = client.watch_x509_context_retrying(fast_backoff(), CancellationToken::new());
    tokio::pin!(watch);
    let first = update(next(&mut watch).await);
    let error = disconnect(next(&mut watch).await);
    assert!(error.is_retryable(), "{error:?}");
    let again = update(next(&mut watch).await);
    assert_eq!(first, again, "reconnect delivers a fresh full snapshot");
    assert!(fake.x509_calls() >= 3);
}

/// The watch's events with the time each arrived, read by a task of their own so that the
/// watch sees a disconnect when it happens (not when the test gets round to polling it).
fn timed_events(
    client: &WorkloadApiClient,
    backoff: Backoff,
    shutdown: &CancellationToken,
) -> TimedEvents {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let watch = client.watch_x509_context_retrying(backoff, shutdown.clone());
    tokio::spawn(async move {
        tokio::pin!(watch);
        while let Some(event) = watch.next().await {
            if tx.send((Instant::now(), event)).is_err() {
                break;
            }
        }
    });
    rx
}

type TimedEvents =
    tokio::sync::mpsc::UnboundedReceiver<(Instant, Result<WatchEvent<X509Context>, Error>)>;

async fn recv_timed(events: &mut TimedEvents) -> (Instant, Result<WatchEvent<X509Context>, Error>) {
    tokio::time::timeout(PROMPT, events.recv())
        .await
        .expect("a watch event within 10 s")
        .expect("the watch still runs")
}

/// An agent that restarts (its socket removed and bound again) is reconnected to as soon as the
/// socket is back, not when the backoff delay (here 20 s) runs out: a pod is Ready again about
/// a second after its agent returns (the time is printed; the bound is generous for CI).
#[tokio::test]
async fn watch_reconnects_as_soon_as_the_agent_socket_is_back() {
    let mut fake = FakeAgent::start().await;
    let ca = TestCa::root("example.org");
    let (_, msg) = valid(&ca);
    fake.push_x509(msg);
    let shutdown = CancellationToken::new();
    let slow = Backoff::exact(Duration::from_secs(20), Duration::from_secs(20));
    let mut events = timed_events(&client_for(&fake), slow, &shutdown);
    let first = update(recv_timed(&mut events).await.1);

    fake.restart(Duration::from_millis(700)).await;
    let back = Instant::now();
    let (_, event) = recv_timed(&mut events).await;
    let Ok(WatchEvent::Disconnected { retry_in, .. }) = event else {
        panic!("expected a disconnect, got {event:?}");
    };
    assert_eq!(retry_in, Duration::from_secs(20), "the announced delay");
    // Well before the 20 s delay runs out.
    let (at, event) = recv_timed(&mut events).await;
    assert_eq!(update(event), first, "the restarted agent's snapshot");
    let after = at.duration_since(back);
    eprintln!("reconnected {after:?} after the socket came back");
    assert!(
        after < PROMPT,
        "reconnected {after:?} after the socket came back"
    );
    shutdown.cancel();
}

/// The early reconnect is for a new socket only: an agent that ends the stream with its socket
/// in place is retried after the announced delay, as before.
#[tokio::test]
async fn watch_waits_the_delay_when_the_socket_did_not_change() {
    let fake = FakeAgent::start().await;
    let ca = TestCa::root("example.org");
    let (_, msg) = valid(&ca);
    fake.push_x509(msg);
    fake.set_behaviour(Behaviour::CutAfter(1));
    let shutdown = CancellationToken::new();
    let delay = Duration::from_millis(1500);
    let mut events = timed_events(&client_for(&fake), Backoff::exact(delay, delay), &shutdown);
    let (_, event) = recv_timed(&mut events).await;
    update(event);
    let (cut, event) = recv_timed(&mut events).await;
    disconnect(event);
    let (again, event) = recv_timed(&mut events).await;
    update(event);
    let waited = again.duration_since(cut);
    assert!(
        waited >= delay,
        "reconnected after {waited:?}, before the {delay:?} delay"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn unknown_status_is_retried_but_invalid_argument_ends_the_watch() {
    let fake = FakeAgent::start().await;
    let ca = TestCa::root("example.org");
    fake.push_x509(valid(&ca).1);
    fake.set_behaviour(Behaviour::EndWith(1, Code::Unknown));
    let client = client_for(&fake);
    let watch = client.watch_x509_context_retrying(fast_backoff(), CancellationToken::new());
    tokio::pin!(watch);
    update(next(&mut watch).await);
    let error = disconnect(next(&mut watch).await);
    assert_eq!(error.code(), Some(StatusCode::Unknown));

    fake.set_behaviour(Behaviour::EndWith(1, Code::InvalidArgument));
    // The reconnect after the Unknown picks up the new behaviour.
    update(next(&mut watch).await);
    let last = next(&mut watch).await.unwrap_err();
    assert_eq!(last.code(), Some(StatusCode::InvalidArgument));
    assert!(!last.is_retryable());
    assert!(
        tokio::time::timeout(STEP, watch.next())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn permission_denied_is_retried_until_an_identity_appears() {
    let fake = FakeAgent::start().await;
    fake.set_behaviour(Behaviour::Fail(
        Code::PermissionDenied,
        "no identity issued".into(),
    ));
    let client = client_for(&fake);
    let err = client.fetch_x509_context().await.unwrap_err();
    assert!(err.is_permission_denied() && err.is_retryable(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "workload API returned PermissionDenied: no identity issued"
    );

    let watch = client.watch_x509_context_retrying(fast_backoff(), CancellationToken::new());
    tokio::pin!(watch);
    for _ in 0..3 {
        assert!(disconnect(next(&mut watch).await).is_permission_denied());
    }
    let ca = TestCa::root("example.org");
    fake.push_x509(valid(&ca).1);
    fake.set_behaviour(Behaviour::Normal);
    loop {
        match next(&mut watch).await {
            Ok(WatchEvent::Update(_)) => break,
            Ok(WatchEvent::Disconnected { error, .. }) => assert!(error.is_permission_denied()),
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn unimplemented_fails_start_at_once() {
    let fake = FakeAgent::start().await;
    fake.set_behaviour(Behaviour::Fail(Code::Unimplemented, "nope".into()));
    // Not retried until the 20 s start-up timeout: the first answer ends it.
    let err = tokio::time::timeout(
        PROMPT,
        X509Source::start(client_for(&fake), Duration::from_secs(20)),
    )
    .await
    .expect("start ends before its 20 s timeout")
    .unwrap_err();
    assert_eq!(err.code(), Some(StatusCode::Unimplemented));
    assert_eq!(fake.x509_calls(), 1, "Unimplemented is not retried");
}

#[tokio::test]
async fn hanging_agent_is_bounded_by_caller_timeouts() {
    let fake = FakeAgent::start().await;
    fake.set_behaviour(Behaviour::Hang);
    let client = client_for(&fake);
    let fetch = tokio::time::timeout(Duration::from_millis(300), client.fetch_x509_context()).await;
    assert!(fetch.is_err(), "a hanging agent must not answer: {fetch:?}");
    let jwt = tokio::time::timeout(
        Duration::from_millis(300),
        client.fetch_jwt_svids(&["a".into()], None),
    )
    .await;
    assert!(jwt.is_err());

    // The start-up timeout ends the wait: not before it, and not never.
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(
        PROMPT,
        X509Source::start(client, Duration::from_millis(500)),
    )
    .await
    .expect("start returns after its 500 ms timeout")
    .unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(500),
        "gave up after {waited:?}"
    );
    match err {
        Error::Timeout { after, last_error } => {
            assert_eq!(after, Duration::from_millis(500));
            assert!(last_error.is_none(), "nothing came back: {last_error:?}");
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn start_times_out_with_the_last_error_when_no_agent_listens() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let client = WorkloadApiClient::new(Endpoint::Unix(socket.clone()));
    let err = client.fetch_x509_context().await.unwrap_err();
    assert!(matches!(err, Error::Transport { .. }) && err.is_retryable());
    assert_eq!(
        err.to_string(),
        format!("connecting to unix://{}", socket.display())
    );
    // The cause is kept as the source, with the OS error in it.
    let Error::Transport { source, .. } = &err else {
        unreachable!()
    };
    let io = source.io_error().expect("the OS error is in the chain");
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound, "{io}");
    let cause = std::error::Error::source(&err)
        .expect("a source")
        .to_string();
    assert_eq!(cause, "No such file or directory (os error 2)");
    // One line with both, once each.
    let text = err.report();
    assert_eq!(
        text,
        format!(
            "connecting to unix://{}: No such file or directory (os error 2)",
            socket.display()
        )
    );

    let err = X509Source::start(client, Duration::from_millis(400))
        .await
        .unwrap_err();
    let Error::Timeout {
        last_error: Some(last),
        ..
    } = err
    else {
        panic!("expected a timeout with a last error: {err:?}");
    };
    assert!(matches!(*last, Error::Transport { .. }), "{last:?}");
}

#[tokio::test]
async fn source_follows_rotations_and_survives_an_agent_restart() {
    // The socket's dir belongs to the test: both agents below use it, and it is removed at
    // the end (a fake's own dir would go with the first one).
    let dir = tempfile::Builder::new()
        .prefix("fk")
        .tempdir_in("/tmp")
        .unwrap();
    let socket = dir.path().join("agent.sock");
    let fake = FakeAgent::start_at(&socket).await;
    let ca = TestCa::root("example.org");
    let (first, msg) = valid(&ca);
    fake.push_x509(msg.clone());
    let source = X509Source::start_with_backoff(client_for(&fake), STEP, fast_backoff())
        .await
        .unwrap();
    assert_eq!(
        source.current().default_svid().cert_chain(),
        first.chain.as_slice()
    );
    let mut updates = source.subscribe();
    let mut connection = source.connection();
    assert_eq!(*connection.borrow(), ConnectionState::Connected);

    // An identical message does not notify; a rotated one does.
    fake.push_x509(msg);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), updates.changed())
            .await
            .is_err()
    );
    let (rotated, msg) = valid(&ca);
    fake.push_x509(msg);
    tokio::time::timeout(STEP, updates.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        updates.borrow_and_update().default_svid().cert_chain(),
        rotated.chain.as_slice()
    );

    // Agent goes away: state flips to Disconnected, the last context stays current.
    fake.shutdown().await;
    tokio::time::timeout(
        STEP,
        connection.wait_for(|s| *s != ConnectionState::Connected),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        source.current().default_svid().cert_chain(),
        rotated.chain.as_slice()
    );

    // A new agent on the same socket: the source reconnects and picks up its snapshot.
    let fake = FakeAgent::start_at(&socket).await;
    let (after, msg) = valid(&ca);
    fake.push_x509(msg);
    tokio::time::timeout(STEP, updates.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        source.current().default_svid().cert_chain(),
        after.chain.as_slice()
    );
    tokio::time::timeout(
        STEP,
        connection.wait_for(|s| *s == ConnectionState::Connected),
    )
    .await
    .unwrap()
    .unwrap();

    tokio::time::timeout(PROMPT, source.shutdown())
        .await
        .expect("shutdown does not wait for the open stream");
    fake.shutdown().await;
}

#[tokio::test]
async fn jwt_calls_validate_and_classify() {
    let fake = FakeAgent::start().await;
    let client = client_for(&fake);
    let err = client
        .fetch_jwt_svids(&["a".into()], None)
        .await
        .unwrap_err();
    assert!(err.is_permission_denied(), "{err:?}");

    let exp = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    let token = certs::jwt_token(ID, &["a", "b"], exp);
    fake.set_jwt_svids(pb::JwtsvidResponse {
        svids: vec![pb::Jwtsvid {
            spiffe_id: ID.into(),
            svid: token.clone(),
            hint: "h".into(),
        }],
    });
    let subject = ID.parse().unwrap();
    let svids = client
        .fetch_jwt_svids(&["a".into(), "b".into()], Some(&subject))
        .await
        .unwrap();
    assert_eq!(svids.len(), 1);
    assert_eq!(svids[0].token().as_str(), token);
    assert_eq!(svids[0].audience(), ["a", "b"]);
    assert_eq!(svids[0].expiry(), exp);
    assert_eq!(svids[0].hint(), "h");
    let request = fake.last_jwt_request().unwrap();
    assert_eq!(request.audience, ["a", "b"]);
    assert_eq!(request.spiffe_id, ID);

    fake.set_jwt_svids(pb::JwtsvidResponse {
        svids: vec![pb::Jwtsvid {
            spiffe_id: ID.into(),
            svid: "x.y.z".into(),
            hint: String::new(),
        }],
    });
    let err = client
        .fetch_jwt_svids(&["a".into()], None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidResponse { .. }), "{err:?}");
    fake.set_jwt_svids(pb::JwtsvidResponse { svids: vec![] });
    let err = client
        .fetch_jwt_svids(&["a".into()], None)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::EmptyResponse), "{err:?}");

    fake.set_validate(Err(tonic::Status::invalid_argument("token has expired")));
    let err = client.validate_jwt_svid(&token, "a").await.unwrap_err();
    assert_eq!(err.code(), Some(StatusCode::InvalidArgument));
    assert!(!err.is_retryable());
    fake.set_validate(Ok(pb::ValidateJwtsvidResponse {
        spiffe_id: ID.into(),
        claims: None,
    }));
    let validated = client.validate_jwt_svid(&token, "a").await.unwrap();
    assert_eq!(validated.spiffe_id.to_string(), ID);
}

#[tokio::test]
async fn bundle_streams_convert_and_reconnect() {
    let fake = FakeAgent::start().await;
    let ca = TestCa::root("example.org");
    let mut x509 = std::collections::HashMap::new();
    x509.insert("spiffe://example.org".to_owned(), ca.der());
    fake.push_x509_bundles(pb::X509BundlesResponse {
        crl: vec![],
        bundles: x509,
    });
    let mut jwt = std::collections::HashMap::new();
    jwt.insert(
        "spiffe://example.org".to_owned(),
        br#"{"keys":[]}"#.to_vec(),
    );
    fake.push_jwt_bundles(pb::JwtBundlesResponse { bundles: jwt });
    let client = client_for(&fake);
    let td = "example.org".parse().unwrap();
    assert_eq!(
        client
            .fetch_x509_bundles()
            .await
            .unwrap()
            .get(&td)
            .unwrap()
            .authorities(),
        [ca.der()]
    );
    let jwt = client.fetch_jwt_bundles().await.unwrap();
    assert_eq!(jwt.bundles()[&td], br#"{"keys":[]}"#);

    fake.set_behaviour(Behaviour::EndWith(1, Code::Unavailable));
    let shutdown = CancellationToken::new();
    let watch = client.watch_jwt_bundles_retrying(fast_backoff(), shutdown.clone());
    tokio::pin!(watch);
    assert_eq!(update(next(&mut watch).await), jwt);
    assert_eq!(
        disconnect(next(&mut watch).await).code(),
        Some(StatusCode::Unavailable)
    );
    assert_eq!(update(next(&mut watch).await), jwt);
    shutdown.cancel();
    assert!(
        tokio::time::timeout(STEP, watch.next())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn tcp_endpoints_work_and_report_refused_connections() {
    let fake = FakeAgent::start().await;
    let ca = TestCa::root("example.org");
    let (svid, msg) = valid(&ca);
    fake.push_x509(msg);
    // A TCP front for the fake's Unix socket.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let socket = fake.socket_path().to_path_buf();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut unix = tokio::net::UnixStream::connect(&socket).await.unwrap();
            tokio::spawn(async move {
                let _ = tokio::io::copy_bidirectional(&mut tcp, &mut unix).await;
            });
        }
    });
    let client = WorkloadApiClient::new(Endpoint::parse(&format!("tcp://{addr}")).unwrap());
    let ctx = client.fetch_x509_context().await.unwrap();
    assert_eq!(ctx.default_svid().cert_chain(), svid.chain.as_slice());

    // Nothing listens on a port that was just released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = WorkloadApiClient::new(Endpoint::Tcp(closed));
    let err = client.fetch_x509_context().await.unwrap_err();
    let text = err.report();
    assert!(text.contains(&format!("tcp://{closed}")), "{text}");
    assert!(text.contains("Connection refused"), "{text}");
    let Error::Transport { source, .. } = &err else {
        panic!("expected a transport error, got {err:?}");
    };
    assert_eq!(
        source.io_error().map(std::io::Error::kind),
        Some(std::io::ErrorKind::ConnectionRefused)
    );
    assert!(err.is_retryable());
}
