//! The only module that talks to Redis: one method per transition, each one
//! script call (or one pipeline), retried with backoff on transient failures.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use redis::streams::StreamReadReply;
use redis::{FromRedisValue, RedisError, RetryMethod, Script, ScriptInvocation, Value};

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::job::{Job, JobInfo, JobRecord, JobState, MinuteCount, RunFields, Stats};
use crate::keys::{GROUP, PRIORITY_LEVELS, QueueKeys};
use crate::options::RateLimit;
use crate::scripts;

/// How calls to Redis are retried when it is unreachable or overloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub retries: usize,
    /// First delay.
    pub min_delay: Duration,
    /// Longest delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 retries from 50 ms doubling to at most 1 s: a call gives up after
    /// about 2 s of failures.
    fn default() -> Self {
        Self {
            retries: 5,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
        }
    }
}

/// What a claim saw besides the jobs it took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClaimStatus {
    /// The queue is paused.
    pub paused: bool,
    /// Where the queue's rate limit stands.
    pub rate: RateState,
}

/// A queue's rate limit as a claim saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RateState {
    /// No rate limit.
    Unlimited,
    /// Limited, and a token is free.
    Open,
    /// Limited, and the next token comes after this long.
    Wait(Duration),
}

/// What an operator's cancel did ([`Queue::cancel`](crate::Queue::cancel)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "result", content = "state")]
pub enum Cancelled {
    /// It was waiting or delayed; it is a dead letter now, with the reason
    /// "cancelled by an operator", and can be re-driven.
    Cancelled,
    /// It is running: its worker tells the handler
    /// ([`CancelReason::Operator`](crate::CancelReason::Operator)), and
    /// unless the run still succeeds the job is dead-lettered, also when
    /// its worker dies first.
    Requested,
    /// It had finished already (completed or dead): nothing changed.
    Finished(JobState),
    /// No such job (or a completed one no longer kept).
    Missing,
}

/// What one settled outcome turned into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The job completed.
    Done,
    /// The failure was recorded and a retry scheduled.
    Retry,
    /// The job went to the dead letters.
    Dead,
    /// The job will run again later, no attempt used.
    Snoozed,
    /// Refused: the job was reclaimed and belongs to another worker now, so
    /// this (stale) outcome changed nothing.
    Fenced,
    /// The job no longer exists; its stream entry was dropped.
    Gone,
}

impl Settled {
    /// The status as settle.lua names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Settled::Done => "done",
            Settled::Retry => "retry",
            Settled::Dead => "dead",
            Settled::Snoozed => "snoozed",
            Settled::Fenced => "fenced",
            Settled::Gone => "gone",
        }
    }
}

/// One finished attempt, ready to settle.
#[derive(Debug, Clone)]
pub(crate) struct SettleItem {
    pub job_id: String,
    pub level: u8,
    pub entry_id: String,
    pub fence: u64,
    /// The attempt this outcome ends (not sent to Redis; for observers).
    pub attempt: u32,
    pub kind: &'static str,
    pub text: String,
    pub delay_ms: i64,
}

/// A result of `reclaim.lua`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// Jobs of dead workers scheduled for another attempt.
    pub retried: u64,
    /// Jobs of dead workers that had no attempts left and were dead-lettered.
    pub dead: u64,
    /// Stale entries whose job no longer existed.
    pub dropped: u64,
    /// Entries delivered to a worker that never activated them (it waited
    /// for a slot too long, or never heard the reply): back in line with
    /// no attempt spent.
    pub requeued: u64,
}

/// A result of `promote.lua`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Promoted {
    /// Jobs moved to their stream.
    pub moved: u64,
    /// Time until the next delayed job is due, if any.
    pub next_due: Option<Duration>,
}

/// What makes a claim or settle call safe to replay: a token made before
/// the first try and sent with every retry, so the script answers a
/// replay with the first run's recorded reply instead of running again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallToken {
    /// Unique per call (not per try).
    pub token: String,
    /// How long the script keeps the reply, ms.
    pub record_ms: u64,
    /// The caller's previous call of the same kind whose reply arrived:
    /// its record is no longer needed and is deleted.
    pub confirmed: Option<String>,
}

impl CallToken {
    /// A new token whose reply is kept `record_for`, confirming `previous`.
    pub(crate) fn new(record_for: Duration, confirmed: Option<String>) -> Self {
        Self {
            token: uuid::Uuid::now_v7().simple().to_string(),
            record_ms: record_for.as_millis().max(1) as u64,
            confirmed,
        }
    }
}

/// One job's arguments to `enqueue.lua`.
#[derive(Debug, Clone)]
pub(crate) struct EnqueueItem {
    pub id: String,
    pub payload: Vec<u8>,
    pub priority: u8,
    pub delay_ms: u64,
    pub max_attempts: u32,
    pub backoff: String,
    pub timeout_ms: u64,
    pub idempotency_key: String,
    pub idempotency_window_ms: u64,
}

/// Redis access for one queue.
#[derive(Clone)]
pub(crate) struct Store {
    conn: Conn,
    keys: QueueKeys,
    retry: RetryPolicy,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("keys", &self.keys).finish()
    }
}

