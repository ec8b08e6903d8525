//! Modes are exact whatever the umask. The umask is process-wide, so this file is its own
//! test binary (its own process) holding a single test that sets and restores it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::mode_of;
use nix::sys::stat::{Mode, umask};
use spiffe_helper_pem::{
    CREDENTIAL_BUNDLE_FILE, RenderedDelivery, RenderedX509, X509Modes, X509Paths, ensure_dir,
    render_certificates, render_private_key, write_atomic, write_filesystem_delivery, write_x509,
    write_x509_with_combined,
};

fn check_under(mask: u32) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let previous = umask(Mode::from_bits_truncate(mask));
    let paths = X509Paths {
        cert: d.join("c.pem"),
        key: d.join("k.pem"),
        bundle: d.join("b.pem"),
    };
    let files = RenderedX509 {
        cert: render_certificates(&[vec![1; 10]]),
        key: render_private_key(&[2; 10]),
        bundle: render_certificates(&[vec![3; 10]]),
    };
    let results = [
        write_x509(
            &paths,
            &files,
            X509Modes {
                cert: 0o644,
                key: 0o600,
            },
        )
        .map(|_| ()),
        write_x509_with_combined(
            &paths,
            &d.join("combined.pem"),
            &files,
            X509Modes {
                cert: 0o644,
                key: 0o640,
            },
        )
        .map(|_| ()),
        write_filesystem_delivery(
            &d.join("delivery"),
            &RenderedDelivery {
                credential: render_private_key(&[4; 10]),
                trust_bundles: [(
                    "example.org".to_owned(),
                    render_certificates(&[vec![5; 10]]),
                )]
                .into(),
            },
            0o600,
            0o644,
        )
        .map(|_| ()),
        write_atomic(&d.join("wide"), b"x", 0o666).map(|_| ()),
        write_atomic(&d.join("group"), b"x", 0o640).map(|_| ()),
        write_atomic(&d.join("ro"), b"x", 0o444).map(|_| ()),
        ensure_dir(&d.join("new/nested")),
    ];
    umask(previous);
    for r in results {
        r.unwrap();
    }
    let ctx = format!("umask {mask:03o}");
    assert_eq!(mode_of(&paths.cert), 0o644, "{ctx}");
    // The combined batch rewrote the key with its own key mode (0640).
    assert_eq!(mode_of(&paths.key), 0o640, "{ctx}");
    assert_eq!(mode_of(&d.join("combined.pem")), 0o640, "{ctx}");
    let delivery = d.join("delivery");
    assert_eq!(
        mode_of(&delivery.join(CREDENTIAL_BUNDLE_FILE)),
        0o600,
        "{ctx}"
    );
    assert_eq!(
        mode_of(&delivery.join("example.org.x509.pem")),
        0o644,
        "{ctx}"
    );
    assert_eq!(mode_of(&paths.bundle), 0o644, "{ctx}");
    assert_eq!(mode_of(&d.join("wide")), 0o666, "{ctx}");
    assert_eq!(mode_of(&d.join("group")), 0o640, "{ctx}");
    assert_eq!(mode_of(&d.join("ro")), 0o444, "{ctx}");
    // Directories follow Go's os.MkdirAll(dir, 0755): the umask applies.
    assert_eq!(mode_of(&d.join("new/nested")), 0o755 & !mask, "{ctx}");
}

#[test]
fn file_modes_are_exact_under_umask_000_and_077() {
    check_under(0o000);
    check_under(0o077);
    check_under(0o777);
}
