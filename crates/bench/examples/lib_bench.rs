//! Library figures (docs/benchmarks.md, "Library figures"): `spiffe-workload-client` against
//! go-spiffe v2 and rust-spiffe (`spiffe` 0.19) on one real SPIRE agent.
//!
//! ```text
//! lib_bench --go-peer PATH --hold-ours PATH --hold-rust-spiffe PATH
//!           [--calls 2000] [--runs 3] [--idle-secs 10] [--out FILE]
//! ```
//!
//! JWT rows: after one first call, `--calls` sequential calls for the same audience —
//! ours `JwtSource::jwt_svid(&[aud])` in this process, go-spiffe `JWTSource.FetchJWTSVID` in
//! the Go peer (`libbench-jwt`, tests/interop/go/libbench.go). Per call latency (median and
//! p99 by nearest rank), calls per second, and the Workload API `FetchJWTSVID` RPCs the agent
//! served during the timed calls: read from the agent's own Prometheus counter
//! (`telemetry { Prometheus }` in agent.conf; SPIRE's doc/telemetry/telemetry.md lists the
//! call counter `rpc.<service>.<method>` for the agent's RPCs), scraped just before and just
//! after the timed calls of each side. No proxy sits between the clients and the agent, and
//! only the measured side talks to the agent while it runs.
//!
//! Memory rows: three processes each build an `X509Source` from `SPIFFE_ENDPOINT_SOCKET`, wait
//! for an SVID, print `ready` and idle; after `--idle-secs` this driver reads `VmRSS`, `RssAnon`
//! and Threads from /proc/PID/status. Ours and rust-spiffe's are the small examples
//! `hold_x509_ours` and `hold_x509_rust_spiffe` (one build profile, scripts/bench.sh), go-spiffe's
//! is the Go peer's `libbench-hold`.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark reports on stdout/stderr"
)]

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use spiffe_helper_testkit::spire::{Entry, Spire};
use spiffe_workload_client::{Endpoint, JwtSource};

const ID: &str = "spiffe://example.org/bench";
const AUDIENCE: &str = "bench";
const JWT_TTL_SECS: u32 = 60;
/// SPIRE's Prometheus name of the agent's Workload API `FetchJWTSVID` call counter (the
/// `rpc.workload_api.fetch_jwtsvid` call counter of doc/telemetry/telemetry.md, flattened by
/// go-metrics' Prometheus sink). Its `_elapsed_time` sibling is a summary, not a count.
const FETCH_JWT_COUNTER: &str = "spire_agent_rpc_workload_api_fetch_jwtsvid";

#[derive(Parser)]
struct Args {
    /// The go-spiffe peer (tests/interop/build-go-peer.sh prints its path).
    #[arg(long)]
    go_peer: PathBuf,
    /// The `hold_x509_ours` example binary.
    #[arg(long)]
    hold_ours: PathBuf,
    /// The `hold_x509_rust_spiffe` example binary.
    #[arg(long)]
    hold_rust_spiffe: PathBuf,
    /// Timed JWT calls per run and side.
    #[arg(long, default_value_t = 2000)]
    calls: usize,
    /// Runs per figure (median reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds of the sustained row: ours asked every 10 ms, agent RPCs counted.
    #[arg(long, default_value_t = 60)]
    sustain_secs: u64,
    /// Seconds each `X509Source` process idles before its memory is read.
    #[arg(long, default_value_t = 10)]
    idle_secs: u64,
    /// Also write the table here.
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One side's JWT run.
#[derive(Clone, Copy)]
struct JwtRun {
    first: Duration,
    p50: Duration,
    p99: Duration,
    per_sec: f64,
    agent_calls: u64,
    agent_per_sec: f64,
}

/// One process's memory after idling, KiB.
#[derive(Clone, Copy)]
struct Mem {
    rss: u64,
    anon: u64,
    threads: u64,
}

/// Restarts the agent with a Prometheus exporter on a free loopback port: the testkit writes
/// agent.conf once at start, and `start_agent` reads it again (same data dir, so the agent
/// keeps its SVID). Returns the port.
fn enable_agent_metrics(spire: &mut Spire) -> Result<u16> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let conf = spire.dir().join("agent.conf");
    let mut text = std::fs::read_to_string(&conf)?;
    write!(
        text,
        "\ntelemetry {{\n  Prometheus {{\n    host = \"127.0.0.1\"\n    port = {port}\n  }}\n}}\n"
    )?;
    spire.kill_agent();
    std::fs::write(&conf, text)?;
    spire.start_agent();
    Ok(port)
}

