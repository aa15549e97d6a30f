//! PostgreSQL: the connection pools and the numbered migrations in
//! `jobs/migrations`, embedded in the binary.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use crate::error::{Error, Result};

/// The migrations, embedded at build time (no database needed to build).
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Where the application's tables live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbConfig {
    /// `postgres://` URL.
    pub url: String,
    /// Schema to use instead of `public` (tests use one each).
    pub schema: Option<String>,
    /// Most connections in the pool.
    pub max_connections: u32,
}

impl DbConfig {
    /// A config for `url` with the default schema and pool size.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: None,
            max_connections: 10,
        }
    }

    fn options(&self) -> Result<PgConnectOptions> {
        let mut options: PgConnectOptions = self
            .url
            .parse()
            .map_err(|e| Error::Invalid(format!("database URL {:?}: {e}", redact(&self.url))))?;
        if let Some(schema) = &self.schema {
            if schema.is_empty()
                || !schema
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(Error::Invalid(format!(
                    "schema {schema:?}: use letters, digits and _"
                )));
            }
            options = options.options([("search_path", schema.as_str())]);
        }
        Ok(options.application_name("sluice"))
    }

    /// A pool that connects on first use, so a process starts (and reports
    /// itself not ready) while PostgreSQL is down.
    pub fn pool(&self) -> Result<PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(self.options()?))
    }

    /// A pool whose commits do not wait for the WAL flush. Only for counters
    /// where losing the last fraction of a second at a PostgreSQL crash is
    /// acceptable (the webhook quota count), never for rows a job settles.
    pub fn fast_commit_pool(&self) -> Result<PgPool> {
        Ok(PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy_with(self.options()?.options([("synchronous_commit", "off")])))
    }
}

/// Create the schema when set and missing, then apply the migrations not
/// yet applied. Safe to run from several processes at once (sqlx takes an
/// advisory lock).
pub async fn migrate(config: &DbConfig) -> Result<()> {
    if let Some(schema) = &config.schema {
        let pool = DbConfig {
            schema: None,
            ..config.clone()
        }
        .pool()?;
        // The name was checked in `options` (letters, digits, _).
        config.options()?;
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .execute(&pool)
            .await?;
        pool.close().await;
    }
    let pool = config.pool()?;
    MIGRATOR.run(&pool).await?;
    pool.close().await;
    Ok(())
}

/// Whether PostgreSQL answers.
pub async fn ping(pool: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}

/// How many of this binary's migrations the database has not applied (all
/// of them when it has none yet); an error when PostgreSQL cannot tell.
pub async fn pending_migrations(pool: &PgPool) -> Result<usize> {
    let applied: Vec<(i64,)> =
        match sqlx::query_as("SELECT version FROM _sqlx_migrations WHERE success")
            .fetch_all(pool)
            .await
        {
            Ok(rows) => rows,
            // 42P01, undefined_table: never migrated.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P01") => Vec::new(),
            Err(e) => return Err(e.into()),
        };
    let applied: std::collections::HashSet<i64> = applied.into_iter().map(|(v,)| v).collect();
    Ok(MIGRATOR
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .count())
}

/// Whether `e` is PostgreSQL being down or unreachable (worth waiting
/// for), as opposed to a statement it refused.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_) => true,
        // 08: connection exceptions; 57P: the server is shutting down or
        // starting up.
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("08") || c.starts_with("57P")),
        _ => false,
    }
}

/// Whether `e` is PostgreSQL refusing a value of the statement: SQLSTATE
/// class 22 (data exception: a NUL byte, a number out of range, a date
/// before 4713 BC) or 23 (integrity constraint violation).
pub fn is_data_error(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d)
        if d.code().is_some_and(|c| c.starts_with("22") || c.starts_with("23")))
}

/// Why a bulk write failed, as every job of its batch sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// PostgreSQL is down: the jobs wait for it without spending attempts.
    Unavailable(String),
    /// Anything else: a failed attempt, retried with backoff.
    Failed(String),
    /// PostgreSQL refused a value of the batch (SQLSTATE class 22, data
    /// exception, or 23, integrity constraint violation): the same batch
    /// will fail the same way, so a writer splits it to find the job
    /// whose value it is. As one job's outcome, a retry.
    Refused(String),
}

impl StoreError {
    /// Classify a database error.
    pub fn from_db(context: &str, e: &sqlx::Error) -> Self {
        let message = format!("{context}: {e}");
        if is_unavailable(e) {
            Self::Unavailable(message)
        } else if is_data_error(e) {
            Self::Refused(message)
        } else {
            Self::Failed(message)
        }
    }

    /// What a job of the failed batch records.
    pub fn outcome(&self, job: &sluice_engine::Job) -> sluice_engine::Outcome {
        match self {
            Self::Unavailable(_) => wait_for_database(job),
            Self::Failed(m) | Self::Refused(m) => sluice_engine::Outcome::Retry {
                reason: m.clone(),
                after: None,
            },
        }
    }
}

/// The name of the circuit breaker in front of PostgreSQL, shared by the
/// ingest and audit writers of every worker.
pub const POSTGRES_BREAKER: &str = "postgres";

/// How long a write may hold a probe slot of the PostgreSQL breaker.
const WRITE_LEASE: std::time::Duration = std::time::Duration::from_secs(60);

/// Run a bulk write under the PostgreSQL breaker, when there is one:
/// `Err(wait)` without writing while it is open. PostgreSQL being
/// unreachable counts against it; a statement it refused does not. Each
/// write's round trip is a sample of `latency` when given (the fleet's
/// `db` series, which the db_slow alert reads).
pub async fn guarded_write<T, Fut>(
    breaker: Option<&sluice_engine::Breaker>,
    latency: Option<&sluice_engine::alerting::LatencySeries>,
    write: impl FnOnce() -> Fut,
) -> Result<Result<T, StoreError>, std::time::Duration>
where
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    // Each write's round trip feeds the fleet-wide series of the db_slow
    // alert.
    let timed = || async {
        let started = std::time::Instant::now();
        let result = write().await;
        if let Some(series) = latency {
            series.record(started.elapsed());
        }
        result
    };
    match breaker {
        None => Ok(timed().await),
        Some(b) => {
            b.call(WRITE_LEASE, timed, |r| {
                !matches!(r, Err(StoreError::Unavailable(_)))
            })
            .await
        }
    }
}

/// What a handler answers when PostgreSQL is down: run the job again later
/// without spending an attempt, waiting longer the longer the job has
/// waited (1 s to 30 s), so an outage of any length loses nothing.
pub fn wait_for_database(job: &sluice_engine::Job) -> sluice_engine::Outcome {
    let now = chrono::Utc::now().timestamp_millis().max(0) as u64;
    let waited = std::time::Duration::from_millis(now.saturating_sub(job.created_at_ms));
    let delay = (waited / 4).clamp(
        std::time::Duration::from_secs(1),
        std::time::Duration::from_secs(30),
    );
    tracing::warn!(job = %job.id, queue = %job.queue, retry_in = ?delay, "PostgreSQL unavailable; job postponed");
    sluice_engine::Outcome::Snooze(delay)
}

/// The URL without its password (and query values), for messages.
pub fn redact(url: &str) -> String {
    sluice_engine::redact_url(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn odd_schema_names_are_refused() {
        let mut c = DbConfig::new("postgres://127.0.0.1/test");
        c.schema = Some("x\"; drop table users; --".into());
        assert!(c.pool().is_err());
    }
}
