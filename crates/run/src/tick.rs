//! The daemon's periodic tick (the liveness log line, docs/behaviour.md "Liveness log line"),
//! on one kernel timer so that an idle daemon wakes once per period.
//!
//! A tokio timer of 30 s sits in the top levels of tokio's hierarchical timer wheel: the runtime
//! wakes at the wheel's slot boundaries to move it down a level, then again at the deadline,
//! and re-arming it afterwards wakes the runtime once more (`strace` of an idle daemon: four
//! `epoll_wait` returns per 30 s, three of them timeouts; docs/benchmarks.md). A `timerfd`
//! (`timerfd_create(2)`) with a 30 s interval becomes readable once per period, and the runtime
//! sleeps in `epoll_wait` with no timeout in between.

use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

/// Completes once per period, the first time one period after [`Ticker::new`].
#[derive(Debug)]
pub(crate) struct Ticker {
    period: Duration,
    clock: Clock,
}

#[derive(Debug)]
enum Clock {
    #[cfg(target_os = "linux")]
    Kernel(kernel::TimerFd),
    Tokio(Interval),
}

impl Ticker {
    /// A ticker with the given period; must be called inside the runtime. Falls back to a
    /// tokio interval where no `timerfd` can be had.
    pub(crate) fn new(period: Duration) -> Self {
        #[cfg(target_os = "linux")]
        match kernel::TimerFd::new(period) {
            Ok(fd) => {
                return Self {
                    period,
                    clock: Clock::Kernel(fd),
                };
            }
            Err(error) => {
                tracing::debug!(%error, "no timerfd for the periodic tick; using a tokio timer");
            }
        }
        Self {
            period,
            clock: Clock::Tokio(interval(period)),
        }
    }

    /// Waits for the next period. Periods missed meanwhile are not made up for.
    pub(crate) async fn tick(&mut self) {
        match &mut self.clock {
            #[cfg(target_os = "linux")]
            Clock::Kernel(fd) => match fd.expired().await {
                Ok(()) => return,
                Err(error) => {
                    tracing::debug!(%error, "the timerfd of the periodic tick failed; using a tokio timer");
                    self.clock = Clock::Tokio(interval(self.period));
                }
            },
            Clock::Tokio(_) => {}
        }
        if let Clock::Tokio(interval) = &mut self.clock {
            interval.tick().await;
        }
    }
}

/// A tokio interval whose first tick is one period from now, like the `timerfd`'s.
fn interval(period: Duration) -> Interval {
    let mut interval = tokio::time::interval_at(Instant::now() + period, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

#[cfg(target_os = "linux")]
mod kernel {
    use std::io;
    use std::os::fd::{AsFd as _, AsRawFd, RawFd};
    use std::time::Duration;

    use nix::sys::time::TimeSpec;
    use nix::sys::timerfd::{ClockId, Expiration, TimerFlags, TimerSetTimeFlags};
    use tokio::io::Interest;
    use tokio::io::unix::AsyncFd;

    /// `tokio`'s `AsyncFd` wants `AsRawFd`; nix's `TimerFd` gives `AsFd`.
    #[derive(Debug)]
    struct Fd(nix::sys::timerfd::TimerFd);

    impl AsRawFd for Fd {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_fd().as_raw_fd()
        }
    }

    /// A non-blocking `CLOCK_MONOTONIC` timerfd registered with the runtime's reactor.
    #[derive(Debug)]
    pub(super) struct TimerFd(AsyncFd<Fd>);

    impl TimerFd {
        pub(super) fn new(period: Duration) -> io::Result<Self> {
            let fd = nix::sys::timerfd::TimerFd::new(
                ClockId::CLOCK_MONOTONIC,
                TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
            )?;
            // First expiry one period from now, then every period.
            fd.set(
                Expiration::Interval(TimeSpec::from_duration(period)),
                TimerSetTimeFlags::empty(),
            )?;
            #[expect(
                unsafe_code,
                reason = "tokio's only non-deprecated AsyncFd constructor"
            )]
            // SAFETY: `Fd` owns the timerfd and the `AsyncFd` owns the `Fd` until it is dropped;
            // `as_raw_fd` always returns that one open descriptor, and nothing hands out `&mut`
            // access to it (only `get_ref` is used).
            let registered = unsafe { AsyncFd::register_with_interest(Fd(fd), Interest::READABLE) };
            registered.map(Self).map_err(|error| error.into_parts().1)
        }

        /// Waits until the timer has expired at least once since the last call, and consumes
        /// the expirations.
        pub(super) async fn expired(&mut self) -> io::Result<()> {
            loop {
                let mut ready = self.0.readable().await?;
                // `read` of the expiration count; EAGAIN (readiness was stale) clears the
                // readiness and waits again.
                if let Ok(result) =
                    ready.try_io(|fd| fd.get_ref().0.wait().map_err(io::Error::from))
                {
                    return result;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
