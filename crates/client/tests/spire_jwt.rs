//! Offline JWT-SVID validation against SPIRE's own `ValidateJWTSVID` on a real SPIRE 1.13.3:
//! tokens it mints validate in both; the same token with a flipped signature byte, checked for
//! another audience, with an unknown `kid`, with `alg: none`, or past `exp` (beyond the
//! one-minute leeway both use) is rejected by both, and ours names each case differently.
//! Also drives the `jwt_validate` example and the `JwtSource` on the real agent.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed setup step should panic"
)]

use std::mem::discriminant;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use spiffe_helper_testkit::spire::{Entry, Spire};
use spiffe_workload_client::{Endpoint, JwtSource, JwtSvidError, WorkloadApiClient};

const WEB: &str = "spiffe://example.org/web";
const SHORT: &str = "spiffe://example.org/short";

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.is_file(),
        "{} missing: run cargo test --workspace",
        path.display()
    );
    path
}

fn with_header(token: &str, header: &str) -> String {
    let rest = token.split_once('.').unwrap().1;
    format!("{}.{rest}", URL_SAFE_NO_PAD.encode(header))
}

fn flip_signature_byte(token: &str) -> String {
    let (signed, sig) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig[10] ^= 0x01;
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

fn kid(token: &str) -> String {
    let header = URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    let header: serde_json::Value = serde_json::from_slice(&header).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn offline_validation_agrees_with_spire_validate_jwt_svid() {
    let spire = Spire::start();
    spire.create_entry(&Entry::new(WEB).entry_id("00-web").hint("web"));
    spire.create_entry(
        &Entry::new(SHORT)
            .entry_id("10-short")
            .hint("short")
            .jwt_ttl(1),
    );
    spire.wait_for_svid(Duration::from_secs(60));
    let client = WorkloadApiClient::new(Endpoint::parse(&spire.endpoint()).unwrap());
    let source = JwtSource::builder()
        .client(client.clone())
        .build()
        .await
        .unwrap();

    // The short-lived token first: it must be more than a minute past exp at the end.
    let deadline = Instant::now() + Duration::from_secs(30);
    let short = loop {
        match source.jwt_svid_with_hint(&["a"], Some("short")).await {
            Ok(svid) => break svid,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(err) => panic!("no short JWT-SVID: {err}"),
        }
    };
    let expired_at = Instant::now() + Duration::from_secs(63);

    let good = source
        .jwt_svid_with_hint(&["a", "b"], Some("web"))
        .await
        .unwrap();
    let token = good.token().as_str().to_owned();
    let ours = source.validate(&token, "b").unwrap();
    let theirs = client.validate_jwt_svid(&token, "b").await.unwrap();
    assert_eq!(ours.spiffe_id, theirs.spiffe_id);
    assert_eq!(ours.spiffe_id.to_string(), WEB);
    assert_eq!(ours.claims["sub"], theirs.claims["sub"]);
    assert_eq!(ours.claims["exp"], theirs.claims["exp"]);

    let mut cases: Vec<(&str, String, &str)> = vec![
        ("flipped signature byte", flip_signature_byte(&token), "a"),
        ("other audience", token.clone(), "c"),
        (
            "unknown kid",
            with_header(&token, r#"{"alg":"ES256","kid":"not-a-key","typ":"JWT"}"#),
            "a",
        ),
        (
            "alg none",
            format!(
                "{}.",
                with_header(
                    &token,
                    &format!(r#"{{"alg":"none","kid":"{}","typ":"JWT"}}"#, kid(&token))
                )
                .rsplit_once('.')
                .unwrap()
                .0
            ),
            "a",
        ),
    ];
    tokio::time::sleep(expired_at.saturating_duration_since(Instant::now())).await;
    cases.push(("expired", short.token().as_str().to_owned(), "a"));

    let mut errors: Vec<JwtSvidError> = Vec::new();
    for (case, token, audience) in &cases {
        let ours = source.validate(token, audience);
        let theirs = client.validate_jwt_svid(token, audience).await;
        let Err(theirs) = theirs else {
            panic!("{case}: SPIRE accepted it");
        };
        let Err(ours) = ours else {
            panic!("{case}: we accepted what SPIRE rejects ({theirs})");
        };
        let expected = match *case {
            "flipped signature byte" => matches!(ours, JwtSvidError::BadSignature),
            "other audience" => matches!(ours, JwtSvidError::AudienceMismatch { .. }),
            "unknown kid" => matches!(ours, JwtSvidError::UnknownKeyId { .. }),
            "alg none" => matches!(ours, JwtSvidError::UnsupportedAlgorithm { .. }),
            "expired" => matches!(ours, JwtSvidError::Expired),
            _ => false,
        };
        assert!(expected, "{case}: ours {ours:?}; SPIRE: {theirs}");
        eprintln!("{case}: ours: {ours}; SPIRE: {theirs}");
        errors.push(ours);
    }
    for (i, a) in errors.iter().enumerate() {
        for b in &errors[i + 1..] {
            assert_ne!(discriminant(a), discriminant(b), "{a} vs {b}");
        }
    }

    drives_the_example(&spire, &source).await;
    source.shutdown().await;
}

/// The example: exit 0 with the ID for a good token, 1 with the reason for a bad one.
async fn drives_the_example(spire: &Spire, source: &JwtSource) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    let run = |token: &str, audience: &str| {
        std::fs::write(&file, token).unwrap();
        Command::new(example("jwt_validate"))
            .args(["--audience", audience, "--token-file"])
            .arg(&file)
            .env("SPIFFE_ENDPOINT_SOCKET", spire.endpoint())
            .output()
            .unwrap()
    };
    let fresh = source.jwt_svid(&["x"]).await.unwrap();
    let out = run(fresh.token().as_str(), "x");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), WEB);
    let out = run(fresh.token().as_str(), "y");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not contain \"y\""));
}
