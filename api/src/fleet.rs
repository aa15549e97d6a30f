//! A worker process: which queues it serves and what runs their jobs (HTTP
//! delivery for queues with a `url`, the pipeline's handlers), handed to
//! the engine's `Fleet`, which runs them under one worker id with a
//! heartbeat and a graceful stop.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use sluice_engine::{
    Client, Fleet, HandlerError, Job, Outcome, Runner, Shutdown, Typed, WorkerConfig, run_each,
};

use crate::config::{FileConfig, QueueSection, RateLimitSetting};
use crate::delivery::HttpDelivery;
use crate::pipeline::{Pipeline, PipelineHandler};

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
        sluice_engine::QueueName::new(queue).map_err(|e| e.to_string())?;
        Ok(Self {
            queue: queue.to_owned(),
            concurrency,
        })
    }
}

/// Which queues a process serves: those named, or every configured queue
/// that has a handler (a `url`, or a pipeline queue when `[pipeline]` is
/// configured).
pub fn select(file: &FileConfig, named: &[Served]) -> anyhow::Result<Vec<(QueueSection, usize)>> {
    let pipeline = file.pipeline.as_ref();
    let is_pipeline_queue =
        |name: &str| pipeline.is_some() && sluice_jobs::queues::ALL.contains(&name);
    let section_of = |name: &str| -> Option<QueueSection> {
        match (file.queue(name), pipeline) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(p)) if is_pipeline_queue(name) => {
                Some(QueueSection::named(name, p.concurrency(name)))
            }
            _ => None,
        }
    };
    let mut out = Vec::new();
    if named.is_empty() {
        for q in file.queues.iter().filter(|q| q.url.is_some()) {
            out.push((q.clone(), q.concurrency));
        }
        if pipeline.is_some() {
            for name in sluice_jobs::queues::ALL {
                if let Some(section) = section_of(name).filter(|s| s.url.is_none()) {
                    let n = section.concurrency;
                    out.push((section, n));
                }
            }
        }
        return Ok(out);
    }
    for s in named {
        let Some(section) = section_of(&s.queue) else {
            bail!(
                "queue {} is not configured: add a [[queues]] entry with a `url` to deliver its jobs to",
                s.queue
            );
        };
        if section.url.is_none() && !is_pipeline_queue(&s.queue) {
            bail!(
                "queue {} has no handler: set its `url` in the config",
                s.queue
            );
        }
        let n = s.concurrency.unwrap_or(section.concurrency);
        out.push((section, n));
    }
    Ok(out)
}

/// Run workers for `queues` until `stop`, under one worker id with a
/// heartbeat (the engine's [`Fleet`]). Returns when every worker has
/// stopped.
pub async fn run(
    client: Client,
    file: &FileConfig,
    pipeline: Option<&Pipeline>,
    queues: Vec<(QueueSection, usize)>,
    stop: Shutdown,
) -> anyhow::Result<()> {
    if queues.is_empty() {
        bail!("no queue to work on: name one with --queue, or configure [[queues]] with a url");
    }
    let grace = Duration::from_secs(file.worker.shutdown_grace_secs);
    let mut fleet =
        Fleet::new(client.clone()).heartbeat_every(Duration::from_secs(file.worker.heartbeat_secs));
    for (section, concurrency) in queues {
        let config = WorkerConfig {
            concurrency,
            // Batch writers (ingest, audit) want whole batches per claim.
            batch_size: concurrency.clamp(1, 500),
            shutdown_grace: grace,
            ..WorkerConfig::default()
        };
        let handler = handler(&client, pipeline, &section, concurrency).await?;
        let handle = match section.partitions {
            Some(n) => {
                client
                    .partitioned_queue(&section.name, n, section.queue_config())
                    .await
            }
            None => {
                client
                    .queue_with(&section.name, section.queue_config())
                    .await
            }
        }
        .with_context(|| format!("cannot open queue {}", section.name))?;
        // The configured rate is the queue's (each partition gets its share).
        match section.rate_limit_setting()? {
            RateLimitSetting::Set(l) => handle.set_rate_limit(Some(l)).await?,
            RateLimitSetting::Remove => handle.set_rate_limit(None).await?,
            RateLimitSetting::Keep => {}
        }
        fleet.serve(handle, handler, config);
    }
    let id = fleet.id().to_owned();
    fleet
        .run(stop)
        .await
        .with_context(|| format!("a worker of {id} failed"))?;
    Ok(())
}

/// What runs `section`'s jobs: HTTP delivery to its `url`, or the
/// pipeline's handler for a pipeline queue.
async fn handler(
    client: &Client,
    pipeline: Option<&Pipeline>,
    section: &QueueSection,
    concurrency: usize,
) -> anyhow::Result<QueueHandler> {
    Ok(match (&section.url, pipeline) {
        (Some(url), _) => {
            let timeout = section
                .timeout_ms
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_DELIVERY_TIMEOUT);
            tracing::info!(queue = %section.name, concurrency, target = %sluice_engine::redact_url(url), "serving queue");
            let mut delivery = HttpDelivery::new(url, section.secret.as_deref(), timeout)?;
            if let Some(config) = section.breaker.config() {
                let name = sluice_engine::target_breaker_name(url).with_context(|| {
                    format!("queue {}: no breaker name for {url}", section.name)
                })?;
                delivery = delivery.with_breaker(client.breakers().get(&name, config).await?);
            }
            QueueHandler::Http(Box::new(Typed(delivery)))
        }
        (None, Some(p)) => match p.handler(&section.name, section.breaker.config()).await? {
            Some(h) => {
                tracing::info!(queue = %section.name, concurrency, "serving pipeline queue");
                QueueHandler::Pipeline(Arc::new(h))
            }
            None => bail!("queue {} has no handler", section.name),
        },
        (None, None) => bail!("queue {} has no handler", section.name),
    })
}

/// What runs a queue's jobs: HTTP delivery or a pipeline handler.
#[derive(Debug)]
enum QueueHandler {
    Http(Box<Typed<HttpDelivery>>),
    Pipeline(Arc<PipelineHandler>),
}

impl Runner for QueueHandler {
    fn max_batch(&self) -> usize {
        match self {
            QueueHandler::Http(_) => 1,
            QueueHandler::Pipeline(h) => h.max_batch(),
        }
    }

    async fn run(self: Arc<Self>, jobs: Vec<Job>) -> Result<Vec<Outcome>, HandlerError> {
        match &*self {
            QueueHandler::Http(h) => run_each(h.as_ref(), jobs).await,
            QueueHandler::Pipeline(h) => h.clone().run(jobs).await,
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
