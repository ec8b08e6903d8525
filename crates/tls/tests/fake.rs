//! The TLS configs against sources fed by the in-process fake Workload API: handshakes in all
//! four modes, authorizer and trust-domain rejections, federation, expiry and rotation. The
//! same properties are proven against go-spiffe on a real SPIRE in `interop.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed setup step should panic"
)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use spiffe_helper_testkit::certs::{self, TestCa, TestSvid};
use spiffe_helper_testkit::fake::FakeAgent;
use spiffe_workload_client::{Endpoint, SpiffeId, WorkloadApiClient, X509Source};
use spiffe_workload_tls::{
    Authorizer, Error, SpiffeAcceptor, SpiffeConnector, mtls_client_config, mtls_server_config,
    tls_client_config, tls_server_config,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

const SERVER: &str = "spiffe://example.org/server";
const CLIENT: &str = "spiffe://example.org/client";

struct Agent {
    fake: FakeAgent,
    source: X509Source,
}

async fn agent(ca: &TestCa, svid: &TestSvid, federated: &[(&str, Vec<Vec<u8>>)]) -> Agent {
    let fake = FakeAgent::start().await;
    fake.push_x509(certs::x509_response(&[(svid, "")], &[ca.der()], federated));
    let client = WorkloadApiClient::new(Endpoint::parse(&fake.endpoint()).unwrap());
    let source = X509Source::builder().client(client).build().await.unwrap();
    Agent { fake, source }
}

fn id(s: &str) -> SpiffeId {
    s.parse().unwrap()
}

/// Serves one connection: answers `hello <peer>` and returns the accept result.
async fn serve_once(
    acceptor: SpiffeAcceptor,
) -> (
    SocketAddr,
    tokio::task::JoinHandle<Result<Option<SpiffeId>, Error>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let (stream, peer) = acceptor.accept(tcp).await?;
        let mut stream = BufReader::new(stream);
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        let who = peer
            .as_ref()
            .map_or("anonymous".to_owned(), ToString::to_string);
        stream
            .get_mut()
            .write_all(format!("hello {who}\n").as_bytes())
            .await
            .unwrap();
        stream.get_mut().shutdown().await.unwrap();
        Ok(peer)
    });
    (addr, task)
}

/// Connects, sends a line, returns the server's ID and answer.
async fn talk(connector: &SpiffeConnector, addr: SocketAddr) -> Result<(SpiffeId, String), Error> {
    let (stream, server) = connector.dial(addr).await?;
    let mut stream = BufReader::new(stream);
    stream.get_mut().write_all(b"hi\n").await.unwrap();
    let mut line = String::new();
    stream
        .read_line(&mut line)
        .await
        .map_err(Error::Handshake)?;
    Ok((server, line))
}

fn serial(source: &X509Source) -> String {
    source.svid().serial_hex()
}

#[tokio::test]
async fn mtls_both_ways_with_peer_ids() {
    let ca = TestCa::root("example.org");
    let server = agent(&ca, &ca.issue(SERVER, Duration::from_secs(3600)), &[]).await;
    let client = agent(&ca, &ca.issue(CLIENT, Duration::from_secs(3600)), &[]).await;
    let acceptor = SpiffeAcceptor::new(
        mtls_server_config(&server.source, Authorizer::exact(id(CLIENT))).unwrap(),
    );
    let connector = SpiffeConnector::new(
        mtls_client_config(&client.source, Authorizer::exact(id(SERVER))).unwrap(),
    );
    let (addr, task) = serve_once(acceptor).await;
    let (server_id, answer) = talk(&connector, addr).await.unwrap();
    assert_eq!(server_id, id(SERVER));
    assert_eq!(answer, format!("hello {CLIENT}\n"));
    assert_eq!(task.await.unwrap().unwrap(), Some(id(CLIENT)));
    drop((server.fake, client.fake));
}

#[tokio::test]
async fn each_side_rejects_a_peer_its_authorizer_does_not_allow() {
    let ca = TestCa::root("example.org");
    let server = agent(&ca, &ca.issue(SERVER, Duration::from_secs(3600)), &[]).await;
    let client = agent(&ca, &ca.issue(CLIENT, Duration::from_secs(3600)), &[]).await;

    // The server allows only /other.
    let acceptor = SpiffeAcceptor::new(
        mtls_server_config(
            &server.source,
            Authorizer::exact(id("spiffe://example.org/other")),
        )
        .unwrap(),
    );
    let connector =
        SpiffeConnector::new(mtls_client_config(&client.source, Authorizer::any()).unwrap());
    let (addr, task) = serve_once(acceptor).await;
    assert!(talk(&connector, addr).await.is_err());
    let err = task.await.unwrap().unwrap_err();
    assert!(err.is_unauthorized(), "{err}");
    assert!(err.to_string().contains(CLIENT), "{err}");

    // The client allows only a trust domain the server is not in.
    let acceptor =
        SpiffeAcceptor::new(mtls_server_config(&server.source, Authorizer::any()).unwrap());
    let connector = SpiffeConnector::new(
        mtls_client_config(
            &client.source,
            Authorizer::member_of("other.org".parse().unwrap()),
        )
        .unwrap(),
    );
    let (addr, task) = serve_once(acceptor).await;
    let err = talk(&connector, addr).await.unwrap_err();
    assert!(err.is_unauthorized(), "{err}");
    assert!(task.await.unwrap().is_err());
}

