//! TLS handshake benchmark: `spiffe-workload-tls` vs `spiffe-rustls` 0.11, each on the ring
//! and on the aws-lc-rs rustls crypto provider, vs go-spiffe v2, on one real SPIRE, same SVIDs
//! (one entry; both sides of every connection present it), loopback.
//!
//! ```text
//! tls_bench --go-peer PATH [--seconds 5] [--conns 4] [--runs 3] [--out FILE]
//! ```
//!
//! Ours is given its provider explicitly (`*_with_provider`). spiffe-rustls uses the process
//! default provider, which can be installed once per process: its ring rows run here (it
//! installs ring itself), its aws-lc-rs rows in a child process of this binary that installs
//! aws-lc-rs first (`--spiffe-rustls-aws-lc-rs ENDPOINT`).
//!
//! Figures, each the median of `--runs`:
//! - full mTLS handshakes per second: `--conns` loops of connect, handshake, one line each way,
//!   close (no resumption anywhere), client and server on one machine;
//! - CPU per handshake: user+system time of client and server together (for Rust, this
//!   process; for Go, both peer processes, start-up included) divided by handshakes;
//! - rotation to first handshake: from the moment a plain Workload API watch in this process
//!   sees the agent's new SVID to the first handshake whose server presents it (30 s SVIDs,
//!   a handshake every 10 ms against each of the three servers at once).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "a benchmark reports on stdout/stderr"
)]

use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader as StdBufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use clap::Parser;
use nix::sys::resource::{UsageWho, getrusage};
use spiffe_helper_testkit::spire::{Entry, Spire};
use spiffe_workload_client::{Endpoint, WorkloadApiClient, X509Source};
use spiffe_workload_tls::rustls;
use spiffe_workload_tls::rustls::crypto::CryptoProvider;
use spiffe_workload_tls::rustls::pki_types::ServerName;
use spiffe_workload_tls::rustls::{ClientConfig, ServerConfig};
use spiffe_workload_tls::{
    Authorizer, mtls_client_config_with_provider, mtls_server_config_with_provider,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tokio_stream::StreamExt as _;

const ID: &str = "spiffe://example.org/bench";

#[derive(Parser)]
struct Args {
    /// The go-spiffe peer (tests/interop/build-go-peer.sh prints its path).
    #[arg(long)]
    go_peer: PathBuf,
    /// Seconds per handshake run.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent connection loops.
    #[arg(long, default_value_t = 4)]
    conns: usize,
    /// Runs per figure (median reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Also write the table here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Child mode: install aws-lc-rs as the process default, run one spiffe-rustls handshake
    /// run against the agent at this endpoint, print `RATE CPU_US FAILED`.
    #[arg(long, hide = true)]
    spiffe_rustls_aws_lc_rs: Option<String>,
}

struct Figures {
    per_sec: Vec<f64>,
    cpu_us: Vec<f64>,
    failed: Option<u64>,
}

/// One handshake run: handshakes per second, CPU µs per handshake, failed handshakes.
type Run = (f64, f64, u64);

fn cpu(who: UsageWho) -> Result<Duration> {
    let usage = getrusage(who)?;
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(u64::try_from(t.tv_sec()).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec()).unwrap_or(0))
    };
    Ok(tv(usage.user_time()) + tv(usage.system_time()))
}

/// One line in, one line out, per connection.
async fn serve(acceptor: TlsAcceptor, listener: TcpListener) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        // As Go does for every connection; without it Nagle + delayed ACK cost ~40 ms.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let mut stream = BufReader::new(stream);
            let mut line = String::new();
            if stream.read_line(&mut line).await.is_ok() {
                let _ = stream.get_mut().write_all(b"ok\n").await;
                let _ = stream.get_mut().shutdown().await;
            }
        });
    }
}

async fn start_server(config: ServerConfig) -> Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(serve(TlsAcceptor::from(Arc::new(config)), listener));
    Ok((addr, task))
}

