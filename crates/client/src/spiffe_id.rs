//! SPIFFE IDs and trust domains, validated per the SPIFFE ID specification
//! (<https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md>, §2).

use std::fmt;
use std::str::FromStr;

/// A SPIFFE ID or trust domain that does not parse, with the rule of the SPIFFE ID
/// specification it breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid SPIFFE ID or trust domain {input:?}: {reason}")]
pub struct SpiffeIdError {
    input: String,
    reason: &'static str,
}

impl SpiffeIdError {
    fn new(input: &str, reason: &'static str) -> Self {
        Self {
            input: input.to_owned(),
            reason,
        }
    }

    /// The input as given.
    #[must_use]
    pub fn input(&self) -> &str {
        &self.input
    }

    /// Which rule it breaks, for example `"trust domain must not contain a port"`.
    #[must_use]
    pub fn reason(&self) -> &'static str {
        self.reason
    }
}

const SCHEME: &str = "spiffe://";
/// SPIFFE-ID.md §2.1: trust domain names are at most 255 bytes.
const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// A trust domain name such as `example.org`.
///
/// Ordered so that it can key a `BTreeMap`: bundle maps iterate in a stable order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TrustDomain {
    name: String,
}

impl TrustDomain {
    /// The name without the scheme, for example `example.org`.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The trust domain's SPIFFE ID, `spiffe://example.org` (the form the Workload API uses as
    /// map key).
    #[must_use]
    pub fn id_string(&self) -> String {
        format!("{SCHEME}{}", self.name)
    }

    fn parse_name(name: &str, input: &str) -> Result<Self, SpiffeIdError> {
        let fail = |reason| SpiffeIdError::new(input, reason);
        if name.is_empty() {
            return Err(fail("trust domain is missing"));
        }
        if name.len() > MAX_TRUST_DOMAIN_LEN {
            return Err(fail("trust domain is longer than 255 bytes"));
        }
        if name.contains(':') {
            return Err(fail("trust domain must not contain a port"));
        }
        if name.contains('@') {
            return Err(fail("trust domain must not contain user info"));
        }
        // §2.1: lowercase letters, digits, dots, dashes and underscores only.
        if !name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
        }) {
            return Err(fail(
                "trust domain may contain only lowercase letters, digits, '.', '-' and '_'",
            ));
        }
        Ok(Self {
            name: name.to_owned(),
        })
    }
}

impl FromStr for TrustDomain {
    type Err = SpiffeIdError;

    /// Accepts `example.org` and `spiffe://example.org`.
    fn from_str(input: &str) -> Result<Self, SpiffeIdError> {
        match input.strip_prefix(SCHEME) {
            Some(rest) if rest.contains('/') => {
                Err(SpiffeIdError::new(input, "a trust domain ID has no path"))
            }
            Some(rest) => Self::parse_name(rest, input),
            None => Self::parse_name(input, input),
        }
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// A validated SPIFFE ID such as `spiffe://example.org/web`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpiffeId {
    trust_domain: TrustDomain,
    path: String,
}

impl SpiffeId {
    /// The trust domain part.
    #[must_use]
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The path part including its leading `/`, or `""` for a trust domain ID.
    #[must_use]
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl SpiffeId {
    /// Whether this ID belongs to `trust_domain`.
    #[must_use]
    pub fn is_member_of(&self, trust_domain: &TrustDomain) -> bool {
        self.trust_domain == *trust_domain
    }
}

impl TrustDomain {
    /// The ID `spiffe://<this trust domain><path>`, for example `td.child("/web")`.
    ///
    /// # Errors
    /// [`SpiffeIdError`] when `path` breaks the path rules (segments of `[A-Za-z0-9._-]`, each
    /// starting with `/`, none empty, `.` or `..`).
    pub fn child(&self, path: &str) -> Result<SpiffeId, SpiffeIdError> {
        if !path.is_empty() && !path.starts_with('/') {
            return Err(SpiffeIdError::new(path, "path must start with '/'"));
        }
        validate_path(path).map_err(|reason| SpiffeIdError::new(path, reason))?;
        Ok(SpiffeId {
            trust_domain: self.clone(),
            path: path.to_owned(),
        })
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;

    fn from_str(input: &str) -> Result<Self, SpiffeIdError> {
        let fail = |reason| SpiffeIdError::new(input, reason);
        // §2: the scheme is exactly "spiffe" (lowercase), followed by "//" and an authority.
        let Some(rest) = input.strip_prefix(SCHEME) else {
            return Err(fail("must start with spiffe://"));
        };
        if rest.contains('?') || rest.contains('#') {
            return Err(fail("must not contain a query or fragment"));
        }
        let (name, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
        let trust_domain = TrustDomain::parse_name(name, input)?;
        validate_path(path).map_err(fail)?;
        Ok(Self {
            trust_domain,
            path: path.to_owned(),
        })
    }
}

/// SPIFFE-ID.md §2.2: segments separated by `/`, none empty, `.` or `..`; characters
/// `[A-Za-z0-9._-]`; no trailing slash.
fn validate_path(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Ok(());
    }
    for segment in path.split('/').skip(1) {
        match segment {
            "" => return Err("path segments must not be empty (no '//' and no trailing '/')"),
            "." | ".." => return Err("path segments must not be '.' or '..'"),
            _ => {}
        }
        if !segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        {
            return Err("path may contain only letters, digits, '.', '-' and '_'");
        }
    }
    Ok(())
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}{}", self.trust_domain.name, self.path)
    }
}

#[cfg(test)]
mod tests;
