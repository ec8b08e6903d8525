//! The crate's error type and its classification (docs/behaviour.md#retries).

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::endpoint::EndpointError;
use crate::spiffe_id::SpiffeIdError;

/// A gRPC status code, copied so that no `tonic` type leaks into the public API.
///
/// `Display` prints the Go/gRPC spelling (`PermissionDenied`), which is what SPIRE operators see in
/// the agent's logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StatusCode {
    /// Not an error.
    Ok,
    /// The operation was cancelled.
    Cancelled,
    /// Unknown error; tonic also reports a connection cut by a dying agent this way.
    Unknown,
    /// The request is malformed (for the Workload API: typically the security header is missing).
    InvalidArgument,
    /// The deadline expired before the operation completed.
    DeadlineExceeded,
    /// Some requested entity was not found.
    NotFound,
    /// The entity already exists.
    AlreadyExists,
    /// The caller has no identity ("no identity issued"): no registration entry matches it (yet).
    PermissionDenied,
    /// Some resource has been exhausted.
    ResourceExhausted,
    /// The system is not in a state required for the operation.
    FailedPrecondition,
    /// The operation was aborted.
    Aborted,
    /// The operation was attempted past the valid range.
    OutOfRange,
    /// The operation is not implemented by the server.
    Unimplemented,
    /// Internal error.
    Internal,
    /// The service is currently unavailable.
    Unavailable,
    /// Unrecoverable data loss or corruption.
    DataLoss,
    /// The request lacks valid authentication credentials.
    Unauthenticated,
}

