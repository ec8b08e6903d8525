//! An in-process fake Workload API server on a Unix socket, for faults SPIRE cannot produce:
//! malformed responses, empty SVID lists, streams cut mid-way, calls that never answer.
//!
//! Like SPIRE it rejects calls without the metadata `workload.spiffe.io: true` with
//! `InvalidArgument`.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::{Code, Request, Response, Status};

use crate::pb;
use crate::pb::spiffe_workload_api_server::{SpiffeWorkloadApi, SpiffeWorkloadApiServer};

/// How the fake answers calls made after [`FakeAgent::set_behaviour`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Streams send the latest pushed message (if any), then every new push; unary calls answer
    /// with what was set.
    Normal,
    /// Every call and stream is answered at once with this status.
    Fail(Code, String),
    /// Calls are accepted but never answered; streams never send (until shutdown).
    Hang,
    /// Streams send `n` messages, then end without an error status (the client sees end of
    /// stream). Unary calls behave as [`Behaviour::Normal`].
    CutAfter(usize),
    /// Streams send `n` messages, then end with this status. Unary calls behave as
    /// [`Behaviour::Normal`].
    EndWith(usize, Code),
}

type Latest<T> = Mutex<(Option<T>, broadcast::Sender<T>)>;

struct Shared {
    x509: Latest<pb::X509svidResponse>,
    x509_bundles: Latest<pb::X509BundlesResponse>,
    jwt_bundles: Latest<pb::JwtBundlesResponse>,
    jwt_svids: Mutex<Option<pb::JwtsvidResponse>>,
    validate: Mutex<Option<Result<pb::ValidateJwtsvidResponse, Status>>>,
    behaviour: Mutex<Behaviour>,
    x509_calls: AtomicUsize,
    jwt_calls: AtomicUsize,
    last_jwt_request: Mutex<Option<pb::JwtsvidRequest>>,
    /// Receiver of the current server generation's shutdown signal.
    shutdown: Mutex<watch::Receiver<bool>>,
}

/// Locks a mutex, ignoring poisoning (a panicking test must not cascade into the fake).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn latest<T: Clone>() -> Latest<T> {
    Mutex::new((None, broadcast::channel(1024).0))
}

fn push<T: Clone>(slot: &Latest<T>, msg: T) {
    let mut guard = lock(slot);
    guard.0 = Some(msg.clone());
    // No receivers is fine: the message is remembered as latest.
    let _ = guard.1.send(msg);
}

/// In-process fake Workload API server (tonic) listening on a Unix socket in a short `/tmp` dir.
pub struct FakeAgent {
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<()>>,
    socket: PathBuf,
    /// The temp dir holding the socket when created by [`FakeAgent::start`]; removed on drop.
    dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for FakeAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeAgent")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl FakeAgent {
    /// Starts the server on `<short tmp dir>/agent.sock` (the dir is removed on drop). Must be
    /// called inside a tokio runtime.
    ///
    /// # Panics
    /// If the temp dir or the socket cannot be created.
    pub async fn start() -> FakeAgent {
        let dir = crate::must(
            tempfile::Builder::new().prefix("fk").tempdir_in("/tmp"),
            "creating a temp dir for the fake agent",
        );
        let mut fake = Self::start_at(&dir.path().join("agent.sock")).await;
        fake.dir = Some(dir);
        fake
    }

