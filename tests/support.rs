//! Process management for the helper under test, polling, and certificate/JWT inspection.

use std::cell::RefCell;
use std::fs::{self, File};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The binary under test.
pub const HELPER: &str = env!("CARGO_BIN_EXE_spiffe-helper-rust");
/// The SPIFFE ID most tests register.
pub const WORKLOAD: &str = "spiffe://example.org/workload";
/// How long a test waits for the agent to serve a freshly registered entry.
pub const PROPAGATION: Duration = Duration::from_secs(60);
/// How long a test waits for one rotation of a 30 s X.509-SVID (rotates at about half-life).
pub const ROTATION: Duration = Duration::from_secs(45);

/// Polls `cond` every 100 ms until it holds (true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A fresh scratch directory under the system temp dir.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("e2e").tempdir().unwrap()
}

/// Writes `body` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, body).unwrap();
    path
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The permission bits of `path`.
pub fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Seconds since the epoch, as a float (the signal-recording script logs `date +%s.%N`).
pub fn epoch(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

// ---------------------------------------------------------------------------------------------
// The helper process
// ---------------------------------------------------------------------------------------------

/// A running helper (or a wrapper around it, e.g. `unshare`) in its own process group, with its
/// stderr in a log file. Killed (SIGKILL) on drop when still running.
///
/// Every helper's log is checked for key material and tokens when it is stopped
/// ([`stop_cleanly`]), when a one-shot run ends ([`run_oneshot`]) and, whatever the test did,
/// when the handle is dropped: the drop fails the test if the log holds a secret (see
/// [`Helper::check_log_for_secrets`]). No test has to remember to ask.
pub struct Helper {
    child: Child,
    log: PathBuf,
    exited: Option<ExitStatus>,
    /// Directory searched for key files and JWT files whose content must not be in the log.
    secrets_root: PathBuf,
    /// Tokens seen earlier in the run (since replaced on disk) that must not be in the log.
    seen_tokens: RefCell<Vec<String>>,
    /// Base64 lines of private keys seen earlier in the run (since replaced on disk).
    seen_keys: RefCell<Vec<String>>,
}

impl Helper {
    /// `spiffe-helper-rust -config <config> <extra...>`, working directory = the config's dir,
    /// log = `<config>.log`.
    pub fn spawn(config: &Path, extra: &[&str]) -> Helper {
        let mut cmd = Command::new(HELPER);
        cmd.arg("-config").arg(config).args(extra);
        Self::spawn_command(cmd, config)
    }

    /// Spawns `cmd` (the helper or a wrapper) like [`Helper::spawn`] does.
    pub fn spawn_command(mut cmd: Command, config: &Path) -> Helper {
        let log = config.with_extension("log");
        let err = File::create(&log).unwrap();
        // The test's own environment must not leak in; a variable the test set on `cmd` stays.
        let set: Vec<_> = cmd.get_envs().map(|(k, _)| k.to_owned()).collect();
        for name in ["RUST_LOG", "SPIFFE_ENDPOINT_SOCKET", "SPIRE_AGENT_ADDRESS"] {
            if !set.iter().any(|k| k == name) {
                cmd.env_remove(name);
            }
        }
        cmd.current_dir(config.parent().unwrap())
            .stdin(Stdio::null())
            .stdout(err.try_clone().unwrap())
            .stderr(err)
            // Own process group: a signal sent to "pid 0" by a buggy helper stays in its group.
            .process_group(0);
        let child = cmd.spawn().unwrap();
        Helper {
            child,
            log,
            exited: None,
            secrets_root: config.parent().unwrap().to_path_buf(),
            seen_tokens: RefCell::new(Vec::new()),
            seen_keys: RefCell::new(Vec::new()),
        }
    }

    /// Adds tokens the test read during the run (a JWT-SVID since refreshed, so no longer on
    /// disk) to what [`Helper::check_log_for_secrets`] looks for.
    pub fn remember_tokens(&self, tokens: &[String]) {
        self.seen_tokens.borrow_mut().extend(tokens.iter().cloned());
    }

    /// Adds the private key now in `key_file` (one a rotation will replace) to what
    /// [`Helper::check_log_for_secrets`] looks for.
    pub fn remember_key(&self, key_file: &Path) {
        let pem = fs::read_to_string(key_file).unwrap();
        self.seen_keys.borrow_mut().extend(
            pem.lines()
                .filter(|l| !l.starts_with("-----") && l.len() >= 32)
                .map(str::to_owned),
        );
    }

    /// Panics if the log holds PEM armour, `PRIVATE KEY`, anything that starts like a JWT
    /// (`eyJ`, base64url of `{"`), a 32+ character base64 line of any private-key file under
    /// the config's directory, or any JWT (or its signature) found in a file there or passed to
    /// [`Helper::remember_tokens`]. The message names what was found, never the secret.
    pub fn check_log_for_secrets(&self) {
        let (mut keys, mut tokens) = secrets_under(&self.secrets_root);
        keys.extend(self.seen_keys.borrow().iter().cloned());
        tokens.extend(self.seen_tokens.borrow().iter().cloned());
        if let Some(problem) = secret_in(&self.log(), &keys, &tokens) {
            panic!("{}: {problem}", self.log.display());
        }
    }

    /// The process id.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    /// Sends `sig` to the process.
    pub fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).unwrap();
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        self.signal(Signal::SIGTERM);
    }

    /// The exit status if the process has exited.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().unwrap();
        }
        self.exited
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_exit() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Panics (with the log tail) unless the process is still running.
    pub fn assert_running(&mut self, when: &str) {
        if let Some(status) = self.try_exit() {
            panic!("helper exited ({status}) {when}; log:\n{}", self.log_tail());
        }
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last 40 log lines, lines that look like key material or tokens redacted, for
    /// failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..]
            .iter()
            .map(|l| {
                if l.contains("PRIVATE KEY") || l.contains("BEGIN") || l.contains("eyJ") {
                    "[line redacted: looks like key material or a token]"
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        if self.try_exit().is_none() {
            let _ = kill(self.pid(), Signal::SIGKILL);
            let _ = self.child.wait();
        }
        // A second panic while unwinding would abort the whole test binary; the test has
        // already failed then.
        if !std::thread::panicking() {
            self.check_log_for_secrets();
        }
    }
}

/// SIGTERM, then exit 0 within 2 s, then the log's secret check; returns how long it took.
pub fn stop_cleanly(helper: &mut Helper) -> Duration {
    let start = Instant::now();
    helper.sigterm();
    let status = helper.wait_exit(Duration::from_secs(2));
    let took = start.elapsed();
    match status {
        Some(s) if s.code() == Some(0) => {
            helper.check_log_for_secrets();
            took
        }
        Some(s) => panic!(
            "helper exited with {s} after SIGTERM; log:\n{}",
            helper.log_tail()
        ),
        None => panic!(
            "helper still running 2 s after SIGTERM; log:\n{}",
            helper.log_tail()
        ),
    }
}

/// A finished one-shot run.
pub struct Run {
    pub status: ExitStatus,
    pub elapsed: Duration,
    pub helper: Helper,
}

impl Run {
    /// The exit code (panics if killed by a signal).
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("helper killed by a signal: {}", self.status))
    }
}

