//! The health server wired into the daemon (docs/behaviour.md#health-endpoints), against a real SPIRE: readiness follows
//! the first write, `/metrics` reports the certificate actually on disk, and a taken port is a
//! start-up error rather than a silently missing probe.

use std::net::TcpListener;
use std::time::{Duration, UNIX_EPOCH};

use spiffe_helper_testkit::spire::{Entry, Spire};

use crate::inspect::{http_get, http_status, leaf};
use crate::support::spire_with;
use crate::support::{
    Helper, PROPAGATION, WORKLOAD, base_config, free_port, scratch, wait_until, write_file,
};

fn health_block(port: u16) -> String {
    format!("health_checks {{\n  listener_enabled = true\n  bind_port = {port}\n}}\n")
}

/// `GET path` on 127.0.0.1:port; the response body.
fn http_body(port: u16, path: &str) -> String {
    http_get(port, path).expect("the health server answers").1
}

/// Readiness is 503 while the workload has no identity yet and 200 once the files are written;
/// liveness stays 200 throughout (nothing has failed).
#[test]
fn readiness_turns_200_only_after_the_first_write() {
    let spire = Spire::start();
    let dir = scratch();
    let certs = dir.path().join("certs");
    let port = free_port();
    let config = write_file(
        dir.path(),
        "helper.conf",
        &format!(
            "{}startup_timeout = \"90s\"\n{}",
            base_config(&spire.endpoint(), &certs),
            health_block(port)
        ),
    );
    let mut helper = Helper::spawn(&config, &[]);
    assert!(
        wait_until(Duration::from_secs(10), || http_status(
            port,
            "/health/ready"
        )
        .is_some()),
        "health server not up; log:\n{}",
        helper.log_tail()
    );
    assert_eq!(http_status(port, "/health/ready"), Some(503));
    assert_eq!(http_status(port, "/health/live"), Some(200));
    assert!(!certs.join("svid.pem").exists());

    // Only now does the workload get an identity.
    spire.create_entry(&Entry::new(WORKLOAD));
    assert!(
        wait_until(PROPAGATION, || http_status(port, "/health/ready")
            == Some(200)),
        "never ready; log:\n{}",
        helper.log_tail()
    );
    assert!(
        leaf(&certs.join("svid.pem")).is_some(),
        "ready before the SVID file exists"
    );
    assert_eq!(http_status(port, "/health/live"), Some(200));
    assert_eq!(http_status(port, "/no/such/path"), Some(404));
    helper.assert_running("after becoming ready");
}

/// `/metrics` is Prometheus text whose X.509 expiry equals the `NotAfter` of the certificate on
/// disk.
#[test]
fn metrics_report_the_written_certificates_expiry() {
    let spire = spire_with(&Entry::new(WORKLOAD));
    let dir = scratch();
    let certs = dir.path().join("certs");
    let port = free_port();
    let config = write_file(
        dir.path(),
        "helper.conf",
        &format!(
            "{}{}",
            base_config(&spire.endpoint(), &certs),
            health_block(port)
        ),
    );
    let mut helper = Helper::spawn(&config, &[]);
    assert!(
        wait_until(Duration::from_secs(30), || http_status(
            port,
            "/health/ready"
        ) == Some(200)),
        "never ready; log:\n{}",
        helper.log_tail()
    );
    let not_after = leaf(&certs.join("svid.pem"))
        .unwrap()
        .not_after
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let metrics = http_body(port, "/metrics");
    assert!(metrics.contains("# TYPE spiffe_helper_x509_svid_expiry_timestamp_seconds gauge"));
    let line = metrics
        .lines()
        .find(|line| line.starts_with("spiffe_helper_x509_svid_expiry_timestamp_seconds{"))
        .unwrap_or_else(|| panic!("no X.509 expiry series in:\n{metrics}"));
    assert!(
        line.contains(&format!("spiffe_id=\"{WORKLOAD}\"")),
        "{line}"
    );
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    #[expect(
        clippy::cast_precision_loss,
        reason = "epoch seconds fit an f64 exactly"
    )]
    let expected = not_after as f64;
    assert!(
        (value - expected).abs() < 0.5,
        "metric {value} != NotAfter {expected}"
    );
    for line in metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let sample = line.rsplit(' ').next().unwrap();
        assert!(
            sample.parse::<f64>().is_ok(),
            "not a Prometheus sample: {line}"
        );
    }
    helper.assert_running("after scraping");
}

/// A health port already in use stops the daemon at start-up (exit 1) with the port named,
/// before it contacts the agent.
#[test]
fn taken_health_port_is_a_startup_error_naming_the_port() {
    let taken = TcpListener::bind(("0.0.0.0", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = scratch();
    let config = write_file(
        dir.path(),
        "helper.conf",
        &format!(
            "{}{}",
            base_config(
                "unix:///tmp/no-agent-here/agent.sock",
                &dir.path().join("certs")
            ),
            health_block(port)
        ),
    );
    let mut helper = Helper::spawn(&config, &[]);
    let status = helper
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("still running with port {port} taken"));
    assert_eq!(status.code(), Some(1), "log:\n{}", helper.log_tail());
    assert!(
        helper.log().contains(&port.to_string()),
        "the error does not name port {port}:\n{}",
        helper.log_tail()
    );
    drop(taken);
}
