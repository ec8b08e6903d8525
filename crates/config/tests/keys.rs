//! Every key's default, and every key set to a non-default value (docs/configuration.md,
//! "Keys").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{BASE, assert_round_trip, parse, parse_with};
use spiffe_helper_config::{
    Endpoint, FileMode, HealthConfig, LogFormat, LogLevel, Overrides, Signal,
};

#[test]
fn defaults() {
    let c = parse(BASE);
    assert_eq!(
        c.agent_address,
        Endpoint::Unix(PathBuf::from("/run/agent.sock"))
    );
    assert!(c.daemon_mode, "daemon_mode defaults to true");
    assert_eq!(c.cert_dir.as_deref(), Some(Path::new("certs")));
    let x509 = c.x509.as_ref().expect("X.509 output is on by default");
    assert_eq!(x509.svid, Path::new("certs/svid.pem"));
    assert_eq!(x509.key, Path::new("certs/svid_key.pem"));
    assert_eq!(x509.bundle, Path::new("certs/svid_bundle.pem"));
    assert!(c.jwt_svids.is_empty());
    assert_eq!(c.jwt_bundle, None);
    assert_eq!(c.hint, None);
    assert!(!c.add_intermediates_to_bundle && !c.include_federated_domains && !c.omit_expired);
    assert_eq!(c.cert_file_mode, FileMode(0o644));
    assert_eq!(c.key_file_mode, FileMode(0o600));
    assert_eq!(c.jwt_bundle_file_mode, FileMode(0o600));
    assert_eq!(c.jwt_svid_file_mode, FileMode(0o600));
    assert_eq!(c.cmd, None);
    assert!(c.cmd_args.is_empty());
    assert_eq!(c.renew_signal, None);
    assert_eq!(c.pid_file_name, None);
    assert_eq!(c.health, None);
    assert_eq!(c.federated_bundle_dir, None);
    assert_eq!(c.startup_timeout, Duration::from_secs(30));
    assert_eq!(c.log_level, LogLevel::Info);
    assert_eq!(c.log_format, LogFormat::Text);
    assert_round_trip(&c);
}

#[test]
fn every_key_set() {
    let text = r#"
        agent_address = "tcp://127.0.0.1:8081"
        daemon_mode = true
        cert_dir = "/var/certs"
        svid_file_name = "a.pem"
        svid_key_file_name = "a.key"
        svid_bundle_file_name = "ca.pem"
        add_intermediates_to_bundle = true
        include_federated_domains = true
        omit_expired = true
        hint = "internal"
        jwt_svids = [{ jwt_audience = "aud", jwt_extra_audiences = ["x", "y"], jwt_svid_file_name = "t.jwt" }]
        jwt_bundle_file_name = "bundle.json"
        cert_file_mode = 0444
        key_file_mode = 0400
        jwt_bundle_file_mode = 0440
        jwt_svid_file_mode = 0640
        cmd = "/usr/bin/ghostunnel"
        cmd_args = "server --cacert \"a b.pem\""
        renew_signal = "SIGUSR1"
        pid_file_name = "/run/app.pid"
        health_checks {
            listener_enabled = true
            bind_port = 9090
            liveness_path = "/live"
            readiness_path = "/ready"
        }
        federated_bundle_dir = "federated"
        startup_timeout = "1m30s"
        log_level = "debug"
        log_format = "json"
    "#;
    let c = parse(text);
    assert_eq!(
        c.agent_address,
        Endpoint::Tcp("127.0.0.1:8081".parse().unwrap())
    );
    let x509 = c.x509.as_ref().unwrap();
    assert_eq!(x509.svid, Path::new("/var/certs/a.pem"));
    assert_eq!(x509.key, Path::new("/var/certs/a.key"));
    assert_eq!(x509.bundle, Path::new("/var/certs/ca.pem"));
    assert!(c.add_intermediates_to_bundle && c.include_federated_domains && c.omit_expired);
    assert_eq!(c.hint.as_deref(), Some("internal"));
    assert_eq!(c.jwt_svids.len(), 1);
    assert_eq!(c.jwt_svids[0].audience, "aud");
    assert_eq!(c.jwt_svids[0].extra_audiences, ["x", "y"]);
    assert_eq!(c.jwt_svids[0].path, Path::new("/var/certs/t.jwt"));
    assert_eq!(
        c.jwt_bundle.as_deref(),
        Some(Path::new("/var/certs/bundle.json"))
    );
    assert_eq!(
        [
            c.cert_file_mode,
            c.key_file_mode,
            c.jwt_bundle_file_mode,
            c.jwt_svid_file_mode
        ],
        [
            FileMode(0o444),
            FileMode(0o400),
            FileMode(0o440),
            FileMode(0o640)
        ]
    );
    assert_eq!(c.cmd.as_deref(), Some("/usr/bin/ghostunnel"));
    assert_eq!(c.cmd_args, ["server", "--cacert", "a b.pem"]);
    assert_eq!(c.renew_signal, Some(Signal::SIGUSR1));
    assert_eq!(c.pid_file_name.as_deref(), Some(Path::new("/run/app.pid")));
    assert_eq!(
        c.health,
        Some(HealthConfig {
            bind_port: 9090,
            liveness_path: "/live".into(),
            readiness_path: "/ready".into(),
            ..HealthConfig::default()
        })
    );
    assert_eq!(
        c.federated_bundle_dir.as_deref(),
        Some(Path::new("/var/certs/federated"))
    );
    assert_eq!(c.startup_timeout, Duration::from_secs(90));
    assert_eq!(c.log_level, LogLevel::Debug);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_round_trip(&c);
}

