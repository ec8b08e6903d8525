//! `Config::load` reads files from disk and reports unreadable ones.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use spiffe_helper_config::{Config, ConfigError, Overrides};

#[test]
fn loads_a_file_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("helper.conf");
    std::fs::write(&path, "agent_address = \"/a.sock\"\ncert_dir = \"certs\"\n").unwrap();
    let (config, _) = Config::load(
        &path,
        &Overrides {
            daemon_mode: Some(false),
            ..Overrides::default()
        },
    )
    .unwrap();
    assert!(!config.daemon_mode);

    std::fs::write(&path, "agent_address = \"/a.sock\"\ncert_dir = 1\n").unwrap();
    let err = Config::load(&path, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "{}:2:12: cert_dir = 1: expected a string in double quotes, found a number",
            path.display()
        )
    );
}

#[test]
fn missing_and_binary_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.conf");
    let err = Config::load(&missing, &Overrides::default()).unwrap_err();
    assert!(matches!(err, ConfigError::Io { .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!(
            "{}: cannot read configuration file",
            missing.display()
        )),
        "{err}"
    );

    let binary = dir.path().join("bin.conf");
    std::fs::write(&binary, b"agent_address = \"\xff\"\n").unwrap();
    let err = Config::load(&binary, &Overrides::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.ends_with("syntax error: not UTF-8 text (invalid byte at offset 17)"),
        "{err}"
    );
}
