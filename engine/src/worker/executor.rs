//! The executor: runs the jobs a fetch loop claimed, one task per handler
//! call (one job, or a batch for a batch handler), each holding one of the
//! worker's `concurrency` job slots per job until its outcomes are sent to
//! the settler. At a stop it gives back the jobs not started and lets the
//! running ones finish within the grace.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::Instrument;

use super::Counters;
use super::pace::Pace;
use crate::error::Result;
use crate::handler::Runner;
use crate::job::{Job, Outcome};
use crate::partition::Ticket;
use crate::run::Cancellation;
use crate::shutdown::Shutdown;
use crate::store::SettleItem;

/// How long past the cancel grace a stopping worker waits for its job
/// tasks before it aborts them: each gives up by itself after the cancel
/// grace, and the margin lets it record that first.
const ABANDON_MARGIN: Duration = Duration::from_millis(100);

/// One of the worker's `concurrency` job slots (a partitioned queue's
/// fetch loops share them).
type Slot = OwnedSemaphorePermit;

/// What a job task needs besides its jobs: where outcomes go, how it is
/// cancelled, and the counters where it counts itself abandoned.
#[derive(Clone)]
pub(super) struct Dispatch {
    pub(super) settle_tx: mpsc::UnboundedSender<Vec<SettleItem>>,
    pub(super) cancellation: Cancellation,
    pub(super) counters: Arc<Counters>,
    pub(super) pace: Arc<Pace>,
}

/// The job tasks of one fetch loop, and the slots they run in.
pub(super) struct Executor<H> {
    handler: Arc<H>,
    slots: Arc<Semaphore>,
    tasks: JoinSet<()>,
    dispatch: Dispatch,
    /// The worker's live count of running jobs (for heartbeats).
    running: Arc<AtomicUsize>,
}

impl<H: Runner> Executor<H> {
    pub(super) fn new(
        handler: Arc<H>,
        slots: Arc<Semaphore>,
        dispatch: Dispatch,
        running: Arc<AtomicUsize>,
    ) -> Self {
        Self {
            handler,
            slots,
            tasks: JoinSet::new(),
            dispatch,
            running,
        }
    }

    /// Forget the job tasks that ended.
    pub(super) fn reap(&mut self) {
        while self.tasks.try_join_next().is_some() {}
    }

    /// The slots for a claim: the first one to free up and those free with
    /// it, `most` in all. None when `stop` is given and noticed first.
    pub(super) async fn slots_for_claim(
        &self,
        most: usize,
        stop: Option<&mut Shutdown>,
    ) -> Result<Option<Vec<Slot>>> {
        let Some(first) = self.first_free(stop).await? else {
            return Ok(None);
        };
        // The first slot freed wakes the fetch loop ahead of the jobs that
        // are about to free theirs (a task woken from its thread runs
        // next). One yield lets those finish first, so the claim asks for
        // every slot free by then instead of one round trip each.
        tokio::task::yield_now().await;
        Ok(Some(self.with_free(first, most)))
    }

    /// Run `jobs`, just claimed, most urgent first, as slots free up: one
    /// per call to a handler, up to `max_batch` per call to a batch
    /// handler. `slots` were taken for them by the claim. At a stop, the
    /// jobs not started go back in line, no attempt spent.
    pub(super) async fn start(
        &mut self,
        mut jobs: Vec<Job>,
        mut slots: Vec<Slot>,
        stop: &mut Shutdown,
    ) -> Result<()> {
        let max_batch = self.handler.max_batch();
        // A read of several levels, or entries a blocking read delivered,
        // may mix them.
        jobs.sort_by_key(|job| job.priority);
        let mut waiting = VecDeque::from(jobs);
        while !waiting.is_empty() {
            if slots.is_empty() {
                let first = if stop.is_triggered() {
                    None
                } else {
                    self.first_free(Some(stop)).await?
                };
                let Some(first) = first else {
                    self.give_back(waiting);
                    return Ok(());
                };
                slots = self.with_free(first, waiting.len().min(max_batch));
            }
            let take = slots.len().min(waiting.len()).min(max_batch);
            let call_slots = slots.split_off(slots.len() - take);
            self.spawn(waiting.drain(..take).collect(), call_slots);
        }
        Ok(())
    }

    /// After the fetch loop ended: running jobs get `grace`, then are
    /// cancelled and get the cancel grace; those still running then are
    /// abandoned, to be reclaimed, and counted. Returns how many job tasks
    /// were running at the stop.
    pub(super) async fn finish(mut self, queue: &str, grace: Duration) -> usize {
        let Dispatch {
            settle_tx,
            cancellation,
            counters,
            ..
        } = self.dispatch;
        // The settler ends once every sender is gone: this one now, the
        // job tasks' as they end.
        drop(settle_tx);
        while self.tasks.try_join_next().is_some() {}
        let running = self.tasks.len();
        let drained = tokio::time::timeout(grace, join_all(&mut self.tasks)).await;
        if drained.is_err() {
            tracing::warn!(
                queue,
                left = self.tasks.len(),
                "shutdown grace over; cancelling running jobs"
            );
            cancellation.stop.cancel();
            let _ = tokio::time::timeout(
                cancellation.grace + ABANDON_MARGIN,
                join_all(&mut self.tasks),
            )
            .await;
            let left = self.tasks.len() as u64;
            self.tasks.abort_all();
            counters.abandoned.fetch_add(left, Ordering::Relaxed);
        }
        running
    }

