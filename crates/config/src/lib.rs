//! Configuration for `spiffe-helper-rust`: reads a `helper.conf` (HCL, or JSON when the first
//! non-blank character is `{`) into a typed, validated [`Config`].
//!
//! Files written for the Go `spiffe-helper` keep their meaning (octal modes however written,
//! labelled `jwt_svids` blocks, attribute-form `health_checks`, case-insensitive keys). Every
//! default is applied in one place, the agent address is resolved against the environment,
//! output paths against `cert_dir`, `cmd_args` is split, and every error names the file, line,
//! column, key and what would be valid. Only the binary depends on this crate.
//!
//! ```
//! use std::path::Path;
//! use spiffe_helper_config::{Config, FileMode, Overrides};
//!
//! let text = r#"
//!     agent_address = "unix:///run/spire/agent.sock"
//!     cert_dir      = "/certs"
//!     key_file_mode = 0640
//! "#;
//! let no_env = |_: &str| None;
//! let (config, warnings) =
//!     Config::parse_str(text, Path::new("helper.conf"), &Overrides::default(), &no_env).unwrap();
//! assert!(warnings.is_empty());
//! assert_eq!(config.key_file_mode, FileMode(0o640));
//! assert_eq!(config.x509.unwrap().svid, Path::new("/certs/svid.pem"));
//!
//! let err = Config::parse_str("cert_dri = \"x\"", Path::new("helper.conf"), &Overrides::default(), &no_env)
//!     .unwrap_err();
//! assert_eq!(err.to_string(), "helper.conf:1:1: unknown key `cert_dri` (did you mean `cert_dir`?)");
//! ```

mod args;
mod decode;
mod effective;
mod env;
mod error;
mod health;
mod json;
mod keys;
mod paths;
mod raw;
mod resolve;
mod tree;
mod values;
mod yaml;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use args::{ArgsError, split_cmd_args};
pub use env::PREFIX as ENV_PREFIX;
pub use error::{ConfigError, Location, Warning};
pub use health::HealthConfig;
pub use nix::sys::signal::Signal;
pub use spiffe_workload_client::{Endpoint, EndpointError};
pub use values::{CertDirLayout, CmdRestart, FileMode, LogFormat, LogLevel};

/// The validated configuration, every default applied.
#[derive(Clone, Debug, PartialEq)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "one field per upstream boolean key"
)]
pub struct Config {
    /// Workload API address: the file's `agent_address`, else `SPIFFE_ENDPOINT_SOCKET`, else
    /// the deprecated `SPIRE_AGENT_ADDRESS`.
    pub agent_address: Endpoint,
    /// Keep running and renewing (`true`, default) or fetch once and exit.
    pub daemon_mode: bool,
    /// Directory that relative output names are resolved against.
    pub cert_dir: Option<PathBuf>,
    /// X.509 output files; `None` when the file is JWT-only (docs/configuration.md,
    /// "Output files").
    pub x509: Option<X509Output>,
    /// One entry per `jwt_svids` element.
    pub jwt_svids: Vec<JwtSvidOutput>,
    /// Where the JWT bundle goes (`jwt_bundle_file_name`, resolved).
    pub jwt_bundle: Option<PathBuf>,
    /// SVID selection hint; `None` when empty.
    pub hint: Option<String>,
    /// Put intermediates in the bundle file instead of the SVID file.
    pub add_intermediates_to_bundle: bool,
    /// Append federated trust domains' roots to the bundle file.
    pub include_federated_domains: bool,
    /// Drop expired certificates from the SVID and bundle files.
    pub omit_expired: bool,
    /// Mode of the SVID certificate and X.509 bundle files (default 0644).
    pub cert_file_mode: FileMode,
    /// Mode of the private key file (default 0600).
    pub key_file_mode: FileMode,
    /// Mode of the JWT bundle file (default 0600).
    pub jwt_bundle_file_mode: FileMode,
    /// Mode of the JWT-SVID files (default 0600).
    pub jwt_svid_file_mode: FileMode,
    /// Program to start after each X.509 update (daemon mode only).
    pub cmd: Option<String>,
    /// `cmd_args`, already split as upstream does (docs/configuration.md, "Notifying the
    /// application").
    pub cmd_args: Vec<String>,
    /// Signal sent to a running `cmd` / the pid-file process (daemon mode only).
    pub renew_signal: Option<Signal>,
    /// File holding the pid to signal (daemon mode only; requires `renew_signal`).
    pub pid_file_name: Option<PathBuf>,
    /// Extra: what happens when the child exits (`cmd_restart`; default on-rotation, never in
    /// wrapper mode).
    pub cmd_restart: CmdRestart,
    /// Extra: stop signal to SIGKILL for the child (`cmd_stop_timeout`, default 10 s).
    pub cmd_stop_timeout: Duration,
    /// Health server; `None` when absent, disabled, or in one-shot mode.
    pub health: Option<HealthConfig>,
    /// Extra: directory for one bundle file per federated trust domain (resolved).
    pub federated_bundle_dir: Option<PathBuf>,
    /// Extra: the SPIFFE filesystem-delivery folder (`filesystem_delivery_dir`, resolved;
    /// docs/consumers.md).
    pub filesystem_delivery_dir: Option<PathBuf>,
    /// Extra: how `cert_dir` is laid out (`cert_dir_layout`, default `files`).
    pub cert_dir_layout: CertDirLayout,
    /// Extra: password and alias of the PKCS#12 files, when one is configured.
    pub pkcs12: Option<Pkcs12Settings>,
    /// Extra: deadline for the first X.509 fetch (default 30 s).
    pub startup_timeout: Duration,
    /// Extra: log level (default info; `RUST_LOG` overrides).
    pub log_level: LogLevel,
    /// Extra: log format (default text).
    pub log_format: LogFormat,
}

