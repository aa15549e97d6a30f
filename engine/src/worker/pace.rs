//! How much a worker claims at once: the adaptive prefetch from the
//! running averages of claim and handler times, and the byte bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::job::Job;

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

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_default_prefetch_is_the_concurrency_until_both_times_are_known() {
        assert_eq!(adaptive_prefetch(10, None, None), 10);
        assert_eq!(adaptive_prefetch(10, Some(MS), None), 10);
        assert_eq!(adaptive_prefetch(10, None, Some(MS)), 10);
    }

    #[test]
    fn the_default_prefetch_grows_with_the_jobs_a_claim_would_wait_for() {
        // Jobs as long as a claim: one more round of the slots.
        assert_eq!(adaptive_prefetch(10, Some(MS), Some(MS)), 20);
        // Jobs ten times as long as a claim: a tenth more.
        assert_eq!(adaptive_prefetch(10, Some(MS), Some(10 * MS)), 11);
        // Jobs much longer: the concurrency alone.
        assert_eq!(adaptive_prefetch(10, Some(MS), Some(1000 * MS)), 10);
        // Jobs much shorter than a claim: at most three rounds more.
        assert_eq!(adaptive_prefetch(10, Some(MS), Some(MS / 100)), 40);
        assert_eq!(adaptive_prefetch(10, Some(MS), Some(Duration::ZERO)), 40);
    }

    /// Issue 39, defect 10: claims are bounded by bytes as well as jobs.
    #[test]
    fn claims_ask_for_fewer_jobs_when_payloads_are_large() {
        assert_eq!(within_claim_bytes(400, None), 400);
        assert_eq!(within_claim_bytes(400, Some(100)), 400);
        assert_eq!(within_claim_bytes(400, Some(1 << 20)), 4);
        assert_eq!(within_claim_bytes(400, Some(64 << 20)), 1);
        assert_eq!(within_claim_bytes(400, Some(0)), 400);
    }

    #[test]
    fn the_average_follows_recent_samples() {
        assert_eq!(average(None, MS), MS);
        let mut avg = Some(100 * MS);
        for _ in 0..40 {
            avg = Some(average(avg, MS));
        }
        let avg = avg.expect("set");
        assert!(avg < 2 * MS, "after 40 samples of 1 ms: {avg:?}");
        let pace = Pace::default();
        assert_eq!(pace.run_time(), None);
        pace.record_run(Duration::ZERO);
        assert!(
            pace.run_time().is_some(),
            "a call that took no time is still known"
        );
    }
}
