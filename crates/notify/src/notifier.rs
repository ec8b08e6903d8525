//! Telling the consumer about a new X.509-SVID (docs/behaviour.md, "Notification";
//! docs/consumers.md): start or signal the child (`cmd`, or the program after `--`), signal
//! the pid in `pid_file_name`, and stop the child at shutdown.
//!
//! The daemon's side of it: [`Notifier::with_settings`] once, [`Notifier::x509_updated`] after each X.509
//! update that changed a file, [`Notifier::stopped`] in its wait loop (the child can end the
//! helper), [`Notifier::shutdown`] at the end, whose result is the exit code to use when the
//! child decides it.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::child::{ChildCommand, DEFAULT_STOP_TIMEOUT, RestartPolicy, Supervisor, ToChild};
use crate::{Events, pidfile};

/// What to notify and how (the `cmd*`, `renew_signal` and `pid_file_name` settings).
#[derive(Clone, Debug)]
pub struct NotifySettings {
    /// The child: `cmd` with the split `cmd_args`, or the wrapper-mode argv.
    pub child: Option<ChildCommand>,
    /// `cmd_restart` (default [`RestartPolicy::OnRotation`]; [`RestartPolicy::Never`] under `--`).
    pub restart: RestartPolicy,
    /// `cmd_stop_timeout`: stop signal to SIGKILL (default [`DEFAULT_STOP_TIMEOUT`]).
    pub stop_timeout: Duration,
    /// `renew_signal`, sent to a running child and to the pid-file process.
    pub renew_signal: Option<Signal>,
    /// `pid_file_name`.
    pub pid_file: Option<PathBuf>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            child: None,
            restart: RestartPolicy::OnRotation,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            renew_signal: None,
            pid_file: None,
        }
    }
}

/// The running supervisor of the child.
struct ChildHandle {
    updates: mpsc::UnboundedSender<ToChild>,
    task: JoinHandle<Option<u8>>,
    policy: RestartPolicy,
}

/// Owns the consumer notifications for one daemon.
pub struct Notifier {
    settings: NotifySettings,
    child: Option<ChildHandle>,
    must_stop: watch::Receiver<Option<u8>>,
    pid_retry: Option<CancellationToken>,
    events: Arc<dyn Events>,
    shutdown: CancellationToken,
}

impl Notifier {
    /// Starts the child supervisor (idle until the first [`Notifier::x509_updated`]). When there
    /// is a child and the policy is [`RestartPolicy::Always`] or [`RestartPolicy::Never`], the
    /// helper's SIGTERM, SIGINT and SIGQUIT are forwarded to it as they are (under
    /// [`RestartPolicy::OnRotation`] the child gets SIGTERM at shutdown, as upstream's `cmd`;
    /// docs/behaviour.md, "Shutdown"). `events` hears of each child start and each signal
    /// sent (the helper's health state). Must be called inside the tokio runtime.
    pub fn with_settings(
        settings: NotifySettings,
        events: Arc<dyn Events>,
        shutdown: &CancellationToken,
    ) -> Self {
        // Under on-rotation (upstream `cmd`), upstream's contract holds: the child gets SIGTERM at
        // shutdown whatever stopped the helper, and SIGQUIT keeps its default action. When the
        // child is the workload (`always`, `never`: wrapper mode), it gets the signal itself.
        let forward = settings.restart != RestartPolicy::OnRotation;
        let signals = if settings.child.is_some() && forward {
            forward_os_signals(shutdown)
        } else {
            mpsc::unbounded_channel().1
        };
        Self::with_signals(settings, events, shutdown, signals)
    }

    /// [`Notifier::with_settings`] with the forwarded signals supplied (tests inject them instead of
    /// signalling the test process).
    fn with_signals(
        settings: NotifySettings,
        events: Arc<dyn Events>,
        shutdown: &CancellationToken,
        signals: mpsc::UnboundedReceiver<Signal>,
    ) -> Self {
        let (must_stop_tx, must_stop) = watch::channel(None);
        let shutdown = shutdown.child_token();
        let child = settings.child.clone().map(|command| {
            let (updates, updates_rx) = mpsc::unbounded_channel();
            let supervisor = Supervisor {
                command,
                policy: settings.restart,
                stop_timeout: settings.stop_timeout,
                renew_signal: settings.renew_signal,
                events: events.clone(),
                shutdown: shutdown.clone(),
                signals,
                updates: updates_rx,
                must_stop: must_stop_tx,
            };
            ChildHandle {
                updates,
                task: tokio::spawn(supervisor.run()),
                policy: settings.restart,
            }
        });
        Self {
            settings,
            child,
            must_stop,
            pid_retry: None,
            events,
            shutdown,
        }
    }

