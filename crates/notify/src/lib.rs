//! Consumer notification for `spiffe-helper-rust`, usable by any program that supervises
//! another one.
//!
//! The helper tells its consumer about new files by starting or signalling a child
//! (`cmd`, or the program after `--`) and by signalling the process named in a pid file
//! (docs/behaviour.md, "Notification"; docs/consumers.md). This crate holds that part; it
//! knows nothing of the Workload API or of the helper's configuration.
//!
//! [`reset_signal_dispositions`] gives a child a clean slate: every signal at its default
//! action and an empty signal mask, as systemd does for each service it starts. Without it a
//! child inherits every signal its supervisor's parent ignored (`nohup`, a non-interactive
//! shell's `cmd &`, many CI runners ignore SIGHUP, SIGINT or SIGQUIT), and a shell cannot even
//! `trap` a signal that was ignored when it started: the renew signal and the forwarded stop
//! signals would never arrive.
//!
//! ```no_run
//! use std::process::Command;
//!
//! # fn demo() -> std::io::Result<()> {
//! let mut command = Command::new("nginx");
//! spiffe_helper_notify::reset_signal_dispositions(&mut command);
//! let child = command.spawn()?;
//! # drop(child);
//! # Ok(())
//! # }
//! ```

mod signals;

pub use signals::reset_signal_dispositions;
