//! The pod annotations the injector reads (docs/injection.md, "Annotations"), parsed into what
//! the pod asks for. Values are checked here one by one; the rules between keys that the
//! helper itself enforces are checked by the helper's own validation (`helper_env`).

use std::collections::BTreeMap;

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
    check_dir(CERT_DIR, cert_dir)?;
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

fn invalid(annotation: &str, value: &str, expected: impl Into<String>) -> Refusal {
    Refusal::InvalidAnnotation {
        annotation: annotation.to_owned(),
        value: value.to_owned(),
        expected: expected.into(),
    }
}

fn refuse_unknown(annotations: &Annotations) -> Result<(), Refusal> {
    let unknown = annotations
        .keys()
        .find(|k| k.starts_with(PREFIX) && !ALL.contains(&k.as_str()));
    match unknown {
        Some(key) => Err(Refusal::UnknownAnnotation {
            annotation: key.clone(),
            known: ALL.join(", "),
        }),
        None => Ok(()),
    }
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
        why: "the ConfigMap's helper.conf is the whole configuration; set these keys in it \
              (with a pid file, also set shareProcessNamespace: true in the pod)"
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

/// An absolute directory for a volume mount: no `.`/`..` components, not `/` itself, no `:`
/// (Kubernetes refuses it in a mountPath).
fn check_dir(annotation: &str, value: &str) -> Result<(), Refusal> {
    const EXPECTED: &str = "an absolute directory path below / without \".\", \"..\", \"//\" or \":\", e.g. /run/spiffe/certs";
    let trimmed = value.trim_end_matches('/');
    let ok = trimmed.starts_with('/')
        && !value.contains(':')
        && trimmed
            .split('/')
            .skip(1)
            .all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(())
    } else {
        Err(invalid(annotation, value, EXPECTED))
    }
}

/// A name inside the certificate directory: the helper resolves relative names against
/// `cert_dir` (docs/configuration.md, "Output files"), and only that directory is writable
/// in the helper (read-only root filesystem), so a path elsewhere would fail at the first write.
fn check_file_name(annotation: &'static str, value: &str) -> Result<String, Refusal> {
    let ok = !value.is_empty()
        && value != "."
        && value != ".."
        && value.len() <= 255
        && !value.contains(['/', '\0']);
    if ok {
        Ok(value.to_owned())
    } else {
        Err(invalid(
            annotation,
            value,
            "a file name inside cert-dir (no \"/\"), e.g. svid.pem",
        ))
    }
}

/// The pid file is written by an application container, so it cannot be in the certificate
/// directory (read-only in application containers).
fn check_pid_file(value: &str, cert_dir: &str) -> Result<String, Refusal> {
    check_dir(PID_FILE_NAME, value).map_err(|_| {
        invalid(
            PID_FILE_NAME,
            value,
            "the absolute path of the pid file in the application container, e.g. /run/nginx/nginx.pid",
        )
    })?;
    let dir = cert_dir.trim_end_matches('/');
    if value.starts_with(&format!("{dir}/")) {
        return Err(invalid(
            PID_FILE_NAME,
            value,
            format!(
                "a path outside cert-dir ({dir} is read-only in application containers); use a directory the application writes"
            ),
        ));
    }
    Ok(value.to_owned())
}

/// A Kubernetes object name (a DNS subdomain, RFC 1123): lower-case letters, digits, `-` and
/// `.`, starting and ending with a letter or digit, at most 253 characters.
fn check_object_name(annotation: &str, value: &str) -> Result<(), Refusal> {
    let bytes = value.as_bytes();
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let ok = !bytes.is_empty()
        && bytes.len() <= 253
        && bytes.first().is_some_and(alnum)
        && bytes.last().is_some_and(alnum)
        && bytes.iter().all(|b| alnum(b) || *b == b'-' || *b == b'.');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            annotation,
            value,
            "the name of a ConfigMap in the pod's namespace (lower-case letters, digits, '-' and '.')",
        ))
    }
}

/// `a, b` → one JWT-SVID file per audience, named `jwt_<audience>.token` with every character
/// other than letters, digits, `.`, `_` and `-` replaced by `_` (an audience is often a URL).
fn jwt_files(value: &str) -> Result<Vec<JwtFile>, Refusal> {
    let mut files: Vec<JwtFile> = Vec::new();
    for audience in value.split(',').map(str::trim) {
        if audience.is_empty() {
            return Err(invalid(
                JWT_AUDIENCES,
                value,
                "comma-separated audiences, none empty, e.g. \"api.example.org, vault\"",
            ));
        }
        let safe: String = audience
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
                _ => '_',
            })
            .collect();
        let file_name = format!("jwt_{safe}.token");
        if let Some(other) = files.iter().find(|f| f.file_name == file_name) {
            return Err(invalid(
                JWT_AUDIENCES,
                value,
                format!(
                    "audiences with distinct file names: {:?} and {:?} would both be written to {file_name}",
                    other.audience, audience
                ),
            ));
        }
        files.push(JwtFile {
            audience: audience.to_owned(),
            file_name,
        });
    }
    Ok(files)
}
