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

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use spiffe_helper_config::Config;
use spiffe_helper_health::{HealthPaths, HealthServer, HealthState};
use spiffe_workload_client::{ConnectionState, JwtSource, WorkloadApiClient, X509Source};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::notify::Notifier;
use crate::outputs::Outputs;
use crate::startup;
use crate::writer::Writer;

/// How long the tasks get to finish after the shutdown signal. Covers the child's grace
/// period between SIGTERM and SIGKILL (5 s, the X.509 watch waits for it) plus the health
/// server's request drain.
const DRAIN: Duration = Duration::from_secs(10);

/// A task that stopped for good, and the exit code the helper ends with.
#[derive(Debug)]
pub struct Fatal {
    /// What to exit with.
    pub code: ExitCode,
    /// Why, for the log.
    pub reason: anyhow::Error,
}

impl Fatal {
    fn failure(reason: anyhow::Error) -> Self {
        Self {
            code: ExitCode::FAILURE,
            reason,
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
    health: HealthState,
    shutdown: CancellationToken,
    tasks: JoinSet<Result<(), Fatal>>,
    source: Option<X509Source>,
    jwt: Option<JwtSource>,
}

impl Daemon {
    /// A daemon for `config` that stops when `shutdown` is cancelled. Starts nothing yet.
    pub fn new(config: Config, shutdown: CancellationToken) -> Self {
        let health = HealthState::new(
            config.x509.is_some(),
            config.jwt_svids.iter().map(|e| e.path.clone()).collect(),
            config.jwt_bundle.clone(),
        );
        Self {
            config,
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
                health: self.health.clone(),
                shutdown: self.shutdown.clone(),
            };
            watch.spawn(&mut self.tasks, source, initial.x509_context);
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

    /// Stops everything: cancels the shutdown token, stops the X.509 source, and waits up
    /// to [`DRAIN`] for the tasks (the child is stopped by the notifier task).
    pub async fn drain(mut self) {
        self.shutdown.cancel();
        if let Some(source) = self.source.take() {
            source.shutdown().await;
        }
        if let Some(source) = self.jwt.take() {
            source.shutdown().await;
        }
        let all_done = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(DRAIN, all_done).await.is_err() {
            tracing::warn!("tasks did not stop within {DRAIN:?}; exiting anyway");
        }
    }

    async fn serve_health(&mut self) -> anyhow::Result<()> {
        let Some(settings) = &self.config.health else {
            return Ok(());
        };
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, settings.bind_port));
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

    fn notifier(&self) -> Notifier {
        let config = &self.config;
        Notifier::new(
            config.cmd.clone().map(|cmd| (cmd, config.cmd_args.clone())),
            config.renew_signal,
            config.pid_file_name.clone(),
            self.health.clone(),
            self.shutdown.clone(),
        )
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
