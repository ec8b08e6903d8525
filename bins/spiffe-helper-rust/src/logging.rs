//! Logs on stderr through `tracing` (docs/behaviour.md#logs): human text by default, JSON on request,
//! `log_level` from the config, `RUST_LOG` overriding both.
//!
//! `RUST_LOG` takes `target=level` directives and a default level (`debug`,
//! `spiffe_workload_client=trace,info`); the span/field filters of `EnvFilter` are not
//! supported, which keeps the regex engine out of the binary.

use std::io::IsTerminal as _;

use spiffe_helper_config::{Config, LogFormat};
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Installs the global subscriber. Calling it twice is harmless (the second call is ignored).
pub fn init(config: &Config) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let parsed = rust_log.as_deref().map(str::parse::<Targets>);
    let filter = parsed
        .as_ref()
        .and_then(|parsed| parsed.as_ref().ok().cloned())
        .unwrap_or_else(|| {
            let level = config
                .log_level
                .as_str()
                .parse()
                .unwrap_or(LevelFilter::INFO);
            Targets::new().with_default(level)
        });
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal());
    let registry = tracing_subscriber::registry();
    let _ = match config.log_format {
        LogFormat::Json => registry
            .with(layer.json().flatten_event(true).with_filter(filter))
            .try_init(),
        _ => registry.with(layer.with_filter(filter)).try_init(),
    };
    if let Some(Err(err)) = parsed {
        tracing::warn!(error = %err, "ignoring RUST_LOG; using log_level from the config");
    }
}
