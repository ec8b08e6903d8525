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
//! - [`X509Source`]: a cheap `Clone` handle built with [`X509Source::builder`]; waits (with a
//!   deadline) for a context in which its [`SvidPicker`] (for example [`HintPicker`]) finds an
//!   SVID, then keeps the latest [`X509Snapshot`] (chosen SVID + [`X509BundleSet`]) in memory,
//!   notifies subscribers of real changes, reports [`X509Source::is_healthy`].
//! - [`JwtSource`]: the JWT bundles kept fresh, and per audience set a JWT-SVID refreshed at
//!   half its remaining life; [`JwtValidator`] checks JWT-SVIDs offline against the bundles.
//! - Typed bundles ([`X509Bundle`], [`JwtBundle`]) behind the [`BundleSource`] trait, which
//!   both sources implement (the `spiffe-workload-tls` crate verifies peers with it).
//!
//! With `default-features = false` (no `transport` feature) only [`Endpoint`], [`SpiffeId`] and
//! [`TrustDomain`] are compiled, without the gRPC stack.
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

#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's quick start, compiled as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(feature = "transport")]
mod agent_socket;
#[cfg(feature = "transport")]
mod backoff;
#[cfg(feature = "transport")]
mod bundle;
#[cfg(feature = "transport")]
mod client;
mod endpoint;
#[cfg(feature = "transport")]
mod error;
#[cfg(feature = "transport")]
mod jwt;
#[cfg(feature = "transport")]
mod jwt_source;
#[cfg(feature = "jwt-validation")]
mod jwt_validate;
#[cfg(feature = "transport")]
mod key;
/// The generated messages and client stub live in `spiffe-workload-proto`, the one copy.
#[cfg(feature = "transport")]
pub(crate) use spiffe_workload_proto as pb;
#[cfg(feature = "transport")]
mod file_source;
#[cfg(feature = "transport")]
mod source;
#[cfg(feature = "transport")]
mod spiffe_bundle;
mod spiffe_id;
#[cfg(feature = "transport")]
mod strict_json;
#[cfg(feature = "transport")]
mod svid_source;
#[cfg(feature = "transport")]
mod transport;
#[cfg(feature = "transport")]
mod watch;
#[cfg(feature = "transport")]
mod x509;

pub use endpoint::{Endpoint, EndpointError, SPIFFE_ENDPOINT_SOCKET};
pub use spiffe_id::{SpiffeId, SpiffeIdError, TrustDomain};

#[cfg(feature = "transport")]
pub use transport_api::*;

/// Everything that needs the `transport` feature, re-exported at the crate root.
#[cfg(feature = "transport")]
mod transport_api {
    pub use crate::agent_socket::AgentSocket;
    pub use crate::backoff::{Backoff, DEFAULT_INITIAL_DELAY, DEFAULT_MAX_DELAY};
    pub use crate::bundle::{BundleSource, JwtBundle, JwtKey, JwtKeyMaterial, X509Bundle};
    pub use crate::client::{Watch, WorkloadApiClient, X509ContextStream};
    pub use crate::error::{Error, StatusCode, TransportError};
    pub use crate::file_source::{DEFAULT_POLL_INTERVAL, X509FileSource, X509FileSourceBuilder};
    pub use crate::jwt::{JwtBundleSet, JwtSvid, JwtToken, ValidatedJwtSvid};
    pub use crate::jwt_source::{IDLE_REFRESHES, JwtSource, JwtSourceBuilder};
    #[cfg(feature = "jwt-validation")]
    pub use crate::jwt_validate::{DEFAULT_LEEWAY, JwtSvidError, JwtValidator, validate_jwt_svid};
    pub use crate::key::PrivateKey;
    pub use crate::source::{
        ConnectionState, DEFAULT_STARTUP_TIMEOUT, DefaultPicker, HintPicker, SvidPicker,
        X509Snapshot, X509Source, X509SourceBuilder,
    };
    pub use crate::spiffe_bundle::{SpiffeBundle, SpiffeBundleSet};
    pub use crate::svid_source::{StaticX509Source, X509SvidSource};
    pub use crate::watch::WatchEvent;
    pub use crate::x509::{X509BundleSet, X509Context, X509Svid};
    /// The stream trait the watch methods return (from `tokio-stream`, same as
    /// `futures_core::Stream`).
    pub use tokio_stream::Stream;
    /// The shutdown signal the retrying watches take (from `tokio-util`).
    pub use tokio_util::sync::CancellationToken;
}
