//! The crate's error type.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Which file-system step failed; carried by [`PemError::Io`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoOp {
    /// Creating the exclusive temporary file next to the target.
    CreateTemp,
    /// Setting the final mode on the temporary file (`fchmod`).
    SetMode,
    /// Writing the contents into the temporary file.
    Write,
    /// `fsync` of the temporary file.
    Fsync,
    /// Renaming the temporary file over the target.
    Rename,
    /// Opening or `fsync`ing the directory after the rename.
    FsyncDir,
    /// Creating a directory (with parents).
    Mkdir,
    /// Listing a directory (stray temp-file clean-up, federated bundle directory).
    ReadDir,
    /// Reading a file (the federated bundle directory's ownership record).
    Read,
    /// Removing a file (a federated bundle whose trust domain disappeared).
    Remove,
    /// Creating a symbolic link (the versioned layout's `..data` and per-file links).
    Symlink,
}

impl fmt::Display for IoOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::CreateTemp => "create temporary file",
            Self::SetMode => "set mode of temporary file",
            Self::Write => "write temporary file",
            Self::Fsync => "fsync temporary file",
            Self::Rename => "rename temporary file over",
            Self::FsyncDir => "fsync directory of",
            Self::Mkdir => "create directory",
            Self::ReadDir => "list directory",
            Self::Read => "read",
            Self::Remove => "remove",
            Self::Symlink => "create symbolic link",
        })
    }
}

/// Where a rejected certificate came from; carried by [`PemError::InvalidCertificate`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CertSource {
    /// The SVID chain (index 0 is the leaf).
    Chain,
    /// The roots of the SVID's own trust domain.
    Bundle,
    /// The roots of a federated trust domain (name without `spiffe://`).
    Federated(String),
}

impl fmt::Display for CertSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Chain => f.write_str("SVID chain"),
            Self::Bundle => f.write_str("trust bundle"),
            Self::Federated(td) => write!(f, "federated bundle of {td:?}"),
        }
    }
}

/// Everything that can go wrong while rendering or writing SPIFFE material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PemError {
    /// A file-system operation failed; nothing half-written is left at `path`.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// The step that failed.
        op: IoOp,
        /// The target file (or directory) the step was about.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: io::Error,
    },
    /// A certificate is not a single well-formed DER X.509 certificate.
    #[error("certificate {index} of the {source_kind} is not valid DER X.509: {reason}")]
    InvalidCertificate {
        /// Which list the certificate came from.
        source_kind: CertSource,
        /// Zero-based position in that list.
        index: usize,
        /// What the parser rejected.
        reason: String,
    },
    /// The SVID chain is empty: there is no leaf certificate to write.
    #[error("the SVID chain is empty")]
    EmptyChain,
    /// The private key is empty.
    #[error("the SVID private key is empty")]
    EmptyKey,
    /// `omit_expired` would drop the leaf certificate itself; writing an SVID file
    /// without a certificate would only break the consumer, so nothing is written.
    #[error(
        "the SVID leaf certificate expired (NotAfter {not_after_unix} s since epoch) and omit_expired is set"
    )]
    LeafExpired {
        /// The leaf's `NotAfter`, in seconds since the Unix epoch.
        not_after_unix: i64,
    },
    /// A federated trust-domain name cannot be used as a file name.
    #[error("trust domain name {name:?} cannot be used as a file name")]
    InvalidTrustDomainName {
        /// The rejected name.
        name: String,
    },
    /// A PKCS#12 keystore or truststore cannot be built.
    #[error("PKCS#12: {reason}")]
    Pkcs12 {
        /// What failed (never key bytes or the password).
        reason: String,
    },
}

impl PemError {
    pub(crate) fn io(op: IoOp, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
