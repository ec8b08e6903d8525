//! A child gets every signal at its default action and an empty mask, even when its
//! supervisor was started with signals ignored (`nohup`, `cmd &` in a script, CI runners).
//!
//! The supervisor is a separate process: this test binary again, started by
//! `sh -c "trap '' HUP INT QUIT; exec ..."` to run the ignored probe below, so the test
//! process's own dispositions never change.
#![allow(clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use spiffe_helper_notify::{ChildCommand, Events, Notifier, NotifySettings, RestartPolicy};
use tokio_util::sync::CancellationToken;

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
    // With the reset: nothing ignored, nothing blocked; and so for `cmd` as the notifier starts it.
    assert_eq!(field("reset child SigIgn:"), 0, "{seen}");
    assert_eq!(field("reset child SigBlk:"), 0, "{seen}");
    assert_eq!(field("notifier child SigIgn:"), 0, "{seen}");
    assert_eq!(field("notifier child SigBlk:"), 0, "{seen}");
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
    let cmd = notifier_child_status(Path::new(&out).with_extension("cmd").as_path());
    let report = format!(
        "supervisor SigIgn: {}\nplain child SigIgn: {}\nreset child SigIgn: {}\nreset child SigBlk: {}\nnotifier child SigIgn: {}\nnotifier child SigBlk: {}\n",
        field(&own, "SigIgn:"),
        field(&plain, "SigIgn:"),
        field(&reset, "SigIgn:"),
        field(&reset, "SigBlk:"),
        field(&cmd, "SigIgn:"),
        field(&cmd, "SigBlk:"),
    );
    fs::write(out, report).expect("write the findings");
}

struct Unheard;
impl Events for Unheard {}

/// The status of `cmd` as the [`Notifier`] starts it at the first update (`exec cat` writes
/// its own `/proc/self/status` to `path`).
fn notifier_child_status(path: &Path) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let settings = NotifySettings {
            child: Some(ChildCommand {
                program: "sh".into(),
                args: vec![
                    "-c".into(),
                    r#"exec cat /proc/self/status > "$0""#.into(),
                    path.into(),
                ],
            }),
            restart: RestartPolicy::OnRotation,
            stop_timeout: Duration::from_secs(1),
            renew_signal: None,
            pid_file: None,
        };
        let mut notifier = Notifier::with_settings(settings, Arc::new(Unheard), &shutdown);
        notifier.x509_updated();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let status = loop {
            let text = fs::read_to_string(path).unwrap_or_default();
            if text.contains("SigBlk:") || tokio::time::Instant::now() > deadline {
                break text;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        shutdown.cancel();
        notifier.shutdown().await;
        status
    })
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
