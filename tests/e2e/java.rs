//! PKCS#12 keystores for JVM consumers (docs/consumers.md, "Java keystores"), with the JDK:
//! `keytool -list` reads the keystore (a `PrivateKeyEntry`) and the truststore (a
//! `trustedCertEntry` per bundle authority); a JSSE server and client (`tests/java/SpiffeJsse.java`)
//! on those files handshake over mutual TLS and accept each other's SPIFFE ID; after a real
//! SPIRE rotation the server, which re-reads the keystore per connection, presents the new
//! certificate, while the truststore, whose bundle did not change, is left untouched.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use spiffe_helper_testkit::spire::Entry;

use crate::inspect::{leaf, wait_for_rotation};
use crate::support::{
    Helper, Proc, ROTATION, WORKLOAD, base_config, free_port, mode, scratch, spire_with,
    stop_cleanly, wait_until, write_file,
};

const PASSWORD: &str = "c0rrect-horse-battery";

fn require_jdk() {
    for tool in ["java", "javac", "keytool"] {
        let found = Command::new(tool)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        assert!(
            found,
            "{tool} not found: run `make deps` (installs the Debian package openjdk-17-jdk-headless)"
        );
    }
}

/// Compiles the JSSE program into `dir` once.
fn compile(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/java/SpiffeJsse.java");
    let out = Command::new("javac")
        .args(["-d", dir.to_str().unwrap(), source.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "javac failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir.to_path_buf()
}

fn java(classes: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new("java");
    cmd.args(["-cp", classes.to_str().unwrap(), "SpiffeJsse"])
        .args(args);
    cmd
}

fn keytool_list(store: &Path) -> String {
    let out = Command::new("keytool")
        .args(["-list", "-storetype", "PKCS12", "-keystore"])
        .arg(store)
        .args(["-storepass", PASSWORD])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "keytool cannot read {}: {}{}",
        store.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One client run: (exit code, stdout).
fn client(classes: &Path, port: u16, certs: &Path, expect: &str) -> (i32, String) {
    let out = java(
        classes,
        &[
            "client",
            &port.to_string(),
            certs.join("keystore.p12").to_str().unwrap(),
            certs.join("truststore.p12").to_str().unwrap(),
            PASSWORD,
            expect,
        ],
    )
    .output()
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn server_serial(line: &str) -> String {
    line.split("server-serial=")
        .nth(1)
        .unwrap_or_else(|| panic!("no server-serial in {line:?}"))
        .trim()
        .to_owned()
}

/// `leaf(...).serial` is colon-separated hex with leading zeros; Java prints plain hex.
fn plain_hex(serial: &str) -> String {
    let hex = serial.replace(':', "").to_ascii_lowercase();
    hex.trim_start_matches('0').to_owned()
}

#[test]
fn a_jsse_server_and_client_on_the_pkcs12_files_accept_each_other_and_follow_a_rotation() {
    require_jdk();
    let spire = spire_with(&Entry::new(WORKLOAD).x509_ttl(30));
    let dir = scratch();
    let certs = dir.path().join("certs");
    let password_file = write_file(dir.path(), "p12.pass", &format!("{PASSWORD}\n"));
    let config = write_file(
        dir.path(),
        "helper.conf",
        &format!(
            "{}pkcs12_keystore_file_name = \"keystore.p12\"\n\
             pkcs12_truststore_file_name = \"truststore.p12\"\n\
             pkcs12_password_file = \"{}\"\n",
            base_config(&spire.endpoint(), &certs),
            password_file.display()
        ),
    );
    let classes = compile(&dir.path().join("classes"));
    let mut helper = Helper::spawn(&config, &[]);
    let (keystore, truststore) = (certs.join("keystore.p12"), certs.join("truststore.p12"));
    assert!(
        wait_until(Duration::from_secs(30), || keystore.exists()
            && truststore.exists()
            && leaf(&certs.join("svid.pem")).is_some()),
        "PKCS#12 files not written; log:\n{}",
        helper.log_tail()
    );
    helper.remember_key(&certs.join("svid_key.pem"));
    assert_eq!(mode(&keystore), 0o600, "keystore mode is key_file_mode");
    assert_eq!(mode(&truststore), 0o600, "truststore mode is key_file_mode");

    let listed = keytool_list(&keystore);
    assert!(
        listed.contains("spiffe,") && listed.contains("PrivateKeyEntry"),
        "keystore: {listed}"
    );
    let listed = keytool_list(&truststore);
    assert!(
        listed.contains("spiffe-ca-0,") && listed.contains("trustedCertEntry"),
        "truststore: {listed}"
    );

    let port = free_port();
    let server = Proc::spawn({
        let mut cmd = java(
            &classes,
            &[
                "server",
                &port.to_string(),
                keystore.to_str().unwrap(),
                truststore.to_str().unwrap(),
                PASSWORD,
                WORKLOAD,
            ],
        );
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        cmd
    });
    assert!(
        wait_until(Duration::from_secs(20), || std::net::TcpStream::connect((
            "127.0.0.1",
            port
        ))
        .is_ok()),
        "the Java server did not listen"
    );

    // Mutual TLS, each side checking the other's SPIFFE ID.
    let before = leaf(&certs.join("svid.pem")).unwrap().serial;
    let (code, out) = client(&classes, port, &certs, WORKLOAD);
    let after = leaf(&certs.join("svid.pem")).unwrap().serial;
    assert_eq!(code, 0, "client failed: {out}");
    assert!(out.contains(&format!("hello {WORKLOAD} serial=")), "{out}");
    let first = server_serial(&out);
    assert!(
        first == plain_hex(&before) || first == plain_hex(&after),
        "the server presented {first}, svid.pem held {before} / {after}"
    );
    // A client expecting another server refuses it.
    let (code, out) = client(&classes, port, &certs, "spiffe://example.org/someone-else");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("refused server"), "{out}");

    // Input that did not change leaves its PKCS#12 file as it is (no new salt on a re-send).
    let stamp = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let (ks_time, ts_time) = (stamp(&keystore), stamp(&truststore));

    // After a rotation the server, re-reading the keystore, presents the new certificate.
    let Some((rotated, _)) = wait_for_rotation(&certs.join("svid.pem"), &after, ROTATION) else {
        panic!("no rotation; log:\n{}", helper.log_tail());
    };
    assert_ne!(stamp(&keystore), ks_time, "the keystore was not rewritten");
    assert_eq!(
        stamp(&truststore),
        ts_time,
        "the bundle did not change, yet the truststore was rewritten"
    );
    let (code, out) = client(&classes, port, &certs, WORKLOAD);
    let now = leaf(&certs.join("svid.pem")).unwrap().serial;
    assert_eq!(code, 0, "client failed after the rotation: {out}");
    let second = server_serial(&out);
    assert_ne!(
        second, first,
        "the server still presents the old certificate"
    );
    assert!(
        second == plain_hex(&rotated.serial) || second == plain_hex(&now),
        "the server presented {second}, svid.pem held {} / {now}",
        rotated.serial
    );
    drop(server);
    let log = helper.log();
    assert!(
        !log.contains(PASSWORD),
        "the PKCS#12 password reached the log"
    );
    stop_cleanly(&mut helper);
}
