//! The `X509Source` builder against the fake Workload API: hint picker waiting at start-up,
//! shared clones, snapshots and bundles, health and prompt shutdown.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed setup step should panic"
)]

use std::time::Duration;

use spiffe_helper_testkit::certs::{self, TestCa};
use spiffe_helper_testkit::fake::FakeAgent;
use spiffe_workload_client::{
    Backoff, Endpoint, Error, TrustDomain, WorkloadApiClient, X509Source,
};

const STEP: Duration = Duration::from_secs(5);
/// Generous on a loaded 2-core machine; what a hung shutdown would never meet.
const SHUTDOWN: Duration = Duration::from_secs(10);

fn client_for(fake: &FakeAgent) -> WorkloadApiClient {
    WorkloadApiClient::new(Endpoint::parse(&fake.endpoint()).unwrap())
}

fn fast() -> Backoff {
    Backoff::exact(Duration::from_millis(10), Duration::from_millis(50))
}

#[tokio::test]
async fn hint_picker_waits_for_its_svid_and_serves_it() {
    let fake = FakeAgent::start().await;
    let ca = TestCa::root("example.org");
    let other = TestCa::root("other.org");
    let web = ca.issue("spiffe://example.org/web", Duration::from_secs(3600));
    let db = ca.issue("spiffe://example.org/db", Duration::from_secs(3600));
    // At first only the default SVID: the builder keeps waiting for the hint.
    fake.push_x509(certs::x509_response(&[(&web, "web")], &[ca.der()], &[]));
    let builder = X509Source::builder()
        .client(client_for(&fake))
        .hint(Some("db"))
        .backoff(fast())
        .startup_timeout(STEP);
    let building = tokio::spawn(builder.build());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!building.is_finished(), "no SVID with hint db yet");
    fake.push_x509(certs::x509_response(
        &[(&web, "web"), (&db, "db")],
        &[ca.der()],
        &[("other.org", vec![other.der()])],
    ));
    let source = building.await.unwrap().unwrap();
    assert_eq!(source.svid().spiffe_id().to_string(), db.spiffe_id);
    assert_eq!(
        source.current().default_svid().spiffe_id().to_string(),
        web.spiffe_id
    );

    let own: TrustDomain = "example.org".parse().unwrap();
    let fed: TrustDomain = "other.org".parse().unwrap();
    assert_eq!(source.bundle_for(&own).unwrap().authorities(), [ca.der()]);
    assert_eq!(
        source.bundle_set().get(&fed).unwrap().authorities(),
        [other.der()]
    );
    assert!(source.bundle_for(&"third.org".parse().unwrap()).is_none());
    assert!(source.is_healthy());

    // Clones share the state and the task; shutdown through one stops all, without waiting for
    // the agent's stream (which never ends on its own) to end.
    let clone = source.clone();
    tokio::time::timeout(SHUTDOWN, clone.shutdown())
        .await
        .expect("shutdown does not wait for the open stream");
    assert!(!source.is_healthy(), "stopped source is unhealthy");
    assert_eq!(source.svid().spiffe_id().to_string(), db.spiffe_id);
    fake.shutdown().await;
}

#[tokio::test]
async fn updates_fire_on_real_changes_and_skip_updates_without_the_hint() {
    let fake = FakeAgent::start().await;
    let ca = TestCa::root("example.org");
    let a = ca.issue("spiffe://example.org/a", Duration::from_secs(3600));
    let msg = certs::x509_response(&[(&a, "a")], &[ca.der()], &[]);
    fake.push_x509(msg.clone());
    let source = X509Source::builder()
        .client(client_for(&fake))
        .hint(Some("a"))
        .backoff(fast())
        .build()
        .await
        .unwrap();
    let mut updates = source.updates();
    updates.borrow_and_update();
    fake.push_x509(msg);
    let quiet = tokio::time::timeout(Duration::from_millis(300), updates.changed()).await;
    assert!(quiet.is_err(), "identical context does not notify");

    // An update lacking the hint is not applied.
    let b = ca.issue("spiffe://example.org/b", Duration::from_secs(3600));
    fake.push_x509(certs::x509_response(&[(&b, "b")], &[ca.der()], &[]));
    let quiet = tokio::time::timeout(Duration::from_millis(300), updates.changed()).await;
    assert!(quiet.is_err(), "update without the hint is skipped");
    assert_eq!(source.svid().spiffe_id().to_string(), a.spiffe_id);

    let rotated = ca.issue("spiffe://example.org/a", Duration::from_secs(3600));
    fake.push_x509(certs::x509_response(&[(&rotated, "a")], &[ca.der()], &[]));
    tokio::time::timeout(STEP, updates.changed())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        updates.borrow_and_update().svid().cert_chain(),
        rotated.chain.as_slice()
    );
    source.shutdown().await;
    fake.shutdown().await;
}

#[tokio::test]
async fn missing_hint_times_out_naming_it() {
    let fake = FakeAgent::start().await;
    let ca = TestCa::root("example.org");
    let a = ca.issue("spiffe://example.org/a", Duration::from_secs(3600));
    fake.push_x509(certs::x509_response(&[(&a, "a")], &[ca.der()], &[]));
    let err = X509Source::builder()
        .client(client_for(&fake))
        .hint(Some("nope"))
        .startup_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap_err();
    let Error::Timeout {
        last_error: Some(last),
        ..
    } = &err
    else {
        panic!("expected a timeout: {err:?}");
    };
    assert!(matches!(**last, Error::NoSuitableSvid { .. }), "{last:?}");
    assert!(err.to_string().contains("\"nope\""), "{err}");
    fake.shutdown().await;
}

#[tokio::test]
async fn expired_svid_makes_the_source_unhealthy() {
    let fake = FakeAgent::start().await;
    let ca = TestCa::root("example.org");
    let now = std::time::SystemTime::now();
    let not_after = now + Duration::from_secs(4);
    let svid = ca.issue_with_validity(
        Some("spiffe://example.org/a"),
        now - Duration::from_secs(60),
        not_after,
    );
    fake.push_x509(certs::x509_response(&[(&svid, "")], &[ca.der()], &[]));
    let source = X509Source::builder()
        .client(client_for(&fake))
        .build()
        .await
        .unwrap();
    assert!(
        std::time::SystemTime::now() < not_after,
        "the source took 4 s to start: nothing to check while the SVID is valid"
    );
    assert!(source.is_healthy());
    // Until one second past its NotAfter, however long the start took.
    let left = not_after
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    tokio::time::sleep(left + Duration::from_secs(1)).await;
    assert!(!source.is_healthy(), "expired SVID");
    source.shutdown().await;
    fake.shutdown().await;
}
