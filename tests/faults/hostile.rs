//! Hostile and malformed agent responses (fake Workload API): a running daemon gets one bad
//! update after a good one. Expected every time: no panic, the previous files untouched, a
//! clear log line, and the next good update is still written.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use spiffe_helper_testkit::certs::{self, TestCa};
use spiffe_helper_testkit::pb;

use crate::faults::kit::{
    Fake, Running, X509Files, daemon_config, live, log_has, ready, wait_ready,
};
use crate::inspect::{cert_info, leaf};
use crate::support::{Helper, WORKLOAD, free_port, scratch, stop_cleanly, wait_until, write_file};

/// Pushes `bad`; expects a log line with all of `words`, unchanged files, a running and healthy
/// helper; then a good update is written.
fn rejects(what: &str, bad: pb::X509svidResponse, words: &[&str]) {
    rejects_with(what, bad, words, true);
}

/// [`rejects`]; `healthy` = both probes must stay 200 (a skipped message is not a failed write).
fn rejects_with(what: &str, bad: pb::X509svidResponse, words: &[&str], healthy: bool) {
    let mut r = Running::start("");
    let kept = r.files.snapshot();
    r.fake.push(bad);
    assert!(
        wait_until(Duration::from_secs(15), || log_has(&r.helper.log(), words)),
        "{what}: no log line with {words:?}; log:\n{}",
        crate::faults::kit::tail(&r.helper)
    );
    std::thread::sleep(Duration::from_millis(500));
    r.helper.assert_running(what);
    assert_eq!(r.files.snapshot(), kept, "{what}: files changed");
    if healthy {
        assert_eq!(live(r.port), Some(200), "{what}: liveness");
        assert_eq!(ready(r.port), Some(200), "{what}: readiness");
    }
    let good = r.fake.push_fresh();
    assert!(
        wait_until(Duration::from_secs(40), || leaf(&r.files.svid)
            .is_some_and(|l| l.serial == good)),
        "{what}: the next good update was not written; log:\n{}",
        crate::faults::kit::tail(&r.helper)
    );
    stop_cleanly(&mut r.helper);
}

#[test]
fn key_for_another_certificate_is_rejected() {
    let ca = TestCa::root("example.org");
    let a = ca.issue(WORKLOAD, Duration::from_secs(3600));
    let b = ca.issue(WORKLOAD, Duration::from_secs(3600));
    let mut bad = certs::x509_response(&[(&a, "")], &[ca.der()], &[]);
    bad.svids[0].x509_svid_key.clone_from(&b.key_pkcs8);
    rejects("key of another certificate", bad, &["does not match"]);
}

#[test]
fn leaf_without_spiffe_uri_san_is_rejected() {
    let ca = TestCa::root("example.org");
    let now = SystemTime::now();
    let svid = ca.issue_with_validity(None, now, now + Duration::from_secs(3600));
    let mut bad = certs::x509_response(&[(&svid, "")], &[ca.der()], &[]);
    bad.svids[0].spiffe_id = WORKLOAD.to_owned();
    rejects("leaf without URI SAN", bad, &["no uri san"]);
}

#[test]
fn garbage_certificate_bytes_and_ids_are_rejected() {
    let ca = TestCa::root("example.org");
    let svid = ca.issue(WORKLOAD, Duration::from_secs(3600));
    let mut bad = certs::x509_response(&[(&svid, "")], &[ca.der()], &[]);
    let chain = &mut bad.svids[0].x509_svid;
    chain.truncate(chain.len() / 2);
    rejects("truncated certificate", bad, &["certificate"]);

    let mut bad = certs::x509_response(&[(&svid, "")], &[ca.der()], &[]);
    bad.svids[0].spiffe_id = "https://example.org/not-spiffe".to_owned();
    rejects("non-SPIFFE ID", bad, &["spiffe"]);

    let bad = pb::X509svidResponse {
        svids: Vec::new(),
        crl: Vec::new(),
        federated_bundles: std::collections::HashMap::new(),
    };
    rejects("empty SVID list", bad, &["no svid"]);
}

/// An expired leaf must not replace a valid one: the workload would be handed a certificate
/// every peer rejects. (Liveness may report the refused update either way.)
#[test]
fn expired_certificate_does_not_replace_a_valid_one() {
    let ca = TestCa::root("example.org");
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let svid = ca.issue_with_validity(Some(WORKLOAD), now - 2 * hour, now - hour);
    let bad = certs::x509_response(&[(&svid, "")], &[ca.der()], &[]);
    rejects_with("expired leaf", bad, &["expired"], false);
}

