//! Rows 3x of docs/benchmarks.md: rotation → `renew_signal` at the child.
//!
//! With the fake Workload API, the driver records the monotonic instant T0 just before it
//! pushes a new SVID; the child (`child-recorder`) records when SIGHUP arrives. With the real
//! agent, SPIRE decides when to rotate, so the figure is the gap between the helper's first
//! file change (inotify) and the signal.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use spiffe_helper_testkit::certs::{TestCa, x509_response};
use spiffe_helper_testkit::fake::FakeAgent;

use crate::Ctx;
use crate::conf::HelperConf;
use crate::procs::{Impl, Proc, log_tail, mono_ns, terminate_pid};
use crate::recorder::{self, Recording};
use crate::report::{Row, Target, Unit};

const SPIFFE_ID: &str = "spiffe://example.org/bench";

/// A signal is paired with the first output change at most this long before it (real SPIRE
/// rotates a 10 s-TTL SVID about once a second).
const ATTRIBUTION_WINDOW_NS: u64 = 300_000_000;

/// A helper daemon whose `cmd` is the signal recorder.
struct Notified {
    proc: Proc,
    which: Impl,
    record: PathBuf,
    cert_dir: PathBuf,
    log: PathBuf,
}

impl Notified {
    fn start(
        ctx: &Ctx,
        socket: &Path,
        which: Impl,
        name: &str,
        hint: Option<&str>,
    ) -> Result<Self> {
        let base = ctx.scratch.join(name);
        let record = base.with_extension("rec");
        let conf = HelperConf {
            agent_socket: socket.to_path_buf(),
            cert_dir: base.join("out"),
            daemon: true,
            cmd: Some((
                ctx.self_exe.clone(),
                format!("child-recorder {}", record.display()),
            )),
            hint: hint.map(str::to_owned),
            ..HelperConf::default()
        };
        let conf_path = conf.write(&base.with_extension("conf"))?;
        let log = base.with_extension("log");
        let proc = Proc::spawn(&mut ctx.bins.command(which, &conf_path, &log)?)?;
        Ok(Notified {
            proc,
            which,
            record,
            cert_dir: conf.cert_dir,
            log,
        })
    }

