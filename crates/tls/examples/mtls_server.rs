//! An mTLS echo server on the SPIFFE Workload API: the smallest real server built on
//! `spiffe-workload-tls`, and the Rust side of the go-spiffe interop tests.
//!
//! ```text
//! SPIFFE_ENDPOINT_SOCKET=unix:///tmp/agent.sock \
//!   cargo run -p spiffe-workload-tls --example mtls_server -- \
//!   --listen 127.0.0.1:8443 [--allow ID | --allow-td TD | --allow any] [--hint H]
//!
//! # or with the files a helper sidecar writes, re-read as it rotates them (no agent socket):
//! cargo run -p spiffe-workload-tls --example mtls_server -- \
//!   --listen 127.0.0.1:8443 --from-files /run/spiffe/certs
//! ```
//!
//! Prints `listening on ADDR` once it accepts; for each connection reads one line and answers
//! `hello <peer SPIFFE ID> from rust`. The SVID rotates underneath without a restart.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example's output is its interface"
)]

use std::io::Write as _;

use clap::Parser;
use spiffe_workload_client::{X509FileSource, X509Source};
use spiffe_workload_tls::{Authorizer, SpiffeAcceptor, mtls_server_config};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// mTLS echo server authorizing clients by SPIFFE ID.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    listen: String,
    /// The client SPIFFE ID to allow, or `any`.
    #[arg(long, default_value = "any", conflicts_with = "allow_td")]
    allow: String,
    /// Allow any client of this trust domain.
    #[arg(long)]
    allow_td: Option<String>,
    /// Serve the X.509-SVID with this hint (default: the first one).
    #[arg(long, conflicts_with = "from_files")]
    hint: Option<String>,
    /// Read `svid.pem`, `svid_key.pem` and `svid_bundle.pem` from this directory (as the
    /// helper writes them) instead of asking the agent, and follow their rotations.
    #[arg(long)]
    from_files: Option<std::path::PathBuf>,
}

fn authorizer(args: &Args) -> anyhow::Result<Authorizer> {
    Ok(match (&args.allow_td, args.allow.as_str()) {
        (Some(td), _) => Authorizer::member_of(td.parse()?),
        (None, "any") => Authorizer::any(),
        (None, id) => Authorizer::exact(id.parse()?),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Any X509SvidSource serves: the agent-backed source or the helper's files.
    let config = if let Some(dir) = &args.from_files {
        let files = X509FileSource::builder(
            dir.join("svid.pem"),
            dir.join("svid_key.pem"),
            dir.join("svid_bundle.pem"),
        )
        .build()
        .await?;
        mtls_server_config(&files, authorizer(&args)?)?
    } else {
        let source = X509Source::builder()
            .hint(args.hint.as_deref())
            .build()
            .await?;
        mtls_server_config(&source, authorizer(&args)?)?
    };
    let acceptor = SpiffeAcceptor::new(config);
    let listener = TcpListener::bind(&args.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let (stream, peer) = match acceptor.accept(tcp).await {
                Ok(accepted) => accepted,
                Err(err) => {
                    eprintln!("connection rejected: {err}");
                    return;
                }
            };
            let peer = peer.map_or_else(|| "anonymous".to_owned(), |id| id.to_string());
            let mut stream = BufReader::new(stream);
            let mut line = String::new();
            if stream.read_line(&mut line).await.is_ok() {
                let answer = format!("hello {peer} from rust\n");
                let _ = stream.get_mut().write_all(answer.as_bytes()).await;
                let _ = stream.get_mut().shutdown().await;
            }
        });
    }
}
