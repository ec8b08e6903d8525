//! Daemon (sidecar) mode: the start-up fetch and write, then the X.509 watch, the JWT bundle
//! watch and one refresh schedule per JWT-SVID, until SIGTERM/SIGINT.
//!
//! Idle cost: every task sleeps on a channel or a timer; nothing polls.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use spiffe_helper_config::{Config, JwtSvidOutput};
use spiffe_helper_health::{HealthPaths, HealthServer, HealthState};
use spiffe_workload_client::{
    Backoff, ConnectionState, JwtSvid, WatchEvent, WorkloadApiClient, X509Context, X509Source,
};
use tokio::task::JoinSet;
use tokio_stream::StreamExt as _;
use tokio_util::sync::CancellationToken;

use super::{log_x509, write_initial};
use crate::notify::Notifier;
use crate::outputs;
use crate::startup::{self, fetch_jwt};

/// How often the daemon logs that it is alive (SPEC §7).
const LIVENESS_LOG_EVERY: Duration = Duration::from_secs(30);
/// How long tasks get to finish after the shutdown signal.
const DRAIN: Duration = Duration::from_secs(5);
/// JWT refresh retry schedule on failure (SPEC §4.3).
const JWT_RETRY_FIRST: Duration = Duration::from_secs(1);
const JWT_RETRY_MAX: Duration = Duration::from_secs(60);

pub async fn run(config: Arc<Config>, shutdown: CancellationToken) -> ExitCode {
    let health = HealthState::new(
        config.x509.is_some(),
        config.jwt_svids.iter().map(|e| e.path.clone()).collect(),
        config.jwt_bundle.clone(),
    );
    let mut tasks = JoinSet::new();
    if let Some(settings) = &config.health {
        let addr = SocketAddr::from((Ipv4Addr::UNSPECIFIED, settings.bind_port));
        let paths = HealthPaths {
            liveness: settings.liveness_path.clone(),
            readiness: settings.readiness_path.clone(),
        };
        match HealthServer::bind(addr, paths, health.clone()).await {
            Ok(server) => {
                let stop = shutdown.clone();
                tasks.spawn(async move {
                    if let Err(err) = server.serve(stop).await {
                        tracing::error!(error = %err, "health server failed");
                    }
                });
            }
            Err(err) => {
                tracing::error!("{err}");
                return ExitCode::FAILURE;
            }
        }
    }

    let client = WorkloadApiClient::new(config.agent_address.clone());
    let initial = match startup::fetch_initial(&client, &config, &shutdown).await {
        Ok(Some(initial)) => initial,
        Ok(None) => return drain(tasks, None).await,
        Err(err) => {
            tracing::error!("{err:#}");
            shutdown.cancel();
            drain(tasks, None).await;
            return ExitCode::FAILURE;
        }
    };
    if let Err(err) = write_initial(&config, &initial, &health) {
        tracing::error!("{err:#}");
        shutdown.cancel();
        if let Some(source) = initial.x509 {
            source.shutdown().await;
        }
        drain(tasks, None).await;
        return ExitCode::FAILURE;
    }

    let mut notifier = Notifier::new(
        config.cmd.clone().map(|cmd| (cmd, config.cmd_args.clone())),
        config.renew_signal,
        config.pid_file_name.clone(),
        health.clone(),
        shutdown.clone(),
    );
    if initial.x509_context.is_some() {
        // The first write always notifies, even when the files on disk were already current.
        notifier.x509_updated();
    }

    if initial.x509.is_none() {
        // JWT-only: the start-up fetch just succeeded; the JWT bundle watch (if any) keeps the
        // connection state from here on.
        health.agent_connected(true);
    }
    if initial.jwt_bundles.is_some() {
        tasks.spawn(watch_jwt_bundles(
            client.clone(),
            config.clone(),
            health.clone(),
            shutdown.clone(),
        ));
    }
    for (entry, svid) in config.jwt_svids.iter().zip(initial.jwt_svids) {
        tasks.spawn(refresh_jwt(
            client.clone(),
            config.clone(),
            entry.clone(),
            svid.expiry(),
            health.clone(),
            shutdown.clone(),
        ));
    }

    let failed = if let Some(source) = &initial.x509 {
        tasks.spawn(track_connection(source.connection(), health.clone()));
        tasks.spawn(log_liveness(
            source.subscribe(),
            config.clone(),
            shutdown.clone(),
        ));
        let written = initial.x509_context.clone();
        watch_x509(source, written, &config, &health, &mut notifier, &shutdown).await
    } else {
        shutdown.cancelled().await;
        false
    };
    shutdown.cancel();
    notifier.shutdown().await;
    let code = drain(tasks, initial.x509).await;
    if failed { ExitCode::FAILURE } else { code }
}

