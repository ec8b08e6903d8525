//! SPIFFE federation: fetch, watch and serve trust bundles at a bundle endpoint (SPIFFE Trust
//! Domain and Bundle standard §5, "Bundle endpoint"), so a service can trust a foreign trust
//! domain without SPIRE's own federation (docs/embedding.md, "Federation").
//!
//! - Client: [`BundleEndpointClient::fetch`] gets a foreign trust domain's bundle with either
//!   profile of the standard, [`EndpointProfile::HttpsWeb`] (Web PKI with the roots you give)
//!   or [`EndpointProfile::HttpsSpiffe`] (the endpoint authenticated by its SPIFFE ID).
//! - Watcher: [`FederatedBundleSource`] refreshes by `spiffe_refresh_hint`, backs off on
//!   failure, keeps the last good bundle and is a `BundleSource` of X.509 bundles.
//! - TLS: [`WithFederatedBundles`] joins an SVID source (for example `X509Source`) and one or
//!   more federated bundle sources into one [`X509SvidSource`](spiffe_workload_client::X509SvidSource)
//!   for the configs of this crate.
//! - Server: [`BundleEndpointHandler`] is a hyper service that serves a bundle in the
//!   standard's JSON; [`serve_bundle_endpoint`] runs it over TLS, with
//!   [`https_spiffe_server_config`] or [`https_web_server_config`].
//!
//! ```no_run
//! use spiffe_workload_client::{X509Source, X509Bundle};
//! use spiffe_workload_tls::federation::{
//!     BundleEndpointClient, EndpointProfile, FederatedBundleSource, WithFederatedBundles,
//! };
//! use spiffe_workload_tls::{Authorizer, mtls_server_config};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let source = X509Source::builder().build().await?;
//! let partner = "partner.example".parse()?;
//! let roots = std::fs::read("partner-web-roots.pem")?;
//! let client = BundleEndpointClient::new(
//!     "https://bundle.partner.example/bundle",
//!     partner,
//!     EndpointProfile::https_web_pem(&roots)?,
//! )?;
//! let federated = FederatedBundleSource::builder(client).start();
//! let both = WithFederatedBundles::new(source).with(federated);
//! let config = mtls_server_config(&both, Authorizer::member_of("partner.example".parse()?))?;
//! # let _ = config;
//! # Ok(())
//! # }
//! ```

mod client;
mod combined;
mod error;
mod server;
mod source;

pub use client::{BundleEndpointClient, DEFAULT_FETCH_TIMEOUT, EndpointProfile, MAX_BUNDLE_SIZE};
pub use combined::WithFederatedBundles;
pub use error::FederationError;
pub use server::{
    BundleEndpointHandler, SharedSpiffeBundle, SvidSourceBundle, https_spiffe_server_config,
    https_web_server_config, serve_bundle_endpoint,
};
pub use source::{
    DEFAULT_MAX_REFRESH, DEFAULT_MIN_REFRESH, DEFAULT_REFRESH, FederatedBundleSource,
    FederatedBundleSourceBuilder, FederationStatus,
};

#[cfg(test)]
mod tests;
