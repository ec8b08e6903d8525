//! Fault-injection helpers on top of the e2e support module: health bodies, a fake agent with
//! its own runtime, file watchers that run while faults happen, and filesystem fault guards
//! (a full tmpfs, an immutable directory).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use spiffe_helper_testkit::certs::{self, TestCa, TestSvid};
use spiffe_helper_testkit::fake::FakeAgent;
use spiffe_helper_testkit::pb;

use crate::inspect::{http_get, leaf, pem_blocks};
use crate::support::{Helper, WORKLOAD, base_config, wait_until, write_file};

/// The health probe's status and JSON body (Null when the body is not JSON).
pub fn health(port: u16, path: &str) -> Option<(u16, serde_json::Value)> {
    let (status, body) = http_get(port, path)?;
    Some((status, serde_json::from_str(&body).unwrap_or_default()))
}

/// Status code of the liveness probe.
pub fn live(port: u16) -> Option<u16> {
    health(port, "/health/live").map(|(s, _)| s)
}

/// Status code of the readiness probe.
pub fn ready(port: u16) -> Option<u16> {
    health(port, "/health/ready").map(|(s, _)| s)
}

/// The `agent_connection` field of the readiness body.
pub fn agent_connection(port: u16) -> Option<String> {
    let (_, body) = health(port, "/health/ready")?;
    body["agent_connection"].as_str().map(str::to_owned)
}

/// A daemon config with the health listener on `port`, a short start-up deadline and debug logs.
pub fn daemon_config(endpoint: &str, cert_dir: &Path, port: u16, extra: &str) -> String {
    format!(
        "{}startup_timeout = \"10s\"\nhealth_checks {{\n  listener_enabled = true\n  bind_port = {port}\n}}\n{extra}",
        base_config(endpoint, cert_dir)
    )
}

/// Writes `helper.conf` in `dir` and starts the daemon with it.
pub fn start_daemon(dir: &Path, config: &str) -> Helper {
    let path = write_file(dir, "helper.conf", config);
    Helper::spawn(&path, &[])
}

/// Waits until the SVID file holds a certificate and readiness is 200; returns the leaf serial.
pub fn wait_ready(helper: &mut Helper, svid: &Path, port: u16) -> String {
    let ok = wait_until(Duration::from_secs(30), || {
        leaf(svid).is_some() && ready(port) == Some(200)
    });
    assert!(ok, "helper not ready within 30 s; log:\n{}", tail(helper));
    helper.assert_running("after the first write");
    leaf(svid).unwrap().serial
}

/// A daemon on a fake agent (health on) that has written one good SVID and is ready.
pub struct Running {
    pub fake: Fake,
    pub helper: Helper,
    pub files: X509Files,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Running {
    /// Starts the fake agent with one fresh SVID and a daemon whose config ends with `extra`.
    pub fn start(extra: &str) -> Self {
        let fake = Fake::start();
        fake.push_fresh();
        let dir = crate::support::scratch();
        let certs = dir.path().join("certs");
        let files = X509Files::in_dir(&certs);
        let port = crate::support::free_port();
        let mut helper = start_daemon(
            dir.path(),
            &daemon_config(&fake.endpoint(), &certs, port, extra),
        );
        wait_ready(&mut helper, &files.svid, port);
        Running {
            fake,
            helper,
            files,
            port,
            dir,
        }
    }
}

/// The three X.509 files of a cert dir with default names.
#[derive(Clone, Debug)]
pub struct X509Files {
    pub svid: PathBuf,
    pub key: PathBuf,
    pub bundle: PathBuf,
}

impl X509Files {
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            svid: dir.join("svid.pem"),
            key: dir.join("svid_key.pem"),
            bundle: dir.join("svid_bundle.pem"),
        }
    }

    /// The bytes of all three files (missing = empty).
    pub fn snapshot(&self) -> [Vec<u8>; 3] {
        [&self.svid, &self.key, &self.bundle].map(|p| fs::read(p).unwrap_or_default())
    }
}

