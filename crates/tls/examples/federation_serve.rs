//! Serves the bundle of the agent's trust domain as a SPIFFE bundle endpoint with the
//! `https_spiffe` profile: the endpoint presents the workload's X.509-SVID (rotating with it)
//! and serves the X.509 and JWT authorities the agent hands out, so a peer can federate with
//! this trust domain (for example with `federation_fetch --endpoint-id <this SVID's ID>`).
//!
//! ```text
//! SPIFFE_ENDPOINT_SOCKET=unix:///tmp/agent.sock \
//!   cargo run -p spiffe-workload-tls --example federation_serve -- --listen 127.0.0.1:8443
//! ```
//!
//! Prints `listening on ADDR` once it accepts, and serves until interrupted.

#![allow(clippy::print_stdout, reason = "an example's output is its interface")]

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use spiffe_workload_client::{CancellationToken, JwtSource, X509Source};
use spiffe_workload_tls::federation::{
    BundleEndpointHandler, SvidSourceBundle, https_spiffe_server_config, serve_bundle_endpoint,
};
use tokio::net::TcpListener;

/// Serve the agent's trust domain bundle with the `https_spiffe` profile.
#[derive(Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long)]
    listen: String,
    /// The `spiffe_refresh_hint` to advertise, seconds.
    #[arg(long, default_value_t = 300)]
    refresh_hint: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let source = X509Source::builder().build().await?;
    let jwt = JwtSource::builder().build().await?;
    let trust_domain = source.snapshot().svid().spiffe_id().trust_domain().clone();
    let bundle = SvidSourceBundle::new(source.clone()).with_jwt(jwt.clone());
    let handler = BundleEndpointHandler::new(trust_domain, bundle)
        .refresh_hint(Duration::from_secs(args.refresh_hint));
    let tls = Arc::new(https_spiffe_server_config(&source)?);
    let listener = TcpListener::bind(&args.listen).await?;
    println!("listening on {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    serve_bundle_endpoint(listener, tls, handler, shutdown).await?;
    source.shutdown().await;
    jwt.shutdown().await;
    Ok(())
}
