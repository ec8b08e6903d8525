//! Filesystem faults (root only): the cert dir's filesystem is full (a 64 KiB tmpfs), or the
//! cert dir is immutable (`chattr +i`, which stops root too, unlike `chmod 0555`). The write
//! fails cleanly, the previous files stay intact, liveness reports it, and it recovers.

use std::time::{Duration, Instant};

use spiffe_helper_testkit::spire::{Entry, Spire};

use crate::faults::kit::{
    Fake, FileChecker, Immutable, Tmpfs, X509Files, daemon_config, live, log_has, ready,
    start_daemon, stray_temps, wait_ready,
};
use crate::inspect::{key_matches_cert, leaf};
use crate::support::{PROPAGATION, WORKLOAD, free_port, scratch, stop_cleanly, wait_until};

/// Disk full during a real SPIRE rotation: liveness 503, old files intact and consistent, no
/// temp files left; space returns: the pending rotation is written, liveness 200.
#[test]
fn disk_full_during_rotation_keeps_old_files_and_recovers() {
    let spire = Spire::start();
    spire.create_entry(&Entry::new(WORKLOAD).x509_ttl(30));
    spire.wait_for_svid(PROPAGATION);
    let dir = scratch();
    let certs = dir.path().join("certs");
    let tmpfs = Tmpfs::mount(&certs, "64k");
    let files = X509Files::in_dir(&certs);
    let port = free_port();
    let mut helper = start_daemon(
        dir.path(),
        &daemon_config(&spire.endpoint(), &certs, port, ""),
    );
    wait_ready(&mut helper, &files.svid, port);

    let filled = tmpfs.fill();
    let kept = files.snapshot();
    let kept_serial = leaf(&files.svid).unwrap().serial;
    let checker = FileChecker::start(&files);
    // The next rotation (at about half of the 30 s lifetime) cannot be written.
    assert!(
        wait_until(Duration::from_secs(50), || live(port) == Some(503)),
        "liveness never went 503 with a full disk ({filled} bytes of filler); log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    let failed_at = Instant::now();
    helper.assert_running("after a failed write");
    assert!(
        log_has(&helper.log(), &["no space"]),
        "the failed write is not logged with its cause; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    assert_eq!(
        files.snapshot(),
        kept,
        "previous files changed by a failed write"
    );
    assert!(key_matches_cert(&files.key, &files.svid));
    assert_eq!(
        stray_temps(&certs),
        Vec::<String>::new(),
        "temp files left by a failed write"
    );
    assert_eq!(
        ready(port),
        Some(200),
        "readiness dropped although the old SVID is valid"
    );

    tmpfs.drain();
    let recovered = wait_until(Duration::from_secs(40), || {
        live(port) == Some(200) && leaf(&files.svid).is_some_and(|l| l.serial != kept_serial)
    });
    assert!(
        recovered,
        "no recovery within 40 s after space returned; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    let (reads, problems) = checker.finish();
    assert!(
        problems.is_empty(),
        "invalid file content seen: {problems:#?}"
    );
    assert!(key_matches_cert(&files.key, &files.svid));
    assert_eq!(stray_temps(&certs), Vec::<String>::new());
    eprintln!(
        "disk full: write failed, recovered {:?} after failure, {reads} clean read rounds",
        failed_at.elapsed()
    );
    stop_cleanly(&mut helper);
}

/// Immutable cert dir (EPERM on create/rename, even for root): the update is not written,
/// liveness 503, files intact; attribute cleared: the retry writes it, liveness 200.
#[test]
fn immutable_cert_dir_fails_cleanly_and_recovers() {
    let fake = Fake::start();
    let first = fake.push_fresh();
    let dir = scratch();
    let certs = dir.path().join("certs");
    let files = X509Files::in_dir(&certs);
    let port = free_port();
    let mut helper = start_daemon(
        dir.path(),
        &daemon_config(&fake.endpoint(), &certs, port, ""),
    );
    assert_eq!(wait_ready(&mut helper, &files.svid, port), first);
    let kept = files.snapshot();

    let mut immutable = Immutable::set(&certs);
    let second = fake.push_fresh();
    assert!(
        wait_until(Duration::from_secs(10), || live(port) == Some(503)),
        "liveness not 503 after a write into an immutable dir; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    assert!(
        log_has(&helper.log(), &["not permitted"]),
        "the failed write is not logged with its cause; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    std::thread::sleep(Duration::from_secs(2)); // a few retries
    helper.assert_running("while the dir is immutable");
    assert_eq!(
        files.snapshot(),
        kept,
        "previous files changed by a failed write"
    );
    assert_eq!(ready(port), Some(200));

    immutable.clear();
    let cleared = Instant::now();
    assert!(
        wait_until(Duration::from_secs(40), || {
            live(port) == Some(200) && leaf(&files.svid).is_some_and(|l| l.serial == second)
        }),
        "the pending update was not written after the dir became writable; log:\n{}",
        crate::faults::kit::tail(&helper)
    );
    eprintln!(
        "immutable dir: recovered {:?} after clearing",
        cleared.elapsed()
    );
    assert!(key_matches_cert(&files.key, &files.svid));
    assert_eq!(stray_temps(&certs), Vec::<String>::new());
    stop_cleanly(&mut helper);
}