    /// Runs after each X.509 update that changed a file.
    pub fn x509_updated(&mut self) {
        if let Some(child) = &self.child {
            // A closed channel means the supervisor has ended; `stopped` says why.
            let _ = child.updates.send(ToChild::Updated);
        }
        self.notify_pid_file();
    }

    /// Resolves with the exit code when the helper must stop because of its child: the child
    /// exited under [`RestartPolicy::Never`] (its code, or 128 + signal), or the helper got
    /// SIGQUIT, which was forwarded to the child (the child's code after it exited or was
    /// killed at the stop timeout; 131 when no child was running). Pending forever otherwise.
    /// Cancel-safe: use it as a `select!` branch in a loop.
    pub async fn stopped(&mut self) -> u8 {
        // The borrow of the value ends here, before any other await (it is not `Send`).
        let code = match self.must_stop.wait_for(Option::is_some).await {
            Ok(code) => Some(code.unwrap_or(1)),
            Err(_) => None,
        };
        match code {
            Some(code) => code,
            None => std::future::pending().await,
        }
    }

    fn notify_pid_file(&mut self) {
        let (Some(path), Some(signal)) =
            (self.settings.pid_file.clone(), self.settings.renew_signal)
        else {
            return;
        };
        // A newer update supersedes an attempt still retrying for the previous one.
        if let Some(previous) = self.pid_retry.take() {
            previous.cancel();
        }
        let cancel = self.shutdown.child_token();
        self.pid_retry = Some(cancel.clone());
        let events = self.events.clone();
        tokio::spawn(async move {
            let mut backoff = pidfile::retry_backoff();
            for attempt in 1..=pidfile::ATTEMPTS {
                match pidfile::signal_pid_file(&path, signal) {
                    Ok(_) => {
                        events.signal_sent(true);
                        return;
                    }
                    Err(reason) => {
                        tracing::warn!(path = %path.display(), attempt, "not signalling pid file: {reason}");
                    }
                }
                if attempt == pidfile::ATTEMPTS {
                    break;
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(backoff.next_delay()) => {}
                }
            }
            events.signal_sent(false);
        });
    }

    /// Stops pending pid-file retries and the child: the forwarded signal the helper received
    /// (SIGTERM under on-rotation, or when the helper stops for another reason), then SIGKILL
    /// after the stop timeout.
    ///
    /// Returns the exit code the helper should exit with, decided by the child: `Some` when
    /// the restart policy is [`RestartPolicy::Always`] or [`RestartPolicy::Never`] (the child
    /// is the workload; wrapper mode) and the child was started; `None` under
    /// [`RestartPolicy::OnRotation`], where upstream exits 0 on SIGTERM whatever `cmd` does.
    pub async fn shutdown(&mut self) -> Option<u8> {
        self.shutdown.cancel();
        if let Some(retry) = self.pid_retry.take() {
            retry.cancel();
        }
        let child = self.child.take()?;
        let code = match child.task.await {
            Ok(code) => code,
            Err(err) => {
                tracing::error!(error = %err, "child supervisor failed");
                None
            }
        };
        match child.policy {
            RestartPolicy::OnRotation => None,
            RestartPolicy::Always | RestartPolicy::Never => code,
        }
    }
}

/// Forwards the helper's SIGTERM, SIGINT and SIGQUIT into a channel until shutdown.
fn forward_os_signals(shutdown: &CancellationToken) -> mpsc::UnboundedReceiver<Signal> {
    use tokio::signal::unix::{SignalKind, signal};
    let (tx, rx) = mpsc::unbounded_channel();
    for (kind, sig) in [
        (SignalKind::terminate(), Signal::SIGTERM),
        (SignalKind::interrupt(), Signal::SIGINT),
        (SignalKind::quit(), Signal::SIGQUIT),
    ] {
        let mut stream = match signal(kind) {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(signal = %sig, error = %err, "cannot listen for signal to forward");
                continue;
            }
        };
        let (tx, stop) = (tx.clone(), shutdown.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    got = stream.recv() => {
                        if got.is_none() || tx.send(sig).is_err() {
                            return;
                        }
                    }
                    () = stop.cancelled() => return,
                }
            }
        });
    }
    rx
}

#[cfg(test)]
mod tests;
