//! Partitioned queues: routing by partition key, idempotency key or at
//! random; order within a partition; workers sharing one pool of slots over
//! every partition; a mismatched partition count refused. Runs on the
//! shared Redis, and on a cluster with `SLUICE_TEST_CLUSTER=1`.

use crate::common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestRedis, eventually, fast_config, keyed};
use sluice_engine::{HandlerError, Job, JobOptions, NewJob, Outcome, WorkerConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_are_routed_by_key_and_drained_from_every_partition() {
    let t = TestRedis::new().await;
    let pq = t
        .client
        .partitioned_queue("orders", 3, fast_config())
        .await
        .expect("open");
    let names: Vec<String> = pq
        .partitions()
        .iter()
        .map(|q| q.name().to_owned())
        .collect();
    assert_eq!(names, ["orders#0", "orders#1", "orders#2"]);

    // One partition key: one partition, in FIFO order.
    for n in 0..20u32 {
        pq.enqueue(keyed("customer-17", &n, JobOptions::new()))
            .await
            .expect("enqueue");
    }
    let home = pq.partition_for("customer-17");
    assert_eq!(home.stats().await.expect("stats").waiting, 20);
    let claimed = home.claim("check", 20).await.expect("claim");
    let order: Vec<u32> = claimed
        .iter()
        .map(|j| j.decode::<u32>().expect("decode"))
        .collect();
    assert_eq!(order, (0..20).collect::<Vec<_>>());
    for job in &claimed {
        home.settle(job, Outcome::Done).await.expect("settle");
    }

    // An idempotency key routes to one partition, so a retry meets the
    // first try wherever it comes from.
    let first = pq
        .enqueue_value(&1u32, JobOptions::new().idempotency_key("pay-1"))
        .await
        .expect("enqueue");
    let again = pq
        .enqueue_value(&1u32, JobOptions::new().idempotency_key("pay-1"))
        .await
        .expect("enqueue");
    assert!(again.duplicate);
    assert_eq!(again.id, first.id);

    // Keyless jobs of a batch are dealt over every partition, answers in
    // the batch's order.
    let batch: Vec<NewJob> = (0..300u32)
        .map(|n| NewJob::new(&n, JobOptions::new()).expect("job"))
        .collect();
    let answers = pq.enqueue_many(batch).await.expect("batch");
    assert_eq!(answers.len(), 300);
    for q in pq.partitions() {
        let waiting = q.stats().await.expect("stats").waiting;
        assert!(waiting >= 100, "{}: {waiting} waiting", q.name());
    }
    assert_eq!(pq.stats().await.expect("stats").waiting, 301);

    // Workers over all partitions share 6 slots; each partition is served.
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let handler = {
        let (seen, running, most) = (seen.clone(), running.clone(), most.clone());
        move |job: Job| {
            let (seen, running, most) = (seen.clone(), running.clone(), most.clone());
            async move {
                use std::sync::atomic::Ordering::SeqCst;
                let now = running.fetch_add(1, SeqCst) + 1;
                most.fetch_max(now, SeqCst);
                *seen
                    .lock()
                    .expect("seen")
                    .entry(job.queue.clone())
                    .or_default() += 1;
                tokio::time::sleep(Duration::from_millis(2)).await;
                running.fetch_sub(1, SeqCst);
                Ok::<_, HandlerError>(Outcome::Done)
            }
        }
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let workers = {
        let pq = pq.clone();
        tokio::spawn(async move {
            sluice_engine::Worker::new(pq, handler)
                .with_config(WorkerConfig {
                    concurrency: 6,
                    block_timeout: Duration::from_millis(200),
                    ..WorkerConfig::default()
                })
                .run(sluice_engine::Shutdown::when(async move {
                    let _ = stopped.await;
                }))
                .await
        })
    };
    let drained = eventually(Duration::from_secs(30), || async {
        pq.stats().await.is_ok_and(|s| s.completed_total == 321)
    })
    .await;
    let _ = stop.send(());
    let report = workers.await.expect("join").expect("workers");
    assert!(drained, "{:?}", pq.stats().await);
    assert_eq!(report.completed, 301, "{report:?}");
    let seen = seen.lock().expect("seen").clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        most.load(std::sync::atomic::Ordering::SeqCst) <= 6,
        "more than the shared 6 slots ran at once"
    );

    // Every process must agree on the partition count.
    let err = t
        .client
        .partitioned_queue("orders", 4, fast_config())
        .await
        .expect_err("different count");
    assert!(err.to_string().contains("3 partitions"), "{err}");
    assert!(
        t.client
            .partitioned_queue("orders#1", 3, fast_config())
            .await
            .is_err()
    );
}

/// Operators' reads and actions on a partitioned queue cover every
/// partition: lookup, listings, dead letters merged newest first, search,
/// re-drive, delete, purge, cancel, throughput, and a rate limit shared
/// out; a queue of one partition answers the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_see_and_act_on_every_partition_through_one_handle() {
    let t = TestRedis::new().await;
    let pq = t
        .client
        .partitioned_queue("ops", 3, fast_config())
        .await
        .expect("open");
    // Two jobs per partition, buried one at a time so their death times
    // order them: errors "even n" / "odd n".
    let mut buried = Vec::new();
    for (p, q) in pq.partitions().iter().enumerate() {
        for k in 0..2u32 {
            let n = p as u32 * 2 + k;
            q.enqueue_value(&n, JobOptions::new())
                .await
                .expect("enqueue");
            let job = common::claim_when_ready(q, "w").await;
            let parity = if n.is_multiple_of(2) { "even" } else { "odd" };
            q.settle(&job, Outcome::Bury(format!("{parity} {n}")))
                .await
                .expect("settle");
            buried.push(job.id);
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
    }
    let newest_first: Vec<String> = buried.iter().rev().cloned().collect();
    let ids = |letters: Vec<sluice_engine::JobInfo>| -> Vec<String> {
        letters.into_iter().map(|j| j.id).collect()
    };
    assert_eq!(
        ids(pq.dead_letters(0, 10).await.expect("dead")),
        newest_first
    );
    assert_eq!(
        ids(pq.dead_letters(2, 3).await.expect("dead")),
        newest_first[2..5]
    );
    assert_eq!(
        ids(pq
            .jobs_in_state(sluice_engine::JobState::Dead, 1, 2)
            .await
            .expect("list")),
        newest_first[1..3]
    );
    let (odd, matched) = pq.find_dead("ODD", 1, 10).await.expect("find");
    assert_eq!(matched, 3);
    assert_eq!(ids(odd), vec![buried[3].clone(), buried[1].clone()]);
    assert!(pq.job(&buried[4]).await.expect("lookup").is_some());
    let minutes = pq.throughput(2).await.expect("throughput");
    assert_eq!(minutes.iter().map(|m| m.failed).sum::<u64>(), 6);

    // Listings are bounded in depth and size, merged or not.
    let max = sluice_engine::MAX_LIST_OFFSET;
    assert!(pq.dead_letters(max + 1, 10).await.is_err());
    assert!(
        pq.dead_letters(0, sluice_engine::MAX_LIST_LIMIT + 1)
            .await
            .is_err()
    );
    assert!(pq.partitions()[0].dead_letters(max + 1, 10).await.is_err());
    assert!(pq.find_dead("odd", max + 1, 10).await.is_err());
    assert!(
        pq.dead_letters(max, 1000)
            .await
            .expect("deepest")
            .is_empty()
    );

    // Actions find the partition that holds the job.
    assert!(pq.redrive(&buried[5]).await.expect("redrive"));
    assert!(!pq.redrive(&buried[5]).await.expect("again"));
    assert_eq!(pq.redrive_matching("even", 100).await.expect("redrive"), 3);
    assert!(pq.delete_dead(&buried[1]).await.expect("delete"));
    assert_eq!(pq.stats().await.expect("stats").dead, 1);
    let waiting = pq
        .jobs_in_state(sluice_engine::JobState::Waiting, 1, 10)
        .await
        .expect("list");
    assert_eq!(waiting.len(), 3, "4 waiting, 1 skipped");
    assert_eq!(
        pq.cancel(&buried[0]).await.expect("cancel"),
        sluice_engine::Cancelled::Cancelled
    );
    assert_eq!(pq.purge_dead().await.expect("purge"), 2);

    // The rate limit is the queue's: each partition runs its share.
    let limit = sluice_engine::RateLimit::new(30.0, 9).expect("limit");
    pq.set_rate_limit(Some(limit)).await.expect("limit");
    for q in pq.partitions() {
        let share = q.stats().await.expect("stats").rate_limit.expect("set");
        assert_eq!((share.per_second, share.burst), (10.0, 3));
    }
    let whole = pq.stats().await.expect("stats").rate_limit.expect("set");
    assert_eq!((whole.per_second, whole.burst), (30.0, 9));
    pq.set_rate_limit(None).await.expect("remove");
    assert_eq!(pq.stats().await.expect("stats").rate_limit, None);

    // A queue without partitions is a handle of one, unchanged.
    let plain = t.queue("plain").await;
    let one = plain.clone();
    assert_eq!(one.name(), "plain");
    assert_eq!(one.partitions().len(), 1);
    assert!(!one.is_partitioned());
    one.set_rate_limit(Some(limit)).await.expect("limit");
    let own = plain.stats().await.expect("stats").rate_limit.expect("set");
    assert_eq!((own.per_second, own.burst), (30.0, 9));
}

/// Dead letters paged by cursor over three partitions: every letter once,
/// newest first (death time, then id), across letters buried in one
/// settle call (one millisecond, so ties), and as deep as the set goes,
/// where an offset stops at MAX_LIST_OFFSET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_page_by_cursor_over_partitions_at_any_depth() {
    use sluice_engine::{MAX_LIST_OFFSET, NewJob, Outcome};
    let r = common::TestRedis::new().await;
    let pq = r
        .client
        .partitioned_queue("deep", 3, common::fast_config())
        .await
        .expect("partitions");
    let total = MAX_LIST_OFFSET + 1_500;
    let mut made = 0;
    while made < total {
        let n = (total - made).min(1000);
        let jobs = (0..n)
            .map(|i| NewJob::new(&(made + i), sluice_engine::JobOptions::new()).expect("job"))
            .collect();
        pq.enqueue_many(jobs).await.expect("enqueue");
        made += n;
    }
    for q in pq.partitions() {
        loop {
            let jobs = q.claim("burier", 500).await.expect("claim");
            if jobs.is_empty() {
                break;
            }
            let outcomes = jobs
                .iter()
                .map(|j| (j, Outcome::Bury("no".into())))
                .collect();
            q.settle_many(outcomes).await.expect("settle");
        }
    }
    assert!(pq.dead_letters(MAX_LIST_OFFSET + 1, 10).await.is_err());
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let (page, next) = pq
            .dead_letters_after(cursor.as_ref(), 0, 1000)
            .await
            .expect("page");
        pages += 1;
        seen.extend(
            page.into_iter()
                .map(|j| (j.finished_at_ms.unwrap_or(0), j.id)),
        );
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
        assert!(pages < 100, "paging does not end");
    }
    assert_eq!(seen.len(), total, "every letter once");
    let mut ids: Vec<&String> = seen.iter().map(|(_, id)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), total, "no letter twice");
    assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0), "newest first");
}

