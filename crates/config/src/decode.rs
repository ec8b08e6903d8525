//! Stage one: the value tree becomes [`Fields`] of typed, positioned, optional values, one
//! block at a time against that block's key table.
//!
//! Types are strict (`cmd = 123` is an error, not the string "123"), keys are matched
//! case-insensitively as upstream's HCL v1 decoder did, unknown keys are errors
//! (docs/configuration.md, "Keys" and "Accepted syntax").

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::error::{ConfigError, Location};
use crate::keys::{self, HealthKey, JwtKey, Shape, Spec, Table, Unknown};
use crate::raw::{Fields, Raw, Val, Value};
use crate::tree::{Entry, Kind, Node, Pos};
use crate::values::{FileMode, LogFormat, LogLevel, parse_duration};

/// Decodes entries into a [`Raw`], reporting every problem of every entry.
pub(crate) struct Decoder<'a> {
    pub file: &'a Path,
}

impl Decoder<'_> {
    pub fn loc(&self, pos: Pos) -> Location {
        if let Some(key) = pos.env {
            return Location::file(format!(
                "environment variable {}",
                crate::env::var_name(key)
            ));
        }
        Location {
            file: self.file.to_path_buf(),
            line: u32::try_from(pos.line).ok().filter(|l| *l > 0),
            column: u32::try_from(pos.col)
                .ok()
                .filter(|c| *c > 0 && pos.line > 0),
        }
    }

    pub fn decode(&self, entries: &[Entry]) -> Result<Raw, ConfigError> {
        self.block(entries, "", Pos::default())
    }

    /// Decodes one block's entries against its key table; `prefix` names the block in
    /// messages (`health_checks.`, `jwt_svids[1].`).
    fn block<K: Table>(
        &self,
        entries: &[Entry],
        prefix: &str,
        pos: Pos,
    ) -> Result<Fields<K>, ConfigError> {
        let mut out = Fields::new(pos);
        let mut seen = HashMap::new();
        // Every entry is decoded, so that a file with several mistakes reports them all.
        let mut errors = Vec::new();
        for entry in entries {
            if let Err(err) = self.entry(&mut out, &mut seen, entry, prefix) {
                errors.push(err);
            }
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(ConfigError::from_many(errors))
        }
    }

    /// Decodes one entry of a block into `out`.
    fn entry<K: Table>(
        &self,
        out: &mut Fields<K>,
        seen: &mut HashMap<&'static str, Pos>,
        entry: &Entry,
        prefix: &str,
    ) -> Result<(), ConfigError> {
        let spec = self.known_key::<K>(entry, prefix)?;
        // Repeated `jwt_svids "x" { }` blocks are the HCL v1 way to write a list.
        let repeatable = spec.shape == Shape::JwtSvids && entry.block_labels.is_some();
        if !repeatable {
            self.no_duplicate(seen, spec.name, entry, prefix)?;
        }
        let name = format!("{prefix}{}", spec.name);
        let first_jwt = out.jwt_svid_count(spec.key);
        let value = self.value(spec.shape, &name, entry, first_jwt)?;
        out.merge(spec.key, value);
        Ok(())
    }

    /// Decodes one value as its key's shape says; `name` is the key in messages.
    fn value(
        &self,
        shape: Shape,
        name: &str,
        entry: &Entry,
        first_jwt: usize,
    ) -> Result<Value, ConfigError> {
        Ok(match shape {
            Shape::Text(_) => Value::Text(self.string(name, entry)?),
            Shape::Bool(_) => Value::Bool(self.boolean(name, entry)?),
            Shape::Mode(_) => Value::Mode(self.mode(name, entry)?),
            Shape::Duration(_) => Value::Duration(self.duration(name, entry)?),
            Shape::Port(_) => Value::Port(self.port(name, entry)?),
            Shape::Level(_) => Value::Level(self.level(name, entry)?),
            Shape::Format(_) => Value::Format(self.format(name, entry)?),
            Shape::Strings => Value::Strings(self.string_list(name, &entry.value)?),
            Shape::JwtSvids => Value::JwtSvids(self.jwt_svids(name, entry, first_jwt)?),
            Shape::Health => Value::Health(self.health(name, entry)?),
        })
    }

    /// Maps a written key to its row, or explains why it is not a key of this block.
    fn known_key<K: Table>(
        &self,
        entry: &Entry,
        prefix: &str,
    ) -> Result<&'static Spec<K>, ConfigError> {
        let lower = entry.key.to_ascii_lowercase();
        if let Some(spec) = K::TABLE.iter().find(|spec| spec.name == lower) {
            return Ok(spec);
        }
        let location = self.loc(entry.key_pos);
        let key = format!("{prefix}{}", entry.key);
        Err(match keys::classify(&entry.key, K::NAMES) {
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

    fn wrong_type(&self, key: &str, node: &Node, expected: &'static str) -> ConfigError {
        ConfigError::WrongType {
            location: self.loc(node.pos),
            key: key.to_owned(),
            value: shorten(&node.raw),
            expected,
            found: node.kind.describe(),
        }
    }

    fn invalid(&self, key: &str, node: &Node, reason: &str) -> ConfigError {
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

    /// `0644`, `644` and `"0644"` all mean 0o644: upstream files never mean decimal here
    /// (docs/configuration.md, "Output files").
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

    fn duration(&self, key: &str, entry: &Entry) -> Result<Val<Duration>, ConfigError> {
        const WHY: &str =
            "not a duration (for example \"30s\", \"2m\", \"1m30s\", or whole seconds such as 30)";
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

    fn port(&self, key: &str, entry: &Entry) -> Result<Val<u16>, ConfigError> {
        let port = self
            .integer(key, entry)?
            .and_then(|n| u16::try_from(n).ok())
            .filter(|p| *p > 0)
            .ok_or_else(|| self.invalid(key, &entry.value, "not a TCP port (1-65535)"))?;
        Ok(Self::val(entry, port))
    }

    fn level(&self, key: &str, entry: &Entry) -> Result<Val<LogLevel>, ConfigError> {
        let text = self.string(key, entry)?;
        let level = text.value.parse::<LogLevel>().map_err(|()| {
            let why = "unknown log level (trace, debug, info, warn, error)";
            self.invalid(key, &entry.value, why)
        })?;
        Ok(text.with(level))
    }

    fn format(&self, key: &str, entry: &Entry) -> Result<Val<LogFormat>, ConfigError> {
        let text = self.string(key, entry)?;
        let format = match text.value.to_ascii_lowercase().as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            _ => return Err(self.invalid(key, &entry.value, "unknown log format (text or json)")),
        };
        Ok(text.with(format))
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

    /// A list of objects, or one object (a block); entries are numbered from `first` on.
    fn jwt_svids(
        &self,
        key: &str,
        entry: &Entry,
        first: usize,
    ) -> Result<Vec<Fields<JwtKey>>, ConfigError> {
        let objects: Vec<&Node> = match &entry.value.kind {
            Kind::List(items) => items.iter().collect(),
            Kind::Object(_) => vec![&entry.value],
            _ => return Err(self.wrong_type(
                key,
                &entry.value,
                "a list of objects ([{ jwt_audience = \"...\", jwt_svid_file_name = \"...\" }])",
            )),
        };
        let numbered = objects.into_iter().enumerate();
        let (list, errors): (Vec<_>, Vec<_>) = numbered
            .map(|(i, node)| {
                let name = format!("{key}[{}]", first + i);
                let Kind::Object(entries) = &node.kind else {
                    return Err(self.wrong_type(&name, node, "an object"));
                };
                self.block(entries, &format!("{name}."), node.pos)
            })
            .partition(Result::is_ok);
        if errors.is_empty() {
            Ok(list.into_iter().filter_map(Result::ok).collect())
        } else {
            Err(ConfigError::from_many(
                errors.into_iter().filter_map(Result::err).collect(),
            ))
        }
    }

    fn health(&self, key: &str, entry: &Entry) -> Result<Fields<HealthKey>, ConfigError> {
        let Kind::Object(entries) = &entry.value.kind else {
            let expected = "a block (health_checks { ... })";
            return Err(self.wrong_type(key, &entry.value, expected));
        };
        self.block(entries, &format!("{key}."), entry.key_pos)
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
