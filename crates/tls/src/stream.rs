//! tokio helpers: accept and connect, returning the stream and the peer's SPIFFE ID.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConfig, CommonState, ServerConfig};
use spiffe_workload_client::SpiffeId;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

use crate::Error;
use crate::verify::{from_rustls, svid_id};

/// The SPIFFE ID of the peer of an established connection (its leaf's URI SAN), when it
/// presented a certificate. The verifier already checked the chain; this only reads the ID.
#[must_use]
pub fn peer_id(connection: &CommonState) -> Option<SpiffeId> {
    let leaf = connection.peer_certificates()?.first()?;
    svid_id(leaf).ok()
}

/// Turns a failed handshake into our error: the verifier's own error when it rejected the
/// peer (so callers can tell [`Error::Unauthorized`] apart), otherwise [`Error::Handshake`].
pub(crate) fn handshake_error(error: std::io::Error) -> Error {
    let ours = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .and_then(from_rustls);
    match ours {
        Some(Error::Unauthorized { id, reason }) => Error::Unauthorized {
            id: id.clone(),
            reason: reason.clone(),
        },
        Some(Error::NoBundle { trust_domain, id }) => Error::NoBundle {
            trust_domain: trust_domain.clone(),
            id: id.clone(),
        },
        _ => Error::Handshake(error),
    }
}

/// Accepts TLS connections with a SPIFFE server config ([`crate::mtls_server_config`] or
/// [`crate::tls_server_config`]).
#[derive(Clone)]
pub struct SpiffeAcceptor(TlsAcceptor);

impl SpiffeAcceptor {
    /// An acceptor for `config`.
    #[must_use]
    pub fn new(config: ServerConfig) -> Self {
        Self(TlsAcceptor::from(Arc::new(config)))
    }

    /// Runs the server side of the handshake on `io`; the peer ID is `None` for a TLS (not
    /// mTLS) server. For a `TcpStream`, set `TCP_NODELAY` first (as Go's `net` package does for
    /// every connection) unless the protocol batches its writes.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] / [`Error::NoBundle`] when the client's SVID is refused,
    /// [`Error::Handshake`] otherwise.
    pub async fn accept<IO>(
        &self,
        io: IO,
    ) -> Result<(server::TlsStream<IO>, Option<SpiffeId>), Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = self.0.accept(io).await.map_err(handshake_error)?;
        let peer = peer_id(stream.get_ref().1);
        Ok((stream, peer))
    }
}

/// Connects with a SPIFFE client config ([`crate::mtls_client_config`] or
/// [`crate::tls_client_config`]).
#[derive(Clone)]
pub struct SpiffeConnector(TlsConnector);

impl SpiffeConnector {
    /// A connector for `config`.
    #[must_use]
    pub fn new(config: ClientConfig) -> Self {
        Self(TlsConnector::from(Arc::new(config)))
    }

    /// Runs the client side of the handshake on `io`. `server_name` only sets SNI (an IP
    /// address sends none); the server is authenticated by its SPIFFE ID.
    ///
    /// # Errors
    /// [`Error::Unauthorized`] / [`Error::NoBundle`] when the server's SVID is refused,
    /// [`Error::Handshake`] otherwise, [`Error::NoPeerCertificate`] if none was presented.
    pub async fn connect<IO>(
        &self,
        server_name: ServerName<'static>,
        io: IO,
    ) -> Result<(client::TlsStream<IO>, SpiffeId), Error>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let stream = self
            .0
            .connect(server_name, io)
            .await
            .map_err(handshake_error)?;
        let peer = peer_id(stream.get_ref().1).ok_or(Error::NoPeerCertificate)?;
        Ok((stream, peer))
    }

    /// Dials `addr` over TCP (with `TCP_NODELAY`, as Go does: otherwise Nagle's algorithm and
    /// delayed ACKs add ~40 ms to a request that follows the handshake) and runs the handshake
    /// (no SNI).
    ///
    /// # Errors
    /// [`Error::Handshake`] when the TCP connection fails, else as [`Self::connect`].
    pub async fn dial(
        &self,
        addr: SocketAddr,
    ) -> Result<(client::TlsStream<TcpStream>, SpiffeId), Error> {
        let tcp = TcpStream::connect(addr).await.map_err(Error::Handshake)?;
        tcp.set_nodelay(true).map_err(Error::Handshake)?;
        self.connect(ServerName::IpAddress(addr.ip().into()), tcp)
            .await
    }
}
