//! A tonic gRPC service over SPIFFE mTLS: the TLS layer authenticates and authorizes the
//! caller, and the handler reads the caller's SPIFFE ID from the request.
//!
//! ```text
//! SPIFFE_ENDPOINT_SOCKET=unix:///tmp/agent.sock \
//!   cargo run -p spiffe-workload-tls --example grpc_server -- \
//!   --listen 127.0.0.1:50051 [--allow ID | --allow-td TD | --allow any] [--hint H]
//! ```
//!
//! Prints `listening on ADDR` once it accepts; refused connections are logged to stderr. Copy
//! it: the SPIFFE-specific parts are the source, the config, `SpiffeIncoming` and `tonic_peer`
//! (feature `tonic`).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example's output is its interface"
)]

use std::io::Write as _;

use clap::Parser;
use spiffe_workload_client::X509Source;
use spiffe_workload_tls::adapters::{SpiffeIncoming, SpiffePeer, tonic_peer};
use spiffe_workload_tls::{Authorizer, mtls_server_config};
use tokio::net::TcpListener;
use tonic::{Request, Response, Status};

/// The generated greeter code, shared with the other gRPC example (checked by tests/proto.rs).
#[allow(clippy::all, clippy::pedantic, missing_docs, reason = "generated code")]
#[rustfmt::skip]
mod greeter {
    include!("grpc/greeter.rs");
}

use greeter::greeter_server::{Greeter, GreeterServer};
use greeter::{HelloReply, HelloRequest};

/// gRPC over SPIFFE mTLS.
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
    /// Serve the X.509-SVID with this hint.
    #[arg(long)]
    hint: Option<String>,
}

struct Hello;

#[tonic::async_trait]
impl Greeter for Hello {
    async fn hello(&self, request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
        let caller = tonic_peer(&request)
            .and_then(SpiffePeer::id)
            .ok_or_else(|| Status::unauthenticated("no SPIFFE ID"))?;
        Ok(Response::new(HelloReply {
            message: format!("hello {caller} from rust grpc ({})", request.get_ref().text),
            caller: caller.to_string(),
        }))
    }
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
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let source = X509Source::builder()
        .hint(args.hint.as_deref())
        .build()
        .await?;
    let config = mtls_server_config(&source, authorizer(&args)?)?;
    let listener = TcpListener::bind(&args.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    // Handshakes run in their own tasks; tonic gets only connections that passed SPIFFE
    // authorization, each with its peer's ID.
    tonic::transport::Server::builder()
        .add_service(GreeterServer::new(Hello))
        .serve_with_incoming(SpiffeIncoming::new(listener, config))
        .await?;
    Ok(())
}
