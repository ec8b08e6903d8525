//! Security properties as tests: the key file is never readable beyond its mode at any instant
//! (a stat watcher runs across rotations), no key material or JWT in any log line or health
//! body of a full run with debug logs, and a symlink planted at an output path is replaced, not
//! followed.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use spiffe_helper_testkit::spire::{Entry, Spire};

use crate::faults::kit::{
    Fake, ModeWatcher, Running, X509Files, daemon_config, start_daemon, wait_ready,
};
use crate::inspect::http_get;
use crate::inspect::{key_matches_cert, leaf, wait_for_rotation};
use crate::support::{
    PROPAGATION, ROTATION, WORKLOAD, free_port, scratch, stop_cleanly, wait_until,
};

/// Panics if an HTTP body holds PEM, key base64 or a token.
fn assert_body_clean(what: &str, body: &str, key: &Path, tokens: &[String]) {
    assert!(!body.contains("BEGIN"), "{what}: body holds PEM");
    assert!(
        !body.contains("PRIVATE"),
        "{what}: body mentions a private key"
    );
    let pem = fs::read_to_string(key).unwrap();
    for line in pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 32)
    {
        assert!(
            !body.contains(line),
            "{what}: body holds the private key's base64"
        );
    }
    for token in tokens {
        let signature = token.rsplit('.').next().unwrap();
        assert!(
            !body.contains(token.as_str()),
            "{what}: body holds a JWT-SVID"
        );
        assert!(
            !body.contains(signature),
            "{what}: body holds a JWT signature"
        );
    }
}