#[test]
fn health_block_defaults_are_the_seed_values() {
    let c = parse(&format!(
        "{BASE}health_checks {{\n listener_enabled = true\n}}\n"
    ));
    assert_eq!(
        c.health,
        Some(HealthConfig {
            bind_port: 8080,
            liveness_path: "/health/live".into(),
            readiness_path: "/health/ready".into(),
            ..HealthConfig::default()
        })
    );
    // `false` disables the server and ignores the other keys, even invalid ones.
    let c = parse(&format!(
        "{BASE}health_checks {{\n listener_enabled = false\n liveness_path = \"x\"\n}}\n"
    ));
    assert_eq!(c.health, None);
    assert_round_trip(&c);
}

#[test]
fn startup_timeout_forms() {
    for (value, secs) in [
        ("\"30s\"", 30),
        ("\"1m\"", 60),
        ("45", 45),
        ("\"2h\"", 7200),
        ("\"10\"", 10),
    ] {
        let c = parse(&format!("{BASE}startup_timeout = {value}\n"));
        assert_eq!(c.startup_timeout, Duration::from_secs(secs), "{value}");
    }
    let c = parse(&format!("{BASE}startup_timeout = \"1500ms\"\n"));
    assert_eq!(c.startup_timeout, Duration::from_millis(1500));
    assert_round_trip(&c);
}

#[test]
fn log_settings_are_case_insensitive() {
    for (value, level) in [
        ("TRACE", LogLevel::Trace),
        ("Warn", LogLevel::Warn),
        ("warning", LogLevel::Warn),
        ("error", LogLevel::Error),
    ] {
        assert_eq!(
            parse(&format!("{BASE}log_level = \"{value}\"\n")).log_level,
            level
        );
    }
    assert_eq!(
        parse(&format!("{BASE}log_format = \"JSON\"\n")).log_format,
        LogFormat::Json
    );
}

#[test]
fn renew_signal_spellings() {
    for value in ["SIGHUP", "HUP", "hup", "sighup"] {
        let c = parse(&format!(
            "{BASE}cmd = \"app\"\nrenew_signal = \"{value}\"\n"
        ));
        assert_eq!(c.renew_signal, Some(Signal::SIGHUP), "{value}");
    }
}

#[test]
fn daemon_mode_override_wins_only_when_given() {
    let text = format!("{BASE}daemon_mode = false\n");
    let file_only = parse_with(&text, Overrides::default(), &[]).unwrap().0;
    assert!(!file_only.daemon_mode);
    let overridden = parse_with(
        &text,
        Overrides {
            daemon_mode: Some(true),
            ..Overrides::default()
        },
        &[],
    )
    .unwrap()
    .0;
    assert!(overridden.daemon_mode);
    let forced_off = parse_with(
        BASE,
        Overrides {
            daemon_mode: Some(false),
            ..Overrides::default()
        },
        &[],
    )
    .unwrap()
    .0;
    assert!(!forced_off.daemon_mode);
}