/// A 10 MB bundle: refused (gRPC message limit) or written, but never a crash, and the files
/// stay the previous valid ones until a good update.
#[test]
fn ten_megabyte_bundle_does_not_crash() {
    let ca = TestCa::root("example.org");
    let svid = ca.issue(WORKLOAD, Duration::from_secs(3600));
    let der = ca.der();
    let copies = 10 * 1024 * 1024 / der.len() + 1;
    let bundle: Vec<Vec<u8>> = std::iter::repeat_n(der, copies).collect();
    let bad = certs::x509_response(&[(&svid, "")], &bundle, &[]);
    rejects("10 MB bundle", bad, &["too large"]);
}

/// 1000 SVIDs in one response: the first one is written (docs/behaviour.md#svid-selection), nothing else happens.
#[test]
fn thousand_svids_write_the_first() {
    let mut r = Running::start("");
    let ca = &r.fake.ca;
    let svids: Vec<_> = (0..1000)
        .map(|i| {
            ca.issue(
                &format!("spiffe://example.org/w{i:04}"),
                Duration::from_secs(3600),
            )
        })
        .collect();
    let pairs: Vec<_> = svids.iter().map(|s| (s, "")).collect();
    let response = certs::x509_response(&pairs, &[ca.der()], &[]);
    let first = cert_info(&svids[0].chain[0]).serial;
    r.fake.push(response);
    assert!(
        wait_until(Duration::from_secs(20), || leaf(&r.files.svid)
            .is_some_and(|l| l.serial == first)),
        "the first of 1000 SVIDs was not written; log:\n{}",
        crate::faults::kit::tail(&r.helper)
    );
    let written = leaf(&r.files.svid).unwrap();
    assert_eq!(written.uris, vec!["spiffe://example.org/w0000".to_owned()]);
    assert_eq!(live(r.port), Some(200));
    stop_cleanly(&mut r.helper);
}

/// A JWT with the given claims (unsigned, well-formed).
fn jwt(claims: &serde_json::Value) -> String {
    let header = serde_json::json!({"alg": "ES256", "kid": "k", "typ": "JWT"});
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode([7u8; 64])
    )
}

fn jwt_response(token: &str) -> pb::JwtsvidResponse {
    pb::JwtsvidResponse {
        svids: vec![pb::Jwtsvid {
            spiffe_id: WORKLOAD.to_owned(),
            svid: token.to_owned(),
            hint: String::new(),
        }],
    }
}

/// A JWT-SVID without `exp` at refresh time: refused with a log line, the previous token stays
/// in the file, the next good token is written. Never logged.
#[test]
fn jwt_without_exp_is_refused_and_previous_token_kept() {
    let fake = Fake::start();
    fake.push_fresh();
    let soon = SystemTime::now() + Duration::from_secs(8);
    let good = certs::jwt_token(WORKLOAD, &["db"], soon);
    fake.agent().set_jwt_svids(jwt_response(&good));
    let dir = scratch();
    let certs_dir = dir.path().join("certs");
    let files = X509Files::in_dir(&certs_dir);
    let port = free_port();
    // Naming the X.509 files keeps X.509 output on next to the JWT-SVID (docs/configuration.md#output-files).
    let extra = "svid_file_name = \"svid.pem\"\nsvid_key_file_name = \"svid_key.pem\"\n\
                 svid_bundle_file_name = \"svid_bundle.pem\"\n\
                 jwt_svids = [{ jwt_audience = \"db\", jwt_svid_file_name = \"db.jwt\" }]\n";
    let config = write_file(
        dir.path(),
        "helper.conf",
        &daemon_config(&fake.endpoint(), &certs_dir, port, extra),
    );
    let mut helper = Helper::spawn(&config, &[]);
    let token_file = certs_dir.join("db.jwt");
    wait_ready(&mut helper, &files.svid, port);
    assert_eq!(std::fs::read_to_string(&token_file).unwrap(), good);

    let no_exp = jwt(&serde_json::json!({"sub": WORKLOAD, "aud": ["db"]}));
    fake.agent().set_jwt_svids(jwt_response(&no_exp));
    assert!(
        wait_until(Duration::from_secs(15), || log_has(&helper.log(), &["exp"])),
        "JWT without exp not logged; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    helper.assert_running("after a JWT without exp");
    assert_eq!(
        std::fs::read_to_string(&token_file).unwrap(),
        good,
        "token file changed"
    );

    let fresh = certs::jwt_token(
        WORKLOAD,
        &["db"],
        SystemTime::now() + Duration::from_secs(3600),
    );
    fake.agent().set_jwt_svids(jwt_response(&fresh));
    assert!(
        wait_until(Duration::from_secs(30), || std::fs::read_to_string(
            &token_file
        )
        .is_ok_and(|t| t == fresh)),
        "good JWT not written after the bad one; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    helper.remember_tokens(&[good, no_exp, fresh]);
    stop_cleanly(&mut helper);
}
