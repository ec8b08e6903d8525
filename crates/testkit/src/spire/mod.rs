//! A real SPIRE server + agent (v1.13.3) as local processes in a short `/tmp` dir.
//!
//! Every process is killed by pid when [`Spire`] is dropped (agent first), also when the test
//! panics; the scratch dir is removed then. On a panicking drop the tails of both logs are
//! written to stderr for diagnosis.
//!
//! All methods block (processes, polling with `std::thread::sleep`); in async tests call them
//! directly for short steps or via `tokio::task::spawn_blocking`.

mod bin;
mod cli;
mod config;
mod process;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub use bin::{SPIRE_VERSION, bin_dir, build_script};
pub use config::{BundleEndpoint, BundleEndpointProfile, Entry, SpireOptions};

use crate::must;
use process::{free_port, hard_kill, read_lossy, soft_kill, tail, wait_until};

/// How long start-up steps (health, attestation, socket) may take on a busy 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running SPIRE server and agent for one test.
pub struct Spire {
    opts: SpireOptions,
    bin: PathBuf,
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    port: u16,
    /// (cert, key) PEM files of the upstream root CA, when enabled.
    upstream: Option<(PathBuf, PathBuf)>,
    /// The port of the server's bundle endpoint, when enabled.
    bundle_endpoint_port: Option<u16>,
    agent_socket: PathBuf,
    server_socket: PathBuf,
    server: Option<Child>,
    agent: Option<Child>,
}

impl std::fmt::Debug for Spire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spire")
            .field("dir", &self.path)
            .field("port", &self.port)
            .field("server_pid", &self.server.as_ref().map(Child::id))
            .field("agent_pid", &self.agent_pid())
            .finish_non_exhaustive()
    }
}

impl Spire {
    /// Starts server + agent with [`SpireOptions::default`].
    ///
    /// # Panics
    /// If SPIRE cannot be built or started (the message carries the log tails).
    #[must_use]
    pub fn start() -> Spire {
        Self::start_with(SpireOptions::default())
    }

    /// Starts the server, waits until it is healthy, generates a join token, starts the agent
    /// with it and waits for the Workload API socket.
    ///
    /// # Panics
    /// If SPIRE cannot be built or started (the message carries the log tails).
    #[must_use]
    pub fn start_with(opts: SpireOptions) -> Spire {
        let bin = bin_dir();
        let dir = must(
            tempfile::Builder::new().prefix("sp").tempdir_in("/tmp"),
            "creating the SPIRE temp dir",
        );
        let path = dir.path().to_path_buf();
        let port = free_port();
        let upstream = opts.upstream_authority.then(|| {
            let root = crate::certs::TestCa::root(&opts.trust_domain);
            let (cert, key) = (path.join("up.pem"), path.join("up.key"));
            must(std::fs::write(&cert, root.pem()), "writing the upstream CA");
            must(
                std::fs::write(&key, root.key_pem()),
                "writing the upstream key",
            );
            (cert, key)
        });
        let mut spire = Spire {
            opts,
            bin,
            dir: Some(dir),
            agent_socket: path.join("agent.sock"),
            server_socket: path.join("server.sock"),
            path,
            port,
            upstream,
            bundle_endpoint_port: None,
            server: None,
            agent: None,
        };
        // The free port may be taken by someone else between probing and SPIRE binding it:
        // retry with a new one a couple of times.
        for attempt in 1..=3 {
            if spire.opts.bundle_endpoint.is_some() {
                spire.bundle_endpoint_port = Some(free_port());
            }
            spire.write_configs();
            match spire.try_start_server() {
                Ok(()) => break,
                Err(_) if attempt < 3 && spire.server_log().contains("address already in use") => {
                    spire.port = free_port();
                }
                Err(e) => spire.fail(&e),
            }
        }
        spire.start_agent();
        spire
    }

    fn write_configs(&self) {
        let layout = config::Layout {
            dir: &self.path,
            port: self.port,
            opts: &self.opts,
            upstream: self
                .upstream
                .as_ref()
                .map(|(c, k)| (c.as_path(), k.as_path())),
            bundle_endpoint_port: self.bundle_endpoint_port,
        };
        for (name, text) in [
            ("server.conf", config::server_conf(&layout)),
            ("agent.conf", config::agent_conf(&layout)),
        ] {
            must(
                std::fs::write(self.path.join(name), text),
                "writing a SPIRE config",
            );
        }
    }

    /// The trust domain name.
    #[must_use]
    pub fn trust_domain(&self) -> &str {
        &self.opts.trust_domain
    }

    /// The agent's Workload API socket.
    #[must_use]
    pub fn socket_path(&self) -> &Path {
        &self.agent_socket
    }

