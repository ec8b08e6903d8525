//! Reloading real consumers through their own pid files (docs/consumers.md): `PostgreSQL`
//! through its `postmaster.pid` (pid on the first line, seven more lines) with SIGHUP, and
//! `HAProxy` in master-worker mode, serving the helper's `svid_combined_file_name` as its one
//! `crt` file, with SIGUSR2 while a request loop runs.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use spiffe_helper_testkit::consumers::postgres::{self, PgUser, Postgres};
use spiffe_helper_testkit::consumers::{haproxy, probe};
use spiffe_helper_testkit::spire::{Entry, Spire};

use crate::support::{
    HELPER, Helper, PROPAGATION, ROTATION, WORKLOAD, base_config, scratch, spire_with,
    stop_cleanly, wait_until, write_file,
};

/// Waits until the serial of `svid` differs from `previous`; the new serial.
fn rotated(svid: &Path, previous: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(now) = probe::serial_of_file(svid)
            && now != previous
        {
            return Some(now);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// docs/consumers.md, "Pid files as daemons write them": the helper runs as `PostgreSQL`'s own user (see the testkit's `consumers` docs:
/// the helper trusts a pid file owned by root or by itself, and `PostgreSQL` wants its key owned
/// by the database user, mode 0600), selected by SPIRE as `unix:uid:<postgres uid>`, with
/// `pid_file_name = "<datadir>/postmaster.pid"` and `renew_signal = "SIGHUP"`.
#[test]
fn postgres_serves_the_rotated_svid_after_sighup_through_postmaster_pid() {
    assert!(
        postgres::available(),
        "PostgreSQL 15 not found: run `make deps` (installs the Debian package postgresql-15)"
    );
    let user = PgUser::lookup();
    let spire = Spire::start();
    // The helper's entry (uid postgres), and one for the test's own uid, registered after it,
    // so that the usual propagation wait (which fetches as the test's uid) covers both.
    spire.create_entry(&Entry::new(WORKLOAD).selector(&user.selector()).x509_ttl(30));
    spire.create_entry(&Entry::new("spiffe://example.org/probe"));
    spire.wait_for_svid(PROPAGATION);
    // The agent socket lives in SPIRE's temp dir: let the postgres user reach it.
    user.share_dir(spire.dir());

    let dir = scratch();
    user.own(dir.path());
    let certs = dir.path().join("certs");
    let (svid, key) = (certs.join("svid.pem"), certs.join("svid_key.pem"));
    let mut pg = Postgres::init(&svid, &key);
    let config = write_file(
        dir.path(),
        "helper.conf",
        &format!(
            "{}pid_file_name = \"{}\"\nrenew_signal = \"SIGHUP\"\n",
            base_config(&spire.endpoint(), &certs),
            pg.pid_file().display()
        ),
    );
    let mut cmd = Command::new(HELPER);
    cmd.arg("-config").arg(&config);
    user.apply(&mut cmd);
    let mut helper = Helper::spawn_command(cmd, &config);
    assert!(
        wait_until(Duration::from_secs(30), || probe::serial_of_file(&svid)
            .is_some()),
        "no SVID written; log:\n{}",
        helper.log_tail()
    );
    let meta = fs::metadata(&key).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), user.uid);

    pg.run();
    let first = probe::serial_of_file(&svid).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || pg.served_serial().as_deref()
            == Some(first.as_str())),
        "PostgreSQL does not serve the helper's SVID; log:\n{}",
        pg.log()
    );
    let Some(second) = rotated(&svid, &first, ROTATION) else {
        panic!(
            "no rotation within {ROTATION:?}; log:\n{}",
            helper.log_tail()
        );
    };
    let served = wait_until(Duration::from_secs(15), || {
        pg.served_serial().as_deref() == Some(second.as_str())
    });
    assert!(
        served,
        "PostgreSQL still serves {:?}, not {second}; helper log:\n{}\nPostgreSQL log:\n{}",
        pg.served_serial(),
        helper.log_tail(),
        pg.log()
    );
    assert!(
        helper.log().contains("signalled pid file process"),
        "{}",
        helper.log_tail()
    );
    eprintln!("MEASURE postgres via postmaster.pid: serial {first} -> {second}");
    helper.assert_running("after the rotation");
    stop_cleanly(&mut helper);
}

