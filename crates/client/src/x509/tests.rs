//! Conversion tests for X.509 responses, with certificates made on the fly (rcgen) and a few
//! fixtures made with openssl (RSA, an EC key without its public point) in `tests/data`.

use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType, SerialNumber,
    SignatureAlgorithm,
};

use super::*;

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
}

fn new_ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let der = params.self_signed(&key).unwrap().der().to_vec();
    Ca {
        issuer: Issuer::new(params, key),
        der,
    }
}

fn leaf_params(uris: &[&str]) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = uris
        .iter()
        .map(|u| SanType::URI((*u).try_into().unwrap()))
        .collect();
    params
}

fn issue(
    ca: &Ca,
    params: &CertificateParams,
    alg: &'static SignatureAlgorithm,
) -> (Vec<u8>, Vec<u8>) {
    let key = KeyPair::generate_for(alg).unwrap();
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    (cert.der().to_vec(), key.serialize_der())
}

fn svid_msg(id: &str, chain: Vec<u8>, key: Vec<u8>, bundle: Vec<u8>, hint: &str) -> pb::X509svid {
    pb::X509svid {
        spiffe_id: id.into(),
        x509_svid: chain,
        x509_svid_key: key,
        bundle,
        hint: hint.into(),
    }
}

fn good_msg(ca: &Ca, id: &str, hint: &str) -> pb::X509svid {
    let (cert, key) = issue(ca, &leaf_params(&[id]), &rcgen::PKCS_ECDSA_P256_SHA256);
    svid_msg(id, cert, key, ca.der.clone(), hint)
}

fn reason(err: Error) -> String {
    match err {
        Error::InvalidResponse { reason } => reason,
        other => panic!("expected InvalidResponse, got {other:?}"),
    }
}

#[test]
fn valid_svid_converts_with_all_fields() {
    let ca = new_ca();
    let other_ca = new_ca();
    let id = "spiffe://example.org/web";
    let mut params = leaf_params(&[id]);
    params.serial_number = Some(SerialNumber::from(vec![0x00, 0x12, 0xab]));
    params.not_after = rcgen::date_time_ymd(2031, 5, 6);
    let (cert, key) = issue(&ca, &params, &rcgen::PKCS_ECDSA_P256_SHA256);
    let bundle = [ca.der.clone(), other_ca.der.clone()].concat();
    let svid =
        X509Svid::try_from(svid_msg(id, cert.clone(), key.clone(), bundle, "internal")).unwrap();

    assert_eq!(svid.spiffe_id().to_string(), id);
    assert_eq!(svid.cert_chain(), std::slice::from_ref(&cert));
    assert_eq!(svid.leaf(), cert.as_slice());
    assert_eq!(svid.private_key().der(), key.as_slice());
    assert_eq!(svid.bundle(), [ca.der.clone(), other_ca.der.clone()]);
    assert_eq!(svid.hint(), "internal");
    assert_eq!(svid.serial_hex(), "12ab");
    let expected = UNIX_EPOCH + Duration::from_secs(1_935_792_000); // 2031-05-06T00:00:00Z
    assert_eq!(svid.not_after(), expected);
}

#[test]
fn chain_with_intermediate_keeps_leaf_first() {
    let root = new_ca();
    let int_key = KeyPair::generate().unwrap();
    let mut int_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    int_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let int_der = int_params
        .signed_by(&int_key, &root.issuer)
        .unwrap()
        .der()
        .to_vec();
    let intermediate = Ca {
        issuer: Issuer::new(int_params, int_key),
        der: int_der.clone(),
    };
    let id = "spiffe://example.org/db";
    let (cert, key) = issue(
        &intermediate,
        &leaf_params(&[id]),
        &rcgen::PKCS_ECDSA_P384_SHA384,
    );
    let chain = [cert.clone(), int_der.clone()].concat();
    let svid = X509Svid::try_from(svid_msg(id, chain, key, root.der.clone(), "")).unwrap();
    assert_eq!(svid.cert_chain(), [cert.clone(), int_der]);
    assert_eq!(svid.leaf(), cert.as_slice());
}

#[test]
fn key_of_another_pair_is_rejected() {
    let ca = new_ca();
    let id = "spiffe://example.org/web";
    let (cert, _) = issue(&ca, &leaf_params(&[id]), &rcgen::PKCS_ECDSA_P256_SHA256);
    let (_, other_key) = issue(&ca, &leaf_params(&[id]), &rcgen::PKCS_ECDSA_P256_SHA256);
    let err =
        X509Svid::try_from(svid_msg(id, cert.clone(), other_key, ca.der.clone(), "")).unwrap_err();
    assert!(reason(err).contains("does not match the certificate's public key"));

    let (_, p384_key) = issue(&ca, &leaf_params(&[id]), &rcgen::PKCS_ECDSA_P384_SHA384);
    let err =
        X509Svid::try_from(svid_msg(id, cert.clone(), p384_key, ca.der.clone(), "")).unwrap_err();
    assert!(reason(err).contains("curve"));

    let (_, ed_key) = issue(&ca, &leaf_params(&[id]), &rcgen::PKCS_ED25519);
    let err = X509Svid::try_from(svid_msg(id, cert, ed_key, ca.der.clone(), "")).unwrap_err();
    assert!(reason(err).contains("algorithm"));
}

