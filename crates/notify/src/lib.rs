//! Consumer notification for `spiffe-helper-rust`, usable by any program that supervises
//! another one.
//!
//! The helper tells its consumer about new files by starting or signalling a child (`cmd`, or
//! the program after `--`) and by signalling the process named in a pid file
//! (docs/behaviour.md, "Notification"; docs/consumers.md). This crate is that part. It sits
//! under the helper's run loop (`spiffe-helper-app`) and knows nothing of the Workload API,
//! the configuration or the health server: it takes a program, a restart policy, a signal and
//! a pid-file path, and reports what it did through [`Events`].
//!
//! - [`Notifier`]: one per daemon. [`Notifier::x509_updated`] starts the child the first time
//!   and sends it the renew signal afterwards, and signals the pid-file process (with retries);
//!   the child is restarted by its [`RestartPolicy`]; the helper's SIGTERM/SIGINT/SIGQUIT are
//!   forwarded when the child is the workload; [`Notifier::shutdown`] stops it with a grace
//!   period and returns the exit code the helper should use.
//! - A pid file is read the way daemons write it (the pid on the first line) and is never
//!   trusted when another user could have written it; pids that are not > 0 and the helper's
//!   own pid are never signalled.
//! - [`reset_signal_dispositions`] gives a child a clean slate: every signal at its default
//!   action and an empty signal mask, as systemd does for each service it starts. Without it a
//!   child inherits every signal its supervisor's parent ignored (`nohup`, a non-interactive
//!   shell's `cmd &`, many CI runners ignore SIGHUP, SIGINT or SIGQUIT), and a shell cannot
//!   even `trap` a signal that was ignored when it started: the renew signal and the forwarded
//!   stop signals would never arrive. The [`Notifier`] applies it to every child it starts.
//!
//! ```no_run
//! use std::sync::Arc;
//! use std::time::Duration;
//! use spiffe_helper_notify::{ChildCommand, Events, Notifier, NotifySettings, RestartPolicy, Signal};
//! use tokio_util::sync::CancellationToken;
//!
//! struct Quiet;
//! impl Events for Quiet {}
//!
//! # async fn demo() {
//! let shutdown = CancellationToken::new();
//! let settings = NotifySettings {
//!     child: Some(ChildCommand { program: "nginx".into(), args: vec!["-g".into(), "daemon off;".into()] }),
//!     restart: RestartPolicy::OnRotation,
//!     stop_timeout: Duration::from_secs(10),
//!     renew_signal: Some(Signal::SIGHUP),
//!     pid_file: None,
//! };
//! let mut notifier = Notifier::with_settings(settings, Arc::new(Quiet), &shutdown);
//! notifier.x509_updated(); // starts nginx
//! notifier.x509_updated(); // sends it SIGHUP
//! shutdown.cancel();
//! let _ = notifier.shutdown().await; // SIGTERM, then SIGKILL after 10 s
//! # }
//! ```
//!
//! To start a program of your own with the same clean slate:
//!
//! ```no_run
//! # fn demo() -> std::io::Result<()> {
//! let mut command = std::process::Command::new("nginx");
//! spiffe_helper_notify::reset_signal_dispositions(&mut command);
//! let child = command.spawn()?;
//! # drop(child);
//! # Ok(())
//! # }
//! ```

mod child;
mod notifier;
mod pidfile;
mod signals;

pub use child::{ChildCommand, DEFAULT_STOP_TIMEOUT, RestartPolicy, exit_code};
pub use nix::sys::signal::Signal;
pub use notifier::{Notifier, NotifySettings};
pub use signals::reset_signal_dispositions;

/// What the notifier reports as it works: the helper feeds it into its health state
/// (readiness and `/metrics`). Both methods do nothing by default.
pub trait Events: Send + Sync {
    /// A child was started (first start or restart).
    fn child_started(&self) {}

    /// A renew signal was sent to the child or the pid-file process (`delivered`), or could
    /// not be (`!delivered`: the child was gone, or the pid file was still unusable after
    /// every retry).
    fn signal_sent(&self, delivered: bool) {
        let _ = delivered;
    }
}
