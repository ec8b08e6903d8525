//! The injected pod: its shape, where the helper goes, which arrays are created, and the pods
//! left alone.

use serde_json::json;

use super::support::{
    NS, annotations, apply, containers, env, helper, inject, inject_with, minimal_spec, mount,
    opted_in, pod, spec_init, volume, volumes,
};
use crate::{
    AgentSocket, CERTS_VOLUME, INJECT, INJECT_MODE, INJECTED, InjectorSettings, Mutation,
    SOCKET_VOLUME, Skip, mutate,
};

#[test]
fn an_opted_in_pod_gets_the_helper_as_a_native_sidecar_like_the_demo_manifest() {
    let pod = inject(&opted_in(&[]));
    let helper = helper(&pod);
    assert_eq!(helper.restart_policy.as_deref(), Some("Always"));
    assert_eq!(helper.image.as_deref(), Some("spiffe-helper-rust:0.1.0"));
    assert_eq!(helper.image_pull_policy.as_deref(), Some("IfNotPresent"));
    assert_eq!(helper.args, None, "configured by the environment alone");

    let probe = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        let p = p.as_ref().expect("a probe");
        let get = p.http_get.as_ref().expect("an HTTP probe");
        (
            get.path.clone().unwrap_or_default(),
            serde_json::to_value(&get.port).unwrap(),
        )
    };
    assert_eq!(
        probe(&helper.startup_probe),
        ("/health/ready".into(), json!(8080))
    );
    assert_eq!(
        probe(&helper.liveness_probe),
        ("/health/live".into(), json!(8080))
    );
    assert_eq!(
        probe(&helper.readiness_probe),
        ("/health/ready".into(), json!(8080))
    );
    let startup = helper.startup_probe.as_ref().unwrap();
    assert_eq!(startup.period_seconds, Some(1));
    assert_eq!(
        startup.failure_threshold,
        Some(320),
        "300 s startup_timeout + 20 s"
    );

    let sc = helper
        .security_context
        .as_ref()
        .expect("a security context");
    assert_eq!(sc.run_as_non_root, Some(true));
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let drop = sc.capabilities.as_ref().and_then(|c| c.drop.clone());
    assert_eq!(drop, Some(vec!["ALL".to_owned()]));
    let resources = helper.resources.as_ref().expect("resources");
    assert_eq!(resources.requests.as_ref().unwrap()["memory"].0, "8Mi");
    assert_eq!(resources.limits.as_ref().unwrap()["memory"].0, "64Mi");
    let ports = helper.ports.as_ref().expect("the health port");
    assert_eq!(ports[0].container_port, 8080);
}

#[test]
fn the_helper_is_configured_by_environment_variables_the_helper_reads() {
    let pod = inject(&opted_in(&[]));
    let env = env(helper(&pod));
    let expected = [
        (
            "SPIFFE_HLP_AGENT_ADDRESS",
            "unix:///run/spire/sockets/agent.sock",
        ),
        ("SPIFFE_HLP_CERT_DIR", "/run/spiffe/certs"),
        ("SPIFFE_HLP_SVID_FILE_NAME", "svid.pem"),
        ("SPIFFE_HLP_SVID_KEY_FILE_NAME", "svid_key.pem"),
        ("SPIFFE_HLP_SVID_BUNDLE_FILE_NAME", "svid_bundle.pem"),
        ("SPIFFE_HLP_STARTUP_TIMEOUT", "300s"),
        ("SPIFFE_HLP_HEALTH_CHECKS_LISTENER_ENABLED", "true"),
        ("SPIFFE_HLP_HEALTH_CHECKS_BIND_PORT", "8080"),
        ("SPIFFE_HLP_HEALTH_CHECKS_LIVENESS_PATH", "/health/live"),
        ("SPIFFE_HLP_HEALTH_CHECKS_READINESS_PATH", "/health/ready"),
    ];
    let expected: std::collections::BTreeMap<String, String> = expected
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    assert_eq!(env, expected);

    // The helper binary, given exactly these variables and no file, accepts them.
    let lookup = |name: &str| env.get(name).cloned();
    let (config, _) = spiffe_helper_config::Config::parse_str(
        "",
        std::path::Path::new("helper.conf"),
        &spiffe_helper_config::Overrides::default(),
        &lookup,
    )
    .expect("the helper accepts the injected environment");
    assert!(config.daemon_mode);
    assert_eq!(config.health.expect("health server").bind_port, 8080);
}

