//! `audit`: how many audit events per second go from enqueue to rows in
//! PostgreSQL through the audit queue and its handler (one bulk write per
//! batch of up to 500), against the same batches written straight to
//! PostgreSQL by both candidates for the bulk write (`INSERT ... SELECT
//! FROM UNNEST` and binary COPY), and the same rows written one `INSERT`
//! per row.
//!
//! Runs in-process on the engine and jobs crates: a private Redis, a schema
//! of its own on the given PostgreSQL (dropped afterwards), producers that
//! enqueue in batches of 500 (what the API's audit sink does) while two
//! workers drain the queue.

use std::time::{Duration, Instant};

use anyhow::Context;
use sluice_engine::{Client, ClientConfig, JobOptions, NewJob, Typed, Worker, WorkerConfig};
use sluice_trading::audit::{
    AUDIT_BATCH, AuditEvent, AuditHandler, BULK_WRITE, BulkWrite, write_event,
};
use sluice_trading::db::{DbConfig, migrate};
use sqlx::PgPool;

const PRODUCERS: u64 = 4;
const WORKERS: usize = 2;
/// Connections of the one-row-at-a-time writers (one task each).
const SINGLE_WRITERS: u64 = 8;

fn event(i: u64) -> AuditEvent {
    let mut e = AuditEvent::now("key:bench", "POST /api/queues/{queue}/jobs", "ok");
    e.target = Some(format!("/api/queues/orders/jobs/{i}"));
    e.status = Some(201);
    e.source_ip = Some("127.0.0.1".into());
    e.latency_ms = Some(0.8);
    e
}

async fn count(pool: &PgPool) -> anyhow::Result<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM audit_logs")
        .fetch_one(pool)
        .await?;
    Ok(n)
}

pub async fn run(events: u64, single_rows: u64, database_url: &str) -> anyhow::Result<()> {
    let (_redis, redis_url) = crate::start_redis()?;
    let schema = format!("bench_audit_{}", std::process::id());
    let db = DbConfig {
        schema: Some(schema.clone()),
        max_connections: 10,
        ..DbConfig::new(database_url)
    };
    migrate(&db).await.context("migrate the bench schema")?;
    let pool = db.pool()?;
    let result = measure(&redis_url, &pool, events, single_rows).await;
    pool.close().await;
    let admin = DbConfig::new(database_url).pool()?;
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&admin)
        .await?;
    result
}

