//! The key tables: every key a file may set, with its name, the shape of its value and its
//! typed default, one row each (docs/configuration.md, "Keys"). Decoding, defaults, the
//! effective configuration and the docs check all read these rows, and code names a key by its
//! variant, so a mistyped key does not compile. Also: removed upstream spellings and
//! "did you mean" suggestions.

use std::hash::Hash;
use std::time::Duration;

use crate::values::{FileMode, LogFormat, LogLevel};

/// What a key takes, with its default when the file does not set it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Shape {
    /// A string; `""` (upstream's zero value) means "not set".
    Text(&'static str),
    /// `true` or `false`.
    Bool(bool),
    /// An octal file mode; `0` in a file also means this default, as upstream.
    Mode(FileMode),
    /// A duration (`"30s"`, or whole seconds).
    Duration(Duration),
    /// A TCP port, 1-65535.
    Port(u16),
    /// A log level name.
    Level(LogLevel),
    /// A log format name.
    Format(LogFormat),
    /// A list of strings, empty by default.
    Strings,
    /// The `jwt_svids` list, one [`JwtKey`] object per entry; empty by default.
    JwtSvids,
    /// The `health_checks` block of [`HealthKey`]s; absent means no health server.
    Health,
}

/// One row of a key table.
#[derive(Debug)]
pub(crate) struct Spec<K> {
    pub key: K,
    /// The key as written in a file (lower case; files may use any case).
    pub name: &'static str,
    pub shape: Shape,
}

/// A table of keys: the top level, one `jwt_svids` entry, or the `health_checks` block.
pub(crate) trait Table: Copy + Eq + Hash + std::fmt::Debug + 'static {
    /// The rows, in the order the effective configuration prints them.
    const TABLE: &'static [Spec<Self>];
    /// The names alone, for suggestions.
    const NAMES: &'static [&'static str];
    /// This key's row.
    fn spec(self) -> &'static Spec<Self>;
    /// The key as written in a file.
    fn name(self) -> &'static str {
        self.spec().name
    }
}

/// Declares a key enum and its table from one row per key, so that neither can miss a key.
macro_rules! key_table {
    ($(#[$meta:meta])* enum $Key:ident { $($Variant:ident = $name:literal: $shape:expr,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub(crate) enum $Key {
            $($Variant,)*
        }

        impl Table for $Key {
            const TABLE: &'static [Spec<Self>] =
                &[$(Spec { key: $Key::$Variant, name: $name, shape: $shape },)*];
            const NAMES: &'static [&'static str] = &[$($name,)*];
            fn spec(self) -> &'static Spec<Self> {
                // The rows are generated in variant order, so the discriminant is the index.
                &Self::TABLE[self as usize]
            }
        }
    };
}

key_table! {
    /// A top-level key.
    #[expect(clippy::enum_variant_names, reason = "`KeyFileMode` is `key_file_mode`")]
    enum Key {
        AgentAddress = "agent_address": Shape::Text(""),
        DaemonMode = "daemon_mode": Shape::Bool(true),
        CertDir = "cert_dir": Shape::Text(""),
        SvidFileName = "svid_file_name": Shape::Text("svid.pem"),
        SvidKeyFileName = "svid_key_file_name": Shape::Text("svid_key.pem"),
        SvidBundleFileName = "svid_bundle_file_name": Shape::Text("svid_bundle.pem"),
        SvidCombinedFileName = "svid_combined_file_name": Shape::Text(""),
        Pkcs12KeystoreFileName = "pkcs12_keystore_file_name": Shape::Text(""),
        Pkcs12TruststoreFileName = "pkcs12_truststore_file_name": Shape::Text(""),
        Pkcs12Password = "pkcs12_password": Shape::Text(""),
        Pkcs12PasswordFile = "pkcs12_password_file": Shape::Text(""),
        Pkcs12KeyAlias = "pkcs12_key_alias": Shape::Text("spiffe"),
        AddIntermediatesToBundle = "add_intermediates_to_bundle": Shape::Bool(false),
        IncludeFederatedDomains = "include_federated_domains": Shape::Bool(false),
        OmitExpired = "omit_expired": Shape::Bool(false),
        Hint = "hint": Shape::Text(""),
        JwtSvids = "jwt_svids": Shape::JwtSvids,
        JwtBundleFileName = "jwt_bundle_file_name": Shape::Text(""),
        CertFileMode = "cert_file_mode": Shape::Mode(FileMode(0o644)),
        KeyFileMode = "key_file_mode": Shape::Mode(FileMode(0o600)),
        JwtBundleFileMode = "jwt_bundle_file_mode": Shape::Mode(FileMode(0o600)),
        JwtSvidFileMode = "jwt_svid_file_mode": Shape::Mode(FileMode(0o600)),
        Cmd = "cmd": Shape::Text(""),
        CmdArgs = "cmd_args": Shape::Text(""),
        RenewSignal = "renew_signal": Shape::Text(""),
        PidFileName = "pid_file_name": Shape::Text(""),
        CmdRestart = "cmd_restart": Shape::Text("on-rotation"),
        CmdStopTimeout = "cmd_stop_timeout": Shape::Duration(Duration::from_secs(10)),
        FederatedBundleDir = "federated_bundle_dir": Shape::Text(""),
        FilesystemDeliveryDir = "filesystem_delivery_dir": Shape::Text(""),
        CertDirLayout = "cert_dir_layout": Shape::Text("files"),
        StartupTimeout = "startup_timeout": Shape::Duration(Duration::from_secs(30)),
        LogLevel = "log_level": Shape::Level(LogLevel::Info),
        LogFormat = "log_format": Shape::Format(LogFormat::Text),
        // Last: the effective configuration prints it as a multi-line block.
        HealthChecks = "health_checks": Shape::Health,
    }
}

