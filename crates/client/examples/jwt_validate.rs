//! Validates a JWT-SVID offline against the JWT bundles the local agent serves.
//!
//! ```text
//! SPIFFE_ENDPOINT_SOCKET=unix:///tmp/agent.sock \
//!   cargo run -p spiffe-workload-client --example jwt_validate -- --audience A --token-file F
//! ```
//!
//! Exit 0 printing the token's SPIFFE ID, or 1 printing why it is rejected. The signature is
//! checked here, not by the agent: the agent only supplies the bundles (through a
//! `JwtSource`, which would keep them fresh in a long-running service).

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example's output is its interface"
)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use spiffe_workload_client::JwtSource;

/// Offline JWT-SVID validation.
#[derive(Parser)]
struct Args {
    /// The audience the token must carry.
    #[arg(long)]
    audience: String,
    /// A file holding the token (surrounding whitespace is ignored).
    #[arg(long)]
    token_file: PathBuf,
}

async fn run(args: &Args) -> Result<String, Box<dyn std::error::Error>> {
    let token = std::fs::read_to_string(&args.token_file)?;
    let source = JwtSource::builder().build().await?;
    let validated = source.validate(token.trim(), &args.audience);
    source.shutdown().await;
    Ok(validated?.spiffe_id.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args).await {
        Ok(id) => {
            println!("{id}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            // The error and its causes on one line.
            let mut line = err.to_string();
            let mut cause = err.source();
            while let Some(c) = cause {
                line = format!("{line}: {c}");
                cause = c.source();
            }
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}
