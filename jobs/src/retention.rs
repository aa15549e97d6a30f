//! Retention: delete signals (and the screenshot files no remaining signal
//! shows) and audit logs older than their configured age, in bounded
//! batches so no statement holds locks for long.

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
    /// Audit log rows deleted.
    pub audit_logs: u64,
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
    let before = cutoff(policy.audit_logs);
    loop {
        let done = sqlx::query(
            "DELETE FROM audit_logs WHERE id IN (
                 SELECT id FROM audit_logs WHERE at < $1 ORDER BY at LIMIT $2
             )",
        )
        .bind(before)
        .bind(BATCH * 5)
        .execute(pool)
        .await?;
        removed.audit_logs += done.rows_affected();
        if done.rows_affected() < (BATCH * 5) as u64 {
            break;
        }
    }
    let before = cutoff(policy.aggregates).date_naive();
    let done = sqlx::query("DELETE FROM signal_daily WHERE day < $1")
        .bind(before)
        .execute(pool)
        .await?;
    removed.aggregates = done.rows_affected();
    Ok(removed)
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
            aggregates = removed.aggregates,
            "retention removed old rows"
        );
        Ok(Outcome::DoneWith(serde_json::to_string(&removed)?))
    }
}
