//! The effective configuration as HCL text (validate mode). Parsing the output again yields
//! the same `Config`, which the tests check.

use std::fmt::Write as _;
use std::path::Path;

use crate::{Config, values::format_duration};

pub(crate) fn render(c: &Config) -> String {
    let mut out = String::new();
    let mut line = |key: &str, value: String| {
        let _ = writeln!(out, "{key} = {value}");
    };
    line("agent_address", quote(&c.agent_address.to_string()));
    line("daemon_mode", c.daemon_mode.to_string());
    if let Some(dir) = &c.cert_dir {
        line("cert_dir", path(dir, None));
    }
    let dir = c.cert_dir.as_deref();
    if let Some(x509) = &c.x509 {
        line("svid_file_name", path(&x509.svid, dir));
        line("svid_key_file_name", path(&x509.key, dir));
        line("svid_bundle_file_name", path(&x509.bundle, dir));
    }
    line(
        "add_intermediates_to_bundle",
        c.add_intermediates_to_bundle.to_string(),
    );
    line(
        "include_federated_domains",
        c.include_federated_domains.to_string(),
    );
    line("omit_expired", c.omit_expired.to_string());
    line("hint", quote(c.hint.as_deref().unwrap_or_default()));
    line("jwt_svids", jwt_svids(c, dir));
    if let Some(bundle) = &c.jwt_bundle {
        line("jwt_bundle_file_name", path(bundle, dir));
    }
    line("cert_file_mode", c.cert_file_mode.to_string());
    line("key_file_mode", c.key_file_mode.to_string());
    line("jwt_bundle_file_mode", c.jwt_bundle_file_mode.to_string());
    line("jwt_svid_file_mode", c.jwt_svid_file_mode.to_string());
    line("cmd", quote(c.cmd.as_deref().unwrap_or_default()));
    line("cmd_args", quote(&join_cmd_args(&c.cmd_args)));
    line(
        "renew_signal",
        quote(
            c.renew_signal
                .map(nix::sys::signal::Signal::as_str)
                .unwrap_or_default(),
        ),
    );
    let pid = c.pid_file_name.as_deref().map(|p| path(p, None));
    line("pid_file_name", pid.unwrap_or_else(|| quote("")));
    if let Some(dir_path) = &c.federated_bundle_dir {
        line("federated_bundle_dir", path(dir_path, dir));
    }
    line(
        "startup_timeout",
        quote(&format_duration(c.startup_timeout)),
    );
    line("log_level", quote(c.log_level.as_str()));
    line("log_format", quote(c.log_format.as_str()));
    match &c.health {
        Some(h) => {
            let _ = write!(
                out,
                "health_checks {{\n  listener_enabled = true\n  bind_port = {}\n  liveness_path = {}\n  readiness_path = {}\n}}\n",
                h.bind_port,
                quote(&h.liveness_path),
                quote(&h.readiness_path)
            );
        }
        None => out.push_str("health_checks {\n  listener_enabled = false\n}\n"),
    }
    out
}

fn jwt_svids(c: &Config, dir: Option<&Path>) -> String {
    if c.jwt_svids.is_empty() {
        return "[]".to_owned();
    }
    let mut out = String::from("[\n");
    for jwt in &c.jwt_svids {
        let extra: Vec<String> = jwt.extra_audiences.iter().map(|a| quote(a)).collect();
        let _ = writeln!(
            out,
            "  {{ jwt_audience = {}, jwt_extra_audiences = [{}], jwt_svid_file_name = {} }},",
            quote(&jwt.audience),
            extra.join(", "),
            path(&jwt.path, dir)
        );
    }
    out.push(']');
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
