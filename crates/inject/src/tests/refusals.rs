//! One test per refusal: the pod is denied, and the reason names the annotation (or the part
//! of the pod) and what would be valid.

use serde_json::json;

use super::support::{minimal_spec, opted_in, pod, refusal};
use crate::{
    AGENT_SOCKET, CERT_DIR, CONFIG_MAP, INJECT, INJECT_MODE, JWT_AUDIENCES, PID_FILE_NAME,
    RENEW_SIGNAL, Refusal, SVID_BUNDLE_FILE_NAME, SVID_COMBINED_FILE_NAME, SVID_FILE_NAME,
    SVID_KEY_FILE_NAME,
};

/// The refusal's message, checked to name `annotation` and contain every `words`.
fn says(refusal: &Refusal, annotation: &str, words: &[&str]) {
    let text = refusal.to_string();
    assert!(
        text.contains(annotation),
        "{text:?} does not name {annotation}"
    );
    for w in words {
        assert!(text.contains(w), "{text:?} does not say {w:?}");
    }
}

fn invalid(annotation: &str, value: &str) -> Refusal {
    let got = refusal(&opted_in(&[(annotation, value)]));
    assert!(matches!(got, Refusal::InvalidAnnotation { .. }), "{got:?}");
    assert_eq!(got.annotation(), Some(annotation));
    assert!(!got.is_malformed());
    got
}

#[test]
fn inject_other_than_true_or_false_is_refused() {
    for value in ["yes", "True", ""] {
        let got = refusal(&pod(&[(INJECT, value)], &minimal_spec()));
        says(&got, INJECT, &["\"true\" or \"false\""]);
    }
}

#[test]
fn an_unknown_inject_mode_is_refused() {
    says(
        &invalid(INJECT_MODE, "daemon"),
        INJECT_MODE,
        &["\"sidecar\" or \"init\""],
    );
}

#[test]
fn a_cert_dir_that_is_not_a_clean_absolute_directory_is_refused() {
    for value in [
        "certs",
        "/",
        "/run/../etc",
        "/run//certs",
        "/run/./certs",
        "C:/certs",
        "",
    ] {
        says(&invalid(CERT_DIR, value), CERT_DIR, &["absolute directory"]);
    }
}

#[test]
fn a_cert_dir_that_would_hide_a_system_directory_is_refused() {
    for value in ["/etc", "/tmp/", "/run", "/usr"] {
        says(&invalid(CERT_DIR, value), CERT_DIR, &["hide the image's"]);
    }
}

#[test]
fn a_cert_dir_overlapping_the_helpers_own_mounts_is_refused() {
    for value in [
        "/run/spire/sockets",
        "/run/spire",
        "/run/spire/sockets/certs",
        "/etc/spiffe-helper",
    ] {
        says(
            &invalid(CERT_DIR, value),
            CERT_DIR,
            &["where the helper mounts"],
        );
    }
}

#[test]
fn a_file_name_that_leaves_cert_dir_is_refused() {
    let keys = [
        SVID_FILE_NAME,
        SVID_KEY_FILE_NAME,
        SVID_BUNDLE_FILE_NAME,
        SVID_COMBINED_FILE_NAME,
    ];
    for key in keys {
        for value in ["/etc/svid.pem", "../svid.pem", "sub/svid.pem", "", ".."] {
            says(&invalid(key, value), key, &["inside cert-dir"]);
        }
    }
}

#[test]
fn two_outputs_on_one_file_are_refused_as_the_helper_would() {
    let got = refusal(&opted_in(&[
        (SVID_FILE_NAME, "tls.pem"),
        (SVID_KEY_FILE_NAME, "tls.pem"),
    ]));
    assert!(matches!(got, Refusal::HelperConfig { .. }), "{got:?}");
    says(
        &got,
        SVID_KEY_FILE_NAME,
        &["svid_file_name", "each output needs its own file"],
    );
}

#[test]
fn a_signal_the_helper_does_not_know_is_refused_naming_the_annotation() {
    let got = refusal(&opted_in(&[(RENEW_SIGNAL, "SIGBOGUS")]));
    assert!(matches!(got, Refusal::HelperConfig { .. }), "{got:?}");
    says(&got, RENEW_SIGNAL, &["SIGBOGUS"]);
    assert!(
        !got.to_string().contains("SPIFFE_HLP_RENEW_SIGNAL"),
        "{got}"
    );
}

