//! Prometheus metrics kept next to the health state and served on `/metrics`.
//!
//! The exposition format is produced by the `prometheus-client` crate: the
//! `OpenMetrics` text format when the scraper asks for it (Prometheus does by
//! default), the classic text format 0.0.4 otherwise.

use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// One label, e.g. `path="/certs/token.jwt"`.
type Label = [(&'static str, String); 1];

/// Content type of the `OpenMetrics` text exposition.
pub(crate) const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Output names used in the `output` label of the write-failure counter.
pub(crate) const OUTPUT_X509: &str = "x509_svid";
/// See [`OUTPUT_X509`].
pub(crate) const OUTPUT_JWT_SVID: &str = "jwt_svid";
/// See [`OUTPUT_X509`].
pub(crate) const OUTPUT_JWT_BUNDLE: &str = "jwt_bundle";

/// Metric handles (cheap `Arc` clones inside) plus the registry that encodes them.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    pub(crate) x509_expiry: Family<Label, Gauge>,
    pub(crate) jwt_expiry: Family<Label, Gauge>,
    pub(crate) rotations: Counter,
    pub(crate) write_failures: Family<Label, Counter>,
    pub(crate) agent_reconnects: Counter,
    pub(crate) agent_connected: Gauge,
    pub(crate) signals_sent: Counter,
    pub(crate) signals_failed: Counter,
    pub(crate) child_starts: Counter,
}

impl Metrics {
    /// Registers every metric under the `spiffe_helper_` prefix. `outputs` are the
    /// enabled outputs: their failure counters start at 0 so alerts can use `rate()`.
    pub(crate) fn new(outputs: &[&'static str]) -> Self {
        let mut registry = Registry::with_prefix("spiffe_helper");
        let m = Self {
            registry: Registry::default(),
            x509_expiry: Family::default(),
            jwt_expiry: Family::default(),
            rotations: Counter::default(),
            write_failures: Family::default(),
            agent_reconnects: Counter::default(),
            agent_connected: Gauge::default(),
            signals_sent: Counter::default(),
            signals_failed: Counter::default(),
            child_starts: Counter::default(),
        };
        registry.register(
            "x509_svid_expiry_timestamp_seconds",
            "NotAfter of the X.509 SVID last written, in seconds since the Unix epoch",
            m.x509_expiry.clone(),
        );
        registry.register(
            "jwt_svid_expiry_timestamp_seconds",
            "Expiry (exp) of the JWT SVID last written to each path, in seconds since the Unix epoch",
            m.jwt_expiry.clone(),
        );
        registry.register(
            "x509_svid_rotations",
            "X.509 SVID rotations written after the first SVID",
            m.rotations.clone(),
        );
        registry.register(
            "write_failures",
            "Failed writes of an output (x509_svid, jwt_svid, jwt_bundle)",
            m.write_failures.clone(),
        );
        registry.register(
            "agent_reconnects",
            "Reconnections to the SPIFFE Workload API after the first connection",
            m.agent_reconnects.clone(),
        );
        registry.register(
            "agent_connected",
            "1 while the Workload API stream is connected, else 0",
            m.agent_connected.clone(),
        );
        registry.register(
            "signals_sent",
            "Renew signals delivered to the managed process or PID file",
            m.signals_sent.clone(),
        );
        registry.register(
            "signals_failed",
            "Renew signals that could not be delivered",
            m.signals_failed.clone(),
        );
        registry.register(
            "child_starts",
            "Starts (first start and restarts) of the managed child process",
            m.child_starts.clone(),
        );
        for output in outputs {
            // Creating the series is the point; the returned guard is not needed.
            drop(m.write_failures.get_or_create(&label("output", *output)));
        }
        Self { registry, ..m }
    }

    /// Encodes the registry. `openmetrics` selects the `OpenMetrics` text format
    /// (with its `# EOF` trailer); otherwise the Prometheus text format 0.0.4.
    /// Returns the body and its content type.
    pub(crate) fn encode(&self, openmetrics: bool) -> (String, &'static str) {
        let mut out = String::new();
        let result = if openmetrics {
            text::encode(&mut out, &self.registry).map(|()| OPENMETRICS_CONTENT_TYPE)
        } else {
            prometheus_text::encode(&mut out, &self.registry)
                .map(|()| prometheus_text::CONTENT_TYPE)
        };
        // Writing into a String cannot fail; keep a valid (empty) exposition if it ever does.
        result.map_or_else(
            |std::fmt::Error| {
                tracing::warn!("encoding metrics failed");
                (String::new(), prometheus_text::CONTENT_TYPE)
            },
            |content_type| (out, content_type),
        )
    }
}

/// Builds a one-label set.
pub(crate) fn label(key: &'static str, value: impl Into<String>) -> Label {
    [(key, value.into())]
}
