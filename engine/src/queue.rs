//! [`Queue`], the one handle on a queue: producers, operators, workers
//! and the manual claim/settle path all go through it, and it is correct
//! over every partition the queue has (one by default).
//!
//! A queue may be split into N partitions named `<name>#0` ...
//! `<name>#N-1` ([`Client::partitioned_queue`]), each a [`Partition`] of
//! its own. Each partition has its own hash tag
//! (`sluice:{name#i}:...`), so Redis Cluster spreads them over its shards
//! and one queue's throughput is no longer bounded by one node.
//!
//! What holds where:
//! - Strict priority and FIFO order within a priority hold **within a
//!   partition only**. Jobs that must run in order share a partition key.
//! - Idempotency keys hold within a partition; a job enqueued under an
//!   idempotency key (and no partition key) is routed by that key, so a
//!   retried enqueue meets its first try.
//! - Every producer and worker must use the same number of partitions; it
//!   is recorded in the first partition and a different one is refused;
//!   [`Client::queue`] reads it, so a handle opened by name alone covers
//!   every partition.

use std::sync::Arc;

use serde::Serialize;
use tokio::task::JoinSet;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::job::{Job, JobInfo, JobRecord, JobState, MinuteCount, Outcome, Stats};
use crate::options::{JobOptions, QueueConfig, RateLimit};
use crate::partition::{DeadCursor, Enqueued, IdempotencyRecord, NewJob, Partition};

/// Most partitions a queue may have (the index has at most 4 digits).
pub const MAX_PARTITIONS: u16 = 1024;

/// A handle on a queue and all its partitions (one when it was never
/// split). Cheap to clone; all clones share the connection.
#[derive(Clone, Debug)]
pub struct Queue {
    name: String,
    partitions: Arc<Vec<Partition>>,
}

/// One partition's share of a `settle_many` call: the outcomes' positions
/// in the call, and the outcomes.
type SettleGroup<'a> = (Vec<usize>, Vec<(&'a Job, Outcome)>);

/// One partition's and consumer's share of a `keep_alive` call: the
/// partition's index, the consumer, and (level, entry id) per claim.
type RefreshGroup<'a> = (usize, &'a str, Vec<(u8, String)>);

