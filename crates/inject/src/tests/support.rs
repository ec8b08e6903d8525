//! Pods to inject, and the injected pod's parts.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, Volume, VolumeMount};
use serde_json::{Value, json};

use crate::{INJECT, InjectorSettings, Mutation, Refusal, mutate};

/// The namespace the tests create pods in.
pub const NS: &str = "demo";

/// A pod from its annotations and spec.
pub fn pod(annotations: &[(&str, &str)], spec: &Value) -> Pod {
    let annotations: BTreeMap<&str, &str> = annotations.iter().copied().collect();
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "annotations": annotations},
        "spec": spec,
    }))
    .expect("a valid pod")
}

/// One application container, no volumes, no initContainers; the pod's uid set, as the demo
/// manifest does, so that the helper and the application share it.
pub fn minimal_spec() -> Value {
    json!({
        "securityContext": {"runAsUser": 101},
        "containers": [{"name": "app", "image": "app:1"}],
    })
}

/// A minimal pod that opted in, with more annotations.
pub fn opted_in(extra: &[(&str, &str)]) -> Pod {
    let mut annotations = vec![(INJECT, "true")];
    annotations.extend_from_slice(extra);
    pod(&annotations, &minimal_spec())
}

/// Applies a mutation's patch to the pod as JSON and reads the result back as a Pod.
pub fn apply(pod: &Pod, mutation: &Mutation) -> Pod {
    let Mutation::Patch { patch, .. } = mutation else {
        panic!("expected a patch, got {mutation:?}");
    };
    let mut doc = serde_json::to_value(pod).expect("pod encodes");
    json_patch::patch(&mut doc, patch).expect("the patch applies to the pod");
    serde_json::from_value(doc).expect("the patched pod is a valid Pod")
}

/// The pod after injection with `settings`.
pub fn inject_with(pod: &Pod, settings: &InjectorSettings) -> Pod {
    let mutation = mutate(pod, NS, settings).expect("the pod is injected");
    apply(pod, &mutation)
}

/// The pod after injection with the default settings.
pub fn inject(pod: &Pod) -> Pod {
    inject_with(pod, &InjectorSettings::default())
}

/// Why the pod is refused (default settings).
pub fn refusal(pod: &Pod) -> Refusal {
    mutate(pod, NS, &InjectorSettings::default()).expect_err("the pod is refused")
}

/// The helper container of an injected pod (the first initContainer).
pub fn helper(pod: &Pod) -> &Container {
    let init = spec_init(pod);
    let first = init.first().expect("an initContainer");
    assert_eq!(first.name, "spiffe-helper", "the helper goes first");
    first
}

pub fn spec_init(pod: &Pod) -> &[Container] {
    pod.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default()
}

pub fn containers(pod: &Pod) -> &[Container] {
    &pod.spec.as_ref().expect("a spec").containers
}

pub fn volumes(pod: &Pod) -> &[Volume] {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default()
}

pub fn volume<'a>(pod: &'a Pod, name: &str) -> &'a Volume {
    (volumes(pod).iter())
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no volume {name}"))
}

/// The container's mount of `volume`.
pub fn mount<'a>(container: &'a Container, volume: &str) -> Option<&'a VolumeMount> {
    (container.volume_mounts.iter().flatten()).find(|m| m.name == volume)
}

/// The container's environment as a map.
pub fn env(container: &Container) -> BTreeMap<String, String> {
    (container.env.iter().flatten())
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

pub fn annotations(pod: &Pod) -> BTreeMap<String, String> {
    pod.metadata.annotations.clone().unwrap_or_default()
}