/// A queue split once is found as such by every later handle: `queue`
/// and `existing_queue` by its name cover every partition (enqueue, stats,
/// lookup by id, pause, the rate limit), and a worker started on such a
/// handle, with no partition count in its config, drains them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_opened_by_name_knows_its_partitions() {
    use sluice_engine::RateLimit;
    let t = TestRedis::new().await;
    let split = t
        .client
        .partitioned_queue("known", 3, fast_config())
        .await
        .expect("open");
    assert!(split.is_partitioned());

    let by_name = t.queue("known").await;
    let existing = t
        .client
        .existing_queue("known")
        .await
        .expect("existing")
        .expect("found");
    for q in [&by_name, &existing] {
        assert_eq!(q.name(), "known");
        let names: Vec<String> = q.partitions().iter().map(|p| p.name().to_owned()).collect();
        assert_eq!(names, ["known#0", "known#1", "known#2"]);
        assert!(q.is_partitioned());
    }
    // A partition by its own name is one queue, not split again.
    let one = t.queue("known#1").await;
    assert_eq!(one.partitions().len(), 1);
    assert!(!one.is_partitioned());

    // Keyed jobs from the handle by name land where the first handle
    // routes them; keyless ones are dealt over every partition.
    let keyed = by_name
        .enqueue(keyed("acct-9", &0u32, JobOptions::new()))
        .await
        .expect("enqueue");
    assert_eq!(
        split
            .partition_for("acct-9")
            .job(&keyed.id)
            .await
            .expect("job")
            .map(|j| j.queue),
        Some(split.partition_for("acct-9").name().to_owned())
    );
    let batch: Vec<NewJob> = (1..=90u32)
        .map(|n| NewJob::new(&n, JobOptions::new()).expect("job"))
        .collect();
    let answers = existing.enqueue_many(batch).await.expect("batch");
    for q in split.partitions() {
        assert!(
            q.stats().await.expect("stats").waiting >= 30,
            "{}",
            q.name()
        );
    }
    assert_eq!(by_name.stats().await.expect("stats").waiting, 91);
    for e in &answers {
        assert!(by_name.job(&e.id).await.expect("job").is_some(), "{}", e.id);
    }

    // Pause and the rate limit reach every partition.
    by_name.pause().await.expect("pause");
    for q in split.partitions() {
        assert!(q.stats().await.expect("stats").paused, "{}", q.name());
    }
    by_name.resume().await.expect("resume");
    let limit = RateLimit {
        per_second: 3000.0,
        burst: 300,
    };
    existing.set_rate_limit(Some(limit)).await.expect("limit");
    for q in split.partitions() {
        assert!(q.stats().await.expect("stats").rate_limit.is_some());
    }
    let whole = by_name
        .stats()
        .await
        .expect("stats")
        .rate_limit
        .expect("set");
    assert_eq!((whole.per_second, whole.burst), (3000.0, 300));
    existing.set_rate_limit(None).await.expect("remove");

    // One worker on the handle by name, configured like any other.
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let handler = {
        let seen = seen.clone();
        move |job: Job| {
            let seen = seen.clone();
            async move {
                *seen
                    .lock()
                    .expect("seen")
                    .entry(job.queue.clone())
                    .or_default() += 1;
                Ok::<_, HandlerError>(Outcome::Done)
            }
        }
    };
    let worker = sluice_engine::Worker::new(by_name.clone(), handler).with_config(WorkerConfig {
        concurrency: 4,
        block_timeout: Duration::from_millis(200),
        ..WorkerConfig::default()
    });
    let running = common::spawn(worker);
    let drained = eventually(Duration::from_secs(30), || async {
        by_name.stats().await.is_ok_and(|s| s.completed_total == 91)
    })
    .await;
    let report = running.stop().await;
    assert!(drained, "{:?}", by_name.stats().await);
    assert_eq!(report.completed, 91, "{report:?}");
    let seen = seen.lock().expect("seen").clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen.values().sum::<u32>(), 91);
}