#[tokio::test]
async fn federated_peer_is_accepted_only_with_its_bundle() {
    let ca = TestCa::root("example.org");
    let other = TestCa::root("other.org");
    let server = agent(&ca, &ca.issue(SERVER, Duration::from_secs(3600)), &[]).await;
    let foreign = agent(
        &other,
        &other.issue("spiffe://other.org/client", Duration::from_secs(3600)),
        &[("example.org", vec![ca.der()])],
    )
    .await;
    let acceptor =
        SpiffeAcceptor::new(mtls_server_config(&server.source, Authorizer::any()).unwrap());
    let connector =
        SpiffeConnector::new(mtls_client_config(&foreign.source, Authorizer::any()).unwrap());
    let (addr, task) = serve_once(acceptor.clone()).await;
    assert!(talk(&connector, addr).await.is_err());
    let err = task.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::NoBundle { .. }), "{err}");

    // The agent now federates with other.org: the next handshake succeeds, same config.
    let mut updates = server.source.updates();
    updates.borrow_and_update();
    server.fake.push_x509(certs::x509_response(
        &[(&ca.issue(SERVER, Duration::from_secs(3600)), "")],
        &[ca.der()],
        &[("other.org", vec![other.der()])],
    ));
    updates.changed().await.unwrap();
    let (addr, task) = serve_once(acceptor).await;
    let (server_id, _) = talk(&connector, addr).await.unwrap();
    assert_eq!(server_id, id(SERVER));
    assert_eq!(
        task.await.unwrap().unwrap(),
        Some(id("spiffe://other.org/client"))
    );
}

#[tokio::test]
async fn rotation_is_served_to_the_next_handshake_and_expired_peers_are_rejected() {
    let ca = TestCa::root("example.org");
    let server = agent(&ca, &ca.issue(SERVER, Duration::from_secs(3600)), &[]).await;
    let client = agent(&ca, &ca.issue(CLIENT, Duration::from_secs(3600)), &[]).await;
    let acceptor =
        SpiffeAcceptor::new(mtls_server_config(&server.source, Authorizer::any()).unwrap());
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = seen.clone();
    let connector = SpiffeConnector::new(
        mtls_client_config(
            &client.source,
            Authorizer::from_fn(move |_, chain| {
                let (_, leaf) = x509_parser::parse_x509_certificate(chain[0].as_ref())
                    .map_err(|e| e.to_string())?;
                record.lock().unwrap().push(leaf.raw_serial_as_string());
                Ok(())
            }),
        )
        .unwrap(),
    );
    let (addr, task) = serve_once(acceptor.clone()).await;
    talk(&connector, addr).await.unwrap();
    task.await.unwrap().unwrap();
    let before = serial(&server.source);

    let mut updates = server.source.updates();
    updates.borrow_and_update();
    server.fake.push_x509(certs::x509_response(
        &[(&ca.issue(SERVER, Duration::from_secs(3600)), "")],
        &[ca.der()],
        &[],
    ));
    updates.changed().await.unwrap();
    let after = serial(&server.source);
    assert_ne!(before, after);
    let (addr, task) = serve_once(acceptor.clone()).await;
    talk(&connector, addr).await.unwrap();
    task.await.unwrap().unwrap();
    let seen: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.replace(':', ""))
        .collect();
    assert_eq!(seen.len(), 2);
    assert!(
        seen[0]
            .trim_start_matches('0')
            .eq_ignore_ascii_case(before.trim_start_matches('0')),
        "{seen:?} {before}"
    );
    assert!(
        seen[1]
            .trim_start_matches('0')
            .eq_ignore_ascii_case(after.trim_start_matches('0')),
        "{seen:?} {after}"
    );

    // A client whose SVID has expired is refused by the verifier.
    let now = SystemTime::now();
    let expired = ca.issue_with_validity(
        Some(CLIENT),
        now - Duration::from_secs(3600),
        now - Duration::from_secs(60),
    );
    let stale = agent(&ca, &expired, &[]).await;
    let connector =
        SpiffeConnector::new(mtls_client_config(&stale.source, Authorizer::any()).unwrap());
    let (addr, task) = serve_once(acceptor).await;
    assert!(talk(&connector, addr).await.is_err());
    let err = task.await.unwrap().unwrap_err();
    assert!(format!("{err}").contains("Expired"), "{err}");
}

#[tokio::test]
async fn one_way_tls_modes() {
    let ca = TestCa::root("example.org");
    let server = agent(&ca, &ca.issue(SERVER, Duration::from_secs(3600)), &[]).await;
    let client = agent(&ca, &ca.issue(CLIENT, Duration::from_secs(3600)), &[]).await;
    let acceptor = SpiffeAcceptor::new(tls_server_config(&server.source).unwrap());
    // A TLS client needs only bundles: any BundleSource will do, here the client's source.
    let connector = SpiffeConnector::new(
        tls_client_config(
            Arc::new(client.source.clone()),
            Authorizer::exact(id(SERVER)),
        )
        .unwrap(),
    );
    let (addr, task) = serve_once(acceptor).await;
    let (server_id, answer) = talk(&connector, addr).await.unwrap();
    assert_eq!(server_id, id(SERVER));
    assert_eq!(answer, "hello anonymous\n");
    assert_eq!(task.await.unwrap().unwrap(), None);

    // An mTLS server refuses a client that presents nothing.
    let acceptor =
        SpiffeAcceptor::new(mtls_server_config(&server.source, Authorizer::any()).unwrap());
    let (addr, task) = serve_once(acceptor).await;
    assert!(talk(&connector, addr).await.is_err());
    assert!(task.await.unwrap().is_err());
}
