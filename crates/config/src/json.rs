//! JSON configuration files (first non-blank character `{`), read into the same tree as HCL.
//!
//! `serde_json` checks the syntax first (its errors carry line and column); a small scanner
//! then walks the already-valid text to record where each key and value starts, which
//! `serde_json::Value` does not keep.

use crate::tree::{Entry, Kind, Lines, Node, ParseFailure, Pos};

/// Parses a JSON object into entries.
pub(crate) fn from_json(text: &str) -> Result<Vec<Entry>, ParseFailure> {
    let root = json_value(text)?;
    match root.kind {
        Kind::Object(entries) => Ok(entries),
        other => Err(ParseFailure::Syntax(
            root.pos,
            format!(
                "a JSON configuration must be an object, found {}",
                other.describe()
            ),
        )),
    }
}

/// Parses any JSON value (an environment variable's list or object) into a node.
pub(crate) fn json_value(text: &str) -> Result<Node, ParseFailure> {
    if let Err(e) = serde_json::from_str::<serde_json::Value>(text) {
        let msg = e.to_string();
        // serde_json appends " at line L column C"; the position goes in front instead.
        let msg = msg
            .rsplit_once(" at line ")
            .map_or(msg.as_str(), |(head, _)| head)
            .to_owned();
        return Err(ParseFailure::Syntax(
            Pos {
                line: e.line(),
                col: e.column(),
                env: None,
            },
            msg,
        ));
    }
    let lines = Lines::new(text);
    let mut scanner = Scanner {
        text,
        at: 0,
        lines: &lines,
    };
    scanner
        .value()
        .ok_or_else(|| ParseFailure::Syntax(Pos::default(), "invalid JSON".to_owned()))
}

struct Scanner<'a> {
    text: &'a str,
    at: usize,
    lines: &'a Lines<'a>,
}

impl Scanner<'_> {
    fn rest(&self) -> &str {
        self.text.get(self.at..).unwrap_or_default()
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.at += rest.len() - rest.trim_start().len();
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.rest().starts_with(c) {
            self.at += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Option<Node> {
        self.skip_ws();
        let start = self.at;
        let pos = self.lines.pos(start);
        let first = self.rest().chars().next()?;
        let kind = match first {
            '{' => self.object()?,
            '[' => self.list()?,
            '"' => Kind::Str(self.string()?),
            't' | 'f' | 'n' => self.word()?,
            _ => self.number(),
        };
        let raw = self.text.get(start..self.at).unwrap_or_default().to_owned();
        Some(Node { pos, raw, kind })
    }

    fn object(&mut self) -> Option<Kind> {
        self.at += 1;
        let mut entries = Vec::new();
        if self.eat('}') {
            return Some(Kind::Object(entries));
        }
        loop {
            self.skip_ws();
            let key_pos = self.lines.pos(self.at);
            let key = self.string()?;
            if !self.eat(':') {
                return None;
            }
            let value = self.value()?;
            entries.push(Entry {
                key,
                key_pos,
                value,
                block_labels: None,
            });
            if self.eat('}') {
                return Some(Kind::Object(entries));
            }
            if !self.eat(',') {
                return None;
            }
        }
    }

    fn list(&mut self) -> Option<Kind> {
        self.at += 1;
        let mut items = Vec::new();
        if self.eat(']') {
            return Some(Kind::List(items));
        }
        loop {
            items.push(self.value()?);
            if self.eat(']') {
                return Some(Kind::List(items));
            }
            if !self.eat(',') {
                return None;
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        let rest = self.rest();
        if !rest.starts_with('"') {
            return None;
        }
        let mut escaped = false;
        let mut end = None;
        for (i, c) in rest.char_indices().skip(1) {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i + 1);
                    break;
                }
                _ => {}
            }
        }
        let end = end?;
        let literal = rest.get(..end)?;
        let value = serde_json::from_str::<String>(literal).ok()?;
        self.at += end;
        Some(value)
    }

    fn word(&mut self) -> Option<Kind> {
        for (word, kind) in [
            ("true", Kind::Bool(true)),
            ("false", Kind::Bool(false)),
            ("null", Kind::Null),
        ] {
            if self.rest().starts_with(word) {
                self.at += word.len();
                return Some(kind);
            }
        }
        None
    }

    fn number(&mut self) -> Kind {
        let rest = self.rest();
        let len = rest
            .find(|c: char| !matches!(c, '0'..='9' | '-' | '+' | '.' | 'e' | 'E'))
            .unwrap_or(rest.len());
        self.at += len.max(1).min(rest.len());
        Kind::Number
    }
}
