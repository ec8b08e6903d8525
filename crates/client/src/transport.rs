//! Connecting to the agent: Unix socket or TCP, plus the security header interceptor.

use std::time::Duration;

use hyper_util::rt::TokioIo;
use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint as TonicEndpoint};
use tower::service_fn;

use crate::pb::spiffe_workload_api_client::SpiffeWorkloadApiClient;
use crate::{Endpoint, Error};

/// The metadata key every Workload API call must carry (SPIFFE Workload API spec §6.2.1).
pub(crate) const SECURITY_HEADER: &str = "workload.spiffe.io";

/// Bounds connection establishment (a TCP peer that drops SYNs would otherwise hang a caller).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Adds `workload.spiffe.io: true` to every request; agents reject calls without it.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SecurityHeader;

impl Interceptor for SecurityHeader {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert(SECURITY_HEADER, MetadataValue::from_static("true"));
        Ok(request)
    }
}

pub(crate) type GrpcClient = SpiffeWorkloadApiClient<InterceptedService<Channel, SecurityHeader>>;

/// Opens an HTTP/2 connection to the agent.
///
/// # Errors
/// [`Error::Transport`] naming the endpoint and the OS error.
pub(crate) async fn connect(endpoint: &Endpoint) -> Result<Channel, Error> {
    let name = endpoint.to_string();
    let result = match endpoint {
        Endpoint::Unix(path) => {
            let path = path.clone();
            // The URI is required by tonic but unused: the connector ignores it.
            TonicEndpoint::from_static("http://localhost")
                .connect_timeout(CONNECT_TIMEOUT)
                .connect_with_connector(service_fn(move |_: tonic::transport::Uri| {
                    let path = path.clone();
                    async move {
                        let stream = tokio::net::UnixStream::connect(path).await?;
                        Ok::<_, std::io::Error>(TokioIo::new(stream))
                    }
                }))
                .await
        }
        Endpoint::Tcp(addr) => {
            let uri = format!("http://{addr}");
            match TonicEndpoint::from_shared(uri) {
                Ok(ep) => ep.connect_timeout(CONNECT_TIMEOUT).connect().await,
                Err(e) => return Err(Error::from_transport(e, &name)),
            }
        }
    };
    result.map_err(|e| Error::from_transport(e, &name))
}

pub(crate) fn grpc_client(channel: Channel) -> GrpcClient {
    SpiffeWorkloadApiClient::with_interceptor(channel, SecurityHeader)
}
