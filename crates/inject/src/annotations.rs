//! The pod annotations the injector reads (docs/injection.md, "Annotations"), parsed into what
//! the pod asks for. Values are checked here one by one; the rules between keys that the
//! helper itself enforces are checked by the helper's own validation (`helper_env`).

use std::collections::BTreeMap;

use crate::checks::{
    check_cert_dir, check_file_name, check_object_name, check_pid_file, invalid, jwt_files,
};
use crate::refusal::Refusal;
use crate::settings::{AgentSocket, InjectorSettings};

/// The prefix of every annotation.
pub const PREFIX: &str = "spiffe-helper-rust/";
/// `"true"` opts the pod in; `"false"` or absent leaves it alone.
pub const INJECT: &str = "spiffe-helper-rust/inject";
/// `sidecar` (default) or `init`.
pub const INJECT_MODE: &str = "spiffe-helper-rust/inject-mode";
/// Where the certificate volume is mounted (default `/run/spiffe/certs`).
pub const CERT_DIR: &str = "spiffe-helper-rust/cert-dir";
/// `svid_file_name`.
pub const SVID_FILE_NAME: &str = "spiffe-helper-rust/svid-file-name";
/// `svid_key_file_name`.
pub const SVID_KEY_FILE_NAME: &str = "spiffe-helper-rust/svid-key-file-name";
/// `svid_bundle_file_name`.
pub const SVID_BUNDLE_FILE_NAME: &str = "spiffe-helper-rust/svid-bundle-file-name";
/// `svid_combined_file_name`.
pub const SVID_COMBINED_FILE_NAME: &str = "spiffe-helper-rust/svid-combined-file-name";
/// `renew_signal`.
pub const RENEW_SIGNAL: &str = "spiffe-helper-rust/renew-signal";
/// `pid_file_name`; also sets `shareProcessNamespace: true`.
pub const PID_FILE_NAME: &str = "spiffe-helper-rust/pid-file-name";
/// Comma-separated JWT audiences, one JWT-SVID file each.
pub const JWT_AUDIENCES: &str = "spiffe-helper-rust/jwt-audiences";
/// A `ConfigMap` with `helper.conf`, instead of the per-key annotations.
pub const CONFIG_MAP: &str = "spiffe-helper-rust/config-map";
/// `csi` or `hostpath`.
pub const AGENT_SOCKET: &str = "spiffe-helper-rust/agent-socket";
/// Set by the injector on every pod it patched; a pod carrying it is left alone.
pub const INJECTED: &str = "spiffe-helper-rust/injected";

/// Every annotation the injector reads or writes.
pub const ALL: [&str; 13] = [
    INJECT,
    INJECT_MODE,
    CERT_DIR,
    SVID_FILE_NAME,
    SVID_KEY_FILE_NAME,
    SVID_BUNDLE_FILE_NAME,
    SVID_COMBINED_FILE_NAME,
    RENEW_SIGNAL,
    PID_FILE_NAME,
    JWT_AUDIENCES,
    CONFIG_MAP,
    AGENT_SOCKET,
    INJECTED,
];

/// The annotations that set one helper key each, which a `ConfigMap` replaces.
const PER_KEY: [&str; 7] = [
    SVID_FILE_NAME,
    SVID_KEY_FILE_NAME,
    SVID_BUNDLE_FILE_NAME,
    SVID_COMBINED_FILE_NAME,
    RENEW_SIGNAL,
    PID_FILE_NAME,
    JWT_AUDIENCES,
];

/// The certificate directory when `cert-dir` is not given (deploy/k8s/30-demo-sidecar.yaml).
pub const DEFAULT_CERT_DIR: &str = "/run/spiffe/certs";

/// Annotations as Kubernetes keeps them.
pub(crate) type Annotations = BTreeMap<String, String>;

/// How the helper runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A native sidecar: an initContainer with `restartPolicy: Always` and probes.
    Sidecar,
    /// A one-shot initContainer (`-daemon-mode=false`): fetch, write, exit.
    Init,
}

/// One JWT-SVID file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JwtFile {
    pub audience: String,
    pub file_name: String,
}

/// What the pod's annotations ask for, each value checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Requested {
    pub mode: Mode,
    pub cert_dir: String,
    pub svid_file_name: Option<String>,
    pub svid_key_file_name: Option<String>,
    pub svid_bundle_file_name: Option<String>,
    pub svid_combined_file_name: Option<String>,
    pub renew_signal: Option<String>,
    pub pid_file_name: Option<String>,
    pub jwt: Vec<JwtFile>,
    pub config_map: Option<String>,
    pub agent_socket: AgentSocket,
}

