//! Key names: the known ones, removed upstream spellings, and "did you mean" suggestions.

/// Every top-level key, in the order the effective configuration prints them.
pub(crate) const TOP_KEYS: &[&str] = &[
    "agent_address",
    "daemon_mode",
    "cert_dir",
    "svid_file_name",
    "svid_key_file_name",
    "svid_bundle_file_name",
    "add_intermediates_to_bundle",
    "include_federated_domains",
    "omit_expired",
    "hint",
    "jwt_svids",
    "jwt_bundle_file_name",
    "cert_file_mode",
    "key_file_mode",
    "jwt_bundle_file_mode",
    "jwt_svid_file_mode",
    "cmd",
    "cmd_args",
    "renew_signal",
    "pid_file_name",
    "health_checks",
    "federated_bundle_dir",
    "startup_timeout",
    "log_level",
    "log_format",
];

/// Keys of one `jwt_svids` entry.
pub(crate) const JWT_KEYS: &[&str] = &["jwt_audience", "jwt_extra_audiences", "jwt_svid_file_name"];

/// Keys of the `health_checks` block.
pub(crate) const HEALTH_KEYS: &[&str] = &[
    "listener_enabled",
    "bind_port",
    "liveness_path",
    "readiness_path",
];

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
mod tests {
    use super::*;

    #[test]
    fn camel_case_is_recognised() {
        assert_eq!(camel_to_snake("svidKeyFileName"), "svid_key_file_name");
        assert_eq!(camel_to_snake("agentAddress"), "agent_address");
        assert_eq!(camel_to_snake("AGENT_ADDRESS"), "agent_address");
    }

    #[test]
    fn suggestions() {
        assert_eq!(suggest("cert_dri", TOP_KEYS), Some("cert_dir"));
        assert_eq!(suggest("agent_adress", TOP_KEYS), Some("agent_address"));
        assert_eq!(suggest("svid_filename", TOP_KEYS), Some("svid_file_name"));
        assert_eq!(suggest("completely_different", TOP_KEYS), None);
    }
}
