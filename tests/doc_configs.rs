//! Every configuration shown to users must be one the binary accepts: each `hcl` code block in
//! README.md, docs/*.md and deploy/**/*.md is written to a file and checked with `--validate`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    for dir in ["docs", "deploy"] {
        let mut stack = vec![root().join(dir)];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|ext| ext == "md") {
                    files.push(path);
                }
            }
        }
    }
    files
}

/// (first line of the block, block text) for every `hcl` code fence.
fn hcl_blocks(file: &Path) -> Vec<(usize, String)> {
    hcl_blocks_in(&std::fs::read_to_string(file).unwrap())
}

/// (first line of the block, block text) for every `hcl` code fence in `text`.
fn hcl_blocks_in(text: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (index, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim_start().starts_with("```hcl") => {
                current = Some((index + 2, String::new()));
            }
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(current.take()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn every_documented_config_validates() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut failures = Vec::new();
    for file in markdown_files() {
        for (line, block) in hcl_blocks(&file) {
            let conf = dir.path().join(format!("block{checked}.conf"));
            // Fragments that show one feature (a health_checks block, say) get the one key a
            // whole file needs; blocks that are whole files are checked exactly as written.
            let text = if block.contains("cert_dir") || block.trim_start().starts_with('{') {
                block
            } else {
                format!("cert_dir = \"/tmp/doc-fragment\"\n{block}")
            };
            std::fs::write(&conf, &text).unwrap();
            checked += 1;
            // Blocks that omit agent_address rely on the environment, as in a pod.
            let output = Command::new(env!("CARGO_BIN_EXE_spiffe-helper-rust"))
                .arg("--validate")
                .arg("-config")
                .arg(&conf)
                .env("SPIFFE_ENDPOINT_SOCKET", "unix:///run/spire/agent.sock")
                .env_remove("SPIRE_AGENT_ADDRESS")
                .output()
                .unwrap();
            if !output.status.success() {
                failures.push(format!(
                    "{}:{line}: {}",
                    file.strip_prefix(root()).unwrap_or(&file).display(),
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
        }
    }
    assert!(
        checked >= 5,
        "expected the README and docs to show configs, found {checked}"
    );
    assert!(
        failures.is_empty(),
        "documented configs that do not validate:\n{}",
        failures.join("\n")
    );
}

/// README.md shows "the upstream example, unchanged": the block after that sentence is, byte
/// for byte, the fixture `e2e::oneshot::readme_example_config_works_as_written` runs (itself
/// the example of the upstream v0.11.0 README).
#[test]
fn readme_upstream_example_is_the_file_the_oneshot_test_runs() {
    let fixture = include_str!("fixtures/upstream-readme-helper.conf");
    let readme = root().join("README.md");
    let text = std::fs::read_to_string(&readme).unwrap();
    let (_, after) = text
        .split_once("The upstream README's example (v0.11.0), unchanged")
        .expect("README.md no longer introduces the upstream example");
    let (line, block) = hcl_blocks_in(after)
        .into_iter()
        .next()
        .expect("no hcl block after the upstream example's introduction");
    assert_eq!(
        block, fixture,
        "README.md's upstream example (block at line {line} after the introduction) differs from tests/fixtures/upstream-readme-helper.conf"
    );
}
