//! A small value tree with source positions, built from HCL (via `hcl-edit`) or JSON.
//!
//! Both syntaxes become the same tree so that typing, validation and error messages are
//! written once. `hcl-rs`'s own deserializer is not used on purpose: it turns `cmd = 123` into a
//! string, reads `0644` as the decimal 644 and forgets every line number.

use hcl_edit::Span;
use hcl_edit::expr::{Expression, ObjectKey};
use hcl_edit::structure::{Body, Structure};
use hcl_edit::template::Element;

/// A 1-based line and column (in characters), or the environment variable a value came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pos {
    pub line: usize,
    pub col: usize,
    /// The top-level key whose `SPIFFE_HLP_<KEY>` variable held the value (`crate::env`).
    pub env: Option<&'static str>,
}

/// Maps byte offsets of one source text to line/column positions.
pub(crate) struct Lines<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> Lines<'a> {
    pub fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self { text, starts }
    }

    pub fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.text.len());
        let line = self.starts.partition_point(|&start| start <= offset);
        let start = self.starts[line.saturating_sub(1)];
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        Pos {
            line,
            col: col + 1,
            env: None,
        }
    }

    fn span_pos(&self, span: Option<std::ops::Range<usize>>) -> Pos {
        span.map(|s| self.pos(s.start)).unwrap_or_default()
    }

    fn raw(&self, span: Option<std::ops::Range<usize>>) -> String {
        span.and_then(|s| self.text.get(s))
            .unwrap_or_default()
            .to_owned()
    }
}

/// One value with the position where it starts.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub pos: Pos,
    /// The literal source text of the value (for numbers, `0644` stays `0644`).
    pub raw: String,
    pub kind: Kind,
}

/// What a value is.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Kind {
    Null,
    Bool(bool),
    Number,
    Str(String),
    List(Vec<Node>),
    Object(Vec<Entry>),
    /// An expression the configuration cannot use (variable, function call, interpolation...).
    Unsupported(&'static str),
}

impl Kind {
    /// How the value is called in an error message ("found a number").
    pub fn describe(&self) -> &'static str {
        match self {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Number => "a number",
            Kind::Str(_) => "a string",
            Kind::List(_) => "a list",
            Kind::Object(_) => "an object",
            Kind::Unsupported(what) => what,
        }
    }
}

/// A `key = value` attribute, an object member, or a block (`key "label" { ... }`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Entry {
    /// The key as written (case preserved for messages).
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
    /// `Some(labels)` when the entry was written as a block.
    pub block_labels: Option<Vec<String>>,
}

/// Why a file could not be parsed.
pub(crate) enum ParseFailure {
    /// Not valid HCL or JSON.
    Syntax(Pos, String),
    /// hcl-edit rejects a repeated attribute itself; report it like our own duplicate check.
    Duplicate {
        pos: Pos,
        key: String,
        first_line: usize,
    },
}

/// Parses an HCL body into entries.
pub(crate) fn from_hcl(text: &str) -> Result<Vec<Entry>, ParseFailure> {
    let body = hcl_edit::parser::parse_body(text).map_err(|e| {
        let loc = e.location();
        let pos = Pos {
            line: loc.line(),
            col: loc.column(),
            env: None,
        };
        if e.message().contains("redefined attribute") {
            let key = e
                .line()
                .split('=')
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned();
            let first_line = text
                .lines()
                .position(|l| {
                    l.trim_start()
                        .strip_prefix(key.as_str())
                        .is_some_and(|rest| rest.trim_start().starts_with('='))
                })
                .map_or(0, |i| i + 1);
            ParseFailure::Duplicate {
                pos,
                key,
                first_line,
            }
        } else {
            ParseFailure::Syntax(pos, e.message().to_owned())
        }
    })?;
    let lines = Lines::new(text);
    Ok(body_entries(&lines, &body))
}

fn body_entries(lines: &Lines<'_>, body: &Body) -> Vec<Entry> {
    body.iter()
        .map(|structure| match structure {
            Structure::Attribute(attr) => Entry {
                key: attr.key.value().as_str().to_owned(),
                key_pos: lines.span_pos(attr.key.span()),
                value: node(lines, &attr.value),
                block_labels: None,
            },
            Structure::Block(block) => Entry {
                key: block.ident.value().as_str().to_owned(),
                key_pos: lines.span_pos(block.ident.span()),
                value: Node {
                    pos: lines.span_pos(block.span()),
                    raw: String::from("{ ... }"),
                    kind: Kind::Object(body_entries(lines, &block.body)),
                },
                block_labels: Some(block.labels.iter().map(|l| l.as_str().to_owned()).collect()),
            },
        })
        .collect()
}

fn node(lines: &Lines<'_>, expr: &Expression) -> Node {
    let pos = lines.span_pos(expr.span());
    let raw = lines.raw(expr.span());
    let kind = match expr {
        Expression::Null(_) => Kind::Null,
        Expression::Bool(b) => Kind::Bool(*b.value()),
        Expression::Number(_) => Kind::Number,
        Expression::String(s) => Kind::Str(s.value().clone()),
        Expression::Array(array) => Kind::List(array.iter().map(|e| node(lines, e)).collect()),
        Expression::Object(object) => Kind::Object(
            object
                .iter()
                .map(|(key, value)| object_entry(lines, key, value.expr()))
                .collect(),
        ),
        Expression::StringTemplate(t) => template_string(t.iter()),
        Expression::HeredocTemplate(heredoc) => {
            let mut heredoc = heredoc.as_ref().clone();
            heredoc.dedent();
            template_string(heredoc.template.iter())
        }
        Expression::Parenthesis(p) => return node(lines, p.inner()),
        Expression::UnaryOp(op) => {
            // `-1` is a unary minus applied to a number; keep it a number so that the
            // consumer can say "negative" instead of "unsupported expression".
            if matches!(op.expr, Expression::Number(_)) {
                Kind::Number
            } else {
                Kind::Unsupported("an expression")
            }
        }
        Expression::Variable(_) => Kind::Unsupported("a variable reference"),
        Expression::FuncCall(_) => Kind::Unsupported("a function call"),
        Expression::Traversal(_) => Kind::Unsupported("an attribute reference"),
        Expression::Conditional(_) | Expression::BinaryOp(_) | Expression::ForExpr(_) => {
            Kind::Unsupported("an expression")
        }
    };
    Node { pos, raw, kind }
}

fn object_entry(lines: &Lines<'_>, key: &ObjectKey, value: &Expression) -> Entry {
    let (name, key_pos) = match key {
        ObjectKey::Ident(ident) => (
            ident.value().as_str().to_owned(),
            lines.span_pos(ident.span()),
        ),
        ObjectKey::Expression(expr) => {
            let key_node = node(lines, expr);
            let name = match &key_node.kind {
                Kind::Str(s) => s.clone(),
                _ => key_node.raw.clone(),
            };
            (name, key_node.pos)
        }
    };
    Entry {
        key: name,
        key_pos,
        value: node(lines, value),
        block_labels: None,
    }
}

/// A template made only of literal text is a plain string; anything with `${...}` or `%{...}`
/// is rejected, since upstream never evaluated interpolations either.
fn template_string<'t>(elements: impl Iterator<Item = &'t Element>) -> Kind {
    let mut out = String::new();
    for element in elements {
        match element {
            Element::Literal(lit) => out.push_str(lit.value()),
            Element::Interpolation(_) => return Kind::Unsupported("an interpolation (${...})"),
            Element::Directive(_) => return Kind::Unsupported("a template directive (%{...})"),
        }
    }
    Kind::Str(out)
}
