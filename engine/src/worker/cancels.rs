//! The cancel watcher: tells running jobs an operator cancelled them.

use std::time::Duration;

use super::held::InFlight;
use crate::partition::Partition;
use crate::shutdown::Shutdown;

/// Tell running jobs an operator cancelled (`Queue::cancel`) that they are.
/// The request stays in Redis until the job's outcome is recorded, and
/// settle.lua buries the job then, so a missed look only delays the signal.
pub(super) async fn watch_cancels(
    queue: Partition,
    in_flight: InFlight,
    every: Duration,
    mut stop: Shutdown,
) {
    loop {
        stop.sleep(every).await;
        let idle = in_flight.is_empty();
        if idle {
            if stop.is_triggered() {
                return;
            }
            continue;
        }
        match queue.store().cancel_requests().await {
            Ok(ids) => in_flight.cancel(ids),
            Err(e) => {
                tracing::debug!(queue = queue.name(), error = %e, "could not read cancel requests")
            }
        }
    }
}
