//! Behaviour of the atomic writer and the X.509 / federated file writers
//! (docs/behaviour.md#how-files-are-written).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use common::{certs, hidden_entries, mode_of, root};
use spiffe_helper_pem::{
    FEDERATED_MANIFEST, IoOp, PemError, RenderedX509, SecretBytes, Written, X509Modes, X509Paths,
    ensure_dir, render_certificates, render_private_key, replace_all, write_atomic,
    write_federated_bundles, write_x509,
};

fn inode(p: &Path) -> u64 {
    fs::metadata(p).unwrap().ino()
}

#[test]
fn unchanged_content_and_mode_is_not_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("svid.pem");
    assert_eq!(write_atomic(&p, b"one", 0o644).unwrap(), Written::Changed);
    let first = inode(&p);
    assert_eq!(write_atomic(&p, b"one", 0o644).unwrap(), Written::Unchanged);
    assert_eq!(
        inode(&p),
        first,
        "file was replaced although nothing changed"
    );
    assert_eq!(write_atomic(&p, b"two", 0o644).unwrap(), Written::Changed);
    assert_eq!(fs::read(&p).unwrap(), b"two");
    assert_ne!(inode(&p), first);
    assert!(hidden_entries(dir.path()).is_empty());
}

#[test]
fn same_content_with_another_mode_is_rewritten_with_the_new_mode() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("svid_key.pem");
    assert!(write_atomic(&p, b"k", 0o644).unwrap().is_changed());
    assert_eq!(write_atomic(&p, b"k", 0o600).unwrap(), Written::Changed);
    assert_eq!(mode_of(&p), 0o600);
    assert_eq!(write_atomic(&p, b"k", 0o600).unwrap(), Written::Unchanged);
}

#[test]
fn read_only_0444_files_are_replaced_on_every_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("svid.pem");
    for content in [&b"first"[..], b"second", b"third"] {
        assert_eq!(write_atomic(&p, content, 0o444).unwrap(), Written::Changed);
        assert_eq!(fs::read(&p).unwrap(), content);
        assert_eq!(mode_of(&p), 0o444);
    }
    // A 0444 key file too, through write_x509.
    let paths = x509_paths(dir.path());
    for n in 0..3u8 {
        let files = files_numbered(n);
        assert!(
            write_x509(
                &paths,
                &files,
                X509Modes {
                    cert: 0o444,
                    key: 0o400
                }
            )
            .unwrap()
            .is_changed()
        );
        assert_eq!(fs::read(&paths.key).unwrap(), files.key.as_bytes());
        assert_eq!(mode_of(&paths.key), 0o400);
        assert_eq!(mode_of(&paths.bundle), 0o444);
    }
}

#[test]
fn jwt_token_file_holds_the_raw_token_without_newline() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("jwt.token");
    let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJzcGlmZmU6Ly9leGFtcGxlLm9yZy93In0.c2ln";
    assert!(
        write_atomic(&p, token.as_bytes(), 0o600)
            .unwrap()
            .is_changed()
    );
    assert_eq!(fs::read(&p).unwrap(), token.as_bytes());
}

