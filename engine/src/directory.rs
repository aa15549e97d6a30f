//! [`QueueDirectory`]: the queues a process knows, by name. It is the one
//! place that turns a queue's name and its configured settings (and
//! partition count, when split) into a handle, so that a server, a CLI and a
//! worker runtime open queues the same way. Handles are kept once opened
//! (opening one costs round trips).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::{Client, Queue, QueueConfig, Result};

/// The queues of one process: what its configuration says of each, and the
/// handles opened so far. Cheap to clone.
#[derive(Debug, Clone)]
pub struct QueueDirectory {
    client: Client,
    /// Each configured queue's settings and partition count (when split).
    configured: Arc<HashMap<String, (QueueConfig, Option<u16>)>>,
    opened: Arc<RwLock<HashMap<String, Queue>>>,
}

impl QueueDirectory {
    /// The queues `configured` describes (name, settings, partitions when
    /// split), opened on `client`. A queue it does not name opens with the
    /// defaults.
    pub fn new(
        client: Client,
        configured: impl IntoIterator<Item = (String, QueueConfig, Option<u16>)>,
    ) -> Self {
        let configured = configured
            .into_iter()
            .map(|(name, config, partitions)| (name, (config, partitions)))
            .collect();
        Self {
            client,
            configured: Arc::new(configured),
            opened: Arc::default(),
        }
    }

    /// The client the queues are opened on.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Queue `name` for enqueues: made when new, with its configured
    /// settings and, when configured as split, its partitions.
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
    /// under this prefix) or is configured as split; `None` otherwise.
    /// Reads and operators' actions go through it.
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

    /// Queue `name`'s partitions when it is configured as split, opened;
    /// `None` for every other queue.
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
