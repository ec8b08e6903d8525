//! The caBundle updater against a fake API: the patch it builds, that it writes only what
//! differs, and that it retries. The real API server comes in the smoke test (issue 21 §5),
//! with the manifests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use spiffe_workload_client::Backoff;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{ApiError, Synced, WebhookApi, WebhookCa, plan, run, sync};
use crate::health::Readiness;

const OLD: &[u8] = b"-----BEGIN CERTIFICATE-----\nb2xk\n-----END CERTIFICATE-----\n";
const NEW: &[u8] = b"-----BEGIN CERTIFICATE-----\nbmV3\n-----END CERTIFICATE-----\n";

/// A `MutatingWebhookConfiguration` as the API server returns it, caBundle as base64.
fn configuration(bundles: &[Option<&[u8]>]) -> Value {
    use base64::Engine as _;
    let webhooks: Vec<Value> = bundles
        .iter()
        .enumerate()
        .map(|(i, bundle)| {
            let mut client = json!({"service": {"name": "injector", "namespace": "ns", "path": "/mutate"}});
            if let Some(bundle) = bundle {
                client["caBundle"] = json!(base64::engine::general_purpose::STANDARD.encode(bundle));
            }
            json!({"name": format!("w{i}.example.org"), "clientConfig": client,
                   "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": "Fail"})
        })
        .collect();
    json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
           "metadata": {"name": "injector", "resourceVersion": "7"}, "webhooks": webhooks})
}

/// Holds a configuration, applies patches to it as the API server would, counts calls, and
/// fails the first `failures` calls.
struct Fake {
    object: Mutex<Value>,
    gets: AtomicUsize,
    patches: AtomicUsize,
    failures: AtomicUsize,
}

impl Fake {
    fn new(bundles: &[Option<&[u8]>]) -> Arc<Self> {
        Arc::new(Self {
            object: Mutex::new(configuration(bundles)),
            gets: AtomicUsize::new(0),
            patches: AtomicUsize::new(0),
            failures: AtomicUsize::new(0),
        })
    }

    fn fail(&self, operation: &'static str) -> Result<(), ApiError> {
        let left = self.failures.load(Ordering::SeqCst);
        if left == 0 {
            return Ok(());
        }
        self.failures.store(left - 1, Ordering::SeqCst);
        Err(ApiError {
            operation,
            name: "injector".into(),
            message: "connection refused".into(),
        })
    }

    fn bundles(&self) -> Vec<Option<Vec<u8>>> {
        use base64::Engine as _;
        let object = self.object.lock().unwrap();
        object["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| {
                w["clientConfig"]["caBundle"]
                    .as_str()
                    .map(|b| base64::engine::general_purpose::STANDARD.decode(b).unwrap())
            })
            .collect()
    }
}

impl WebhookApi for Arc<Fake> {
    fn name(&self) -> &'static str {
        "injector"
    }

    async fn webhooks(&self) -> Result<Vec<WebhookCa>, ApiError> {
        self.gets.fetch_add(1, Ordering::SeqCst);
        self.fail("get")?;
        let names = self.object.lock().unwrap()["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["name"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>();
        Ok(names
            .into_iter()
            .zip(self.bundles())
            .map(|(name, ca_bundle)| WebhookCa { name, ca_bundle })
            .collect())
    }

    async fn patch(&self, patch: Value) -> Result<(), ApiError> {
        self.patches.fetch_add(1, Ordering::SeqCst);
        self.fail("patch")?;
        let patch: json_patch::Patch = serde_json::from_value(patch).unwrap();
        let mut object = self.object.lock().unwrap();
        json_patch::patch(&mut object, &patch).map_err(|err| ApiError {
            operation: "patch",
            name: "injector".into(),
            message: err.to_string(),
        })
    }
}

fn current(bundles: &[Option<&[u8]>]) -> Vec<WebhookCa> {
    bundles
        .iter()
        .enumerate()
        .map(|(i, b)| WebhookCa {
            name: format!("w{i}.example.org"),
            ca_bundle: b.map(<[u8]>::to_vec),
        })
        .collect()
}

#[test]
fn the_patch_sets_only_the_differing_ca_bundles_each_guarded_by_the_webhook_name() {
    let patch = plan(&current(&[Some(NEW), Some(OLD), None]), NEW).unwrap();
    let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, NEW);
    assert_eq!(
        patch,
        json!([
            {"op": "test", "path": "/webhooks/1/name", "value": "w1.example.org"},
            {"op": "add", "path": "/webhooks/1/clientConfig/caBundle", "value": encoded},
            {"op": "test", "path": "/webhooks/2/name", "value": "w2.example.org"},
            {"op": "add", "path": "/webhooks/2/clientConfig/caBundle", "value": encoded},
        ])
    );
}

#[test]
fn no_patch_when_every_ca_bundle_already_equals_the_bundle() {
    assert_eq!(plan(&current(&[Some(NEW), Some(NEW)]), NEW), None);
    assert_eq!(plan(&[], NEW), None);
}