#[test]
fn missing_directory_is_an_error_naming_path_and_step_and_ensure_dir_fixes_it() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a/b/c");
    let p = nested.join("svid.pem");
    let err = write_atomic(&p, b"x", 0o644).unwrap_err();
    assert!(
        matches!(&err, PemError::Io { op: IoOp::CreateTemp, path, .. } if path == &p),
        "{err:?}"
    );
    assert!(err.to_string().contains("a/b/c/svid.pem"), "{err}");
    ensure_dir(&nested).unwrap();
    ensure_dir(&nested).unwrap(); // existing is fine
    assert!(write_atomic(&p, b"x", 0o644).unwrap().is_changed());

    let file = dir.path().join("file");
    fs::write(&file, b"").unwrap();
    let err = ensure_dir(&file.join("sub")).unwrap_err();
    assert!(
        matches!(
            err,
            PemError::Io {
                op: IoOp::Mkdir,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn a_failed_rename_leaves_the_target_alone_and_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("svid.pem");
    fs::create_dir(&p).unwrap();
    fs::write(p.join("inside"), b"x").unwrap();
    let err = write_atomic(&p, b"cert", 0o644).unwrap_err();
    assert!(
        matches!(
            err,
            PemError::Io {
                op: IoOp::Rename,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        hidden_entries(dir.path()).is_empty(),
        "{:?}",
        hidden_entries(dir.path())
    );
    assert!(p.join("inside").exists());
}

fn x509_paths(dir: &Path) -> X509Paths {
    X509Paths {
        cert: dir.join("svid.pem"),
        key: dir.join("svid_key.pem"),
        bundle: dir.join("svid_bundle.pem"),
    }
}

/// Distinct, well-formed PEM files; `n` selects the version.
fn files_numbered(n: u8) -> RenderedX509 {
    let der = |tag: u8, len: usize| vec![tag.wrapping_add(n); len];
    RenderedX509 {
        cert: render_certificates(&[der(1, 300 + usize::from(n))]),
        key: render_private_key(&der(2, 120)),
        bundle: render_certificates(&[der(3, 400), der(4, 50 * usize::from(n % 3))]),
    }
}

#[test]
fn write_x509_writes_key_first_and_reports_any_change() {
    let dir = tempfile::tempdir().unwrap();
    let paths = x509_paths(dir.path());
    let modes = X509Modes {
        cert: 0o644,
        key: 0o600,
    };
    let v1 = files_numbered(1);
    assert!(write_x509(&paths, &v1, modes).unwrap().is_changed());
    assert_eq!(fs::read(&paths.cert).unwrap(), v1.cert);
    assert_eq!(fs::read(&paths.key).unwrap(), v1.key.as_bytes());
    assert_eq!(fs::read(&paths.bundle).unwrap(), v1.bundle);
    assert_eq!(
        (
            mode_of(&paths.cert),
            mode_of(&paths.key),
            mode_of(&paths.bundle)
        ),
        (0o644, 0o600, 0o644)
    );
    assert_eq!(write_x509(&paths, &v1, modes).unwrap(), Written::Unchanged);

    // Only the bundle differs: still Changed.
    let only_bundle = RenderedX509 {
        bundle: files_numbered(2).bundle,
        ..v1.clone()
    };
    assert_eq!(
        write_x509(&paths, &only_bundle, modes).unwrap(),
        Written::Changed
    );

    // Order: make the cert write fail (a non-empty directory at its path). The key is
    // already new, the bundle still old: a new cert can never appear next to an old key.
    fs::remove_file(&paths.cert).unwrap();
    fs::create_dir(&paths.cert).unwrap();
    fs::write(paths.cert.join("x"), b"").unwrap();
    let v3 = files_numbered(3);
    let err = write_x509(&paths, &v3, modes).unwrap_err();
    assert!(
        matches!(&err, PemError::Io { op: IoOp::Rename, path, .. } if path == &paths.cert),
        "{err:?}"
    );
    assert_eq!(fs::read(&paths.key).unwrap(), v3.key.as_bytes());
    assert_eq!(fs::read(&paths.bundle).unwrap(), only_bundle.bundle);
}

#[test]
fn key_file_is_never_observable_with_a_wider_mode() {
    let dir = tempfile::tempdir().unwrap();
    let paths = x509_paths(dir.path());
    let modes = X509Modes {
        cert: 0o644,
        key: 0o600,
    };
    assert!(
        write_x509(&paths, &files_numbered(0), modes)
            .unwrap()
            .is_changed()
    );
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (done, d) = (Arc::clone(&done), dir.path().to_owned());
        thread::spawn(move || {
            let (mut stats, mut temps) = (0u64, 0u64);
            while !done.load(Ordering::Relaxed) {
                for entry in fs::read_dir(&d).unwrap().flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if !name.contains("svid_key.pem") {
                        continue;
                    }
                    let Ok(meta) = fs::symlink_metadata(entry.path()) else {
                        continue;
                    };
                    stats += 1;
                    temps += u64::from(name.starts_with('.'));
                    let mode =
                        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777;
                    assert_eq!(mode & !0o600, 0, "{name} observed with mode {mode:o}");
                }
            }
            (stats, temps)
        })
    };
    for n in 1..=200u8 {
        assert!(
            write_x509(&paths, &files_numbered(n), modes)
                .unwrap()
                .is_changed()
        );
    }
    done.store(true, Ordering::Relaxed);
    let (stats, temps) = watcher.join().unwrap();
    println!("watcher: {stats} stats of key entries, {temps} of them temp files");
    assert!(stats >= 200, "watcher barely ran: {stats}");
}

#[test]
fn reader_never_sees_an_empty_or_partial_file_during_1000_rewrites() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("svid_bundle.pem");
    let small = render_certificates(&[vec![1; 100]]);
    let big = render_certificates(&[vec![2; 3000], vec![3; 3000], vec![4; 3000]]);
    assert!(write_atomic(&p, &small, 0o644).unwrap().is_changed());
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (done, p, small, big) = (Arc::clone(&done), p.clone(), small.clone(), big.clone());
        thread::spawn(move || {
            let mut reads = 0u64;
            while !done.load(Ordering::Relaxed) {
                let got = fs::read(&p).unwrap();
                let blocks = pem::parse_many(&got).unwrap();
                assert!(!blocks.is_empty(), "empty read");
                assert!(
                    got == small || got == big,
                    "partial read of {} bytes",
                    got.len()
                );
                reads += 1;
            }
            reads
        })
    };
    for i in 0..1000 {
        let content = if i % 2 == 0 { &big } else { &small };
        assert!(write_atomic(&p, content, 0o644).unwrap().is_changed());
    }
    done.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    println!("reader: {reads} complete reads during 1000 rewrites");
    assert!(reads > 100);
}

