//! What can go wrong fetching or serving a bundle.

use std::time::Duration;

use spiffe_workload_client::TrustDomain;

/// A bundle endpoint could not be used, or what it served was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FederationError {
    /// The bundle endpoint URL is not an `https` URL with a host.
    #[error("bundle endpoint URL {url:?}: {reason}")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The profile cannot be used as configured (no usable Web PKI root, a held bundle of
    /// another trust domain than the endpoint ID's, a certificate or key that does not load).
    #[error("bundle endpoint profile: {0}")]
    Profile(String),
    /// The TCP connection failed.
    #[error("connecting to the bundle endpoint: {0}")]
    Connect(#[source] std::io::Error),
    /// The TLS handshake failed: for `https_spiffe` the endpoint's SVID did not verify against
    /// the held bundle or had another SPIFFE ID, for `https_web` its certificate did not verify
    /// against the roots or the host name.
    #[error("TLS with the bundle endpoint: {0}")]
    Tls(String),
    /// The HTTP exchange failed or the body was too large.
    #[error("HTTP with the bundle endpoint: {0}")]
    Http(String),
    /// The endpoint answered with another status than 200.
    #[error("bundle endpoint answered HTTP {0}")]
    Status(u16),
    /// No answer within the fetch timeout.
    #[error("bundle endpoint did not answer within {0:?}")]
    Timeout(Duration),
    /// The document is not a SPIFFE bundle (docs/validation.md, "SPIFFE bundles").
    #[error("{0}")]
    Bundle(#[source] spiffe_workload_client::Error),
    /// An X.509 authority of the fetched bundle carries the SPIFFE ID of another trust domain.
    #[error("bundle for {expected}: X.509 authority {index} belongs to trust domain {found}")]
    WrongTrustDomain {
        /// The trust domain the bundle was fetched for.
        expected: TrustDomain,
        /// The authority's position in the bundle.
        index: usize,
        /// The trust domain in the authority's URI SAN.
        found: String,
    },
    /// The fetched bundle holds neither X.509 nor JWT authorities.
    #[error("bundle for {0} holds no authority")]
    Empty(TrustDomain),
    /// The fetched bundle's `spiffe_sequence` is lower than the one of the bundle already
    /// held: it is refused and the held one kept.
    #[error("bundle for {trust_domain}: spiffe_sequence went back from {held} to {fetched}")]
    SequenceWentBack {
        /// The trust domain.
        trust_domain: TrustDomain,
        /// The sequence number of the held bundle.
        held: u64,
        /// The sequence number fetched.
        fetched: u64,
    },
    /// No bundle arrived within the wait.
    #[error("no bundle for {0} yet")]
    NotReady(TrustDomain),
    /// rustls refused the TLS configuration.
    #[error("TLS configuration: {0}")]
    Config(#[source] crate::Error),
}
