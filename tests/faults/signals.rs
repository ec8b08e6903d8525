//! SIGTERM at awkward moments: during the start-up retries (no agent), while running, and
//! right after an update arrived (during the write).

use std::time::{Duration, Instant};

use crate::faults::kit::{
    Fake, FileChecker, Running, X509Files, daemon_config, pem_problem, start_daemon, stray_temps,
    wait_ready,
};
use crate::inspect::http_get;
use crate::inspect::{key_matches_cert, leaf};
use crate::support::{Helper, free_port, scratch, stop_cleanly, write_file};

/// Waits until the helper has logged (at debug) three start-up retries, so the
/// SIGTERM that follows lands during the retries.
fn wait_for_retries(helper: &Helper) {
    let retries = || {
        helper
            .log()
            .lines()
            .filter(|l| l.contains("DEBUG") && l.contains("retrying"))
            .count()
    };
    assert!(
        crate::support::wait_until(Duration::from_secs(10), || retries() >= 3),
        "fewer than 3 logged start-up retries in 10 s; log:\n{}",
        crate::faults::kit::tail(helper)
    );
}

/// No agent at all: the daemon is retrying the first fetch (deadline 30 s) when SIGTERM comes;
/// it exits 0 at once.
#[test]
fn sigterm_during_startup_retries_exits_0_promptly() {
    let dir = scratch();
    let certs = dir.path().join("certs");
    let socket = dir.path().join("no-agent.sock");
    let port = free_port();
    let config = daemon_config(&format!("unix://{}", socket.display()), &certs, port, "")
        .replace("startup_timeout = \"10s\"", "startup_timeout = \"30s\"");
    let mut helper = start_daemon(dir.path(), &config);
    wait_for_retries(&helper);
    helper.assert_running("while retrying the first fetch");
    let took = stop_cleanly(&mut helper);
    eprintln!("SIGTERM during start-up retries: exit 0 after {took:?}");
    assert!(
        !certs.join("svid.pem").exists(),
        "a file was written without an agent"
    );
}

/// One-shot mode, no agent, SIGTERM during the retries: prompt exit, non-zero (the files were
/// not written, so an init container must not report success), nothing written.
#[test]
fn sigterm_during_oneshot_startup_exits_promptly_without_success() {
    let dir = scratch();
    let certs = dir.path().join("certs");
    let socket = dir.path().join("no-agent.sock");
    let config = write_file(
        dir.path(),
        "helper.conf",
        &format!(
            "agent_address = \"unix://{}\"\ncert_dir = \"{}\"\nstartup_timeout = \"30s\"\n\
             log_level = \"debug\"\n",
            socket.display(),
            certs.display()
        ),
    );
    let mut helper = Helper::spawn(&config, &["--daemon-mode", "false"]);
    wait_for_retries(&helper);
    helper.assert_running("while retrying");
    let start = Instant::now();
    helper.sigterm();
    let status = helper.wait_exit(Duration::from_secs(2));
    let Some(status) = status else {
        panic!(
            "one-shot still running 2 s after SIGTERM; log:\n{}",
            crate::faults::kit::tail(&helper)
        );
    };
    eprintln!(
        "one-shot SIGTERM during start-up: {status} after {:?}",
        start.elapsed()
    );
    assert_eq!(
        status.code(),
        Some(1),
        "one-shot interrupted before writing must not exit 0"
    );
    assert!(!certs.join("svid.pem").exists());
}

/// SIGTERM while running: exit 0 within 2 s, the health port is closed afterwards.
#[test]
fn sigterm_while_running_exits_0_within_2s_and_closes_health() {
    let Running {
        mut helper,
        port,
        fake: _fake,
        dir: _dir,
        ..
    } = Running::start("");
    let took = stop_cleanly(&mut helper);
    eprintln!("SIGTERM while running: exit 0 after {took:?}");
    assert!(
        http_get(port, "/health/live").is_none(),
        "health port still answers after exit"
    );
}

