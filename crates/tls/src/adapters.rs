//! Adapters for tonic and hyper / axum (features `tonic` and `hyper`): the SPIFFE mTLS of this
//! crate under a gRPC or HTTP server and client, with the peer's SPIFFE ID in every request.
//!
//! - Server: [`SpiffeIncoming`] accepts TCP connections and runs the handshakes (each in its
//!   own task, with a timeout); a refused or failed handshake is logged and skipped, never ends
//!   the stream. Its connections ([`SpiffeServerStream`]) carry a [`SpiffePeer`]: tonic's
//!   `serve_with_incoming` puts it in each request's extensions (read it with `tonic_peer`,
//!   feature `tonic`), and `serve` / `serve_with_shutdown` / `serve_connection` (feature
//!   `hyper`) do the same for a hyper or axum service (axum: `Extension<SpiffePeer>`).
//! - Client: [`SpiffeHttpConnector`] dials the URI's host and port and runs the client
//!   handshake with a config from [`mtls_client_config`](crate::mtls_client_config): it
//!   presents the source's current SVID (so every new connection presents a rotated one) and
//!   authorizes the server by its SPIFFE ID. Give it to tonic's
//!   `Endpoint::connect_with_connector` or hyper-util's legacy `Client::build`.
//!
//! ALPN: gRPC needs HTTP/2 negotiated by ALPN (grpc-go refuses a TLS connection without it).
//! Both sides set `h2` and `http/1.1` on a config that names no protocol, so
//! [`mtls_server_config`](crate::mtls_server_config) and
//! [`mtls_client_config`](crate::mtls_client_config) can be passed as they are.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::CommonState;
use rustls::pki_types::CertificateDer;
use spiffe_workload_client::SpiffeId;

use crate::stream::peer_id;

mod connector;
mod incoming;

#[cfg(feature = "hyper")]
mod hyper_support;
#[cfg(feature = "tonic")]
mod tonic_support;

pub use connector::{SpiffeClientStream, SpiffeHttpConnector};
#[cfg(feature = "hyper")]
#[cfg_attr(docsrs, doc(cfg(feature = "hyper")))]
pub use hyper_support::{serve, serve_connection, serve_with_shutdown};
pub use incoming::{DEFAULT_HANDSHAKE_TIMEOUT, SpiffeIncoming, SpiffeServerStream};
#[cfg(feature = "tonic")]
#[cfg_attr(docsrs, doc(cfg(feature = "tonic")))]
pub use tonic_support::tonic_peer;

/// The ALPN protocols set on a config that has none: HTTP/2 first (gRPC), then HTTP/1.1.
fn default_alpn(protocols: &mut Vec<Vec<u8>>) {
    if protocols.is_empty() {
        *protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    }
}

/// Who is on the other end of a connection: its SPIFFE ID, its address and the certificates
/// it presented (already verified and authorized by the handshake).
///
/// A server puts it in each request's extensions; a hyper-util client puts the server's in
/// each response's extensions.
#[derive(Clone, Debug)]
pub struct SpiffePeer {
    id: Option<SpiffeId>,
    remote_addr: Option<SocketAddr>,
    certificates: Arc<[CertificateDer<'static>]>,
}

impl SpiffePeer {
    fn from_connection(connection: &CommonState, remote_addr: Option<SocketAddr>) -> Self {
        Self {
            id: peer_id(connection),
            remote_addr,
            certificates: connection
                .peer_certificates()
                .map(|chain| chain.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default(),
        }
    }

    /// The peer's SPIFFE ID (its leaf's URI SAN). `None` only on a TLS server that asks the
    /// client for no certificate ([`tls_server_config`](crate::tls_server_config)).
    #[must_use]
    pub fn id(&self) -> Option<&SpiffeId> {
        self.id.as_ref()
    }

    /// The peer's TCP address.
    #[must_use]
    pub fn remote_addr(&self) -> Option<SocketAddr> {
        self.remote_addr
    }

    /// The chain the peer presented, leaf first (DER); empty when it presented none.
    #[must_use]
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.certificates
    }
}

#[cfg(test)]
mod tests;
