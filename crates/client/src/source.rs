//! [`X509Source`]: the latest X.509 context, always at hand, kept fresh in the background.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::{Stream, StreamExt as _};
use tokio_util::sync::CancellationToken;

use crate::bundle::{BundleSource, X509Bundle};
use crate::{
    Backoff, Endpoint, Error, TrustDomain, WatchEvent, WorkloadApiClient, X509BundleSet,
    X509Context, X509Svid,
};

/// How long [`X509SourceBuilder::build`] waits for a first usable context unless told otherwise.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the background watch currently has a working stream.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionState {
    /// The last thing received was a valid message.
    Connected,
    /// The stream broke; the source is reconnecting. The last context stays current.
    Disconnected {
        /// The error that broke it (display form).
        last_error: String,
    },
}

/// Chooses the SVID a source serves out of the ones the agent offers (the workload may be
/// entitled to several, SPIFFE Workload API §5.2 "hint").
pub trait SvidPicker: Send + Sync + 'static {
    /// The chosen SVID, or `None` when none fits.
    fn pick<'a>(&self, svids: &'a [X509Svid]) -> Option<&'a X509Svid>;

    /// The hint this picker looks for, to name it in errors.
    fn hint(&self) -> Option<&str> {
        None
    }
}

/// Picks the first SVID: the default SVID of the Workload API.
#[derive(Clone, Copy, Debug, Default)]
pub struct DefaultPicker;

impl SvidPicker for DefaultPicker {
    fn pick<'a>(&self, svids: &'a [X509Svid]) -> Option<&'a X509Svid> {
        svids.first()
    }
}

/// Picks the first SVID whose hint equals the given one.
#[derive(Clone, Debug)]
pub struct HintPicker(pub String);

impl SvidPicker for HintPicker {
    fn pick<'a>(&self, svids: &'a [X509Svid]) -> Option<&'a X509Svid> {
        svids.iter().find(|s| s.hint() == self.0)
    }

    fn hint(&self) -> Option<&str> {
        Some(&self.0)
    }
}

/// One consistent view: a context, the SVID the picker chose in it, and its bundle set.
#[derive(Clone)]
pub struct X509Snapshot {
    context: Arc<X509Context>,
    /// The chosen SVID, shared so that TLS resolvers can cache per SVID (`Arc::ptr_eq`).
    svid: Arc<X509Svid>,
    bundles: Arc<X509BundleSet>,
}

impl X509Snapshot {
    fn new(context: Arc<X509Context>, picker: &dyn SvidPicker) -> Result<Self, Error> {
        let chosen = picker
            .pick(context.svids())
            .ok_or_else(|| Error::NoSuitableSvid {
                kind: "X.509-SVID",
                hint: picker.hint().map(str::to_owned),
            })?;
        let svid = Arc::new(chosen.clone());
        let bundles = Arc::new(X509BundleSet::from_context(&context));
        Ok(Self {
            context,
            svid,
            bundles,
        })
    }

    /// The SVID the picker chose.
    #[must_use]
    pub fn svid(&self) -> &X509Svid {
        &self.svid
    }

    /// The SVID the picker chose, shared: the same `Arc` for the life of this snapshot.
    #[must_use]
    pub fn svid_arc(&self) -> Arc<X509Svid> {
        self.svid.clone()
    }

    /// The whole context.
    #[must_use]
    pub fn context(&self) -> &Arc<X509Context> {
        &self.context
    }

    /// Own and federated bundles.
    #[must_use]
    pub fn bundle_set(&self) -> &Arc<X509BundleSet> {
        &self.bundles
    }
}

impl fmt::Debug for X509Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Snapshot")
            .field("svid", self.svid())
            .field("bundles", &self.bundles)
            .finish_non_exhaustive()
    }
}

/// Keeps the caller's current X.509-SVID and bundles in memory, following the agent.
///
/// Built with [`X509Source::builder`] (or the older [`X509Source::start`]): waits for the first
/// context in which the [`SvidPicker`] finds an SVID, then a background task follows the
/// agent's updates, reconnecting with [`Backoff`]. Identical consecutive contexts (for example
/// the snapshot re-sent after a reconnect) notify nobody. An update in which the picker finds
/// nothing is not applied: the previous SVID stays current (and [`Self::is_healthy`] turns
/// false once it expires).
///
/// The handle is cheap to [`Clone`]; all clones share one background task, which stops with
/// [`Self::shutdown`] or when the last clone is dropped.
#[derive(Clone)]
pub struct X509Source {
    inner: Arc<Inner>,
}

struct Inner {
    context: watch::Receiver<Arc<X509Context>>,
    snapshot: watch::Receiver<Arc<X509Snapshot>>,
    connection: watch::Receiver<ConnectionState>,
    shutdown: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl fmt::Debug for X509Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509Source")
            .field("svid", self.inner.snapshot.borrow().svid())
            .field("connection", &*self.inner.connection.borrow())
            .finish_non_exhaustive()
    }
}

