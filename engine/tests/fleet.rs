//! Fleet-wide controls against the real Redis: the per-queue rate limit
//! (shared token bucket, enforced at claim time), the worker registry and
//! the per-minute throughput counts.

use crate::common;

use std::time::Duration;

use common::{TestRedis, eventually, spawn};
use sluice_engine::{
    HandlerError, Job, JobOptions, NewJob, Outcome, RateLimit, ServedQueue, Worker, WorkerConfig,
    WorkerInfo, handler_fn, unix_ms,
};

fn jobs(n: u32) -> Vec<NewJob> {
    (0..n)
        .map(|i| NewJob::new(&i, JobOptions::new()).expect("encode"))
        .collect()
}

#[tokio::test]
async fn a_rate_limit_caps_claims_across_consumers_until_lifted() {
    let t = TestRedis::new().await;
    let q = t.queue("limited").await;
    q.enqueue_many(jobs(10)).await.expect("enqueue");
    // One token every 2 s, bursts of 3: the bucket starts full.
    let limit = RateLimit::new(0.5, 3).expect("limit");
    q.set_rate_limit(Some(limit)).await.expect("set limit");
    assert_eq!(q.stats().await.expect("stats").rate_limit, Some(limit));

    assert_eq!(q.claim("a", 10).await.expect("claim").len(), 3);
    // The bucket is shared: another consumer gets nothing now.
    assert_eq!(q.claim("b", 10).await.expect("claim").len(), 0);
    assert_eq!(q.stats().await.expect("stats").waiting, 7);

    q.set_rate_limit(None).await.expect("lift limit");
    assert_eq!(q.stats().await.expect("stats").rate_limit, None);
    assert_eq!(q.claim("b", 10).await.expect("claim").len(), 7);
}