/// The consumer name a worker's blocking reads deliver to: entries stay
/// under it until a claim activates them (`claim.lua`), so a reclaimer can
/// tell delivered-but-never-run entries from running jobs. Consumer names
/// cannot contain '~' (`keys::validate_name`).
pub(crate) fn delivered_name(consumer: &str) -> String {
    format!("{consumer}~b")
}

fn is_transient(e: &RedisError) -> bool {
    if e.kind() == redis::ErrorKind::AuthenticationFailed {
        return false;
    }
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || !matches!(e.retry_method(), RetryMethod::NoRetry)
}

fn is_nogroup(e: &RedisError) -> bool {
    e.code() == Some("NOGROUP") || e.to_string().contains("NOGROUP")
}

/// Whether Redis lost the queue's streams (XINFO answers "no such key") or
/// their consumer group: `ensure` brings them back.
fn is_missing_stream(e: &RedisError) -> bool {
    is_nogroup(e) || e.to_string().contains("no such key")
}

/// Run `op` against Redis, retrying transient failures with exponential
/// backoff; give up with [`Error::Unavailable`] when the retries run out.
pub(crate) async fn with_retry<T, F, Fut>(
    policy: RetryPolicy,
    operation: &'static str,
    op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    let started = Instant::now();
    let mut attempts = 0usize;
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.retries)
        .with_jitter()
        .with_jitter_seed(rand::random());
    let mut op = op;
    let result = (|| {
        attempts += 1;
        op()
    })
    .retry(backoff)
    .when(is_transient)
    .notify(|e, after| {
        metrics::counter!("sluice_redis_retries_total", "operation" => operation).increment(1);
        tracing::debug!(operation, error = %e, ?after, "redis call failed; retrying");
    })
    .await;
    result.map_err(|source| {
        if is_transient(&source) {
            Error::Unavailable {
                operation,
                attempts,
                elapsed: started.elapsed(),
                source,
            }
        } else {
            Error::Redis { operation, source }
        }
    })
}

/// One command on `conn`, retried with [`with_retry`].
pub(crate) async fn query<T: FromRedisValue>(
    conn: &Conn,
    retry: RetryPolicy,
    operation: &'static str,
    cmd: &redis::Cmd,
) -> Result<T> {
    with_retry(retry, operation, || {
        let mut conn = conn.clone();
        async move { cmd.query_async(&mut conn).await }
    })
    .await
}

fn protocol(operation: &'static str, detail: impl Into<String>) -> Error {
    Error::Protocol {
        operation,
        detail: detail.into(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Okay => "OK".to_owned(),
        _ => String::new(),
    }
}

/// What `XINFO GROUPS` says of one consumer group on one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupInfo {
    /// Entries up to this id have been delivered.
    last_delivered: String,
    /// Entries delivered and not yet acknowledged.
    pending: Option<u64>,
    /// Entries not yet delivered (Redis 7; absent when Redis cannot tell).
    lag: Option<u64>,
}

impl GroupInfo {
    /// Whether the stream may hold entries on this side of the group's
    /// last-delivered id (unknown counts say yes).
    fn may_hold(&self, delivered: bool) -> bool {
        let count = if delivered { self.pending } else { self.lag };
        count != Some(0)
    }
}

/// `group`'s entry in an `XINFO GROUPS` reply.
fn group_info(reply: &Value, group: &str) -> Option<GroupInfo> {
    let Value::Array(groups) = reply else {
        return None;
    };
    groups.iter().find_map(|g| {
        let fields: Vec<(String, String)> = match g {
            Value::Array(kv) => kv
                .chunks(2)
                .filter(|p| p.len() == 2)
                .map(|p| (text(&p[0]), text(&p[1])))
                .collect(),
            Value::Map(kv) => kv.iter().map(|(k, v)| (text(k), text(v))).collect(),
            _ => return None,
        };
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        (field("name")? == group).then(|| GroupInfo {
            last_delivered: field("last-delivered-id").unwrap_or_else(|| "0-0".into()),
            pending: field("pending").and_then(|v| v.parse().ok()),
            lag: field("lag").and_then(|v| v.parse().ok()),
        })
    })
}

/// A stream entry id as (milliseconds, sequence), ordered as Redis orders them.
fn parse_stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => text(other).parse().unwrap_or(0),
    }
}

fn bytes(v: Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b,
        other => text(&other).into_bytes(),
    }
}

fn array(operation: &'static str, v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Nil => Ok(Vec::new()),
        other => Err(protocol(
            operation,
            format!("expected an array, got {other:?}"),
        )),
    }
}

impl Store {
    pub(crate) fn new(conn: Conn, keys: QueueKeys, retry: RetryPolicy) -> Self {
        Self { conn, keys, retry }
    }

    pub(crate) fn keys(&self) -> &QueueKeys {
        &self.keys
    }

