//! An async client for the SPIFFE Workload API, as served by a SPIRE agent.
//!
//! It fetches and watches X.509-SVIDs, X.509 and JWT bundles and JWT-SVIDs, and validates every
//! response at the edge: certificate chains are parsed, the leaf's URI SAN must equal the SVID's
//! SPIFFE ID, the private key must belong to the leaf, JWT claims must parse. A malformed
//! response is an [`Error`], never a panic, and never reaches the caller as data. No gRPC or
//! protobuf type appears in the API.
//!
//! Layers, from low to high:
//! - [`WorkloadApiClient`]: one method per RPC (`fetch_*`, `watch_*`, `validate_jwt_svid`).
//! - [`WorkloadApiClient::watch_x509_context_retrying`]: a stream that survives agent restarts,
//!   reconnecting with [`Backoff`] and never retrying `InvalidArgument`/`Unimplemented`.
//! - [`X509Source`]: waits for the first context with a deadline, then keeps the latest one in
//!   memory and notifies subscribers of rotations.
//!
//! Shutdown is driven by a [`CancellationToken`] (re-exported from `tokio-util`).
//!
//! ```no_run
//! use std::time::Duration;
//! use spiffe_workload_client::{Endpoint, WorkloadApiClient, X509Source};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let endpoint = Endpoint::parse("unix:///run/spire/sockets/agent.sock")?;
//! let client = WorkloadApiClient::new(endpoint);
//!
//! // One-shot.
//! let context = client.fetch_x509_context().await?;
//! let svid = context.default_svid();
//! println!("{} serial {}", svid.spiffe_id(), svid.serial_hex());
//!
//! // Kept up to date in the background.
//! let source = X509Source::start(client, Duration::from_secs(30)).await?;
//! let mut updates = source.subscribe();
//! updates.changed().await?;
//! println!("rotated: {}", updates.borrow().default_svid().serial_hex());
//! source.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod backoff;
mod client;
mod endpoint;
mod error;
mod jwt;
mod key;
#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub(crate) mod pb;
mod source;
mod spiffe_id;
mod transport;
mod watch;
mod x509;

pub use backoff::{Backoff, DEFAULT_INITIAL_DELAY, DEFAULT_MAX_DELAY};
pub use client::{Watch, WorkloadApiClient, X509ContextStream};
pub use endpoint::{Endpoint, EndpointError, SPIFFE_ENDPOINT_SOCKET};
pub use error::{Error, StatusCode};
pub use jwt::{JwtBundleSet, JwtSvid, JwtToken, ValidatedJwtSvid};
pub use key::PrivateKey;
pub use source::{ConnectionState, X509Source};
pub use spiffe_id::{SpiffeId, TrustDomain};
/// The stream trait the watch methods return (from `tokio-stream`, same as `futures_core::Stream`).
pub use tokio_stream::Stream;
/// The shutdown signal the retrying watches take (from `tokio-util`).
pub use tokio_util::sync::CancellationToken;
pub use watch::WatchEvent;
pub use x509::{X509BundleSet, X509Context, X509Svid};
