//! An mTLS echo server on the SPIFFE Workload API: the smallest real server built on
//! `spiffe-workload-tls`, and the Rust side of the go-spiffe interop tests.
//!
//! ```text
//! SPIFFE_ENDPOINT_SOCKET=unix:///tmp/agent.sock \
//!   cargo run -p spiffe-workload-tls --example mtls_server -- \
//!   --listen 127.0.0.1:8443 [--allow ID | --allow-td TD | --allow any] [--hint H]
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
use spiffe_workload_client::X509Source;
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
    #[arg(long)]
    hint: Option<String>,
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
    let source = X509Source::builder()
        .hint(args.hint.as_deref())
        .build()
        .await?;
    let acceptor = SpiffeAcceptor::new(mtls_server_config(&source, authorizer(&args)?)?);
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
