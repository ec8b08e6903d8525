//! The Workload API client: one call per RPC, responses validated into domain types.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::Mutex;
use tokio_stream::{Stream, StreamExt as _};
use tonic::transport::Channel;

use crate::pb;
use crate::transport::{self, GrpcClient};
use crate::{
    Endpoint, Error, JwtBundleSet, JwtSvid, SpiffeId, ValidatedJwtSvid, X509BundleSet, X509Context,
};

/// A client for one agent endpoint.
///
/// Construction does not connect; the first call does, so start-up retry policy stays with the
/// caller (or with [`crate::X509Source`]). Clones share one HTTP/2 connection, which tonic
/// re-establishes on demand after the agent restarts.
#[derive(Clone, Debug)]
pub struct WorkloadApiClient {
    endpoint: Endpoint,
    name: Arc<str>,
    channel: Arc<Mutex<Option<Channel>>>,
}

/// One open watch stream: each item is a validated message or the error that ended the stream.
///
/// Ends (`None`) after an error status or when the agent closes the stream; it does not
/// reconnect (see [`WorkloadApiClient::watch_x509_context_retrying`] for that). A message that
/// fails validation is yielded as `Err` without ending the stream.
pub struct Watch<T> {
    inner: Pin<Box<dyn Stream<Item = Result<T, Error>> + Send>>,
}

/// The stream returned by [`WorkloadApiClient::watch_x509_context`].
pub type X509ContextStream = Watch<X509Context>;

impl<T> Stream for Watch<T> {
    type Item = Result<T, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl<T> std::fmt::Debug for Watch<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watch")
    }
}

impl<T: Send + 'static> Watch<T> {
    fn new<M>(streaming: tonic::Streaming<M>, endpoint: Arc<str>) -> Self
    where
        M: Send + 'static,
        T: TryFrom<M, Error = Error>,
    {
        let inner = streaming.map(move |item| match item {
            Ok(msg) => T::try_from(msg),
            Err(status) => Err(Error::from_status(status, &endpoint)),
        });
        Self {
            inner: Box::pin(inner),
        }
    }
}

impl WorkloadApiClient {
    /// A client for `endpoint`. Does not connect yet.
    #[must_use]
    pub fn new(endpoint: Endpoint) -> Self {
        let name = endpoint.to_string().into();
        Self {
            endpoint,
            name,
            channel: Arc::new(Mutex::new(None)),
        }
    }

    /// A client for the endpoint in `SPIFFE_ENDPOINT_SOCKET`.
    ///
    /// # Errors
    /// [`Error::Endpoint`] when the variable is unset, empty or not a valid address.
    pub fn from_env() -> Result<Self, Error> {
        match Endpoint::from_env()? {
            Some(endpoint) => Ok(Self::new(endpoint)),
            None => Err(Error::Endpoint(crate::EndpointError::Empty)),
        }
    }

    /// What the source builders connect with: the given client, else one for the given
    /// endpoint, else one for `SPIFFE_ENDPOINT_SOCKET`.
    pub(crate) fn chosen(client: Option<Self>, endpoint: Option<Endpoint>) -> Result<Self, Error> {
        match (client, endpoint) {
            (Some(client), _) => Ok(client),
            (None, Some(endpoint)) => Ok(Self::new(endpoint)),
            (None, None) => Self::from_env(),
        }
    }

    /// The endpoint this client talks to.
    #[must_use]
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    pub(crate) async fn grpc(&self) -> Result<GrpcClient, Error> {
        let mut guard = self.channel.lock().await;
        if let Some(channel) = guard.as_ref() {
            return Ok(transport::grpc_client(channel.clone()));
        }
        let channel = transport::connect(&self.endpoint).await?;
        *guard = Some(channel.clone());
        Ok(transport::grpc_client(channel))
    }

    /// Drops the shared connection after a transport failure so the next call dials afresh.
    async fn check<T>(&self, result: Result<T, tonic::Status>) -> Result<T, Error> {
        match result {
            Ok(value) => Ok(value),
            Err(status) => {
                let err = Error::from_status(status, &self.name);
                if matches!(err, Error::Transport { .. }) {
                    *self.channel.lock().await = None;
                }
                Err(err)
            }
        }
    }

