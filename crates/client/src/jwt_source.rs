//! [`JwtSource`]: the JWT bundles, kept fresh, and per audience set a JWT-SVID that refreshes
//! itself at half its remaining life.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt as _;
use tokio_util::sync::CancellationToken;

#[cfg(feature = "jwt-validation")]
use crate::ValidatedJwtSvid;
use crate::bundle::{BundleSource, JwtBundle};
#[cfg(feature = "jwt-validation")]
use crate::jwt_validate::{JwtSvidError, JwtValidator};
use crate::source::DEFAULT_STARTUP_TIMEOUT;
use crate::{
    Backoff, ConnectionState, Endpoint, Error, JwtBundleSet, JwtSvid, SpiffeId, TrustDomain,
    WatchEvent, WorkloadApiClient,
};

/// Never wait less than this between two refreshes of one JWT-SVID, even when the agent hands
/// back a token already past half its life (it does so until about half its lifetime is left).
const MIN_REFRESH: Duration = Duration::from_millis(500);

/// How many refresh periods in a row a cached JWT-SVID may go unused (nobody asked for it, nobody
/// holds a receiver of [`JwtSource::watch_jwt_svid`]) before its refresher stops. The next
/// request for the audience set fetches it again.
pub const IDLE_REFRESHES: u32 = 3;

/// Which of the caller's JWT-SVIDs: the first, the one with a hint, or the one of a SPIFFE ID.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Pick {
    Hint(Option<String>),
    Subject(SpiffeId),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct SvidKey {
    /// Sorted and de-duplicated: `["b","a"]` and `["a","b"]` share one token.
    audiences: Vec<String>,
    pick: Pick,
}

struct Cached {
    svid: watch::Receiver<Arc<JwtSvid>>,
    /// Bumped by every request served from this entry; the refresher reads it.
    used: Arc<AtomicU64>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Cached {
    /// Its refresher still runs and the token has not expired.
    fn is_fresh(&self) -> bool {
        !self.task.is_finished() && self.svid.borrow().expiry() > SystemTime::now()
    }
}

/// Follows the agent's JWT bundles and keeps JWT-SVIDs fresh, like go-spiffe's `JWTSource`
/// plus a refresh loop per audience set.
///
/// [`Self::jwt_svid`] returns the cached token for an audience set, or fetches it once and
/// from then on refreshes it in the background at half its remaining life (retrying with the
/// source's [`Backoff`]). [`Self::watch_jwt_svid`] gives a receiver that fires on each new token.
/// [`Self::validate`] checks a token offline against the current bundles.
///
/// A cheap [`Clone`] handle; [`Self::shutdown`] (or dropping the last clone) stops every task.
#[derive(Clone)]
pub struct JwtSource {
    inner: Arc<Inner>,
}

struct Inner {
    client: WorkloadApiClient,
    hint: Option<String>,
    backoff: Backoff,
    bundles: watch::Receiver<Arc<JwtBundleSet>>,
    connection: watch::Receiver<ConnectionState>,
    shutdown: CancellationToken,
    bundle_task: Mutex<Option<JoinHandle<()>>>,
    svids: tokio::sync::Mutex<HashMap<SvidKey, Cached>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl fmt::Debug for JwtSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSource")
            .field("endpoint", self.inner.client.endpoint())
            .field("hint", &self.inner.hint)
            .field("bundles", &self.inner.bundles.borrow().bundles().keys())
            .finish_non_exhaustive()
    }
}

/// Configures a [`JwtSource`].
#[derive(Debug)]
#[must_use]
pub struct JwtSourceBuilder {
    client: Option<WorkloadApiClient>,
    endpoint: Option<Endpoint>,
    hint: Option<String>,
    backoff: Backoff,
    startup_timeout: Duration,
    wait_for_bundles: bool,
}

