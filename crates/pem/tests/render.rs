//! Golden-byte tests of every file composition (docs/behaviour.md#output-files).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::{Pki, Y2030, certs, reference, root, root_expiring};
use spiffe_helper_pem::{
    CertSource, PemError, RenderedX509, X509Material, X509Options, render_certificates,
    render_jwt_bundle, render_private_key, render_x509,
};

fn opts() -> X509Options {
    X509Options {
        add_intermediates_to_bundle: false,
        include_federated_domains: false,
        omit_expired: false,
        now: SystemTime::now(),
    }
}

fn render(
    chain: &[Vec<u8>],
    key: &[u8],
    bundle: &[Vec<u8>],
    federated: &BTreeMap<String, Vec<Vec<u8>>>,
    o: &X509Options,
) -> Result<RenderedX509, PemError> {
    let m = X509Material {
        chain,
        key_pkcs8_der: key,
        bundle,
        federated,
    };
    render_x509(&m, o)
}

fn no_fed() -> BTreeMap<String, Vec<Vec<u8>>> {
    BTreeMap::new()
}

/// `b[i] = i*7 + seed`: the input bytes of the Go encodings in `GO_CERTS` and `GO_KEY` below.
#[expect(
    clippy::cast_possible_truncation,
    reason = "byte arithmetic wraps like Go's byte(i)"
)]
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

// Produced by Go 1.x `encoding/pem.EncodeToMemory` (what upstream spiffe-helper calls) on
// `pattern(48, 1)`, `pattern(49, 2)`, `pattern(100, 3)`: exactly one full line, one full line
// plus a short one, and two full lines plus a short one.
const GO_CERTS: &str = "-----BEGIN CERTIFICATE-----
AQgPFh0kKzI5QEdOVVxjanF4f4aNlJuiqbC3vsXM09rh6O/2/QQLEhkgJy41PENK
-----END CERTIFICATE-----
-----BEGIN CERTIFICATE-----
AgkQFx4lLDM6QUhPVl1ka3J5gIeOlZyjqrG4v8bN1Nvi6fD3/gUMExohKC82PURL
Ug==
-----END CERTIFICATE-----
-----BEGIN CERTIFICATE-----
AwoRGB8mLTQ7QklQV15lbHN6gYiPlp2kq7K5wMfO1dzj6vH4/wYNFBsiKTA3PkVM
U1phaG92fYSLkpmgp661vMPK0djf5u30+wIJEBceJSwzOkFIT1ZdZGtyeYCHjpWc
o6qxuA==
-----END CERTIFICATE-----
";
const GO_KEY: &str = "-----BEGIN PRIVATE KEY-----
CRAXHiUsMzpBSE9WXWRrcnmAh46VnKOqsbi/xs3U2+Lp8Pf+BQwTGiEoLzY9REtS
WWBnbnV8g4qRmJ+mrbS7wsnQ197l7A==
-----END PRIVATE KEY-----
";
// Go `json.Marshal(map[string]any{...})` of the same three domains as in the test.
const GO_JWT_BUNDLE: &str = r#"{"a.example":"eyJrZXlzIjpbXX0=","c":"eA==","td-b.org":"eyJrZXlzIjpbeyJrdHkiOiJFQyIsImtpZCI6ImIifV19"}"#;

#[test]
fn pem_layout_is_byte_identical_to_go() {
    let ders = [pattern(48, 1), pattern(49, 2), pattern(100, 3)];
    assert_eq!(
        String::from_utf8(render_certificates(&ders)).unwrap(),
        GO_CERTS
    );
    assert_eq!(
        render_private_key(&pattern(70, 9)).as_bytes(),
        GO_KEY.as_bytes()
    );
    assert_eq!(render_certificates(&[]), b"");
}

