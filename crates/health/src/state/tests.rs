//! Status mapping: state → readiness/liveness verdicts and JSON body.

use super::*;
use std::time::{Duration, UNIX_EPOCH};

const ID: &str = "spiffe://example.org/app";

fn t(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

fn jwt() -> PathBuf {
    PathBuf::from("/certs/token.jwt")
}

fn bundle() -> PathBuf {
    PathBuf::from("/certs/bundle.json")
}

fn full_state() -> HealthState {
    HealthState::new(true, vec![jwt()], Some(bundle()))
}

fn write_all(s: &HealthState, x509_not_after: SystemTime) {
    s.x509_written(ID, x509_not_after);
    s.jwt_svid_written(&jwt(), t(300));
    s.jwt_bundle_written();
}

#[test]
fn unwritten_outputs_are_live_but_not_ready() {
    let s = full_state();
    assert!(!s.is_ready(t(0)));
    assert!(s.is_live(t(0)));
    let body = s.probe_body(Probe::Readiness, t(0));
    assert_eq!(body["status"], "Service Unavailable");
    assert_eq!(
        body["health"],
        serde_json::json!({"file_write_statuses": {
            "x509_write_status": "unwritten",
            "jwt_write_status": {"/certs/token.jwt": "unwritten", "/certs/bundle.json": "unwritten"}
        }})
    );
    assert_eq!(body["agent_connection"], "disconnected");
    assert_eq!(body["spiffe_id"], Value::Null);
    assert_eq!(body["x509_svid"], Value::Null);
    assert_eq!(body["last_update"], Value::Null);
    assert_eq!(s.probe_body(Probe::Liveness, t(0))["status"], "OK");
}

#[test]
fn ready_only_once_every_output_is_written() {
    let s = full_state();
    s.x509_written(ID, t(3600));
    assert!(!s.is_ready(t(0)), "JWT SVID and bundle still missing");
    s.jwt_svid_written(&jwt(), t(300));
    assert!(!s.is_ready(t(0)), "JWT bundle still missing");
    let problems = s.probe_body(Probe::Readiness, t(0))["problems"].clone();
    assert_eq!(
        problems,
        serde_json::json!(["JWT bundle /certs/bundle.json not written yet"])
    );
    s.jwt_bundle_written();
    assert!(s.is_ready(t(0)));
    let body = s.probe_body(Probe::Readiness, t(0));
    assert_eq!(body["status"], "OK");
    assert_eq!(
        body["health"]["file_write_statuses"]["x509_write_status"],
        "written"
    );
    assert_eq!(
        body["health"]["file_write_statuses"]["jwt_write_status"]["/certs/bundle.json"],
        "written"
    );
}

#[test]
fn x509_status_is_omitted_when_not_configured_like_upstream() {
    let s = HealthState::new(false, vec![jwt()], None);
    let statuses = s.probe_body(Probe::Readiness, t(0))["health"]["file_write_statuses"].clone();
    assert_eq!(
        statuses,
        serde_json::json!({"jwt_write_status": {"/certs/token.jwt": "unwritten"}})
    );
    s.jwt_svid_written(&jwt(), t(300));
    assert!(s.is_ready(t(0)));
}

#[test]
fn nothing_configured_is_ready_with_empty_map() {
    let s = HealthState::new(false, vec![], None);
    assert!(s.is_ready(t(0)) && s.is_live(t(0)));
    assert_eq!(
        s.probe_body(Probe::Readiness, t(0))["health"]["file_write_statuses"],
        serde_json::json!({"jwt_write_status": {}})
    );
}

#[test]
fn failed_write_breaks_liveness_and_a_later_write_recovers() {
    let s = full_state();
    write_all(&s, t(3600));
    s.jwt_svid_write_failed(&jwt());
    assert!(!s.is_live(t(10)));
    // Readiness is a latch: the file on disk is still the last good one.
    assert!(s.is_ready(t(10)));
    let live = s.probe_body(Probe::Liveness, t(10));
    assert_eq!(live["status"], "Service Unavailable");
    assert_eq!(live["live"], false);
    assert_eq!(live["ready"], true);
    assert_eq!(
        live["health"]["file_write_statuses"]["jwt_write_status"]["/certs/token.jwt"],
        "failed"
    );
    s.jwt_svid_written(&jwt(), t(600));
    assert!(s.is_live(t(10)));
    assert_eq!(s.probe_body(Probe::Liveness, t(10))["status"], "OK");
}

#[test]
fn each_output_failure_breaks_liveness() {
    for fail in [
        HealthState::x509_write_failed as fn(&HealthState),
        HealthState::jwt_bundle_write_failed,
    ] {
        let s = full_state();
        write_all(&s, t(3600));
        fail(&s);
        assert!(!s.is_live(t(0)));
        write_all(&s, t(7200));
        assert!(s.is_live(t(0)));
    }
}

#[test]
fn failure_before_first_write_is_not_ready_and_not_live() {
    let s = HealthState::new(true, vec![], None);
    s.x509_write_failed();
    assert!(!s.is_ready(t(0)));
    assert!(!s.is_live(t(0)));
    assert_eq!(
        s.probe_body(Probe::Readiness, t(0))["health"]["file_write_statuses"]["x509_write_status"],
        "failed"
    );
}

#[test]
fn expired_x509_fails_both_probes_until_renewed() {
    let s = full_state();
    write_all(&s, t(100));
    assert!(
        s.is_ready(t(100)) && s.is_live(t(100)),
        "NotAfter itself is still valid"
    );
    assert!(!s.is_ready(t(101)));
    assert!(!s.is_live(t(101)));
    let body = s.probe_body(Probe::Liveness, t(160));
    assert_eq!(body["x509_svid"]["expires_in_seconds"], -60);
    assert_eq!(
        body["problems"],
        serde_json::json!(["X.509 SVID expired at 2023-11-14T22:15:00Z and no renewal arrived"])
    );
    s.x509_written(ID, t(3700));
    assert!(s.is_ready(t(160)) && s.is_live(t(160)));
}

#[test]
fn failed_renewal_keeps_the_previous_expiry() {
    let s = HealthState::new(true, vec![], None);
    s.x509_written(ID, t(100));
    s.x509_write_failed();
    assert_eq!(
        s.probe_body(Probe::Readiness, t(40))["x509_svid"]["expires_in_seconds"],
        60
    );
    assert!(s.is_ready(t(40)));
    assert!(!s.is_ready(t(101)), "the SVID on disk still expires");
}

#[test]
fn body_carries_debug_fields_but_no_secrets() {
    let s = full_state();
    write_all(&s, t(3600));
    s.agent_connected(true);
    let body = s.probe_body(Probe::Readiness, t(0));
    assert_eq!(body["spiffe_id"], ID);
    assert_eq!(body["x509_svid"]["expires_in_seconds"], 3600);
    assert_eq!(body["x509_svid"]["not_after"], "2023-11-14T23:13:20Z");
    assert_eq!(
        body["jwt_svids"]["/certs/token.jwt"]["expires_in_seconds"],
        300
    );
    assert_eq!(
        body["jwt_svids"]["/certs/token.jwt"]["expires_at"],
        "2023-11-14T22:18:20Z"
    );
    assert_eq!(body["agent_connection"], "connected");
    let last = body["last_update"].as_str().unwrap_or_default().to_owned();
    assert!(last.len() == 20 && last.ends_with('Z'), "RFC 3339: {last}");
    // Only these fields exist: nothing that could carry key or token bytes.
    let keys: Vec<&str> = body
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    assert_eq!(
        keys,
        [
            "agent_connection",
            "health",
            "jwt_svids",
            "last_update",
            "live",
            "problems",
            "ready",
            "spiffe_id",
            "status",
            "x509_svid"
        ]
    );
}

#[test]
fn metrics_count_rotations_reconnects_signals_and_failures() {
    let s = full_state();
    s.x509_written(ID, t(100));
    s.x509_written(ID, t(100)); // same SVID rewritten (bundle update): not a rotation
    s.x509_written(ID, t(200));
    s.agent_connected(true);
    s.agent_connected(false);
    s.agent_connected(false);
    s.agent_connected(true);
    s.signal_sent(true);
    s.signal_sent(false);
    s.child_started();
    s.child_started();
    s.jwt_svid_write_failed(&jwt());
    let (text, content_type) = s.encode_metrics(false);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    for line in [
        "spiffe_helper_x509_svid_rotations_total 1",
        "spiffe_helper_agent_reconnects_total 1",
        "spiffe_helper_agent_connected 1",
        "spiffe_helper_signals_sent_total 1",
        "spiffe_helper_signals_failed_total 1",
        "spiffe_helper_child_starts_total 2",
        "spiffe_helper_write_failures_total{output=\"jwt_svid\"} 1",
        "spiffe_helper_write_failures_total{output=\"x509_svid\"} 0",
        "spiffe_helper_x509_svid_expiry_timestamp_seconds{spiffe_id=\"spiffe://example.org/app\"} 1700000200",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in:\n{text}"
        );
    }
}

