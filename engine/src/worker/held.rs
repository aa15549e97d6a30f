//! The attempts a worker holds (running, or claimed ahead and waiting for a
//! slot): what its keep-alive refreshes and an operator's cancel reaches.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use crate::job::{CancelReason, CancelSignal, Job};
use crate::store::SettleItem;

/// One attempt, by its stream entry. A job's next attempt is another entry
/// (a retry, snooze or reclaim adds one), so the answer to one attempt's
/// outcome forgets that attempt only, never the next one of the same job
/// that this worker may have claimed meanwhile.
type AttemptKey = (u8, String);

/// What the worker keeps of one attempt it holds.
struct Held {
    job_id: String,
    /// Its run's cancellation, for an operator's cancel.
    cancel: CancelSignal,
}

/// The attempts this worker holds, shared by the fetch loop (which adds
/// what it claims), the settler (which forgets what was settled), the
/// keep-alive and the cancel watcher.
#[derive(Clone, Default)]
pub(super) struct InFlight(Arc<Mutex<HashMap<AttemptKey, Held>>>);

impl InFlight {
    /// Hold the attempts of `jobs`, just claimed.
    pub(super) fn hold(&self, jobs: &[Job]) {
        if let Ok(mut held) = self.0.lock() {
            for job in jobs {
                let entry = Held {
                    job_id: job.id.clone(),
                    cancel: job.cancel.clone(),
                };
                held.insert((job.priority, job.entry_id.clone()), entry);
            }
        }
    }

    /// Forget the attempts whose outcomes Redis has answered.
    pub(super) fn release(&self, settled: &[SettleItem]) {
        if let Ok(mut held) = self.0.lock() {
            for item in settled {
                held.remove(&(item.level, item.entry_id.clone()));
            }
        }
    }

    /// The (level, entry id) of every attempt held; None when the map was
    /// poisoned by a panic.
    pub(super) fn entries(&self) -> Option<Vec<(u8, String)>> {
        let held = self.0.lock().ok()?;
        Some(held.keys().cloned().collect())
    }

    /// Whether nothing is held (also when the map was poisoned).
    pub(super) fn is_empty(&self) -> bool {
        self.0.lock().map(|held| held.is_empty()).unwrap_or(true)
    }

    /// Tell the held attempts of jobs `ids` that an operator cancelled them.
    pub(super) fn cancel(&self, ids: impl IntoIterator<Item = String>) {
        let ids: HashSet<String> = ids.into_iter().collect();
        if ids.is_empty() {
            return;
        }
        if let Ok(held) = self.0.lock() {
            for attempt in held.values() {
                if ids.contains(&attempt.job_id) {
                    attempt.cancel.cancel(CancelReason::Operator);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(id: &str, entry_id: &str) -> Job {
        Job {
            id: id.to_owned(),
            queue: "q".to_owned(),
            attempt: 1,
            max_attempts: 3,
            priority: 0,
            timeout: None,
            created_at_ms: 0,
            payload: Vec::new(),
            entry_id: entry_id.to_owned(),
            fence: 1,
            consumer: "w".to_owned(),
            cancel: CancelSignal::default(),
        }
    }

    fn settled(job: &Job) -> SettleItem {
        SettleItem {
            job_id: job.id.clone(),
            level: job.priority,
            entry_id: job.entry_id.clone(),
            fence: job.fence,
            attempt: job.attempt,
            kind: "fail",
            text: String::new(),
            delay_ms: -1,
        }
    }

    /// Issue 39, defect 12: a job retried at once and claimed again by the
    /// same worker before the first attempt's settle was answered. The
    /// answer forgets the first attempt only: the second stays kept alive
    /// and cancellable.
    #[test]
    fn an_answer_forgets_its_own_attempt_not_the_next_of_the_same_job() {
        let in_flight = InFlight::default();
        let first = attempt("job-1", "1-0");
        in_flight.hold(std::slice::from_ref(&first));
        let second = attempt("job-1", "2-0");
        in_flight.hold(std::slice::from_ref(&second));
        in_flight.release(&[settled(&first)]);
        assert_eq!(in_flight.entries(), Some(vec![(0, "2-0".to_owned())]));
        in_flight.cancel(["job-1".to_owned()]);
        assert_eq!(second.cancel.reason(), Some(CancelReason::Operator));
        in_flight.release(&[settled(&second)]);
        assert!(in_flight.is_empty());
    }
}
