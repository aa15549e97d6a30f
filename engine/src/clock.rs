//! [`Clock`]: where the engine's wall-clock decisions read the time, so a
//! test can hold it still and move it by hand ([`ManualClock`]) instead of
//! shortening real intervals and waiting them out.
//!
//! What a clock decides: when a [`crate::Scheduler`] fires its next tick.
//! Job timing (delays, backoff, visibility) is decided by Redis's own
//! clock inside the scripts, so that every worker agrees on it; a clock on
//! one machine cannot move that.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// The time, and a way to wait for a moment of it.
pub trait Clock: Debug + Send + Sync + 'static {
    /// Now.
    fn now(&self) -> DateTime<Utc>;

    /// Resolve once the clock reads `deadline` or later.
    fn sleep_until(&self, deadline: DateTime<Utc>)
    -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The machine's clock (what every process uses unless told otherwise).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(
        &self,
        deadline: DateTime<Utc>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let wait = (deadline - Utc::now()).to_std().unwrap_or_default();
        Box::pin(tokio::time::sleep(wait))
    }
}

/// A clock that stands still until it is moved ([`ManualClock::advance`],
/// [`ManualClock::set`]); whoever sleeps on it wakes when it is moved past
/// their deadline. For tests.
#[derive(Debug)]
pub struct ManualClock {
    now: watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock reading `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: watch::Sender::new(start),
        }
    }

    /// Move the clock on by `by`.
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).expect("a test's step fits chrono's range");
        self.now.send_modify(|now| *now += by);
    }

    /// Set the clock to `to` (it may go back, as a machine's clock may).
    pub fn set(&self, to: DateTime<Utc>) {
        self.now.send_replace(to);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.borrow()
    }

    fn sleep_until(
        &self,
        deadline: DateTime<Utc>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        let mut now = self.now.subscribe();
        Box::pin(async move {
            // The sender lives as long as `self`, which this borrows.
            let _ = now.wait_for(|t| *t >= deadline).await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_clock_wakes_its_sleepers_only_when_moved_past_their_deadline() {
        let start = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .expect("date")
            .with_timezone(&Utc);
        let clock = ManualClock::new(start);
        let deadline = start + chrono::Duration::seconds(10);
        let mut sleeper = clock.sleep_until(deadline);
        assert!(
            futures::poll!(&mut sleeper).is_pending(),
            "asleep before the clock moves"
        );
        clock.advance(Duration::from_secs(9));
        assert!(futures::poll!(&mut sleeper).is_pending(), "9 s is not 10");
        clock.advance(Duration::from_secs(1));
        assert!(futures::poll!(&mut sleeper).is_ready(), "woken at 10 s");
        assert_eq!(clock.now(), deadline);
        // A deadline already past resolves at once.
        assert!(futures::poll!(clock.sleep_until(start)).is_ready());
    }
}
