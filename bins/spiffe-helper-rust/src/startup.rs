//! The start-up fetch shared by both modes (docs/behaviour.md, "Start-up"): everything the
//! config asks for, fetched before any file is written, retrying transient errors until one
//! deadline, then written in one go.

use std::future::Future;
use std::sync::Arc;

use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use spiffe_helper_config::JwtSvidOutput;
use spiffe_workload_client::{
    Backoff, Error as ApiError, JwtBundleSet, JwtSvid, WorkloadApiClient, X509Context, X509Source,
};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::outputs::Outputs;
use crate::writer::Writer;

/// What the first fetch brought back.
pub struct Initial {
    /// The running X.509 source (None for a JWT-only config).
    pub x509: Option<X509Source>,
    /// The first X.509 context whose SVID matches the hint.
    pub x509_context: Option<Arc<X509Context>>,
    /// The JWT bundles, when a JWT bundle file is configured.
    pub jwt_bundles: Option<JwtBundleSet>,
    /// One JWT-SVID per `jwt_svids` entry, in config order.
    pub jwt_svids: Vec<JwtSvid>,
}

impl Initial {
    /// Writes everything fetched. The X.509 set, the JWT bundle and each JWT-SVID are
    /// independent files, so their writes (and fsyncs) overlap; the first failure is returned.
    ///
    /// # Errors
    /// The first failed write, naming what was being written.
    pub async fn write(&self, writer: &Writer) -> anyhow::Result<()> {
        let mut pending = JoinSet::new();
        if let Some(context) = self.x509_context.clone() {
            let writer = writer.clone();
            pending.spawn(async move { writer.x509(context).await.map(drop) });
        }
        if let Some(bundles) = self.jwt_bundles.clone() {
            let writer = writer.clone();
            pending.spawn(async move { writer.jwt_bundle(bundles).await });
        }
        for (index, svid) in self.jwt_svids.iter().cloned().enumerate() {
            let writer = writer.clone();
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

/// The three kinds of output are fetched concurrently (each JWT-SVID too): start-up takes as
/// long as the slowest fetch, not the sum. The first failure cancels the rest.
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
    let jwt_bundles = async {
        if outputs.jwt_bundle.is_some() {
            retry_until(deadline, "fetching JWT bundles", || {
                client.fetch_jwt_bundles()
            })
            .await
            .map(Some)
        } else {
            Ok(None)
        }
    };
    let (x509, jwt_bundles, jwt_svids) =
        tokio::try_join!(x509, jwt_bundles, fetch_jwts(client, outputs, deadline))?;
    let (x509, x509_context) = x509.unzip();
    Ok(Initial {
        x509,
        x509_context,
        jwt_bundles,
        jwt_svids,
    })
}

/// One JWT-SVID per `jwt_svids` entry, fetched concurrently, returned in config order.
async fn fetch_jwts(
    client: &WorkloadApiClient,
    outputs: &Outputs,
    deadline: Instant,
) -> anyhow::Result<Vec<JwtSvid>> {
    let mut pending = JoinSet::new();
    for (index, entry) in outputs.jwt_svids.iter().cloned().enumerate() {
        let (client, hint) = (client.clone(), outputs.hint.clone());
        pending.spawn(async move {
            let svid = fetch_jwt_until(&client, &entry, hint.as_deref(), deadline).await;
            (index, svid)
        });
    }
    let mut svids: Vec<Option<JwtSvid>> = std::iter::repeat_with(|| None)
        .take(outputs.jwt_svids.len())
        .collect();
    while let Some(joined) = pending.join_next().await {
        let (index, svid) = joined?;
        svids[index] = Some(svid?);
    }
    Ok(svids.into_iter().flatten().collect())
}

async fn start_x509(
    client: &WorkloadApiClient,
    hint: Option<&str>,
    deadline: Instant,
) -> anyhow::Result<(X509Source, Arc<X509Context>)> {
    let budget = deadline.saturating_duration_since(Instant::now());
    let source = X509Source::start(client.clone(), budget)
        .await
        .map_err(|err| describe(&err, client))?;
    let Some(hint) = hint else {
        let context = source.current();
        return Ok((source, context));
    };
    // Entries propagate with delay: wait (until the deadline) for one carrying the hint.
    let mut updates = source.subscribe();
    loop {
        let context = updates.borrow_and_update().clone();
        if context.svid_with_hint(hint).is_some() {
            return Ok((source, context));
        }
        let wait = tokio::time::timeout_at(deadline, updates.changed()).await;
        if !matches!(wait, Ok(Ok(()))) {
            source.shutdown().await;
            bail!(
                "no X.509-SVID with hint {hint:?} within {budget:?} (the agent offers hints: {})",
                hints(&context)
            );
        }
    }
}

fn hints(context: &X509Context) -> String {
    let all: Vec<String> = context
        .svids()
        .iter()
        .map(|svid| format!("{:?}", svid.hint()))
        .collect();
    all.join(", ")
}

async fn fetch_jwt_until(
    client: &WorkloadApiClient,
    entry: &JwtSvidOutput,
    hint: Option<&str>,
    deadline: Instant,
) -> anyhow::Result<JwtSvid> {
    let what = format!("fetching JWT-SVID for audience {:?}", entry.audience);
    retry_until(deadline, &what, || fetch_jwt(client, entry, hint)).await
}

/// One `FetchJWTSVID` call for a `jwt_svids` entry, with the hint rule of
/// docs/behaviour.md, "Which SVID".
pub async fn fetch_jwt(
    client: &WorkloadApiClient,
    entry: &JwtSvidOutput,
    hint: Option<&str>,
) -> Result<JwtSvid, ApiError> {
    let mut audiences = Vec::with_capacity(1 + entry.extra_audiences.len());
    audiences.push(entry.audience.clone());
    audiences.extend(entry.extra_audiences.iter().cloned());
    let svids = client.fetch_jwt_svids(&audiences, None).await?;
    select_jwt(svids, hint)
}

/// The JWT-SVID the hint rule picks: the first, or the one whose hint matches exactly.
fn select_jwt(svids: Vec<JwtSvid>, hint: Option<&str>) -> Result<JwtSvid, ApiError> {
    let mut svids = svids.into_iter();
    let chosen = match hint {
        None => svids.next(),
        Some(hint) => svids.find(|svid| svid.hint() == hint),
    };
    chosen.ok_or_else(|| ApiError::InvalidResponse {
        reason: match hint {
            None => "the agent returned no JWT-SVID".to_owned(),
            Some(hint) => format!("no JWT-SVID with hint {hint:?}"),
        },
    })
}

/// Retries `call` with backoff on retryable errors until `deadline`; fails at once otherwise.
async fn retry_until<T, F, Fut>(deadline: Instant, what: &str, mut call: F) -> anyhow::Result<T>
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
        let delay = backoff.next_delay();
        if Instant::now() + delay >= deadline {
            return Err(anyhow::Error::new(err))
                .with_context(|| format!("{what}: gave up at the start-up deadline"));
        }
        tracing::debug!(error = %err, retry_in = ?delay, "{what} failed; retrying");
        tokio::time::sleep(delay).await;
    }
}

/// Turns the start-up error into one line that says what to check.
fn describe(err: &ApiError, client: &WorkloadApiClient) -> anyhow::Error {
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
    } else {
        ""
    };
    anyhow!(
        "fetching the X.509-SVID from {}: {err}{advice}",
        client.endpoint()
    )
}