/// Configures an [`X509Source`].
#[must_use]
pub struct X509SourceBuilder {
    client: Option<WorkloadApiClient>,
    endpoint: Option<Endpoint>,
    picker: Arc<dyn SvidPicker>,
    backoff: Backoff,
    startup_timeout: Duration,
}

impl fmt::Debug for X509SourceBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("X509SourceBuilder")
            .field("client", &self.client)
            .field("endpoint", &self.endpoint)
            .field("hint", &self.picker.hint())
            .field("startup_timeout", &self.startup_timeout)
            .finish_non_exhaustive()
    }
}

impl X509SourceBuilder {
    /// Uses this client (and its shared connection).
    pub fn client(mut self, client: WorkloadApiClient) -> Self {
        self.client = Some(client);
        self
    }

    /// Connects to this endpoint. Without a client or endpoint the builder reads
    /// `SPIFFE_ENDPOINT_SOCKET`.
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// Chooses the SVID with `picker` (default: the first one).
    pub fn picker(mut self, picker: impl SvidPicker) -> Self {
        self.picker = Arc::new(picker);
        self
    }

    /// Chooses the first SVID carrying `hint`; `None` keeps the default SVID.
    pub fn hint(self, hint: Option<&str>) -> Self {
        match hint {
            Some(hint) => self.picker(HintPicker(hint.to_owned())),
            None => self.picker(DefaultPicker),
        }
    }

    /// The reconnect backoff (default [`Backoff::default`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long [`Self::build`] waits for a first usable context
    /// (default [`DEFAULT_STARTUP_TIMEOUT`]).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Starts watching and waits for the first context in which the picker finds an SVID.
    ///
    /// Retryable errors (agent not up yet, `PermissionDenied` while the entry propagates,
    /// invalid messages, no SVID with the hint yet) are retried until the start-up deadline.
    ///
    /// # Errors
    /// [`Error::Endpoint`] when no endpoint was given and `SPIFFE_ENDPOINT_SOCKET` is unusable;
    /// a non-retryable error (for example `InvalidArgument`) at once; [`Error::Timeout`] with the
    /// last error seen when the deadline passes.
    pub async fn build(self) -> Result<X509Source, Error> {
        let client = WorkloadApiClient::chosen(self.client, self.endpoint)?;
        let shutdown = CancellationToken::new();
        let events = Box::pin(client.watch_x509_context_retrying(self.backoff, shutdown.clone()));
        let started = first_snapshot(events, &*self.picker, self.startup_timeout).await;
        let (events, first) = match started {
            Ok(ok) => ok,
            Err(err) => {
                shutdown.cancel();
                return Err(err);
            }
        };
        tracing::info!(
            spiffe_id = %first.svid().spiffe_id(),
            serial = %first.svid().serial_hex(),
            "received first X.509 context"
        );
        let (context_tx, context) = watch::channel(first.context.clone());
        let (snapshot_tx, snapshot) = watch::channel(Arc::new(first));
        let (connection_tx, connection) = watch::channel(ConnectionState::Connected);
        let channels = Channels {
            context: context_tx,
            snapshot: snapshot_tx,
            connection: connection_tx,
        };
        let task = tokio::spawn(follow(events, self.picker, channels));
        Ok(X509Source {
            inner: Arc::new(Inner {
                context,
                snapshot,
                connection,
                shutdown,
                task: Mutex::new(Some(task)),
            }),
        })
    }
}

type Events =
    std::pin::Pin<Box<dyn Stream<Item = Result<WatchEvent<X509Context>, Error>> + Send + 'static>>;

async fn first_snapshot(
    mut events: Events,
    picker: &dyn SvidPicker,
    timeout: Duration,
) -> Result<(Events, X509Snapshot), Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        let event = match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(event)) => event?,
            Ok(None) => return Err(Error::Closed),
            Err(_) => {
                return Err(Error::Timeout {
                    after: timeout,
                    last_error: last_error.map(Box::new),
                });
            }
        };
        match event {
            WatchEvent::Update(context) => match X509Snapshot::new(Arc::new(context), picker) {
                Ok(snapshot) => return Ok((events, snapshot)),
                Err(error) => {
                    tracing::debug!(error = %error.report(), "waiting for an X.509-SVID the picker accepts");
                    last_error = Some(error);
                }
            },
            WatchEvent::Disconnected { error, .. } | WatchEvent::Invalid(error) => {
                last_error = Some(error);
            }
        }
    }
}

struct Channels {
    context: watch::Sender<Arc<X509Context>>,
    snapshot: watch::Sender<Arc<X509Snapshot>>,
    connection: watch::Sender<ConnectionState>,
}

