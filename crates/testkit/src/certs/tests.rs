use super::*;

#[test]
fn intermediate_chain_has_leaf_then_intermediate() {
    let root = TestCa::root("example.org");
    let inter = root.intermediate();
    let svid = inter.issue("spiffe://example.org/w", Duration::from_secs(60));
    assert_eq!(svid.chain.len(), 2);
    assert_eq!(svid.chain[1], inter.der());
    let leaf_only = root.issue("spiffe://example.org/w", Duration::from_secs(60));
    assert_eq!(leaf_only.chain.len(), 1);
    assert!(root.pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(root.key_pem().contains("PRIVATE KEY"));
}

#[test]
fn response_keys_federated_bundles_by_spiffe_id() {
    let root = TestCa::root("example.org");
    let other = TestCa::root("other.org");
    let svid = root.issue("spiffe://example.org/w", Duration::from_secs(60));
    let r = x509_response(
        &[(&svid, "int")],
        &[root.der()],
        &[("other.org", vec![other.der()])],
    );
    assert_eq!(r.svids[0].hint, "int");
    assert_eq!(r.svids[0].bundle, root.der());
    assert!(r.federated_bundles.contains_key("spiffe://other.org"));
}

#[test]
fn jwt_has_three_parts_and_claims() {
    let exp = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
    let t = jwt_token("spiffe://example.org/w", &["a", "b"], exp);
    let parts: Vec<&str> = t.split('.').collect();
    assert_eq!(parts.len(), 3);
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["exp"], 2_000_000_000_u64);
    assert_eq!(claims["aud"], serde_json::json!(["a", "b"]));
    assert_eq!(claims["sub"], "spiffe://example.org/w");
}
