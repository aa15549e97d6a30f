//! The audit log: every API call and webhook becomes an event on the
//! `audit` queue ([`AuditSink`], producer side), and [`AuditHandler`]
//! writes them to `audit_logs` hundreds at a time with one `INSERT ...
//! SELECT FROM UNNEST` statement.

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
        // out of PostgreSQL's range).
        let (jobs, events): (Vec<Job>, Vec<(String, AuditEvent)>) = jobs
            .into_iter()
            .map(|(job, event)| {
                let id = job.id.clone();
                let mut event = event.capped();
                let made = i64::try_from(job.created_at_ms).unwrap_or(i64::MAX);
                let storable = DateTime::<Utc>::from_timestamp_millis(event.at_ms)
                    .is_some_and(crate::alert::storable_time);
                if event.at_ms > made || !storable {
                    event.at_ms = made;
                }
                (job, (id, event))
            })
            .unzip();
        let written = guarded_write(self.breaker.as_ref(), self.latency.as_ref(), || async {
            write_events(&self.pool, &events)
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

/// Write `events` (each with its unique event id) in one statement. Ids
/// already written are skipped, so a retried batch adds nothing twice.
/// Returns the rows added.
pub async fn write_events(pool: &PgPool, events: &[(String, AuditEvent)]) -> sqlx::Result<u64> {
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
        at.push(DateTime::<Utc>::from_timestamp_millis(e.at_ms).unwrap_or_default());
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
         ON CONFLICT (event_id) DO NOTHING",
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

/// Write one event with its own statement: the slow path the bench compares
/// the bulk write against.
pub async fn write_event(pool: &PgPool, id: &str, e: &AuditEvent) -> sqlx::Result<u64> {
    let done = sqlx::query(
        "INSERT INTO audit_logs
             (event_id, at, actor, action, target, outcome, status, source_ip, latency_ms, detail)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(id)
    .bind(DateTime::<Utc>::from_timestamp_millis(e.at_ms).unwrap_or_default())
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