/// A queue `plain` with `in_plain` jobs and a queue `split` of 3
/// partitions with `in_split` keyed jobs at `priority`.
async fn plain_and_split(
    t: &TestRedis,
    in_plain: u32,
    in_split: u32,
    priority: u8,
) -> (sluice_engine::Queue, sluice_engine::Queue) {
    let plain = t.queue("plain").await;
    let split = t
        .client
        .partitioned_queue("split", 3, fast_config())
        .await
        .expect("open");
    for n in 0..in_plain {
        plain
            .enqueue_value(&n, JobOptions::new())
            .await
            .expect("enqueue");
    }
    for n in 0..in_split {
        split
            .enqueue(keyed(
                &format!("k{n}"),
                &n,
                JobOptions::new().priority(priority),
            ))
            .await
            .expect("enqueue");
    }
    (plain, split)
}

/// What queue `name`'s own handle reads of its counts.
async fn own_stats(t: &TestRedis, name: &str) -> sluice_engine::Stats {
    t.client
        .existing_queue(name)
        .await
        .expect("existing")
        .expect("listed queues exist")
        .stats()
        .await
        .expect("stats")
}

/// `Inspector::all_stats` answers, for every queue the fleet lists, what that
/// queue's own `stats` answers (a split queue's partitions summed), with
/// all queues read together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_stats_give_each_queues_own_counts() {
    let t = TestRedis::new().await;
    let (plain, split) = plain_and_split(&t, 7, 11, 2).await;
    plain.pause().await.expect("pause");
    plain
        .enqueue_value(&99u32, JobOptions::new().delay(Duration::from_secs(60)))
        .await
        .expect("delayed");
    let claimed = split.claim("inspector", 2).await.expect("claim");
    assert_eq!(claimed.len(), 2);

    let all = t.client.inspector().all_stats().await.expect("all stats");
    // A partitioned queue is one row, its partitions summed.
    assert_eq!(
        all.iter().map(|s| s.queue.clone()).collect::<Vec<_>>(),
        ["plain", "split"]
    );
    assert!(!all.is_empty());
    for stats in &all {
        assert_eq!(stats, &own_stats(&t, &stats.queue).await, "{}", stats.queue);
    }
    let waiting: u64 = all.iter().map(|s| s.waiting).sum();
    let active: u64 = all.iter().map(|s| s.active).sum();
    assert_eq!(waiting, 7 + 11 - 2);
    assert_eq!(active, 2);
    assert!(all.iter().any(|s| s.paused && s.delayed == 1));
}

