//! The client side: a `tower` connector for tonic's `Endpoint` and hyper-util's legacy
//! `Client`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, client::TlsStream};

use super::{SpiffePeer, default_alpn};
use crate::Error;
use crate::stream::handshake_error;

/// Dials the URI's host and port (`TCP_NODELAY` set) and runs the SPIFFE client handshake: a
/// `tower` service from [`Uri`] to [`SpiffeClientStream`].
///
/// With [`mtls_client_config`](crate::mtls_client_config) it presents the source's SVID of the
/// moment (each new connection presents a rotated one, with no rebuild) and authorizes the
/// server's SPIFFE ID; the host name only sets SNI (an IP address sends none) and is not
/// checked. The URI's scheme only picks the default port (443 for `https`, else 80): the
/// connection is always TLS. A config without ALPN protocols gets `h2` and `http/1.1`.
///
/// ```no_run
/// # #[cfg(feature = "tonic")]
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use spiffe_workload_client::X509Source;
/// use spiffe_workload_tls::adapters::SpiffeHttpConnector;
/// use spiffe_workload_tls::{Authorizer, mtls_client_config};
///
/// let source = X509Source::builder().build().await?;
/// let config = mtls_client_config(&source, Authorizer::exact("spiffe://example.org/db".parse()?))?;
/// let channel = tonic::transport::Endpoint::from_static("https://127.0.0.1:50051")
///     .connect_with_connector(SpiffeHttpConnector::new(config))
///     .await?;
/// # let _ = channel;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SpiffeHttpConnector {
    tls: TlsConnector,
}

impl SpiffeHttpConnector {
    /// A connector for `config`.
    #[must_use]
    pub fn new(mut config: ClientConfig) -> Self {
        default_alpn(&mut config.alpn_protocols);
        Self {
            tls: TlsConnector::from(Arc::new(config)),
        }
    }

    async fn connect(tls: TlsConnector, uri: Uri) -> Result<SpiffeClientStream, Error> {
        let invalid = |what: &str| {
            Error::Handshake(io::Error::new(io::ErrorKind::InvalidInput, what.to_owned()))
        };
        let host = uri.host().ok_or_else(|| invalid("the URI has no host"))?;
        // An IPv6 literal comes bracketed, as the URI writes it.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = uri
            .port_u16()
            .unwrap_or(if uri.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|_| invalid("the URI's host is no DNS name or IP address"))?;
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(Error::Handshake)?;
        tcp.set_nodelay(true).map_err(Error::Handshake)?;
        let remote = tcp.peer_addr().ok();
        let stream = tls
            .connect(server_name, tcp)
            .await
            .map_err(handshake_error)?;
        let peer = SpiffePeer::from_connection(stream.get_ref().1, remote);
        if peer.id().is_none() {
            return Err(Error::NoPeerCertificate);
        }
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        Ok(SpiffeClientStream {
            io: TokioIo::new(stream),
            peer,
            h2,
        })
    }
}

impl tower_service::Service<Uri> for SpiffeHttpConnector {
    type Response = SpiffeClientStream;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<SpiffeClientStream, Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        Box::pin(Self::connect(self.tls.clone(), uri))
    }
}

/// A client connection from [`SpiffeHttpConnector`]: the TLS stream (as hyper IO) and the
/// server's [`SpiffePeer`].
///
/// For hyper-util's legacy `Client` it reports HTTP/2 when ALPN chose it, and adds the
/// [`SpiffePeer`] to each response's extensions.
pub struct SpiffeClientStream {
    io: TokioIo<TlsStream<TcpStream>>,
    peer: SpiffePeer,
    h2: bool,
}

impl SpiffeClientStream {
    /// The server: its SPIFFE ID (always set), address and certificates.
    #[must_use]
    pub fn peer(&self) -> &SpiffePeer {
        &self.peer
    }

    /// The TLS stream.
    #[must_use]
    pub fn get_ref(&self) -> &TlsStream<TcpStream> {
        self.io.inner()
    }
}

impl Connection for SpiffeClientStream {
    fn connected(&self) -> Connected {
        let connected = Connected::new().extra(self.peer.clone());
        if self.h2 {
            connected.negotiated_h2()
        } else {
            connected
        }
    }
}

impl hyper::rt::Read for SpiffeClientStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for SpiffeClientStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
