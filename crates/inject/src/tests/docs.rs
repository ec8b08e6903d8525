//! Keeps docs/injection.md true to the code: every annotation the injector reads has its row
//! in the table, every row names an annotation the injector reads, and the example of an
//! injected pod is what the injector makes of the example above it.

use std::path::Path;

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

use crate::{ANNOTATIONS, InjectorSettings, Mutation, PREFIX, mutate};

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/injection.md");
    std::fs::read_to_string(path).expect("docs/injection.md exists")
}

/// The first cell of every table row that starts with an annotation key.
fn documented() -> Vec<String> {
    doc()
        .lines()
        .filter_map(|line| {
            let cell = line.strip_prefix("| `")?.split('`').next()?;
            cell.starts_with(PREFIX).then(|| cell.to_owned())
        })
        .collect()
}

#[test]
fn every_annotation_has_a_row_in_docs_injection_md() {
    let rows = documented();
    for key in ANNOTATIONS {
        assert!(
            rows.iter().any(|r| r == key),
            "docs/injection.md has no row for `{key}`"
        );
    }
}

#[test]
fn every_documented_annotation_is_one_the_injector_reads() {
    for row in documented() {
        assert!(
            ANNOTATIONS.contains(&row.as_str()),
            "docs/injection.md documents `{row}`, which the injector does not know"
        );
    }
}

/// The `yaml` code blocks of the page, in order.
fn yaml_blocks() -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc().lines() {
        match &mut current {
            None if line.trim_start() == "```yaml" => current = Some(String::new()),
            Some(block) if line.trim_start() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

fn to_json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::String(s) | Yaml::Real(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(items) => items.iter().map(to_json).collect(),
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.as_str().expect("string keys").to_owned(), to_json(v)))
                .collect(),
        ),
        Yaml::Null | Yaml::Alias(_) | Yaml::BadValue => Value::Null,
    }
}

fn parse(block: &str) -> Value {
    let docs = YamlLoader::load_from_str(block).expect("valid YAML");
    to_json(docs.first().expect("one document"))
}

#[test]
fn the_injected_pod_in_docs_injection_md_is_what_the_injector_makes() {
    let blocks = yaml_blocks();
    assert_eq!(
        blocks.len(),
        4,
        "a pod as written and as injected, a settings file, the server's RBAC rules"
    );
    let (before, expected) = (parse(&blocks[0]), parse(&blocks[1]));
    let pod = serde_json::from_value(before.clone()).expect("the example is a pod");
    let mutation = mutate(&pod, "demo", &InjectorSettings::default()).expect("injected");
    let Mutation::Patch { patch, warnings } = mutation else {
        panic!("{mutation:?}")
    };
    assert!(warnings.is_empty(), "{warnings:?}");
    let mut after = before;
    json_patch::patch(&mut after, &patch).expect("the patch applies");
    assert_eq!(
        after, expected,
        "docs/injection.md's injected pod is out of date"
    );
}

#[test]
fn the_settings_example_in_docs_injection_md_is_valid_settings() {
    let blocks = yaml_blocks();
    let settings: InjectorSettings =
        serde_json::from_value(parse(&blocks[2])).expect("the example is valid settings");
    assert_eq!(settings.agent_socket, crate::AgentSocket::Csi);
    assert_eq!(
        settings.protected_namespaces,
        ["kube-system", "spire", "spire-system"]
    );
}
