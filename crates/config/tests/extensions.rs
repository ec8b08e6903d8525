//! The keys upstream lacks that real consumers need (docs/consumers.md,
//! docs/configuration.md): their defaults, their values, their errors, and a file with several
//! mistakes reporting every one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use common::{BASE, assert_round_trip, error, parse, parse_with};
use spiffe_helper_config::{CmdRestart, Overrides};

#[test]
fn defaults_leave_an_upstream_file_as_it_was() {
    let c = parse(BASE);
    let x509 = c.x509.as_ref().unwrap();
    assert_eq!(x509.combined, None);
    assert_eq!(c.filesystem_delivery_dir, None);
    assert_eq!(c.cmd_restart, CmdRestart::OnRotation);
    assert_eq!(c.cmd_stop_timeout, Duration::from_secs(10));
    let text = c.effective();
    assert!(text.contains("cmd_restart = \"on-rotation\"\n"), "{text}");
    assert!(text.contains("cmd_stop_timeout = \"10s\"\n"), "{text}");
    assert!(!text.contains("svid_combined_file_name"), "{text}");
    assert!(!text.contains("filesystem_delivery_dir"), "{text}");
}

#[test]
fn every_new_key_set() {
    let c = parse(&format!(
        "{BASE}svid_combined_file_name = \"combined.pem\"\n\
         filesystem_delivery_dir = \"/run/spiffe\"\n\
         cmd = \"app\"\ncmd_restart = \"always\"\ncmd_stop_timeout = \"3s\"\n\
         health_checks {{\n  listener_enabled = true\n  bind_address = \"127.0.0.1\"\n}}\n"
    ));
    let x509 = c.x509.as_ref().unwrap();
    assert_eq!(
        x509.combined.as_deref(),
        Some(Path::new("certs/combined.pem"))
    );
    assert_eq!(
        c.filesystem_delivery_dir.as_deref(),
        Some(Path::new("/run/spiffe"))
    );
    assert_eq!(c.cmd_restart, CmdRestart::Always);
    assert_eq!(c.cmd_stop_timeout, Duration::from_secs(3));
    let health = c.health.as_ref().unwrap();
    assert_eq!(health.bind_address, "127.0.0.1".parse::<IpAddr>().unwrap());
    let text = c.effective();
    for line in [
        "svid_combined_file_name = \"combined.pem\"",
        "filesystem_delivery_dir = \"/run/spiffe\"",
        "cmd_restart = \"always\"",
        "cmd_stop_timeout = \"3s\"",
        "  bind_address = \"127.0.0.1\"",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    assert_round_trip(&c);
}

#[test]
fn bind_address_takes_ipv6_literals_and_refuses_names() {
    for (written, want) in [
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("::", "::"),
        ("0.0.0.0", "0.0.0.0"),
    ] {
        let c = parse(&format!(
            "{BASE}health_checks {{\n  listener_enabled = true\n  bind_address = \"{written}\"\n}}\n"
        ));
        let health = c.health.as_ref().unwrap();
        assert_eq!(
            health.bind_address,
            want.parse::<IpAddr>().unwrap(),
            "{written}"
        );
        assert_round_trip(&c);
    }
    assert_eq!(
        error(&format!(
            "{BASE}health_checks {{\n  listener_enabled = true\n  bind_address = \"localhost\"\n}}\n"
        )),
        "helper.conf:5:18: health_checks.bind_address = \"localhost\": not an IP address literal (for example 127.0.0.1, 0.0.0.0, ::1 or ::); host names are not accepted"
    );
}

#[test]
fn cmd_restart_defaults_to_never_in_wrapper_mode() {
    let wrapped = Overrides {
        wrapper_mode: true,
        ..Overrides::default()
    };
    let (c, _) = parse_with(BASE, wrapped, &[]).unwrap();
    assert_eq!(c.cmd_restart, CmdRestart::Never);
    // A value the file gives wins in wrapper mode too.
    let text = format!("{BASE}cmd_restart = \"on-rotation\"\n");
    let (c, _) = parse_with(&text, wrapped, &[]).unwrap();
    assert_eq!(c.cmd_restart, CmdRestart::OnRotation);
    assert_eq!(
        error(&format!("{BASE}cmd_restart = \"sometimes\"\n")),
        "helper.conf:3:15: cmd_restart = \"sometimes\": unknown restart policy (on-rotation, always or never)"
    );
    assert_eq!(
        error(&format!("{BASE}cmd_stop_timeout = 0\n")),
        "helper.conf:3:20: cmd_stop_timeout = 0: must be greater than zero"
    );
}

#[test]
fn combined_file_cannot_share_a_path() {
    assert_eq!(
        error(&format!("{BASE}svid_combined_file_name = \"svid.pem\"\n")),
        "helper.conf:3:27: svid_combined_file_name and svid_file_name both resolve to certs/svid.pem; each output needs its own file"
    );
}

#[test]
fn several_mistakes_are_all_reported_in_file_order() {
    let text = format!(
        "{BASE}cert_dri = \"x\"\ncert_file_mode = 0899\ncmd = 123\n\
         health_checks {{\n  listener_enabled = true\n  bind_port = 0\n}}\n"
    );
    let err = parse_with(&text, Overrides::default(), &[]).unwrap_err();
    let lines: Vec<String> = err.iter().map(ToString::to_string).collect();
    assert_eq!(
        lines,
        [
            "helper.conf:3:1: unknown key `cert_dri` (did you mean `cert_dir`?)",
            "helper.conf:4:18: cert_file_mode = 0899: not an octal mode (digits 0-7, at most 0777)",
            "helper.conf:5:7: cmd = 123: expected a string in double quotes, found a number",
            "helper.conf:8:15: health_checks.bind_port = 0: not a TCP port (1-65535)",
        ]
    );
    assert_eq!(err.to_string(), lines.join("\n"));
}

/// The rules between keys are checked once every value has its type (a skipped value would
/// make a rule fail for nothing); then every broken rule is reported.
#[test]
fn several_rule_mistakes_are_all_reported() {
    let text = "cmd_restart = \"maybe\"\npid_file_name = \"/run/app.pid\"\nsvid_file_name = \"relative.pem\"\n\
                health_checks {\n  listener_enabled = true\n  bind_address = \"localhost\"\n}\n";
    let err = parse_with(text, Overrides::default(), &[]).unwrap_err();
    let lines: Vec<String> = err.iter().map(ToString::to_string).collect();
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(
        lines[4].starts_with("helper.conf:6:18: health_checks.bind_address"),
        "{lines:#?}"
    );
    assert!(lines[0].contains("agent_address is required"), "{lines:#?}");
    assert!(
        lines[1].starts_with("helper.conf:1:15: cmd_restart"),
        "{lines:#?}"
    );
    assert!(
        lines[2].starts_with("helper.conf:2:1: pid_file_name needs renew_signal"),
        "{lines:#?}"
    );
    assert!(
        lines[3].starts_with("helper.conf:3:18: cert_dir is required"),
        "{lines:#?}"
    );
}

#[test]
fn one_mistake_is_reported_alone_as_before() {
    let err = parse_with(
        &format!("{BASE}cert_dri = \"x\"\n"),
        Overrides::default(),
        &[],
    )
    .unwrap_err();
    assert_eq!(err.iter().count(), 1);
    assert_eq!(
        err.to_string(),
        "helper.conf:3:1: unknown key `cert_dri` (did you mean `cert_dir`?)"
    );
}

#[test]
fn cert_dir_layout_is_files_by_default_and_versioned_when_asked() {
    use spiffe_helper_config::CertDirLayout;
    let c = parse(BASE);
    assert_eq!(c.cert_dir_layout, CertDirLayout::Files);
    assert!(c.effective().contains("cert_dir_layout = \"files\"\n"));
    let c = parse(&format!(
        "{BASE}cert_dir_layout = \"versioned\"\nsvid_combined_file_name = \"combined.pem\"\n\
         jwt_bundle_file_name = \"jwt.json\"\n\
         jwt_svids = [{{ jwt_audience = \"a\", jwt_svid_file_name = \"a.token\" }}]\n"
    ));
    assert_eq!(c.cert_dir_layout, CertDirLayout::Versioned);
    assert!(c.effective().contains("cert_dir_layout = \"versioned\"\n"));
    assert_round_trip(&c);
}

#[test]
fn cert_dir_layout_errors_name_the_line_and_the_fix() {
    let e = error(&format!("{BASE}cert_dir_layout = \"kubelet\"\n"));
    assert!(
        e.contains("helper.conf:3") && e.contains("files or versioned"),
        "{e}"
    );
    let e = error(&format!(
        "{BASE}cert_dir_layout = \"versioned\"\nsvid_file_name = \"/elsewhere/svid.pem\"\n\
         jwt_svids = [{{ jwt_audience = \"a\", jwt_svid_file_name = \"sub/a.token\" }}]\n"
    ));
    assert!(
        e.contains("helper.conf:3")
            && e.contains("svid_file_name (/elsewhere/svid.pem)")
            && e.contains("jwt_svids[0].jwt_svid_file_name (certs/sub/a.token)"),
        "{e}"
    );
    let e = error(
        "agent_address = \"unix:///a.sock\"\ncert_dir_layout = \"versioned\"\nsvid_file_name = \"/x/svid.pem\"\nsvid_key_file_name = \"/x/k.pem\"\nsvid_bundle_file_name = \"/x/b.pem\"\n",
    );
    assert!(e.contains("cert_dir"), "{e}");
}

#[test]
fn include_federated_domains_warns_and_points_at_federated_bundle_dir() {
    let w = common::warnings(&format!("{BASE}include_federated_domains = true\n"));
    assert!(
        w.iter().any(|w| w.contains("helper.conf:3")
            && w.contains("#217")
            && w.contains("federated_bundle_dir")),
        "{w:?}"
    );
    assert!(common::warnings(&format!("{BASE}include_federated_domains = false\n")).is_empty());
}

#[test]
fn spire_agent_address_is_still_read_with_a_warning_that_upstream_dropped_it() {
    let (c, w) = parse_with(
        "cert_dir = \"certs\"\n",
        Overrides::default(),
        &[("SPIRE_AGENT_ADDRESS", "unix:///run/old.sock")],
    )
    .unwrap();
    assert_eq!(c.agent_address.to_string(), "unix:///run/old.sock");
    let w: Vec<String> = w.iter().map(ToString::to_string).collect();
    assert!(
        w.iter()
            .any(|w| w.contains("SPIRE_AGENT_ADDRESS") && w.contains("#391")),
        "{w:?}"
    );
}

#[test]
fn pkcs12_files_need_exactly_one_password_and_never_print_it() {
    let base = format!("{BASE}pkcs12_keystore_file_name = \"ks.p12\"\n");
    let e = error(&base);
    assert!(
        e.contains("pkcs12_password") && e.contains("pkcs12_password_file"),
        "{e}"
    );
    let c = parse(&format!("{base}pkcs12_password = \"s3cret-pw\"\n"));
    let p12 = c.pkcs12.as_ref().unwrap();
    assert_eq!(p12.password, "s3cret-pw");
    assert_eq!(p12.key_alias, "spiffe");
    assert_eq!(
        c.x509.as_ref().unwrap().pkcs12_keystore.as_deref(),
        Some(Path::new("certs/ks.p12"))
    );
    let text = c.effective();
    assert!(!text.contains("s3cret-pw"), "{text}");
    assert!(
        text.contains("# pkcs12_password is set (not printed)"),
        "{text}"
    );
    assert!(
        !format!("{c:?}").contains("s3cret-pw"),
        "Debug prints the password"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pw");
    std::fs::write(&file, "from-file\nignored\n").unwrap();
    let c = parse(&format!(
        "{base}pkcs12_password_file = \"{}\"\npkcs12_key_alias = \"svc\"\n",
        file.display()
    ));
    let p12 = c.pkcs12.as_ref().unwrap();
    assert_eq!(p12.password, "from-file");
    assert_eq!(p12.key_alias, "svc");
    assert_round_trip(&c);

    let e = error(&format!(
        "{base}pkcs12_password = \"x\"\npkcs12_password_file = \"{}\"\n",
        file.display()
    ));
    assert!(e.contains("helper.conf:5") && e.contains("not both"), "{e}");
    let e = error(&format!(
        "{base}pkcs12_password_file = \"{}\"\n",
        dir.path().join("missing").display()
    ));
    assert!(
        e.contains("helper.conf:4") && e.contains("cannot read"),
        "{e}"
    );
    let w = common::warnings(&format!("{BASE}pkcs12_password = \"x\"\n"));
    assert!(w.iter().any(|w| w.contains("ignored")), "{w:?}");
}
