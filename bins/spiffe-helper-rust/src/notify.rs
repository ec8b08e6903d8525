//! Telling the consumer about a new X.509-SVID (docs/behaviour.md#notification): start or signal `cmd`, signal the pid
//! in `pid_file_name`, and stop the child at shutdown.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use spiffe_helper_health::HealthState;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// How long a child gets between SIGTERM and SIGKILL when the helper stops.
const CHILD_GRACE: Duration = Duration::from_secs(5);
/// Attempts to signal the pid-file process (docs/behaviour.md#pid-file): 10 tries, 100 ms doubling (~51 s).
const PID_ATTEMPTS: u32 = 10;
const PID_FIRST_DELAY: Duration = Duration::from_millis(100);

/// A started child: its pid, and a flag its reaper task sets when it has exited.
struct Child {
    pid: Pid,
    exited: Arc<AtomicBool>,
    reaped: tokio::task::JoinHandle<()>,
}

/// Owns the consumer notifications for one daemon.
pub struct Notifier {
    cmd: Option<(String, Vec<String>)>,
    signal: Option<Signal>,
    pid_file: Option<PathBuf>,
    child: Option<Child>,
    pid_retry: Option<CancellationToken>,
    health: HealthState,
    shutdown: CancellationToken,
}

impl Notifier {
    pub fn new(
        cmd: Option<(String, Vec<String>)>,
        signal: Option<Signal>,
        pid_file: Option<PathBuf>,
        health: HealthState,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            cmd,
            signal,
            pid_file,
            child: None,
            pid_retry: None,
            health,
            shutdown,
        }
    }

    /// Runs after each X.509 update that changed a file.
    pub fn x509_updated(&mut self) {
        self.notify_cmd();
        self.notify_pid_file();
    }

    fn notify_cmd(&mut self) {
        let Some((program, args)) = &self.cmd else {
            return;
        };
        match &self.child {
            Some(child) if !child.exited.load(Ordering::Acquire) => {
                if let Some(signal) = self.signal {
                    let ok = send(child.pid, signal, "cmd");
                    self.health.signal_sent(ok);
                }
            }
            _ => self.child = start(program, args, &self.health),
        }
    }

    fn notify_pid_file(&mut self) {
        let (Some(path), Some(signal)) = (self.pid_file.clone(), self.signal) else {
            return;
        };
        // A newer update supersedes an attempt still retrying for the previous one.
        if let Some(previous) = self.pid_retry.take() {
            previous.cancel();
        }
        let cancel = self.shutdown.child_token();
        self.pid_retry = Some(cancel.clone());
        let health = self.health.clone();
        tokio::spawn(async move {
            let mut delay = PID_FIRST_DELAY;
            for attempt in 1..=PID_ATTEMPTS {
                match signal_pid_file(&path, signal) {
                    Ok(()) => {
                        health.signal_sent(true);
                        return;
                    }
                    Err(reason) => {
                        tracing::warn!(path = %path.display(), attempt, "not signalling pid file: {reason}");
                    }
                }
                if attempt == PID_ATTEMPTS {
                    break;
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(delay) => {}
                }
                delay *= 2;
            }
            health.signal_sent(false);
        });
    }

    /// Stops the child (SIGTERM, then SIGKILL after the grace period) and pending pid retries.
    pub async fn shutdown(&mut self) {
        if let Some(retry) = self.pid_retry.take() {
            retry.cancel();
        }
        let Some(mut child) = self.child.take() else {
            return;
        };
        if child.exited.load(Ordering::Acquire) {
            return;
        }
        send(child.pid, Signal::SIGTERM, "cmd");
        if tokio::time::timeout(CHILD_GRACE, &mut child.reaped)
            .await
            .is_err()
        {
            tracing::warn!(
                pid = child.pid.as_raw(),
                "child ignored SIGTERM; sending SIGKILL"
            );
            send(child.pid, Signal::SIGKILL, "cmd");
            let _ = child.reaped.await;
        }
    }
}

fn start(program: &str, args: &[String], health: &HealthState) -> Option<Child> {
    let mut child = match Command::new(program).args(args).spawn() {
        Ok(child) => child,
        Err(err) => {
            tracing::error!(cmd = program, error = %err, "cannot start cmd");
            return None;
        }
    };
    let raw = child.id().and_then(|id| i32::try_from(id).ok())?;
    health.child_started();
    tracing::info!(cmd = program, pid = raw, "started cmd");
    let exited = Arc::new(AtomicBool::new(false));
    let flag = exited.clone();
    let name = program.to_owned();
    let reaped = tokio::spawn(async move {
        match child.wait().await {
            Ok(status) => tracing::info!(cmd = name, pid = raw, %status, "cmd exited"),
            Err(err) => tracing::warn!(cmd = name, pid = raw, error = %err, "waiting for cmd"),
        }
        flag.store(true, Ordering::Release);
    });
    Some(Child {
        pid: Pid::from_raw(raw),
        exited,
        reaped,
    })
}

fn send(pid: Pid, signal: Signal, what: &str) -> bool {
    match kill(pid, signal) {
        Ok(()) => {
            tracing::info!(pid = pid.as_raw(), signal = %signal, "signalled {what}");
            true
        }
        Err(err) => {
            tracing::warn!(pid = pid.as_raw(), signal = %signal, error = %err, "cannot signal {what}");
            false
        }
    }
}

/// Reads the pid file afresh and signals it. Only a pid > 0 is ever signalled: 0 and negative
/// values address process groups (docs/behaviour.md#pid-file; upstream v0.11.0 signals them).
fn signal_pid_file(path: &Path, signal: Signal) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("reading: {err}"))?;
    let pid = parse_pid(&text)?;
    kill(Pid::from_raw(pid), signal).map_err(|err| format!("pid {pid}: {err}"))?;
    tracing::info!(path = %path.display(), pid, signal = %signal, "signalled pid file process");
    Ok(())
}

fn parse_pid(text: &str) -> Result<i32, String> {
    let trimmed = text.trim();
    let pid: i32 = trimmed
        .parse()
        .map_err(|_| format!("{trimmed:?} is not a decimal pid"))?;
    if pid <= 0 {
        return Err(format!(
            "pid {pid} is not > 0; refusing to signal a process group"
        ));
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::parse_pid;

    #[test]
    fn only_positive_decimal_pids_are_accepted() {
        assert_eq!(parse_pid(" 1234\n"), Ok(1234));
        for bad in ["0", "-1", "", "abc", "12x", "99999999999"] {
            assert!(parse_pid(bad).is_err(), "{bad:?}");
        }
    }
}
