//! SVIDs that do not come from a live agent (docs/embedding.md#svids-that-do-not-come-from-an-agent):
//! `X509Svid` from PEM, DER and files with the checks an agent's answer gets, `X509Bundle` from
//! PEM, `JwtSvid::parse_insecure`, `StaticX509Source`, and `X509FileSource` following files
//! rewritten the way the helper rewrites them (write a temporary file, rename it into place).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed setup step should panic"
)]

use std::path::Path;
use std::time::{Duration, SystemTime};

use rcgen::SanType;
use spiffe_helper_testkit::certs::{TestCa, TestSvid, jwt_token, pem_block, svid_params};
use spiffe_workload_client::{
    BundleSource, Error, JwtSvid, StaticX509Source, X509Bundle, X509BundleSet, X509FileSource,
    X509Svid, X509SvidSource,
};

const ID: &str = "spiffe://example.org/service";

fn chain_pem(svid: &TestSvid) -> String {
    svid.chain
        .iter()
        .map(|der| pem_block("CERTIFICATE", der))
        .collect()
}

fn key_pem(svid: &TestSvid) -> String {
    pem_block("PRIVATE KEY", &svid.key_pkcs8)
}

fn invalid_reason(result: Result<X509Svid, Error>) -> String {
    match result {
        Err(Error::Invalid { what, reason }) => {
            assert_eq!(what, "X.509-SVID");
            reason
        }
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
}

#[test]
fn an_svid_from_pem_and_from_der_is_the_same_svid_with_its_id_from_the_leaf() {
    let ca = TestCa::root("example.org").intermediate();
    let svid = ca.issue(ID, Duration::from_secs(600));
    let from_pem = X509Svid::parse_pem(chain_pem(&svid).as_bytes(), key_pem(&svid).as_bytes())
        .expect("a valid SVID in PEM");
    let from_der = X509Svid::parse_der(&svid.chain_der(), &svid.key_pkcs8).unwrap();
    assert_eq!(from_pem, from_der);
    assert_eq!(from_pem.spiffe_id().to_string(), ID);
    assert_eq!(from_pem.cert_chain().len(), 2, "leaf and intermediate");
    assert_eq!(from_pem.cert_chain(), svid.chain.as_slice());
    assert!(from_pem.bundle().is_empty());
    assert_eq!(from_pem.hint(), "");
    assert!(from_pem.not_after() > SystemTime::now());
}

#[test]
fn load_names_the_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("svid.pem");
    match X509Svid::load(&missing, dir.path().join("svid_key.pem")) {
        Err(error @ Error::Io { .. }) => {
            assert!(error.report().contains("svid.pem"), "{}", error.report());
        }
        other => panic!("expected Error::Io, got {other:?}"),
    }
}

#[test]
fn a_key_of_another_leaf_is_refused() {
    let ca = TestCa::root("example.org");
    let a = ca.issue(ID, Duration::from_secs(600));
    let b = ca.issue(ID, Duration::from_secs(600));
    let reason = invalid_reason(X509Svid::parse_pem(
        chain_pem(&a).as_bytes(),
        key_pem(&b).as_bytes(),
    ));
    assert!(reason.contains("does not match"), "{reason}");
}

#[test]
fn key_blocks_other_than_one_pkcs8_private_key_are_refused_by_name() {
    let ca = TestCa::root("example.org");
    let svid = ca.issue(ID, Duration::from_secs(600));
    let chain = chain_pem(&svid);
    let sec1 = pem_block("EC PRIVATE KEY", &svid.key_pkcs8);
    let reason = invalid_reason(X509Svid::parse_pem(chain.as_bytes(), sec1.as_bytes()));
    assert!(reason.contains("PKCS#8"), "{reason}");
    let two = key_pem(&svid) + &key_pem(&svid);
    let reason = invalid_reason(X509Svid::parse_pem(chain.as_bytes(), two.as_bytes()));
    assert!(reason.contains("2 PEM blocks"), "{reason}");
    let reason = invalid_reason(X509Svid::parse_pem(chain.as_bytes(), b"not pem"));
    assert!(reason.contains("private key"), "{reason}");
    // Key bytes never appear in an error.
    let key_b64 = &key_pem(&svid)[28..60];
    assert!(!reason.contains(key_b64));
}

#[test]
fn certificate_files_with_other_blocks_are_refused() {
    let ca = TestCa::root("example.org");
    let svid = ca.issue(ID, Duration::from_secs(600));
    let with_key = chain_pem(&svid) + &key_pem(&svid);
    let reason = invalid_reason(X509Svid::parse_pem(
        with_key.as_bytes(),
        key_pem(&svid).as_bytes(),
    ));
    assert!(reason.contains("\"PRIVATE KEY\""), "{reason}");
    let reason = invalid_reason(X509Svid::parse_pem(b"", key_pem(&svid).as_bytes()));
    assert!(reason.contains("no PEM block"), "{reason}");
}