impl JwtSourceBuilder {
    /// Uses this client (and its shared connection).
    pub fn client(mut self, client: WorkloadApiClient) -> Self {
        self.client = Some(client);
        self
    }

    /// Connects to this endpoint (default: `SPIFFE_ENDPOINT_SOCKET`).
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = Some(endpoint);
        self
    }

    /// The hint [`JwtSource::jwt_svid`] picks by (default: the first JWT-SVID).
    pub fn hint(mut self, hint: Option<&str>) -> Self {
        self.hint = hint.map(str::to_owned);
        self
    }

    /// Backoff for reconnecting the bundle watch and retrying refreshes.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long [`Self::build`] waits for the first JWT bundles.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Whether [`Self::build`] waits for the first JWT bundles (default `true`). A caller
    /// that only fetches JWT-SVIDs, and validates nothing, need not wait: with `false` the
    /// source starts with no bundles, the watch fills them in the background, and
    /// [`JwtSource::connection`] says `Disconnected` until its first message.
    pub fn wait_for_bundles(mut self, wait: bool) -> Self {
        self.wait_for_bundles = wait;
        self
    }

    /// Starts watching the JWT bundles and waits for the first set.
    ///
    /// # Errors
    /// As [`crate::X509SourceBuilder::build`].
    pub async fn build(self) -> Result<JwtSource, Error> {
        let client = WorkloadApiClient::chosen(self.client, self.endpoint)?;
        let shutdown = CancellationToken::new();
        let mut events: BundleEvents =
            Box::pin(client.watch_jwt_bundles_retrying(self.backoff.clone(), shutdown.clone()));
        let (first, connected) = if self.wait_for_bundles {
            let first = first_bundles(&mut events, self.startup_timeout).await;
            match first {
                Ok(first) => (first, ConnectionState::Connected),
                Err(err) => {
                    shutdown.cancel();
                    return Err(err);
                }
            }
        } else {
            let waiting = ConnectionState::Disconnected {
                last_error: "no JWT bundles received yet".to_owned(),
            };
            (JwtBundleSet::default(), waiting)
        };
        let (bundles_tx, bundles) = watch::channel(Arc::new(first));
        let (connection_tx, connection) = watch::channel(connected);
        let task = tokio::spawn(async move {
            while let Some(event) = events.next().await {
                match event {
                    Ok(WatchEvent::Update(set)) => {
                        connection_tx.send_replace(ConnectionState::Connected);
                        bundles_tx.send_if_modified(|current| {
                            let changed = **current != set;
                            if changed {
                                *current = Arc::new(set);
                            }
                            changed
                        });
                    }
                    Ok(WatchEvent::Disconnected { error, .. }) | Err(error) => {
                        connection_tx.send_replace(ConnectionState::Disconnected {
                            last_error: error.to_string(),
                        });
                    }
                    Ok(WatchEvent::Invalid(_)) => {}
                }
            }
        });
        Ok(JwtSource {
            inner: Arc::new(Inner {
                client,
                hint: self.hint,
                backoff: self.backoff,
                bundles,
                connection,
                shutdown,
                bundle_task: Mutex::new(Some(task)),
                svids: tokio::sync::Mutex::new(HashMap::new()),
            }),
        })
    }
}

impl JwtSource {
    /// A builder: endpoint from `SPIFFE_ENDPOINT_SOCKET`, no hint, default backoff,
    /// [`DEFAULT_STARTUP_TIMEOUT`].
    pub fn builder() -> JwtSourceBuilder {
        JwtSourceBuilder {
            client: None,
            endpoint: None,
            hint: None,
            backoff: Backoff::default(),
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            wait_for_bundles: true,
        }
    }

    /// The current JWT bundles.
    #[must_use]
    pub fn bundle_set(&self) -> Arc<JwtBundleSet> {
        self.inner.bundles.borrow().clone()
    }

