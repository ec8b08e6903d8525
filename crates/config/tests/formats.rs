//! YAML, JSON and `SPIFFE_HLP_*` environment variables next to HCL (docs/configuration.md,
//! "Formats and the environment"): the same configuration written each way has the same
//! effective configuration (what `--validate` prints), variables override the file, a missing
//! file with variables set is a configuration from the environment alone, and errors name the
//! file, line and column, or the variable.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use spiffe_helper_config::{Config, ConfigFormat, Overrides};

const HCL: &str = r#"
agent_address = "unix:///run/spire/agent.sock"
cert_dir = "/run/certs"
svid_file_name = "svid.pem"
svid_key_file_name = "svid_key.pem"
svid_bundle_file_name = "svid_bundle.pem"
cert_file_mode = 0640
renew_signal = "SIGHUP"
cmd = "nginx"
cmd_args = "-g \"daemon off;\""
jwt_bundle_file_name = "jwt_bundle.json"
jwt_svids = [{ jwt_audience = "a", jwt_extra_audiences = ["b"], jwt_svid_file_name = "a.token" }]
include_federated_domains = false
startup_timeout = "45s"
health_checks {
  listener_enabled = true
  bind_port = 8081
}
"#;

const YAML: &str = r#"
# the same configuration in YAML
agent_address: unix:///run/spire/agent.sock
cert_dir: /run/certs
svid_file_name: svid.pem
svid_key_file_name: "svid_key.pem"
svid_bundle_file_name: 'svid_bundle.pem'
cert_file_mode: 0640
renew_signal: SIGHUP
cmd: nginx
cmd_args: '-g "daemon off;"'
jwt_bundle_file_name: jwt_bundle.json
jwt_svids:
  - jwt_audience: a
    jwt_extra_audiences: [b]
    jwt_svid_file_name: a.token
include_federated_domains: false
startup_timeout: 45s
health_checks:
  listener_enabled: true
  bind_port: 8081
"#;

fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

fn parse(text: &str, name: &str, format: ConfigFormat, env: &[(&str, &str)]) -> Config {
    let overrides = Overrides {
        format,
        ..Overrides::default()
    };
    Config::parse_str(text, Path::new(name), &overrides, &env_of(env))
        .unwrap_or_else(|e| panic!("{name} should parse: {e}"))
        .0
}

fn error(text: &str, name: &str, format: ConfigFormat, env: &[(&str, &str)]) -> String {
    let overrides = Overrides {
        format,
        ..Overrides::default()
    };
    match Config::parse_str(text, Path::new(name), &overrides, &env_of(env)) {
        Ok(_) => panic!("{name} should be refused"),
        Err(e) => e.to_string(),
    }
}

const ENV: &[(&str, &str)] = &[
    ("SPIFFE_HLP_AGENT_ADDRESS", "unix:///run/spire/agent.sock"),
    ("SPIFFE_HLP_CERT_DIR", "/run/certs"),
    ("SPIFFE_HLP_SVID_FILE_NAME", "svid.pem"),
    ("SPIFFE_HLP_SVID_KEY_FILE_NAME", "svid_key.pem"),
    ("SPIFFE_HLP_SVID_BUNDLE_FILE_NAME", "svid_bundle.pem"),
    ("SPIFFE_HLP_CERT_FILE_MODE", "0640"),
    ("SPIFFE_HLP_RENEW_SIGNAL", "SIGHUP"),
    ("SPIFFE_HLP_CMD", "nginx"),
    ("SPIFFE_HLP_CMD_ARGS", "-g \"daemon off;\""),
    ("SPIFFE_HLP_JWT_BUNDLE_FILE_NAME", "jwt_bundle.json"),
    (
        "SPIFFE_HLP_JWT_SVIDS",
        r#"[{"jwt_audience":"a","jwt_extra_audiences":["b"],"jwt_svid_file_name":"a.token"}]"#,
    ),
    ("SPIFFE_HLP_INCLUDE_FEDERATED_DOMAINS", "false"),
    ("SPIFFE_HLP_STARTUP_TIMEOUT", "45s"),
    ("SPIFFE_HLP_HEALTH_CHECKS_LISTENER_ENABLED", "true"),
    ("SPIFFE_HLP_HEALTH_CHECKS_BIND_PORT", "8081"),
];

#[test]
fn yaml_and_the_environment_give_the_effective_configuration_of_the_hcl() {
    let hcl = parse(HCL, "helper.conf", ConfigFormat::Auto, &[]);
    let yaml = parse(YAML, "helper.yaml", ConfigFormat::Auto, &[]);
    let forced = parse(YAML, "helper.conf", ConfigFormat::Yaml, &[]);
    let env = parse("", "helper.conf", ConfigFormat::Auto, ENV);
    assert_eq!(yaml, hcl);
    assert_eq!(forced, hcl);
    assert_eq!(env, hcl);
    assert_eq!(yaml.effective(), hcl.effective());
    assert_eq!(env.effective(), hcl.effective());
    let json = r#"{"agent_address": "unix:///run/spire/agent.sock", "cert_dir": "/run/certs"}"#;
    assert_eq!(
        parse(json, "helper.json", ConfigFormat::Auto, &[]),
        parse(json, "helper.conf", ConfigFormat::Json, &[])
    );
}