#[test]
fn jwt_bundle_is_byte_identical_to_go_and_decodes_back() {
    let mut bundles = BTreeMap::new();
    bundles.insert(
        "td-b.org".to_owned(),
        br#"{"keys":[{"kty":"EC","kid":"b"}]}"#.to_vec(),
    );
    bundles.insert("c".to_owned(), b"x".to_vec());
    bundles.insert("a.example".to_owned(), br#"{"keys":[]}"#.to_vec());
    let out = render_jwt_bundle(&bundles);
    assert_eq!(String::from_utf8(out.clone()).unwrap(), GO_JWT_BUNDLE);
    assert_ne!(out.last(), Some(&b'\n'));

    let parsed: BTreeMap<String, String> = serde_json::from_slice(&out).unwrap();
    let decoded: BTreeMap<String, Vec<u8>> = parsed
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                base64::engine::general_purpose::STANDARD.decode(v).unwrap(),
            )
        })
        .collect();
    assert_eq!(decoded, bundles);
}

#[test]
fn jwt_bundle_with_two_trust_domains_decodes_back_to_the_same_jwks() {
    let jwks_a = br#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"a1"}]}"#;
    let jwks_b =
        br#"{"keys":[{"kty":"RSA","n":"0vx7","e":"AQAB","kid":"b1"}],"spiffe_refresh_hint":300}"#;
    let mut bundles = BTreeMap::new();
    bundles.insert("zeta.example".to_owned(), jwks_b.to_vec());
    bundles.insert("alpha.example".to_owned(), jwks_a.to_vec());
    let out = String::from_utf8(render_jwt_bundle(&bundles)).unwrap();
    assert!(out.starts_with(r#"{"alpha.example":""#), "{out}");
    assert!(!out.contains(['\n', ' ']));
    let parsed: BTreeMap<String, String> = serde_json::from_str(&out).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD;
    assert_eq!(b64.decode(&parsed["alpha.example"]).unwrap(), jwks_a);
    assert_eq!(b64.decode(&parsed["zeta.example"]).unwrap(), jwks_b);
    assert_eq!(render_jwt_bundle(&BTreeMap::new()), b"{}");
}

#[test]
fn single_svid() {
    let p = Pki::new();
    let f = render(
        std::slice::from_ref(&p.leaf),
        &p.key,
        std::slice::from_ref(&p.root),
        &no_fed(),
        &opts(),
    )
    .unwrap();
    assert_eq!(f.cert, certs(&[&p.leaf]));
    assert_eq!(f.key.as_bytes(), reference("PRIVATE KEY", &[&p.key]));
    assert_eq!(f.bundle, certs(&[&p.root]));
    // The key file round-trips to the PKCS#8 DER as received.
    let parsed = pem::parse(f.key.as_bytes()).unwrap();
    assert_eq!(
        (parsed.tag(), parsed.contents()),
        ("PRIVATE KEY", p.key.as_slice())
    );
}

#[test]
fn chain_of_two_stays_in_received_order() {
    let p = Pki::new();
    let chain = [p.leaf.clone(), p.intermediate.clone()];
    let f = render(
        &chain,
        &p.key,
        std::slice::from_ref(&p.root),
        &no_fed(),
        &opts(),
    )
    .unwrap();
    assert_eq!(f.cert, certs(&[&p.leaf, &p.intermediate]));
    assert_eq!(f.bundle, certs(&[&p.root]));
}

#[test]
fn add_intermediates_moves_them_after_the_roots() {
    let p = Pki::new();
    let other_root = root("second root");
    let chain = [p.leaf.clone(), p.intermediate.clone()];
    let o = X509Options {
        add_intermediates_to_bundle: true,
        ..opts()
    };
    let f = render(
        &chain,
        &p.key,
        &[p.root.clone(), other_root.clone()],
        &no_fed(),
        &o,
    )
    .unwrap();
    assert_eq!(f.cert, certs(&[&p.leaf]));
    assert_eq!(f.bundle, certs(&[&p.root, &other_root, &p.intermediate]));
}

type Federated = BTreeMap<String, Vec<Vec<u8>>>;

fn federated() -> (Federated, [Vec<u8>; 3]) {
    let (z, a1, a2) = (root("zeta"), root("alpha 1"), root("alpha 2"));
    let mut fed = BTreeMap::new();
    fed.insert("zeta.org".to_owned(), vec![z.clone()]);
    fed.insert("alpha.org".to_owned(), vec![a1.clone(), a2.clone()]);
    (fed, [a1, a2, z])
}

#[test]
fn federated_domains_included_in_name_order() {
    let p = Pki::new();
    let (fed, [a1, a2, z]) = federated();
    let chain = [p.leaf.clone(), p.intermediate.clone()];
    let o = X509Options {
        include_federated_domains: true,
        ..opts()
    };
    let f = render(&chain, &p.key, std::slice::from_ref(&p.root), &fed, &o).unwrap();
    assert_eq!(f.bundle, certs(&[&p.root, &a1, &a2, &z]));

    let o = X509Options {
        add_intermediates_to_bundle: true,
        ..o
    };
    let f = render(&chain, &p.key, std::slice::from_ref(&p.root), &fed, &o).unwrap();
    assert_eq!(f.bundle, certs(&[&p.root, &p.intermediate, &a1, &a2, &z]));
}

#[test]
fn federated_domains_not_included_by_default() {
    let p = Pki::new();
    let (fed, _) = federated();
    let f = render(
        std::slice::from_ref(&p.leaf),
        &p.key,
        std::slice::from_ref(&p.root),
        &fed,
        &opts(),
    )
    .unwrap();
    assert_eq!(f.bundle, certs(&[&p.root]));
}

#[test]
fn omit_expired_drops_an_expired_intermediate_and_root() {
    let p = Pki::with_years(2020, 2100);
    let old_root = root_expiring("old root", 2021);
    let chain = [p.leaf.clone(), p.intermediate.clone()];
    let roots = [p.root.clone(), old_root.clone()];

    let kept = render(&chain, &p.key, &roots, &no_fed(), &opts()).unwrap();
    assert_eq!(kept.cert, certs(&[&p.leaf, &p.intermediate]));
    assert_eq!(kept.bundle, certs(&[&p.root, &old_root]));

    let o = X509Options {
        omit_expired: true,
        ..opts()
    };
    let f = render(&chain, &p.key, &roots, &no_fed(), &o).unwrap();
    assert_eq!(f.cert, certs(&[&p.leaf]));
    assert_eq!(f.bundle, certs(&[&p.root]));

    let o = X509Options {
        add_intermediates_to_bundle: true,
        ..o
    };
    let f = render(&chain, &p.key, &roots, &no_fed(), &o).unwrap();
    assert_eq!(f.cert, certs(&[&p.leaf]));
    assert_eq!(f.bundle, certs(&[&p.root]));
}

#[test]
fn omit_expired_keeps_a_cert_until_the_instant_after_not_after() {
    let p = Pki::with_years(2030, 2100);
    let chain = [p.leaf.clone(), p.intermediate.clone()];
    let at = |t: SystemTime| X509Options {
        omit_expired: true,
        now: t,
        ..opts()
    };
    let not_after = UNIX_EPOCH + Duration::from_secs(Y2030);
    let f = render(&chain, &p.key, &[], &no_fed(), &at(not_after)).unwrap();
    assert_eq!(f.cert, certs(&[&p.leaf, &p.intermediate]));
    let f = render(
        &chain,
        &p.key,
        &[],
        &no_fed(),
        &at(not_after + Duration::from_nanos(1)),
    )
    .unwrap();
    assert_eq!(f.cert, certs(&[&p.leaf]));
}

#[test]
fn omit_expired_with_an_expired_leaf_is_an_error_not_an_empty_file() {
    let p = Pki::with_years(2100, 2020);
    let o = X509Options {
        omit_expired: true,
        ..opts()
    };
    let err = render(
        std::slice::from_ref(&p.leaf),
        &p.key,
        std::slice::from_ref(&p.root),
        &no_fed(),
        &o,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            PemError::LeafExpired {
                not_after_unix: 1_577_836_800
            }
        ),
        "{err:?}"
    );
    // Without omit_expired an expired leaf is written as received (upstream behaviour).
    assert!(
        render(
            std::slice::from_ref(&p.leaf),
            &p.key,
            &[],
            &no_fed(),
            &opts()
        )
        .is_ok()
    );
}

#[test]
fn bad_der_is_an_error_naming_list_and_index() {
    let p = Pki::new();
    let garbage = b"\x30\x03\x02\x01".to_vec();
    let err = render(
        &[p.leaf.clone(), garbage.clone()],
        &p.key,
        &[],
        &no_fed(),
        &opts(),
    )
    .unwrap_err();
    assert!(
        matches!(
            &err,
            PemError::InvalidCertificate {
                source_kind: CertSource::Chain,
                index: 1,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("certificate 1 of the SVID chain"),
        "{err}"
    );

    let mut trailing = p.root.clone();
    trailing.push(0);
    let err = render(
        std::slice::from_ref(&p.leaf),
        &p.key,
        &[p.root.clone(), trailing],
        &no_fed(),
        &opts(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, PemError::InvalidCertificate { source_kind: CertSource::Bundle, index: 1, reason } if reason.contains("trailing")),
        "{err:?}"
    );

    let mut fed = BTreeMap::new();
    fed.insert("b.org".to_owned(), vec![garbage]);
    let o = X509Options {
        include_federated_domains: true,
        ..opts()
    };
    let err = render(std::slice::from_ref(&p.leaf), &p.key, &[], &fed, &o).unwrap_err();
    assert!(
        matches!(&err, PemError::InvalidCertificate { source_kind: CertSource::Federated(td), index: 0, .. } if td == "b.org"),
        "{err:?}"
    );

    assert!(matches!(
        render(&[], &p.key, &[], &no_fed(), &opts()),
        Err(PemError::EmptyChain)
    ));
    assert!(matches!(
        render(std::slice::from_ref(&p.leaf), &[], &[], &no_fed(), &opts()),
        Err(PemError::EmptyKey)
    ));
}

#[test]
fn random_and_truncated_bytes_never_panic() {
    let p = Pki::new();
    let mut rng = fastrand::Rng::with_seed(7);
    for i in 0..2000 {
        let der: Vec<u8> = if i % 2 == 0 {
            (0..rng.usize(0..300)).map(|_| rng.u8(..)).collect()
        } else {
            let mut d = p.leaf.clone();
            d.truncate(rng.usize(0..d.len()));
            d
        };
        let r = render(
            &[der],
            &p.key,
            &[],
            &no_fed(),
            &X509Options {
                omit_expired: true,
                ..opts()
            },
        );
        assert!(matches!(
            r,
            Err(PemError::InvalidCertificate { index: 0, .. })
        ));
    }
}

#[test]
fn every_rendered_file_parses_back_to_the_input_der() {
    let p = Pki::new();
    let chain = [p.leaf.clone(), p.intermediate.clone()];
    let f = render(
        &chain,
        &p.key,
        std::slice::from_ref(&p.root),
        &no_fed(),
        &opts(),
    )
    .unwrap();
    let blocks = pem::parse_many(&f.cert).unwrap();
    let ders: Vec<&[u8]> = blocks.iter().map(pem::Pem::contents).collect();
    assert_eq!(ders, [p.leaf.as_slice(), p.intermediate.as_slice()]);
    for line in f.cert.split(|b| *b == b'\n') {
        assert!(line.len() <= 64 && !line.contains(&b'\r'));
    }
    assert!(f.cert.ends_with(b"-----END CERTIFICATE-----\n"));
    assert!(
        !f.cert.windows(2).any(|w| w == b"\n\n"),
        "blank line between blocks"
    );
}
