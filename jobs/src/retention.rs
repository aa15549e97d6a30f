//! Retention: delete signals (and the screenshot files no remaining signal
//! shows) older than their configured age, in bounded batches so no
//! statement holds locks for long; and drop the audit log's days (its
//! partitions) that ended before its age, whole: no row is deleted one by
//! one, so nothing is left for vacuum.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sluice_engine::{Handler, HandlerError, Job, Outcome};
use sqlx::PgPool;

use crate::error::Result;
use crate::storage::ScreenshotStore;

/// Rows deleted per statement.
const BATCH: i64 = 1_000;

/// How long rows are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// Signals (and their screenshots).
    pub signals: Duration,
    /// Audit logs.
    pub audit_logs: Duration,
    /// Per-day signal aggregates (`signal_daily`).
    pub aggregates: Duration,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        Self {
            signals: Duration::from_secs(7 * 86_400),
            audit_logs: Duration::from_secs(90 * 86_400),
            aggregates: Duration::from_secs(365 * 86_400),
        }
    }
}

/// What one run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Removed {
    /// Signals deleted.
    pub signals: u64,
    /// Screenshot files deleted.
    pub screenshots: u64,
    /// Audit log rows dropped with their days: exact for a day PostgreSQL
    /// never analyzed, its estimate (`reltuples`) otherwise, since counting
    /// a day of rows would cost more than dropping it.
    pub audit_logs: u64,
    /// Days of audit log dropped (whole partitions).
    pub audit_days: u64,
    /// Per-day aggregate rows deleted.
    pub aggregates: u64,
}

fn cutoff(age: Duration) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX)
}

/// Delete what `policy` says is too old.
pub async fn run(
    pool: &PgPool,
    store: &ScreenshotStore,
    policy: RetentionPolicy,
) -> Result<Removed> {
    let mut removed = Removed::default();
    let before = cutoff(policy.signals);
    loop {
        let urls: Vec<(Option<String>,)> = sqlx::query_as(
            "DELETE FROM signals WHERE id IN (
                 SELECT id FROM signals WHERE created_at < $1 ORDER BY created_at LIMIT $2
             ) RETURNING screenshot_url",
        )
        .bind(before)
        .bind(BATCH)
        .fetch_all(pool)
        .await?;
        let deleted = urls.len();
        removed.signals += deleted as u64;
        let urls: HashSet<String> = urls.into_iter().filter_map(|(u,)| u).collect();
        for url in urls {
            // Files are shared by content hash: keep one another signal shows.
            let still: Option<(i32,)> =
                sqlx::query_as("SELECT 1 FROM signals WHERE screenshot_url = $1 LIMIT 1")
                    .bind(&url)
                    .fetch_optional(pool)
                    .await?;
            if still.is_none() && store.remove(&url).await? {
                removed.screenshots += 1;
            }
        }
        if (deleted as i64) < BATCH {
            break;
        }
    }
    let (rows, days) = drop_audit_days(pool, cutoff(policy.audit_logs)).await?;
    removed.audit_logs = rows;
    removed.audit_days = days;
    let before = cutoff(policy.aggregates).date_naive();
    let done = sqlx::query("DELETE FROM signal_daily WHERE day < $1")
        .bind(before)
        .execute(pool)
        .await?;
    removed.aggregates = done.rows_affected();
    Ok(removed)
}

/// Drop the audit log's day partitions that ended at or before `before`'s
/// day (the day holding `before` is kept whole: rows live up to a day
/// longer than their age), and make today's and tomorrow's so the writers
/// do not meet midnight without one. Returns the rows (see
/// [`Removed::audit_logs`]) and the days dropped.
pub async fn drop_audit_days(pool: &PgPool, before: DateTime<Utc>) -> Result<(u64, u64)> {
    let today = Utc::now().date_naive();
    crate::audit::add_days(pool, &[today, today + chrono::Days::new(1)]).await?;
    let old: Vec<(String, f32)> = sqlx::query_as(
        "SELECT c.relname::text, c.reltuples
         FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'audit_logs'::regclass
           AND c.relname ~ '^audit_logs_[0-9]{8}$'
           AND to_date(right(c.relname, 8), 'YYYYMMDD') < $1
         ORDER BY c.relname",
    )
    .bind(before.date_naive())
    .fetch_all(pool)
    .await?;
    let (mut rows, mut days) = (0u64, 0u64);
    for (name, estimate) in old {
        // The name matched ^audit_logs_[0-9]{8}$: no quoting needed.
        let counted = if estimate < 0.0 {
            let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {name}"))
                .fetch_one(pool)
                .await?;
            n.max(0) as u64
        } else {
            estimate as u64
        };
        // Dropping a partition locks the whole table: rather than queue
        // every writer behind a wait for that lock (a backup's long read
        // holds it off), give up after 2 s; the job is tried again later.
        // One statement, so no transaction is left open on the connection
        // if this job is dropped half way.
        sqlx::query(&format!(
            "DO $$ BEGIN PERFORM set_config('lock_timeout', '2s', true); \
             DROP TABLE IF EXISTS {name}; END $$"
        ))
        .execute(pool)
        .await?;
        rows += counted;
        days += 1;
    }
    Ok((rows, days))
}

/// Runs retention when its cron schedule enqueues a job.
#[derive(Debug, Clone)]
pub struct RetentionHandler {
    pool: PgPool,
    store: ScreenshotStore,
    policy: RetentionPolicy,
}

impl RetentionHandler {
    /// A handler deleting from `pool` and `store` by `policy`.
    pub fn new(pool: PgPool, store: ScreenshotStore, policy: RetentionPolicy) -> Self {
        Self {
            pool,
            store,
            policy,
        }
    }
}

impl Handler for RetentionHandler {
    async fn handle(&self, _job: Job) -> Result<Outcome, HandlerError> {
        let removed = run(&self.pool, &self.store, self.policy).await?;
        tracing::info!(
            signals = removed.signals,
            screenshots = removed.screenshots,
            audit_logs = removed.audit_logs,
            audit_days = removed.audit_days,
            aggregates = removed.aggregates,
            "retention removed old rows"
        );
        Ok(Outcome::DoneWith(serde_json::to_string(&removed)?))
    }
}
