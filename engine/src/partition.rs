//! `Partition`: one partition of a queue (`name#i`, or the whole of a
//! queue never split), what [`Queue`](crate::Queue) does for each.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::client::{Client, Durability};
use crate::combine::EnqueueCombiner;
use crate::error::{Error, Result};
use crate::job::{Job, JobInfo, JobRecord, JobState, MinuteCount, Outcome, Stats};
use crate::options::{JobOptions, QueueConfig, RateLimit};
use crate::store::{
    CallToken, Cancelled, EnqueueItem, Promoted, Reclaimed, SettleItem, Settled, Store,
};

/// The deepest a listing may start, and the most it may return: what one
/// page asks of Redis (and a partitioned queue's merge, of each partition)
/// stays bounded whatever a caller sends.
pub const MAX_LIST_OFFSET: usize = 10_000;
/// The most jobs one listing returns.
pub const MAX_LIST_LIMIT: usize = 1_000;

pub(crate) fn check_depth(offset: usize, limit: usize) -> Result<()> {
    if offset > MAX_LIST_OFFSET || limit > MAX_LIST_LIMIT {
        return Err(Error::invalid(
            "offset/limit",
            format!(
                "listings start at most {MAX_LIST_OFFSET} deep and return at most {MAX_LIST_LIMIT}"
            ),
        ));
    }
    Ok(())
}

/// One idempotency mapping, as a backup keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct IdempotencyRecord {
    /// The idempotency key.
    pub key: String,
    /// The job it maps to.
    pub job_id: String,
    /// How long its window had left, ms.
    pub ttl_ms: u64,
}

/// A job to enqueue: its payload, its options, and the partition key
/// that routes it on a partitioned queue.
///
/// ```
/// use sluice_engine::{JobOptions, NewJob};
///
/// # fn demo() -> sluice_engine::Result<()> {
/// let job = NewJob::new(&"hello@example.com", JobOptions::new().priority(1))?
///     .partition_key("customer-17");
/// assert_eq!(job.partition_key.as_deref(), Some("customer-17"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    /// The payload bytes (MessagePack for typed handlers).
    pub payload: Vec<u8>,
    /// Its options.
    pub options: JobOptions,
    /// On a partitioned queue, the key whose partition takes the job: jobs
    /// with the same key keep their priority and FIFO order among
    /// themselves. Without one, the idempotency key routes the job, else
    /// it goes to any partition. A queue that was never split ignores it.
    pub partition_key: Option<String>,
}

impl NewJob {
    /// A job whose payload is `value` encoded as MessagePack.
    pub fn new<T: Serialize + ?Sized>(value: &T, options: JobOptions) -> Result<Self> {
        Ok(Self::raw(rmp_serde::to_vec_named(value)?, options))
    }

    /// A job with a payload already encoded.
    pub fn raw(payload: Vec<u8>, options: JobOptions) -> Self {
        Self {
            payload,
            options,
            partition_key: None,
        }
    }

    /// Route the job by `key` (see [`partition_key`](Self::partition_key)).
    pub fn partition_key(mut self, key: impl Into<String>) -> Self {
        self.partition_key = Some(key.into());
        self
    }
}

/// The answer to an enqueue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Enqueued {
    /// The job's id; on an idempotency hit, the id of the earlier job.
    pub id: String,
    /// True when the idempotency key matched an earlier job and nothing was
    /// added.
    pub duplicate: bool,
}

/// A handle on one queue. Cheap to clone; all clones share the connection,
/// and their enqueue calls combine (`combine.rs`): those that arrive while
/// others are on their way go to Redis together.
#[derive(Clone, Debug)]
pub(crate) struct Partition {
    client: Client,
    store: Store,
    config: Arc<QueueConfig>,
    /// Tokens of this handle's enqueue calls whose replies arrived: the
    /// next enqueue deletes their records (see `enqueue.lua`).
    answered_enqueues: Arc<std::sync::Mutex<Vec<String>>>,
    /// Enqueue calls waiting to go together (`combine.rs`).
    combiner: Arc<EnqueueCombiner>,
}

