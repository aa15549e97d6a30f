//! Bounded memory and Redis outages, each on a private `redis-server` so
//! that memory figures and restarts do not disturb (or get disturbed by)
//! other tests.

mod common;

use std::time::Duration;

use common::{TestRedis, eventually, impatient, spawn, unique_prefix};
use sluice_engine::{Client, HandlerError, Job, JobOptions, NewJob, Outcome, Worker, WorkerConfig};
use sluice_testkit::{Persistence, RedisServer};

async fn used_memory(url: &str) -> i64 {
    let client = redis::Client::open(url).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory")
}

async fn dbsize(url: &str) -> i64 {
    let client = redis::Client::open(url).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    redis::cmd("DBSIZE")
        .query_async(&mut conn)
        .await
        .expect("DBSIZE")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_returns_to_its_starting_level_after_100k_jobs() {
    let redis = RedisServer::start(Persistence::None);
    let url = redis.url();
    let t = TestRedis::at(&url).await;
    let q = t.queue("memory").await;
    // Warm up once so the streams, group, scripts and counters exist.
    q.enqueue(&0u32, JobOptions::new()).await.expect("enqueue");
    let warm = q.claim("warm", 1).await.expect("claim").remove(0);
    q.settle(&warm, Outcome::Done).await.expect("settle");
    let keys_before = dbsize(&url).await;
    let memory_before = used_memory(&url).await;

    let handler = |_job: Job| async move { Ok::<_, HandlerError>(Outcome::Done) };
    let config = WorkerConfig {
        concurrency: 50,
        block_timeout: Duration::from_millis(300),
        ..WorkerConfig::default()
    };
    let worker = spawn(Worker::new(q.clone(), handler).with_config(config));
    let mut peak_keys = 0;
    for chunk in 0..100u32 {
        let batch = (0..1000u32)
            .map(|n| NewJob::new(&(chunk * 1000 + n), JobOptions::new()).expect("enc"))
            .collect();
        q.enqueue_batch(batch).await.expect("enqueue");
        if chunk % 10 == 0 {
            peak_keys = peak_keys.max(dbsize(&url).await);
        }
    }
    let drained = eventually(Duration::from_secs(120), || async {
        q.stats().await.expect("stats").completed_total == 100_001
    })
    .await;
    let report = worker.stop().await;
    assert!(drained, "not drained: {:?}", q.stats().await);
    assert_eq!(report.completed, 100_000);

    let keys_after = dbsize(&url).await;
    let memory_after = used_memory(&url).await;
    eprintln!(
        "keys {keys_before} -> peak {peak_keys} -> {keys_after}; used_memory {memory_before} -> {memory_after} ({:+} bytes)",
        memory_after - memory_before
    );
    assert_eq!(keys_after, keys_before, "keys left behind");
    // Stream nodes, the PEL and job hashes are all freed; allow a small
    // margin for allocator and client-buffer noise.
    assert!(
        memory_after - memory_before < 512 * 1024,
        "used_memory grew by {} bytes",
        memory_after - memory_before
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_fail_clearly_while_redis_is_down_and_workers_resume_when_it_returns() {
    let mut redis = RedisServer::start(Persistence::None);
    let url = redis.url();
    let prefix = unique_prefix();
    let client = Client::connect_with(impatient(&url, &prefix))
        .await
        .expect("connect");
    let q = client.queue("outage").await.expect("queue");
    let handler = |_job: Job| async move { Ok::<_, HandlerError>(Outcome::Done) };
    let config = WorkerConfig {
        block_timeout: Duration::from_millis(200),
        ..WorkerConfig::default()
    };
    let worker = spawn(Worker::new(q.clone(), handler).with_config(config));
    q.enqueue(&1u32, JobOptions::new()).await.expect("enqueue");
    assert!(
        eventually(Duration::from_secs(5), || async {
            q.stats().await.expect("s").completed_total == 1
        })
        .await
    );

    redis.kill();
    let err = q
        .enqueue(&2u32, JobOptions::new())
        .await
        .expect_err("redis is down");
    assert!(err.is_unavailable(), "{err}");
    assert!(
        err.to_string().contains("redis unavailable during enqueue"),
        "{err}"
    );
    // The worker keeps running (backing off) through the outage.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!worker.is_finished(), "worker gave up while redis was down");

    // Redis comes back empty (no persistence): the worker recreates the
    // consumer group by itself and processes new jobs.
    redis.restart();
    let resumed = eventually(Duration::from_secs(20), || async {
        if q.enqueue(&3u32, JobOptions::new()).await.is_err() {
            return false;
        }
        eventually(Duration::from_secs(3), || async {
            q.stats()
                .await
                .map(|s| s.completed_total >= 1 && s.waiting == 0)
                .unwrap_or(false)
        })
        .await
    })
    .await;
    assert!(resumed, "worker did not resume: {:?}", q.stats().await);
    let report = worker.stop().await;
    assert!(report.completed >= 2, "{report:?}");
}

#[tokio::test]
async fn connecting_to_a_redis_that_is_not_there_fails_with_a_clear_error() {
    let mut redis = RedisServer::start(Persistence::None);
    let url = redis.url();
    redis.kill();
    let err = Client::connect_with(impatient(&url, "sluice"))
        .await
        .expect_err("no redis");
    assert!(err.is_unavailable(), "{err}");
    assert!(err.to_string().contains("connect"), "{err}");
}
