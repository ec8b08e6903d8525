//! Stage one: the value tree becomes a [`Raw`] struct of typed, positioned, optional values.
//!
//! Types are strict (`cmd = 123` is an error, not the string "123"), keys are matched
//! case-insensitively as upstream's HCL v1 decoder did, unknown keys are errors.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::error::{ConfigError, Location};
use crate::keys::{self, Unknown};
use crate::tree::{Entry, Kind, Node, Pos};
use crate::values::{FileMode, LogFormat, LogLevel, parse_duration};

/// A value with where it was written.
#[derive(Clone, Debug)]
pub(crate) struct Val<T> {
    pub value: T,
    /// Position of the key (for "this key conflicts with..." messages).
    pub key_pos: Pos,
    /// Position of the value.
    pub pos: Pos,
    /// The value as written.
    pub raw: String,
}

/// One `jwt_svids` entry as written.
#[derive(Clone, Debug, Default)]
pub(crate) struct RawJwt {
    pub pos: Pos,
    pub audience: Option<Val<String>>,
    pub extra_audiences: Vec<String>,
    pub file_name: Option<Val<String>>,
}

/// The `health_checks` block as written.
#[derive(Clone, Debug, Default)]
pub(crate) struct RawHealth {
    pub pos: Pos,
    pub listener_enabled: Option<Val<bool>>,
    pub bind_port: Option<Val<u16>>,
    pub liveness_path: Option<Val<String>>,
    pub readiness_path: Option<Val<String>>,
}

/// Every top-level key, typed but not yet defaulted or cross-checked.
#[derive(Clone, Debug, Default)]
pub(crate) struct Raw {
    pub strings: HashMap<&'static str, Val<String>>,
    pub bools: HashMap<&'static str, Val<bool>>,
    pub modes: HashMap<&'static str, Val<FileMode>>,
    pub jwt_svids: Vec<RawJwt>,
    pub health: Option<RawHealth>,
    pub startup_timeout: Option<Val<Duration>>,
    pub log_level: Option<Val<LogLevel>>,
    pub log_format: Option<Val<LogFormat>>,
}

/// Decodes entries into a [`Raw`], reporting the first problem.
pub(crate) struct Decoder<'a> {
    pub file: &'a Path,
}

