//! The pod mutation of the spiffe-helper-rust injector: a mutating admission webhook's logic,
//! without the server. A pod that opts in by annotation (`spiffe-helper-rust/inject: "true"`)
//! gets the helper as a native sidecar (or a one-shot initContainer), an in-memory
//! certificate volume mounted into every container, and the agent socket; the helper is
//! configured by `SPIFFE_HLP_*` variables built from the other annotations and checked by the
//! helper's own validation (crates/config), so a pod the helper would refuse is refused at
//! admission. docs/injection.md lists the annotations and shows the injected pod.
//!
//! Where it sits: this crate depends on the config crate (for validation) and the Kubernetes
//! API types; the webhook server (TLS, the caBundle updater) will call [`review_json`].
//!
//! ```
//! use k8s_openapi::api::core::v1::Pod;
//! use spiffe_helper_inject::{InjectorSettings, Mutation, mutate};
//!
//! let pod: Pod = serde_json::from_value(serde_json::json!({
//!     "metadata": {"annotations": {"spiffe-helper-rust/inject": "true"}},
//!     "spec": {"containers": [{"name": "app", "image": "app:1"}]},
//! })).unwrap();
//! let Ok(Mutation::Patch { patch, .. }) = mutate(&pod, "demo", &InjectorSettings::default())
//! else { panic!("the pod opted in") };
//!
//! let mut doc = serde_json::to_value(&pod).unwrap();
//! json_patch::patch(&mut doc, &patch).unwrap();
//! assert_eq!(doc["spec"]["initContainers"][0]["name"], "spiffe-helper");
//! assert_eq!(doc["spec"]["containers"][0]["volumeMounts"][0]["mountPath"], "/run/spiffe/certs");
//! ```

mod annotations;
mod checks;
mod container;
mod helper_env;
mod mutation;
mod patch;
mod pod;
mod refusal;
mod review;
mod settings;

#[cfg(test)]
mod tests;

use k8s_openapi::api::core::v1::Pod;

pub use annotations::{
    AGENT_SOCKET, ALL as ANNOTATIONS, CERT_DIR, CONFIG_MAP, DEFAULT_CERT_DIR, INJECT, INJECT_MODE,
    INJECTED, JWT_AUDIENCES, PID_FILE_NAME, PREFIX, RENEW_SIGNAL, SVID_BUNDLE_FILE_NAME,
    SVID_COMBINED_FILE_NAME, SVID_FILE_NAME, SVID_KEY_FILE_NAME,
};
pub use container::{CERTS_VOLUME, CONFIG_VOLUME, CONTAINER_NAME, SOCKET_VOLUME};
pub use mutation::{Mutation, Skip};
pub use refusal::Refusal;
pub use review::{review, review_json};
pub use settings::{AgentSocket, InjectorSettings};

/// Decides what to do with a pod being created in `namespace`: leave it alone (protected
/// namespace, not opted in, already injected) or add the helper with a JSON patch.
///
/// # Errors
/// A [`Refusal`] when the pod opted in but cannot be injected as its annotations ask: an
/// invalid or unknown annotation, annotations that conflict, a pod spec in the way, or a
/// configuration the helper itself would refuse.
pub fn mutate(
    pod: &Pod,
    namespace: &str,
    settings: &InjectorSettings,
) -> Result<Mutation, Refusal> {
    if settings.is_protected(namespace) {
        return Ok(Mutation::Leave(Skip::ProtectedNamespace));
    }
    let empty = annotations::Annotations::new();
    let annotations = pod.metadata.annotations.as_ref().unwrap_or(&empty);
    if !annotations::opted_in(annotations)? {
        return Ok(Mutation::Leave(Skip::NotOptedIn));
    }
    let Some(spec) = &pod.spec else {
        return Err(Refusal::Malformed {
            reason: "the pod has no spec".to_owned(),
        });
    };
    let injected = pod::all_containers(spec).any(|c| c.name == CONTAINER_NAME);
    if injected || annotations::marked_injected(annotations) {
        return Ok(Mutation::Leave(Skip::AlreadyInjected));
    }
    let req = annotations::parse(annotations, settings)?;
    let vars = helper_env::vars(&req, settings);
    let mut warnings = helper_env::validate(&vars, req.mode)?;
    let pid = pod::check(spec, &req, settings)?;
    warnings.extend(pod::warnings(spec));
    let additions = patch::Additions {
        helper: container::helper(&req, settings, &vars, pid.as_ref()),
        volumes: pod::volumes(&req, settings),
        app_mount: container::certs_mount(&req),
        share_process_namespace: pid.is_some(),
    };
    let patch = patch::build(spec, &additions)?;
    Ok(Mutation::Patch { patch, warnings })
}