#[test]
fn a_variable_overrides_the_file_and_a_json_block_can_set_health_checks() {
    let c = parse(
        HCL,
        "helper.conf",
        ConfigFormat::Auto,
        &[
            ("SPIFFE_HLP_CERT_DIR", "/elsewhere"),
            ("SPIFFE_HLP_DAEMON_MODE", "false"),
            (
                "SPIFFE_HLP_HEALTH_CHECKS",
                r#"{"listener_enabled": true, "bind_port": 9000}"#,
            ),
        ],
    );
    assert_eq!(c.cert_dir.as_deref(), Some(Path::new("/elsewhere")));
    assert!(!c.daemon_mode);
    assert!(c.health.is_none(), "one-shot mode has no health server");
    let c = parse(
        HCL,
        "helper.conf",
        ConfigFormat::Auto,
        &[
            (
                "SPIFFE_HLP_HEALTH_CHECKS",
                r#"{"listener_enabled": true, "bind_port": 9000}"#,
            ),
            ("SPIFFE_HLP_HEALTH_CHECKS_BIND_PORT", "9001"),
        ],
    );
    assert_eq!(c.health.unwrap().bind_port, 9001, "the field variable wins");
}

#[test]
fn errors_name_the_line_and_column_or_the_variable() {
    let e = error(
        "agent_address: unix:///a.sock\ncert_dir: [1, 2\n",
        "helper.yaml",
        ConfigFormat::Auto,
        &[],
    );
    assert!(e.starts_with("helper.yaml:"), "{e}");
    let e = error(
        "agent_address: unix:///a.sock\ncert_dir: certs\ncert_file_mode: 0999\n",
        "helper.yaml",
        ConfigFormat::Auto,
        &[],
    );
    assert!(
        e.contains("helper.yaml:3:") && e.contains("cert_file_mode"),
        "{e}"
    );
    let e = error(
        "agent_address: unix:///a.sock\ncert_dir: a\ncert_dir: b\n",
        "helper.yaml",
        ConfigFormat::Auto,
        &[],
    );
    assert!(
        e.contains("helper.yaml:3") && e.contains("cert_dir"),
        "duplicate key: {e}"
    );
    let e = error(
        "agent_address: &a unix:///a.sock\ncert_dir: *a\n",
        "helper.yaml",
        ConfigFormat::Auto,
        &[],
    );
    assert!(e.contains("helper.yaml:2") && e.contains("aliases"), "{e}");
    let e = error(
        "",
        "helper.conf",
        ConfigFormat::Auto,
        &[
            ("SPIFFE_HLP_AGENT_ADDRESS", "unix:///a.sock"),
            ("SPIFFE_HLP_CERT_DIR", "certs"),
            ("SPIFFE_HLP_KEY_FILE_MODE", "0999"),
        ],
    );
    assert!(
        e.contains("environment variable SPIFFE_HLP_KEY_FILE_MODE"),
        "{e}"
    );
    let e = error(
        "",
        "helper.conf",
        ConfigFormat::Auto,
        &[
            ("SPIFFE_HLP_AGENT_ADDRESS", "unix:///a.sock"),
            ("SPIFFE_HLP_CERT_DIR", "certs"),
            ("SPIFFE_HLP_JWT_SVIDS", "[{\"jwt_audience\": \"a\""),
        ],
    );
    assert!(
        e.contains("environment variable SPIFFE_HLP_JWT_SVIDS") && e.contains("JSON"),
        "{e}"
    );
    let e = error(
        "",
        "helper.conf",
        ConfigFormat::Auto,
        &[
            ("SPIFFE_HLP_AGENT_ADDRESS", "unix:///a.sock"),
            ("SPIFFE_HLP_CERT_DIR", "certs"),
            ("SPIFFE_HLP_JWT_SVIDS", "[{\"jwt_audience\": \"a\"}]"),
        ],
    );
    assert!(
        e.contains("environment variable SPIFFE_HLP_JWT_SVIDS") && e.contains("jwt_svid_file_name"),
        "{e}"
    );
}

#[test]
fn a_missing_file_is_a_configuration_from_the_environment_when_variables_are_set() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("helper.conf");
    let (c, warnings) = Config::load_with(&missing, &Overrides::default(), &env_of(ENV)).unwrap();
    assert_eq!(c, parse(HCL, "helper.conf", ConfigFormat::Auto, &[]));
    assert!(
        warnings[0].to_string().contains("does not exist")
            && warnings[0].to_string().contains("SPIFFE_HLP_"),
        "{warnings:?}"
    );
    let err = Config::load_with(&missing, &Overrides::default(), &env_of(&[])).unwrap_err();
    assert!(err.to_string().contains("helper.conf"), "{err}");
}

#[test]
fn config_format_names_are_parsed() {
    for (text, want) in [
        ("hcl", ConfigFormat::Hcl),
        ("JSON", ConfigFormat::Json),
        ("yaml", ConfigFormat::Yaml),
        ("yml", ConfigFormat::Yaml),
        ("auto", ConfigFormat::Auto),
    ] {
        assert_eq!(text.parse::<ConfigFormat>().unwrap(), want);
    }
    assert!("toml".parse::<ConfigFormat>().is_err());
}
