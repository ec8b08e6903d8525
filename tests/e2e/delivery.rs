//! The SPIFFE filesystem-delivery folder (docs/consumers.md, "The SPIFFE filesystem-delivery
//! layout") against a real SPIRE with a federated trust domain: the credential bundle and one
//! trust-bundle file per domain appear, and a federation that is removed has its file removed.

use std::fs;
use std::path::Path;
use std::process::Command;

use spiffe_helper_testkit::certs::TestCa;
use spiffe_helper_testkit::consumers::probe;
use spiffe_helper_testkit::spire::{Entry, Spire};

use crate::support::{
    Helper, PROPAGATION, ROTATION, WORKLOAD, base_config, mode, scratch, stop_cleanly, wait_until,
    write_file,
};

/// `spire-server bundle delete`, dissociating the entries that federate with it.
fn delete_federated_bundle(spire: &Spire, trust_domain_id: &str) {
    let out = Command::new(spire.bin_dir().join("spire-server"))
        .args([
            "bundle",
            "delete",
            "-id",
            trust_domain_id,
            "-mode",
            "dissociate",
        ])
        .arg("-socketPath")
        .arg(spire.dir().join("server.sock"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "spire-server bundle delete: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_default()
}

#[test]
fn delivery_folder_follows_the_federated_domains() {
    let spire = Spire::start();
    let other = TestCa::root("other.org");
    spire.set_federated_bundle("spiffe://other.org", &other.pem());
    spire.create_entry(&Entry::new(WORKLOAD).federates_with("spiffe://other.org"));
    spire.wait_for_svid(PROPAGATION);

    let dir = scratch();
    let certs = dir.path().join("certs");
    let delivery = dir.path().join("delivery");
    let config = write_file(
        dir.path(),
        "helper.conf",
        &format!(
            "{}include_federated_domains = true\nfilesystem_delivery_dir = \"{}\"\n",
            base_config(&spire.endpoint(), &certs),
            delivery.display()
        ),
    );
    let mut helper = Helper::spawn(&config, &[]);
    let credential = delivery.join("credential-bundle.private-key.pem");
    let own = delivery.join("example.org.x509.pem");
    let federated = delivery.join("other.org.x509.pem");
    // The agent may send the SVID before it has the federated bundle: wait for both files.
    assert!(
        wait_until(PROPAGATION, || credential.exists() && federated.exists()),
        "no delivery folder; files: {:?}; log:\n{}",
        fs::read_dir(&delivery).map(Iterator::count),
        helper.log_tail()
    );
    let text = read(&credential);
    assert!(
        text.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "the key comes first"
    );
    assert_eq!(
        probe::serial_of_file(&credential),
        probe::serial_of_file(&certs.join("svid.pem")),
        "the chain after the key starts with the leaf"
    );
    assert_eq!(mode(&credential), 0o600);
    assert_eq!(mode(&own), 0o644);
    // The bundle file holds the own roots, then (include_federated_domains) other.org's.
    let own_roots = read(&own);
    assert!(
        own_roots.starts_with("-----BEGIN CERTIFICATE-----\n"),
        "{own_roots}"
    );
    assert!(read(&certs.join("svid_bundle.pem")).starts_with(&own_roots));
    assert!(!own_roots.contains(other.pem().trim()), "never merged");
    assert_eq!(
        read(&federated).trim(),
        other.pem().trim(),
        "other.org's roots, alone"
    );

    delete_federated_bundle(&spire, "spiffe://other.org");
    assert!(
        wait_until(PROPAGATION + ROTATION, || !federated.exists()),
        "other.org.x509.pem still there after the federation was removed; log:\n{}",
        helper.log_tail()
    );
    assert!(own.exists() && credential.exists());
    eprintln!(
        "MEASURE filesystem delivery: other.org file written, then removed with the federation"
    );
    helper.assert_running("after the federation was removed");
    stop_cleanly(&mut helper);
}
