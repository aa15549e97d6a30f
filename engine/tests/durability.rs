//! Bounded memory and Redis outages, each on a private `redis-server` so
//! that memory figures and restarts do not disturb (or get disturbed by)
//! other tests.

use crate::common;

use std::time::Duration;

use common::{TestRedis, eventually, impatient, spawn, unique_prefix};
use sluice_engine::{
    Client, HandlerError, Job, JobOptions, JobState, NewJob, Outcome, Worker, WorkerConfig,
};
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
    q.enqueue_value(&0u32, JobOptions::new())
        .await
        .expect("enqueue");
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
        q.enqueue_many(batch).await.expect("enqueue");
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
    q.enqueue_value(&1u32, JobOptions::new())
        .await
        .expect("enqueue");
    assert!(
        eventually(Duration::from_secs(5), || async {
            q.stats().await.expect("s").completed_total == 1
        })
        .await
    );

    redis.kill();
    let err = q
        .enqueue_value(&2u32, JobOptions::new())
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
        if q.enqueue_value(&3u32, JobOptions::new()).await.is_err() {
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

/// Issue 39, defect 5: a Redis at `maxmemory` under `noeviction` refuses
/// new jobs whole, with [`sluice_engine::Error::Full`], and stays near its
/// limit; workers still drain it (claims and outcomes run while it is
/// full), and once they have, new jobs are taken again. Nothing accepted
/// is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_refuses_new_jobs_and_workers_still_drain_it() {
    const MAX_MEMORY: i64 = 8 * 1024 * 1024;
    let redis = RedisServer::start_with(
        Persistence::None,
        &["--maxmemory", "8mb", "--maxmemory-policy", "noeviction"],
    );
    let url = redis.url();
    let prefix = unique_prefix();
    let client = Client::connect_with(impatient(&url, &prefix))
        .await
        .expect("connect");
    let q = client.queue("full").await.expect("queue");
    let payload = "x".repeat(8 * 1024);
    let mut accepted = 0u64;
    let mut refusal = None;
    // 40 MB offered against 8 MB: a Redis that never refuses fails here.
    for n in 0..5_000u32 {
        let options = if n % 4 == 0 {
            // Heavy (delayed) and light jobs alike.
            JobOptions::new().delay(Duration::from_millis(1))
        } else {
            JobOptions::new()
        };
        match q.enqueue_value(&payload, options).await {
            Ok(_) => accepted += 1,
            Err(e) => {
                refusal = Some(e);
                break;
            }
        }
    }
    let err = refusal.unwrap_or_else(|| panic!("all {accepted} jobs of 8 KiB were accepted"));
    assert!(err.is_full(), "{err}");
    assert!(
        err.to_string().contains("out of memory"),
        "a clear message: {err}"
    );
    let used = used_memory(&url).await;
    assert!(
        used < MAX_MEMORY + MAX_MEMORY / 4,
        "used {used} bytes against a limit of {MAX_MEMORY}"
    );
    // A batch is refused whole.
    let batch: Vec<NewJob> = (0..10)
        .map(|_| NewJob::new(&payload, JobOptions::new()).expect("job"))
        .collect();
    let err = q.enqueue_many(batch).await.expect_err("full");
    assert!(err.is_full(), "{err}");
    assert_eq!(q.stats().await.expect("stats").enqueued_total, accepted);

    // Claims run while Redis is full.
    q.promote_due(1000).await.expect("promote while full");
    let held = q.claim("drainer", 1).await.expect("claim while full");
    assert_eq!(held.len(), 1);
    // A worker drains the rest (its claims of a backlog go by direct reads,
    // transactions that a full Redis refuses whole): every accepted job
    // completes.
    let handler = |_job: Job| async move { Ok::<_, HandlerError>(Outcome::Done) };
    let worker = spawn(Worker::new(q.clone(), handler).with_config(WorkerConfig {
        concurrency: 10,
        block_timeout: Duration::from_millis(100),
        ..WorkerConfig::default()
    }));
    let drained = eventually(Duration::from_secs(20), || async {
        q.stats()
            .await
            .map(|s| s.completed_total + 1 == accepted)
            .unwrap_or(false)
    })
    .await;
    worker.stop().await;
    for settled in q
        .settle_many(held.iter().map(|j| (j, Outcome::Done)).collect())
        .await
        .expect("settle")
    {
        assert_eq!(settled, sluice_engine::Settled::Done);
    }
    let s = q.stats().await.expect("stats");
    assert!(drained, "the worker did not drain a full Redis: {s:?}");
    assert_eq!((s.completed_total, s.dead_total), (accepted, 0), "{s:?}");
    // Room again: new jobs are taken.
    q.enqueue_value(&payload, JobOptions::new())
        .await
        .expect("enqueue once drained");
}

