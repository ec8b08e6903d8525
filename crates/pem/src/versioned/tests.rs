//! The versioned layout: what is on disk after updates, exact modes, unchanged updates, the
//! switch from the per-file layout, and what a crash can leave.

use std::os::unix::fs::PermissionsExt as _;

use super::*;

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn versions(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(VERSION_PREFIX))
        .collect();
    names.sort();
    names
}

#[test]
fn an_update_writes_a_version_switches_data_and_links_each_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    let mut layout = VersionedDir::open(&dir, &["svid.pem", "svid_key.pem"]);
    let renamed = layout
        .update(&[
            ("svid_key.pem", b"key 1", 0o600),
            ("svid.pem", b"cert 1", 0o644),
        ])
        .unwrap();
    assert!(renamed.finish().unwrap().is_changed());
    assert_eq!(fs::read(dir.join("svid.pem")).unwrap(), b"cert 1");
    assert_eq!(fs::read(dir.join("svid_key.pem")).unwrap(), b"key 1");
    assert_eq!(mode(&dir.join("svid_key.pem")), 0o600);
    assert_eq!(mode(&dir.join("svid.pem")), 0o644);
    assert_eq!(
        fs::read_link(dir.join("svid.pem")).unwrap(),
        Path::new("..data/svid.pem")
    );
    let live = fs::read_link(dir.join(DATA_LINK)).unwrap();
    assert_eq!(versions(&dir), vec![live.to_string_lossy().into_owned()]);

    // A second update of one file: a new version holding both, the old one removed.
    let _ = layout
        .update(&[("svid.pem", b"cert 2", 0o644)])
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!(fs::read(dir.join("svid.pem")).unwrap(), b"cert 2");
    assert_eq!(fs::read(dir.join("svid_key.pem")).unwrap(), b"key 1");
    let next = fs::read_link(dir.join(DATA_LINK)).unwrap();
    assert_ne!(next, live);
    assert_eq!(versions(&dir), vec![next.to_string_lossy().into_owned()]);
}

#[test]
fn the_same_content_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = VersionedDir::open(tmp.path(), &["a"]);
    let files: &[(&str, &[u8], u32)] = &[("a", b"x", 0o640)];
    let _ = layout.update(files).unwrap().finish().unwrap();
    let live = fs::read_link(tmp.path().join(DATA_LINK)).unwrap();
    assert_eq!(
        layout.update(files).unwrap().finish().unwrap(),
        Written::Unchanged
    );
    assert_eq!(fs::read_link(tmp.path().join(DATA_LINK)).unwrap(), live);
    // A mode change alone is a change.
    let _ = layout
        .update(&[("a", b"x", 0o600)])
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!(mode(&tmp.path().join("a")), 0o600);
}

#[test]
fn regular_files_of_the_per_file_layout_become_links() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join("svid.pem"), b"old").unwrap();
    let mut layout = VersionedDir::open(tmp.path(), &["svid.pem"]);
    let _ = layout
        .update(&[("svid.pem", b"new", 0o644)])
        .unwrap()
        .finish()
        .unwrap();
    assert!(
        fs::symlink_metadata(tmp.path().join("svid.pem"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::read(tmp.path().join("svid.pem")).unwrap(), b"new");
}

#[test]
fn a_restart_takes_over_the_live_files_it_still_names() {
    let tmp = tempfile::tempdir().unwrap();
    let mut first = VersionedDir::open(tmp.path(), &["a", "jwt", "gone"]);
    let _ = first
        .update(&[
            ("a", b"1", 0o644),
            ("jwt", b"token", 0o600),
            ("gone", b"g", 0o644),
        ])
        .unwrap()
        .finish()
        .unwrap();
    // The next run no longer names "gone"; its first update is of "a" only.
    let mut second = VersionedDir::open(tmp.path(), &["a", "jwt"]);
    let _ = second
        .update(&[("a", b"2", 0o644)])
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!(fs::read(tmp.path().join("jwt")).unwrap(), b"token");
    assert_eq!(mode(&tmp.path().join("jwt")), 0o600);
    assert_eq!(fs::read(tmp.path().join("a")).unwrap(), b"2");
    assert!(
        !tmp.path().join(DATA_LINK).join("gone").exists(),
        "a file the config no longer names is not carried into new versions"
    );
}

#[test]
fn names_outside_the_directory_or_behind_dots_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut layout = VersionedDir::open(tmp.path(), &[]);
    for bad in ["", "sub/a", "..data", "..x", "."] {
        assert!(layout.update(&[(bad, b"x", 0o644)]).is_err(), "{bad:?}");
    }
    assert!(!tmp.path().join(DATA_LINK).exists(), "nothing written");
}

#[test]
fn after_a_crash_between_steps_the_live_version_is_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut layout = VersionedDir::open(dir, &["a", "b"]);
    let _ = layout
        .update(&[("a", b"a1", 0o644), ("b", b"b1", 0o600)])
        .unwrap()
        .finish()
        .unwrap();
    // A crash after a new version directory was half written and a temporary link made,
    // before the switch: what is left must not disturb the live set or the next update.
    let stray = dir.join(format!("{VERSION_PREFIX}1-crash"));
    fs::create_dir(&stray).unwrap();
    fs::write(stray.join("a"), b"half").unwrap();
    std::os::unix::fs::symlink(&stray, dir.join(DATA_TMP)).unwrap();
    assert_eq!(fs::read(dir.join("a")).unwrap(), b"a1");
    assert_eq!(fs::read(dir.join("b")).unwrap(), b"b1");

    let mut restarted = VersionedDir::open(dir, &["a", "b"]);
    let _ = restarted
        .update(&[("a", b"a2", 0o644)])
        .unwrap()
        .finish()
        .unwrap();
    assert_eq!(fs::read(dir.join("a")).unwrap(), b"a2");
    assert_eq!(fs::read(dir.join("b")).unwrap(), b"b1");
    assert!(!stray.exists(), "the unfinished version is removed");
    assert_eq!(versions(dir).len(), 1);
}
