//! The effective configuration as HCL text (validate mode). Parsing the output again yields
//! the same `Config`, which the tests check.

use std::fmt::Write as _;
use std::path::Path;

use nix::sys::signal::Signal;

use crate::health::HealthConfig;
use crate::keys::{HealthKey, JwtKey, Key, Shape, Table};
use crate::values::format_duration;
use crate::{Config, JwtSvidOutput};

/// One line per key of the table, in its order; the health block last, over several lines.
pub(crate) fn render(c: &Config) -> String {
    let mut out = String::new();
    for spec in Key::TABLE {
        if spec.key == Key::Pkcs12Password {
            // A secret is not printed; the line says it is set, as a comment, so the output
            // still parses (the password has to be given again).
            if c.pkcs12.as_ref().is_some_and(|p| p.password_file.is_none()) {
                let _ = writeln!(out, "# {} is set (not printed)", spec.name);
            }
            continue;
        }
        let Some(value) = value(c, spec.key) else {
            continue;
        };
        let sep = if spec.shape == Shape::Health {
            " "
        } else {
            " = "
        };
        let _ = writeln!(out, "{}{sep}{value}", spec.name);
    }
    out
}

/// How `key` is written back from the `Config`; `None` leaves out a key that is not set and
/// has no default. The match is exhaustive, so a new key cannot be forgotten here.
fn value(c: &Config, key: Key) -> Option<String> {
    let dir = c.cert_dir.as_deref();
    let x509 = c.x509.as_ref();
    Some(match key {
        Key::AgentAddress => quote(&c.agent_address.to_string()),
        Key::DaemonMode => c.daemon_mode.to_string(),
        Key::CertDir => path(dir?, None),
        Key::SvidFileName => path(&x509?.svid, dir),
        Key::SvidKeyFileName => path(&x509?.key, dir),
        Key::SvidBundleFileName => path(&x509?.bundle, dir),
        Key::SvidCombinedFileName => path(x509?.combined.as_deref()?, dir),
        Key::Pkcs12KeystoreFileName => path(x509?.pkcs12_keystore.as_deref()?, dir),
        Key::Pkcs12TruststoreFileName => path(x509?.pkcs12_truststore.as_deref()?, dir),
        Key::Pkcs12Password => return None,
        Key::Pkcs12PasswordFile => path(c.pkcs12.as_ref()?.password_file.as_deref()?, None),
        Key::Pkcs12KeyAlias => quote(&c.pkcs12.as_ref()?.key_alias),
        Key::AddIntermediatesToBundle => c.add_intermediates_to_bundle.to_string(),
        Key::IncludeFederatedDomains => c.include_federated_domains.to_string(),
        Key::OmitExpired => c.omit_expired.to_string(),
        Key::Hint => quote(c.hint.as_deref().unwrap_or_default()),
        Key::JwtSvids => jwt_svids(&c.jwt_svids, dir),
        Key::JwtBundleFileName => path(c.jwt_bundle.as_deref()?, dir),
        Key::CertFileMode => c.cert_file_mode.to_string(),
        Key::KeyFileMode => c.key_file_mode.to_string(),
        Key::JwtBundleFileMode => c.jwt_bundle_file_mode.to_string(),
        Key::JwtSvidFileMode => c.jwt_svid_file_mode.to_string(),
        Key::Cmd => quote(c.cmd.as_deref().unwrap_or_default()),
        Key::CmdArgs => quote(&join_cmd_args(&c.cmd_args)),
        Key::RenewSignal => quote(c.renew_signal.map(Signal::as_str).unwrap_or_default()),
        Key::PidFileName => {
            (c.pid_file_name.as_deref()).map_or_else(|| quote(""), |p| path(p, None))
        }
        Key::FederatedBundleDir => path(c.federated_bundle_dir.as_deref()?, dir),
        Key::FilesystemDeliveryDir => path(c.filesystem_delivery_dir.as_deref()?, dir),
        Key::CmdRestart => quote(c.cmd_restart.as_str()),
        Key::CertDirLayout => quote(c.cert_dir_layout.as_str()),
        Key::CmdStopTimeout => quote(&format_duration(c.cmd_stop_timeout)),
        Key::StartupTimeout => quote(&format_duration(c.startup_timeout)),
        Key::LogLevel => quote(c.log_level.as_str()),
        Key::LogFormat => quote(c.log_format.as_str()),
        Key::HealthChecks => health(c.health.as_ref()),
    })
}

fn jwt_svids(list: &[JwtSvidOutput], dir: Option<&Path>) -> String {
    if list.is_empty() {
        return "[]".to_owned();
    }
    let mut out = String::from("[\n");
    for jwt in list {
        let fields: Vec<String> = (JwtKey::TABLE.iter())
            .map(|spec| {
                let value = match spec.key {
                    JwtKey::Audience => quote(&jwt.audience),
                    JwtKey::ExtraAudiences => {
                        let quoted: Vec<String> =
                            jwt.extra_audiences.iter().map(|a| quote(a)).collect();
                        format!("[{}]", quoted.join(", "))
                    }
                    JwtKey::SvidFileName => path(&jwt.path, dir),
                };
                format!("{} = {value}", spec.name)
            })
            .collect();
        let _ = writeln!(out, "  {{ {} }},", fields.join(", "));
    }
    out.push(']');
    out
}

/// The block; a disabled (or absent) server is written as `listener_enabled = false` alone.
fn health(health: Option<&HealthConfig>) -> String {
    let mut out = String::from("{\n");
    for spec in HealthKey::TABLE {
        let value = match (spec.key, health) {
            (HealthKey::ListenerEnabled, _) => health.is_some().to_string(),
            (_, None) => continue,
            (HealthKey::BindAddress, Some(h)) => quote(&h.bind_address.to_string()),
            (HealthKey::BindPort, Some(h)) => h.bind_port.to_string(),
            (HealthKey::LivenessPath, Some(h)) => quote(&h.liveness_path),
            (HealthKey::ReadinessPath, Some(h)) => quote(&h.readiness_path),
        };
        let _ = writeln!(out, "  {} = {value}", spec.name);
    }
    out.push('}');
    out
}

/// A resolved output path written back relative to `cert_dir` when it lies inside it.
/// Works on the text, not on components: `Path::strip_prefix` would drop a trailing `.` and
/// `cert_dir.join(name)` must come back as exactly `name`.
fn path(p: &Path, cert_dir: Option<&Path>) -> String {
    let full = p.to_string_lossy();
    let relative = cert_dir.and_then(|dir| {
        let dir = dir.to_string_lossy();
        let rest = full.strip_prefix(dir.as_ref())?;
        let rest = if dir.ends_with('/') {
            rest
        } else {
            rest.strip_prefix('/')?
        };
        (!rest.is_empty()).then(|| rest.to_owned())
    });
    quote(relative.as_deref().unwrap_or(&full))
}

/// The inverse of `split_cmd_args`: quote arguments that need it, doubling inner quotes.
fn join_cmd_args(args: &[String]) -> String {
    let quoted: Vec<String> = args
        .iter()
        .map(|a| {
            if a.is_empty() || a.contains([' ', '"', '\n', '\r']) {
                format!("\"{}\"", a.replace('"', "\"\""))
            } else {
                a.clone()
            }
        })
        .collect();
    quoted.join(" ")
}

/// An HCL string literal: escapes, and `${`/`%{` doubled so they are not templates.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