    /// A receiver notified when the JWT bundles change (identical re-sends do not count).
    #[must_use]
    pub fn updates(&self) -> watch::Receiver<Arc<JwtBundleSet>> {
        self.inner.bundles.clone()
    }

    /// A receiver for the state of the bundle watch's connection.
    #[must_use]
    pub fn connection(&self) -> watch::Receiver<ConnectionState> {
        self.inner.connection.clone()
    }

    /// A JWT-SVID for `audiences`, picked by the source's hint: the cached one while it is
    /// valid, otherwise fetched once (and refreshed in the background from then on).
    ///
    /// # Errors
    /// The fetch's error; [`Error::NoSuitableSvid`] when no JWT-SVID carries the hint;
    /// [`Error::Closed`] after shutdown.
    pub async fn jwt_svid(&self, audiences: &[impl AsRef<str>]) -> Result<JwtSvid, Error> {
        let hint = self.inner.hint.clone();
        self.jwt_svid_with_hint(audiences, hint.as_deref()).await
    }

    /// [`Self::jwt_svid`] with an explicit hint (`None`: the first JWT-SVID).
    ///
    /// # Errors
    /// As [`Self::jwt_svid`].
    pub async fn jwt_svid_with_hint(
        &self,
        audiences: &[impl AsRef<str>],
        hint: Option<&str>,
    ) -> Result<JwtSvid, Error> {
        let svid = self
            .watch_for(audiences, Pick::Hint(hint.map(str::to_owned)))
            .await?;
        let current = svid.borrow().clone();
        Ok((*current).clone())
    }

    /// A JWT-SVID for `audiences` whose SPIFFE ID is `subject`, for a workload entitled to
    /// several identities (go-spiffe's `jwtsvid.Params.Subject`): the agent is asked for that ID
    /// alone, and an answer for another ID is refused. Cached and refreshed like
    /// [`Self::jwt_svid`].
    ///
    /// # Errors
    /// As [`Self::jwt_svid`]; [`Error::NoSuitableSvid`] when the agent has none for `subject`.
    pub async fn jwt_svid_for_subject(
        &self,
        audiences: &[impl AsRef<str>],
        subject: &SpiffeId,
    ) -> Result<JwtSvid, Error> {
        let svid = self
            .watch_for(audiences, Pick::Subject(subject.clone()))
            .await?;
        let current = svid.borrow().clone();
        Ok((*current).clone())
    }

    /// [`Self::watch_jwt_svid`] for the JWT-SVID of `subject`.
    ///
    /// # Errors
    /// As [`Self::jwt_svid_for_subject`].
    pub async fn watch_jwt_svid_for_subject(
        &self,
        audiences: &[impl AsRef<str>],
        subject: &SpiffeId,
    ) -> Result<watch::Receiver<Arc<JwtSvid>>, Error> {
        self.watch_for(audiences, Pick::Subject(subject.clone()))
            .await
    }

    /// A receiver holding the JWT-SVID for `audiences` and `hint`, notified on each new token
    /// the background refresh obtains. While a receiver is held the token keeps being
    /// refreshed; an audience set nobody asks for or watches over [`IDLE_REFRESHES`] refresh
    /// periods stops being refreshed (and is fetched again when asked for).
    ///
    /// # Errors
    /// As [`Self::jwt_svid`].
    pub async fn watch_jwt_svid(
        &self,
        audiences: &[impl AsRef<str>],
        hint: Option<&str>,
    ) -> Result<watch::Receiver<Arc<JwtSvid>>, Error> {
        self.watch_for(audiences, Pick::Hint(hint.map(str::to_owned)))
            .await
    }

    /// How many audience sets have a running refresher (tests and metrics).
    pub async fn refreshing(&self) -> usize {
        self.inner
            .svids
            .lock()
            .await
            .values()
            .filter(|c| !c.task.is_finished())
            .count()
    }

