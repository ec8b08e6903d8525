//! The client against a real SPIRE v1.13.3 server + agent (one pair per test, started by the
//! testkit in a short /tmp dir). All real-SPIRE tests live in this one binary; they run in
//! parallel, each with its own SPIRE.
//!
//! The harness is synchronous (it runs the SPIRE CLI), so the tests use a multi-threaded runtime
//! and call it directly: only one worker is blocked while a CLI command runs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed setup step should panic"
)]

use std::path::Path;
use std::time::{Duration, Instant};

use spiffe_helper_testkit::certs::TestCa;
use spiffe_helper_testkit::pb;
use spiffe_helper_testkit::spire::{Entry, Spire, SpireOptions};
use spiffe_workload_client::{
    Backoff, CancellationToken, Endpoint, Error, StatusCode, TrustDomain, WatchEvent,
    WorkloadApiClient, X509Context,
};
use tokio_stream::{Stream, StreamExt};
use x509_parser::prelude::{FromDer, X509Certificate};

const PROPAGATION: Duration = Duration::from_secs(30);

fn client(spire: &Spire) -> WorkloadApiClient {
    WorkloadApiClient::new(Endpoint::parse(&spire.endpoint()).unwrap())
}

fn id(spire: &Spire, path: &str) -> String {
    format!("spiffe://{}{path}", spire.trust_domain())
}

/// Waits (up to `within`) for the first stream item that satisfies `pred`.
async fn wait_for<T, S, F>(stream: &mut S, within: Duration, mut pred: F) -> T
where
    S: Stream<Item = Result<T, Error>> + Unpin,
    F: FnMut(&T) -> bool,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let item = tokio::time::timeout_at(deadline, stream.next())
            .await
            .unwrap_or_else(|_| panic!("condition not met within {within:?}"))
            .expect("stream open");
        let value = item.expect("stream item");
        if pred(&value) {
            return value;
        }
    }
}

fn verify(child: &[u8], issuer: &[u8]) -> bool {
    let (_, child) = X509Certificate::from_der(child).unwrap();
    let (_, issuer) = X509Certificate::from_der(issuer).unwrap();
    child.verify_signature(Some(issuer.public_key())).is_ok()
}

