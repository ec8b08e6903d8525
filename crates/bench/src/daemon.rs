//! Rows 2x (idle daemon: RSS and CPU) and 6x (health endpoint under load) of docs/benchmarks.md.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::Ctx;
use crate::conf::{HelperConf, READY_PATH};
use crate::load;
use crate::procs::{
    Impl, Proc, X509_FILES, cpu_secs, free_port, log_tail, pss_kib, sched_runs, sched_secs,
    status_kib, stop_all, wait_files,
};
use crate::report::{Row, Target, Unit, quantile};

/// Wait between starting the idle daemons and the first reading.
const SETTLE: Duration = Duration::from_secs(12);

/// A daemon with its health port, kept running for the health load test.
#[derive(Debug)]
pub(crate) struct Daemon {
    /// The process.
    pub(crate) proc: Proc,
    /// Its health listener port.
    pub(crate) port: u16,
    /// Which helper it is.
    pub(crate) which: Impl,
}

/// Starts one daemon (X.509 + health listener) and waits for its files and readiness.
///
/// # Errors
/// If it does not write its files or answer `/ready` with 200 within 60 s.
pub(crate) fn start(ctx: &Ctx, socket: &Path, which: Impl, name: &str) -> Result<Daemon> {
    let base = ctx.scratch.join(name);
    let port = free_port()?;
    let conf = HelperConf {
        agent_socket: socket.to_path_buf(),
        cert_dir: base.join("out"),
        daemon: true,
        health_port: Some(port),
        ..HelperConf::default()
    };
    let conf_path = conf.write(&base.with_extension("conf"))?;
    let log = base.with_extension("log");
    let proc = Proc::spawn(&mut ctx.bins.command(which, &conf_path, &log)?)?;
    let mut d = Daemon { proc, port, which };
    wait_files(&conf.cert_dir, &X509_FILES, Duration::from_secs(60))
        .with_context(|| format!("{name}: {}", log_tail(&log, 10)))?;
    wait_ready(&mut d, &log)?;
    Ok(d)
}

