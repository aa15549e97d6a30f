//! The apalis side of `sluice-bench compare`: runs one workload against the
//! Redis given and prints one JSON line with what it measured.
//!
//! ```text
//! sluice-bench-apalis <workload> --redis redis://127.0.0.1:PORT/ --jobs N
//!      [--concurrency C] [--rate R --seconds S]
//! ```
//!
//! Used the way apalis documents for speed: `push_bulk` for batches, a
//! fetch `batch_size` of at least the concurrency, `concurrency(C)` with
//! `parallelize(tokio::spawn)` so handlers run in parallel, and its retry
//! layer for retries, and a 1 ms `poll_with_interval` for the latency
//! workload (single pushes do not wake an idle worker). Producer and worker share this process, as the
//! Sluice and BullMQ sides do. apalis-redis has no job priorities, so
//! `e2e-priority` is not run for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use apalis::layers::retry::RetryPolicy;
use apalis::prelude::*;
use apalis_redis::{Config, RedisStorage};
use serde::{Deserialize, Serialize};

const BATCH: u64 = 1000;
const SINGLE_PRODUCERS: u64 = 50;
/// One job in this many fails its first attempt in the `retry` workload.
const RETRY_SHARE: u64 = 10;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Noop {
    n: u64,
    /// Enqueue time, ms since the epoch (latency workload).
    t: f64,
}

struct Args {
    workload: String,
    redis: String,
    jobs: u64,
    concurrency: usize,
    rate: u64,
    seconds: u64,
}