fn pem_ders(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap();
    x509_parser::pem::Pem::iter_from_buffer(&bytes)
        .map(|p| p.unwrap().contents)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_matches_the_registration_and_the_cli() {
    let spire = Spire::start();
    let workload = id(&spire, "/workload");
    spire.create_entry(&Entry::new(&workload));
    spire.wait_for_svid(PROPAGATION);

    let ctx = client(&spire).fetch_x509_context().await.unwrap();
    let svid = ctx.default_svid();
    assert_eq!(svid.spiffe_id().to_string(), workload);
    // SPIRE's own CA signs directly: the chain is the leaf, and it verifies against the bundle.
    assert_eq!(svid.cert_chain().len(), 1);
    assert!(svid.bundle().iter().any(|root| verify(svid.leaf(), root)));
    assert!(svid.not_after() > std::time::SystemTime::now());

    // Cross-check with SPIRE's own CLI: same leaf (the agent caches the SVID), same bundle, and
    // the key we hold is the key the CLI writes.
    let out = tempfile::tempdir().unwrap();
    spire.cli_fetch_x509(out.path());
    assert_eq!(pem_ders(&out.path().join("svid.0.pem")), svid.cert_chain());
    assert_eq!(pem_ders(&out.path().join("bundle.0.pem")), svid.bundle());
    let key = pem_ders(&out.path().join("svid.0.key"));
    assert_eq!(key, [svid.private_key().der().to_vec()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn chain_carries_the_intermediate_with_an_upstream_authority() {
    let spire = Spire::start_with(SpireOptions {
        upstream_authority: true,
        ..SpireOptions::default()
    });
    spire.create_entry(&Entry::new(id(&spire, "/chain")));
    spire.wait_for_svid(PROPAGATION);
    let ctx = client(&spire).fetch_x509_context().await.unwrap();
    let svid = ctx.default_svid();
    let [leaf, intermediate] = svid.cert_chain() else {
        panic!(
            "expected leaf + intermediate, got {} certs",
            svid.cert_chain().len()
        );
    };
    assert!(verify(leaf, intermediate));
    assert!(svid.bundle().iter().any(|root| verify(intermediate, root)));
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_sees_a_rotation_within_45s() {
    let spire = Spire::start();
    spire.create_entry(&Entry::new(id(&spire, "/rotating")).x509_ttl(30));
    spire.wait_for_svid(PROPAGATION);
    let mut stream = client(&spire).watch_x509_context().await.unwrap();
    let first = stream.next().await.unwrap().unwrap();
    let serial = first.default_svid().serial_hex();
    let started = Instant::now();
    let rotated = wait_for(&mut stream, Duration::from_secs(45), |ctx: &X509Context| {
        ctx.default_svid().serial_hex() != serial
    })
    .await;
    eprintln!("rotation after {:?}", started.elapsed());
    assert!(rotated.default_svid().not_after() > first.default_svid().not_after());
}

#[tokio::test(flavor = "multi_thread")]
async fn two_entries_arrive_in_entry_id_order_with_hints() {
    let spire = Spire::start();
    // Created in reverse order: the agent sorts by entry ID, not by creation time.
    spire.create_entry(
        &Entry::new(id(&spire, "/b"))
            .entry_id("10-b")
            .hint("external"),
    );
    spire.create_entry(
        &Entry::new(id(&spire, "/a"))
            .entry_id("00-a")
            .hint("internal"),
    );
    spire.wait_for_svid(PROPAGATION);
    let mut stream = client(&spire).watch_x509_context().await.unwrap();
    let ctx = wait_for(&mut stream, PROPAGATION, |ctx: &X509Context| {
        ctx.svids().len() == 2
    })
    .await;
    let got: Vec<(String, &str)> = ctx
        .svids()
        .iter()
        .map(|s| (s.spiffe_id().to_string(), s.hint()))
        .collect();
    assert_eq!(
        got,
        [
            (id(&spire, "/a"), "internal"),
            (id(&spire, "/b"), "external")
        ]
    );
    assert_eq!(ctx.default_svid().hint(), "internal");
    assert_eq!(
        ctx.svid_with_hint("external").unwrap().spiffe_id().path(),
        "/b"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_svid_carries_both_audiences_and_validates() {
    let spire = Spire::start();
    let workload = id(&spire, "/jwt");
    spire.create_entry(&Entry::new(&workload));
    spire.wait_for_svid(PROPAGATION);
    let client = client(&spire);
    let subject = workload.parse().unwrap();
    let svids = client
        .fetch_jwt_svids(&["a".into(), "b".into()], Some(&subject))
        .await
        .unwrap();
    let [svid] = svids.as_slice() else {
        panic!("expected one JWT-SVID, got {}", svids.len());
    };
    assert_eq!(svid.spiffe_id().to_string(), workload);
    assert_eq!(svid.audience(), ["a", "b"]);
    let lifetime = svid
        .expiry()
        .duration_since(std::time::SystemTime::now())
        .unwrap();
    assert!(lifetime > Duration::from_secs(200) && lifetime <= Duration::from_secs(300));

    let validated = client
        .validate_jwt_svid(svid.token().as_str(), "a")
        .await
        .unwrap();
    assert_eq!(validated.spiffe_id.to_string(), workload);
    assert_eq!(validated.claims["sub"], workload.as_str());
    let err = client
        .validate_jwt_svid(svid.token().as_str(), "c")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(StatusCode::InvalidArgument), "{err}");
    let err = client.fetch_jwt_svids(&[], None).await.unwrap_err();
    assert_eq!(err.code(), Some(StatusCode::InvalidArgument), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bundles_include_own_and_later_federated_trust_domains() {
    let spire = Spire::start();
    spire.create_entry(&Entry::new(id(&spire, "/plain")).entry_id("00-plain"));
    spire.wait_for_svid(PROPAGATION);
    let client = client(&spire);
    let own: TrustDomain = spire.trust_domain().parse().unwrap();
    let other: TrustDomain = "other.org".parse().unwrap();

    let jwt = client.fetch_jwt_bundles().await.unwrap();
    assert!(
        jwt.bundles().contains_key(&own),
        "{:?}",
        jwt.bundles().keys()
    );
    let mut contexts = client.watch_x509_context().await.unwrap();
    let mut bundles = client.watch_x509_bundles().await.unwrap();
    let first = contexts.next().await.unwrap().unwrap();
    assert!(first.federated_bundles().is_empty());
    let initial = bundles.next().await.unwrap().unwrap();
    assert_eq!(initial.bundles().keys().collect::<Vec<_>>(), [&own]);

    let foreign = TestCa::root("other.org");
    spire.set_federated_bundle("spiffe://other.org", &foreign.pem());
    spire.create_entry(
        &Entry::new(id(&spire, "/federated"))
            .entry_id("10-fed")
            .federates_with("spiffe://other.org"),
    );
    let ctx = wait_for(&mut contexts, PROPAGATION, |c: &X509Context| {
        c.federated_bundles().contains_key(&other)
    })
    .await;
    assert_eq!(ctx.federated_bundles()[&other], [foreign.der()]);
    let set = wait_for(
        &mut bundles,
        PROPAGATION,
        |b: &spiffe_workload_client::X509BundleSet| b.bundles().contains_key(&other),
    )
    .await;
    assert!(set.bundles().contains_key(&own));
    assert_eq!(set.get(&other).unwrap().authorities(), [foreign.der()]);
    let jwt = client.fetch_jwt_bundles().await.unwrap();
    assert!(jwt.bundles().contains_key(&own));
    // SPIRE also lists the federated domain here, with a JWKS that has no JWT authorities.
    if let Some(jwks) = jwt.bundles().get(&other) {
        eprintln!("federated JWKS: {}", String::from_utf8_lossy(jwks));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unregistered_caller_gets_retryable_permission_denied() {
    let spire = Spire::start();
    let client = client(&spire);
    let err = client.fetch_x509_context().await.unwrap_err();
    assert!(err.is_permission_denied(), "{err:?}");
    assert!(err.is_retryable());
    eprintln!("unregistered: {err}");
    let err = client
        .fetch_jwt_svids(&["a".into()], None)
        .await
        .unwrap_err();
    assert!(err.is_permission_denied(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn retrying_watch_survives_agent_sigkill_and_restart() {
    let mut spire = Spire::start();
    spire.create_entry(&Entry::new(id(&spire, "/survivor")));
    spire.wait_for_svid(PROPAGATION);
    let shutdown = CancellationToken::new();
    let watch = client(&spire).watch_x509_context_retrying(
        Backoff::new(Duration::from_millis(100), Duration::from_secs(2)),
        shutdown.clone(),
    );
    tokio::pin!(watch);
    let before = match watch.next().await.unwrap().unwrap() {
        WatchEvent::Update(ctx) => ctx,
        other => panic!("expected the first snapshot, got {other:?}"),
    };

    spire.kill_agent();
    let error = match tokio::time::timeout(Duration::from_secs(10), watch.next()).await {
        Ok(Some(Ok(WatchEvent::Disconnected { error, .. }))) => error,
        other => panic!("expected a disconnect after SIGKILL, got {other:?}"),
    };
    eprintln!("agent killed, watch saw: {error}");
    spire.start_agent();
    let restarted = Instant::now();
    let after = loop {
        match tokio::time::timeout(Duration::from_secs(45), watch.next()).await {
            Ok(Some(Ok(WatchEvent::Update(ctx)))) => break ctx,
            Ok(Some(Ok(WatchEvent::Disconnected { error, .. }))) => assert!(error.is_retryable()),
            other => panic!("expected a fresh snapshot after restart, got {other:?}"),
        }
    };
    eprintln!(
        "fresh snapshot {:?} after agent restart",
        restarted.elapsed()
    );
    assert_eq!(
        after.default_svid().spiffe_id(),
        before.default_svid().spiffe_id()
    );
    shutdown.cancel();
    assert!(watch.next().await.is_none());
}

/// A call without `workload.spiffe.io: true`, made with tonic directly (the client always adds
/// the header): SPIRE refuses it with `InvalidArgument`.
#[tokio::test(flavor = "multi_thread")]
async fn raw_call_without_security_header_is_invalid_argument() {
    let spire = Spire::start();
    spire.create_entry(&Entry::new(id(&spire, "/raw")));
    spire.wait_for_svid(PROPAGATION);
    let socket = spire.socket_path().to_path_buf();
    let channel = tonic::transport::Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<pb::X509svidRequest, pb::X509svidResponse>::default();
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/SpiffeWorkloadAPI/FetchX509SVID");
    let status = match grpc
        .server_streaming(tonic::Request::new(pb::X509svidRequest {}), path, codec)
        .await
    {
        Err(status) => status,
        Ok(response) => match response.into_inner().message().await {
            Err(status) => status,
            Ok(msg) => panic!("SPIRE answered without the header: {msg:?}"),
        },
    };
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    eprintln!("no header: {}", status.message());
    // The same call through the client (which adds the header) succeeds.
    client(&spire).fetch_x509_context().await.unwrap();
}
