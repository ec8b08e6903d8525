//! The consumer harnesses on their own, without the helper: PostgreSQL serves the certificate
//! it is given and serves a new one after SIGHUP to the pid on the first line of its
//! `postmaster.pid`; HAProxy serves a combined key+chain file and keeps answering every request
//! across a SIGUSR2 reload of its master.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stderr,
    clippy::doc_markdown
)]

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use spiffe_helper_testkit::certs::{TestCa, TestSvid, pem_block};
use spiffe_helper_testkit::consumers::{haproxy, postgres, probe};

fn svid() -> TestSvid {
    TestCa::root("example.org").issue("spiffe://example.org/db", Duration::from_secs(3600))
}

fn write(path: &Path, body: &str, mode: u32) {
    fs::write(path, body).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    cond()
}

#[test]
fn postgres_serves_the_given_cert_and_a_new_one_after_sighup_to_its_pid_file() {
    assert!(
        postgres::available(),
        "PostgreSQL 15 not found in {}: run `make deps` as root (installs the Debian package postgresql-15)",
        postgres::bin_dir().display()
    );
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test must run as root: PostgreSQL refuses to run as root, so the test hands its \
         files to the `postgres` user (chown), which only root may do; run `make test` as root"
    );
    let user = postgres::PgUser::lookup();
    let dir = tempfile::Builder::new()
        .prefix("pgc")
        .tempdir_in("/tmp")
        .unwrap();
    user.share_dir(dir.path());
    let (cert, key) = (dir.path().join("svid.pem"), dir.path().join("svid_key.pem"));
    let install = |s: &TestSvid| {
        write(&cert, &pem_block("CERTIFICATE", &s.chain[0]), 0o644);
        write(&key, &pem_block("PRIVATE KEY", &s.key_pkcs8), 0o600);
        user.own(&key);
    };
    let first = svid();
    install(&first);
    let want_first = probe::serial_of_file(&cert).unwrap();
    let pg = postgres::Postgres::start(&cert, &key);
    assert_eq!(pg.served_serial().as_deref(), Some(want_first.as_str()));

    let second = svid();
    install(&second);
    let want_second = probe::serial_of_file(&cert).unwrap();
    assert_ne!(want_first, want_second);
    // What the helper will do: the pid on the first line of postmaster.pid, SIGHUP.
    let text = fs::read_to_string(pg.pid_file()).unwrap();
    assert!(text.lines().count() >= 8, "postmaster.pid: {text:?}");
    let pid: i32 = text.lines().next().unwrap().trim().parse().unwrap();
    assert_eq!(u32::try_from(pid).unwrap(), pg.pid());
    kill(Pid::from_raw(pid), Signal::SIGHUP).unwrap();
    let reloaded = wait_until(Duration::from_secs(10), || {
        pg.served_serial().as_deref() == Some(want_second.as_str())
    });
    assert!(
        reloaded,
        "still serving {:?}; log:\n{}",
        pg.served_serial(),
        pg.log()
    );
    eprintln!("postgres: serial {want_first} -> {want_second} after SIGHUP to postmaster.pid");
}

#[test]
fn haproxy_serves_the_combined_file_and_no_request_fails_across_a_reload() {
    assert!(
        haproxy::available(),
        "HAProxy not found at {}: run `make deps` as root (installs the Debian package haproxy)",
        haproxy::binary().display()
    );
    let dir = tempfile::Builder::new()
        .prefix("hapc")
        .tempdir_in("/tmp")
        .unwrap();
    let crt = dir.path().join("combined.pem");
    let install = |s: &TestSvid| {
        let mut body = pem_block("PRIVATE KEY", &s.key_pkcs8);
        body.push_str(&pem_block("CERTIFICATE", &s.chain[0]));
        write(&crt, &body, 0o600);
    };
    let first = svid();
    install(&first);
    let want_first = probe::serial_of_file(&crt).unwrap();
    let mut hap = haproxy::Haproxy::start(&crt);
    assert_eq!(hap.served_serial().as_deref(), Some(want_first.as_str()));
    let pid: u32 = fs::read_to_string(hap.pid_file())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, hap.master_pid(), "the pid file names the master");

    let requests = hap.request_loop(Duration::from_millis(10), 2000, Duration::from_secs(60));
    // Requests on both sides of the reload, counted rather than timed (each is a curl process).
    assert!(
        requests.wait_for(10, Duration::from_secs(20)),
        "only {} requests before the reload",
        requests.completed()
    );
    let second = svid();
    install(&second);
    let want_second = probe::serial_of_file(&crt).unwrap();
    hap.reload();
    let reloaded = wait_until(Duration::from_secs(10), || {
        hap.served_serial().as_deref() == Some(want_second.as_str())
    });
    let after = requests.completed() + 10;
    assert!(
        requests.wait_for(after, Duration::from_secs(20)),
        "only {} requests in all, fewer than 10 after the reload",
        requests.completed()
    );
    let counts = requests.finish();
    assert!(
        reloaded,
        "still serving {:?}; log:\n{}",
        hap.served_serial(),
        hap.log()
    );
    assert!(hap.is_running(), "master exited; log:\n{}", hap.log());
    assert!(counts.ok >= 20, "{counts:?}");
    assert_eq!(counts.failed, 0, "{counts:?}; log:\n{}", hap.log());
    eprintln!(
        "haproxy: serial {want_first} -> {want_second} after SIGUSR2; {} requests ok, {} failed",
        counts.ok, counts.failed
    );
}
