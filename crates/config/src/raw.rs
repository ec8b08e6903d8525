//! The raw stage's data: what a block of the file set, keyed by the key tables, each value
//! typed and positioned but not yet defaulted or cross-checked.

use std::collections::HashMap;
use std::time::Duration;

use crate::keys::{HealthKey, JwtKey, Key, Shape, Table};
use crate::tree::Pos;
use crate::values::{FileMode, LogFormat, LogLevel};

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

impl<T> Val<T> {
    /// The same position and spelling with another value (a parsed form of the text).
    pub fn with<U>(self, value: U) -> Val<U> {
        Val {
            value,
            key_pos: self.key_pos,
            pos: self.pos,
            raw: self.raw,
        }
    }
}

/// One decoded value; the variant follows the key's [`Shape`].
#[derive(Clone, Debug)]
pub(crate) enum Value {
    Text(Val<String>),
    Bool(Val<bool>),
    Mode(Val<FileMode>),
    Duration(Val<Duration>),
    Port(Val<u16>),
    Level(Val<LogLevel>),
    Format(Val<LogFormat>),
    Strings(Vec<String>),
    JwtSvids(Vec<Fields<JwtKey>>),
    Health(Fields<HealthKey>),
}

/// What one block (the file, a `jwt_svids` entry, `health_checks`) sets.
#[derive(Clone, Debug)]
pub(crate) struct Fields<K> {
    /// Where the block is (for "... is required" messages).
    pub pos: Pos,
    values: HashMap<K, Value>,
}

/// The whole file as written.
pub(crate) type Raw = Fields<Key>;

impl<K: Table> Fields<K> {
    pub fn new(pos: Pos) -> Self {
        Self {
            pos,
            values: HashMap::new(),
        }
    }

    /// The value the file gives `key`, when it sets one.
    pub fn get<T: Typed>(&self, key: K) -> Option<&Val<T>> {
        debug_assert_typed::<K, T>(key);
        self.values.get(&key).and_then(T::from_value)
    }

    /// A string the file sets to something other than `""` (upstream's "not set").
    pub fn text(&self, key: K) -> Option<&Val<String>> {
        self.get::<String>(key).filter(|v| !v.value.is_empty())
    }

    /// The file's value, else the table's default.
    pub fn value_or_default<T: Typed>(&self, key: K) -> T {
        self.get::<T>(key)
            .map_or_else(|| default(key), |v| v.value.clone())
    }

    /// A list of strings the file sets, else the empty list.
    pub fn strings(&self, key: K) -> &[String] {
        match self.values.get(&key) {
            Some(Value::Strings(list)) => list,
            _ => &[],
        }
    }

    /// Stores a decoded value; a second `jwt_svids` list (repeated `jwt_svids "x" { }`
    /// blocks) is appended to the first.
    pub fn merge(&mut self, key: K, value: Value) {
        let value = match (self.values.remove(&key), value) {
            (Some(Value::JwtSvids(mut list)), Value::JwtSvids(more)) => {
                list.extend(more);
                Value::JwtSvids(list)
            }
            (_, value) => value,
        };
        self.values.insert(key, value);
    }

    /// How many `jwt_svids` entries `key` holds so far (numbers the next ones in messages).
    pub fn jwt_svid_count(&self, key: K) -> usize {
        match self.values.get(&key) {
            Some(Value::JwtSvids(list)) => list.len(),
            _ => 0,
        }
    }
}

impl Raw {
    pub fn jwt_svids(&self) -> &[Fields<JwtKey>] {
        match self.values.get(&Key::JwtSvids) {
            Some(Value::JwtSvids(list)) => list,
            _ => &[],
        }
    }

    pub fn health(&self) -> Option<&Fields<HealthKey>> {
        match self.values.get(&Key::HealthChecks) {
            Some(Value::Health(block)) => Some(block),
            _ => None,
        }
    }
}

/// The table's default for `key`.
pub(crate) fn default<K: Table, T: Typed>(key: K) -> T {
    debug_assert_typed::<K, T>(key);
    T::from_shape(key.spec().shape).unwrap_or(T::FALLBACK)
}

/// Reading a key as a type its shape does not decode to is a programming error; any test that
/// reads the key catches it.
fn debug_assert_typed<K: Table, T: Typed>(key: K) {
    debug_assert!(
        T::from_shape(key.spec().shape).is_some(),
        "{key:?} is not read as {}",
        std::any::type_name::<T>()
    );
}

/// A Rust type that a [`Shape`] decodes to: links the value variant and the default.
pub(crate) trait Typed: Clone + 'static {
    /// Returned, in release builds only, for a key read as the wrong type.
    const FALLBACK: Self;
    fn from_value(value: &Value) -> Option<&Val<Self>>;
    fn from_shape(shape: Shape) -> Option<Self>;
}

macro_rules! typed {
    ($($T:ty => $Variant:ident, $fallback:expr;)*) => {$(
        impl Typed for $T {
            const FALLBACK: Self = $fallback;
            fn from_value(value: &Value) -> Option<&Val<Self>> {
                match value {
                    Value::$Variant(v) => Some(v),
                    _ => None,
                }
            }
            fn from_shape(shape: Shape) -> Option<Self> {
                match shape {
                    Shape::$Variant(default) => Some(default.into()),
                    _ => None,
                }
            }
        }
    )*};
}

typed! {
    String => Text, String::new();
    bool => Bool, false;
    FileMode => Mode, FileMode(0o600);
    Duration => Duration, Duration::ZERO;
    u16 => Port, 0;
    LogLevel => Level, LogLevel::Info;
    LogFormat => Format, LogFormat::Text;
}
