//! JSON objects parsed with duplicate member names refused, at every depth.
//!
//! `serde_json` keeps the last of two equal member names; another JSON parser may keep the first
//! (RFC 8259 §4 leaves the behaviour open). A JWT whose header or claims name a member twice
//! (two `sub`, two `alg`) would then mean one thing to the component that validates it and another
//! to the one that uses it, so a JWT-SVID with a repeated member is refused instead (RFC 7515
//! §5.2 step 4 and RFC 7519 §4 allow a validator to do so, and JWT-SVID §4 says validation is as
//! for any JWS).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a JSON text is refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StrictJsonError {
    /// Not JSON, or not an object at the top.
    NotAnObject,
    /// A member name appears twice in one object; the name (never a value) is kept.
    Duplicate(String),
}

/// Parses `bytes` as a JSON object, refusing a repeated member name in any object within it.
pub(crate) fn object(bytes: &[u8]) -> Result<Map<String, Value>, StrictJsonError> {
    match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(Value::Object(map))) => Ok(map),
        Ok(_) => Err(StrictJsonError::NotAnObject),
        Err(e) => {
            let text = e.to_string();
            // The visitor's own message; serde_json appends " at line L column C".
            match text.strip_prefix(DUPLICATE_PREFIX) {
                Some(rest) => Err(StrictJsonError::Duplicate(
                    rest.split(" at line ")
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                )),
                None => Err(StrictJsonError::NotAnObject),
            }
        }
    }
}

const DUPLICATE_PREFIX: &str = "duplicate member name ";

/// A `Value` whose objects were checked for repeated member names.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
        Ok(Strict(
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }

    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_none<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Strict, D::Error> {
        Strict::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Strict(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Strict, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            if map.contains_key(&name) {
                return Err(de::Error::custom(format_args!(
                    "{DUPLICATE_PREFIX}{name:?}"
                )));
            }
            let Strict(value) = access.next_value()?;
            map.insert(name, value);
        }
        Ok(Strict(Value::Object(map)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_member_name_is_refused_at_any_depth() {
        assert_eq!(
            object(br#"{"sub":"a","sub":"b"}"#),
            Err(StrictJsonError::Duplicate("\"sub\"".into()))
        );
        assert!(matches!(
            object(br#"{"x":[{"k":1,"k":2}]}"#),
            Err(StrictJsonError::Duplicate(_))
        ));
        // Escapes name the same member: "\u0073ub" is "sub".
        assert!(matches!(
            object(br#"{"sub":"a","\u0073ub":"b"}"#),
            Err(StrictJsonError::Duplicate(_))
        ));
    }

    #[test]
    fn ordinary_json_parses_as_serde_json_does() {
        let text = br#"{"a":1,"b":[true,null,"s",-2,1.5],"c":{"d":{}}}"#;
        let ours = object(text).unwrap();
        let theirs: Map<String, Value> = serde_json::from_slice(text).unwrap();
        assert_eq!(ours, theirs);
        for bad in [&b"[]"[..], b"1", b"{", b"{\"a\":1} x"] {
            assert_eq!(object(bad), Err(StrictJsonError::NotAnObject), "{bad:?}");
        }
    }
}
