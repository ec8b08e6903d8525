//! X.509-SVID chain verification against the SPIFFE X509-SVID standard and RFC 5280 path
//! validation: each test builds a chain with rcgen that breaks (or keeps) one rule and runs it
//! through the peer verifier. docs/validation.md lists each check with its clause.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed setup step should panic"
)]

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use spiffe_workload_client::{X509Bundle, X509BundleSet};
use spiffe_workload_tls::rustls::client::danger::ServerCertVerifier as _;
use spiffe_workload_tls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use spiffe_workload_tls::rustls::server::danger::ClientCertVerifier as _;
use spiffe_workload_tls::rustls::{self, CertificateError};
use spiffe_workload_tls::{Authorizer, Error, SpiffeClientVerifier, SpiffeServerVerifier, svid_id};

const TD: &str = "example.org";
const WEB: &str = "spiffe://example.org/web";

/// A CA (root or intermediate) that can sign.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: CertificateDer<'static>,
}

/// CA parameters as SPIRE issues them; tests change one field.
fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.subject_alt_names = vec![SanType::URI(format!("spiffe://{TD}").try_into().unwrap())];
    params
}

fn root(params: CertificateParams) -> Ca {
    let key = KeyPair::generate().unwrap();
    let der = params.self_signed(&key).unwrap().der().clone();
    Ca {
        issuer: Issuer::new(params, key),
        der,
    }
}

fn intermediate(params: CertificateParams, parent: &Ca) -> Ca {
    let key = KeyPair::generate().unwrap();
    let der = params
        .signed_by(&key, &parent.issuer)
        .unwrap()
        .der()
        .clone();
    Ca {
        issuer: Issuer::new(params, key),
        der,
    }
}

/// Leaf parameters as SPIRE issues them for `id`.
fn leaf_params(id: &str) -> CertificateParams {
    spiffe_helper_testkit::certs::svid_params(Some(id))
}

fn leaf(params: &CertificateParams, parent: &Ca) -> CertificateDer<'static> {
    let key = KeyPair::generate().unwrap();
    params
        .signed_by(&key, &parent.issuer)
        .unwrap()
        .der()
        .clone()
}

fn bundles(anchors: &[&Ca]) -> Arc<X509BundleSet> {
    let bundle = X509Bundle::new(
        TD.parse().unwrap(),
        anchors.iter().map(|ca| ca.der.to_vec()).collect(),
    );
    Arc::new(X509BundleSet::new([bundle]))
}

/// Our verifier's error inside the rustls error, as its `Debug` (variant and reason).
fn ours(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => {
            format!("{:?}", other.0.downcast_ref::<Error>().unwrap())
        }
        other => panic!("not our verifier's error: {other:?}"),
    }
}

/// The chain `leaf, intermediates...` as a server certificate, against `anchors`.
fn verify_server(
    anchors: &[&Ca],
    leaf: &CertificateDer<'static>,
    intermediates: &[&Ca],
) -> Result<(), String> {
    let verifier = SpiffeServerVerifier::new(bundles(anchors), Authorizer::any());
    let chain: Vec<_> = intermediates.iter().map(|ca| ca.der.clone()).collect();
    verifier
        .verify_server_cert(
            leaf,
            &chain,
            &ServerName::try_from("ignored.example").unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
        .map_err(|e| ours(&e))
}

#[test]
fn a_chain_through_a_signing_intermediate_verifies() {
    let root = root(ca_params("root"));
    let mid = intermediate(ca_params("mid"), &root);
    let web = leaf(&leaf_params(WEB), &mid);
    verify_server(&[&root], &web, &[&mid]).unwrap();
}

#[test]
fn an_intermediate_without_key_cert_sign_cannot_issue_svids() {
    let root = root(ca_params("root"));
    let mut params = ca_params("mid");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign];
    let mid = intermediate(params, &root);
    let web = leaf(&leaf_params(WEB), &mid);
    let err = verify_server(&[&root], &web, &[&mid]).unwrap_err();
    assert!(
        err.contains("Untrusted") && err.contains("keyCertSign"),
        "{err}"
    );
}

#[test]
fn an_intermediate_without_a_key_usage_extension_cannot_issue_svids() {
    let root = root(ca_params("root"));
    let mut params = ca_params("mid");
    params.key_usages = Vec::new();
    let mid = intermediate(params, &root);
    let web = leaf(&leaf_params(WEB), &mid);
    let err = verify_server(&[&root], &web, &[&mid]).unwrap_err();
    assert!(err.contains("keyCertSign"), "{err}");
}

