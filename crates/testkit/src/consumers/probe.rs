//! `openssl` probes: the serial of the certificate a TLS server presents (plain TLS or
//! `PostgreSQL`'s STARTTLS), and of a PEM file; a bounded HTTPS request loop that counts the
//! requests that fail, e.g. across a reload.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The serial (upper-case hex, as `openssl x509 -serial` prints it) of the first certificate
/// in `pem`, or `None` when there is none.
#[must_use]
pub fn serial_of_pem(pem: &[u8]) -> Option<String> {
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // Only certificates are piped here, never the key: the PEM is cut at its first
    // certificate block by the caller's data (s_client output or a certificate file).
    child.stdin.take()?.write_all(pem).ok()?;
    let out = child.wait_with_output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let serial = text.trim().strip_prefix("serial=")?;
    out.status.success().then(|| serial.to_owned())
}

/// The serial of the first certificate in the file at `path` (e.g. the helper's `svid.pem`).
#[must_use]
pub fn serial_of_file(path: &Path) -> Option<String> {
    let pem = std::fs::read(path).ok()?;
    serial_of_pem(&only_certificates(&pem))
}

/// The serial of the certificate served on `127.0.0.1:port`; with `starttls`, the protocol
/// name for `openssl s_client -starttls` (e.g. `"postgres"`). `None` when the handshake fails.
#[must_use]
pub fn served_serial(port: u16, starttls: Option<&str>) -> Option<String> {
    let mut cmd = Command::new("timeout");
    cmd.args(["10", "openssl", "s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"));
    if let Some(proto) = starttls {
        cmd.args(["-starttls", proto]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    serial_of_pem(&only_certificates(&out.stdout))
}

/// Keeps only the `CERTIFICATE` blocks of a PEM text (drops a key block, so a combined file
/// never has its key piped anywhere).
fn only_certificates(pem: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(pem);
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        if line == "-----BEGIN CERTIFICATE-----" {
            inside = true;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
        if line == "-----END CERTIFICATE-----" {
            inside = false;
        }
    }
    out.into_bytes()
}

/// Starts a request loop in a thread against `https://127.0.0.1:<port>/`: one new TLS
/// connection and one HTTPS request at a time (`curl`, 2 s timeout each), `interval` apart,
/// until [`RequestLoop::finish`] or `max_requests` or `max_time`, whichever comes first
/// (bounded in count and time).
#[must_use]
pub fn request_loop(
    port: u16,
    interval: Duration,
    max_requests: u32,
    max_time: Duration,
) -> RequestLoop {
    let url = format!("https://127.0.0.1:{port}/");
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let done = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let progress = done.clone();
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
            progress.store(counts.ok + counts.failed, Ordering::Release);
            std::thread::sleep(interval);
        }
        counts
    });
    RequestLoop { stop, done, thread }
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
    /// Requests completed so far (ok or failed).
    done: Arc<std::sync::atomic::AtomicU32>,
    thread: JoinHandle<LoopCounts>,
}

impl RequestLoop {
    /// How many requests have completed so far.
    #[must_use]
    pub fn completed(&self) -> u32 {
        self.done.load(Ordering::Acquire)
    }

    /// Waits until at least `n` requests have completed (true) or `timeout` passed (false):
    /// on a loaded machine each `curl` takes longer, so tests wait for requests, not time.
    #[must_use]
    pub fn wait_for(&self, n: u32, timeout: std::time::Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.completed() < n {
            if Instant::now() >= deadline || self.thread.is_finished() {
                return self.completed() >= n;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        true
    }

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