/// FNV-1a: a stable hash, the same in every process and version, so every
/// producer routes a key to the same partition.
fn stable_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Queue {
    /// Open (creating where missing) the `partitions` partitions of `name`.
    pub(crate) async fn open(
        client: &Client,
        name: &str,
        partitions: u16,
        config: QueueConfig,
    ) -> Result<Self> {
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(Error::invalid(
                "partitions",
                format!("must be 1 to {MAX_PARTITIONS}, not {partitions}"),
            ));
        }
        crate::keys::validate_name("queue name", name)?;
        if name.contains('#') {
            return Err(Error::invalid(
                "queue name",
                "a partitioned queue's name cannot itself name a partition",
            ));
        }
        let mut queues = Vec::with_capacity(usize::from(partitions));
        for index in 0..partitions {
            queues.push(
                client
                    .partition_with(&format!("{name}#{index}"), config.clone())
                    .await?,
            );
        }
        let recorded = queues[0].store().record_partitions(partitions).await?;
        if recorded != partitions {
            return Err(Error::invalid(
                "partitions",
                format!("queue {name} has {recorded} partitions, not {partitions}"),
            ));
        }
        Ok(Self {
            name: name.to_owned(),
            partitions: Arc::new(queues),
        })
    }

    /// A handle on `partitions` as they are, not opened (for reads that
    /// must not write; see [`crate::Inspector`]).
    pub(crate) fn from_partitions(name: &str, partitions: Vec<Partition>) -> Self {
        Self {
            name: name.to_owned(),
            partitions: Arc::new(partitions),
        }
    }

    /// The queue's name (without a partition index).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The partitions, each as a queue of its own (named `<name>#i`; a
    /// queue never split is its one partition): for reading or acting on
    /// one partition, as the API does when a partition is named.
    pub fn partitions(&self) -> Vec<Queue> {
        self.partitions.iter().cloned().map(Self::single).collect()
    }

    /// The partitions themselves, for the engine's own loops.
    pub(crate) fn partition_handles(&self) -> &[Partition] {
        &self.partitions
    }

    /// True when the queue was split into partitions (even into one), so
    /// partition keys route its jobs; false for a queue that never was.
    pub fn is_partitioned(&self) -> bool {
        self.partitions.len() > 1 || self.partitions[0].name() != self.name
    }

    /// The partition a partition key routes to, as a queue of its own.
    pub fn partition_for(&self, key: &str) -> Queue {
        Self::single(self.partitions[self.partition_index(key)].clone())
    }

    /// Whether a call found the Redis Cluster slot of one of the queue's
    /// partitions migrating in the last seconds: jobs without a key go to
    /// the other partitions meanwhile, and a keyed job waits for its own.
    pub fn slot_moving(&self) -> bool {
        self.partitions.iter().any(Partition::slot_moving)
    }

    fn partition_index(&self, key: &str) -> usize {
        (stable_hash(key) % self.partitions.len() as u64) as usize
    }

    /// Where a job goes: by its partition key, else by its idempotency key,
    /// else anywhere (spread at random, like the job ids) but a partition
    /// whose slot was lately found migrating (see [`Self::open_partitions`]).
    fn route(&self, partition_key: Option<&str>, options: &JobOptions) -> &Partition {
        match partition_key.or(options.idempotency_key.as_deref()) {
            Some(key) => &self.partitions[self.partition_index(key)],
            // Evenly among those whose slot is not moving (or among all
            // when every one is), with no list made per job: the r-th open
            // one (see `open_partitions`).
            None => {
                let open = |p: &&Partition| !p.slot_moving();
                let count = self.partitions.iter().filter(open).count();
                match count {
                    0 => &self.partitions[rand::random_range(0..self.partitions.len())],
                    _ => {
                        let r = rand::random_range(0..count);
                        self.partitions
                            .iter()
                            .filter(open)
                            .nth(r)
                            .unwrap_or(&self.partitions[0])
                    }
                }
            }
        }
    }

    /// The partitions a job without a key may go to: those whose Redis
    /// Cluster slot no call found migrating in the last seconds (a call to
    /// a migrating slot waits, retrying, until the move is over), or all
    /// of them when every one was. A job with a key stays with its key.
    fn open_partitions(&self) -> Vec<usize> {
        let open: Vec<usize> = (0..self.partitions.len())
            .filter(|&i| !self.partitions[i].slot_moving())
            .collect();
        if open.is_empty() {
            (0..self.partitions.len()).collect()
        } else {
            open
        }
    }

    /// Enqueue one job: on a partitioned queue, on the partition of its
    /// [`partition_key`](NewJob::partition_key), else of its idempotency
    /// key, else on any partition. Returns its id, or the earlier job's
    /// when its idempotency key matched one (`duplicate: true`).
    pub async fn enqueue(&self, job: NewJob) -> Result<Enqueued> {
        let mut out = self
            .route(job.partition_key.as_deref(), &job.options)
            .enqueue_batch(vec![job])
            .await?;
        out.pop().ok_or(Error::EmptyBatch)
    }

    /// Enqueue `value`, encoded as MessagePack, with `options`: the typed
    /// form of [`enqueue`](Self::enqueue), for a job without a partition
    /// key.
    pub async fn enqueue_value<T: Serialize + ?Sized>(
        &self,
        value: &T,
        options: JobOptions,
    ) -> Result<Enqueued> {
        self.enqueue(NewJob::new(value, options)?).await
    }

    /// Enqueue a batch: each job goes where [`enqueue`](Self::enqueue) would
    /// send it, one round trip per partition, all partitions at once. The
    /// answers are in the batch's order. Every job of a partition's share
    /// is checked first, and one invalid job refuses that share whole.
    /// Atomic per partition only: when one partition's call fails, others
    /// may have taken their jobs (retrying with idempotency keys is safe).
    pub async fn enqueue_many(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        if jobs.is_empty() {
            return Err(Error::EmptyBatch);
        }
        if self.partitions.len() == 1 {
            return self.partitions[0].enqueue_batch(jobs).await;
        }
        let total = jobs.len();
        let mut groups: Vec<(Vec<usize>, Vec<NewJob>)> =
            vec![(Vec::new(), Vec::new()); self.partitions.len()];
        let open = self.open_partitions();
        let offset = rand::random_range(0..open.len());
        for (i, job) in jobs.into_iter().enumerate() {
            let key = job
                .partition_key
                .as_deref()
                .or(job.options.idempotency_key.as_deref());
            let index = match key {
                Some(key) => self.partition_index(key),
                // Keyless jobs are dealt out in turn.
                None => open[(offset + i) % open.len()],
            };
            groups[index].0.push(i);
            groups[index].1.push(job);
        }
        let mut calls = JoinSet::new();
        for (index, (positions, jobs)) in groups.into_iter().enumerate() {
            if jobs.is_empty() {
                continue;
            }
            let queue = self.partitions[index].clone();
            calls.spawn(async move { (positions, queue.enqueue_batch(jobs).await) });
        }
        let mut out: Vec<Option<Enqueued>> = vec![None; total];
        while let Some(joined) = calls.join_next().await {
            let (positions, answer) = joined.map_err(|e| Error::Internal {
                operation: "enqueue batch",
                detail: e.to_string(),
            })?;
            for (position, enqueued) in positions.into_iter().zip(answer?) {
                out[position] = Some(enqueued);
            }
        }
        Ok(out.into_iter().flatten().collect())
    }

    /// The longest wait of a waiting job over every partition.
    pub async fn oldest_waiting_age(&self) -> Result<Option<std::time::Duration>> {
        let mut oldest = None;
        for q in self.partitions.iter() {
            oldest = oldest.max(q.oldest_waiting_age().await?);
        }
        Ok(oldest)
    }

    /// Counts summed over the partitions (their stats read together).
    pub async fn stats(&self) -> Result<Stats> {
        let parts =
            futures::future::try_join_all(self.partitions.iter().map(|q| q.stats())).await?;
        Ok(Stats::summed(&self.name, parts))
    }

    /// Cancel a job, in whichever partition holds it. A waiting or delayed
    /// job becomes a dead letter at once ("cancelled by an operator"); a
    /// running one is asked to stop (see [`Cancelled::Requested`](crate::Cancelled::Requested));
    /// a finished one is left alone. Safe to call again: a second call
    /// answers as the first.
    pub async fn cancel(&self, id: &str) -> Result<crate::Cancelled> {
        for q in self.partitions.iter() {
            match q.cancel(id).await? {
                crate::Cancelled::Missing => continue,
                found => return Ok(found),
            }
        }
        Ok(crate::Cancelled::Missing)
    }

    /// Pause every partition.
    pub async fn pause(&self) -> Result<()> {
        for q in self.partitions.iter() {
            q.pause().await?;
        }
        Ok(())
    }

    /// Resume every partition.
    pub async fn resume(&self) -> Result<()> {
        for q in self.partitions.iter() {
            q.resume().await?;
        }
        Ok(())
    }
}