#[test]
fn an_intermediate_that_is_not_a_ca_cannot_issue_svids() {
    let root = root(ca_params("root"));
    let mut params = ca_params("mid");
    params.is_ca = IsCa::ExplicitNoCa;
    let mid = intermediate(params, &root);
    let web = leaf(&leaf_params(WEB), &mid);
    let err = verify_server(&[&root], &web, &[&mid]).unwrap_err();
    assert!(err.contains("Untrusted"), "{err}");
}

#[test]
fn a_bundle_authority_that_is_not_a_ca_cannot_sign_svids() {
    let mut params = ca_params("not a CA");
    params.is_ca = IsCa::ExplicitNoCa;
    let fake_root = root(params);
    let web = leaf(&leaf_params(WEB), &fake_root);
    let err = verify_server(&[&fake_root], &web, &[]).unwrap_err();
    assert!(err.contains("Untrusted"), "{err}");

    // Without basicConstraints at all it is no CA either (RFC 5280 §4.2.1.9).
    let mut params = ca_params("no basic constraints");
    params.is_ca = IsCa::NoCa;
    let fake_root = root(params);
    let web = leaf(&leaf_params(WEB), &fake_root);
    assert!(verify_server(&[&fake_root], &web, &[]).is_err());
}

#[test]
fn a_trust_anchor_path_length_limits_the_intermediates_below_it() {
    let mut params = ca_params("root pathlen 0");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let strict = root(params);
    let mid = intermediate(ca_params("mid"), &strict);
    let web = leaf(&leaf_params(WEB), &mid);
    let err = verify_server(&[&strict], &web, &[&mid]).unwrap_err();
    assert!(err.contains("pathLenConstraint 0"), "{err}");
    // The leaf directly under it is within the limit.
    verify_server(&[&strict], &leaf(&leaf_params(WEB), &strict), &[]).unwrap();

    let mut params = ca_params("root pathlen 1");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    let one = root(params);
    let mid = intermediate(ca_params("mid"), &one);
    verify_server(&[&one], &leaf(&leaf_params(WEB), &mid), &[&mid]).unwrap();
    let mid2 = intermediate(ca_params("mid2"), &mid);
    let web = leaf(&leaf_params(WEB), &mid2);
    assert!(verify_server(&[&one], &web, &[&mid2, &mid]).is_err());
}

#[test]
fn an_intermediate_path_length_limits_the_intermediates_below_it() {
    let root = root(ca_params("root"));
    let mut params = ca_params("mid pathlen 0");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    let mid = intermediate(params, &root);
    let mid2 = intermediate(ca_params("mid2"), &mid);
    let web = leaf(&leaf_params(WEB), &mid2);
    assert!(verify_server(&[&root], &web, &[&mid2, &mid]).is_err());
}

#[test]
fn a_peer_leaf_whose_id_has_no_path_is_not_an_svid() {
    let root = root(ca_params("root"));
    let td_only = leaf(&leaf_params("spiffe://example.org"), &root);
    let err = svid_id(&td_only).unwrap_err();
    assert!(matches!(err, Error::NotAnSvid { .. }), "{err}");
    let err = verify_server(&[&root], &td_only, &[]).unwrap_err();
    assert!(
        err.contains("NotAnSvid") && err.contains("no path"),
        "{err}"
    );
}

#[test]
fn a_leaf_that_is_a_ca_or_may_sign_is_not_an_svid() {
    let root = root(ca_params("root"));
    let mut ca_leaf = leaf_params(WEB);
    ca_leaf.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    assert!(matches!(
        svid_id(&leaf(&ca_leaf, &root)),
        Err(Error::LeafIsCa { .. })
    ));
    for usage in [KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign] {
        let mut signing = leaf_params(WEB);
        signing.key_usages.push(usage);
        assert!(matches!(
            svid_id(&leaf(&signing, &root)),
            Err(Error::LeafIsCa { .. })
        ));
    }
}

#[test]
fn a_leaf_with_two_uri_sans_or_a_non_spiffe_uri_is_not_an_svid() {
    let root = root(ca_params("root"));
    let mut two = leaf_params(WEB);
    two.subject_alt_names.push(SanType::URI(
        "spiffe://example.org/db".to_owned().try_into().unwrap(),
    ));
    let mut https = leaf_params(WEB);
    https.subject_alt_names = vec![SanType::URI(
        "https://example.org/web".to_owned().try_into().unwrap(),
    )];
    let mut dns_only = leaf_params(WEB);
    dns_only.subject_alt_names = vec![SanType::DnsName("web.example.org".try_into().unwrap())];
    for params in [two, https, dns_only] {
        assert!(matches!(
            svid_id(&leaf(&params, &root)),
            Err(Error::NotAnSvid { .. })
        ));
    }
}

