//! A real SPIRE server + agent (v1.13.3) as local processes in a short `/tmp` dir.
//!
//! Every process is killed by pid when [`Spire`] is dropped (agent first), also when the test
//! panics; the scratch dir is removed then. On a panicking drop the tails of both logs are
//! written to stderr for diagnosis.

mod bin;
mod config;

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

pub use bin::{SPIRE_VERSION, bin_dir, build_script};
pub use config::{Entry, SpireOptions};

use crate::must;

/// How long start-up steps (health, attestation, socket) may take on a busy 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGTERM'd process may take to exit before it is SIGKILL'd.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running SPIRE server and agent for one test.
pub struct Spire {
    opts: SpireOptions,
    bin: PathBuf,
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
    port: u16,
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

fn free_port() -> u16 {
    let l = must(TcpListener::bind("127.0.0.1:0"), "binding a free port");
    must(l.local_addr(), "reading the free port").port()
}

fn wait_until(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
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
        let layout = config::Layout {
            dir: &path,
            port,
            opts: &opts,
            upstream: upstream.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
        };
        for (name, text) in [
            ("server.conf", config::server_conf(&layout)),
            ("agent.conf", config::agent_conf(&layout)),
        ] {
            must(
                std::fs::write(path.join(name), text),
                "writing a SPIRE config",
            );
        }
        let mut spire = Spire {
            opts,
            bin,
            dir: Some(dir),
            agent_socket: path.join("agent.sock"),
            server_socket: path.join("server.sock"),
            path,
            port,
            server: None,
            agent: None,
        };
        spire.start_server();
        spire.start_agent();
        spire
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

    /// Directory of the SPIRE binaries used.
    #[must_use]
    pub fn bin_dir(&self) -> &Path {
        &self.bin
    }

    fn tool(&self, name: &str, args: &[&str]) -> Output {
        must(
            Command::new(self.bin.join(name))
                .args(args)
                .stdin(Stdio::null())
                .output(),
            &format!("running {name} {}", args.first().unwrap_or(&"")),
        )
    }

    fn server_cmd(&self, args: &[&str]) -> Output {
        let sock = self.server_socket.to_string_lossy().into_owned();
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["-socketPath", &sock]);
        self.tool("spire-server", &a)
    }

    fn server_cmd_ok(&self, args: &[&str]) -> String {
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

    /// SIGTERMs the agent and waits for it to exit (SIGKILL after 10 s).
    pub fn stop_agent(&mut self) {
        if let Some(c) = self.agent.take() {
            soft_kill(c);
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
        if self.server.is_some() {
            return;
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
        if !healthy || !self.alive_server() {
            self.fail("the server did not become healthy");
        }
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
    fn fail(&self, msg: &str) -> ! {
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

fn read_lossy(p: &Path) -> String {
    std::fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn hard_kill(mut c: Child) {
    // `Child::kill` sends SIGKILL to this pid only; `wait` reaps it.
    let _ = c.kill();
    let _ = c.wait();
}

fn soft_kill(mut c: Child) {
    if let Ok(pid) = i32::try_from(c.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let exited = wait_until(STOP_TIMEOUT, || !matches!(c.try_wait(), Ok(None)));
    if !exited {
        let _ = c.kill();
    }
    let _ = c.wait();
}