/// 30 rapid rotations with `key_file_mode = 0400` (no owner-write, so every rewrite must cope):
/// the key file and its temp files are never group/other-accessible, never a symlink.
#[test]
fn key_file_never_exceeds_its_mode_across_rotations() {
    let Running {
        fake,
        mut helper,
        files,
        dir,
        ..
    } = Running::start("key_file_mode = 0400\n");
    let certs = dir.path().join("certs");
    let watcher = ModeWatcher::start(&certs, "svid_key.pem", 0o400);
    for n in 0..30 {
        let serial = fake.push_fresh();
        assert!(
            wait_until(Duration::from_secs(10), || leaf(&files.svid)
                .is_some_and(|l| l.serial == serial)),
            "rotation {n} not written; log:\n{}",
            crate::faults::kit::tail(&helper)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (stats, temps, problems) = watcher.finish();
    assert!(
        problems.is_empty(),
        "key file exposed at some instant: {problems:#?}"
    );
    assert!(stats > 1000, "watcher made only {stats} stats");
    assert_eq!(
        fs::metadata(&files.key).unwrap().permissions().mode() & 0o777,
        0o400
    );
    assert!(key_matches_cert(&files.key, &files.svid));
    eprintln!(
        "key mode watcher: {stats} stats, {temps} temp-file sightings, 30 rotations, no exposure"
    );
    stop_cleanly(&mut helper);
}

/// A full daemon run on real SPIRE with X.509 + JWT-SVID + JWT bundle, debug logs and one
/// rotation: the key never exceeds 0600; no log line and no health/metrics body holds key
/// material, PEM or a token.
#[test]
fn full_run_leaks_no_secret_in_logs_or_health_bodies() {
    let spire = Spire::start();
    spire.create_entry(&Entry::new(WORKLOAD).x509_ttl(30).jwt_ttl(60));
    spire.wait_for_svid(PROPAGATION);
    let dir = scratch();
    let certs = dir.path().join("certs");
    let files = X509Files::in_dir(&certs);
    let port = free_port();
    let extra = "svid_file_name = \"svid.pem\"\nsvid_key_file_name = \"svid_key.pem\"\n\
                 svid_bundle_file_name = \"svid_bundle.pem\"\n\
                 jwt_svids = [{ jwt_audience = \"db\", jwt_svid_file_name = \"db.jwt\" }]\n\
                 jwt_bundle_file_name = \"jwt_bundle.json\"\n";
    let mut helper = start_daemon(
        dir.path(),
        &daemon_config(&spire.endpoint(), &certs, port, extra),
    );
    let first = wait_ready(&mut helper, &files.svid, port);
    // The first key is replaced by the rotation; its base64 must not be in the log either.
    helper.remember_key(&files.key);
    let watcher = ModeWatcher::start(&certs, "svid_key.pem", 0o600);
    let mut tokens = vec![fs::read_to_string(certs.join("db.jwt")).unwrap()];
    assert!(
        wait_for_rotation(&files.svid, &first, ROTATION).is_some(),
        "no rotation; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    // The first token (60 s) is refreshed at about half its lifetime: wait for the new one.
    let refreshed = wait_until(Duration::from_secs(60), || {
        fs::read_to_string(certs.join("db.jwt")).is_ok_and(|t| !t.is_empty() && t != tokens[0])
    });
    assert!(
        refreshed,
        "no JWT-SVID refresh within 60 s; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    tokens.push(fs::read_to_string(certs.join("db.jwt")).unwrap());
    for path in ["/health/live", "/health/ready", "/metrics"] {
        let (status, body) = http_get(port, path).unwrap();
        assert_eq!(status, 200, "{path}");
        assert_body_clean(path, &body, &files.key, &tokens);
        if path == "/metrics" {
            // What the run did is what the metrics say: connected, one rotation (or more).
            assert!(
                body.lines().any(|l| l == "spiffe_helper_agent_connected 1"),
                "/metrics: agent_connected is not 1:\n{body}"
            );
            let rotations = body
                .lines()
                .find_map(|l| l.strip_prefix("spiffe_helper_x509_svid_rotations_total "))
                .and_then(|v| v.trim().parse::<f64>().ok());
            assert!(
                rotations.is_some_and(|n| n >= 1.0),
                "/metrics: x509_svid_rotations_total is {rotations:?} after a rotation:\n{body}"
            );
        }
    }
    let (stats, _, problems) = watcher.finish();
    assert!(problems.is_empty(), "key file exposed: {problems:#?}");
    assert!(stats > 100);
    helper.remember_tokens(&tokens);
    stop_cleanly(&mut helper); // checks the whole log, including for both tokens
    let log = helper.log();
    assert!(
        log.lines().count() > 5,
        "suspiciously short debug log:\n{log}"
    );
}

/// Symlinks planted at the key and cert paths, pointing at files elsewhere: the helper replaces
/// the links with regular files and never writes through them (the victims keep their content
/// and the key never lands in a world-readable file).
#[test]
fn symlinked_outputs_are_replaced_not_followed() {
    let fake = Fake::start();
    fake.push_fresh();
    let dir = scratch();
    let certs = dir.path().join("certs");
    fs::create_dir_all(&certs).unwrap();
    let files = X509Files::in_dir(&certs);
    let victim_key = dir.path().join("victim-key");
    let victim_cert = dir.path().join("victim-cert");
    fs::write(&victim_key, "untouched\n").unwrap();
    fs::set_permissions(&victim_key, fs::Permissions::from_mode(0o644)).unwrap();
    fs::write(&victim_cert, "untouched\n").unwrap();
    std::os::unix::fs::symlink(&victim_key, &files.key).unwrap();
    std::os::unix::fs::symlink(&victim_cert, &files.svid).unwrap();
    let port = free_port();
    let mut helper = start_daemon(
        dir.path(),
        &daemon_config(&fake.endpoint(), &certs, port, ""),
    );
    wait_ready(&mut helper, &files.svid, port);
    for path in [&files.key, &files.svid] {
        let meta = fs::symlink_metadata(path).unwrap();
        assert!(
            meta.file_type().is_file(),
            "{} is still a symlink",
            path.display()
        );
    }
    assert_eq!(fs::read_to_string(&victim_key).unwrap(), "untouched\n");
    assert_eq!(fs::read_to_string(&victim_cert).unwrap(), "untouched\n");
    assert_eq!(
        fs::metadata(&files.key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    stop_cleanly(&mut helper);
}

/// The harness's own guarantee (tests/support.rs): a test whose helper logged key material or
/// a token fails, although the test itself never asks. A stand-in "helper" (`sh`) prints to
/// its log, in turn, a private key's base64 without the PEM armour, a JWT's signature alone,
/// and nothing; dropping the handle (the test's end) fails the first two and passes the third.
#[test]
fn a_helper_that_logs_a_key_or_a_token_fails_its_test_without_asking() {
    let ca = spiffe_helper_testkit::certs::TestCa::root("example.org");
    let svid = ca.issue(WORKLOAD, Duration::from_secs(600));
    let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzcGlmZmU6Ly9leGFtcGxlLm9yZy93In0.\
                 c2lnbmF0dXJlLW9mLWEtdGVzdC10b2tlbi1ub3QtYS1yZWFsLW9uZQ";
    for (what, script, leaks) in [
        (
            "key base64",
            "grep -v -- ----- certs/svid_key.pem >&2",
            true,
        ),
        ("JWT signature", "cut -d. -f3 certs/db.jwt >&2", true),
        ("nothing secret", "echo wrote X.509-SVID >&2", false),
    ] {
        let dir = scratch();
        let certs = dir.path().join("certs");
        fs::create_dir(&certs).unwrap();
        fs::write(
            certs.join("svid_key.pem"),
            spiffe_helper_testkit::certs::pem_block("PRIVATE KEY", &svid.key_pkcs8),
        )
        .unwrap();
        fs::write(certs.join("db.jwt"), token).unwrap();
        let config = crate::support::write_file(dir.path(), "helper.conf", "");
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", script]);
        let mut helper = crate::support::Helper::spawn_command(cmd, &config);
        assert!(helper.wait_exit(Duration::from_secs(10)).is_some());
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            drop(helper);
        }));
        assert_eq!(
            outcome.is_err(),
            leaks,
            "{what}: the harness {} the test",
            if leaks { "did not fail" } else { "failed" }
        );
    }
}
