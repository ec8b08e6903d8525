//! Unit tests. Each mutation is checked on the resulting pod (the patch applied with
//! `json-patch` to the pod as submitted), never on the patch text, except where the text is
//! the point (RFC 6901 escaping).

mod annotations;
mod docs;
mod inject;
mod refusals;
mod review;
mod settings;
mod support;
