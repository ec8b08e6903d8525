//! A child gets every signal at its default action and an empty mask, even when its
//! supervisor was started with signals ignored (`nohup`, `cmd &` in a script, CI runners).
//!
//! The supervisor is a separate process: this test binary again, started by
//! `sh -c "trap '' HUP INT QUIT; exec ..."` to run the ignored probe below, so the test
//! process's own dispositions never change.
#![allow(clippy::expect_used)]

use std::fs;
use std::process::Command;

use nix::sys::signal::{SigSet, Signal};

/// Where the probe writes what it saw; set only when the probe runs as the supervisor.
const PROBE_OUT: &str = "SIGNAL_RESET_PROBE_OUT";
const PROBE: &str = "supervisor_probe_spawns_children_with_and_without_the_reset";

/// SigIgn/SigBlk bits of SIGHUP (1), SIGINT (2) and SIGQUIT (3).
const HUP_INT_QUIT: u64 = 0b111;

#[test]
fn a_child_of_a_supervisor_started_with_signals_ignored_gets_every_signal_at_default() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("probe");
    let exe = std::env::current_exe().expect("test binary path");
    let probe = Command::new("sh")
        .arg("-c")
        .arg(r#"trap '' HUP INT QUIT; exec "$0" --exact "$1" --ignored --test-threads=1"#)
        .arg(&exe)
        .arg(PROBE)
        .env(PROBE_OUT, &out)
        .output()
        .expect("run the probe");
    assert!(
        probe.status.success(),
        "the probe failed ({}): {}{}",
        probe.status,
        String::from_utf8_lossy(&probe.stdout),
        String::from_utf8_lossy(&probe.stderr)
    );
    let seen = fs::read_to_string(&out).expect("the probe wrote its findings");
    let field = |name: &str| -> u64 {
        let line = seen
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {seen}"));
        u64::from_str_radix(line.trim(), 16).expect("hex mask")
    };
    // The set-up really ignores the signals, and without the reset they survive exec.
    assert_eq!(
        field("supervisor SigIgn:") & HUP_INT_QUIT,
        HUP_INT_QUIT,
        "{seen}"
    );
    assert_eq!(
        field("plain child SigIgn:") & HUP_INT_QUIT,
        HUP_INT_QUIT,
        "{seen}"
    );
    // With the reset: nothing ignored, nothing blocked.
    assert_eq!(field("reset child SigIgn:"), 0, "{seen}");
    assert_eq!(field("reset child SigBlk:"), 0, "{seen}");
}

#[test]
#[ignore = "the supervisor side of the test above, which runs it with signals ignored"]
fn supervisor_probe_spawns_children_with_and_without_the_reset() {
    let out = std::env::var_os(PROBE_OUT).unwrap_or_else(|| {
        panic!("{PROBE_OUT} is unset: run a_child_of_a_supervisor_started_with_signals_ignored_gets_every_signal_at_default instead")
    });
    // A blocked signal must not reach the child either.
    let mut usr1 = SigSet::empty();
    usr1.add(Signal::SIGUSR1);
    usr1.thread_block().expect("block SIGUSR1");

    let own = fs::read_to_string("/proc/self/status").expect("own status");
    let plain = child_status(&mut Command::new("cat"));
    let mut command = Command::new("cat");
    spiffe_helper_notify::reset_signal_dispositions(&mut command);
    let reset = child_status(&mut command);
    let report = format!(
        "supervisor SigIgn: {}\nplain child SigIgn: {}\nreset child SigIgn: {}\nreset child SigBlk: {}\n",
        field(&own, "SigIgn:"),
        field(&plain, "SigIgn:"),
        field(&reset, "SigIgn:"),
        field(&reset, "SigBlk:"),
    );
    fs::write(out, report).expect("write the findings");
}

/// `cat /proc/self/status` run through `command`: the child's own view of its signals.
fn child_status(command: &mut Command) -> String {
    let output = command.arg("/proc/self/status").output().expect("run cat");
    assert!(output.status.success(), "cat failed: {}", output.status);
    String::from_utf8(output.stdout).expect("status is text")
}

fn field<'a>(status: &'a str, name: &str) -> &'a str {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map_or("missing", str::trim)
}
