//! Signalling the process named by `pid_file_name` (docs/behaviour.md, "Pid file";
//! docs/consumers.md, "Pid files as daemons write them").
//!
//! Pid files are read the way daemons write them: the pid is the **first line**, trimmed, and
//! the rest is ignored. `PostgreSQL`'s `$PGDATA/postmaster.pid` holds the pid and seven more
//! lines (data directory, start time, port, socket directory, ...); upstream `spiffe-helper`
//! parses the whole file as one number and so cannot reload `PostgreSQL`.
//!
//! What is never signalled:
//! - a pid that is not > 0: `kill(0)` and `kill(-n)` address process groups (upstream does
//!   signal them);
//! - the helper's own pid;
//! - the pid in a file that another user could have written: writable by group or other, or
//!   owned by a uid that is neither root nor the helper's. Such a file lets that user choose
//!   which of the helper's processes gets the signal. The check is on the opened file
//!   (`fstat`), so the file checked is the file read.

use std::fs::OpenOptions;
use std::io::Read as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::{Pid, geteuid};
use spiffe_workload_client::Backoff;

/// Attempts to signal the pid-file process (docs/behaviour.md, "Pid file"): 10 tries.
pub(crate) const ATTEMPTS: u32 = 10;
/// The retry schedule: 100 ms doubling (±20% jitter) under a 30 s cap: the nine waits add up
/// to about 51 s, docs/behaviour.md's "about 51 s".
pub(crate) fn retry_backoff() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(30))
}

/// A pid file bigger than this is not a pid file (`postmaster.pid` is about 100 bytes).
const MAX_LEN: u64 = 4096;

/// Reads the pid file afresh, checks it, and sends `signal`. The error says why nothing was
/// signalled (for the log).
pub(crate) fn signal_pid_file(path: &Path, signal: Signal) -> Result<i32, String> {
    let pid = read_pid_file(path)?;
    kill(Pid::from_raw(pid), signal).map_err(|err| format!("pid {pid}: {err}"))?;
    tracing::info!(path = %path.display(), pid, signal = %signal, "signalled pid file process");
    Ok(pid)
}

/// The pid in `path`, if the file is trustworthy and names a process we may signal.
pub(crate) fn read_pid_file(path: &Path) -> Result<i32, String> {
    // Non-blocking, so that a FIFO (or a device) put where the pid file should be cannot hang
    // the open, and with it the daemon's task, its probes and its shutdown; `fstat` below then
    // refuses it as not a regular file. A regular file reads the same either way.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|err| format!("reading: {err}"))?;
    let meta = file.metadata().map_err(|err| format!("reading: {err}"))?;
    check_owner_and_mode(meta.uid(), meta.mode(), geteuid().as_raw())?;
    if !meta.is_file() {
        return Err("not a regular file".to_owned());
    }
    let mut text = String::new();
    file.take(MAX_LEN)
        .read_to_string(&mut text)
        .map_err(|err| format!("reading: {err}"))?;
    let pid = parse_pid(&text)?;
    if u32::try_from(pid).is_ok_and(|p| p == std::process::id()) {
        return Err(format!(
            "pid {pid} is the helper itself; refusing to signal it"
        ));
    }
    Ok(pid)
}

/// Refuses a file writable by group or other, or owned by a non-root uid other than ours.
fn check_owner_and_mode(owner: u32, mode: u32, our_uid: u32) -> Result<(), String> {
    if mode & 0o022 != 0 {
        return Err(format!(
            "mode {:04o} lets group or other write it; refusing to trust the pid in it",
            mode & 0o7777
        ));
    }
    if owner != 0 && owner != our_uid {
        return Err(format!(
            "owned by uid {owner}, neither root nor the helper's uid {our_uid}; refusing to trust the pid in it"
        ));
    }
    Ok(())
}

/// The pid on the first line (trimmed); the rest of the file is ignored.
fn parse_pid(text: &str) -> Result<i32, String> {
    let first = text.lines().next().unwrap_or_default().trim();
    let pid: i32 = first
        .parse()
        .map_err(|_| format!("first line {first:?} is not a decimal pid"))?;
    if pid <= 0 {
        return Err(format!(
            "pid {pid} is not > 0; refusing to signal a process group"
        ));
    }
    Ok(pid)
}

#[cfg(test)]
mod tests;
