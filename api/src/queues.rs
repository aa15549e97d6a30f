//! Opening the queues the config file describes: the one place that turns
//! a queue's name and its `[[queues]]` entry into an engine handle, so the
//! config schema (`config.rs`) does no Redis I/O.

use sluice_engine::{Client, Queue, Result};

use crate::config::FileConfig;

/// Queue `name`'s partitions when `file` splits it (`partitions`), opened on
/// `client`; `None` for every other queue.
pub async fn partitioned(file: &FileConfig, client: &Client, name: &str) -> Result<Option<Queue>> {
    let Some((section, n)) = file.queue(name).and_then(|s| s.partitions.map(|n| (s, n))) else {
        return Ok(None);
    };
    client
        .partitioned_queue(name, n, section.queue_config())
        .await
        .map(Some)
}