impl Partition {
    pub(crate) fn new(client: Client, store: Store, config: QueueConfig) -> Self {
        Self {
            client,
            store,
            config: Arc::new(config),
            answered_enqueues: Arc::default(),
            combiner: Arc::default(),
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        self.store.keys().queue()
    }

    /// The settings this handle uses.
    pub fn config(&self) -> &QueueConfig {
        &self.config
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    /// Whether a call found this partition's Redis Cluster slot migrating
    /// in the last seconds: jobs without a key go to other partitions
    /// meanwhile.
    pub fn slot_moving(&self) -> bool {
        self.store.slot_moving()
    }

    /// Enqueue a batch in one round trip. Every job is checked first: one
    /// invalid job refuses the whole batch and nothing is added.
    pub async fn enqueue_batch(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        if jobs.is_empty() {
            return Err(Error::EmptyBatch);
        }
        if jobs.len() > self.config.max_batch {
            return Err(Error::BatchTooLarge {
                size: jobs.len(),
                max: self.config.max_batch,
            });
        }
        let items = jobs
            .into_iter()
            .map(|job| self.item(job))
            .collect::<Result<Vec<_>>>()?;
        self.combiner.enqueue(self, items).await
    }

    /// One `enqueue.lua` call for `items`, retried with its token until it
    /// is answered (see `combine.rs` for who calls it, with what).
    pub(crate) async fn send_enqueue(&self, items: &[EnqueueItem]) -> Result<Vec<Enqueued>> {
        let call = self.enqueue_token();
        let confirmed = std::mem::take(&mut *self.answered());
        let reply = match self.client.config().durability {
            Durability::Replicated { replicas, timeout } => {
                let (reply, acked) = self
                    .store
                    .enqueue_replicated(items, &call, &confirmed, replicas, timeout)
                    .await?;
                if acked < i64::from(replicas) {
                    return Err(Error::Protocol {
                        operation: "wait for replicas",
                        detail: format!(
                            "{acked} of {replicas} replicas acknowledged within {timeout:?}"
                        ),
                    });
                }
                reply
            }
            _ => self.store.enqueue(items, &call, &confirmed).await?,
        };
        self.answered().push(call.token);
        Ok(reply
            .into_iter()
            .map(|(id, duplicate)| Enqueued { id, duplicate })
            .collect())
    }

    /// A token for one enqueue call: its record outlives every retry the
    /// client makes of the call (each try may wait the response timeout,
    /// then the longest backoff), so a retry of a call that ran adds
    /// nothing, and then expires: it is not kept per job.
    fn answered(&self) -> std::sync::MutexGuard<'_, Vec<String>> {
        // A panic while holding it leaves a plain list of tokens: still good.
        self.answered_enqueues
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn enqueue_token(&self) -> CallToken {
        CallToken::new(enqueue_record_life(self.client.config()), None)
    }

    fn item(&self, job: NewJob) -> Result<EnqueueItem> {
        let o = &job.options;
        o.validate()?;
        if job.payload.len() > self.config.max_payload_bytes {
            return Err(Error::PayloadTooLarge {
                size: job.payload.len(),
                max: self.config.max_payload_bytes,
            });
        }
        Ok(EnqueueItem {
            id: uuid::Uuid::now_v7().simple().to_string(),
            priority: o.priority,
            delay_ms: o.delay.as_millis() as u64,
            max_attempts: o.max_attempts.unwrap_or(self.config.max_attempts),
            backoff: o.backoff.unwrap_or(self.config.backoff).encode(),
            timeout_ms: o
                .timeout
                .or(self.config.timeout)
                .map_or(0, |t| t.as_millis() as u64),
            idempotency_key: o.idempotency_key.clone().unwrap_or_default(),
            idempotency_window_ms: o
                .idempotency_window
                .unwrap_or(self.config.idempotency_window)
                .as_millis() as u64,
            payload: job.payload,
        })
    }

    /// Look a job up by id. `None` when it never existed, or completed and
    /// its keep window passed.
    pub async fn job(&self, id: &str) -> Result<Option<JobInfo>> {
        self.store.job(id).await
    }

    /// Counts per state and the queue's counters.
    pub async fn stats(&self) -> Result<Stats> {
        self.store.stats().await
    }

    /// How long the oldest waiting job (ready to run, not yet claimed) has
    /// waited, by Redis time; `None` when nothing waits. A delayed or retried
    /// job waits from when it became due.
    pub async fn oldest_waiting_age(&self) -> Result<Option<Duration>> {
        let Some(oldest) = self.store.oldest_waiting_ms().await? else {
            return Ok(None);
        };
        let now = self.store.server_time_ms().await?;
        Ok(Some(Duration::from_millis(now.saturating_sub(oldest))))
    }

    /// Completed and failed attempts per minute over the last `minutes`
    /// minutes (at most a day), oldest first, by Redis server time.
    pub async fn throughput(&self, minutes: u64) -> Result<Vec<MinuteCount>> {
        let minutes = minutes.clamp(1, 24 * 60);
        let now = self.store.server_time_ms().await?;
        self.store.throughput(now, minutes).await
    }

    /// Stop workers from claiming (jobs already claimed finish).
    pub async fn pause(&self) -> Result<()> {
        self.store.set_paused(true).await
    }

    /// Limit how many jobs per second the whole fleet starts (`None`: no
    /// limit). Workers see a change at their next claim. Setting the limit
    /// the queue already has changes nothing (its bucket is not refilled),
    /// so every worker may apply its configured limit at start.
    pub async fn set_rate_limit(&self, limit: Option<RateLimit>) -> Result<()> {
        self.store.set_rate_limit(limit).await
    }

    /// Let workers claim again.
    pub async fn resume(&self) -> Result<()> {
        self.store.set_paused(false).await
    }

    /// A page of dead letters, newest first, after `cursor` (none: from the
    /// newest) and `offset` more, and the cursor of the next page when this
    /// one is full.
    /// Unlike an offset, a cursor costs the same however deep it is.
    pub async fn dead_letters_after(
        &self,
        cursor: Option<&DeadCursor>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<JobInfo>, Option<DeadCursor>)> {
        check_depth(offset, limit)?;
        let mut rows = self.dead_rows(cursor, offset + limit).await?;
        rows.drain(..offset.min(rows.len()));
        let next = page_cursor(&rows, limit);
        let ids: Vec<String> = rows.into_iter().map(|(_, id)| id).collect();
        Ok((self.store.jobs(&ids).await?, next))
    }

    /// (death ms, id) of the dead letters after `cursor`, at most `limit`.
    pub(crate) async fn dead_rows(
        &self,
        cursor: Option<&DeadCursor>,
        limit: usize,
    ) -> Result<Vec<(u64, String)>> {
        match cursor {
            None => self.store.dead_newest(limit).await,
            Some(c) => self.store.dead_after((c.died_at_ms, &c.id), limit).await,
        }
    }

    /// Dead letters, newest first, without the depth check, for the
    /// engine's own bounded merges.
    pub(crate) async fn dead_page(&self, offset: usize, limit: usize) -> Result<Vec<JobInfo>> {
        let ids = self.store.dead_ids(offset, limit).await?;
        self.store.jobs(&ids).await
    }

    /// Jobs in `state` (see [`Queue::jobs_in_state`](crate::Queue::jobs_in_state)),
    /// without the depth check.
    pub(crate) async fn state_page(
        &self,
        state: JobState,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<JobInfo>> {
        let ids = self.store.ids_in_state(state, offset, limit).await?;
        self.store.jobs(&ids).await
    }

    /// Dead letters whose error contains `text` (ignoring case), newest
    /// first, after `cursor`, `offset` matches skipped, at most `limit`;
    /// and how many match in all. No depth check.
    pub(crate) async fn search_dead(
        &self,
        text: &str,
        cursor: Option<&DeadCursor>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<JobInfo>, u64)> {
        let after = cursor.map(|c| (c.died_at_ms, c.id.as_str()));
        let (rows, matched) = self.store.find_dead(text, after, offset, limit).await?;
        let ids: Vec<String> = rows.into_iter().map(|(_, id)| id).collect();
        Ok((self.store.jobs(&ids).await?, matched))
    }

    /// The (time of death, id) of the first `limit` dead letters after
    /// `cursor` whose error contains `text`, and how many match in all: for
    /// a search over partitions, which reads only its page's jobs.
    pub(crate) async fn dead_rows_matching(
        &self,
        text: &str,
        cursor: Option<&DeadCursor>,
        limit: usize,
    ) -> Result<(Vec<(u64, String)>, u64)> {
        let after = cursor.map(|c| (c.died_at_ms, c.id.as_str()));
        self.store.find_dead(text, after, 0, limit).await
    }

    /// The ids of dead letters whose error contains `text`, among the
    /// newest `scan` (errors only are read, never payloads).
    pub(crate) async fn dead_ids_matching(&self, text: &str, scan: usize) -> Result<Vec<String>> {
        let (rows, _) = self.store.find_dead(text, None, 0, scan).await?;
        Ok(rows.into_iter().map(|(_, id)| id).collect())
    }

    /// Cancel a job. A waiting or delayed job becomes a dead letter at once
    /// ("cancelled by an operator"); a running one is asked to stop (see
    /// [`Cancelled::Requested`]); a finished one is left alone. Safe to
    /// call again: a second call answers as the first.
    pub async fn cancel(&self, id: &str) -> Result<Cancelled> {
        self.store.cancel(id, self.config.dead_letter_cap).await
    }

    /// Send one dead letter back to its stream with fresh attempts. False
    /// when `id` is not a dead letter.
    pub async fn redrive(&self, id: &str) -> Result<bool> {
        Ok(self.store.redrive(&[id.to_owned()]).await? == 1)
    }

    /// Send these dead letters back; returns how many were dead letters.
    pub async fn redrive_many(&self, ids: &[String]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        self.store.redrive(ids).await
    }

    /// Send every dead letter back; returns how many.
    pub async fn redrive_all(&self) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = self.store.redrive(&[]).await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    /// Delete one dead letter. False when `id` is not a dead letter.
    pub async fn delete_dead(&self, id: &str) -> Result<bool> {
        Ok(self.store.delete_dead(&[id.to_owned()]).await? == 1)
    }

    /// Delete every dead letter; returns how many.
    pub async fn purge_dead(&self) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = self.store.delete_dead(&[]).await?;
            if n == 0 {
                return Ok(total);
            }
            total += n;
        }
    }

    /// Every unfinished job (waiting, active, delayed, dead) with all its
    /// stored fields, for backups. Reads the whole queue into memory.
    pub async fn export(&self) -> Result<Vec<JobRecord>> {
        let (in_streams, delayed, dead) = self.store.snapshot_ids().await?;
        let ids: Vec<String> = in_streams.into_iter().chain(delayed).chain(dead).collect();
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            // A job that finished since its id was read (a late success
            // whose re-added entry still waits to be skipped, or one that
            // ran meanwhile) is not backed up, as no completed job is.
            out.extend(
                self.store
                    .raw_jobs(chunk)
                    .await?
                    .into_iter()
                    .filter(|r| r.state() != crate::JobState::Completed),
            );
        }
        Ok(out)
    }