/// Issue 39, defect 2: Redis frozen for two visibility timeouts while
/// long jobs run (`max_attempts = 1`), and the first reclaim after it comes
/// before the owner's keep-alive can (here: from a worker started as Redis
/// came back, while the owner's link takes half a second longer). Nothing
/// died, so nothing may be taken from the live worker: every job runs once
/// and completes, and none is a dead letter. (Idle times in the pending
/// list are absolute, so the outage counts as silence unless the reclaim
/// knows better.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_longer_than_the_visibility_timeout_takes_no_running_job() {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    let redis = RedisServer::start(Persistence::None);
    let url = redis.url();
    let owner_link = sluice_testkit::FaultProxy::start(&url)
        .await
        .expect("proxy");
    let prefix = unique_prefix();
    let config = sluice_engine::QueueConfig {
        visibility_timeout: Duration::from_millis(1500),
        max_attempts: 1,
        ..sluice_engine::QueueConfig::default()
    };
    let owner_client = Client::connect_with(impatient(&owner_link.url(), &prefix))
        .await
        .expect("connect");
    let q = owner_client
        .queue_with("frozen", config.clone())
        .await
        .expect("queue");
    let starts: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let seen = starts.clone();
    let handler = move |job: Job| {
        let seen = seen.clone();
        async move {
            *seen
                .lock()
                .expect("starts")
                .entry(job.id.clone())
                .or_default() += 1;
            tokio::time::sleep(Duration::from_secs(6)).await;
            Ok::<_, HandlerError>(Outcome::Done)
        }
    };
    let owner = spawn(
        Worker::new(q.clone(), handler.clone()).with_config(WorkerConfig {
            concurrency: 6,
            block_timeout: Duration::from_millis(200),
            ..WorkerConfig::default()
        }),
    );
    for n in 0..6u32 {
        q.enqueue_value(&n, JobOptions::new())
            .await
            .expect("enqueue");
    }
    assert!(
        eventually(Duration::from_secs(5), || async {
            starts.lock().expect("starts").len() == 6
        })
        .await,
        "the jobs did not start"
    );
    let pid = redis.pid().expect("redis runs").to_string();
    let signal = |sig: &str| {
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill {sig} {pid}");
    };
    signal("-STOP");
    owner_link.start_partition();
    tokio::time::sleep(Duration::from_secs(3)).await;
    signal("-CONT");
    // A worker that reclaims often starts as Redis answers again.
    let rescuer_client = Client::connect_with(impatient(&url, &prefix))
        .await
        .expect("connect");
    let rq = rescuer_client
        .queue_with("frozen", config)
        .await
        .expect("queue");
    let rescuer = spawn(Worker::new(rq, handler).with_config(WorkerConfig {
        concurrency: 1,
        block_timeout: Duration::from_millis(200),
        reclaim_interval: Some(Duration::from_millis(50)),
        ..WorkerConfig::default()
    }));
    tokio::time::sleep(Duration::from_millis(500)).await;
    owner_link.heal();
    let done = eventually(Duration::from_secs(20), || async {
        q.stats()
            .await
            .map(|s| s.completed_total + s.dead_total >= 6 && s.active == 0)
            .unwrap_or(false)
    })
    .await;
    let s = q.stats().await.expect("stats");
    assert!(done, "jobs did not finish: {s:?}");
    assert_eq!((s.completed_total, s.dead_total), (6, 0), "{s:?}");
    let starts = starts.lock().expect("starts").clone();
    assert!(
        starts.values().all(|n| *n == 1),
        "a job ran twice: {starts:?}"
    );
    owner.stop().await;
    rescuer.stop().await;
}

