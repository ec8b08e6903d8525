//! A tonic gRPC client over SPIFFE mTLS, the pair of `grpc_server`.
//!
//! ```text
//! SPIFFE_ENDPOINT_SOCKET=unix:///tmp/agent.sock \
//!   cargo run -p spiffe-workload-tls --example grpc_client -- \
//!   --connect 127.0.0.1:50051 [--expect ID | --expect-td TD | --expect any] [--hint H]
//! ```
//!
//! Prints the server's reply and exits 0, or one line and exit 1 when the server is refused
//! (or refuses us). The SPIFFE-specific parts are the source, the config and
//! `SpiffeHttpConnector` (feature `tonic`).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example's output is its interface"
)]

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use spiffe_workload_client::X509Source;
use spiffe_workload_tls::adapters::SpiffeHttpConnector;
use spiffe_workload_tls::{Authorizer, mtls_client_config};

/// The generated greeter code, shared with the other gRPC example (checked by tests/proto.rs).
#[allow(clippy::all, clippy::pedantic, missing_docs, reason = "generated code")]
#[rustfmt::skip]
mod greeter {
    include!("grpc/greeter.rs");
}

use greeter::HelloRequest;
use greeter::greeter_client::GreeterClient;

/// gRPC client over SPIFFE mTLS.
#[derive(Parser)]
struct Args {
    /// Address of the server.
    #[arg(long)]
    connect: SocketAddr,
    /// The server SPIFFE ID to expect, or `any`.
    #[arg(long, default_value = "any", conflicts_with = "expect_td")]
    expect: String,
    /// Expect a server of this trust domain.
    #[arg(long)]
    expect_td: Option<String>,
    /// Present the X.509-SVID with this hint.
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

async fn run(args: &Args) -> anyhow::Result<String> {
    let source = X509Source::builder()
        .hint(args.hint.as_deref())
        .build()
        .await?;
    let config = mtls_client_config(&source, authorizer(args)?)?;
    // The connector dials the URI's address, presents the source's current SVID and
    // authorizes the server by its SPIFFE ID (the host name is not checked).
    let channel = tonic::transport::Endpoint::try_from(format!("https://{}", args.connect))?
        .connect_with_connector(SpiffeHttpConnector::new(config))
        .await?;
    let reply = GreeterClient::new(channel)
        .hello(HelloRequest {
            text: "ping".into(),
        })
        .await?;
    Ok(reply.into_inner().message)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err:#}");
            ExitCode::FAILURE
        }
    }
}
