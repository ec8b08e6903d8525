//! `spiffe-helper-rust`: fetches a workload's SPIFFE identity from the SPIRE agent's Workload
//! API, writes it to disk, keeps it fresh and tells the application to reload.
//!
//! This file is the start-up and shutdown contract; the wiring lives in [`run`].
//! Exit codes (SPEC §7): 0 success or clean shutdown, 1 config/fetch/write failure, 2 usage.

mod cli;
mod logging;
mod notify;
mod outputs;
mod run;
mod startup;

use std::process::ExitCode;
use std::sync::Arc;

use spiffe_helper_config::{Config, Overrides};

fn main() -> ExitCode {
    let cli = match cli::parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(exit) => return exit.report(),
    };

    let overrides = Overrides {
        daemon_mode: cli.daemon_mode,
    };
    let (config, warnings) = match Config::load(&cli.config, &overrides) {
        Ok(loaded) => loaded,
        Err(err) => return report_config_error(&err),
    };
    if cli.validate {
        return print_effective(&config, &warnings);
    }

    logging::init(&config);
    for warning in &warnings {
        tracing::warn!("{warning}");
    }

    // One worker thread is plenty for a sidecar that mostly sleeps, and keeps RSS low.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run::run(Arc::new(config)))
}

#[expect(
    clippy::print_stderr,
    reason = "config errors are reported before logging starts"
)]
fn report_config_error(err: &spiffe_helper_config::ConfigError) -> ExitCode {
    eprintln!("spiffe-helper-rust: {err}");
    ExitCode::FAILURE
}

#[expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "validate mode prints the result"
)]
fn print_effective(config: &Config, warnings: &[spiffe_helper_config::Warning]) -> ExitCode {
    for warning in warnings {
        eprintln!("warning: {warning}");
    }
    let effective = config.effective();
    print!("{effective}");
    if !effective.ends_with('\n') {
        println!();
    }
    ExitCode::SUCCESS
}