#[test]
fn ed25519_keys_are_matched() {
    let ca = new_ca();
    let id = "spiffe://example.org/ed";
    let (cert, key) = issue(&ca, &leaf_params(&[id]), &rcgen::PKCS_ED25519);
    X509Svid::try_from(svid_msg(id, cert.clone(), key, ca.der.clone(), "")).unwrap();
    let (_, other) = issue(&ca, &leaf_params(&[id]), &rcgen::PKCS_ED25519);
    let err = X509Svid::try_from(svid_msg(id, cert, other, ca.der.clone(), "")).unwrap_err();
    assert!(reason(err).contains("does not match"));
}

#[test]
fn rsa_keys_are_matched_by_modulus_and_exponent() {
    let ca = new_ca();
    let cert = include_bytes!("../../tests/data/rsa-cert.der").to_vec();
    let key = include_bytes!("../../tests/data/rsa-key.der").to_vec();
    let other = include_bytes!("../../tests/data/rsa-other-key.der").to_vec();
    let id = "spiffe://example.org/rsa";
    X509Svid::try_from(svid_msg(id, cert.clone(), key, ca.der.clone(), "")).unwrap();
    let err =
        X509Svid::try_from(svid_msg(id, cert.clone(), other, ca.der.clone(), "")).unwrap_err();
    assert!(reason(err).contains("does not match"));
    let pkcs1 = include_bytes!("../../tests/data/rsa-key-pkcs1.der").to_vec();
    let err = X509Svid::try_from(svid_msg(id, cert, pkcs1, ca.der.clone(), "")).unwrap_err();
    assert!(reason(err).contains("not PKCS#8"));
}

#[test]
fn ec_key_without_public_point_is_accepted_when_the_curve_matches() {
    let ca = new_ca();
    let cert = include_bytes!("../../tests/data/ec-cert.der").to_vec();
    let key = include_bytes!("../../tests/data/ec-nopub-key.der").to_vec();
    let id = "spiffe://example.org/ec";
    X509Svid::try_from(svid_msg(id, cert, key.clone(), ca.der.clone(), "")).unwrap();

    let (p384_cert, _) = issue(&ca, &leaf_params(&[id]), &rcgen::PKCS_ECDSA_P384_SHA384);
    let err = X509Svid::try_from(svid_msg(id, p384_cert, key, ca.der.clone(), "")).unwrap_err();
    assert!(reason(err).contains("curve"));
}

#[test]
fn uri_san_rules_are_enforced() {
    let ca = new_ca();
    let id = "spiffe://example.org/web";
    let cases: [(&[&str], &str); 4] = [
        (&["spiffe://example.org/other"], "differs"),
        (&[], "no URI SAN"),
        (&[id, "spiffe://example.org/second"], "exactly one"),
        (&["https://example.org/web"], "differs"),
    ];
    for (uris, expected) in cases {
        let (cert, key) = issue(&ca, &leaf_params(uris), &rcgen::PKCS_ECDSA_P256_SHA256);
        let err = X509Svid::try_from(svid_msg(id, cert, key, ca.der.clone(), "")).unwrap_err();
        let text = reason(err);
        assert!(text.contains(expected), "{uris:?}: {text}");
    }
    let mut ca_params = leaf_params(&[id]);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let (cert, key) = issue(&ca, &ca_params, &rcgen::PKCS_ECDSA_P256_SHA256);
    let err = X509Svid::try_from(svid_msg(id, cert, key, ca.der.clone(), "")).unwrap_err();
    assert!(reason(err).contains("CA certificate"));
}

