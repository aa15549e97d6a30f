//! The reclaimer: takes over jobs whose worker died, and forgets consumer
//! names of workers that are gone.

use std::time::Duration;

use tokio::sync::watch;

use crate::backoff::LoopBackoff;
use crate::partition::Partition;

/// Consumers idle and empty for this long are removed from the group.
pub const DEFAULT_CONSUMER_MAX_IDLE: Duration = Duration::from_secs(600);

/// Run the reclaim every `interval` until `stop` turns true.
pub(crate) async fn run(
    queue: Partition,
    consumer: String,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = LoopBackoff::new("reclaimer");
    let mut rounds: u64 = 0;
    let consumer_max_idle = DEFAULT_CONSUMER_MAX_IDLE.max(queue.config().visibility_timeout * 10);
    while !*stop.borrow() {
        let wait = match queue.reclaim_every(&consumer, interval).await {
            Ok(r) => {
                backoff.succeeded(queue.name());
                if r.after_outage {
                    metrics::counter!("sluice_reclaim_outages_total", "queue" => queue.name().to_owned())
                        .increment(1);
                    tracing::info!(
                        queue = queue.name(),
                        "no reclaim ran for longer than the fleet's reclaimers allow (redis was out of reach): jobs are taken from silent workers one visibility timeout from now"
                    );
                }
                if r.retried + r.dead > 0 {
                    tracing::warn!(
                        queue = queue.name(),
                        retried = r.retried,
                        dead = r.dead,
                        "reclaimed jobs of a worker that stopped responding"
                    );
                }
                rounds += 1;
                // Consumer clean-up is rare work: every 20th round.
                if rounds % 20 == 1
                    && let Err(e) = queue
                        .store()
                        .remove_idle_consumers(consumer_max_idle, &consumer)
                        .await
                {
                    tracing::debug!(queue = queue.name(), error = %e, "could not clean up consumers");
                }
                interval
            }
            Err(e) => backoff.failed(queue.name(), &e),
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
}
