//! One-shot mode (the initContainer case): docs/behaviour.md#one-shot-mode and #start-up.

use std::time::{Duration, Instant};

use spiffe_helper_testkit::spire::{Entry, Spire};

use crate::inspect::{audiences, jwt_parts, key_matches_cert, leaf, openssl_verify, read_certs};
use crate::support::spire_with;
use crate::support::{PROPAGATION, WORKLOAD, base_config, mode, run_oneshot, scratch, write_file};

/// A `cert_dir` that does not exist yet is created and gets a verifiable SVID, its key and
/// the bundle, with the configured modes; the result matches what `spire-agent api fetch`
/// returns. Also measures the one-shot wall time against a warm agent.
#[test]
fn oneshot_writes_a_verifiable_svid_into_a_new_cert_dir() {
    let spire = spire_with(&Entry::new(WORKLOAD));
    let dir = scratch();
    let certs = dir.path().join("not/yet/certs");
    let config = write_file(
        dir.path(),
        "helper.conf",
        &format!(
            "{}daemon_mode = false\ncert_file_mode = 0640\nkey_file_mode = 0400\n",
            base_config(&spire.endpoint(), &certs)
        ),
    );

    let run = run_oneshot(&config, Duration::from_secs(30));
    assert_eq!(run.code(), 0, "log:\n{}", run.helper.log_tail());

    let (svid, key, bundle) = (
        certs.join("svid.pem"),
        certs.join("svid_key.pem"),
        certs.join("svid_bundle.pem"),
    );
    openssl_verify(&bundle, &svid).unwrap_or_else(|e| panic!("openssl verify failed: {e}"));
    assert!(
        key_matches_cert(&key, &svid),
        "the key does not match the SVID"
    );
    assert_eq!(mode(&svid), 0o640, "svid mode");
    assert_eq!(mode(&bundle), 0o640, "bundle mode");
    assert_eq!(mode(&key), 0o400, "key mode");
    assert_eq!(leaf(&svid).unwrap().uris, vec![WORKLOAD.to_owned()]);

    // Cross-check against SPIRE's own CLI: same SVID, same bundle.
    let cli = dir.path().join("cli");
    std::fs::create_dir(&cli).unwrap();
    spire.cli_fetch_x509(&cli);
    assert_eq!(
        read_certs(&svid),
        read_certs(&cli.join("svid.0.pem")),
        "SVID chain"
    );
    assert_eq!(
        read_certs(&bundle),
        read_certs(&cli.join("bundle.0.pem")),
        "bundle"
    );

    // Wall time against a warm agent (process start to exit), best of three.
    let mut best = Duration::MAX;
    for i in 0..3 {
        let certs = dir.path().join(format!("warm{i}"));
        let config = write_file(
            dir.path(),
            &format!("warm{i}.conf"),
            &format!(
                "agent_address = \"{}\"\ncert_dir = \"{}\"\n",
                spire.endpoint(),
                certs.display()
            ),
        );
        let run = run_oneshot(&config, Duration::from_secs(30));
        assert_eq!(run.code(), 0, "log:\n{}", run.helper.log_tail());
        best = best.min(run.elapsed);
    }
    eprintln!("MEASURE one-shot wall time against a warm agent (debug build): {best:?}");
    assert!(best < Duration::from_secs(5), "one-shot took {best:?}");
}