/// A queue name of the longest length accepted leaves no room for a
/// partition suffix: looking it up finds the plain queue (or nothing), it
/// does not fail on the partition name it cannot have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_too_long_for_partitions_is_a_plain_queue() {
    let t = TestRedis::new().await;
    let name = "n".repeat(sluice_engine::MAX_QUEUE_NAME_LEN);
    let missing = t.client.existing_queue(&name).await.expect("lookup");
    assert!(missing.is_none());
    let q = t.queue(&name).await;
    assert!(!q.is_partitioned());
    let found = t.client.existing_queue(&name).await.expect("lookup");
    assert_eq!(found.expect("found").name(), name);
}

/// The inspector's overview gives every queue the counts its own handle
/// reads, its minutes (the asked number and the current one), and how long
/// its next job has waited; a queue's dead letters page by cursor and are
/// searched by their error, over every partition.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_summarizes_every_queue_and_pages_dead_letters() {
    let t = TestRedis::new().await;
    let (_plain, split) = plain_and_split(&t, 3, 6, 0).await;
    // Two jobs done, three buried (two of them "boom"), all in the split
    // queue, whose partitions each hold some.
    let claimed = split.claim("inspector", 5).await.expect("claim");
    assert_eq!(claimed.len(), 5);
    let outcomes = [
        Outcome::Done,
        Outcome::Done,
        Outcome::Bury("boom: first".into()),
        Outcome::Bury("Boom: second".into()),
        Outcome::Bury("other".into()),
    ];
    split
        .settle_many(claimed.iter().zip(outcomes).collect())
        .await
        .expect("settle");

    let inspector = t.client.inspector();
    let overview = inspector.overview(5).await.expect("overview");
    assert_eq!(
        overview
            .queues
            .iter()
            .map(|s| s.stats.queue.clone())
            .collect::<Vec<_>>(),
        ["plain", "split"]
    );
    for summary in &overview.queues {
        let own = own_stats(&t, &summary.stats.queue).await;
        assert_eq!(summary.stats, own, "{}", own.queue);
        assert_eq!(summary.per_minute.len(), 6, "{}", own.queue);
        assert_eq!(
            summary.next_job_wait_ms.is_some(),
            own.waiting > 0,
            "{}",
            own.queue
        );
    }
    let split_summary = overview
        .queues
        .iter()
        .find(|s| s.stats.queue == "split")
        .expect("split listed");
    let minutes = &split_summary.per_minute;
    assert_eq!(minutes.iter().map(|m| m.completed).sum::<u64>(), 2);
    assert_eq!(minutes.iter().map(|m| m.failed).sum::<u64>(), 3);
    assert_eq!(split_summary.stats.dead, 3);
    assert_eq!(split_summary.stats.waiting, 1);

    // One row per partition, and the plain queue's own.
    let rows = inspector.partition_stats().await.expect("partition stats");
    let split_rows: Vec<_> = rows
        .iter()
        .filter(|s| s.queue.starts_with("split#"))
        .collect();
    assert_eq!(split_rows.len(), 3);
    assert_eq!(split_rows.iter().map(|s| s.dead).sum::<u64>(), 3);
    assert!(rows.iter().any(|s| s.queue == "plain" && s.waiting == 3));

    let found = inspector
        .dead(
            &split,
            sluice_engine::DeadQuery {
                text: Some("BOOM"),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .expect("search");
    assert_eq!((found.total, found.matched), (3, 2));
    assert_eq!(found.letters.len(), 2);
    assert!(found.next.is_none());

    let first = inspector
        .dead(
            &split,
            sluice_engine::DeadQuery {
                limit: 2,
                ..Default::default()
            },
        )
        .await
        .expect("first page");
    assert_eq!((first.total, first.matched, first.letters.len()), (3, 3, 2));
    let cursor = first.next.expect("a next page");
    let second = inspector
        .dead(
            &split,
            sluice_engine::DeadQuery {
                cursor: Some(&cursor),
                limit: 2,
                ..Default::default()
            },
        )
        .await
        .expect("second page");
    assert_eq!(second.letters.len(), 1);
    let mut seen: Vec<String> = first
        .letters
        .iter()
        .chain(&second.letters)
        .map(|j| j.id.clone())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 3, "each letter once over the pages");

    // A job is found by id in whichever queue and partition holds it.
    let waiting = split
        .jobs_in_state(sluice_engine::JobState::Waiting, 0, 1)
        .await
        .expect("list");
    let found = inspector
        .find_job(&waiting[0].id)
        .await
        .expect("find")
        .expect("found");
    // Its queue is the partition that holds it.
    assert!(found.queue.starts_with("split#"), "{}", found.queue);
    assert_eq!(found.id, waiting[0].id);
    assert!(
        inspector
            .find_job("no-such-job")
            .await
            .expect("find")
            .is_none()
    );
}

/// A queue whose stream and group were deleted by hand is still listed,
/// read as it is (the lost job gone), instead of failing the whole
/// overview.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inspector_lists_a_queue_whose_stream_was_deleted_by_hand() {
    let t = TestRedis::new().await;
    let q = t.queue("broken").await;
    q.enqueue_value(&1u32, JobOptions::new())
        .await
        .expect("enqueue");
    let _: () = t
        .query(redis::cmd("DEL").arg(format!("{}:{{broken}}:p:0", t.prefix)))
        .await;
    let _: i64 = t
        .query(
            redis::cmd("XGROUP")
                .arg("DESTROY")
                .arg(format!("{}:{{broken}}:p:1", t.prefix))
                .arg("workers"),
        )
        .await;
    let overview = t.client.inspector().overview(1).await.expect("overview");
    let broken = overview
        .queues
        .iter()
        .find(|s| s.stats.queue == "broken")
        .expect("listed");
    assert_eq!(broken.per_minute.len(), 2);
    assert_eq!(broken.stats.waiting, 0, "the deleted stream's job is gone");
}