/// Operators' reads and actions, correct over every partition. A queue
/// without partitions is a `Queue` of one partition, so callers never branch on "partitioned or not".
impl Queue {
    /// A handle on a queue that has no partitions: one partition, itself.
    pub(crate) fn single(queue: Partition) -> Self {
        Self {
            name: queue.name().to_owned(),
            partitions: Arc::new(vec![queue]),
        }
    }

    /// Look a job up by id, in whichever partition holds it.
    pub async fn job(&self, id: &str) -> Result<Option<JobInfo>> {
        for q in self.partitions.iter() {
            if let Some(info) = q.job(id).await? {
                return Ok(Some(info));
            }
        }
        Ok(None)
    }

    /// Dead letters newest first, `offset` skipped, at most `limit`, over
    /// every partition.
    pub async fn dead_letters(&self, offset: usize, limit: usize) -> Result<Vec<JobInfo>> {
        crate::partition::check_depth(offset, limit)?;
        if let [q] = self.partitions.as_slice() {
            return q.dead_page(offset, limit).await;
        }
        // Ids and death times of each partition's first offset + limit,
        // merged and cut to the page, then only the page's jobs read (not
        // offset + limit whole jobs per partition).
        Ok(self.dead_letters_after(None, offset, limit).await?.0)
    }