key_table! {
    /// A key of one `jwt_svids` entry (`jwt_audience` and `jwt_svid_file_name` are required).
    enum JwtKey {
        Audience = "jwt_audience": Shape::Text(""),
        ExtraAudiences = "jwt_extra_audiences": Shape::Strings,
        SvidFileName = "jwt_svid_file_name": Shape::Text(""),
    }
}

key_table! {
    /// A key of the `health_checks` block (`listener_enabled` is required inside it). The
    /// defaults are upstream's.
    enum HealthKey {
        ListenerEnabled = "listener_enabled": Shape::Bool(false),
        BindAddress = "bind_address": Shape::Text("0.0.0.0"),
        BindPort = "bind_port": Shape::Port(8080),
        LivenessPath = "liveness_path": Shape::Text("/health/live"),
        ReadinessPath = "readiness_path": Shape::Text("/health/ready"),
    }
}

/// Keys older upstream versions accepted that no longer exist, with what to do instead.
const REMOVED: &[(&str, &str)] = &[
    (
        "exit_when_ready",
        "one-shot mode replaced it: set `daemon_mode = false` (or pass -daemon-mode=false)",
    ),
    (
        "timeout",
        "the deadline for the first X.509 fetch is now `startup_timeout` (for example startup_timeout = \"30s\")",
    ),
];
/// What a key that is not known means: a removed key, a renamed (camelCase) key, or a typo.
pub(crate) enum Unknown {
    /// Upstream removed or renamed it; the text says what to write instead.
    Removed(String),
    /// A typo, with the closest known key if one is close.
    Typo(Option<&'static str>),
}

/// Classifies an unknown key written as `key` among the `known` keys of its block.
pub(crate) fn classify(key: &str, known: &[&'static str]) -> Unknown {
    let lower = key.to_ascii_lowercase();
    let snake = camel_to_snake(key);
    for candidate in [lower.as_str(), snake.as_str()] {
        if let Some((_, why)) = REMOVED.iter().find(|(name, _)| *name == candidate) {
            return Unknown::Removed((*why).to_owned());
        }
    }
    if let Some(name) = known.iter().find(|k| snake != lower && **k == snake) {
        return Unknown::Removed(format!("camelCase keys were renamed: write `{name}`"));
    }
    Unknown::Typo(suggest(&lower, known))
}

fn suggest(key: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(key, k), *k))
        .filter(|(distance, k)| *distance <= (k.len() / 3).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, k)| k)
        .or_else(|| {
            known
                .iter()
                .map(|k| (strsim::jaro_winkler(key, k), *k))
                .filter(|(score, _)| *score >= 0.9)
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, k)| k)
        })
}

/// `svidKeyFileName` → `svid_key_file_name`.
fn camel_to_snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    let mut prev_lower = false;
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            if prev_lower {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
            prev_lower = false;
        } else {
            prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests;
