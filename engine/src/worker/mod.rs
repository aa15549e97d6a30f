//! `Worker`: runs a handler over one queue with a concurrency limit, batch
//! claims, blocking waits when idle, batched settles, and graceful shutdown.
//!
//! Tasks of one worker, on each partition of its queue (here: starting and
//! stopping them):
//! - the fetch loop (`fetcher.rs`): claims as many jobs as there are free
//!   slots and `prefetch` more (by default adapted to how long jobs take
//!   against a claim's round trip; how much it asks for: `pace.rs`),
//!   through `claim.lua` or a direct read, blocks on the streams when
//!   nothing is ready and polls a paused or rate-limited queue;
//! - the job tasks (`executor.rs`), which the fetch loop starts as slots
//!   free up: one per job (or per batch, for a batch handler) run through
//!   `run.rs`, holding a slot per job; at a stop, the jobs not started go
//!   back in line and running ones get the grace periods;
//! - the settler (`settler.rs`): records finished attempts in batches;
//! - the keep-alive (`keep_alive.rs`): refreshes the claims of running jobs
//!   at a third of the visibility timeout, so long jobs are not reclaimed;
//! - the cancel watcher (`cancels.rs`): tells running jobs an operator
//!   cancelled them;
//! - the promoter (`promoter.rs`) and the reclaimer (`reclaimer.rs`).
//!
//! Each loop stops on a clone of its own of the partition's [`Shutdown`],
//! triggered by the one given to [`Worker::run`]; the settler, which
//! records outcomes until the job tasks are done, on one of its own, when
//! the shutdown grace is over while Redis is down.
//!
//! The attempts a worker holds, which the fetch loop adds, the settler
//! forgets and the keep-alive and the cancel watcher read, are `held.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use serde::Serialize;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

mod cancels;
mod executor;
mod fetcher;
mod held;
mod keep_alive;
mod pace;
mod settler;

use cancels::watch_cancels;
use executor::{Dispatch, Executor};
use fetcher::Fetcher;
use held::InFlight;
use keep_alive::{REFRESHES_PER_VISIBILITY, keep_alive};
use pace::Pace;
use settler::Settler;

