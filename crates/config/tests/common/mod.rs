//! Helpers shared by the config integration tests.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::missing_panics_doc
)]

use std::path::Path;

use spiffe_helper_config::{Config, ConfigError, Overrides, Warning};

/// A minimal valid prefix: an agent address and a `cert_dir`.
pub const BASE: &str = "agent_address = \"unix:///run/agent.sock\"\ncert_dir = \"certs\"\n";

pub fn parse_with(
    text: &str,
    overrides: Overrides,
    env: &[(&str, &str)],
) -> Result<(Config, Vec<Warning>), ConfigError> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let lookup = move |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    Config::parse_str(text, Path::new("helper.conf"), &overrides, &lookup)
}

pub fn parse(text: &str) -> Config {
    match parse_with(text, Overrides::default(), &[]) {
        Ok((config, _)) => config,
        Err(e) => panic!("config should parse: {e}\n---\n{text}"),
    }
}

pub fn warnings(text: &str) -> Vec<String> {
    parse_with(text, Overrides::default(), &[])
        .unwrap()
        .1
        .iter()
        .map(ToString::to_string)
        .collect()
}

pub fn error(text: &str) -> String {
    match parse_with(text, Overrides::default(), &[]) {
        Ok(_) => panic!("config should be rejected:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Parsing the effective configuration again gives the same Config.
pub fn assert_round_trip(config: &Config) {
    let text = config.effective();
    let (again, _) = parse_with(&text, Overrides::default(), &[])
        .unwrap_or_else(|e| panic!("effective config does not parse: {e}\n{text}"));
    assert_eq!(&again, config, "effective config changes meaning:\n{text}");
}
