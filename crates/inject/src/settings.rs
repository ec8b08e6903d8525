//! What the injector puts into every pod unless an annotation says otherwise: the settings file
//! that deploy/k8s/50-injector.yaml and the Helm chart give it (docs/injection.md, "Injector
//! settings"). The server reads them from a
//! YAML or JSON file with serde: camelCase keys as in Kubernetes objects, every key optional
//! (missing ones keep [`InjectorSettings::default`]), an unknown key refused.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use serde::{Deserialize, Deserializer};

/// Where the helper finds the SPIRE agent's Workload API socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum AgentSocket {
    /// The agent's socket directory on the node, mounted with a `hostPath` volume (as
    /// deploy/k8s/30-demo-sidecar.yaml does).
    #[default]
    HostPath,
    /// The SPIFFE CSI driver (`csi.spiffe.io`), which mounts the socket directory without
    /// giving the pod a `hostPath` volume.
    Csi,
}

impl AgentSocket {
    /// The annotation spelling (`hostpath` or `csi`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::HostPath => "hostpath",
            Self::Csi => "csi",
        }
    }
}

/// The injector's defaults. Build with [`InjectorSettings::default`] and change fields, or
/// deserialize them (camelCase keys, missing keys defaulted, unknown keys refused;
/// `startupTimeout` as `"300s"`, `"5m"`, `"1h"` or a number of seconds).
///
/// ```
/// use spiffe_helper_inject::InjectorSettings;
///
/// let settings: InjectorSettings =
///     serde_json::from_str(r#"{"image": "spiffe-helper-rust:1.0", "startupTimeout": "2m"}"#)
///         .unwrap();
/// assert_eq!(settings.startup_timeout.as_secs(), 120);
/// assert_eq!(settings.health_port, InjectorSettings::default().health_port);
/// ```
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct InjectorSettings {
    /// The helper's image.
    pub image: String,
    /// `imagePullPolicy` of the helper container.
    pub image_pull_policy: String,
    /// How the agent socket is mounted when the pod does not say (`agent-socket`).
    pub agent_socket: AgentSocket,
    /// The node directory holding the agent socket (`hostPath` mode).
    pub agent_socket_host_path: String,
    /// The CSI driver that mounts the agent socket directory (`csi` mode).
    pub agent_socket_csi_driver: String,
    /// The socket's file name inside that directory.
    pub agent_socket_file: String,
    /// The helper's health port (probes and `health_checks.bind_port`); never 0.
    #[serde(deserialize_with = "port")]
    pub health_port: u16,
    /// How long the helper waits for its first X.509-SVID (`startup_timeout`); the sidecar's
    /// startup probe allows a little longer, so a helper that gives up says why first.
    #[serde(deserialize_with = "duration")]
    pub startup_timeout: Duration,
    /// Requests and limits of the helper container.
    pub resources: ResourceRequirements,
    /// The injector's own namespace: never touched.
    pub injector_namespace: String,
    /// Other namespaces never touched (the control plane's and SPIRE's).
    pub protected_namespaces: Vec<String>,
}

impl Default for InjectorSettings {
    /// The values of deploy/k8s/30-demo-sidecar.yaml and deploy/k8s/20-spire-agent.yaml.
    fn default() -> Self {
        let quantity = |q: &str| Quantity(q.to_owned());
        Self {
            image: "spiffe-helper-rust:0.1.0".to_owned(),
            image_pull_policy: "IfNotPresent".to_owned(),
            agent_socket: AgentSocket::HostPath,
            agent_socket_host_path: "/run/spire/agent-sockets".to_owned(),
            agent_socket_csi_driver: "csi.spiffe.io".to_owned(),
            agent_socket_file: "agent.sock".to_owned(),
            health_port: 8080,
            startup_timeout: Duration::from_secs(300),
            resources: ResourceRequirements {
                requests: Some(BTreeMap::from([
                    ("cpu".to_owned(), quantity("5m")),
                    ("memory".to_owned(), quantity("8Mi")),
                ])),
                limits: Some(BTreeMap::from([("memory".to_owned(), quantity("64Mi"))])),
                ..ResourceRequirements::default()
            },
            injector_namespace: "spiffe-helper-injector".to_owned(),
            protected_namespaces: vec!["kube-system".to_owned(), "spire".to_owned()],
        }
    }
}

impl InjectorSettings {
    /// Whether pods in `namespace` are never touched.
    #[must_use]
    pub fn is_protected(&self, namespace: &str) -> bool {
        namespace == self.injector_namespace
            || self.protected_namespaces.iter().any(|n| n == namespace)
    }
}

/// A duration as the helper's configuration writes one: a whole number of seconds, or a whole
/// number followed by `s`, `m` or `h`; never zero (the helper would give up at once).
fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(u64),
        Text(String),
    }
    let invalid = |text: &str| {
        serde::de::Error::custom(format!(
            "invalid duration {text:?}: expected a positive whole number of seconds, \
             or one followed by s, m or h (\"300s\", \"5m\")"
        ))
    };
    let secs = match Raw::deserialize(deserializer)? {
        Raw::Seconds(secs) => secs,
        Raw::Text(text) => parse_duration_secs(&text).ok_or_else(|| invalid(&text))?,
    };
    if secs == 0 {
        return Err(invalid("0"));
    }
    Ok(Duration::from_secs(secs))
}

fn parse_duration_secs(text: &str) -> Option<u64> {
    let (digits, unit) = match text.char_indices().last()? {
        (i, 's') => (&text[..i], 1),
        (i, 'm') => (&text[..i], 60),
        (i, 'h') => (&text[..i], 3600),
        _ => (text, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// A TCP port the probes can reach: 1 to 65535.
fn port<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u16, D::Error> {
    match u16::deserialize(deserializer)? {
        0 => Err(serde::de::Error::custom(
            "healthPort 0 is not a port the kubelet can probe: give 1 to 65535",
        )),
        port => Ok(port),
    }
}