impl StatusCode {
    /// The name as gRPC spells it, for example `"PermissionDenied"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "OK",
            Self::Cancelled => "Canceled",
            Self::Unknown => "Unknown",
            Self::InvalidArgument => "InvalidArgument",
            Self::DeadlineExceeded => "DeadlineExceeded",
            Self::NotFound => "NotFound",
            Self::AlreadyExists => "AlreadyExists",
            Self::PermissionDenied => "PermissionDenied",
            Self::ResourceExhausted => "ResourceExhausted",
            Self::FailedPrecondition => "FailedPrecondition",
            Self::Aborted => "Aborted",
            Self::OutOfRange => "OutOfRange",
            Self::Unimplemented => "Unimplemented",
            Self::Internal => "Internal",
            Self::Unavailable => "Unavailable",
            Self::DataLoss => "DataLoss",
            Self::Unauthenticated => "Unauthenticated",
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<tonic::Code> for StatusCode {
    fn from(code: tonic::Code) -> Self {
        use tonic::Code as C;
        match code {
            C::Ok => Self::Ok,
            C::Cancelled => Self::Cancelled,
            C::Unknown => Self::Unknown,
            C::InvalidArgument => Self::InvalidArgument,
            C::DeadlineExceeded => Self::DeadlineExceeded,
            C::NotFound => Self::NotFound,
            C::AlreadyExists => Self::AlreadyExists,
            C::PermissionDenied => Self::PermissionDenied,
            C::ResourceExhausted => Self::ResourceExhausted,
            C::FailedPrecondition => Self::FailedPrecondition,
            C::Aborted => Self::Aborted,
            C::OutOfRange => Self::OutOfRange,
            C::Unimplemented => Self::Unimplemented,
            C::Internal => Self::Internal,
            C::Unavailable => Self::Unavailable,
            C::DataLoss => Self::DataLoss,
            C::Unauthenticated => Self::Unauthenticated,
        }
    }
}

/// Everything that can go wrong talking to the Workload API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint address is not valid.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The agent could not be reached, or the connection broke below gRPC.
    ///
    /// `Display` names the endpoint; the cause (the OS error and what wrapped it) is the
    /// [`source`](std::error::Error::source), a [`TransportError`]. [`Error::report`] prints
    /// both on one line: `connecting to unix:///run/spire/agent.sock: No such file or
    /// directory (os error 2)`.
    #[error("connecting to {endpoint}")]
    Transport {
        /// The endpoint, for example `unix:///run/spire/agent.sock`.
        endpoint: String,
        /// Why: the error the transport reported, kept.
        #[source]
        source: TransportError,
    },
    /// The agent answered with a gRPC error status.
    #[error("workload API returned {code}: {message}")]
    Status {
        /// The gRPC status code.
        code: StatusCode,
        /// The status message (SPIRE says for example "no identity issued").
        message: String,
    },
    /// The agent sent a response without any SVID.
    #[error("workload API response contains no SVIDs")]
    EmptyResponse,
    /// The agent sent a response that fails validation (bad DER, ID mismatch, key not matching
    /// the certificate, unreadable JWT, ...). It is never passed on.
    #[error("invalid workload API response: {reason}")]
    InvalidResponse {
        /// What is wrong with it.
        reason: String,
    },
    /// A SPIFFE ID or trust domain given by the caller does not parse.
    #[error("invalid SPIFFE ID or trust domain {input:?}: {reason}")]
    InvalidSpiffeId {
        /// The input as given.
        input: String,
        /// Which rule of the SPIFFE ID specification it breaks.
        reason: &'static str,
    },
    /// A deadline passed (start-up, or a call the caller bounded).
    #[error("timed out after {after:?}{}", last_error.as_ref().map(|e| format!("; last error: {}", e.report())).unwrap_or_default())]
    Timeout {
        /// How long was waited.
        after: Duration,
        /// The last error seen before the deadline, if any.
        last_error: Option<Box<Error>>,
    },
    /// The agent's answer holds no SVID that the caller's picker accepts, for example none with
    /// the configured hint (yet: entries propagate with a delay, so this is retryable).
    #[error("no {kind} {}", hint.as_ref().map_or_else(|| "suitable for the picker".to_owned(), |h| format!("with hint {h:?}")))]
    NoSuitableSvid {
        /// `"X.509-SVID"` or `"JWT-SVID"`.
        kind: &'static str,
        /// The hint asked for, when the choice was by hint.
        hint: Option<String>,
    },
    /// A watch stream ended without an error status (for example the agent went away cleanly).
    #[error("workload API stream ended")]
    StreamEnded,
    /// The source or watch was shut down.
    #[error("closed")]
    Closed,
    /// An SVID, key or bundle handed over by the caller (PEM or DER, from memory or files)
    /// fails the checks an agent's answer must pass (docs/validation.md). Never quotes key
    /// bytes or tokens.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// What was being read, for example `"X.509-SVID"` or `"X.509 bundle"`.
        what: &'static str,
        /// Which rule it breaks.
        reason: String,
    },
    /// A file could not be read.
    #[error("reading {}", path.display())]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// Whether trying again later can help (docs/behaviour.md#retries).
    ///
    /// Everything is retryable except `InvalidArgument` and `Unimplemented` statuses, invalid
    /// endpoints or IDs given by the caller, an expired deadline and a closed source. Notably
    /// `PermissionDenied` ("no identity issued") is retryable: registration entries propagate to
    /// the agent with a delay. `Unknown` and end-of-stream are retryable because that is how a
    /// dying agent shows up.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Status { code, .. } => !matches!(
                code,
                StatusCode::InvalidArgument | StatusCode::Unimplemented
            ),
            Self::Transport { .. }
            | Self::EmptyResponse
            | Self::InvalidResponse { .. }
            | Self::NoSuitableSvid { .. }
            | Self::StreamEnded
            | Self::Io { .. } => true,
            Self::Endpoint(_)
            | Self::InvalidSpiffeId { .. }
            | Self::Timeout { .. }
            | Self::Closed
            | Self::Invalid { .. } => false,
        }
    }

    /// The gRPC status code, when the agent answered with one.
    #[must_use]
    pub fn code(&self) -> Option<StatusCode> {
        match self {
            Self::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the agent refused because the caller has no identity (no matching entry).
    #[must_use]
    pub fn is_permission_denied(&self) -> bool {
        self.code() == Some(StatusCode::PermissionDenied)
    }

    /// This error and its causes on one line, as the helper logs them, for example
    /// `connecting to unix:///run/spire/agent.sock: No such file or directory (os error 2)`.
    /// `to_string()` is the first part only; the rest is the [`source`](StdError::source)
    /// chain. Generic wrapper messages ("transport error") and causes the line already says
    /// are left out.
    #[must_use]
    pub fn report(&self) -> String {
        error_chain(self)
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        Self::InvalidResponse {
            reason: reason.into(),
        }
    }

    /// Converts a tonic status; connection failures become [`Error::Transport`] keeping the
    /// status (and so its source chain down to the OS error), because tonic's own message
    /// ("transport error") names neither the socket nor the OS error.
    pub(crate) fn from_status(status: tonic::Status, endpoint: &str) -> Self {
        if let Some(source) = StdError::source(&status)
            && is_transport_failure(source)
        {
            let detail = error_chain(source);
            return Self::Transport {
                endpoint: endpoint.to_owned(),
                source: TransportError {
                    detail,
                    inner: Arc::new(status),
                },
            };
        }
        Self::Status {
            code: status.code().into(),
            message: status.message().to_owned(),
        }
    }

    pub(crate) fn from_transport<E>(err: E, endpoint: &str) -> Self
    where
        E: StdError + Send + Sync + 'static,
    {
        Self::Transport {
            endpoint: endpoint.to_owned(),
            source: TransportError {
                detail: error_chain(&err),
                inner: Arc::new(err),
            },
        }
    }
}

/// Why the agent could not be reached ([`Error::Transport`]'s source).
///
/// `Display` is the cause chain on one line, for example `No such file or directory (os error
/// 2)` (a socket that is not there) or `Connection refused (os error 111)` (a socket nobody
/// listens on). The error as the transport reported it is kept: [`Self::get_ref`] has the
/// whole chain, [`Self::io_error`] the operating system's error in it. `source()` is `None`,
/// since this message already says what the chain does (as [`std::io::Error`] does for a
/// custom error).
#[derive(Clone, Debug)]
pub struct TransportError {
    detail: String,
    inner: Arc<dyn StdError + Send + Sync + 'static>,
}

impl TransportError {
    /// The error as the transport reported it, with its whole `source()` chain.
    #[must_use]
    pub fn get_ref(&self) -> &(dyn StdError + Send + Sync + 'static) {
        &*self.inner
    }

    /// The operating system's error in the chain, if any: its `kind()` tells
    /// [`NotFound`](std::io::ErrorKind::NotFound) (no socket) from
    /// [`ConnectionRefused`](std::io::ErrorKind::ConnectionRefused) (nobody listening).
    #[must_use]
    pub fn io_error(&self) -> Option<&std::io::Error> {
        let mut current: Option<&(dyn StdError + 'static)> = Some(&*self.inner);
        while let Some(err) = current {
            if let Some(io) = err.downcast_ref::<std::io::Error>() {
                return Some(io);
            }
            current = err.source();
        }
        None
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl StdError for TransportError {}

impl From<SpiffeIdError> for Error {
    fn from(err: SpiffeIdError) -> Self {
        Self::InvalidSpiffeId {
            input: err.input().to_owned(),
            reason: err.reason(),
        }
    }
}

fn is_transport_failure(err: &(dyn StdError + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.is::<tonic::transport::Error>() || e.is::<std::io::Error>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// Joins an error and its sources with `": "`, skipping generic wrappers ("transport error") and
/// messages already contained in the previous one.
pub(crate) fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = e.to_string();
        let generic = text == "transport error" || text.is_empty();
        if !generic && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    if parts.is_empty() {
        return err.to_string();
    }
    // The innermost cause (the OS error) is the useful part; keep wrappers for context.
    parts.join(": ")
}

#[cfg(test)]
mod tests;
