//! The SPIFFE bundle format (`spiffe_workload_client::SpiffeBundle`) against go-spiffe v2's
//! `spiffebundle` (the Go peer's `bundle` mode: `Parse` then `Marshal`): a bundle we marshal is
//! parsed by go-spiffe and marshalled back to the same bytes, and what go-spiffe writes we parse
//! to the same bundle. X.509 authorities on P-256, P-384 and RSA, JWT authorities on EC and RSA,
//! sequence number and refresh hint. go-spiffe orders JWT authorities by map iteration, so the
//! byte comparison uses one JWT authority per document; two are compared after parsing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed setup step should panic"
)]

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

use spiffe_helper_testkit::interop::go_peer;
use spiffe_helper_testkit::jwt::SigningKey;
use spiffe_workload_client::{JwtBundle, JwtKey, SpiffeBundle, TrustDomain};

fn td() -> TrustDomain {
    "example.org".parse().unwrap()
}

/// go-spiffe's `Marshal(Parse(document))`, or its parse error.
fn go_round_trip(document: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new(go_peer())
        .args(["bundle", "example.org"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(document).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn ca(alg: &'static rcgen::SignatureAlgorithm) -> Vec<u8> {
    let key = rcgen::KeyPair::generate_for(alg).unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().der().to_vec()
}

fn data(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../client/tests/data")
            .join(name),
    )
    .unwrap()
}

fn jwt_key(key: &SigningKey, kid: &str) -> JwtKey {
    let doc = serde_json::json!({"keys": [key.jwk(kid)]}).to_string();
    JwtBundle::from_jwks(td(), doc.as_bytes()).unwrap().keys()[0].clone()
}

#[test]
fn go_spiffe_writes_our_bundles_back_byte_for_byte_and_we_read_its_own() {
    let rsa_jwt = SigningKey::rsa(&data("rsa-key.der"));
    let cases: Vec<(&str, SpiffeBundle)> = vec![
        (
            "x509 P-256, P-384 and RSA, one EC JWT key, sequence and hint",
            {
                let mut b = SpiffeBundle::new(td());
                b.add_x509_authority(ca(&rcgen::PKCS_ECDSA_P256_SHA256));
                b.add_x509_authority(ca(&rcgen::PKCS_ECDSA_P384_SHA384));
                b.add_x509_authority(data("rsa-cert.der"));
                b.add_jwt_authority(jwt_key(&SigningKey::p256(), "ec-key"));
                b.set_sequence_number(Some(42));
                b.set_refresh_hint(Some(300));
                b
            },
        ),
        ("one RSA JWT key, kid with HTML characters", {
            let mut b = SpiffeBundle::new(td());
            b.add_jwt_authority(jwt_key(&rsa_jwt, "a<b>&c"));
            b.set_refresh_hint(Some(5));
            b
        }),
        ("P-521 JWT key, sequence 0", {
            let mut b = SpiffeBundle::new(td());
            b.add_jwt_authority(jwt_key(&SigningKey::p521(), "p521"));
            b.set_sequence_number(Some(0));
            b
        }),
    ];
    for (name, bundle) in &cases {
        let ours = bundle.marshal().unwrap();
        let theirs =
            go_round_trip(&ours).unwrap_or_else(|e| panic!("{name}: go-spiffe refused ours: {e}"));
        assert_eq!(
            String::from_utf8_lossy(&theirs),
            String::from_utf8_lossy(&ours),
            "{name}: go-spiffe marshals our bundle differently"
        );
        assert_eq!(
            &SpiffeBundle::parse(td(), &theirs).unwrap(),
            bundle,
            "{name}: we read go-spiffe's bytes as another bundle"
        );
    }

    // Two JWT authorities: go-spiffe's order is its map's, so compare what the documents mean.
    let mut two = SpiffeBundle::new(td());
    two.add_jwt_authority(jwt_key(&SigningKey::p256(), "one"));
    two.add_jwt_authority(jwt_key(&SigningKey::p384(), "two"));
    let theirs =
        SpiffeBundle::parse(td(), &go_round_trip(&two.marshal().unwrap()).unwrap()).unwrap();
    let mut kids: Vec<&str> = theirs
        .jwt_authorities()
        .iter()
        .map(JwtKey::key_id)
        .collect();
    kids.sort_unstable();
    assert_eq!(kids, ["one", "two"]);
    for key in two.jwt_authorities() {
        assert!(theirs.jwt_authorities().contains(key), "{}", key.key_id());
    }
}

#[test]
fn an_empty_bundle_is_one_go_spiffe_reads() {
    let ours = SpiffeBundle::new(td()).marshal().unwrap();
    assert_eq!(ours, br#"{"keys":[]}"#);
    // go-spiffe accepts it, and writes `null` back, which neither side accepts as a bundle.
    let theirs = go_round_trip(&ours).unwrap();
    assert_eq!(theirs, br#"{"keys":null}"#);
    assert!(go_round_trip(&theirs).is_err());
    assert!(SpiffeBundle::parse(td(), &theirs).is_err());
}

#[test]
fn a_document_without_keys_is_refused_by_both() {
    let doc = br#"{"spiffe_sequence":1}"#;
    assert!(SpiffeBundle::parse(td(), doc).is_err());
    let go = go_round_trip(doc).unwrap_err();
    assert!(go.contains("no authorities"), "{go}");
}
