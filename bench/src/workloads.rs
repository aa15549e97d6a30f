//! The workloads of `compare` and of the single-system scenarios, run with
//! Sluice in this process on the engine crate (as the peers run theirs in
//! their own process): producer and worker share the process.
//!
//! Every workload uses the engine with its durability features on: a job
//! hash per job, fenced settles, retries enabled (3 attempts), reclaim and
//! promoter running.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sluice_engine::{
    Backoff, Client, ClientConfig, HandlerError, Job, JobOptions, NewJob, Outcome, Queue,
    QueueConfig, Worker, WorkerConfig,
};
use tokio::sync::watch;

/// Jobs per batch when enqueueing in batches (all systems).
pub const BATCH: u64 = 1000;
/// Producers at once when enqueueing one job per call (all systems).
pub const SINGLE_PRODUCERS: u64 = 50;
/// One job in this many fails its first attempt in `retry` (all systems).
pub const RETRY_SHARE: u64 = 10;

/// One workload, the same for every system.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Workload {
    /// Enqueue `jobs` in batches of [`BATCH`], one batch after another.
    EnqueueBatch,
    /// Enqueue `jobs` one per call from [`SINGLE_PRODUCERS`] producers.
    EnqueueSingle,
    /// Enqueue in batches while one worker at `concurrency` drains them;
    /// from the first enqueue to the last job's completion.
    E2e { concurrency: usize },
    /// `E2e` at concurrency 50 with random priorities over 4 levels.
    E2ePriority,
    /// `E2e` at concurrency 50 where one job in [`RETRY_SHARE`] fails its
    /// first attempt and is retried at once.
    Retry,
    /// Single enqueues at a steady `rate` for `seconds`; time from enqueue
    /// to handler start.
    Latency { rate: u64, seconds: u64 },
    /// `jobs` enqueued first (not timed), then drained by workers at
    /// `concurrency`: from the workers' start to the last job done.
    Drain { concurrency: usize },
}

impl Workload {
    /// The name the peers' programs take.
    pub fn peer_name(self) -> &'static str {
        match self {
            Workload::EnqueueBatch => "enqueue-batch",
            Workload::EnqueueSingle => "enqueue-single",
            Workload::E2e { .. } => "e2e",
            Workload::E2ePriority => "e2e-priority",
            Workload::Retry => "retry",
            Workload::Latency { .. } => "latency",
            Workload::Drain { .. } => "drain",
        }
    }

    /// The concurrency handlers run at (workloads that run handlers).
    pub fn concurrency(self) -> usize {
        match self {
            Workload::E2e { concurrency } | Workload::Drain { concurrency } => concurrency,
            _ => 50,
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Workload::E2e { concurrency } => write!(f, "e2e c{concurrency}"),
            Workload::Drain { concurrency } => write!(f, "drain c{concurrency}"),
            Workload::Latency { rate, .. } => write!(f, "latency @{rate}/s"),
            other => f.write_str(other.peer_name()),
        }
    }
}

/// What one run of one workload measured. Also the JSON line each peer
/// program prints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Measured {
    pub system: String,
    #[serde(default)]
    pub version: String,
    pub workload: String,
    #[serde(default)]
    pub jobs: u64,
    #[serde(default)]
    pub seconds: f64,
    /// How the system was used (batch calls, options).
    #[serde(default)]
    pub how: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p999_ms: Option<f64>,
    /// Why the run produced no figure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Measured {
    /// Jobs per second, when the run succeeded.
    pub fn per_second(&self) -> Option<f64> {
        (self.error.is_none() && self.seconds > 0.0).then(|| self.jobs as f64 / self.seconds)
    }
}

