//! Keeps `docs/configuration.md` true to the code: every key the parser knows is documented,
//! every key the document lists is known, and every default the document states is the one
//! `effective()` prints for a minimal file.

use std::collections::BTreeMap;
use std::path::Path;

use crate::keys::{HealthKey, JwtKey, Key, Shape, Table};
use crate::{Config, Overrides};

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    std::fs::read_to_string(path).expect("docs/configuration.md exists")
}

/// Rows of the key tables: `| `key` | type | default | notes |` → (key, default cell).
fn documented_rows(doc: &str) -> BTreeMap<String, String> {
    let types = ["string", "bool", "octal", "duration", "list of objects"];
    doc.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() < 5 || !types.contains(&cells[2]) {
                return None;
            }
            let key = cells[1].strip_prefix('`')?.strip_suffix('`')?;
            Some((key.to_owned(), cells[3].to_owned()))
        })
        .collect()
}

/// `key = value` lines of the effective configuration of a minimal file.
fn effective_defaults() -> BTreeMap<String, String> {
    let (config, _) = Config::parse_str(
        "agent_address = \"unix:///run/agent.sock\"\ncert_dir = \"/certs\"\n",
        Path::new("helper.conf"),
        &Overrides::default(),
        &|_| None,
    )
    .expect("minimal config parses");
    config
        .effective()
        .lines()
        .filter_map(|line| line.split_once(" = "))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

fn unquote(cell: &str) -> &str {
    cell.trim_matches('`').trim_matches('"')
}

#[test]
fn every_known_key_is_documented() {
    let doc = doc();
    let names = (Key::NAMES.iter())
        .chain(JwtKey::NAMES)
        .chain(HealthKey::NAMES);
    for key in names {
        assert!(
            doc.contains(&format!("`{key}`")) || doc.contains(&format!("{key} ")),
            "docs/configuration.md does not document `{key}`"
        );
    }
    let rows = documented_rows(&doc);
    // The health block is documented as an example block, not as a table row.
    for spec in Key::TABLE.iter().filter(|spec| spec.shape != Shape::Health) {
        let key = spec.name;
        assert!(rows.contains_key(key), "no table row for `{key}`");
    }
}

#[test]
fn every_documented_key_is_known() {
    for key in documented_rows(&doc()).keys() {
        assert!(
            Key::NAMES.contains(&key.as_str()),
            "docs/configuration.md documents `{key}`, which the parser does not accept"
        );
    }
}

#[test]
fn documented_defaults_match_the_effective_configuration() {
    let effective = effective_defaults();
    let mut checked = 0;
    for (key, default) in documented_rows(&doc()) {
        // "—" means no default; rows that describe a fallback in words are not literal values.
        if default == "—" || default.contains(' ') {
            continue;
        }
        let Some(actual) = effective.get(&key) else {
            continue;
        };
        assert_eq!(
            unquote(&default),
            unquote(actual),
            "docs/configuration.md says `{key}` defaults to {default}, the code uses {actual}"
        );
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} defaults compared");
}
