//! The embedding process of the soak test (`make soak-embed`, tests/soak/soak.sh embed;
//! docs/reliability.md): what a Rust service built on this workspace's libraries does for
//! months, so that its memory, fds and threads can be watched while the SVID rotates.
//!
//! ```text
//! spiffe-helper-soak serve --listen 127.0.0.1:0       # the process under test
//! spiffe-helper-soak handshake --connect ADDR         # the peer that keeps it busy
//! ```
//!
//! `serve` holds an `X509Source` and a `JwtSource` on the agent in `SPIFFE_ENDPOINT_SOCKET`,
//! serves mTLS with `mtls_server_config` (one line in, one line out per connection), fetches
//! and validates a JWT-SVID every second, and counts the rotations it sees. `handshake` dials
//! it five times a second with `mtls_client_config` from its own `X509Source` and records when
//! the server's certificate last changed. Both print one status line a second on stdout,
//! `key=value` pairs the script reads; errors go to stderr (never a key or a token).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the status lines and errors are this program's interface"
)]

use std::net::SocketAddr;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use spiffe_workload_client::{JwtSource, X509Source};
use spiffe_workload_tls::{
    Authorizer, SpiffeAcceptor, SpiffeConnector, mtls_client_config, mtls_server_config,
};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;

/// The audience of the JWT-SVID the server fetches and validates.
const AUDIENCE: &str = "soak";
/// Time between two handshakes of the client.
const HANDSHAKE_EVERY: Duration = Duration::from_millis(200);

/// `SOAK_EMBED_RUNTIME=current_thread` runs `serve` on tokio's current-thread runtime instead
/// of the multi-thread one most services use (`#[tokio::main]`), to compare the two.
fn main() -> ExitCode {
    let current_thread =
        std::env::var("SOAK_EMBED_RUNTIME").is_ok_and(|runtime| runtime == "current_thread");
    let mut builder = if current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    match builder.enable_all().build() {
        Ok(runtime) => runtime.block_on(run()),
        Err(err) => {
            eprintln!("spiffe-helper-soak: cannot start the runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.as_slice() {
        [mode, flag, addr] if mode == "serve" && flag == "--listen" => match addr.parse() {
            Ok(addr) => serve(addr).await,
            Err(err) => Err(anyhow::anyhow!("--listen {addr}: {err}")),
        },
        [mode, flag, addr] if mode == "handshake" && flag == "--connect" => match addr.parse() {
            Ok(addr) => handshake(addr).await,
            Err(err) => Err(anyhow::anyhow!("--connect {addr}: {err}")),
        },
        _ => {
            eprintln!("usage: spiffe-helper-soak serve --listen ADDR | handshake --connect ADDR");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("spiffe-helper-soak: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Default)]
struct ServerCounts {
    rotations: AtomicU64,
    handshakes: AtomicU64,
    jwt_checks: AtomicU64,
    failed: AtomicU64,
}

async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let x509 = X509Source::builder().build().await?;
    let jwt = JwtSource::builder().build().await?;
    let acceptor = SpiffeAcceptor::new(mtls_server_config(&x509, Authorizer::any())?);
    let listener = TcpListener::bind(listen).await?;
    println!("listening on {}", listener.local_addr()?);
    let counts = Arc::new(ServerCounts::default());

    let mut updates = x509.updates();
    let seen = counts.clone();
    tokio::spawn(async move {
        let trim = std::env::var_os("SOAK_EMBED_TRIM").is_some();
        while updates.changed().await.is_ok() {
            seen.rotations.fetch_add(1, Ordering::Relaxed);
            if trim {
                trim_heap();
            }
        }
    });

    let checks = counts.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let checked = match jwt.jwt_svid(&[AUDIENCE]).await {
                Ok(svid) => jwt
                    .validate(svid.token().as_str(), AUDIENCE)
                    .map(drop)
                    .map_err(anyhow::Error::from),
                Err(err) => Err(err.into()),
            };
            match checked {
                Ok(()) => checks.jwt_checks.fetch_add(1, Ordering::Relaxed),
                Err(err) => {
                    eprintln!("JWT-SVID fetch or validation failed: {err:#}");
                    checks.failed.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
    });

    let status = counts.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            println!(
                "rotations={} handshakes={} jwt_checks={} failed={}",
                status.rotations.load(Ordering::Relaxed),
                status.handshakes.load(Ordering::Relaxed),
                status.jwt_checks.load(Ordering::Relaxed),
                status.failed.load(Ordering::Relaxed),
            );
        }
    });

    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let (acceptor, counts) = (acceptor.clone(), counts.clone());
        tokio::spawn(async move {
            match acceptor.accept(tcp).await {
                Ok((stream, peer)) => {
                    let peer = peer.map_or_else(|| "anonymous".to_owned(), |id| id.to_string());
                    let mut stream = BufReader::new(stream);
                    let mut line = String::new();
                    if stream.read_line(&mut line).await.is_ok() {
                        let answer = format!("hello {peer}\n");
                        let _ = stream.get_mut().write_all(answer.as_bytes()).await;
                        let _ = stream.get_mut().shutdown().await;
                    }
                    counts.handshakes.fetch_add(1, Ordering::Relaxed);
                }
                Err(err) => {
                    eprintln!("handshake refused: {err}");
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
}

async fn handshake(server: SocketAddr) -> anyhow::Result<()> {
    let x509 = X509Source::builder().build().await?;
    let connector = SpiffeConnector::new(mtls_client_config(&x509, Authorizer::any())?);
    let (mut handshakes, mut failed, mut server_certs) = (0u64, 0u64, 0u64);
    let mut last_leaf: Vec<u8> = Vec::new();
    let mut leaf_since = Instant::now();
    let mut last_status = Instant::now();
    let mut tick = tokio::time::interval(HANDSHAKE_EVERY);
    loop {
        tick.tick().await;
        match exchange(&connector, server).await {
            Ok(leaf) => {
                handshakes += 1;
                if leaf != last_leaf {
                    server_certs += 1;
                    last_leaf = leaf;
                    leaf_since = Instant::now();
                }
            }
            Err(err) => {
                failed += 1;
                eprintln!("handshake with {server} failed: {err:#}");
            }
        }
        if last_status.elapsed() >= Duration::from_secs(1) {
            last_status = Instant::now();
            println!(
                "handshakes={handshakes} failed={failed} server_certs={server_certs} same_server_cert_for={}",
                leaf_since.elapsed().as_secs()
            );
        }
    }
}

/// One connection: handshake, one line each way. Returns the server's leaf certificate.
async fn exchange(connector: &SpiffeConnector, server: SocketAddr) -> anyhow::Result<Vec<u8>> {
    let (stream, server_id) = connector.dial(server).await?;
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|der| der.as_ref().to_vec())
        .unwrap_or_default();
    let mut stream = BufReader::new(stream);
    stream.get_mut().write_all(b"hi\n").await?;
    let mut answer = String::new();
    stream.read_line(&mut answer).await?;
    anyhow::ensure!(
        answer.starts_with("hello spiffe://"),
        "the server {server_id} answered {answer:?}"
    );
    Ok(leaf)
}

/// `SOAK_EMBED_TRIM=1`: what an application can do after each rotation to keep glibc's heaps
/// from creeping (docs/reliability.md, "What grew (issue 24)").
fn trim_heap() {
    #[expect(unsafe_code, reason = "a libc call with no pointer arguments")]
    // SAFETY: malloc_trim takes a size and touches only the allocator's own state, under its
    // locks.
    unsafe {
        libc::malloc_trim(0);
    }
}
