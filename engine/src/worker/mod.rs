//! `Worker`: runs a handler over one queue with a concurrency limit, batch
//! claims, blocking waits when idle, batched settles, and graceful shutdown.
//!
//! Tasks of one worker:
//! - the fetch loop (here): claims as many jobs as there are free slots
//!   and `prefetch` more (by default adapted to how long jobs take against
//!   a claim's round trip), blocks on the streams when nothing is ready,
//!   spawns one task per job (or per batch, for a batch handler) run
//!   through `run.rs`;
//!   (how much it asks for: `pace.rs`);
//! - the settler (`settler.rs`): records finished attempts in batches;
//! - the keep-alive (`keep_alive.rs`): refreshes the claims of running jobs
//!   at a third of the visibility timeout, so long jobs are not reclaimed;
//! - the cancel watcher (`cancels.rs`): tells running jobs an operator
//!   cancelled them;
//! - the promoter (`promoter.rs`) and the reclaimer (`reclaimer.rs`).
//!
//! The attempts a worker holds, which the fetch loop adds, the settler
//! forgets and the keep-alive and the cancel watcher read, are `held.rs`.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

mod cancels;
mod held;
mod keep_alive;
mod pace;
mod settler;

use cancels::watch_cancels;
use held::InFlight;
use keep_alive::keep_alive;
use pace::{Pace, adaptive_prefetch, average, payload_average, within_claim_bytes};
use settler::settle_loop;

use crate::backoff::LoopBackoff;
use crate::error::Result;
use crate::handler::{BatchHandler, Batched, Runner};
use crate::job::{Job, Outcome};
use crate::partition::{Partition, Ticket};
use crate::promoter::{self, PromoterConfig};
use crate::queue::Queue;
use crate::reclaimer::{self, ReclaimerConfig};
use crate::run::Cancellation;
use crate::shutdown::Shutdown;
use crate::store::{CallToken, ClaimStatus, Delivered, RateState, SettleItem, Settled};

/// How often an empty rate-limited queue is polled for new jobs.
const RATE_LIMITED_POLL: Duration = Duration::from_millis(100);

/// Settings of a worker.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConfig {
    /// Jobs run at once.
    pub concurrency: usize,
    /// Most jobs taken per claim.
    pub batch_size: usize,
    /// Jobs a claim may take beyond the free slots, so that a claim is not
    /// one round trip per finished job. They wait in the worker, kept
    /// alive like running jobs; at a stop, those not started go back in
    /// line with no attempt spent. Default (None): the concurrency, and up
    /// to three times the concurrency more while jobs finish faster than
    /// a claim's round trip (as many more as the slots would finish during
    /// one), so short jobs do not wait on claims and long ones are not
    /// held back from other workers.
    pub prefetch: Option<usize>,
    /// How long one blocking wait for new jobs lasts when the queue is empty
    /// (the worker wakes as soon as a job arrives). It also bounds how long
    /// a shutdown waits for an idle worker.
    pub block_timeout: Duration,
    /// On shutdown, how long running jobs may take to finish. After it,
    /// they are cancelled ([`Job::cancelled`]) and get `cancel_grace` more;
    /// those still running then are abandoned, to be reclaimed by other
    /// workers.
    pub shutdown_grace: Duration,
    /// How long a cancelled job (timed out, shut down or cancelled by an
    /// operator) may take to return before its task is aborted.
    pub cancel_grace: Duration,
    /// How often the worker looks for operators' cancels of the jobs it
    /// runs (one small read, only while it runs jobs).
    pub cancel_poll: Duration,
    /// Most outcomes recorded per call.
    pub settle_batch: usize,
    /// How often paused queues are checked for resumption.
    pub pause_poll: Duration,
    /// How often jobs of dead workers are looked for (default: half the
    /// visibility timeout).
    pub reclaim_interval: Option<Duration>,
    /// The promoter's settings.
    pub promoter: PromoterConfig,
    /// Consumer name in the group (default: host, pid and a random part).
    pub consumer: Option<String>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        Self {
            concurrency: 10,
            batch_size: 400,
            prefetch: None,
            block_timeout: Duration::from_secs(2),
            shutdown_grace: Duration::from_secs(30),
            cancel_grace: Duration::from_secs(1),
            cancel_poll: Duration::from_secs(1),
            settle_batch: 500,
            pause_poll: Duration::from_millis(250),
            reclaim_interval: None,
            promoter: PromoterConfig::default(),
            consumer: None,
        }
    }
}

