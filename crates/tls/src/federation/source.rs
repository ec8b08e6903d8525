//! The federated bundle watcher: refreshes a foreign trust domain's bundle from its bundle
//! endpoint as `spiffe_refresh_hint` asks (SPIFFE Trust Domain and Bundle §4.1.2), backs off on
//! failure, keeps the last good bundle, and hands out its X.509 part to the TLS verifiers.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use spiffe_workload_client::{
    Backoff, BundleSource, CancellationToken, SpiffeBundle, TrustDomain, X509Bundle,
};
use tokio::sync::watch;

use super::{BundleEndpointClient, FederationError};

/// The refresh period when the bundle carries no `spiffe_refresh_hint` (SPIRE's default hint).
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);
/// The shortest refresh period a hint can ask for.
pub const DEFAULT_MIN_REFRESH: Duration = Duration::from_secs(10);
/// The longest refresh period a hint can ask for.
pub const DEFAULT_MAX_REFRESH: Duration = Duration::from_secs(3600);

/// What the watcher holds and how its last attempts went.
#[derive(Clone, Default)]
pub struct FederationStatus {
    bundle: Option<Arc<SpiffeBundle>>,
    x509: Option<Arc<X509Bundle>>,
    last_error: Option<String>,
    consecutive_failures: u32,
    updates: u64,
}

impl fmt::Debug for FederationStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bundle = self.bundle.as_ref();
        f.debug_struct("FederationStatus")
            .field("trust_domain", &bundle.map(|b| b.trust_domain().name()))
            .field(
                "x509_authorities",
                &bundle.map(|b| b.x509_authorities().len()),
            )
            .field(
                "jwt_authorities",
                &bundle.map(|b| b.jwt_authorities().len()),
            )
            .field("sequence", &bundle.and_then(|b| b.sequence_number()))
            .field("refresh_hint", &bundle.and_then(|b| b.refresh_hint()))
            .field("last_error", &self.last_error)
            .field("consecutive_failures", &self.consecutive_failures)
            .field("updates", &self.updates)
            .finish_non_exhaustive()
    }
}

impl FederationStatus {
    /// The last good bundle (the initial one until a fetch succeeds).
    #[must_use]
    pub fn bundle(&self) -> Option<&Arc<SpiffeBundle>> {
        self.bundle.as_ref()
    }

    /// Why the last fetch failed, while the failures last.
    #[must_use]
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Fetches that failed in a row since the last success.
    #[must_use]
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// How many times the held bundle changed (a fetch of an identical bundle does not count).
    #[must_use]
    pub fn updates(&self) -> u64 {
        self.updates
    }
}

/// Options for [`FederatedBundleSource`]; from [`FederatedBundleSource::builder`].
#[derive(Debug)]
pub struct FederatedBundleSourceBuilder {
    client: BundleEndpointClient,
    initial: Option<SpiffeBundle>,
    default_refresh: Duration,
    min_refresh: Duration,
    max_refresh: Duration,
    backoff: Backoff,
}

impl FederatedBundleSourceBuilder {
    /// A bundle to trust before the first fetch succeeds (for example one configured out of
    /// band, as SPIRE's `spire-server bundle set`). It must be of the client's trust domain.
    #[must_use]
    pub fn initial_bundle(mut self, bundle: SpiffeBundle) -> Self {
        self.initial = Some(bundle);
        self
    }

    /// The refresh period when the bundle has no `spiffe_refresh_hint` (default
    /// [`DEFAULT_REFRESH`]).
    #[must_use]
    pub fn default_refresh(mut self, period: Duration) -> Self {
        self.default_refresh = period;
        self
    }

