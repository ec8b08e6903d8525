//! The JSON patch (RFC 6902) that adds the helper to the pod as submitted. Paths are built
//! from unescaped tokens (`jsonptr` escapes `~` and `/` as RFC 6901 §3 requires), so an
//! annotation key such as `spiffe-helper-rust/injected` becomes
//! `/metadata/annotations/spiffe-helper-rust~1injected`.
//!
//! Operations apply in order: the volume mounts of existing initContainers are added by their
//! original index before the helper is inserted at index 0 and shifts them.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, Patch, PatchOperation};
use k8s_openapi::api::core::v1::{Container, PodSpec, Volume, VolumeMount};
use serde::Serialize;

use crate::annotations::INJECTED;
use crate::refusal::Refusal;

/// What the patch adds.
pub(crate) struct Additions {
    pub helper: Container,
    pub volumes: Vec<Volume>,
    /// Mounted into every container that is already in the pod.
    pub app_mount: VolumeMount,
    pub share_process_namespace: bool,
}

/// The operations, against a pod whose `metadata.annotations` exists (it opted in by one).
pub(crate) fn build(spec: &PodSpec, add: &Additions) -> Result<Patch, Refusal> {
    let mut ops = Ops(Vec::new());
    ops.add(&["metadata", "annotations", INJECTED], &"true")?;
    if add.share_process_namespace {
        ops.add(&["spec", "shareProcessNamespace"], &true)?;
    }
    ops.append(&["spec", "volumes"], spec.volumes.is_some(), &add.volumes)?;
    let mount = std::slice::from_ref(&add.app_mount);
    for (i, c) in spec.containers.iter().enumerate() {
        let path = ["spec", "containers", &i.to_string(), "volumeMounts"];
        ops.append(&path, c.volume_mounts.is_some(), mount)?;
    }
    match &spec.init_containers {
        Some(init) => {
            for (i, c) in init.iter().enumerate() {
                let path = ["spec", "initContainers", &i.to_string(), "volumeMounts"];
                ops.append(&path, c.volume_mounts.is_some(), mount)?;
            }
            // First: the application's init containers start after the helper is started
            // (and, as a sidecar, after its startup probe passed).
            ops.add(&["spec", "initContainers", "0"], &add.helper)?;
        }
        None => ops.add(&["spec", "initContainers"], &[&add.helper])?,
    }
    Ok(Patch(ops.0))
}

/// A JSON pointer from unescaped tokens (`~` → `~0`, `/` → `~1`).
pub(crate) fn pointer(tokens: &[&str]) -> PointerBuf {
    PointerBuf::from_tokens(tokens.iter().copied())
}

struct Ops(Vec<PatchOperation>);

impl Ops {
    fn add(&mut self, tokens: &[&str], value: &impl Serialize) -> Result<(), Refusal> {
        let value = serde_json::to_value(value).map_err(|e| Refusal::Malformed {
            reason: format!("cannot encode the patch: {e}"),
        })?;
        self.0.push(PatchOperation::Add(AddOperation {
            path: pointer(tokens),
            value,
        }));
        Ok(())
    }

    /// Appends `items` to the array at `tokens`, creating it when the pod has none (an
    /// `add` to `/-` of a missing array fails, RFC 6902 §4.1).
    fn append<T: Serialize>(
        &mut self,
        tokens: &[&str],
        exists: bool,
        items: &[T],
    ) -> Result<(), Refusal> {
        if !exists {
            return self.add(tokens, &items);
        }
        let mut path: Vec<&str> = tokens.to_vec();
        path.push("-");
        for item in items {
            self.add(&path, item)?;
        }
        Ok(())
    }
}
