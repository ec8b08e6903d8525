//! rustls TLS with SPIFFE authentication and authorization, backed by any
//! [`X509SvidSource`](spiffe_workload_client::X509SvidSource): the live
//! [`X509Source`](spiffe_workload_client::X509Source), a fixed
//! [`StaticX509Source`](spiffe_workload_client::StaticX509Source) or an
//! [`X509FileSource`](spiffe_workload_client::X509FileSource) that follows the helper's files.
//!
//! This is the crate a Rust service adds next to `spiffe-workload-client` to speak mTLS with
//! other SPIFFE workloads (Go services on go-spiffe's `spiffetls`, Envoy, other Rust services).
//! The helper binary does not link it.
//!
//! - Configs: [`mtls_server_config`], [`mtls_client_config`], [`tls_server_config`],
//!   [`tls_client_config`]. Their certificate resolvers read the source on each handshake, so a
//!   rotated SVID is presented by the next handshake without rebuilding anything.
//! - Verification ([`SpiffeServerVerifier`], [`SpiffeClientVerifier`]): the peer's leaf must
//!   carry exactly one `spiffe://` URI SAN and be no CA; its chain must verify against the bundle
//!   of the peer's own trust domain (own or federated) and be unexpired. The server name is
//!   ignored. The same checks, without a handshake: [`verify_chain`].
//! - Authorization ([`Authorizer`]): any, exact ID, one of a set, member of a trust domain, or a
//!   closure that sees the ID and the verified chain.
//! - Crypto provider ([`crypto_provider`]): the application's process-default rustls provider
//!   when it installed one, else ring (feature `ring`, the default) or aws-lc-rs (feature
//!   `aws-lc-rs`); the `*_with_provider` configs and verifier constructors take one explicitly.
//! - tokio: [`SpiffeAcceptor::accept`] and [`SpiffeConnector::connect`] return the stream and
//!   the peer's [`SpiffeId`](spiffe_workload_client::SpiffeId).
//! - Federation (module `federation`, feature `federation`, on by default): fetch, watch and
//!   serve trust bundles at a SPIFFE bundle endpoint, and trust a foreign domain with them.
//!
//! ```no_run
//! use spiffe_workload_client::X509Source;
//! use spiffe_workload_tls::{Authorizer, SpiffeAcceptor, mtls_server_config};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let source = X509Source::builder().build().await?; // agent from SPIFFE_ENDPOINT_SOCKET
//! let allow = Authorizer::member_of("example.org".parse()?);
//! let acceptor = SpiffeAcceptor::new(mtls_server_config(&source, allow)?);
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
//! let (tcp, _) = listener.accept().await?;
//! let (_stream, peer) = acceptor.accept(tcp).await?;
//! println!("hello {peer:?}");
//! # Ok(())
//! # }
//! ```
//!
//! With the features `tonic` and `hyper`, the `adapters` module serves and calls gRPC and HTTP
//! over the same mTLS, each request carrying the peer's SPIFFE ID.

#![cfg_attr(docsrs, feature(doc_cfg))]

/// The README's quick start, compiled as a doctest so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(any(feature = "tonic", feature = "hyper"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "tonic", feature = "hyper"))))]
pub mod adapters;
mod authorize;
mod config;
mod error;
#[cfg(feature = "federation")]
pub mod federation;
mod provider;
mod resolve;
mod stream;
mod verify;

pub use authorize::Authorizer;
pub use config::{
    mtls_client_config, mtls_client_config_with_provider, mtls_server_config,
    mtls_server_config_with_provider, tls_client_config, tls_client_config_with_provider,
    tls_server_config, tls_server_config_with_provider,
};
pub use error::Error;
pub use provider::{builtin_provider, crypto_provider};
pub use resolve::SvidResolver;
/// The rustls version this crate builds on, for callers that adjust the configs (ALPN, ...).
pub use rustls;
pub use stream::{SpiffeAcceptor, SpiffeConnector, peer_id};
pub use verify::{
    PeerRole, SpiffeClientVerifier, SpiffeServerVerifier, VerifiedChain, X509BundleSource, svid_id,
    verify_chain,
};