/// What a worker did, counted by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WorkerReport {
    /// Jobs completed.
    pub completed: u64,
    /// Failed attempts scheduled for retry.
    pub retried: u64,
    /// Jobs dead-lettered.
    pub dead: u64,
    /// Jobs snoozed.
    pub snoozed: u64,
    /// Outcomes refused because the job had been reclaimed by another worker
    /// (this worker was presumed dead).
    pub fenced: u64,
    /// Outcomes for jobs that no longer existed.
    pub gone: u64,
    /// Jobs abandoned at shutdown after the grace period (to be reclaimed).
    pub abandoned: u64,
}

impl WorkerReport {
    /// Add `other`'s counts to these.
    pub fn add(&mut self, other: &WorkerReport) {
        self.completed += other.completed;
        self.retried += other.retried;
        self.dead += other.dead;
        self.snoozed += other.snoozed;
        self.fenced += other.fenced;
        self.gone += other.gone;
        self.abandoned += other.abandoned;
    }
}

#[derive(Default)]
struct Counters {
    completed: AtomicU64,
    retried: AtomicU64,
    dead: AtomicU64,
    snoozed: AtomicU64,
    fenced: AtomicU64,
    gone: AtomicU64,
    abandoned: AtomicU64,
}

impl Counters {
    fn count(&self, s: Settled) {
        let c = match s {
            Settled::Done => &self.completed,
            Settled::Retry => &self.retried,
            Settled::Dead => &self.dead,
            Settled::Snoozed => &self.snoozed,
            Settled::Fenced => &self.fenced,
            Settled::Gone => &self.gone,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// One finished attempt as its settle call answered it: what
/// [`Worker::on_settled`] observers see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettledAttempt {
    /// The job.
    pub job_id: String,
    /// The attempt that finished.
    pub attempt: u32,
    /// The fence the attempt ran under.
    pub fence: u64,
    /// The worker's consumer name.
    pub consumer: String,
    /// What Redis recorded.
    pub status: Settled,
}

/// A callback on every settled attempt.
#[derive(Clone)]
struct SettleObserver(Arc<dyn Fn(&SettledAttempt) + Send + Sync>);

impl std::fmt::Debug for SettleObserver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SettleObserver")
    }
}

/// Runs a [`Handler`](crate::Handler) (or, made with [`Worker::batched`],
/// a [`BatchHandler`]) over a queue. See the module docs.
#[derive(Debug)]
pub struct Worker<H> {
    queue: Queue,
    handler: Arc<H>,
    config: WorkerConfig,
    consumer: String,
    running: Arc<AtomicUsize>,
    shared_slots: Option<Arc<Semaphore>>,
    observer: Option<SettleObserver>,
}

impl<B: BatchHandler> Worker<Batched<B>> {
    /// A worker for `queue` handing up to `handler.max_batch()` claimed jobs
    /// to each call of `handler`, with default settings. Set `batch_size`
    /// (jobs per claim) and `concurrency` (jobs running at once, in all
    /// batches) at least as high as the batch, or batches stay small.
    pub fn batched(queue: Queue, handler: B) -> Self {
        Self::new(queue, Batched(handler))
    }
}

impl<H: Runner> Worker<H> {
    /// A worker for `queue` running `handler`, with default settings. On a
    /// queue of several partitions it runs one fetch loop per partition,
    /// all taking job slots from one pool of `concurrency` (see
    /// [`per_partition`](Self::per_partition)).
    pub fn new(queue: Queue, handler: H) -> Self {
        Self::with_shared_handler(queue, Arc::new(handler))
    }

