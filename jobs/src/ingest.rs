//! Ingestion: a webhook's raw body, queued by the API, parsed and stored as
//! a signal; then a screenshot job at the user's plan priority.
//!
//! The handler is a batch handler: the worker hands it up to
//! [`INGEST_BATCH`] claimed jobs at once, and their signals are written in
//! one `INSERT ... SELECT FROM UNNEST`, keyed by the ingest job's id so a
//! retried batch adds nothing twice. A body that does not parse is buried (dead-lettered) with the
//! reason and an `ingest.parse_failed` audit event; the webhook had already
//! answered 202, since the sender cannot fix it later.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sluice_engine::alerting::LatencySeries;
use sluice_engine::{
    Breaker, HandlerError, Job, JobOptions, NewJob, Outcome, Queue, TypedBatchHandler,
};
use sqlx::PgPool;

use crate::audit::{AuditEvent, AuditSink};
use crate::db::{StoreError, guarded_write};
use crate::message::{self, Message, ParseOptions};
use crate::plan::Plan;
use crate::screenshot::{ScreenshotJob, valid_chart_id};

/// Most signals written in one statement.
pub const INGEST_BATCH: usize = 500;

/// What the webhook enqueues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IngestJob {
    /// The user whose webhook was called.
    pub user_id: i64,
    /// `?chart=` of the call, if given.
    pub chart_id: Option<String>,
    /// The body as received (invalid UTF-8 replaced).
    pub body: String,
    /// When the webhook answered, ms since the Unix epoch.
    pub received_at_ms: i64,
    /// The caller's address.
    pub source_ip: Option<String>,
    /// The user's messages write numbers with a decimal comma (absent in
    /// jobs enqueued before the setting existed).
    #[serde(default)]
    pub decimal_comma: bool,
}

struct Parsed {
    job_id: String,
    user_id: i64,
    chart_id: Option<String>,
    message: Message,
    received_at: DateTime<Utc>,
}

/// Parses messages and stores signals, a batch at a time. Run it with
/// `Worker::batched(queue, Typed(handler))`.
#[derive(Debug, Clone)]
pub struct IngestHandler {
    pool: PgPool,
    screenshots: Queue,
    audit: Option<AuditSink>,
    options: ParseOptions,
    breaker: Option<Breaker>,
    latency: Option<LatencySeries>,
}

impl std::fmt::Debug for Parsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parsed")
            .field("job_id", &self.job_id)
            .finish()
    }
}

