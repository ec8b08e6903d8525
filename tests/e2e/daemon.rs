//! Daemon mode (the sidecar case): docs/behaviour.md#daemon-mode, #notification and #shutdown.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use spiffe_helper_testkit::spire::{Entry, Spire};

use crate::inspect::{
    http_status, key_matches_cert, leaf, minted, openssl_verify, pem_blocks, since_minted,
    wait_for_rotation,
};
use crate::support::spire_with;
use crate::support::{
    HELPER, Helper, Proc, ROTATION, WORKLOAD, base_config, count_signals, free_port,
    recorded_signals, recorded_starts, scratch, signal_recorder, stop_cleanly, wait_until,
    write_file,
};

/// A SPIRE whose entry for [`WORKLOAD`] has a 30 s X.509-SVID (rotates every ~15-20 s).
fn rotating_spire() -> Spire {
    spire_with(&Entry::new(WORKLOAD).x509_ttl(30))
}

/// Waits for the helper's first write; returns the leaf serial.
fn first_serial(helper: &mut Helper, svid: &Path) -> String {
    assert!(
        wait_until(Duration::from_secs(30), || leaf(svid).is_some()),
        "no SVID written within 30 s; log:\n{}",
        helper.log_tail()
    );
    helper.assert_running("after the first write");
    leaf(svid).unwrap().serial
}

/// The files follow each rotation; `cmd` is started once and gets `renew_signal` once
/// per rotation; SIGTERM reaches it at shutdown.
#[test]
fn daemon_follows_rotations_and_signals_cmd_once_per_rotation() {
    let spire = rotating_spire();
    let dir = scratch();
    let (certs, out) = (dir.path().join("certs"), dir.path());
    let script = signal_recorder(out);
    let config = write_file(
        out,
        "helper.conf",
        &format!(
            "{}cmd = \"{}\"\ncmd_args = \"{}\"\nrenew_signal = \"SIGHUP\"\n",
            base_config(&spire.endpoint(), &certs),
            script.display(),
            out.display()
        ),
    );
    let mut helper = Helper::spawn(&config, &[]);
    let svid = certs.join("svid.pem");
    let mut serial = first_serial(&mut helper, &svid);
    assert!(
        wait_until(Duration::from_secs(5), || recorded_starts(out).len() == 1),
        "cmd not started after the first write; log:\n{}",
        helper.log_tail()
    );

    let mut seen = Vec::new();
    for n in 1..=2 {
        let Some((new, at)) = wait_for_rotation(&svid, &serial, ROTATION) else {
            panic!(
                "no rotation {n} within {ROTATION:?}; log:\n{}",
                helper.log_tail()
            );
        };
        helper.assert_running("during rotations");
        assert!(
            since_minted(&new, at) < 45.0,
            "rotation {n} reached the file {:.1}s after SPIRE minted it",
            since_minted(&new, at)
        );
        serial.clone_from(&new.serial);
        seen.push((new, at));
    }
    assert!(
        wait_until(Duration::from_secs(5), || count_signals(out, "HUP") >= 2),
        "cmd got {} SIGHUPs for 2 rotations; log:\n{}",
        count_signals(out, "HUP"),
        helper.log_tail()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        leaf(&svid).unwrap().serial,
        serial,
        "a third rotation raced the check"
    );
    assert_eq!(count_signals(out, "HUP"), 2, "one SIGHUP per rotation");
    assert_eq!(recorded_starts(out).len(), 1, "cmd started exactly once");
    for (n, ((cert, at), (_, hup))) in seen.iter().zip(recorded_signals(out)).enumerate() {
        eprintln!(
            "MEASURE rotation {}: SVID file seen {:.2}s, cmd SIGHUP recorded {:.2}s after SPIRE minted the SVID",
            n + 1,
            since_minted(cert, *at),
            hup - minted(cert)
        );
    }
    let key = certs.join("svid_key.pem");
    assert!(
        key_matches_cert(&key, &svid),
        "key and SVID differ after rotations"
    );
    openssl_verify(&certs.join("svid_bundle.pem"), &svid).unwrap();

    stop_cleanly(&mut helper);
    assert!(
        wait_until(Duration::from_secs(2), || count_signals(out, "TERM") == 1),
        "cmd did not get SIGTERM at shutdown"
    );
}

