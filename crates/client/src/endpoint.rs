//! Workload API endpoint addresses (SPIFFE Workload Endpoint spec, §4 "Locating the Endpoint").
//!
//! Accepted forms: `unix:///abs/path`, `unix:/abs/path`, a bare absolute path `/abs/path` (what
//! the Go `spiffe-helper` has always accepted), and `tcp://IP:port` with an IP literal.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The environment variable the SPIFFE Workload Endpoint spec defines for the agent address.
pub const SPIFFE_ENDPOINT_SOCKET: &str = "SPIFFE_ENDPOINT_SOCKET";

/// Where the Workload API is served.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// A Unix domain socket at an absolute path.
    Unix(PathBuf),
    /// A TCP address (IP literal and port).
    Tcp(SocketAddr),
}

/// Why an address is not a valid Workload API endpoint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EndpointError {
    /// The address is empty.
    #[error("workload API address is empty")]
    Empty,
    /// A Unix socket path that is not absolute.
    #[error(
        "{address:?}: unix socket path must be absolute (for example unix:///run/spire/sockets/agent.sock)"
    )]
    RelativePath {
        /// The address as given.
        address: String,
    },
    /// `unix://host/path`: a host part is not allowed.
    #[error("{address:?}: unix address must not have a host; write unix:///path (three slashes)")]
    UnixHost {
        /// The address as given.
        address: String,
    },
    /// A TCP address whose host is a name rather than an IP literal.
    #[error(
        "{address:?}: tcp address must use an IP literal, not a host name (for example tcp://127.0.0.1:8081)"
    )]
    TcpHostName {
        /// The address as given.
        address: String,
    },
    /// A TCP address without a port.
    #[error("{address:?}: tcp address must include a port (for example tcp://127.0.0.1:8081)")]
    MissingPort {
        /// The address as given.
        address: String,
    },
    /// A query string or fragment.
    #[error("{address:?}: address must not contain a query or fragment")]
    QueryOrFragment {
        /// The address as given.
        address: String,
    },
    /// A scheme other than `unix` or `tcp`.
    #[error("{address:?}: unsupported scheme; use unix:///path, /path or tcp://IP:port")]
    UnsupportedScheme {
        /// The address as given.
        address: String,
    },
    /// Something else that does not parse, with the reason.
    #[error("{address:?}: {reason}")]
    Invalid {
        /// The address as given.
        address: String,
        /// What is wrong.
        reason: String,
    },
}

impl Endpoint {
    /// Parses an endpoint address in one of the accepted forms.
    ///
    /// # Errors
    /// Returns an [`EndpointError`] naming what is wrong and the form that would be valid.
    pub fn parse(address: &str) -> Result<Self, EndpointError> {
        let owned = || address.to_owned();
        if address.is_empty() {
            return Err(EndpointError::Empty);
        }
        if address.contains('?') || address.contains('#') {
            return Err(EndpointError::QueryOrFragment { address: owned() });
        }
        if let Some(rest) = address.strip_prefix("unix:") {
            let path = if let Some(after) = rest.strip_prefix("//") {
                if !after.starts_with('/') {
                    return Err(if after.is_empty() {
                        EndpointError::Invalid {
                            address: owned(),
                            reason: "unix address has no path".into(),
                        }
                    } else {
                        EndpointError::UnixHost { address: owned() }
                    });
                }
                after
            } else {
                rest
            };
            return Self::unix_path(path, address);
        }
        if let Some(rest) = address.strip_prefix("tcp://") {
            return Self::tcp(rest, address);
        }
        if address.starts_with('/') {
            return Self::unix_path(address, address);
        }
        if address.contains("://") || address.starts_with("tcp:") {
            return Err(EndpointError::UnsupportedScheme { address: owned() });
        }
        Err(EndpointError::RelativePath { address: owned() })
    }

    /// Reads the endpoint from `SPIFFE_ENDPOINT_SOCKET`; `Ok(None)` when it is unset or empty.
    ///
    /// # Errors
    /// Returns an [`EndpointError`] when the variable is set but not a valid address.
    pub fn from_env() -> Result<Option<Self>, EndpointError> {
        match std::env::var(SPIFFE_ENDPOINT_SOCKET) {
            Ok(value) if !value.is_empty() => Self::parse(&value).map(Some),
            _ => Ok(None),
        }
    }

    /// The socket path, for a Unix endpoint.
    #[must_use]
    pub fn unix_path_ref(&self) -> Option<&Path> {
        match self {
            Self::Unix(path) => Some(path),
            Self::Tcp(_) => None,
        }
    }

    fn unix_path(path: &str, address: &str) -> Result<Self, EndpointError> {
        if path.is_empty() {
            return Err(EndpointError::Invalid {
                address: address.to_owned(),
                reason: "unix address has no path".into(),
            });
        }
        if !path.starts_with('/') {
            return Err(EndpointError::RelativePath {
                address: address.to_owned(),
            });
        }
        Ok(Self::Unix(PathBuf::from(path)))
    }

    fn tcp(rest: &str, address: &str) -> Result<Self, EndpointError> {
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if let Ok(addr) = rest.parse::<SocketAddr>() {
            return Ok(Self::Tcp(addr));
        }
        let host = rest.trim_start_matches('[').trim_end_matches(']');
        if host.parse::<IpAddr>().is_ok() {
            return Err(EndpointError::MissingPort {
                address: address.to_owned(),
            });
        }
        match rest.rsplit_once(':') {
            Some((host, port)) if host.parse::<IpAddr>().is_err() && !host.is_empty() => {
                if port.parse::<u16>().is_ok() {
                    Err(EndpointError::TcpHostName {
                        address: address.to_owned(),
                    })
                } else {
                    Err(EndpointError::Invalid {
                        address: address.to_owned(),
                        reason: format!("invalid port {port:?}"),
                    })
                }
            }
            Some((_, port)) => Err(EndpointError::Invalid {
                address: address.to_owned(),
                reason: format!("invalid port {port:?}"),
            }),
            None if rest.is_empty() => Err(EndpointError::Invalid {
                address: address.to_owned(),
                reason: "tcp address has no host".into(),
            }),
            None => Err(EndpointError::TcpHostName {
                address: address.to_owned(),
            }),
        }
    }
}

impl FromStr for Endpoint {
    type Err = EndpointError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
            Self::Tcp(addr) => write!(f, "tcp://{addr}"),
        }
    }
}

#[cfg(test)]
mod tests;