#[test]
fn malformed_bytes_are_errors_never_panics() {
    let ca = new_ca();
    let id = "spiffe://example.org/web";
    let good = good_msg(&ca, id, "");
    let mut bad_chain = good.clone();
    bad_chain.x509_svid = b"not a certificate".to_vec();
    assert!(reason(X509Svid::try_from(bad_chain).unwrap_err()).contains("not valid DER"));
    let mut trailing = good.clone();
    trailing.x509_svid.extend_from_slice(&[0x30, 0x03, 0x01]);
    assert!(X509Svid::try_from(trailing).is_err());
    let mut empty_chain = good.clone();
    empty_chain.x509_svid.clear();
    assert!(reason(X509Svid::try_from(empty_chain).unwrap_err()).contains("empty"));
    let mut empty_bundle = good.clone();
    empty_bundle.bundle.clear();
    assert!(reason(X509Svid::try_from(empty_bundle).unwrap_err()).contains("bundle is empty"));
    let mut bad_id = good.clone();
    bad_id.spiffe_id = "spiffe://Example.org/web".into();
    assert!(X509Svid::try_from(bad_id).is_err());

    // Every truncation and a sweep of byte flips of chain, key and bundle: errors, no panics.
    for field in 0..3 {
        let bytes = match field {
            0 => &good.x509_svid,
            1 => &good.x509_svid_key,
            _ => &good.bundle,
        };
        for cut in 0..bytes.len() {
            let mut msg = good.clone();
            let target = match field {
                0 => &mut msg.x509_svid,
                1 => &mut msg.x509_svid_key,
                _ => &mut msg.bundle,
            };
            target.truncate(cut);
            let mut flipped = good.clone();
            let target = match field {
                0 => &mut flipped.x509_svid,
                1 => &mut flipped.x509_svid_key,
                _ => &mut flipped.bundle,
            };
            target[cut] ^= 0x5a;
            assert!(
                X509Svid::try_from(msg).is_err(),
                "field {field} cut at {cut}"
            );
            let _ = X509Svid::try_from(flipped);
        }
    }
}

#[test]
fn context_keeps_order_hints_and_federated_bundles() {
    let ca = new_ca();
    let foreign = new_ca();
    let mut federated = HashMap::new();
    federated.insert("spiffe://other.org".to_owned(), foreign.der.clone());
    let msg = pb::X509svidResponse {
        svids: vec![
            good_msg(&ca, "spiffe://example.org/a", "a-hint"),
            good_msg(&ca, "spiffe://example.org/b", "b-hint"),
        ],
        crl: vec![],
        federated_bundles: federated,
    };
    let ctx = X509Context::try_from(msg.clone()).unwrap();
    assert_eq!(ctx.svids().len(), 2);
    assert_eq!(ctx.default_svid().spiffe_id().path(), "/a");
    assert_eq!(
        ctx.svid_with_hint("b-hint").unwrap().spiffe_id().path(),
        "/b"
    );
    assert!(ctx.svid_with_hint("nope").is_none());
    let td: TrustDomain = "other.org".parse().unwrap();
    assert_eq!(
        ctx.federated_bundles().get(&td),
        Some(&vec![foreign.der.clone()])
    );
    assert_eq!(X509Context::try_from(msg.clone()).unwrap(), ctx);
    let debug = format!("{ctx:?}");
    assert!(
        debug.contains("spiffe://example.org/a") && debug.contains("\"other.org\": 1"),
        "{debug}"
    );
    assert!(debug.contains("PrivateKey(<redacted>)"), "{debug}");
    assert!(
        debug.len() < 1000,
        "Debug is a summary, not a byte dump: {debug}"
    );

    let mut bad_key = msg.clone();
    bad_key
        .federated_bundles
        .insert("not a td!".into(), foreign.der.clone());
    assert!(reason(X509Context::try_from(bad_key).unwrap_err()).contains("federated bundle key"));
    let mut bad_der = msg.clone();
    bad_der
        .federated_bundles
        .insert("spiffe://x.org".into(), vec![1, 2, 3]);
    assert!(reason(X509Context::try_from(bad_der).unwrap_err()).contains("x.org"));
    let mut one_bad_svid = msg;
    one_bad_svid.svids[1].x509_svid_key = vec![0x30, 0x00];
    assert!(X509Context::try_from(one_bad_svid).is_err());
}

#[test]
fn empty_responses_are_reported_as_such() {
    let err = X509Context::try_from(pb::X509svidResponse::default()).unwrap_err();
    assert!(matches!(err, Error::EmptyResponse));
    assert!(err.is_retryable());
    let err = X509BundleSet::try_from(pb::X509BundlesResponse::default()).unwrap_err();
    assert!(matches!(err, Error::EmptyResponse));
}

#[test]
fn bundle_set_is_keyed_by_trust_domain() {
    let a = new_ca();
    let b = new_ca();
    let mut bundles = HashMap::new();
    bundles.insert(
        "spiffe://example.org".to_owned(),
        [a.der.clone(), b.der.clone()].concat(),
    );
    let set = X509BundleSet::try_from(pb::X509BundlesResponse {
        crl: vec![],
        bundles,
    })
    .unwrap();
    let td: TrustDomain = "example.org".parse().unwrap();
    assert_eq!(set.get(&td).unwrap().authorities(), [a.der, b.der]);
}
