//! The queues the config file describes, as the engine's
//! [`QueueDirectory`]: the one way the server, the CLI and the alert
//! evaluator open queues by name, with each `[[queues]]` entry's settings
//! and partitions.

pub use sluice_engine::QueueDirectory;
use sluice_engine::{Client, Queue, Result};

use crate::config::FileConfig;

/// The queues `file` configures, opened on `client`.
pub fn directory(client: Client, file: &FileConfig) -> QueueDirectory {
    QueueDirectory::new(
        client,
        file.queues
            .iter()
            .map(|q| (q.name.clone(), q.queue_config(), q.partitions)),
    )
}

/// Queue `name`'s partitions when `file` splits it (`partitions`), opened on
/// `client`; `None` for every other queue.
pub async fn partitioned(file: &FileConfig, client: &Client, name: &str) -> Result<Option<Queue>> {
    directory(client.clone(), file).configured_split(name).await
}