    /// Every idempotency mapping the queue holds (also those of jobs that
    /// completed), with the time its window has left: what a backup keeps
    /// so that an enqueue retried after a restore is still a duplicate.
    pub async fn export_idempotency(&self) -> Result<Vec<IdempotencyRecord>> {
        let mut out = Vec::new();
        let mut cursor = "0".to_owned();
        loop {
            let (next, page) = self.store.idempotency_page(&cursor).await?;
            out.extend(
                page.into_iter()
                    .map(|(key, job_id, ttl_ms)| IdempotencyRecord {
                        key,
                        job_id,
                        ttl_ms,
                    }),
            );
            if next == "0" {
                return Ok(out);
            }
            cursor = next;
        }
    }

    /// Write idempotency mappings back, each for the time it has left; a key
    /// mapped since is left as it is.
    pub async fn import_idempotency(&self, records: &[IdempotencyRecord]) -> Result<()> {
        for chunk in records.chunks(500) {
            let mappings: Vec<(String, String, u64)> = chunk
                .iter()
                .map(|r| (r.key.clone(), r.job_id.clone(), r.ttl_ms))
                .collect();
            self.store.restore_idempotency(&mappings).await?;
        }
        Ok(())
    }

    /// Bring back jobs from [`export`](Self::export), each in its state (an
    /// active job comes back waiting and runs again). Jobs whose id exists
    /// are left alone, so importing twice adds nothing. Returns how many
    /// were added.
    pub async fn import(&self, records: &[JobRecord]) -> Result<u64> {
        let mut added = 0;
        for chunk in records.chunks(100) {
            added += self.store.import(chunk).await?;
        }
        Ok(added)
    }

