//! The outputs of docs/consumers.md: the combined key-and-chain file and the SPIFFE
//! filesystem-delivery folder. Exact bytes (against the independent `pem` crate encoder),
//! modes, order within the batch, removal of vanished domains, no temp files left.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Pki, Y2030, certs, hidden_entries, mode_of, reference, root};
use spiffe_helper_pem::{
    CREDENTIAL_BUNDLE_FILE, DELIVERY_MANIFEST, IoOp, PemError, RenderedDelivery, Written,
    X509Material, X509Modes, X509Options, X509Paths, render_combined, render_filesystem_delivery,
    render_x509, write_filesystem_delivery, write_x509, write_x509_with_combined,
};

const MODES: X509Modes = X509Modes {
    cert: 0o644,
    key: 0o640,
};

fn options(add_intermediates: bool, federated: bool) -> X509Options {
    X509Options {
        add_intermediates_to_bundle: add_intermediates,
        include_federated_domains: federated,
        omit_expired: false,
        now: SystemTime::now(),
    }
}

fn paths(dir: &Path) -> X509Paths {
    X509Paths {
        cert: dir.join("svid.pem"),
        key: dir.join("svid_key.pem"),
        bundle: dir.join("svid_bundle.pem"),
    }
}

/// Temp files (hidden), not counting the ownership records.
fn temps(dir: &Path) -> Vec<String> {
    hidden_entries(dir)
        .into_iter()
        .filter(|n| n != DELIVERY_MANIFEST)
        .collect()
}

#[test]
fn combined_file_is_the_key_block_then_the_chain_in_svid_file_order() {
    let pki = Pki::new();
    let chain = vec![pki.leaf.clone(), pki.intermediate.clone()];
    let roots = vec![pki.root.clone()];
    let none = BTreeMap::new();
    let m = X509Material {
        chain: &chain,
        key_pkcs8_der: &pki.key,
        bundle: &roots,
        federated: &none,
    };
    let files = render_x509(&m, &options(false, false)).unwrap();
    let mut want = reference("PRIVATE KEY", &[&pki.key]);
    want.extend(certs(&[&pki.leaf, &pki.intermediate]));
    assert_eq!(render_combined(&files).as_bytes(), want.as_slice());

    // The SVID file decides: with add_intermediates_to_bundle it is the leaf only.
    let leaf_only = render_x509(&m, &options(true, false)).unwrap();
    let mut want = reference("PRIVATE KEY", &[&pki.key]);
    want.extend(certs(&[&pki.leaf]));
    assert_eq!(render_combined(&leaf_only).as_bytes(), want.as_slice());
    assert!(format!("{:?}", render_combined(&files)).contains("REDACTED"));
}

#[test]
fn combined_file_is_written_with_the_key_mode_and_upstream_files_are_unchanged() {
    let pki = Pki::new();
    let chain = vec![pki.leaf.clone(), pki.intermediate.clone()];
    let roots = vec![pki.root.clone()];
    let none = BTreeMap::new();
    let m = X509Material {
        chain: &chain,
        key_pkcs8_der: &pki.key,
        bundle: &roots,
        federated: &none,
    };
    let files = render_x509(&m, &options(false, false)).unwrap();

    let plain = tempfile::tempdir().unwrap();
    let _ = write_x509(&paths(plain.path()), &files, MODES).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = paths(dir.path());
    let combined = dir.path().join("combined.pem");
    let written = write_x509_with_combined(&p, &combined, &files, MODES).unwrap();
    assert_eq!(written, Written::Changed);
    assert_eq!(mode_of(&combined), 0o640);
    assert_eq!(
        fs::read(&combined).unwrap(),
        render_combined(&files).as_bytes()
    );
    // The three upstream files: same bytes and modes with or without the combined file.
    for (a, b) in [
        (&p.cert, plain.path().join("svid.pem")),
        (&p.key, plain.path().join("svid_key.pem")),
        (&p.bundle, plain.path().join("svid_bundle.pem")),
    ] {
        assert_eq!(
            fs::read(a).unwrap(),
            fs::read(&b).unwrap(),
            "{}",
            a.display()
        );
        assert_eq!(mode_of(a), mode_of(&b));
    }
    assert!(temps(dir.path()).is_empty(), "{:?}", temps(dir.path()));
    assert_eq!(
        write_x509_with_combined(&p, &combined, &files, MODES).unwrap(),
        Written::Unchanged
    );
    // Only the combined file changed (e.g. its mode): still a change.
    fs::remove_file(&combined).unwrap();
    assert_eq!(
        write_x509_with_combined(&p, &combined, &files, MODES).unwrap(),
        Written::Changed
    );
}

