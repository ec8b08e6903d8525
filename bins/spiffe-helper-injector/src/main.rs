//! `spiffe-helper-injector`: the mutating admission webhook that adds spiffe-helper-rust to
//! pods that opt in by annotation (docs/injection.md, "Server").
//!
//! This file is the start-up and shutdown contract: command line (a usage error exits 2),
//! logging, settings (an unreadable file exits 1 naming it), runtime, then `run` until
//! SIGTERM/SIGINT, a bounded drain, and exit 0; a failure to start (no agent socket, a port
//! taken, no SVID before the deadline) exits 1. The pod mutation is the
//! `spiffe-helper-inject` crate; the wiring is `run`.

mod ca_bundle;
mod cli;
mod health;
mod http;
mod kube_api;
mod logging;
mod run;
mod settings;
mod svid;
mod webhook;

use std::process::ExitCode;

use clap::Parser as _;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    logging::init(cli.log_level, cli.log_json);
    let settings = match settings::load(cli.settings.as_deref()) {
        Ok(settings) => settings,
        Err(err) => {
            tracing::error!("{err:#}");
            return ExitCode::FAILURE;
        }
    };
    // Two workers: TLS handshakes and admission reviews of a burst of pod creations overlap,
    // and the machine the injector runs on gives it little CPU anyway.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(run::run(cli, settings)),
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            ExitCode::FAILURE
        }
    }
}