/// X.509 output paths (resolved against `cert_dir`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct X509Output {
    /// Certificate chain file (`svid_file_name`).
    pub svid: PathBuf,
    /// Private key file (`svid_key_file_name`).
    pub key: PathBuf,
    /// Trust bundle file (`svid_bundle_file_name`).
    pub bundle: PathBuf,
    /// Extra: the key and the chain in one file (`svid_combined_file_name`), when set.
    pub combined: Option<PathBuf>,
    /// Extra: PKCS#12 keystore with the key and chain (`pkcs12_keystore_file_name`).
    pub pkcs12_keystore: Option<PathBuf>,
    /// Extra: PKCS#12 truststore with the bundle's certificates
    /// (`pkcs12_truststore_file_name`).
    pub pkcs12_truststore: Option<PathBuf>,
}

/// One JWT-SVID to fetch and write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JwtSvidOutput {
    /// `jwt_audience`.
    pub audience: String,
    /// `jwt_extra_audiences`.
    pub extra_audiences: Vec<String>,
    /// `jwt_svid_file_name`, resolved against `cert_dir`.
    pub path: PathBuf,
}

/// How the PKCS#12 keystore and truststore are protected and named (docs/consumers.md, "Java
/// keystores").
#[derive(Clone, PartialEq, Eq)]
pub struct Pkcs12Settings {
    /// The password (`pkcs12_password`, or the first line of `pkcs12_password_file`).
    pub password: String,
    /// `pkcs12_password_file`, when the password came from a file.
    pub password_file: Option<PathBuf>,
    /// The keystore's alias for the key and chain (`pkcs12_key_alias`, default `spiffe`).
    pub key_alias: String,
}

impl std::fmt::Debug for Pkcs12Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs12Settings")
            .field("password", &"<redacted>")
            .field("password_file", &self.password_file)
            .field("key_alias", &self.key_alias)
            .finish()
    }
}

/// Command-line values that override the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// `--daemon-mode`, when given.
    pub daemon_mode: Option<bool>,
    /// A program was given after `--` (wrapper mode): `cmd_restart` defaults to never.
    pub wrapper_mode: bool,
    /// `-config-format`: how to read the file.
    pub format: ConfigFormat,
}

/// The syntax of the configuration file (`-config-format`; docs/configuration.md, "Formats
/// and the environment").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigFormat {
    /// By the file name (`.yaml`/`.yml`: YAML, `.json`: JSON), else JSON when the first
    /// non-blank character is `{`, else HCL.
    #[default]
    Auto,
    /// HCL (upstream's format).
    Hcl,
    /// JSON.
    Json,
    /// YAML.
    Yaml,
}

