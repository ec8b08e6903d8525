//! Stage two: defaults (all in this file), the environment, paths, and the SPEC §2.3 checks.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use spiffe_workload_client::Endpoint;

use crate::args::split_cmd_args;
use crate::decode::{Decoder, Raw, RawHealth, Val};
use crate::error::{ConfigError, Location, Warning};
use crate::tree::Pos;
use crate::values::{FileMode, HealthConfig, parse_signal};
use crate::{Config, JwtSvidOutput, Overrides, X509Output};

/// Default `startup_timeout` (SPEC §3.4).
pub(crate) const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_MODES: [(&str, FileMode); 4] = [
    ("cert_file_mode", FileMode(0o644)),
    ("key_file_mode", FileMode(0o600)),
    ("jwt_bundle_file_mode", FileMode(0o600)),
    ("jwt_svid_file_mode", FileMode(0o600)),
];
const SVID_NAMES: [(&str, &str); 3] = [
    ("svid_file_name", "svid.pem"),
    ("svid_key_file_name", "svid_key.pem"),
    ("svid_bundle_file_name", "svid_bundle.pem"),
];

pub(crate) struct Resolver<'a> {
    pub d: Decoder<'a>,
    pub raw: Raw,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub warnings: Vec<Warning>,
}

impl Resolver<'_> {
    fn text(&self, key: &str) -> Option<&Val<String>> {
        self.raw.strings.get(key).filter(|v| !v.value.is_empty())
    }

    fn flag(&self, key: &str) -> bool {
        self.raw.bools.get(key).is_some_and(|v| v.value)
    }

    fn warn(&mut self, pos: Option<Pos>, message: String) {
        let location = pos.map(|p| self.d.loc(p));
        self.warnings.push(Warning { location, message });
    }

    fn conflict(&self, pos: Pos, message: String) -> ConfigError {
        ConfigError::Conflict {
            location: self.d.loc(pos),
            message,
        }
    }

    pub fn resolve(mut self, overrides: Overrides) -> Result<(Config, Vec<Warning>), ConfigError> {
        let daemon_mode = overrides
            .daemon_mode
            .or_else(|| self.raw.bools.get("daemon_mode").map(|v| v.value))
            .unwrap_or(true);
        let agent_address = self.agent_address()?;
        let cert_dir = self.text("cert_dir").map(|v| PathBuf::from(&v.value));
        let outputs = self.outputs(cert_dir.as_deref())?;
        let Notify {
            cmd,
            cmd_args,
            renew_signal,
            pid_file_name,
        } = self.notify(daemon_mode)?;
        let health = self.health(daemon_mode)?;
        let config = Config {
            agent_address,
            daemon_mode,
            cert_dir,
            x509: outputs.x509,
            jwt_svids: outputs.jwt_svids,
            jwt_bundle: outputs.jwt_bundle,
            hint: self.text("hint").map(|v| v.value.clone()),
            add_intermediates_to_bundle: self.flag("add_intermediates_to_bundle"),
            include_federated_domains: self.flag("include_federated_domains"),
            omit_expired: self.flag("omit_expired"),
            cert_file_mode: self.mode(0),
            key_file_mode: self.mode(1),
            jwt_bundle_file_mode: self.mode(2),
            jwt_svid_file_mode: self.mode(3),
            cmd,
            cmd_args,
            renew_signal,
            pid_file_name,
            health,
            federated_bundle_dir: outputs.federated_bundle_dir,
            startup_timeout: self
                .raw
                .startup_timeout
                .as_ref()
                .map_or(DEFAULT_STARTUP_TIMEOUT, |v| v.value),
            log_level: self
                .raw
                .log_level
                .as_ref()
                .map(|v| v.value)
                .unwrap_or_default(),
            log_format: self
                .raw
                .log_format
                .as_ref()
                .map(|v| v.value)
                .unwrap_or_default(),
            source: self.d.file.to_path_buf(),
        };
        Ok((config, self.warnings))
    }

    /// The file key, then `SPIFFE_ENDPOINT_SOCKET`, then the deprecated `SPIRE_AGENT_ADDRESS`.
    fn agent_address(&mut self) -> Result<Endpoint, ConfigError> {
        if let Some(v) = self.text("agent_address") {
            return Endpoint::parse(&v.value).map_err(|source| ConfigError::AgentAddress {
                origin: format!("{}: agent_address", self.d.loc(v.pos)),
                source,
            });
        }
        let get = |name: &str| (self.env)(name).filter(|v| !v.is_empty());
        let (spiffe, spire) = (get("SPIFFE_ENDPOINT_SOCKET"), get("SPIRE_AGENT_ADDRESS"));
        let (name, value) = match (spiffe, spire) {
            (Some(_), Some(_)) => {
                return Err(ConfigError::Conflict {
                    location: Location::file(self.d.file),
                    message: "agent_address is not set and both SPIFFE_ENDPOINT_SOCKET and SPIRE_AGENT_ADDRESS are; unset SPIRE_AGENT_ADDRESS (deprecated) or set agent_address".into(),
                });
            }
            (Some(v), None) => ("SPIFFE_ENDPOINT_SOCKET", v),
            (None, Some(v)) => {
                self.warn(
                    None,
                    "SPIRE_AGENT_ADDRESS is deprecated; use SPIFFE_ENDPOINT_SOCKET".into(),
                );
                ("SPIRE_AGENT_ADDRESS", v)
            }
            (None, None) => {
                return Err(ConfigError::Missing {
                    location: Location::file(self.d.file),
                    key: "agent_address".into(),
                    hint: Some("set it in the file, or set SPIFFE_ENDPOINT_SOCKET, e.g. unix:///run/spire/agent.sock".into()),
                });
            }
        };
        Endpoint::parse(&value).map_err(|source| ConfigError::AgentAddress {
            origin: format!("environment variable {name}"),
            source,
        })
    }

    fn mode(&mut self, index: usize) -> FileMode {
        let (key, default) = DEFAULT_MODES[index];
        match self.raw.modes.get(key).map(|v| (v.value, v.key_pos)) {
            // Upstream treats 0 as "not set"; keep that instead of writing unreadable files.
            Some((FileMode(0), pos)) => {
                self.warn(
                    Some(pos),
                    format!("{key} = 0 means the default {default}, as upstream"),
                );
                default
            }
            Some((mode, _)) => mode,
            None => default,
        }
    }

    fn outputs(&self, cert_dir: Option<&Path>) -> Result<Outputs, ConfigError> {
        let mut paths: Vec<(String, PathBuf, Pos)> = Vec::new();
        let mut resolve = |label: String, name: &str, pos: Pos| -> Result<PathBuf, ConfigError> {
            let path = match cert_dir {
                _ if Path::new(name).is_absolute() => PathBuf::from(name),
                Some(dir) => dir.join(name),
                None => return Err(self.cert_dir_required(&label, name, pos)),
            };
            let normal = normalize(&path);
            if let Some((other, _, _)) = paths.iter().find(|(_, p, _)| *p == normal) {
                return Err(self.conflict(
                    pos,
                    format!(
                        "{label} and {other} both resolve to {}; each output needs its own file",
                        path.display()
                    ),
                ));
            }
            paths.push((label, normal, pos));
            Ok(path)
        };
        let svid_set = SVID_NAMES.iter().any(|(key, _)| self.text(key).is_some());
        let jwt_set = !self.raw.jwt_svids.is_empty() || self.text("jwt_bundle_file_name").is_some();
        let x509 = if svid_set || !jwt_set {
            let mut out = Vec::new();
            for (key, default) in SVID_NAMES {
                let (name, pos) = self
                    .text(key)
                    .map_or((default, Pos::default()), |v| (v.value.as_str(), v.pos));
                out.push(resolve(key.to_owned(), name, pos)?);
            }
            let [svid, key, bundle] = <[PathBuf; 3]>::try_from(out).unwrap_or_default();
            Some(X509Output { svid, key, bundle })
        } else {
            None
        };
        let mut jwt_svids = Vec::new();
        for (i, entry) in self.raw.jwt_svids.iter().enumerate() {
            let required = |v: &Option<Val<String>>, key: &str| {
                v.as_ref()
                    .filter(|v| !v.value.is_empty())
                    .cloned()
                    .ok_or_else(|| ConfigError::Missing {
                        location: self.d.loc(entry.pos),
                        key: format!("jwt_svids[{i}].{key}"),
                        hint: None,
                    })
            };
            let audience = required(&entry.audience, "jwt_audience")?;
            let file = required(&entry.file_name, "jwt_svid_file_name")?;
            let path = resolve(
                format!("jwt_svids[{i}].jwt_svid_file_name"),
                &file.value,
                file.pos,
            )?;
            jwt_svids.push(JwtSvidOutput {
                audience: audience.value,
                extra_audiences: entry.extra_audiences.clone(),
                path,
            });
        }
        let mut optional = |key: &str| {
            self.text(key)
                .map(|v| resolve(key.to_owned(), &v.value, v.pos))
                .transpose()
        };
        let jwt_bundle = optional("jwt_bundle_file_name")?;
        let federated_bundle_dir = optional("federated_bundle_dir")?;
        Ok(Outputs {
            x509,
            jwt_svids,
            jwt_bundle,
            federated_bundle_dir,
        })
    }

    fn cert_dir_required(&self, label: &str, name: &str, pos: Pos) -> ConfigError {
        ConfigError::Missing {
            location: self.d.loc(pos),
            key: "cert_dir".into(),
            hint: Some(format!(
                "{label} = \"{name}\" is relative and relative names are resolved against cert_dir; set cert_dir or use absolute paths"
            )),
        }
    }

    fn notify(&mut self, daemon_mode: bool) -> Result<Notify, ConfigError> {
        if let Some(pid) = self.text("pid_file_name") {
            if !daemon_mode {
                return Err(self.conflict(pid.key_pos, "pid_file_name is only used in daemon mode; remove it or set daemon_mode = true".into()));
            }
            if self.text("renew_signal").is_none() {
                return Err(self.conflict(pid.key_pos, "pid_file_name needs renew_signal (the signal sent to the process whose pid is in the file)".into()));
            }
        }
        if !daemon_mode {
            for key in ["cmd", "cmd_args", "renew_signal"] {
                if let Some(pos) = self.text(key).map(|v| v.key_pos) {
                    self.warn(
                        Some(pos),
                        format!("{key} is ignored in one-shot mode (daemon_mode = false)"),
                    );
                }
            }
            return Ok(Notify::default());
        }
        let cmd = self.text("cmd").map(|v| v.value.clone());
        let cmd_args = match (self.text("cmd_args").cloned(), &cmd) {
            (Some(args), Some(_)) => {
                split_cmd_args(&args.value).map_err(|source| ConfigError::CmdArgs {
                    location: self.d.loc(args.pos),
                    source,
                })?
            }
            (Some(args), None) => {
                self.warn(
                    Some(args.key_pos),
                    "cmd_args is ignored because cmd is not set".into(),
                );
                Vec::new()
            }
            (None, _) => Vec::new(),
        };
        let renew_signal = match self.text("renew_signal") {
            Some(v) => Some(
                parse_signal(&v.value).ok_or_else(|| ConfigError::InvalidValue {
                    location: self.d.loc(v.pos),
                    key: "renew_signal".into(),
                    value: v.raw.clone(),
                    reason: "unknown signal name (for example SIGHUP, SIGUSR1, SIGINT)".into(),
                })?,
            ),
            None => None,
        };
        let pid_file_name = self.text("pid_file_name").map(|v| PathBuf::from(&v.value));
        Ok(Notify {
            cmd,
            cmd_args,
            renew_signal,
            pid_file_name,
        })
    }

    fn health(&mut self, daemon_mode: bool) -> Result<Option<HealthConfig>, ConfigError> {
        let Some(raw) = self.raw.health.clone() else {
            return Ok(None);
        };
        let Some(enabled) = &raw.listener_enabled else {
            return Err(ConfigError::Missing {
                location: self.d.loc(raw.pos),
                key: "health_checks.listener_enabled".into(),
                hint: Some("true starts the health server, false disables it".into()),
            });
        };
        if !enabled.value {
            return Ok(None);
        }
        if !daemon_mode {
            self.warn(
                Some(raw.pos),
                "health_checks is ignored in one-shot mode (daemon_mode = false)".into(),
            );
            return Ok(None);
        }
        self.health_paths(&raw).map(Some)
    }

    fn health_paths(&self, raw: &RawHealth) -> Result<HealthConfig, ConfigError> {
        let mut health = HealthConfig::default();
        if let Some(port) = &raw.bind_port {
            health.bind_port = port.value;
        }
        for (key, value, slot) in [
            (
                "liveness_path",
                &raw.liveness_path,
                &mut health.liveness_path,
            ),
            (
                "readiness_path",
                &raw.readiness_path,
                &mut health.readiness_path,
            ),
        ] {
            if let Some(v) = value {
                if !v.value.starts_with('/') {
                    return Err(ConfigError::InvalidValue {
                        location: self.d.loc(v.pos),
                        key: format!("health_checks.{key}"),
                        value: v.raw.clone(),
                        reason: "a URL path must start with / (for example /health/live)".into(),
                    });
                }
                slot.clone_from(&v.value);
            }
        }
        if health.liveness_path == health.readiness_path {
            let pos = raw
                .readiness_path
                .as_ref()
                .or(raw.liveness_path.as_ref())
                .map_or(raw.pos, |v| v.pos);
            return Err(self.conflict(
                pos,
                format!(
                    "health_checks.liveness_path and readiness_path are both {}; they must differ",
                    health.liveness_path
                ),
            ));
        }
        Ok(health)
    }
}

/// The daemon-mode notification settings.
#[derive(Default)]
struct Notify {
    cmd: Option<String>,
    cmd_args: Vec<String>,
    renew_signal: Option<nix::sys::signal::Signal>,
    pid_file_name: Option<PathBuf>,
}

struct Outputs {
    x509: Option<X509Output>,
    jwt_svids: Vec<JwtSvidOutput>,
    jwt_bundle: Option<PathBuf>,
    federated_bundle_dir: Option<PathBuf>,
}

/// `certs/./svid.pem` and `certs/svid.pem` are the same file; `..` is kept (symlinks).
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}
