//! Exponential backoff with jitter for reconnecting to the agent (docs/behaviour.md#retries).

use std::time::Duration;

/// Default first delay.
pub const DEFAULT_INITIAL_DELAY: Duration = Duration::from_millis(100);
/// Default cap, 30 s (docs/behaviour.md#retries).
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);

/// Exponential backoff: `initial`, doubling up to `max`, each delay jittered by ±20% (and never
/// above `max`) so that many workloads restarted with their agent do not reconnect in lockstep.
///
/// ```
/// # use std::time::Duration;
/// # use spiffe_workload_client::Backoff;
/// let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
/// let first = backoff.next_delay();
/// assert!(first >= Duration::from_millis(80) && first <= Duration::from_millis(120));
/// backoff.reset(); // after a success
/// ```
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
    jitter: bool,
}

impl Backoff {
    /// A backoff starting at `initial` and capped at `max`.
    #[must_use]
    pub fn new(initial: Duration, max: Duration) -> Self {
        let max = max.max(initial);
        Self {
            initial,
            max,
            current: initial,
            jitter: true,
        }
    }

    /// The same doubling schedule without jitter: `initial`, `2 * initial`, ... up to `max`.
    ///
    /// For callers whose schedule must be predictable (tests with paused time, or a retry that
    /// is already spread out by something else); prefer [`Self::new`] for reconnects.
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use spiffe_workload_client::Backoff;
    /// let mut backoff = Backoff::exact(Duration::from_secs(1), Duration::from_secs(3));
    /// assert_eq!(backoff.next_delay(), Duration::from_secs(1));
    /// assert_eq!(backoff.next_delay(), Duration::from_secs(2));
    /// assert_eq!(backoff.next_delay(), Duration::from_secs(3));
    /// ```
    #[must_use]
    pub fn exact(initial: Duration, max: Duration) -> Self {
        Self {
            jitter: false,
            ..Self::new(initial, max)
        }
    }

    /// The delay before the next attempt; each call doubles the base up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = self.current.saturating_mul(2).min(self.max);
        if !self.jitter {
            return base;
        }
        let factor = 0.8 + 0.4 * fastrand::f64();
        base.mul_f64(factor).min(self.max)
    }

    /// Starts over from the initial delay (call after a success).
    pub fn reset(&mut self) {
        self.current = self.initial;
    }
}

impl Default for Backoff {
    /// 100 ms doubling to 30 s.
    fn default() -> Self {
        Self::new(DEFAULT_INITIAL_DELAY, DEFAULT_MAX_DELAY)
    }
}

#[cfg(test)]
mod tests;