    /// Fetches the current X.509 context: the first message of the X.509 stream.
    ///
    /// # Errors
    /// Transport and status errors, [`Error::EmptyResponse`] / [`Error::InvalidResponse`] for a
    /// message that fails validation, [`Error::StreamEnded`] if the stream ends first.
    pub async fn fetch_x509_context(&self) -> Result<X509Context, Error> {
        first(self.watch_x509_context().await?).await
    }

    /// Opens the X.509 stream: a new [`X509Context`] each time the agent's view changes.
    ///
    /// # Errors
    /// Transport and status errors while opening the stream.
    pub async fn watch_x509_context(&self) -> Result<X509ContextStream, Error> {
        let mut grpc = self.grpc().await?;
        let response = self
            .check(grpc.fetch_x509svid(pb::X509svidRequest {}).await)
            .await?;
        Ok(Watch::new(response.into_inner(), self.name.clone()))
    }

    /// Fetches the X.509 bundles (own and federated trust domains).
    ///
    /// # Errors
    /// As [`Self::fetch_x509_context`].
    pub async fn fetch_x509_bundles(&self) -> Result<X509BundleSet, Error> {
        first(self.watch_x509_bundles().await?).await
    }

    /// Opens the X.509 bundle stream.
    ///
    /// # Errors
    /// Transport and status errors while opening the stream.
    pub async fn watch_x509_bundles(&self) -> Result<Watch<X509BundleSet>, Error> {
        let mut grpc = self.grpc().await?;
        let response = self
            .check(grpc.fetch_x509_bundles(pb::X509BundlesRequest {}).await)
            .await?;
        Ok(Watch::new(response.into_inner(), self.name.clone()))
    }

    /// Fetches JWT-SVIDs for `audiences`; all the caller is entitled to, or only `subject`'s.
    ///
    /// # Errors
    /// Transport and status errors (SPIRE answers `InvalidArgument` for an empty audience list),
    /// [`Error::EmptyResponse`] when no SVID comes back, [`Error::InvalidResponse`] for a token
    /// whose claims do not parse.
    pub async fn fetch_jwt_svids(
        &self,
        audiences: &[String],
        subject: Option<&SpiffeId>,
    ) -> Result<Vec<JwtSvid>, Error> {
        let request = pb::JwtsvidRequest {
            audience: audiences.to_vec(),
            spiffe_id: subject.map(ToString::to_string).unwrap_or_default(),
        };
        let mut grpc = self.grpc().await?;
        let response = self
            .check(grpc.fetch_jwtsvid(request).await)
            .await?
            .into_inner();
        if response.svids.is_empty() {
            return Err(Error::EmptyResponse);
        }
        response.svids.into_iter().map(JwtSvid::try_from).collect()
    }

    /// Fetches the JWT bundles (JWKS by trust domain).
    ///
    /// # Errors
    /// As [`Self::fetch_x509_context`].
    pub async fn fetch_jwt_bundles(&self) -> Result<JwtBundleSet, Error> {
        first(self.watch_jwt_bundles().await?).await
    }

    /// Opens the JWT bundle stream.
    ///
    /// # Errors
    /// Transport and status errors while opening the stream.
    pub async fn watch_jwt_bundles(&self) -> Result<Watch<JwtBundleSet>, Error> {
        let mut grpc = self.grpc().await?;
        let response = self
            .check(grpc.fetch_jwt_bundles(pb::JwtBundlesRequest {}).await)
            .await?;
        Ok(Watch::new(response.into_inner(), self.name.clone()))
    }

    /// Asks the agent to validate `token` for `audience`.
    ///
    /// # Errors
    /// Transport errors; a status error (SPIRE: `InvalidArgument`) when the token is not valid
    /// for the audience.
    pub async fn validate_jwt_svid(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<ValidatedJwtSvid, Error> {
        let request = pb::ValidateJwtsvidRequest {
            audience: audience.to_owned(),
            svid: token.to_owned(),
        };
        let mut grpc = self.grpc().await?;
        let response = self.check(grpc.validate_jwtsvid(request).await).await?;
        ValidatedJwtSvid::try_from(response.into_inner())
    }
}

async fn first<T>(mut stream: Watch<T>) -> Result<T, Error> {
    stream.next().await.unwrap_or(Err(Error::StreamEnded))
}
