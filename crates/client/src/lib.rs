//! Async client for the SPIFFE Workload API (work in progress).

mod endpoint;
#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
pub(crate) mod pb;

pub use endpoint::{Endpoint, EndpointError, SPIFFE_ENDPOINT_SOCKET};