/// One change to SPIRE's leaf parameters.
type Change = Box<dyn FnOnce(&mut rcgen::CertificateParams)>;

/// A leaf made from SPIRE's parameters with one change, signed by `ca`.
fn leaf_with(ca: &TestCa, change: impl FnOnce(&mut rcgen::CertificateParams)) -> TestSvid {
    let mut params = svid_params(Some(ID));
    change(&mut params);
    ca.issue_params(&params, ID)
}

#[test]
fn the_rules_of_an_svid_from_the_agent_apply_to_one_from_pem() {
    let ca = TestCa::root("example.org");
    let cases: [(&str, Change, &str); 5] = [
        (
            "no URI SAN",
            Box::new(|p| p.subject_alt_names.clear()),
            "no URI SAN",
        ),
        (
            "two URI SANs",
            Box::new(|p| {
                p.subject_alt_names.push(SanType::URI(
                    "spiffe://example.org/other".try_into().unwrap(),
                ));
            }),
            "more than one URI SAN",
        ),
        (
            "a trust domain ID (no path)",
            Box::new(|p| {
                p.subject_alt_names =
                    vec![SanType::URI("spiffe://example.org".try_into().unwrap())];
            }),
            "no path",
        ),
        (
            "a CA leaf",
            Box::new(|p| p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained)),
            "CA",
        ),
        (
            "keyCertSign on the leaf",
            Box::new(|p| p.key_usages.push(rcgen::KeyUsagePurpose::KeyCertSign)),
            "keyCertSign",
        ),
    ];
    for (name, change, expect) in cases {
        let svid = leaf_with(&ca, change);
        let reason = invalid_reason(X509Svid::parse_der(&svid.chain_der(), &svid.key_pkcs8));
        assert!(reason.contains(expect), "{name}: {reason}");
    }
}

#[test]
fn an_intermediate_that_is_not_a_ca_is_refused() {
    let ca = TestCa::root("example.org");
    let svid = ca.issue(ID, Duration::from_secs(600));
    let other = ca.issue("spiffe://example.org/other", Duration::from_secs(600));
    let chain = [svid.chain[0].clone(), other.chain[0].clone()].concat();
    let reason = invalid_reason(X509Svid::parse_der(&chain, &svid.key_pkcs8));
    assert!(reason.contains("intermediate 1 is not a CA"), "{reason}");
}

#[test]
fn a_bundle_from_pem_keeps_every_authority_and_refuses_other_blocks() {
    let a = TestCa::root("example.org");
    let b = TestCa::root("example.org");
    let td = "example.org".parse().unwrap();
    let bundle = X509Bundle::parse_pem(td, (a.pem() + &b.pem()).as_bytes()).unwrap();
    assert_eq!(bundle.authorities(), &[a.der(), b.der()]);
    let td = "example.org".parse().unwrap();
    let bad = X509Bundle::parse_pem(td, (a.pem() + &a.key_pem()).as_bytes());
    assert!(
        matches!(&bad, Err(Error::Invalid { what: "X.509 bundle", reason }) if reason.contains("PRIVATE KEY")),
        "{bad:?}"
    );
    let td = "example.org".parse().unwrap();
    assert!(matches!(
        X509Bundle::parse_pem(td, b""),
        Err(Error::Invalid { .. })
    ));
}

#[test]
fn parse_insecure_reads_the_claims_and_checks_nothing_of_the_signature() {
    let exp = SystemTime::now() - Duration::from_secs(3600);
    // Expired, signature bytes garbage: parse_insecure still reads it (it is for callers that
    // validate elsewhere).
    let token = jwt_token(ID, &["a", "b"], exp);
    let svid = JwtSvid::parse_insecure(&token).unwrap();
    assert_eq!(svid.spiffe_id().to_string(), ID);
    assert_eq!(svid.audience(), ["a", "b"]);
    assert_eq!(svid.token().as_str(), token);
    assert!(svid.expiry() <= SystemTime::now());
    assert!(
        !format!("{svid:?}").contains(&token),
        "Debug never prints the token"
    );

    let no_path = jwt_token("spiffe://example.org", &["a"], exp);
    let err = JwtSvid::parse_insecure(&no_path).unwrap_err();
    assert!(err.to_string().contains("no path"), "{err}");
    let not_id = jwt_token("https://example.org/x", &["a"], exp);
    assert!(JwtSvid::parse_insecure(&not_id).is_err());
    let err = JwtSvid::parse_insecure("a.b").unwrap_err();
    assert!(err.to_string().contains("three"), "{err}");
}