    /// A script call with the queue's standard keys (meta, then the streams)
    /// and its key base as the first argument.
    fn invocation<'a>(&self, script: &'a Script) -> ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        inv.key(self.keys.meta());
        for s in self.keys.streams() {
            inv.key(s);
        }
        inv.arg(self.keys.base());
        inv
    }

    async fn run(&self, operation: &'static str, inv: &ScriptInvocation<'_>) -> Result<Value> {
        with_retry(self.retry, operation, || {
            let mut conn = self.conn.clone();
            async move { inv.invoke_async::<Value>(&mut conn).await }
        })
        .await
    }

    /// Like `run`, but recreates the consumer group once if Redis lost it.
    async fn run_grouped(
        &self,
        operation: &'static str,
        inv: &ScriptInvocation<'_>,
    ) -> Result<Value> {
        match self.run(operation, inv).await {
            Err(Error::Redis { source, .. }) if is_nogroup(&source) => {
                tracing::warn!(
                    queue = self.keys.queue(),
                    "consumer group missing; recreating it"
                );
                self.ensure().await?;
                self.run(operation, inv).await
            }
            other => other,
        }
    }

    /// Like `query_pipe`, but recreates the queue's streams and group once
    /// if Redis lost them; any other failure is returned as it is.
    async fn query_pipe_grouped<T: FromRedisValue>(
        &self,
        operation: &'static str,
        pipe: &redis::Pipeline,
    ) -> Result<T> {
        match self.query_pipe(operation, pipe).await {
            Err(Error::Redis { source, .. }) if is_missing_stream(&source) => {
                tracing::warn!(
                    queue = self.keys.queue(),
                    "streams or consumer group missing; recreating them"
                );
                self.ensure().await?;
                self.query_pipe(operation, pipe).await
            }
            other => other,
        }
    }

    /// One command, retried like every call.
    async fn query<T: FromRedisValue>(
        &self,
        operation: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T> {
        query(&self.conn, self.retry, operation, cmd).await
    }

    /// One pipeline (one round trip), retried like every call.
    async fn query_pipe<T: FromRedisValue>(
        &self,
        operation: &'static str,
        pipe: &redis::Pipeline,
    ) -> Result<T> {
        with_retry(self.retry, operation, || {
            let mut conn = self.conn.clone();
            async move { pipe.query_async(&mut conn).await }
        })
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

    /// Create missing streams and groups, and register the queue.
    pub(crate) async fn ensure(&self) -> Result<()> {
        let inv = self.invocation(&scripts::ENSURE);
        self.run("ensure queue", &inv).await?;
        self.query(
            "register queue",
            redis::cmd("SADD")
                .arg(self.keys.queues())
                .arg(self.keys.queue()),
        )
        .await
    }

    /// The `enqueue.lua` call for `items`.
    fn enqueue_invocation(
        &self,
        items: &[EnqueueItem],
        call: &CallToken,
        confirmed: &[String],
    ) -> ScriptInvocation<'static> {
        let mut inv = self.invocation(&scripts::ENQUEUE);
        inv.arg(&call.token).arg(call.record_ms).arg(items.len());
        for it in items {
            inv.arg(&it.id)
                .arg(&it.payload)
                .arg(it.priority)
                .arg(it.delay_ms)
                .arg(format!("{},{}", it.max_attempts, it.timeout_ms))
                .arg(&it.backoff)
                .arg(&it.idempotency_key)
                .arg(it.idempotency_window_ms);
        }
        inv.arg(confirmed.len());
        for c in confirmed {
            inv.arg(c);
        }
        inv
    }

    fn enqueue_reply(items: &[EnqueueItem], reply: Value) -> Result<Vec<(String, bool)>> {
        let reply = array("enqueue", reply)?;
        if reply.len() != items.len() * 2 {
            return Err(protocol(
                "enqueue",
                format!("{} fields for {} jobs", reply.len(), items.len()),
            ));
        }
        Ok(reply
            .chunks(2)
            .map(|c| (text(&c[0]), int(&c[1]) == 1))
            .collect())
    }

    /// `enqueue.lua`: returns (job id, duplicate) per job.
    /// `confirmed`: tokens of earlier enqueue calls whose replies arrived.
    pub(crate) async fn enqueue(
        &self,
        items: &[EnqueueItem],
        call: &CallToken,
        confirmed: &[String],
    ) -> Result<Vec<(String, bool)>> {
        let inv = self.enqueue_invocation(items, call, confirmed);
        Self::enqueue_reply(items, self.run("enqueue", &inv).await?)
    }

    /// `enqueue.lua` and `WAIT replicas timeout` in one pipeline, so both
    /// go on one connection: a retry after a reconnect sends both again,
    /// and the script writes even when it adds nothing, so the `WAIT`
    /// always waits for a write at least as new as the jobs. (Sent apart,
    /// a `WAIT` after a reconnect ran on a connection that had written
    /// nothing and answered at once.) Returns the reply and how many
    /// replicas acknowledged.
    pub(crate) async fn enqueue_replicated(
        &self,
        items: &[EnqueueItem],
        call: &CallToken,
        confirmed: &[String],
        replicas: u32,
        timeout: Duration,
    ) -> Result<(Vec<(String, bool)>, i64)> {
        let inv = self.enqueue_invocation(items, call, confirmed);
        let mut pipe = redis::pipe();
        pipe.invoke_script(&inv)
            .cmd("WAIT")
            .arg(replicas)
            .arg(timeout.as_millis() as u64);
        let reply: (Value, i64) = match self.query_pipe("enqueue", &pipe).await {
            Err(Error::Redis { source, .. })
                if source.code() == Some("NOSCRIPT") || source.to_string().contains("NOSCRIPT") =>
            {
                // Pipelined scripts are not loaded on demand: load, resend.
                with_retry(self.retry, "load enqueue script", || {
                    let mut conn = self.conn.clone();
                    let inv = &inv;
                    async move { inv.load_async(&mut conn).await }
                })
                .await?;
                self.query_pipe("enqueue", &pipe).await?
            }
            other => other?,
        };
        Ok((Self::enqueue_reply(items, reply.0)?, reply.1))
    }

    /// `claim.lua`: activate `delivered` entries, then claim up to `count`
    /// more in priority order. Returns whether the queue is paused and the
    /// jobs.
    pub(crate) async fn claim(
        &self,
        consumer: &str,
        count: usize,
        delivered: &[(u8, String, String)],
        call: &CallToken,
    ) -> Result<(ClaimStatus, Vec<Job>)> {
        let mut inv = self.invocation(&scripts::CLAIM);
        inv.arg(consumer)
            .arg(count)
            .arg(&call.token)
            .arg(call.record_ms)
            .arg(call.confirmed.as_deref().unwrap_or(""))
            .arg(delivered.len());
        for (level, entry, job) in delivered {
            inv.arg(*level).arg(entry).arg(job);
        }
        let mut reply = array("claim", self.run_grouped("claim", &inv).await?)?.into_iter();
        let paused = reply.next().map(|v| int(&v) == 1).unwrap_or(false);
        let rate = match reply.next().map(|v| int(&v)).unwrap_or(-1) {
            n if n < 0 => RateState::Unlimited,
            0 => RateState::Open,
            ms => RateState::Wait(Duration::from_millis(ms as u64)),
        };
        let status = ClaimStatus { paused, rate };
        let rest: Vec<Value> = reply.collect();
        if !rest.len().is_multiple_of(7) {
            return Err(protocol(
                "claim",
                format!("{} fields is not 7 per job", rest.len()),
            ));
        }
        let mut jobs = Vec::with_capacity(rest.len() / 7);
        let mut it = rest.into_iter();
        while let Some(id) = it.next() {
            let mut next = || it.next().unwrap_or(Value::Nil);
            let (level, entry, fence, attempt, run, payload) =
                (next(), next(), next(), next(), next(), next());
            let entry = text(&entry);
            // A hash edited by hand must not stop every claim of the queue:
            // unreadable fields get the defaults a lookup shows.
            let run = RunFields::parse_claimed(&text(&run), &entry).unwrap_or(RunFields {
                max_attempts: 1,
                timeout_ms: 0,
                created_ms: 0,
            });
            jobs.push(Job {
                id: text(&id),
                queue: self.keys.queue().to_owned(),
                priority: int(&level).clamp(0, i64::from(PRIORITY_LEVELS - 1)) as u8,
                entry_id: entry,
                fence: int(&fence).max(0) as u64,
                consumer: consumer.to_owned(),
                attempt: int(&attempt).max(0) as u32,
                max_attempts: run.max_attempts.clamp(1, u64::from(u32::MAX)) as u32,
                timeout: (run.timeout_ms > 0).then(|| Duration::from_millis(run.timeout_ms)),
                payload: bytes(payload),
                created_at_ms: run.created_ms,
                cancel: Default::default(),
            });
        }
        Ok((status, jobs))
    }

    /// Wait up to `block` for new entries on any level, on a connection of
    /// its own (a blocking read would hold up every command sharing one).
    /// The entries are delivered to `consumer` and must then go through
    /// [`Store::claim`] to become active.
    pub(crate) async fn wait_for_entries(
        &self,
        blocking: &mut Conn,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<(u8, String, String)>> {
        let streams = self.keys.streams();
        let ids = vec![">"; streams.len()];
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(delivered_name(consumer))
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&streams)
            .arg(&ids);
        let reply: Option<StreamReadReply> = match cmd.query_async(blocking).await {
            Ok(r) => r,
            Err(e) if is_nogroup(&e) => {
                self.ensure().await?;
                None
            }
            Err(e) if is_transient(&e) => {
                return Err(Error::Unavailable {
                    operation: "wait for jobs",
                    attempts: 1,
                    elapsed: Duration::ZERO,
                    source: e,
                });
            }
            Err(source) => {
                return Err(Error::Redis {
                    operation: "wait for jobs",
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            let Some(level) = streams.iter().position(|s| *s == key.key) else {
                continue;
            };
            for entry in key.ids {
                let job: String = entry.get("i").unwrap_or_default();
                out.push((level as u8, entry.id, job));
            }
        }
        Ok(out)
    }

    /// `settle.lua`: record a batch of outcomes.
    pub(crate) async fn settle(
        &self,
        consumer: &str,
        items: &[SettleItem],
        keep_completed: Duration,
        dead_letter_cap: usize,
        call: &CallToken,
    ) -> Result<Vec<Settled>> {
        let mut inv = self.invocation(&scripts::SETTLE);
        inv.arg(keep_completed.as_millis() as u64)
            .arg(dead_letter_cap)
            .arg(rand::random::<u32>())
            .arg(&call.token)
            .arg(call.record_ms)
            .arg(call.confirmed.as_deref().unwrap_or(""))
            .arg(consumer)
            .arg(items.len());
        // Per level, the newest entry of the batch: the script trims up to
        // it without comparing ids in Lua.
        let mut newest: Vec<(u8, (u64, u64))> = Vec::new();
        for it in items {
            let Some(id) = parse_stream_id(&it.entry_id) else {
                continue;
            };
            match newest.iter_mut().find(|(level, _)| *level == it.level) {
                Some((_, n)) => *n = (*n).max(id),
                None => newest.push((it.level, id)),
            }
        }
        for it in items {
            inv.arg(&it.job_id)
                .arg(it.level)
                .arg(&it.entry_id)
                .arg(it.fence)
                .arg(it.kind)
                .arg(&it.text)
                .arg(it.delay_ms);
        }
        inv.arg(newest.len());
        for (level, (ms, seq)) in newest {
            inv.arg(level).arg(format!("{ms}-{seq}"));
        }
        let reply = array("settle", self.run("settle", &inv).await?)?;
        reply
            .iter()
            .map(|v| match text(v).as_str() {
                "done" => Ok(Settled::Done),
                "retry" => Ok(Settled::Retry),
                "dead" => Ok(Settled::Dead),
                "snoozed" => Ok(Settled::Snoozed),
                "fenced" => Ok(Settled::Fenced),
                "gone" => Ok(Settled::Gone),
                other => Err(protocol("settle", format!("unknown status {other:?}"))),
            })
            .collect()
    }

    /// Delete the replay records of calls whose replies arrived (a worker
    /// that stops, or a manual claim or settle, has no next call to
    /// confirm them with). Best effort: they expire anyway.
    pub(crate) async fn forget_calls(&self, tokens: &[String]) {
        if tokens.is_empty() {
            return;
        }
        let mut cmd = redis::cmd("DEL");
        for t in tokens {
            cmd.arg(self.keys.call(t));
        }
        if let Err(e) = self.query::<i64>("forget calls", &cmd).await {
            tracing::debug!(queue = self.keys.queue(), error = %e, "could not delete call records; they expire");
        }
    }

    /// `promote.lua`: move up to `limit` due delayed jobs to their stream.
    pub(crate) async fn promote(&self, limit: usize) -> Result<Promoted> {
        let mut inv = self.invocation(&scripts::PROMOTE);
        inv.arg(limit);
        let reply = array("promote", self.run("promote", &inv).await?)?;
        let moved = reply.first().map(int).unwrap_or(0).max(0) as u64;
        let next = reply.get(1).map(int).unwrap_or(-1);
        Ok(Promoted {
            moved,
            next_due: (next >= 0).then(|| Duration::from_millis(next as u64)),
        })
    }

    /// `reclaim.lua`: take over entries idle longer than `min_idle`.
    pub(crate) async fn reclaim(
        &self,
        consumer: &str,
        min_idle: Duration,
        count: usize,
        dead_letter_cap: usize,
    ) -> Result<Reclaimed> {
        let mut inv = self.invocation(&scripts::RECLAIM);
        inv.arg(consumer)
            .arg(min_idle.as_millis() as u64)
            .arg(count)
            .arg(dead_letter_cap)
            .arg(rand::random::<u32>());
        let reply = array("reclaim", self.run_grouped("reclaim", &inv).await?)?;
        let n = |i: usize| reply.get(i).map(int).unwrap_or(0).max(0) as u64;
        Ok(Reclaimed {
            retried: n(0),
            dead: n(1),
            dropped: n(2),
            requeued: n(3),
        })
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

    /// A job, light or heavy.
    pub(crate) async fn job(&self, id: &str) -> Result<Option<JobInfo>> {
        Ok(self.jobs(&[id.to_owned()]).await?.pop())
    }

    /// Several jobs in one call, in order; missing ones skipped.
    pub(crate) async fn jobs(&self, ids: &[String]) -> Result<Vec<JobInfo>> {
        Ok(self
            .raw_jobs(ids)
            .await?
            .into_iter()
            .filter_map(|r| {
                JobInfo::from_hash(self.keys.queue(), &r.id, r.fields.into_iter().collect())
            })
            .collect())
    }

    /// Counts per state, in one round trip. Waiting and active jobs come
    /// from each stream's consumer group (lag and pending count), not from
    /// the stream's length: acknowledged entries linger in a stream until
    /// it is trimmed (see `trim_acked` in `lua/common.lua`).
    pub(crate) async fn stats(&self) -> Result<Stats> {
        let mut pipe = redis::pipe();
        for s in self.keys.streams() {
            pipe.cmd("XINFO").arg("GROUPS").arg(&s);
            pipe.cmd("XLEN").arg(&s);
        }
        pipe.cmd("ZCARD").arg(self.keys.delayed());
        pipe.cmd("ZCARD").arg(self.keys.dead());
        pipe.cmd("HGETALL").arg(self.keys.stats());
        pipe.cmd("HGET").arg(self.keys.meta()).arg("paused");
        pipe.cmd("HMGET")
            .arg(self.keys.meta())
            .arg("rate")
            .arg("burst");
        pipe.cmd("HVALS").arg(self.keys.cancelled_entries());
        let reply: Vec<Value> = self.query_pipe_grouped("queue stats", &pipe).await?;
        let levels = usize::from(PRIORITY_LEVELS);
        if reply.len() != levels * 2 + 6 {
            return Err(protocol("queue stats", "wrong number of replies"));
        }
        let mut stats = Stats {
            queue: self.keys.queue().to_owned(),
            ..Stats::default()
        };
        // Entries of jobs cancelled while waiting stay in their stream until
        // a claim reads past them (cancel.lua); they are not waiting.
        let mut cancelled = vec![0u64; levels];
        if let Value::Array(vals) | Value::Set(vals) = &reply[levels * 2 + 5] {
            for v in vals {
                if let Some(n) = usize::try_from(int(v))
                    .ok()
                    .and_then(|l| cancelled.get_mut(l))
                {
                    *n += 1;
                }
            }
        }
        for l in 0..levels {
            let group = group_info(&reply[l * 2], GROUP);
            let pending = group.as_ref().and_then(|g| g.pending).unwrap_or(0);
            let waiting = match group.and_then(|g| g.lag) {
                Some(lag) => lag,
                // Redis without lag (before 7.0, or after an XDEL by hand):
                // the length less the pending entries, which counts
                // acknowledged entries not yet trimmed as waiting.
                None => (int(&reply[l * 2 + 1]).max(0) as u64).saturating_sub(pending),
            };
            stats
                .waiting_by_priority
                .push(waiting.saturating_sub(cancelled[l]));
            stats.active += pending;
        }
        stats.waiting = stats.waiting_by_priority.iter().sum();
        stats.delayed = int(&reply[levels * 2]).max(0) as u64;
        stats.dead = int(&reply[levels * 2 + 1]).max(0) as u64;
        if let Value::Array(kv) | Value::Set(kv) = &reply[levels * 2 + 2] {
            for pair in kv.chunks(2) {
                let v = pair.get(1).map(int).unwrap_or(0).max(0) as u64;
                match text(&pair[0]).as_str() {
                    "enqueued" => stats.enqueued_total = v,
                    "completed" => stats.completed_total = v,
                    "failed" => stats.failed_total = v,
                    "retried" => stats.retried_total = v,
                    "dead" => stats.dead_total = v,
                    _ => {}
                }
            }
        } else if let Value::Map(kv) = &reply[levels * 2 + 2] {
            for (k, v) in kv {
                let v = int(v).max(0) as u64;
                match text(k).as_str() {
                    "enqueued" => stats.enqueued_total = v,
                    "completed" => stats.completed_total = v,
                    "failed" => stats.failed_total = v,
                    "retried" => stats.retried_total = v,
                    "dead" => stats.dead_total = v,
                    _ => {}
                }
            }
        }
        stats.paused = text(&reply[levels * 2 + 3]) == "1";
        if let Value::Array(rb) = &reply[levels * 2 + 4] {
            let per_second = rb.first().map(text).and_then(|t| t.parse::<f64>().ok());
            let burst = rb.get(1).map(text).and_then(|t| t.parse::<u32>().ok());
            if let (Some(per_second), Some(burst)) = (per_second, burst) {
                stats.rate_limit = Some(RateLimit { per_second, burst });
            }
        }
        Ok(stats)
    }

    /// Set or clear the paused flag that `claim.lua` honours.
    /// Completed and failed attempts per minute, for the `minutes` minutes
    /// up to and including the one holding `now_ms`, oldest first.
    pub(crate) async fn throughput(&self, now_ms: u64, minutes: u64) -> Result<Vec<MinuteCount>> {
        let last = now_ms / 60_000;
        let first = last.saturating_sub(minutes.saturating_sub(1));
        let hours: Vec<u64> = (first / 60..=last / 60).collect();
        let mut pipe = redis::pipe();
        for h in &hours {
            pipe.cmd("HGETALL").arg(self.keys.throughput(*h));
        }
        let replies: Vec<HashMap<String, u64>> = self.query_pipe("throughput", &pipe).await?;
        let mut counts: HashMap<u64, (u64, u64)> = HashMap::new();
        for (h, fields) in hours.iter().zip(replies) {
            for (field, n) in fields {
                let (minute, kind) = field.split_at(field.len().saturating_sub(1));
                let Ok(m) = minute.parse::<u64>() else {
                    continue;
                };
                let entry = counts.entry(h * 60 + m).or_default();
                match kind {
                    "c" => entry.0 += n,
                    "f" => entry.1 += n,
                    _ => {}
                }
            }
        }
        Ok((first..=last)
            .map(|m| {
                let (completed, failed) = counts.get(&m).copied().unwrap_or_default();
                MinuteCount {
                    minute_ms: m * 60_000,
                    completed,
                    failed,
                }
            })
            .collect())
    }

    /// Redis server time, ms since the Unix epoch.
    pub(crate) async fn server_time_ms(&self) -> Result<u64> {
        let (secs, micros): (u64, u64) = self.query("server time", &redis::cmd("TIME")).await?;
        Ok(secs * 1000 + micros / 1000)
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

    /// Dead letter ids, newest first.
    pub(crate) async fn dead_ids(&self, offset: usize, limit: usize) -> Result<Vec<String>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let dead = self.keys.dead();
        self.query(
            "list dead letters",
            redis::cmd("ZREVRANGE")
                .arg(&dead)
                .arg(offset)
                .arg(offset + limit - 1),
        )
        .await
    }

    /// Ids of jobs in `state`, `offset` skipped, at most `limit`: waiting
    /// and active in priority order (most urgent first) then stream order,
    /// delayed soonest first, dead newest first. Completed jobs are not
    /// indexed (only counted), so that state lists nothing.
    pub(crate) async fn ids_in_state(
        &self,
        state: JobState,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<String>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        match state {
            JobState::Dead => self.dead_ids(offset, limit).await,
            JobState::Delayed => {
                self.query(
                    "list delayed jobs",
                    redis::cmd("ZRANGE")
                        .arg(self.keys.delayed())
                        .arg(offset)
                        .arg(offset + limit - 1),
                )
                .await
            }
            JobState::Completed => Ok(Vec::new()),
            JobState::Waiting | JobState::Active => {
                self.stream_ids(state == JobState::Active, offset, limit)
                    .await
            }
        }
    }

    /// Job ids of the stream entries the group has delivered and not yet
    /// acknowledged (active: its pending list) or not delivered yet
    /// (waiting: after its last-delivered id), level by level. Acknowledged
    /// entries that linger until the next trim are neither.
    async fn stream_ids(
        &self,
        delivered: bool,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<String>> {
        let mut pipe = redis::pipe();
        for s in self.keys.streams() {
            pipe.cmd("XINFO").arg("GROUPS").arg(&s);
        }
        let groups: Vec<Value> = self.query_pipe_grouped("list jobs", &pipe).await?;
        let mut wanted = offset + limit;
        let mut out = Vec::new();
        for (level, stream) in self.keys.streams().iter().enumerate() {
            if wanted == 0 {
                break;
            }
            let info = groups.get(level).and_then(|g| group_info(g, GROUP));
            // Skip levels the group's counts say are empty on this side:
            // an idle queue is listed in one round trip, not eleven.
            if info.as_ref().is_some_and(|i| !i.may_hold(delivered)) {
                continue;
            }
            let ids = if delivered {
                self.pending_job_ids(stream, wanted).await?
            } else {
                let last = info.map_or_else(|| "0-0".to_owned(), |i| i.last_delivered);
                let entries: redis::streams::StreamRangeReply = self
                    .query(
                        "list jobs",
                        redis::cmd("XRANGE")
                            .arg(stream)
                            .arg(format!("({last}"))
                            .arg("+")
                            .arg("COUNT")
                            .arg(wanted),
                    )
                    .await?;
                entries
                    .ids
                    .iter()
                    .filter_map(|e| e.get::<String>("i"))
                    .collect()
            };
            wanted -= ids.len().min(wanted);
            out.extend(ids);
        }
        Ok(out.into_iter().skip(offset).take(limit).collect())
    }

    /// Job ids of the first `count` entries of a stream's pending list,
    /// oldest first: the pending list gives entry ids, the stream the jobs.
    async fn pending_job_ids(&self, stream: &str, count: usize) -> Result<Vec<String>> {
        let pending: redis::streams::StreamPendingCountReply = self
            .query(
                "list jobs",
                redis::cmd("XPENDING")
                    .arg(stream)
                    .arg(GROUP)
                    .arg("-")
                    .arg("+")
                    .arg(count),
            )
            .await?;
        if pending.ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for p in &pending.ids {
            pipe.cmd("XRANGE").arg(stream).arg(&p.id).arg(&p.id);
        }
        let entries: Vec<redis::streams::StreamRangeReply> =
            self.query_pipe("list jobs", &pipe).await?;
        Ok(entries
            .iter()
            .flat_map(|r| r.ids.iter().filter_map(|e| e.get::<String>("i")))
            .collect())
    }

    /// Dead letters whose error contains `text` (ignoring case), newest
    /// first: the ids of the `offset..offset+limit` matches and how many
    /// match in all. Reads only the error field, 1,000 letters per round trip.
    pub(crate) async fn find_dead(
        &self,
        text: &str,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<String>, u64)> {
        const CHUNK: usize = 1000;
        let needle = text.to_lowercase();
        let mut page = Vec::new();
        let mut matched = 0u64;
        let mut start = 0;
        loop {
            let ids = self.dead_ids(start, CHUNK).await?;
            if ids.is_empty() {
                return Ok((page, matched));
            }
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.cmd("HGET").arg(self.keys.job(id)).arg("err");
            }
            let errors: Vec<Option<String>> = self.query_pipe("search dead letters", &pipe).await?;
            for (id, error) in ids.iter().zip(errors) {
                if error.is_some_and(|e| e.to_lowercase().contains(&needle)) {
                    if matched as usize >= offset && page.len() < limit {
                        page.push(id.clone());
                    }
                    matched += 1;
                }
            }
            if ids.len() < CHUNK {
                return Ok((page, matched));
            }
            start += CHUNK;
        }
    }

    /// Ids of the jobs in the streams (waiting and active), the delayed set
    /// and the dead letters. A stream entry counts when the group has not
    /// delivered it yet or holds it pending; acknowledged entries that
    /// linger until the next trim do not.
    pub(crate) async fn snapshot_ids(&self) -> Result<(Vec<String>, Vec<String>, Vec<String>)> {
        let mut pipe = redis::pipe();
        for s in self.keys.streams() {
            pipe.cmd("XINFO").arg("GROUPS").arg(&s);
            pipe.cmd("XPENDING")
                .arg(&s)
                .arg(GROUP)
                .arg("-")
                .arg("+")
                .arg(i64::MAX);
            pipe.cmd("XRANGE").arg(&s).arg("-").arg("+");
        }
        pipe.cmd("ZRANGE").arg(self.keys.delayed()).arg(0).arg(-1);
        pipe.cmd("ZRANGE").arg(self.keys.dead()).arg(0).arg(-1);
        let mut replies: Vec<Value> = self.query_pipe_grouped("list jobs", &pipe).await?;
        let bad = |e: redis::ParsingError| protocol("list jobs", e.to_string());
        let dead: Vec<String> =
            redis::from_redis_value(replies.pop().unwrap_or(Value::Nil)).map_err(bad)?;
        let delayed: Vec<String> =
            redis::from_redis_value(replies.pop().unwrap_or(Value::Nil)).map_err(bad)?;
        let mut in_streams = Vec::new();
        if replies.len() != usize::from(PRIORITY_LEVELS) * 3 {
            return Err(protocol("list jobs", "wrong number of replies"));
        }
        let mut replies = replies.into_iter();
        while let (Some(groups), Some(pending), Some(range)) =
            (replies.next(), replies.next(), replies.next())
        {
            let last = group_info(&groups, GROUP)
                .map(|g| g.last_delivered)
                .and_then(|id| parse_stream_id(&id))
                .unwrap_or((0, 0));
            let pending: redis::streams::StreamPendingCountReply =
                redis::from_redis_value(pending).map_err(bad)?;
            let pending: HashSet<String> = pending.ids.into_iter().map(|p| p.id).collect();
            let entries: redis::streams::StreamRangeReply =
                redis::from_redis_value(range).map_err(bad)?;
            for entry in entries.ids {
                let undelivered = parse_stream_id(&entry.id).is_some_and(|id| id > last);
                if (undelivered || pending.contains(&entry.id))
                    && let Some(id) = entry.get::<String>("i")
                {
                    in_streams.push(id);
                }
            }
        }
        Ok((in_streams, delayed, dead))
    }

    /// Every field of these jobs, in order, as a job hash holds them (a
    /// light job's are read from its stream entry, see
    /// `lua/job_fields.lua`); missing ones skipped.
    pub(crate) async fn raw_jobs(&self, ids: &[String]) -> Result<Vec<JobRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut inv = self.invocation(&scripts::JOB_FIELDS);
            for id in chunk {
                inv.arg(id);
            }
            let reply = array("read jobs", self.run("read jobs", &inv).await?)?;
            if reply.len() != chunk.len() {
                return Err(protocol("read jobs", "wrong number of replies"));
            }
            for (id, fields) in chunk.iter().zip(reply) {
                let fields = array("read jobs", fields)?;
                if fields.is_empty() {
                    continue;
                }
                let mut pairs = Vec::with_capacity(fields.len() / 2);
                let mut it = fields.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((text(&k), bytes(v)));
                }
                out.push(JobRecord {
                    id: id.clone(),
                    fields: pairs,
                });
            }
        }
        Ok(out)
    }

    /// `import.lua`: returns how many jobs were added.
    pub(crate) async fn import(&self, records: &[JobRecord]) -> Result<u64> {
        let mut inv = self.invocation(&scripts::IMPORT);
        inv.arg(records.len());
        for r in records {
            inv.arg(&r.id).arg(r.fields.len());
            for (k, v) in &r.fields {
                inv.arg(k).arg(v);
            }
        }
        Ok(int(&self.run("import jobs", &inv).await?).max(0) as u64)
    }

    /// `redrive.lua` for these ids, or the oldest batch when `ids` is empty.
    /// `cancel.lua` for one job.
    pub(crate) async fn cancel(&self, id: &str, dead_letter_cap: usize) -> Result<Cancelled> {
        let mut inv = self.invocation(&scripts::CANCEL);
        inv.arg(dead_letter_cap).arg(id);
        let reply = text(&self.run("cancel a job", &inv).await?);
        Ok(match reply.as_str() {
            "cancelled" => Cancelled::Cancelled,
            "requested" => Cancelled::Requested,
            "missing" => Cancelled::Missing,
            other => match JobState::parse(other) {
                Some(state) => Cancelled::Finished(state),
                None => return Err(protocol("cancel a job", "unknown reply")),
            },
        })
    }

    /// The ids of running jobs an operator asked to cancel.
    pub(crate) async fn cancel_requests(&self) -> Result<Vec<String>> {
        self.query(
            "read cancel requests",
            redis::cmd("HKEYS").arg(self.keys.cancel_requests()),
        )
        .await
    }

    pub(crate) async fn redrive(&self, ids: &[String]) -> Result<u64> {
        let mut inv = self.invocation(&scripts::REDRIVE);
        for id in ids {
            inv.arg(id);
        }
        Ok(int(&self.run("re-drive dead letters", &inv).await?).max(0) as u64)
    }

    /// `delete_dead.lua` for these ids, or the oldest batch when `ids` is empty.
    pub(crate) async fn delete_dead(&self, ids: &[String]) -> Result<u64> {
        let mut inv = scripts::DELETE_DEAD.prepare_invoke();
        inv.key(self.keys.meta()).arg(self.keys.base());
        for id in ids {
            inv.arg(id);
        }
        Ok(int(&self.run("delete dead letters", &inv).await?).max(0) as u64)
    }
}
