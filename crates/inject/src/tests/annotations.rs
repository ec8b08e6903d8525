//! One test per annotation: what it changes in the injected pod.

use serde_json::json;

use super::support::{
    NS, containers, env, helper, inject, mount, opted_in, pod, spec_init, volume,
};
use crate::{
    AGENT_SOCKET, CERT_DIR, CERTS_VOLUME, CONFIG_MAP, CONFIG_VOLUME, INJECT, INJECT_MODE,
    InjectorSettings, JWT_AUDIENCES, Mutation, PID_FILE_NAME, RENEW_SIGNAL, SVID_BUNDLE_FILE_NAME,
    SVID_COMBINED_FILE_NAME, SVID_FILE_NAME, SVID_KEY_FILE_NAME, mutate,
};

#[test]
fn inject_mode_sidecar_is_the_default_spelled_out() {
    let spelled = inject(&opted_in(&[(INJECT_MODE, "sidecar")]));
    assert_eq!(spelled.spec, inject(&opted_in(&[])).spec);
}

#[test]
fn cert_dir_moves_the_certificate_mount_everywhere_and_the_helper_writes_there() {
    let pod = inject(&opted_in(&[(CERT_DIR, "/var/run/tls/")]));
    assert_eq!(env(helper(&pod))["SPIFFE_HLP_CERT_DIR"], "/var/run/tls");
    assert_eq!(
        mount(helper(&pod), CERTS_VOLUME).unwrap().mount_path,
        "/var/run/tls"
    );
    assert_eq!(
        mount(&containers(&pod)[0], CERTS_VOLUME)
            .unwrap()
            .mount_path,
        "/var/run/tls"
    );
}

#[test]
fn the_x509_file_name_annotations_set_the_helper_keys() {
    let pod = inject(&opted_in(&[
        (SVID_FILE_NAME, "tls.crt"),
        (SVID_KEY_FILE_NAME, "tls.key"),
        (SVID_BUNDLE_FILE_NAME, "ca.crt"),
    ]));
    let env = env(helper(&pod));
    assert_eq!(env["SPIFFE_HLP_SVID_FILE_NAME"], "tls.crt");
    assert_eq!(env["SPIFFE_HLP_SVID_KEY_FILE_NAME"], "tls.key");
    assert_eq!(env["SPIFFE_HLP_SVID_BUNDLE_FILE_NAME"], "ca.crt");
    assert!(!env.contains_key("SPIFFE_HLP_SVID_COMBINED_FILE_NAME"));
}

#[test]
fn svid_combined_file_name_adds_the_combined_file() {
    let pod = inject(&opted_in(&[(SVID_COMBINED_FILE_NAME, "combined.pem")]));
    assert_eq!(
        env(helper(&pod))["SPIFFE_HLP_SVID_COMBINED_FILE_NAME"],
        "combined.pem"
    );
}

#[test]
fn renew_signal_is_passed_as_written_in_any_spelling_the_helper_accepts() {
    for signal in ["SIGHUP", "hup", "SIGUSR1"] {
        let pod = inject(&opted_in(&[(RENEW_SIGNAL, signal)]));
        assert_eq!(env(helper(&pod))["SPIFFE_HLP_RENEW_SIGNAL"], signal);
    }
}

#[test]
fn pid_file_name_shares_the_process_namespace_and_the_pid_files_volume() {
    let spec = json!({
        "containers": [{
            "name": "nginx", "image": "nginx:1",
            "volumeMounts": [
                {"name": "nginx-run", "mountPath": "/run/nginx"},
                {"name": "nginx-tmp", "mountPath": "/tmp"},
            ],
        }],
        "volumes": [{"name": "nginx-run", "emptyDir": {}}, {"name": "nginx-tmp", "emptyDir": {}}],
    });
    let before = pod(
        &[
            (INJECT, "true"),
            (RENEW_SIGNAL, "SIGHUP"),
            (PID_FILE_NAME, "/run/nginx/nginx.pid"),
        ],
        &spec,
    );
    let pod = inject(&before);
    assert_eq!(
        pod.spec.as_ref().unwrap().share_process_namespace,
        Some(true)
    );
    let env = env(helper(&pod));
    assert_eq!(env["SPIFFE_HLP_PID_FILE_NAME"], "/run/nginx/nginx.pid");
    let shared = mount(helper(&pod), "nginx-run").expect("the pid file's volume");
    assert_eq!(
        (shared.mount_path.as_str(), shared.read_only),
        ("/run/nginx", Some(true))
    );
    assert!(
        mount(helper(&pod), "nginx-tmp").is_none(),
        "only the volume holding the file"
    );
}

