//! Side-by-side benchmarks of `spiffe-helper-rust` and the upstream Go `spiffe-helper`
//! v0.11.0 on one real SPIRE agent (and a fake Workload API for rotation timing), run by
//! `scripts/bench.sh` / `make bench`. Prints a Markdown table: median of the runs, min–max,
//! and the ratio ours/upstream, with the targets of docs/benchmarks.md.
//!
//! ```text
//! spiffe-helper-bench all --ours target/release/spiffe-helper-rust \
//!     --upstream ~/.cache/.../bin/spiffe-helper --upstream-stripped .../spiffe-helper-stripped
//! spiffe-helper-bench oneshot|daemon-idle|health-load|rotation|scale|size|rotation-real|agent-restart ...
//! spiffe-helper-bench child-recorder FILE   # the helpers' cmd during rotation runs
//! ```
#![allow(
    clippy::print_stderr,
    reason = "a CLI tool reporting progress on stderr"
)]

mod conf;
mod daemon;
mod load;
mod oneshot;
mod procs;
mod recorder;
mod report;
mod restart;
mod rotation;
mod scale;
mod size;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use spiffe_helper_testkit::spire::{Entry, Spire};

use procs::Bins;
use report::Row;

/// Every section, in the order `all` runs them.
const SECTIONS: [&str; 8] = [
    "size",
    "oneshot",
    "daemon-idle",
    "health-load",
    "rotation",
    "scale",
    "rotation-real",
    "agent-restart",
];

/// Settings shared by every section.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// The binaries under test.
    pub(crate) bins: Bins,
    /// Upstream built with `-ldflags "-s -w"` (as its release Makefile does); when given, it
    /// is also the upstream binary every runtime figure runs.
    pub(crate) upstream_stripped: Option<PathBuf>,
    /// Upstream as a plain `go build` leaves it (symbols + DWARF), for the size comparison.
    pub(crate) upstream_plain: PathBuf,
    /// Scratch directory (configs, outputs, logs).
    pub(crate) scratch: PathBuf,
    /// This executable (the rotation `cmd`).
    pub(crate) self_exe: PathBuf,
    /// Runs per figure (and daemons per helper in the idle test).
    pub(crate) runs: usize,
    /// Runs of each one-shot figure (cheap, and the noisiest figure).
    pub(crate) oneshot_runs: usize,
    /// Idle window of rows 2x
    pub(crate) idle_secs: u64,
    /// Daemons per helper in rows 4x.
    pub(crate) scale: usize,
    /// Rounds of rows 4x
    pub(crate) scale_rounds: usize,
    /// Concurrent clients in rows 6x.
    pub(crate) load_conns: usize,
    /// Load time per helper in rows 6x.
    pub(crate) load_secs: u64,
    /// Observation window of the real-agent rotation.
    pub(crate) real_secs: u64,
}

static NOTES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Adds a line under the table.
pub(crate) fn note(s: String) {
    if let Ok(mut n) = NOTES.lock() {
        n.push(s);
    }
}