/// Waits (bounded) for every task after shutdown; stops the X.509 source.
async fn drain(mut tasks: JoinSet<()>, source: Option<X509Source>) -> ExitCode {
    if let Some(source) = source {
        source.shutdown().await;
    }
    let all_done = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN, all_done).await.is_err() {
        tracing::warn!("tasks did not stop within {DRAIN:?}; exiting anyway");
    }
    ExitCode::SUCCESS
}

/// Follows the X.509 source until shutdown. Returns true when the source failed for good.
async fn watch_x509(
    source: &X509Source,
    written: Option<Arc<X509Context>>,
    config: &Arc<Config>,
    health: &HealthState,
    notifier: &mut Notifier,
    shutdown: &CancellationToken,
) -> bool {
    let mut updates = source.subscribe();
    let mut retry = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
    // A rotation may have arrived between the start-up write and this subscription.
    let latest = updates.borrow_and_update().clone();
    let mut pending = match written {
        Some(written) if Arc::ptr_eq(&written, &latest) => None,
        _ => Some(latest),
    };
    loop {
        if let Some(context) = pending.take() {
            if apply_x509(config, &context, health, notifier).await {
                retry.reset();
            } else {
                pending = Some(context);
            }
        }
        let wait = pending
            .as_ref()
            .map_or(Duration::MAX, |_| retry.next_delay());
        tokio::select! {
            () = shutdown.cancelled() => return false,
            changed = updates.changed() => {
                if changed.is_err() {
                    tracing::error!("the X.509 watch stopped for good; exiting");
                    return true;
                }
                pending = Some(updates.borrow_and_update().clone());
            }
            () = tokio::time::sleep(wait), if pending.is_some() => {}
        }
    }
}

/// Writes one X.509 update and notifies. Returns false when the write should be retried.
async fn apply_x509(
    config: &Arc<Config>,
    context: &Arc<X509Context>,
    health: &HealthState,
    notifier: &mut Notifier,
) -> bool {
    // A hint that matches nothing is the agent's update being unusable, not a failed write:
    // keep the files, say why, and wait for the next update (SPEC §4.2).
    match outputs::select_x509(context, config.hint.as_deref()) {
        Err(err) => {
            tracing::error!("{err:#}; keeping the previous files");
            return true;
        }
        // An already expired SVID would hand the workload a certificate every peer rejects;
        // the one on disk is at least as good. Wait for the next update.
        Ok(svid) if svid.not_after() <= SystemTime::now() => {
            tracing::error!(
                spiffe_id = %svid.spiffe_id(),
                serial = %svid.serial_hex(),
                "the agent sent an X.509-SVID that has already expired; keeping the previous files"
            );
            return true;
        }
        Ok(_) => {}
    }
    let (cfg, ctx) = (config.clone(), context.clone());
    let written = tokio::task::spawn_blocking(move || outputs::write_x509(&cfg, &ctx)).await;
    match written {
        Ok(Ok(outcome)) => {
            health.x509_written(&outcome.spiffe_id, outcome.not_after);
            log_x509(&outcome);
            if outcome.changed {
                notifier.x509_updated();
            }
            true
        }
        Ok(Err(err)) => {
            tracing::error!("writing the X.509 files: {err:#}; keeping the previous files");
            health.x509_write_failed();
            false
        }
        Err(err) => {
            tracing::error!(error = %err, "X.509 write task failed");
            health.x509_write_failed();
            false
        }
    }
}

async fn track_connection(
    mut state: tokio::sync::watch::Receiver<ConnectionState>,
    health: HealthState,
) {
    loop {
        let connected = matches!(*state.borrow_and_update(), ConnectionState::Connected);
        health.agent_connected(connected);
        if state.changed().await.is_err() {
            return;
        }
    }
}

async fn log_liveness(
    updates: tokio::sync::watch::Receiver<Arc<X509Context>>,
    config: Arc<Config>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(LIVENESS_LOG_EVERY);
    tick.tick().await;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let context = updates.borrow().clone();
        let Ok(svid) = outputs::select_x509(&context, config.hint.as_deref()) else {
            tracing::warn!("alive, but the agent offers no X.509-SVID with the configured hint");
            continue;
        };
        let expires_in = svid
            .not_after()
            .duration_since(SystemTime::now())
            .map_or(0, |left| left.as_secs());
        tracing::info!(spiffe_id = %svid.spiffe_id(), expires_in, "alive");
    }
}

