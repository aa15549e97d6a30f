//! The promoter: moves delayed jobs and retries to their priority stream
//! when they fall due.

use std::time::Duration;

use crate::backoff::LoopBackoff;
use crate::partition::Partition;
use crate::shutdown::Shutdown;

/// Longest sleep between two promotions: a delayed job becomes ready at most
/// this late (sooner when the next due time is known).
pub const DEFAULT_PROMOTE_INTERVAL: Duration = Duration::from_millis(200);

/// Jobs moved per call.
pub const DEFAULT_PROMOTE_BATCH: usize = 1000;

/// Settings of the promoter, the loop of each worker that moves delayed
/// jobs that fell due to their streams. Defaults: every 200 ms at the
/// longest (sooner when the next due time is known), 1,000 jobs per call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromoterConfig {
    /// Longest sleep between runs.
    pub interval: Duration,
    /// Jobs moved per call.
    pub batch: usize,
}

impl Default for PromoterConfig {
    fn default() -> Self {
        Self {
            interval: DEFAULT_PROMOTE_INTERVAL,
            batch: DEFAULT_PROMOTE_BATCH,
        }
    }
}

/// Promote due jobs until `stop`. Sleeps until the next job is due (at most
/// `interval`, since a sooner job may arrive meanwhile).
pub(crate) async fn run(queue: Partition, config: PromoterConfig, mut stop: Shutdown) {
    let mut backoff = LoopBackoff::new("promoter");
    while !stop.is_triggered() {
        let wait = match queue.promote_due(config.batch).await {
            Ok(p) if p.moved as usize >= config.batch => {
                backoff.succeeded(queue.name());
                continue;
            }
            Ok(p) => {
                backoff.succeeded(queue.name());
                p.next_due
                    .map_or(config.interval, |d| d.min(config.interval))
            }
            Err(e) => backoff.failed(queue.name(), &e),
        };
        stop.sleep(wait).await;
    }
}