/// The calls of one command kind Redis has run (`INFO commandstats`).
async fn command_calls(url: &str, command: &str) -> u64 {
    let client = redis::Client::open(url).expect("url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut conn)
        .await
        .expect("INFO");
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Issue 39, defect 8: an export reads a large queue in pages, never in
/// one transaction of every entry and payload (which blocked Redis for
/// everyone), and still finds every job once: waiting, running, delayed
/// and dead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_reads_in_pages_and_finds_every_job_once() {
    let redis = RedisServer::start(Persistence::None);
    let url = redis.url();
    let prefix = unique_prefix();
    let client = Client::connect_with(impatient(&url, &prefix))
        .await
        .expect("connect");
    let q = client.queue("paged").await.expect("queue");
    let ready: Vec<NewJob> = (0..2_500u32)
        .map(|n| NewJob::new(&n, JobOptions::new()).expect("job"))
        .collect();
    q.enqueue_many(ready).await.expect("enqueue");
    let later: Vec<NewJob> = (0..1_200u32)
        .map(|n| NewJob::new(&n, JobOptions::new().delay(Duration::from_secs(3600))).expect("job"))
        .collect();
    q.enqueue_many(later).await.expect("enqueue");
    let running = q.claim("w", 300).await.expect("claim");
    let buried: Vec<_> = running.iter().take(100).collect();
    q.settle_many(
        buried
            .iter()
            .map(|j| (*j, Outcome::Bury("no".into())))
            .collect(),
    )
    .await
    .expect("bury");
    let transactions = command_calls(&url, "exec").await;
    let ranges = command_calls(&url, "xrange").await;
    let records = q.export().await.expect("export");
    // Pages of entries, one call each (2,500 on level 0: three pages),
    // then one transaction of what changed since and the sets' ids.
    assert!(
        command_calls(&url, "exec").await <= transactions + 1,
        "the export read in more than one transaction"
    );
    assert!(
        command_calls(&url, "xrange").await >= ranges + 3 + 10,
        "the export did not read its streams in pages"
    );
    let ids: std::collections::HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(records.len(), 2_500 + 1_200, "every job once");
    assert_eq!(ids.len(), records.len(), "every job once");
}

/// Issue 39, defect 7: a claim that ran but whose reply never came (its
/// worker then gone), reclaimed after the claim record's old life (10 s,
/// twice a short visibility timeout): the job never ran, so its attempt is
/// given back and it waits to run (`max_attempts = 1`), instead of being a
/// dead letter without a run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_claim_reclaimed_late_gives_its_attempt_back() {
    use sluice_testkit::{Commands, Fault, Rule};
    let LinkedQueue {
        redis: _redis,
        link,
        prefix,
        config,
        queue: q,
    } = LinkedQueue::start("unanswered").await;
    let heavy = q
        .enqueue_value(&1u32, JobOptions::new().delay(Duration::from_millis(1)))
        .await
        .expect("enqueue")
        .id;
    let light = q
        .enqueue_value(&2u32, JobOptions::new())
        .await
        .expect("enqueue")
        .id;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(q.promote_due(10).await.expect("promote").moved, 1);
    let lost = Client::connect_with(impatient(&link.url(), &prefix))
        .await
        .expect("connect");
    let lq = lost.queue_with("unanswered", config).await.expect("queue");
    // The claim runs; its reply and every retry are lost.
    link.inject(Rule::new(
        Fault::DropReplyAndPartition(Duration::from_secs(30)),
        Commands::Scripts,
    ));
    assert!(
        lq.claim("gone", 10).await.is_err(),
        "the claim's reply came"
    );
    assert_eq!(q.stats().await.expect("stats").active, 2, "the claim ran");
    tokio::time::sleep(Duration::from_secs(11)).await;
    let r = q.reclaim_lost("rescuer").await.expect("reclaim");
    assert_eq!((r.dead, r.retried), (0, 0), "{r:?}");
    let s = q.stats().await.expect("stats");
    assert_eq!((s.dead, s.waiting, s.active), (0, 2, 0), "{s:?}");
    for id in [&heavy, &light] {
        let info = q.job(id).await.expect("lookup").expect("kept");
        assert_eq!(info.state, JobState::Waiting, "{info:?}");
    }
}

/// Issue 37, Medium 10: a deep page of a partitioned queue's dead letters
/// reads the letters' ids and death times of every partition, then only
/// the page's jobs (it read `offset + limit` whole jobs per partition).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_dead_letter_page_reads_one_page_of_jobs() {
    let redis = RedisServer::start(Persistence::None);
    let url = redis.url();
    let prefix = unique_prefix();
    let client = Client::connect_with(impatient(&url, &prefix))
        .await
        .expect("connect");
    let q = client
        .partitioned_queue("deep", 3, sluice_engine::QueueConfig::default())
        .await
        .expect("queue");
    let jobs: Vec<NewJob> = (0..300u32)
        .map(|n| NewJob::new(&n, JobOptions::new()).expect("job"))
        .collect();
    q.enqueue_many(jobs).await.expect("enqueue");
    loop {
        let claimed = q.claim("w", 100).await.expect("claim");
        if claimed.is_empty() {
            break;
        }
        q.settle_many(
            claimed
                .iter()
                .map(|j| (j, Outcome::Bury("no".into())))
                .collect(),
        )
        .await
        .expect("bury");
    }
    assert_eq!(q.stats().await.expect("stats").dead, 300);
    let whole = q.dead_letters(0, 300).await.expect("all");
    let reads = command_calls(&url, "hgetall").await;
    let page = q.dead_letters(200, 10).await.expect("page");
    let read = command_calls(&url, "hgetall").await - reads;
    let want: Vec<&str> = whole[200..210].iter().map(|j| j.id.as_str()).collect();
    let got: Vec<&str> = page.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(got, want, "the page is the same");
    assert!(read <= 10, "{read} job hashes read for a page of 10");

    // A search by error text the same way: the matches' ids are gathered
    // over the partitions (errors only), the page cut, then only its jobs
    // read (issue 37, 10: each partition's first 210 matches were read
    // whole).
    let (found, matched) = q.find_dead("NO", 0, 300).await.expect("search all");
    assert_eq!((found.len(), matched), (300, 300));
    let reads = command_calls(&url, "hgetall").await;
    let (page, matched) = q.find_dead("no", 200, 10).await.expect("search page");
    let read = command_calls(&url, "hgetall").await - reads;
    let want: Vec<&str> = found[200..210].iter().map(|j| j.id.as_str()).collect();
    let got: Vec<&str> = page.iter().map(|j| j.id.as_str()).collect();
    assert_eq!((got, matched), (want, 300), "the page is the same");
    assert!(read <= 10, "{read} job hashes read for a search page of 10");
}

