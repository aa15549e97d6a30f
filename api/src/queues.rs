//! [`QueueDirectory`]: the queues a process knows, by name. It is the one
//! place that turns a queue's name and its `[[queues]]` entry (settings,
//! partitions) into an engine handle, so the config schema does no Redis
//! I/O, and the server, the CLI and the worker runtime open queues the same
//! way. Handles are kept once opened (opening one costs round trips).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use sluice_engine::{Client, Queue, QueueConfig, Result};

use crate::config::FileConfig;

/// The queues of one process: what the config says of each, and the
/// handles opened so far. Cheap to clone.
#[derive(Debug, Clone)]
pub struct QueueDirectory {
    client: Client,
    /// Each configured queue's settings and partition count (when split).
    configured: Arc<HashMap<String, (QueueConfig, Option<u16>)>>,
    opened: Arc<RwLock<HashMap<String, Queue>>>,
}

impl QueueDirectory {
    /// The queues `file` configures, opened on `client`.
    pub fn new(client: Client, file: &FileConfig) -> Self {
        let configured = file
            .queues
            .iter()
            .map(|q| (q.name.clone(), (q.queue_config(), q.partitions)))
            .collect();
        Self {
            client,
            configured: Arc::new(configured),
            opened: Arc::default(),
        }
    }

    /// Queue `name` for enqueues: made when new, with its configured
    /// settings and, when the config splits it, its partitions.
    pub async fn for_write(&self, name: &str) -> Result<Queue> {
        if let Some(q) = self.cached(name) {
            return Ok(q);
        }
        let q = match self.configured.get(name) {
            Some((config, Some(n))) => {
                self.client
                    .partitioned_queue(name, *n, config.clone())
                    .await?
            }
            Some((config, None)) => self.client.queue_with(name, config.clone()).await?,
            None => self.client.queue(name).await?,
        };
        Ok(self.remember(q))
    }

    /// Queue `name` with all its partitions when it exists (opened before
    /// under this prefix) or the config splits it; `None` otherwise. Reads
    /// and operators' actions go through it.
    pub async fn existing(&self, name: &str) -> Result<Option<Queue>> {
        if let Some(q) = self.cached(name) {
            return Ok(Some(q));
        }
        if let Some(q) = self.configured_split(name).await? {
            return Ok(Some(self.remember(q)));
        }
        Ok(self
            .client
            .existing_queue(name)
            .await?
            .map(|q| self.remember(q)))
    }

    /// Queue `name`'s partitions when the config splits it, opened; `None`
    /// for every other queue.
    pub async fn configured_split(&self, name: &str) -> Result<Option<Queue>> {
        let Some((config, Some(n))) = self.configured.get(name) else {
            return Ok(None);
        };
        self.client
            .partitioned_queue(name, *n, config.clone())
            .await
            .map(Some)
    }

    fn cached(&self, name: &str) -> Option<Queue> {
        self.opened.read().ok().and_then(|m| m.get(name).cloned())
    }

    fn remember(&self, q: Queue) -> Queue {
        if let Ok(mut m) = self.opened.write() {
            m.insert(q.name().to_owned(), q.clone());
        }
        q
    }
}

/// Queue `name`'s partitions when `file` splits it (`partitions`), opened on
/// `client`; `None` for every other queue.
pub async fn partitioned(file: &FileConfig, client: &Client, name: &str) -> Result<Option<Queue>> {
    QueueDirectory::new(client.clone(), file)
        .configured_split(name)
        .await
}
