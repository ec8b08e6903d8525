//! Every top-level key settable as an environment variable `SPIFFE_HLP_<KEY>` (the key in upper
//! case), as upstream's pull request #335 does (docs/configuration.md, "Formats and the
//! environment"). A variable overrides the file's value for its key; with no file at all the
//! variables are the whole configuration.
//!
//! Values are typed by the key: strings as given; booleans `true`/`false` (and Go's
//! `strconv.ParseBool` spellings); modes, ports and whole-second durations as numbers when all
//! digits (`"30s"` stays a string, as in a file); `jwt_svids`, `jwt_extra_audiences`-style lists
//! and `health_checks` as JSON (`SPIFFE_HLP_JWT_SVIDS='[{"jwt_audience":"a",...}]'`). The
//! `health_checks` fields can also be set one by one (`SPIFFE_HLP_HEALTH_CHECKS_BIND_PORT`).
//! Every value is marked with its variable, so an error names the variable instead of a line.

use crate::json::json_value;
use crate::keys::{HealthKey, Key, Shape, Table};
use crate::tree::{Entry, Kind, Node, ParseFailure, Pos};

/// The prefix of every variable.
pub const PREFIX: &str = "SPIFFE_HLP_";

/// `health_checks` fields set one by one: the field and its variable's suffix (static, because
/// positions carry it).
const HEALTH_FIELDS: [(HealthKey, &str); 5] = [
    (HealthKey::ListenerEnabled, "health_checks_listener_enabled"),
    (HealthKey::BindAddress, "health_checks_bind_address"),
    (HealthKey::BindPort, "health_checks_bind_port"),
    (HealthKey::LivenessPath, "health_checks_liveness_path"),
    (HealthKey::ReadinessPath, "health_checks_readiness_path"),
];

/// `SPIFFE_HLP_CERT_DIR` for `cert_dir`.
pub(crate) fn var_name(key: &str) -> String {
    format!("{PREFIX}{}", key.to_ascii_uppercase())
}

/// Whether any variable of a known key is set (non-empty).
pub(crate) fn any_set(env: &dyn Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| env(&var_name(name)).is_some_and(|v| !v.is_empty());
    Key::TABLE.iter().any(|spec| set(spec.name)) || HEALTH_FIELDS.iter().any(|(_, name)| set(name))
}

/// The entries the environment sets, each marked with its variable.
pub(crate) fn entries(env: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Entry>, ParseFailure> {
    let mut out = Vec::new();
    for spec in Key::TABLE {
        let Some(value) = env(&var_name(spec.name)).filter(|v| !v.is_empty()) else {
            continue;
        };
        let node = typed(spec.name, spec.shape, &value)?;
        out.push(entry(spec.name, spec.name, node));
    }
    let fields: Vec<Entry> = HEALTH_FIELDS
        .iter()
        .filter_map(|(key, var)| {
            let value = env(&var_name(var)).filter(|v| !v.is_empty())?;
            Some(typed(var, key.spec().shape, &value).map(|node| entry(key.name(), var, node)))
        })
        .collect::<Result<_, _>>()?;
    if !fields.is_empty() {
        let block = out.iter_mut().find(|e| e.key == Key::HealthChecks.name());
        match block {
            Some(Entry {
                value:
                    Node {
                        kind: Kind::Object(existing),
                        ..
                    },
                ..
            }) => {
                for field in fields {
                    existing.retain(|e| !e.key.eq_ignore_ascii_case(&field.key));
                    existing.push(field);
                }
            }
            Some(_) => {}
            None => {
                let name = Key::HealthChecks.name();
                let node = Node {
                    pos: marked(name),
                    raw: "{ ... }".into(),
                    kind: Kind::Object(fields),
                };
                out.push(entry(name, name, node));
            }
        }
    }
    Ok(out)
}

fn entry(key: &str, var: &'static str, value: Node) -> Entry {
    Entry {
        key: key.to_owned(),
        key_pos: marked(var),
        value,
        block_labels: None,
    }
}

fn marked(var: &'static str) -> Pos {
    Pos {
        line: 0,
        col: 0,
        env: Some(var),
    }
}

/// The node a variable's text stands for, given the key's shape.
fn typed(var: &'static str, shape: Shape, value: &str) -> Result<Node, ParseFailure> {
    let scalar = |kind| Node {
        pos: marked(var),
        raw: value.to_owned(),
        kind,
    };
    let node = match shape {
        Shape::Bool(_) => scalar(match value {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => Kind::Bool(true),
            "0" | "f" | "F" | "false" | "FALSE" | "False" => Kind::Bool(false),
            other => Kind::Str(other.to_owned()),
        }),
        Shape::Mode(_) | Shape::Duration(_) | Shape::Port(_)
            if value.bytes().all(|b| b.is_ascii_digit()) =>
        {
            scalar(Kind::Number)
        }
        Shape::Strings | Shape::JwtSvids | Shape::Health => {
            let mut node = json_value(value).map_err(|failure| match failure {
                ParseFailure::Syntax(pos, message) => ParseFailure::Syntax(
                    marked(var),
                    format!("not valid JSON (column {}): {message}", pos.col),
                ),
                other @ ParseFailure::Duplicate { .. } => other,
            })?;
            mark(&mut node, var);
            node
        }
        _ => scalar(Kind::Str(value.to_owned())),
    };
    Ok(node)
}

/// Marks a parsed JSON value and everything in it with the variable it came from.
fn mark(node: &mut Node, var: &'static str) {
    node.pos = marked(var);
    match &mut node.kind {
        Kind::List(items) => items.iter_mut().for_each(|n| mark(n, var)),
        Kind::Object(entries) => {
            for e in entries {
                e.key_pos = marked(var);
                mark(&mut e.value, var);
            }
        }
        _ => {}
    }
}
