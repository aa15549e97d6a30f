//! The audit log: every API call and webhook becomes an event on the
//! `audit` queue ([`AuditSink`], producer side), and [`AuditHandler`]
//! writes them to `audit_logs` hundreds at a time with one statement
//! ([`BULK_WRITE`]). The table has a partition per UTC day, made on demand
//! by the writer ([`add_days`]) and dropped whole by retention.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_engine::alerting::LatencySeries;
use sluice_engine::{
    Breaker, Client, HandlerError, Job, JobOptions, NewJob, Outcome, Queue, TypedBatchHandler,
};
use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::db::{StoreError, guarded_write};
use crate::spill::{Spill, SpillConfig};

/// Most events the sink enqueues in one call, and the handler writes in one
/// statement.
pub const AUDIT_BATCH: usize = 500;

/// Events the sink holds while Redis is slow or down before it drops new
/// ones (counted in `sluice_audit_dropped_total`).
const SINK_CAPACITY: usize = 50_000;

/// Bytes of text the sink holds at most (the events' fields are capped,
/// but 50,000 of the largest would still be hundreds of MB).
const SINK_MAX_BYTES: usize = 16 * 1024 * 1024;

/// How long before its job was made an event may say it happened: older
/// (a spill file replayed after a week-long outage, or a forged date) is
/// written at the job's time.
pub const OLDEST_EVENT: Duration = Duration::from_secs(7 * 86_400);

/// One audited action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When, ms since the Unix epoch.
    pub at_ms: i64,
    /// Who: an API key's name, `user:<id>` for a webhook, `anonymous`, or
    /// `system`.
    pub actor: String,
    /// What: `POST /api/queues/{queue}/jobs`, `webhook`, `ingest.parse_failed`...
    pub action: String,
    /// On what (a path, a queue, a job id).
    pub target: Option<String>,
    /// `ok`, `refused` or `error`.
    pub outcome: String,
    /// The HTTP status, for requests.
    pub status: Option<u16>,
    /// The client's address, for requests.
    pub source_ip: Option<String>,
    /// How long it took, ms.
    pub latency_ms: Option<f32>,
    /// More, as text (a reason, an error).
    pub detail: Option<String>,
}

/// The longest text of an event's fields, characters (the detail's is
/// [`MAX_DETAIL_CHARS`]): what a caller sends must not decide an event's
/// size.
pub const MAX_FIELD_CHARS: usize = 300;

/// The longest detail of an event, characters.
pub const MAX_DETAIL_CHARS: usize = 2_000;

/// `text` cut to `max` characters, without NUL characters (PostgreSQL's
/// text cannot hold them, and one would fail its whole batch).
fn capped(text: &mut String, max: usize) {
    if text.contains('\0') {
        text.retain(|c| c != '\0');
    }
    if let Some((cut, _)) = text.char_indices().nth(max) {
        text.truncate(cut);
    }
}

impl AuditEvent {
    /// About how many bytes the event holds.
    fn weight(&self) -> usize {
        let text = |t: &Option<String>| t.as_ref().map_or(0, String::len);
        std::mem::size_of::<Self>()
            + self.actor.len()
            + self.action.len()
            + self.outcome.len()
            + text(&self.target)
            + text(&self.source_ip)
            + text(&self.detail)
    }

    /// The event with every text field cut to its limit.
    pub fn capped(mut self) -> Self {
        for field in [&mut self.actor, &mut self.action, &mut self.outcome] {
            capped(field, MAX_FIELD_CHARS);
        }
        for field in [&mut self.target, &mut self.source_ip]
            .into_iter()
            .flatten()
        {
            capped(field, MAX_FIELD_CHARS);
        }
        if let Some(detail) = &mut self.detail {
            capped(detail, MAX_DETAIL_CHARS);
        }
        self
    }

    /// An event happening now.
    pub fn now(actor: impl Into<String>, action: impl Into<String>, outcome: &str) -> Self {
        Self {
            at_ms: Utc::now().timestamp_millis(),
            actor: actor.into(),
            action: action.into(),
            target: None,
            outcome: outcome.to_owned(),
            status: None,
            source_ip: None,
            latency_ms: None,
            detail: None,
        }
    }
}