#[test]
fn certificates_are_an_in_memory_volume_read_only_in_apps_and_writable_in_the_helper() {
    let pod = inject(&opted_in(&[]));
    let certs = volume(&pod, CERTS_VOLUME)
        .empty_dir
        .as_ref()
        .expect("an emptyDir");
    assert_eq!(certs.medium.as_deref(), Some("Memory"));

    let in_helper = mount(helper(&pod), CERTS_VOLUME).expect("mounted in the helper");
    assert_eq!(in_helper.mount_path, "/run/spiffe/certs");
    assert_ne!(in_helper.read_only, Some(true));
    let in_app = mount(&containers(&pod)[0], CERTS_VOLUME).expect("mounted in the app");
    assert_eq!(in_app.mount_path, "/run/spiffe/certs");
    assert_eq!(in_app.read_only, Some(true));
}

#[test]
fn the_agent_socket_is_a_host_path_mounted_into_the_helper_only() {
    let pod = inject(&opted_in(&[]));
    let host = volume(&pod, SOCKET_VOLUME)
        .host_path
        .as_ref()
        .expect("hostPath");
    assert_eq!(host.path, "/run/spire/agent-sockets");
    assert_eq!(host.type_.as_deref(), Some("Directory"));
    let socket = mount(helper(&pod), SOCKET_VOLUME).expect("mounted in the helper");
    assert_eq!(
        (socket.mount_path.as_str(), socket.read_only),
        ("/run/spire/sockets", Some(true))
    );
    assert!(mount(&containers(&pod)[0], SOCKET_VOLUME).is_none());
}

#[test]
fn a_pod_without_init_containers_volumes_or_mounts_gets_the_arrays_created() {
    let before = opted_in(&[]);
    let spec = before.spec.as_ref().unwrap();
    assert!(spec.init_containers.is_none() && spec.volumes.is_none());
    assert!(spec.containers[0].volume_mounts.is_none());

    let pod = inject(&before);
    assert_eq!(spec_init(&pod).len(), 1);
    assert_eq!(volumes(&pod).len(), 2);
    assert_eq!(
        containers(&pod)[0].volume_mounts.as_ref().map(Vec::len),
        Some(1)
    );
}

#[test]
fn existing_init_containers_volumes_and_mounts_are_kept_and_the_helper_goes_first() {
    let spec = json!({
        "initContainers": [
            {"name": "migrate", "image": "m:1", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            {"name": "warm", "image": "w:1"},
        ],
        "containers": [
            {"name": "app", "image": "app:1", "volumeMounts": [{"name": "data", "mountPath": "/data"}]},
            {"name": "proxy", "image": "p:1"},
        ],
        "volumes": [{"name": "data", "emptyDir": {}}],
    });
    let pod = inject(&pod(&[(INJECT, "true")], &spec));
    let names: Vec<&str> = spec_init(&pod).iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["spiffe-helper", "migrate", "warm"]);
    let vols: Vec<&str> = volumes(&pod).iter().map(|v| v.name.as_str()).collect();
    assert_eq!(vols, ["data", CERTS_VOLUME, SOCKET_VOLUME]);
    for c in spec_init(&pod).iter().skip(1).chain(containers(&pod)) {
        let certs = mount(c, CERTS_VOLUME).unwrap_or_else(|| panic!("{} has the certs", c.name));
        assert_eq!(certs.read_only, Some(true), "{}", c.name);
    }
    assert!(
        mount(&spec_init(&pod)[1], "data").is_some(),
        "existing mounts kept"
    );
    assert!(
        mount(&containers(&pod)[0], "data").is_some(),
        "existing mounts kept"
    );
}