    async fn watch_for(
        &self,
        audiences: &[impl AsRef<str>],
        pick: Pick,
    ) -> Result<watch::Receiver<Arc<JwtSvid>>, Error> {
        if self.inner.shutdown.is_cancelled() {
            return Err(Error::Closed);
        }
        let key = SvidKey {
            audiences: audiences
                .iter()
                .map(|a| a.as_ref().to_owned())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            pick,
        };
        {
            let mut svids = self.inner.svids.lock().await;
            // Entries whose refresher stopped (idle, or shut down) hold nothing worth keeping.
            svids.retain(|_, cached| !cached.task.is_finished());
            if let Some(cached) = svids.get(&key)
                && cached.is_fresh()
            {
                cached.used.fetch_add(1, Ordering::Relaxed);
                return Ok(cached.svid.clone());
            }
        }
        // Fetch without holding the map: a slow agent must not block callers of other
        // audience sets. Two first callers of one set may both fetch; the first insert wins.
        let svid = fetch(&self.inner.client, &key).await?;
        let mut svids = self.inner.svids.lock().await;
        if let Some(cached) = svids.get(&key)
            && cached.is_fresh()
        {
            return Ok(cached.svid.clone());
        }
        let (tx, rx) = watch::channel(Arc::new(svid));
        let stop = self.inner.shutdown.child_token();
        let used = Arc::new(AtomicU64::new(1));
        let task = tokio::spawn(refresh(
            self.inner.client.clone(),
            key.clone(),
            Refresh {
                tx,
                used: used.clone(),
            },
            self.inner.backoff.clone(),
            stop.clone(),
        ));
        let cached = Cached {
            svid: rx.clone(),
            used,
            stop,
            task,
        };
        if let Some(old) = svids.insert(key, cached) {
            old.stop.cancel();
        }
        Ok(rx)
    }

    /// Validates `token` for `audience` offline against the current bundles (feature
    /// `jwt-validation`, on by default).
    ///
    /// # Errors
    /// As [`JwtValidator::validate`].
    #[cfg(feature = "jwt-validation")]
    pub fn validate(&self, token: &str, audience: &str) -> Result<ValidatedJwtSvid, JwtSvidError> {
        let bundles = self.bundle_set();
        JwtValidator::default().validate(token, &*bundles, audience)
    }

    /// The JWT bundle of `trust_domain`.
    #[must_use]
    pub fn bundle_for(&self, trust_domain: &TrustDomain) -> Option<Arc<JwtBundle>> {
        BundleSource::bundle_for(self, trust_domain)
    }

    /// Whether the bundle watch still runs (not shut down, not stopped by a non-retryable
    /// error).
    #[must_use]
    pub fn is_healthy(&self) -> bool {
        !self.inner.shutdown.is_cancelled()
            && self
                .inner
                .bundle_task
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .is_some_and(|task| !task.is_finished())
    }

    /// Stops the bundle watch and every refresh (for all clones) and waits for them.
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        let task = self
            .inner
            .bundle_task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
        let refreshers: Vec<_> = self.inner.svids.lock().await.drain().collect();
        for (_, cached) in refreshers {
            let _ = cached.task.await;
        }
    }
}

impl BundleSource for JwtSource {
    type Bundle = JwtBundle;

    fn bundle_for(&self, trust_domain: &TrustDomain) -> Option<Arc<JwtBundle>> {
        self.inner.bundles.borrow().bundle_for(trust_domain)
    }
}

type BundleEvents = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<WatchEvent<JwtBundleSet>, Error>> + Send>,
>;

/// The first JWT bundle set of the watch, retrying until `timeout`.
async fn first_bundles(
    events: &mut BundleEvents,
    timeout: Duration,
) -> Result<JwtBundleSet, Error> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_error = None;
    loop {
        match tokio::time::timeout_at(deadline, events.next()).await {
            Ok(Some(Ok(WatchEvent::Update(set)))) => return Ok(set),
            Ok(Some(Ok(WatchEvent::Disconnected { error, .. } | WatchEvent::Invalid(error)))) => {
                last_error = Some(error);
            }
            Ok(Some(Err(error))) => return Err(error),
            Ok(None) => return Err(Error::Closed),
            Err(_) => {
                return Err(Error::Timeout {
                    after: timeout,
                    last_error: last_error.map(Box::new),
                });
            }
        }
    }
}

