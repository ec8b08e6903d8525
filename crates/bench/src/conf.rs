//! One `helper.conf` text that both helpers read with the same meaning.
//!
//! Upstream v0.11.0 takes `agent_address` as a bare socket path (it prepends `unix://`
//! itself); ours accepts that form too, so the very same file is given to both.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::procs::X509_FILES;

/// What a benchmark config asks for. X.509 output (the three files) is always on.
#[derive(Clone, Debug, Default)]
pub(crate) struct HelperConf {
    /// Workload API socket, bare absolute path.
    pub(crate) agent_socket: PathBuf,
    /// Output directory.
    pub(crate) cert_dir: PathBuf,
    /// `daemon_mode`.
    pub(crate) daemon: bool,
    /// One `jwt_svids` entry per audience, written to `jwt_<i>.token`.
    pub(crate) jwt_audiences: Vec<String>,
    /// Health listener port (`/live`, `/ready`), or off.
    pub(crate) health_port: Option<u16>,
    /// `cmd` and `cmd_args`, with `renew_signal = "SIGHUP"`.
    pub(crate) cmd: Option<(PathBuf, String)>,
    /// `hint` selecting one SVID among several.
    pub(crate) hint: Option<String>,
}

/// Paths used by the health benchmarks (both helpers are told the same ones).
pub(crate) const READY_PATH: &str = "/ready";
const LIVE_PATH: &str = "/live";

impl HelperConf {
    /// File names of every output this config asks for.
    pub(crate) fn output_files(&self) -> Vec<String> {
        let mut names: Vec<String> = X509_FILES.iter().map(|s| (*s).to_owned()).collect();
        names.extend((0..self.jwt_audiences.len()).map(|i| format!("jwt_{i}.token")));
        names
    }

    /// The HCL text (HCL v1 compatible, so the Go helper parses it unchanged).
    pub(crate) fn render(&self) -> String {
        let mut s = String::new();
        let q = |p: &Path| format!("{:?}", p.display().to_string());
        let _ = writeln!(s, "agent_address = {}", q(&self.agent_socket));
        let _ = writeln!(s, "cert_dir = {}", q(&self.cert_dir));
        let _ = writeln!(s, "daemon_mode = {}", self.daemon);
        let _ = writeln!(s, "svid_file_name = \"{}\"", X509_FILES[0]);
        let _ = writeln!(s, "svid_key_file_name = \"{}\"", X509_FILES[1]);
        let _ = writeln!(s, "svid_bundle_file_name = \"{}\"", X509_FILES[2]);
        if let Some(h) = &self.hint {
            let _ = writeln!(s, "hint = {h:?}");
        }
        if !self.jwt_audiences.is_empty() {
            let entries: Vec<String> = self
                .jwt_audiences
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    format!("  {{ jwt_audience = {a:?}, jwt_svid_file_name = \"jwt_{i}.token\" }}")
                })
                .collect();
            let _ = writeln!(s, "jwt_svids = [\n{}\n]", entries.join(",\n"));
        }
        if let Some(port) = self.health_port {
            let _ = writeln!(
                s,
                "health_checks {{\n  listener_enabled = true\n  bind_port = {port}\n  \
                 liveness_path = \"{LIVE_PATH}\"\n  readiness_path = \"{READY_PATH}\"\n}}"
            );
        }
        if let Some((prog, args)) = &self.cmd {
            let _ = writeln!(s, "cmd = {}", q(prog));
            let _ = writeln!(s, "cmd_args = {args:?}");
            let _ = writeln!(s, "renew_signal = \"SIGHUP\"");
        }
        s
    }

    /// Creates `cert_dir` and writes the config to `conf`; returns `conf`.
    pub(crate) fn write(&self, conf: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.cert_dir)
            .with_context(|| format!("creating {}", self.cert_dir.display()))?;
        std::fs::write(conf, self.render())
            .with_context(|| format!("writing {}", conf.display()))?;
        Ok(conf.to_path_buf())
    }
}
