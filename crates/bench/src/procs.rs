//! Starting and stopping helper processes by pid, and reading their costs from `/proc`.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::time::{ClockId, clock_gettime};
use nix::unistd::Pid;

/// Which helper a measurement belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Impl {
    /// `spiffe-helper-rust` (this project).
    Ours,
    /// The Go `spiffe-helper` v0.11.0.
    Upstream,
}

impl Impl {
    /// Both helpers in the order every alternating loop uses (A B A B).
    pub(crate) const BOTH: [Impl; 2] = [Impl::Ours, Impl::Upstream];

    /// Short name for directories and logs.
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Impl::Ours => "ours",
            Impl::Upstream => "up",
        }
    }
}

/// Paths of the two helper binaries under test.
#[derive(Clone, Debug)]
pub(crate) struct Bins {
    /// `target/release/spiffe-helper-rust`.
    pub(crate) ours: PathBuf,
    /// The Go helper as built by `build-spire.sh`.
    pub(crate) upstream: PathBuf,
}

impl Bins {
    /// The binary of `which`.
    pub(crate) fn of(&self, which: Impl) -> &Path {
        match which {
            Impl::Ours => &self.ours,
            Impl::Upstream => &self.upstream,
        }
    }

    /// `BIN -config CONF` with stdin closed and stdout/stderr appended to `log` (both helpers
    /// understand the Go-style single-dash flag).
    pub(crate) fn command(&self, which: Impl, conf: &Path, log: &Path) -> Result<Command> {
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(self.of(which));
        cmd.arg("-config")
            .arg(conf)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        Ok(cmd)
    }
}

/// A started process, stopped by pid (SIGTERM, then SIGKILL) when dropped.
#[derive(Debug)]
pub(crate) struct Proc {
    child: Child,
    done: bool,
}

impl Proc {
    /// Spawns `cmd`.
    pub(crate) fn spawn(cmd: &mut Command) -> Result<Proc> {
        let child = cmd
            .spawn()
            .with_context(|| format!("starting {}", cmd.get_program().to_string_lossy()))?;
        Ok(Proc { child, done: false })
    }

    /// The process id.
    pub(crate) fn pid(&self) -> i32 {
        i32::try_from(self.child.id()).unwrap_or(i32::MAX)
    }

