//! The rust-spiffe process of the `X509Source` memory row in docs/benchmarks.md ("Library
//! figures"): builds a `spiffe` 0.19 `X509Source` from `SPIFFE_ENDPOINT_SOCKET`, waits until it
//! holds an X.509-SVID, prints `ready`, then idles until stdin closes. Same shape and build
//! profile as `hold_x509_ours`.

#![allow(clippy::print_stdout, reason = "the ready line for the driver")]

use std::io::BufRead as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let source = spiffe::X509Source::new().await?;
    // new() returns once the first X.509 context arrived; svid() fails if none is held.
    let _ = source.svid()?;
    println!("ready");
    // Idle on the runtime's main thread; the source's watch runs on the workers.
    let _ = std::io::stdin().lock().lines().next();
    source.shutdown().await;
    Ok(())
}