async fn measure(
    redis_url: &str,
    pool: &PgPool,
    events: u64,
    single_rows: u64,
) -> anyhow::Result<()> {
    let client = Client::connect_with(ClientConfig::new(redis_url).prefix("bench")).await?;
    let queue = client.queue(sluice_trading::queues::AUDIT).await?;
    let handler = AuditHandler::new(pool.clone());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..WORKERS {
        let worker =
            Worker::batched(queue.clone(), Typed(handler.clone())).with_config(WorkerConfig {
                concurrency: AUDIT_BATCH,
                batch_size: AUDIT_BATCH,
                ..WorkerConfig::default()
            });
        let mut stopped = stopped.clone();
        workers.spawn(worker.run(sluice_engine::Shutdown::when(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })));
    }

    let start = Instant::now();
    let mut producers = tokio::task::JoinSet::new();
    for p in 0..PRODUCERS {
        let queue = queue.clone();
        producers.spawn(async move {
            let mut i = p;
            while i < events {
                let mut batch = Vec::with_capacity(AUDIT_BATCH);
                while batch.len() < AUDIT_BATCH && i < events {
                    batch.push(NewJob::new(&event(i), JobOptions::new())?);
                    i += PRODUCERS;
                }
                queue.enqueue_many(batch).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = producers.join_next().await {
        r??;
    }
    let enqueued = start.elapsed();
    // Done is watched in Redis: a job completes only after its batch's rows
    // are committed. Counting the rows instead (`count(*)` every few ms, a
    // scan of the growing table) took PostgreSQL's time from the writes
    // being measured.
    let mut last_report = Instant::now();
    loop {
        let done = queue.stats().await?.completed_total;
        if done >= events {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            eprintln!("  {done} of {events} events written…");
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let written = start.elapsed();
    anyhow::ensure!(count(pool).await? as u64 == events, "rows missing");
    // Phase marks, at once, for tools that split the run's CPU by phase.
    eprintln!("phase end-to-end done");
    let _ = stop.send(true);
    while let Some(r) = workers.join_next().await {
        r??;
    }
    let bulk_rate = events as f64 / written.as_secs_f64();

    // The ceiling: the same bulk statement, the same batches, from as many
    // connections as there are workers, with no queue in between; then the
    // other candidate for the bulk write, the same way.
    let other = match BULK_WRITE {
        BulkWrite::Unnest => BulkWrite::Copy,
        BulkWrite::Copy => BulkWrite::Unnest,
    };
    let direct = straight(pool, events, BULK_WRITE).await?;
    eprintln!("phase straight-to-postgres done");
    let direct_rate = events as f64 / direct.as_secs_f64();
    let other_time = straight(pool, events, other).await?;
    let other_rate = events as f64 / other_time.as_secs_f64();

    // The comparison: one INSERT per row, several connections at once.
    sqlx::query("TRUNCATE audit_logs").execute(pool).await?;
    let start = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..SINGLE_WRITERS {
        let pool = pool.clone();
        writers.spawn(async move {
            let mut i = w;
            while i < single_rows {
                write_event(&pool, &format!("single-{i}"), &event(i)).await?;
                i += SINGLE_WRITERS;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = writers.join_next().await {
        r??;
    }
    let single = start.elapsed();
    anyhow::ensure!(count(pool).await? as u64 == single_rows, "rows missing");
    let single_rate = single_rows as f64 / single.as_secs_f64();

    println!(
        "scenario audit: {events} events enqueued in batches of {AUDIT_BATCH} by {PRODUCERS} producers, drained by {WORKERS} workers into PostgreSQL"
    );
    println!(
        "  enqueue done after {:.2} s; all rows in PostgreSQL after {:.2} s: {bulk_rate:.0} events/s end to end",
        enqueued.as_secs_f64(),
        written.as_secs_f64()
    );
    println!(
        "  the same bulk statements straight to PostgreSQL ({WORKERS} connections, no queue): {events} rows in {:.2} s: {direct_rate:.0} rows/s; end to end is {:.0} % of it",
        direct.as_secs_f64(),
        100.0 * bulk_rate / direct_rate
    );
    println!(
        "  the other bulk write, {other:?}, straight to PostgreSQL: {events} rows in {:.2} s: {other_rate:.0} rows/s (the handler writes with {BULK_WRITE:?})",
        other_time.as_secs_f64()
    );
    println!(
        "  one INSERT per row ({SINGLE_WRITERS} connections): {single_rows} rows in {:.2} s: {single_rate:.0} rows/s",
        single.as_secs_f64()
    );
    println!(
        "  bulk path / one INSERT per row: {:.1}x",
        bulk_rate / single_rate
    );
    Ok(())
}

/// Write `events` rows into an emptied table in batches of [`AUDIT_BATCH`]
/// by `how`, from [`WORKERS`] connections, and how long it took.
async fn straight(pool: &PgPool, events: u64, how: BulkWrite) -> anyhow::Result<Duration> {
    sqlx::query("TRUNCATE audit_logs").execute(pool).await?;
    let start = Instant::now();
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..WORKERS as u64 {
        let pool = pool.clone();
        writers.spawn(async move {
            let mut first = w * AUDIT_BATCH as u64;
            while first < events {
                let batch: Vec<(String, AuditEvent)> = (first
                    ..(first + AUDIT_BATCH as u64).min(events))
                    .map(|i| (format!("direct-{i:012}"), event(i)))
                    .collect();
                how.write(&pool, &batch).await?;
                first += WORKERS as u64 * AUDIT_BATCH as u64;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = writers.join_next().await {
        r??;
    }
    let took = start.elapsed();
    anyhow::ensure!(count(pool).await? as u64 == events, "rows missing");
    Ok(took)
}
