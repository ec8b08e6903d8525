//! A real `HAProxy` (Debian's `haproxy`) in master-worker mode (`-W`), terminating TLS on
//! `127.0.0.1:<port>` with one `crt` file (the helper's combined key+chain file) and writing
//! the master's pid to a pid file, so the helper can reload it with SIGUSR2. A bounded request
//! loop counts the requests that fail, e.g. across a reload.

use std::fs::{self, File};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{free_port, read_lossy, stop_child, wait_until};
use crate::must;

/// The `haproxy` binary: `$HAPROXY`, else Debian's `/usr/sbin/haproxy`.
#[must_use]
pub fn binary() -> PathBuf {
    std::env::var_os("HAPROXY").map_or_else(|| PathBuf::from("/usr/sbin/haproxy"), PathBuf::from)
}

/// True when the `haproxy` binary is installed.
#[must_use]
pub fn available() -> bool {
    binary().is_file()
}

/// A running `HAProxy` master (and its worker). Stopped (SIGTERM to the master, which stops the
/// workers; then SIGKILL) on drop.
pub struct Haproxy {
    dir: tempfile::TempDir,
    port: u16,
    pid_file: PathBuf,
    master: Child,
}

impl Haproxy {
    /// Starts `haproxy -W -p <dir>/haproxy.pid -f <dir>/haproxy.cfg` with a frontend on
    /// `127.0.0.1:<free port>` that answers every request `200 ok` over TLS with `crt`, and
    /// waits until it serves TLS.
    ///
    /// # Panics
    /// If it does not come up within 20 s; the message carries its log.
    #[must_use]
    pub fn start(crt: &Path) -> Haproxy {
        Self::start_with_pid_file(crt, None)
    }

    /// [`Haproxy::start`] writing the master's pid to `pid_file` (e.g. a path already in the
    /// helper's config) instead of `<dir>/haproxy.pid`.
    ///
    /// # Panics
    /// As [`Haproxy::start`].
    #[must_use]
    pub fn start_with_pid_file(crt: &Path, pid_file: Option<&Path>) -> Haproxy {
        let dir = must(
            tempfile::Builder::new().prefix("hap").tempdir_in("/tmp"),
            "creating the HAProxy temp dir",
        );
        let port = free_port();
        let pid_file = pid_file.map_or_else(|| dir.path().join("haproxy.pid"), Path::to_path_buf);
        let cfg = dir.path().join("haproxy.cfg");
        let text = format!(
            "global\n  log stderr format raw local0 info\n\n\
             defaults\n  mode http\n  log global\n  timeout connect 2s\n  timeout client 5s\n  timeout server 5s\n\n\
             frontend fe\n  bind 127.0.0.1:{port} ssl crt {crt}\n  \
             http-request return status 200 content-type text/plain string ok\n",
            crt = crt.display()
        );
        must(fs::write(&cfg, text), "writing haproxy.cfg");
        let log = must(
            File::create(dir.path().join("haproxy.log")),
            "creating the HAProxy log",
        );
        let mut cmd = Command::new(binary());
        cmd.arg("-W")
            .arg("-p")
            .arg(&pid_file)
            .arg("-f")
            .arg(&cfg)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(must(log.try_clone(), "cloning the log handle"))
            .stderr(log)
            .process_group(0);
        let master = must(cmd.spawn(), "starting haproxy");
        let mut hap = Haproxy {
            dir,
            port,
            pid_file,
            master,
        };
        if !wait_until(Duration::from_secs(20), || hap.served_serial().is_some()) {
            let log = hap.log();
            let exited = hap.master.try_wait().ok().flatten();
            drop(hap);
            panic!(
                "testkit: HAProxy did not serve TLS within 20 s (exit: {exited:?}); log:\n{log}"
            );
        }
        hap
    }

    /// The TLS port on 127.0.0.1.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The pid file `HAProxy` writes (the master's pid): the helper's `pid_file_name`.
    #[must_use]
    pub fn pid_file(&self) -> PathBuf {
        self.pid_file.clone()
    }

    /// The master's pid.
    #[must_use]
    pub fn master_pid(&self) -> u32 {
        self.master.id()
    }

    /// Reloads the way the helper does: SIGUSR2 to the master.
    ///
    /// # Panics
    /// If the signal cannot be sent.
    pub fn reload(&self) {
        let pid = must(i32::try_from(self.master.id()), "master pid");
        must(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGUSR2),
            "signalling the HAProxy master",
        );
    }

    /// The serial `HAProxy` presents now.
    #[must_use]
    pub fn served_serial(&self) -> Option<String> {
        super::probe::served_serial(self.port, None)
    }

    /// Whether the master is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.master.try_wait(), Ok(None))
    }

    /// The log so far (`HAProxy` logs to stderr).
    #[must_use]
    pub fn log(&self) -> String {
        read_lossy(&self.dir.path().join("haproxy.log"))
    }

    /// Starts a request loop in a thread: one new TLS connection and one HTTPS request at a
    /// time (`curl`, 2 s timeout each), `interval` apart, until [`RequestLoop::finish`] or
    /// `max_requests` or `max_time`, whichever comes first (bounded in count and time).
    #[must_use]
    pub fn request_loop(
        &self,
        interval: Duration,
        max_requests: u32,
        max_time: Duration,
    ) -> RequestLoop {
        let url = format!("https://127.0.0.1:{}/", self.port);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let started = Instant::now();
            let mut counts = LoopCounts::default();
            while !flag.load(Ordering::Acquire)
                && counts.ok + counts.failed < max_requests
                && started.elapsed() < max_time
            {
                let out = Command::new("curl")
                    .args([
                        "-sk",
                        "--no-keepalive",
                        "--max-time",
                        "2",
                        "-o",
                        "/dev/null",
                        "-w",
                        "%{http_code}",
                    ])
                    .arg(&url)
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .output();
                match out {
                    Ok(o) if o.status.success() && o.stdout == b"200" => counts.ok += 1,
                    _ => counts.failed += 1,
                }
                std::thread::sleep(interval);
            }
            counts
        });
        RequestLoop { stop, thread }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        stop_child(&mut self.master, Signal::SIGTERM, Duration::from_secs(5));
    }
}

/// What a request loop saw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LoopCounts {
    /// Requests answered `200`.
    pub ok: u32,
    /// Requests that failed (connection, TLS, timeout, or another status).
    pub failed: u32,
}

/// A request loop running in a thread.
pub struct RequestLoop {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<LoopCounts>,
}

impl RequestLoop {
    /// Stops the loop and returns its counts.
    ///
    /// # Panics
    /// If the loop thread panicked.
    #[must_use]
    pub fn finish(self) -> LoopCounts {
        self.stop.store(true, Ordering::Release);
        self.thread
            .join()
            .unwrap_or_else(|_| panic!("testkit: the request loop panicked"))
    }
}
