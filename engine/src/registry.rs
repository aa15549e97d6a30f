//! The registry of live worker processes, shared by the fleet, and the
//! recorded state of cron schedules.
//!
//! Each worker process writes its registration (host, pid, queues,
//! concurrency, jobs in flight, version, start time) to
//! `<prefix>:worker:<id>` with a time to live, and refreshes it at every
//! heartbeat; `<prefix>:workers` indexes the ids. A process that stops
//! beating (killed, partitioned away) disappears when its registration
//! expires; readers drop expired ids from the index as they list it. Its
//! claimed jobs are reclaimed by the queues' reclaimers once their
//! visibility timeout passes, not by the registry.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::client::Client;
use crate::error::{Error, Result};
use crate::keys::{schedules_key, validate_name, worker_key, workers_key};
use crate::store::query;

/// One queue served by a worker process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServedQueue {
    /// The queue.
    pub queue: String,
    /// Jobs of it run at once.
    pub concurrency: usize,
}

/// A worker process as it registers itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

impl Client {
    /// Write (or refresh) `info` in the registry; it expires after `ttl`
    /// unless written again.
    pub async fn heartbeat(&self, info: &WorkerInfo, ttl: Duration) -> Result<()> {
        validate_name("worker id", &info.id)?;
        let prefix = &self.config().prefix;
        let json = serde_json::to_string(info)
            .map_err(|e| Error::invalid("worker info", e.to_string()))?;
        let ttl_ms = ttl.as_millis().max(1) as u64;
        let conn = self.connection();
        let retry = self.config().retry;
        query::<()>(
            &conn,
            retry,
            "worker heartbeat",
            redis::cmd("SET")
                .arg(worker_key(prefix, &info.id))
                .arg(json)
                .arg("PX")
                .arg(ttl_ms),
        )
        .await?;
        query::<()>(
            &conn,
            retry,
            "worker heartbeat",
            redis::cmd("ZADD")
                .arg(workers_key(prefix))
                .arg(info.last_beat_ms)
                .arg(&info.id),
        )
        .await
    }

    /// Remove worker `id` from the registry (at a clean stop).
    pub async fn deregister(&self, id: &str) -> Result<()> {
        let prefix = &self.config().prefix;
        let conn = self.connection();
        let retry = self.config().retry;
        query::<()>(
            &conn,
            retry,
            "deregister worker",
            redis::cmd("DEL").arg(worker_key(prefix, id)),
        )
        .await?;
        query::<()>(
            &conn,
            retry,
            "deregister worker",
            redis::cmd("ZREM").arg(workers_key(prefix)).arg(id),
        )
        .await
    }

    /// Live worker processes, most recently started first. Expired ones are
    /// dropped from the index on the way.
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>> {
        let prefix = &self.config().prefix;
        let conn = self.connection();
        let retry = self.config().retry;
        let ids: Vec<String> = query(
            &conn,
            retry,
            "list workers",
            redis::cmd("ZRANGE").arg(workers_key(prefix)).arg(0).arg(-1),
        )
        .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut mget = redis::cmd("MGET");
        for id in &ids {
            mget.arg(worker_key(prefix, id));
        }
        let values: Vec<Option<String>> = query(&conn, retry, "list workers", &mget).await?;
        let mut live = Vec::new();
        let mut expired = Vec::new();
        for (id, value) in ids.into_iter().zip(values) {
            match value.and_then(|v| serde_json::from_str::<WorkerInfo>(&v).ok()) {
                Some(info) => live.push(info),
                None => expired.push(id),
            }
        }
        if !expired.is_empty() {
            let mut zrem = redis::cmd("ZREM");
            zrem.arg(workers_key(prefix)).arg(&expired);
            // Best effort: the next reader tries again.
            let _ = query::<()>(&conn, retry, "drop expired workers", &zrem).await;
        }
        live.sort_by(|a, b| b.started_at_ms.cmp(&a.started_at_ms).then(a.id.cmp(&b.id)));
        Ok(live)
    }

    /// Record the state of cron schedule `name` (opaque text, JSON by
    /// convention) for every process to read.
    pub async fn set_schedule_state(&self, name: &str, state: &str) -> Result<()> {
        query(
            &self.connection(),
            self.config().retry,
            "record schedule",
            redis::cmd("HSET")
                .arg(schedules_key(&self.config().prefix))
                .arg(name)
                .arg(state),
        )
        .await
    }

    /// The recorded state of every cron schedule, by name.
    pub async fn schedule_states(&self) -> Result<Vec<(String, String)>> {
        let map: std::collections::HashMap<String, String> = query(
            &self.connection(),
            self.config().retry,
            "read schedules",
            redis::cmd("HGETALL").arg(schedules_key(&self.config().prefix)),
        )
        .await?;
        let mut all: Vec<(String, String)> = map.into_iter().collect();
        all.sort();
        Ok(all)
    }
}
