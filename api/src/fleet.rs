//! A worker process: which queues it serves and what runs their jobs (HTTP
//! delivery for queues with a `url`, a plug-in's handlers for its queues),
//! registered by queue name in the engine's `Handlers` and handed to the
//! engine's `Fleet`, which runs them under one worker id with a heartbeat
//! and a graceful stop.

use std::time::Duration;

use anyhow::{Context, bail};
use sluice_engine::{Client, Fleet, Handlers, Shutdown, Typed, WorkerConfig};
use sluice_plugin::HandledQueue;

use crate::config::{FileConfig, QueueSection, RateLimitSetting};
use crate::delivery::HttpDelivery;
use crate::plugins::{Enabled, Opened};

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
/// that has a handler (a `url`) and every plug-in's queue.
pub fn select(
    file: &FileConfig,
    plugins: &Enabled,
    named: &[Served],
) -> anyhow::Result<Vec<(QueueSection, usize)>> {
    let plugin_queues = plugins.queues();
    let plugin_queue = |name: &str| plugin_queues.iter().find(|q| q.name == name);
    let section_of = |name: &str| -> Option<QueueSection> {
        match (file.queue(name), plugin_queue(name)) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(q)) => Some(QueueSection::named(name, q.concurrency)),
            (None, None) => None,
        }
    };
    let mut out = Vec::new();
    if named.is_empty() {
        for q in file.queues.iter().filter(|q| q.url.is_some()) {
            out.push((q.clone(), q.concurrency));
        }
        for q in &plugin_queues {
            if let Some(section) = section_of(&q.name).filter(|s| s.url.is_none()) {
                let n = section.concurrency;
                out.push((section, n));
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
        if section.url.is_none() && plugin_queue(&s.queue).is_none() {
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
/// heartbeat (the engine's [`Fleet`]): HTTP delivery for a queue with a
/// `url`, its plug-in's handler for any other. Returns when every worker
/// has stopped.
pub async fn run(
    client: Client,
    file: &FileConfig,
    plugins: &Opened,
    queues: Vec<(QueueSection, usize)>,
    stop: Shutdown,
) -> anyhow::Result<()> {
    if queues.is_empty() {
        bail!("no queue to work on: name one with --queue, or configure [[queues]] with a url");
    }
    let handlers = handlers(&client, plugins, &queues).await?;
    let grace = Duration::from_secs(file.worker.shutdown_grace_secs);
    let mut fleet =
        Fleet::new(client.clone()).heartbeat_every(Duration::from_secs(file.worker.heartbeat_secs));
    for (section, concurrency) in queues {
        let config = WorkerConfig {
            concurrency,
            // Batch writers (a plug-in's bulk inserts) want whole batches
            // per claim.
            batch_size: concurrency.clamp(1, 500),
            shutdown_grace: grace,
            ..WorkerConfig::default()
        };
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
        fleet.serve_registered(&handlers, handle, config)?;
    }
    let id = fleet.id().to_owned();
    fleet
        .run(stop)
        .await
        .with_context(|| format!("a worker of {id} failed"))?;
    Ok(())
}

/// The handler of each of `queues`: HTTP delivery to its `url`, or what
/// its plug-in adds.
async fn handlers(
    client: &Client,
    plugins: &Opened,
    queues: &[(QueueSection, usize)],
) -> anyhow::Result<Handlers> {
    let mut handlers = Handlers::new();
    let mut handled = Vec::new();
    for (section, concurrency) in queues {
        // A queue named twice (`--queue a --queue a:4`) is served twice,
        // by one handler.
        if handlers.get(&section.name).is_some()
            || handled
                .iter()
                .any(|h: &HandledQueue| h.name == section.name)
        {
            continue;
        }
        match &section.url {
            Some(url) => {
                tracing::info!(queue = %section.name, concurrency, target = %sluice_engine::redact_url(url), "serving queue");
                let delivery = delivery(client, section, url).await?;
                handlers.add(&section.name, Typed(delivery))?;
            }
            None => {
                tracing::info!(queue = %section.name, concurrency, "serving a plug-in's queue");
                handled.push(HandledQueue {
                    name: section.name.clone(),
                    breaker: section.breaker.config(),
                });
            }
        }
    }
    plugins.add_handlers(&mut handlers, &handled).await?;
    Ok(handlers)
}

/// HTTP delivery of `section`'s jobs to `url`, behind the breaker of its
/// host unless turned off.
async fn delivery(
    client: &Client,
    section: &QueueSection,
    url: &str,
) -> anyhow::Result<HttpDelivery> {
    let timeout = section
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_DELIVERY_TIMEOUT);
    let mut delivery = HttpDelivery::new(url, section.secret.as_deref(), timeout)?;
    if let Some(config) = section.breaker.config() {
        let name = sluice_engine::target_breaker_name(url)
            .with_context(|| format!("queue {}: no breaker name for {url}", section.name))?;
        delivery = delivery.with_breaker(client.breakers().get(&name, config).await?);
    }
    Ok(delivery)
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

    /// `sluice work --queue hooks --queue hooks:4` served the queue twice
    /// before the handlers went through the registry; it must not refuse.
    #[tokio::test]
    async fn a_queue_named_twice_gets_its_handler_once() {
        let prefix = sluice_testkit::KeyPrefix::new("redis://127.0.0.1:6379/", "fleet-twice");
        let client = Client::connect_with(
            sluice_engine::ClientConfig::new("redis://127.0.0.1:6379/").prefix(&prefix.name),
        )
        .await
        .expect("connect");
        let plugins = crate::plugins::Enabled::new(Vec::new())
            .expect("no plug-in")
            .open(&client)
            .expect("open");
        let mut hooks = QueueSection::named("hooks", 2);
        hooks.url = Some("http://127.0.0.1:9/hook".into());
        let queues = vec![(hooks.clone(), 2), (hooks, 4)];
        let handlers = handlers(&client, &plugins, &queues)
            .await
            .expect("a queue named twice is served, not refused");
        assert_eq!(handlers.queues().collect::<Vec<_>>(), ["hooks"]);
    }
}