#[test]
fn init_mode_runs_the_helper_once_before_the_apps_without_probes() {
    let pod = inject(&opted_in(&[(INJECT_MODE, "init")]));
    let helper = helper(&pod);
    assert_eq!(
        helper.restart_policy, None,
        "a plain initContainer runs to completion"
    );
    assert_eq!(
        helper.args.as_deref(),
        Some(&["-daemon-mode=false".to_owned()][..])
    );
    assert!(helper.startup_probe.is_none() && helper.liveness_probe.is_none());
    assert!(helper.readiness_probe.is_none() && helper.ports.is_none());
    let env = env(helper);
    assert!(
        !env.keys()
            .any(|k| k.starts_with("SPIFFE_HLP_HEALTH_CHECKS")),
        "{env:?}"
    );
    assert!(mount(&containers(&pod)[0], CERTS_VOLUME).is_some());
}

#[test]
fn csi_mode_mounts_the_socket_through_the_spiffe_csi_driver() {
    let pod = inject(&opted_in(&[(crate::AGENT_SOCKET, "csi")]));
    let socket = volume(&pod, SOCKET_VOLUME);
    assert!(socket.host_path.is_none(), "no hostPath volume in CSI mode");
    let csi = socket.csi.as_ref().expect("a CSI volume");
    assert_eq!(
        (csi.driver.as_str(), csi.read_only),
        ("csi.spiffe.io", Some(true))
    );
}

#[test]
fn the_settings_default_socket_mode_applies_and_the_annotation_overrides_it() {
    let settings = InjectorSettings {
        agent_socket: AgentSocket::Csi,
        ..InjectorSettings::default()
    };
    let pod_csi = inject_with(&opted_in(&[]), &settings);
    assert!(volume(&pod_csi, SOCKET_VOLUME).csi.is_some());
    let pod_host = inject_with(&opted_in(&[(crate::AGENT_SOCKET, "hostpath")]), &settings);
    assert!(volume(&pod_host, SOCKET_VOLUME).host_path.is_some());
}

#[test]
fn the_settings_choose_image_port_resources_and_startup_timeout() {
    let settings = InjectorSettings {
        image: "registry.example/helper:2".into(),
        image_pull_policy: "Always".into(),
        health_port: 9090,
        startup_timeout: std::time::Duration::from_secs(60),
        ..InjectorSettings::default()
    };
    let pod = inject_with(&opted_in(&[]), &settings);
    let helper = helper(&pod);
    assert_eq!(helper.image.as_deref(), Some("registry.example/helper:2"));
    assert_eq!(helper.image_pull_policy.as_deref(), Some("Always"));
    assert_eq!(helper.ports.as_ref().unwrap()[0].container_port, 9090);
    let port = &helper
        .liveness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap()
        .port;
    assert_eq!(serde_json::to_value(port).unwrap(), json!(9090));
    assert_eq!(
        helper.startup_probe.as_ref().unwrap().failure_threshold,
        Some(80)
    );
    let env = env(helper);
    assert_eq!(env["SPIFFE_HLP_HEALTH_CHECKS_BIND_PORT"], "9090");
    assert_eq!(env["SPIFFE_HLP_STARTUP_TIMEOUT"], "60s");
}

#[test]
fn the_injected_pod_carries_the_marker_annotation_under_its_escaped_path() {
    let before = opted_in(&[]);
    let mutation = mutate(&before, NS, &InjectorSettings::default()).unwrap();
    let Mutation::Patch { patch, .. } = &mutation else {
        panic!("{mutation:?}")
    };
    // The text is the point here: `/` in the key is `~1` in the pointer (RFC 6901 §3).
    let paths: Vec<String> = serde_json::to_value(patch)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["path"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        paths.contains(&"/metadata/annotations/spiffe-helper-rust~1injected".to_owned()),
        "{paths:?}"
    );
    let after = apply(&before, &mutation);
    assert_eq!(
        annotations(&after).get(INJECTED).map(String::as_str),
        Some("true")
    );
    assert_eq!(
        annotations(&after).get(INJECT).map(String::as_str),
        Some("true")
    );
}