/// Why a file's content is not a valid PEM file of the expected kind, if it is not.
pub fn pem_problem(bytes: &[u8], label: &str, exactly_one: bool) -> Option<String> {
    if bytes.is_empty() {
        return Some("empty".into());
    }
    let Ok(text) = std::str::from_utf8(bytes) else {
        return Some("not UTF-8".into());
    };
    if !text.ends_with('\n') {
        return Some("does not end with a newline (partial?)".into());
    }
    let blocks = pem_blocks(text);
    if blocks.is_empty() || blocks.iter().any(|(l, der)| l != label || der.is_empty()) {
        return Some(format!("not a sequence of {label} blocks"));
    }
    if exactly_one && blocks.len() != 1 {
        return Some(format!("{} {label} blocks, expected one", blocks.len()));
    }
    if label == "CERTIFICATE"
        && blocks
            .iter()
            .any(|(_, der)| x509_parser::parse_x509_certificate(der).is_err())
    {
        return Some("a block is not a certificate".into());
    }
    None
}

/// A thread that reads the three X.509 files as fast as it can while a fault is injected,
/// and records every read where a file is missing, empty, partial or not PEM.
pub struct FileChecker {
    stop: Arc<AtomicBool>,
    reads: Arc<AtomicUsize>,
    problems: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl FileChecker {
    pub fn start(files: &X509Files) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let reads = Arc::new(AtomicUsize::new(0));
        let problems = Arc::new(Mutex::new(Vec::new()));
        let (halt, count, seen, f) = (stop.clone(), reads.clone(), problems.clone(), files.clone());
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::Relaxed) {
                for (path, label, one) in [
                    (&f.svid, "CERTIFICATE", false),
                    (&f.key, "PRIVATE KEY", true),
                    (&f.bundle, "CERTIFICATE", false),
                ] {
                    let problem = match fs::read(path) {
                        Ok(bytes) => pem_problem(&bytes, label, one),
                        Err(err) => Some(format!("cannot read: {err}")),
                    };
                    if let Some(problem) = problem {
                        let mut all = seen.lock().unwrap();
                        if all.len() < 20 {
                            all.push(format!("{}: {problem}", path.display()));
                        }
                    }
                }
                count.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Self {
            stop,
            reads,
            problems,
            thread: Some(thread),
        }
    }

    /// Stops the thread; returns (rounds of reads, problems seen).
    pub fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let problems = self.problems.lock().unwrap().clone();
        (self.reads.load(Ordering::Relaxed), problems)
    }
}

impl Drop for FileChecker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A thread that stats the key file and its temporary files (`.svid_key.pem.tmp-*`) in a loop
/// and records any instant at which one is readable or writable beyond `allowed` (owner only).
pub struct ModeWatcher {
    stop: Arc<AtomicBool>,
    stats: Arc<AtomicUsize>,
    temps_seen: Arc<AtomicUsize>,
    problems: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl ModeWatcher {
    pub fn start(dir: &Path, key_name: &str, allowed: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(AtomicUsize::new(0));
        let temps_seen = Arc::new(AtomicUsize::new(0));
        let problems = Arc::new(Mutex::new(Vec::new()));
        let (s, n, t, p) = (
            stop.clone(),
            stats.clone(),
            temps_seen.clone(),
            problems.clone(),
        );
        let dir = dir.to_path_buf();
        let temp_prefix = format!(".{key_name}.tmp-");
        let key_name = key_name.to_owned();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok(entries) = fs::read_dir(&dir) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let is_temp = name.starts_with(&temp_prefix);
                    if name != key_name && !is_temp {
                        continue;
                    }
                    let Ok(meta) = fs::symlink_metadata(entry.path()) else {
                        continue; // renamed or removed between readdir and stat
                    };
                    n.fetch_add(1, Ordering::Relaxed);
                    if is_temp {
                        t.fetch_add(1, Ordering::Relaxed);
                    }
                    let mode = meta.permissions().mode() & 0o7777;
                    if mode & !allowed != 0 || !meta.file_type().is_file() {
                        let mut all = p.lock().unwrap();
                        if all.len() < 20 {
                            all.push(format!(
                                "{name}: mode {mode:o}, type {:?}",
                                meta.file_type()
                            ));
                        }
                    }
                    if meta.uid() != nix::unistd::getuid().as_raw() {
                        p.lock()
                            .unwrap()
                            .push(format!("{name}: owner uid {}", meta.uid()));
                    }
                }
            }
        });
        Self {
            stop,
            stats,
            temps_seen,
            problems,
            thread: Some(thread),
        }
    }

    /// Stops the thread; returns (stats made, temp files seen, problems).
    pub fn finish(mut self) -> (usize, usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let problems = self.problems.lock().unwrap().clone();
        (
            self.stats.load(Ordering::Relaxed),
            self.temps_seen.load(Ordering::Relaxed),
            problems,
        )
    }
}

