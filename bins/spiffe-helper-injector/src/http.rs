//! The HTTP/1.1 accept loop both servers share: optional TLS, per-connection timeouts, and a
//! graceful stop (listener closed at once, idle connections closed, in-flight requests given
//! the drain timeout). HTTP/1.1 only: no ALPN is offered, so the kube-apiserver's Go client
//! speaks HTTP/1.1 to the webhook.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use hyper::Request;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use spiffe_workload_tls::SpiffeAcceptor;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A client has this long to finish the TLS handshake, and to send a request's headers.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

/// The response type of both servers.
pub type Reply = Response<Full<Bytes>>;

/// A plain-text response.
pub fn text(status: StatusCode, body: &'static str) -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    reply
}

/// One server: what it listens on, whether it speaks TLS, how long it drains.
pub struct Server {
    /// The bound listener.
    pub listener: TcpListener,
    /// `Some` for the webhook (HTTPS), `None` for the probes.
    pub tls: Option<SpiffeAcceptor>,
    /// In-flight requests' grace after `shutdown`.
    pub drain: Duration,
    /// For the logs.
    pub name: &'static str,
}

impl Server {
    /// Serves until `shutdown`, then drains.
    pub async fn serve<H, F>(self, handler: H, shutdown: CancellationToken)
    where
        H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = Reply> + Send + 'static,
    {
        let Self {
            listener,
            tls,
            drain,
            name,
        } = self;
        let graceful = GracefulShutdown::new();
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let conn = connection(stream, peer, tls.clone(), handler.clone(), &graceful);
                        connections.spawn(conn);
                    }
                    Err(error) => {
                        // Too many open files and the like: keep serving what is open.
                        tracing::warn!(server = name, %error, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        drop(listener);
        if tokio::time::timeout(drain, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                server = name,
                ?drain,
                "requests still in flight after the drain; closing them"
            );
        }
        connections.shutdown().await;
        tracing::info!(server = name, "stopped");
    }
}

/// One connection: the TLS handshake (bounded), then HTTP/1.1 watched for graceful shutdown.
fn connection<H, F>(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<SpiffeAcceptor>,
    handler: H,
    graceful: &GracefulShutdown,
) -> impl Future<Output = ()> + Send + 'static
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Reply> + Send + 'static,
{
    let watcher = graceful.watcher();
    async move {
        let _ = stream.set_nodelay(true);
        let service = service_fn(move |req| {
            let reply = handler(req);
            async move { Ok::<_, Infallible>(reply.await) }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(CLIENT_TIMEOUT);
        let served = match tls {
            None => {
                watcher
                    .watch(builder.serve_connection(TokioIo::new(stream), service))
                    .await
            }
            Some(acceptor) => {
                let stream =
                    match tokio::time::timeout(CLIENT_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok((stream, _))) => stream,
                        Ok(Err(error)) => {
                            // Where a wrong caBundle shows: the kube-apiserver aborts the
                            // handshake with an "unknown CA" / "bad certificate" alert.
                            tracing::warn!(%peer, %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                watcher
                    .watch(builder.serve_connection(TokioIo::new(stream), service))
                    .await
            }
        };
        if let Err(error) = served {
            tracing::debug!(%peer, %error, "connection ended with an error");
        }
    }
}