async fn watch_jwt_bundles(
    client: WorkloadApiClient,
    config: Arc<Config>,
    health: HealthState,
    shutdown: CancellationToken,
) {
    // With X.509 on, the X.509 source reports the agent connection; otherwise this watch does.
    let reports_connection = config.x509.is_none();
    let stream = client.watch_jwt_bundles_retrying(Backoff::default(), shutdown.clone());
    tokio::pin!(stream);
    while let Some(event) = stream.next().await {
        if reports_connection
            && let Ok(WatchEvent::Update(_) | WatchEvent::Disconnected { .. }) = &event
        {
            health.agent_connected(matches!(event, Ok(WatchEvent::Update(_))));
        }
        match event {
            Ok(WatchEvent::Update(bundles)) => {
                let cfg = config.clone();
                let written =
                    tokio::task::spawn_blocking(move || outputs::write_jwt_bundle(&cfg, &bundles))
                        .await;
                match written {
                    Ok(Ok(_)) => health.jwt_bundle_written(),
                    Ok(Err(err)) => {
                        tracing::error!("writing the JWT bundle: {err:#}");
                        health.jwt_bundle_write_failed();
                    }
                    Err(err) => tracing::error!(error = %err, "JWT bundle write task failed"),
                }
            }
            Ok(WatchEvent::Disconnected { error, retry_in }) => {
                tracing::warn!(error = %error, ?retry_in, "JWT bundle watch interrupted; reconnecting");
            }
            Ok(_) => {}
            Err(err) => {
                tracing::error!(error = %err, "JWT bundle watch stopped");
                return;
            }
        }
    }
}

/// Keeps one JWT-SVID file fresh: refresh at half the remaining lifetime + 1 s (at least 1 s);
/// on failure retry after 1 s doubling to 60 s (SPEC §4.3).
async fn refresh_jwt(
    client: WorkloadApiClient,
    config: Arc<Config>,
    entry: JwtSvidOutput,
    mut expiry: SystemTime,
    health: HealthState,
    shutdown: CancellationToken,
) {
    let mut failure_delay = JWT_RETRY_FIRST;
    let mut next = refresh_after(expiry, SystemTime::now());
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(next) => {}
        }
        match refresh_once(&client, &config, &entry, &health).await {
            Ok(svid_expiry) => {
                expiry = svid_expiry;
                failure_delay = JWT_RETRY_FIRST;
                next = refresh_after(expiry, SystemTime::now());
            }
            Err(err) => {
                tracing::warn!(audience = %entry.audience, retry_in = ?failure_delay, "refreshing JWT-SVID: {err:#}");
                next = failure_delay;
                failure_delay = (failure_delay * 2).min(JWT_RETRY_MAX);
            }
        }
    }
}

async fn refresh_once(
    client: &WorkloadApiClient,
    config: &Arc<Config>,
    entry: &JwtSvidOutput,
    health: &HealthState,
) -> anyhow::Result<SystemTime> {
    let svid: JwtSvid = fetch_jwt(client, entry, config.hint.as_deref()).await?;
    let expiry = svid.expiry();
    let (cfg, path) = (config.clone(), entry.path.clone());
    let written =
        tokio::task::spawn_blocking(move || outputs::write_jwt_svid(&cfg, &path, &svid)).await?;
    match written {
        Ok(written) => {
            health.jwt_svid_written(&entry.path, expiry);
            if written.is_changed() {
                tracing::info!(path = %entry.path.display(), "wrote JWT-SVID");
            } else {
                tracing::debug!(path = %entry.path.display(), "JWT-SVID unchanged");
            }
            Ok(expiry)
        }
        Err(err) => {
            health.jwt_svid_write_failed(&entry.path);
            Err(err)
        }
    }
}

fn refresh_after(expiry: SystemTime, now: SystemTime) -> Duration {
    let left = expiry.duration_since(now).unwrap_or_default();
    (left / 2 + Duration::from_secs(1)).max(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::refresh_after;
    use std::time::{Duration, SystemTime};

    #[test]
    fn jwt_refresh_is_half_the_remaining_lifetime_plus_one_second() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let at = |secs| refresh_after(now + Duration::from_secs(secs), now);
        assert_eq!(at(300), Duration::from_secs(151));
        assert_eq!(at(0), Duration::from_secs(1));
        assert_eq!(
            refresh_after(now - Duration::from_secs(5), now),
            Duration::from_secs(1)
        );
    }
}