impl Drop for ModeWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------
// Fake agent
// ---------------------------------------------------------------------------------------------

/// A [`FakeAgent`] with its own multi-thread runtime (the tests themselves are synchronous).
pub struct Fake {
    pub agent: Option<FakeAgent>,
    pub rt: tokio::runtime::Runtime,
    pub ca: TestCa,
}

impl Fake {
    pub fn start() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let agent = rt.block_on(FakeAgent::start());
        Self {
            agent: Some(agent),
            rt,
            ca: TestCa::root("example.org"),
        }
    }

    pub fn agent(&self) -> &FakeAgent {
        self.agent.as_ref().unwrap()
    }

    pub fn endpoint(&self) -> String {
        self.agent().endpoint()
    }

    /// Issues a fresh one-hour SVID for [`WORKLOAD`].
    pub fn issue(&self) -> TestSvid {
        self.ca.issue(WORKLOAD, Duration::from_secs(3600))
    }

    /// A well-formed response for `svid` with this CA as the bundle.
    pub fn response(&self, svid: &TestSvid) -> pb::X509svidResponse {
        certs::x509_response(&[(svid, "")], &[self.ca.der()], &[])
    }

    /// Pushes a fresh valid SVID; returns its leaf serial (as the support module formats it).
    pub fn push_fresh(&self) -> String {
        let svid = self.issue();
        self.agent().push_x509(self.response(&svid));
        crate::inspect::cert_info(&svid.chain[0]).serial
    }

    pub fn push(&self, response: pb::X509svidResponse) {
        self.agent().push_x509(response);
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        if let Some(agent) = self.agent.take() {
            self.rt.block_on(agent.shutdown());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Filesystem faults
// ---------------------------------------------------------------------------------------------

/// A small tmpfs mounted on a directory (needs root); unmounted (lazily) on drop.
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    pub fn mount(dir: &Path, size: &str) -> Self {
        fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root and CAP_SYS_ADMIN: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// Fills the filesystem with `dir/filler` until a write fails with ENOSPC; returns bytes written.
    pub fn fill(&self) -> usize {
        let mut file = fs::File::create(self.dir.join("filler")).unwrap();
        let chunk = [0u8; 512];
        let mut total = 0;
        loop {
            match file.write(&chunk) {
                Ok(0) => break,
                Ok(n) => total += n,
                Err(e) if e.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        let _ = file.sync_all();
        total
    }

    /// Gives the space back.
    pub fn drain(&self) {
        fs::remove_file(self.dir.join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// The immutable attribute (`chattr +i`) on a directory: no entry can be created, renamed or
/// removed in it, even by root. Cleared on drop so the temp dir can be removed.
pub struct Immutable {
    dir: PathBuf,
    set: bool,
}

impl Immutable {
    pub fn set(dir: &Path) -> Self {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(
            ok,
            "chattr +i {} failed (needs root and ext4/tmpfs)",
            dir.display()
        );
        Self {
            dir: dir.to_path_buf(),
            set: true,
        }
    }

    pub fn clear(&mut self) {
        if self.set {
            let ok = Command::new("chattr")
                .arg("-i")
                .arg(&self.dir)
                .status()
                .unwrap()
                .success();
            assert!(ok, "chattr -i {} failed", self.dir.display());
            self.set = false;
        }
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        if self.set {
            let _ = Command::new("chattr").arg("-i").arg(&self.dir).status();
        }
    }
}

/// Entries of `dir` whose names look like the writer's temporary files.
pub fn stray_temps(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether `log` has a line containing every one of `words` (case-insensitive).
pub fn log_has(log: &str, words: &[&str]) -> bool {
    log.lines().any(|line| {
        let line = line.to_ascii_lowercase();
        words.iter().all(|w| line.contains(&w.to_ascii_lowercase()))
    })
}

/// The last 30 info/warn/error lines of the helper's log (the debug log is mostly h2 frames),
/// with lines that look like key material or tokens redacted, for failure messages.
pub fn tail(helper: &Helper) -> String {
    let log = helper.log();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains(" DEBUG ") && !l.contains(" TRACE "))
        .collect();
    lines[lines.len().saturating_sub(30)..]
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

/// Seconds until `t` (negative when past).
pub fn secs_until(t: SystemTime) -> f64 {
    match t.duration_since(SystemTime::now()) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}
