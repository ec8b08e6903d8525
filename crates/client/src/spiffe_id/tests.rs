use super::*;

#[test]
fn valid_ids_round_trip() {
    for input in [
        "spiffe://example.org",
        "spiffe://example.org/web",
        "spiffe://a-b_c.d9/ns/default/sa/My_App-1.2",
    ] {
        let id: SpiffeId = input.parse().unwrap();
        assert_eq!(id.to_string(), input);
    }
    let id: SpiffeId = "spiffe://example.org/a/b".parse().unwrap();
    assert_eq!(id.trust_domain().name(), "example.org");
    assert_eq!(id.path(), "/a/b");
}

#[test]
fn invalid_ids_are_rejected_with_reason() {
    for (input, reason_part) in [
        ("", "spiffe://"),
        ("http://example.org/a", "spiffe://"),
        ("SPIFFE://example.org/a", "spiffe://"),
        ("spiffe://", "missing"),
        ("spiffe:///a", "missing"),
        ("spiffe://Example.org/a", "lowercase"),
        ("spiffe://example.org:8080/a", "port"),
        ("spiffe://user@example.org/a", "user info"),
        ("spiffe://example.org/", "empty"),
        ("spiffe://example.org/a//b", "empty"),
        ("spiffe://example.org/a/", "empty"),
        ("spiffe://example.org/a/../b", "'..'"),
        ("spiffe://example.org/./b", "'.'"),
        ("spiffe://example.org/a b", "letters"),
        ("spiffe://example.org/a%20b", "letters"),
        ("spiffe://example.org/a?x=1", "query"),
        ("spiffe://example.org/a#f", "fragment"),
    ] {
        let err = input.parse::<SpiffeId>().unwrap_err();
        assert!(err.to_string().contains(reason_part), "{input:?}: {err}");
        assert_eq!(err.input(), input);
    }
    let long = format!("spiffe://{}/a", "a".repeat(256));
    assert!(long.parse::<SpiffeId>().is_err());
}

#[test]
fn trust_domain_accepts_both_forms() {
    let a: TrustDomain = "example.org".parse().unwrap();
    let b: TrustDomain = "spiffe://example.org".parse().unwrap();
    assert_eq!(a, b);
    assert_eq!(a.to_string(), "example.org");
    assert_eq!(a.id_string(), "spiffe://example.org");
    assert!("spiffe://example.org/path".parse::<TrustDomain>().is_err());
    assert!("Example.org".parse::<TrustDomain>().is_err());
    assert!("".parse::<TrustDomain>().is_err());
}

#[test]
fn child_ids_and_membership() {
    let td: TrustDomain = "example.org".parse().unwrap();
    let web = td.child("/web").unwrap();
    assert_eq!(web.to_string(), "spiffe://example.org/web");
    assert!(web.is_member_of(&td));
    assert!(!web.is_member_of(&"other.org".parse().unwrap()));
    assert!(td.child("web").is_err());
    assert!(td.child("/a/../b").is_err());
    assert_eq!(td.child("").unwrap().to_string(), "spiffe://example.org");
}