/// go-spiffe verifies with `ExtKeyUsageAny`; X509-SVID §4.4 says an SVID's EKU, when present,
/// holds both serverAuth and clientAuth, and webpki checks the one the handshake needs.
#[test]
fn a_leaf_whose_extended_key_usage_excludes_the_handshake_role_is_refused() {
    let root = root(ca_params("root"));
    let mut client_only = leaf_params(WEB);
    client_only.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_only = leaf(&client_only, &root);
    let err = verify_server(&[&root], &client_only, &[]).unwrap_err();
    assert!(err.contains("Untrusted"), "{err}");

    let mut server_only = leaf_params(WEB);
    server_only.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_only = leaf(&server_only, &root);
    verify_server(&[&root], &server_only, &[]).unwrap();
    let verifier = SpiffeClientVerifier::new(bundles(&[&root]), Authorizer::any());
    let err = verifier
        .verify_client_cert(&server_only, &[], UnixTime::now())
        .unwrap_err();
    assert!(ours(&err).contains("Untrusted"));
}

#[test]
fn a_leaf_signed_by_another_trust_domain_s_authority_is_refused() {
    let root = root(ca_params("root"));
    let stranger = leaf(&leaf_params("spiffe://other.org/web"), &root);
    let err = verify_server(&[&root], &stranger, &[]).unwrap_err();
    assert!(err.contains("NoBundle"), "{err}");
    let other_root = self::root(ca_params("other root"));
    let web = leaf(&leaf_params(WEB), &other_root);
    assert!(
        verify_server(&[&root], &web, &[])
            .unwrap_err()
            .contains("Untrusted")
    );
}

// `verify_chain`: the verifiers' checks as a plain function (docs/embedding.md).

#[test]
fn verify_chain_returns_the_id_and_the_path_from_leaf_to_the_bundle_authority() {
    let root = root(ca_params("root"));
    let other_root = root_with_name("other root");
    let mid = intermediate(ca_params("mid"), &root);
    let web = leaf(&leaf_params(WEB), &mid);
    // The peer also sends a certificate the path does not need: it is not in the result.
    let stray = other_root.der.clone();
    let chain = [web.clone(), stray, mid.der.clone()];
    let verified = spiffe_workload_tls::verify_chain(
        &chain,
        &*bundles(&[&other_root, &root]),
        spiffe_workload_tls::PeerRole::Server,
        UnixTime::now(),
    )
    .unwrap();
    assert_eq!(verified.spiffe_id().to_string(), WEB);
    assert_eq!(verified.chain(), &[web, mid.der.clone(), root.der.clone()]);
}

fn root_with_name(name: &str) -> Ca {
    root(ca_params(name))
}

#[test]
fn verify_chain_refuses_what_the_verifiers_refuse() {
    use spiffe_workload_tls::PeerRole::{Client, Server};
    let root = root(ca_params("root"));
    let verify = |chain: &[CertificateDer<'static>], role| {
        spiffe_workload_tls::verify_chain(chain, &*bundles(&[&root]), role, UnixTime::now())
            .map(|v| v.spiffe_id().to_string())
            .map_err(|e| format!("{e:?}"))
    };
    // An empty chain.
    assert!(
        verify(&[], Server)
            .unwrap_err()
            .contains("NoPeerCertificate")
    );
    // A leaf that may only act as a server is refused as a client.
    let mut params = leaf_params(WEB);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_only = leaf(&params, &root);
    assert_eq!(
        verify(std::slice::from_ref(&server_only), Server).unwrap(),
        WEB
    );
    let err = verify(&[server_only], Client).unwrap_err();
    assert!(err.contains("Untrusted"), "{err}");
    // A trust domain ID is not a workload's.
    let td_only = leaf(
        &spiffe_helper_testkit::certs::svid_params(Some("spiffe://example.org")),
        &root,
    );
    let err = verify(&[td_only], Server).unwrap_err();
    assert!(
        err.contains("NotAnSvid") && err.contains("no path"),
        "{err}"
    );
    // No bundle for the leaf's trust domain.
    let foreign = leaf(&leaf_params("spiffe://other.org/web"), &root);
    let err = verify(&[foreign], Server).unwrap_err();
    assert!(err.contains("NoBundle"), "{err}");
    // Signed by a CA that is not in the bundle.
    let stranger = root_with_name("stranger");
    let err = verify(&[leaf(&leaf_params(WEB), &stranger)], Server).unwrap_err();
    assert!(err.contains("Untrusted"), "{err}");
}
