//! hyper / axum: serve a `tower` HTTP service on SPIFFE mTLS connections, the peer in each
//! request's extensions.

use std::error::Error as StdError;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio_stream::StreamExt as _;
use tower_service::Service;

use super::{SpiffeIncoming, SpiffePeer, SpiffeServerStream};

type BoxError = Box<dyn StdError + Send + Sync>;

/// Serves `service` (a `tower` HTTP service such as an axum `Router`) on every connection of
/// `incoming`, each in its own task, over HTTP/1.1 or HTTP/2 (h2c prior knowledge or ALPN
/// `h2`, as hyper-util's `auto` builder detects). Each request carries the client's
/// [`SpiffePeer`] in its extensions (axum: `Extension<SpiffePeer>`).
///
/// Runs until the future is dropped (then it stops accepting; open connections finish in their
/// tasks); [`serve_with_shutdown`] drains them instead. A connection that ends with an error is
/// logged at `debug`.
///
/// ```no_run
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use spiffe_workload_client::X509Source;
/// use spiffe_workload_tls::adapters::{SpiffeIncoming, SpiffePeer, serve};
/// use spiffe_workload_tls::{Authorizer, mtls_server_config};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let source = X509Source::builder().build().await?;
/// let config = mtls_server_config(&source, Authorizer::member_of("example.org".parse()?))?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
/// let hello = tower::service_fn(|request: Request<hyper::body::Incoming>| async move {
///     let caller = request.extensions().get::<SpiffePeer>().and_then(SpiffePeer::id);
///     let body = format!("hello {}", caller.map(ToString::to_string).unwrap_or_default());
///     Ok::<_, Infallible>(Response::new(http_body_util::Full::new(hyper::body::Bytes::from(body))))
/// });
/// serve(SpiffeIncoming::new(listener, config), hello).await;
/// # Ok(())
/// # }
/// ```
pub async fn serve<S, B>(incoming: SpiffeIncoming, service: S)
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    serve_with_shutdown(incoming, service, std::future::pending()).await;
}

/// As [`serve`], until `signal` completes: then it stops accepting (the listener is closed),
/// asks every open connection to finish gracefully (HTTP/2 `GOAWAY`, HTTP/1.1 after the
/// response in flight), and returns once they all have.
pub async fn serve_with_shutdown<S, B, F>(mut incoming: SpiffeIncoming, service: S, signal: F)
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    F: Future<Output = ()>,
{
    let graceful = GracefulShutdown::new();
    let builder = auto::Builder::new(TokioExecutor::new());
    let mut signal = pin!(signal);
    loop {
        let connection = tokio::select! {
            () = &mut signal => break,
            next = incoming.next() => match next {
                Some(Ok(connection)) => connection,
                None => break,
            },
        };
        let remote = connection.peer().remote_addr();
        let service = TowerToHyperService::new(WithPeer {
            peer: connection.peer().clone(),
            inner: service.clone(),
        });
        let served = graceful.watch(
            builder
                .serve_connection(TokioIo::new(connection), service)
                .into_owned(),
        );
        tokio::spawn(async move {
            if let Err(error) = served.await {
                tracing::debug!(?remote, %error, "HTTP connection ended with an error");
            }
        });
    }
    drop(incoming);
    graceful.shutdown().await;
}

/// Serves `service` on one connection until it closes, as [`serve`] does for each: for a
/// caller that runs its own accept loop (connection limits, its own shutdown).
///
/// # Errors
/// hyper's, when the connection fails (I/O, protocol).
pub async fn serve_connection<S, B>(
    connection: SpiffeServerStream,
    service: S,
) -> Result<(), BoxError>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let service = WithPeer {
        peer: connection.peer().clone(),
        inner: service,
    };
    auto::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(connection), TowerToHyperService::new(service))
        .await
}

/// Adds the connection's peer to each request before `inner` sees it.
#[derive(Clone)]
struct WithPeer<S> {
    peer: SpiffePeer,
    inner: S,
}

impl<S, B> Service<Request<B>> for WithPeer<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> S::Future {
        request.extensions_mut().insert(self.peer.clone());
        self.inner.call(request)
    }
}
