//! The keystore and truststore read back (with the same crate's reader) hold what was put in.

use p12_keystore::Pkcs12ImportPolicy;

use super::*;

fn cert_and_key(name: &str) -> (Vec<u8>, Vec<u8>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.der().to_vec(), key.serialize_der())
}

/// A leaf signed by a CA: (leaf DER, leaf key PKCS#8, CA DER).
fn chain_of_two() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(vec!["ca.example".to_owned()]).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["leaf.example".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test leaf");
    let leaf = params.signed_by(&key, &issuer).unwrap();
    (leaf.der().to_vec(), key.serialize_der(), ca.der().to_vec())
}

#[test]
fn the_keystore_holds_key_and_chain_under_the_alias() {
    let (leaf, key, ca) = chain_of_two();
    let chain = vec![leaf.clone(), ca.clone()];
    let bytes = render_pkcs12_keystore(&chain, &key, "spiffe", "changeit").unwrap();
    let store =
        KeyStore::from_pkcs12(bytes.as_bytes(), "changeit", Pkcs12ImportPolicy::Relaxed).unwrap();
    let (alias, entry) = store.private_key_chain().expect("a private key entry");
    assert_eq!(alias, "spiffe");
    assert_eq!(entry.key().as_der(), key.as_slice());
    let certs: Vec<&[u8]> = entry.certs().iter().map(Certificate::as_der).collect();
    assert_eq!(certs, [leaf.as_slice(), ca.as_slice()]);
    assert!(KeyStore::from_pkcs12(bytes.as_bytes(), "wrong", Pkcs12ImportPolicy::Relaxed).is_err());
}

#[test]
fn the_truststore_holds_each_authority_as_a_trusted_entry() {
    let (a, _) = cert_and_key("a.example");
    let (b, _) = cert_and_key("b.example");
    let bytes = render_pkcs12_truststore(&[a.clone(), b.clone()], "spiffe-ca", "changeit").unwrap();
    let store = KeyStore::from_pkcs12(&bytes, "changeit", Pkcs12ImportPolicy::Relaxed).unwrap();
    for (alias, der) in [("spiffe-ca-0", &a), ("spiffe-ca-1", &b)] {
        match store.entry(alias) {
            Some(KeyStoreEntry::Certificate(cert)) => assert_eq!(cert.as_der(), der.as_slice()),
            other => panic!("{alias}: {other:?}"),
        }
    }
}

#[test]
fn garbage_is_an_error_that_quotes_nothing() {
    let (leaf, _) = cert_and_key("leaf.example");
    let err =
        render_pkcs12_keystore(&[leaf], b"not a key", "spiffe", "secret-password").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("private key"), "{text}");
    assert!(!text.contains("secret-password"));
    assert!(render_pkcs12_truststore(&[b"junk".to_vec()], "ca", "x").is_err());
}

#[test]
fn certificate_ders_reads_back_what_render_certificates_wrote() {
    let (a, _) = cert_and_key("a.example");
    let (b, _) = cert_and_key("b.example");
    let pem = crate::render_certificates(&[a.clone(), b.clone()]);
    assert_eq!(certificate_ders(&pem), vec![a, b]);
    assert!(certificate_ders(b"").is_empty());
}
