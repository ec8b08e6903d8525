//! The start-up fetch shared by both modes (docs/behaviour.md#start-up): everything the config
//! asks for, fetched before any file is written, retrying transient errors until one deadline,
//! then written in one go. The fetching is done by the client crate's sources, which keep
//! the identity fresh from then on: [`X509Source`] (waits for an SVID with the hint) and
//! [`JwtSource`] (the JWT bundles, and one self-refreshing JWT-SVID per audience set).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use spiffe_helper_config::JwtSvidOutput;
use spiffe_workload_client::{
    Backoff, Error as ApiError, JwtBundleSet, JwtSource, JwtSvid, WorkloadApiClient, X509Snapshot,
    X509Source,
};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::outputs::Outputs;
use crate::writer::Writer;

/// Retry schedule of a failed JWT-SVID refresh (docs/behaviour.md#jwt-svid-refresh).
const JWT_RETRY_FIRST: Duration = Duration::from_secs(1);
const JWT_RETRY_MAX: Duration = Duration::from_secs(60);

/// What the first fetch brought back.
pub struct Initial {
    /// The running X.509 source (None for a JWT-only config).
    pub x509: Option<X509Source>,
    /// The first X.509 snapshot: the context and the SVID the hint picked.
    pub x509_snapshot: Option<Arc<X509Snapshot>>,
    /// The running JWT source, when any JWT output is configured.
    pub jwt: Option<JwtSource>,
    /// The JWT bundles, when a JWT bundle file is configured.
    pub jwt_bundles: Option<JwtBundleSet>,
    /// One JWT-SVID receiver per `jwt_svids` entry, in config order; the source refreshes
    /// each token and the receiver sees every new one.
    pub jwt_svids: Vec<watch::Receiver<Arc<JwtSvid>>>,
}

