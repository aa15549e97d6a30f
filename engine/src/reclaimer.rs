//! The reclaimer: takes over jobs whose worker died, and forgets consumer
//! names of workers that are gone.

use std::time::Duration;

use crate::backoff::LoopBackoff;
use crate::partition::Partition;
use crate::shutdown::Shutdown;

/// Consumers idle and empty for this long are removed from the group.
pub const DEFAULT_CONSUMER_MAX_IDLE: Duration = Duration::from_secs(600);

/// Reclaims per visibility timeout, unless the worker sets its interval.
const DEFAULT_RECLAIMS_PER_VISIBILITY: u32 = 2;

/// The least time, in visibility timeouts, that a consumer idle and empty
/// stays in the group (when longer than [`DEFAULT_CONSUMER_MAX_IDLE`]).
const CONSUMER_MAX_IDLE_VISIBILITIES: u32 = 10;

/// Consumer clean-up is rare work: once in this many reclaims.
const CLEANUP_EVERY: u64 = 20;

/// Settings of the reclaimer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReclaimerConfig {
    /// How often jobs of dead workers are looked for.
    pub interval: Duration,
    /// Consumers idle and empty for this long are removed from the group.
    pub consumer_max_idle: Duration,
}

impl ReclaimerConfig {
    /// The defaults for a queue whose visibility timeout is `visibility`,
    /// reclaiming every `interval` when one is set.
    pub(crate) fn for_visibility(visibility: Duration, interval: Option<Duration>) -> Self {
        Self {
            interval: interval.unwrap_or(visibility / DEFAULT_RECLAIMS_PER_VISIBILITY),
            consumer_max_idle: DEFAULT_CONSUMER_MAX_IDLE
                .max(visibility * CONSUMER_MAX_IDLE_VISIBILITIES),
        }
    }
}

/// Run the reclaim every `config.interval` until `stop`.
pub(crate) async fn run(
    queue: Partition,
    consumer: String,
    config: ReclaimerConfig,
    mut stop: Shutdown,
) {
    let mut backoff = LoopBackoff::new("reclaimer");
    let mut rounds: u64 = 0;
    while !stop.is_triggered() {
        let wait = match queue.reclaim_every(&consumer, config.interval).await {
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
                if rounds % CLEANUP_EVERY == 1
                    && let Err(e) = queue
                        .store()
                        .remove_idle_consumers(config.consumer_max_idle, &consumer)
                        .await
                {
                    tracing::debug!(queue = queue.name(), error = %e, "could not clean up consumers");
                }
                config.interval
            }
            Err(e) => backoff.failed(queue.name(), &e),
        };
        stop.sleep(wait).await;
    }
}