#[test]
fn pid_file_name_keeps_a_pods_explicit_share_process_namespace_true() {
    let spec = json!({
        "shareProcessNamespace": true,
        "containers": [{"name": "db", "image": "pg:17",
            "volumeMounts": [{"name": "data", "mountPath": "/var/lib/postgresql"}]}],
        "volumes": [{"name": "data", "emptyDir": {}}],
    });
    let before = pod(
        &[
            (INJECT, "true"),
            (RENEW_SIGNAL, "SIGHUP"),
            (PID_FILE_NAME, "/var/lib/postgresql/data/postmaster.pid"),
        ],
        &spec,
    );
    let pod = inject(&before);
    assert_eq!(
        pod.spec.as_ref().unwrap().share_process_namespace,
        Some(true)
    );
    let shared = mount(helper(&pod), "data").expect("the pid file's volume");
    assert_eq!(shared.mount_path, "/var/lib/postgresql");
}

#[test]
fn jwt_audiences_write_one_named_token_file_per_audience() {
    let pod = inject(&opted_in(&[(
        JWT_AUDIENCES,
        "vault, https://api.example.org/v1",
    )]));
    let env = env(helper(&pod));
    let svids: serde_json::Value = serde_json::from_str(&env["SPIFFE_HLP_JWT_SVIDS"]).unwrap();
    assert_eq!(
        svids,
        json!([
            {"jwt_audience": "vault", "jwt_svid_file_name": "jwt_vault.token"},
            {"jwt_audience": "https://api.example.org/v1",
             "jwt_svid_file_name": "jwt_https___api.example.org_v1.token"},
        ])
    );
    assert_eq!(
        env["SPIFFE_HLP_SVID_FILE_NAME"], "svid.pem",
        "X.509 files stay on"
    );
}

#[test]
fn config_map_mounts_helper_conf_and_passes_it_with_dash_config() {
    let pod = inject(&opted_in(&[(CONFIG_MAP, "my-helper")]));
    let config = volume(&pod, CONFIG_VOLUME)
        .config_map
        .as_ref()
        .expect("a ConfigMap volume");
    assert_eq!(config.name, "my-helper");
    let helper = helper(&pod);
    let m = mount(helper, CONFIG_VOLUME).expect("mounted in the helper");
    assert_eq!(
        (m.mount_path.as_str(), m.read_only),
        ("/etc/spiffe-helper", Some(true))
    );
    let args = helper.args.clone().unwrap_or_default();
    assert_eq!(args, ["-config", "/etc/spiffe-helper/helper.conf"]);
    let env = env(helper);
    assert!(
        !env.contains_key("SPIFFE_HLP_SVID_FILE_NAME"),
        "the file names its files"
    );
    for owned in [
        "SPIFFE_HLP_AGENT_ADDRESS",
        "SPIFFE_HLP_CERT_DIR",
        "SPIFFE_HLP_HEALTH_CHECKS_BIND_PORT",
    ] {
        assert!(
            env.contains_key(owned),
            "{owned}: the injector owns the socket, volume and probes"
        );
    }
    assert!(mount(&containers(&pod)[0], CONFIG_VOLUME).is_none());
}

#[test]
fn config_map_in_init_mode_passes_both_flags() {
    let pod = inject(&opted_in(&[
        (CONFIG_MAP, "my-helper"),
        (INJECT_MODE, "init"),
    ]));
    let args = helper(&pod).args.clone().unwrap_or_default();
    assert_eq!(
        args,
        [
            "-config",
            "/etc/spiffe-helper/helper.conf",
            "-daemon-mode=false"
        ]
    );
    assert_eq!(spec_init(&pod).len(), 1);
}

#[test]
fn agent_socket_hostpath_is_the_default_spelled_out() {
    let spelled = inject(&opted_in(&[(AGENT_SOCKET, "hostpath")]));
    assert_eq!(spelled.spec, inject(&opted_in(&[])).spec);
}

#[test]
fn a_setting_the_helper_warns_about_comes_back_as_an_admission_warning() {
    // In one-shot mode the helper ignores renew_signal and says so.
    let pod = opted_in(&[(INJECT_MODE, "init"), (RENEW_SIGNAL, "SIGHUP")]);
    let got = mutate(&pod, NS, &InjectorSettings::default()).unwrap();
    let Mutation::Patch { warnings, .. } = got else {
        panic!("{got:?}")
    };
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("renew_signal"), "{warnings:?}");
    assert!(
        warnings[0].contains(RENEW_SIGNAL),
        "named by its annotation: {warnings:?}"
    );
}

#[test]
fn a_pod_without_a_pod_level_uid_is_warned_that_the_app_may_not_read_the_key() {
    let spec = json!({"containers": [{"name": "app", "image": "app:1"}]});
    let got = mutate(
        &pod(&[(INJECT, "true")], &spec),
        NS,
        &InjectorSettings::default(),
    )
    .unwrap();
    let Mutation::Patch { warnings, .. } = got else {
        panic!("{got:?}")
    };
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("runAsUser") && warnings[0].contains("0600"),
        "{warnings:?}"
    );
}