/// SIGTERM right after an update was pushed (0-30 ms later, i.e. around the write), 12 times:
/// every run exits 0 within 2 s and leaves a consistent file set (one complete SVID, its key,
/// no temp files).
#[test]
fn sigterm_during_writes_leaves_consistent_files() {
    let fake = Fake::start();
    fake.push_fresh();
    let dir = scratch();
    let certs = dir.path().join("certs");
    let files = X509Files::in_dir(&certs);
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut exits = Vec::new();
    let mut newest = 0;
    for run in 0..12 {
        let port = free_port();
        let mut helper = start_daemon(
            dir.path(),
            &daemon_config(&fake.endpoint(), &certs, port, ""),
        );
        wait_ready(&mut helper, &files.svid, port);
        let checker = FileChecker::start(&files);
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let delay = Duration::from_millis(rng % 31);
        let pushed = fake.push_fresh();
        std::thread::sleep(delay);
        exits.push(stop_cleanly(&mut helper));
        let (_, problems) = checker.finish();
        assert!(
            problems.is_empty(),
            "run {run}: invalid content seen: {problems:#?}"
        );
        for (path, label, one) in [
            (&files.svid, "CERTIFICATE", false),
            (&files.key, "PRIVATE KEY", true),
            (&files.bundle, "CERTIFICATE", false),
        ] {
            let bytes = std::fs::read(path).unwrap();
            assert_eq!(
                pem_problem(&bytes, label, one),
                None,
                "run {run}: {}",
                path.display()
            );
        }
        assert!(
            key_matches_cert(&files.key, &files.svid),
            "run {run}: key/cert mismatch"
        );
        assert_eq!(
            stray_temps(&certs),
            Vec::<String>::new(),
            "run {run}: temp files left"
        );
        if leaf(&files.svid).is_some_and(|l| l.serial == pushed) {
            newest += 1;
        }
    }
    let slowest = exits.iter().max().unwrap();
    eprintln!(
        "SIGTERM during writes: 12 runs, slowest exit {slowest:?}, {newest} runs ended with the update written"
    );
}

/// The bounded drain with a `cmd` that ignores SIGTERM: the helper's SIGTERM is passed on,
/// ignored, and `cmd_stop_timeout` (3 s) later the child gets SIGKILL; the helper then exits 0
/// at once, well inside its drain bound (`cmd_stop_timeout` + 5 s, at least 10 s), so without
/// the "exiting anyway" warning, and never before its child is gone.
#[test]
fn sigterm_with_a_cmd_ignoring_it_kills_the_cmd_after_cmd_stop_timeout() {
    let dir = scratch();
    let script = write_file(
        dir.path(),
        "stubborn.sh",
        "#!/bin/sh\ntrap '' TERM\necho $$ > \"$1/child.pid\"\nwhile :; do sleep 0.1; done\n",
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let extra = format!(
        "cmd = \"{}\"\ncmd_args = \"{}\"\ncmd_stop_timeout = \"3s\"\n",
        script.display(),
        dir.path().display()
    );
    let Running {
        mut helper,
        fake: _fake,
        dir: _helper_dir,
        ..
    } = Running::start(&extra);
    let pid_file = dir.path().join("child.pid");
    assert!(
        crate::support::wait_until(Duration::from_secs(10), || std::fs::read_to_string(
            &pid_file
        )
        .is_ok_and(|t| t.ends_with('\n'))),
        "cmd did not start; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    let child: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let start = Instant::now();
    helper.sigterm();
    let status = helper.wait_exit(Duration::from_secs(15));
    let took = start.elapsed();
    eprintln!("MEASURE SIGTERM with a cmd ignoring it (cmd_stop_timeout 3 s): exit after {took:?}");
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "{status:?} after {took:?}; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    assert!(
        took >= Duration::from_millis(2900) && took < Duration::from_secs(8),
        "exit after {took:?}: want cmd_stop_timeout (3 s) plus little; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    // Gone (a zombie left for init to reap would still answer for a moment).
    assert!(
        crate::support::wait_until(Duration::from_secs(2), || {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(child), None).is_err()
        }),
        "the stubborn cmd {child} outlived the helper"
    );
    let log = helper.log();
    assert!(
        !log.contains("exiting anyway"),
        "the drain hit its bound; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
}
