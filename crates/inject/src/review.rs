//! The admission round trip: an `AdmissionReview` in, an `AdmissionReview` out
//! (Kubernetes API reference, "Dynamic Admission Control": the response echoes the request's
//! `uid`; a mutation is a base64 JSON patch with `patchType: JSONPatch`). Nothing here panics
//! on any input: what cannot be read is denied with the reason.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use k8s_openapi::api::core::v1::Pod;
use kube_core::DynamicObject;
use kube_core::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, META_API_VERSION_V1, META_KIND, Operation,
};
use serde_json::Value;

use crate::mutation::Mutation;
use crate::refusal::Refusal;
use crate::settings::InjectorSettings;

/// Answers one review: allowed with a patch, allowed unchanged, or denied with the reason as
/// the status message. Requests for anything but the creation of a Pod are allowed unchanged
/// (the webhook configuration routes only those here). To answer over HTTP, use
/// [`review_json`], which also writes the patch as the API documents it.
#[must_use]
pub fn review(
    review: AdmissionReview<DynamicObject>,
    settings: &InjectorSettings,
) -> AdmissionReview<DynamicObject> {
    // The webhook configuration will declare `admissionReviewVersions: ["v1"]`, and the answer
    // must carry the request's version: anything else is not a request of ours.
    let (api_version, kind) = (&review.types.api_version, &review.types.kind);
    if api_version != META_API_VERSION_V1 || kind != META_KIND {
        let uid = review.request.map(|r| r.uid).unwrap_or_default();
        let reason =
            format!("expected a {META_API_VERSION_V1} {META_KIND}, got {api_version} {kind}");
        return invalid(&reason, uid);
    }
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(err) => return invalid(&err.to_string(), String::new()),
    };
    let response = AdmissionResponse::from(&request);
    let is_pod = request.kind.group.is_empty() && request.kind.kind == "Pod";
    if !is_pod || request.operation != Operation::Create {
        return response.into_review();
    }
    answer(response, &request, settings).into_review()
}

/// [`review`] on the HTTP body: JSON in, JSON out. A body that is not an `AdmissionReview` is
/// denied, echoing its `request.uid` when one can be found.
///
/// The patch is written as a base64 string, as the API documents `patch` (a Go `[]byte`);
/// kube-core's own serialization writes an array of numbers (kube-rs issue #1781), which
/// only works because Go's JSON decoder happens to accept it.
#[must_use]
pub fn review_json(body: &[u8], settings: &InjectorSettings) -> Vec<u8> {
    let mut answer = match serde_json::from_slice::<AdmissionReview<DynamicObject>>(body) {
        Ok(parsed) => review(parsed, settings),
        Err(err) => invalid(&format!("not an AdmissionReview: {err}"), salvage_uid(body)),
    };
    let patch = answer.response.as_mut().and_then(|r| r.patch.take());
    // Serializing these types cannot fail (string keys, no non-finite floats); should it, an
    // empty body makes the API server apply the webhook's failure policy.
    let Ok(mut json) = serde_json::to_value(&answer) else {
        return Vec::new();
    };
    let response = json.get_mut("response").and_then(Value::as_object_mut);
    if let (Some(bytes), Some(response)) = (patch, response) {
        response.insert("patch".to_owned(), Value::String(BASE64.encode(bytes)));
    }
    serde_json::to_vec(&json).unwrap_or_default()
}

fn answer(
    response: AdmissionResponse,
    request: &AdmissionRequest<DynamicObject>,
    settings: &InjectorSettings,
) -> AdmissionResponse {
    let outcome =
        decode(request).and_then(|(pod, namespace)| crate::mutate(&pod, &namespace, settings));
    match outcome {
        Ok(Mutation::Leave(_)) => response,
        Ok(Mutation::Patch { patch, warnings }) => match response.clone().with_patch(patch) {
            Ok(mut patched) => {
                patched.warnings = (!warnings.is_empty()).then_some(warnings);
                patched
            }
            Err(err) => response.deny(format!("cannot encode the patch: {err}")),
        },
        Err(refusal) => response.deny(refusal),
    }
}

/// The pod and its namespace (the request's: a pod created from a template has none itself).
fn decode(request: &AdmissionRequest<DynamicObject>) -> Result<(Pod, String), Refusal> {
    let malformed = |reason: String| Refusal::Malformed { reason };
    let object = (request.object.as_ref())
        .ok_or_else(|| malformed("the request carries no object".to_owned()))?;
    let value = serde_json::to_value(object)
        .map_err(|e| malformed(format!("the object cannot be read: {e}")))?;
    let pod: Pod = serde_json::from_value(value)
        .map_err(|e| malformed(format!("the object is not a valid Pod: {e}")))?;
    let namespace = (request.namespace.clone())
        .or_else(|| pod.metadata.namespace.clone())
        .ok_or_else(|| malformed("the request names no namespace".to_owned()))?;
    Ok((pod, namespace))
}

fn invalid(reason: &str, uid: String) -> AdmissionReview<DynamicObject> {
    let mut response = AdmissionResponse::invalid(
        Refusal::Malformed {
            reason: reason.to_owned(),
        }
        .to_string(),
    );
    response.uid = uid;
    response.into_review()
}

/// `request.uid` of a body that does not decode as a whole, so the API server can match the
/// answer to its request.
fn salvage_uid(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/request/uid")?.as_str().map(str::to_owned))
        .unwrap_or_default()
}
