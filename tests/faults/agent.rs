//! Agent-side faults with a real SPIRE: the agent killed (`SIGKILL`) and restarted, the workload's entry
//! deleted and re-created.

use std::time::{Duration, Instant};

use spiffe_helper_testkit::spire::{Entry, Spire};

use crate::faults::kit::{
    FileChecker, X509Files, agent_connection, daemon_config, live, log_has, ready, secs_until,
    start_daemon,
};
use crate::inspect::{key_matches_cert, leaf};
use crate::support::{
    PROPAGATION, ROTATION, WORKLOAD, free_port, scratch, stop_cleanly, wait_until,
};

/// SPIRE with a 30 s X.509-SVID entry for [`WORKLOAD`]; returns it and the entry id.
fn spire_with_entry() -> (Spire, String) {
    let spire = Spire::start();
    let id = spire.create_entry(&Entry::new(WORKLOAD).x509_ttl(30));
    spire.wait_for_svid(PROPAGATION);
    (spire, id)
}

/// Agent killed (`SIGKILL`) and its socket deleted, down 20 s, restarted (socket recreated): the helper
/// keeps running, the files stay valid PEM
/// the whole time, health reports the agent disconnected meanwhile, and after the restart a
/// rotation reaches the files.
#[test]
fn agent_killed_and_socket_deleted_for_20s_then_restarted_helper_survives_and_rotates() {
    let (mut spire, _) = spire_with_entry();
    let dir = scratch();
    let certs = dir.path().join("certs");
    let files = X509Files::in_dir(&certs);
    let port = free_port();
    let mut helper = start_daemon(
        dir.path(),
        &daemon_config(&spire.endpoint(), &certs, port, ""),
    );
    let first = crate::faults::kit::wait_ready(&mut helper, &files.svid, port);
    assert!(
        wait_until(Duration::from_secs(10), || agent_connection(port)
            .as_deref()
            == Some("connected")),
        "health never said the agent is connected"
    );

    let checker = FileChecker::start(&files);
    let before_kill = leaf(&files.svid).unwrap().serial;
    spire.kill_agent();
    let killed = Instant::now();
    // The socket disappears too (an agent pod being replaced): reconnects see ENOENT, not
    // ECONNREFUSED, until the restarted agent recreates it.
    let _ = std::fs::remove_file(spire.socket_path());
    assert!(
        wait_until(Duration::from_secs(10), || agent_connection(port)
            .as_deref()
            == Some("disconnected")),
        "health still says connected 10 s after the agent was SIGKILLed; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    let noticed = killed.elapsed();
    // Down for 20 s in all; the helper must stay up and keep answering health probes.
    while killed.elapsed() < Duration::from_secs(20) {
        helper.assert_running("while the agent is down");
        assert!(live(port).is_some(), "health server stopped answering");
        assert_eq!(agent_connection(port).as_deref(), Some("disconnected"));
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        log_has(&helper.log(), &["reconnect"]) || log_has(&helper.log(), &["disconnected"]),
        "nothing in the log says the agent connection was lost; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    spire.start_agent();
    let restarted = Instant::now();
    // After 20 s down the next backoff attempt may be 13 s away; the helper reconnects as soon
    // as the agent's socket is back instead. Allow for the agent's own start.
    assert!(
        wait_until(Duration::from_secs(10), || agent_connection(port)
            .as_deref()
            == Some("connected")),
        "not reconnected 10 s after the agent restart (its socket is back); log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    let reconnect = restarted.elapsed();
    let Some(rotated) = new_serial(&files, &before_kill) else {
        panic!(
            "no new SVID written after the restart; log:\n{}",
            crate::faults::kit::tail(&helper)
        );
    };
    assert_ne!(rotated, first);
    assert!(
        key_matches_cert(&files.key, &files.svid),
        "key and cert disagree after restart"
    );
    assert!(
        wait_until(Duration::from_secs(5), || ready(port) == Some(200)
            && live(port) == Some(200)),
        "health not back to 200 after the restart"
    );
    let (reads, problems) = checker.finish();
    assert!(
        problems.is_empty(),
        "files were not valid at some instant: {problems:#?}"
    );
    assert!(reads > 1000, "the reader made only {reads} rounds");
    eprintln!(
        "agent kill: noticed in {noticed:?}, reconnected {reconnect:?} after restart, {reads} clean read rounds"
    );
    helper.assert_running("at the end");
    stop_cleanly(&mut helper);
}

/// Waits (up to one rotation period) for the SVID file to hold a leaf whose serial differs
/// from `old`. Unlike `support::wait_for_rotation`, an expired leaf on disk is allowed meanwhile:
/// the SVID may expire while the agent is down, and that is what the health probes report.
fn new_serial(files: &X509Files, old: &str) -> Option<String> {
    let deadline = Instant::now() + ROTATION;
    while Instant::now() < deadline {
        if let Some(now) = leaf(&files.svid)
            && now.serial != old
        {
            return Some(now.serial);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Entry deleted (the agent ends the stream with PermissionDenied): files kept, logged; once the
/// SVID expires readiness and liveness say so; entry re-created: files renewed, 200 again.
#[test]
fn entry_deleted_keeps_files_then_recreated_renews_them() {
    let (spire, entry) = spire_with_entry();
    let dir = scratch();
    let certs = dir.path().join("certs");
    let files = X509Files::in_dir(&certs);
    let port = free_port();
    let mut helper = start_daemon(
        dir.path(),
        &daemon_config(&spire.endpoint(), &certs, port, ""),
    );
    crate::faults::kit::wait_ready(&mut helper, &files.svid, port);

    spire.delete_entry(&entry);
    assert!(
        wait_until(Duration::from_secs(30), || log_has(
            &helper.log(),
            &["permission"]
        ) || log_has(
            &helper.log(),
            &["no identity issued"]
        )),
        "entry deletion not logged within 30 s; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    let kept = files.snapshot();
    let last = leaf(&files.svid).unwrap();
    helper.assert_running("after the entry was deleted");
    assert!(key_matches_cert(&files.key, &files.svid));

    // Wait until the last SVID written has expired: both probes must report it.
    let left = secs_until(last.not_after).max(0.0);
    std::thread::sleep(Duration::from_secs_f64(left + 1.5));
    assert_eq!(
        files.snapshot(),
        kept,
        "files changed while no identity was issued"
    );
    assert_eq!(
        ready(port),
        Some(503),
        "readiness still 200 with an expired SVID"
    );
    assert_eq!(
        live(port),
        Some(503),
        "liveness still 200 with an expired SVID"
    );
    helper.assert_running("with an expired SVID");

    spire.create_entry(&Entry::new(WORKLOAD).x509_ttl(30));
    let renewed = wait_until(Duration::from_secs(60), || {
        leaf(&files.svid).is_some_and(|l| l.serial != last.serial)
            && ready(port) == Some(200)
            && live(port) == Some(200)
    });
    assert!(
        renewed,
        "files not renewed / health not 200 within 60 s of re-creating the entry; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    assert!(key_matches_cert(&files.key, &files.svid));
    assert!(leaf(&files.svid).unwrap().uris == vec![WORKLOAD.to_owned()]);
    stop_cleanly(&mut helper);
}

/// SPIRE server down for 30 s with the agent up: the X.509 stream stays connected and the files
/// valid; JWT-SVID refreshes fail once the agent's cached token is past half-life, are logged
/// and retried; when the server returns a new token is written.
#[test]
fn server_down_keeps_x509_serving_and_jwt_refresh_recovers() {
    let mut spire = Spire::start();
    spire.create_entry(&Entry::new(WORKLOAD).x509_ttl(600).jwt_ttl(20));
    spire.wait_for_svid(PROPAGATION);
    let dir = scratch();
    let certs = dir.path().join("certs");
    let files = X509Files::in_dir(&certs);
    let token_file = certs.join("db.jwt");
    let port = free_port();
    let extra = "svid_file_name = \"svid.pem\"\nsvid_key_file_name = \"svid_key.pem\"\n\
                 svid_bundle_file_name = \"svid_bundle.pem\"\n\
                 jwt_svids = [{ jwt_audience = \"db\", jwt_svid_file_name = \"db.jwt\" }]\n";
    let mut helper = start_daemon(
        dir.path(),
        &daemon_config(&spire.endpoint(), &certs, port, extra),
    );
    crate::faults::kit::wait_ready(&mut helper, &files.svid, port);
    let x509 = files.snapshot();
    let checker = FileChecker::start(&files);

    spire.stop_server();
    let stopped = Instant::now();
    let mut tokens = vec![std::fs::read_to_string(&token_file).unwrap()];
    while stopped.elapsed() < Duration::from_secs(30) {
        helper.assert_running("while the server is down");
        assert_eq!(agent_connection(port).as_deref(), Some("connected"));
        assert_eq!(
            ready(port),
            Some(200),
            "readiness dropped with a valid X.509-SVID"
        );
        let token = std::fs::read_to_string(&token_file).unwrap();
        if !tokens.contains(&token) {
            tokens.push(token);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        log_has(&helper.log(), &["refreshing jwt"]),
        "no failed JWT refresh logged with the server down 30 s (JWT TTL 20 s); log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    assert_eq!(
        files.snapshot(),
        x509,
        "X.509 files changed with the server down"
    );
    let before = std::fs::read_to_string(&token_file).unwrap();
    spire.start_server();
    let restarted = Instant::now();
    assert!(
        wait_until(Duration::from_secs(60), || std::fs::read_to_string(
            &token_file
        )
        .is_ok_and(|t| t != before)),
        "no new JWT-SVID within 60 s of the server's return; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    tokens.push(std::fs::read_to_string(&token_file).unwrap());
    let (reads, problems) = checker.finish();
    assert!(
        problems.is_empty(),
        "invalid file content seen: {problems:#?}"
    );
    eprintln!(
        "server down: JWT recovered {:?} after the server returned, {reads} clean read rounds",
        restarted.elapsed()
    );
    helper.remember_tokens(&tokens);
    stop_cleanly(&mut helper);
}