impl Initial {
    /// Writes everything fetched. The X.509 set, the JWT bundle and each JWT-SVID are
    /// independent files, so their writes (and fsyncs) overlap; the first failure is returned.
    ///
    /// # Errors
    /// The first failed write, naming what was being written.
    pub async fn write(&self, writer: &Writer) -> anyhow::Result<()> {
        let mut pending = JoinSet::new();
        if let Some(snapshot) = self.x509_snapshot.clone() {
            let writer = writer.clone();
            pending.spawn(async move { writer.x509(snapshot).await.map(drop) });
        }
        if let Some(bundles) = self.jwt_bundles.clone() {
            let writer = writer.clone();
            pending.spawn(async move { writer.jwt_bundle(bundles).await });
        }
        for (index, svid) in self.jwt_svids.iter().enumerate() {
            let (writer, svid) = (writer.clone(), JwtSvid::clone(&svid.borrow()));
            pending.spawn(async move { writer.jwt_svid(index, svid).await });
        }
        let mut result = Ok(());
        while let Some(joined) = pending.join_next().await {
            let outcome = joined
                .context("a write task failed")
                .and_then(|written| written);
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }

    /// Stops both sources (their watches and refresh tasks).
    pub async fn shutdown(self) {
        if let Some(source) = self.x509 {
            source.shutdown().await;
        }
        if let Some(source) = self.jwt {
            source.shutdown().await;
        }
    }
}

/// Fetches everything, or fails with the last error once `timeout` has passed.
///
/// Returns `Ok(None)` when `shutdown` fires first.
pub async fn fetch_initial(
    client: &WorkloadApiClient,
    outputs: &Outputs,
    timeout: Duration,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Initial>> {
    let deadline = Instant::now() + timeout;
    tokio::select! {
        () = shutdown.cancelled() => Ok(None),
        initial = fetch_all(client, outputs, deadline) => initial.map(Some),
    }
}

/// X.509 and JWT are fetched concurrently: start-up takes as long as the slower, not the sum.
/// The first failure cancels the other.
async fn fetch_all(
    client: &WorkloadApiClient,
    outputs: &Outputs,
    deadline: Instant,
) -> anyhow::Result<Initial> {
    let x509 = async {
        if outputs.x509.is_some() {
            start_x509(client, outputs.hint.as_deref(), deadline)
                .await
                .map(Some)
        } else {
            Ok(None)
        }
    };
    let ((x509, x509_snapshot), jwt) = tokio::try_join!(
        async { x509.await.map(Option::unzip) },
        start_jwt(client, outputs, deadline)
    )?;
    let (jwt, jwt_bundles, jwt_svids) = match jwt {
        Some((source, svids)) => {
            let bundles = outputs
                .jwt_bundle
                .is_some()
                .then(|| JwtBundleSet::clone(&source.bundle_set()));
            (Some(source), bundles, svids)
        }
        None => (None, None, Vec::new()),
    };
    Ok(Initial {
        x509,
        x509_snapshot,
        jwt,
        jwt_bundles,
        jwt_svids,
    })
}

async fn start_x509(
    client: &WorkloadApiClient,
    hint: Option<&str>,
    deadline: Instant,
) -> anyhow::Result<(X509Source, Arc<X509Snapshot>)> {
    // Entries propagate with delay: the source waits (until the deadline) for an SVID that
    // carries the hint.
    let source = X509Source::builder()
        .client(client.clone())
        .hint(hint)
        .startup_timeout(deadline.saturating_duration_since(Instant::now()))
        .build()
        .await
        .map_err(|err| describe(&err, client, hint))?;
    let snapshot = source.snapshot();
    Ok((source, snapshot))
}

/// The JWT source and one JWT-SVID per `jwt_svids` entry (fetched concurrently, returned in
/// config order), when any JWT output is configured.
async fn start_jwt(
    client: &WorkloadApiClient,
    outputs: &Outputs,
    deadline: Instant,
) -> anyhow::Result<Option<(JwtSource, Vec<watch::Receiver<Arc<JwtSvid>>>)>> {
    if outputs.jwt_bundle.is_none() && outputs.jwt_svids.is_empty() {
        return Ok(None);
    }
    let source = JwtSource::builder()
        .client(client.clone())
        .hint(outputs.hint.as_deref())
        .backoff(Backoff::exact(JWT_RETRY_FIRST, JWT_RETRY_MAX))
        // Without a bundle file the bundles are not an output: start-up does not wait for them.
        .wait_for_bundles(outputs.jwt_bundle.is_some())
        .startup_timeout(deadline.saturating_duration_since(Instant::now()))
        .build()
        .await
        .map_err(anyhow::Error::new)
        .context("fetching JWT bundles")?;
    match watch_jwt_svids(&source, client, outputs, deadline).await {
        Ok(svids) => Ok(Some((source, svids))),
        Err(err) => {
            source.shutdown().await;
            Err(err)
        }
    }
}

/// One receiver per `jwt_svids` entry, its first token fetched (retrying until `deadline`);
/// the entries concurrently, returned in config order.
async fn watch_jwt_svids(
    source: &JwtSource,
    client: &WorkloadApiClient,
    outputs: &Outputs,
    deadline: Instant,
) -> anyhow::Result<Vec<watch::Receiver<Arc<JwtSvid>>>> {
    let mut pending = JoinSet::new();
    for (index, entry) in outputs.jwt_svids.iter().cloned().enumerate() {
        let (source, client, hint) = (source.clone(), client.clone(), outputs.hint.clone());
        pending.spawn(async move {
            let what = format!("fetching JWT-SVID for audience {:?}", entry.audience);
            let audiences = audiences(&entry);
            let svid = retry_until(&client, deadline, &what, || {
                source.watch_jwt_svid(&audiences, hint.as_deref())
            })
            .await;
            (index, svid)
        });
    }
    let mut svids: Vec<Option<watch::Receiver<Arc<JwtSvid>>>> = std::iter::repeat_with(|| None)
        .take(outputs.jwt_svids.len())
        .collect();
    while let Some(joined) = pending.join_next().await {
        let (index, svid) = joined?;
        svids[index] = Some(svid?);
    }
    Ok(svids.into_iter().flatten().collect())
}

/// `jwt_audience` then `jwt_extra_audiences`.
fn audiences(entry: &JwtSvidOutput) -> Vec<String> {
    std::iter::once(entry.audience.clone())
        .chain(entry.extra_audiences.iter().cloned())
        .collect()
}

/// Retries `call` with backoff on retryable errors until `deadline` (sooner when the agent's
/// socket comes back); fails at once otherwise.
async fn retry_until<T, F, Fut>(
    client: &WorkloadApiClient,
    deadline: Instant,
    what: &str,
    mut call: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ApiError>>,
{
    let mut backoff = Backoff::default();
    loop {
        let attempt = tokio::time::timeout_at(deadline, call()).await;
        let err = match attempt {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => err,
            Err(_) => return Err(anyhow!("{what}: no answer before the start-up deadline")),
        };
        if !err.is_retryable() {
            return Err(anyhow::Error::new(err).context(what.to_owned()));
        }
        let failed_with = client.agent_socket();
        let delay = backoff.next_delay();
        if Instant::now() + delay >= deadline {
            return Err(anyhow::Error::new(err))
                .with_context(|| format!("{what}: gave up at the start-up deadline"));
        }
        tracing::debug!(error = %err.report(), retry_in = ?delay, "{what} failed; retrying");
        if client.wait_to_retry(delay, failed_with).await {
            backoff.reset();
        }
    }
}

/// Turns the start-up error into one line that says what to check.
fn describe(err: &ApiError, client: &WorkloadApiClient, hint: Option<&str>) -> anyhow::Error {
    // At the deadline the cause is the last error seen before it.
    let cause = match err {
        ApiError::Timeout {
            last_error: Some(last),
            ..
        } => last.as_ref(),
        other => other,
    };
    let advice = if cause.is_permission_denied() {
        "; no registration entry matches this workload (PermissionDenied): register it with the SPIRE server"
    } else if matches!(cause, ApiError::Transport { .. }) {
        "; is the SPIRE agent running and is agent_address right?"
    } else if matches!(cause, ApiError::NoSuitableSvid { .. }) && hint.is_some() {
        "; no registration entry for this workload carries that hint (spire-server entry create -hint)"
    } else {
        ""
    };
    anyhow!(
        "fetching the X.509-SVID from {}: {}{advice}",
        client.endpoint(),
        err.report()
    )
}