/// Sends audit events to the `audit` queue without ever making the caller
/// wait: events go to a buffer that a task enqueues in batches. While Redis
/// cannot take them, the task appends them to a spill file (see
/// [`crate::spill`]) and replays it in order once Redis is back; only past
/// the file's size bound, or when the buffer itself fills faster than the
/// task drains it, are events dropped (and counted). Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<AuditEvent>,
    dropped: Arc<AtomicU64>,
    /// Bytes of the events in the buffer.
    buffered: Arc<AtomicUsize>,
}

/// How often the task tries Redis again while events are spilled.
const REPLAY_EVERY: Duration = Duration::from_secs(1);

impl AuditSink {
    /// Start the sink's task, enqueueing on `client`'s `audit` queue and
    /// spilling to `spill` while Redis is unreachable.
    pub fn spawn(client: Client, spill: SpillConfig) -> Self {
        let (tx, rx) = mpsc::channel(SINK_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let buffered = Arc::new(AtomicUsize::new(0));
        tokio::spawn(forward(
            client,
            rx,
            Spill::open(spill),
            dropped.clone(),
            buffered.clone(),
        ));
        Self {
            tx,
            dropped,
            buffered,
        }
    }

    /// Record `event`. When the buffer is full (events arrive faster than
    /// they can be enqueued or spilled), the event is dropped and counted
    /// rather than blocking the request.
    pub fn record(&self, event: AuditEvent) {
        let event = event.capped();
        let weight = event.weight();
        let held = self.buffered.fetch_add(weight, Ordering::Relaxed);
        let full = held + weight > SINK_MAX_BYTES || self.tx.try_send(event).is_err();
        if full {
            self.buffered.fetch_sub(weight, Ordering::Relaxed);
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            metrics::counter!("sluice_audit_dropped_total", "reason" => "buffer_full").increment(1);
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "audit buffer full: events dropped");
            }
        }
    }

    /// Events dropped so far (buffer full or spill file full).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The sink's task: enqueue batches while Redis takes them, spill them
/// (in order) while it does not, and replay the spill when it answers.
async fn forward(
    client: Client,
    mut rx: mpsc::Receiver<AuditEvent>,
    mut spill: Spill,
    dropped: Arc<AtomicU64>,
    buffered: Arc<AtomicUsize>,
) {
    let mut queue: Option<Queue> = None;
    let mut batch = Vec::with_capacity(AUDIT_BATCH);
    let mut next_try = tokio::time::Instant::now();
    loop {
        let wake = tokio::time::timeout(REPLAY_EVERY, rx.recv_many(&mut batch, AUDIT_BATCH)).await;
        // Out of the buffer: their bytes no longer count against it.
        let taken: usize = batch.iter().map(AuditEvent::weight).sum();
        buffered.fetch_sub(taken, Ordering::Relaxed);
        // Every sender is gone (the process is stopping) once `recv_many`
        // answers 0: what is spilled gets the replay that is due, then the
        // task ends (a file left behind is replayed at the next start).
        let closed = matches!(wake, Ok(0));
        // Spilled events go first: try Redis again at most every second.
        if !spill.is_empty() && tokio::time::Instant::now() >= next_try {
            next_try = tokio::time::Instant::now() + REPLAY_EVERY;
            if let Some(q) = open(&client, &mut queue).await
                && let Err(e) = spill.replay(q).await
            {
                tracing::warn!(error = %e, "cannot replay spilled audit events yet");
            }
        }
        if closed {
            return;
        }
        if batch.is_empty() {
            continue;
        }
        let events: Vec<AuditEvent> =
            std::mem::replace(&mut batch, Vec::with_capacity(AUDIT_BATCH));
        if !spill.is_empty() {
            let lost = spill.append(events);
            dropped.fetch_add(lost, Ordering::Relaxed);
            continue;
        }
        let jobs: Vec<NewJob> = events
            .iter()
            .filter_map(|e| NewJob::new(e, JobOptions::new()).ok())
            .collect();
        let sent = match open(&client, &mut queue).await {
            Some(q) => q.enqueue_many(jobs).await.map_err(|e| e.to_string()),
            None => Err("the audit queue cannot be opened".to_owned()),
        };
        if let Err(e) = sent {
            tracing::warn!(error = %e, events = events.len(), "cannot enqueue audit events: spilling them to disk");
            let lost = spill.append(events);
            dropped.fetch_add(lost, Ordering::Relaxed);
            next_try = tokio::time::Instant::now() + REPLAY_EVERY;
        }
    }
}

