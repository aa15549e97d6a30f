//! [`Fleet`]: what a worker process runs. Workers for any number of queues
//! under one worker id, a heartbeat in the worker registry while they run
//! (operators see the process, its queues and its jobs in flight), a
//! graceful stop on one [`Shutdown`], and leaving the registry at the end.
//!
//! ```no_run
//! use sluice_engine::{Client, Fleet, Outcome, Shutdown, WorkerConfig, handler_fn};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect("redis://127.0.0.1:6379/").await?;
//! let emails = client.queue("emails").await?;
//! let stop = Shutdown::new();
//! let mut fleet = Fleet::new(client);
//! fleet.serve(
//!     emails,
//!     handler_fn(|_job, to: String| async move { Ok(Outcome::Done) }),
//!     WorkerConfig { concurrency: 20, ..WorkerConfig::default() },
//! );
//! let signal = stop.clone();
//! tokio::spawn(async move {
//!     let _ = tokio::signal::ctrl_c().await;
//!     signal.trigger();
//! });
//! fleet.run(stop).await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;

use crate::{
    Client, Error, Handlers, Queue, Registry, Result, Runner, ServedQueue, Shutdown, Worker,
    WorkerConfig, WorkerInfo, WorkerReport, host_name, new_worker_id, unix_ms,
};

/// How often a fleet beats by default. The registry entry lives for three
/// beats, so a process that stops beating leaves the list within 15 s.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);

/// A worker's run, started when the fleet runs.
type WorkerRun =
    Box<dyn FnOnce(Shutdown) -> Pin<Box<dyn Future<Output = Result<WorkerReport>> + Send>> + Send>;

/// Workers for many queues under one worker id, with a heartbeat and one
/// graceful stop (see the module documentation).
pub struct Fleet {
    client: Client,
    id: String,
    heartbeat: Duration,
    runs: Vec<(String, WorkerRun)>,
    gauges: Vec<Arc<AtomicUsize>>,
    served: Vec<ServedQueue>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("id", &self.id)
            .field("heartbeat", &self.heartbeat)
            .field("served", &self.served)
            .finish_non_exhaustive()
    }
}

/// How each worker of a fleet ended, in the order they stopped.
#[derive(Debug, Default)]
pub struct FleetReport {
    /// The queue of each worker, and its report.
    pub stopped: Vec<(String, WorkerReport)>,
}

impl Fleet {
    /// A fleet with a new worker id ([`new_worker_id`]) and the default
    /// heartbeat, serving nothing yet.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            id: new_worker_id(),
            heartbeat: DEFAULT_HEARTBEAT,
            runs: Vec::new(),
            gauges: Vec::new(),
            served: Vec::new(),
        }
    }

    /// Beat every `every` (at least a second).
    pub fn heartbeat_every(mut self, every: Duration) -> Self {
        self.heartbeat = every.max(Duration::from_secs(1));
        self
    }

    /// The worker id: the registry entry's, and every worker's consumer
    /// name (a partition's worker adds its partition).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The queues served so far, with their concurrency.
    pub fn served(&self) -> &[ServedQueue] {
        &self.served
    }

    /// Serve `queue` with `handler`: one worker per partition, sharing
    /// `config.concurrency` and one in-flight count. The fleet's id is the
    /// workers' consumer name (`config.consumer` is replaced).
    pub fn serve<H: Runner>(
        &mut self,
        queue: Queue,
        handler: H,
        config: WorkerConfig,
    ) -> &mut Self {
        let name = queue.name().to_owned();
        let concurrency = config.concurrency;
        let config = WorkerConfig {
            consumer: Some(self.id.clone()),
            ..config
        };
        let workers = Worker::new(queue, handler)
            .with_config(config)
            .per_partition();
        self.gauges.push(workers[0].in_flight());
        self.served.push(ServedQueue {
            queue: name.clone(),
            concurrency,
        });
        for worker in workers {
            let run: WorkerRun =
                Box::new(move |stop: Shutdown| Box::pin(async move { worker.run(stop).await }));
            self.runs.push((name.clone(), run));
        }
        self
    }

    /// Serve `queue` with the handler `handlers` holds for its name (see
    /// [`serve`](Self::serve)). Refused when it holds none: a worker with
    /// nothing to run would only take jobs from the queue.
    pub fn serve_registered(
        &mut self,
        handlers: &Handlers,
        queue: Queue,
        config: WorkerConfig,
    ) -> Result<&mut Self> {
        let handler = handlers.get(queue.name()).cloned().ok_or_else(|| {
            Error::invalid(
                "handler",
                format!("queue {} has no registered handler", queue.name()),
            )
        })?;
        Ok(self.serve(queue, handler, config))
    }

    /// Run every worker until `stop` is triggered and each has finished its
    /// jobs (each within its `shutdown_grace`), beating meanwhile; then
    /// leave the registry. A worker that fails is logged at once and the
    /// others go on; the first failure is the answer once all have ended.
    pub async fn run(self, stop: Shutdown) -> Result<FleetReport> {
        if self.runs.is_empty() {
            return Err(Error::invalid("fleet", "serves no queue"));
        }
        let info = WorkerInfo {
            id: self.id.clone(),
            host: host_name(),
            pid: std::process::id(),
            concurrency: self.served.iter().map(|s| s.concurrency).sum(),
            queues: self.served,
            in_flight: 0,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            started_at_ms: unix_ms(),
            last_beat_ms: unix_ms(),
        };
        let mut workers = JoinSet::new();
        for (name, run) in self.runs {
            let future = run(stop.clone());
            workers.spawn(async move { (name, future.await) });
        }
        let heart = tokio::spawn(beat(
            self.client.registry(),
            info,
            self.gauges,
            self.heartbeat,
            stop.clone(),
        ));
        let mut report = FleetReport::default();
        let mut failed = None;
        while let Some(joined) = workers.join_next().await {
            match joined {
                Ok((name, Ok(stopped))) => {
                    tracing::info!(queue = %name, report = ?stopped, "worker stopped");
                    report.stopped.push((name, stopped));
                }
                // The other queues go on being served: one queue's failure
                // is no reason to stop the rest of the process.
                Ok((name, Err(e))) => {
                    tracing::error!(queue = %name, error = %e, "worker failed");
                    failed.get_or_insert(e);
                }
                Err(e) => {
                    tracing::error!(error = %e, "worker task failed");
                    failed.get_or_insert(Error::invalid("worker task", e.to_string()));
                }
            }
        }
        heart.abort();
        if let Err(e) = self.client.registry().deregister(&self.id).await {
            tracing::warn!(error = %e, "could not leave the worker registry; the entry expires by itself");
        }
        failed.map_or(Ok(report), Err)
    }
}

/// Beat every `every` until aborted: the registry entry with the in-flight
/// count, living three beats.
async fn beat(
    registry: Registry,
    mut info: WorkerInfo,
    gauges: Vec<Arc<AtomicUsize>>,
    every: Duration,
    stop: Shutdown,
) {
    loop {
        info.in_flight = gauges.iter().map(|g| g.load(Ordering::Relaxed)).sum();
        info.last_beat_ms = unix_ms();
        if let Err(e) = registry.heartbeat(&info, every * 3).await {
            tracing::warn!(error = %e, "heartbeat failed");
        }
        // Keep beating while the workers drain (`run` aborts this task);
        // woken early by the stop, to report the draining in-flight count.
        if stop.is_triggered() {
            tokio::time::sleep(every).await;
        } else {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.triggered() => {}
            }
        }
    }
}
