//! [`Registry`] (from [`Client::registry`](crate::Client::registry)): the
//! registry of live worker processes under a prefix, and the recorded state
//! of cron schedules, both read by every process.
//!
//! Each worker process writes its registration (host, pid, queues,
//! concurrency, jobs in flight, version, start time) to
//! `<prefix>:worker:<id>` with a time to live, and refreshes it at every
//! heartbeat; `<prefix>:workers` indexes the ids. A process that stops
//! beating (killed, partitioned away) disappears when its registration
//! expires; readers drop expired ids from the index as they list it. Its
//! claimed jobs are reclaimed by the queues' reclaimers once their
//! visibility timeout passes, not by the registry.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::validate_name;
use crate::schedule::LastRun;
use crate::store::RegistryStore;

/// One queue served by a worker process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServedQueue {
    /// The queue.
    pub queue: String,
    /// Jobs of it run at once.
    pub concurrency: usize,
}

/// A worker process as it registers itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerInfo {
    /// Unique id of the process (host, pid and a random part).
    pub id: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Queues it serves.
    pub queues: Vec<ServedQueue>,
    /// Jobs it runs at once, over all its queues.
    pub concurrency: usize,
    /// Jobs running at its last heartbeat.
    pub in_flight: usize,
    /// Sluice version.
    pub version: String,
    /// When it started, ms since the Unix epoch (its own clock).
    pub started_at_ms: u64,
    /// Its last heartbeat, ms since the Unix epoch (its own clock).
    pub last_beat_ms: u64,
}

/// Milliseconds since the Unix epoch by this machine's clock.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// This machine's host name, cleaned to what a key name allows.
pub fn host_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| {
            h.trim()
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                .take(64)
                .collect::<String>()
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned())
}

/// A fresh, unique worker id: host, pid and a random part.
pub fn new_worker_id() -> String {
    format!(
        "{}-{}-{:08x}",
        host_name(),
        std::process::id(),
        rand::random::<u32>()
    )
}

/// The worker registry and the cron schedule states under a client's
/// prefix. Made by [`Client::registry`](crate::Client::registry); cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct Registry {
    store: RegistryStore,
}

impl Registry {
    pub(crate) fn new(store: RegistryStore) -> Self {
        Self { store }
    }

    /// Write (or refresh) `info` in the registry; it expires after `ttl`
    /// unless written again.
    pub async fn heartbeat(&self, info: &WorkerInfo, ttl: Duration) -> Result<()> {
        validate_name("worker id", &info.id)?;
        let json = serde_json::to_string(info)
            .map_err(|e| Error::invalid("worker info", e.to_string()))?;
        let ttl_ms = ttl.as_millis().max(1) as u64;
        self.store
            .heartbeat(&info.id, json, ttl_ms, info.last_beat_ms)
            .await
    }

    /// Remove worker `id` from the registry (at a clean stop).
    pub async fn deregister(&self, id: &str) -> Result<()> {
        self.store.deregister(id).await
    }

    /// Live worker processes, most recently started first. Expired ones are
    /// dropped from the index on the way.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let mut live = Vec::new();
        let mut expired = Vec::new();
        for (id, value) in self.store.registrations().await? {
            match value.and_then(|v| serde_json::from_str::<WorkerInfo>(&v).ok()) {
                Some(info) => live.push(info),
                None => expired.push(id),
            }
        }
        if !expired.is_empty() {
            self.store.drop_expired(&expired).await;
        }
        live.sort_by(|a, b| b.started_at_ms.cmp(&a.started_at_ms).then(a.id.cmp(&b.id)));
        Ok(live)
    }

    /// Record the state of cron schedule `name` (opaque text, JSON by
    /// convention) for every process to read.
    pub async fn set_schedule_state(&self, name: &str, state: &str) -> Result<()> {
        self.store.set_schedule_state(name, state).await
    }

    /// The recorded state of every cron schedule, sorted by name.
    pub async fn schedule_states(&self) -> Result<Vec<(String, String)>> {
        let mut all: Vec<(String, String)> =
            self.store.schedule_states().await?.into_iter().collect();
        all.sort();
        Ok(all)
    }

    /// The last run recorded of every schedule (by
    /// [`CronSchedule::fire`](crate::CronSchedule::fire)), by schedule
    /// name; states that are not a [`LastRun`] are left out.
    pub async fn schedule_last_runs(&self) -> Result<HashMap<String, LastRun>> {
        Ok(self
            .store
            .schedule_states()
            .await?
            .into_iter()
            .filter_map(|(name, json)| serde_json::from_str(&json).ok().map(|r| (name, r)))
            .collect())
    }
}
