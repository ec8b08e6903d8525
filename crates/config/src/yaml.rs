//! YAML configuration files (`-config-format yaml`, or a `.yaml`/`.yml` name), read into the same
//! tree as HCL and JSON so that typing, validation and messages are shared
//! (docs/configuration.md, "Formats and the environment").
//!
//! `yaml-rust2`'s event parser gives every node its position. Scalars are typed by the YAML
//! 1.2 core schema: plain `true`/`false` are booleans, plain integers and floats are numbers
//! (their text is kept, so `0644` stays `0644` for a mode), plain `null`, `~` or nothing is null,
//! everything else (and every quoted scalar) is a string. A key given twice is refused by the
//! decoder, as in the other formats; aliases (`*name`) are refused here: a value must be written
//! where it is used.

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use crate::tree::{Entry, Kind, Lines, Node, ParseFailure, Pos};

/// Parses a YAML mapping into entries; an empty document is an empty configuration.
pub(crate) fn from_yaml(text: &str) -> Result<Vec<Entry>, ParseFailure> {
    let lines = Lines::new(text);
    let mut reader = Reader {
        parser: Parser::new_from_str(text),
        lines: &lines,
    };
    let mut root = None;
    loop {
        let (event, marker) = reader.next()?;
        match event {
            Event::StreamStart | Event::DocumentStart | Event::DocumentEnd | Event::Nothing => {}
            Event::StreamEnd => break,
            _ if root.is_some() => {
                return Err(ParseFailure::Syntax(
                    reader.pos(marker),
                    "a YAML configuration holds one document".into(),
                ));
            }
            event => root = Some(reader.node(event, marker)?),
        }
    }
    let Some(root) = root else {
        return Ok(Vec::new());
    };
    match root.kind {
        Kind::Object(entries) => Ok(entries),
        Kind::Null => Ok(Vec::new()),
        other => Err(ParseFailure::Syntax(
            root.pos,
            format!(
                "a YAML configuration must be a mapping, found {}",
                other.describe()
            ),
        )),
    }
}

struct Reader<'a> {
    parser: Parser<std::str::Chars<'a>>,
    lines: &'a Lines<'a>,
}

impl Reader<'_> {
    fn pos(&self, marker: Marker) -> Pos {
        self.lines.pos(marker.index())
    }

    fn next(&mut self) -> Result<(Event, Marker), ParseFailure> {
        self.parser.next_token().map_err(|e| {
            ParseFailure::Syntax(self.lines.pos(e.marker().index()), e.info().to_owned())
        })
    }

    fn node(&mut self, event: Event, marker: Marker) -> Result<Node, ParseFailure> {
        let pos = self.pos(marker);
        match event {
            Event::Scalar(value, style, _, tag) => {
                let as_string = tag.as_ref().is_some_and(|t| t.suffix == "str");
                let kind = if style == TScalarStyle::Plain && !as_string {
                    plain(&value)
                } else {
                    Kind::Str(value.clone())
                };
                let raw = if style == TScalarStyle::Plain {
                    value
                } else {
                    format!("{value:?}")
                };
                Ok(Node { pos, raw, kind })
            }
            Event::SequenceStart(..) => {
                let mut items = Vec::new();
                loop {
                    match self.next()? {
                        (Event::SequenceEnd, _) => break,
                        (event, marker) => items.push(self.node(event, marker)?),
                    }
                }
                Ok(Node {
                    pos,
                    raw: "[ ... ]".into(),
                    kind: Kind::List(items),
                })
            }
            Event::MappingStart(..) => {
                let mut entries = Vec::new();
                loop {
                    let (key_event, key_marker) = match self.next()? {
                        (Event::MappingEnd, _) => break,
                        other => other,
                    };
                    let key_pos = self.pos(key_marker);
                    let Event::Scalar(key, ..) = key_event else {
                        return Err(ParseFailure::Syntax(
                            key_pos,
                            "a key must be a plain name".into(),
                        ));
                    };
                    let (event, marker) = self.next()?;
                    let value = self.node(event, marker)?;
                    entries.push(Entry {
                        key,
                        key_pos,
                        value,
                        block_labels: None,
                    });
                }
                Ok(Node {
                    pos,
                    raw: "{ ... }".into(),
                    kind: Kind::Object(entries),
                })
            }
            Event::Alias(_) => Err(ParseFailure::Syntax(
                pos,
                "YAML aliases (*name) are not supported; write the value where it is used".into(),
            )),
            _ => Err(ParseFailure::Syntax(pos, "unexpected YAML event".into())),
        }
    }
}

/// A plain scalar by the YAML 1.2 core schema.
fn plain(value: &str) -> Kind {
    match value {
        "" | "~" | "null" | "Null" | "NULL" => Kind::Null,
        "true" | "True" | "TRUE" => Kind::Bool(true),
        "false" | "False" | "FALSE" => Kind::Bool(false),
        _ if is_number(value) => Kind::Number,
        _ => Kind::Str(value.to_owned()),
    }
}

/// `[-+]?digits`, `0o…`, `0x…`, or a decimal with a fraction or exponent.
fn is_number(value: &str) -> bool {
    let body = value.strip_prefix(['-', '+']).unwrap_or(value);
    if let Some(rest) = body.strip_prefix("0o") {
        return !rest.is_empty() && rest.bytes().all(|b| (b'0'..=b'7').contains(&b));
    }
    if let Some(rest) = body.strip_prefix("0x") {
        return !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_hexdigit());
    }
    !body.is_empty()
        && body
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_digit() || b == b'.')
        && body.parse::<f64>().is_ok()
}
