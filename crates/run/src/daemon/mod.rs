//! Daemon (sidecar) mode as three steps, each called from `main`:
//!
//! - [`Daemon::start`]: bind the health listener, fetch everything, write everything, spawn
//!   the long-running tasks (the X.509 watch notifies the consumer once first);
//! - [`Daemon::failed`]: resolves only if a task stops for good (the X.509 watch ending, the
//!   health server failing), with the exit code to use;
//! - [`Daemon::drain`]: the one cleanup path, taken after a failed start, an interrupted
//!   start, a signal or a fatal task alike: stop the source and wait (bounded) for every task.
//!
//! Idle cost: every task sleeps on a channel or a timer; nothing polls.

mod jwt;
mod x509;

use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context as _;
use spiffe_helper_config::{CmdRestart, Config};
use spiffe_helper_health::{HealthPaths, HealthServer, HealthState};
use spiffe_helper_notify::{ChildCommand, Events, Notifier, NotifySettings, RestartPolicy};
use spiffe_workload_client::{ConnectionState, JwtSource, WorkloadApiClient, X509Source};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::outputs::Outputs;
use crate::startup;
use crate::writer::Writer;

/// The least time the tasks get to finish after the shutdown signal: the health server's
/// request drain (5 s) and the rest.
const DRAIN: Duration = Duration::from_secs(10);
/// Added to `cmd_stop_timeout` (the X.509 watch waits for the child between its stop signal
/// and SIGKILL) for the drain bound, so that the helper never exits before its child.
const DRAIN_AFTER_CHILD: Duration = Duration::from_secs(5);

/// A task that stopped for good, and the exit code the helper ends with.
#[derive(Debug)]
pub struct Fatal {
    /// What to exit with.
    pub code: ExitCode,
    /// Why, for the log.
    pub reason: anyhow::Error,
    /// The child decided (it exited under `cmd_restart = "never"`, or after SIGQUIT): an
    /// ordinary end, logged as such.
    by_child: bool,
}

impl Fatal {
    fn failure(reason: anyhow::Error) -> Self {
        Self {
            code: ExitCode::FAILURE,
            reason,
            by_child: false,
        }
    }

    /// The helper ends because its child did, with the child's `code`.
    fn child_exited(code: u8) -> Self {
        Self {
            code: ExitCode::from(code),
            reason: anyhow::anyhow!(
                "the child has stopped (exit code {code}); the helper exits with its code"
            ),
            by_child: true,
        }
    }

    /// Logs why the helper stops: an error, unless the child decided.
    pub fn log(&self) {
        if self.by_child {
            tracing::info!("{:#}", self.reason);
        } else {
            tracing::error!("{:#}", self.reason);
        }
    }
}

/// How [`Daemon::start`] ended when it did not fail.
pub enum Started {
    /// Files written, tasks running.
    Running,
    /// SIGTERM/SIGINT arrived before the first files were written.
    Interrupted,
}

/// The running daemon: its tasks and the X.509 source they follow.
pub struct Daemon {
    config: Config,
    /// The program after `--` (wrapper mode), which replaces `cmd`/`cmd_args`.
    child_argv: Option<Vec<OsString>>,
    /// The child's exit code, when the child is the workload and was stopped at shutdown.
    child_exit: Arc<OnceLock<u8>>,
    health: HealthState,
    shutdown: CancellationToken,
    tasks: JoinSet<Result<(), Fatal>>,
    source: Option<X509Source>,
    jwt: Option<JwtSource>,
}

impl Daemon {
    /// A daemon for `config` (and the wrapper-mode program, if any) that stops when `shutdown`
    /// is cancelled. Starts nothing yet.
    #[must_use]
    pub fn new(
        config: Config,
        child_argv: Option<Vec<OsString>>,
        shutdown: CancellationToken,
    ) -> Self {
        let health = HealthState::new(
            config.x509.is_some(),
            config.jwt_svids.iter().map(|e| e.path.clone()).collect(),
            config.jwt_bundle.clone(),
        );
        Self {
            config,
            child_argv,
            child_exit: Arc::default(),
            health,
            shutdown,
            tasks: JoinSet::new(),
            source: None,
            jwt: None,
        }
    }

