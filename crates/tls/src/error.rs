//! The crate's error type.

use spiffe_workload_client::{SpiffeId, TrustDomain};

/// What can go wrong building a TLS config, verifying a peer or running a handshake.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer's leaf is not an X.509-SVID: no URI SAN, several, or one that is no SPIFFE ID.
    #[error("peer certificate is not an X.509-SVID: {reason}")]
    NotAnSvid {
        /// What is wrong with it.
        reason: String,
    },
    /// The peer's leaf is a CA certificate or may sign certificates or CRLs
    /// (SPIFFE X509-SVID §4.3).
    #[error("peer certificate {id} is a CA certificate, not a leaf SVID")]
    LeafIsCa {
        /// The ID in its URI SAN.
        id: SpiffeId,
    },
    /// No bundle is known for the peer's trust domain (not our own, not federated).
    #[error("no X.509 bundle for trust domain {trust_domain} (peer {id})")]
    NoBundle {
        /// The peer's trust domain.
        trust_domain: TrustDomain,
        /// The peer's ID.
        id: SpiffeId,
    },
    /// The chain does not verify against the bundle of its trust domain (unknown issuer,
    /// expired, bad signature, ...).
    #[error("peer certificate {id} does not verify against the bundle of {}: {reason}", id.trust_domain())]
    Untrusted {
        /// The peer's ID.
        id: SpiffeId,
        /// The verifier's reason, for example `CertExpired`.
        reason: String,
    },
    /// The chain verifies, but the authorizer does not allow the peer's ID.
    #[error("peer {id} is not authorized: {reason}")]
    Unauthorized {
        /// The peer's ID.
        id: SpiffeId,
        /// Which rule it fails, for example `expected spiffe://example.org/db`.
        reason: String,
    },
    /// The SVID's key cannot be used by rustls.
    #[error("X.509-SVID key not usable for TLS: {0}")]
    Key(#[source] rustls::Error),
    /// rustls refused the configuration (for example no protocol version in common with the
    /// crypto provider).
    #[error("TLS configuration: {0}")]
    Config(#[source] rustls::Error),
    /// The TCP connection or the handshake failed; the source names the rustls error, which
    /// includes the verifier's reason on our side.
    #[error("TLS handshake: {0}")]
    Handshake(#[source] std::io::Error),
    /// The handshake finished but the peer presented no certificate.
    #[error("peer presented no certificate")]
    NoPeerCertificate,
}

impl Error {
    /// Whether the peer was rejected by the authorizer (as opposed to failing authentication).
    #[must_use]
    pub fn is_unauthorized(&self) -> bool {
        matches!(self, Self::Unauthorized { .. })
    }
}
