//! The command line. Every flag can also come from the environment (a Deployment sets `env`);
//! the agent socket is `SPIFFE_ENDPOINT_SOCKET`, as for every SPIFFE workload.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use tracing_subscriber::filter::LevelFilter;

/// The injector's command line.
#[derive(Debug, Parser)]
#[command(
    name = "spiffe-helper-injector",
    version,
    about = "Mutating admission webhook that injects spiffe-helper-rust into annotated pods",
    after_help = "The agent's Workload API socket comes from SPIFFE_ENDPOINT_SOCKET \
                  (unix:///path/to/agent.sock)."
)]
pub struct Cli {
    /// Where the webhook serves HTTPS (`POST /mutate`) with its X.509-SVID.
    #[arg(long, env = "INJECTOR_LISTEN", default_value = "0.0.0.0:8443")]
    pub listen: SocketAddr,

    /// Plain-HTTP `/healthz` and `/readyz` for the kubelet's probes.
    #[arg(long, env = "INJECTOR_HEALTH_LISTEN", default_value = "0.0.0.0:8080")]
    pub health_listen: SocketAddr,

    /// The injector settings (image, resources, protected namespaces, ...) as YAML, or JSON
    /// when the name ends in `.json`; without it, the built-in defaults.
    #[arg(long, env = "INJECTOR_SETTINGS", value_name = "FILE")]
    pub settings: Option<PathBuf>,

    /// A `MutatingWebhookConfiguration` whose `caBundle` the injector keeps equal to its trust
    /// domain's X.509 bundle; without it, no Kubernetes client is created.
    #[arg(long, env = "INJECTOR_WEBHOOK_CONFIGURATION", value_name = "NAME")]
    pub webhook_configuration: Option<String>,

    /// The Service DNS name the kube-apiserver calls (`<service>.<namespace>.svc`): a warning
    /// is logged when the X.509-SVID does not carry it as a DNS SAN.
    #[arg(long, env = "INJECTOR_SERVICE_DNS", value_name = "NAME")]
    pub service_dns: Option<String>,

    /// How long to wait for the first X.509-SVID from the agent before exiting 1.
    #[arg(long, env = "INJECTOR_STARTUP_TIMEOUT", default_value = "300s", value_parser = seconds)]
    pub startup_timeout: Duration,

    /// How long in-flight requests may take to finish after SIGTERM.
    #[arg(long, env = "INJECTOR_DRAIN_TIMEOUT", default_value = "5s", value_parser = seconds)]
    pub drain_timeout: Duration,

    /// Log level: error, warn, info, debug, trace.
    #[arg(long, env = "INJECTOR_LOG_LEVEL", default_value = "info")]
    pub log_level: LevelFilter,

    /// Logs as JSON lines instead of text.
    #[arg(long, env = "INJECTOR_LOG_JSON")]
    pub log_json: bool,
}

/// `300s`, `5m` or a number of seconds.
fn seconds(text: &str) -> Result<Duration, String> {
    let (digits, unit) = match text.strip_suffix('s') {
        Some(digits) => (digits, 1),
        None => text
            .strip_suffix('m')
            .map_or((text, 1), |digits| (digits, 60)),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is not a duration: write 300s, 5m or 300"))
}