    /// The floor and ceiling a refresh hint is clamped to (default [`DEFAULT_MIN_REFRESH`] and
    /// [`DEFAULT_MAX_REFRESH`]).
    #[must_use]
    pub fn refresh_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.min_refresh = min;
        self.max_refresh = max.max(min);
        self
    }

    /// The retry schedule after a failed fetch (default: 1 s doubling to 60 s, jittered); a
    /// retry never waits longer than the refresh period.
    #[must_use]
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Starts the watcher on the current tokio runtime: the first fetch runs at once. The task
    /// stops when the last clone of the source is dropped or [`FederatedBundleSource::shutdown`]
    /// is called.
    ///
    /// # Panics
    /// When called outside a tokio runtime.
    #[must_use]
    pub fn start(self) -> FederatedBundleSource {
        let trust_domain = self.client.trust_domain().clone();
        let initial = self
            .initial
            .filter(|b| b.trust_domain() == &trust_domain)
            .map(Arc::new);
        let status = FederationStatus {
            x509: initial.as_ref().map(|b| Arc::new(b.x509_bundle())),
            bundle: initial,
            ..FederationStatus::default()
        };
        let (tx, rx) = watch::channel(status);
        let cancel = CancellationToken::new();
        let watcher = Watcher {
            client: self.client,
            default_refresh: self.default_refresh,
            min_refresh: self.min_refresh,
            max_refresh: self.max_refresh,
            backoff: self.backoff,
            tx,
        };
        tokio::spawn(watcher.run(cancel.clone()));
        FederatedBundleSource {
            inner: Arc::new(Inner {
                trust_domain,
                rx,
                cancel,
            }),
        }
    }
}

struct Inner {
    trust_domain: TrustDomain,
    rx: watch::Receiver<FederationStatus>,
    cancel: CancellationToken,
}

impl Drop for Inner {
    /// The last handle is gone: stop the task.
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A foreign trust domain's bundle kept fresh from its bundle endpoint: a cheap `Clone` handle
/// and a [`BundleSource`] of its X.509 part for the TLS verifiers (join it with an SVID source
/// through [`WithFederatedBundles`](super::WithFederatedBundles)).
///
/// - Refresh: after a good fetch, the next one comes after the bundle's `spiffe_refresh_hint`
///   (or the default period), clamped to the bounds.
/// - Failure: retried with backoff, never later than the refresh period; the last good bundle
///   stays in use.
/// - `spiffe_sequence`: a fetched bundle with a lower sequence number than the held one is
///   refused ([`FederationError::SequenceWentBack`]) and counted as a failure, so a stale
///   replica behind the endpoint cannot roll the bundle back. A bundle without a sequence
///   number is compared by content only.
#[derive(Clone)]
pub struct FederatedBundleSource {
    inner: Arc<Inner>,
}

impl fmt::Debug for FederatedBundleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.inner.rx.borrow();
        f.debug_struct("FederatedBundleSource")
            .field("trust_domain", &self.inner.trust_domain.name())
            .field("has_bundle", &status.bundle.is_some())
            .field("consecutive_failures", &status.consecutive_failures)
            .finish()
    }
}

impl FederatedBundleSource {
    /// A watcher of `client`'s bundle with the default refresh bounds and backoff.
    #[must_use]
    pub fn builder(client: BundleEndpointClient) -> FederatedBundleSourceBuilder {
        FederatedBundleSourceBuilder {
            client,
            initial: None,
            default_refresh: DEFAULT_REFRESH,
            min_refresh: DEFAULT_MIN_REFRESH,
            max_refresh: DEFAULT_MAX_REFRESH,
            backoff: Backoff::new(Duration::from_secs(1), Duration::from_secs(60)),
        }
    }