#[test]
fn combined_file_is_renamed_after_the_key_and_before_the_cert() {
    let old = Pki::new();
    let new = Pki::new();
    let render = |pki: &Pki| {
        let chain = vec![pki.leaf.clone()];
        let roots = vec![pki.root.clone()];
        let none = BTreeMap::new();
        let m = X509Material {
            chain: &chain,
            key_pkcs8_der: &pki.key,
            bundle: &roots,
            federated: &none,
        };
        render_x509(&m, &options(false, false)).unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let p = paths(dir.path());
    let combined = dir.path().join("combined.pem");
    let old_files = render(&old);
    let _ = write_x509_with_combined(&p, &combined, &old_files, MODES).unwrap();

    // Make the cert's rename fail: a non-empty directory in its place.
    fs::remove_file(&p.cert).unwrap();
    fs::create_dir(&p.cert).unwrap();
    fs::write(p.cert.join("x"), b"x").unwrap();
    let new_files = render(&new);
    let err = write_x509_with_combined(&p, &combined, &new_files, MODES).unwrap_err();
    assert!(
        matches!(&err, PemError::Io { op: IoOp::Rename, path, .. } if path == &p.cert),
        "{err:?}"
    );
    // Key and combined already replaced, the bundle (after the cert) not yet.
    assert_eq!(fs::read(&p.key).unwrap(), new_files.key.as_bytes());
    assert_eq!(
        fs::read(&combined).unwrap(),
        render_combined(&new_files).as_bytes()
    );
    assert_eq!(fs::read(&p.bundle).unwrap(), old_files.bundle);
    assert!(temps(dir.path()).is_empty(), "{:?}", temps(dir.path()));
}

fn delivery_material(pki: &Pki, federated: &BTreeMap<String, Vec<Vec<u8>>>) -> RenderedDelivery {
    let chain = vec![pki.leaf.clone(), pki.intermediate.clone()];
    let roots = vec![pki.root.clone()];
    let m = X509Material {
        chain: &chain,
        key_pkcs8_der: &pki.key,
        bundle: &roots,
        federated,
    };
    // add_intermediates_to_bundle does not apply to the delivery layout.
    render_filesystem_delivery(&m, "example.org", &options(true, true)).unwrap()
}

#[test]
fn delivery_folder_has_the_credential_bundle_and_one_file_per_domain() {
    let pki = Pki::new();
    let (a1, a2, b1) = (root("a1"), root("a2"), root("b1"));
    let mut federated = BTreeMap::new();
    federated.insert("a.org".to_owned(), vec![a1.clone(), a2.clone()]);
    federated.insert("b.org".to_owned(), vec![b1.clone()]);
    let rendered = delivery_material(&pki, &federated);

    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("spiffe");
    assert_eq!(
        write_filesystem_delivery(&dir, &rendered, 0o600, 0o644).unwrap(),
        Written::Changed
    );
    let mut cred = reference("PRIVATE KEY", &[&pki.key]);
    cred.extend(certs(&[&pki.leaf, &pki.intermediate]));
    assert_eq!(fs::read(dir.join(CREDENTIAL_BUNDLE_FILE)).unwrap(), cred);
    assert_eq!(mode_of(&dir.join(CREDENTIAL_BUNDLE_FILE)), 0o600);
    let expect = [
        ("example.org.x509.pem", certs(&[&pki.root])),
        ("a.org.x509.pem", certs(&[&a1, &a2])),
        ("b.org.x509.pem", certs(&[&b1])),
    ];
    for (name, bytes) in &expect {
        assert_eq!(&fs::read(dir.join(name)).unwrap(), bytes, "{name}");
        assert_eq!(mode_of(&dir.join(name)), 0o644, "{name}");
    }
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            DELIVERY_MANIFEST,
            "a.org.x509.pem",
            "b.org.x509.pem",
            CREDENTIAL_BUNDLE_FILE,
            "example.org.x509.pem"
        ]
    );
    assert_eq!(
        write_filesystem_delivery(&dir, &rendered, 0o600, 0o644).unwrap(),
        Written::Unchanged
    );
}

