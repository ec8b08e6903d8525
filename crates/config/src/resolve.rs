//! Stage two: the key table's defaults, the environment, and the rules between keys
//! (docs/configuration.md, "Keys"). Output paths are resolved in `paths`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use nix::sys::signal::Signal;
use spiffe_workload_client::Endpoint;

use crate::args::split_cmd_args;
use crate::decode::Decoder;
use crate::error::{ConfigError, Location, Warning};
use crate::health::HealthConfig;
use crate::keys::{HealthKey, Key, Table};
use crate::paths;
use crate::raw::{self, Fields, Raw};
use crate::tree::Pos;
use crate::values::{CertDirLayout, CmdRestart, FileMode, parse_signal};
use crate::{Config, Overrides};

pub(crate) struct Resolver<'a> {
    pub d: Decoder<'a>,
    pub raw: Raw,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub warnings: Vec<Warning>,
}

impl Resolver<'_> {
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

    /// The typed config; every independent mistake is reported, in file order.
    pub fn resolve(mut self, overrides: Overrides) -> Result<(Config, Vec<Warning>), ConfigError> {
        let daemon_mode =
            (overrides.daemon_mode).unwrap_or_else(|| self.raw.value_or_default(Key::DaemonMode));
        let cert_dir = self.raw.text(Key::CertDir).map(|v| PathBuf::from(&v.value));
        let mut errors = Vec::new();
        let agent_address = keep(&mut errors, self.agent_address());
        let outputs = keep(
            &mut errors,
            paths::outputs(&self.d, &self.raw, cert_dir.as_deref()),
        );
        let notify = keep(&mut errors, self.notify(daemon_mode));
        let cmd_restart = keep(&mut errors, self.cmd_restart(overrides.wrapper_mode));
        let health = keep(&mut errors, self.health(daemon_mode));
        let layout = keep(
            &mut errors,
            self.cert_dir_layout(cert_dir.as_deref(), outputs.as_ref()),
        );
        let pkcs12 = keep(&mut errors, self.pkcs12(outputs.as_ref()));
        let (
            Some(agent_address),
            Some(outputs),
            Some(notify),
            Some(cmd_restart),
            Some(health),
            Some(cert_dir_layout),
            Some(pkcs12),
        ) = (
            agent_address,
            outputs,
            notify,
            cmd_restart,
            health,
            layout,
            pkcs12,
        )
        else {
            return Err(ConfigError::from_many(errors));
        };
        self.warn_federated_merge();
        let cert_file_mode = self.mode(Key::CertFileMode);
        let key_file_mode = self.mode(Key::KeyFileMode);
        let jwt_bundle_file_mode = self.mode(Key::JwtBundleFileMode);
        let jwt_svid_file_mode = self.mode(Key::JwtSvidFileMode);
        let raw = &self.raw;
        let config = Config {
            agent_address,
            daemon_mode,
            cert_dir,
            x509: outputs.x509,
            jwt_svids: outputs.jwt_svids,
            jwt_bundle: outputs.jwt_bundle,
            hint: raw.text(Key::Hint).map(|v| v.value.clone()),
            add_intermediates_to_bundle: raw.value_or_default(Key::AddIntermediatesToBundle),
            include_federated_domains: raw.value_or_default(Key::IncludeFederatedDomains),
            omit_expired: raw.value_or_default(Key::OmitExpired),
            cert_file_mode,
            key_file_mode,
            jwt_bundle_file_mode,
            jwt_svid_file_mode,
            cmd: notify.cmd,
            cmd_args: notify.cmd_args,
            renew_signal: notify.renew_signal,
            pid_file_name: notify.pid_file_name,
            cmd_restart,
            cmd_stop_timeout: raw.value_or_default(Key::CmdStopTimeout),
            health,
            federated_bundle_dir: outputs.federated_bundle_dir,
            filesystem_delivery_dir: outputs.filesystem_delivery_dir,
            cert_dir_layout,
            pkcs12,
            startup_timeout: raw.value_or_default(Key::StartupTimeout),
            log_level: raw.value_or_default(Key::LogLevel),
            log_format: raw.value_or_default(Key::LogFormat),
        };
        Ok((config, self.warnings))
    }

    /// `cmd_restart` as written; unset, `on-rotation`, or `never` in wrapper mode
    /// (docs/consumers.md, "Wrapper mode and the restart policy").
    fn cmd_restart(&self, wrapper_mode: bool) -> Result<CmdRestart, ConfigError> {
        let Some(v) = self.raw.text(Key::CmdRestart) else {
            return Ok(if wrapper_mode {
                CmdRestart::Never
            } else {
                CmdRestart::OnRotation
            });
        };
        v.value.parse().map_err(|()| ConfigError::InvalidValue {
            location: self.d.loc(v.pos),
            key: Key::CmdRestart.name().into(),
            value: v.raw.clone(),
            reason: "unknown restart policy (on-rotation, always or never)".into(),
        })
    }

    /// The PKCS#12 password (inline or from a file, exactly one) and alias, when a PKCS#12
    /// file is configured (docs/consumers.md, "Java keystores"). A password without a PKCS#12
    /// file is ignored with a warning.
    fn pkcs12(
        &mut self,
        outputs: Option<&paths::Outputs>,
    ) -> Result<Option<crate::Pkcs12Settings>, ConfigError> {
        let wanted = outputs
            .and_then(|o| o.x509.as_ref())
            .is_some_and(|x| x.pkcs12_keystore.is_some() || x.pkcs12_truststore.is_some());
        let inline = self.raw.text(Key::Pkcs12Password).cloned();
        let file = self.raw.text(Key::Pkcs12PasswordFile).cloned();
        if !wanted {
            if let Some(v) = inline.as_ref().or(file.as_ref()) {
                self.warn(
                    Some(v.pos),
                    "a PKCS#12 password is set but neither pkcs12_keystore_file_name nor pkcs12_truststore_file_name is: it is ignored".into(),
                );
            }
            return Ok(None);
        }
        let (password, password_file) = match (inline, file) {
            (Some(_), Some(f)) => {
                return Err(self.conflict(
                    f.pos,
                    "set pkcs12_password or pkcs12_password_file, not both".into(),
                ));
            }
            (None, None) => {
                return Err(ConfigError::Missing {
                    location: Location::file(self.d.file),
                    key: Key::Pkcs12Password.name().into(),
                    hint: Some("a PKCS#12 keystore or truststore needs a password: set pkcs12_password, or pkcs12_password_file to a file holding it".into()),
                });
            }
            (Some(v), None) => (v.value, None),
            (None, Some(f)) => {
                let path = PathBuf::from(&f.value);
                let text =
                    std::fs::read_to_string(&path).map_err(|e| ConfigError::InvalidValue {
                        location: self.d.loc(f.pos),
                        key: Key::Pkcs12PasswordFile.name().into(),
                        value: f.raw.clone(),
                        reason: format!("cannot read it: {e}"),
                    })?;
                let first = text.lines().next().unwrap_or_default().to_owned();
                if first.is_empty() {
                    return Err(ConfigError::InvalidValue {
                        location: self.d.loc(f.pos),
                        key: Key::Pkcs12PasswordFile.name().into(),
                        value: f.raw.clone(),
                        reason: "its first line (the password) is empty".into(),
                    });
                }
                (first, Some(path))
            }
        };
        Ok(Some(crate::Pkcs12Settings {
            password,
            password_file,
            key_alias: self.raw.value_or_default(Key::Pkcs12KeyAlias),
        }))
    }

    /// `include_federated_domains = true` puts every federated domain's roots into the one
    /// bundle file: a consumer that cannot authorize by trust domain then accepts any federated
    /// domain's SVID as one of ours (upstream spiffe-helper #217). Said once, at start.
    fn warn_federated_merge(&mut self) {
        let Some(v) = self.raw.get::<bool>(Key::IncludeFederatedDomains) else {
            return;
        };
        if v.value {
            let pos = v.pos;
            self.warn(
                Some(pos),
                "include_federated_domains = true merges every federated trust domain's roots into the one bundle file: a consumer that cannot authorize peers by trust domain will accept any federated domain's SVID as one of yours (upstream spiffe-helper #217); set federated_bundle_dir to get one bundle file per domain instead".into(),
            );
        }
    }

    /// `cert_dir_layout`: `files` (default) or `versioned`. The versioned layout keeps every
    /// version of the set in one directory, so every output it covers (the X.509 files, the
    /// combined file, the JWT bundle and JWT-SVID files) must be a plain name directly in
    /// `cert_dir` (docs/consumers.md, "The whole set at once").
    fn cert_dir_layout(
        &self,
        cert_dir: Option<&std::path::Path>,
        outputs: Option<&paths::Outputs>,
    ) -> Result<CertDirLayout, ConfigError> {
        let Some(v) = self.raw.text(Key::CertDirLayout) else {
            return Ok(CertDirLayout::Files);
        };
        let layout: CertDirLayout = v.value.parse().map_err(|()| ConfigError::InvalidValue {
            location: self.d.loc(v.pos),
            key: Key::CertDirLayout.name().into(),
            value: v.raw.clone(),
            reason: "unknown layout (files or versioned)".into(),
        })?;
        if layout == CertDirLayout::Files {
            return Ok(layout);
        }
        let Some(dir) = cert_dir else {
            return Err(ConfigError::Missing {
                location: self.d.loc(v.pos),
                key: Key::CertDir.name().into(),
                hint: Some(
                    "cert_dir_layout = \"versioned\" keeps its versions in cert_dir; set cert_dir"
                        .into(),
                ),
            });
        };
        let Some(outputs) = outputs else {
            // The outputs have their own error already.
            return Ok(layout);
        };
        let mut named: Vec<(String, &std::path::Path)> = Vec::new();
        if let Some(x509) = &outputs.x509 {
            named.push((Key::SvidFileName.name().into(), &x509.svid));
            named.push((Key::SvidKeyFileName.name().into(), &x509.key));
            named.push((Key::SvidBundleFileName.name().into(), &x509.bundle));
            if let Some(combined) = &x509.combined {
                named.push((Key::SvidCombinedFileName.name().into(), combined));
            }
            if let Some(path) = &x509.pkcs12_keystore {
                named.push((Key::Pkcs12KeystoreFileName.name().into(), path));
            }
            if let Some(path) = &x509.pkcs12_truststore {
                named.push((Key::Pkcs12TruststoreFileName.name().into(), path));
            }
        }
        if let Some(bundle) = &outputs.jwt_bundle {
            named.push((Key::JwtBundleFileName.name().into(), bundle));
        }
        for (i, jwt) in outputs.jwt_svids.iter().enumerate() {
            named.push((format!("jwt_svids[{i}].jwt_svid_file_name"), &jwt.path));
        }
        let outside: Vec<String> = named
            .iter()
            .filter(|(_, path)| !directly_in(path, dir))
            .map(|(key, path)| format!("{key} ({})", path.display()))
            .collect();
        if outside.is_empty() {
            Ok(layout)
        } else {
            Err(self.conflict(
                v.pos,
                format!(
                    "cert_dir_layout = \"versioned\" switches the files of cert_dir ({}) as one set, so each output must be a plain name in it (not starting with \"..\"); not so: {}",
                    dir.display(),
                    outside.join(", ")
                ),
            ))
        }
    }

    /// The file key, then `SPIFFE_ENDPOINT_SOCKET`, then the deprecated `SPIRE_AGENT_ADDRESS`.
    fn agent_address(&mut self) -> Result<Endpoint, ConfigError> {
        if let Some(v) = self.raw.text(Key::AgentAddress) {
            return Endpoint::parse(&v.value).map_err(|source| ConfigError::AgentAddress {
                origin: format!("{}: agent_address", self.d.loc(v.pos)),
                source,
            });
        }
        let (name, value) = self.agent_address_from_env()?;
        Endpoint::parse(&value).map_err(|source| ConfigError::AgentAddress {
            origin: format!("environment variable {name}"),
            source,
        })
    }

    fn agent_address_from_env(&mut self) -> Result<(&'static str, String), ConfigError> {
        let get = |name: &str| (self.env)(name).filter(|v| !v.is_empty());
        match (get("SPIFFE_ENDPOINT_SOCKET"), get("SPIRE_AGENT_ADDRESS")) {
            (Some(_), Some(_)) => Err(ConfigError::Conflict {
                location: Location::file(self.d.file),
                message: "agent_address is not set and both SPIFFE_ENDPOINT_SOCKET and SPIRE_AGENT_ADDRESS are; unset SPIRE_AGENT_ADDRESS (deprecated) or set agent_address".into(),
            }),
            (Some(v), None) => Ok(("SPIFFE_ENDPOINT_SOCKET", v)),
            (None, Some(v)) => {
                self.warn(
                    None,
                    "SPIRE_AGENT_ADDRESS is deprecated and upstream spiffe-helper no longer reads it (spiffe-helper #391); this helper still does, but set SPIFFE_ENDPOINT_SOCKET or agent_address so the config works with both".into(),
                );
                Ok(("SPIRE_AGENT_ADDRESS", v))
            }
            (None, None) => Err(ConfigError::Missing {
                location: Location::file(self.d.file),
                key: Key::AgentAddress.name().into(),
                hint: Some("set it in the file, or set SPIFFE_ENDPOINT_SOCKET, e.g. unix:///run/spire/agent.sock".into()),
            }),
        }
    }

    fn mode(&mut self, key: Key) -> FileMode {
        let default = raw::default(key);
        match self.raw.get::<FileMode>(key).map(|v| (v.value, v.key_pos)) {
            // Upstream treats 0 as "not set"; keep that instead of writing unreadable files.
            Some((FileMode(0), pos)) => {
                let name = key.name();
                self.warn(
                    Some(pos),
                    format!("{name} = 0 means the default {default}, as upstream"),
                );
                default
            }
            Some((mode, _)) => mode,
            None => default,
        }
    }

    /// The notification keys (docs/configuration.md, "Notifying the application"): daemon
    /// mode only, `pid_file_name` needs `renew_signal`.
    fn notify(&mut self, daemon_mode: bool) -> Result<Notify, ConfigError> {
        if let Some(pid) = self.raw.text(Key::PidFileName) {
            if !daemon_mode {
                return Err(self.conflict(pid.key_pos, "pid_file_name is only used in daemon mode; remove it or set daemon_mode = true".into()));
            }
            if self.raw.text(Key::RenewSignal).is_none() {
                return Err(self.conflict(pid.key_pos, "pid_file_name needs renew_signal (the signal sent to the process whose pid is in the file)".into()));
            }
        }
        if !daemon_mode {
            let stop_timeout = self.raw.get::<Duration>(Key::CmdStopTimeout);
            let set: Vec<(Key, Pos)> = [Key::Cmd, Key::CmdArgs, Key::RenewSignal, Key::CmdRestart]
                .into_iter()
                .filter_map(|key| self.raw.text(key).map(|v| (key, v.key_pos)))
                .chain(stop_timeout.map(|v| (Key::CmdStopTimeout, v.key_pos)))
                .collect();
            for (key, pos) in set {
                let name = key.name();
                let why = format!("{name} is ignored in one-shot mode (daemon_mode = false)");
                self.warn(Some(pos), why);
            }
            return Ok(Notify::default());
        }
        let cmd = self.raw.text(Key::Cmd).map(|v| v.value.clone());
        Ok(Notify {
            cmd_args: self.cmd_args(cmd.is_some())?,
            cmd,
            renew_signal: self.renew_signal()?,
            pid_file_name: (self.raw.text(Key::PidFileName)).map(|v| PathBuf::from(&v.value)),
        })
    }

    fn cmd_args(&mut self, cmd_set: bool) -> Result<Vec<String>, ConfigError> {
        let Some(args) = self.raw.text(Key::CmdArgs).cloned() else {
            return Ok(Vec::new());
        };
        if !cmd_set {
            let why = "cmd_args is ignored because cmd is not set";
            self.warn(Some(args.key_pos), why.into());
            return Ok(Vec::new());
        }
        split_cmd_args(&args.value).map_err(|source| ConfigError::CmdArgs {
            location: self.d.loc(args.pos),
            source,
        })
    }

    fn renew_signal(&self) -> Result<Option<Signal>, ConfigError> {
        let Some(v) = self.raw.text(Key::RenewSignal) else {
            return Ok(None);
        };
        let signal = parse_signal(&v.value).ok_or_else(|| ConfigError::InvalidValue {
            location: self.d.loc(v.pos),
            key: Key::RenewSignal.name().into(),
            value: v.raw.clone(),
            reason: "unknown signal name (for example SIGHUP, SIGUSR1, SIGINT)".into(),
        })?;
        Ok(Some(signal))
    }

    /// The health block (docs/configuration.md, "Health checks"): `listener_enabled` is
    /// required inside it; off, absent, or in one-shot mode means no server.
    fn health(&mut self, daemon_mode: bool) -> Result<Option<HealthConfig>, ConfigError> {
        let Some(block) = self.raw.health().cloned() else {
            return Ok(None);
        };
        let Some(enabled) = block.get::<bool>(HealthKey::ListenerEnabled) else {
            return Err(ConfigError::Missing {
                location: self.d.loc(block.pos),
                key: health_key(HealthKey::ListenerEnabled),
                hint: Some("true starts the health server, false disables it".into()),
            });
        };
        if !enabled.value {
            return Ok(None);
        }
        if !daemon_mode {
            self.warn(
                Some(block.pos),
                "health_checks is ignored in one-shot mode (daemon_mode = false)".into(),
            );
            return Ok(None);
        }
        self.health_settings(&block).map(Some)
    }

    fn health_settings(&self, block: &Fields<HealthKey>) -> Result<HealthConfig, ConfigError> {
        let health = HealthConfig {
            bind_address: self.bind_address(block)?,
            bind_port: block.value_or_default(HealthKey::BindPort),
            liveness_path: self.url_path(block, HealthKey::LivenessPath)?,
            readiness_path: self.url_path(block, HealthKey::ReadinessPath)?,
        };
        if health.liveness_path == health.readiness_path {
            let pos = (block.get::<String>(HealthKey::ReadinessPath))
                .or(block.get::<String>(HealthKey::LivenessPath))
                .map_or(block.pos, |v| v.pos);
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

    /// An IPv4 or IPv6 literal; a host name is refused, so that what is bound never depends
    /// on a resolver (docs/configuration.md, "Health checks").
    fn bind_address(&self, block: &Fields<HealthKey>) -> Result<IpAddr, ConfigError> {
        let Some(v) = block.text(HealthKey::BindAddress) else {
            return Ok(HealthConfig::default().bind_address);
        };
        let literal = v.value.trim();
        let bracketed = literal.strip_prefix('[').and_then(|l| l.strip_suffix(']'));
        bracketed.unwrap_or(literal).parse().map_err(|_| ConfigError::InvalidValue {
            location: self.d.loc(v.pos),
            key: health_key(HealthKey::BindAddress),
            value: v.raw.clone(),
            reason: "not an IP address literal (for example 127.0.0.1, 0.0.0.0, ::1 or ::); host names are not accepted".into(),
        })
    }

    /// A probe path as written (even `""`, which is refused), else the table's default.
    fn url_path(&self, block: &Fields<HealthKey>, key: HealthKey) -> Result<String, ConfigError> {
        let Some(v) = block.get::<String>(key) else {
            return Ok(raw::default(key));
        };
        if !v.value.starts_with('/') {
            return Err(ConfigError::InvalidValue {
                location: self.d.loc(v.pos),
                key: health_key(key),
                value: v.raw.clone(),
                reason: "a URL path must start with / (for example /health/live)".into(),
            });
        }
        Ok(v.value.clone())
    }
}

/// The value of a step that succeeded; a failed step's error joins `errors`.
fn keep<T>(errors: &mut Vec<ConfigError>, result: Result<T, ConfigError>) -> Option<T> {
    result.map_err(|err| errors.push(err)).ok()
}

/// `health_checks.<key>`, as messages name a key of the block.
fn health_key(key: HealthKey) -> String {
    format!("{}.{}", Key::HealthChecks.name(), key.name())
}

/// The daemon-mode notification settings.
#[derive(Default)]
struct Notify {
    cmd: Option<String>,
    cmd_args: Vec<String>,
    renew_signal: Option<Signal>,
    pid_file_name: Option<PathBuf>,
}

/// Whether `path` is a plain file name directly inside `dir` that the versioned layout may
/// own: not `..data`, not a hidden `..` name of its versions.
fn directly_in(path: &std::path::Path, dir: &std::path::Path) -> bool {
    let normal = |p: &std::path::Path| -> PathBuf {
        p.components()
            .filter(|c| !matches!(c, std::path::Component::CurDir))
            .collect()
    };
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return false;
    };
    normal(parent) == normal(dir) && !name.to_string_lossy().starts_with("..")
}
