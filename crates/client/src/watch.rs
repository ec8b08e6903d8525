//! Reconnecting watches: streams that survive agent restarts (docs/behaviour.md#retries).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio_stream::{Stream, StreamExt as _};
use tokio_util::sync::CancellationToken;

use crate::client::Watch;
use crate::{AgentSocket, Backoff, Error, JwtBundleSet, WorkloadApiClient, X509Context};

/// What a reconnecting watch yields.
#[derive(Debug)]
#[non_exhaustive]
pub enum WatchEvent<T> {
    /// A validated message. After a reconnect the first one is a full fresh snapshot, possibly
    /// equal to the last one before the disconnect.
    Update(T),
    /// The stream broke with a retryable error; the watch reconnects after `retry_in`.
    Disconnected {
        /// Why the stream broke.
        error: Error,
        /// The backoff delay before the next attempt.
        retry_in: Duration,
    },
    /// A message failed validation (no SVIDs, bad DER, key not matching, ...). It was skipped
    /// and logged; the stream stays open and the previous snapshot stays current.
    Invalid(Error),
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;
type Opener<T> = fn(WorkloadApiClient) -> BoxFuture<Result<Watch<T>, Error>>;

struct Retrying<T> {
    client: WorkloadApiClient,
    backoff: Backoff,
    shutdown: CancellationToken,
    open: Opener<T>,
    stream: Option<Watch<T>>,
    sleep_before_next: Option<Duration>,
    done: bool,
    /// Whether any message has arrived yet (decides how loudly a failure is logged).
    delivered: bool,
    /// The agent's socket as it was when the last attempt failed.
    failed_with: Option<AgentSocket>,
}

type Item<T> = Result<WatchEvent<T>, Error>;
type Step<T> = BoxFuture<Option<(Item<T>, Retrying<T>)>>;

impl<T: Send + 'static> Retrying<T> {
    async fn step(mut self) -> Option<(Item<T>, Self)> {
        if self.done || self.shutdown.is_cancelled() {
            return None;
        }
        if let Some(delay) = self.sleep_before_next.take() {
            let failed_with = self
                .failed_with
                .take()
                .unwrap_or_else(|| self.client.agent_socket());
            let new_agent = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return None,
                new_agent = self.client.wait_to_retry(delay, failed_with) => new_agent,
            };
            if new_agent {
                // A restarted agent: start the schedule over against it.
                self.backoff.reset();
            }
        }
        let mut stream = if let Some(stream) = self.stream.take() {
            stream
        } else {
            let opened = tokio::select! {
                biased;
                () = self.shutdown.cancelled() => return None,
                opened = (self.open)(self.client.clone()) => opened,
            };
            match opened {
                Ok(stream) => stream,
                Err(error) => return Some(self.failed(error)),
            }
        };
        let next = tokio::select! {
            biased;
            () = self.shutdown.cancelled() => return None,
            next = stream.next() => next,
        };
        match next {
            Some(Ok(value)) => {
                self.backoff.reset();
                self.delivered = true;
                self.stream = Some(stream);
                Some((Ok(WatchEvent::Update(value)), self))
            }
            Some(Err(error @ (Error::EmptyResponse | Error::InvalidResponse { .. }))) => {
                tracing::warn!(error = %error.report(), "skipping invalid workload API message");
                self.stream = Some(stream);
                Some((Ok(WatchEvent::Invalid(error)), self))
            }
            Some(Err(error)) => Some(self.failed(error)),
            None => Some(self.failed(Error::StreamEnded)),
        }
    }

    fn failed(mut self, error: Error) -> (Item<T>, Self) {
        if !error.is_retryable() {
            tracing::error!(error = %error.report(), "workload API watch failed; not retrying");
            self.done = true;
            return (Err(error), self);
        }
        let retry_in = self.backoff.next_delay();
        self.failed_with = Some(self.client.agent_socket());
        if self.delivered {
            tracing::warn!(error = %error.report(), retry_in_ms = retry_in.as_millis(), "workload API watch disconnected; reconnecting");
        } else {
            // Until the first message the caller is still starting up and reports the final
            // error itself (for example at its start-up deadline): one clear line, not many.
            tracing::debug!(error = %error.report(), retry_in_ms = retry_in.as_millis(), "workload API not answering yet; retrying");
        }
        self.sleep_before_next = Some(retry_in);
        (Ok(WatchEvent::Disconnected { error, retry_in }), self)
    }
}

fn retrying<T: Send + 'static>(
    client: &WorkloadApiClient,
    backoff: Backoff,
    shutdown: CancellationToken,
    open: Opener<T>,
) -> impl Stream<Item = Item<T>> + Send + 'static {
    let state = Retrying {
        client: client.clone(),
        backoff,
        shutdown,
        open,
        stream: None,
        sleep_before_next: None,
        done: false,
        delivered: false,
        failed_with: None,
    };
    Unfold {
        state: Some(state),
        pending: None,
    }
}

impl WorkloadApiClient {
    /// Watches X.509 contexts across disconnects and agent restarts.
    ///
    /// Every error and end-of-stream is retried after a [`Backoff`] delay (announced as
    /// [`WatchEvent::Disconnected`]), except non-retryable ones (`InvalidArgument`,
    /// `Unimplemented`, see [`Error::is_retryable`]): such an error is yielded as the final
    /// `Err` and the stream ends. Invalid messages are skipped ([`WatchEvent::Invalid`]). The
    /// stream also ends, promptly and without an item, when `shutdown` is cancelled.
    pub fn watch_x509_context_retrying(
        &self,
        backoff: Backoff,
        shutdown: CancellationToken,
    ) -> impl Stream<Item = Result<WatchEvent<X509Context>, Error>> + Send + 'static {
        retrying(self, backoff, shutdown, |client| {
            Box::pin(async move { client.watch_x509_context().await })
        })
    }

    /// Watches JWT bundles across disconnects; same rules as
    /// [`Self::watch_x509_context_retrying`].
    pub fn watch_jwt_bundles_retrying(
        &self,
        backoff: Backoff,
        shutdown: CancellationToken,
    ) -> impl Stream<Item = Result<WatchEvent<JwtBundleSet>, Error>> + Send + 'static {
        retrying(self, backoff, shutdown, |client| {
            Box::pin(async move { client.watch_jwt_bundles().await })
        })
    }
}

/// A minimal `futures::stream::unfold` for one state type (avoids a dependency).
struct Unfold<T> {
    state: Option<Retrying<T>>,
    pending: Option<Step<T>>,
}

impl<T: Send + 'static> Stream for Unfold<T> {
    type Item = Item<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(state) = this.state.take() {
            this.pending = Some(Box::pin(state.step()));
        }
        let Some(pending) = this.pending.as_mut() else {
            return Poll::Ready(None);
        };
        match pending.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(result) => {
                this.pending = None;
                Poll::Ready(result.map(|(item, state)| {
                    this.state = Some(state);
                    item
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests;