    /// Binds health, fetches and writes everything, notifies once, spawns the tasks.
    ///
    /// # Errors
    /// The health port cannot be bound, the start-up fetch failed by its deadline, or the
    /// first write failed. Whatever was started is stopped by [`Daemon::drain`].
    pub async fn start(&mut self) -> anyhow::Result<Started> {
        self.serve_health().await?;
        let client = WorkloadApiClient::new(self.config.agent_address.clone());
        let outputs = Outputs::from_config(&self.config);
        let timeout = self.config.startup_timeout;
        let Some(initial) =
            startup::fetch_initial(&client, &outputs, timeout, &self.shutdown).await?
        else {
            return Ok(Started::Interrupted);
        };
        let writer = Writer::new(outputs, Some(self.health.clone()));
        let written = initial.write(&writer).await;
        self.source = initial.x509;
        self.jwt = initial.jwt;
        written?;

        if let Some(source) = &self.source {
            let watch = x509::Watch {
                writer: writer.clone(),
                notifier: self.notifier(),
                child_exit: self.child_exit.clone(),
                health: self.health.clone(),
                shutdown: self.shutdown.clone(),
            };
            watch.spawn(&mut self.tasks, source, initial.x509_snapshot);
        } else {
            // JWT-only: nothing to notify (JWT updates never do); the start-up fetch just
            // succeeded, and the JWT bundle watch (if any) reports the connection from here on.
            self.health.agent_connected(true);
        }
        if let Some(source) = &self.jwt {
            let jwt = jwt::Tasks {
                source: source.clone(),
                writer,
                health: self.health.clone(),
                shutdown: self.shutdown.clone(),
            };
            jwt.spawn(
                &mut self.tasks,
                initial.jwt_bundles.is_some(),
                initial.jwt_svids,
            );
        }
        Ok(Started::Running)
    }

    /// Resolves when a task stops for good; pending forever while all is well.
    pub async fn failed(&mut self) -> Fatal {
        loop {
            match self.tasks.join_next().await {
                Some(Ok(Ok(()))) => {}
                Some(Ok(Err(fatal))) => return fatal,
                Some(Err(err)) => {
                    return Fatal::failure(anyhow::Error::new(err).context("a task failed"));
                }
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// Stops everything: cancels the shutdown token, stops the X.509 source, and waits (at
    /// least 10 s, and `cmd_stop_timeout` + 5 s) for the tasks (the
    /// child is stopped by the X.509 watch). Returns the child's exit code when the child is
    /// the workload (`cmd_restart` always or never) and was started.
    pub async fn drain(mut self) -> Option<u8> {
        self.shutdown.cancel();
        if let Some(source) = self.source.take() {
            source.shutdown().await;
        }
        if let Some(source) = self.jwt.take() {
            source.shutdown().await;
        }
        let bound = (self.config.cmd_stop_timeout + DRAIN_AFTER_CHILD).max(DRAIN);
        let all_done = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(bound, all_done).await.is_err() {
            tracing::warn!("tasks did not stop within {bound:?}; exiting anyway");
        }
        self.child_exit.get().copied()
    }

    async fn serve_health(&mut self) -> anyhow::Result<()> {
        let Some(settings) = &self.config.health else {
            return Ok(());
        };
        let addr = SocketAddr::new(settings.bind_address, settings.bind_port);
        let paths = HealthPaths {
            liveness: settings.liveness_path.clone(),
            readiness: settings.readiness_path.clone(),
        };
        let server = HealthServer::bind(addr, paths, self.health.clone())
            .await
            .map_err(anyhow::Error::new)?;
        let stop = self.shutdown.clone();
        self.tasks.spawn(async move {
            server
                .serve(stop)
                .await
                .context("health server failed")
                .map_err(Fatal::failure)
        });
        Ok(())
    }

    /// The notifier of the X.509 watch: the child is the program after `--`, else `cmd` with
    /// its split `cmd_args`.
    fn notifier(&self) -> Notifier {
        let config = &self.config;
        let child = match &self.child_argv {
            Some(argv) => argv.split_first().map(|(program, args)| ChildCommand {
                program: program.clone(),
                args: args.to_vec(),
            }),
            None => config.cmd.as_ref().map(|program| ChildCommand {
                program: program.into(),
                args: config.cmd_args.iter().map(Into::into).collect(),
            }),
        };
        let settings = NotifySettings {
            child,
            restart: match config.cmd_restart {
                CmdRestart::Always => RestartPolicy::Always,
                CmdRestart::Never => RestartPolicy::Never,
                _ => RestartPolicy::OnRotation,
            },
            stop_timeout: config.cmd_stop_timeout,
            renew_signal: config.renew_signal,
            pid_file: config.pid_file_name.clone(),
        };
        let events = Arc::new(HealthEvents(self.health.clone()));
        Notifier::with_settings(settings, events, &self.shutdown)
    }
}

/// The notifier's reports, fed into the health state (readiness and `/metrics`).
struct HealthEvents(HealthState);

impl Events for HealthEvents {
    fn child_started(&self) {
        self.0.child_started();
    }

    fn signal_sent(&self, delivered: bool) {
        self.0.signal_sent(delivered);
    }
}

/// Mirrors a source's connection state into the health state (readiness and `/metrics`).
async fn report_connection(
    mut state: watch::Receiver<ConnectionState>,
    health: HealthState,
) -> Result<(), Fatal> {
    loop {
        let connected = matches!(*state.borrow_and_update(), ConnectionState::Connected);
        health.agent_connected(connected);
        if state.changed().await.is_err() {
            return Ok(());
        }
    }
}