/// Runs `spiffe-helper-rust -config <config> --daemon-mode false` to completion, bounded by
/// `timeout` (panics when it does not exit in time).
pub fn run_oneshot(config: &Path, timeout: Duration) -> Run {
    let start = Instant::now();
    let mut helper = Helper::spawn(config, &["--daemon-mode", "false"]);
    let Some(status) = helper.wait_exit(timeout) else {
        panic!(
            "one-shot helper still running after {timeout:?}; log:\n{}",
            helper.log_tail()
        );
    };
    let elapsed = start.elapsed();
    helper.check_log_for_secrets();
    Run {
        status,
        elapsed,
        helper,
    }
}

/// A SPIRE whose `entry` has propagated to the agent (the usual first three lines of a test).
pub fn spire_with(
    entry: &spiffe_helper_testkit::spire::Entry,
) -> spiffe_helper_testkit::spire::Spire {
    let spire = spiffe_helper_testkit::spire::Spire::start();
    spire.create_entry(entry);
    spire.wait_for_svid(PROPAGATION);
    spire
}

/// The usual config head: agent address, cert dir, debug logs (so the secret checks see as much
/// logging as possible).
pub fn base_config(endpoint: &str, cert_dir: &Path) -> String {
    format!(
        "agent_address = \"{endpoint}\"\ncert_dir = \"{}\"\nlog_level = \"debug\"\n",
        cert_dir.display()
    )
}

