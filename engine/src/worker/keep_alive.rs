//! The keep-alive: refreshes the claims of the attempts a worker holds.

use std::time::Duration;

use super::held::InFlight;
use crate::partition::Partition;
use crate::shutdown::Shutdown;

/// How soon a keep-alive that failed tries again (at most its interval).
pub(super) const KEEP_ALIVE_RETRY: Duration = Duration::from_millis(200);

/// How many times per visibility timeout the claims are refreshed.
pub(super) const REFRESHES_PER_VISIBILITY: u32 = 3;

/// Refresh the claims of running (and not yet settled) jobs, and announce
/// the worker's visibility timeout (see reclaim.lua).
pub(super) async fn keep_alive(
    queue: Partition,
    consumer: String,
    in_flight: InFlight,
    every: Duration,
    mut stop: Shutdown,
) {
    let visibility = queue.config().visibility_timeout;
    // The first pass announces the visibility timeout at once.
    let mut wait = None;
    loop {
        if let Some(wait) = wait {
            stop.sleep(wait).await;
        }
        let Some(entries) = in_flight.entries() else {
            return;
        };
        wait = Some(every);
        match queue.store().refresh(&consumer, visibility, &entries).await {
            Ok(()) => {}
            Err(e) if e.is_full() => {
                // Only the announcement of the visibility timeout was
                // refused: the claims themselves were refreshed (XCLAIM
                // runs while Redis is full).
                tracing::debug!(queue = queue.name(), error = %e, "redis is full: visibility timeout not announced");
            }
            Err(e) => {
                tracing::warn!(queue = queue.name(), error = %e, "could not refresh claims of running jobs");
                // Soon again: once Redis answers, the reclaim gives the
                // fleet one visibility timeout to be heard (reclaim.lua).
                wait = Some(every.min(KEEP_ALIVE_RETRY));
            }
        }
        // Keep refreshing after a stop: jobs still finish within the grace.
        if stop.is_triggered() && entries.is_empty() {
            return;
        }
    }
}