async fn follow(mut events: Events, picker: Arc<dyn SvidPicker>, tx: Channels) {
    while let Some(event) = events.next().await {
        match event {
            Ok(WatchEvent::Update(update)) => {
                tx.connection.send_replace(ConnectionState::Connected);
                if **tx.context.borrow() == update {
                    continue;
                }
                match X509Snapshot::new(Arc::new(update), &*picker) {
                    Ok(snapshot) => {
                        tracing::debug!(
                            spiffe_id = %snapshot.svid().spiffe_id(),
                            serial = %snapshot.svid().serial_hex(),
                            "X.509 context updated"
                        );
                        tx.context.send_replace(snapshot.context.clone());
                        tx.snapshot.send_replace(Arc::new(snapshot));
                    }
                    Err(error) => {
                        tracing::warn!(error = %error.report(), "ignoring X.509 update; keeping the current SVID");
                    }
                }
            }
            Ok(WatchEvent::Disconnected { error, .. }) | Err(error) => {
                tx.connection.send_replace(ConnectionState::Disconnected {
                    last_error: error.to_string(),
                });
            }
            Ok(WatchEvent::Invalid(_)) => {}
        }
    }
}

impl X509Source {
    /// A builder: default SVID, default backoff, [`DEFAULT_STARTUP_TIMEOUT`], endpoint from
    /// `SPIFFE_ENDPOINT_SOCKET` unless a client or endpoint is given.
    pub fn builder() -> X509SourceBuilder {
        X509SourceBuilder {
            client: None,
            endpoint: None,
            picker: Arc::new(DefaultPicker),
            backoff: Backoff::default(),
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
        }
    }

    /// Starts watching with the default SVID and waits for the first valid context.
    ///
    /// # Errors
    /// As [`X509SourceBuilder::build`].
    pub async fn start(
        client: WorkloadApiClient,
        startup_timeout: Duration,
    ) -> Result<Self, Error> {
        Self::builder()
            .client(client)
            .startup_timeout(startup_timeout)
            .build()
            .await
    }

    /// [`Self::start`] with a custom reconnect backoff.
    ///
    /// # Errors
    /// As [`X509SourceBuilder::build`].
    pub async fn start_with_backoff(
        client: WorkloadApiClient,
        startup_timeout: Duration,
        backoff: Backoff,
    ) -> Result<Self, Error> {
        Self::builder()
            .client(client)
            .startup_timeout(startup_timeout)
            .backoff(backoff)
            .build()
            .await
    }

    /// The latest valid context.
    #[must_use]
    pub fn current(&self) -> Arc<X509Context> {
        self.inner.context.borrow().clone()
    }

    /// The latest snapshot: context, chosen SVID and bundle set, consistent with each other.
    #[must_use]
    pub fn snapshot(&self) -> Arc<X509Snapshot> {
        self.inner.snapshot.borrow().clone()
    }

    /// The SVID the picker chose in the latest context.
    #[must_use]
    pub fn svid(&self) -> X509Svid {
        self.inner.snapshot.borrow().svid().clone()
    }

    /// Own and federated bundles of the latest context.
    #[must_use]
    pub fn bundle_set(&self) -> Arc<X509BundleSet> {
        self.inner.snapshot.borrow().bundles.clone()
    }

    /// A receiver notified whenever the context changes (identical re-sends do not count).
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<Arc<X509Context>> {
        self.inner.context.clone()
    }

    /// A receiver of snapshots, notified on the same real changes as [`Self::subscribe`].
    #[must_use]
    pub fn updates(&self) -> watch::Receiver<Arc<X509Snapshot>> {
        self.inner.snapshot.clone()
    }

    /// A receiver for the connection state.
    #[must_use]
    pub fn connection(&self) -> watch::Receiver<ConnectionState> {
        self.inner.connection.clone()
    }

    /// Whether the source can serve a valid SVID: the background watch still runs (not shut
    /// down, not stopped by a non-retryable error) and the chosen SVID has not expired.
    #[must_use]
    pub fn is_healthy(&self) -> bool {
        let running = !self.inner.shutdown.is_cancelled()
            && self
                .inner
                .task
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .is_some_and(|task| !task.is_finished());
        running && self.inner.snapshot.borrow().svid().not_after() > SystemTime::now()
    }

    /// Stops the background task (for all clones) and waits for it to finish. The last
    /// snapshot stays readable.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let task = self
            .inner
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task
            && let Err(error) = task.await
        {
            tracing::error!(%error, "X.509 source task failed");
        }
    }
}

impl BundleSource for X509Source {
    type Bundle = X509Bundle;

    fn bundle_for(&self, trust_domain: &TrustDomain) -> Option<Arc<X509Bundle>> {
        self.inner
            .snapshot
            .borrow()
            .bundles
            .bundle_for(trust_domain)
    }
}

impl X509Source {
    /// The bundle of `trust_domain` in the latest context (own or federated).
    #[must_use]
    pub fn bundle_for(&self, trust_domain: &TrustDomain) -> Option<Arc<X509Bundle>> {
        BundleSource::bundle_for(self, trust_domain)
    }
}
