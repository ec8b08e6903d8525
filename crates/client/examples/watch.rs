//! Prints the SPIFFE ID, serial number and expiry of the caller's X.509-SVIDs on every rotation,
//! surviving agent restarts, until Ctrl-C.
//!
//! ```text
//! cargo run -p spiffe-workload-client --example watch -- unix:///tmp/spire-agent/public/api.sock
//! SPIFFE_ENDPOINT_SOCKET=unix:///run/spire/agent.sock cargo run -p spiffe-workload-client --example watch
//! ```

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example program reports on the terminal"
)]

use std::process::ExitCode;
use std::time::SystemTime;

use spiffe_workload_client::{
    Backoff, CancellationToken, Endpoint, WatchEvent, WorkloadApiClient, X509Context,
};
use tokio_stream::StreamExt as _;

#[tokio::main]
async fn main() -> ExitCode {
    let endpoint = match std::env::args().nth(1) {
        Some(address) => Endpoint::parse(&address).map(Some),
        None => Endpoint::from_env(),
    };
    let endpoint = match endpoint {
        Ok(Some(endpoint)) => endpoint,
        Ok(None) => {
            eprintln!("usage: watch <unix:///path/to/agent.sock> (or set SPIFFE_ENDPOINT_SOCKET)");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("invalid endpoint: {e}");
            return ExitCode::from(2);
        }
    };

    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        on_signal.cancel();
    });

    let client = WorkloadApiClient::new(endpoint);
    let events = client.watch_x509_context_retrying(Backoff::default(), shutdown);
    tokio::pin!(events);
    let mut last: Option<X509Context> = None;
    while let Some(event) = events.next().await {
        match event {
            Ok(WatchEvent::Update(context)) => {
                if last.as_ref() != Some(&context) {
                    print_context(&context);
                    last = Some(context);
                }
            }
            Ok(WatchEvent::Disconnected { error, retry_in }) => {
                eprintln!("disconnected: {}; retrying in {retry_in:?}", error.report());
            }
            Ok(WatchEvent::Invalid(error)) => {
                eprintln!("ignored invalid message: {}", error.report());
            }
            Err(error) => {
                eprintln!("giving up: {}", error.report());
                return ExitCode::FAILURE;
            }
            Ok(_) => {}
        }
    }
    ExitCode::SUCCESS
}

fn print_context(context: &X509Context) {
    for svid in context.svids() {
        let expires_in = svid
            .not_after()
            .duration_since(SystemTime::now())
            .map_or(0, |d| d.as_secs());
        let hint = if svid.hint().is_empty() {
            "-"
        } else {
            svid.hint()
        };
        println!(
            "{} serial={} expires_in={expires_in}s hint={hint} chain={} bundle={}",
            svid.spiffe_id(),
            svid.serial_hex(),
            svid.cert_chain().len(),
            svid.bundle().len(),
        );
    }
    for (td, certs) in context.federated_bundles() {
        println!("  federated {td}: {} CA certificate(s)", certs.len());
    }
}