    /// Claim up to `count` jobs for `consumer` in strict priority order,
    /// without blocking. This is the manual path (for custom workers and
    /// tests); [`Worker`](crate::Worker) does it for you. Nothing is claimed
    /// while the queue is paused.
    pub async fn claim(&self, consumer: &str, count: usize) -> Result<Vec<Job>> {
        crate::keys::validate_name("consumer name", consumer)?;
        let call = self.claim_token(None);
        let jobs = self
            .store
            .claim(consumer, count, &Default::default(), &call)
            .await?
            .1;
        self.store.forget_calls(&[call.token]).await;
        Ok(jobs)
    }

    /// A token for one settle call (see `CallToken`); its reply is kept for
    /// twice the visibility timeout and at least 10 s: longer than any
    /// retry of the call (past it, settle.lua answers a replay from the
    /// jobs' states).
    pub(crate) fn call_token(&self, confirmed: Option<String>) -> CallToken {
        let record_for = (self.config.visibility_timeout * 2).max(Duration::from_secs(10));
        CallToken::new(record_for, confirmed)
    }

    /// A token for one claim (a claim.lua call or a direct read). Its
    /// record says, for as long as it lives, that the claim's jobs never
    /// reached their worker, so a reclaim gives their attempts back
    /// (reclaim.lua): it must outlive any wait before that reclaim (an
    /// outage, a stopped fleet), not only the call's retries. The worker's
    /// next claim deletes it; kept at most CLAIM_RECORD_LIFE otherwise.
    pub(crate) fn claim_token(&self, confirmed: Option<String>) -> CallToken {
        let record_for = (self.config.visibility_timeout * 2).max(CLAIM_RECORD_LIFE);
        CallToken::new(record_for, confirmed)
    }