/// No agent behind the socket: exit 1 within `startup_timeout` + 2 s, naming the socket,
/// and no files left behind.
#[test]
fn oneshot_without_agent_fails_in_time_naming_the_socket() {
    let dir = scratch();
    let socket = dir.path().join("no-agent.sock");
    let certs = dir.path().join("certs");
    let config = write_file(
        dir.path(),
        "helper.conf",
        &format!(
            "{}startup_timeout = \"3s\"\n",
            base_config(&format!("unix://{}", socket.display()), &certs)
        ),
    );
    let start = Instant::now();
    let run = run_oneshot(&config, Duration::from_secs(20));
    let elapsed = start.elapsed();
    assert_eq!(run.code(), 1, "log:\n{}", run.helper.log_tail());
    assert!(
        elapsed < Duration::from_secs(5),
        "took {elapsed:?} (startup_timeout 3s)"
    );
    let log = run.helper.log();
    assert!(
        log.contains(&socket.display().to_string()),
        "the error does not name the socket; log:\n{}",
        run.helper.log_tail()
    );
    assert_one_error_line(&log);
    let left: Vec<_> = std::fs::read_dir(&certs)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

/// A workload without a registration entry: exit 1 naming `PermissionDenied`.
#[test]
fn oneshot_unregistered_workload_fails_with_permission_denied() {
    let spire = Spire::start();
    let dir = scratch();
    let certs = dir.path().join("certs");
    let config = write_file(
        dir.path(),
        "helper.conf",
        &format!(
            "{}startup_timeout = \"3s\"\n",
            base_config(&spire.endpoint(), &certs)
        ),
    );
    let run = run_oneshot(&config, Duration::from_secs(20));
    assert_eq!(run.code(), 1, "log:\n{}", run.helper.log_tail());
    assert!(
        run.elapsed < Duration::from_secs(5),
        "took {:?}",
        run.elapsed
    );
    assert!(
        run.helper.log().contains("PermissionDenied"),
        "the error does not say PermissionDenied; log:\n{}",
        run.helper.log_tail()
    );
    assert!(!certs.join("svid.pem").exists(), "an SVID file was written");
    assert_one_error_line(&run.helper.log());
}

/// A failed start-up says what went wrong in one line: exactly one ERROR-level line.
fn assert_one_error_line(log: &str) {
    let errors = log.lines().filter(|l| l.contains("ERROR")).count();
    assert_eq!(
        errors, 1,
        "expected one ERROR line, got {errors}; log:\n{log}"
    );
    if let Some(line) = log.lines().find(|l| l.contains("ERROR")) {
        eprintln!("one-shot failure line: {line}");
    }
}

/// The upstream README's "Configuration example" works as written; only the agent
/// address is changed (to this test's agent). `cert_dir = "certs"` is relative to the working
/// directory, as in the README; `cmd`/`renew_signal` do not apply in one-shot mode. A second
/// run must replace stale content in the README's 0444 files and keep their modes.
#[test]
fn readme_example_config_works_as_written() {
    let spire = Spire::start();
    spire.create_entry(&Entry::new("spiffe://example.org/Database"));
    spire.wait_for_svid(PROPAGATION);
    let dir = scratch();
    let example = include_str!("../fixtures/upstream-readme-helper.conf");
    let socket = spire.socket_path().display().to_string();
    let config = write_file(
        dir.path(),
        "helper.conf",
        &example.replace("/tmp/spire-agent/public/api.sock", &socket),
    );
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap(); // the README says cert_dir must exist beforehand

    for attempt in ["first", "second"] {
        let run = run_oneshot(&config, Duration::from_secs(40));
        assert_eq!(
            run.code(),
            0,
            "{attempt} run; log:\n{}",
            run.helper.log_tail()
        );
        for name in [
            "svid.pem",
            "svid_key.pem",
            "svid_bundle.pem",
            "jwt_svid.token",
            "bundle.json",
        ] {
            let path = certs.join(name);
            assert!(path.exists(), "{attempt} run: {name} missing");
            assert_eq!(mode(&path), 0o444, "{attempt} run: mode of {name}");
        }
        let token = std::fs::read_to_string(certs.join("jwt_svid.token")).unwrap();
        let (_, claims) = jwt_parts(&token);
        let mut aud = audiences(&claims);
        aud.sort();
        assert_eq!(
            aud,
            [
                "your-audience",
                "your-extra-audience-1",
                "your-extra-audience-2"
            ],
            "{attempt} run: JWT audiences"
        );
        run.helper.remember_tokens(&[token]);
        openssl_verify(&certs.join("svid_bundle.pem"), &certs.join("svid.pem"))
            .unwrap_or_else(|e| panic!("{attempt} run: openssl verify failed: {e}"));
        // The second run must replace stale content in the read-only files.
        for name in ["svid.pem", "jwt_svid.token"] {
            std::fs::write(certs.join(name), "stale").unwrap();
        }
    }
}
