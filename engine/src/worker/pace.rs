//! How much a worker claims at once: the adaptive prefetch from the
//! running averages of claim and handler times, and the byte bound.

use super::*;

/// How long a handler call takes, on average over the recent ones (for the
/// default prefetch); written by the job tasks.
#[derive(Debug, Default)]
pub(super) struct Pace {
    /// Nanoseconds; 0 until the first call returns.
    run_nanos: AtomicU64,
}

impl Pace {
    pub(super) fn record_run(&self, took: Duration) {
        let before = self.run_time();
        let after = average(before, took);
        self.run_nanos.store(
            u64::try_from(after.as_nanos()).unwrap_or(u64::MAX).max(1),
            Ordering::Relaxed,
        );
    }

    pub(super) fn run_time(&self) -> Option<Duration> {
        match self.run_nanos.load(Ordering::Relaxed) {
            0 => None,
            n => Some(Duration::from_nanos(n)),
        }
    }
}

/// The most payload bytes one claim asks for: a claim's reply comes back
/// whole, and one of hundreds of large payloads could take longer than the
/// response timeout, then be sent again, whole, for ever.
pub(super) const CLAIM_BYTES: usize = 4 << 20;

/// `want` jobs, or fewer when jobs of `payload_size` bytes on average
/// would make the claim larger than [`CLAIM_BYTES`] (at least one).
pub(super) fn within_claim_bytes(want: usize, payload_size: Option<usize>) -> usize {
    match payload_size {
        Some(size) if size > 0 => want.min((CLAIM_BYTES / size).max(1)),
        _ => want,
    }
}

/// The running average of payload sizes after a claim of `jobs`.
pub(super) fn payload_average(before: Option<usize>, jobs: &[Job]) -> Option<usize> {
    jobs.iter().fold(before, |avg, job| {
        let size = job.payload.len();
        Some(avg.map_or(size, |a| a - a / 8 + size / 8))
    })
}

/// A running average that follows the recent samples: each new one counts
/// for an eighth.
pub(super) fn average(before: Option<Duration>, sample: Duration) -> Duration {
    match before {
        None => sample,
        Some(b) => b - b / 8 + sample / 8,
    }
}

/// The default prefetch: `concurrency`, plus as many jobs as the slots
/// would finish during one claim's round trip, at most three times the
/// concurrency more. Until both times are known, the concurrency.
pub(super) fn adaptive_prefetch(
    concurrency: usize,
    claim: Option<Duration>,
    run: Option<Duration>,
) -> usize {
    let (Some(claim), Some(run)) = (claim, run) else {
        return concurrency;
    };
    let turns = (claim.as_secs_f64() / run.as_secs_f64().max(1e-9)).min(3.0);
    concurrency + (concurrency as f64 * turns) as usize
}
