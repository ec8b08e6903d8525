//! The "ours" process of the `X509Source` memory row in docs/benchmarks.md ("Library figures"):
//! builds a `spiffe_workload_client::X509Source` from `SPIFFE_ENDPOINT_SOCKET`, waits until it
//! holds an X.509-SVID, prints `ready`, then idles until stdin closes. `lib_bench` reads
//! `/proc/PID/status` meanwhile. Kept minimal so the binary holds the source and nothing else;
//! built with the same profile as `hold_x509_rust_spiffe` (scripts/bench.sh).

#![allow(clippy::print_stdout, reason = "the ready line for the driver")]

use std::io::BufRead as _;

use spiffe_workload_client::X509Source;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let source = X509Source::builder().build().await?;
    // build() returns once the first X.509 context arrived: there is an SVID to hand out.
    let _ = source.svid();
    println!("ready");
    // Idle on the runtime's main thread; the source's watch runs on the workers.
    let _ = std::io::stdin().lock().lines().next();
    source.shutdown().await;
    Ok(())
}