#[test]
fn secret_bytes_debug_is_redacted_in_rendered_files() {
    let files = RenderedX509 {
        cert: vec![],
        key: SecretBytes::new(b"PRIVATE".to_vec()),
        bundle: vec![],
    };
    let shown = format!("{files:?}");
    assert!(
        !shown.contains("PRIVATE") && shown.contains("7 bytes"),
        "{shown}"
    );
}

#[test]
fn federated_bundles_one_file_per_domain_and_stale_ones_removed() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("federated");
    let (a, b, c) = (root("a"), root("b"), root("c"));
    let mut fed = BTreeMap::new();
    fed.insert("a.org".to_owned(), vec![a.clone()]);
    fed.insert("b.org".to_owned(), vec![b.clone(), c.clone()]);
    assert!(
        write_federated_bundles(&d, &fed, 0o644)
            .unwrap()
            .is_changed()
    );
    assert_eq!(fs::read(d.join("a.org.pem")).unwrap(), certs(&[&a]));
    assert_eq!(fs::read(d.join("b.org.pem")).unwrap(), certs(&[&b, &c]));
    assert_eq!(mode_of(&d.join("b.org.pem")), 0o644);
    assert_eq!(
        write_federated_bundles(&d, &fed, 0o644).unwrap(),
        Written::Unchanged
    );

    // Files we did not write, including ones that look like trust-domain bundles.
    fs::write(d.join("svid.pem"), b"mine").unwrap();
    fs::write(d.join("c.org.pem"), b"hand-placed").unwrap();
    fed.remove("a.org");
    assert!(
        write_federated_bundles(&d, &fed, 0o644)
            .unwrap()
            .is_changed()
    );
    assert!(!d.join("a.org.pem").exists());
    assert!(d.join("b.org.pem").exists());
    assert_eq!(fs::read(d.join("svid.pem")).unwrap(), b"mine");
    assert_eq!(fs::read(d.join("c.org.pem")).unwrap(), b"hand-placed");
    assert_eq!(
        fs::read_to_string(d.join(FEDERATED_MANIFEST)).unwrap(),
        "b.org\n"
    );

    // A tampered manifest cannot aim a removal outside the directory.
    fs::write(dir.path().join("victim.pem"), b"x").unwrap();
    fs::write(d.join(FEDERATED_MANIFEST), "b.org\n../victim\n").unwrap();
    let _ = write_federated_bundles(&d, &fed, 0o644).unwrap();
    assert!(dir.path().join("victim.pem").exists());
}

#[test]
fn federated_bundle_names_that_are_not_trust_domains_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    for bad in [
        "../evil",
        "",
        "..",
        ".",
        "UPPER.org",
        "a/b",
        "spiffe://x.org",
    ] {
        let mut fed = BTreeMap::new();
        fed.insert(bad.to_owned(), vec![root("r")]);
        let err = write_federated_bundles(dir.path(), &fed, 0o644).unwrap_err();
        assert!(
            matches!(&err, PemError::InvalidTrustDomainName { name } if name == bad),
            "{err:?}"
        );
    }
    assert_eq!(
        fs::read_dir(dir.path()).unwrap().count(),
        0,
        "something was written"
    );
}

/// The daemon signals its consumer between the renames and the directory fsync: by then every
/// new file must be complete, with its mode, and nothing staged may be left over.
#[test]
fn replace_all_makes_every_file_visible_before_finish() {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("k.pem"), dir.path().join("c.pem"));
    let _ = write_atomic(&cert, b"old cert", 0o644).unwrap();
    // A temp file a killed writer left behind for this very target.
    fs::write(dir.path().join(".c.pem.tmp-AAAAAAAAAAAA"), b"stale").unwrap();
    let renamed = replace_all(&[(&key, b"new key", 0o600), (&cert, b"new cert", 0o644)]).unwrap();
    assert_eq!(renamed.written(), Written::Changed);
    assert_eq!(fs::read(&key).unwrap(), b"new key");
    assert_eq!(fs::read(&cert).unwrap(), b"new cert");
    assert_eq!((mode_of(&key), mode_of(&cert)), (0o600, 0o644));
    assert_eq!(renamed.finish().unwrap(), Written::Changed);
    assert!(
        hidden_entries(dir.path()).is_empty(),
        "stray temp file left"
    );

    let again = replace_all(&[(&key, b"new key", 0o600), (&cert, b"new cert", 0o644)]).unwrap();
    assert_eq!(again.written(), Written::Unchanged);
    assert_eq!(again.finish().unwrap(), Written::Unchanged);
}
