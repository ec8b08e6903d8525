//! An mTLS client on the SPIFFE Workload API: connects, authorizes the server by SPIFFE ID,
//! sends one line and prints the answer and the server leaf's serial number.
//!
//! ```text
//! SPIFFE_ENDPOINT_SOCKET=unix:///tmp/agent.sock \
//!   cargo run -p spiffe-workload-tls --example mtls_client -- \
//!   --connect 127.0.0.1:8443 [--expect ID | --expect-td TD | --expect any] [--send TEXT] [--hint H]
//! ```
//!
//! Exit 0 after printing the server's first line and `serial=<HEX>` (lowercase, no leading
//! zeros, as Go's `big.Int.Text(16)`); exit 1 with one line on handshake or authorization
//! failure.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example's output is its interface"
)]

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use spiffe_workload_client::X509Source;
use spiffe_workload_tls::{Authorizer, SpiffeConnector, mtls_client_config};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// mTLS client authorizing the server by SPIFFE ID.
#[derive(Parser)]
struct Args {
    /// Address to connect to.
    #[arg(long)]
    connect: SocketAddr,
    /// The server SPIFFE ID to expect, or `any`.
    #[arg(long, default_value = "any", conflicts_with = "expect_td")]
    expect: String,
    /// Expect a server of this trust domain.
    #[arg(long)]
    expect_td: Option<String>,
    /// The line to send.
    #[arg(long, default_value = "hi")]
    send: String,
    /// Present the X.509-SVID with this hint (default: the first one).
    #[arg(long)]
    hint: Option<String>,
}

fn authorizer(args: &Args) -> anyhow::Result<Authorizer> {
    Ok(match (&args.expect_td, args.expect.as_str()) {
        (Some(td), _) => Authorizer::member_of(td.parse()?),
        (None, "any") => Authorizer::any(),
        (None, id) => Authorizer::exact(id.parse()?),
    })
}

/// Go's `big.Int.Text(16)` form of a DER serial.
fn serial_hex(leaf: &[u8]) -> anyhow::Result<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf)?;
    Ok(cert.tbs_certificate.serial.to_str_radix(16))
}

async fn run(args: &Args) -> anyhow::Result<()> {
    let source = X509Source::builder()
        .hint(args.hint.as_deref())
        .build()
        .await?;
    let connector = SpiffeConnector::new(mtls_client_config(&source, authorizer(args)?)?);
    let (stream, _server) = connector.dial(args.connect).await?;
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|der| der.as_ref().to_vec())
        .unwrap_or_default();
    let mut stream = BufReader::new(stream);
    stream
        .get_mut()
        .write_all(format!("{}\n", args.send).as_bytes())
        .await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    if line.is_empty() {
        anyhow::bail!("the server closed the connection without answering");
    }
    print!("{line}");
    println!("serial={}", serial_hex(&leaf)?);
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{err:#}");
            ExitCode::FAILURE
        }
    }
}
