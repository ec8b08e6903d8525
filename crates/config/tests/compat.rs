//! Upstream (HCL v1) spellings keep their meaning (docs/configuration.md, "Accepted syntax";
//! docs/compatibility.md, "Configuration file and command line").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;

use common::{BASE, assert_round_trip, parse};
use spiffe_helper_config::{FileMode, HealthConfig};

#[test]
fn modes_are_octal_however_written() {
    for value in ["0644", "644", "\"0644\"", "\"644\"", "00644"] {
        let c = parse(&format!("{BASE}cert_file_mode = {value}\n"));
        assert_eq!(
            c.cert_file_mode,
            FileMode(0o644),
            "cert_file_mode = {value}"
        );
    }
    let c = parse(&format!(
        "{BASE}key_file_mode = 400\njwt_svid_file_mode = \"0440\"\n"
    ));
    assert_eq!(
        (c.key_file_mode, c.jwt_svid_file_mode),
        (FileMode(0o400), FileMode(0o440))
    );
}

fn two_jwts(c: &spiffe_helper_config::Config) {
    let got: Vec<(&str, &Path)> = c
        .jwt_svids
        .iter()
        .map(|j| (j.audience.as_str(), j.path.as_path()))
        .collect();
    assert_eq!(
        got,
        [
            ("a", Path::new("certs/a.jwt")),
            ("b", Path::new("certs/b.jwt"))
        ]
    );
}

#[test]
fn jwt_svids_in_every_upstream_form() {
    let list = r#"jwt_svids = [{jwt_audience = "a", jwt_svid_file_name = "a.jwt"}, {jwt_audience = "b", jwt_svid_file_name = "b.jwt"}]"#;
    two_jwts(&parse(&format!("{BASE}{list}\n")));

    let multiline_list = "jwt_svids = [\n  {\n    jwt_audience = \"a\"\n    jwt_svid_file_name = \"a.jwt\"\n  },\n  {\n    jwt_audience = \"b\"\n    jwt_svid_file_name = \"b.jwt\"\n  }\n]\n";
    two_jwts(&parse(&format!("{BASE}{multiline_list}")));

    let labelled = "jwt_svids \"first\" {\n  jwt_audience = \"a\"\n  jwt_svid_file_name = \"a.jwt\"\n}\njwt_svids \"second\" {\n  jwt_audience = \"b\"\n  jwt_svid_file_name = \"b.jwt\"\n}\n";
    two_jwts(&parse(&format!("{BASE}{labelled}")));

    let unlabelled_blocks = "jwt_svids {\n  jwt_audience = \"a\"\n  jwt_svid_file_name = \"a.jwt\"\n}\njwt_svids {\n  jwt_audience = \"b\"\n  jwt_svid_file_name = \"b.jwt\"\n}\n";
    two_jwts(&parse(&format!("{BASE}{unlabelled_blocks}")));

    let single_block = "jwt_svids {\n  jwt_audience = \"a\"\n  jwt_extra_audiences = [\"x\"]\n  jwt_svid_file_name = \"a.jwt\"\n}\n";
    let c = parse(&format!("{BASE}{single_block}"));
    assert_eq!(c.jwt_svids.len(), 1);
    assert_eq!(c.jwt_svids[0].extra_audiences, ["x"]);

    let single_object = "jwt_svids = { jwt_audience = \"a\", jwt_svid_file_name = \"a.jwt\" }\n";
    assert_eq!(parse(&format!("{BASE}{single_object}")).jwt_svids.len(), 1);
}

#[test]
fn health_checks_attribute_form_equals_block_form() {
    let block = parse(&format!(
        "{BASE}health_checks {{\n  listener_enabled = true\n  bind_port = 8081\n}}\n"
    ));
    let attribute = parse(&format!(
        "{BASE}health_checks = {{\n  listener_enabled = true\n  bind_port = 8081\n}}\n"
    ));
    let one_line = parse(&format!(
        "{BASE}health_checks = {{ listener_enabled = true, bind_port = \"8081\" }}\n"
    ));
    let want = Some(HealthConfig {
        bind_port: 8081,
        ..HealthConfig::default()
    });
    assert_eq!(block.health, want);
    assert_eq!(attribute.health, want);
    assert_eq!(one_line.health, want);
}

#[test]
fn comments_and_heredocs() {
    let text = r#"
# hash comment
// slash comment
/* block
   comment */
agent_address = "/run/agent.sock" # trailing
cert_dir = "certs" // trailing
cmd = "app"
cmd_args = <<EOF
--flag "quoted value"
EOF
hint = <<-EOT
    indented
    EOT
"#;
    let c = parse(text);
    assert_eq!(c.cmd_args, ["--flag", "quoted value"]);
    assert_eq!(c.hint.as_deref(), Some("indented\n"));
}

#[test]
fn keys_are_case_insensitive() {
    let text = "AGENT_ADDRESS = \"/a.sock\"\nCert_Dir = \"certs\"\nJWT_SVIDS = [{ JWT_Audience = \"a\", Jwt_Svid_File_Name = \"a.jwt\" }]\nHealth_Checks {\n  LISTENER_ENABLED = true\n}\n";
    let c = parse(text);
    assert_eq!(c.cert_dir.as_deref(), Some(Path::new("certs")));
    assert_eq!(c.jwt_svids[0].audience, "a");
    assert!(c.health.is_some());
}

#[test]
fn json_files_use_the_same_keys() {
    let text = r#"
    {
      "agent_address": "unix:///run/agent.sock",
      "cert_dir": "certs",
      "cert_file_mode": "0444",
      "key_file_mode": 400,
      "jwt_svids": [{"jwt_audience": "a", "jwt_svid_file_name": "a.jwt", "jwt_extra_audiences": ["x"]}],
      "svid_file_name": "svid.pem",
      "health_checks": {"listener_enabled": true, "bind_port": 9000},
      "cmd": "app",
      "cmd_args": "a \"b c\""
    }"#;
    let c = parse(text);
    assert_eq!(c.cert_file_mode, FileMode(0o444));
    assert_eq!(c.key_file_mode, FileMode(0o400));
    assert_eq!(c.jwt_svids[0].extra_audiences, ["x"]);
    assert_eq!(c.health.as_ref().unwrap().bind_port, 9000);
    assert_eq!(c.cmd_args, ["a", "b c"]);
    assert!(c.x509.is_some());
    assert_round_trip(&c);
}

#[test]
fn byte_order_mark_is_ignored() {
    parse(&format!("\u{feff}{BASE}"));
}
