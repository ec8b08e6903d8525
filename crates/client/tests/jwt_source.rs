//! `JwtSource` against the fake Workload API: bundles, the per-audience cache, the refresh at
//! half the remaining life, hints and shutdown.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed setup step should panic"
)]

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use spiffe_helper_testkit::certs;
use spiffe_helper_testkit::fake::FakeAgent;
use spiffe_helper_testkit::pb;
use spiffe_workload_client::{Backoff, Endpoint, Error, JwtSource, WorkloadApiClient};

const ID: &str = "spiffe://example.org/web";

fn svids(items: &[(&str, &str)]) -> pb::JwtsvidResponse {
    pb::JwtsvidResponse {
        svids: items
            .iter()
            .map(|(token, hint)| pb::Jwtsvid {
                spiffe_id: ID.into(),
                svid: (*token).to_owned(),
                hint: (*hint).to_owned(),
            })
            .collect(),
    }
}

async fn started() -> (FakeAgent, JwtSource) {
    let fake = FakeAgent::start().await;
    let mut bundles = HashMap::new();
    bundles.insert(
        "spiffe://example.org".to_owned(),
        br#"{"keys":[]}"#.to_vec(),
    );
    fake.push_jwt_bundles(pb::JwtBundlesResponse { bundles });
    let client = WorkloadApiClient::new(Endpoint::parse(&fake.endpoint()).unwrap());
    let source = JwtSource::builder()
        .client(client)
        .backoff(Backoff::exact(
            Duration::from_millis(20),
            Duration::from_millis(100),
        ))
        .build()
        .await
        .unwrap();
    (fake, source)
}

#[tokio::test]
async fn caches_per_audience_set_and_refreshes_at_half_life() {
    let (fake, source) = started().await;
    assert!(
        source
            .bundle_for(&"example.org".parse().unwrap())
            .unwrap()
            .keys()
            .is_empty()
    );
    // The token lives 8 s from `issued`; `exp` is whole seconds, so it ends 7-8 s after.
    let issued = SystemTime::now();
    let exp = issued + Duration::from_secs(8);
    let first = certs::jwt_token(ID, &["a", "b"], exp);
    fake.set_jwt_svids(svids(&[(&first, "")]));
    let got = source.jwt_svid(&["b", "a"]).await.unwrap();
    assert_eq!(got.token().as_str(), first);

    // Cached: the agent's next answer is not fetched for the same (reordered) audience set.
    let second = certs::jwt_token(ID, &["a", "b"], SystemTime::now() + Duration::from_secs(60));
    fake.set_jwt_svids(svids(&[(&second, "")]));
    let again = source.jwt_svid(&["a", "b", "a"]).await.unwrap();
    assert_eq!(again.token().as_str(), first);

    // The refresher sleeps half of what is left when it starts: however slow the machine, the
    // new token cannot come before ~3.5 s after `issued` (half of at least 7 s), and it must
    // come before the first one expires.
    let mut updates = source.watch_jwt_svid(&["a", "b"], None).await.unwrap();
    tokio::time::timeout(Duration::from_secs(30), updates.changed())
        .await
        .expect("the token is refreshed")
        .unwrap();
    let refreshed = SystemTime::now();
    let after = refreshed.duration_since(issued).unwrap();
    assert!(
        after >= Duration::from_secs(3),
        "refreshed {after:?} after issue, before half of its 8 s life"
    );
    assert!(
        refreshed < exp,
        "refreshed {after:?} after issue, after the token expired"
    );
    assert_eq!(updates.borrow().token().as_str(), second);
    assert_eq!(
        source.jwt_svid(&["a", "b"]).await.unwrap().token().as_str(),
        second
    );
    source.shutdown().await;
    fake.shutdown().await;
}

#[tokio::test]
async fn picks_by_hint_and_reports_a_missing_one() {
    let (fake, source) = started().await;
    let exp = SystemTime::now() + Duration::from_secs(600);
    let x = certs::jwt_token(ID, &["a"], exp);
    let y = certs::jwt_token(ID, &["a"], exp + Duration::from_secs(1));
    fake.set_jwt_svids(svids(&[(&x, "x"), (&y, "y")]));
    let svid = source.jwt_svid_with_hint(&["a"], Some("y")).await.unwrap();
    assert_eq!(svid.token().as_str(), y);
    assert_eq!(source.jwt_svid(&["a"]).await.unwrap().token().as_str(), x);
    let err = source
        .jwt_svid_with_hint(&["a"], Some("z"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoSuitableSvid { .. }), "{err}");
    assert_eq!(err.to_string(), "no JWT-SVID with hint \"z\"");
    assert!(source.is_healthy());

    // The refreshers sleep ~5 min (the tokens live 10 min): shutdown does not wait for them.
    let clone = source.clone();
    tokio::time::timeout(Duration::from_secs(10), clone.shutdown())
        .await
        .expect("shutdown interrupts the refreshers' 5 min sleep");
    assert!(!source.is_healthy());
    assert!(matches!(source.jwt_svid(&["a"]).await, Err(Error::Closed)));
    fake.shutdown().await;
}