/// One handshake + round trip; returns the server leaf's serial (hex).
async fn handshake(connector: &TlsConnector, addr: SocketAddr) -> Result<String> {
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    // Close with RST: tens of thousands of connections in TIME_WAIT would exhaust the
    // loopback's ephemeral ports between runs (the Go client does the same).
    tcp.set_zero_linger()?;
    let stream = connector
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await?;
    let serial = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|leaf| {
            x509_parser::parse_x509_certificate(leaf.as_ref())
                .map(|(_, cert)| cert.tbs_certificate.serial.to_str_radix(16))
                .unwrap_or_default()
        })
        .unwrap_or_default();
    let mut stream = BufReader::new(stream);
    stream.get_mut().write_all(b"x\n").await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    if line != "ok\n" && !line.starts_with("hello ") {
        bail!("unexpected answer {line:?}");
    }
    Ok(serial)
}

async fn rust_run(server: ServerConfig, client: ClientConfig, args: &Args) -> Result<Run> {
    let (addr, task) = start_server(server).await?;
    let connector = TlsConnector::from(Arc::new(client));
    let count = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let cpu_before = cpu(UsageWho::RUSAGE_SELF)?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.seconds);
    let mut loops = Vec::new();
    for _ in 0..args.conns {
        let (connector, count, failed) = (connector.clone(), count.clone(), failed.clone());
        loops.push(tokio::spawn(async move {
            while Instant::now() < deadline {
                match handshake(&connector, addr).await {
                    Ok(_) => count.fetch_add(1, Ordering::Relaxed),
                    Err(err) => {
                        eprintln!("tls_bench: handshake failed: {err:#}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    for l in loops {
        l.await?;
    }
    let elapsed = start.elapsed();
    let used = cpu(UsageWho::RUSAGE_SELF)?.saturating_sub(cpu_before);
    task.abort();
    let failed = failed.load(Ordering::Relaxed);
    if failed > 0 {
        eprintln!("tls_bench: {failed} failed handshakes");
    }
    let (rate, cpu_us) = rates(count.load(Ordering::Relaxed), elapsed, used);
    Ok((rate, cpu_us, failed))
}

fn spiffe_rustls_cfg(source: &spiffe::X509Source) -> Result<(ServerConfig, ClientConfig)> {
    Ok((
        spiffe_rustls::mtls_server(source.clone())
            .authorize(spiffe_rustls::any())
            .build()?,
        spiffe_rustls::mtls_client(source.clone())
            .authorize(spiffe_rustls::any())
            .build()?,
    ))
}

/// Child mode: spiffe-rustls on aws-lc-rs, installed as the process default before
/// spiffe-rustls would install its own (ring).
async fn spiffe_rustls_aws_lc_rs_child(endpoint: &str, args: &Args) -> Result<()> {
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a process default provider is already installed"))?;
    let source = spiffe::X509Source::builder()
        .endpoint(endpoint)
        .build()
        .await?;
    let (s, c) = spiffe_rustls_cfg(&source)?;
    let (rate, cpu_us, failed) = rust_run(s, c, args).await?;
    println!("{rate} {cpu_us} {failed}");
    source.shutdown().await;
    Ok(())
}

/// Runs [`spiffe_rustls_aws_lc_rs_child`] in a child process of this binary.
fn spiffe_rustls_aws_lc_rs(args: &Args, spire: &Spire) -> Result<Run> {
    let out = Command::new(std::env::current_exe()?)
        .args(["--go-peer", &args.go_peer.to_string_lossy()])
        .args(["--seconds", &args.seconds.to_string()])
        .args(["--conns", &args.conns.to_string()])
        .args(["--spiffe-rustls-aws-lc-rs", &spire.endpoint()])
        .stderr(Stdio::inherit())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.split_whitespace().collect();
    let [rate, cpu_us, failed] = fields.as_slice() else {
        bail!("spiffe-rustls aws-lc-rs child ({}): {text:?}", out.status);
    };
    Ok((rate.parse()?, cpu_us.parse()?, failed.parse()?))
}

#[expect(
    clippy::cast_precision_loss,
    reason = "handshake counts are far below 2^52"
)]
fn rates(n: u64, elapsed: Duration, cpu: Duration) -> (f64, f64) {
    let n = n.max(1) as f64;
    (n / elapsed.as_secs_f64(), cpu.as_secs_f64() * 1e6 / n)
}

fn go_server(go: &PathBuf, spire: &Spire) -> Result<(std::process::Child, SocketAddr)> {
    let mut child = Command::new(go)
        .args(["server", "--listen", "127.0.0.1:0", "--allow", "any"])
        .env("SPIFFE_ENDPOINT_SOCKET", spire.endpoint())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    StdBufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .with_context(|| format!("go server: {line:?}"))?
        .parse()?;
    Ok((child, addr))
}

fn go_run(args: &Args, spire: &Spire) -> Result<(f64, f64)> {
    let before = cpu(UsageWho::RUSAGE_CHILDREN)?;
    let (mut server, addr) = go_server(&args.go_peer, spire)?;
    let out = Command::new(&args.go_peer)
        .args(["bench", "--connect", &addr.to_string(), "--expect", "any"])
        .args([
            "--seconds",
            &args.seconds.to_string(),
            "--conns",
            &args.conns.to_string(),
        ])
        .env("SPIFFE_ENDPOINT_SOCKET", spire.endpoint())
        .output()?;
    server.kill()?;
    server.wait()?;
    let used = cpu(UsageWho::RUSAGE_CHILDREN)?.saturating_sub(before);
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> Result<u64> {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name))
            .with_context(|| {
                format!(
                    "go bench output: {text:?} {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })?
            .parse()
            .map_err(Into::into)
    };
    let (n, ms) = (field("handshakes=")?, field("elapsed_ms=")?);
    Ok(rates(n, Duration::from_millis(ms), used))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// What one row measures.
enum Kind {
    /// spiffe-workload-tls with this provider.
    Ours(Arc<CryptoProvider>),
    /// spiffe-rustls on the process default (ring, which it installs).
    Theirs,
    /// spiffe-rustls in a child process with aws-lc-rs as its process default.
    TheirsAwsLcRs,
    Go,
}

struct Impl {
    name: &'static str,
    kind: Kind,
    figures: Figures,
    rotation_ms: Option<f64>,
}

impl Impl {
    fn new(name: &'static str, kind: Kind) -> Self {
        Self {
            name,
            kind,
            figures: Figures {
                per_sec: vec![],
                cpu_us: vec![],
                failed: None,
            },
            rotation_ms: None,
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    if let Some(endpoint) = &args.spiffe_rustls_aws_lc_rs {
        return spiffe_rustls_aws_lc_rs_child(endpoint, &args).await;
    }
    let spire = Spire::start();
    spire.create_entry(&Entry::new(ID).x509_ttl(30));
    spire.wait_for_svid(Duration::from_secs(60));
    let endpoint = Endpoint::parse(&spire.endpoint())?;
    let ours = X509Source::builder()
        .endpoint(endpoint.clone())
        .build()
        .await?;
    let theirs = spiffe::X509Source::builder()
        .endpoint(spire.endpoint())
        .build()
        .await?;
    let ring = Arc::new(rustls::crypto::ring::default_provider());
    let aws_lc_rs = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let ours_cfg = |provider: &Arc<CryptoProvider>| -> Result<(ServerConfig, ClientConfig)> {
        Ok((
            mtls_server_config_with_provider(&ours, Authorizer::any(), provider)?,
            mtls_client_config_with_provider(&ours, Authorizer::any(), provider)?,
        ))
    };
    let mut impls = vec![
        Impl::new("spiffe-workload-tls (ours), ring", Kind::Ours(ring.clone())),
        Impl::new("spiffe-rustls 0.11, ring", Kind::Theirs),
        Impl::new(
            "spiffe-workload-tls (ours), aws-lc-rs",
            Kind::Ours(aws_lc_rs.clone()),
        ),
        Impl::new("spiffe-rustls 0.11, aws-lc-rs", Kind::TheirsAwsLcRs),
        Impl::new("go-spiffe v2.8.2 (Go crypto)", Kind::Go),
    ];
    for run in 0..args.runs {
        eprintln!("tls_bench: run {}/{}", run + 1, args.runs);
        for im in &mut impls {
            eprintln!("tls_bench: {}", im.name);
            let (rate, cpu_us, failed) = match &im.kind {
                Kind::Ours(provider) => {
                    let (s, c) = ours_cfg(provider)?;
                    rust_run(s, c, &args).await?
                }
                Kind::Theirs => {
                    let (s, c) = spiffe_rustls_cfg(&theirs)?;
                    rust_run(s, c, &args).await?
                }
                Kind::TheirsAwsLcRs => spiffe_rustls_aws_lc_rs(&args, &spire)?,
                Kind::Go => {
                    let (rate, cpu_us) = go_run(&args, &spire)?;
                    im.figures.per_sec.push(rate);
                    im.figures.cpu_us.push(cpu_us);
                    continue;
                }
            };
            im.figures.per_sec.push(rate);
            im.figures.cpu_us.push(cpu_us);
            im.figures.failed = Some(im.figures.failed.unwrap_or(0) + failed);
        }
    }
    // Rotation is the source's and the resolver's business, not the provider's: measured once,
    // for the ring rows and go-spiffe.
    let rotation = rotation(
        &spire,
        &endpoint,
        ours_cfg(&ring)?.0,
        spiffe_rustls_cfg(&theirs)?.0,
        ours_cfg(&ring)?.1,
        &args,
    )
    .await?;
    for (i, ms) in [0, 1, 4].into_iter().zip(rotation) {
        if let Some(im) = impls.get_mut(i) {
            im.rotation_ms = ms;
        }
    }
    let table = report(&mut impls, &args);
    println!("{table}");
    if let Some(out) = &args.out {
        std::fs::write(out, &table)?;
    }
    ours.shutdown().await;
    theirs.shutdown().await;
    Ok(())
}

fn report(impls: &mut [Impl], args: &Args) -> String {
    let mut out = format!(
        "| TLS ({} loops x {} s, median of {}) | full mTLS handshakes/s | CPU µs/handshake (client+server) | rotation → first handshake | failed handshakes ({} runs) |\n|---|---|---|---|---|\n",
        args.conns, args.seconds, args.runs, args.runs
    );
    for im in impls {
        let rotation = im
            .rotation_ms
            .map_or_else(|| "n/a".to_owned(), |ms| format!("{ms:.0} ms"));
        let failed = im
            .figures
            .failed
            .map_or_else(|| "not counted".to_owned(), |n| n.to_string());
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {} | {} |",
            im.name,
            median(&mut im.figures.per_sec),
            median(&mut im.figures.cpu_us),
            rotation,
            failed
        );
    }
    out
}

/// Runs all three servers at once, handshakes with each every 10 ms and times, per server,
/// the first handshake after the agent's rotation that presents the new serial.
async fn rotation(
    spire: &Spire,
    endpoint: &Endpoint,
    ours: ServerConfig,
    theirs: ServerConfig,
    client: ClientConfig,
    args: &Args,
) -> Result<Vec<Option<f64>>> {
    let (ours_addr, t1) = start_server(ours).await?;
    let (theirs_addr, t2) = start_server(theirs).await?;
    let (mut go, go_addr) = go_server(&args.go_peer, spire)?;
    let connector = TlsConnector::from(Arc::new(client));
    let watcher = WorkloadApiClient::new(endpoint.clone());
    let mut stream = watcher.watch_x509_context().await?;
    let first = stream
        .next()
        .await
        .context("watch ended")??
        .default_svid()
        .serial_hex();
    let started = Instant::now();
    let mut loops = Vec::new();
    for addr in [ours_addr, theirs_addr, go_addr] {
        let connector = connector.clone();
        loops.push(tokio::spawn(async move {
            let mut seen: Vec<(Instant, String)> = Vec::new();
            while started.elapsed() < Duration::from_secs(75) {
                if let Ok(serial) = handshake(&connector, addr).await {
                    seen.push((Instant::now(), serial));
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                if seen.len() > 1 && STOP.load(Ordering::Relaxed) {
                    break;
                }
            }
            seen
        }));
    }
    let rotated_at = loop {
        let next = tokio::time::timeout(Duration::from_secs(70), stream.next())
            .await
            .context("no rotation within 70 s")?
            .context("watch ended")??;
        let serial = next.default_svid().serial_hex();
        if serial != first {
            break (Instant::now(), serial);
        }
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    STOP.store(true, Ordering::Relaxed);
    let mut results = Vec::new();
    for l in loops {
        let seen = l.await?;
        let new = rotated_at.1.trim_start_matches('0');
        let at = seen
            .iter()
            .find(|(_, s)| s.trim_start_matches('0') == new)
            .map(|(t, _)| t.saturating_duration_since(rotated_at.0).as_secs_f64() * 1e3);
        results.push(at);
    }
    go.kill()?;
    go.wait()?;
    t1.abort();
    t2.abort();
    Ok(results)
}

static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
