//! Why a pod that asked for the helper cannot have it. Every message names the annotation (or
//! the part of the pod) and what would be valid, because it reaches the user as the admission
//! error of `kubectl apply` or of the `ReplicaSet`'s events.

/// An admission refusal: the pod is denied, with this as the reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// An annotation's value is not one the injector accepts.
    #[error("annotation {annotation}: {value:?} is not valid: {expected}")]
    InvalidAnnotation {
        /// The full annotation key.
        annotation: String,
        /// The value as written.
        value: String,
        /// What would be valid.
        expected: String,
    },
    /// An annotation with the injector's prefix that it does not know (a typo would otherwise
    /// be ignored silently).
    #[error(
        "annotation {annotation} is not known{}; the injector reads {known}",
        suggestion.as_ref().map(|s| format!(" (did you mean {s}?)")).unwrap_or_default()
    )]
    UnknownAnnotation {
        /// The full annotation key.
        annotation: String,
        /// A known annotation with a similar spelling.
        suggestion: Option<String>,
        /// The annotations the injector reads.
        known: String,
    },
    /// Annotations that are valid alone but not together.
    #[error("annotation {annotation} cannot be combined with {others}: {why}")]
    Conflict {
        /// The annotation that rules the others out.
        annotation: String,
        /// The annotations it conflicts with, comma-separated.
        others: String,
        /// Why, and what to do instead.
        why: String,
    },
    /// The pod spec cannot take the helper as asked (a name or path already taken,
    /// `shareProcessNamespace: false` with a pid file, ...).
    #[error("annotation {annotation}: {reason}")]
    PodSpec {
        /// The annotation whose request the pod cannot meet (`…/inject` when it is the
        /// injection as such).
        annotation: String,
        /// What in the pod is in the way, and what to change.
        reason: String,
    },
    /// The helper itself would refuse the configuration the annotations make: its own
    /// validation (crates/config), with variables named by their annotation.
    #[error("the helper would refuse this configuration: {message}")]
    HelperConfig {
        /// The helper's message.
        message: String,
    },
    /// The admission request cannot be read (not JSON, no pod, a pod that does not decode).
    #[error("malformed admission request: {reason}")]
    Malformed {
        /// What is wrong with it.
        reason: String,
    },
}

impl Refusal {
    /// The annotation the refusal is about, when it is about one (for logs and metrics).
    #[must_use]
    pub fn annotation(&self) -> Option<&str> {
        match self {
            Self::InvalidAnnotation { annotation, .. }
            | Self::UnknownAnnotation { annotation, .. }
            | Self::Conflict { annotation, .. }
            | Self::PodSpec { annotation, .. } => Some(annotation),
            Self::HelperConfig { .. } | Self::Malformed { .. } => None,
        }
    }

    /// Whether the request itself could not be read (a client or API server problem, not the
    /// pod's author's).
    #[must_use]
    pub fn is_malformed(&self) -> bool {
        matches!(self, Self::Malformed { .. })
    }
}