/// A pod whose nginx writes its pid file on an emptyDir at /run/nginx.
fn nginx(
    annotations: &[(&str, &str)],
    extra_spec: &[(&str, serde_json::Value)],
) -> k8s_openapi::api::core::v1::Pod {
    let mut spec = json!({
        "containers": [{"name": "nginx", "image": "nginx:1",
            "volumeMounts": [{"name": "nginx-run", "mountPath": "/run/nginx"}]}],
        "volumes": [{"name": "nginx-run", "emptyDir": {}}],
    });
    for (k, v) in extra_spec {
        spec[*k] = v.clone();
    }
    let mut all = vec![(INJECT, "true")];
    all.extend_from_slice(annotations);
    pod(&all, &spec)
}

#[test]
fn a_pid_file_without_renew_signal_is_refused_as_the_helper_would() {
    let got = refusal(&nginx(&[(PID_FILE_NAME, "/run/nginx/nginx.pid")], &[]));
    assert!(matches!(got, Refusal::HelperConfig { .. }), "{got:?}");
    says(&got, PID_FILE_NAME, &["renew_signal"]);
}

#[test]
fn a_pid_file_in_init_mode_is_refused_as_the_helper_would() {
    let annotations = [
        (PID_FILE_NAME, "/run/nginx/nginx.pid"),
        (RENEW_SIGNAL, "SIGHUP"),
        (INJECT_MODE, "init"),
    ];
    let got = refusal(&nginx(&annotations, &[]));
    says(&got, PID_FILE_NAME, &["daemon mode"]);
}

#[test]
fn a_relative_pid_file_is_refused() {
    let got = refusal(&nginx(
        &[(PID_FILE_NAME, "nginx.pid"), (RENEW_SIGNAL, "SIGHUP")],
        &[],
    ));
    says(&got, PID_FILE_NAME, &["absolute path"]);
}

#[test]
fn a_pid_file_in_the_read_only_cert_dir_is_refused() {
    let got = refusal(&opted_in(&[
        (PID_FILE_NAME, "/run/spiffe/certs/app.pid"),
        (RENEW_SIGNAL, "SIGHUP"),
    ]));
    says(&got, PID_FILE_NAME, &["outside cert-dir"]);
}

#[test]
fn a_pid_file_on_no_volume_is_refused_since_the_helper_could_not_read_it() {
    let got = refusal(&nginx(
        &[
            (PID_FILE_NAME, "/var/run/app.pid"),
            (RENEW_SIGNAL, "SIGHUP"),
        ],
        &[],
    ));
    assert!(matches!(got, Refusal::PodSpec { .. }), "{got:?}");
    says(
        &got,
        PID_FILE_NAME,
        &["not on a volume", "/var/run/app.pid"],
    );
}

#[test]
fn a_pid_file_with_share_process_namespace_false_is_refused() {
    let annotations = [
        (PID_FILE_NAME, "/run/nginx/nginx.pid"),
        (RENEW_SIGNAL, "SIGHUP"),
    ];
    let got = refusal(&nginx(
        &annotations,
        &[("shareProcessNamespace", json!(false))],
    ));
    assert!(matches!(got, Refusal::PodSpec { .. }), "{got:?}");
    says(&got, PID_FILE_NAME, &["shareProcessNamespace"]);
}

#[test]
fn jwt_audiences_with_an_empty_entry_are_refused() {
    for value in ["", "a,,b", "a, ", " "] {
        says(
            &invalid(JWT_AUDIENCES, value),
            JWT_AUDIENCES,
            &["none empty"],
        );
    }
}

#[test]
fn a_jwt_audience_too_long_for_a_file_name_is_refused() {
    let long = "a".repeat(246);
    says(
        &invalid(JWT_AUDIENCES, &long),
        JWT_AUDIENCES,
        &["at most 245 bytes"],
    );
    assert!(
        crate::mutate(
            &opted_in(&[(JWT_AUDIENCES, &"a".repeat(245))]),
            super::support::NS,
            &crate::InjectorSettings::default()
        )
        .is_ok()
    );
}

#[test]
fn jwt_audiences_that_would_share_a_file_are_refused() {
    let got = invalid(JWT_AUDIENCES, "api/v1, api:v1");
    says(
        &got,
        JWT_AUDIENCES,
        &["jwt_api_v1.token", "\"api/v1\"", "\"api:v1\""],
    );
}