#[test]
fn bad_rate_limits_are_refused() {
    assert!(RateLimit::new(0.0, 1).is_err());
    assert!(RateLimit::new(-1.0, 1).is_err());
    assert!(RateLimit::new(f64::NAN, 1).is_err());
    assert!(RateLimit::new(5.0, 0).is_err());
    assert_eq!(RateLimit::per_second(0.2).expect("limit").burst, 1);
    assert_eq!(RateLimit::per_second(20.0).expect("limit").burst, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_on_a_rate_limited_queue_still_drains_it() {
    let t = TestRedis::new().await;
    let q = t.queue("trickle").await;
    q.set_rate_limit(Some(RateLimit::new(200.0, 5).expect("limit")))
        .await
        .expect("set limit");
    let handler = handler_fn(|_job: Job, _n: u32| async { Ok::<_, HandlerError>(Outcome::Done) });
    let running = spawn(Worker::new(q.clone(), handler).with_config(WorkerConfig {
        concurrency: 4,
        block_timeout: Duration::from_millis(300),
        ..WorkerConfig::default()
    }));
    q.enqueue_many(jobs(40)).await.expect("enqueue");
    let drained = eventually(Duration::from_secs(10), || async {
        q.stats().await.expect("stats").completed_total == 40
    })
    .await;
    assert!(drained, "rate-limited queue not drained");
    assert_eq!(running.stop().await.completed, 40);
}

fn info(id: &str) -> WorkerInfo {
    WorkerInfo {
        id: id.to_owned(),
        host: "test-host".to_owned(),
        pid: 42,
        queues: vec![ServedQueue {
            queue: "emails".to_owned(),
            concurrency: 8,
        }],
        concurrency: 8,
        in_flight: 3,
        version: "0.1.0".to_owned(),
        started_at_ms: unix_ms(),
        last_beat_ms: unix_ms(),
    }
}

#[tokio::test]
async fn workers_register_beat_expire_and_deregister() {
    let t = TestRedis::new().await;
    let c = &t.client;
    assert!(c.registry().workers().await.expect("list").is_empty());

    c.registry()
        .heartbeat(&info("steady"), Duration::from_secs(30))
        .await
        .expect("beat");
    c.registry()
        .heartbeat(&info("fading"), Duration::from_millis(200))
        .await
        .expect("beat");
    let listed = c.registry().workers().await.expect("list");
    assert_eq!(listed.len(), 2);
    let steady = listed.iter().find(|w| w.id == "steady").expect("listed");
    let expected = WorkerInfo {
        started_at_ms: steady.started_at_ms,
        last_beat_ms: steady.last_beat_ms,
        ..info("steady")
    };
    assert_eq!(steady, &expected);

    // A worker that stops beating disappears, and is dropped from the index.
    let gone = eventually(Duration::from_secs(5), || async {
        c.registry().workers().await.expect("list").len() == 1
    })
    .await;
    assert!(gone, "expired worker still listed");
    assert!(!t.keys().await.iter().any(|k| k.contains("fading")));
    let index: Vec<String> = t
        .query(
            redis::cmd("ZRANGE")
                .arg(format!("{}:workers", t.prefix))
                .arg(0)
                .arg(-1),
        )
        .await;
    assert_eq!(index, vec!["steady".to_owned()]);

    c.registry().deregister("steady").await.expect("deregister");
    assert!(c.registry().workers().await.expect("list").is_empty());
    assert!(t.keys().await.is_empty());
}

#[tokio::test]
async fn throughput_counts_completed_and_failed_attempts_per_minute() {
    let t = TestRedis::new().await;
    let q = t.queue("counted").await;
    q.enqueue_many(jobs(3)).await.expect("enqueue");
    let claimed = q.claim("w", 3).await.expect("claim");
    let outcomes = vec![
        (&claimed[0], Outcome::Done),
        (&claimed[1], Outcome::Done),
        (
            &claimed[2],
            Outcome::Retry {
                reason: "boom".into(),
                after: None,
            },
        ),
    ];
    q.settle_many(outcomes).await.expect("settle");
    let minutes = q.throughput(60).await.expect("throughput");
    assert_eq!(minutes.len(), 60);
    assert!(
        minutes
            .windows(2)
            .all(|w| w[1].minute_ms == w[0].minute_ms + 60_000)
    );
    // Summed, so a minute boundary between settle and read does not matter.
    let completed: u64 = minutes.iter().map(|m| m.completed).sum();
    let failed: u64 = minutes.iter().map(|m| m.failed).sum();
    assert_eq!((completed, failed), (2, 1));
}

fn concurrency(n: usize) -> WorkerConfig {
    WorkerConfig {
        concurrency: n,
        ..WorkerConfig::default()
    }
}

/// A fleet serves several queues (one of them partitioned) under one worker
/// id: the registry shows one process with every queue while it runs, each
/// queue's jobs are run, a stop lets the running jobs finish, and the
/// process leaves the registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_serves_many_queues_under_one_id_and_leaves_the_registry() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    let t = TestRedis::new().await;
    let mails = t.queue("mails").await;
    let orders = t
        .client
        .partitioned_queue("orders", 2, common::fast_config())
        .await
        .expect("open");
    mails.enqueue_many(jobs(5)).await.expect("enqueue");
    for n in 0..6u32 {
        orders
            .enqueue(common::keyed(&format!("k{n}"), &n, JobOptions::new()))
            .await
            .expect("enqueue");
    }
    let ran = Arc::new(AtomicUsize::new(0));
    let counting = |ran: Arc<AtomicUsize>| {
        handler_fn(move |_job: Job, _n: u32| {
            let ran = ran.clone();
            async move {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok::<_, HandlerError>(Outcome::Done)
            }
        })
    };
    let mut fleet = sluice_engine::Fleet::new(t.client.clone());
    fleet
        .serve(mails.clone(), counting(ran.clone()), concurrency(3))
        .serve(orders.clone(), counting(ran.clone()), concurrency(4));
    let id = fleet.id().to_owned();
    let stop = sluice_engine::Shutdown::new();
    let running = tokio::spawn(fleet.run(stop.clone()));

    let done = |q: sluice_engine::Queue, n: u64| async move {
        q.stats()
            .await
            .is_ok_and(|s| s.waiting == 0 && s.completed_total == n)
    };
    assert!(
        eventually(Duration::from_secs(20), || {
            let (mails, orders) = (mails.clone(), orders.clone());
            async move { done(mails, 5).await && done(orders, 6).await }
        })
        .await,
        "every job ran"
    );
    assert_eq!(ran.load(Ordering::SeqCst), 11);
    assert!(
        eventually(Duration::from_secs(10), || async {
            t.client
                .registry()
                .workers()
                .await
                .is_ok_and(|all| all.iter().any(|w| w.id == id))
        })
        .await,
        "the fleet beats"
    );
    let listed: Vec<WorkerInfo> = t.client.registry().workers().await.expect("workers");
    let me: Vec<&WorkerInfo> = listed.iter().filter(|w| w.id == id).collect();
    assert_eq!(me.len(), 1, "one registry entry for the process");
    assert_eq!(me[0].concurrency, 7);
    assert_eq!(
        me[0].queues,
        [
            ServedQueue {
                queue: "mails".into(),
                concurrency: 3
            },
            ServedQueue {
                queue: "orders".into(),
                concurrency: 4
            },
        ]
    );

    stop.trigger();
    let report = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the fleet stops")
        .expect("task")
        .expect("run");
    // One worker for the queue of one partition, one per partition of the other.
    assert_eq!(report.stopped.len(), 3);
    let listed = t.client.registry().workers().await.expect("workers");
    assert!(listed.iter().all(|w| w.id != id), "left the registry");
}

/// A fleet with nothing to serve is refused, not left running idle.
#[tokio::test]
async fn a_fleet_with_no_queue_is_refused() {
    let t = TestRedis::new().await;
    let fleet = sluice_engine::Fleet::new(t.client.clone());
    let err = fleet
        .run(sluice_engine::Shutdown::new())
        .await
        .expect_err("refused");
    assert!(err.to_string().contains("serves no queue"), "{err}");
}

/// On a clock held still, schedulers fire nothing until the clock moves;
/// each second moved fires that second's tick once between the two of them
/// (two processes); a jump over several ticks fires the first due and
/// skips the rest (a missed tick is not made up); the last run is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedulers_on_a_held_clock_fire_each_tick_once_and_skip_what_they_missed() {
    use std::sync::Arc;

    use sluice_engine::{CronSchedule, ManualClock, Scheduler, Shutdown};

    let t = TestRedis::new().await;
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00.500Z")
        .expect("date")
        .with_timezone(&chrono::Utc);
    let clock = Arc::new(ManualClock::new(start));
    let every_second =
        CronSchedule::new("held", "* * * * * *", None, "held", &1u32, None).expect("schedule");
    let stop = Shutdown::new();
    let mut schedulers = Vec::new();
    for _ in 0..2 {
        let s =
            Scheduler::new(t.client.clone(), vec![every_second.clone()]).with_clock(clock.clone());
        schedulers.push(tokio::spawn(s.run(stop.clone())));
    }
    let q = t.queue("held").await;
    let waiting = || {
        let q = q.clone();
        async move { q.stats().await.expect("stats").waiting }
    };
    // Held still: real time passes, the clock does not, nothing fires.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(waiting().await, 0);
    for n in 1..=3u64 {
        // Both schedulers back asleep first: a scheduler still finishing
        // the last tick's (duplicate) fire when the clock moves counts the
        // passed tick as missed, and skips it by design.
        tokio::time::sleep(Duration::from_millis(300)).await;
        clock.advance(Duration::from_secs(1));
        assert!(
            eventually(Duration::from_secs(10), || async { waiting().await == n }).await,
            "tick {n} fired"
        );
    }
    // Both schedulers have fired tick 3 and gone back to sleep.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(waiting().await, 3, "each tick once");
    // Ten seconds at once: the first tick due fires, the nine others are
    // passed over.
    clock.advance(Duration::from_secs(10));
    assert!(eventually(Duration::from_secs(10), || async { waiting().await == 4 }).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(waiting().await, 4, "missed ticks are not made up");
    stop.trigger();
    for s in schedulers {
        s.await.expect("scheduler");
    }
    // The last run is recorded, and its job carries the payload.
    let last = t
        .client
        .registry()
        .schedule_last_runs()
        .await
        .expect("last runs");
    let run = last.get("held").expect("a last run recorded");
    let tick_4 = start + chrono::Duration::milliseconds(3_500);
    assert_eq!(run.tick_ms, tick_4.timestamp_millis());
    let job = q.job(&run.job_id).await.expect("lookup").expect("the job");
    assert_eq!(job.payload, rmp_serde::to_vec_named(&1u32).expect("encode"));
}
