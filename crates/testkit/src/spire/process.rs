//! Process and polling helpers for the SPIRE harness.

use std::net::TcpListener;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::must;

/// How long a SIGTERM'd process may take to exit before it is SIGKILL'd.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub(super) fn free_port() -> u16 {
    let l = must(TcpListener::bind("127.0.0.1:0"), "binding a free port");
    must(l.local_addr(), "reading the free port").port()
}

pub(super) fn wait_until(timeout: Duration, mut ok: impl FnMut() -> bool) -> bool {
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

pub(super) fn read_lossy(p: &Path) -> String {
    std::fs::read(p)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

pub(super) fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub(super) fn hard_kill(mut c: Child) {
    // `Child::kill` sends SIGKILL to this pid only; `wait` reaps it.
    let _ = c.kill();
    let _ = c.wait();
}

pub(super) fn soft_kill(mut c: Child) {
    if let Ok(pid) = i32::try_from(c.id()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let exited = wait_until(STOP_TIMEOUT, || !matches!(c.try_wait(), Ok(None)));
    if !exited {
        let _ = c.kill();
    }
    let _ = c.wait();
}
