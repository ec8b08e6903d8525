//! A real `HAProxy` (Debian's `haproxy`) in master-worker mode (`-W`), terminating TLS on
//! `127.0.0.1:<port>` with one `crt` file (the helper's combined key+chain file) and writing
//! the master's pid to a pid file, so the helper can reload it with SIGUSR2. A bounded request
//! loop counts the requests that fail, e.g. across a reload.

use std::fs::{self, File};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;

pub use super::probe::{LoopCounts, RequestLoop};
use super::{free_port, probe, read_lossy, stop_child, wait_until};
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

    /// Starts a request loop against this `HAProxy` ([`probe::request_loop`]).
    #[must_use]
    pub fn request_loop(
        &self,
        interval: Duration,
        max_requests: u32,
        max_time: Duration,
    ) -> RequestLoop {
        probe::request_loop(self.port, interval, max_requests, max_time)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        stop_child(&mut self.master, Signal::SIGTERM, Duration::from_secs(5));
    }
}
