//! Keeps `webhooks[*].clientConfig.caBundle` of one `MutatingWebhookConfiguration` equal to the
//! PEM of the X.509 bundle of the injector's own trust domain, as spire-controller-manager does
//! for its own webhook: at start, on every bundle change, and every [`RESYNC`] (a `kubectl
//! apply` or `helm upgrade` of the configuration writes its caBundle back to what the manifest
//! says). It patches only when a value differs, with a JSON patch that touches nothing but the
//! caBundles (each guarded by a `test` of the webhook's name, so a reordered list fails the
//! patch instead of writing the wrong entry), and retries failures with backoff.
//!
//! RBAC: `get` and `patch` on `admissionregistration.k8s.io/mutatingwebhookconfigurations`,
//! restricted by `resourceNames` to that one configuration (a `ClusterRole`: the resource is
//! cluster-scoped).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};
use spiffe_workload_client::Backoff;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::health::Readiness;

#[cfg(test)]
mod tests;

/// How often the configuration is read back even when the bundle did not change.
pub const RESYNC: Duration = Duration::from_secs(300);

/// One webhook of the configuration as far as the updater cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookCa {
    /// `webhooks[i].name`.
    pub name: String,
    /// `webhooks[i].clientConfig.caBundle`, decoded (PEM bytes); `None` when unset.
    pub ca_bundle: Option<Vec<u8>>,
}

/// A failed API call; the message carries the operation, the object and the API's answer.
#[derive(Debug, thiserror::Error)]
#[error("{operation} mutatingwebhookconfiguration {name}: {message}")]
pub struct ApiError {
    /// `get` or `patch`.
    pub operation: &'static str,
    /// The configuration's name.
    pub name: String,
    /// What the API server (or the connection) said, with a hint for 403 and 404.
    pub message: String,
}

/// The two calls the updater makes, on one named configuration (the kube client in
/// production, a fake in the tests).
pub trait WebhookApi: Send + Sync {
    /// The configuration's name, for the logs.
    fn name(&self) -> &str;
    /// Reads the webhooks' names and caBundles.
    fn webhooks(&self) -> impl Future<Output = Result<Vec<WebhookCa>, ApiError>> + Send;
    /// Applies an RFC 6902 JSON patch.
    fn patch(&self, patch: Value) -> impl Future<Output = Result<(), ApiError>> + Send;
}

/// The JSON patch that sets every caBundle that differs from `pem`; `None` when all are equal.
pub fn plan(current: &[WebhookCa], pem: &[u8]) -> Option<Value> {
    let encoded = BASE64.encode(pem);
    let ops: Vec<Value> = current
        .iter()
        .enumerate()
        .filter(|(_, webhook)| webhook.ca_bundle.as_deref() != Some(pem))
        .flat_map(|(i, webhook)| {
            [
                json!({"op": "test", "path": format!("/webhooks/{i}/name"), "value": webhook.name}),
                // `add` on an object member replaces it when present (RFC 6902 §4.1).
                json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": encoded}),
            ]
        })
        .collect();
    (!ops.is_empty()).then_some(Value::Array(ops))
}

/// What one synchronisation did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Synced {
    /// Every caBundle already equalled the bundle.
    Unchanged,
    /// This many webhooks' caBundles were written.
    Patched(usize),
}

/// Reads the configuration and patches the caBundles that differ.
///
/// # Errors
/// The failed API call.
pub async fn sync(api: &impl WebhookApi, pem: &[u8]) -> Result<Synced, ApiError> {
    let current = api.webhooks().await?;
    if current.is_empty() {
        tracing::warn!(
            configuration = api.name(),
            "the webhook configuration has no webhooks"
        );
    }
    let Some(patch) = plan(&current, pem) else {
        return Ok(Synced::Unchanged);
    };
    let count = patch.as_array().map_or(0, |ops| ops.len() / 2);
    api.patch(patch).await?;
    Ok(Synced::Patched(count))
}

/// Follows `bundle` (the PEM of the own trust domain's bundle, changed only when it changes)
/// until `shutdown`, keeping the configuration equal to it; marks `readiness` after the first
/// success.
pub async fn run(
    api: impl WebhookApi,
    mut bundle: watch::Receiver<Vec<u8>>,
    readiness: Arc<Readiness>,
    mut backoff: Backoff,
    shutdown: CancellationToken,
) {
    let configuration = api.name().to_owned();
    loop {
        let pem = bundle.borrow_and_update().clone();
        // An empty caBundle would make the API server trust the system roots instead: never
        // write one (the agent always sends the own trust domain's bundle; this is defence).
        let wait = if pem.is_empty() {
            tracing::warn!(
                configuration,
                "no X.509 bundle for the own trust domain; caBundle left as it is"
            );
            RESYNC
        } else {
            attempt(&api, &pem, &readiness, &mut backoff).await
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = bundle.changed() => if changed.is_err() { return },
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One synchronisation, logged; the time until the next one.
async fn attempt(
    api: &impl WebhookApi,
    pem: &[u8],
    readiness: &Readiness,
    backoff: &mut Backoff,
) -> Duration {
    let configuration = api.name();
    match sync(api, pem).await {
        Ok(outcome) => {
            match outcome {
                Synced::Unchanged => {
                    tracing::debug!(configuration, "caBundle already up to date");
                }
                Synced::Patched(webhooks) => {
                    tracing::info!(
                        configuration,
                        webhooks,
                        bundle_bytes = pem.len(),
                        "caBundle written"
                    );
                }
            }
            readiness.ca_bundle_written();
            backoff.reset();
            RESYNC
        }
        Err(error) => {
            let retry_in = backoff.next_delay();
            tracing::warn!(%error, ?retry_in, "cannot update the caBundle; retrying");
            retry_in
        }
    }
}
