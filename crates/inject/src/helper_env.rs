//! The helper's configuration as `SPIFFE_HLP_<KEY>` environment variables (crates/config/src/
//! env.rs; docs/configuration.md, "Formats and the environment"), so the injected container
//! needs no file, and the helper's own validation of them, so that a pod the helper would
//! refuse is refused at admission instead of crash-looping.

use std::collections::BTreeMap;
use std::path::Path;

use spiffe_helper_config::{Config, ENV_PREFIX, Overrides};

use crate::annotations::{self as a, Mode, Requested};
use crate::refusal::Refusal;
use crate::settings::InjectorSettings;

/// Where the agent socket directory is mounted in the helper (as in
/// deploy/k8s/30-demo-sidecar.yaml).
pub(crate) const SOCKET_DIR: &str = "/run/spire/sockets";
/// Where a `config-map` is mounted in the helper.
pub(crate) const CONFIG_DIR: &str = "/etc/spiffe-helper";
/// The helper's probe paths (the `health_checks` defaults, set explicitly so that a
/// `ConfigMap` cannot move them away from the probes).
pub(crate) const LIVENESS_PATH: &str = "/health/live";
/// See [`LIVENESS_PATH`].
pub(crate) const READINESS_PATH: &str = "/health/ready";

/// The X.509 file names the helper uses by default (docs/configuration.md, "Keys"). Set
/// explicitly: with `jwt_svids` and no `svid_*` name the helper would write JWT-SVIDs only.
const DEFAULT_SVID: &str = "svid.pem";
const DEFAULT_KEY: &str = "svid_key.pem";
const DEFAULT_BUNDLE: &str = "svid_bundle.pem";

/// One variable, and the annotation its value came from (for messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Var {
    pub name: String,
    pub value: String,
    pub annotation: Option<&'static str>,
}

/// The variables of the helper container, in a stable order.
pub(crate) fn vars(req: &Requested, settings: &InjectorSettings) -> Vec<Var> {
    let mut out = Vec::new();
    let mut set = |key: &str, value: String, annotation: Option<&'static str>| {
        out.push(Var {
            name: format!("{ENV_PREFIX}{}", key.to_ascii_uppercase()),
            value,
            annotation,
        });
    };
    // Overrides a ConfigMap's agent_address too: the socket is where the injector mounts it.
    set(
        "agent_address",
        format!("unix://{SOCKET_DIR}/{}", settings.agent_socket_file),
        None,
    );
    set("cert_dir", req.cert_dir.clone(), Some(a::CERT_DIR));
    set(
        "startup_timeout",
        format!("{}s", settings.startup_timeout.as_secs()),
        None,
    );
    if req.config_map.is_none() {
        per_key(req, &mut set);
    }
    if req.mode == Mode::Sidecar {
        set("health_checks_listener_enabled", "true".into(), None);
        set(
            "health_checks_bind_port",
            settings.health_port.to_string(),
            None,
        );
        set("health_checks_liveness_path", LIVENESS_PATH.into(), None);
        set("health_checks_readiness_path", READINESS_PATH.into(), None);
    }
    out
}

fn per_key(req: &Requested, set: &mut impl FnMut(&str, String, Option<&'static str>)) {
    let names = [
        (
            "svid_file_name",
            &req.svid_file_name,
            DEFAULT_SVID,
            a::SVID_FILE_NAME,
        ),
        (
            "svid_key_file_name",
            &req.svid_key_file_name,
            DEFAULT_KEY,
            a::SVID_KEY_FILE_NAME,
        ),
        (
            "svid_bundle_file_name",
            &req.svid_bundle_file_name,
            DEFAULT_BUNDLE,
            a::SVID_BUNDLE_FILE_NAME,
        ),
    ];
    for (key, value, default, annotation) in names {
        set(
            key,
            value.clone().unwrap_or_else(|| default.to_owned()),
            Some(annotation),
        );
    }
    let optional = [
        (
            "svid_combined_file_name",
            &req.svid_combined_file_name,
            a::SVID_COMBINED_FILE_NAME,
        ),
        ("renew_signal", &req.renew_signal, a::RENEW_SIGNAL),
        ("pid_file_name", &req.pid_file_name, a::PID_FILE_NAME),
    ];
    for (key, value, annotation) in optional {
        if let Some(value) = value {
            set(key, value.clone(), Some(annotation));
        }
    }
    if !req.jwt.is_empty() {
        let entries: Vec<serde_json::Value> = (req.jwt.iter())
            .map(|f| {
                serde_json::json!({
                    "jwt_audience": f.audience,
                    "jwt_svid_file_name": f.file_name,
                })
            })
            .collect();
        set(
            "jwt_svids",
            serde_json::Value::Array(entries).to_string(),
            Some(a::JWT_AUDIENCES),
        );
    }
}

/// Runs the helper's own validation on the variables, as the helper will at startup: an error
/// becomes a refusal, warnings are returned (as admission warnings), with every variable that
/// came from an annotation named by its annotation.
pub(crate) fn validate(vars: &[Var], mode: Mode) -> Result<Vec<String>, Refusal> {
    let env: BTreeMap<&str, &str> = vars
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_str()))
        .collect();
    let lookup = |name: &str| env.get(name).map(|v| (*v).to_owned());
    let overrides = Overrides {
        daemon_mode: (mode == Mode::Init).then_some(false),
        ..Overrides::default()
    };
    match Config::parse_str("", Path::new("(injected environment)"), &overrides, &lookup) {
        Ok((_, warnings)) => Ok(warnings
            .iter()
            .map(|w| rename(&w.to_string(), vars))
            .collect()),
        Err(err) => Err(Refusal::HelperConfig {
            message: rename(&err.to_string(), vars),
        }),
    }
}

/// `environment variable SPIFFE_HLP_RENEW_SIGNAL` → `annotation spiffe-helper-rust/renew-signal`
/// (longest names first: `…_HEALTH_CHECKS` is a prefix of `…_HEALTH_CHECKS_BIND_PORT`).
fn rename(message: &str, vars: &[Var]) -> String {
    let mut named: Vec<&Var> = vars.iter().filter(|v| v.annotation.is_some()).collect();
    named.sort_by_key(|v| std::cmp::Reverse(v.name.len()));
    let mut out = message.replace("(injected environment): ", "");
    for var in named {
        if let Some(annotation) = var.annotation {
            out = out.replace(
                &format!("environment variable {}", var.name),
                &format!("annotation {annotation}"),
            );
        }
    }
    out
}