    /// Starts the server on a given socket path (creating its parent dir and removing a stale
    /// socket file first). Must be called inside a tokio runtime.
    ///
    /// # Panics
    /// If the socket cannot be bound.
    #[allow(clippy::unused_async)] // async: the server task needs the caller's runtime
    pub async fn start_at(socket: &Path) -> FakeAgent {
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            x509: latest(),
            x509_bundles: latest(),
            jwt_bundles: latest(),
            jwt_svids: Mutex::new(None),
            validate: Mutex::new(None),
            behaviour: Mutex::new(Behaviour::Normal),
            x509_calls: AtomicUsize::new(0),
            jwt_calls: AtomicUsize::new(0),
            last_jwt_request: Mutex::new(None),
            shutdown: Mutex::new(shutdown_rx.clone()),
        });
        let server = serve(&shared, socket, shutdown_rx);
        FakeAgent {
            shared,
            shutdown_tx,
            server: Some(server),
            socket: socket.to_path_buf(),
            dir: None,
        }
    }

    /// Simulates an agent restart: shuts the server down (open streams end, the socket goes
    /// away), waits `down_for`, and serves again on the same socket. Pushed messages, answers,
    /// behaviour and counters are kept.
    ///
    /// # Panics
    /// If the socket cannot be bound again.
    pub async fn restart(&mut self, down_for: Duration) {
        self.stop_server().await;
        let _ = std::fs::remove_file(&self.socket);
        tokio::time::sleep(down_for).await;
        let (tx, rx) = watch::channel(false);
        *lock(&self.shared.shutdown) = rx.clone();
        self.shutdown_tx = tx;
        self.server = Some(serve(&self.shared, &self.socket, rx));
    }

    async fn stop_server(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(Duration::from_secs(5), &mut server)
                .await
                .is_err()
        {
            server.abort();
        }
    }

    /// Path of the Unix socket.
    #[must_use]
    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// `unix://<socket path>`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    /// Sends `r` to every open `FetchX509SVID` stream and remembers it for new streams.
    pub fn push_x509(&self, r: pb::X509svidResponse) {
        push(&self.shared.x509, r);
    }

    /// Sends `r` to every open `FetchX509Bundles` stream and remembers it for new streams.
    pub fn push_x509_bundles(&self, r: pb::X509BundlesResponse) {
        push(&self.shared.x509_bundles, r);
    }

    /// Sends `r` to every open `FetchJWTBundles` stream and remembers it for new streams.
    pub fn push_jwt_bundles(&self, r: pb::JwtBundlesResponse) {
        push(&self.shared.jwt_bundles, r);
    }

    /// Sets the answer to `FetchJWTSVID` (until set, it answers `PermissionDenied`, like SPIRE
    /// for a caller without identity).
    pub fn set_jwt_svids(&self, r: pb::JwtsvidResponse) {
        *lock(&self.shared.jwt_svids) = Some(r);
    }

    /// Sets the answer to `ValidateJWTSVID` (until set, it answers `InvalidArgument`).
    pub fn set_validate(&self, r: Result<pb::ValidateJwtsvidResponse, Status>) {
        *lock(&self.shared.validate) = Some(r);
    }

    /// Sets the behaviour for calls and streams opened from now on.
    pub fn set_behaviour(&self, b: Behaviour) {
        *lock(&self.shared.behaviour) = b;
    }

    /// Number of `FetchX509SVID` calls that carried the security header so far (whatever the
    /// behaviour answered): counts reconnects.
    #[must_use]
    pub fn x509_calls(&self) -> usize {
        self.shared.x509_calls.load(Ordering::SeqCst)
    }

    /// How many `FetchJWTSVID` calls carried the security header.
    #[must_use]
    pub fn jwt_calls(&self) -> usize {
        self.shared.jwt_calls.load(Ordering::SeqCst)
    }

    /// The last `FetchJWTSVID` request that carried the security header.
    #[must_use]
    pub fn last_jwt_request(&self) -> Option<pb::JwtsvidRequest> {
        lock(&self.shared.last_jwt_request).clone()
    }

    /// Stops the server: open streams end (the client sees end of stream), hanging calls
    /// answer `Unavailable`, the socket is closed. Waits up to 5 s for connections to drain,
    /// then aborts the server task.
    pub async fn shutdown(mut self) {
        self.stop_server().await;
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(server) = self.server.take() {
            server.abort();
        }
        // Removes the socket dir (if this fake created it).
        drop(self.dir.take());
    }
}

/// Binds `socket` and serves `shared` on it until `stop` turns true.
fn serve(
    shared: &Arc<Shared>,
    socket: &Path,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    if let Some(parent) = socket.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    let _ = std::fs::remove_file(socket);
    let listener = crate::must(
        tokio::net::UnixListener::bind(socket),
        "binding the fake agent socket",
    );
    let service = SpiffeWorkloadApiServer::new(Service(Arc::clone(shared)));
    tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
                let _ = stop.wait_for(|s| *s).await;
            })
            .await;
    })
}

struct Service(Arc<Shared>);

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn check_header<T>(req: &Request<T>) -> Result<(), Status> {
    match req.metadata().get("workload.spiffe.io") {
        Some(v) if v.as_bytes() == b"true" => Ok(()),
        _ => Err(Status::invalid_argument(
            "security header missing from request",
        )),
    }
}

impl Service {
    fn behaviour(&self) -> Behaviour {
        lock(&self.0.behaviour).clone()
    }