    fn with_shared_handler(queue: Queue, handler: Arc<H>) -> Self {
        Self {
            queue,
            handler,
            config: WorkerConfig::default(),
            consumer: crate::registry::new_worker_id(),
            running: Arc::default(),
            shared_slots: None,
            observer: None,
        }
    }

    /// This worker as one worker per partition of its queue (itself alone
    /// for a queue of one), for callers that run them as tasks of their
    /// own. They share the handler, the observer, the in-flight count and
    /// one pool of `concurrency` job slots, handed out first come first
    /// served, so a busy partition uses what an idle one leaves and none
    /// starves another. Each partition's consumer name is this worker's
    /// with the partition's index appended (`<consumer>-<name>-<i>`).
    pub fn per_partition(self) -> Vec<Self> {
        if self.queue.partitions().len() == 1 {
            return vec![self];
        }
        let slots = self
            .shared_slots
            .clone()
            .unwrap_or_else(|| Arc::new(Semaphore::new(self.config.concurrency)));
        self.queue
            .partitions()
            .iter()
            .map(|p| {
                let consumer = format!("{}-{}", self.consumer, p.name().replace('#', "-"));
                let mut config = self.config.clone();
                config.consumer = Some(consumer.clone());
                Self {
                    queue: Queue::single(p.clone()),
                    handler: self.handler.clone(),
                    config,
                    consumer,
                    running: self.running.clone(),
                    shared_slots: Some(slots.clone()),
                    observer: self.observer.clone(),
                }
            })
            .collect()
    }

    /// Use these settings.
    pub fn with_config(mut self, config: WorkerConfig) -> Self {
        if let Some(name) = &config.consumer {
            self.consumer = name.clone();
        }
        self.config = config;
        self
    }

    /// Call `observer` with every attempt once its settle call has answered
    /// (for audit trails, metrics, and the fault harness's ledger, which
    /// counts a job completed only when Redis said `done`).
    pub fn on_settled(
        mut self,
        observer: impl Fn(&SettledAttempt) + Send + Sync + 'static,
    ) -> Self {
        self.observer = Some(SettleObserver(Arc::new(observer)));
        self
    }

