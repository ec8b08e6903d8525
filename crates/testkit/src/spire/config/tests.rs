use super::*;

#[test]
fn first_selector_replaces_default_then_accumulates() {
    let e = Entry::new("spiffe://example.org/w");
    assert!(e.selectors[0].starts_with("unix:uid:"));
    let e = e.selector("unix:gid:0").selector("unix:user:root");
    assert_eq!(e.selectors, ["unix:gid:0", "unix:user:root"]);
}

#[test]
fn args_carry_every_option() {
    let a = Entry::new("spiffe://example.org/w")
        .x509_ttl(30)
        .jwt_ttl(40)
        .hint("int")
        .entry_id("00-a")
        .federates_with("other.org")
        .dns("w.local")
        .args()
        .join(" ");
    for want in [
        "-x509SVIDTTL 30",
        "-jwtSVIDTTL 40",
        "-hint int",
        "-entryID 00-a",
        "-federatesWith spiffe://other.org",
        "-dns w.local",
    ] {
        assert!(a.contains(want), "{a} lacks {want}");
    }
}