    /// Waits until the child has started (the first write happened and `cmd` ran).
    fn wait_child(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while recorder::read(&self.record).start_ns.is_none() {
            if self.proc.exited() || Instant::now() > deadline {
                bail!(
                    "{}: child never started: {}",
                    self.which.tag(),
                    log_tail(&self.log, 10)
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Waits (polling every 1 ms; the child timestamps itself) for the `n`-th SIGHUP.
    fn wait_hup(&self, n: usize, timeout: Duration) -> Option<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(t) = recorder::read(&self.record).hups.get(n - 1) {
                return Some(*t);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn stop(mut self) -> Recording {
        let rec = recorder::read(&self.record);
        self.proc.stop();
        // Upstream leaves its child running on SIGTERM; stop it by its recorded pid.
        if let Some(pid) = rec.pid {
            terminate_pid(pid);
        }
        rec
    }
}

/// Fake agent: `ctx.runs * 2` pushes per helper, alternating, T0 → SIGHUP latency.
///
/// # Errors
/// If a helper or its child does not start, or a runtime cannot be built.
pub(crate) fn fake(ctx: &Ctx) -> Result<Row> {
    let pushes = ctx.runs * 2;
    crate::progress(&format!(
        "rotation (fake agent): {pushes} pushes each, alternating"
    ));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("building the fake agent runtime")?;
    let ca = TestCa::root("example.org");
    let push = |fake: &FakeAgent| {
        let svid = ca.issue(SPIFFE_ID, Duration::from_secs(3600));
        let resp = x509_response(&[(&svid, "")], &[ca.der()], &[]);
        let t0 = mono_ns();
        fake.push_x509(resp);
        t0
    };
    let fakes = [
        rt.block_on(FakeAgent::start()),
        rt.block_on(FakeAgent::start()),
    ];
    let mut helpers = Vec::new();
    for (which, fake) in Impl::BOTH.into_iter().zip(&fakes) {
        push(fake);
        let name = format!("rotf-{}", which.tag());
        helpers.push(Notified::start(
            ctx,
            fake.socket_path(),
            which,
            &name,
            None,
        )?);
    }
    for h in &mut helpers {
        h.wait_child(Duration::from_secs(30))?;
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut lat = [Vec::new(), Vec::new()];
    let mut missed = [0usize; 2];
    for n in 1..=pushes {
        for (side, (h, fake)) in helpers.iter().zip(&fakes).enumerate() {
            let t0 = push(fake);
            match h.wait_hup(n - missed[side], Duration::from_secs(5)) {
                #[allow(clippy::cast_precision_loss)]
                Some(t) => lat[side].push(t.saturating_sub(t0) as f64 / 1e6),
                None => missed[side] += 1,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    for h in helpers {
        h.stop();
    }
    drop(fakes);
    if missed != [0, 0] {
        crate::note(format!(
            "3a: pushes without a SIGHUP within 5 s: ours {}, upstream {}",
            missed[0], missed[1]
        ));
    }
    let [o, u] = lat;
    Ok(Row::new(
        "3a",
        "rotation push → SIGHUP at child (fake agent)",
        Unit::Ms,
        o,
        u,
    )
    .target(Target::OursBelow(5.0)))
}

/// Real agent: both helpers follow an entry with a short X.509 TTL (selected by `hint`) for
/// `ctx.real_secs`; per rotation, first output file change (inotify) → SIGHUP.
///
/// # Errors
/// If a helper or its child does not start, or inotify cannot be set up.
pub(crate) fn real(ctx: &Ctx, socket: &Path, hint: &str) -> Result<Row> {
    crate::progress(&format!("rotation (real agent): {} s", ctx.real_secs));
    let mut helpers = Vec::new();
    let mut watchers = Vec::new();
    for which in Impl::BOTH {
        let name = format!("rotr-{}", which.tag());
        let h = Notified::start(ctx, socket, which, &name, Some(hint))?;
        std::fs::create_dir_all(&h.cert_dir)?;
        watchers.push(Watcher::start(&h.cert_dir)?);
        helpers.push(h);
    }
    for h in &mut helpers {
        h.wait_child(Duration::from_secs(60))?;
    }
    std::thread::sleep(Duration::from_secs(ctx.real_secs));
    let mut gaps = [Vec::new(), Vec::new()];
    let mut unattributed = [0usize; 2];
    for (side, (h, w)) in helpers.into_iter().zip(watchers).enumerate() {
        let rec = h.stop();
        let events = w.stop();
        let mut prev = rec.start_ns.unwrap_or(0);
        for hup in rec.hups {
            // The watcher timestamps an event when it reads it; if it was scheduled late, the
            // event shows up after the signal. Such a rotation is left out (and counted)
            // rather than paired with the previous rotation's writes.
            let from = prev.max(hup.saturating_sub(ATTRIBUTION_WINDOW_NS));
            match events
                .iter()
                .copied()
                .filter(|e| *e > from && *e <= hup)
                .min()
            {
                #[allow(clippy::cast_precision_loss)]
                Some(first) => gaps[side].push((hup - first) as f64 / 1e6),
                None => unattributed[side] += 1,
            }
            prev = hup;
        }
    }
    if unattributed != [0, 0] {
        crate::note(format!(
            "3b: signals without a file change seen in the {} ms before them (the watcher \
             read the event late): ours {}, upstream {}",
            ATTRIBUTION_WINDOW_NS / 1_000_000,
            unattributed[0],
            unattributed[1]
        ));
    }
    let [o, u] = gaps;
    Ok(Row::new(
        "3b",
        "file change → SIGHUP at child (real agent)",
        Unit::Ms,
        o,
        u,
    ))
}

/// Records the monotonic time of every completed write/rename into a directory.
struct Watcher {
    stop: Arc<AtomicBool>,
    dir: PathBuf,
    events: Arc<Mutex<Vec<u64>>>,
    thread: std::thread::JoinHandle<()>,
}

const WAKE_FILE: &str = ".bench-wake";

impl Watcher {
    fn start(dir: &Path) -> Result<Watcher> {
        let ino = Inotify::init(InitFlags::IN_CLOEXEC).context("inotify_init")?;
        ino.add_watch(
            dir,
            AddWatchFlags::IN_CLOSE_WRITE | AddWatchFlags::IN_MOVED_TO,
        )
        .context("inotify_add_watch")?;
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(Vec::new()));
        let (s, e) = (Arc::clone(&stop), Arc::clone(&events));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                let Ok(batch) = ino.read_events() else { return };
                let now = mono_ns();
                for ev in batch {
                    let name = ev.name.map(|n| n.to_string_lossy().into_owned());
                    if name.is_some_and(|n| crate::procs::X509_FILES.contains(&n.as_str())) {
                        e.lock().map(|mut v| v.push(now)).ok();
                    }
                }
            }
        });
        Ok(Watcher {
            stop,
            dir: dir.to_path_buf(),
            events,
            thread,
        })
    }

    fn stop(self) -> Vec<u64> {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking read.
        let _ = std::fs::write(self.dir.join(WAKE_FILE), b"");
        let _ = self.thread.join();
        self.events.lock().map(|v| v.clone()).unwrap_or_default()
    }
}