#[test]
fn pointer_tokens_escape_tilde_and_slash() {
    let pointer = crate::patch::pointer(&["metadata", "annotations", "a~b/c"]);
    assert_eq!(pointer.as_str(), "/metadata/annotations/a~0b~1c");
    let mut doc = json!({"metadata": {"annotations": {}}});
    let op = json!([{"op": "add", "path": pointer.as_str(), "value": "v"}]);
    json_patch::patch(
        &mut doc,
        &serde_json::from_value::<json_patch::Patch>(op).unwrap(),
    )
    .unwrap();
    assert_eq!(doc["metadata"]["annotations"]["a~b/c"], "v");
}

#[test]
fn mutating_the_mutated_pod_leaves_it_alone() {
    let settings = InjectorSettings::default();
    for mode in ["sidecar", "init"] {
        let once = inject(&opted_in(&[(INJECT_MODE, mode)]));
        let again = mutate(&once, NS, &settings).unwrap();
        assert_eq!(again, Mutation::Leave(Skip::AlreadyInjected), "{mode}");
    }
}

#[test]
fn a_pod_that_already_has_a_spiffe_helper_container_is_left_alone() {
    let spec = json!({
        "initContainers": [{"name": "spiffe-helper", "image": "spiffe-helper-rust:0.1.0"}],
        "containers": [{"name": "app", "image": "app:1"}],
    });
    let hand_written = pod(&[(INJECT, "true")], &spec);
    let got = mutate(&hand_written, NS, &InjectorSettings::default()).unwrap();
    assert_eq!(got, Mutation::Leave(Skip::AlreadyInjected));
}

#[test]
fn a_pod_carrying_the_marker_is_left_alone() {
    let marked = opted_in(&[(INJECTED, "true")]);
    let got = mutate(&marked, NS, &InjectorSettings::default()).unwrap();
    assert_eq!(got, Mutation::Leave(Skip::AlreadyInjected));
}

#[test]
fn pods_in_protected_namespaces_are_never_touched_even_with_bad_annotations() {
    let bad = opted_in(&[(INJECT_MODE, "nonsense")]);
    let settings = InjectorSettings {
        injector_namespace: "spiffe-injector".into(),
        ..InjectorSettings::default()
    };
    for ns in ["kube-system", "spire", "spiffe-injector"] {
        let got = mutate(&bad, ns, &settings).unwrap();
        assert_eq!(got, Mutation::Leave(Skip::ProtectedNamespace), "{ns}");
    }
    assert!(
        mutate(&bad, "default", &settings).is_err(),
        "elsewhere the annotation is checked"
    );
}

#[test]
fn pods_that_did_not_opt_in_are_left_alone_whatever_else_they_carry() {
    let settings = InjectorSettings::default();
    let absent = pod(&[(INJECT_MODE, "nonsense")], &minimal_spec());
    let off = pod(
        &[(INJECT, "false"), (INJECT_MODE, "nonsense")],
        &minimal_spec(),
    );
    let bare: k8s_openapi::api::core::v1::Pod =
        serde_json::from_value(json!({"metadata": {}, "spec": minimal_spec()})).unwrap();
    for pod in [absent, off, bare] {
        assert_eq!(
            mutate(&pod, NS, &settings).unwrap(),
            Mutation::Leave(Skip::NotOptedIn)
        );
    }
}

#[test]
fn empty_arrays_in_the_submitted_pod_are_appended_to() {
    let spec = json!({
        "securityContext": {"runAsUser": 101},
        "initContainers": [],
        "containers": [{"name": "app", "image": "app:1", "volumeMounts": []}],
        "volumes": [],
    });
    let pod = inject(&pod(&[(INJECT, "true")], &spec));
    assert_eq!(spec_init(&pod).len(), 1);
    assert_eq!(volumes(&pod).len(), 2);
    assert!(mount(&containers(&pod)[0], CERTS_VOLUME).is_some());
}

#[test]
fn an_enormous_startup_timeout_caps_the_probe_instead_of_overflowing() {
    let settings = InjectorSettings {
        startup_timeout: std::time::Duration::MAX,
        ..InjectorSettings::default()
    };
    let pod = inject_with(&opted_in(&[]), &settings);
    let startup = helper(&pod).startup_probe.as_ref().unwrap();
    assert_eq!(startup.failure_threshold, Some(i32::MAX));
}
