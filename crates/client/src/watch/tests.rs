use super::*;
use crate::Endpoint;

/// Reconnect attempts against a socket that does not exist: the delays between attempts
/// are the announced ones and follow the doubling schedule up to the cap (paused time, so
/// 10 minutes of schedule run in milliseconds).
#[tokio::test(start_paused = true)]
async fn reconnects_follow_the_backoff_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let client = WorkloadApiClient::new(Endpoint::Unix(dir.path().join("missing.sock")));
    let shutdown = CancellationToken::new();
    let max = Duration::from_secs(30);
    let stream = client.watch_x509_context_retrying(
        Backoff::new(Duration::from_millis(100), max),
        shutdown.clone(),
    );
    tokio::pin!(stream);
    let mut last: Option<(tokio::time::Instant, Duration)> = None;
    let mut base = Duration::from_millis(100);
    for _ in 0..14 {
        let event = stream.next().await.unwrap().unwrap();
        let now = tokio::time::Instant::now();
        let WatchEvent::Disconnected { error, retry_in } = event else {
            panic!("expected a disconnect, got {event:?}");
        };
        assert!(matches!(error, Error::Transport { .. }), "{error}");
        assert!(error.to_string().contains("missing.sock"), "{error}");
        assert!(retry_in >= base.mul_f64(0.8) && retry_in <= base.mul_f64(1.2).min(max));
        if let Some((at, announced)) = last {
            let waited = now - at;
            assert!(
                waited >= announced && waited < announced + Duration::from_millis(50),
                "waited {waited:?}, announced {announced:?}"
            );
        }
        last = Some((now, retry_in));
        base = (base * 2).min(max);
    }
    shutdown.cancel();
    assert!(stream.next().await.is_none(), "cancelled watch ends");
}

#[tokio::test]
async fn cancelled_watch_ends_without_items() {
    let client = WorkloadApiClient::new(Endpoint::Unix("/nonexistent/agent.sock".into()));
    let shutdown = CancellationToken::new();
    shutdown.cancel();
    let stream = client.watch_jwt_bundles_retrying(Backoff::default(), shutdown);
    tokio::pin!(stream);
    assert!(stream.next().await.is_none());
}
