//! tonic: the server connection's connect info is the peer.

use tonic::transport::server::Connected;

use super::{SpiffePeer, SpiffeServerStream};

impl Connected for SpiffeServerStream {
    type ConnectInfo = SpiffePeer;

    fn connect_info(&self) -> SpiffePeer {
        self.peer().clone()
    }
}

/// The caller of a tonic request served from a [`SpiffeIncoming`](super::SpiffeIncoming):
/// its SPIFFE ID, address and certificates. `None` for a request that came another way.
///
/// ```no_run
/// use spiffe_workload_tls::adapters::tonic_peer;
///
/// fn caller<T>(request: &tonic::Request<T>) -> Result<String, tonic::Status> {
///     tonic_peer(request)
///         .and_then(|peer| peer.id())
///         .map(ToString::to_string)
///         .ok_or_else(|| tonic::Status::unauthenticated("no SPIFFE ID"))
/// }
/// ```
#[must_use]
pub fn tonic_peer<T>(request: &tonic::Request<T>) -> Option<&SpiffePeer> {
    request.extensions().get::<SpiffePeer>()
}
