//! Fetches a trust domain's bundle once from its SPIFFE bundle endpoint, with the `https_web`
//! or the `https_spiffe` profile, and prints what it holds.
//!
//! ```text
//! cargo run -p spiffe-workload-tls --example federation_fetch -- \
//!   --url https://127.0.0.1:8443 --trust-domain partner.example \
//!   (--web-roots roots.pem | --endpoint-id spiffe://partner.example/spire/server --bundle partner.pem)
//! ```
//!
//! Prints one line `trust_domain=TD x509_authorities=N jwt_keys=M refresh_hint=S sequence=Q`
//! (`none` for a missing hint or sequence) and exits 0, or one line with the reason on stderr
//! and exits 1.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "an example's output is its interface"
)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use spiffe_workload_client::{SpiffeId, TrustDomain, X509Bundle};
use spiffe_workload_tls::federation::{BundleEndpointClient, EndpointProfile};

/// Fetch a SPIFFE bundle from a bundle endpoint.
#[derive(Parser)]
struct Args {
    /// The bundle endpoint URL (https).
    #[arg(long)]
    url: String,
    /// The trust domain whose bundle the endpoint serves.
    #[arg(long)]
    trust_domain: String,
    /// `https_web`: the PEM file of the roots to trust.
    #[arg(long, required_unless_present = "endpoint_id", conflicts_with_all = ["endpoint_id", "bundle"])]
    web_roots: Option<PathBuf>,
    /// `https_spiffe`: the SPIFFE ID the endpoint must present.
    #[arg(long, requires = "bundle")]
    endpoint_id: Option<String>,
    /// `https_spiffe`: the PEM bundle of the endpoint ID's trust domain.
    #[arg(long, requires = "endpoint_id")]
    bundle: Option<PathBuf>,
}

async fn fetch(args: &Args) -> anyhow::Result<String> {
    let trust_domain: TrustDomain = args.trust_domain.parse()?;
    let profile = match (&args.web_roots, &args.endpoint_id, &args.bundle) {
        (Some(roots), _, _) => EndpointProfile::https_web_pem(&std::fs::read(roots)?)?,
        (None, Some(id), Some(bundle)) => {
            let id: SpiffeId = id.parse()?;
            let held = X509Bundle::load(id.trust_domain().clone(), bundle)?;
            EndpointProfile::https_spiffe(id, held)?
        }
        _ => anyhow::bail!("give --web-roots, or --endpoint-id with --bundle"),
    };
    let client = BundleEndpointClient::new(&args.url, trust_domain, profile)?;
    let bundle = client.fetch().await?;
    let none = || "none".to_owned();
    Ok(format!(
        "trust_domain={} x509_authorities={} jwt_keys={} refresh_hint={} sequence={}",
        bundle.trust_domain(),
        bundle.x509_authorities().len(),
        bundle.jwt_authorities().len(),
        bundle.refresh_hint().map_or_else(none, |h| h.to_string()),
        bundle
            .sequence_number()
            .map_or_else(none, |s| s.to_string()),
    ))
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match fetch(&args).await {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{error:#}");
            ExitCode::FAILURE
        }
    }
}
