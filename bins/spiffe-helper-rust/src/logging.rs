//! Logs on stderr through `tracing` (SPEC §7): human text by default, JSON on request,
//! `log_level` from the config, `RUST_LOG` overriding both.

use std::io::IsTerminal as _;

use spiffe_helper_config::{Config, LogFormat};
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored).
pub fn init(config: &Config) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(config.log_level.to_string()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match config.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        _ => builder.try_init(),
    };
}