    /// The foreign trust domain.
    #[must_use]
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.inner.trust_domain
    }

    /// The last good bundle, if any.
    #[must_use]
    pub fn bundle(&self) -> Option<Arc<SpiffeBundle>> {
        self.inner.rx.borrow().bundle.clone()
    }

    /// The current status.
    #[must_use]
    pub fn status(&self) -> FederationStatus {
        self.inner.rx.borrow().clone()
    }

    /// A receiver that sees every change of the status (bundle updates and failures).
    #[must_use]
    pub fn subscribe(&self) -> watch::Receiver<FederationStatus> {
        self.inner.rx.clone()
    }

    /// Waits until a bundle is held (the initial one counts), at most `timeout`.
    ///
    /// # Errors
    /// [`FederationError::NotReady`] after `timeout`; the last fetch error is in
    /// [`status`](Self::status).
    pub async fn wait_for_bundle(
        &self,
        timeout: Duration,
    ) -> Result<Arc<SpiffeBundle>, FederationError> {
        let mut rx = self.inner.rx.clone();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|s| s.bundle.is_some())).await;
        match waited {
            Ok(Ok(status)) => status
                .bundle
                .clone()
                .ok_or_else(|| FederationError::NotReady(self.inner.trust_domain.clone())),
            _ => Err(FederationError::NotReady(self.inner.trust_domain.clone())),
        }
    }

    /// Stops refreshing; the last good bundle stays readable.
    pub fn shutdown(&self) {
        self.inner.cancel.cancel();
    }
}

impl BundleSource for FederatedBundleSource {
    type Bundle = X509Bundle;

    fn bundle_for(&self, trust_domain: &TrustDomain) -> Option<Arc<X509Bundle>> {
        if trust_domain != &self.inner.trust_domain {
            return None;
        }
        self.inner.rx.borrow().x509.clone()
    }
}

struct Watcher {
    client: BundleEndpointClient,
    default_refresh: Duration,
    min_refresh: Duration,
    max_refresh: Duration,
    backoff: Backoff,
    tx: watch::Sender<FederationStatus>,
}

impl Watcher {
    async fn run(mut self, cancel: CancellationToken) {
        loop {
            let fetched = tokio::select! {
                () = cancel.cancelled() => return,
                fetched = self.client.fetch() => fetched,
            };
            let delay = match fetched.and_then(|bundle| self.accept(bundle)) {
                Ok(()) => {
                    self.backoff.reset();
                    self.refresh_period()
                }
                Err(error) => {
                    let reason = error.to_string();
                    tracing::warn!(trust_domain = %self.client.trust_domain(), url = self.client.url(),
                        error = %reason, "federated bundle refresh failed; keeping the last good bundle");
                    self.tx.send_modify(|s| {
                        s.consecutive_failures = s.consecutive_failures.saturating_add(1);
                        s.last_error = Some(reason);
                    });
                    self.backoff.next_delay().min(self.refresh_period())
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    }

    /// The next refresh after a good fetch: the held bundle's hint, clamped.
    fn refresh_period(&self) -> Duration {
        let hint = self
            .tx
            .borrow()
            .bundle
            .as_ref()
            .and_then(|b| b.refresh_hint())
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.default_refresh, Duration::from_secs);
        hint.clamp(self.min_refresh, self.max_refresh)
    }

    /// Takes `bundle` unless its sequence number goes back; publishes it only when it differs.
    fn accept(&mut self, bundle: SpiffeBundle) -> Result<(), FederationError> {
        let held = self.tx.borrow().bundle.clone();
        if let Some(held) = &held {
            if let (Some(h), Some(f)) = (held.sequence_number(), bundle.sequence_number())
                && f < h
            {
                return Err(FederationError::SequenceWentBack {
                    trust_domain: bundle.trust_domain().clone(),
                    held: h,
                    fetched: f,
                });
            }
            if **held == bundle {
                self.tx.send_if_modified(|s| {
                    let changed = s.consecutive_failures != 0 || s.last_error.is_some();
                    s.consecutive_failures = 0;
                    s.last_error = None;
                    changed
                });
                return Ok(());
            }
        }
        tracing::info!(trust_domain = %bundle.trust_domain(), x509_authorities = bundle.x509_authorities().len(),
            jwt_keys = bundle.jwt_authorities().len(), sequence = ?bundle.sequence_number(), "federated bundle updated");
        let x509 = Arc::new(bundle.x509_bundle());
        self.tx.send_modify(|s| {
            s.bundle = Some(Arc::new(bundle));
            s.x509 = Some(x509);
            s.consecutive_failures = 0;
            s.last_error = None;
            s.updates += 1;
        });
        Ok(())
    }
}
