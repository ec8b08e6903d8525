//! The outcome of [`crate::mutate`] for a pod the injector may admit.

use std::fmt;

/// What to do with an admitted pod.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Mutation {
    /// Admit the pod unchanged.
    Leave(Skip),
    /// Admit the pod with this JSON patch (RFC 6902) applied.
    Patch {
        /// The operations, against the pod as it was submitted.
        patch: json_patch::Patch,
        /// What the helper will warn about (returned as admission warnings).
        warnings: Vec<String>,
    },
}

/// Why a pod is admitted unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Skip {
    /// The pod does not carry `spiffe-helper-rust/inject: "true"`.
    NotOptedIn,
    /// The pod already has a container named `spiffe-helper`, or the injected marker.
    AlreadyInjected,
    /// The pod's namespace is one the injector never touches.
    ProtectedNamespace,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotOptedIn => "not opted in",
            Self::AlreadyInjected => "already injected",
            Self::ProtectedNamespace => "protected namespace",
        })
    }
}
