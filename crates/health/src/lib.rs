//! Health (liveness/readiness) and Prometheus metrics HTTP server for `spiffe-helper-rust`.
//!
//! The daemon owns a [`HealthState`] and reports what happens to it (files
//! written or failed, agent connection, signals, child starts). A
//! [`HealthServer`] bound to `health_checks.bind_port` answers:
//!
//! - the liveness and readiness paths with the upstream `spiffe-helper` JSON body
//!   (`{"status":"OK","health":{"file_write_statuses":{...}}}`) plus debugging
//!   fields, and `200` or `503`;
//! - `/metrics` in the Prometheus / `OpenMetrics` text format;
//! - anything else with `404`, and methods other than `GET`/`HEAD` with `405`.
//!
//! This crate knows nothing about the configuration file or the Workload API
//! client: it takes a socket address, two paths and the state handle.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use spiffe_helper_health::{HealthPaths, HealthServer, HealthState};
//! use tokio_util::sync::CancellationToken;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), spiffe_helper_health::HealthError> {
//! let state = HealthState::new(true, vec![], None);
//! let paths = HealthPaths { liveness: "/live".into(), readiness: "/ready".into() };
//! let server = HealthServer::bind("127.0.0.1:0".parse().unwrap(), paths, state.clone()).await?;
//! let shutdown = CancellationToken::new();
//! let task = tokio::spawn(server.serve(shutdown.clone()));
//!
//! // Not ready until the X.509 SVID has been written once.
//! assert!(!state.is_ready(SystemTime::now()));
//! state.x509_written("spiffe://example.org/app", SystemTime::now() + Duration::from_secs(3600));
//! assert!(state.is_ready(SystemTime::now()));
//!
//! shutdown.cancel();
//! task.await.unwrap()?;
//! # Ok(())
//! # }
//! ```

mod metrics;
mod server;
mod state;
mod time;

use std::net::SocketAddr;

pub use server::{DEFAULT_DRAIN_TIMEOUT, HealthPaths, HealthServer, METRICS_PATH, TestHook};
pub use state::{HealthState, Probe, WriteStatus};

/// Errors of the health server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HealthError {
    /// The listening socket could not be bound (typically: the port is taken).
    #[error("{}", bind_message(*port, *addr, source))]
    Bind {
        /// The port from `health_checks.bind_port`.
        port: u16,
        /// The full address that was tried.
        addr: SocketAddr,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
}

fn bind_message(port: u16, addr: SocketAddr, source: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match source.kind() {
        ErrorKind::AddrInUse => format!(
            "health check port {port} is already in use ({addr}); stop the other process \
             or set health_checks.bind_port to a free port"
        ),
        ErrorKind::PermissionDenied => format!(
            "not permitted to listen on health check port {port} ({addr}); use a port \
             above 1023 in health_checks.bind_port or grant the capability to bind it"
        ),
        ErrorKind::AddrNotAvailable => format!(
            "cannot listen on health check port {port} ({addr}): {ip} is not an address of \
             this machine; check health_checks.bind_address",
            ip = addr.ip()
        ),
        _ => format!(
            "cannot listen on health check port {port} ({addr}): {source}; \
             check health_checks.bind_address and health_checks.bind_port"
        ),
    }
}
