//! The run loop of `spiffe-helper-rust`: what the helper does once its configuration is
//! loaded. The binary (`bins/spiffe-helper-rust`) parses the command line, loads the
//! [`Config`](spiffe_helper_config::Config), starts logging and the runtime, and calls into
//! this crate; linkerd2-proxy's `linkerd-app` under its short `main` is the model.
//!
//! It wires the library crates together: the Workload API client's sources
//! (`spiffe-workload-client`) feed the files (`spiffe-helper-pem`), the consumer is told
//! (`spiffe-helper-notify`) and the probes see it all (`spiffe-helper-health`).
//!
//! - [`oneshot`]: initContainer mode. Fetch everything the config asks for under one start-up
//!   deadline (all or nothing: nothing is written unless every fetch succeeded), write it, exit.
//! - [`Daemon`]: sidecar mode in three steps, [`Daemon::start`] (bind the health listener, the
//!   same all-or-nothing first fetch and write, then the watch tasks), [`Daemon::failed`]
//!   (resolves only when a task stops for good) and [`Daemon::drain`] (the one bounded
//!   cleanup path).
//! - Private to the crate: the settings of every output file, taken from the config once
//!   (`outputs`), the mapping of an X.509 context onto files, and the one write path (off the
//!   runtime thread, reported to health: `writer`).
//!
//! ```no_run
//! use std::process::ExitCode;
//! use spiffe_helper_config::Config;
//! use spiffe_helper_run::{Daemon, Started};
//! use tokio_util::sync::CancellationToken;
//!
//! # async fn demo(config: Config) -> ExitCode {
//! let shutdown = CancellationToken::new(); // cancelled on SIGTERM/SIGINT
//! let mut daemon = Daemon::new(config, None, shutdown.clone());
//! let failed = match daemon.start().await {
//!     Ok(Started::Running) => tokio::select! {
//!         () = shutdown.cancelled() => None,
//!         fatal = daemon.failed() => Some(fatal.code),
//!     },
//!     Ok(Started::Interrupted) => None,
//!     Err(_) => Some(ExitCode::FAILURE),
//! };
//! let child = daemon.drain().await;
//! failed.unwrap_or_else(|| child.map_or(ExitCode::SUCCESS, ExitCode::from))
//! # }
//! ```

mod daemon;
mod heap;
mod oneshot;
mod outputs;
mod startup;
mod tick;
mod writer;

pub use daemon::{Daemon, Fatal, Started};
pub use oneshot::run as oneshot;