/// Progress on stderr.
pub(crate) fn progress(s: &str) {
    eprintln!("bench: {s}");
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match real_main(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: spiffe-helper-bench (all|SECTION[,SECTION...]; sections: size oneshot daemon-idle health-load rotation scale rotation-real agent-restart) \
--ours PATH --upstream PATH [--upstream-stripped PATH] [--runs N] [--idle-secs S] [--scale N] \
[--scale-rounds N] [--oneshot-runs N] [--load-conns N] [--load-secs S] [--real-secs S] [--out FILE]\n       \
spiffe-helper-bench child-recorder FILE";

fn real_main(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("child-recorder") => recorder::run(Path::new(args.get(1).context(USAGE)?)),
        Some(s) if s == "all" || s.split(',').all(|one| SECTIONS.contains(&one)) => {
            // "all", one section, or several comma-separated ones (run in the table's order).
            let only: Vec<&str> = if s == "all" {
                SECTIONS.to_vec()
            } else {
                let asked: Vec<&str> = s.split(',').collect();
                SECTIONS
                    .into_iter()
                    .filter(|one| asked.contains(one))
                    .collect()
            };
            let (ctx, out, scratch) = parse(&args[1..])?;
            if std::env::var_os("BENCH_KEEP").is_some() {
                progress(&format!("keeping {}", scratch.keep().display()));
            }
            let table = run(&ctx, &only)?;
            std::io::stdout().lock().write_all(table.as_bytes())?;
            if let Some(out) = out {
                if let Some(dir) = out.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                std::fs::write(&out, &table)
                    .with_context(|| format!("writing {}", out.display()))?;
            }
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}

fn parse(args: &[String]) -> Result<(Ctx, Option<PathBuf>, tempfile::TempDir)> {
    let (mut ours, mut upstream, mut stripped, mut out) = (None, None, None, None);
    let mut num = [10u64, 60, 100, 2, 200, 10, 45, 30];
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let val = it
            .next()
            .with_context(|| format!("{flag} needs a value\n{USAGE}"))?;
        let slot = match flag.as_str() {
            "--ours" => {
                ours = Some(PathBuf::from(val));
                continue;
            }
            "--upstream" => {
                upstream = Some(PathBuf::from(val));
                continue;
            }
            "--upstream-stripped" => {
                stripped = Some(PathBuf::from(val));
                continue;
            }
            "--out" => {
                out = Some(PathBuf::from(val));
                continue;
            }
            "--runs" => 0,
            "--idle-secs" => 1,
            "--scale" => 2,
            "--scale-rounds" => 3,
            "--load-conns" => 4,
            "--load-secs" => 5,
            "--real-secs" => 6,
            "--oneshot-runs" => 7,
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        };
        num[slot] = val
            .parse()
            .with_context(|| format!("{flag}: not a number: {val}"))?;
    }
    let scratch = tempfile::Builder::new()
        .prefix("shb")
        .tempdir_in("/tmp")
        .context("creating the scratch dir")?;
    let u = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    let upstream: PathBuf = upstream.context("--upstream is required")?;
    let ctx = Ctx {
        bins: Bins {
            ours: ours.context("--ours is required")?,
            upstream: stripped.clone().unwrap_or_else(|| upstream.clone()),
        },
        upstream_stripped: stripped,
        upstream_plain: upstream,
        scratch: scratch.path().to_path_buf(),
        self_exe: std::env::current_exe().context("locating this executable")?,
        runs: u(num[0]).max(1),
        idle_secs: num[1],
        scale: u(num[2]).max(1),
        scale_rounds: u(num[3]).max(1),
        load_conns: u(num[4]).max(1),
        load_secs: num[5],
        real_secs: num[6],
        oneshot_runs: u(num[7]).max(1),
    };
    Ok((ctx, out, scratch))
}

fn run(ctx: &Ctx, only: &[&str]) -> Result<String> {
    let load_before = loadavg();
    note(format!(
        "binaries run: ours `{}`, upstream `{}`",
        ctx.bins.ours.display(),
        ctx.bins.upstream.display()
    ));
    let mut rows: Vec<Row> = Vec::new();
    if only.contains(&"size") {
        rows.extend(size::bench(ctx)?);
    }
    let needs_spire = only.iter().any(|s| !matches!(*s, "size" | "rotation"));
    let mut spire = needs_spire.then(start_spire);
    let socket = spire.as_ref().map(|s| s.socket_path().to_path_buf());
    let sock = || socket.as_deref().context("SPIRE not started");
    if only.contains(&"oneshot") {
        rows.extend(oneshot::bench(ctx, sock()?, 0)?);
        rows.extend(oneshot::bench(ctx, sock()?, 3)?);
    }
    let mut kept = Vec::new();
    if only.contains(&"daemon-idle") {
        let (r, k) = daemon::idle(ctx, sock()?)?;
        rows.extend(r);
        kept = k;
    }
    if only.contains(&"health-load") {
        if kept.is_empty() {
            for which in procs::Impl::BOTH {
                kept.push(daemon::start(
                    ctx,
                    sock()?,
                    which,
                    &format!("load-{}", which.tag()),
                )?);
            }
        }
        rows.extend(daemon::health_load(ctx, &mut kept)?);
    }
    drop(kept);
    if only.contains(&"rotation") {
        rows.push(rotation::fake(ctx)?);
    }
    if only.contains(&"scale") {
        rows.extend(scale::bench(ctx, sock()?)?);
    }
    if only.contains(&"rotation-real")
        && let Some(spire) = &spire
    {
        let hint = "rot";
        spire.create_entry(
            &Entry::new("spiffe://example.org/bench-rot")
                .x509_ttl(REAL_ROTATION_TTL)
                .hint(hint)
                .entry_id("10-rot"),
        );
        rows.push(rotation::real(ctx, sock()?, hint)?);
    }
    // Last: it restarts the agent.
    if only.contains(&"agent-restart")
        && let Some(spire) = &mut spire
    {
        rows.push(restart::bench(ctx, spire)?);
    }
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    let notes = NOTES.lock().map(|n| n.clone()).unwrap_or_default();
    Ok(format!(
        "{}Load average (1/5/15 min) at start: {load_before}; at end: {}\n\n{}",
        machine(),
        loadavg(),
        report::render(&rows, &notes)
    ))
}

/// `/proc/loadavg`'s first three fields: how busy the machine was besides the benchmark.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// X.509 TTL of the real-agent rotation entry: SPIRE rotates at about half of it.
const REAL_ROTATION_TTL: u32 = 10;

fn start_spire() -> Spire {
    progress("starting SPIRE (server + agent)");
    let spire = Spire::start();
    spire.create_entry(
        &Entry::new("spiffe://example.org/bench")
            .hint("main")
            .entry_id("00-main"),
    );
    spire.wait_for_svid(Duration::from_secs(60));
    spire
}

/// One line describing the machine: cores, CPU model, memory, kernel.
fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_owned();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    #[allow(clippy::cast_precision_loss)]
    let gib = mem_kib as f64 / (1024.0 * 1024.0);
    format!(
        "Machine: {cores} cores ({model}), {gib:.1} GiB RAM, Linux {}  \n",
        kernel.trim()
    )
}