impl IngestHandler {
    /// A handler storing signals in `pool` and enqueueing screenshots on
    /// `screenshots`; parse failures are audited on `audit` when given.
    pub fn new(pool: PgPool, screenshots: Queue, audit: Option<AuditSink>) -> Self {
        Self {
            pool,
            screenshots,
            audit,
            options: ParseOptions::default(),
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

    /// Read messages with these options instead of the defaults.
    pub fn with_parse_options(mut self, options: ParseOptions) -> Self {
        self.options = options;
        self
    }

    /// An audit event about `job`'s message, when auditing.
    fn audit(&self, job: &Job, input: &IngestJob, action: &str, outcome: &str, detail: String) {
        if let Some(audit) = &self.audit {
            let mut ev = AuditEvent::now(format!("user:{}", input.user_id), action, outcome);
            ev.target = Some(format!("job:{}", job.id));
            ev.source_ip = input.source_ip.clone();
            ev.detail = Some(detail);
            audit.record(ev);
        }
    }

    /// The message of one job, or why it is buried.
    fn parse(&self, job: &Job, input: IngestJob) -> Result<Parsed, Outcome> {
        // A user's own number format, over the application-wide one.
        let user_options;
        let options = if input.decimal_comma && !self.options.decimal_comma {
            user_options = ParseOptions {
                decimal_comma: true,
                ..self.options.clone()
            };
            &user_options
        } else {
            &self.options
        };
        let message = match message::parse_with(&input.body, options) {
            Ok(a) => a,
            Err(e) => {
                let reason = format!("unparseable message: {e}");
                self.audit(job, &input, "ingest.parse_failed", "error", reason.clone());
                return Err(Outcome::Bury(reason));
            }
        };
        if !message.ignored.is_empty() {
            let detail = message.ignored.join("; ");
            self.audit(job, &input, "ingest.fields_ignored", "ok", detail);
        }
        Ok(Parsed {
            job_id: job.id.clone(),
            user_id: input.user_id,
            // The webhook checked it; a job from elsewhere is checked too.
            chart_id: input.chart_id.filter(|c| valid_chart_id(c)),
            message,
            received_at: DateTime::from_timestamp_millis(input.received_at_ms)
                .filter(|t| message::storable_time(*t))
                .unwrap_or_else(Utc::now),
        })
    }
}

impl TypedBatchHandler for IngestHandler {
    type Args = IngestJob;

    fn max_batch(&self) -> usize {
        INGEST_BATCH
    }

    async fn handle_batch(
        &self,
        jobs: Vec<(Job, IngestJob)>,
    ) -> Result<Vec<Outcome>, HandlerError> {
        // Every position is set: buried messages now, the rest after the write.
        let mut outcomes = vec![Outcome::Done; jobs.len()];
        let mut parsed = Vec::with_capacity(jobs.len());
        let mut written_jobs = Vec::with_capacity(jobs.len());
        for (position, (job, input)) in jobs.into_iter().enumerate() {
            match self.parse(&job, input) {
                Ok(p) => {
                    parsed.push(p);
                    written_jobs.push((position, job));
                }
                Err(buried) => outcomes[position] = buried,
            }
        }
        // Parts of the batch still to write, as ranges of `parsed`: the
        // whole batch first; a part PostgreSQL refuses a value of is split
        // in two, down to the one job whose value it is, which is buried.
        // The others are stored on this try.
        let mut parts = Vec::with_capacity(1);
        parts.push(0..parsed.len());
        while let Some(part) = parts.pop() {
            let written = guarded_write(self.breaker.as_ref(), self.latency.as_ref(), || {
                store(&self.pool, &self.screenshots, &parsed[part.clone()])
            })
            .await;
            let outcome = |job: &Job| match &written {
                Ok(Ok(())) => Outcome::Done,
                Ok(Err(e)) => e.outcome(job),
                Err(wait) => Outcome::Snooze(*wait),
            };
            match &written {
                Ok(Err(StoreError::Refused(reason))) if part.len() == 1 => {
                    let (position, job) = &written_jobs[part.start];
                    tracing::warn!(job = %job.id, %reason, "PostgreSQL refused a message; buried");
                    outcomes[*position] =
                        Outcome::Bury(format!("cannot store this message: {reason}"));
                }
                Ok(Err(StoreError::Refused(_))) => {
                    let middle = part.start + part.len() / 2;
                    parts.push(middle..part.end);
                    parts.push(part.start..middle);
                }
                _ => {
                    for (position, job) in &written_jobs[part] {
                        outcomes[*position] = outcome(job);
                    }
                }
            }
        }
        Ok(outcomes)
    }
}

/// A stored signal and what its screenshot needs.
#[derive(Debug, sqlx::FromRow)]
struct Stored {
    id: i64,
    user_id: i64,
    plan: String,
    chart_id: Option<String>,
    screenshot_status: String,
}

async fn store(pool: &PgPool, screenshots: &Queue, items: &[Parsed]) -> Result<(), StoreError> {
    // The same job twice in one batch (a reclaimed job still running
    // elsewhere) would make the upsert touch a row twice.
    let mut seen = HashSet::new();
    let items: Vec<&Parsed> = items
        .iter()
        .filter(|p| seen.insert(p.job_id.as_str()))
        .collect();
    let n = items.len();
    let mut job_id = Vec::with_capacity(n);
    let mut user_id = Vec::with_capacity(n);
    let mut indicator = Vec::with_capacity(n);
    let mut ticker = Vec::with_capacity(n);
    let mut exchange = Vec::with_capacity(n);
    let mut symbol = Vec::with_capacity(n);
    let mut price: Vec<Option<Decimal>> = Vec::with_capacity(n);
    let mut signal_type = Vec::with_capacity(n);
    let mut chart_id = Vec::with_capacity(n);
    let mut alert_time = Vec::with_capacity(n);
    let mut notes = Vec::with_capacity(n);
    for p in &items {
        job_id.push(p.job_id.as_str());
        user_id.push(p.user_id);
        indicator.push(p.message.indicator.as_deref());
        ticker.push(p.message.ticker.as_str());
        exchange.push(p.message.exchange.as_deref());
        symbol.push(p.message.symbol.as_str());
        price.push(p.message.price);
        signal_type.push(p.message.signal_type.as_str());
        chart_id.push(p.chart_id.as_deref());
        alert_time.push(p.message.alert_time.unwrap_or(p.received_at));
        notes.push(p.message.notes.as_deref());
    }
    // The no-op update on conflict makes RETURNING include rows a failed
    // earlier try already wrote, so their screenshots are still enqueued.
    let stored: Vec<Stored> = sqlx::query_as(
        "WITH input AS (
             SELECT * FROM UNNEST($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::numeric[], $8::text[], $9::text[],
                                  $10::timestamptz[], $11::text[])
                 AS t(job_id, user_id, indicator, ticker, exchange, symbol, price,
                      signal_type, chart_id, alert_time, notes)
         ), ins AS (
             INSERT INTO signals (job_id, user_id, indicator, ticker, exchange, symbol, price,
                                  signal_type, chart_id, alert_time, notes)
             SELECT i.job_id, i.user_id, i.indicator, i.ticker, i.exchange, i.symbol, i.price,
                    i.signal_type, COALESCE(i.chart_id, c.default_chart_id), i.alert_time, i.notes
             FROM input i
             JOIN users u ON u.id = i.user_id
             LEFT JOIN user_config c ON c.user_id = i.user_id
             ON CONFLICT (job_id) DO UPDATE SET job_id = EXCLUDED.job_id
             RETURNING id, user_id, chart_id, screenshot_status
         )
         SELECT ins.id, ins.user_id, u.plan, ins.chart_id, ins.screenshot_status
         FROM ins JOIN users u ON u.id = ins.user_id",
    )
    .bind(job_id)
    .bind(user_id)
    .bind(indicator)
    .bind(ticker)
    .bind(exchange)
    .bind(symbol)
    .bind(price)
    .bind(signal_type)
    .bind(chart_id)
    .bind(alert_time)
    .bind(notes)
    .fetch_all(pool)
    .await
    .map_err(|e| StoreError::from_db("cannot store signals", &e))?;
    if stored.len() < n {
        tracing::warn!(
            dropped = n - stored.len(),
            "signals of deleted users were not stored"
        );
    }
    let mut jobs = Vec::new();
    let mut no_chart = Vec::new();
    for s in stored.iter().filter(|s| s.screenshot_status == "pending") {
        let Some(chart) = &s.chart_id else {
            no_chart.push(s.id);
            continue;
        };
        let plan = s.plan.parse::<Plan>().unwrap_or(Plan::Free);
        let shot = ScreenshotJob {
            signal_id: s.id,
            user_id: s.user_id,
            chart_id: chart.clone(),
        };
        let options = JobOptions::new()
            .priority(plan.screenshot_priority())
            .idempotency_key(format!("shot:{}", s.id));
        jobs.push(NewJob::new(&shot, options).map_err(|e| StoreError::Failed(e.to_string()))?);
    }
    if !no_chart.is_empty() {
        sqlx::query(
            "UPDATE signals SET screenshot_status = 'failed', updated_at = now(),
                 screenshot_error = 'no chart: call the webhook with ?chart=ID or set a default chart'
             WHERE id = ANY($1)",
        )
        .bind(&no_chart)
        .execute(pool)
        .await
        .map_err(|e| StoreError::from_db("cannot mark signals without a chart", &e))?;
    }
    if !jobs.is_empty() {
        screenshots
            .enqueue_many(jobs)
            .await
            .map_err(|e| StoreError::Failed(format!("cannot enqueue screenshots: {e}")))?;
    }
    Ok(())
}