    /// Run `concurrency` jobs at once.
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.concurrency = n;
        self
    }

    /// A live count of the jobs this worker is running (for heartbeats).
    pub fn in_flight(&self) -> Arc<AtomicUsize> {
        self.running.clone()
    }

    /// This worker's consumer name in the group.
    pub fn consumer_name(&self) -> &str {
        &self.consumer
    }

    /// Run until `shutdown` completes, then stop claiming, let running jobs
    /// finish within the grace period, record their outcomes and return.
    /// While Redis is unreachable the worker keeps retrying with backoff and
    /// resumes by itself.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<WorkerReport> {
        crate::keys::validate_name("consumer name", &self.consumer)?;
        if self.config.concurrency == 0
            || self.config.batch_size == 0
            || self.config.settle_batch == 0
        {
            return Err(crate::Error::invalid(
                "concurrency/batch_size/settle_batch",
                "must be above zero",
            ));
        }
        if self.queue.partitions().len() > 1 {
            return run_all(self.per_partition(), shutdown).await;
        }
        let (stop, signal) = shutdown_on(shutdown);
        // A task of its own, so the fetch loop runs on a runtime thread
        // even when `run` is awaited in `block_on` (as in `#[tokio::main]`):
        // a task spawned from a runtime thread starts on that thread, while
        // one spawned from outside goes through the shared queue and wakes
        // a parked thread, once per job. In a JoinSet, so a caller that
        // drops this future stops the worker, as before (run_all alike).
        let mut worker = JoinSet::new();
        worker.spawn(self.run_partition(stop));
        let report = match worker.join_next().await {
            Some(Ok(report)) => report,
            Some(Err(e)) => Err(crate::Error::invalid("worker", e.to_string())),
            None => Err(crate::Error::invalid("worker", "its task was lost")),
        };
        signal.abort();
        report
    }

    /// [`run`](Self::run) on a queue of one partition, until `stop`. Each
    /// loop gets a clone of `stop` of its own (see [`Shutdown::noticed`]).
    async fn run_partition(self, stop: Shutdown) -> Result<WorkerReport> {
        let queue = self.queue.partitions()[0].clone();
        let visibility = queue.config().visibility_timeout;
        let counters = Arc::new(Counters::default());
        let in_flight = InFlight::default();
        let (settle_tx, settle_rx) = mpsc::unbounded_channel::<Vec<SettleItem>>();
        let cancellation = Cancellation {
            stop: CancellationToken::new(),
            grace: self.config.cancel_grace,
        };

        let mut background = JoinSet::new();
        background.spawn(promoter::run(
            queue.clone(),
            self.config.promoter,
            stop.clone(),
        ));
        background.spawn(reclaimer::run(
            queue.clone(),
            self.consumer.clone(),
            ReclaimerConfig::for_visibility(visibility, self.config.reclaim_interval),
            stop.clone(),
        ));
        background.spawn(watch_cancels(
            queue.clone(),
            in_flight.clone(),
            self.config.cancel_poll,
            stop.clone(),
        ));
        background.spawn(keep_alive(
            queue.clone(),
            self.consumer.clone(),
            in_flight.clone(),
            visibility / 3,
            stop.clone(),
        ));
        let settler_stop = Shutdown::new();
        let settler = tokio::spawn(settle_loop(
            (queue.clone(), self.consumer.clone()),
            settle_rx,
            self.config.settle_batch,
            counters.clone(),
            in_flight.clone(),
            settler_stop.clone(),
            self.observer.clone(),
        ));

        tracing::info!(queue = queue.name(), consumer = %self.consumer, concurrency = self.config.concurrency, "worker started");
        let dispatch = Dispatch {
            settle_tx,
            cancellation: cancellation.clone(),
            counters: counters.clone(),
            pace: Arc::default(),
        };
        let mut jobs = self.fetch_loop(stop, dispatch, &in_flight).await?;

        // Shutdown: running jobs get the grace period, then are cancelled
        // and get the cancel grace; those still running are abandoned.
        while jobs.try_join_next().is_some() {}
        let running = jobs.len();
        let drained = tokio::time::timeout(self.config.shutdown_grace, async {
            while jobs.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                queue = queue.name(),
                left = jobs.len(),
                "shutdown grace over; cancelling running jobs"
            );
            cancellation.stop.cancel();
            // Each job task gives up by itself after the cancel grace; the
            // margin lets it record that before the rest is aborted.
            let margin = Duration::from_millis(100);
            let _ = tokio::time::timeout(self.config.cancel_grace + margin, async {
                while jobs.join_next().await.is_some() {}
            })
            .await;
            let left = jobs.len() as u64;
            jobs.abort_all();
            counters.abandoned.fetch_add(left, Ordering::Relaxed);
        }
        drop(jobs);
        // Every sender is gone now; the settler ends once it has recorded
        // what it holds, or when the grace is over while Redis is down.
        let settler_abort = settler.abort_handle();
        if tokio::time::timeout(self.config.shutdown_grace, settler)
            .await
            .is_err()
        {
            settler_stop.trigger();
            settler_abort.abort();
        }
        background.abort_all();
        if let Err(e) = queue.store().remove_consumer(&self.consumer).await {
            tracing::debug!(queue = queue.name(), error = %e, "could not remove consumer");
        }
        let c = &counters;
        let report = WorkerReport {
            completed: c.completed.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            dead: c.dead.load(Ordering::Relaxed),
            snoozed: c.snoozed.load(Ordering::Relaxed),
            fenced: c.fenced.load(Ordering::Relaxed),
            gone: c.gone.load(Ordering::Relaxed),
            abandoned: c.abandoned.load(Ordering::Relaxed),
        };
        tracing::info!(queue = queue.name(), consumer = %self.consumer, running_at_stop = running, ?report, "worker stopped");
        Ok(report)
    }

    /// Claim and spawn jobs until `stop`; returns the running jobs.
    async fn fetch_loop(
        &self,
        mut stop: Shutdown,
        dispatch: Dispatch,
        in_flight: &InFlight,
    ) -> Result<JoinSet<()>> {
        let queue = &self.queue.partitions()[0];
        let store = queue.store();
        let slots = self
            .shared_slots
            .clone()
            .unwrap_or_else(|| Arc::new(Semaphore::new(self.config.concurrency)));
        let mut running = JoinSet::new();
        let mut backoff = LoopBackoff::new("claim");
        // Redis may be down when the worker starts: keep trying until it
        // answers or the worker is stopped.
        let mut blocking = loop {
            match queue
                .client()
                .blocking_connection(self.config.block_timeout)
                .await
            {
                Ok(conn) => break conn,
                Err(e) => {
                    let wait = backoff.failed(queue.name(), &e);
                    stop.sleep(wait).await;
                    if stop.is_triggered() {
                        return Ok(running);
                    }
                }
            }
        };
        // Entries delivered to us and not yet activated (by a blocking read,
        // or by a direct read that found them needing claim.lua): claimed
        // on the next pass.
        let mut delivered = Delivered::default();
        // A claim call that failed (perhaps after Redis ran it) is sent again
        // with its token until it is answered: the answer is then the first
        // run's jobs, not a second claim. The token of the last answered
        // call goes with the next one, to free its record.
        let mut unanswered: Option<CallToken> = None;
        let mut answered: Option<String> = None;
        // Direct reads (store/direct.rs): after a claim that came back full
        // with the queue neither paused nor limited, the next claim reads
        // levels 0..=this one without claim.lua (the level a claim.lua
        // call filled up from, or the most urgent level a direct read found
        // and that alone filled it). A claim that comes back short goes
        // through claim.lua again, which looks for the next level strictly.
        let mut direct: Option<u8> = None;
        // A direct read failed and may have run: the next claim reads this
        // worker's own pending entries instead, to take those it never saw.
        let mut lost_read = false;
        // How long a claim's round trip takes, on average (for the default
        // prefetch).
        let mut claim_time: Option<Duration> = None;
        // The size of the jobs' payloads, on average (for the claims' size).
        let mut payload_size: Option<usize> = None;
        loop {
            if stop.is_triggered() && delivered.entries.is_empty() {
                store.forget_calls(answered.as_slice()).await;
                return Ok(running);
            }
            while running.try_join_next().is_some() {}
            let first = tokio::select! {
                p = slots.clone().acquire_owned() => p.map_err(|_| crate::Error::invalid("concurrency", "semaphore closed"))?,
                _ = stop.noticed(), if delivered.entries.is_empty() => continue,
            };
            // The first slot freed wakes this loop ahead of the jobs that
            // are about to free theirs (a task woken from its thread runs
            // next). One yield lets those finish first, so the claim asks
            // for every slot free by then instead of one round trip each.
            tokio::task::yield_now().await;
            let mut permits = vec![first];
            while permits.len() < self.config.batch_size {
                match slots.clone().try_acquire_owned() {
                    Ok(p) => permits.push(p),
                    Err(_) => break,
                }
            }
            let prefetch = self.config.prefetch.unwrap_or_else(|| {
                adaptive_prefetch(
                    self.config.concurrency,
                    claim_time,
                    dispatch.pace.run_time(),
                )
            });
            // `permits` holds at most `batch_size` (taken above).
            let want = (permits.len() + prefetch).min(self.config.batch_size);
            let want = within_claim_bytes(want, payload_size);
            // A claim.lua call still unanswered is sent again first (its
            // token answers it); a direct read never reuses its token.
            let replaying_claim = unanswered.is_some();
            let call = unanswered
                .take()
                .unwrap_or_else(|| queue.claim_token(answered.take()));
            let sent = std::time::Instant::now();
            let read = if replaying_claim {
                None
            } else if lost_read {
                let known: std::collections::HashSet<(u8, String)> = in_flight
                    .entries()
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                let count = known.len() + 2 * self.config.batch_size + 64;
                Some(
                    store
                        .read_own_pending(&self.consumer, count, &call, |(level, entry)| {
                            known.contains(&(level, entry.to_owned()))
                        })
                        .await,
                )
            } else if let (Some(deepest), true) = (direct, delivered.entries.is_empty()) {
                Some(
                    store
                        .read_direct(&self.consumer, want, deepest, &call)
                        .await,
                )
            } else {
                None
            };
            let (status, jobs) = match read {
                Some(Ok(r)) => {
                    backoff.succeeded(queue.name());
                    claim_time = Some(average(claim_time, sent.elapsed()));
                    answered = Some(call.token);
                    lost_read = false;
                    // The next read goes down to the most urgent level this
                    // one found, and only while that level filled it: a job
                    // that arrived on a more urgent level narrows the next
                    // read to it, so less urgent jobs are read beside it
                    // once at most, and a short level goes back to
                    // claim.lua's strict search.
                    direct = (!r.needs_script)
                        .then(|| full_top_level(&r.jobs, want))
                        .flatten();
                    if !r.deferred.is_empty() {
                        delivered = Delivered {
                            entries: r.deferred,
                            by_blocking_read: false,
                        };
                    }
                    if r.jobs.is_empty() {
                        // Nothing read, or only what claim.lua must
                        // activate: claim.lua next, which also says
                        // whether to wait, and how.
                        drop(permits);
                        continue;
                    }
                    (ClaimStatus::default(), r.jobs)
                }
                Some(Err(e)) => {
                    drop(permits);
                    direct = None;
                    // A transaction a full Redis refused ran nothing; any
                    // other failure may have delivered entries unheard of.
                    // Either way the next claim goes through claim.lua,
                    // which runs while Redis is full.
                    lost_read = !e.is_full();
                    let wait = backoff.failed(queue.name(), &e);
                    stop.sleep(wait).await;
                    continue;
                }
                None => match store.claim(&self.consumer, want, &delivered, &call).await {
                    Ok((status, jobs)) => {
                        backoff.succeeded(queue.name());
                        claim_time = Some(average(claim_time, sent.elapsed()));
                        delivered = Delivered::default();
                        answered = Some(call.token);
                        let open = !status.paused && status.rate == RateState::Unlimited;
                        direct = (open && jobs.len() >= want)
                            .then(|| deepest_level(&jobs))
                            .flatten();
                        (status, jobs)
                    }
                    Err(e) => {
                        drop(permits);
                        unanswered = Some(call);
                        let wait = backoff.failed(queue.name(), &e);
                        stop.sleep(wait).await;
                        continue;
                    }
                },
            };
            if jobs.is_empty() {
                drop(permits);
                if status.paused {
                    stop.sleep(self.config.pause_poll).await;
                    continue;
                }
                if stop.is_triggered() {
                    continue;
                }
                // A rate-limited queue is polled: a blocking read would take
                // entries without asking the bucket.
                match status.rate {
                    RateState::Unlimited => {}
                    RateState::Open => {
                        stop.sleep(RATE_LIMITED_POLL).await;
                        continue;
                    }
                    RateState::Wait(wait) => {
                        stop.sleep(wait.min(self.config.pause_poll)).await;
                        continue;
                    }
                }
                // Nothing ready: wait on every level at once. Not cut short by
                // a stop, so entries delivered meanwhile are still claimed.
                match store
                    .wait_for_entries(
                        &mut blocking,
                        &self.consumer,
                        want,
                        self.config.block_timeout,
                    )
                    .await
                {
                    Ok(d) => delivered = d,
                    Err(e) => {
                        let wait = backoff.failed(queue.name(), &e);
                        stop.sleep(wait).await;
                    }
                }
                continue;
            }
            // Every job claimed is kept alive from now on, also those that
            // wait for a slot (claimed ahead).
            in_flight.hold(&jobs);
            payload_size = payload_average(payload_size, &jobs);
            // Hand jobs out as slots free up: one per call to a handler, up
            // to `max_batch` per call to a batch handler.
            let max_batch = self.handler.max_batch();
            // Most urgent first: a read of several levels, or entries a
            // blocking read delivered, may mix them.
            let mut jobs = jobs;
            jobs.sort_by_key(|job| job.priority);
            let mut waiting = std::collections::VecDeque::from(jobs);
            while !waiting.is_empty() {
                if permits.is_empty() {
                    let acquired = if stop.is_triggered() {
                        None
                    } else {
                        tokio::select! {
                            p = slots.clone().acquire_owned() => Some(p.map_err(|_| {
                                crate::Error::invalid("concurrency", "semaphore closed")
                            })?),
                            _ = stop.noticed() => None,
                        }
                    };
                    let Some(first) = acquired else {
                        // Stopping: jobs claimed ahead and not started go
                        // back in line, no attempt spent.
                        let unstarted = waiting
                            .drain(..)
                            .map(|job| Ticket::of(&job).settle(Outcome::Snooze(Duration::ZERO)))
                            .collect();
                        let _ = dispatch.settle_tx.send(unstarted);
                        break;
                    };
                    permits.push(first);
                    while permits.len() < waiting.len().min(max_batch) {
                        match slots.clone().try_acquire_owned() {
                            Ok(p) => permits.push(p),
                            Err(_) => break,
                        }
                    }
                }
                let take = permits.len().min(waiting.len()).min(max_batch);
                let batch: Vec<Job> = waiting.drain(..take).collect();
                let held = permits.split_off(permits.len() - take);
                running.spawn(run_jobs(
                    self.handler.clone(),
                    batch,
                    held,
                    dispatch.clone(),
                    RunningGuard::new(self.running.clone(), take),
                ));
            }
        }
    }
}

