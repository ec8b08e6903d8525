//! The child supervisor (docs/behaviour.md, "Child process"; docs/consumers.md, "Wrapper
//! mode and the restart policy"): starts `cmd` (or the wrapper-mode program),
//! signals it on rotation, restarts it by policy, forwards SIGTERM/SIGINT/SIGQUIT to it, and
//! stops it with a grace period.
//!
//! One task owns the child process; the [`Notifier`](crate::Notifier) talks to it
//! through a channel, so nothing else ever waits on or signals a pid that may have been reaped.

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt as _;
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use spiffe_workload_client::Backoff;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Events;

/// What happens when the child exits (`cmd_restart`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Start it again at the next X.509 update (upstream behaviour; the default for `cmd`).
    #[default]
    OnRotation,
    /// Start it again at once, with backoff (1 s doubling to 30 s, reset after 10 s of running).
    Always,
    /// The helper stops and exits with the child's exit code, or 128 + signal (the default in
    /// wrapper mode).
    Never,
}

/// The program to run and its arguments (already split, or verbatim after `--`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildCommand {
    /// The program (looked up in `PATH` when it has no `/`).
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
}

/// Default `cmd_stop_timeout`: time between the stop signal and SIGKILL.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);
const RESTART_FIRST: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(30);
/// A child that ran this long before exiting starts the restart backoff over.
const STABLE_RUN: Duration = Duration::from_secs(10);

/// Messages from the notifier to the supervisor task.
#[derive(Debug)]
pub(crate) enum ToChild {
    /// An X.509 update changed the files.
    Updated,
}

/// The exit code for a child's status: its code, or 128 + the signal that killed it.
#[must_use]
pub fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(1),
        (None, Some(sig)) => u8::try_from(128 + (sig & 0x7f)).unwrap_or(255),
        (None, None) => 1,
    }
}

pub(crate) struct Supervisor {
    pub(crate) command: ChildCommand,
    pub(crate) policy: RestartPolicy,
    pub(crate) stop_timeout: Duration,
    pub(crate) renew_signal: Option<Signal>,
    pub(crate) events: Arc<dyn Events>,
    /// Cancelled when the helper shuts down.
    pub(crate) shutdown: CancellationToken,
    /// The helper's SIGTERM/SIGINT/SIGQUIT, to forward.
    pub(crate) signals: mpsc::UnboundedReceiver<Signal>,
    pub(crate) updates: mpsc::UnboundedReceiver<ToChild>,
    /// Set to the exit code when the helper must stop because of the child.
    pub(crate) must_stop: watch::Sender<Option<u8>>,
}

struct Running {
    child: Child,
    pid: Pid,
    since: Instant,
}