/// The payload of every bench job: a sequence number and the enqueue time.
#[derive(Debug, Serialize, Deserialize)]
struct Noop {
    n: u64,
    /// Enqueue time, ms since the epoch (latency workload).
    t: f64,
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

async fn queue(redis_url: &str, name: &str) -> anyhow::Result<Queue> {
    let client = Client::connect_with(ClientConfig::new(redis_url).prefix("bench")).await?;
    let config = QueueConfig {
        // Retries at once, so `retry` measures the cost of the retry itself
        // (the peers retry at once as well).
        backoff: Backoff {
            base: Duration::ZERO,
            factor: 1.0,
            max: Duration::ZERO,
            jitter: 0.0,
        },
        ..QueueConfig::default()
    };
    Ok(client.queue_with(name, config).await?)
}

pub(crate) fn job(n: u64, options: JobOptions) -> anyhow::Result<NewJob> {
    Ok(NewJob::new(&Noop { n, t: now_ms() }, options)?)
}

async fn enqueue_batches(
    queue: Queue,
    total: u64,
    options: impl Fn(u64) -> JobOptions,
) -> anyhow::Result<()> {
    let mut start = 0;
    while start < total {
        let batch = (start..total.min(start + BATCH))
            .map(|n| job(n, options(n)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        queue.enqueue_many(batch).await?;
        start += BATCH;
    }
    Ok(())
}

/// Counts finished jobs, notes when the last one finished and asks the
/// worker to stop then.
#[derive(Clone)]
pub(crate) struct Finish {
    done: Arc<AtomicU64>,
    target: u64,
    stop: Arc<watch::Sender<bool>>,
    finished_at: Arc<std::sync::OnceLock<Instant>>,
}

impl Finish {
    pub(crate) fn new(target: u64) -> (Self, watch::Receiver<bool>) {
        let (stop, stopped) = watch::channel(false);
        let finish = Self {
            done: Arc::default(),
            target,
            stop: Arc::new(stop),
            finished_at: Arc::default(),
        };
        (finish, stopped)
    }

    pub(crate) fn one(&self) {
        if self.done.fetch_add(1, Ordering::SeqCst) + 1 == self.target {
            let _ = self.finished_at.set(Instant::now());
            let _ = self.stop.send(true);
        }
    }

    /// When the last job finished (None before).
    pub(crate) fn finished_at(&self) -> Option<Instant> {
        self.finished_at.get().copied()
    }
}

/// A worker as a user gets it: the defaults (claims of up to 100 jobs, the
/// free slots plus `prefetch` = the concurrency), at `concurrency`.
pub(crate) fn worker_config(concurrency: usize) -> WorkerConfig {
    WorkerConfig {
        concurrency,
        ..WorkerConfig::default()
    }
}

/// Run `handler` over `queue` until `stopped`, then wait for the worker to
/// settle what it ran and return.
async fn drain<H: sluice_engine::Handler>(
    queue: Queue,
    handler: H,
    concurrency: usize,
    mut stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let worker = Worker::new(queue, handler).with_config(worker_config(concurrency));
    worker
        .run(sluice_engine::Shutdown::when(async move {
            let _ = stopped.wait_for(|s| *s).await;
        }))
        .await?;
    Ok(())
}

/// Run `workload` with Sluice against `redis_url` (`jobs` for the
/// workloads with a fixed count).
pub async fn run_sluice(redis_url: &str, workload: Workload, jobs: u64) -> Measured {
    let mut measured = Measured {
        system: "sluice".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        workload: workload.to_string(),
        jobs,
        ..Measured::default()
    };
    if let Err(e) = measure(redis_url, workload, jobs, &mut measured).await {
        measured.error = Some(format!("{e:#}"));
    }
    measured
}

async fn measure(
    redis_url: &str,
    workload: Workload,
    jobs: u64,
    m: &mut Measured,
) -> anyhow::Result<()> {
    let queue = queue(redis_url, &format!("bench-{}", workload.peer_name())).await?;
    let c = workload.concurrency();
    if let Workload::Drain { .. } = workload {
        // Filled first, as another process would have: not timed.
        enqueue_batches(queue.clone(), jobs, |_| JobOptions::new()).await?;
        // A mark for profilers attached to this run (perf, /proc).
        eprintln!("phase timed start: {workload}");
    }
    let start = Instant::now();
    // The workloads of a fixed count end at the last job's completion, as
    // the peers' do, not when the worker has stopped: an idle worker's stop
    // waits out its blocking read (up to `block_timeout`, 2 s).
    let (finish, stopped) = Finish::new(jobs);
    let last = finish.clone();
    match workload {
        Workload::Drain { .. } => {
            let handler = move |_job: Job| {
                let finish = finish.clone();
                async move {
                    finish.one();
                    Ok::<_, HandlerError>(Outcome::Done)
                }
            };
            drain(queue, handler, c, stopped).await?;
            m.how = format!("{jobs} jobs enqueued first, then one worker at concurrency {c}");
        }
        Workload::EnqueueBatch => {
            enqueue_batches(queue, jobs, |_| JobOptions::new()).await?;
            m.how = format!("enqueue_batch of {BATCH}");
        }
        Workload::EnqueueSingle => {
            let next = Arc::new(AtomicU64::new(0));
            let mut producers = tokio::task::JoinSet::new();
            for _ in 0..SINGLE_PRODUCERS {
                let (queue, next) = (queue.clone(), next.clone());
                producers.spawn(async move {
                    loop {
                        let n = next.fetch_add(1, Ordering::SeqCst);
                        if n >= jobs {
                            return anyhow::Ok(());
                        }
                        queue
                            .enqueue_value(&Noop { n, t: 0.0 }, JobOptions::new())
                            .await?;
                    }
                });
            }
            while let Some(r) = producers.join_next().await {
                r??;
            }
            m.how = format!("enqueue, {SINGLE_PRODUCERS} producers at once");
        }
        Workload::E2e { .. } | Workload::E2ePriority | Workload::Retry => {
            let priority = workload == Workload::E2ePriority;
            let producer = tokio::spawn(enqueue_batches(queue.clone(), jobs, move |_| {
                if priority {
                    JobOptions::new().priority(rand::random_range(0..4))
                } else {
                    JobOptions::new()
                }
            }));
            let failing = workload == Workload::Retry;
            let handler = move |job: Job| {
                let finish = finish.clone();
                async move {
                    if failing && job.attempt == 1 {
                        let payload: Noop = job.decode()?;
                        if payload.n.is_multiple_of(RETRY_SHARE) {
                            return Err::<Outcome, HandlerError>("first attempt fails".into());
                        }
                    }
                    finish.one();
                    Ok(Outcome::Done)
                }
            };
            drain(queue, handler, c, stopped).await?;
            producer.await??;
            m.how = match workload {
                Workload::E2ePriority => {
                    format!("enqueue_batch of {BATCH} with priorities 0-3, concurrency {c}")
                }
                Workload::Retry => format!(
                    "1 in {RETRY_SHARE} fails once, 3 attempts, no backoff, concurrency {c}"
                ),
                _ => format!("enqueue_batch of {BATCH}, concurrency {c}"),
            };
        }
        Workload::Latency { rate, seconds } => {
            let total = rate * seconds;
            m.jobs = total;
            let (finish, stopped) = Finish::new(total);
            // By job number: when it was made and its enqueue call answered,
            // and when its handler started. The wait is start minus making;
            // the split printed below divides it at the answer.
            let answered = Arc::new(std::sync::Mutex::new(vec![
                (f64::NAN, f64::NAN);
                total as usize
            ]));
            let started = Arc::new(std::sync::Mutex::new(vec![f64::NAN; total as usize]));
            let handler = {
                let started = started.clone();
                move |job: Job| {
                    let now = now_ms();
                    let noop = job.decode::<Noop>();
                    let (finish, started) = (finish.clone(), started.clone());
                    async move {
                        let noop = noop?;
                        if let Ok(mut s) = started.lock()
                            && let Some(at) = s.get_mut(noop.n as usize)
                        {
                            *at = now;
                        }
                        finish.one();
                        Ok::<_, HandlerError>(Outcome::Done)
                    }
                }
            };
            let worker = tokio::spawn(drain(queue.clone(), handler, c, stopped));
            let producer = tokio::spawn(offer_jobs(queue, rate, total, answered.clone()));
            producer.await??;
            worker.await??;
            print_latency_split(&answered, &started);
            let mut waits: Vec<f64> = {
                let answered = answered.lock().map_err(|e| anyhow::anyhow!("{e}"))?;
                let started = started.lock().map_err(|e| anyhow::anyhow!("{e}"))?;
                answered
                    .iter()
                    .zip(started.iter())
                    .map(|((made, _), start)| start - made)
                    .filter(|wait| wait.is_finite())
                    .collect()
            };
            waits.sort_by(f64::total_cmp);
            m.p50_ms = Some(percentile(&waits, 0.5));
            m.p99_ms = Some(percentile(&waits, 0.99));
            m.p999_ms = Some(percentile(&waits, 0.999));
            m.how = format!("enqueue at {rate}/s, concurrency {c}; enqueue to handler start");
        }
    }
    m.seconds = last
        .finished_at()
        .unwrap_or_else(Instant::now)
        .duration_since(start)
        .as_secs_f64();
    Ok(())
}

/// Print to stderr where the latency workload's waits went: the enqueue
/// call (from the job's making to the call's answer), and from that answer
/// to the handler's start (negative when the handler started first).
fn print_latency_split(
    answered: &std::sync::Mutex<Vec<(f64, f64)>>,
    started: &std::sync::Mutex<Vec<f64>>,
) {
    let (Ok(answered), Ok(started)) = (answered.lock(), started.lock()) else {
        return;
    };
    let sorted = |mut v: Vec<f64>| {
        v.retain(|d| d.is_finite());
        v.sort_by(f64::total_cmp);
        v
    };
    let call = sorted(answered.iter().map(|(made, at)| at - made).collect());
    let after = sorted(
        answered
            .iter()
            .zip(started.iter())
            .map(|((_, at), start)| start - at)
            .collect(),
    );
    for (what, v) in [
        ("the enqueue call", call),
        ("its answer to the handler's start", after),
    ] {
        if !v.is_empty() {
            eprintln!(
                "latency split: {what}: p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms",
                percentile(&v, 0.5),
                percentile(&v, 0.99),
                percentile(&v, 0.999),
            );
        }
    }
}

/// Open loop: every millisecond, enqueue (one call per job) what is due.
/// Job `n`'s making and answer times go to `answered[n]`.
async fn offer_jobs(
    queue: Queue,
    rate: u64,
    total: u64,
    answered: Arc<std::sync::Mutex<Vec<(f64, f64)>>>,
) -> anyhow::Result<()> {
    let begun = Instant::now();
    let mut sent = 0;
    let mut calls = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    while sent < total {
        tick.tick().await;
        let due = ((begun.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
        while sent < due {
            let queue = queue.clone();
            let n = sent;
            let answered = answered.clone();
            calls.spawn(async move {
                let made = now_ms();
                let r = queue
                    .enqueue_value(&Noop { n, t: made }, JobOptions::new())
                    .await;
                if let Ok(mut a) = answered.lock()
                    && let Some(at) = a.get_mut(n as usize)
                {
                    *at = (made, now_ms());
                }
                r
            });
            sent += 1;
        }
        while let Some(r) = calls.try_join_next() {
            r??;
        }
    }
    while let Some(r) = calls.join_next().await {
        r??;
    }
    Ok(())
}
