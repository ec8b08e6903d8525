//! Operations through the SPIRE command-line tools (entries, bundles, cross-check fetches).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::process::wait_until;
use super::{Entry, Spire, config};
use crate::must;

impl Spire {
    pub(super) fn tool(&self, name: &str, args: &[&str]) -> Output {
        must(
            Command::new(self.bin.join(name))
                .args(args)
                .stdin(Stdio::null())
                .output(),
            &format!("running {name} {}", args.first().unwrap_or(&"")),
        )
    }

    pub(super) fn server_cmd(&self, args: &[&str]) -> Output {
        let sock = self.server_socket.to_string_lossy().into_owned();
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["-socketPath", &sock]);
        self.tool("spire-server", &a)
    }

    pub(super) fn server_cmd_ok(&self, args: &[&str]) -> String {
        let out = self.server_cmd(args);
        if !out.status.success() {
            self.fail(&format!(
                "spire-server {} failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Registers `entry` under the test agent (`spiffe://<td>/agent`); returns its entry ID.
    ///
    /// # Panics
    /// If `spire-server entry create` fails.
    pub fn create_entry(&self, entry: &Entry) -> String {
        let parent = format!("spiffe://{}/agent", self.opts.trust_domain);
        let mut args = vec![
            "entry".to_owned(),
            "create".to_owned(),
            "-parentID".to_owned(),
        ];
        args.push(parent);
        args.extend(entry.args());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.server_cmd_ok(&refs);
        out.lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                (k.trim() == "Entry ID").then(|| v.trim().to_owned())
            })
            .unwrap_or_else(|| self.fail(&format!("no Entry ID in `entry create` output: {out}")))
    }

    /// Deletes a registration entry.
    ///
    /// # Panics
    /// If `spire-server entry delete` fails.
    pub fn delete_entry(&self, id: &str) {
        self.server_cmd_ok(&["entry", "delete", "-entryID", id]);
    }

    /// Polls `spire-agent api fetch x509` until it succeeds (the entry has propagated).
    ///
    /// # Panics
    /// After `timeout`, with the last error and the log tails.
    pub fn wait_for_svid(&self, timeout: Duration) {
        let sock = self.agent_socket.to_string_lossy().into_owned();
        let mut last = String::new();
        let ok = wait_until(timeout, || {
            let out = self.tool(
                "spire-agent",
                &[
                    "api",
                    "fetch",
                    "x509",
                    "-socketPath",
                    &sock,
                    "-timeout",
                    "5s",
                ],
            );
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            out.status.success()
        });
        if !ok {
            self.fail(&format!("no X.509-SVID after {timeout:?}: {last}"));
        }
    }

    /// `spire-agent api fetch x509 -write out_dir` (writes `svid.0.pem`, `svid.0.key`,
    /// `bundle.0.pem`, ...): an independent cross-check of what the agent serves.
    ///
    /// # Panics
    /// If the fetch fails.
    pub fn cli_fetch_x509(&self, out_dir: &Path) {
        let sock = self.agent_socket.to_string_lossy().into_owned();
        let out_s = out_dir.to_string_lossy().into_owned();
        let out = self.tool(
            "spire-agent",
            &[
                "api",
                "fetch",
                "x509",
                "-socketPath",
                &sock,
                "-write",
                &out_s,
            ],
        );
        if !out.status.success() {
            self.fail(&format!(
                "spire-agent api fetch x509 -write failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }

    /// Sets the bundle of a federated trust domain (`spire-server bundle set`); `ca_pem` is
    /// any CA certificate in PEM; `trust_domain_id` may be `other.org` or `spiffe://other.org`.
    ///
    /// # Panics
    /// If the command fails.
    pub fn set_federated_bundle(&self, trust_domain_id: &str, ca_pem: &str) {
        let id = config::td_id_of(trust_domain_id);
        let file = self
            .path
            .join(format!("fed-{}.pem", id.trim_start_matches("spiffe://")));
        must(std::fs::write(&file, ca_pem), "writing a federated bundle");
        let f = file.to_string_lossy().into_owned();
        self.server_cmd_ok(&["bundle", "set", "-id", &id, "-path", &f]);
    }

    /// The server's own X.509 bundle as PEM (`spire-server bundle show`).
    ///
    /// # Panics
    /// If the command fails.
    #[must_use]
    pub fn bundle_pem(&self) -> String {
        self.server_cmd_ok(&["bundle", "show"])
    }
}