/// The agent's `FetchJWTSVID` count so far, summed over its status labels (0 before the first
/// call creates the series).
fn agent_jwt_calls(port: u16) -> Result<u64> {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut body = String::new();
    conn.read_to_string(&mut body)?;
    if !body.starts_with("HTTP/1.0 200") && !body.starts_with("HTTP/1.1 200") {
        bail!(
            "agent metrics: {:?}",
            body.lines().next().unwrap_or_default()
        );
    }
    let mut total = 0.0;
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or_default();
        if name == FETCH_JWT_COUNTER {
            total += value.parse::<f64>().context("a counter value")?;
        }
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a call count, an integer below 2^52"
    )]
    Ok(total.round() as u64)
}

/// Nearest-rank percentile of sorted values, as the Go peer computes it.
fn nearest_rank(sorted: &[Duration], p: usize) -> Duration {
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied().unwrap_or_default()
}

#[expect(clippy::cast_precision_loss, reason = "call counts are far below 2^52")]
fn per_sec(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

async fn ours_jwt(endpoint: &Endpoint, port: u16, calls: usize) -> Result<JwtRun> {
    let source = JwtSource::builder()
        .endpoint(endpoint.clone())
        .build()
        .await?;
    let t = Instant::now();
    source.jwt_svid(&[AUDIENCE]).await?;
    let first = t.elapsed();
    let before = agent_jwt_calls(port)?;
    let mut lat = Vec::with_capacity(calls);
    let begin = Instant::now();
    for _ in 0..calls {
        let t = Instant::now();
        let svid = source.jwt_svid(&[AUDIENCE]).await?;
        lat.push(t.elapsed());
        std::hint::black_box(svid);
    }
    let elapsed = begin.elapsed();
    let agent_calls = agent_jwt_calls(port)?.saturating_sub(before);
    source.shutdown().await;
    lat.sort();
    Ok(JwtRun {
        first,
        p50: nearest_rank(&lat, 50),
        p99: nearest_rank(&lat, 99),
        per_sec: per_sec(calls as u64, elapsed),
        agent_calls,
        agent_per_sec: per_sec(agent_calls, elapsed),
    })
}

/// Ours asked for the token every 10 ms for `secs`, from a new source: how many calls, and how
/// many agent RPCs from just before its first call to after its last.
async fn ours_sustained(endpoint: &Endpoint, port: u16, secs: u64) -> Result<(u64, u64)> {
    let source = JwtSource::builder()
        .endpoint(endpoint.clone())
        .build()
        .await?;
    let before = agent_jwt_calls(port)?;
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut calls = 0;
    while Instant::now() < deadline {
        std::hint::black_box(source.jwt_svid(&[AUDIENCE]).await?);
        calls += 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let agent_calls = agent_jwt_calls(port)?.saturating_sub(before);
    source.shutdown().await;
    Ok((calls, agent_calls))
}

fn field(text: &str, name: &str) -> Result<u64> {
    text.split_whitespace()
        .find_map(|kv| kv.strip_prefix(name))
        .with_context(|| format!("no {name} in {text:?}"))?
        .parse()
        .map_err(Into::into)
}

fn go_jwt(go: &PathBuf, spire: &Spire, port: u16, calls: usize) -> Result<JwtRun> {
    let mut child = Command::new(go)
        .args(["libbench-jwt", "--audience", AUDIENCE])
        .args(["--calls", &calls.to_string()])
        .env("SPIFFE_ENDPOINT_SOCKET", spire.endpoint())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()?;
    let result = go_jwt_talk(&mut child, port);
    if result.is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
    result
}

fn go_jwt_talk(child: &mut Child, port: u16) -> Result<JwtRun> {
    let mut out = BufReader::new(child.stdout.take().context("stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    let first = Duration::from_nanos(field(&line, "first_ns=")?);
    let before = agent_jwt_calls(port)?;
    child.stdin.take().context("stdin")?.write_all(b"go\n")?;
    line.clear();
    out.read_line(&mut line)?;
    let agent_calls = agent_jwt_calls(port)?.saturating_sub(before);
    let elapsed = Duration::from_nanos(field(&line, "elapsed_ns=")?);
    Ok(JwtRun {
        first,
        p50: Duration::from_nanos(field(&line, "p50_ns=")?),
        p99: Duration::from_nanos(field(&line, "p99_ns=")?),
        per_sec: per_sec(field(&line, "calls=")?, elapsed),
        agent_calls,
        agent_per_sec: per_sec(agent_calls, elapsed),
    })
}

fn status_kib(pid: u32, key: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .with_context(|| format!("no {key} in /proc/{pid}/status"))?
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .map_err(Into::into)
}

/// Starts the three `X509Source` processes at once, waits for each to hold an SVID, lets them
/// idle, reads their memory, closes their stdin.
fn hold_run(args: &Args, spire: &Spire) -> Result<Vec<Mem>> {
    let commands = [
        (args.hold_ours.clone(), vec![]),
        (args.hold_rust_spiffe.clone(), vec![]),
        (args.go_peer.clone(), vec!["libbench-hold"]),
    ];
    let mut children = Vec::new();
    for (bin, argv) in commands {
        let child = Command::new(&bin)
            .args(argv)
            .env("SPIFFE_ENDPOINT_SOCKET", spire.endpoint())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        children.push(child);
    }
    let result = hold_measure(&mut children, args.idle_secs);
    for mut child in children {
        drop(child.stdin.take());
        if result.is_err() {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
    result
}

fn hold_measure(children: &mut [Child], idle_secs: u64) -> Result<Vec<Mem>> {
    for child in children.iter_mut() {
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        if line.trim() != "ready" {
            bail!("pid {}: {line:?} instead of ready", child.id());
        }
    }
    std::thread::sleep(Duration::from_secs(idle_secs));
    children
        .iter()
        .map(|c| {
            Ok(Mem {
                rss: status_kib(c.id(), "VmRSS:")?,
                anon: status_kib(c.id(), "RssAnon:")?,
                threads: status_kib(c.id(), "Threads:")?,
            })
        })
        .collect()
}

fn median_by<T: Copy>(runs: &[T], key: impl Fn(&T) -> f64) -> f64 {
    let mut v: Vec<f64> = runs.iter().map(key).collect();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    let load_start = load_average();
    let mut spire = Spire::start();
    // A short JWT-SVID TTL so the sustained row sees the source refresh (SPIRE's default is
    // 5 min); the other rows do not depend on it.
    spire.create_entry(&Entry::new(ID).jwt_ttl(JWT_TTL_SECS));
    spire.wait_for_svid(Duration::from_secs(60));
    let port = enable_agent_metrics(&mut spire)?;
    spire.wait_for_svid(Duration::from_secs(60));
    let endpoint = Endpoint::parse(&spire.endpoint())?;
    // The agent caches a JWT-SVID per audience set: one untimed fetch first, so neither side's
    // first call pays for the signing at the server.
    ours_jwt(&endpoint, port, 1).await?;
    let (mut ours, mut go) = (Vec::new(), Vec::new());
    for run in 0..args.runs {
        eprintln!("lib_bench: JWT run {}/{}", run + 1, args.runs);
        ours.push(ours_jwt(&endpoint, port, args.calls).await?);
        go.push(go_jwt(&args.go_peer, &spire, port, args.calls)?);
    }
    eprintln!("lib_bench: ours sustained, {} s", args.sustain_secs);
    let sustained = ours_sustained(&endpoint, port, args.sustain_secs).await?;
    let mut mem: [Vec<Mem>; 3] = Default::default();
    for run in 0..args.runs {
        eprintln!("lib_bench: X509Source memory run {}/{}", run + 1, args.runs);
        for (all, one) in mem.iter_mut().zip(hold_run(&args, &spire)?) {
            all.push(one);
        }
    }
    let mut table = format!(
        "{}  \nLoad average (1/5/15 min) at start: {load_start}; at end: {}\n\n",
        machine(),
        load_average()
    );
    table.push_str(&report(&args, &ours, &go, &mem));
    let (calls, rpcs) = sustained;
    let _ = write!(
        table,
        "\n| ours, asked every 10 ms for {} s (JWT-SVID TTL {JWT_TTL_SECS} s), from a new source | calls | agent FetchJWTSVID RPCs | agent RPCs per minute |\n|---|---|---|---|\n| spiffe-workload-client `JwtSource::jwt_svid` | {calls} | {rpcs} | {:.1} |\n",
        args.sustain_secs,
        per_sec(rpcs, Duration::from_secs(args.sustain_secs)) * 60.0
    );
    println!("{table}");
    if let Some(out) = &args.out {
        std::fs::write(out, &table)?;
    }
    Ok(())
}

fn us(d: f64) -> String {
    if d < 10.0 {
        format!("{d:.2} µs")
    } else {
        format!("{d:.0} µs")
    }
}

/// A ratio with two significant digits (0.00041x, 0.59x, 2200x).
fn ratio(r: f64) -> String {
    if r >= 100.0 {
        return format!("{r:.0}x");
    }
    if !r.is_finite() || r <= 0.0 || r >= 0.1 {
        return format!("{r:.2}x");
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "r < 0.1: between 2 and a few hundred decimals"
    )]
    let decimals = (1.0 - r.log10().floor()) as usize;
    format!("{r:.decimals$}x")
}

/// The machine line and load average, as the driver's results.md carries them.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map_or("?", |m| m.trim_start_matches([' ', '\t', ':']));
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    format!("Machine: {cores} cores ({model})")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

#[expect(clippy::cast_precision_loss, reason = "counts and KiB far below 2^52")]
fn report(args: &Args, ours: &[JwtRun], go: &[JwtRun], mem: &[Vec<Mem>; 3]) -> String {
    let mut out = format!(
        "| JWT-SVID for one cached audience ({} sequential calls after a first, median of {} runs) | first call | p50 per call | p99 per call | calls/s | agent FetchJWTSVID RPCs during the calls | agent RPCs/s |\n|---|---|---|---|---|---|---|\n",
        args.calls, args.runs
    );
    let micros = |d: &Duration| d.as_secs_f64() * 1e6;
    let jwt = |runs: &[JwtRun]| {
        [
            median_by(runs, |r| micros(&r.first)),
            median_by(runs, |r| micros(&r.p50)),
            median_by(runs, |r| micros(&r.p99)),
            median_by(runs, |r| r.per_sec),
            median_by(runs, |r| r.agent_calls as f64),
            median_by(runs, |r| r.agent_per_sec),
        ]
    };
    let (o, g) = (jwt(ours), jwt(go));
    for (name, f) in [
        ("spiffe-workload-client `JwtSource::jwt_svid` (ours)", o),
        ("go-spiffe v2.8.2 `JWTSource.FetchJWTSVID`", g),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {:.0} | {:.0} | {:.0} |",
            us(f[0]),
            us(f[1]),
            us(f[2]),
            f[3],
            f[4],
            f[5]
        );
    }
    let _ = writeln!(
        out,
        "| ours / go-spiffe | {} | {} | {} | {} | | |",
        ratio(o[0] / g[0]),
        ratio(o[1] / g[1]),
        ratio(o[2] / g[2]),
        ratio(o[3] / g[3])
    );
    let _ = write!(
        out,
        "\n| process holding an X509Source, after {} s idle (median of {}) | VmRSS | RssAnon | threads | ours / this: VmRSS | ours / this: RssAnon |\n|---|---|---|---|---|---|\n",
        args.idle_secs, args.runs
    );
    let names = [
        "spiffe-workload-client `X509Source` (ours)",
        "rust-spiffe `spiffe` 0.19 `X509Source`",
        "go-spiffe v2.8.2 `workloadapi.NewX509Source`",
    ];
    let kib = |runs: &[Mem], k: fn(&Mem) -> u64| median_by(runs, |m| k(m) as f64);
    let (ours_rss, ours_anon) = (kib(&mem[0], |m| m.rss), kib(&mem[0], |m| m.anon));
    for (name, runs) in names.iter().zip(mem) {
        let (rss, anon) = (kib(runs, |m| m.rss), kib(runs, |m| m.anon));
        let _ = writeln!(
            out,
            "| {name} | {:.2} MiB | {:.2} MiB | {:.0} | {:.2}x | {:.2}x |",
            rss / 1024.0,
            anon / 1024.0,
            kib(runs, |m| m.threads),
            ours_rss / rss,
            ours_anon / anon
        );
    }
    out
}