    /// A page of dead letters over every partition, newest first (death
    /// time, then id, descending), after `cursor` and `offset` more, with
    /// the next page's cursor when this one is full. Each partition reads
    /// at most `offset + limit` letters (and one millisecond's ties),
    /// however deep the cursor.
    pub async fn dead_letters_after(
        &self,
        cursor: Option<&DeadCursor>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<JobInfo>, Option<DeadCursor>)> {
        crate::partition::check_depth(offset, limit)?;
        if let [q] = self.partitions.as_slice() {
            return q.dead_letters_after(cursor, offset, limit).await;
        }
        let mut rows = Vec::new();
        for (i, q) in self.partitions.iter().enumerate() {
            rows.extend(
                q.dead_rows(cursor, offset + limit)
                    .await?
                    .into_iter()
                    .map(|(ms, id)| (ms, id, i)),
            );
        }
        rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        rows.truncate(offset + limit);
        rows.drain(..offset.min(rows.len()));
        let next = crate::partition::page_cursor(
            &rows
                .iter()
                .map(|(ms, id, _)| (*ms, id.clone()))
                .collect::<Vec<_>>(),
            limit,
        );
        Ok((self.page_jobs(rows).await?, next))
    }

    /// Jobs in `state`, `offset` skipped, at most `limit`: waiting and
    /// active most urgent first (then oldest first), delayed soonest first,
    /// dead newest first. With several partitions, partition by partition,
    /// except dead letters, which are merged newest first. Completed jobs
    /// are only counted, never indexed, so listing them returns nothing;
    /// look one up by id instead.
    pub async fn jobs_in_state(
        &self,
        state: JobState,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<JobInfo>> {
        crate::partition::check_depth(offset, limit)?;
        if state == JobState::Dead {
            return self.dead_letters(offset, limit).await;
        }
        let mut out = Vec::new();
        let mut skip = offset;
        for q in self.partitions.iter() {
            if out.len() >= limit {
                break;
            }
            let part = q.state_page(state, 0, skip + limit - out.len()).await?;
            let n = part.len();
            out.extend(part.into_iter().skip(skip));
            skip = skip.saturating_sub(n);
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Dead letters whose error contains `text` (ignoring case), newest
    /// first, `offset` matches skipped, at most `limit`; and how many match
    /// over every partition.
    pub async fn find_dead(
        &self,
        text: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<JobInfo>, u64)> {
        self.find_dead_after(text, None, offset, limit).await
    }

    /// [`find_dead`](Self::find_dead) among the dead letters after `cursor`
    /// in each partition.
    pub async fn find_dead_after(
        &self,
        text: &str,
        cursor: Option<&DeadCursor>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<JobInfo>, u64)> {
        crate::partition::check_depth(offset, limit)?;
        if let [q] = self.partitions.as_slice() {
            return q.search_dead(text, cursor, offset, limit).await;
        }
        // The matches' ids over every partition (errors only are read),
        // the page cut from them, then only the page's jobs read.
        let mut rows = Vec::new();
        let mut matched = 0;
        for (i, q) in self.partitions.iter().enumerate() {
            let (found, n) = q.dead_rows_matching(text, cursor, offset + limit).await?;
            rows.extend(found.into_iter().map(|(ms, id)| (ms, id, i)));
            matched += n;
        }
        rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
        let page = rows.into_iter().skip(offset).take(limit).collect();
        Ok((self.page_jobs(page).await?, matched))
    }

    /// The jobs of a page of (time, id, partition) rows, in the page's
    /// order: one read per partition, not one per job. A job gone since is
    /// left out.
    async fn page_jobs(&self, rows: Vec<(u64, String, usize)>) -> Result<Vec<JobInfo>> {
        let mut by_partition: Vec<Vec<String>> = vec![Vec::new(); self.partitions.len()];
        for (_, id, i) in &rows {
            by_partition[*i].push(id.clone());
        }
        let mut found: std::collections::HashMap<(usize, String), JobInfo> =
            std::collections::HashMap::new();
        for (i, ids) in by_partition.iter().enumerate() {
            if ids.is_empty() {
                continue;
            }
            for job in self.partitions[i].store().jobs(ids).await? {
                found.insert((i, job.id.clone()), job);
            }
        }
        Ok(rows
            .into_iter()
            .filter_map(|(_, id, i)| found.remove(&(i, id)))
            .collect())
    }

    /// Completed and failed attempts per minute over every partition, in
    /// the last `minutes` minutes (at most a day), oldest first, by Redis
    /// server time.
    pub async fn throughput(&self, minutes: u64) -> Result<Vec<MinuteCount>> {
        let mut sum: Vec<MinuteCount> = Vec::new();
        for q in self.partitions.iter() {
            let part = q.throughput(minutes).await?;
            if sum.is_empty() {
                sum = part;
                continue;
            }
            for (total, m) in sum.iter_mut().zip(part) {
                total.completed += m.completed;
                total.failed += m.failed;
            }
        }
        Ok(sum)
    }

    /// Limit the whole queue to `limit`: each partition gets its share of
    /// the rate and of the burst (at least 1), so the fleet starts at most
    /// `limit` jobs per second in all. `None` removes it.
    pub async fn set_rate_limit(&self, limit: Option<RateLimit>) -> Result<()> {
        let n = self.partitions.len();
        let share = match limit {
            Some(l) if n > 1 => Some(RateLimit::new(
                l.per_second / n as f64,
                (l.burst / n as u32).max(1),
            )?),
            other => other,
        };
        for q in self.partitions.iter() {
            q.set_rate_limit(share).await?;
        }
        Ok(())
    }

    /// Re-drive one dead letter, in whichever partition holds it; `false`
    /// when it is not a dead letter.
    pub async fn redrive(&self, id: &str) -> Result<bool> {
        for q in self.partitions.iter() {
            if q.redrive(id).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Re-drive these dead letters; returns how many were dead letters.
    pub async fn redrive_many(&self, ids: &[String]) -> Result<u64> {
        let mut n = 0;
        for q in self.partitions.iter() {
            n += q.redrive_many(ids).await?;
        }
        Ok(n)
    }

    /// Re-drive every dead letter whose error contains `text` (ignoring
    /// case), looking at most at the newest `scan_limit` of each partition;
    /// returns how many.
    pub async fn redrive_matching(&self, text: &str, scan_limit: usize) -> Result<u64> {
        let mut n = 0;
        for q in self.partitions.iter() {
            let ids = q.dead_ids_matching(text, scan_limit).await?;
            n += q.redrive_many(&ids).await?;
        }
        Ok(n)
    }

    /// Re-drive every dead letter; returns how many.
    pub async fn redrive_all(&self) -> Result<u64> {
        let mut n = 0;
        for q in self.partitions.iter() {
            n += q.redrive_all().await?;
        }
        Ok(n)
    }

    /// Delete one dead letter; `false` when it is not a dead letter.
    pub async fn delete_dead(&self, id: &str) -> Result<bool> {
        for q in self.partitions.iter() {
            if q.delete_dead(id).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Delete every dead letter; returns how many.
    pub async fn purge_dead(&self) -> Result<u64> {
        let mut n = 0;
        for q in self.partitions.iter() {
            n += q.purge_dead().await?;
        }
        Ok(n)
    }
}

/// The manual path (custom workers, tests) and backups, over every
/// partition.
impl Queue {
    /// The settings this handle uses (every partition's).
    pub fn config(&self) -> &QueueConfig {
        self.partitions[0].config()
    }

    /// Claim up to `count` jobs for `consumer` without blocking, in strict
    /// priority order within each partition, taking from the partitions in
    /// turn from a random one until `count` are taken or all are empty.
    /// This is the manual path (for custom workers and tests);
    /// [`Worker`](crate::Worker) does it for you. Nothing is claimed while the queue is
    /// paused.
    pub async fn claim(&self, consumer: &str, count: usize) -> Result<Vec<Job>> {
        let n = self.partitions.len();
        let start = if n == 1 { 0 } else { rand::random_range(0..n) };
        let mut jobs = Vec::new();
        for i in 0..n {
            if jobs.len() >= count {
                break;
            }
            let partition = &self.partitions[(start + i) % n];
            jobs.extend(partition.claim(consumer, count - jobs.len()).await?);
        }
        Ok(jobs)
    }

    /// Record the outcome of a claimed job on its partition. Refused with
    /// [`Settled::Fenced`](crate::Settled::Fenced) when the job was
    /// reclaimed in the meantime.
    pub async fn settle(&self, job: &Job, outcome: Outcome) -> Result<crate::Settled> {
        let mut out = self.settle_many(vec![(job, outcome)]).await?;
        out.pop().ok_or(Error::EmptyBatch)
    }

    /// Record several outcomes, one round trip per partition and consumer;
    /// the answers are in the order of `outcomes`. A job of another queue
    /// is refused.
    pub async fn settle_many(&self, outcomes: Vec<(&Job, Outcome)>) -> Result<Vec<crate::Settled>> {
        let total = outcomes.len();
        let mut groups: Vec<SettleGroup<'_>> =
            vec![(Vec::new(), Vec::new()); self.partitions.len()];
        for (position, (job, outcome)) in outcomes.into_iter().enumerate() {
            let index = self
                .partitions
                .iter()
                .position(|p| p.name() == job.queue)
                .ok_or_else(|| {
                    Error::invalid(
                        "job",
                        format!(
                            "job {} is of queue {}, not {}",
                            job.id, job.queue, self.name
                        ),
                    )
                })?;
            groups[index].0.push(position);
            groups[index].1.push((job, outcome));
        }
        let mut out = vec![crate::Settled::Gone; total];
        for (index, (positions, outcomes)) in groups.into_iter().enumerate() {
            if outcomes.is_empty() {
                continue;
            }
            let settled = self.partitions[index].settle_many(outcomes).await?;
            for (position, s) in positions.into_iter().zip(settled) {
                out[position] = s;
            }
        }
        Ok(out)
    }

    /// Refresh the claims of `jobs`, as a [`Worker`]'s keep-alive does for
    /// the jobs it runs: each stays its claimer's for another visibility
    /// timeout. A job its claimer no longer holds is left as it is.
    ///
    /// Exists for the model-based checker (`engine/tests/model.rs`), which
    /// plays workers by hand through the manual claim/settle path; a
    /// [`Worker`] keeps its own jobs alive.
    #[doc(hidden)]
    pub async fn keep_alive(&self, jobs: &[&Job]) -> Result<()> {
        // One refresh per partition and consumer, as each worker sends it.
        let mut groups: Vec<RefreshGroup<'_>> = Vec::new();
        for job in jobs {
            let index = self
                .partitions
                .iter()
                .position(|p| p.name() == job.queue)
                .ok_or_else(|| {
                    Error::invalid("job", format!("job {} is of queue {}", job.id, job.queue))
                })?;
            let entry = (job.priority, job.entry_id.clone());
            match groups
                .iter_mut()
                .find(|g| g.0 == index && g.1 == job.consumer)
            {
                Some(group) => group.2.push(entry),
                None => groups.push((index, &job.consumer, vec![entry])),
            }
        }
        for (index, consumer, entries) in groups {
            let partition = &self.partitions[index];
            partition
                .store()
                .refresh(consumer, partition.config().visibility_timeout, &entries)
                .await?;
        }
        Ok(())
    }

    /// Move due delayed jobs to their streams, up to `limit` per partition.
    /// Workers run this continuously.
    pub async fn promote_due(&self, limit: usize) -> Result<crate::Promoted> {
        let mut total = crate::Promoted::default();
        for p in self.partitions.iter() {
            total.add(&p.promote_due(limit).await?);
        }
        Ok(total)
    }

    /// Take over jobs whose worker shows no sign of life for the visibility
    /// timeout, on every partition, sending each through the failure path.
    /// Workers run this periodically.
    pub async fn reclaim_lost(&self, consumer: &str) -> Result<crate::Reclaimed> {
        let mut total = crate::Reclaimed::default();
        for p in self.partitions.iter() {
            total.add(&p.reclaim_lost(consumer).await?);
        }
        Ok(total)
    }

    /// Every unfinished job (waiting, active, delayed, dead) of every
    /// partition with all its stored fields, for backups. Reads the whole
    /// queue into memory.
    pub async fn export(&self) -> Result<Vec<JobRecord>> {
        let mut out = Vec::new();
        for p in self.partitions.iter() {
            out.extend(p.export().await?);
        }
        Ok(out)
    }

    /// Every idempotency mapping of every partition (also those of jobs
    /// that completed), with the time its window has left: what a backup
    /// keeps so that an enqueue retried after a restore is still a
    /// duplicate.
    pub async fn export_idempotency(&self) -> Result<Vec<IdempotencyRecord>> {
        let mut out = Vec::new();
        for p in self.partitions.iter() {
            out.extend(p.export_idempotency().await?);
        }
        Ok(out)
    }

    /// Write idempotency mappings back, each to the partition its key
    /// routes to, as an enqueue under that key would go.
    pub async fn import_idempotency(&self, records: &[IdempotencyRecord]) -> Result<()> {
        let mut groups = vec![Vec::new(); self.partitions.len()];
        for r in records {
            groups[self.partition_index(&r.key)].push(r.clone());
        }
        for (p, group) in self.partitions.iter().zip(groups) {
            if !group.is_empty() {
                p.import_idempotency(&group).await?;
            }
        }
        Ok(())
    }

    /// Bring back jobs from [`export`](Self::export), each to the partition
    /// of its idempotency key, as an enqueue under that key would go, else
    /// to the partition its id hashes to, so that importing twice finds
    /// the first import's copy. Each comes back in its state (an active
    /// job comes back waiting and runs again); jobs whose id exists are
    /// left alone, so importing twice adds nothing. Returns how many were
    /// added.
    pub async fn import(&self, records: &[JobRecord]) -> Result<u64> {
        let mut groups = vec![Vec::new(); self.partitions.len()];
        for r in records {
            let key = r
                .field(crate::job_fields::IDEMPOTENCY_KEY)
                .unwrap_or_else(|| r.id.clone());
            groups[self.partition_index(&key)].push(r.clone());
        }
        let mut added = 0;
        for (p, group) in self.partitions.iter().zip(groups) {
            if !group.is_empty() {
                added += p.import(&group).await?;
            }
        }
        Ok(added)
    }
}

impl Client {
    /// A handle on queue `name` split into `partitions` partitions (see
    /// [`Queue`]); creates them where missing.
    pub async fn partitioned_queue(
        &self,
        name: &str,
        partitions: u16,
        config: QueueConfig,
    ) -> Result<Queue> {
        Queue::open(self, name, partitions, config).await
    }
}

#[cfg(test)]
mod tests {
    use super::stable_hash;

    #[test]
    fn the_hash_is_stable_across_builds() {
        // FNV-1a 64 test vectors: routing must never change between versions.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash("foobar"), 0x8594_4171_f739_67e8);
    }
}