/// The process named by `pid_file_name` gets one SIGHUP per rotation; pid files holding
/// `0`, `-1` or garbage signal nothing (checked by a canary in the same process group and pid
/// namespace as the helper) and are logged. The bad-pid helpers run in a private pid namespace
/// so that a regression cannot signal every process on the machine.
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "one scenario: a good and three bad pid files"
)]
fn pid_file_process_gets_one_signal_per_rotation_and_bad_pids_none() {
    let spire = rotating_spire();
    let dir = scratch();
    let script = signal_recorder(dir.path());
    let pid_config = |d: &Path| {
        format!(
            "{}pid_file_name = \"{}\"\nrenew_signal = \"SIGHUP\"\n",
            base_config(&spire.endpoint(), &d.join("certs")),
            d.join("pid").display()
        )
    };

    let good = dir.path().join("good");
    std::fs::create_dir(&good).unwrap();
    let mut recorder = Command::new(&script);
    recorder.arg(&good);
    let consumer = Proc::spawn(recorder);
    assert!(wait_until(Duration::from_secs(5), || recorded_starts(
        &good
    )
    .len()
        == 1));
    write_file(&good, "pid", &format!("{}\n", consumer.pid()));
    let good_config = write_file(&good, "helper.conf", &pid_config(&good));
    let mut good_helper = Helper::spawn(&good_config, &[]);

    let mut bad = Vec::new();
    for (name, content) in [("zero", "0"), ("negative", "-1"), ("garbage", "12abc")] {
        let d = dir.path().join(name);
        std::fs::create_dir(&d).unwrap();
        write_file(&d, "pid", content);
        let config = write_file(&d, "helper.conf", &pid_config(&d));
        let mut wrapped = Command::new("unshare");
        wrapped
            .args(["--pid", "--fork", "--kill-child", "--", "/bin/sh", "-c"])
            .arg("\"$0\" \"$1\" & exec \"$2\" -config \"$3\"")
            .arg(&script)
            .arg(&d)
            .arg(HELPER)
            .arg(&config);
        // The recorder must be able to trap HUP here too, or "no signal" would prove nothing
        // when the suite runs with HUP ignored.
        spiffe_helper_notify::reset_signal_dispositions(&mut wrapped);
        bad.push((d, Helper::spawn_command(wrapped, &config)));
    }

    let svid = good.join("certs/svid.pem");
    let serial = first_serial(&mut good_helper, &svid);
    // The first write notifies too (upstream does the same).
    assert!(
        wait_until(Duration::from_secs(5), || count_signals(&good, "HUP") == 1),
        "pid-file process not signalled after the first write; log:\n{}",
        good_helper.log_tail()
    );
    for (d, helper) in &mut bad {
        first_serial(helper, &d.join("certs/svid.pem"));
        assert_eq!(
            recorded_starts(d).len(),
            1,
            "canary in {} not running",
            d.display()
        );
    }

    let Some((new, at)) = wait_for_rotation(&svid, &serial, ROTATION) else {
        panic!(
            "no rotation within {ROTATION:?}; log:\n{}",
            good_helper.log_tail()
        );
    };
    assert!(
        wait_until(Duration::from_secs(5), || count_signals(&good, "HUP") >= 2),
        "no SIGHUP after the rotation; log:\n{}",
        good_helper.log_tail()
    );
    for (d, _) in &bad {
        let bad_svid = d.join("certs/svid.pem");
        assert!(
            wait_until(Duration::from_secs(10), || leaf(&bad_svid)
                .is_some_and(|l| l.serial == new.serial)),
            "helper for {} did not follow the rotation",
            d.display()
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count_signals(&good, "HUP"), 2, "one SIGHUP per rotation");
    let hup = recorded_signals(&good)[1].1;
    eprintln!(
        "MEASURE rotation: SVID file seen {:.2}s, pid-file SIGHUP recorded {:.2}s after SPIRE minted the SVID",
        since_minted(&new, at),
        hup - minted(&new)
    );
    good_helper.assert_running("after the rotation");
    for (d, helper) in &mut bad {
        helper.assert_running(&format!("with pid file {}", d.display()));
        assert_eq!(
            recorded_signals(d),
            Vec::new(),
            "a pid file holding {:?} signalled something",
            std::fs::read_to_string(d.join("pid")).unwrap()
        );
        let pid_path = d.join("pid").display().to_string();
        assert!(
            helper.log().contains(&pid_path),
            "the skipped pid file {pid_path} is not logged; log:\n{}",
            helper.log_tail()
        );
    }
}

/// SIGTERM (and SIGINT) stop the daemon with exit 0 within 2 s; the child gets SIGTERM;
/// the health server answered before and is gone after.
#[test]
fn sigterm_and_sigint_stop_the_daemon_cleanly_and_terminate_the_child() {
    let spire = spire_with(&Entry::new(WORKLOAD));
    let dir = scratch();
    let script = signal_recorder(dir.path());
    for (name, sig) in [("term", Signal::SIGTERM), ("int", Signal::SIGINT)] {
        let out = dir.path().join(name);
        std::fs::create_dir(&out).unwrap();
        let port = free_port();
        let config = write_file(
            &out,
            "helper.conf",
            &format!(
                "{}cmd = \"{}\"\ncmd_args = \"{}\"\nrenew_signal = \"SIGHUP\"\n\
                 health_checks {{\n  listener_enabled = true\n  bind_port = {port}\n  \
                 liveness_path = \"/health/live\"\n  readiness_path = \"/health/ready\"\n}}\n",
                base_config(&spire.endpoint(), &out.join("certs")),
                script.display(),
                out.display()
            ),
        );
        let mut helper = Helper::spawn(&config, &["--daemon-mode", "true"]);
        assert!(
            wait_until(Duration::from_secs(30), || http_status(
                port,
                "/health/ready"
            ) == Some(200)),
            "{name}: never ready; log:\n{}",
            helper.log_tail()
        );
        assert_eq!(
            http_status(port, "/health/live"),
            Some(200),
            "{name}: liveness"
        );
        assert!(
            wait_until(Duration::from_secs(5), || recorded_starts(&out).len() == 1),
            "{name}: cmd not started"
        );

        let start = Instant::now();
        helper.signal(sig);
        let status = helper.wait_exit(Duration::from_secs(2));
        let took = start.elapsed();
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "{name}: exit status {status:?} after {took:?}; log:\n{}",
            helper.log_tail()
        );
        eprintln!("MEASURE {name}: exit 0 {took:?} after the signal");
        assert_eq!(
            count_signals(&out, "TERM"),
            1,
            "{name}: child did not get SIGTERM"
        );
        assert_eq!(
            http_status(port, "/health/live"),
            None,
            "{name}: health server still up"
        );
    }
}

