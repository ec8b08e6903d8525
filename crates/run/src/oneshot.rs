//! One-shot (initContainer) mode: fetch everything, write everything, exit 0; or exit 1 with
//! one line saying what failed (docs/behaviour.md, "Exit codes"). Nothing is written unless
//! every fetch succeeded.

use std::process::ExitCode;

use spiffe_helper_config::Config;
use spiffe_workload_client::WorkloadApiClient;
use tokio_util::sync::CancellationToken;

use crate::outputs::Outputs;
use crate::startup;
use crate::writer::Writer;

/// Fetches and writes once what `config` asks for, from its agent under its
/// `startup_timeout`. `shutdown` (SIGTERM/SIGINT) before the files are written is a failure: an
/// initContainer that was stopped did not do its job.
pub async fn run(config: &Config, shutdown: &CancellationToken) -> ExitCode {
    let client = WorkloadApiClient::new(config.agent_address.clone());
    let (outputs, timeout) = (Outputs::from_config(config), config.startup_timeout);
    let initial = match startup::fetch_initial(&client, &outputs, timeout, shutdown).await {
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
    // Nobody probes a one-shot run: the writer reports to no health state.
    let result = initial.write(&Writer::new(outputs, None)).await;
    initial.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            ExitCode::FAILURE
        }
    }
}