impl Supervisor {
    /// Runs until shutdown (or the child ends the helper); returns the child's last exit code,
    /// if it was started and has exited (or was stopped).
    pub(crate) async fn run(mut self) -> Option<u8> {
        let mut running: Option<Running> = None;
        let mut last: Option<u8> = None;
        let mut restart_at: Option<Instant> = None;
        let mut backoff = Backoff::new(RESTART_FIRST, RESTART_MAX);
        loop {
            tokio::select! {
                biased;
                Some(signal) = self.signals.recv() => {
                    // SIGQUIT is not a shutdown signal of the daemon: stopping is up to us.
                    let code = self.stop(running.take(), signal).await.or(last);
                    if signal == Signal::SIGQUIT {
                        self.must_stop.send_replace(Some(code.unwrap_or(128 + 3)));
                    }
                    return code;
                }
                () = self.shutdown.cancelled() => {
                    // The signal that caused the shutdown (the daemon's own handler saw it
                    // too) may be queued just behind it: let the forwarders run first.
                    for _ in 0..4 {
                        tokio::task::yield_now().await;
                    }
                    let signal = self.signals.try_recv().unwrap_or(Signal::SIGTERM);
                    return self.stop(running.take(), signal).await.or(last);
                }
                status = wait(running.as_mut()) => {
                    let Some(gone) = running.take() else { continue };
                    let code = report_exit(&self.command, gone.pid, status);
                    last = Some(code);
                    match self.policy {
                        RestartPolicy::OnRotation => {}
                        RestartPolicy::Always => {
                            if gone.since.elapsed() >= STABLE_RUN {
                                backoff.reset();
                            }
                            let delay = backoff.next_delay();
                            tracing::info!(retry_in = ?delay, "restarting cmd (cmd_restart = \"always\")");
                            restart_at = Some(Instant::now() + delay);
                        }
                        RestartPolicy::Never => {
                            tracing::info!(code, "cmd exited and cmd_restart is \"never\"; the helper stops");
                            self.must_stop.send_replace(Some(code));
                            return Some(code);
                        }
                    }
                }
                () = sleep_until(restart_at) => {
                    restart_at = None;
                    running = self.start();
                }
                msg = self.updates.recv() => match msg {
                    Some(ToChild::Updated) => match &running {
                        Some(child) => {
                            if let Some(signal) = self.renew_signal {
                                let ok = send(child.pid, signal);
                                self.events.signal_sent(ok);
                            }
                        }
                        // A restart already scheduled ("always") picks up the new files.
                        None if restart_at.is_some() => {}
                        None if last.is_some() && self.policy == RestartPolicy::Never => {}
                        None => running = self.start(),
                    },
                    None => return self.stop(running.take(), Signal::SIGTERM).await.or(last),
                },
            }
        }
    }

    fn start(&self) -> Option<Running> {
        let name = self.command.program.to_string_lossy().into_owned();
        let mut command = Command::new(&self.command.program);
        command.args(&self.command.args);
        // A clean slate, as systemd gives a service: whatever signals the helper itself was
        // started with ignored (nohup, `cmd &` in a script), the child can trap them.
        crate::reset_signal_dispositions(command.as_std_mut());
        let child = match command.spawn() {
            Ok(child) => child,
            Err(err) => {
                tracing::error!(cmd = name, error = %err, "cannot start cmd");
                return None;
            }
        };
        let raw = child.id().and_then(|id| i32::try_from(id).ok())?;
        self.events.child_started();
        tracing::info!(cmd = name, pid = raw, "started cmd");
        Some(Running {
            child,
            pid: Pid::from_raw(raw),
            since: Instant::now(),
        })
    }

    /// Sends `signal`, waits up to the stop timeout, then SIGKILL; the child's exit code.
    async fn stop(&self, running: Option<Running>, signal: Signal) -> Option<u8> {
        let mut running = running?;
        send(running.pid, signal);
        let waited = tokio::time::timeout(self.stop_timeout, running.child.wait()).await;
        let status = if let Ok(status) = waited {
            status
        } else {
            tracing::warn!(
                pid = running.pid.as_raw(),
                timeout = ?self.stop_timeout,
                "cmd did not exit after {signal}; sending SIGKILL"
            );
            send(running.pid, Signal::SIGKILL);
            running.child.wait().await
        };
        Some(report_exit(&self.command, running.pid, status))
    }
}

async fn wait(running: Option<&mut Running>) -> std::io::Result<ExitStatus> {
    match running {
        Some(r) => r.child.wait().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn report_exit(command: &ChildCommand, pid: Pid, status: std::io::Result<ExitStatus>) -> u8 {
    let name = command.program.to_string_lossy();
    match status {
        Ok(status) => {
            tracing::info!(cmd = %name, pid = pid.as_raw(), %status, "cmd exited");
            exit_code(status)
        }
        Err(err) => {
            tracing::warn!(cmd = %name, pid = pid.as_raw(), error = %err, "waiting for cmd");
            1
        }
    }
}

pub(crate) fn send(pid: Pid, signal: Signal) -> bool {
    match kill(pid, signal) {
        Ok(()) => {
            tracing::info!(pid = pid.as_raw(), signal = %signal, "signalled cmd");
            true
        }
        Err(err) => {
            tracing::warn!(pid = pid.as_raw(), signal = %signal, error = %err, "cannot signal cmd");
            false
        }
    }
}

#[cfg(test)]
mod tests;
