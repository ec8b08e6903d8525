//! `spiffe-helper-rust`: fetches a workload's SPIFFE identity from the SPIRE agent's Workload
//! API, writes it to disk, keeps it fresh and tells the application to reload.
//!
//! This file is the start-up and shutdown contract (docs/behaviour.md, "Exit codes"):
//! logging, config, runtime; then one-shot, or the daemon's start → wait → drain. The command
//! line is `cli`, logging `logging`; what runs is the `spiffe-helper-run` crate.
//! Exit 0 on success or a clean shutdown, 1 on a config, fetch or write failure, 2 on a
//! usage error; when the child is the workload (`cmd_restart` always or never, wrapper mode),
//! the child's exit code, or 128 + the signal that ended it.

mod cli;
mod logging;

use std::ffi::OsString;
use std::process::ExitCode;

use spiffe_helper_config::{Config, Overrides};
use spiffe_helper_run::{Daemon, Started};
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    let cli = match cli::parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(exit) => return exit.report(),
    };
    let overrides = Overrides {
        daemon_mode: cli.daemon_mode,
        wrapper_mode: cli.child_argv.is_some(),
        format: cli.config_format,
    };
    let (config, warnings) = match Config::load(&cli.config, &overrides) {
        Ok(loaded) => loaded,
        Err(err) => return report_config_error(&err),
    };
    let child_checks = cli::check_child_conflict(&cli, config.cmd.is_some())
        .and_then(|()| cli::check_child_runs(&cli, config.x509.is_some()));
    if let Err(exit) = child_checks {
        return exit.report();
    }
    if cli.validate {
        return print_effective(&config, &warnings);
    }
    logging::init(&config);
    for warning in &warnings {
        tracing::warn!("{warning}");
    }
    // One thread is plenty for a sidecar that mostly sleeps, and keeps RSS low; file writes
    // go to the blocking pool. The daemon's pool is one thread: its start-up writes every
    // output at once, and a pool grown to a thread per output stayed that size while rotations
    // came faster than the 10 s keep-alive, each thread with its own glibc malloc arena whose
    // resident pages crept up with every rotation (docs/reliability.md, "Soak"). One-shot
    // keeps a thread per write, so that its fsyncs overlap.
    let mut builder = tokio::runtime::Builder::new_current_thread();
    builder.enable_all();
    if config.daemon_mode {
        builder.max_blocking_threads(1);
    }
    match builder.build() {
        Ok(runtime) => {
            let code = runtime.block_on(run(config, cli.child_argv));
            // Everything has stopped by now; the idle blocking-pool thread need not be joined
            // (that join was a measurable part of a one-shot run).
            runtime.shutdown_background();
            code
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot start the async runtime");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config, child_argv: Option<Vec<OsString>>) -> ExitCode {
    // SIGTERM and SIGINT mean "stop cleanly", in every phase.
    let shutdown = CancellationToken::new();
    if let Err(err) = cancel_on_signal(shutdown.clone()) {
        tracing::error!(error = %err, "cannot install signal handlers");
        return ExitCode::FAILURE;
    }
    if let Some(dir) = &config.cert_dir
        && let Err(err) = spiffe_helper_pem::ensure_dir(dir)
    {
        tracing::error!("{err}");
        return ExitCode::FAILURE;
    }
    if !config.daemon_mode {
        if child_argv.is_some() {
            tracing::warn!(
                "the program after '--' is not run in one-shot mode (daemon_mode = false)"
            );
        }
        return spiffe_helper_run::oneshot(&config, &shutdown).await;
    }

    let mut daemon = Daemon::new(config, child_argv, shutdown.clone());
    // `None`: stopped by SIGTERM/SIGINT (or before the first write).
    let failed = match daemon.start().await {
        Ok(Started::Running) => tokio::select! {
            () = shutdown.cancelled() => None,
            fatal = daemon.failed() => {
                fatal.log();
                Some(fatal.code)
            }
        },
        Ok(Started::Interrupted) => None,
        Err(err) => {
            tracing::error!("{err:#}");
            Some(ExitCode::FAILURE)
        }
    };
    // The one cleanup path, whatever ended the run: bounded. When the child is the workload
    // (cmd_restart always/never), a stop by signal exits with the child's status.
    let child = daemon.drain().await;
    failed.unwrap_or_else(|| child.map_or(ExitCode::SUCCESS, ExitCode::from))
}

fn cancel_on_signal(shutdown: CancellationToken) -> std::io::Result<()> {
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

#[expect(
    clippy::print_stderr,
    reason = "config errors are reported before logging starts"
)]
fn report_config_error(err: &spiffe_helper_config::ConfigError) -> ExitCode {
    // One line per mistake, as a compiler reports them.
    for mistake in err.iter() {
        eprintln!("spiffe-helper-rust: {mistake}");
    }
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
