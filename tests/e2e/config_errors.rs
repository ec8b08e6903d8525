//! Start-up refusals of the new settings, with the real binary: a file with several mistakes
//! reports each one (docs/configuration.md, "Error messages"), `cmd` together with a program
//! after `--` is a usage error (docs/configuration.md, "Command line"), and the health server
//! bound to `bind_address = "127.0.0.1"` is reachable there only.

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use spiffe_helper_testkit::spire::Entry;

use crate::inspect::http_status;
use crate::support::{
    HELPER, Helper, WORKLOAD, base_config, free_port, scratch, spire_with, stop_cleanly,
    wait_until, write_file,
};

#[test]
fn several_config_mistakes_are_all_reported_with_their_positions() {
    let dir = scratch();
    let config = write_file(
        dir.path(),
        "helper.conf",
        "agent_address = \"unix:///run/agent.sock\"\ncert_dri = \"certs\"\ncert_file_mode = 0899\n\
         health_checks {\n  listener_enabled = \"yes\"\n}\n",
    );
    for validate in [false, true] {
        let mut cmd = Command::new(HELPER);
        cmd.arg("-config").arg(&config);
        if validate {
            cmd.arg("--validate");
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = config.display();
        let want = [
            format!(
                "spiffe-helper-rust: {name}:2:1: unknown key `cert_dri` (did you mean `cert_dir`?)"
            ),
            format!(
                "spiffe-helper-rust: {name}:3:18: cert_file_mode = 0899: not an octal mode (digits 0-7, at most 0777)"
            ),
            format!(
                "spiffe-helper-rust: {name}:5:22: health_checks.listener_enabled = \"yes\": expected true or false (without quotes), found a string"
            ),
        ];
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines, want, "validate={validate}:\n{stderr}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn cmd_and_a_wrapped_program_together_are_a_usage_error() {
    let dir = scratch();
    let config = write_file(
        dir.path(),
        "helper.conf",
        "agent_address = \"unix:///run/agent.sock\"\ncert_dir = \"certs\"\ncmd = \"/bin/true\"\n",
    );
    let out = Command::new(HELPER)
        .arg("-config")
        .arg(&config)
        .args(["--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`cmd`") && stderr.contains("'--'"),
        "{stderr}"
    );

    // A JWT-only file never writes X.509, so a wrapped program would never start.
    let jwt_only = write_file(
        dir.path(),
        "jwt.conf",
        "agent_address = \"unix:///run/agent.sock\"\ncert_dir = \"certs\"\n\
         jwt_svids = [{ jwt_audience = \"a\", jwt_svid_file_name = \"a.token\" }]\n",
    );
    let out = Command::new(HELPER)
        .arg("-config")
        .arg(&jwt_only)
        .args(["--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("only JWT files"), "{stderr}");
}

#[test]
fn health_bound_to_127_0_0_1_is_served_only_there() {
    let (mut helper, port, _dir, _spire) = bound_to("127.0.0.1");
    assert!(
        wait_until(Duration::from_secs(30), || http_status(
            port,
            "/health/ready"
        ) == Some(200)),
        "not ready on 127.0.0.1:{port}; log:\n{}",
        helper.log_tail()
    );
    // 127.0.0.2 is the same loopback interface: a server bound to all interfaces answers there.
    let elsewhere = TcpStream::connect_timeout(
        &format!("127.0.0.2:{port}").parse().unwrap(),
        Duration::from_secs(2),
    );
    assert!(
        elsewhere.is_err(),
        "the health server answers on 127.0.0.2:{port}"
    );
    stop_cleanly(&mut helper);
}

/// An IPv6 literal: the health server listens on `[::1]` and nowhere else (not on 127.0.0.1).
#[test]
fn health_bound_to_ipv6_loopback_is_served_only_there() {
    let (mut helper, port, _dir, _spire) = bound_to("::1");
    let v6: std::net::SocketAddr = format!("[::1]:{port}").parse().unwrap();
    let ready_v6 = || {
        use std::io::{Read as _, Write as _};
        let Ok(mut conn) = TcpStream::connect_timeout(&v6, Duration::from_secs(2)) else {
            return false;
        };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
        let request = "GET /health/ready HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        let mut response = String::new();
        conn.write_all(request.as_bytes()).is_ok()
            && conn.read_to_string(&mut response).is_ok()
            && response.starts_with("HTTP/1.1 200")
    };
    assert!(
        wait_until(Duration::from_secs(30), ready_v6),
        "not ready on [::1]:{port}; log:\n{}",
        helper.log_tail()
    );
    assert_eq!(
        http_status(port, "/health/ready"),
        None,
        "the health server bound to ::1 answers on 127.0.0.1:{port}"
    );
    stop_cleanly(&mut helper);
}

/// A daemon against a real SPIRE with its health server on `address` and a free port.
fn bound_to(
    address: &str,
) -> (
    Helper,
    u16,
    tempfile::TempDir,
    spiffe_helper_testkit::spire::Spire,
) {
    let spire = spire_with(&Entry::new(WORKLOAD));
    let dir = scratch();
    let port = free_port();
    let config = write_file(
        dir.path(),
        "helper.conf",
        &format!(
            "{}health_checks {{\n  listener_enabled = true\n  bind_address = \"{address}\"\n  bind_port = {port}\n}}\n",
            base_config(&spire.endpoint(), &dir.path().join("certs"))
        ),
    );
    (Helper::spawn(&config, &[]), port, dir, spire)
}

/// The same configuration as HCL, as YAML, and as `SPIFFE_HLP_*` variables with no file at
/// all: `--validate` prints the same effective configuration for all three
/// (docs/configuration.md, "Formats and the environment"); an error in a variable names it.
#[test]
fn hcl_yaml_and_the_environment_print_the_same_effective_configuration() {
    let dir = scratch();
    let hcl = write_file(
        dir.path(),
        "helper.conf",
        "agent_address = \"unix:///run/agent.sock\"\ncert_dir = \"/run/certs\"\n\
         cert_file_mode = 0640\ncert_dir_layout = \"versioned\"\n\
         jwt_svids = [{ jwt_audience = \"a\", jwt_svid_file_name = \"a.token\" }]\n\
         health_checks {\n  listener_enabled = true\n  bind_port = 8081\n}\n",
    );
    let yaml = write_file(
        dir.path(),
        "helper.yaml",
        "agent_address: unix:///run/agent.sock\ncert_dir: /run/certs\ncert_file_mode: 0640\n\
         cert_dir_layout: versioned\njwt_svids:\n  - jwt_audience: a\n    jwt_svid_file_name: a.token\n\
         health_checks:\n  listener_enabled: true\n  bind_port: 8081\n",
    );
    let validate = |config: &std::path::Path, env: &[(&str, &str)]| {
        let mut cmd = Command::new(HELPER);
        cmd.arg("-config").arg(config).arg("--validate");
        for (name, _) in std::env::vars() {
            if name.starts_with("SPIFFE_HLP_") {
                cmd.env_remove(name);
            }
        }
        cmd.envs(env.iter().copied());
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, from_hcl, err) = validate(&hcl, &[]);
    assert_eq!(code, Some(0), "{err}");
    let (code, from_yaml, err) = validate(&yaml, &[]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(from_yaml, from_hcl);
    let env = [
        ("SPIFFE_HLP_AGENT_ADDRESS", "unix:///run/agent.sock"),
        ("SPIFFE_HLP_CERT_DIR", "/run/certs"),
        ("SPIFFE_HLP_CERT_FILE_MODE", "0640"),
        ("SPIFFE_HLP_CERT_DIR_LAYOUT", "versioned"),
        (
            "SPIFFE_HLP_JWT_SVIDS",
            r#"[{"jwt_audience":"a","jwt_svid_file_name":"a.token"}]"#,
        ),
        ("SPIFFE_HLP_HEALTH_CHECKS_LISTENER_ENABLED", "true"),
        ("SPIFFE_HLP_HEALTH_CHECKS_BIND_PORT", "8081"),
    ];
    let missing = dir.path().join("absent.conf");
    let (code, from_env, err) = validate(&missing, &env);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(from_env, from_hcl);
    assert!(err.contains("does not exist"), "{err}");
    // A bad value names its variable.
    let mut bad = env.to_vec();
    bad.push(("SPIFFE_HLP_DAEMON_MODE", "maybe"));
    let (code, _, err) = validate(&missing, &bad);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("environment variable SPIFFE_HLP_DAEMON_MODE"),
        "{err}"
    );
}
