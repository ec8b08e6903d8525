//! Logs on stderr through `tracing`: text by default, JSON lines with `--log-json`.

use std::io::IsTerminal as _;

use tracing_subscriber::filter::LevelFilter;

/// Installs the global subscriber.
pub fn init(level: LevelFilter, json: bool) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level)
        .with_target(false);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init()
    };
}