/// The audit queue, opened once Redis answers.
async fn open<'a>(client: &Client, queue: &'a mut Option<Queue>) -> Option<&'a Queue> {
    if queue.is_none() {
        match client.queue(crate::queues::AUDIT).await {
            Ok(q) => *queue = Some(q),
            Err(e) => tracing::warn!(error = %e, "cannot open the audit queue"),
        }
    }
    queue.as_ref()
}

/// Writes audit events in bulk, a batch of jobs per statement. Run it with
/// `Worker::batched(queue, Typed(handler))`.
#[derive(Debug, Clone)]
pub struct AuditHandler {
    pool: PgPool,
    breaker: Option<Breaker>,
    latency: Option<LatencySeries>,
}

impl AuditHandler {
    /// A handler writing to `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            breaker: None,
            latency: None,
        }
    }

    /// Put the writes under the PostgreSQL circuit breaker.
    pub fn with_breaker(mut self, breaker: Breaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// Record each write's round trip in `series` (the fleet's `db`
    /// latency, which the db_slow alert reads).
    pub fn with_latency(mut self, series: LatencySeries) -> Self {
        self.latency = Some(series);
        self
    }
}

impl TypedBatchHandler for AuditHandler {
    type Args = AuditEvent;

    fn max_batch(&self) -> usize {
        AUDIT_BATCH
    }

    async fn handle_batch(
        &self,
        jobs: Vec<(Job, AuditEvent)>,
    ) -> Result<Vec<Outcome>, HandlerError> {
        // The job id is the event's id: a retried batch adds nothing twice.
        // What is written is what this writer can vouch for: every field
        // capped and without NUL, and no time after the job was made (nor
        // out of PostgreSQL's range), nor more than OLDEST_EVENT before it
        // (each day written to is a partition: a forged date must not
        // make them by the hundred).
        let (jobs, events): (Vec<Job>, Vec<(String, AuditEvent)>) = jobs
            .into_iter()
            .map(|(job, event)| {
                let id = job.id.clone();
                let mut event = event.capped();
                let made = i64::try_from(job.created_at_ms).unwrap_or(i64::MAX);
                let storable = DateTime::<Utc>::from_timestamp_millis(event.at_ms)
                    .is_some_and(crate::alert::storable_time);
                let oldest = made.saturating_sub(OLDEST_EVENT.as_millis() as i64);
                if storable && event.at_ms < oldest {
                    // Kept in the row, not lost: a spill replayed after a
                    // long outage carries its own time here.
                    let own = DateTime::<Utc>::from_timestamp_millis(event.at_ms)
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default();
                    let said = event.detail.take().unwrap_or_default();
                    event.detail = Some(format!("{said} [dated {own}]").trim_start().to_owned());
                }
                if event.at_ms > made || event.at_ms < oldest || !storable {
                    event.at_ms = made;
                }
                (job, (id, event))
            })
            .unzip();
        let written = guarded_write(self.breaker.as_ref(), self.latency.as_ref(), || async {
            BULK_WRITE
                .write(&self.pool, &events)
                .await
                .map_err(|e| StoreError::from_db("cannot write audit events", &e))
        })
        .await;
        Ok(match written {
            Ok(Ok(_)) => vec![Outcome::Done; jobs.len()],
            Ok(Err(failed)) => jobs.iter().map(|job| failed.outcome(job)).collect(),
            Err(wait) => vec![Outcome::Snooze(wait); jobs.len()],
        })
    }
}

/// How a batch of events is written: the two candidates for the bulk
/// write, measured against each other by `sluice-bench audit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkWrite {
    /// One `INSERT ... SELECT FROM UNNEST ... ON CONFLICT DO NOTHING`
    /// ([`write_events`]).
    Unnest,
    /// The binary COPY protocol ([`copy_events`]).
    Copy,
}

impl BulkWrite {
    /// Write `events`; either way a retried batch adds nothing twice.
    pub async fn write(self, pool: &PgPool, events: &[(String, AuditEvent)]) -> sqlx::Result<u64> {
        match self {
            Self::Unnest => write_events(pool, events).await,
            Self::Copy => copy_events(pool, events).await,
        }
    }
}