#[test]
fn applying_the_patch_changes_nothing_but_the_ca_bundles() {
    let before = configuration(&[Some(OLD), None]);
    let patch = plan(&current(&[Some(OLD), None]), NEW).unwrap();
    let mut after = before.clone();
    json_patch::patch(
        &mut after,
        &serde_json::from_value::<json_patch::Patch>(patch).unwrap(),
    )
    .unwrap();
    let mut expected = configuration(&[Some(NEW), Some(NEW)]);
    expected["metadata"] = before["metadata"].clone();
    assert_eq!(after, expected);
}

#[test]
fn a_reordered_configuration_fails_the_patch_instead_of_writing_the_wrong_webhook() {
    let patch = plan(&current(&[Some(OLD), Some(NEW)]), NEW).unwrap();
    let mut object = configuration(&[Some(OLD), Some(NEW)]);
    object["webhooks"][0]["name"] = json!("someone-else.example.org");
    assert!(
        json_patch::patch(
            &mut object,
            &serde_json::from_value::<json_patch::Patch>(patch).unwrap()
        )
        .is_err()
    );
}

#[tokio::test]
async fn sync_reads_and_only_patches_when_a_value_differs() {
    let fake = Fake::new(&[Some(OLD)]);
    assert_eq!(sync(&fake, NEW).await.unwrap(), Synced::Patched(1));
    assert_eq!(fake.bundles(), [Some(NEW.to_vec())]);
    assert_eq!(sync(&fake, NEW).await.unwrap(), Synced::Unchanged);
    assert_eq!(
        (
            fake.gets.load(Ordering::SeqCst),
            fake.patches.load(Ordering::SeqCst)
        ),
        (2, 1)
    );
}

fn start(
    fake: &Arc<Fake>,
    pem: &[u8],
) -> (
    watch::Sender<Vec<u8>>,
    Arc<Readiness>,
    CancellationToken,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = watch::channel(pem.to_vec());
    let readiness = Arc::new(Readiness::new(true));
    let shutdown = CancellationToken::new();
    let backoff = Backoff::exact(Duration::from_secs(1), Duration::from_secs(8));
    let task = tokio::spawn(run(
        fake.clone(),
        rx,
        readiness.clone(),
        backoff,
        shutdown.clone(),
    ));
    (tx, readiness, shutdown, task)
}

/// Lets the updater's task run until it waits again (time is paused, so only the sleeps we
/// advance through pass).
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_updater_writes_at_start_then_on_each_bundle_change_and_marks_readiness_once() {
    let fake = Fake::new(&[None, Some(OLD)]);
    let (tx, readiness, shutdown, task) = start(&fake, OLD);
    settle().await;
    assert_eq!(fake.bundles(), [Some(OLD.to_vec()), Some(OLD.to_vec())]);
    assert!(readiness.is_ca_bundle_written());
    assert_eq!(fake.patches.load(Ordering::SeqCst), 1);

    tx.send(NEW.to_vec()).unwrap();
    settle().await;
    assert_eq!(fake.bundles(), [Some(NEW.to_vec()), Some(NEW.to_vec())]);
    assert_eq!(fake.patches.load(Ordering::SeqCst), 2);

    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_updater_retries_with_backoff_and_is_not_ready_before_a_success() {
    let fake = Fake::new(&[Some(OLD)]);
    fake.failures.store(3, Ordering::SeqCst);
    let (_tx, readiness, shutdown, task) = start(&fake, NEW);
    settle().await;
    assert_eq!(fake.gets.load(Ordering::SeqCst), 1);
    assert!(!readiness.is_ca_bundle_written());
    // Backoff::exact: 1 s, 2 s, then 4 s.
    for (advance, gets) in [(1, 2), (2, 3), (4, 4)] {
        tokio::time::advance(Duration::from_secs(advance)).await;
        settle().await;
        assert_eq!(
            fake.gets.load(Ordering::SeqCst),
            gets,
            "after {advance} s more"
        );
    }
    assert!(readiness.is_ca_bundle_written());
    assert_eq!(fake.bundles(), [Some(NEW.to_vec())]);
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_updater_rewrites_a_ca_bundle_reset_behind_its_back_at_the_next_resync() {
    let fake = Fake::new(&[Some(NEW)]);
    let (_tx, readiness, shutdown, task) = start(&fake, NEW);
    settle().await;
    assert!(readiness.is_ca_bundle_written());
    assert_eq!(
        fake.patches.load(Ordering::SeqCst),
        0,
        "equal at start: nothing written"
    );
    // `kubectl apply` of the manifest puts its own (empty) caBundle back.
    fake.object.lock().unwrap()["webhooks"][0]["clientConfig"]
        .as_object_mut()
        .unwrap()
        .remove("caBundle");
    tokio::time::advance(super::RESYNC).await;
    settle().await;
    assert_eq!(fake.bundles(), [Some(NEW.to_vec())]);
    assert_eq!(fake.patches.load(Ordering::SeqCst), 1);
    shutdown.cancel();
    task.await.unwrap();
}