/// docs/consumers.md, "One file with the key and the chain": `HAProxy` (master-worker)
/// terminates TLS with the helper's combined file (`crt`: key, then chain); `pid_file_name` is
/// the master's pid file and `renew_signal = "SIGUSR2"`; after a real SPIRE rotation `HAProxy`
/// serves the new serial, and no request of a loop running across the reload fails.
#[test]
fn haproxy_serves_the_rotated_svid_after_sigusr2_and_no_request_fails() {
    assert!(
        haproxy::available(),
        "HAProxy not found: run `make deps` (installs the Debian package haproxy)"
    );
    let spire = spire_with(&Entry::new(WORKLOAD).x509_ttl(30));
    let dir = scratch();
    let certs = dir.path().join("certs");
    let svid = certs.join("svid.pem");
    let combined = certs.join("combined.pem");
    let pid_file = dir.path().join("haproxy.pid");
    let config = write_file(
        dir.path(),
        "helper.conf",
        &format!(
            "{}svid_combined_file_name = \"combined.pem\"\npid_file_name = \"{}\"\nrenew_signal = \"SIGUSR2\"\n",
            base_config(&spire.endpoint(), &certs),
            pid_file.display()
        ),
    );
    let mut helper = Helper::spawn(&config, &[]);
    assert!(
        wait_until(Duration::from_secs(30), || probe::serial_of_file(&svid)
            .is_some()),
        "no SVID written; log:\n{}",
        helper.log_tail()
    );
    assert_combined_file(&combined, &certs.join("svid_key.pem"), &svid);
    let mut hap = haproxy::Haproxy::start_with_pid_file(&combined, Some(&pid_file));
    let first = probe::serial_of_file(&svid).unwrap();
    assert_eq!(hap.served_serial().as_deref(), Some(first.as_str()));

    let requests = hap.request_loop(Duration::from_millis(20), 5000, Duration::from_secs(90));
    let Some(second) = rotated(&svid, &first, ROTATION) else {
        panic!(
            "no rotation within {ROTATION:?}; log:\n{}",
            helper.log_tail()
        );
    };
    assert_eq!(
        probe::serial_of_file(&combined).as_deref(),
        Some(second.as_str())
    );
    let served = wait_until(Duration::from_secs(15), || {
        hap.served_serial().as_deref() == Some(second.as_str())
    });
    // Requests after the reload too, counted rather than timed (each is a curl process).
    let _ = requests.wait_for(requests.completed() + 10, Duration::from_secs(20));
    let counts = requests.finish();
    assert!(
        served,
        "HAProxy still serves {:?}, not {second}; helper log:\n{}\nHAProxy log:\n{}",
        hap.served_serial(),
        helper.log_tail(),
        hap.log()
    );
    assert!(
        hap.is_running(),
        "HAProxy master exited; log:\n{}",
        hap.log()
    );
    assert!(counts.ok > 50, "{counts:?}");
    assert_eq!(counts.failed, 0, "{counts:?}; HAProxy log:\n{}", hap.log());
    eprintln!(
        "MEASURE haproxy (combined file) via SIGUSR2: serial {first} -> {second}; {} requests ok, {} failed",
        counts.ok, counts.failed
    );
    helper.assert_running("after the rotation");
    stop_cleanly(&mut helper);
}

/// The combined file is the key file's bytes, then the SVID file's, mode 0600 (`key_file_mode`).
fn assert_combined_file(combined: &Path, key: &Path, svid: &Path) {
    let mut want = fs::read(key).unwrap();
    want.extend(fs::read(svid).unwrap());
    assert!(
        fs::read(combined).unwrap() == want,
        "the combined file is not key + chain"
    );
    assert_eq!(
        fs::metadata(combined).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