/// Whether the pod opts in: `"true"` yes, `"false"` or absent no, anything else a refusal
/// (a `"yes"` that silently did nothing would be worse).
pub(crate) fn opted_in(annotations: &Annotations) -> Result<bool, Refusal> {
    match annotations.get(INJECT).map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(invalid(INJECT, other, "\"true\" or \"false\"")),
    }
}

/// Whether the injector's marker is on the pod.
pub(crate) fn marked_injected(annotations: &Annotations) -> bool {
    annotations.contains_key(INJECTED)
}

/// Reads every annotation of an opted-in pod.
pub(crate) fn parse(
    annotations: &Annotations,
    settings: &InjectorSettings,
) -> Result<Requested, Refusal> {
    refuse_unknown(annotations)?;
    let get = |key: &str| annotations.get(key).map(String::as_str);
    if let Some(name) = get(CONFIG_MAP) {
        refuse_per_key_with_config_map(annotations)?;
        check_object_name(CONFIG_MAP, name)?;
    }
    let file_name = |key: &'static str| get(key).map(|v| check_file_name(key, v)).transpose();
    let cert_dir = get(CERT_DIR).unwrap_or(DEFAULT_CERT_DIR);
    check_cert_dir(cert_dir)?;
    let pid_file_name = get(PID_FILE_NAME)
        .map(|v| check_pid_file(v, cert_dir))
        .transpose()?;
    Ok(Requested {
        mode: mode(get(INJECT_MODE))?,
        cert_dir: cert_dir.trim_end_matches('/').to_owned(),
        svid_file_name: file_name(SVID_FILE_NAME)?,
        svid_key_file_name: file_name(SVID_KEY_FILE_NAME)?,
        svid_bundle_file_name: file_name(SVID_BUNDLE_FILE_NAME)?,
        svid_combined_file_name: file_name(SVID_COMBINED_FILE_NAME)?,
        renew_signal: get(RENEW_SIGNAL).map(str::to_owned),
        pid_file_name,
        jwt: get(JWT_AUDIENCES)
            .map(jwt_files)
            .transpose()?
            .unwrap_or_default(),
        config_map: get(CONFIG_MAP).map(str::to_owned),
        agent_socket: agent_socket(get(AGENT_SOCKET), settings.agent_socket)?,
    })
}

fn refuse_unknown(annotations: &Annotations) -> Result<(), Refusal> {
    let unknown = annotations
        .keys()
        .find(|k| k.starts_with(PREFIX) && !ALL.contains(&k.as_str()));
    match unknown {
        Some(key) => Err(Refusal::UnknownAnnotation {
            annotation: key.clone(),
            suggestion: suggest(key).map(str::to_owned),
            known: ALL.join(", "),
        }),
        None => Ok(()),
    }
}

/// The known annotation closest to a misspelt one, if any is close (at most three edits).
fn suggest(key: &str) -> Option<&'static str> {
    ALL.into_iter()
        .map(|known| (strsim::levenshtein(key, known), known))
        .filter(|(distance, _)| *distance <= 3)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known)
}

/// A `ConfigMap`'s `helper.conf` sets these keys itself; two sources for one key would leave
/// the reader guessing which wins.
fn refuse_per_key_with_config_map(annotations: &Annotations) -> Result<(), Refusal> {
    let set: Vec<&str> = PER_KEY
        .into_iter()
        .filter(|k| annotations.contains_key(*k))
        .collect();
    if set.is_empty() {
        return Ok(());
    }
    Err(Refusal::Conflict {
        annotation: CONFIG_MAP.to_owned(),
        others: set.join(", "),
        why: "the ConfigMap's helper.conf is the whole configuration; set these keys in it, \
              except a pid file: only pid-file-name shares the pid file's volume and process \
              namespace with the helper, so use the annotations instead of a ConfigMap for that"
            .to_owned(),
    })
}

fn mode(value: Option<&str>) -> Result<Mode, Refusal> {
    match value {
        None | Some("sidecar") => Ok(Mode::Sidecar),
        Some("init") => Ok(Mode::Init),
        Some(other) => Err(invalid(INJECT_MODE, other, "\"sidecar\" or \"init\"")),
    }
}

fn agent_socket(value: Option<&str>, default: AgentSocket) -> Result<AgentSocket, Refusal> {
    match value {
        None => Ok(default),
        Some("hostpath") => Ok(AgentSocket::HostPath),
        Some("csi") => Ok(AgentSocket::Csi),
        Some(other) => Err(invalid(AGENT_SOCKET, other, "\"csi\" or \"hostpath\"")),
    }
}