/// The handler's bulk write: the faster of the two in `sluice-bench audit`
/// (bench/README.md, 2026-12-07: binary COPY wrote 300,000 rows straight
/// to PostgreSQL at 205,000 rows/s against 125,000 for the INSERT).
pub const BULK_WRITE: BulkWrite = BulkWrite::Copy;

/// The UTC days of `events`, each once.
fn days_of(events: &[(String, AuditEvent)]) -> Vec<chrono::NaiveDate> {
    let mut days: Vec<chrono::NaiveDate> =
        events.iter().map(|(_, e)| at_of(e).date_naive()).collect();
    days.sort_unstable();
    days.dedup();
    days
}

/// When `e` happened, as written (the epoch for a time out of range).
fn at_of(e: &AuditEvent) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_millis(e.at_ms).unwrap_or_default()
}

/// Whether `e` is PostgreSQL's "no partition of relation found for row"
/// (23514, check_violation): a day the table has no partition for yet.
fn is_missing_day(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23514"))
}

/// Whether `e` is a unique violation (23505): some of the rows exist.
fn is_duplicate(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("23505"))
}

/// Make the day partitions `days` need (those that exist are left alone).
/// Returns how many were made.
pub async fn add_days(pool: &PgPool, days: &[chrono::NaiveDate]) -> sqlx::Result<i32> {
    let (made,): (i32,) = sqlx::query_as("SELECT audit_logs_add_days($1::date[])")
        .bind(days)
        .fetch_one(pool)
        .await?;
    if made > 0 {
        tracing::info!(made, "audit log: day partitions added");
    }
    Ok(made)
}

/// Write `events` (each with its unique event id) in one statement. Ids
/// already written are skipped, so a retried batch adds nothing twice.
/// Returns the rows added.
///
/// The table is partitioned by day and its partitions are made on demand:
/// when a row meets a day without one, the days of the batch are added and
/// the statement runs once more.
pub async fn write_events(pool: &PgPool, events: &[(String, AuditEvent)]) -> sqlx::Result<u64> {
    match insert_events(pool, events).await {
        Err(e) if is_missing_day(&e) => {
            add_days(pool, &days_of(events)).await?;
            insert_events(pool, events).await
        }
        other => other,
    }
}

/// The one `INSERT ... SELECT FROM UNNEST ... ON CONFLICT DO NOTHING` of
/// [`write_events`].
async fn insert_events(pool: &PgPool, events: &[(String, AuditEvent)]) -> sqlx::Result<u64> {
    let n = events.len();
    let mut ids = Vec::with_capacity(n);
    let mut at = Vec::with_capacity(n);
    let mut actor = Vec::with_capacity(n);
    let mut action = Vec::with_capacity(n);
    let mut target = Vec::with_capacity(n);
    let mut outcome = Vec::with_capacity(n);
    let mut status = Vec::with_capacity(n);
    let mut ip = Vec::with_capacity(n);
    let mut latency = Vec::with_capacity(n);
    let mut detail = Vec::with_capacity(n);
    for (id, e) in events {
        ids.push(id.as_str());
        at.push(at_of(e));
        actor.push(e.actor.as_str());
        action.push(e.action.as_str());
        target.push(e.target.as_deref());
        outcome.push(e.outcome.as_str());
        status.push(e.status.map(i32::from));
        ip.push(e.source_ip.as_deref());
        latency.push(e.latency_ms);
        detail.push(e.detail.as_deref());
    }
    let done = sqlx::query(
        "INSERT INTO audit_logs
             (event_id, at, actor, action, target, outcome, status, source_ip, latency_ms, detail)
         SELECT * FROM UNNEST($1::text[], $2::timestamptz[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::int4[], $8::text[], $9::float4[], $10::text[])
         ON CONFLICT (event_id, at) DO NOTHING",
    )
    .bind(ids)
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(target)
    .bind(outcome)
    .bind(status)
    .bind(ip)
    .bind(latency)
    .bind(detail)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}

/// Write `events` with the binary COPY protocol, the other candidate for
/// the bulk write (the bench measures both). COPY has no `ON CONFLICT`:
/// a batch that meets rows already written (a retry) fails as a whole and
/// is written again by [`write_events`], which skips them; so it too adds
/// nothing twice. Returns the rows added.
pub async fn copy_events(pool: &PgPool, events: &[(String, AuditEvent)]) -> sqlx::Result<u64> {
    let data = Arc::new(copy_data(events));
    let mut tried_days = false;
    loop {
        match copy_once(pool, data.clone()).await {
            Err(e) if is_missing_day(&e) && !tried_days => {
                add_days(pool, &days_of(events)).await?;
                tried_days = true;
            }
            Err(e) if is_duplicate(&e) => return write_events(pool, events).await,
            other => return other,
        }
    }
}

/// One COPY, run to its end in a task of its own even when the caller is
/// dropped (a job's timeout, a worker's stop). A COPY abandoned half way
/// would leave its pooled connection in the middle of the protocol, its
/// transaction open and the table's locks held until that connection is
/// next used: retention's DDL, and anything else that locks the table,
/// would wait behind it.
async fn copy_once(pool: &PgPool, data: Arc<Vec<u8>>) -> sqlx::Result<u64> {
    use sqlx::postgres::PgPoolCopyExt;
    let pool = pool.clone();
    let copy = tokio::spawn(async move {
        let mut copy = pool
            .copy_in_raw(
                "COPY audit_logs (event_id, at, actor, action, target, outcome, status, source_ip,
                                  latency_ms, detail) FROM STDIN (FORMAT binary)",
            )
            .await?;
        if let Err(e) = copy.send(data.as_slice()).await {
            let _ = copy.abort("the data could not be sent").await;
            return Err(e);
        }
        copy.finish().await
    });
    copy.await
        .map_err(|e| sqlx::Error::Io(std::io::Error::other(format!("the COPY task: {e}"))))?
}

/// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01.
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// `events` in PostgreSQL's binary COPY format.
fn copy_data(events: &[(String, AuditEvent)]) -> Vec<u8> {
    fn text(out: &mut Vec<u8>, t: Option<&str>) {
        match t {
            Some(t) => {
                out.extend_from_slice(&(t.len() as i32).to_be_bytes());
                out.extend_from_slice(t.as_bytes());
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    fn fixed<const N: usize>(out: &mut Vec<u8>, v: Option<[u8; N]>) {
        match v {
            Some(b) => {
                out.extend_from_slice(&(N as i32).to_be_bytes());
                out.extend_from_slice(&b);
            }
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        }
    }
    let mut out = Vec::with_capacity(32 + events.len() * 256);
    out.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
    out.extend_from_slice(&0i32.to_be_bytes()); // flags
    out.extend_from_slice(&0i32.to_be_bytes()); // header extension
    for (id, e) in events {
        out.extend_from_slice(&10i16.to_be_bytes());
        text(&mut out, Some(id));
        let us = at_of(e).timestamp_micros() - PG_EPOCH_US;
        fixed(&mut out, Some(us.to_be_bytes()));
        text(&mut out, Some(&e.actor));
        text(&mut out, Some(&e.action));
        text(&mut out, e.target.as_deref());
        text(&mut out, Some(&e.outcome));
        fixed(&mut out, e.status.map(|s| i32::from(s).to_be_bytes()));
        text(&mut out, e.source_ip.as_deref());
        fixed(&mut out, e.latency_ms.map(f32::to_be_bytes));
        text(&mut out, e.detail.as_deref());
    }
    out.extend_from_slice(&(-1i16).to_be_bytes());
    out
}

/// Write one event with its own statement: the slow path the bench compares
/// the bulk write against.
pub async fn write_event(pool: &PgPool, id: &str, e: &AuditEvent) -> sqlx::Result<u64> {
    match insert_event(pool, id, e).await {
        Err(err) if is_missing_day(&err) => {
            add_days(pool, &[at_of(e).date_naive()]).await?;
            insert_event(pool, id, e).await
        }
        other => other,
    }
}

async fn insert_event(pool: &PgPool, id: &str, e: &AuditEvent) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "INSERT INTO audit_logs
             (event_id, at, actor, action, target, outcome, status, source_ip, latency_ms, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (event_id, at) DO NOTHING",
    )
    .bind(id)
    .bind(at_of(e))
    .bind(&e.actor)
    .bind(&e.action)
    .bind(&e.target)
    .bind(&e.outcome)
    .bind(e.status.map(i32::from))
    .bind(&e.source_ip)
    .bind(e.latency_ms)
    .bind(&e.detail)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
