//! `cert_dir_layout = "versioned"` (docs/consumers.md, "The whole set at once"): the daemon on a
//! real SPIRE with a 10 s X.509-SVID (rotated about once a second), the combined file and JWT
//! files in the set. After every rotation: each configured name is a link through `..data`,
//! `..data` names the one version directory left, that version holds the whole set (key and
//! certificate of one pair, combined file, JWT bundle and token) with exact modes, and
//! `--validate` prints the layout.

use std::fs;
use std::path::Path;
use std::time::Duration;

use spiffe_helper_testkit::spire::Entry;

use crate::inspect::{key_matches_cert, leaf, wait_for_rotation};
use crate::support::{
    Helper, WORKLOAD, base_config, mode, scratch, spire_with, stop_cleanly, wait_until, write_file,
};

const SET: [(&str, u32); 6] = [
    ("svid.pem", 0o644),
    ("svid_key.pem", 0o600),
    ("svid_bundle.pem", 0o644),
    ("combined.pem", 0o600),
    ("jwt_bundle.json", 0o600),
    ("jwt.token", 0o600),
];

fn version_dirs(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("..version-"))
        .collect()
}

/// The checks that must hold between rotations.
fn check_set(certs: &Path) {
    let live = fs::read_link(certs.join("..data")).expect("..data is a link");
    let version = certs.join(&live);
    for (name, want) in SET {
        let link =
            fs::read_link(certs.join(name)).unwrap_or_else(|e| panic!("{name} is not a link: {e}"));
        assert_eq!(link, Path::new("..data").join(name));
        let file = version.join(name);
        let meta = fs::symlink_metadata(&file).unwrap();
        assert!(meta.is_file(), "{name} in the version is a regular file");
        assert_eq!(mode(&file), want, "{name} mode");
    }
    assert!(
        key_matches_cert(&version.join("svid_key.pem"), &version.join("svid.pem")),
        "key and certificate of one version belong together"
    );
}

#[test]
fn the_versioned_layout_switches_the_whole_set_on_each_rotation() {
    let spire = spire_with(&Entry::new(WORKLOAD).x509_ttl(10).jwt_ttl(60));
    let dir = scratch();
    let certs = dir.path().join("certs");
    let config = write_file(
        dir.path(),
        "helper.conf",
        &format!(
            "{}cert_dir_layout = \"versioned\"\nsvid_combined_file_name = \"combined.pem\"\n\
             jwt_bundle_file_name = \"jwt_bundle.json\"\n\
             jwt_svids = [{{ jwt_audience = \"a\", jwt_svid_file_name = \"jwt.token\" }}]\n",
            base_config(&spire.endpoint(), &certs)
        ),
    );
    let validate = assert_cmd::Command::new(crate::support::HELPER)
        .args(["-config", config.to_str().unwrap(), "--validate"])
        .output()
        .unwrap();
    let printed = String::from_utf8_lossy(&validate.stdout);
    assert!(
        printed.contains("cert_dir_layout = \"versioned\""),
        "--validate does not print the layout:\n{printed}"
    );

    let mut helper = Helper::spawn(&config, &[]);
    assert!(
        wait_until(Duration::from_secs(30), || SET
            .iter()
            .all(|(name, _)| certs.join(name).exists())),
        "the whole set was not written; log:\n{}",
        helper.log_tail()
    );
    helper.remember_key(&certs.join("svid_key.pem"));
    check_set(&certs);
    let token = fs::read_to_string(certs.join("jwt.token")).unwrap();
    let mut serial = leaf(&certs.join("svid.pem")).unwrap().serial;
    for n in 1..=3 {
        let Some((next, _)) =
            wait_for_rotation(&certs.join("svid.pem"), &serial, Duration::from_secs(20))
        else {
            panic!("no rotation {n}; log:\n{}", helper.log_tail());
        };
        serial = next.serial;
        // The old version goes once the switch is durable (right after the write).
        assert!(
            wait_until(Duration::from_secs(2), || version_dirs(&certs).len() == 1),
            "old versions stay: {:?}",
            version_dirs(&certs)
        );
        check_set(&certs);
        helper.assert_running("during rotations");
    }
    assert_eq!(
        fs::read_to_string(certs.join("jwt.token")).unwrap(),
        token,
        "the JWT-SVID travels with every X.509 version unchanged"
    );
    stop_cleanly(&mut helper);
}

#[test]
fn the_versioned_layout_refuses_outputs_outside_cert_dir() {
    let dir = scratch();
    let certs = dir.path().join("certs");
    let config = write_file(
        dir.path(),
        "helper.conf",
        &format!(
            "{}cert_dir_layout = \"versioned\"\njwt_bundle_file_name = \"/tmp/elsewhere.json\"\n",
            base_config("unix:///tmp/none.sock", &certs)
        ),
    );
    let out = assert_cmd::Command::new(crate::support::HELPER)
        .args(["-config", config.to_str().unwrap(), "--validate"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("helper.conf:") && err.contains("jwt_bundle_file_name (/tmp/elsewhere.json)"),
        "the error names the file, line and key:\n{err}"
    );
}
