//! The consumer group: streams and groups made where missing, claims
//! kept alive, consumers of stopped workers removed.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::Result;
use crate::keys::GROUP;
use crate::scripts;

use super::Store;
use super::replies::*;

impl Store {
    /// Create missing streams and groups, and register the queue.
    pub(crate) async fn ensure(&self) -> Result<()> {
        let mut inv = self.invocation(&scripts::ENSURE);
        inv.arg(format!("{:016x}", rand::random::<u64>()));
        self.run("ensure queue", &inv).await?;
        self.query(
            "register queue",
            redis::cmd("SADD")
                .arg(self.keys.queues())
                .arg(self.keys.queue()),
        )
        .await
    }

    /// Reset the idle time of entries this consumer still works on, so they
    /// are not reclaimed (XCLAIM ... JUSTID keeps the owner, the delivery
    /// count and the fence as they are).
    pub(crate) async fn refresh(
        &self,
        consumer: &str,
        visibility: Duration,
        entries: &[(u8, String)],
    ) -> Result<()> {
        let mut by_level: HashMap<u8, Vec<&str>> = HashMap::new();
        for (level, id) in entries {
            by_level.entry(*level).or_default().push(id);
        }
        let mut pipe = redis::pipe();
        // The worker's own visibility timeout, which reclaim.lua honours for
        // its entries whatever the reclaimer's own setting.
        pipe.cmd("HSET")
            .arg(self.keys.meta())
            .arg(format!("vt:{consumer}"))
            .arg(visibility.as_millis() as u64)
            .ignore();
        for (level, ids) in &by_level {
            pipe.cmd("XCLAIM")
                .arg(self.keys.stream(*level))
                .arg(GROUP)
                .arg(consumer)
                .arg(0)
                .arg(ids)
                .arg("JUSTID")
                .ignore();
        }
        self.query_pipe("refresh claims", &pipe).await
    }

    /// Remove consumers of this queue's group that hold no entries and have
    /// been idle longer than `max_idle` (the names of workers that stopped),
    /// so the group does not grow with every worker ever started. One
    /// script: see `remove_consumers.lua` for why.
    pub(crate) async fn remove_idle_consumers(
        &self,
        max_idle: Duration,
        keep: &str,
    ) -> Result<u64> {
        let mut inv = self.invocation(&scripts::REMOVE_CONSUMERS);
        inv.arg(max_idle.as_millis() as u64).arg(keep);
        Ok(int(&self.run("remove idle consumers", &inv).await?).max(0) as u64)
    }

    /// Remove `consumer` from every level's group where it holds nothing
    /// (a graceful worker exit). Entries it still holds stay for reclaim.
    pub(crate) async fn remove_consumer(&self, consumer: &str) -> Result<()> {
        let mut inv = self.invocation(&scripts::REMOVE_CONSUMERS);
        inv.arg(-1).arg(consumer);
        self.run("remove consumer", &inv).await?;
        Ok(())
    }
}
