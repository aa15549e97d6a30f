//! The audit log: every API call and webhook becomes an event on the
//! `audit` queue ([`AuditSink`], producer side), and [`AuditHandler`]
//! writes them to `audit_logs` hundreds at a time with one `INSERT ...
//! SELECT FROM UNNEST` statement.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sluice_engine::{
    Client, HandlerError, Job, JobOptions, NewJob, Outcome, Queue, TypedBatchHandler,
};
use sqlx::PgPool;
use tokio::sync::mpsc;

use crate::db::StoreError;

/// Most events the sink enqueues in one call, and the handler writes in one
/// statement.
pub const AUDIT_BATCH: usize = 500;

/// Events the sink holds while Redis is slow or down before it drops new
/// ones (counted in `sluice_audit_dropped_total`).
const SINK_CAPACITY: usize = 50_000;

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

impl AuditEvent {
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
/// wait: events go to a buffer that a task enqueues in batches. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<AuditEvent>,
    dropped: Arc<AtomicU64>,
}

impl AuditSink {
    /// Start the sink's task, which opens the `audit` queue on `client`
    /// (retrying while Redis is down) and enqueues what is recorded.
    pub fn spawn(client: Client) -> Self {
        let (tx, rx) = mpsc::channel(SINK_CAPACITY);
        tokio::spawn(async move {
            let mut wait = Duration::from_millis(100);
            let queue = loop {
                match client.queue(crate::queues::AUDIT).await {
                    Ok(q) => break q,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?wait, "cannot open the audit queue");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                }
            };
            forward(queue, rx).await;
        });
        Self {
            tx,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Record `event`. When the buffer is full (Redis down for long), the
    /// event is dropped and counted rather than blocking the request.
    pub fn record(&self, event: AuditEvent) {
        if self.tx.try_send(event).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            metrics::counter!("sluice_audit_dropped_total").increment(1);
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "audit buffer full: events dropped");
            }
        }
    }

    /// Events dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn forward(queue: Queue, mut rx: mpsc::Receiver<AuditEvent>) {
    let mut batch = Vec::with_capacity(AUDIT_BATCH);
    loop {
        if rx.recv_many(&mut batch, AUDIT_BATCH).await == 0 {
            return;
        }
        let jobs: Vec<NewJob> = batch
            .drain(..)
            .filter_map(|e| NewJob::new(&e, JobOptions::new()).ok())
            .collect();
        let mut wait = Duration::from_millis(100);
        while let Err(e) = queue.enqueue_batch(jobs.clone()).await {
            tracing::warn!(error = %e, retry_in = ?wait, events = jobs.len(), "cannot enqueue audit events");
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(5));
        }
    }
}

/// Writes audit events in bulk, a batch of jobs per statement. Run it with
/// `Worker::batched(queue, Typed(handler))`.
#[derive(Debug, Clone)]
pub struct AuditHandler {
    pool: PgPool,
}

impl AuditHandler {
    /// A handler writing to `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
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
        let (jobs, events): (Vec<Job>, Vec<(String, AuditEvent)>) = jobs
            .into_iter()
            .map(|(job, event)| {
                let id = job.id.clone();
                (job, (id, event))
            })
            .unzip();
        Ok(match write_events(&self.pool, &events).await {
            Ok(_) => vec![Outcome::Done; jobs.len()],
            Err(e) => {
                let failed = StoreError::from_db("cannot write audit events", &e);
                jobs.iter().map(|job| failed.outcome(job)).collect()
            }
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