    /// Whether the process has exited already.
    pub(crate) fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Blocks until the process exits.
    pub(crate) fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        let status = self.child.wait()?;
        self.done = true;
        Ok(status)
    }

    /// Sends SIGTERM (the helpers' clean shutdown signal).
    pub(crate) fn terminate(&self) {
        if !self.done {
            let _ = kill(Pid::from_raw(self.pid()), Signal::SIGTERM);
        }
    }

    /// Waits up to `grace` for the process to exit, then SIGKILLs and reaps it.
    pub(crate) fn reap(&mut self, grace: Duration) {
        if self.done {
            return;
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if self.exited() {
                self.done = true;
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.done = true;
    }

    /// SIGTERM, then [`Proc::reap`] with a 5 s grace period.
    pub(crate) fn stop(&mut self) {
        self.terminate();
        self.reap(Duration::from_secs(5));
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stops many processes: SIGTERM to all first, then reap each (so they shut down in parallel).
pub(crate) fn stop_all(procs: &mut [Proc]) {
    for p in procs.iter() {
        p.terminate();
    }
    for p in procs.iter_mut() {
        p.reap(Duration::from_secs(5));
    }
}

/// Sends SIGTERM to a process we did not spawn ourselves (the helpers' `cmd` children).
pub(crate) fn terminate_pid(pid: i32) {
    if pid > 0 {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds (system-wide, so comparable across processes).
pub(crate) fn mono_ns() -> u64 {
    clock_ns(ClockId::CLOCK_MONOTONIC)
}

/// `CLOCK_REALTIME` in nanoseconds since the epoch.
pub(crate) fn real_ns() -> u64 {
    clock_ns(ClockId::CLOCK_REALTIME)
}

fn clock_ns(id: ClockId) -> u64 {
    clock_gettime(id).map_or(0, |t| {
        let secs = u64::try_from(t.tv_sec()).unwrap_or(0);
        let nanos = u64::try_from(t.tv_nsec()).unwrap_or(0);
        secs * 1_000_000_000 + nanos
    })
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM`), in KiB.
pub(crate) fn status_kib(pid: i32, field: &str) -> Result<u64> {
    kib_field(&format!("/proc/{pid}/status"), field)
}

/// Proportional set size (`Pss` of `/proc/PID/smaps_rollup`), in KiB: RSS with shared pages
/// divided among the processes sharing them, the honest figure for many copies of one binary.
pub(crate) fn pss_kib(pid: i32) -> Result<u64> {
    kib_field(&format!("/proc/{pid}/smaps_rollup"), "Pss")
}

fn kib_field(path: &str, field: &str) -> Result<u64> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix(field)
            && let Some(rest) = rest.strip_prefix(':')
        {
            let num = rest.trim().trim_end_matches("kB").trim();
            return num
                .parse()
                .with_context(|| format!("{path}: {field}: {num:?}"));
        }
    }
    bail!("{path}: no {field} line")
}

/// Clock ticks per second of `/proc/PID/stat` (`USER_HZ`, 100 on every Linux ABI).
const USER_HZ: f64 = 100.0;

/// CPU seconds used so far (utime + stime of `/proc/PID/stat`, 10 ms resolution).
pub(crate) fn cpu_secs(pid: i32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    // The command name may contain spaces; fields restart after its closing parenthesis.
    let rest = text
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("no ')' in /proc/PID/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    let tick = |i: usize| -> Result<f64> {
        let v: u64 = fields
            .get(i)
            .context("short /proc/PID/stat")?
            .parse()
            .context("parsing /proc/PID/stat")?;
        #[allow(clippy::cast_precision_loss)]
        Ok(v as f64)
    };
    Ok((tick(11)? + tick(12)?) / USER_HZ)
}

/// CPU seconds on the scheduler's nanosecond clock, summed over the process's live threads
/// (`/proc/PID/task/*/schedstat`, first field): finer than [`cpu_secs`] for idle processes.
pub(crate) fn sched_secs(pid: i32) -> Result<f64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // the thread exited meanwhile
        };
        if let Some(ns) = text.split_whitespace().next() {
            total += ns.parse::<u64>().unwrap_or(0);
        }
    }
    #[allow(clippy::cast_precision_loss)]
    Ok(total as f64 / 1e9)
}

/// How many times the process's live threads were put on a CPU so far
/// (`/proc/PID/task/*/schedstat`, third field): each is one wake-up of a thread.
pub(crate) fn sched_runs(pid: i32) -> Result<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let path = task?.path().join("schedstat");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // the thread exited meanwhile
        };
        if let Some(runs) = text.split_whitespace().nth(2) {
            total += runs.parse::<u64>().unwrap_or(0);
        }
    }
    Ok(total)
}

/// The three X.509 output files every benchmark config asks for.
pub(crate) const X509_FILES: [&str; 3] = ["svid.pem", "svid_key.pem", "svid_bundle.pem"];

/// Whether every file in `names` exists non-empty in `dir`.
pub(crate) fn files_present(dir: &Path, names: &[&str]) -> bool {
    names
        .iter()
        .all(|n| std::fs::metadata(dir.join(n)).is_ok_and(|m| m.len() > 0))
}

/// Polls (every 2 ms) until [`files_present`] or `timeout`; returns when they appeared.
pub(crate) fn wait_files(dir: &Path, names: &[&str], timeout: Duration) -> Result<Instant> {
    let deadline = Instant::now() + timeout;
    loop {
        if files_present(dir, names) {
            return Ok(Instant::now());
        }
        if Instant::now() > deadline {
            bail!(
                "{}: {names:?} not written within {timeout:?}",
                dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A TCP port that was free a moment ago on 127.0.0.1.
pub(crate) fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("binding a probe port")?;
    Ok(l.local_addr()?.port())
}

/// The last `n` lines of a log file, for error messages.
pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
