//! The settings file's serde form: defaults for what is missing, refusals for what is wrong.

use std::time::Duration;

use serde_json::json;

use crate::{AgentSocket, InjectorSettings};

fn parse(value: serde_json::Value) -> Result<InjectorSettings, String> {
    serde_json::from_value(value).map_err(|err| err.to_string())
}

#[test]
fn an_empty_document_is_the_defaults() {
    assert_eq!(parse(json!({})), Ok(InjectorSettings::default()));
}

#[test]
fn given_keys_replace_defaults_and_the_rest_stay() {
    let settings = parse(json!({
        "image": "registry.example/helper:2",
        "agentSocket": "csi",
        "startupTimeout": "2m",
        "protectedNamespaces": ["kube-system"],
        "resources": {"limits": {"memory": "32Mi"}},
    }))
    .unwrap();
    assert_eq!(settings.image, "registry.example/helper:2");
    assert_eq!(settings.agent_socket, AgentSocket::Csi);
    assert_eq!(settings.startup_timeout, Duration::from_secs(120));
    assert_eq!(settings.protected_namespaces, ["kube-system"]);
    let limits = settings.resources.limits.unwrap();
    assert_eq!(limits["memory"].0, "32Mi");
    let defaults = InjectorSettings::default();
    assert_eq!(settings.health_port, defaults.health_port);
    assert_eq!(settings.injector_namespace, defaults.injector_namespace);
}

#[test]
fn a_startup_timeout_is_seconds_or_a_number_with_a_unit() {
    for (raw, secs) in [
        (json!(30), 30),
        (json!("45"), 45),
        (json!("90s"), 90),
        (json!("5m"), 300),
        (json!("1h"), 3600),
    ] {
        let settings = parse(json!({ "startupTimeout": raw })).unwrap();
        assert_eq!(settings.startup_timeout, Duration::from_secs(secs), "{raw}");
    }
    for raw in [
        json!(0),
        json!("0s"),
        json!("5 m"),
        json!("1.5h"),
        json!("m"),
        json!(-1),
    ] {
        let err = parse(json!({ "startupTimeout": raw })).unwrap_err();
        assert!(
            err.contains("duration") || err.contains("did not match"),
            "{raw}: {err}"
        );
    }
}

#[test]
fn an_unknown_key_is_refused_with_its_name() {
    let err = parse(json!({"imagePullPolicyy": "Always"})).unwrap_err();
    assert!(err.contains("unknown field `imagePullPolicyy`"), "{err}");
}

#[test]
fn a_snake_case_key_is_refused_rather_than_ignored() {
    let err = parse(json!({"health_port": 9090})).unwrap_err();
    assert!(err.contains("unknown field `health_port`"), "{err}");
}

#[test]
fn health_port_zero_and_an_unknown_socket_mode_are_refused() {
    let err = parse(json!({"healthPort": 0})).unwrap_err();
    assert!(err.contains("healthPort 0"), "{err}");
    let err = parse(json!({"agentSocket": "hostPath"})).unwrap_err();
    assert!(err.contains("unknown variant `hostPath`"), "{err}");
}