    /// `unix://<agent socket>`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.agent_socket.display())
    }

    /// Scratch dir of this instance (configs, data, logs); removed on drop. Tests may put their
    /// own files here.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// The server's port on 127.0.0.1.
    #[must_use]
    pub fn server_port(&self) -> u16 {
        self.port
    }

    /// `https://127.0.0.1:<port>` of the server's federation bundle endpoint, when enabled
    /// with [`SpireOptions::bundle_endpoint`].
    #[must_use]
    pub fn bundle_endpoint_url(&self) -> Option<String> {
        self.bundle_endpoint_port
            .map(|port| format!("https://127.0.0.1:{port}"))
    }

    /// Directory of the SPIRE binaries used.
    #[must_use]
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    /// The upstream root CA (PEM) when started with `upstream_authority: true`; SVID chains
    /// then verify up to it, and it is what `bundle_pem` returns.
    #[must_use]
    pub fn upstream_ca_pem(&self) -> Option<String> {
        self.upstream.as_ref().map(|(cert, _)| read_lossy(cert))
    }

    /// Pid of the running agent, if any.
    #[must_use]
    pub fn agent_pid(&self) -> Option<u32> {
        self.agent.as_ref().map(Child::id)
    }

    /// Pid of the running server, if any.
    #[must_use]
    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().map(Child::id)
    }

    /// The server log so far.
    #[must_use]
    pub fn server_log(&self) -> String {
        read_lossy(&self.path.join("server.log"))
    }

    /// The agent log so far.
    #[must_use]
    pub fn agent_log(&self) -> String {
        read_lossy(&self.path.join("agent.log"))
    }

    /// SIGKILLs the agent and reaps it.
    pub fn kill_agent(&mut self) {
        if let Some(c) = self.agent.take() {
            hard_kill(c);
        }
    }

    /// Starts the agent (again) with the same data dir. A fresh join token is passed each time;
    /// an agent that already holds an SVID from a previous run reuses it.
    ///
    /// # Panics
    /// If the agent does not come up within 60 s.
    pub fn start_agent(&mut self) {
        if self.agent.is_some() {
            return;
        }
        let agent_id = format!("spiffe://{}/agent", self.opts.trust_domain);
        let out = self.server_cmd_ok(&["token", "generate", "-spiffeID", &agent_id]);
        let token = out
            .lines()
            .find_map(|l| l.strip_prefix("Token:").map(|t| t.trim().to_owned()))
            .unwrap_or_else(|| self.fail("no Token in `token generate` output"));
        let _ = std::fs::remove_file(&self.agent_socket);
        let conf = self.path.join("agent.conf").to_string_lossy().into_owned();
        let child = self.spawn(
            "spire-agent",
            &["run", "-config", &conf, "-joinToken", &token],
            "agent.log",
        );
        self.agent = Some(child);
        let sock = self.agent_socket.clone();
        if !wait_until(START_TIMEOUT, || sock.exists() || !self.alive_agent())
            || !self.alive_agent()
        {
            self.fail("the agent did not open its Workload API socket");
        }
    }

    /// SIGTERMs the server and waits for it to exit (SIGKILL after 10 s).
    pub fn stop_server(&mut self) {
        if let Some(c) = self.server.take() {
            soft_kill(c);
        }
    }

    /// Starts the server (again) with the same data dir and waits until it is healthy.
    ///
    /// # Panics
    /// If the server is not healthy within 60 s.
    pub fn start_server(&mut self) {
        if let Err(e) = self.try_start_server() {
            self.fail(&e);
        }
    }

    fn try_start_server(&mut self) -> Result<(), String> {
        if self.server.is_some() {
            return Ok(());
        }
        let _ = std::fs::remove_file(&self.server_socket);
        let conf = self.path.join("server.conf").to_string_lossy().into_owned();
        let child = self.spawn("spire-server", &["run", "-config", &conf], "server.log");
        self.server = Some(child);
        let healthy = wait_until(START_TIMEOUT, || {
            if !self.alive_server() {
                return true;
            }
            self.server_socket.exists() && self.server_cmd(&["healthcheck"]).status.success()
        });
        if !self.alive_server() {
            if let Some(c) = self.server.take() {
                hard_kill(c);
            }
            return Err("the server exited during start-up".to_owned());
        }
        if !healthy {
            return Err(format!(
                "the server was not healthy within {START_TIMEOUT:?}"
            ));
        }
        Ok(())
    }

    fn alive_agent(&mut self) -> bool {
        self.agent
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn alive_server(&mut self) -> bool {
        self.server
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn spawn(&self, name: &str, args: &[&str], log: &str) -> Child {
        let log_file = must(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.path.join(log)),
            "opening a SPIRE log",
        );
        let err_file: File = must(log_file.try_clone(), "cloning a log handle");
        must(
            Command::new(self.bin.join(name))
                .args(args)
                .current_dir(&self.path)
                .stdin(Stdio::null())
                .stdout(log_file)
                .stderr(err_file)
                .spawn(),
            &format!("spawning {name}"),
        )
    }

    /// Panics with `msg` and the tails of both logs.
    pub(super) fn fail(&self, msg: &str) -> ! {
        panic!(
            "testkit/spire: {msg}\n--- server log (tail) ---\n{}\n--- agent log (tail) ---\n{}",
            tail(&self.server_log(), 40),
            tail(&self.agent_log(), 40)
        )
    }
}

impl Drop for Spire {
    #[allow(clippy::print_stderr)]
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "testkit/spire: test panicked; {} logs:\n--- server (tail) ---\n{}\n--- agent (tail) ---\n{}",
                self.path.display(),
                tail(&self.server_log(), 30),
                tail(&self.agent_log(), 30)
            );
        }
        if let Some(c) = self.agent.take() {
            hard_kill(c);
        }
        if let Some(c) = self.server.take() {
            hard_kill(c);
        }
        if let Some(d) = self.dir.take() {
            // Keep the dir when asked to, for post-mortems.
            if std::env::var_os("TESTKIT_KEEP_SPIRE_DIR").is_some() {
                let _ = d.keep();
            }
        }
    }
}
