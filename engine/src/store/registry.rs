//! The registry of live worker processes and the recorded states of cron
//! schedules (see `registry.rs`).

use std::collections::HashMap;

use crate::error::Result;
use crate::keys::{schedules_key, worker_key, workers_key};

use super::PrefixConn;

/// Redis access for the worker registry and the schedule states.
#[derive(Debug, Clone)]
pub(crate) struct RegistryStore {
    redis: PrefixConn,
}

impl RegistryStore {
    pub(crate) fn new(redis: PrefixConn) -> Self {
        Self { redis }
    }

    /// Write worker `id`'s registration (`json`), expiring after `ttl_ms`,
    /// and index it under its last beat.
    pub(crate) async fn heartbeat(
        &self,
        id: &str,
        json: String,
        ttl_ms: u64,
        beat_ms: u64,
    ) -> Result<()> {
        let prefix = self.redis.prefix();
        self.redis
            .query::<()>(
                "worker heartbeat",
                redis::cmd("SET")
                    .arg(worker_key(prefix, id))
                    .arg(json)
                    .arg("PX")
                    .arg(ttl_ms),
            )
            .await?;
        self.redis
            .query::<()>(
                "worker heartbeat",
                redis::cmd("ZADD")
                    .arg(workers_key(prefix))
                    .arg(beat_ms)
                    .arg(id),
            )
            .await
    }

    /// Remove worker `id`'s registration and index entry.
    pub(crate) async fn deregister(&self, id: &str) -> Result<()> {
        let prefix = self.redis.prefix();
        self.redis
            .query::<()>(
                "deregister worker",
                redis::cmd("DEL").arg(worker_key(prefix, id)),
            )
            .await?;
        self.redis
            .query::<()>(
                "deregister worker",
                redis::cmd("ZREM").arg(workers_key(prefix)).arg(id),
            )
            .await
    }

    /// Every indexed worker id with its registration (`None`: expired).
    pub(crate) async fn registrations(&self) -> Result<Vec<(String, Option<String>)>> {
        let prefix = self.redis.prefix();
        let ids: Vec<String> = self
            .redis
            .query(
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
        let values: Vec<Option<String>> = self.redis.query("list workers", &mget).await?;
        Ok(ids.into_iter().zip(values).collect())
    }

    /// Drop expired ids from the worker index (best effort: the next
    /// reader tries again).
    pub(crate) async fn drop_expired(&self, ids: &[String]) {
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(workers_key(self.redis.prefix())).arg(ids);
        let _ = self.redis.query::<()>("drop expired workers", &zrem).await;
    }

    /// Record cron schedule `name`'s state.
    pub(crate) async fn set_schedule_state(&self, name: &str, state: &str) -> Result<()> {
        self.redis
            .query(
                "record schedule",
                redis::cmd("HSET")
                    .arg(schedules_key(self.redis.prefix()))
                    .arg(name)
                    .arg(state),
            )
            .await
    }

    /// Every cron schedule's recorded state, by name.
    pub(crate) async fn schedule_states(&self) -> Result<HashMap<String, String>> {
        self.redis
            .query(
                "read schedules",
                redis::cmd("HGETALL").arg(schedules_key(self.redis.prefix())),
            )
            .await
    }
}
