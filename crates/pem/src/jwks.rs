//! The JWKS bytes upstream writes into the JWT bundle file.
//!
//! Upstream (spiffe-helper v0.11.0) does not write the key set the agent sent: go-spiffe parses
//! it into a `jwtbundle.Bundle` and `Bundle.Marshal` encodes it again as a go-jose
//! `JSONWebKeySet` built from `{Key, KeyID}` pairs only. So every key loses `use`, `alg` and
//! any `x5c`, keeps go-jose's member order (`kty`, `kid`, `crv`, `x`, `y`, `n`, `e`), the
//! document is compact, and a set without keys is `{"keys":null}`. We produce the same bytes
//! (docs/behaviour.md#jwt-bundle-file); the one freedom upstream has and we do not take is the
//! order of several keys, which comes from a Go map there (random) and is the agent's order here.

use serde_json::Value;

/// go-jose's member order for a public JWK, as `rawJSONWebKey` declares its fields; `use` and
/// `alg` are never set by go-spiffe's `Marshal`, the private and certificate members never
/// apply to a bundle's public keys.
const MEMBERS: [&str; 7] = ["kty", "kid", "crv", "x", "y", "n", "e"];

/// The key types go-jose marshals from the public keys go-spiffe keeps.
const KEY_TYPES: [&str; 3] = ["EC", "RSA", "OKP"];

/// `received` re-encoded as upstream writes it, or `None` when it is not a JWKS of public EC,
/// RSA or OKP keys with string members (the client refuses such a bundle before it gets here).
pub(crate) fn as_upstream_writes(received: &[u8]) -> Option<Vec<u8>> {
    let doc: Value = serde_json::from_slice(received).ok()?;
    let keys = match doc.get("keys") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(keys)) => keys.as_slice(),
        Some(_) => return None,
    };
    if keys.is_empty() {
        return Some(br#"{"keys":null}"#.to_vec());
    }
    let mut out = String::from(r#"{"keys":["#);
    for (i, key) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_key(key, &mut out)?;
    }
    out.push_str("]}");
    Some(out.into_bytes())
}

fn push_key(key: &Value, out: &mut String) -> Option<()> {
    let key = key.as_object()?;
    if !KEY_TYPES.contains(&key.get("kty")?.as_str()?) {
        return None;
    }
    out.push('{');
    let mut first = true;
    for name in MEMBERS {
        let Some(value) = key.get(name) else { continue };
        let value = value.as_str()?;
        // go-jose's members are all `omitempty`.
        if value.is_empty() {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
        push_go_string(value, out);
    }
    out.push('}');
    Some(())
}

/// A JSON string as Go's `encoding/json` writes it: besides `"`, `\` and control characters it
/// escapes `<`, `>`, `&`, U+2028 and U+2029 (its HTML-safe default), which `serde_json` does not.
fn push_go_string(s: &str, out: &mut String) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\0'..='\u{1f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests;
