//! Configurations as upstream documents them parse to what an upstream user expects.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{assert_round_trip, parse};
use spiffe_helper_config::{Endpoint, FileMode, HealthConfig, Signal};

/// The "Configuration example" of upstream's README (ghostunnel).
#[test]
fn readme_ghostunnel_example() {
    // The same file drives the end-to-end test that runs it against a real SPIRE.
    let text = include_str!("../../../tests/fixtures/upstream-readme-helper.conf");
    let c = parse(text);
    assert_eq!(
        c.agent_address,
        Endpoint::Unix("/tmp/spire-agent/public/api.sock".into())
    );
    assert!(c.daemon_mode);
    assert_eq!(c.cmd.as_deref(), Some("ghostunnel"));
    assert_eq!(c.cmd_args.len(), 11);
    assert_eq!(c.cmd_args[0], "server");
    assert_eq!(c.cmd_args[10], "spiffe://example.org/Database");
    assert_eq!(c.renew_signal, Some(Signal::SIGUSR1));
    let x509 = c.x509.as_ref().unwrap();
    assert_eq!(x509.key, Path::new("certs/svid_key.pem"));
    assert_eq!(c.jwt_svids.len(), 1);
    assert_eq!(c.jwt_svids[0].audience, "your-audience");
    assert_eq!(
        c.jwt_svids[0].extra_audiences,
        ["your-extra-audience-1", "your-extra-audience-2"]
    );
    assert_eq!(c.jwt_svids[0].path, Path::new("certs/jwt_svid.token"));
    assert_eq!(
        c.jwt_bundle.as_deref(),
        Some(Path::new("certs/bundle.json"))
    );
    for mode in [
        c.cert_file_mode,
        c.key_file_mode,
        c.jwt_bundle_file_mode,
        c.jwt_svid_file_mode,
    ] {
        assert_eq!(mode, FileMode(0o444), "0444 in an upstream file is octal");
    }
    assert_round_trip(&c);
}

/// Upstream's test data: quoted modes, multi-line `jwt_svids` list (minus the removed `timeout`).
#[test]
fn upstream_testdata_envoy_example() {
    let text = r#"agent_address = "/tmp/spire-agent/public/api.sock"
cmd = "hot-restarter.py"
cmd_args = "start_envoy.sh"
cert_dir = "certs"
cert_file_mode = "0444"
key_file_mode = "0444"
jwt_bundle_file_mode = "0444"
jwt_svid_file_mode = "0444"
renew_signal = "SIGHUP"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
jwt_bundle_file_name = "jwt_bundle.json"
jwt_svids = [
  {
    jwt_svid_file_name = "jwt_svid.token"
    jwt_audience = "your-audience"
  }
]
add_intermediates_to_bundle = true
"#;
    let c = parse(text);
    assert_eq!(c.cmd_args, ["start_envoy.sh"]);
    assert_eq!(c.key_file_mode, FileMode(0o444));
    assert!(c.add_intermediates_to_bundle);
    assert_eq!(c.jwt_svids[0].audience, "your-audience");
    assert_round_trip(&c);
}

/// A JWT-only helper: no X.509 files at all.
#[test]
fn jwt_only_example() {
    let text = r#"agent_address = "unix:///run/spire/sockets/agent.sock"
daemon_mode = false
cert_dir = "/run/jwt"
jwt_bundle_file_name = "bundle.json"
jwt_svids = [{jwt_audience = "api.example.org", jwt_svid_file_name = "api.token"}]
"#;
    let c = parse(text);
    assert_eq!(c.x509, None);
    assert!(!c.daemon_mode);
    assert_eq!(c.jwt_svids[0].path, Path::new("/run/jwt/api.token"));
    assert_eq!(
        c.jwt_bundle.as_deref(),
        Some(Path::new("/run/jwt/bundle.json"))
    );
    assert_round_trip(&c);
}

/// A Kubernetes sidecar with upstream-style health checks.
#[test]
fn health_checks_example() {
    let text = r#"agent_address = "/spiffe-workload-api/spire-agent.sock"
cert_dir = "/certs"
svid_file_name = "tls.crt"
svid_key_file_name = "tls.key"
svid_bundle_file_name = "ca.crt"
health_checks {
  listener_enabled = true
  bind_port = "8081"
  liveness_path = "/live"
  readiness_path = "/ready"
}
"#;
    let c = parse(text);
    assert_eq!(
        c.health,
        Some(HealthConfig {
            bind_port: 8081,
            liveness_path: "/live".into(),
            readiness_path: "/ready".into(),
            ..HealthConfig::default()
        })
    );
    assert_eq!(c.x509.as_ref().unwrap().svid, Path::new("/certs/tls.crt"));
    assert_round_trip(&c);
}

/// Two JWT-SVIDs with different audiences, next to X.509 output.
#[test]
fn two_jwt_svids_example() {
    let text = r#"agent_address = "/tmp/agent.sock"
cert_dir = "certs"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
jwt_svids = [
  {jwt_audience = "aud-one", jwt_svid_file_name = "one.token"},
  {jwt_audience = "aud-two", jwt_extra_audiences = ["extra"], jwt_svid_file_name = "two.token"},
]
"#;
    let c = parse(text);
    let got: Vec<_> = c
        .jwt_svids
        .iter()
        .map(|j| {
            (
                j.audience.as_str(),
                j.extra_audiences.len(),
                j.path.to_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("aud-one", 0, "certs/one.token"),
            ("aud-two", 1, "certs/two.token")
        ]
    );
    assert!(c.x509.is_some());
    assert_round_trip(&c);
}

#[test]
fn effective_output_shape() {
    let c = parse(
        "agent_address = \"/a.sock\"\ncert_dir = \"certs\"\ncmd = \"app\"\ncmd_args = \"a \\\"b c\\\" \\\"\\\"\"\n",
    );
    let text = c.effective();
    for line in [
        "agent_address = \"unix:///a.sock\"",
        "daemon_mode = true",
        "svid_file_name = \"svid.pem\"",
        "cert_file_mode = 0644",
        "key_file_mode = 0600",
        "cmd_args = \"a \\\"b c\\\" \\\"\\\"\"",
        "startup_timeout = \"30s\"",
        "log_level = \"info\"",
        "  listener_enabled = false",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert_round_trip(&c);
}
