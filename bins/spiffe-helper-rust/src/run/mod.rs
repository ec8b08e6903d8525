//! Wiring: signals, the start-up fetch, then one-shot (write and exit) or the daemon.

use std::process::ExitCode;
use std::sync::Arc;

use spiffe_helper_config::Config;
use spiffe_helper_health::HealthState;
use spiffe_workload_client::WorkloadApiClient;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::outputs;
use crate::startup::{self, Initial};

mod daemon;

/// Runs the helper until it is done (one-shot) or told to stop (daemon).
pub async fn run(config: Arc<Config>) -> ExitCode {
    let shutdown = CancellationToken::new();
    if let Err(err) = listen_for_signals(shutdown.clone()) {
        tracing::error!(error = %err, "cannot install signal handlers");
        return ExitCode::FAILURE;
    }
    if let Err(err) = create_cert_dir(&config) {
        tracing::error!("{err:#}");
        return ExitCode::FAILURE;
    }
    if config.daemon_mode {
        daemon::run(config, shutdown).await
    } else {
        oneshot(&config, &shutdown).await
    }
}

/// SIGTERM and SIGINT both mean "stop cleanly" (SPEC §7).
fn listen_for_signals(shutdown: CancellationToken) -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received; shutting down"),
            _ = int.recv() => tracing::info!("SIGINT received; shutting down"),
        }
        shutdown.cancel();
    });
    Ok(())
}

fn create_cert_dir(config: &Config) -> anyhow::Result<()> {
    if let Some(dir) = &config.cert_dir {
        spiffe_helper_pem::ensure_dir(dir)?;
    }
    Ok(())
}

/// One-shot (initContainer) mode: fetch everything, write everything, exit 0; or exit 1 with
/// one line saying what failed. Nothing is written unless every fetch succeeded.
async fn oneshot(config: &Config, shutdown: &CancellationToken) -> ExitCode {
    let client = WorkloadApiClient::new(config.agent_address.clone());
    let initial = match startup::fetch_initial(&client, config, shutdown).await {
        Ok(Some(initial)) => initial,
        Ok(None) => {
            tracing::error!("interrupted before the files were written");
            return ExitCode::FAILURE;
        }
        Err(err) => {
            tracing::error!("{err:#}");
            return ExitCode::FAILURE;
        }
    };
    // No health server in one-shot mode: the state only satisfies the write helpers.
    let health = HealthState::new(false, Vec::new(), None);
    let result = write_initial(config, &initial, &health);
    if let Some(source) = initial.x509 {
        source.shutdown().await;
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes everything the start-up fetch returned: X.509 (key, cert, bundle), the JWT bundle,
/// then each JWT-SVID. Returns whether any X.509 file changed.
fn write_initial(config: &Config, initial: &Initial, health: &HealthState) -> anyhow::Result<()> {
    if let Some(context) = &initial.x509_context {
        match outputs::write_x509(config, context) {
            Ok(outcome) => {
                health.x509_written(&outcome.spiffe_id, outcome.not_after);
                log_x509(&outcome);
            }
            Err(err) => {
                health.x509_write_failed();
                return Err(err.context("writing the X.509 files"));
            }
        }
    }
    if let Some(bundles) = &initial.jwt_bundles {
        match outputs::write_jwt_bundle(config, bundles) {
            Ok(_) => health.jwt_bundle_written(),
            Err(err) => {
                health.jwt_bundle_write_failed();
                return Err(err.context("writing the JWT bundle"));
            }
        }
    }
    for (entry, svid) in config.jwt_svids.iter().zip(&initial.jwt_svids) {
        match outputs::write_jwt_svid(config, &entry.path, svid) {
            Ok(_) => {
                health.jwt_svid_written(&entry.path, svid.expiry());
                tracing::info!(path = %entry.path.display(), spiffe_id = %svid.spiffe_id(), "wrote JWT-SVID");
            }
            Err(err) => {
                health.jwt_svid_write_failed(&entry.path);
                return Err(err.context(format!("writing {}", entry.path.display())));
            }
        }
    }
    Ok(())
}

fn log_x509(outcome: &outputs::X509Outcome) {
    let expires_in = outcome
        .not_after
        .duration_since(std::time::SystemTime::now())
        .map_or(0, |left| left.as_secs());
    tracing::info!(
        spiffe_id = %outcome.spiffe_id,
        serial = %outcome.serial,
        expires_in,
        changed = outcome.changed,
        "wrote X.509-SVID"
    );
}
