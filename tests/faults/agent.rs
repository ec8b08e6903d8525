//! Agent-side faults with a real SPIRE: the agent SIGKILLed and restarted, the workload's entry
//! deleted and re-created.

use std::time::{Duration, Instant};

use spiffe_helper_testkit::spire::{Entry, Spire};

use crate::kit::{
    FileChecker, X509Files, agent_connection, daemon_config, live, log_has, ready, secs_until,
    start_daemon,
};
use crate::support::{PROPAGATION, ROTATION, WORKLOAD, assert_no_secrets, free_port, scratch, stop_cleanly, wait_until};
use crate::inspect::{key_matches_cert, leaf};

/// SPIRE with a 30 s X.509-SVID entry for [`WORKLOAD`]; returns it and the entry id.
fn spire_with_entry() -> (Spire, String) {
    let spire = Spire::start();
    let id = spire.create_entry(&Entry::new(WORKLOAD).x509_ttl(30));
    spire.wait_for_svid(PROPAGATION);
    (spire, id)
}

/// Agent SIGKILLed, down 20 s, restarted: the helper keeps running, the files stay valid PEM
/// the whole time, health reports the agent disconnected meanwhile, and after the restart a
/// rotation reaches the files.
#[test]
fn agent_killed_for_20s_then_restarted_helper_survives_and_rotates() {
    let (mut spire, _) = spire_with_entry();
    let dir = scratch();
    let certs = dir.path().join("certs");
    let files = X509Files::in_dir(&certs);
    let port = free_port();
    let mut helper = start_daemon(dir.path(), &daemon_config(&spire.endpoint(), &certs, port, ""));
    let first = crate::kit::wait_ready(&mut helper, &files.svid, port);
    assert!(
        wait_until(Duration::from_secs(10), || agent_connection(port).as_deref()
            == Some("connected")),
        "health never said the agent is connected"
    );

    let checker = FileChecker::start(&files);
    let before_kill = leaf(&files.svid).unwrap().serial;
    spire.kill_agent();
    let killed = Instant::now();
    assert!(
        wait_until(Duration::from_secs(10), || agent_connection(port).as_deref()
            == Some("disconnected")),
        "health still says connected 10 s after the agent was SIGKILLed; log:\n{}",
        crate::kit::tail(&helper)
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
        crate::kit::tail(&helper)
    );
    spire.start_agent();
    let restarted = Instant::now();
    // Back-off cap is about 30 s; allow for it plus the agent's own start.
    assert!(
        wait_until(Duration::from_secs(45), || agent_connection(port).as_deref()
            == Some("connected")),
        "not reconnected 45 s after the agent restart; log:\n{}",
        crate::kit::tail(&helper)
    );
    let reconnect = restarted.elapsed();
    let Some(rotated) = new_serial(&files, &before_kill) else {
        panic!("no new SVID written after the restart; log:\n{}", crate::kit::tail(&helper));
    };
    assert_ne!(rotated, first);
    assert!(key_matches_cert(&files.key, &files.svid), "key and cert disagree after restart");
    assert!(
        wait_until(Duration::from_secs(5), || ready(port) == Some(200) && live(port) == Some(200)),
        "health not back to 200 after the restart"
    );
    let (reads, problems) = checker.finish();
    assert!(problems.is_empty(), "files were not valid at some instant: {problems:#?}");
    assert!(reads > 1000, "the reader made only {reads} rounds");
    eprintln!(
        "agent kill: noticed in {noticed:?}, reconnected {reconnect:?} after restart, {reads} clean read rounds"
    );
    helper.assert_running("at the end");
    stop_cleanly(&mut helper);
    assert_no_secrets("agent kill", &helper.log(), Some(&files.key), &[]);
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
    let mut helper = start_daemon(dir.path(), &daemon_config(&spire.endpoint(), &certs, port, ""));
    crate::kit::wait_ready(&mut helper, &files.svid, port);

    spire.delete_entry(&entry);
    assert!(
        wait_until(Duration::from_secs(30), || log_has(&helper.log(), &["permission"])
            || log_has(&helper.log(), &["no identity issued"])),
        "entry deletion not logged within 30 s; log:\n{}",
        crate::kit::tail(&helper)
    );
    let kept = files.snapshot();
    let last = leaf(&files.svid).unwrap();
    helper.assert_running("after the entry was deleted");
    assert!(key_matches_cert(&files.key, &files.svid));

    // Wait until the last SVID written has expired: both probes must report it.
    let left = secs_until(last.not_after).max(0.0);
    std::thread::sleep(Duration::from_secs_f64(left + 1.5));
    assert_eq!(files.snapshot(), kept, "files changed while no identity was issued");
    assert_eq!(ready(port), Some(503), "readiness still 200 with an expired SVID");
    assert_eq!(live(port), Some(503), "liveness still 200 with an expired SVID");
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
        crate::kit::tail(&helper)
    );
    assert!(key_matches_cert(&files.key, &files.svid));
    assert!(leaf(&files.svid).unwrap().uris == vec![WORKLOAD.to_owned()]);
    stop_cleanly(&mut helper);
    assert_no_secrets("entry deleted", &helper.log(), Some(&files.key), &[]);
}
