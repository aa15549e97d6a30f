//! A worker process: one engine `Worker` per served queue, each running the
//! queue's handler (HTTP delivery for queues with a `url`), a heartbeat in
//! the fleet registry, and a graceful stop on SIGTERM/SIGINT.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use sluice_engine::{Client, ServedQueue, Worker, WorkerConfig, WorkerInfo, unix_ms};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::config::{FileConfig, QueueSection};
use crate::delivery::HttpDelivery;
use crate::signals::stopped;

/// Default HTTP delivery timeout.
const DEFAULT_DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// One queue to serve and how many of its jobs to run at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The queue.
    pub queue: String,
    /// Jobs run at once (overrides the config).
    pub concurrency: Option<usize>,
}

impl std::str::FromStr for Served {
    type Err = String;

    /// `NAME` or `NAME:CONCURRENCY`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (queue, concurrency) = match s.rsplit_once(':') {
            Some((q, n)) => {
                let n: usize =
                    n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                        format!("{s:?}: concurrency must be a whole number above 0")
                    })?;
                (q, Some(n))
            }
            None => (s, None),
        };
        sluice_engine::keys::validate_name("queue name", queue).map_err(|e| e.to_string())?;
        Ok(Self {
            queue: queue.to_owned(),
            concurrency,
        })
    }
}

/// Which queues a process serves: those named, or every configured queue
/// that has a handler.
pub fn select(file: &FileConfig, named: &[Served]) -> anyhow::Result<Vec<(QueueSection, usize)>> {
    let mut out = Vec::new();
    if named.is_empty() {
        for q in file.queues.iter().filter(|q| q.url.is_some()) {
            out.push((q.clone(), q.concurrency));
        }
        return Ok(out);
    }
    for s in named {
        let Some(section) = file.queue(&s.queue) else {
            bail!(
                "queue {} is not configured: add a [[queues]] entry with a `url` to deliver its jobs to",
                s.queue
            );
        };
        if section.url.is_none() {
            bail!(
                "queue {} has no handler: set its `url` in the config",
                s.queue
            );
        }
        out.push((
            section.clone(),
            s.concurrency.unwrap_or(section.concurrency),
        ));
    }
    Ok(out)
}

/// Run workers for `queues` until `stop`, with a heartbeat. Returns when
/// every worker has stopped.
pub async fn run(
    client: Client,
    file: &FileConfig,
    queues: Vec<(QueueSection, usize)>,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    if queues.is_empty() {
        bail!("no queue to work on: name one with --queue, or configure [[queues]] with a url");
    }
    let id = sluice_engine::new_worker_id();
    let grace = Duration::from_secs(file.worker.shutdown_grace_secs);
    let mut gauges = Vec::new();
    let mut served = Vec::new();
    let mut workers = JoinSet::new();
    for (section, concurrency) in queues {
        let queue = client
            .queue_with(&section.name, section.queue_config())
            .await
            .with_context(|| format!("cannot open queue {}", section.name))?;
        queue.set_rate_limit(section.rate_limit()?).await?;
        let url = section.url.as_deref().unwrap_or_default();
        let timeout = section
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_DELIVERY_TIMEOUT);
        let handler = HttpDelivery::new(url, section.secret.as_deref(), timeout)?;
        let worker = Worker::new(queue, handler).with_config(WorkerConfig {
            concurrency,
            batch_size: concurrency.clamp(1, 100),
            shutdown_grace: grace,
            consumer: Some(id.clone()),
            ..WorkerConfig::default()
        });
        gauges.push(worker.in_flight());
        served.push(ServedQueue {
            queue: section.name.clone(),
            concurrency,
        });
        tracing::info!(queue = %section.name, concurrency, target = %url, "serving queue");
        let stop = stop.clone();
        let name = section.name.clone();
        workers.spawn(async move { (name, worker.run(stopped(stop)).await) });
    }
    let info = WorkerInfo {
        id: id.clone(),
        host: sluice_engine::host_name(),
        pid: std::process::id(),
        concurrency: served.iter().map(|s| s.concurrency).sum(),
        queues: served,
        in_flight: 0,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at_ms: unix_ms(),
        last_beat_ms: unix_ms(),
    };
    let every = Duration::from_secs(file.worker.heartbeat_secs.max(1));
    let heart = tokio::spawn(heartbeat(client.clone(), info, gauges, every, stop));
    let mut failed = None;
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok((name, Ok(report))) => tracing::info!(queue = %name, ?report, "worker stopped"),
            Ok((name, Err(e))) => {
                failed = Some(anyhow::Error::new(e).context(format!("worker for {name} failed")))
            }
            Err(e) => failed = Some(anyhow::Error::new(e).context("worker task failed")),
        }
    }
    heart.abort();
    if let Err(e) = client.deregister(&id).await {
        tracing::warn!(error = %e, "could not leave the worker registry; the entry expires by itself");
    }
    failed.map_or(Ok(()), Err)
}

async fn heartbeat(
    client: Client,
    mut info: WorkerInfo,
    gauges: Vec<Arc<AtomicUsize>>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        info.in_flight = gauges.iter().map(|g| g.load(Ordering::Relaxed)).sum();
        info.last_beat_ms = unix_ms();
        // Three missed beats and the entry expires.
        if let Err(e) = client.heartbeat(&info, every * 3).await {
            tracing::warn!(error = %e, "heartbeat failed");
        }
        // Keep beating while the workers drain; `run` aborts this task.
        // Woken early by a stop, to report the draining in-flight count.
        if *stop.borrow() {
            tokio::time::sleep(every).await;
        } else {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_flags_take_an_optional_concurrency() {
        assert_eq!(
            "emails:8".parse::<Served>(),
            Ok(Served {
                queue: "emails".into(),
                concurrency: Some(8)
            })
        );
        assert_eq!("emails".parse::<Served>().map(|s| s.concurrency), Ok(None));
        assert!("emails:0".parse::<Served>().is_err());
        assert!("emails:x".parse::<Served>().is_err());
        assert!("a{b}".parse::<Served>().is_err());
    }
}