#[test]
fn a_static_source_serves_its_svid_and_bundles() {
    let ca = TestCa::root("example.org");
    let svid = ca.issue(ID, Duration::from_secs(600));
    let svid = X509Svid::parse_der(&svid.chain_der(), &svid.key_pkcs8).unwrap();
    let bundle = X509Bundle::new("example.org".parse().unwrap(), vec![ca.der()]);
    let source = StaticX509Source::new(svid.clone(), X509BundleSet::new([bundle]));
    assert_eq!(*source.x509_svid(), svid);
    assert!(std::sync::Arc::ptr_eq(
        &source.x509_svid(),
        &source.x509_svid()
    ));
    let td = "example.org".parse().unwrap();
    assert_eq!(source.bundle_for(&td).unwrap().authorities(), &[ca.der()]);
    assert!(source.bundle_for(&"other.org".parse().unwrap()).is_none());
}

/// Writes `contents` to `path` as the helper does: a temporary file in the same directory,
/// renamed into place.
fn put(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }
    fn write(&self, svid: &TestSvid, ca: &TestCa) {
        put(&self.path("svid_key.pem"), &key_pem(svid));
        put(&self.path("svid.pem"), &chain_pem(svid));
        put(&self.path("svid_bundle.pem"), &ca.pem());
    }
    fn source(&self) -> spiffe_workload_client::X509FileSourceBuilder {
        X509FileSource::builder(
            self.path("svid.pem"),
            self.path("svid_key.pem"),
            self.path("svid_bundle.pem"),
        )
        .poll_interval(Duration::from_millis(20))
    }
}

#[tokio::test]
async fn a_file_source_follows_rewritten_files_and_never_applies_a_mixed_set() {
    let ca = TestCa::root("example.org");
    let files = Files::new();
    let first = ca.issue(ID, Duration::from_secs(600));
    files.write(&first, &ca);
    let source = files.source().build().await.unwrap();
    assert_eq!(source.x509_svid().cert_chain(), first.chain.as_slice());
    let td = "example.org".parse().unwrap();
    assert_eq!(source.bundle_for(&td).unwrap().authorities(), &[ca.der()]);
    let mut updates = source.updates();

    // Half a rotation: the new key is in place, the certificate is still the old one. The
    // source must keep the old, consistent SVID and say why.
    let second = ca.issue(ID, Duration::from_secs(600));
    put(&files.path("svid_key.pem"), &key_pem(&second));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!updates.has_changed().unwrap(), "a mixed set was applied");
    assert_eq!(source.x509_svid().cert_chain(), first.chain.as_slice());
    let why = source
        .last_error()
        .expect("the reason the files are not used");
    assert!(why.contains("does not match"), "{why}");

    // The rest of the rotation: applied, and announced.
    put(&files.path("svid.pem"), &chain_pem(&second));
    tokio::time::timeout(Duration::from_secs(5), updates.changed())
        .await
        .expect("the rotation was not picked up")
        .unwrap();
    assert_eq!(source.x509_svid().cert_chain(), second.chain.as_slice());
    assert!(source.last_error().is_none());
    assert!(source.is_healthy());

    // A new CA in the bundle file alone reaches bundle_for.
    let next_ca = TestCa::root("example.org");
    put(&files.path("svid_bundle.pem"), &(ca.pem() + &next_ca.pem()));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while source.bundle_for(&td).unwrap().authorities().len() != 2 {
        assert!(tokio::time::Instant::now() < deadline, "bundle not re-read");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    source.shutdown().await;
    assert!(!source.is_healthy());
}

#[tokio::test]
async fn a_file_source_waits_for_files_that_are_not_there_yet_then_names_them() {
    let ca = TestCa::root("example.org");
    let files = Files::new();
    let svid = ca.issue(ID, Duration::from_secs(600));
    let waiting = tokio::spawn(
        files
            .source()
            .startup_timeout(Duration::from_secs(10))
            .build(),
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    files.write(&svid, &ca);
    let source = waiting
        .await
        .unwrap()
        .expect("built once the files appeared");
    assert_eq!(source.x509_svid().spiffe_id().to_string(), ID);

    let empty = Files::new();
    let err = empty
        .source()
        .startup_timeout(Duration::from_millis(100))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
    assert!(err.report().contains("svid.pem"), "{}", err.report());
}

#[tokio::test]
async fn a_file_source_reads_federated_bundles_under_their_trust_domain() {
    let ca = TestCa::root("example.org");
    let other = TestCa::root("other.org");
    let files = Files::new();
    files.write(&ca.issue(ID, Duration::from_secs(600)), &ca);
    put(&files.path("other.pem"), &other.pem());
    let other_td: spiffe_workload_client::TrustDomain = "other.org".parse().unwrap();
    let source = files
        .source()
        .federated_bundle(other_td.clone(), files.path("other.pem"))
        .build()
        .await
        .unwrap();
    assert_eq!(
        source.bundle_for(&other_td).unwrap().authorities(),
        &[other.der()]
    );
    let own = source.bundle_for(&"example.org".parse().unwrap()).unwrap();
    assert_eq!(own.authorities(), &[ca.der()]);
}