    /// The first slot to free up; None when `stop` is given and noticed
    /// first.
    async fn first_free(&self, stop: Option<&mut Shutdown>) -> Result<Option<Slot>> {
        let slot = match stop {
            Some(stop) => tokio::select! {
                slot = self.slots.clone().acquire_owned() => slot,
                _ = stop.noticed() => return Ok(None),
            },
            None => self.slots.clone().acquire_owned().await,
        };
        slot.map(Some)
            .map_err(|_| crate::Error::invalid("concurrency", "semaphore closed"))
    }

    /// `first` and the slots free now, `most` in all.
    fn with_free(&self, first: Slot, most: usize) -> Vec<Slot> {
        let mut slots = vec![first];
        while slots.len() < most {
            match self.slots.clone().try_acquire_owned() {
                Ok(slot) => slots.push(slot),
                Err(_) => break,
            }
        }
        slots
    }

    /// Start one call of the handler on `jobs` in a task of its own,
    /// holding `slots` until it ends.
    fn spawn(&mut self, jobs: Vec<Job>, slots: Vec<Slot>) {
        let running = RunningGuard::new(self.running.clone(), jobs.len());
        self.tasks.spawn(run_jobs(
            self.handler.clone(),
            jobs,
            slots,
            self.dispatch.clone(),
            running,
        ));
    }

    /// Send `jobs`, claimed and not started, back in line with no attempt
    /// spent (a snooze of zero).
    fn give_back(&self, jobs: impl IntoIterator<Item = Job>) {
        let unstarted = jobs
            .into_iter()
            .map(|job| Ticket::of(&job).settle(Outcome::Snooze(Duration::ZERO)))
            .collect();
        let _ = self.dispatch.settle_tx.send(unstarted);
    }
}

async fn join_all(tasks: &mut JoinSet<()>) {
    while tasks.join_next().await.is_some() {}
}

/// Counts jobs as running for as long as they live (also when aborted).
struct RunningGuard(Arc<AtomicUsize>, usize);

impl RunningGuard {
    fn new(count: Arc<AtomicUsize>, jobs: usize) -> Self {
        count.fetch_add(jobs, Ordering::Relaxed);
        Self(count, jobs)
    }
}

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(self.1, Ordering::Relaxed);
    }
}

/// Run one call of the handler on `jobs` and send their outcomes to the
/// settler together, so a batch is recorded in one settle call.
async fn run_jobs<R: Runner>(
    handler: Arc<R>,
    jobs: Vec<Job>,
    slots: Vec<Slot>,
    dispatch: Dispatch,
    running: RunningGuard,
) {
    // The span follows the call's future (not a guard held across awaits,
    // which would leak the span into other tasks on the same thread).
    let span = match jobs.as_slice() {
        [job] => {
            tracing::debug_span!("job", queue = %job.queue, id = %job.id, attempt = job.attempt)
        }
        _ => tracing::debug_span!("batch", jobs = jobs.len()),
    };
    let tickets: Vec<Ticket> = jobs.iter().map(Ticket::of).collect();
    let queue = jobs.first().map(|j| j.queue.clone()).unwrap_or_default();
    let now = crate::registry::unix_ms();
    for job in &jobs {
        let waited_ms = now.saturating_sub(job.created_at_ms);
        metrics::histogram!("sluice_job_wait_seconds", "queue" => queue.clone())
            .record(waited_ms as f64 / 1000.0);
    }
    let started = std::time::Instant::now();
    let outcomes = crate::run::run(handler, jobs, &dispatch.cancellation)
        .instrument(span.clone())
        .await;
    let Some(outcomes) = outcomes else {
        // Stopped, and the handler did not return within the cancel grace:
        // left to reclaim, as after a crash.
        dispatch
            .counters
            .abandoned
            .fetch_add(tickets.len() as u64, Ordering::Relaxed);
        return;
    };
    let took = started.elapsed();
    dispatch.pace.record_run(took);
    let ran = took.as_secs_f64();
    let mut items = Vec::with_capacity(tickets.len());
    for (ticket, outcome) in tickets.into_iter().zip(outcomes) {
        metrics::histogram!("sluice_job_run_seconds", "queue" => queue.clone()).record(ran);
        if let Outcome::Retry { reason, .. } | Outcome::Bury(reason) = &outcome {
            span.in_scope(|| tracing::debug!(%reason, "job failed"));
        }
        items.push(ticket.settle(outcome));
    }
    // The settler outlives every job task; a send fails only when it was
    // aborted at a hard stop, and then the jobs are left to reclaim.
    let _ = dispatch.settle_tx.send(items);
    drop(running);
    drop(slots);
}
