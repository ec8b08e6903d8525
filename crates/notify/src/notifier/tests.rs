//! The notifier with real child processes (`sh -c`, `sleep`). Signals the helper would get
//! are injected through the supervisor's channel, never sent to the test process.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{ChildCommand, Notifier, NotifySettings, RestartPolicy};
use crate::{Events, pidfile};

fn sh(script: &str) -> ChildCommand {
    ChildCommand {
        program: OsString::from("sh"),
        args: vec![OsString::from("-c"), OsString::from(script)],
    }
}

/// Nobody listens to the events in these tests: they watch the child's own traces.
struct Unheard;

impl Events for Unheard {}

fn events() -> Arc<dyn Events> {
    Arc::new(Unheard)
}

fn notifier(
    child: ChildCommand,
    restart: RestartPolicy,
    renew_signal: Option<Signal>,
) -> (Notifier, mpsc::UnboundedSender<Signal>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let settings = NotifySettings {
        child: Some(child),
        restart,
        stop_timeout: Duration::from_millis(500),
        renew_signal,
        pid_file: None,
    };
    let n = Notifier::with_signals(settings, events(), &CancellationToken::new(), rx);
    (n, tx)
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

async fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

fn log_in(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("log")
}

/// A child that records its start and the signals it gets, then waits.
fn recorder(log: &Path, exit_on: &str, code: u8) -> ChildCommand {
    let log = log.display();
    sh(&format!(
        "trap 'echo HUP >> {log}' HUP; trap 'echo {exit_on} >> {log}; exit {code}' {exit_on}; \
         echo start >> {log}; while :; do sleep 0.05; done"
    ))
}

#[tokio::test]
async fn on_rotation_restarts_an_exited_child_only_at_the_next_update() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_in(&dir);
    let (mut n, _signals) = notifier(
        sh(&format!("echo start >> {}; exit 3", log.display())),
        RestartPolicy::OnRotation,
        Some(Signal::SIGHUP),
    );
    n.x509_updated();
    assert!(wait_for(Duration::from_secs(5), || lines(&log).len() == 1).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(lines(&log).len(), 1, "restarted without an update");
    n.x509_updated();
    assert!(wait_for(Duration::from_secs(5), || lines(&log).len() == 2).await);
    // Upstream exits 0 on SIGTERM whatever cmd did: the child decides nothing.
    assert_eq!(n.shutdown().await, None);
}

#[tokio::test]
async fn a_running_child_gets_the_renew_signal_and_the_forwarded_stop_signal() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_in(&dir);
    let (mut n, signals) = notifier(
        recorder(&log, "INT", 5),
        RestartPolicy::Never,
        Some(Signal::SIGHUP),
    );
    n.x509_updated();
    assert!(wait_for(Duration::from_secs(5), || lines(&log) == ["start"]).await);
    n.x509_updated();
    assert!(wait_for(Duration::from_secs(5), || lines(&log).len() == 2).await);
    signals.send(Signal::SIGINT).unwrap();
    assert_eq!(n.shutdown().await, Some(5));
    assert_eq!(lines(&log), ["start", "HUP", "INT"]);
}

#[tokio::test]
async fn never_stops_the_helper_with_the_child_code_or_128_plus_signal() {
    for (script, want) in [
        ("exit 7", 7),
        ("exit 0", 0),
        ("kill -9 $$", 137),
        ("kill -15 $$", 143),
    ] {
        let (mut n, _signals) = notifier(sh(script), RestartPolicy::Never, None);
        n.x509_updated();
        let code = tokio::time::timeout(Duration::from_secs(5), n.stopped())
            .await
            .unwrap();
        assert_eq!(code, want, "{script}");
        // Another update does not start it again, and shutdown reports the same code.
        n.x509_updated();
        assert_eq!(n.shutdown().await, Some(want), "{script}");
    }
}

#[tokio::test]
async fn stopped_stays_pending_unless_the_child_ends_the_helper() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_in(&dir);
    let (mut n, _signals) = notifier(
        sh(&format!("echo start >> {}; exit 1", log.display())),
        RestartPolicy::OnRotation,
        None,
    );
    n.x509_updated();
    assert!(wait_for(Duration::from_secs(5), || lines(&log).len() == 1).await);
    let waited = tokio::time::timeout(Duration::from_millis(300), n.stopped()).await;
    assert!(waited.is_err(), "on-rotation child exit ended the helper");
    let _ = n.shutdown().await;
}

#[tokio::test]
async fn a_child_that_ignores_sigterm_is_killed_after_the_stop_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_in(&dir);
    let (mut n, _signals) = notifier(
        sh(&format!(
            "trap '' TERM; echo start >> {}; while :; do sleep 0.05; done",
            log.display()
        )),
        RestartPolicy::Never,
        None,
    );
    n.x509_updated();
    assert!(wait_for(Duration::from_secs(5), || lines(&log).len() == 1).await);
    let started = std::time::Instant::now();
    assert_eq!(n.shutdown().await, Some(137), "SIGKILL: 128 + 9");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn sigquit_is_forwarded_and_ends_the_helper_with_the_child_code() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_in(&dir);
    let (mut n, signals) = notifier(recorder(&log, "QUIT", 9), RestartPolicy::Always, None);
    n.x509_updated();
    assert!(wait_for(Duration::from_secs(5), || lines(&log) == ["start"]).await);
    signals.send(Signal::SIGQUIT).unwrap();
    let code = tokio::time::timeout(Duration::from_secs(5), n.stopped())
        .await
        .unwrap();
    assert_eq!(code, 9);
    assert_eq!(lines(&log), ["start", "QUIT"]);
}

#[tokio::test]
async fn always_restarts_an_exited_child_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let log = log_in(&dir);
    let (mut n, _signals) = notifier(
        sh(&format!("echo start >> {}; exit 2", log.display())),
        RestartPolicy::Always,
        None,
    );
    n.x509_updated();
    assert!(wait_for(Duration::from_secs(5), || lines(&log).len() == 1).await);
    // First restart after 1 s (±20%), without any update.
    assert!(wait_for(Duration::from_secs(4), || lines(&log).len() >= 2).await);
    assert_eq!(n.shutdown().await, Some(2));
}

#[test]
fn pid_file_retries_follow_the_client_backoff_for_about_50_s() {
    let mut backoff = pidfile::retry_backoff();
    let total: Duration = (1..pidfile::ATTEMPTS).map(|_| backoff.next_delay()).sum();
    // 100 ms doubling: 0.1 + 0.2 + ... + 25.6 = 51.1 s, each delay ±20%.
    assert!(
        total >= Duration::from_secs_f64(40.8) && total <= Duration::from_secs_f64(61.4),
        "{total:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_pid_file_that_appears_later_is_signalled_by_a_retry() {
    let mut sleeper = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("postmaster.pid");
    let settings = NotifySettings {
        renew_signal: Some(Signal::SIGTERM),
        pid_file: Some(path.clone()),
        ..NotifySettings::default()
    };
    let (_tx, rx) = mpsc::unbounded_channel();
    let mut n = Notifier::with_signals(settings, events(), &CancellationToken::new(), rx);
    n.x509_updated();
    // The first tries fail (no file); the file appears after 3 s of (paused) time.
    tokio::time::sleep(Duration::from_secs(3)).await;
    fs::write(&path, format!("{}\n/var/lib/postgresql\n", sleeper.id())).unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    let status = sleeper.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(15)
    );
    assert_eq!(n.shutdown().await, None);
}