#[test]
fn a_domain_that_disappears_has_its_file_removed_and_nothing_else_is_touched() {
    let pki = Pki::new();
    let mut federated = BTreeMap::new();
    federated.insert("a.org".to_owned(), vec![root("a")]);
    federated.insert("b.org".to_owned(), vec![root("b")]);
    let dir = tempfile::tempdir().unwrap();
    let _ = write_filesystem_delivery(
        dir.path(),
        &delivery_material(&pki, &federated),
        0o600,
        0o644,
    )
    .unwrap();
    // A file the helper never wrote, with a name that looks like ours.
    fs::write(dir.path().join("hand.org.x509.pem"), b"mine").unwrap();

    federated.remove("a.org");
    let written = write_filesystem_delivery(
        dir.path(),
        &delivery_material(&pki, &federated),
        0o600,
        0o644,
    )
    .unwrap();
    assert_eq!(written, Written::Changed, "a removal is a change");
    assert!(!dir.path().join("a.org.x509.pem").exists());
    assert!(dir.path().join("b.org.x509.pem").exists());
    assert!(dir.path().join("example.org.x509.pem").exists());
    assert_eq!(
        fs::read(dir.path().join("hand.org.x509.pem")).unwrap(),
        b"mine"
    );
    assert_eq!(
        fs::read_to_string(dir.path().join(DELIVERY_MANIFEST)).unwrap(),
        "b.org\nexample.org\n"
    );
    assert!(temps(dir.path()).is_empty(), "{:?}", temps(dir.path()));
}

#[test]
fn federated_domains_only_when_asked_and_bad_names_write_nothing() {
    let pki = Pki::new();
    let chain = vec![pki.leaf.clone()];
    let roots = vec![pki.root.clone()];
    let mut federated = BTreeMap::new();
    federated.insert("a.org".to_owned(), vec![root("a")]);
    let m = X509Material {
        chain: &chain,
        key_pkcs8_der: &pki.key,
        bundle: &roots,
        federated: &federated,
    };
    let own_only = render_filesystem_delivery(&m, "example.org", &options(false, false)).unwrap();
    assert_eq!(
        own_only.trust_bundles.keys().collect::<Vec<_>>(),
        ["example.org"]
    );
    for bad in ["", "..", "Upper.org", "a/b"] {
        let err = render_filesystem_delivery(&m, bad, &options(false, false)).unwrap_err();
        assert!(
            matches!(err, PemError::InvalidTrustDomainName { .. }),
            "{bad:?}: {err:?}"
        );
    }
    let mut evil = own_only.clone();
    evil.trust_bundles.insert("../x".to_owned(), b"x".to_vec());
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("d");
    assert!(matches!(
        write_filesystem_delivery(&target, &evil, 0o600, 0o644),
        Err(PemError::InvalidTrustDomainName { .. })
    ));
    assert!(!target.exists(), "nothing is written for a bad name");
}

#[test]
fn omit_expired_applies_to_the_delivery_files_and_an_expired_leaf_is_an_error() {
    let pki = Pki::with_years(2030, 2100);
    let old_root = common::root_expiring("old", 2030);
    let chain = vec![pki.leaf.clone(), pki.intermediate.clone()];
    let roots = vec![old_root, pki.root.clone()];
    let none = BTreeMap::new();
    let m = X509Material {
        chain: &chain,
        key_pkcs8_der: &pki.key,
        bundle: &roots,
        federated: &none,
    };
    let after_2030 = X509Options {
        omit_expired: true,
        now: UNIX_EPOCH + Duration::from_secs(Y2030 + 1),
        ..options(false, false)
    };
    let r = render_filesystem_delivery(&m, "example.org", &after_2030).unwrap();
    let mut cred = reference("PRIVATE KEY", &[&pki.key]);
    cred.extend(certs(&[&pki.leaf]));
    assert_eq!(r.credential.as_bytes(), cred.as_slice());
    assert_eq!(r.trust_bundles["example.org"], certs(&[&pki.root]));

    let expired_leaf = Pki::with_years(2100, 2030);
    let chain = vec![expired_leaf.leaf.clone()];
    let m = X509Material {
        chain: &chain,
        key_pkcs8_der: &expired_leaf.key,
        bundle: &roots,
        federated: &none,
    };
    assert!(matches!(
        render_filesystem_delivery(&m, "example.org", &after_2030),
        Err(PemError::LeafExpired { .. })
    ));
}
