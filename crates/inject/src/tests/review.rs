//! The admission round trip on JSON bodies: allowed with a patch, allowed unchanged, denied
//! with the reason; the request's uid always echoed; nothing panics on any input.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use crate::{INJECT, INJECT_MODE, InjectorSettings, review_json};

const UID: &str = "0c9a8d74-9cb7-44dd-b98e-09fd62def2f4";

/// An `AdmissionReview` of a pod creation, as the API server sends it.
fn request(namespace: &str, object: &Value) -> Value {
    json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": UID,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": namespace,
            "operation": "CREATE",
            "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
            "object": object,
            "oldObject": null,
            "dryRun": false,
        }
    })
}

fn pod_object(annotations: &Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"generateName": "app-", "annotations": annotations},
        "spec": {
            "securityContext": {"runAsUser": 101},
            "containers": [{"name": "app", "image": "app:1"}],
        },
    })
}

/// The response part of the answer to `body`, which is always an `AdmissionReview`.
fn answer(body: &[u8]) -> Value {
    let out = review_json(body, &InjectorSettings::default());
    let review: Value = serde_json::from_slice(&out).expect("the answer is JSON");
    assert_eq!(review["kind"], "AdmissionReview");
    assert_eq!(review["apiVersion"], "admission.k8s.io/v1");
    review["response"].clone()
}

fn answer_to(request: &Value) -> Value {
    answer(&serde_json::to_vec(request).unwrap())
}

#[test]
fn an_opted_in_pod_is_allowed_with_a_json_patch_that_adds_the_helper() {
    let object = pod_object(&json!({INJECT: "true"}));
    let response = answer_to(&request("demo", &object));
    assert_eq!(response["uid"], UID);
    assert_eq!(response["allowed"], true);
    assert_eq!(response["patchType"], "JSONPatch");

    // As the API documents it: base64 of the JSON patch (not kube-core's array of numbers).
    let encoded = response["patch"]
        .as_str()
        .expect("the patch is a base64 string");
    let bytes = BASE64.decode(encoded).expect("valid base64");
    let patch: json_patch::Patch = serde_json::from_slice(&bytes).unwrap();
    let mut doc = object;
    json_patch::patch(&mut doc, &patch).unwrap();
    assert_eq!(doc["spec"]["initContainers"][0]["name"], "spiffe-helper");
}

#[test]
fn a_pod_that_did_not_opt_in_is_allowed_without_a_patch() {
    let response = answer_to(&request("demo", &pod_object(&json!({}))));
    assert_eq!(
        (response["uid"].as_str(), response["allowed"].as_bool()),
        (Some(UID), Some(true))
    );
    assert!(response.get("patch").is_none() && response.get("patchType").is_none());
}

#[test]
fn the_requests_namespace_decides_protection_for_pods_without_one() {
    let object = pod_object(&json!({INJECT: "true"}));
    let response = answer_to(&request("kube-system", &object));
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none());
}

#[test]
fn a_refused_pod_is_denied_with_the_reason_as_the_status_message() {
    let object = pod_object(&json!({INJECT: "true", INJECT_MODE: "daemon"}));
    let response = answer_to(&request("demo", &object));
    assert_eq!(
        (response["uid"].as_str(), response["allowed"].as_bool()),
        (Some(UID), Some(false))
    );
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(INJECT_MODE) && message.contains("\"init\""),
        "{message}"
    );
}

#[test]
fn helper_warnings_come_back_as_admission_warnings() {
    let object = pod_object(
        &json!({INJECT: "true", INJECT_MODE: "init", "spiffe-helper-rust/renew-signal": "SIGHUP"}),
    );
    let response = answer_to(&request("demo", &object));
    assert_eq!(response["allowed"], true);
    assert_eq!(
        response["warnings"].as_array().map(Vec::len),
        Some(1),
        "{response}"
    );
}

#[test]
fn updates_and_other_kinds_are_allowed_unchanged() {
    let mut update = request("demo", &pod_object(&json!({INJECT: "true"})));
    update["request"]["operation"] = json!("UPDATE");
    let mut other = request(
        "demo",
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}),
    );
    other["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
    for body in [update, other] {
        let response = answer_to(&body);
        assert_eq!(
            (response["uid"].as_str(), response["allowed"].as_bool()),
            (Some(UID), Some(true))
        );
        assert!(response.get("patch").is_none());
    }
}

#[test]
fn an_object_that_is_not_a_pod_is_denied_echoing_the_uid() {
    let broken = [
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {}, "spec": {"containers": 5}}),
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"annotations": {"a": 1}}}),
        json!("a string"),
        json!(null),
    ];
    for object in broken {
        let response = answer_to(&request("demo", &object));
        assert_eq!(response["uid"], UID, "{object}");
        assert_eq!(response["allowed"], false, "{object}");
        let message = response["status"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("malformed admission request"),
            "{object}: {message}"
        );
    }
}

#[test]
fn a_body_that_is_not_an_admission_review_is_denied_without_panicking() {
    let bodies: [&[u8]; 6] = [
        b"",
        b"not json",
        b"[]",
        b"{}",
        b"{\"kind\":\"AdmissionReview\",\"apiVersion\":\"admission.k8s.io/v1\"}",
        &[0xff, 0xfe, 0x00],
    ];
    for body in bodies {
        let response = answer(body);
        assert_eq!(response["allowed"], false, "{body:?}");
        assert_eq!(response["uid"], "", "{body:?}");
    }
}

#[test]
fn every_truncation_of_a_valid_request_is_answered_without_panicking() {
    let body = serde_json::to_vec(&request("demo", &pod_object(&json!({INJECT: "true"})))).unwrap();
    for len in 0..body.len() {
        let response = answer(&body[..len]);
        assert_eq!(response["allowed"], false, "cut at {len}");
    }
    assert_eq!(answer(&body)["allowed"], true);
}

#[test]
fn a_review_of_another_version_is_denied_echoing_the_uid() {
    let mut old = request("demo", &pod_object(&json!({INJECT: "true"})));
    old["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let response = answer_to(&old);
    assert_eq!(
        (response["uid"].as_str(), response["allowed"].as_bool()),
        (Some(UID), Some(false))
    );
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("admission.k8s.io/v1beta1"), "{message}");
}

#[test]
fn every_single_byte_corruption_of_a_valid_request_is_answered_without_panicking() {
    let body = serde_json::to_vec(&request("demo", &pod_object(&json!({INJECT: "true"})))).unwrap();
    for i in 0..body.len() {
        for replacement in [b'"', b'{', b'0', 0xff] {
            let mut corrupt = body.clone();
            corrupt[i] = replacement;
            // Still JSON, still an AdmissionReview; allowed or not depends on the byte.
            let response = answer(&corrupt);
            assert!(response["allowed"].is_boolean(), "byte {i} → {replacement}");
        }
    }
}
