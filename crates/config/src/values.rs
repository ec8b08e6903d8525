//! Small typed values: file modes, log settings, durations and signals. A leaf module: the
//! key table (`keys`) and the raw values (`raw`) build on it, never the other way round.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;

/// A Unix permission mode (at most `0o777`). Displays as four octal digits, e.g. `0644`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileMode(pub u32);

impl FileMode {
    /// The mode bits.
    #[must_use]
    pub fn bits(self) -> u32 {
        self.0
    }

    /// Reads a mode written as octal digits (`0644`, `644`, `0o644`); upstream files
    /// never mean decimal here (docs/configuration.md, "Output files").
    pub(crate) fn parse_octal(text: &str) -> Result<Self, &'static str> {
        const WHY: &str = "not an octal mode (digits 0-7, at most 0777)";
        let digits = text.trim();
        if digits.starts_with('-') {
            return Err("a file mode cannot be negative (digits 0-7, at most 0777)");
        }
        let digits = digits
            .strip_prefix("0o")
            .or_else(|| digits.strip_prefix("0O"))
            .unwrap_or(digits);
        if digits.is_empty() || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return Err(WHY);
        }
        let trimmed = digits.trim_start_matches('0');
        if trimmed.len() > 3 {
            return Err(WHY);
        }
        u32::from_str_radix(if trimmed.is_empty() { "0" } else { trimmed }, 8)
            .map(FileMode)
            .map_err(|_| WHY)
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// The minimum level of log lines (`log_level`); `RUST_LOG` overrides it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogLevel {
    /// Everything.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation (default).
    #[default]
    Info,
    /// Problems that do not stop the program.
    Warn,
    /// Failures only.
    Error,
}

impl LogLevel {
    /// The name `tracing`'s filters understand (`info`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

impl FromStr for LogLevel {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "trace" => Ok(Self::Trace),
            "debug" => Ok(Self::Debug),
            "info" => Ok(Self::Info),
            "warn" | "warning" => Ok(Self::Warn),
            "error" => Ok(Self::Error),
            _ => Err(()),
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How log lines are written (`log_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LogFormat {
    /// Human-readable text (default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// The configuration spelling (`text` or `json`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the helper does when its child (`cmd`, or the program after `--`) exits
/// (`cmd_restart`; docs/consumers.md, "Wrapper mode and the restart policy").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CmdRestart {
    /// Start it again at the next X.509 update (upstream's behaviour; the default with `cmd`).
    #[default]
    OnRotation,
    /// Start it again after a backoff whenever it exits.
    Always,
    /// Stop the helper, which exits with the child's code (the default in wrapper mode).
    Never,
}

impl CmdRestart {
    /// The configuration spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OnRotation => "on-rotation",
            Self::Always => "always",
            Self::Never => "never",
        }
    }
}

impl FromStr for CmdRestart {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "on-rotation" => Ok(Self::OnRotation),
            "always" => Ok(Self::Always),
            "never" => Ok(Self::Never),
            _ => Err(()),
        }
    }
}

impl fmt::Display for CmdRestart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the files in `cert_dir` are laid out (`cert_dir_layout`; docs/consumers.md, "The whole
/// set at once").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CertDirLayout {
    /// Each file replaced on its own by a rename (upstream's layout; the default).
    #[default]
    Files,
    /// Every version of the whole set in its own directory, switched by one rename of the
    /// `..data` link; the configured names are links into it (the kubelet's layout for Secret
    /// volumes, which Envoy's `watched_directory` follows).
    Versioned,
}

impl CertDirLayout {
    /// The configuration spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Files => "files",
            Self::Versioned => "versioned",
        }
    }
}

impl FromStr for CertDirLayout {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "files" => Ok(Self::Files),
            "versioned" => Ok(Self::Versioned),
            _ => Err(()),
        }
    }
}

impl fmt::Display for CertDirLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses `30s`, `1m`, `1m30s`, `500ms`, `2h` (Go `time.ParseDuration` units ms/s/m/h).
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: u64 = rest.get(..digits)?.parse().ok()?;
        rest = rest.get(digits..)?;
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = rest.get(..unit_len)?;
        rest = rest.get(unit_len..)?;
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.checked_mul(60)?),
            "h" => Duration::from_secs(number.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
    }
    Some(total)
}

/// Formats a duration the way `parse_duration` reads it back (`30s`, `1500ms`).
pub(crate) fn format_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// `SIGHUP`, `HUP`, `hup` and `sighup` all name SIGHUP.
pub(crate) fn parse_signal(text: &str) -> Option<Signal> {
    let upper = text.trim().to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).ok()
}

#[cfg(test)]
mod tests;
