//! The queue's meta hash and registration: pause, rate limit,
//! partition count.

use crate::error::Result;
use crate::options::RateLimit;
use crate::scripts;

use super::Store;

impl Store {
    /// The queue's epoch (`ep` in its meta hash, see `lua/common.lua`),
    /// part of every light job's id; `None` before the queue was opened.
    pub(crate) async fn epoch(&self) -> Result<Option<String>> {
        self.query(
            "read the queue's epoch",
            redis::cmd("HGET").arg(self.keys.meta()).arg("ep"),
        )
        .await
    }

    /// Record that this queue is the first partition of a queue split into
    /// `partitions`, unless a number is recorded already; returns the
    /// recorded number.
    pub(crate) async fn record_partitions(&self, partitions: u16) -> Result<u16> {
        let meta = self.keys.meta();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("HSETNX")
            .arg(&meta)
            .arg("partitions")
            .arg(partitions)
            .ignore()
            .cmd("HGET")
            .arg(&meta)
            .arg("partitions");
        let (recorded,): (u16,) = self.query_pipe("record partitions", &pipe).await?;
        Ok(recorded)
    }

    /// The partition count this queue (a first partition, `name#0`)
    /// recorded, if any; `None` when the queue does not exist or has no
    /// partitions.
    pub(crate) async fn recorded_partitions(&self) -> Result<Option<u16>> {
        self.query(
            "look up partitions",
            redis::cmd("HGET").arg(self.keys.meta()).arg("partitions"),
        )
        .await
    }

    /// Whether the queue is in the registry (was opened before).
    pub(crate) async fn is_registered(&self) -> Result<bool> {
        self.query(
            "look up queue",
            redis::cmd("SISMEMBER")
                .arg(self.keys.queues())
                .arg(self.keys.queue()),
        )
        .await
    }

    pub(crate) async fn set_rate_limit(&self, limit: Option<RateLimit>) -> Result<()> {
        let mut inv = scripts::RATE_LIMIT.prepare_invoke();
        inv.key(self.keys.meta());
        match limit {
            Some(l) => inv.arg(l.per_second.to_string()).arg(l.burst),
            None => inv.arg("").arg(0),
        };
        self.run("set rate limit", &inv).await?;
        Ok(())
    }

    pub(crate) async fn set_paused(&self, paused: bool) -> Result<()> {
        let mut cmd = redis::cmd(if paused { "HSET" } else { "HDEL" });
        cmd.arg(self.keys.meta()).arg("paused");
        if paused {
            cmd.arg("1");
        }
        self.query("pause/resume", &cmd).await
    }
}
