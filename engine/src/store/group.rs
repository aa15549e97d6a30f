//! The consumer group: streams and groups made where missing, claims
//! kept alive, consumers of stopped workers removed.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::Result;
use crate::keys::GROUP;
use crate::scripts;

use super::Store;

/// The layout of a queue's keys this version reads and writes, recorded in
/// its meta hash (`sv`). Queues of earlier versions are migrated when a
/// handle opens them (`lua/migrate.lua` lists what each version changed).
pub(crate) const STORAGE_VERSION: u32 = 3;

/// Keys (or index fields) one migration call looks at: small enough that a
/// call holds Redis for about a millisecond.
const MIGRATION_PAGE: u32 = 500;
use super::replies::*;

impl Store {
    /// Create missing streams and groups, bring a queue an earlier
    /// version wrote to this storage version, and register the queue.
    pub(crate) async fn ensure(&self) -> Result<()> {
        let mut inv = self.invocation(&scripts::ENSURE);
        inv.arg(format!("{:016x}", rand::random::<u64>()))
            .arg(STORAGE_VERSION);
        match int(&self.run("ensure queue", &inv).await?) {
            1 => {}
            0 => self.migrate().await?,
            _ => return Err(self.newer_storage()),
        }
        self.query(
            "register queue",
            redis::cmd("SADD")
                .arg(self.keys.queues())
                .arg(self.keys.queue()),
        )
        .await
    }

    /// Migrate the queue to [`STORAGE_VERSION`] a page at a time
    /// (`lua/migrate.lua`, which records how far it got, so a process
    /// stopped half-way leaves the rest to the next one).
    async fn migrate(&self) -> Result<()> {
        let mut pages = 0u64;
        loop {
            let mut inv = self.invocation(&scripts::MIGRATE);
            inv.arg(MIGRATION_PAGE).arg(STORAGE_VERSION);
            let done = int(&self.run("migrate storage", &inv).await?);
            pages += 1;
            if done < 0 {
                return Err(self.newer_storage());
            }
            if done == 1 {
                tracing::info!(queue = %self.keys.queue(), pages, "queue migrated to storage version {STORAGE_VERSION}");
                return Ok(());
            }
        }
    }

    fn newer_storage(&self) -> crate::Error {
        crate::Error::NewerStorage {
            queue: self.keys.queue().to_owned(),
            supported: STORAGE_VERSION,
        }
    }

    /// Reset the idle time of entries this consumer still works on, so they
    /// are not reclaimed (XCLAIM ... JUSTID keeps the delivery count and
    /// the fence as they are). Only entries still pending for this
    /// consumer or its blocking reads' name: XCLAIM takes an entry from
    /// whoever holds it, and after a failover that lost this worker's claim
    /// another worker may hold it now (its outcome must stand, not this
    /// one's). Two XPENDING per level (the two names) over the range of the
    /// entries held, then the XCLAIMs, to this consumer, of those found.
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
        let by_level = self.still_pending(consumer, by_level).await?;
        let by_level: HashMap<u8, Vec<&str>> = by_level
            .iter()
            .map(|(level, ids)| (*level, ids.iter().map(String::as_str).collect()))
            .collect();
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

    /// Of `by_level`'s entries, those still pending for `consumer`.
    async fn still_pending(
        &self,
        consumer: &str,
        by_level: HashMap<u8, Vec<&str>>,
    ) -> Result<HashMap<u8, Vec<String>>> {
        let levels: Vec<(u8, Vec<&str>)> = by_level
            .into_iter()
            .filter(|(_, ids)| !ids.is_empty())
            .collect();
        if levels.is_empty() {
            return Ok(HashMap::new());
        }
        // Its own name, and its blocking reads' (`delivered_name`): a claim
        // that moved an entry from one to the other can be lost in a
        // failover while the worker runs the job, and nobody else holds
        // entries under either name.
        let names = [
            consumer.to_owned(),
            super::transitions::delivered_name(consumer),
        ];
        let mut pipe = redis::pipe();
        for (level, ids) in &levels {
            let min = ids
                .iter()
                .min_by_key(|id| super::replies::parse_stream_id(id))
                .copied()
                .unwrap_or("-");
            let max = ids
                .iter()
                .max_by_key(|id| super::replies::parse_stream_id(id))
                .copied()
                .unwrap_or("+");
            for name in &names {
                pipe.cmd("XPENDING")
                    .arg(self.keys.stream(*level))
                    .arg(GROUP)
                    .arg(min)
                    .arg(max)
                    // All of the name's entries in the range (about what the
                    // worker holds): a count of the held ones could stop
                    // short at entries it does not know of.
                    .arg(i64::MAX)
                    .arg(name);
            }
        }
        let replies: Vec<redis::streams::StreamPendingCountReply> =
            self.query_pipe_grouped("refresh claims", &pipe).await?;
        let mut replies = replies.into_iter();
        let mut out = HashMap::new();
        for (level, ids) in levels {
            let held: std::collections::HashSet<&str> = ids.into_iter().collect();
            let mine: Vec<String> = replies
                .by_ref()
                .take(names.len())
                .flat_map(|reply| reply.ids)
                .map(|p| p.id)
                .filter(|id| held.contains(id.as_str()))
                .collect();
            if !mine.is_empty() {
                out.insert(level, mine);
            }
        }
        Ok(out)
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
