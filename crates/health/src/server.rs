//! The HTTP/1.1 listener: probes, `/metrics`, and graceful stop.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::{ACCEPT, ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::{HealthError, HealthState, Probe};

/// Path of the Prometheus endpoint, served on the same listener as the probes.
pub const METRICS_PATH: &str = "/metrics";

/// How long [`HealthServer::serve`] waits for in-flight requests after shutdown.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Same bound as upstream's `ReadHeaderTimeout`: a client that never finishes
/// its request headers cannot hold a connection open.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// URL paths of the two probes (config `liveness_path` / `readiness_path`). There is no
/// `Default`: the defaults (`/health/live`, `/health/ready`) belong to the configuration's key
/// table, and this crate serves whatever paths it is given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthPaths {
    /// Liveness probe path, e.g. `/health/live`.
    pub liveness: String,
    /// Readiness probe path, e.g. `/health/ready`.
    pub readiness: String,
}

/// Test hook run at the start of every request (see [`HealthServer::with_test_hook`]).
#[doc(hidden)]
pub type TestHook = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// What the handlers need; shared by every connection.
struct Router {
    paths: HealthPaths,
    state: HealthState,
    test_hook: Option<TestHook>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field("paths", &self.paths)
            .field("state", &self.state)
            .field("test_hook", &self.test_hook.is_some())
            .finish()
    }
}

/// A bound health/metrics server. Create with [`HealthServer::bind`], run with
/// [`HealthServer::serve`].
#[derive(Debug)]
pub struct HealthServer {
    listener: TcpListener,
    local_addr: SocketAddr,
    drain_timeout: Duration,
    router: Router,
}

impl HealthServer {
    /// Binds the listener now, so a taken port fails at start-up rather than
    /// leaving the pod without a probe.
    ///
    /// # Errors
    /// [`HealthError::Bind`] when the address cannot be bound (port in use,
    /// privileged port, address not available); its message names the port.
    pub async fn bind(
        addr: SocketAddr,
        paths: HealthPaths,
        state: HealthState,
    ) -> Result<Self, HealthError> {
        let bind_err = |source| HealthError::Bind {
            port: addr.port(),
            addr,
            source,
        };
        let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        Ok(Self {
            listener,
            local_addr,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
            router: Router {
                paths,
                state,
                test_hook: None,
            },
        })
    }

    /// The bound address (useful when binding port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Changes how long [`serve`](Self::serve) waits for in-flight requests
    /// after shutdown (default [`DEFAULT_DRAIN_TIMEOUT`]).
    #[must_use]
    pub fn with_drain_timeout(mut self, timeout: Duration) -> Self {
        self.drain_timeout = timeout;
        self
    }

    /// Test hook: `hook` runs (and is awaited) at the start of every request, so
    /// tests can hold a request in flight while shutdown starts. Not for production use.
    #[doc(hidden)]
    #[must_use]
    pub fn with_test_hook(mut self, hook: TestHook) -> Self {
        self.router.test_hook = Some(hook);
        self
    }

    /// Serves until `shutdown` is cancelled. Then the listener is closed at once
    /// (new connections are refused), idle keep-alive connections are closed,
    /// and requests in flight get up to the drain timeout to finish; connections
    /// still open after that are dropped.
    ///
    /// # Errors
    /// None at present: accept errors (e.g. too many open files) are logged and
    /// retried so the probe stays up. The `Result` leaves room for fatal errors.
    pub async fn serve(self, shutdown: CancellationToken) -> Result<(), HealthError> {
        let Self {
            listener,
            local_addr,
            drain_timeout,
            router,
        } = self;
        let router = Arc::new(router);
        let graceful = GracefulShutdown::new();
        let mut connections = JoinSet::new();
        tracing::info!(%local_addr, "health server listening");
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = listener.accept() => match accepted {
                    Ok((stream, _peer)) => {
                        spawn_connection(stream, &router, &graceful, &mut connections);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "health server failed to accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        // Refuse new connections immediately, then drain.
        drop(listener);
        drain(graceful, connections, drain_timeout).await;
        tracing::info!(%local_addr, "health server stopped");
        Ok(())
    }
}

/// Serves one accepted connection on its own task, registered for graceful shutdown.
fn spawn_connection(
    stream: TcpStream,
    router: &Arc<Router>,
    graceful: &GracefulShutdown,
    connections: &mut JoinSet<()>,
) {
    let router = Arc::clone(router);
    let service = service_fn(move |req| handle(Arc::clone(&router), req));
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let conn = graceful.watch(conn);
    connections.spawn(async move {
        if let Err(error) = conn.await {
            tracing::debug!(%error, "health connection ended with an error");
        }
    });
}

/// Closes idle connections, waits up to `timeout` for in-flight requests, then
/// drops whatever is left (the bounded part of the graceful stop).
async fn drain(graceful: GracefulShutdown, mut connections: JoinSet<()>, timeout: Duration) {
    tracing::debug!("health server stopping; draining in-flight requests");
    if tokio::time::timeout(timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            ?timeout,
            "health server: in-flight requests did not finish in time; closing them"
        );
    }
    connections.shutdown().await;
}

/// Routes one request. Never fails: every outcome is an HTTP response.
async fn handle(
    router: Arc<Router>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if let Some(hook) = &router.test_hook {
        hook().await;
    }
    Ok(route(
        &router,
        req.method(),
        req.uri().path(),
        req.headers(),
    ))
}

fn route(
    router: &Router,
    method: &Method,
    path: &str,
    headers: &http::HeaderMap,
) -> Response<Full<Bytes>> {
    enum Target {
        Probe(Probe),
        Metrics,
    }
    let target = if path == router.paths.liveness {
        Target::Probe(Probe::Liveness)
    } else if path == router.paths.readiness {
        Target::Probe(Probe::Readiness)
    } else if path == METRICS_PATH {
        Target::Metrics
    } else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    // HEAD gets the GET response; hyper sends its headers (with Content-Length) and no body.
    if method != Method::GET && method != Method::HEAD {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        resp.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    match target {
        Target::Probe(probe) => {
            let (ok, body) = router.state.answer(probe, SystemTime::now());
            let status = if ok {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            response(status, "application/json", body)
        }
        Target::Metrics => {
            let openmetrics = headers
                .get_all(ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.contains("application/openmetrics-text"));
            let (text, content_type) = router.state.encode_metrics(openmetrics);
            response(StatusCode::OK, content_type, text)
        }
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    response(status, "text/plain; charset=utf-8", text)
}

fn response(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Probe answers change with time; no cache should hold them.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
