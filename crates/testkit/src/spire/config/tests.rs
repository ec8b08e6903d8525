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

#[test]
fn bundle_endpoint_block_carries_the_profile_port_and_hint() {
    let dir = Path::new("/tmp/x");
    let conf = |profile| {
        let opts = SpireOptions {
            bundle_endpoint: Some(BundleEndpoint {
                profile,
                refresh_hint: Some(Duration::from_secs(90)),
            }),
            ..SpireOptions::default()
        };
        server_conf(&Layout {
            dir,
            port: 1,
            opts: &opts,
            upstream: None,
            bundle_endpoint_port: Some(8443),
        })
    };
    let spiffe = conf(BundleEndpointProfile::HttpsSpiffe);
    for want in [
        "bundle_endpoint {",
        "port = 8443",
        "refresh_hint = \"90s\"",
        "profile \"https_spiffe\" {}",
    ] {
        assert!(spiffe.contains(want), "{spiffe} lacks {want}");
    }
    let web = conf(BundleEndpointProfile::HttpsWeb {
        cert_file: "/c.pem".into(),
        key_file: "/k.pem".into(),
    });
    for want in [
        "profile \"https_web\"",
        "cert_file_path = \"/c.pem\"",
        "key_file_path = \"/k.pem\"",
    ] {
        assert!(web.contains(want), "{web} lacks {want}");
    }
    let none = server_conf(&Layout {
        dir,
        port: 1,
        opts: &SpireOptions::default(),
        upstream: None,
        bundle_endpoint_port: None,
    });
    assert!(!none.contains("federation"), "{none}");
}