#[test]
fn a_new_spiffe_id_replaces_the_old_expiry_series() {
    let s = HealthState::new(true, vec![], None);
    s.x509_written("spiffe://example.org/old", t(100));
    s.x509_written("spiffe://example.org/new", t(100));
    let (text, _) = s.encode_metrics(true);
    assert!(!text.contains("example.org/old"), "{text}");
    assert!(text.contains("spiffe_helper_x509_svid_expiry_timestamp_seconds{spiffe_id=\"spiffe://example.org/new\"} 1700000100"));
    assert!(text.contains("spiffe_helper_x509_svid_rotations_total 1"));
    assert!(text.ends_with("# EOF\n"));
}

fn answer_json(s: &HealthState, probe: Probe, now: SystemTime) -> (bool, Value) {
    let (ok, body) = s.answer(probe, now);
    (ok, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[test]
fn pre_rendered_answer_follows_every_state_change_at_once() {
    let s = full_state();
    let (ok, body) = answer_json(&s, Probe::Readiness, t(0));
    assert!(!ok);
    assert_eq!(body["status"], "Service Unavailable");
    write_all(&s, t(3600));
    // Same instant, so only the change of state can alter the answer.
    let (ok, body) = answer_json(&s, Probe::Readiness, t(0));
    assert!(ok, "ready as soon as the last output is written: {body}");
    assert_eq!(body["status"], "OK");
    assert_eq!(body, s.probe_body(Probe::Readiness, t(0)));
    s.agent_connected(true);
    assert_eq!(
        answer_json(&s, Probe::Readiness, t(0)).1["agent_connection"],
        "connected"
    );
    s.jwt_svid_write_failed(&jwt());
    let (live, body) = answer_json(&s, Probe::Liveness, t(0));
    assert!(!live);
    assert_eq!(
        body["health"]["file_write_statuses"]["jwt_write_status"]["/certs/token.jwt"],
        "failed"
    );
}

#[test]
fn pre_rendered_answer_follows_the_clock() {
    let s = full_state();
    write_all(&s, t(10));
    let (ok, body) = answer_json(&s, Probe::Liveness, t(0));
    assert!(ok);
    assert_eq!(body["x509_svid"]["expires_in_seconds"], 10);
    // Within the same second the copy is served, and it is what a fresh render gives.
    let later = t(0) + Duration::from_millis(400);
    assert_eq!(
        answer_json(&s, Probe::Liveness, later).1,
        s.probe_body(Probe::Liveness, later)
    );
    let (_, body) = answer_json(&s, Probe::Liveness, t(4));
    assert_eq!(body["x509_svid"]["expires_in_seconds"], 6);
    assert_eq!(
        body["jwt_svids"]["/certs/token.jwt"]["expires_in_seconds"],
        296
    );
    // Expiry flips the verdict even when the whole seconds left read the same (0 at the
    // instant of expiry, -1 just after).
    assert!(answer_json(&s, Probe::Liveness, t(10)).0);
    let (ok, body) = answer_json(&s, Probe::Liveness, t(10) + Duration::from_millis(1));
    assert!(!ok, "expired: {body}");
    assert_eq!(body["status"], "Service Unavailable");
}

#[test]
fn repeated_answers_are_served_from_one_rendering() {
    let s = full_state();
    write_all(&s, t(3600));
    // 3599.999 s and 3599.001 s left both read 3599.
    let (_, first) = s.answer(Probe::Readiness, t(0) + Duration::from_millis(1));
    let (_, second) = s.answer(Probe::Readiness, t(0) + Duration::from_millis(999));
    assert_eq!(
        first.as_ptr(),
        second.as_ptr(),
        "the same bytes, not a new rendering"
    );
    let (_, live) = s.answer(Probe::Liveness, t(0));
    assert_ne!(
        first.as_ptr(),
        live.as_ptr(),
        "each probe has its own answer"
    );
    s.jwt_bundle_written();
    let (_, after) = s.answer(Probe::Readiness, t(0));
    assert_ne!(first.as_ptr(), after.as_ptr(), "a change renders again");
}