impl Decoder<'_> {
    pub fn loc(&self, pos: Pos) -> Location {
        Location {
            file: self.file.to_path_buf(),
            line: u32::try_from(pos.line).ok().filter(|l| *l > 0),
            column: u32::try_from(pos.col)
                .ok()
                .filter(|c| *c > 0 && pos.line > 0),
        }
    }

    pub fn decode(&self, entries: &[Entry]) -> Result<Raw, ConfigError> {
        let mut raw = Raw::default();
        let mut seen: HashMap<&'static str, Pos> = HashMap::new();
        for entry in entries {
            let key = self.known_key(entry, "", keys::TOP_KEYS)?;
            // Repeated `jwt_svids "x" { }` blocks are the HCL v1 way to write a list.
            let repeatable = key == "jwt_svids" && entry.block_labels.is_some();
            if !repeatable {
                self.no_duplicate(&mut seen, key, entry, "")?;
            }
            self.top_entry(&mut raw, key, entry)?;
        }
        Ok(raw)
    }

    fn top_entry(
        &self,
        raw: &mut Raw,
        key: &'static str,
        entry: &Entry,
    ) -> Result<(), ConfigError> {
        let node = &entry.value;
        match key {
            "daemon_mode"
            | "add_intermediates_to_bundle"
            | "include_federated_domains"
            | "omit_expired" => {
                raw.bools.insert(key, self.boolean(key, entry)?);
            }
            "cert_file_mode" | "key_file_mode" | "jwt_bundle_file_mode" | "jwt_svid_file_mode" => {
                raw.modes.insert(key, self.mode(key, entry)?);
            }
            "jwt_svids" => self.jwt_svids(raw, entry)?,
            "health_checks" => raw.health = Some(self.health(entry)?),
            "startup_timeout" => raw.startup_timeout = Some(self.timeout(entry)?),
            "log_level" => {
                let text = self.string(key, entry)?;
                let level = text.value.parse::<LogLevel>().map_err(|()| {
                    self.invalid(
                        key,
                        node,
                        "unknown log level (trace, debug, info, warn, error)",
                    )
                })?;
                raw.log_level = Some(with(text, level));
            }
            "log_format" => {
                let text = self.string(key, entry)?;
                let format = match text.value.to_ascii_lowercase().as_str() {
                    "text" => LogFormat::Text,
                    "json" => LogFormat::Json,
                    _ => return Err(self.invalid(key, node, "unknown log format (text or json)")),
                };
                raw.log_format = Some(with(text, format));
            }
            _ => {
                raw.strings.insert(key, self.string(key, entry)?);
            }
        }
        Ok(())
    }

    /// Maps a written key to its canonical name, or explains why it is not one.
    fn known_key(
        &self,
        entry: &Entry,
        prefix: &str,
        known: &[&'static str],
    ) -> Result<&'static str, ConfigError> {
        let lower = entry.key.to_ascii_lowercase();
        if let Some(key) = known.iter().find(|k| **k == lower) {
            return Ok(key);
        }
        let location = self.loc(entry.key_pos);
        let key = format!("{prefix}{}", entry.key);
        Err(match keys::classify(&entry.key, known) {
            Unknown::Removed(replacement) => ConfigError::RemovedKey {
                location,
                key,
                replacement,
            },
            Unknown::Typo(suggestion) => ConfigError::UnknownKey {
                location,
                key,
                suggestion: suggestion.map(|s| format!("{prefix}{s}")),
            },
        })
    }

    fn wrong_type(&self, key: &str, node: &Node, expected: &'static str) -> ConfigError {
        ConfigError::WrongType {
            location: self.loc(node.pos),
            key: key.to_owned(),
            value: shorten(&node.raw),
            expected,
            found: node.kind.describe(),
        }
    }

    pub fn invalid(&self, key: &str, node: &Node, reason: &str) -> ConfigError {
        ConfigError::InvalidValue {
            location: self.loc(node.pos),
            key: key.to_owned(),
            value: shorten(&node.raw),
            reason: reason.to_owned(),
        }
    }

    fn val<T>(entry: &Entry, value: T) -> Val<T> {
        Val {
            value,
            key_pos: entry.key_pos,
            pos: entry.value.pos,
            raw: entry.value.raw.clone(),
        }
    }

    fn string(&self, key: &str, entry: &Entry) -> Result<Val<String>, ConfigError> {
        match &entry.value.kind {
            Kind::Str(s) => Ok(Self::val(entry, s.clone())),
            _ => Err(self.wrong_type(key, &entry.value, "a string in double quotes")),
        }
    }

    fn boolean(&self, key: &str, entry: &Entry) -> Result<Val<bool>, ConfigError> {
        match entry.value.kind {
            Kind::Bool(b) => Ok(Self::val(entry, b)),
            _ => Err(self.wrong_type(key, &entry.value, "true or false (without quotes)")),
        }
    }

    /// `0644`, `644` and `"0644"` all mean 0o644 (SPEC §2.2).
    fn mode(&self, key: &str, entry: &Entry) -> Result<Val<FileMode>, ConfigError> {
        let text = match &entry.value.kind {
            Kind::Number => entry.value.raw.as_str(),
            Kind::Str(s) => s.as_str(),
            _ => return Err(self.wrong_type(key, &entry.value, "an octal file mode such as 0644")),
        };
        let mode =
            FileMode::parse_octal(text).map_err(|why| self.invalid(key, &entry.value, why))?;
        Ok(Self::val(entry, mode))
    }

    /// An integer written as a number, or as a string of digits (HCL v1 accepted both).
    fn integer(&self, key: &str, entry: &Entry) -> Result<Option<i64>, ConfigError> {
        match &entry.value.kind {
            Kind::Number => Ok(entry.value.raw.trim().parse().ok()),
            Kind::Str(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(s.parse().ok())
            }
            _ => Err(self.wrong_type(key, &entry.value, "a whole number")),
        }
    }

    fn timeout(&self, entry: &Entry) -> Result<Val<Duration>, ConfigError> {
        const WHY: &str =
            "not a duration (for example \"30s\", \"2m\", \"1m30s\", or whole seconds such as 30)";
        let key = "startup_timeout";
        let duration = match &entry.value.kind {
            Kind::Str(s) if !s.bytes().all(|b| b.is_ascii_digit()) => parse_duration(s),
            _ => self
                .integer(key, entry)?
                .and_then(|n| u64::try_from(n).ok())
                .map(Duration::from_secs),
        }
        .ok_or_else(|| self.invalid(key, &entry.value, WHY))?;
        if duration.is_zero() {
            return Err(self.invalid(key, &entry.value, "must be greater than zero"));
        }
        Ok(Self::val(entry, duration))
    }

    fn jwt_svids(&self, raw: &mut Raw, entry: &Entry) -> Result<(), ConfigError> {
        let objects: Vec<&Node> = match &entry.value.kind {
            Kind::List(items) => items.iter().collect(),
            Kind::Object(_) => vec![&entry.value],
            _ => return Err(self.wrong_type(
                "jwt_svids",
                &entry.value,
                "a list of objects ([{ jwt_audience = \"...\", jwt_svid_file_name = \"...\" }])",
            )),
        };
        for node in objects {
            let index = raw.jwt_svids.len();
            raw.jwt_svids.push(self.jwt_entry(index, node)?);
        }
        Ok(())
    }

    fn jwt_entry(&self, index: usize, node: &Node) -> Result<RawJwt, ConfigError> {
        let prefix = format!("jwt_svids[{index}].");
        let Kind::Object(entries) = &node.kind else {
            return Err(self.wrong_type(&format!("jwt_svids[{index}]"), node, "an object"));
        };
        let mut out = RawJwt {
            pos: node.pos,
            ..RawJwt::default()
        };
        let mut seen = HashMap::new();
        for entry in entries {
            let key = self.known_key(entry, &prefix, keys::JWT_KEYS)?;
            self.no_duplicate(&mut seen, key, entry, &prefix)?;
            let name = format!("{prefix}{key}");
            match key {
                "jwt_audience" => out.audience = Some(self.string(&name, entry)?),
                "jwt_svid_file_name" => out.file_name = Some(self.string(&name, entry)?),
                _ => out.extra_audiences = self.string_list(&name, &entry.value)?,
            }
        }
        Ok(out)
    }

    fn string_list(&self, key: &str, node: &Node) -> Result<Vec<String>, ConfigError> {
        const EXPECTED: &str = "a list of strings ([\"aud1\", \"aud2\"])";
        let Kind::List(items) = &node.kind else {
            return Err(self.wrong_type(key, node, EXPECTED));
        };
        items
            .iter()
            .map(|item| match &item.kind {
                Kind::Str(s) => Ok(s.clone()),
                _ => Err(self.wrong_type(key, item, EXPECTED)),
            })
            .collect()
    }

    fn health(&self, entry: &Entry) -> Result<RawHealth, ConfigError> {
        let prefix = "health_checks.";
        let Kind::Object(entries) = &entry.value.kind else {
            return Err(self.wrong_type(
                "health_checks",
                &entry.value,
                "a block (health_checks { ... })",
            ));
        };
        let mut out = RawHealth {
            pos: entry.key_pos,
            ..RawHealth::default()
        };
        let mut seen = HashMap::new();
        for inner in entries {
            let key = self.known_key(inner, prefix, keys::HEALTH_KEYS)?;
            self.no_duplicate(&mut seen, key, inner, prefix)?;
            let name = format!("{prefix}{key}");
            match key {
                "listener_enabled" => out.listener_enabled = Some(self.boolean(&name, inner)?),
                "bind_port" => {
                    let port = self
                        .integer(&name, inner)?
                        .and_then(|n| u16::try_from(n).ok())
                        .filter(|p| *p > 0)
                        .ok_or_else(|| {
                            self.invalid(&name, &inner.value, "not a TCP port (1-65535)")
                        })?;
                    out.bind_port = Some(Self::val(inner, port));
                }
                "liveness_path" => out.liveness_path = Some(self.string(&name, inner)?),
                _ => out.readiness_path = Some(self.string(&name, inner)?),
            }
        }
        Ok(out)
    }

    fn no_duplicate(
        &self,
        seen: &mut HashMap<&'static str, Pos>,
        key: &'static str,
        entry: &Entry,
        prefix: &str,
    ) -> Result<(), ConfigError> {
        match seen.insert(key, entry.key_pos) {
            Some(first) => Err(ConfigError::Duplicate {
                location: self.loc(entry.key_pos),
                key: format!("{prefix}{key}"),
                first_line: first.line,
            }),
            None => Ok(()),
        }
    }
}

fn with<T, U>(v: Val<T>, value: U) -> Val<U> {
    Val {
        value,
        key_pos: v.key_pos,
        pos: v.pos,
        raw: v.raw,
    }
}

/// Values are quoted back in messages; keep a long heredoc from flooding the terminal.
fn shorten(raw: &str) -> String {
    let first_line = raw.lines().next().unwrap_or_default();
    if first_line.chars().count() > 60 || first_line.len() < raw.trim_end().len() {
        let head: String = first_line.chars().take(57).collect();
        format!("{head}...")
    } else {
        first_line.to_owned()
    }
}