async fn fetch(client: &WorkloadApiClient, key: &SvidKey) -> Result<JwtSvid, Error> {
    let subject = match &key.pick {
        Pick::Subject(id) => Some(id),
        Pick::Hint(_) => None,
    };
    let svids = client.fetch_jwt_svids(&key.audiences, subject).await?;
    let chosen = match &key.pick {
        Pick::Hint(None) => svids.into_iter().next(),
        Pick::Hint(Some(hint)) => svids.into_iter().find(|s| s.hint() == hint),
        // The agent was asked for this ID; an answer for another is not taken.
        Pick::Subject(id) => svids.into_iter().find(|s| s.spiffe_id() == id),
    };
    chosen.ok_or_else(|| Error::NoSuitableSvid {
        kind: "JWT-SVID",
        hint: match &key.pick {
            Pick::Hint(hint) => hint.clone(),
            Pick::Subject(id) => Some(format!("(SPIFFE ID {id})")),
        },
    })
}

/// What a refresher publishes to, and how it learns it is still wanted.
struct Refresh {
    tx: watch::Sender<Arc<JwtSvid>>,
    used: Arc<AtomicU64>,
}

impl Refresh {
    /// Whether anyone wants the token: a receiver besides the cache's own, or a request since
    /// `seen` uses ago.
    fn wanted(&self, seen: &mut u64) -> bool {
        let now = self.used.load(Ordering::Relaxed);
        let asked = now != *seen;
        *seen = now;
        asked || self.tx.receiver_count() > 1
    }
}

/// Half the time left before `expiry`, at least [`MIN_REFRESH`].
fn refresh_delay(expiry: SystemTime) -> Duration {
    let left = expiry.duration_since(SystemTime::now()).unwrap_or_default();
    (left / 2).max(MIN_REFRESH)
}

async fn refresh(
    client: WorkloadApiClient,
    key: SvidKey,
    refresh: Refresh,
    mut backoff: Backoff,
    stop: CancellationToken,
) {
    let tx = &refresh.tx;
    let mut seen = refresh.used.load(Ordering::Relaxed);
    let mut idle = 0;
    loop {
        let wait = refresh_delay(tx.borrow().expiry());
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        if refresh.wanted(&mut seen) {
            idle = 0;
        } else {
            idle += 1;
            if idle >= IDLE_REFRESHES {
                tracing::debug!(audience = ?key.audiences, "nobody asked for this JWT-SVID for {IDLE_REFRESHES} refresh periods; no longer refreshed");
                return;
            }
        }
        loop {
            let fetched = tokio::select! {
                () = stop.cancelled() => return,
                fetched = fetch(&client, &key) => fetched,
            };
            match fetched {
                Ok(svid) => {
                    backoff.reset();
                    let changed = tx.send_if_modified(|current| {
                        let changed = current.token() != svid.token();
                        if changed {
                            *current = Arc::new(svid);
                        }
                        changed
                    });
                    if changed {
                        tracing::debug!(audience = ?key.audiences, "JWT-SVID refreshed");
                    }
                    break;
                }
                Err(error) => {
                    let failed_with = client.agent_socket();
                    let retry_in = backoff.next_delay();
                    tracing::warn!(error = %error.report(), audience = ?key.audiences, retry_in_ms = retry_in.as_millis(), "refreshing JWT-SVID failed");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        new_agent = client.wait_to_retry(retry_in, failed_with) => {
                            if new_agent {
                                backoff.reset();
                            }
                        }
                    }
                }
            }
        }
    }
}
