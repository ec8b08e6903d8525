//! The peer verifier on X.509 chains. First byte even: the rest is a chain of DER certificates
//! (each with a 2-byte big-endian length) checked against a fixed bundle: never a panic, and an
//! accepted leaf is an SVID. Odd: the rest chooses the fields of a chain that is then built and
//! signed (root and intermediate `cA`, key usage, path lengths; leaf ID path, `cA`,
//! `keyCertSign`), and the verifier must accept it exactly when every rule of
//! docs/validation.md holds.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use spiffe_workload_client::{X509Bundle, X509BundleSet};
use spiffe_workload_tls::rustls::client::danger::ServerCertVerifier as _;
use spiffe_workload_tls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use spiffe_workload_tls::{Authorizer, SpiffeServerVerifier, svid_id};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        raw(rest);
    } else {
        generated(rest);
    }
});

fn verify(anchors: Vec<Vec<u8>>, chain: &[CertificateDer<'static>]) -> bool {
    let bundle = X509Bundle::new("example.org".parse().expect("fuzz: td"), anchors);
    let verifier = SpiffeServerVerifier::new(Arc::new(X509BundleSet::new([bundle])), Authorizer::any());
    let server = ServerName::try_from("fuzz.example").expect("fuzz: name");
    verifier
        .verify_server_cert(&chain[0], &chain[1..], &server, &[], UnixTime::now())
        .is_ok()
}

fn raw(mut data: &[u8]) {
    static ROOT: OnceLock<Vec<u8>> = OnceLock::new();
    let root = ROOT.get_or_init(|| {
        let key = KeyPair::generate().expect("fuzz: key");
        ca(true, true, None).self_signed(&key).expect("fuzz: root").der().to_vec()
    });
    let mut chain = Vec::new();
    while let [hi, lo, rest @ ..] = data {
        let len = usize::from(*hi) << 8 | usize::from(*lo);
        let take = len.min(rest.len());
        chain.push(CertificateDer::from(rest[..take].to_vec()));
        data = &rest[take..];
    }
    if chain.is_empty() {
        return;
    }
    let id = svid_id(&chain[0]);
    if let Ok(id) = &id {
        assert!(!id.path().is_empty(), "a trust domain ID taken as an SVID");
    }
    if verify(vec![root.clone()], &chain) {
        assert!(id.is_ok(), "accepted a leaf that is no SVID");
    }
}

fn ca(is_ca: bool, key_cert_sign: bool, path_len: Option<u8>) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, "fuzz CA");
    params.is_ca = match (is_ca, path_len) {
        (false, _) => IsCa::ExplicitNoCa,
        (true, None) => IsCa::Ca(BasicConstraints::Unconstrained),
        (true, Some(n)) => IsCa::Ca(BasicConstraints::Constrained(n)),
    };
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if key_cert_sign {
        params.key_usages.push(KeyUsagePurpose::KeyCertSign);
    }
    params
}

/// One CA of the generated chain, from one input byte.
struct CaKnobs {
    is_ca: bool,
    key_usage: bool,
    key_cert_sign: bool,
    path_len: Option<u8>,
}

impl CaKnobs {
    fn from(b: u8) -> Self {
        Self {
            is_ca: b & 1 != 0,
            key_usage: b & 2 != 0,
            key_cert_sign: b & 4 != 0,
            path_len: (b & 8 != 0).then_some((b >> 4) & 3),
        }
    }

    fn params(&self) -> CertificateParams {
        let mut params = ca(self.is_ca, self.key_cert_sign, self.path_len);
        if !self.key_usage {
            params.key_usages.clear();
        }
        params
    }
}

fn generated(data: &[u8]) {
    let [root_b, count_b, leaf_b, rest @ ..] = data else {
        return;
    };
    let count = usize::from(*count_b % 3);
    let Some(mid_bytes) = rest.get(..count) else {
        return;
    };
    let root_k = CaKnobs::from(*root_b);
    // The anchor's key usage is not checked (RFC 5280 §6.1 takes the anchor as given): only
    // its cA and path length.
    let root_params = ca(root_k.is_ca, true, root_k.path_len);
    let key = KeyPair::generate().expect("fuzz: key");
    let root_der = root_params.self_signed(&key).expect("fuzz: root").der().to_vec();
    let mut issuer = Issuer::new(root_params, key);
    // Intermediates from the root down; `mids` ends up leaf-side first.
    let mut mids: Vec<(CaKnobs, CertificateDer<'static>)> = Vec::new();
    for b in mid_bytes {
        let knobs = CaKnobs::from(*b);
        let params = knobs.params();
        let key = KeyPair::generate().expect("fuzz: key");
        let der = params.signed_by(&key, &issuer).expect("fuzz: intermediate").der().clone();
        issuer = Issuer::new(params, key);
        mids.insert(0, (knobs, der));
    }
    let (with_path, leaf_ca, leaf_sign) = (leaf_b & 1 != 0, leaf_b & 2 != 0, leaf_b & 4 != 0);
    let mut leaf = CertificateParams::default();
    leaf.is_ca = if leaf_ca {
        IsCa::Ca(BasicConstraints::Unconstrained)
    } else {
        IsCa::ExplicitNoCa
    };
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if leaf_sign {
        leaf.key_usages.push(KeyUsagePurpose::KeyCertSign);
    }
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let id = if with_path { "spiffe://example.org/w" } else { "spiffe://example.org" };
    leaf.subject_alt_names = vec![SanType::URI(id.to_owned().try_into().expect("fuzz: uri"))];
    let key = KeyPair::generate().expect("fuzz: key");
    let leaf_der = leaf.signed_by(&key, &issuer).expect("fuzz: leaf").der().clone();

    let mut chain = vec![leaf_der];
    chain.extend(mids.iter().map(|(_, der)| der.clone()));
    let accepted = verify(vec![root_der], &chain);

    let n = mids.len();
    let root_ok = root_k.is_ca && root_k.path_len.is_none_or(|l| usize::from(l) >= n);
    let mids_ok = mids.iter().enumerate().all(|(below, (k, _))| {
        k.is_ca && k.key_usage && k.key_cert_sign && k.path_len.is_none_or(|l| usize::from(l) >= below)
    });
    let leaf_ok = with_path && !leaf_ca && !leaf_sign;
    assert_eq!(
        accepted,
        root_ok && mids_ok && leaf_ok,
        "root ok {root_ok}, intermediates ok {mids_ok}, leaf ok {leaf_ok}"
    );
}
