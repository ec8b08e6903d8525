//! Unit tests that need the writer's private hook: a seeded random source makes the temp
//! names predictable, so symlinks can be planted exactly where the writer will open.

use std::fs;
use std::os::unix::fs::{PermissionsExt as _, symlink};
use std::path::Path;

use super::{Written, create_temp, temp_name, write_atomic_with};

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn symlinks_planted_at_the_temp_names_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    fs::write(&victim, b"do not touch").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o600)).unwrap();
    let dangling = outside.path().join("would-be-created");

    let target = dir.path().join("svid_key.pem");
    let name = target.file_name().unwrap();
    let mut predict = fastrand::Rng::with_seed(42);
    // The first three names the writer will try: two symlinks to an existing file, one
    // dangling symlink (O_CREAT without O_EXCL would create its target).
    let planted: Vec<_> = (0..3)
        .map(|_| dir.path().join(temp_name(name, &mut predict)))
        .collect();
    symlink(&victim, &planted[0]).unwrap();
    symlink(&dangling, &planted[1]).unwrap();
    symlink(&victim, &planted[2]).unwrap();

    let written = write_atomic_with(
        &target,
        b"new key",
        0o600,
        &mut fastrand::Rng::with_seed(42),
    )
    .unwrap();

    assert_eq!(written, Written::Changed);
    assert_eq!(fs::read(&target).unwrap(), b"new key");
    assert_eq!(mode_of(&target), 0o600);
    assert!(fs::symlink_metadata(&target).unwrap().is_file());
    assert_eq!(fs::read(&victim).unwrap(), b"do not touch");
    assert_eq!(mode_of(&victim), 0o600);
    assert!(
        !dangling.exists(),
        "a dangling symlink's target was created"
    );
    // The planted links match the temp pattern of this target, so clean-up unlinked them
    // (unlink removes the link, never what it points to).
    for p in &planted {
        assert!(
            fs::symlink_metadata(p).is_err(),
            "{} still there",
            p.display()
        );
    }
}

#[test]
fn symlink_at_the_target_is_replaced_not_written_through() {
    let dir = tempfile::tempdir().unwrap();
    let victim = dir.path().join("victim");
    fs::write(&victim, b"same").unwrap();
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
    let target = dir.path().join("svid.pem");
    symlink(&victim, &target).unwrap();

    // Same bytes and mode as the link's target: still rewritten, since the target is a link.
    let written = write_atomic_with(&target, b"same", 0o644, &mut fastrand::Rng::new()).unwrap();

    assert_eq!(written, Written::Changed);
    assert!(fs::symlink_metadata(&target).unwrap().is_file());
    assert_eq!(fs::read(&victim).unwrap(), b"same");
}

#[test]
fn stray_cleanup_removes_only_this_targets_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mine = d.join(".svid.pem.tmp-AbCdEf012345");
    let keep = [
        ".svid.pem.tmp-x.tmp-AbCdEf012345", // temp file of target "svid.pem.tmp-x"
        ".svid.pem.tmp-AbCdEf01234",        // 11 random chars
        ".svid.pem.tmp-AbCdEf0123456",      // 13 random chars
        ".svid.pem.tmp-AbCdEf01234_",       // not alphanumeric
        ".svid_key.pem.tmp-AbCdEf012345",   // another target
        "svid.pem.bak",
    ];
    fs::write(&mine, b"partial").unwrap();
    for k in keep {
        fs::write(d.join(k), b"x").unwrap();
    }

    let _ = write_atomic_with(
        &d.join("svid.pem"),
        b"cert",
        0o644,
        &mut fastrand::Rng::new(),
    )
    .unwrap();

    assert!(!mine.exists());
    for k in keep {
        assert!(d.join(k).exists(), "{k} was removed");
    }
}

#[test]
fn temp_name_has_the_documented_shape() {
    let n = temp_name("svid.pem".as_ref(), &mut fastrand::Rng::with_seed(1));
    let s = n.to_str().unwrap();
    assert!(s.starts_with(".svid.pem.tmp-"), "{s}");
    assert_eq!(s.len(), ".svid.pem.tmp-".len() + 12);
}

/// Pins the window the watcher test in `tests/write.rs` can only sample: between `open` and
/// `fchmod` the temp file has no permission bits at all, whatever the umask.
#[test]
fn temp_file_has_no_permissions_until_fchmod() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("svid_key.pem");
    let (tmp, _file) = create_temp(
        dir.path(),
        target.file_name().unwrap(),
        &target,
        &mut fastrand::Rng::new(),
    )
    .unwrap();
    assert_eq!(mode_of(&tmp), 0o000);
}
