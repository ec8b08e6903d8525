//! `cmd_args` splitting (docs/configuration.md, "Notifying the application").
//!
//! Upstream reads `cmd_args` with Go's `encoding/csv` using a space as the separator, so the
//! rules are CSV's: arguments are separated by single spaces, an argument that starts with `"`
//! runs to the matching `"`, `""` inside it is one literal `"`, and backslashes and single quotes
//! are ordinary characters. Nothing is expanded.

/// Why `cmd_args` cannot be split. Columns are 1-based character positions inside the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ArgsError {
    /// A `"` that opens an argument is never closed.
    #[error("the quote at column {column} is never closed (add a closing \")")]
    Unclosed {
        /// Column of the opening quote.
        column: usize,
    },
    /// A `"` inside an argument that did not start with a quote.
    #[error(
        "stray quote at column {column}: a quote may only start an argument; quote the whole argument and double inner quotes (\"a\"\"b\")"
    )]
    StrayQuote {
        /// Column of the quote.
        column: usize,
    },
    /// A closing `"` followed by something other than a space or the end.
    #[error(
        "the quote at column {column} closes an argument but is followed by more text; put a space after it or write a literal quote as \"\""
    )]
    TextAfterQuote {
        /// Column of the closing quote.
        column: usize,
    },
    /// A line break outside quotes (upstream silently dropped everything after it).
    #[error(
        "line break at column {column} outside quotes; cmd_args is a single line (quote an argument to keep a line break in it)"
    )]
    LineBreak {
        /// Column of the line break.
        column: usize,
    },
}

/// Splits `cmd_args` into arguments the way upstream does (Go `encoding/csv`, space separated).
///
/// ```
/// use spiffe_helper_config::split_cmd_args;
/// assert_eq!(split_cmd_args(r#"a "b c" d"#).unwrap(), ["a", "b c", "d"]);
/// assert_eq!(split_cmd_args(r#""say ""hi""""#).unwrap(), [r#"say "hi""#]);
/// assert_eq!(split_cmd_args("").unwrap(), Vec::<String>::new());
/// ```
///
/// # Errors
/// [`ArgsError`] for an unclosed quote, a stray quote inside an unquoted argument, text right
/// after a closing quote, or a line break outside quotes; each names the column.
pub fn split_cmd_args(s: &str) -> Result<Vec<String>, ArgsError> {
    // One trailing line break (a heredoc's) ends the record, as in CSV.
    let s = s
        .strip_suffix('\n')
        .map_or(s, |t| t.strip_suffix('\r').unwrap_or(t));
    let chars: Vec<char> = s.chars().collect();
    let mut args = Vec::new();
    if chars.is_empty() {
        return Ok(args);
    }
    let mut i = 0;
    loop {
        let mut arg = String::new();
        if chars.get(i) == Some(&'"') {
            i = quoted(&chars, i, &mut arg)?;
        } else {
            while let Some(&c) = chars.get(i) {
                match c {
                    ' ' => break,
                    '"' => return Err(ArgsError::StrayQuote { column: i + 1 }),
                    '\n' => return Err(ArgsError::LineBreak { column: i + 1 }),
                    _ => arg.push(c),
                }
                i += 1;
            }
        }
        args.push(arg);
        match chars.get(i) {
            None => return Ok(args),
            Some('\n') => return Err(ArgsError::LineBreak { column: i + 1 }),
            // A space: another argument follows (possibly empty, as CSV says).
            Some(_) => i += 1,
        }
    }
}

/// Reads a quoted argument starting at the opening quote `open`; returns the index just past
/// the closing quote.
fn quoted(chars: &[char], open: usize, arg: &mut String) -> Result<usize, ArgsError> {
    let mut i = open + 1;
    loop {
        match chars.get(i) {
            None => return Err(ArgsError::Unclosed { column: open + 1 }),
            Some('"') => match chars.get(i + 1) {
                Some('"') => {
                    arg.push('"');
                    i += 2;
                }
                None | Some(' ' | '\n') => return Ok(i + 1),
                Some(_) => return Err(ArgsError::TextAfterQuote { column: i + 1 }),
            },
            // CSV turns CRLF inside a quoted field into LF.
            Some('\r') if chars.get(i + 1) == Some(&'\n') => {
                arg.push('\n');
                i += 2;
            }
            Some(&c) => {
                arg.push(c);
                i += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests;