    /// Record several outcomes, in one round trip per consumer that
    /// claimed them; the answers are in the order of `outcomes`.
    pub async fn settle_many(&self, outcomes: Vec<(&Job, Outcome)>) -> Result<Vec<Settled>> {
        let mut by_consumer: Vec<(String, Vec<usize>, Vec<SettleItem>)> = Vec::new();
        for (position, (job, outcome)) in outcomes.into_iter().enumerate() {
            let item = Ticket::of(job).settle(outcome);
            match by_consumer.iter_mut().find(|g| g.0 == job.consumer) {
                Some(group) => {
                    group.1.push(position);
                    group.2.push(item);
                }
                None => by_consumer.push((job.consumer.clone(), vec![position], vec![item])),
            }
        }
        let total = by_consumer.iter().map(|g| g.1.len()).sum();
        let mut out = vec![Settled::Gone; total];
        for (consumer, positions, items) in by_consumer {
            let call = self.call_token(None);
            let settled = self.settle_items(&consumer, &items, &call).await?;
            self.store.forget_calls(&[call.token]).await;
            for (position, s) in positions.into_iter().zip(settled) {
                out[position] = s;
            }
        }
        Ok(out)
    }

    /// Settle `items` under `call`: the same token for every try of one
    /// batch, so a replay changes nothing.
    pub(crate) async fn settle_items(
        &self,
        consumer: &str,
        items: &[SettleItem],
        call: &CallToken,
    ) -> Result<Vec<Settled>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.store
            .settle(
                consumer,
                items,
                self.config.keep_completed,
                self.config.dead_letter_cap,
                call,
            )
            .await
    }

    /// Move due delayed jobs to their streams (up to `limit`). Workers run
    /// this continuously.
    pub async fn promote_due(&self, limit: usize) -> Result<Promoted> {
        self.store.promote(limit).await
    }

    /// Take over jobs whose worker shows no sign of life for the visibility
    /// timeout, sending each through the failure path. Workers run this
    /// periodically.
    pub async fn reclaim_lost(&self, consumer: &str) -> Result<Reclaimed> {
        self.store
            .reclaim(
                consumer,
                self.config.visibility_timeout,
                1000,
                self.config.dead_letter_cap,
                None,
            )
            .await
    }

    /// [`Partition::reclaim_lost`] as a worker's reclaimer runs it, every
    /// `interval`: a reclaim that finds the fleet's last one much older than
    /// that (Redis was out of reach, frozen or restarting) counts owners'
    /// silence only from then on, so that live workers' keep-alives land
    /// before their jobs are taken (reclaim.lua).
    pub(crate) async fn reclaim_every(
        &self,
        consumer: &str,
        interval: Duration,
    ) -> Result<Reclaimed> {
        self.store
            .reclaim(
                consumer,
                self.config.visibility_timeout,
                1000,
                self.config.dead_letter_cap,
                Some(quiet_bound(interval, self.config.visibility_timeout)),
            )
            .await
    }
}