fn parse_args() -> Result<Args, String> {
    let mut argv = std::env::args().skip(1);
    let mut args = Args {
        workload: argv.next().ok_or("workload missing")?,
        redis: String::new(),
        jobs: 20_000,
        concurrency: 50,
        rate: 10_000,
        seconds: 5,
    };
    while let Some(flag) = argv.next() {
        let value = argv.next().ok_or(format!("{flag} needs a value"))?;
        let number = || value.parse::<u64>().map_err(|e| format!("{flag}: {e}"));
        match flag.as_str() {
            "--redis" => args.redis = value.clone(),
            "--jobs" => args.jobs = number()?,
            "--concurrency" => args.concurrency = number()? as usize,
            "--rate" => args.rate = number()?,
            "--seconds" => args.seconds = number()?,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.redis.is_empty() {
        return Err("--redis is required".into());
    }
    Ok(args)
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

static DONE: AtomicU64 = AtomicU64::new(0);
/// When the last job finished: the timed part ends there, not at the
/// worker's stop (as for every system of the bench).
static FINISHED_AT: OnceLock<Instant> = OnceLock::new();
static TARGET: AtomicU64 = AtomicU64::new(u64::MAX);
static WAITS_MS: Mutex<Vec<f64>> = Mutex::new(Vec::new());

fn finished_one(wrk: &WorkerContext) {
    if DONE.fetch_add(1, Ordering::SeqCst) + 1 == TARGET.load(Ordering::SeqCst) {
        let _ = FINISHED_AT.set(Instant::now());
        let _ = wrk.stop();
    }
}

async fn noop(_job: Noop, wrk: WorkerContext) -> Result<(), BoxDynError> {
    finished_one(&wrk);
    Ok(())
}

async fn fails_once(job: Noop, wrk: WorkerContext, attempt: Attempt) -> Result<(), BoxDynError> {
    if job.n % RETRY_SHARE == 0 && attempt.current() <= 1 {
        return Err("first attempt fails".into());
    }
    finished_one(&wrk);
    Ok(())
}

async fn record_wait(job: Noop, wrk: WorkerContext) -> Result<(), BoxDynError> {
    let wait = now_ms() - job.t;
    if let Ok(mut waits) = WAITS_MS.lock() {
        waits.push(wait);
    }
    finished_one(&wrk);
    Ok(())
}

type Storage = RedisStorage<Noop, apalis_redis::ConnectionManager>;

async fn storage(args: &Args) -> Result<Storage, BoxDynError> {
    let conn = apalis_redis::connect(args.redis.as_str()).await?;
    let config = Config::default()
        .queue(format!("bench-{}", args.workload))
        .batch_size(args.concurrency.max(10));
    Ok(RedisStorage::new(conn).with_config(config))
}

/// `push_bulk` puts every job in the scheduled set, due now, and apalis's
/// `fetch_next.lua` moves all due jobs to the active list with one
/// `unpack`, which Lua refuses beyond about 8,000 values (`too many results
/// to unpack`). For `drain`, the filled jobs are moved here, untimed, a
/// thousand at a time, as `fetch_next.lua` would have (and its signal set).
async fn make_due_jobs_active(
    conn: &mut apalis_redis::ConnectionManager,
    config: &Config,
) -> Result<(), BoxDynError> {
    let (scheduled, active) = (config.scheduled_jobs_set(), config.active_jobs_list());
    loop {
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(&scheduled)
            .arg(0)
            .arg(BATCH - 1)
            .query_async(conn)
            .await?;
        if ids.is_empty() {
            break;
        }
        redis::pipe()
            .atomic()
            .cmd("RPUSH")
            .arg(&active)
            .arg(&ids)
            .ignore()
            .cmd("ZREM")
            .arg(&scheduled)
            .arg(&ids)
            .ignore()
            .query_async::<()>(conn)
            .await?;
    }
    redis::pipe()
        .cmd("DEL")
        .arg(config.signal_list())
        .ignore()
        .cmd("LPUSH")
        .arg(config.signal_list())
        .arg(1)
        .ignore()
        .query_async::<()>(conn)
        .await?;
    Ok(())
}

async fn enqueue_batches(mut storage: Storage, total: u64) -> Result<(), BoxDynError> {
    let mut start = 0;
    while start < total {
        let jobs = (start..total.min(start + BATCH))
            .map(|n| Noop { n, t: 0.0 })
            .collect();
        storage.push_bulk(jobs).await?;
        start += BATCH;
    }
    Ok(())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

async fn run(args: Args) -> Result<serde_json::Value, BoxDynError> {
    let store = storage(&args).await?;
    let c = args.concurrency;
    let mut result = serde_json::json!({
        "system": "apalis",
        "version": "apalis 1.0.0 + apalis-redis 1.0.0",
        "workload": args.workload,
        "jobs": args.jobs,
    });
    let mut start = Instant::now();
    match args.workload.as_str() {
        "enqueue-batch" => {
            enqueue_batches(store, args.jobs).await?;
            result["how"] = format!("push_bulk of {BATCH}").into();
        }
        "enqueue-single" => {
            let next = std::sync::Arc::new(AtomicU64::new(0));
            let mut producers = tokio::task::JoinSet::new();
            for _ in 0..SINGLE_PRODUCERS {
                let (mut store, next, total) = (store.clone(), next.clone(), args.jobs);
                producers.spawn(async move {
                    loop {
                        let n = next.fetch_add(1, Ordering::SeqCst);
                        if n >= total {
                            return Ok::<_, BoxDynError>(());
                        }
                        store.push(Noop { n, t: 0.0 }).await?;
                    }
                });
            }
            while let Some(r) = producers.join_next().await {
                r??;
            }
            result["how"] = format!("push, {SINGLE_PRODUCERS} producers at once").into();
        }
        "e2e" | "retry" => {
            TARGET.store(args.jobs, Ordering::SeqCst);
            let producer = tokio::spawn(enqueue_batches(store.clone(), args.jobs));
            let builder =
                WorkerBuilder::new(format!("bench-{}", std::process::id())).backend(store);
            if args.workload == "e2e" {
                let worker = builder.concurrency(c).parallelize(tokio::spawn).build(noop);
                worker.run().await?;
                result["how"] =
                    format!("push_bulk of {BATCH}, concurrency {c}, parallelize").into();
            } else {
                let worker = builder
                    .retry(RetryPolicy::retries(1))
                    .concurrency(c)
                    .parallelize(tokio::spawn)
                    .build(fails_once);
                worker.run().await?;
                result["how"] = format!(
                    "1 in {RETRY_SHARE} fails once, RetryPolicy::retries(1), concurrency {c}"
                )
                .into();
            }
            producer.await??;
        }
        "drain" => {
            // Filled first (not timed), then one worker drains it, fetching
            // at least 100 jobs per poll.
            enqueue_batches(store.clone(), args.jobs).await?;
            TARGET.store(args.jobs, Ordering::SeqCst);
            let mut conn = apalis_redis::connect(args.redis.as_str()).await?;
            let config = Config::default()
                .queue(format!("bench-{}", args.workload))
                .batch_size(c.max(100))
                // The issue's peer: locks off, fetch 100.
                .lock_tasks(false);
            make_due_jobs_active(&mut conn, &config).await?;
            let drainer = RedisStorage::<Noop, _>::new(conn).with_config(config);
            start = Instant::now();
            let worker = WorkerBuilder::new(format!("bench-{}", std::process::id()))
                .backend(drainer)
                .concurrency(c)
                .parallelize(tokio::spawn)
                .build(noop);
            worker.run().await?;
            result["how"] = format!(
                "{} jobs pushed first (push_bulk of {BATCH}, moved to the active list untimed), then concurrency {c}, fetch {}, locks off, parallelize",
                args.jobs,
                c.max(100)
            )
            .into();
        }
        "latency" => {
            let total = args.rate * args.seconds;
            TARGET.store(total, Ordering::SeqCst);
            result["jobs"] = total.into();
            let producer_store = store.clone();
            let rate = args.rate;
            let producer = tokio::spawn(async move {
                let begun = Instant::now();
                let mut sent = 0;
                let mut pushes = tokio::task::JoinSet::new();
                let mut tick = tokio::time::interval(Duration::from_millis(1));
                while sent < total {
                    tick.tick().await;
                    let due = ((begun.elapsed().as_secs_f64() * rate as f64) as u64).min(total);
                    while sent < due {
                        let mut store = producer_store.clone();
                        let job = Noop {
                            n: sent,
                            t: now_ms(),
                        };
                        pushes.spawn(async move { store.push(job).await });
                        sent += 1;
                    }
                    while pushes.try_join_next().is_some() {}
                }
                while pushes.join_next().await.is_some() {}
            });
            // A single `push` does not wake an idle apalis-redis worker;
            // its docs pair the backend with `poll_with_interval`. 1 ms is
            // the most favourable setting for this workload.
            let worker = WorkerBuilder::new(format!("bench-{}", std::process::id()))
                .backend(store.poll_with_interval(Duration::from_millis(1)))
                .concurrency(c)
                .parallelize(tokio::spawn)
                .build(record_wait);
            worker.run().await?;
            producer.await?;
            let mut waits = std::mem::take(&mut *WAITS_MS.lock().map_err(|e| e.to_string())?);
            waits.sort_by(f64::total_cmp);
            result["offered_per_s"] = args.rate.into();
            result["p50_ms"] = percentile(&waits, 0.5).into();
            result["p99_ms"] = percentile(&waits, 0.99).into();
            result["p999_ms"] = percentile(&waits, 0.999).into();
            result["how"] = format!(
                "push at {}/s, concurrency {c}; enqueue to handler start",
                args.rate
            )
            .into();
        }
        other => return Err(format!("unknown workload {other}").into()),
    }
    let end = FINISHED_AT.get().copied().unwrap_or_else(Instant::now);
    result["seconds"] = end.duration_since(start).as_secs_f64().into();
    Ok(result)
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sluice-bench-apalis: {e}");
            std::process::exit(2);
        }
    };
    match run(args).await {
        Ok(result) => println!("{result}"),
        Err(e) => {
            eprintln!("sluice-bench-apalis: {e}");
            std::process::exit(1);
        }
    }
}