impl std::str::FromStr for ConfigFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "hcl" => Ok(Self::Hcl),
            "json" => Ok(Self::Json),
            "yaml" | "yml" => Ok(Self::Yaml),
            _ => Err("expected hcl, json, yaml or auto".into()),
        }
    }
}

impl ConfigFormat {
    /// What `Auto` means for this file and text.
    fn resolve(self, file_name: &Path, text: &str) -> Self {
        if self != Self::Auto {
            return self;
        }
        let ext = file_name
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("yaml" | "yml") => Self::Yaml,
            Some("json") => Self::Json,
            _ if text.trim_start().starts_with('{') => Self::Json,
            _ => Self::Hcl,
        }
    }
}

impl Config {
    /// Reads and validates a configuration file, using the process environment for the
    /// agent address.
    ///
    /// # Errors
    /// [`ConfigError::Io`] when the file cannot be read, otherwise as [`Config::parse_str`].
    pub fn load(path: &Path, overrides: &Overrides) -> Result<(Config, Vec<Warning>), ConfigError> {
        let env = |name: &str| std::env::var(name).ok();
        Self::load_with(path, overrides, &env)
    }

    /// [`Config::load`] with the environment injected. A missing file is not an error when
    /// `SPIFFE_HLP_*` variables are set: they are then the whole configuration (as upstream's
    /// pull request #335), and a warning says so.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn load_with(
        path: &Path,
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Config, Vec<Warning>), ConfigError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(source) if source.kind() == std::io::ErrorKind::NotFound && env::any_set(env) => {
                let (config, mut warnings) = Self::parse_str("", path, overrides, env)?;
                warnings.insert(
                    0,
                    Warning {
                        location: None,
                        message: format!(
                            "{} does not exist: the configuration comes from the {}* environment variables alone",
                            path.display(),
                            env::PREFIX
                        ),
                    },
                );
                return Ok((config, warnings));
            }
            Err(source) => {
                return Err(ConfigError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        let text = String::from_utf8(bytes).map_err(|e| ConfigError::Syntax {
            location: Location::file(path),
            message: format!(
                "not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
        })?;
        Self::parse_str(&text, path, overrides, env)
    }

    /// Parses and validates configuration text. `file_name` is used in messages; `env` looks
    /// up environment variables (injectable for tests).
    ///
    /// # Errors
    /// A [`ConfigError`] naming file, line, column, key and what would be valid: syntax
    /// errors, unknown or removed keys, wrong types, invalid values, missing required keys,
    /// and the rules between keys (docs/configuration.md, "Keys").
    pub fn parse_str(
        text: &str,
        file_name: &Path,
        overrides: &Overrides,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(Config, Vec<Warning>), ConfigError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let decoder = decode::Decoder { file: file_name };
        let parsed = match overrides.format.resolve(file_name, text) {
            ConfigFormat::Json => json::from_json(text),
            ConfigFormat::Yaml => yaml::from_yaml(text),
            ConfigFormat::Hcl | ConfigFormat::Auto => tree::from_hcl(text),
        };
        // A variable replaces the file's value of its key (upstream's pull request #335).
        let entries = parsed.and_then(|mut entries| {
            for var in env::entries(env)? {
                entries.retain(|e| !e.key.eq_ignore_ascii_case(&var.key));
                entries.push(var);
            }
            Ok(entries)
        });
        let entries = entries.map_err(|failure| match failure {
            tree::ParseFailure::Syntax(pos, message) => ConfigError::Syntax {
                location: decoder.loc(pos),
                message,
            },
            tree::ParseFailure::Duplicate {
                pos,
                key,
                first_line,
            } => ConfigError::Duplicate {
                location: decoder.loc(pos),
                key: key.to_ascii_lowercase(),
                first_line,
            },
        })?;
        let raw = decoder.decode(&entries)?;
        resolve::Resolver {
            d: decoder,
            raw,
            env,
            warnings: Vec::new(),
        }
        .resolve(*overrides)
    }

    /// The effective configuration as HCL, every default filled in. Parsing it again gives
    /// the same [`Config`]. Nothing in a configuration is secret; key material never is.
    #[must_use]
    pub fn effective(&self) -> String {
        effective::render(self)
    }
}