/// A worker stopped while Redis does not answer, holding entries a
/// blocking read delivered whose claim could not be confirmed, stops
/// instead of retrying that claim until Redis is back; the job goes back
/// in line with no attempt spent. (It retried for as long as the outage
/// lasted: the stop waited on Redis.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stopping_while_redis_is_away_leaves_delivered_entries_to_go_back() {
    use sluice_engine::{HandlerError, Job, Worker, WorkerConfig};
    use sluice_testkit::{Commands, Fault, Rule};
    let LinkedQueue {
        redis: _redis,
        link,
        prefix,
        config,
        queue: q,
    } = LinkedQueue::start("away").await;
    let claim_sha = redis::Script::new(sluice_engine::script_source("claim.lua").expect("claim"))
        .get_hash()
        .to_owned();
    let worker_client = Client::connect_with(impatient(&link.url(), &prefix))
        .await
        .expect("connect");
    let wq = worker_client
        .queue_with("away", config)
        .await
        .expect("queue");
    let worker = spawn(
        Worker::new(wq, |_job: Job| async {
            Ok::<_, HandlerError>(Outcome::Done)
        })
        .with_config(WorkerConfig {
            concurrency: 1,
            block_timeout: Duration::from_secs(5),
            ..WorkerConfig::default()
        }),
    );
    // The worker waits on its blocking read; the job it delivers is then
    // claimed by claim.lua, which runs, and its reply and every retry are
    // lost.
    tokio::time::sleep(Duration::from_millis(500)).await;
    link.inject(
        Rule::new(
            Fault::DropReplyAndPartition(Duration::from_secs(60)),
            Commands::Script(claim_sha),
        )
        .limit(1),
    );
    let id = q
        .enqueue_value(&1u32, JobOptions::new())
        .await
        .expect("enqueue")
        .id;
    assert!(
        eventually(Duration::from_secs(10), || async {
            !link.fired().is_empty()
        })
        .await,
        "the claim of the delivered entry was not sent"
    );
    assert_eq!(q.stats().await.expect("stats").active, 1, "the claim ran");
    // A hang guard, not a measure: the stop used to wait for the 60 s
    // outage.
    let report = tokio::time::timeout(Duration::from_secs(30), worker.stop())
        .await
        .expect("the worker stopped while redis was away");
    assert_eq!(report.completed, 0);
    link.heal();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = q.reclaim_lost("rescuer").await.expect("reclaim");
    assert_eq!((r.dead, r.retried), (0, 0), "{r:?}");
    let again = q
        .claim("rescuer", 1)
        .await
        .expect("claim")
        .pop()
        .expect("back in line");
    assert_eq!((again.id.as_str(), again.attempt), (id.as_str(), 1));
}

/// A private Redis with a fault proxy in front, and queue `name` opened
/// directly on it (visibility timeout 600 ms, one attempt), with claim.lua
/// loaded (a first EVALSHA would be answered NOSCRIPT without running):
/// for tests where a worker's link to Redis fails while the test's own
/// does not.
struct LinkedQueue {
    redis: RedisServer,
    link: sluice_testkit::FaultProxy,
    prefix: String,
    config: sluice_engine::QueueConfig,
    queue: sluice_engine::Queue,
}

impl LinkedQueue {
    async fn start(name: &str) -> Self {
        let redis = RedisServer::start(Persistence::None);
        let link = sluice_testkit::FaultProxy::start(&redis.url())
            .await
            .expect("proxy");
        let prefix = unique_prefix();
        let config = sluice_engine::QueueConfig {
            visibility_timeout: Duration::from_millis(600),
            max_attempts: 1,
            ..sluice_engine::QueueConfig::default()
        };
        let direct = Client::connect_with(impatient(&redis.url(), &prefix))
            .await
            .expect("connect");
        let queue = direct
            .queue_with(name, config.clone())
            .await
            .expect("queue");
        assert!(queue.claim("warm", 1).await.expect("claim").is_empty());
        Self {
            redis,
            link,
            prefix,
            config,
            queue,
        }
    }
}