fn wait_ready(d: &mut Daemon, log: &Path) -> Result<()> {
    for _ in 0..600 {
        if d.proc.exited() {
            bail!("{} daemon exited: {}", d.which.tag(), log_tail(log, 10));
        }
        if matches!(load::get_status(d.port, READY_PATH), Ok(200)) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("{} daemon never became ready on :{}", d.which.tag(), d.port)
}

/// `ctx.runs` daemons of each helper run side by side for `ctx.idle_secs`; returns the rows
/// and one daemon of each (ours, upstream) for [`health_load`].
///
/// # Errors
/// If a daemon fails to start or its `/proc` entry cannot be read.
pub(crate) fn idle(ctx: &Ctx, socket: &Path) -> Result<(Vec<Row>, Vec<Daemon>)> {
    crate::progress(&format!(
        "daemon idle: {} daemons of each side by side, {} s",
        ctx.runs, ctx.idle_secs
    ));
    let mut daemons = Vec::new();
    for i in 0..ctx.runs {
        for which in Impl::BOTH {
            daemons.push(start(
                ctx,
                socket,
                which,
                &format!("idle-{}-{i}", which.tag()),
            )?);
        }
    }
    // Let the start-up's extra threads go first: the per-thread sums below lose the counts of
    // a thread that exits inside the window (tokio keeps an idle blocking-pool thread 10 s),
    // which made ours' idle CPU read negative.
    std::thread::sleep(SETTLE);
    let before: Vec<(f64, f64, u64)> = daemons
        .iter()
        .map(|d| {
            let pid = d.proc.pid();
            Ok((cpu_secs(pid)?, sched_secs(pid)?, sched_runs(pid)?))
        })
        .collect::<Result<_>>()?;
    std::thread::sleep(Duration::from_secs(ctx.idle_secs));
    let mut cols: [[Vec<f64>; 2]; 7] = Default::default();
    #[allow(clippy::cast_precision_loss)]
    let per_min = 60.0 / ctx.idle_secs.max(1) as f64;
    for (d, (cpu0, sch0, runs0)) in daemons.iter().zip(&before) {
        let pid = d.proc.pid();
        let side = usize::from(d.which == Impl::Upstream);
        #[allow(clippy::cast_precision_loss)]
        let mib = |kib: u64| kib as f64 / 1024.0;
        cols[0][side].push(mib(status_kib(pid, "VmHWM")?));
        cols[1][side].push(mib(status_kib(pid, "VmRSS")?));
        cols[2][side].push(mib(pss_kib(pid)?));
        cols[3][side].push((cpu_secs(pid)? - cpu0) * 1e3);
        cols[4][side].push((sched_secs(pid)? - sch0) * 1e3);
        cols[5][side].push(mib(status_kib(pid, "RssAnon")?));
        #[allow(clippy::cast_precision_loss)]
        cols[6][side].push(sched_runs(pid)?.saturating_sub(*runs0) as f64 * per_min);
    }
    let rows = idle_rows(ctx.idle_secs, cols);
    // Keep the first daemon of each helper for the load test; stop the rest together.
    let mut keep = Vec::new();
    let mut rest = Vec::new();
    for d in daemons {
        if keep.iter().any(|k: &Daemon| k.which == d.which) {
            rest.push(d.proc);
        } else {
            keep.push(d);
        }
    }
    stop_all(&mut rest);
    Ok((rows, keep))
}

/// Rows 2a–2g from the per-daemon columns (ours, upstream) of [`idle`].
fn idle_rows(secs: u64, cols: [[Vec<f64>; 2]; 7]) -> Vec<Row> {
    let [hwm, rss, pss, cpu, sched, anon, wakes] = cols;
    let [hwm_o, hwm_u] = hwm;
    let [rss_o, rss_u] = rss;
    let [pss_o, pss_u] = pss;
    let [cpu_o, cpu_u] = cpu;
    let [sch_o, sch_u] = sched;
    let [anon_o, anon_u] = anon;
    let [wakes_o, wakes_u] = wakes;
    vec![
        Row::new(
            "2a",
            "daemon peak RSS (VmHWM), health on",
            Unit::MiB,
            hwm_o,
            hwm_u,
        ),
        Row::new(
            "2b",
            &format!("daemon steady RSS (VmRSS) after {secs} s idle"),
            Unit::MiB,
            rss_o,
            rss_u,
        )
        .target(Target::RatioAtMost(0.25)),
        Row::new(
            "2c",
            &format!("daemon private memory (RssAnon) after {secs} s idle"),
            Unit::MiB,
            anon_o,
            anon_u,
        ),
        Row::new(
            "2d",
            &format!("daemon PSS after {secs} s idle"),
            Unit::MiB,
            pss_o,
            pss_u,
        ),
        Row::new(
            "2e",
            &format!("CPU over {secs} s idle (utime+stime, 10 ms ticks)"),
            Unit::Ms,
            cpu_o,
            cpu_u,
        )
        .target(Target::RatioAtMost(1.0)),
        Row::new(
            "2f",
            &format!("CPU over {secs} s idle (schedstat, ns clock)"),
            Unit::Ms,
            sch_o,
            sch_u,
        ),
        Row::new(
            "2g",
            "idle wake-ups per minute (threads put on a CPU, schedstat)",
            Unit::PerMin,
            wakes_o,
            wakes_u,
        )
        .target(Target::RatioAtMost(1.0)),
    ]
}

/// Rows 6x: `ctx.load_conns` keep-alive clients on `/ready`, alternating helpers in two rounds
/// of `ctx.load_secs / 2` each.
///
/// # Errors
/// If a load run cannot start, or a daemon dies under load.
pub(crate) fn health_load(ctx: &Ctx, daemons: &mut [Daemon]) -> Result<Vec<Row>> {
    crate::progress(&format!(
        "health load: {} clients, {} s per helper",
        ctx.load_conns, ctx.load_secs
    ));
    let mut lat = [Vec::new(), Vec::new()];
    let mut rate = [Vec::new(), Vec::new()];
    let mut errors = [0u64; 2];
    // Server CPU (all threads, ns clock) per answered request: the figure that does not
    // depend on how the 2 cores are shared between the clients and the server.
    let mut cpu_per_req = [Vec::new(), Vec::new()];
    let half = Duration::from_secs(ctx.load_secs).max(Duration::from_secs(2)) / 2;
    for _round in 0..2 {
        for which in Impl::BOTH {
            let side = usize::from(which == Impl::Upstream);
            let d = daemons
                .iter_mut()
                .find(|d| d.which == which)
                .context("no daemon kept for the load test")?;
            let cpu0 = sched_secs(d.proc.pid())?;
            let r = load::run(d.port, READY_PATH, ctx.load_conns, half)?;
            if d.proc.exited() {
                bail!("{} daemon died under load", which.tag());
            }
            let cpu = sched_secs(d.proc.pid())? - cpu0;
            if !r.latencies_us.is_empty() {
                #[allow(clippy::cast_precision_loss)]
                cpu_per_req[side].push(cpu * 1e6 / r.latencies_us.len() as f64);
            }
            #[allow(clippy::cast_precision_loss)]
            rate[side].push(r.latencies_us.len() as f64 / r.elapsed.as_secs_f64());
            errors[side] += r.errors;
            lat[side].extend(r.latencies_us);
        }
    }
    let mut pick =
        |side: usize, q: f64| quantile(&mut lat[side], q).into_iter().collect::<Vec<_>>();
    let p50 = (pick(0, 0.5), pick(1, 0.5));
    let p99 = (pick(0, 0.99), pick(1, 0.99));
    let hwm = daemons
        .iter()
        .map(|d| {
            #[allow(clippy::cast_precision_loss)]
            Ok(status_kib(d.proc.pid(), "VmHWM")? as f64 / 1024.0)
        })
        .collect::<Result<Vec<f64>>>()?;
    let c = ctx.load_conns;
    let [rate_o, rate_u] = rate;
    let [cpr_o, cpr_u] = cpu_per_req;
    let mut rows = vec![
        Row::new(
            "6a",
            &format!("health /ready p50, {c} clients"),
            Unit::Us,
            p50.0,
            p50.1,
        ),
        Row::new(
            "6b",
            &format!("health /ready p99, {c} clients"),
            Unit::Us,
            p99.0,
            p99.1,
        ),
        Row::new(
            "6c",
            "health throughput (per round)",
            Unit::PerSec,
            rate_o,
            rate_u,
        ),
        Row::new(
            "6e",
            "health server CPU per request (schedstat, per round)",
            Unit::Us,
            cpr_o,
            cpr_u,
        )
        .target(Target::RatioAtMost(1.0)),
    ];
    if let [o, u] = hwm.as_slice() {
        rows.push(Row::new(
            "6d",
            "peak RSS after the load",
            Unit::MiB,
            vec![*o],
            vec![*u],
        ));
    }
    crate::note(format!(
        "6: errors/timeouts during load: ours {}, upstream {}",
        errors[0], errors[1]
    ));
    Ok(rows)
}