/// What settling a claimed job needs from it: not its payload, so a worker
/// can hand the job itself to the handler instead of copying it.
#[derive(Debug, Clone)]
pub(crate) struct Ticket {
    job_id: String,
    level: u8,
    entry_id: String,
    fence: u64,
    attempt: u32,
}

impl Ticket {
    pub(crate) fn of(job: &Job) -> Self {
        Self {
            job_id: job.id.clone(),
            level: job.priority,
            entry_id: job.entry_id.clone(),
            fence: job.fence,
            attempt: job.attempt,
        }
    }

    /// The script arguments for this job finishing with `outcome`.
    pub(crate) fn settle(self, outcome: Outcome) -> SettleItem {
        let (kind, text, delay_ms) = match outcome {
            Outcome::Done => ("done", String::new(), 0),
            Outcome::DoneWith(result) => ("done", result, 0),
            Outcome::Retry {
                reason,
                after: None,
            } => ("fail", reason, -1),
            Outcome::Retry {
                reason,
                after: Some(after),
            } => ("retry", reason, duration_ms(after)),
            Outcome::Snooze(after) => ("snooze", String::new(), duration_ms(after)),
            Outcome::Bury(reason) => ("bury", reason, 0),
        };
        SettleItem {
            job_id: self.job_id,
            level: self.level,
            entry_id: self.entry_id,
            fence: self.fence,
            attempt: self.attempt,
            kind,
            text,
            delay_ms,
        }
    }
}

/// How long an enqueue call's record is kept: past the last retry the
/// client can send (a retry that finds it answers the first run's reply;
/// one that came after would add the jobs again), and at least 10 s.
fn enqueue_record_life(config: &crate::ClientConfig) -> Duration {
    // Every try may connect anew and then wait out the response timeout;
    // the waits between tries double up to the longest delay, and their
    // jitter adds up to as much again (backon). Two seconds more for the
    // caller's own scheduling.
    let tries = u32::try_from(config.retry.retries + 1).unwrap_or(u32::MAX);
    let per_try = config.connect_timeout + config.response_timeout;
    let waits = config
        .retry
        .max_delay
        .saturating_mul(2)
        .saturating_mul(tries - 1);
    per_try
        .saturating_mul(tries)
        .saturating_add(waits)
        .saturating_add(Duration::from_secs(2))
        .max(Duration::from_secs(10))
}

/// How long the record of a claim whose reply never reached its worker is
/// kept at least (see `Partition::claim_token`): ten minutes, a few
/// kilobytes per unanswered claim.
const CLAIM_RECORD_LIFE: Duration = Duration::from_secs(600);