#[test]
fn a_config_map_name_that_is_not_an_object_name_is_refused() {
    for value in ["My_Config", "-x", "", "x/y"] {
        says(&invalid(CONFIG_MAP, value), CONFIG_MAP, &["ConfigMap"]);
    }
}

#[test]
fn a_config_map_with_per_key_annotations_is_refused_naming_them() {
    let got = refusal(&opted_in(&[
        (CONFIG_MAP, "my-helper"),
        (RENEW_SIGNAL, "SIGHUP"),
        (SVID_FILE_NAME, "tls.crt"),
    ]));
    assert!(matches!(got, Refusal::Conflict { .. }), "{got:?}");
    says(
        &got,
        CONFIG_MAP,
        &[RENEW_SIGNAL, SVID_FILE_NAME, "helper.conf"],
    );
    assert!(
        !got.to_string().contains(SVID_KEY_FILE_NAME),
        "only those set: {got}"
    );
}

#[test]
fn an_unknown_agent_socket_is_refused() {
    says(
        &invalid(AGENT_SOCKET, "tcp"),
        AGENT_SOCKET,
        &["\"csi\" or \"hostpath\""],
    );
}

#[test]
fn a_misspelt_annotation_is_refused_rather_than_ignored() {
    let got = refusal(&opted_in(&[("spiffe-helper-rust/cert-dri", "/x")]));
    assert!(matches!(got, Refusal::UnknownAnnotation { .. }), "{got:?}");
    says(
        &got,
        "spiffe-helper-rust/cert-dri",
        &["(did you mean spiffe-helper-rust/cert-dir?)"],
    );
    let far = refusal(&opted_in(&[("spiffe-helper-rust/image", "x")]));
    says(&far, "spiffe-helper-rust/image", &[CERT_DIR]);
    assert!(!far.to_string().contains("did you mean"), "{far}");
}

#[test]
fn a_volume_named_like_the_injectors_is_refused() {
    let spec = json!({
        "containers": [{"name": "app", "image": "app:1"}],
        "volumes": [{"name": "spiffe-helper-certs", "emptyDir": {}}],
    });
    let got = refusal(&pod(&[(INJECT, "true")], &spec));
    says(&got, INJECT, &["spiffe-helper-certs", "rename"]);
}

#[test]
fn a_container_already_mounting_something_at_cert_dir_is_refused() {
    let spec = json!({
        "containers": [{"name": "app", "image": "app:1",
            "volumeMounts": [{"name": "tls", "mountPath": "/run/spiffe/certs/"}]}],
        "volumes": [{"name": "tls", "emptyDir": {}}],
    });
    let got = refusal(&pod(&[(INJECT, "true")], &spec));
    says(&got, CERT_DIR, &["container app", "tls"]);
}

#[test]
fn a_container_on_the_health_port_is_refused_for_a_sidecar_but_not_in_init_mode() {
    let spec = json!({"containers": [{"name": "web", "image": "w:1", "ports": [{"containerPort": 8080}]}]});
    let got = refusal(&pod(&[(INJECT, "true")], &spec));
    says(&got, INJECT, &["container web", "8080"]);
    let init = pod(&[(INJECT, "true"), (INJECT_MODE, "init")], &spec);
    assert!(
        crate::mutate(
            &init,
            super::support::NS,
            &crate::InjectorSettings::default()
        )
        .is_ok()
    );
}

#[test]
fn an_opted_in_pod_without_a_spec_is_refused() {
    let bare: k8s_openapi::api::core::v1::Pod =
        serde_json::from_value(json!({"metadata": {"annotations": {INJECT: "true"}}})).unwrap();
    let got = refusal(&bare);
    assert!(got.is_malformed(), "{got:?}");
    assert_eq!(got.annotation(), None);
}

#[test]
fn a_pod_running_as_root_is_refused_since_the_non_root_helper_would_not_start() {
    let spec = json!({
        "securityContext": {"runAsUser": 0},
        "containers": [{"name": "app", "image": "app:1"}],
    });
    let got = refusal(&pod(&[(INJECT, "true")], &spec));
    says(&got, INJECT, &["runAsUser: 0", "non-root"]);
}