/// A caller that only needs JWT-SVIDs does not wait for bundles the agent never sends: the
/// source starts at once, reports the watch as not connected, and serves tokens.
#[tokio::test]
async fn without_waiting_for_bundles_tokens_are_served_before_any_bundle() {
    let fake = FakeAgent::start().await;
    let token = certs::jwt_token(ID, &["db"], SystemTime::now() + Duration::from_secs(600));
    fake.set_jwt_svids(svids(&[(&token, "")]));
    let client = WorkloadApiClient::new(Endpoint::parse(&fake.endpoint()).unwrap());
    let source = tokio::time::timeout(
        Duration::from_secs(5),
        JwtSource::builder()
            .client(client)
            .wait_for_bundles(false)
            .startup_timeout(Duration::from_secs(1))
            .build(),
    )
    .await
    .expect("build does not wait for bundles")
    .unwrap();
    assert!(source.bundle_set().bundles().is_empty());
    assert!(matches!(
        *source.connection().borrow(),
        spiffe_workload_client::ConnectionState::Disconnected { .. }
    ));
    let svid = source.jwt_svid(&["db"]).await.unwrap();
    assert_eq!(svid.token().as_str(), token);
    source.shutdown().await;
}

#[tokio::test]
async fn picks_by_subject_asking_the_agent_for_that_id() {
    let (fake, source) = started().await;
    let exp = SystemTime::now() + Duration::from_secs(600);
    let other = "spiffe://example.org/other";
    let mine = certs::jwt_token(ID, &["a"], exp);
    let theirs = certs::jwt_token(other, &["a"], exp);
    fake.set_jwt_svids(pb::JwtsvidResponse {
        svids: vec![
            pb::Jwtsvid {
                spiffe_id: ID.into(),
                svid: mine.clone(),
                hint: String::new(),
            },
            pb::Jwtsvid {
                spiffe_id: other.into(),
                svid: theirs.clone(),
                hint: String::new(),
            },
        ],
    });
    let subject = other.parse().unwrap();
    let svid = source.jwt_svid_for_subject(&["a"], &subject).await.unwrap();
    assert_eq!(svid.token().as_str(), theirs);
    assert_eq!(svid.spiffe_id(), &subject);
    assert_eq!(
        fake.last_jwt_request().unwrap().spiffe_id,
        other,
        "the agent is asked for that ID"
    );
    assert_eq!(
        source.jwt_svid(&["a"]).await.unwrap().token().as_str(),
        mine
    );
    let missing = "spiffe://example.org/nobody".parse().unwrap();
    let err = source
        .jwt_svid_for_subject(&["a"], &missing)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::NoSuitableSvid { .. }) && err.to_string().contains("nobody"),
        "{err}"
    );
    source.shutdown().await;
    fake.shutdown().await;
}

/// An audience set asked for once and never again stops being refreshed after
/// `IDLE_REFRESHES` periods; one whose receiver is held keeps being refreshed.
#[tokio::test]
async fn an_audience_set_nobody_asks_for_stops_being_refreshed() {
    let (fake, source) = started().await;
    // Tokens that live 2 s: refreshed every 0.5-1 s.
    let short =
        |aud: &str| certs::jwt_token(ID, &[aud], SystemTime::now() + Duration::from_secs(2));
    fake.set_jwt_svids(svids(&[(&short("once"), "")]));
    let _ = source.jwt_svid(&["once"]).await.unwrap();
    assert_eq!(source.refreshing().await, 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while source.refreshing().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the unused audience set is still refreshed after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let calls = fake.jwt_calls();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        fake.jwt_calls(),
        calls,
        "a stopped refresher still calls the agent"
    );

    // Held receiver: refreshed for as long as it is held.
    fake.set_jwt_svids(svids(&[(&short("held"), "")]));
    let held = source.watch_jwt_svid(&["held"], None).await.unwrap();
    let start = fake.jwt_calls();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(source.refreshing().await, 1);
    assert!(
        fake.jwt_calls() >= start + 3,
        "a watched audience set was refreshed {} times in 4 s",
        fake.jwt_calls() - start
    );
    drop(held);
    // Asked for again after it stopped: fetched anew.
    let again = source.jwt_svid(&["once"]).await.unwrap();
    assert!(again.spiffe_id().to_string() == ID);
    source.shutdown().await;
    fake.shutdown().await;
}
