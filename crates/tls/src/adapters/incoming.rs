//! The server side: TCP accept, handshakes in their own tasks, a stream of authorized
//! connections.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::Stream;

use super::{SpiffePeer, default_alpn};
use crate::stream::handshake_error;

/// How long a client may take to finish its handshake before the connection is dropped, unless
/// [`SpiffeIncoming::with_handshake_timeout`] says otherwise.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many handshaken connections wait for the server to take them.
const BACKLOG: usize = 64;

/// A stream of mTLS connections that passed the handshake and the authorizer, for tonic's
/// `Server::serve_with_incoming` or `serve` (feature `hyper`).
///
/// Accepts on a [`TcpListener`] (setting `TCP_NODELAY`, as Go does) and runs each handshake in
/// its own task, so a slow or refused client never holds up the others. A refused handshake,
/// one that takes longer than the timeout, or a failed `accept` (for example out of file
/// descriptors, then retried after a second) is logged with `tracing` at `warn` and skipped: the
/// stream never ends and never yields an error. Dropping it stops accepting.
///
/// The accept loop starts on the first poll, in the runtime that polls it.
///
/// ```no_run
/// # #[cfg(feature = "tonic")]
/// # async fn run(
/// #     service: tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
/// # ) -> Result<(), Box<dyn std::error::Error>> {
/// use spiffe_workload_client::X509Source;
/// use spiffe_workload_tls::adapters::SpiffeIncoming;
/// use spiffe_workload_tls::{Authorizer, mtls_server_config};
///
/// let source = X509Source::builder().build().await?;
/// let config = mtls_server_config(&source, Authorizer::member_of("example.org".parse()?))?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:50051").await?;
/// tonic::transport::Server::builder()
///     .add_service(service) // handlers read the caller with `tonic_peer(&request)`
///     .serve_with_incoming(SpiffeIncoming::new(listener, config))
///     .await?;
/// # Ok(())
/// # }
/// ```
pub struct SpiffeIncoming {
    local_addr: Option<SocketAddr>,
    state: State,
}

enum State {
    Idle(Option<(TcpListener, TlsAcceptor, Duration)>),
    Running {
        connections: mpsc::Receiver<SpiffeServerStream>,
        accept_loop: JoinHandle<()>,
    },
}

impl SpiffeIncoming {
    /// Accepts on `listener` with `config` (for example
    /// [`mtls_server_config`](crate::mtls_server_config)), with
    /// [`DEFAULT_HANDSHAKE_TIMEOUT`]. A config without ALPN protocols gets `h2` and
    /// `http/1.1`.
    #[must_use]
    pub fn new(listener: TcpListener, config: ServerConfig) -> Self {
        Self::with_handshake_timeout(listener, config, DEFAULT_HANDSHAKE_TIMEOUT)
    }

    /// As [`Self::new`], with `timeout` for each handshake.
    #[must_use]
    pub fn with_handshake_timeout(
        listener: TcpListener,
        mut config: ServerConfig,
        timeout: Duration,
    ) -> Self {
        default_alpn(&mut config.alpn_protocols);
        Self {
            local_addr: listener.local_addr().ok(),
            state: State::Idle(Some((
                listener,
                TlsAcceptor::from(Arc::new(config)),
                timeout,
            ))),
        }
    }

    /// The address the listener is bound to.
    #[must_use]
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }
}

impl Drop for SpiffeIncoming {
    fn drop(&mut self) {
        if let State::Running { accept_loop, .. } = &self.state {
            accept_loop.abort();
        }
    }
}

impl Stream for SpiffeIncoming {
    type Item = Result<SpiffeServerStream, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let State::Idle(start) = &mut self.state {
            let Some((listener, acceptor, timeout)) = start.take() else {
                return Poll::Ready(None);
            };
            let (tx, rx) = mpsc::channel(BACKLOG);
            self.state = State::Running {
                connections: rx,
                accept_loop: tokio::spawn(accept_loop(listener, acceptor, timeout, tx)),
            };
        }
        match &mut self.state {
            State::Running { connections, .. } => connections.poll_recv(cx).map(|c| c.map(Ok)),
            State::Idle(_) => Poll::Ready(None),
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    timeout: Duration,
    tx: mpsc::Sender<SpiffeServerStream>,
) {
    loop {
        let accepted = tokio::select! {
            () = tx.closed() => return,
            accepted = listener.accept() => accepted,
        };
        let (tcp, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, tx) = (acceptor.clone(), tx.clone());
        tokio::spawn(async move {
            match tokio::time::timeout(timeout, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => {
                    let peer = SpiffePeer::from_connection(stream.get_ref().1, Some(remote));
                    let _ = tx.send(SpiffeServerStream { stream, peer }).await;
                }
                Ok(Err(error)) => {
                    let error = handshake_error(error);
                    tracing::warn!(%remote, %error, "TLS connection refused");
                }
                Err(_) => tracing::warn!(%remote, ?timeout, "TLS handshake timed out"),
            }
        });
    }
}

/// A server connection from [`SpiffeIncoming`]: the TLS stream and its [`SpiffePeer`].
///
/// With the `tonic` feature it implements tonic's `Connected`, whose connect info (in each
/// request's extensions) is the [`SpiffePeer`].
pub struct SpiffeServerStream {
    stream: TlsStream<TcpStream>,
    peer: SpiffePeer,
}

impl SpiffeServerStream {
    /// The client: its SPIFFE ID, address and certificates.
    #[must_use]
    pub fn peer(&self) -> &SpiffePeer {
        &self.peer
    }

    /// The TLS stream (for the negotiated ALPN protocol, the cipher suite, ...).
    #[must_use]
    pub fn get_ref(&self) -> &TlsStream<TcpStream> {
        &self.stream
    }

    /// The TLS stream, without the peer.
    #[must_use]
    pub fn into_inner(self) -> TlsStream<TcpStream> {
        self.stream
    }
}

impl AsyncRead for SpiffeServerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for SpiffeServerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