    /// Waits until the fake is shut down.
    async fn until_shutdown(&self) {
        let mut rx = lock(&self.0.shutdown).clone();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// Opens a stream over `slot` according to the current behaviour.
    fn open<T: Clone + Send + 'static>(&self, slot: &Latest<T>) -> Result<BoxStream<T>, Status> {
        let (limit, end, hang) = match self.behaviour() {
            Behaviour::Fail(code, msg) => return Err(Status::new(code, msg)),
            Behaviour::Hang => (Some(0), None, true),
            Behaviour::Normal => (None, None, false),
            Behaviour::CutAfter(n) => (Some(n), None, false),
            Behaviour::EndWith(n, code) => (Some(n), Some(code), false),
        };
        let (first, mut sub) = {
            let guard = lock(slot);
            (guard.0.clone(), guard.1.subscribe())
        };
        let (tx, rx) = mpsc::channel::<Result<T, Status>>(16);
        let mut shutdown = lock(&self.0.shutdown).clone();
        tokio::spawn(async move {
            let mut sent = 0usize;
            let mut pending = first;
            loop {
                if limit.is_some_and(|n| sent >= n) {
                    if hang {
                        tokio::select! {
                            () = tx.closed() => {}
                            _ = shutdown.wait_for(|s| *s) => {}
                        }
                        return;
                    }
                    if let Some(code) = end {
                        let _ = tx
                            .send(Err(Status::new(code, "fake agent: stream ended by test")))
                            .await;
                    }
                    return;
                }
                let msg = if let Some(m) = pending.take() {
                    m
                } else {
                    tokio::select! {
                        r = sub.recv() => match r {
                            Ok(m) => m,
                            Err(broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(broadcast::error::RecvError::Closed) => return,
                        },
                        () = tx.closed() => return,
                        _ = shutdown.wait_for(|s| *s) => return,
                    }
                };
                if tx.send(Ok(msg)).await.is_err() {
                    return;
                }
                sent += 1;
            }
        });
        Ok(Box::pin(ReceiverStream::new(rx)))
    }

    /// Applies Fail/Hang to a unary call; `Ok(())` means answer normally.
    async fn unary_gate(&self) -> Result<(), Status> {
        match self.behaviour() {
            Behaviour::Fail(code, msg) => Err(Status::new(code, msg)),
            Behaviour::Hang => {
                self.until_shutdown().await;
                Err(Status::unavailable("fake agent shut down"))
            }
            _ => Ok(()),
        }
    }
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for Service {
    type FetchX509SVIDStream = BoxStream<pb::X509svidResponse>;
    type FetchX509BundlesStream = BoxStream<pb::X509BundlesResponse>;
    type FetchJWTBundlesStream = BoxStream<pb::JwtBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        request: Request<pb::X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        check_header(&request)?;
        self.0.x509_calls.fetch_add(1, Ordering::SeqCst);
        self.open(&self.0.x509).map(Response::new)
    }

    async fn fetch_x509_bundles(
        &self,
        request: Request<pb::X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        check_header(&request)?;
        self.open(&self.0.x509_bundles).map(Response::new)
    }

    async fn fetch_jwtsvid(
        &self,
        request: Request<pb::JwtsvidRequest>,
    ) -> Result<Response<pb::JwtsvidResponse>, Status> {
        check_header(&request)?;
        self.0.jwt_calls.fetch_add(1, Ordering::SeqCst);
        *lock(&self.0.last_jwt_request) = Some(request.get_ref().clone());
        self.unary_gate().await?;
        let answer = lock(&self.0.jwt_svids).clone();
        answer
            .map(Response::new)
            .ok_or_else(|| Status::permission_denied("no identity issued"))
    }

    async fn fetch_jwt_bundles(
        &self,
        request: Request<pb::JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        check_header(&request)?;
        self.open(&self.0.jwt_bundles).map(Response::new)
    }

    async fn validate_jwtsvid(
        &self,
        request: Request<pb::ValidateJwtsvidRequest>,
    ) -> Result<Response<pb::ValidateJwtsvidResponse>, Status> {
        check_header(&request)?;
        self.unary_gate().await?;
        let answer = lock(&self.0.validate).clone();
        match answer {
            Some(Ok(r)) => Ok(Response::new(r)),
            Some(Err(s)) => Err(s),
            None => Err(Status::invalid_argument(
                "fake agent: no validation answer set",
            )),
        }
    }
}