/// Private-key base64 lines and JWTs in the files under `root` (a few levels deep, log files
/// and files over 1 MiB skipped): what a helper's log must never hold.
fn secrets_under(root: &Path) -> (Vec<String>, Vec<String>) {
    let (mut keys, mut tokens) = (Vec::new(), Vec::new());
    let mut dirs = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() && depth < 4 {
                dirs.push((path, depth + 1));
                continue;
            }
            if !meta.is_file()
                || meta.len() > 1 << 20
                || path.extension().is_some_and(|e| e == "log")
            {
                continue;
            }
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            if text.contains("PRIVATE KEY-----") {
                keys.extend(
                    text.lines()
                        .filter(|l| !l.starts_with("-----") && l.len() >= 32)
                        .map(str::to_owned),
                );
            } else if text.starts_with("eyJ") && text.trim().matches('.').count() == 2 {
                tokens.push(text.trim().to_owned());
            }
        }
    }
    (keys, tokens)
}

/// What secret `text` holds, if any: PEM armour, `PRIVATE KEY`, something that starts like a
/// JWT, one of `key_lines` (private-key base64) or one of `tokens` (or its signature).
pub fn secret_in(text: &str, key_lines: &[String], tokens: &[String]) -> Option<String> {
    if text.contains("PRIVATE KEY") {
        return Some("mentions PRIVATE KEY".into());
    }
    if text.contains("BEGIN") {
        return Some("holds PEM armour (BEGIN)".into());
    }
    if text.contains("eyJ") {
        return Some("holds something that starts like a JWT (eyJ)".into());
    }
    if key_lines.iter().any(|l| text.contains(l.as_str())) {
        return Some("holds a line of a private key's base64".into());
    }
    for token in tokens {
        let signature = token.rsplit('.').next().unwrap_or(token);
        if text.contains(token.as_str()) {
            return Some("holds a JWT-SVID".into());
        }
        if signature.len() >= 16 && text.contains(signature) {
            return Some("holds a JWT-SVID's signature".into());
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// A consumer that records signals
// ---------------------------------------------------------------------------------------------

/// A shell script that appends its pid to `$1/starts` when it starts and one line per SIGHUP
/// (`HUP <epoch>`) or SIGTERM (`TERM <epoch>`, then exits 0) to `$1/signals`.
pub fn signal_recorder(dir: &Path) -> PathBuf {
    let script = write_file(
        dir,
        "recorder.sh",
        "#!/bin/sh\n\
         out=\"$1\"\n\
         trap 'echo \"HUP $(date +%s.%N)\" >> \"$out/signals\"' HUP\n\
         trap 'echo \"TERM $(date +%s.%N)\" >> \"$out/signals\"; exit 0' TERM\n\
         echo \"$$\" >> \"$out/starts\"\n\
         while :; do sleep 1 & wait $!; done\n",
    );
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    script
}

/// Signal lines recorded in `dir/signals`: (name, epoch seconds).
pub fn recorded_signals(dir: &Path) -> Vec<(String, f64)> {
    fs::read_to_string(dir.join("signals"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (name, t) = l.split_once(' ')?;
            Some((name.to_owned(), t.parse().ok()?))
        })
        .collect()
}

/// Number of recorded `name` signals.
pub fn count_signals(dir: &Path, name: &str) -> usize {
    recorded_signals(dir)
        .iter()
        .filter(|(n, _)| n == name)
        .count()
}

/// Pids recorded in `dir/starts` (one per start).
pub fn recorded_starts(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("starts"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// A started process killed (SIGKILL) by pid on drop.
pub struct Proc(pub Child);

impl Proc {
    /// Spawns `cmd` in its own process group, output discarded, with every signal at its
    /// default action: a consumer started by its own supervisor gets that slate, whatever this
    /// test process inherited (under `nohup` or `make test-ignored-signals`, HUP/INT/QUIT come
    /// in ignored, and a shell cannot trap a signal that was ignored when it started).
    pub fn spawn(mut cmd: Command) -> Proc {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        spiffe_helper_notify::reset_signal_dispositions(&mut cmd);
        Proc(cmd.spawn().unwrap())
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
