//! Backoff for the worker's loops while Redis is failing: log once when it
//! starts failing and once when it recovers, sleep longer between tries,
//! and count each backoff (`sluice_redis_backoffs_total`) with a gauge
//! (`sluice_redis_failing`) that is 1 while a loop is failing.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// Delays of 100 ms doubling to 5 s, with jitter, forever.
pub(crate) struct LoopBackoff {
    what: &'static str,
    delays: backon::ExponentialBackoff,
    failing: bool,
}

impl LoopBackoff {
    pub(crate) fn new(what: &'static str) -> Self {
        Self {
            what,
            delays: Self::fresh(),
            failing: false,
        }
    }

    fn fresh() -> backon::ExponentialBackoff {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(5))
            .without_max_times()
            .with_jitter()
            // backon without its `std` feature seeds every jitter alike, so
            // every worker of a fleet would retry in step: seed each one.
            .with_jitter_seed(rand::random())
            .build()
    }

    /// Record a failure; returns how long to wait before the next try.
    pub(crate) fn failed(&mut self, queue: &str, error: &crate::Error) -> Duration {
        let wait = self.delays.next().unwrap_or(Duration::from_secs(5));
        metrics::counter!("sluice_redis_backoffs_total", "queue" => queue.to_owned(), "loop" => self.what)
            .increment(1);
        metrics::gauge!("sluice_redis_failing", "queue" => queue.to_owned(), "loop" => self.what)
            .set(1.0);
        if self.failing {
            tracing::debug!(queue, loop_name = self.what, %error, ?wait, "still failing; backing off");
        } else {
            tracing::warn!(queue, loop_name = self.what, %error, ?wait, "redis call failed; backing off");
        }
        self.failing = true;
        wait
    }

    /// Record a success.
    pub(crate) fn succeeded(&mut self, queue: &str) {
        if self.failing {
            metrics::gauge!("sluice_redis_failing", "queue" => queue.to_owned(), "loop" => self.what)
                .set(0.0);
            tracing::info!(
                queue,
                loop_name = self.what,
                "redis reachable again; resumed"
            );
            self.failing = false;
            self.delays = Self::fresh();
        }
    }
}