/// The agent is killed (SIGKILL) and restarted under a running daemon: the helper keeps
/// running, reconnects on its own and follows later rotations; no reader ever sees an empty or
/// partial file meanwhile.
#[test]
fn daemon_survives_an_agent_restart_and_keeps_rotating() {
    let mut spire = rotating_spire();
    let dir = scratch();
    let certs = dir.path().join("certs");
    let config = write_file(
        dir.path(),
        "helper.conf",
        &base_config(&spire.endpoint(), &certs),
    );
    let mut helper = Helper::spawn(&config, &[]);
    let svid = certs.join("svid.pem");
    let mut serial = first_serial(&mut helper, &svid);

    // A reader checking all three files every 10 ms for the rest of the test.
    let stop = Arc::new(AtomicBool::new(false));
    let (reads, bad_reads) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let reader = {
        let (stop, reads, bad_reads, certs) = (
            stop.clone(),
            reads.clone(),
            bad_reads.clone(),
            certs.clone(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                for (name, label) in [
                    ("svid.pem", "CERTIFICATE"),
                    ("svid_key.pem", "PRIVATE KEY"),
                    ("svid_bundle.pem", "CERTIFICATE"),
                ] {
                    let text = std::fs::read_to_string(certs.join(name)).unwrap_or_default();
                    let blocks = pem_blocks(&text);
                    if blocks.is_empty()
                        || blocks.iter().any(|(l, der)| l != label || der.is_empty())
                    {
                        bad_reads.fetch_add(1, Ordering::Relaxed);
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };

    spire.kill_agent();
    std::thread::sleep(Duration::from_secs(3));
    helper.assert_running("while the agent was down");
    spire.start_agent();
    for n in 1..=2 {
        let Some((new, _)) = wait_for_rotation(&svid, &serial, Duration::from_secs(60)) else {
            panic!(
                "no new SVID ({n}) within 60 s after the agent restart; log:\n{}",
                helper.log_tail()
            );
        };
        serial = new.serial;
    }
    helper.assert_running("after the agent restart");
    stop.store(true, Ordering::Relaxed);
    reader.join().unwrap();
    assert_eq!(
        bad_reads.load(Ordering::Relaxed),
        0,
        "{} of {} reads saw an empty or partial file",
        bad_reads.load(Ordering::Relaxed),
        reads.load(Ordering::Relaxed)
    );
    let key = certs.join("svid_key.pem");
    assert!(key_matches_cert(&key, &svid), "key and SVID differ");
    openssl_verify(&certs.join("svid_bundle.pem"), &svid).unwrap();
    stop_cleanly(&mut helper);
}