#[test]
fn agent_address_from_environment() {
    let no_key = "cert_dir = \"certs\"\n";
    let (c, w) = parse_with(
        no_key,
        Overrides::default(),
        &[("SPIFFE_ENDPOINT_SOCKET", "unix:///a.sock")],
    )
    .unwrap();
    assert_eq!(c.agent_address, Endpoint::Unix("/a.sock".into()));
    assert!(w.is_empty());

    let (c, w) = parse_with(
        no_key,
        Overrides::default(),
        &[("SPIRE_AGENT_ADDRESS", "/b.sock")],
    )
    .unwrap();
    assert_eq!(c.agent_address, Endpoint::Unix("/b.sock".into()));
    assert_eq!(w.len(), 1);
    assert!(
        w[0].to_string()
            .contains("SPIRE_AGENT_ADDRESS is deprecated"),
        "{}",
        w[0]
    );

    // The file key wins over both variables.
    let env = [
        ("SPIFFE_ENDPOINT_SOCKET", "/a.sock"),
        ("SPIRE_AGENT_ADDRESS", "/b.sock"),
    ];
    let (c, _) = parse_with(BASE, Overrides::default(), &env).unwrap();
    assert_eq!(c.agent_address, Endpoint::Unix("/run/agent.sock".into()));

    let err = parse_with(no_key, Overrides::default(), &env)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("both SPIFFE_ENDPOINT_SOCKET and SPIRE_AGENT_ADDRESS"),
        "{err}"
    );

    let err = parse_with(
        no_key,
        Overrides::default(),
        &[("SPIFFE_ENDPOINT_SOCKET", "relative.sock")],
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("environment variable SPIFFE_ENDPOINT_SOCKET: invalid agent address"),
        "{err}"
    );
}

#[test]
fn agent_address_forms() {
    for (form, want) in [
        ("unix:///run/a.sock", Endpoint::Unix("/run/a.sock".into())),
        ("unix:/run/a.sock", Endpoint::Unix("/run/a.sock".into())),
        ("/run/a.sock", Endpoint::Unix("/run/a.sock".into())),
        (
            "tcp://[::1]:8081",
            Endpoint::Tcp("[::1]:8081".parse().unwrap()),
        ),
    ] {
        assert_eq!(
            parse(&format!("agent_address = \"{form}\"\ncert_dir = \"c\"\n")).agent_address,
            want
        );
    }
}

#[test]
fn jwt_only_files_turn_x509_off() {
    let c = parse(&format!("{BASE}jwt_bundle_file_name = \"bundle.json\"\n"));
    assert_eq!(c.x509, None);
    assert_round_trip(&c);
    let c = parse(&format!(
        "{BASE}jwt_svids = [{{ jwt_audience = \"a\", jwt_svid_file_name = \"a.jwt\" }}]\n"
    ));
    assert_eq!(c.x509, None);
    // Naming any svid_* file keeps X.509 on, with defaults for the others.
    let c = parse(&format!(
        "{BASE}jwt_bundle_file_name = \"b.json\"\nsvid_file_name = \"mine.pem\"\n"
    ));
    let x509 = c.x509.unwrap();
    assert_eq!(x509.svid, Path::new("certs/mine.pem"));
    assert_eq!(x509.key, Path::new("certs/svid_key.pem"));
}

#[test]
fn absolute_names_need_no_cert_dir() {
    let text = r#"
        agent_address = "/a.sock"
        svid_file_name = "/x/svid.pem"
        svid_key_file_name = "/x/key.pem"
        svid_bundle_file_name = "/x/bundle.pem"
    "#;
    let c = parse(text);
    assert_eq!(c.cert_dir, None);
    assert_eq!(c.x509.as_ref().unwrap().key, Path::new("/x/key.pem"));
    assert_round_trip(&c);
}

#[test]
fn one_shot_ignores_daemon_only_keys_with_warnings() {
    let text = format!(
        "{BASE}daemon_mode = false\ncmd = \"app\"\ncmd_args = \"a\"\nrenew_signal = \"SIGHUP\"\nhealth_checks {{\n listener_enabled = true\n}}\ncmd_restart = \"always\"\ncmd_stop_timeout = \"3s\"\n"
    );
    let (c, w) = parse_with(&text, Overrides::default(), &[]).unwrap();
    assert_eq!((c.cmd, c.renew_signal, c.health), (None, None, None));
    let w: Vec<String> = w.iter().map(ToString::to_string).collect();
    assert_eq!(
        w,
        [
            "helper.conf:4:1: cmd is ignored in one-shot mode (daemon_mode = false)",
            "helper.conf:5:1: cmd_args is ignored in one-shot mode (daemon_mode = false)",
            "helper.conf:6:1: renew_signal is ignored in one-shot mode (daemon_mode = false)",
            "helper.conf:10:1: cmd_restart is ignored in one-shot mode (daemon_mode = false)",
            "helper.conf:11:1: cmd_stop_timeout is ignored in one-shot mode (daemon_mode = false)",
            "helper.conf:7:1: health_checks is ignored in one-shot mode (daemon_mode = false)",
        ]
    );
}

#[test]
fn zero_mode_means_default_like_upstream() {
    let w = common::warnings(&format!("{BASE}key_file_mode = 0\n"));
    assert_eq!(
        w,
        ["helper.conf:3:1: key_file_mode = 0 means the default 0600, as upstream"]
    );
    assert_eq!(
        parse(&format!("{BASE}key_file_mode = 0\n")).key_file_mode,
        FileMode(0o600)
    );
}