/// The least urgent level among `jobs` (None when there are none).
fn deepest_level(jobs: &[Job]) -> Option<u8> {
    jobs.iter().map(|job| job.priority).max()
}

/// The most urgent level among `jobs` when it alone gave `want` of them
/// (None otherwise).
fn full_top_level(jobs: &[Job], want: usize) -> Option<u8> {
    let top = jobs.iter().map(|job| job.priority).min()?;
    let at_top = jobs.iter().filter(|job| job.priority == top).count();
    (at_top >= want).then_some(top)
}

/// Run `workers` (one per partition, see [`Worker::per_partition`]) until
/// `shutdown`; their reports summed, or the first error.
async fn run_all<H: Runner>(
    workers: Vec<Worker<H>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<WorkerReport> {
    let (stop, signal) = shutdown_on(shutdown);
    let mut running = JoinSet::new();
    for worker in workers {
        running.spawn(worker.run_partition(stop.clone()));
    }
    let mut total = WorkerReport::default();
    let mut first_error = None;
    while let Some(joined) = running.join_next().await {
        match joined {
            Ok(Ok(r)) => total.add(&r),
            Ok(Err(e)) => {
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(crate::Error::invalid("worker", e.to_string()));
            }
        }
    }
    signal.abort();
    match first_error {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// A [`Shutdown`] triggered when `signal` completes, and the task that
/// waits for it (to abort once the worker is done).
fn shutdown_on(
    signal: impl Future<Output = ()> + Send + 'static,
) -> (Shutdown, tokio::task::JoinHandle<()>) {
    let stop = Shutdown::new();
    let trigger = stop.clone();
    let task = tokio::spawn(async move {
        signal.await;
        trigger.trigger();
    });
    (stop, task)
}

/// What a job task needs besides its jobs: where outcomes go, how it is
/// cancelled, and the counters where it counts itself abandoned.
#[derive(Clone)]
struct Dispatch {
    settle_tx: mpsc::UnboundedSender<Vec<SettleItem>>,
    cancellation: Cancellation,
    counters: Arc<Counters>,
    pace: Arc<Pace>,
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
    permits: Vec<OwnedSemaphorePermit>,
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
    drop(permits);
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