use crate::error::Result;
use crate::handler::{BatchHandler, Batched, Runner};
use crate::partition::Partition;
use crate::promoter::{self, PromoterConfig};
use crate::queue::Queue;
use crate::reclaimer::{self, ReclaimerConfig};
use crate::run::Cancellation;
use crate::shutdown::Shutdown;
use crate::store::{SettleItem, Settled};

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
    /// they are cancelled ([`Job::cancelled`](crate::Job::cancelled)) and get `cancel_grace` more;
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

    fn report(&self) -> WorkerReport {
        WorkerReport {
            completed: self.completed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead: self.dead.load(Ordering::Relaxed),
            snoozed: self.snoozed.load(Ordering::Relaxed),
            fenced: self.fenced.load(Ordering::Relaxed),
            gone: self.gone.load(Ordering::Relaxed),
            abandoned: self.abandoned.load(Ordering::Relaxed),
        }
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
    /// all taking job slots from one pool of `concurrency`, first come
    /// first served, so a busy partition uses what an idle one leaves.
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
    pub(crate) fn per_partition(self) -> Vec<Self> {
        if self.queue.partition_handles().len() == 1 {
            return vec![self];
        }
        let slots = self
            .shared_slots
            .clone()
            .unwrap_or_else(|| Arc::new(Semaphore::new(self.config.concurrency)));
        self.queue
            .partitions()
            .into_iter()
            .map(|p| {
                let consumer = format!("{}-{}", self.consumer, p.name().replace('#', "-"));
                let mut config = self.config.clone();
                config.consumer = Some(consumer.clone());
                Self {
                    queue: p,
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

    /// Run until `shutdown` is triggered, then stop claiming, let running
    /// jobs finish within the grace period, record their outcomes and
    /// return. While Redis is unreachable the worker keeps retrying with
    /// backoff and resumes by itself. A queue of several partitions runs a
    /// worker on each, sharing the concurrency. To run several workers of a
    /// process, with heartbeats, use [`crate::Fleet`].
    ///
    /// ```no_run
    /// # async fn demo(queue: sluice_engine::Queue) -> sluice_engine::Result<()> {
    /// use sluice_engine::{Outcome, Shutdown, Worker, handler_fn};
    /// let shutdown = Shutdown::when(async { tokio::signal::ctrl_c().await.ok(); });
    /// let handler = handler_fn(|_job, _n: u32| async { Ok(Outcome::Done) });
    /// let report = Worker::new(queue, handler).run(shutdown).await?;
    /// # Ok(()) }
    /// ```
    pub async fn run(self, shutdown: Shutdown) -> Result<WorkerReport> {
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
        if self.queue.partition_handles().len() > 1 {
            return run_all(self.per_partition(), shutdown).await;
        }
        let (stop, signal) = own_stop(shutdown);
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
        drop(signal);
        report
    }

    /// [`run`](Self::run) on a queue of one partition, until `stop`. Each
    /// loop gets a clone of `stop` of its own (see [`Shutdown::noticed`]).
    async fn run_partition(self, stop: Shutdown) -> Result<WorkerReport> {
        let queue = self.queue.partition_handles()[0].clone();
        let counters = Arc::new(Counters::default());
        let in_flight = InFlight::default();
        let (settle_tx, settle_rx) = mpsc::unbounded_channel::<Vec<SettleItem>>();
        let cancellation = Cancellation {
            stop: CancellationToken::new(),
            grace: self.config.cancel_grace,
        };
        let mut background = self.spawn_background(&queue, &in_flight, &stop);
        let settler = Settler::spawn(
            (queue.clone(), self.consumer.clone()),
            settle_rx,
            self.config.settle_batch,
            counters.clone(),
            in_flight.clone(),
            self.observer.clone(),
        );

        tracing::info!(queue = queue.name(), consumer = %self.consumer, concurrency = self.config.concurrency, "worker started");
        let pace = Arc::new(Pace::default());
        let dispatch = Dispatch {
            settle_tx,
            cancellation,
            counters: counters.clone(),
            pace: pace.clone(),
        };
        let slots = self
            .shared_slots
            .clone()
            .unwrap_or_else(|| Arc::new(Semaphore::new(self.config.concurrency)));
        let mut executor =
            Executor::new(self.handler.clone(), slots, dispatch, self.running.clone());
        let fetcher = Fetcher::connect(
            queue.clone(),
            self.consumer.clone(),
            self.config.clone(),
            in_flight,
            pace,
            stop,
        )
        .await;
        if let Some(fetcher) = fetcher {
            fetcher.run(&mut executor).await?;
        }

        let running = executor
            .finish(queue.name(), self.config.shutdown_grace)
            .await;
        settler.finish(self.config.shutdown_grace).await;
        background.abort_all();
        if let Err(e) = queue.store().remove_consumer(&self.consumer).await {
            tracing::debug!(queue = queue.name(), error = %e, "could not remove consumer");
        }
        let report = counters.report();
        tracing::info!(queue = queue.name(), consumer = %self.consumer, running_at_stop = running, ?report, "worker stopped");
        Ok(report)
    }

    /// The loops that run beside the fetch loop until the worker is done:
    /// the promoter, the reclaimer, the cancel watcher and the keep-alive.
    fn spawn_background(
        &self,
        queue: &Partition,
        in_flight: &InFlight,
        stop: &Shutdown,
    ) -> JoinSet<()> {
        let visibility = queue.config().visibility_timeout;
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
            visibility / REFRESHES_PER_VISIBILITY,
            stop.clone(),
        ));
        background
    }
}

/// Run `workers` (one per partition, see [`Worker::per_partition`]) until
/// `shutdown`; their reports summed, or the first error.
async fn run_all<H: Runner>(workers: Vec<Worker<H>>, shutdown: Shutdown) -> Result<WorkerReport> {
    let (stop, signal) = own_stop(shutdown);
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
    drop(signal);
    match first_error {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// The worker's own [`Shutdown`], triggered when the caller's is, and the
/// task that waits for it (to abort once the worker is done). Its own, so
/// every loop's clone is made from a handle that has not waited (see
/// [`Shutdown::noticed`]), whatever the caller did with its handle.
fn own_stop(shutdown: Shutdown) -> (Shutdown, AbortOnDrop) {
    let stop = Shutdown::new();
    let trigger = stop.clone();
    let task = tokio::spawn(async move {
        shutdown.triggered().await;
        trigger.trigger();
    });
    (stop, AbortOnDrop(task))
}

/// A task aborted when this is dropped: when the worker is done, and when
/// the caller drops `run`'s future (a timeout, a `select!`), so the task
/// waiting for the caller's stop does not outlive the worker.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