/// The longest gap between the reclaims of a fleet whose reclaimers run
/// every `interval` that is still no outage: one and a half intervals, for
/// a reclaim call that is slow or a loop that wakes late, plus 250 ms, but
/// no more than two thirds of the visibility timeout (an outage shorter
/// than the bound goes unseen, and a live owner's keep-alive, every third
/// of it, must still land inside it), and never less than an interval and
/// 250 ms (else every round would be seen as an outage, and no job of a
/// dead worker ever taken).
fn quiet_bound(interval: Duration, visibility: Duration) -> Duration {
    let slack = Duration::from_millis(250);
    (interval + interval / 2 + slack)
        .min(visibility * 2 / 3)
        .max(interval + slack)
}

/// A handler's retry or snooze delay in ms, at most [`crate::MAX_DURATION`]: the
/// script adds it to the server's clock, and a sum beyond what it can
/// format would land in the past and run the job at once.
fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.min(crate::options::MAX_DURATION).as_millis()).unwrap_or(i64::MAX)
}

/// Where a page of dead letters ends: the last letter's death time and id.
/// Its text form, `<ms>-<id>`, is what the API hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadCursor {
    /// The last letter's death, ms since the Unix epoch (Redis time).
    pub died_at_ms: u64,
    /// The last letter's id.
    pub id: String,
}

impl std::fmt::Display for DeadCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.died_at_ms, self.id)
    }
}

impl std::str::FromStr for DeadCursor {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid("cursor", "not a cursor this listing handed out");
        let (ms, id) = s.split_once('-').ok_or_else(bad)?;
        if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let died_at_ms = ms.parse().map_err(|_| bad())?;
        // As the API's pattern says: 1 to 200 characters, no line breaks.
        let breaks = |c: char| matches!(c, '\n' | '\r' | '\u{2028}' | '\u{2029}');
        if id.is_empty() || id.chars().count() > 200 || id.contains(breaks) {
            return Err(bad());
        }
        Ok(Self {
            died_at_ms,
            id: id.to_owned(),
        })
    }
}

/// The next page's cursor: the last row's, when the page is full.
pub(crate) fn page_cursor(rows: &[(u64, String)], limit: usize) -> Option<DeadCursor> {
    (rows.len() >= limit && limit > 0)
        .then(|| rows.last())
        .flatten()
        .map(|(ms, id)| DeadCursor {
            died_at_ms: *ms,
            id: id.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientConfig, RetryPolicy};

    /// The latest a client's last retry of a call can reach Redis after its
    /// first try did: each try may first spend the connect timeout on a
    /// new connection, then wait out the response timeout; each wait
    /// between tries doubles up to the longest delay, and the jitter adds
    /// up to as much again.
    fn last_retry_at_latest(config: &ClientConfig) -> Duration {
        let tries = config.retry.retries as u32 + 1;
        let mut span = (config.connect_timeout + config.response_timeout) * tries;
        let mut delay = config.retry.min_delay;
        for _ in 0..config.retry.retries {
            span += delay * 2;
            delay = (delay * 2).min(config.retry.max_delay);
        }
        span
    }

    /// Issue 39, defect 13: the record of an enqueue call outlives the
    /// client's last retry of it, whatever the client's timeouts.
    #[test]
    fn the_enqueue_record_outlives_the_last_retry() {
        let slow = {
            let mut c = ClientConfig::new("redis://127.0.0.1:6379/").retry(RetryPolicy {
                retries: 4,
                min_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(1),
            });
            c.response_timeout = Duration::from_secs(2);
            c.connect_timeout = Duration::from_secs(3);
            c
        };
        for config in [ClientConfig::new("redis://127.0.0.1:6379/"), slow] {
            assert!(
                enqueue_record_life(&config) > last_retry_at_latest(&config),
                "{:?} kept, a retry may come {:?} after the first try",
                enqueue_record_life(&config),
                last_retry_at_latest(&config)
            );
        }
    }
}
