//! The tick comes once per period, never before, and keeps coming (lower bounds only: a loaded
//! machine may deliver late, never early).

use std::time::Duration;

use tokio::time::Instant;

use super::Ticker;

#[tokio::test(flavor = "current_thread")]
async fn ticks_once_per_period_starting_one_period_after_creation() {
    let period = Duration::from_millis(200);
    let start = Instant::now();
    let mut ticker = Ticker::new(period);
    #[cfg(target_os = "linux")]
    assert!(
        matches!(ticker.clock, super::Clock::Kernel(_)),
        "the kernel timer is used on Linux"
    );
    for n in 1..=3u32 {
        ticker.tick().await;
        let elapsed = start.elapsed();
        // Not early: the n-th tick comes no sooner than n periods after creation.
        assert!(elapsed >= period * n, "tick {n} after {elapsed:?}");
    }
}
