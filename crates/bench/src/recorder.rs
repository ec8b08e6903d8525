//! `child-recorder FILE`: the helpers' `cmd` during rotation benchmarks. It records when each
//! `SIGHUP` arrives, on the system-wide monotonic clock, so the driver can subtract the
//! instant it pushed the new SVID.
//!
//! File format, one event a line: `start <pid> <mono_ns> <real_ns>` once, then
//! `hup <mono_ns> <real_ns>` per signal.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use nix::sys::signal::{SigSet, Signal};

use crate::procs::{mono_ns, real_ns};

/// Runs the recorder until SIGTERM/SIGINT or until its parent (the helper) is gone.
///
/// # Errors
/// If the signal mask cannot be set or the file cannot be written.
pub(crate) fn run(file: &Path) -> Result<()> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGHUP);
    set.add(Signal::SIGTERM);
    set.add(Signal::SIGINT);
    // Blocked before any other thread exists, so every thread inherits the mask and the
    // signals queue for `sigwait` below instead of killing the process.
    set.thread_block().context("blocking signals")?;
    watch_parent();
    let mut out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .with_context(|| format!("opening {}", file.display()))?;
    // One write(2) per line, so a concurrent reader never sees half a number.
    let start = format!("start {} {} {}\n", std::process::id(), mono_ns(), real_ns());
    out.write_all(start.as_bytes())?;
    loop {
        let sig = set.wait().context("sigwait")?;
        let (mono, real) = (mono_ns(), real_ns());
        if sig != Signal::SIGHUP {
            return Ok(());
        }
        out.write_all(format!("hup {mono} {real}\n").as_bytes())?;
    }
}

/// Exits when the parent changes (the helper died without stopping its child, as the Go
/// helper does on SIGTERM). A polling thread rather than `PR_SET_PDEATHSIG`, which fires when
/// the *thread* that forked exits — and runtimes retire idle threads.
fn watch_parent() {
    let parent = nix::unistd::getppid();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(500));
            if nix::unistd::getppid() != parent {
                std::process::exit(0);
            }
        }
    });
}

/// What a recorder wrote so far.
#[derive(Clone, Debug, Default)]
pub(crate) struct Recording {
    /// The recorder's pid, once it started.
    pub(crate) pid: Option<i32>,
    /// Monotonic time of the start line.
    pub(crate) start_ns: Option<u64>,
    /// Monotonic arrival time of each SIGHUP, in order.
    pub(crate) hups: Vec<u64>,
}

/// Parses a recorder file (missing file: empty recording).
pub(crate) fn read(file: &Path) -> Recording {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let mut rec = Recording::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["start", pid, mono, _] => {
                rec.pid = pid.parse().ok();
                rec.start_ns = mono.parse().ok();
            }
            ["hup", mono, _] => {
                if let Ok(m) = mono.parse() {
                    rec.hups.push(m);
                }
            }
            _ => {} // a line being written right now
        }
    }
    rec
}
