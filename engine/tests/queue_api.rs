//! The queue's public API against the real Redis: enqueue, idempotency,
//! validation, strict priority, delays, pause, lookup, retries, dead letters,
//! reclaim and fencing. Uses the manual claim/settle path for determinism.

use crate::common;

use std::time::Duration;

use common::{TestRedis, claim_when_ready, eventually, fast_config};
use serde::{Deserialize, Serialize};
use sluice_engine::{
    Error, JobOptions, JobState, NewJob, Outcome, PRIORITY_LEVELS, QueueConfig, Settled,
};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Email {
    to: String,
    n: u32,
}

#[tokio::test]
async fn enqueue_then_claim_and_complete() {
    let t = TestRedis::new().await;
    let q = t.queue("emails").await;
    let e = q
        .enqueue_value(
            &Email {
                to: "a@b.c".into(),
                n: 1,
            },
            JobOptions::new(),
        )
        .await
        .expect("enqueue");
    assert!(!e.duplicate);

    let info = q.job(&e.id).await.expect("lookup").expect("exists");
    assert_eq!(info.state, JobState::Waiting);
    assert_eq!(info.attempt, 0);
    assert_eq!(info.max_attempts, 4);
    assert_eq!(info.payload_json().expect("json")["to"], "a@b.c");

    let jobs = q.claim("w1", 10).await.expect("claim");
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job.id, e.id);
    assert_eq!(job.attempt, 1);
    assert_eq!(
        job.decode::<Email>().expect("decode"),
        Email {
            to: "a@b.c".into(),
            n: 1
        }
    );
    let active = q.job(&e.id).await.expect("lookup").expect("exists");
    assert_eq!(active.state, JobState::Active);
    assert_eq!(active.worker.as_deref(), Some("w1"));
    assert_eq!(q.stats().await.expect("stats").active, 1);

    assert_eq!(
        q.settle(job, Outcome::Done).await.expect("settle"),
        Settled::Done
    );
    // Default keep window is zero: nothing but the counters is left.
    assert!(q.job(&e.id).await.expect("lookup").is_none());
    let s = q.stats().await.expect("stats");
    assert_eq!(
        (s.waiting, s.active, s.completed_total, s.enqueued_total),
        (0, 0, 1, 1)
    );
}

#[tokio::test]
async fn completed_jobs_are_kept_for_the_keep_window_then_expire() {
    let t = TestRedis::new().await;
    let cfg = QueueConfig {
        keep_completed: Duration::from_millis(300),
        ..fast_config()
    };
    let q = t.queue_with("kept", cfg).await;
    let e = q
        .enqueue_value(&1u32, JobOptions::new())
        .await
        .expect("enqueue");
    let job = q.claim("w", 1).await.expect("claim").remove(0);
    q.settle(&job, Outcome::DoneWith("42".into()))
        .await
        .expect("settle");
    let info = q.job(&e.id).await.expect("lookup").expect("kept");
    assert_eq!(info.state, JobState::Completed);
    assert_eq!(info.result.as_deref(), Some("42"));
    assert!(info.finished_at_ms.is_some());
    let gone = eventually(Duration::from_secs(5), || async {
        q.job(&e.id).await.expect("lookup").is_none()
    })
    .await;
    assert!(gone, "completed job hash did not expire");
}

#[tokio::test]
async fn batch_enqueue_returns_ids_in_order() {
    let t = TestRedis::new().await;
    let q = t.queue("batch").await;
    let jobs: Vec<NewJob> = (0..250)
        .map(|n| NewJob::new(&Email { to: "x".into(), n }, JobOptions::new()).expect("encode"))
        .collect();
    let out = q.enqueue_many(jobs).await.expect("batch");
    assert_eq!(out.len(), 250);
    let mut ids: Vec<&str> = out.iter().map(|e| e.id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 250);
    assert_eq!(q.stats().await.expect("stats").waiting, 250);
    let claimed = q.claim("w", 1000).await.expect("claim");
    let ns: Vec<u32> = claimed
        .iter()
        .map(|j| j.decode::<Email>().expect("decode").n)
        .collect();
    assert_eq!(ns, (0..250).collect::<Vec<_>>(), "FIFO within a level");
}

#[tokio::test]
async fn duplicate_idempotency_key_returns_first_id_and_adds_nothing() {
    let t = TestRedis::new().await;
    let q = t.queue("idem").await;
    let opts = JobOptions::new().idempotency_key("order-17");
    let first = q.enqueue_value(&1u32, opts.clone()).await.expect("first");
    let second = q.enqueue_value(&2u32, opts.clone()).await.expect("second");
    assert!(!first.duplicate);
    assert!(second.duplicate);
    assert_eq!(first.id, second.id);
    // Also within one batch, and after the first job completed.
    let batch = vec![
        NewJob::new(&3u32, JobOptions::new().idempotency_key("order-18")).expect("enc"),
        NewJob::new(&4u32, JobOptions::new().idempotency_key("order-18")).expect("enc"),
    ];
    let out = q.enqueue_many(batch).await.expect("batch");
    assert_eq!(out[0].id, out[1].id);
    assert!(!out[0].duplicate && out[1].duplicate);
    let s = q.stats().await.expect("stats");
    assert_eq!((s.waiting, s.enqueued_total), (2, 2));
    for job in q.claim("w", 10).await.expect("claim") {
        q.settle(&job, Outcome::Done).await.expect("settle");
    }
    let again = q
        .enqueue_value(&5u32, opts)
        .await
        .expect("after completion");
    assert!(again.duplicate);
    assert_eq!(again.id, first.id);
    assert_eq!(q.stats().await.expect("stats").waiting, 0);
}

#[tokio::test]
async fn idempotency_key_expires_after_its_window() {
    let t = TestRedis::new().await;
    let q = t.queue("idem-window").await;
    let opts = JobOptions::new()
        .idempotency_key("k")
        .idempotency_window(Duration::from_millis(100));
    let first = q.enqueue_value(&1u32, opts.clone()).await.expect("first");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let second = q.enqueue_value(&1u32, opts).await.expect("second");
    assert!(!second.duplicate);
    assert_ne!(first.id, second.id);
}

#[tokio::test]
async fn invalid_input_is_refused_before_touching_redis() {
    let t = TestRedis::new().await;
    let cfg = QueueConfig {
        max_payload_bytes: 64,
        max_batch: 3,
        ..fast_config()
    };
    let q = t.queue_with("strict", cfg).await;
    let before = t.keys().await;

    let cases: Vec<(Error, &str)> = vec![
        (
            q.enqueue_value(&1u32, JobOptions::new().priority(PRIORITY_LEVELS))
                .await
                .expect_err("priority"),
            "priority",
        ),
        (
            q.enqueue_value(&1u32, JobOptions::new().max_attempts(0))
                .await
                .expect_err("attempts"),
            "max_attempts",
        ),
        (
            q.enqueue_value(&"x".repeat(100), JobOptions::new())
                .await
                .expect_err("size"),
            "over the maximum",
        ),
        (
            q.enqueue_many(vec![]).await.expect_err("empty"),
            "empty batch",
        ),
        (
            q.enqueue_many(vec![NewJob::raw(vec![1], JobOptions::new()); 4])
                .await
                .expect_err("big batch"),
            "over the maximum",
        ),
        (
            // One bad job refuses the whole batch.
            q.enqueue_many(vec![
                NewJob::raw(vec![1], JobOptions::new()),
                NewJob::raw(vec![1], JobOptions::new().priority(200)),
            ])
            .await
            .expect_err("mixed batch"),
            "priority",
        ),
    ];
    for (err, needle) in cases {
        assert!(err.is_invalid_input(), "{err}");
        assert!(err.to_string().contains(needle), "{err} lacks {needle}");
    }
    for bad in ["a{b}", "a:b", "", "with space", "x#y", "x#", ".."] {
        let err = t.client.queue(bad).await.expect_err("bad name");
        assert!(matches!(err, Error::InvalidName { .. }), "{bad}: {err}");
    }
    assert_eq!(t.keys().await, before, "a refused call changed Redis");
    assert_eq!(q.stats().await.expect("stats").enqueued_total, 0);
}

#[tokio::test]
async fn claims_follow_strict_priority() {
    let t = TestRedis::new().await;
    let q = t.queue("prio").await;
    // Enqueued least urgent first; claimed most urgent first.
    let mut batch = Vec::new();
    for level in [3u8, 2, 1, 0, 3, 0] {
        batch.push(NewJob::new(&level, JobOptions::new().priority(level)).expect("enc"));
    }
    q.enqueue_many(batch).await.expect("enqueue");
    let s = q.stats().await.expect("stats");
    assert_eq!(&s.waiting_by_priority[..4], &[2, 1, 1, 2]);

    let mut order = Vec::new();
    // One at a time: each claim takes the most urgent job left.
    for _ in 0..3 {
        let j = q.claim("w", 1).await.expect("claim").remove(0);
        order.push(j.priority);
    }
    // Then a batch takes the rest, still in priority order.
    order.extend(
        q.claim("w", 10)
            .await
            .expect("claim")
            .iter()
            .map(|j| j.priority),
    );
    assert_eq!(order, [0, 0, 1, 2, 3, 3]);
    // A more urgent job enqueued later overtakes what is still waiting.
    q.enqueue_value(&9u8, JobOptions::new().priority(5))
        .await
        .expect("enq");
    q.enqueue_value(&9u8, JobOptions::new().priority(4))
        .await
        .expect("enq");
    assert_eq!(q.claim("w", 1).await.expect("claim")[0].priority, 4);
}

#[tokio::test]
async fn delayed_jobs_become_ready_at_their_time() {
    let t = TestRedis::new().await;
    let q = t.queue("delayed").await;
    let e = q
        .enqueue_value(
            &1u32,
            JobOptions::new()
                .delay(Duration::from_millis(400))
                .priority(2),
        )
        .await
        .expect("enqueue");
    let info = q.job(&e.id).await.expect("lookup").expect("exists");
    assert_eq!(info.state, JobState::Delayed);
    assert_eq!(q.stats().await.expect("stats").delayed, 1);
    assert!(q.claim("w", 10).await.expect("claim").is_empty());
    let p = q.promote_due(100).await.expect("promote");
    assert_eq!(p.moved, 0);
    assert!(p.next_due.expect("next due") <= Duration::from_millis(400));

    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(q.promote_due(100).await.expect("promote").moved, 1);
    let jobs = q.claim("w", 10).await.expect("claim");
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].priority, 2);
    let info = q.job(&e.id).await.expect("lookup").expect("exists");
    let waited = info.started_at_ms.expect("started") - info.created_at_ms;
    assert!(waited >= 400, "ran after {waited} ms, before its delay");
}

#[tokio::test]
async fn paused_queue_is_not_claimed_until_resumed() {
    let t = TestRedis::new().await;
    let q = t.queue("pause").await;
    q.enqueue_value(&1u32, JobOptions::new())
        .await
        .expect("enqueue");
    q.pause().await.expect("pause");
    assert!(q.stats().await.expect("stats").paused);
    assert!(q.claim("w", 10).await.expect("claim").is_empty());
    q.resume().await.expect("resume");
    assert!(!q.stats().await.expect("stats").paused);
    assert_eq!(q.claim("w", 10).await.expect("claim").len(), 1);
}

#[tokio::test]
async fn failures_retry_with_backoff_then_dead_letter() {
    let t = TestRedis::new().await;
    let q = t.queue("retry").await;
    let e = q
        .enqueue_value(&1u32, JobOptions::new().max_attempts(3))
        .await
        .expect("enqueue");
    for attempt in 1..=3u32 {
        // The retry waits in `delayed` for its backoff (20 ms, then 40 ms).
        let job = &claim_when_ready(&q, "w").await;
        assert_eq!(job.attempt, attempt);
        let status = q
            .settle(
                job,
                Outcome::Retry {
                    reason: format!("boom {attempt}"),
                    after: None,
                },
            )
            .await
            .expect("settle");
        if attempt < 3 {
            assert_eq!(status, Settled::Retry);
            let info = q.job(&e.id).await.expect("lookup").expect("exists");
            assert_eq!(info.state, JobState::Delayed);
            assert_eq!(
                info.last_error.as_deref(),
                Some(format!("boom {attempt}").as_str())
            );
        } else {
            assert_eq!(status, Settled::Dead);
        }
    }
    let dead = q.dead_letters(0, 10).await.expect("dead letters");
    assert_eq!(dead.len(), 1);
    let d = &dead[0];
    assert_eq!(d.id, e.id);
    assert_eq!(d.state, JobState::Dead);
    assert_eq!(d.last_error.as_deref(), Some("boom 3"));
    assert_eq!(
        d.errors.iter().map(|a| a.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let s = q.stats().await.expect("stats");
    assert_eq!(
        (s.dead, s.failed_total, s.retried_total, s.dead_total),
        (1, 3, 2, 1)
    );

    // Re-drive: back to waiting with fresh attempts.
    assert!(q.redrive(&e.id).await.expect("redrive"));
    assert!(!q.redrive(&e.id).await.expect("redrive twice"));
    let job = q.claim("w", 1).await.expect("claim").remove(0);
    assert_eq!(job.attempt, 1);
    assert_eq!(
        q.settle(&job, Outcome::Done).await.expect("settle"),
        Settled::Done
    );
    assert_eq!(q.stats().await.expect("stats").dead, 0);
}

#[tokio::test]
async fn retry_after_bury_and_snooze_outcomes() {
    let t = TestRedis::new().await;
    let q = t.queue("outcomes").await;
    let a = q.enqueue_value(&1u32, JobOptions::new()).await.expect("a");
    let b = q.enqueue_value(&2u32, JobOptions::new()).await.expect("b");
    let jobs = q.claim("w", 2).await.expect("claim");
    let (ja, jb) = (&jobs[0], &jobs[1]);
    let out = q
        .settle_many(vec![
            (ja, Outcome::Bury("bad input".into())),
            (jb, Outcome::Snooze(Duration::from_millis(50))),
        ])
        .await
        .expect("settle");
    assert_eq!(out, [Settled::Dead, Settled::Snoozed]);
    assert_eq!(
        q.job(&a.id)
            .await
            .expect("a")
            .expect("a")
            .last_error
            .as_deref(),
        Some("bad input")
    );
    let snoozed = q.job(&b.id).await.expect("b").expect("b");
    assert_eq!((snoozed.state, snoozed.attempt), (JobState::Delayed, 0));

    // An explicit Retry { after } uses its own delay and counts an attempt.
    tokio::time::sleep(Duration::from_millis(80)).await;
    q.promote_due(10).await.expect("promote");
    let jb = q.claim("w", 1).await.expect("claim").remove(0);
    assert_eq!(jb.attempt, 1);
    let st = q
        .settle(
            &jb,
            Outcome::Retry {
                reason: "later".into(),
                after: Some(Duration::from_secs(60)),
            },
        )
        .await
        .expect("settle");
    assert_eq!(st, Settled::Retry);
    let info = q.job(&b.id).await.expect("b").expect("b");
    assert!(info.due_at_ms.expect("due") >= info.started_at_ms.expect("started") + 59_000);
}

#[tokio::test]
async fn dead_letters_list_delete_and_purge() {
    let t = TestRedis::new().await;
    let cfg = QueueConfig {
        dead_letter_cap: 5,
        ..fast_config()
    };
    let q = t.queue_with("dead", cfg).await;
    let batch = (0..8u32)
        .map(|n| NewJob::new(&n, JobOptions::new()).expect("enc"))
        .collect();
    let ids: Vec<String> = q
        .enqueue_many(batch)
        .await
        .expect("enq")
        .into_iter()
        .map(|e| e.id)
        .collect();
    for job in q.claim("w", 8).await.expect("claim") {
        q.settle(
            &job,
            Outcome::Bury(format!("reason {}", job.decode::<u32>().expect("dec"))),
        )
        .await
        .expect("bury");
    }
    // Capped at 5: the 3 oldest are gone, hashes included.
    let dead = q.dead_letters(0, 100).await.expect("list");
    assert_eq!(dead.len(), 5);
    assert_eq!(
        dead[0].last_error.as_deref(),
        Some("reason 7"),
        "newest first"
    );
    for old in &ids[..3] {
        assert!(
            q.job(old).await.expect("lookup").is_none(),
            "capped dead letter kept"
        );
    }
    assert_eq!(q.dead_letters(1, 2).await.expect("page").len(), 2);

    assert!(q.delete_dead(&ids[7]).await.expect("delete"));
    assert!(!q.delete_dead(&ids[7]).await.expect("delete again"));
    assert!(q.job(&ids[7]).await.expect("lookup").is_none());
    assert_eq!(q.purge_dead().await.expect("purge"), 4);
    assert!(q.dead_letters(0, 10).await.expect("list").is_empty());

    // Re-drive all.
    let more = (0..3u32)
        .map(|n| NewJob::new(&n, JobOptions::new()).expect("enc"))
        .collect();
    q.enqueue_many(more).await.expect("enq");
    for job in q.claim("w", 3).await.expect("claim") {
        q.settle(&job, Outcome::Bury("x".into()))
            .await
            .expect("bury");
    }
    assert_eq!(q.redrive_all().await.expect("redrive all"), 3);
    assert_eq!(q.stats().await.expect("stats").waiting, 3);
}

#[tokio::test]
async fn reclaimed_job_fences_out_its_old_worker() {
    let t = TestRedis::new().await;
    let q = t.queue("fence").await; // visibility timeout 600 ms
    let e = q
        .enqueue_value(&1u32, JobOptions::new())
        .await
        .expect("enqueue");
    let old = q.claim("worker-a", 1).await.expect("claim").remove(0);

    // Not idle long enough yet: nothing to reclaim.
    assert_eq!(
        q.reclaim_lost("worker-b").await.expect("reclaim").retried,
        0
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = q.reclaim_lost("worker-b").await.expect("reclaim");
    assert_eq!((r.retried, r.dead), (1, 0));
    let info = q.job(&e.id).await.expect("lookup").expect("exists");
    assert!(info.last_error.expect("error").contains("worker lost"));

    // The new owner runs it (attempt 2) and completes it.
    let new = &claim_when_ready(&q, "worker-b").await;
    assert_eq!(new.attempt, 2);

    // The presumed-dead worker comes back: its outcome is refused, whether
    // it arrives before or after the new owner's.
    let stale = q
        .settle(
            &old,
            Outcome::Retry {
                reason: "late".into(),
                after: None,
            },
        )
        .await
        .expect("settle");
    assert_eq!(stale, Settled::Fenced);
    assert_eq!(
        q.job(&e.id).await.expect("lookup").expect("exists").state,
        JobState::Active
    );
    assert_eq!(
        q.settle(new, Outcome::Done).await.expect("settle"),
        Settled::Done
    );
    assert_eq!(
        q.settle(&old, Outcome::Done).await.expect("settle"),
        Settled::Gone
    );
    let s = q.stats().await.expect("stats");
    assert_eq!((s.completed_total, s.active, s.waiting), (1, 0, 0));
}

#[tokio::test]
async fn reclaim_after_last_attempt_dead_letters() {
    let t = TestRedis::new().await;
    let q = t.queue("reclaim-dead").await;
    q.enqueue_value(&1u32, JobOptions::new().max_attempts(1))
        .await
        .expect("enqueue");
    q.claim("crashed", 1).await.expect("claim");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = q.reclaim_lost("rescuer").await.expect("reclaim");
    assert_eq!((r.retried, r.dead), (0, 1));
    let dead = q.dead_letters(0, 10).await.expect("dead");
    assert!(
        dead[0]
            .last_error
            .as_deref()
            .expect("reason")
            .contains("visibility timeout")
    );
}

#[tokio::test]
async fn queues_are_registered_and_share_one_hash_tag() {
    let t = TestRedis::new().await;
    let q = t.queue("alpha").await;
    t.queue("beta").await;
    assert_eq!(t.client.queues().await.expect("queues"), ["alpha", "beta"]);
    q.enqueue_value(&1u32, JobOptions::new().delay(Duration::from_secs(60)))
        .await
        .expect("enq");
    for key in t.keys().await {
        if key != format!("{}:queues", t.prefix) {
            assert!(
                key.starts_with(&format!("{}:{{alpha}}:", t.prefix)) || key.contains("{beta}"),
                "{key}"
            );
        }
    }
}

#[tokio::test]
async fn export_then_import_brings_every_unfinished_job_back_in_its_state() {
    let t = TestRedis::new().await;
    let q = t.queue("backup-src").await;
    let waiting = q
        .enqueue_value(&1u32, JobOptions::new().priority(3))
        .await
        .expect("enqueue");
    let delayed = q
        .enqueue_value(&2u32, JobOptions::new().delay(Duration::from_secs(3600)))
        .await
        .expect("enqueue");
    let dying = q
        .enqueue_value(&3u32, JobOptions::new())
        .await
        .expect("enqueue");
    let active = q
        .enqueue_value(&4u32, JobOptions::new())
        .await
        .expect("enqueue");
    let done = q
        .enqueue_value(&5u32, JobOptions::new())
        .await
        .expect("enqueue");
    // Claim dying, active and done (waiting is at a lower priority level).
    let claimed = q.claim("w1", 3).await.expect("claim");
    assert_eq!(claimed.len(), 3);
    for job in &claimed {
        let outcome = if job.id == dying.id {
            Some(Outcome::Bury("broken".into()))
        } else if job.id == done.id {
            Some(Outcome::Done)
        } else {
            None
        };
        if let Some(o) = outcome {
            q.settle(job, o).await.expect("settle");
        }
    }
    let records = q.export().await.expect("export");
    let mut ids: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
    ids.sort();
    let mut want = vec![
        waiting.id.as_str(),
        delayed.id.as_str(),
        dying.id.as_str(),
        active.id.as_str(),
    ];
    want.sort();
    assert_eq!(ids, want, "completed jobs are not exported");

    // Into another queue (an empty Redis after a restore looks the same).
    let r = t.queue("backup-dst").await;
    assert_eq!(r.import(&records).await.expect("import"), 4);
    assert_eq!(r.import(&records).await.expect("import again"), 0);
    let state = |id: &str| {
        let r = r.clone();
        let id = id.to_owned();
        async move { r.job(&id).await.expect("lookup").expect("exists").state }
    };
    assert_eq!(state(&waiting.id).await, JobState::Waiting);
    assert_eq!(state(&active.id).await, JobState::Waiting);
    assert_eq!(state(&delayed.id).await, JobState::Delayed);
    assert_eq!(state(&dying.id).await, JobState::Dead);
    let dead = r.dead_letters(0, 10).await.expect("dead");
    assert_eq!(dead[0].last_error.as_deref(), Some("broken"));
    let stats = r.stats().await.expect("stats");
    assert_eq!((stats.waiting, stats.delayed, stats.dead), (2, 1, 1));
    let back = r.claim("w2", 2).await.expect("claim");
    assert_eq!(back[0].decode::<u32>().expect("payload"), 4);
    assert_eq!(back[1].decode::<u32>().expect("payload"), 1);
}

#[tokio::test]
async fn jobs_are_listed_by_state_in_serving_order_and_paged() {
    let t = TestRedis::new().await;
    let q = t.queue("listing").await;
    let mut ids = Vec::new();
    for priority in [5u8, 1, 5, 0] {
        let e = q
            .enqueue_value(&priority, JobOptions::new().priority(priority))
            .await
            .expect("enqueue");
        ids.push(e.id);
    }
    let later = q
        .enqueue_value(&"later", JobOptions::new().delay(Duration::from_secs(60)))
        .await
        .expect("enqueue delayed")
        .id;
    let listed = |state| {
        let q = q.clone();
        async move {
            q.jobs_in_state(state, 0, 100)
                .await
                .expect("list")
                .into_iter()
                .map(|j| j.id)
                .collect::<Vec<_>>()
        }
    };
    // Most urgent first, then oldest first within a level.
    assert_eq!(
        listed(JobState::Waiting).await,
        vec![
            ids[3].clone(),
            ids[1].clone(),
            ids[0].clone(),
            ids[2].clone()
        ]
    );
    assert_eq!(listed(JobState::Delayed).await, vec![later]);
    assert!(listed(JobState::Active).await.is_empty());

    // Claiming moves the two most urgent to active.
    let claimed = q.claim("c1", 2).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    assert_eq!(
        listed(JobState::Active).await,
        vec![ids[3].clone(), ids[1].clone()]
    );
    assert_eq!(
        listed(JobState::Waiting).await,
        vec![ids[0].clone(), ids[2].clone()]
    );
    let page = q
        .jobs_in_state(JobState::Waiting, 1, 1)
        .await
        .expect("page");
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, ids[2]);
    assert_eq!(page[0].state, JobState::Waiting);

    // Buried: dead, and no longer active.
    q.settle(&claimed[0], Outcome::Bury("bad".into()))
        .await
        .expect("settle");
    assert_eq!(listed(JobState::Dead).await, vec![ids[3].clone()]);
    assert_eq!(listed(JobState::Active).await, vec![ids[1].clone()]);
    assert!(listed(JobState::Completed).await.is_empty());
}

#[tokio::test]
async fn dead_letters_are_found_by_text_in_their_error() {
    let t = TestRedis::new().await;
    let q = t.queue("finddead").await;
    for i in 0..5u32 {
        q.enqueue_value(&i, JobOptions::new())
            .await
            .expect("enqueue");
    }
    let jobs = q.claim("c1", 5).await.expect("claim");
    let outcomes = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| {
            let why = if i % 2 == 0 {
                "Timeout talking to upstream"
            } else {
                "bad input"
            };
            (j, Outcome::Bury(format!("{why} #{i}")))
        })
        .collect();
    q.settle_many(outcomes).await.expect("settle");
    let (found, matched) = q.find_dead("TIMEOUT", 0, 10).await.expect("find");
    assert_eq!(matched, 3);
    assert!(found.iter().all(|j| {
        j.last_error
            .as_deref()
            .is_some_and(|e| e.contains("Timeout"))
    }));
    let (page, matched) = q.find_dead("timeout", 2, 10).await.expect("page");
    assert_eq!((page.len(), matched), (1, 3));
    let (none, matched) = q.find_dead("no such text", 0, 10).await.expect("none");
    assert!(none.is_empty() && matched == 0);
}

/// Length of a queue's stream of priority `level`.
async fn stream_len(t: &TestRedis, queue: &str, level: u8) -> u64 {
    let key = format!("{}:{{{queue}}}:p:{level}", t.prefix);
    t.query(redis::cmd("XLEN").arg(key)).await
}

#[tokio::test]
async fn finished_entries_are_trimmed_and_counts_stay_exact() {
    let t = TestRedis::new().await;
    let q = t.queue("trim").await;
    let batch = |n: u32| -> Vec<NewJob> {
        (0..n)
            .map(|n| NewJob::new(&Email { to: "t".into(), n }, JobOptions::new()).expect("job"))
            .collect()
    };
    q.enqueue_many(batch(1000)).await.expect("enqueue");
    // Settle 990 in batches, leaving 10 waiting: finished entries leave the
    // stream, up to a node's worth (100) that waits for its trim.
    for _ in 0..99 {
        let jobs = q.claim("w", 10).await.expect("claim");
        let outcomes = jobs.iter().map(|j| (j, Outcome::Done)).collect();
        q.settle_many(outcomes).await.expect("settle");
    }
    let s = q.stats().await.expect("stats");
    assert_eq!((s.waiting, s.active, s.completed_total), (10, 0, 990));
    assert!(stream_len(&t, "trim", 0).await <= 110);
    assert_eq!(
        q.jobs_in_state(JobState::Waiting, 0, 100)
            .await
            .expect("list")
            .len(),
        10
    );
    assert!(
        q.jobs_in_state(JobState::Active, 0, 100)
            .await
            .expect("list")
            .is_empty()
    );
    assert_eq!(
        q.export().await.expect("export").len(),
        10,
        "finished entries are not exported"
    );
}

#[tokio::test]
async fn a_long_running_job_does_not_keep_finished_entries_in_redis() {
    let t = TestRedis::new().await;
    let q = t.queue("long").await;
    let job = |n: u32| NewJob::new(&Email { to: "l".into(), n }, JobOptions::new()).expect("job");
    let long = q.enqueue_many(vec![job(0)]).await.expect("enqueue")[0]
        .id
        .clone();
    let held = q.claim("slow", 1).await.expect("claim");
    assert_eq!(held[0].id, long);
    // Entries added more than the linger time (2 s) after the held one:
    // they are deleted as they finish, since the held entry stops the trim.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    q.enqueue_many((1..=500).map(job).collect())
        .await
        .expect("enqueue");
    loop {
        let jobs = q.claim("fast", 50).await.expect("claim");
        if jobs.is_empty() {
            break;
        }
        let outcomes = jobs.iter().map(|j| (j, Outcome::Done)).collect();
        q.settle_many(outcomes).await.expect("settle");
    }
    // The held entry and the group's last-delivered entry remain.
    assert!(stream_len(&t, "long", 0).await <= 2);
    q.enqueue_many((501..=507).map(job).collect())
        .await
        .expect("enqueue");
    let s = q.stats().await.expect("stats");
    assert_eq!((s.waiting, s.active, s.completed_total), (7, 1, 500));
    let active = q
        .jobs_in_state(JobState::Active, 0, 10)
        .await
        .expect("list");
    assert_eq!(
        active.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        [long.as_str()]
    );
    q.settle(&held[0], Outcome::Done).await.expect("settle");
    assert_eq!(q.stats().await.expect("stats").active, 0);
}

/// A job as an earlier version wrote it, by hand: a hash with `payload`
/// and `fields`, and an entry holding only its id on its level's stream.
async fn write_heavy_job(
    t: &TestRedis,
    queue: &str,
    id: &str,
    payload: &[u8],
    fields: &[(&str, &str)],
) {
    let base = format!("{}:{{{queue}}}:", t.prefix);
    let level = fields
        .iter()
        .find(|(k, _)| *k == "prio")
        .map_or("0", |(_, v)| *v);
    let _: () = t
        .query(
            redis::cmd("HSET")
                .arg(format!("{base}job:{id}"))
                .arg("payload")
                .arg(payload)
                .arg(fields),
        )
        .await;
    let _: String = t
        .query(
            redis::cmd("XADD")
                .arg(format!("{base}p:{level}"))
                .arg("*")
                .arg("i")
                .arg(id),
        )
        .await;
}

/// A queue as the two earlier storage versions left it, written before any
/// handle of this version opened it: a job hash with `max`, `to` and `cat`
/// apart (before `run`), and light entries that begin with their id (`i p
/// r b`) and are found through the index hash `ix`: two waiting, one
/// running for a worker that died (`old-w`), one delivered to its blocking
/// reads' name and never activated, one finished (delivered and
/// acknowledged, lingering until a trim), and one index field whose entry
/// is gone. Returns the light ids in that order.
async fn write_earlier_queue(t: &TestRedis, queue: &str) -> Vec<String> {
    let base = format!("{}:{{{queue}}}:", t.prefix);
    for level in 0..PRIORITY_LEVELS {
        let _: () = t
            .query(
                redis::cmd("XGROUP")
                    .arg("CREATE")
                    .arg(format!("{base}p:{level}"))
                    .arg("workers")
                    .arg("0")
                    .arg("MKSTREAM"),
            )
            .await;
    }
    let payload = |n: u32| {
        rmp_serde::to_vec_named(&Email {
            to: "old@y.z".into(),
            n,
        })
        .expect("encode")
    };
    write_heavy_job(
        t,
        queue,
        "old-heavy",
        &payload(0),
        &[
            ("prio", "0"),
            ("att", "0"),
            ("max", "2"),
            ("bo", "1,1,1,0"),
            ("to", "5000"),
            ("fence", "0"),
            ("cat", "1700000000000"),
            ("state", "waiting"),
            ("due", "1700000000000"),
        ],
    )
    .await;
    let ids: Vec<String> = (1..=6u32)
        .map(|n| format!("0190c0ffee00700080000000000000{n:02}"))
        .collect();
    // Entries in the order the group reads them: the finished one, the
    // running one, the one delivered to blocking reads, then the two
    // waiting ones (not read yet) and the one deleted since.
    let mut entries = Vec::new();
    for n in [5usize, 3, 4, 1, 2, 6] {
        let id = &ids[n - 1];
        let eid: String = t
            .query(
                redis::cmd("XADD")
                    .arg(format!("{base}p:1"))
                    .arg("*")
                    .arg("i")
                    .arg(id)
                    .arg("p")
                    .arg(payload(n as u32))
                    .arg("r")
                    .arg("2,0")
                    .arg("b")
                    .arg("1,1,1,0"),
            )
            .await;
        let _: () = t
            .query(
                redis::cmd("HSET")
                    .arg(format!("{base}ix"))
                    .arg(id)
                    .arg(format!("1 {eid}")),
            )
            .await;
        entries.push(eid);
    }
    for consumer in ["old-done", "old-w", "old-w~b"] {
        let _: redis::Value = t
            .query(
                redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg("workers")
                    .arg(consumer)
                    .arg("COUNT")
                    .arg(1)
                    .arg("STREAMS")
                    .arg(format!("{base}p:1"))
                    .arg(">"),
            )
            .await;
    }
    let _: i64 = t
        .query(
            redis::cmd("XACK")
                .arg(format!("{base}p:1"))
                .arg("workers")
                .arg(&entries[0]),
        )
        .await;
    let _: i64 = t
        .query(
            redis::cmd("XDEL")
                .arg(format!("{base}p:1"))
                .arg(&entries[5]),
        )
        .await;
    ids
}

/// Fields of the queue's keys that only the earlier storage versions
/// wrote: the index hash, and job hashes' `max`, `to` and `cat`.
async fn earlier_layout_left(t: &TestRedis, queue: &str) -> Vec<String> {
    let base = format!("{}:{{{queue}}}:", t.prefix);
    let mut left = Vec::new();
    for key in t.keys().await {
        if key == format!("{base}ix") {
            left.push(key);
        } else if key.starts_with(&format!("{base}job:")) {
            let old: Vec<Option<String>> = t
                .query(
                    redis::cmd("HMGET")
                        .arg(&key)
                        .arg("max")
                        .arg("to")
                        .arg("cat"),
                )
                .await;
            if old.iter().any(Option::is_some) {
                left.push(key);
            }
        }
    }
    left
}

/// A queue written by the earlier storage versions is migrated when a
/// handle first opens it: the version is recorded, nothing of the old
/// layouts is left, and every job is where it was: waiting jobs run, the
/// dead worker's job is reclaimed and runs again, the job delivered to its
/// blocking reads goes back in line with no attempt spent, and the
/// finished ones stay finished.
#[tokio::test]
async fn a_queue_of_earlier_storage_versions_is_migrated_when_opened() {
    let t = TestRedis::new().await;
    let ids = write_earlier_queue(&t, "earlier").await;
    let q = t.queue("earlier").await;
    let base = format!("{}:{{earlier}}:", t.prefix);
    let version: Option<String> = t
        .query(redis::cmd("HGET").arg(format!("{base}meta")).arg("sv"))
        .await;
    assert_eq!(version.as_deref(), Some("3"));
    assert_eq!(
        earlier_layout_left(&t, "earlier").await,
        Vec::<String>::new()
    );

    let heavy = q.job("old-heavy").await.expect("lookup").expect("exists");
    assert_eq!(
        (
            heavy.state,
            heavy.max_attempts,
            heavy.timeout_ms,
            heavy.created_at_ms
        ),
        (JobState::Waiting, 2, Some(5000), 1_700_000_000_000)
    );
    let state = |n: usize| {
        let q = &q;
        let id = ids[n - 1].clone();
        async move {
            q.job(&id)
                .await
                .expect("lookup")
                .map(|j| (j.state, j.max_attempts))
        }
    };
    assert_eq!(state(1).await, Some((JobState::Waiting, 2)));
    assert_eq!(state(2).await, Some((JobState::Waiting, 2)));
    assert_eq!(state(3).await, Some((JobState::Active, 2)));
    assert_eq!(state(4).await, Some((JobState::Waiting, 2)));
    assert_eq!(state(5).await, None, "it finished");
    assert_eq!(state(6).await, None, "its entry is gone");

    // The dead worker's job and the one its blocking reads held go back.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = q.reclaim_lost("rescuer").await.expect("reclaim");
    assert_eq!((r.retried, r.requeued, r.dead), (1, 1, 0));
    let mut ran = Vec::new();
    for _ in 0..5 {
        let job = claim_when_ready(&q, "w").await;
        ran.push((job.id.clone(), job.attempt));
        assert_eq!(
            q.settle(&job, Outcome::Done).await.expect("settle"),
            Settled::Done
        );
    }
    ran.sort();
    let mut expected = vec![
        ("old-heavy".to_string(), 1),
        (ids[0].clone(), 1),
        (ids[1].clone(), 1),
        (ids[2].clone(), 2),
        (ids[3].clone(), 1),
    ];
    expected.sort();
    assert_eq!(ran, expected);
    let s = q.stats().await.expect("stats");
    assert_eq!((s.waiting, s.active, s.dead), (0, 0, 0));
}

/// The migration goes a page at a time and records how far it got, so a
/// process stopped half-way leaves a queue the next one finishes; a page
/// run twice (its reply was lost) changes nothing more than once.
#[tokio::test]
async fn the_storage_migration_resumes_and_is_safe_to_replay() {
    let t = TestRedis::new().await;
    let ids = write_earlier_queue(&t, "halfway").await;
    let base = format!("{}:{{halfway}}:", t.prefix);
    let source = sluice_engine::script_source("migrate.lua").expect("migrate.lua");
    let script = redis::Script::new(source);
    let step = || {
        let mut inv = script.prepare_invoke();
        inv.key(format!("{base}meta"))
            .key(format!("{base}slot-probe"))
            .key(format!("{base}ix"))
            .key(format!("{base}cx"));
        for level in 0..PRIORITY_LEVELS {
            inv.key(format!("{base}p:{level}"));
        }
        inv.arg(&base).arg(1).arg(3);
        inv
    };
    // One node's script: on a cluster (the queue tests run there too) the
    // open below does every step itself.
    let url = common::redis_url();
    let mut conn = if url.starts_with("redis+cluster://") {
        None
    } else {
        Some(
            redis::Client::open(url.as_str())
                .expect("url")
                .get_multiplexed_async_connection()
                .await
                .expect("connect"),
        )
    };
    if let Some(conn) = conn.as_mut() {
        // Four pages, as a caller resending each call after a lost reply
        // would: each continues where the one before stopped.
        for _ in 0..2 {
            let first: i64 = step().invoke_async(conn).await.expect("step");
            let again: i64 = step().invoke_async(conn).await.expect("replay");
            assert_eq!((first, again), (0, 0), "more pages remain");
        }
    }
    // A cursor another Redis made (a failover, the slot moved) is not
    // followed: the walk starts again.
    let _: () = t
        .query(
            redis::cmd("HSET")
                .arg(format!("{base}meta"))
                .arg("sv_step")
                .arg("hashes 8191 0123456789abcdef"),
        )
        .await;
    let q = t.queue("halfway").await;
    assert_eq!(
        earlier_layout_left(&t, "halfway").await,
        Vec::<String>::new()
    );
    if let Some(conn) = conn.as_mut() {
        let done: i64 = step().invoke_async(conn).await.expect("after");
        assert_eq!(done, 1, "a migrated queue answers at once");
    }
    let waiting: Vec<_> = [0usize, 1, 3].iter().map(|&i| ids[i].clone()).collect();
    for id in &waiting {
        let job = q.job(id).await.expect("lookup").expect("exists");
        assert_eq!((job.state, job.attempt), (JobState::Waiting, 0));
    }
    let running = q.job(&ids[2]).await.expect("lookup").expect("exists");
    assert_eq!((running.state, running.attempt), (JobState::Active, 1));
}

#[tokio::test]
async fn counts_listings_and_exports_recreate_streams_redis_lost() {
    let t = TestRedis::new().await;
    let q = t.queue("lost").await;
    let job = NewJob::new(
        &Email {
            to: "l".into(),
            n: 1,
        },
        JobOptions::new(),
    )
    .expect("job");
    q.enqueue_many(vec![job]).await.expect("enqueue");
    // Redis loses the streams (a flush, a failover to a stale replica).
    for level in 0..PRIORITY_LEVELS {
        let _: i64 = t
            .query(redis::cmd("DEL").arg(format!("{}:{{lost}}:p:{level}", t.prefix)))
            .await;
    }
    let s = q.stats().await.expect("stats after the loss");
    assert_eq!((s.waiting, s.active), (0, 0));
    assert!(
        q.jobs_in_state(JobState::Waiting, 0, 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        q.jobs_in_state(JobState::Active, 0, 10)
            .await
            .expect("list")
            .is_empty()
    );
    assert!(q.export().await.expect("export").is_empty());
    // The queue works again.
    let again = NewJob::new(
        &Email {
            to: "l".into(),
            n: 2,
        },
        JobOptions::new(),
    )
    .expect("job");
    q.enqueue_many(vec![again]).await.expect("enqueue");
    assert_eq!(q.stats().await.expect("stats").waiting, 1);
    assert_eq!(
        claim_when_ready(&q, "w")
            .await
            .decode::<Email>()
            .expect("decode")
            .n,
        2
    );
}

/// Jobs written by the version before light jobs (a hash with `run`, an
/// entry holding only the id) still run, in priority order with new ones.
#[tokio::test]
async fn jobs_in_the_previous_layout_run_beside_light_ones() {
    let t = TestRedis::new().await;
    let q = t.queue("upgrade").await;
    let payload = rmp_serde::to_vec_named(&Email {
        to: "prev@b.c".into(),
        n: 1,
    })
    .expect("encode");
    write_heavy_job(
        &t,
        "upgrade",
        "prev-1",
        &payload,
        &[
            ("prio", "1"),
            ("bo", "1,1,1,0"),
            ("run", "2,0,1700000000000"),
        ],
    )
    .await;
    let light = q
        .enqueue_value(
            &Email {
                to: "new@b.c".into(),
                n: 2,
            },
            JobOptions::new().priority(0),
        )
        .await
        .expect("enqueue");
    let prev = q.job("prev-1").await.expect("lookup").expect("exists");
    assert_eq!((prev.state, prev.max_attempts), (JobState::Waiting, 2));

    let first = claim_when_ready(&q, "w").await;
    assert_eq!((first.id.as_str(), first.fence()), (light.id.as_str(), 0));
    let second = claim_when_ready(&q, "w").await;
    assert_eq!(second.id, "prev-1");
    assert_eq!(second.decode::<Email>().expect("decode").n, 1);
    assert_eq!((second.attempt, second.fence()), (1, 1));
    assert_eq!(
        q.settle_many(vec![(&first, Outcome::Done), (&second, Outcome::Done)])
            .await
            .expect("settle"),
        vec![Settled::Done, Settled::Done]
    );
    let s = q.stats().await.expect("stats");
    assert_eq!((s.completed_total, s.waiting, s.active), (2, 0, 0));
    assert!(q.job("prev-1").await.expect("lookup").is_none());
    assert!(q.job(&light.id).await.expect("lookup").is_none());
}

/// A light job's id is its place (queue epoch, level, entry id): no index
/// is written, ids never repeat between queues filled at the same instant,
/// and a lookup by an id of another queue finds nothing.
#[tokio::test]
async fn light_ids_name_their_entry_and_are_unique_across_queues() {
    let t = TestRedis::new().await;
    let a = t.queue("ids-a").await;
    let b = t.queue("ids-b").await;
    let batch = || -> Vec<NewJob> {
        (0..200u32)
            .map(|n| NewJob::new(&n, JobOptions::new().priority((n % 3) as u8)).expect("job"))
            .collect()
    };
    let (ea, eb) = tokio::join!(a.enqueue_many(batch()), b.enqueue_many(batch()));
    let (ea, eb) = (ea.expect("enqueue a"), eb.expect("enqueue b"));
    let mut all: std::collections::HashSet<String> = ea.iter().map(|e| e.id.clone()).collect();
    all.extend(eb.iter().map(|e| e.id.clone()));
    assert_eq!(all.len(), 400, "ids repeat");
    for queue in ["ids-a", "ids-b"] {
        let index: usize = t
            .query(redis::cmd("EXISTS").arg(format!("{}:{{{queue}}}:ix", t.prefix)))
            .await;
        assert_eq!(index, 0, "{queue} wrote an index");
    }
    let info = a.job(&ea[7].id).await.expect("lookup").expect("exists");
    assert_eq!((info.state, info.priority), (JobState::Waiting, 1));
    assert_eq!(info.payload, rmp_serde::to_vec_named(&7u32).expect("enc"));
    assert!(b.job(&ea[7].id).await.expect("lookup").is_none());
    assert!(a.job("ffff-1-1-0").await.expect("lookup").is_none());
    let listed = a
        .jobs_in_state(JobState::Waiting, 0, 1000)
        .await
        .expect("list");
    assert_eq!(listed.len(), 200);
    assert!(listed.iter().all(|j| ea.iter().any(|e| e.id == j.id)));
}

/// A light job has no hash, yet lookups, exports and imports see it as
/// they see any job, and a failure gives it one.
#[tokio::test]
async fn a_light_job_is_looked_up_exported_and_failed_like_any() {
    let t = TestRedis::new().await;
    let q = t.queue("light").await;
    let options = JobOptions::new()
        .priority(2)
        .max_attempts(3)
        .idempotency_key("light-1");
    let e = q.enqueue_value(&7u32, options).await.expect("enqueue");
    let info = q.job(&e.id).await.expect("lookup").expect("exists");
    assert_eq!(
        (info.state, info.priority, info.attempt, info.max_attempts),
        (JobState::Waiting, 2, 0, 3)
    );
    assert_eq!(info.idempotency_key.as_deref(), Some("light-1"));
    assert_eq!(info.payload, rmp_serde::to_vec_named(&7u32).expect("enc"));
    assert!(info.created_at_ms > 1_700_000_000_000);

    let exported = q.export().await.expect("export");
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0].id, e.id);
    let copy = t.queue("light-copy").await;
    assert_eq!(copy.import(&exported).await.expect("import"), 1);
    let copied = copy.job(&e.id).await.expect("lookup").expect("exists");
    assert_eq!((copied.state, copied.max_attempts), (JobState::Waiting, 3));
    assert_eq!(copied.payload, info.payload);

    let job = claim_when_ready(&q, "w").await;
    let active = q.job(&e.id).await.expect("lookup").expect("exists");
    assert_eq!(
        (active.state, active.attempt, active.worker.as_deref()),
        (JobState::Active, 1, Some("w"))
    );
    let retry = Outcome::Retry {
        reason: "flaky".into(),
        after: Some(Duration::ZERO),
    };
    assert_eq!(q.settle(&job, retry).await.expect("settle"), Settled::Retry);
    let failed = q.job(&e.id).await.expect("lookup").expect("exists");
    assert_eq!((failed.attempt, failed.max_attempts), (1, 3));
    assert_eq!(failed.last_error.as_deref(), Some("flaky"));
    let again = claim_when_ready(&q, "w").await;
    assert_eq!((again.id.as_str(), again.attempt), (e.id.as_str(), 2));
    assert_eq!(again.payload, info.payload);
    assert_eq!(
        q.settle(&again, Outcome::Done).await.expect("settle"),
        Settled::Done
    );
    assert!(q.job(&e.id).await.expect("lookup").is_none());
}

/// An operator cancels waiting (light and heavy) and delayed jobs: each is
/// a dead letter at once with the reason, no claim runs it, waiting counts
/// drop at once, a second cancel answers the same, and a re-drive brings
/// it back to run.
#[tokio::test]
async fn cancelled_waiting_and_delayed_jobs_become_dead_letters_at_once() {
    use sluice_engine::Cancelled;
    let t = TestRedis::new().await;
    let q = t.queue("cancel-waiting").await;
    let light = q
        .enqueue_value(&1u32, JobOptions::new())
        .await
        .expect("enq")
        .id;
    let later = q
        .enqueue_value(&2u32, JobOptions::new().delay(Duration::from_secs(60)))
        .await
        .expect("enq")
        .id;
    let kept = q
        .enqueue_value(&3u32, JobOptions::new())
        .await
        .expect("enq")
        .id;
    assert_eq!(
        q.cancel(&light).await.expect("cancel"),
        Cancelled::Cancelled
    );
    assert_eq!(q.cancel(&light).await.expect("again"), Cancelled::Cancelled);
    assert_eq!(
        q.cancel(&later).await.expect("cancel"),
        Cancelled::Cancelled
    );
    assert_eq!(
        q.cancel("no-such-job").await.expect("cancel"),
        Cancelled::Missing
    );
    for id in [&light, &later] {
        let info = q.job(id).await.expect("lookup").expect("kept");
        assert_eq!(info.state, JobState::Dead, "{info:?}");
        assert_eq!(info.last_error.as_deref(), Some("cancelled by an operator"));
    }
    let s = q.stats().await.expect("stats");
    assert_eq!((s.waiting, s.delayed, s.dead), (1, 0, 2), "{s:?}");

    // The claim reads past the cancelled entry and takes only the other.
    let job = claim_when_ready(&q, "w").await;
    assert_eq!(job.id, kept);
    assert!(q.claim("w", 10).await.expect("claim").is_empty());
    q.settle(&job, Outcome::Done).await.expect("settle");

    // Re-driven, it waits as a heavy job; cancelled again, then re-driven
    // again, it runs once.
    assert!(q.redrive(&light).await.expect("redrive"));
    assert_eq!(q.stats().await.expect("stats").waiting, 1);
    assert_eq!(
        q.cancel(&light).await.expect("cancel"),
        Cancelled::Cancelled
    );
    assert_eq!(q.stats().await.expect("stats").waiting, 0);
    assert!(q.redrive(&light).await.expect("redrive"));
    let job = claim_when_ready(&q, "w").await;
    assert_eq!(job.id, light);
    assert!(q.claim("w", 10).await.expect("claim").is_empty());
    assert_eq!(
        q.settle(&job, Outcome::Done).await.expect("settle"),
        Settled::Done
    );
    assert_eq!(
        q.cancel(&later).await.expect("cancel"),
        Cancelled::Cancelled,
        "a replay answers as the first call"
    );
}

/// A running job's cancel is a request: its outcome, whatever it is
/// unless a success, buries the job; a job whose worker dies is buried by
/// the reclaim instead of retried.
#[tokio::test]
async fn a_running_jobs_cancel_buries_it_at_its_outcome_or_its_reclaim() {
    use sluice_engine::Cancelled;
    let t = TestRedis::new().await;
    let q = t.queue("cancel-running").await; // visibility timeout 600 ms
    for n in 0..3u32 {
        q.enqueue_value(&n, JobOptions::new()).await.expect("enq");
    }
    let failing = claim_when_ready(&q, "w").await;
    let finishing = claim_when_ready(&q, "w").await;
    let lost = claim_when_ready(&q, "w").await;
    for job in [&failing, &finishing, &lost] {
        assert_eq!(
            q.cancel(&job.id).await.expect("cancel"),
            Cancelled::Requested
        );
    }
    let retry = Outcome::Retry {
        reason: "stopped".into(),
        after: None,
    };
    assert_eq!(
        q.settle(&failing, retry).await.expect("settle"),
        Settled::Dead
    );
    let info = q.job(&failing.id).await.expect("lookup").expect("dead");
    assert_eq!(
        info.last_error.as_deref(),
        Some("cancelled by an operator: stopped")
    );
    assert_eq!(
        q.settle(&finishing, Outcome::Done).await.expect("settle"),
        Settled::Done
    );

    // `lost`'s worker died: the reclaim buries it instead of retrying it.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = q.reclaim_lost("rescuer").await.expect("reclaim");
    assert_eq!((r.retried, r.dead), (0, 1), "{r:?}");
    let info = q.job(&lost.id).await.expect("lookup").expect("dead");
    assert_eq!(info.state, JobState::Dead);
    assert_eq!(info.last_error.as_deref(), Some("cancelled by an operator"));
    let s = q.stats().await.expect("stats");
    assert_eq!((s.waiting, s.active, s.dead), (0, 0, 2), "{s:?}");
    assert_eq!(
        q.cancel(&failing.id).await.expect("cancel"),
        Cancelled::Finished(JobState::Dead)
    );
}

/// A snapshot taken while the promoter moves jobs from the delayed set to
/// their streams sees every job exactly once (it is read in one
/// transaction).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_during_promotions_holds_every_job_once() {
    let t = TestRedis::new().await;
    let q = t.queue("snapshot").await;
    let batch: Vec<NewJob> = (0..1000u32)
        .map(|n| {
            let delay = Duration::from_millis(20 + u64::from(n % 50) * 10);
            NewJob::new(&n, JobOptions::new().delay(delay)).expect("job")
        })
        .collect();
    let ids: std::collections::HashSet<String> = q
        .enqueue_many(batch)
        .await
        .expect("enqueue")
        .into_iter()
        .map(|e| e.id)
        .collect();
    // The promoter on a connection of its own, so that its scripts can run
    // between the snapshot's commands.
    let other = sluice_engine::Client::connect_with(
        sluice_engine::ClientConfig::new(common::redis_url()).prefix(&t.prefix),
    )
    .await
    .expect("connect");
    let moved = other.queue("snapshot").await.expect("queue");
    let promoter = {
        let q = moved;
        tokio::spawn(async move {
            loop {
                let _ = q.promote_due(7).await;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    let mut snapshots = 0;
    loop {
        let records = q.export().await.expect("export");
        let seen: Vec<&str> = records.iter().map(|r| r.id.as_str()).collect();
        let unique: std::collections::HashSet<&str> = seen.iter().copied().collect();
        assert_eq!(seen.len(), unique.len(), "a job twice in one snapshot");
        assert_eq!(
            unique.len(),
            ids.len(),
            "a job missing from snapshot {snapshots}"
        );
        snapshots += 1;
        if q.stats().await.expect("stats").delayed == 0 {
            break;
        }
    }
    promoter.abort();
    assert!(snapshots > 1, "the promotions were not overlapped");
}

/// Idempotency mappings travel with a backup: after they are imported
/// elsewhere, an enqueue retried with a key answers the first job, also
/// for a job that had completed.
#[tokio::test]
async fn idempotency_keys_are_exported_and_imported_with_their_windows() {
    let t = TestRedis::new().await;
    let q = t.queue("idem-backup").await;
    let window = JobOptions::new().idempotency_window(Duration::from_secs(60));
    let first = q
        .enqueue_value(&1u32, window.clone().idempotency_key("pay-1"))
        .await
        .expect("enqueue");
    let done = q
        .enqueue_value(&2u32, window.clone().idempotency_key("pay-2"))
        .await
        .expect("enqueue");
    for _ in 0..2 {
        let job = claim_when_ready(&q, "w").await;
        if job.id == done.id {
            q.settle(&job, Outcome::Done).await.expect("settle");
        } else {
            q.settle(&job, Outcome::Snooze(Duration::ZERO))
                .await
                .expect("settle");
        }
    }
    let mappings = q.export_idempotency().await.expect("export keys");
    let mut keys: Vec<&str> = mappings.iter().map(|m| m.key.as_str()).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["pay-1", "pay-2"]);
    assert!(
        mappings
            .iter()
            .all(|m| m.ttl_ms > 50_000 && m.ttl_ms <= 60_000),
        "{mappings:?}"
    );
    let records = q.export().await.expect("export");

    let elsewhere = TestRedis::new().await;
    let restored = elsewhere.queue("idem-backup").await;
    restored.import(&records).await.expect("import");
    restored
        .import_idempotency(&mappings)
        .await
        .expect("import keys");
    for (key, id) in [("pay-1", &first.id), ("pay-2", &done.id)] {
        let again = restored
            .enqueue_value(&9u32, window.clone().idempotency_key(key))
            .await
            .expect("enqueue");
        assert!(again.duplicate, "{key}");
        assert_eq!(&again.id, id, "{key}");
    }
    assert_eq!(restored.stats().await.expect("stats").waiting, 1);
}

/// A large dead-letter set of big payloads, read through a proxy that
/// counts the bytes Redis answers: searching reads the errors, not the
/// payloads, and a deep page by cursor reads only its own letters. (What a
/// client must read and hold is what a read-only API key could make the
/// server read; Redis's work is bounded by the same reads.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_of_a_large_dead_letter_set_fetch_only_what_they_answer() {
    use sluice_engine::{NewJob, Outcome};
    const LETTERS: usize = 200;
    const PAYLOAD: usize = 64 * 1024;
    // One proxy in front of one server: the cluster run of this file has
    // no single address to put it in front of (the single-server run
    // measures the reads; they are the same commands on a cluster).
    if common::redis_url().starts_with("redis+cluster://") {
        return;
    }
    let r = TestRedis::new().await;
    let q = r.queue("bigdead").await;
    let payload = "x".repeat(PAYLOAD);
    let jobs = (0..LETTERS)
        .map(|_| NewJob::new(&payload, sluice_engine::JobOptions::new()).expect("job"))
        .collect();
    q.enqueue_many(jobs).await.expect("enqueue");
    let claimed = q.claim("burier", LETTERS).await.expect("claim");
    assert_eq!(claimed.len(), LETTERS);
    let outcomes = claimed
        .iter()
        .enumerate()
        .map(|(i, j)| {
            let why = if i % 100 == 7 {
                "needle in a haystack"
            } else {
                "plain failure"
            };
            (j, Outcome::Bury(why.into()))
        })
        .collect();
    q.settle_many(outcomes).await.expect("settle");
    assert_eq!(q.stats().await.expect("stats").dead, LETTERS as u64);

    let (proxy, q) = queue_behind_a_proxy(&r, "bigdead").await;
    let whole_set = (LETTERS * PAYLOAD) as u64;

    let before = proxy.reply_bytes();
    let (found, matched) = q.find_dead("needle", 0, 50).await.expect("find");
    let search = proxy.reply_bytes() - before;
    assert_eq!((found.len(), matched), (2, 2));
    assert!(
        search < 2 * PAYLOAD as u64 + 256 * 1024,
        "searching read {search} bytes of a {whole_set}-byte set"
    );

    let (_, cursor) = q.dead_letters_after(None, 0, 180).await.expect("page");
    let before = proxy.reply_bytes();
    let (deep, _) = q
        .dead_letters_after(cursor.as_ref(), 0, 10)
        .await
        .expect("deep page");
    let page = proxy.reply_bytes() - before;
    assert_eq!(deep.len(), 10);
    assert!(
        page < 10 * PAYLOAD as u64 + 256 * 1024,
        "a deep page of 10 read {page} bytes"
    );
}

/// Single enqueues from many producers on one handle, while Redis is slow
/// to answer: the calls that wait go together in a few script calls, and
/// each producer still gets its own job's id (and its own payload behind
/// it), an idempotency key still adds one job, and a delayed job still
/// waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_single_enqueues_share_script_calls_and_each_gets_its_own_answer() {
    use sluice_engine::JobState;
    use sluice_testkit::{Commands, Fault, Rule};
    const PRODUCERS: usize = 120;
    // One proxy in front of one server (see the dead-letter read test).
    if common::redis_url().starts_with("redis+cluster://") {
        return;
    }
    let r = TestRedis::new().await;
    let (proxy, q) = queue_behind_a_proxy(&r, "combined").await;
    // Every script reply is held 100 ms: producers pile up behind the
    // calls on their way, as behind a busy Redis.
    proxy.inject(Rule::new(
        Fault::DelayReply(Duration::from_millis(100)),
        Commands::Scripts,
    ));
    let calls_before = proxy.fired_count();
    let mut producers = tokio::task::JoinSet::new();
    for n in 0..PRODUCERS {
        let q = q.clone();
        producers.spawn(async move {
            let mut options = JobOptions::new().priority((n % 3) as u8);
            if n % 10 == 0 {
                options = options.idempotency_key("shared-key");
            }
            if n == 7 {
                options = options.delay(Duration::from_secs(60));
            }
            (
                n,
                q.enqueue_value(&(n as u64), options)
                    .await
                    .expect("enqueue"),
            )
        });
    }
    let answers = producers.join_all().await;
    let calls = proxy.fired_count() - calls_before;
    proxy.clear();
    assert!(
        calls <= PRODUCERS / 10,
        "{PRODUCERS} single enqueues made {calls} script calls"
    );

    let keyed: Vec<_> = answers.iter().filter(|(n, _)| n % 10 == 0).collect();
    let first = keyed.iter().filter(|(_, e)| !e.duplicate).count();
    assert_eq!(first, 1, "one job for the shared idempotency key");
    assert!(keyed.iter().all(|(_, e)| e.id == keyed[0].1.id));

    let mut ids = std::collections::HashSet::new();
    for (n, e) in &answers {
        if n % 10 == 0 && e.duplicate {
            continue;
        }
        assert!(ids.insert(e.id.clone()), "id {} answered twice", e.id);
        let info = q.job(&e.id).await.expect("job").expect("the job exists");
        let payload: u64 = rmp_serde::from_slice(&info.payload).expect("payload");
        if n % 10 == 0 {
            assert_eq!(payload % 10, 0, "the keyed job holds a keyed payload");
        } else {
            assert_eq!(payload, *n as u64, "producer {n} got another job's id");
            let want = if *n == 7 {
                JobState::Delayed
            } else {
                JobState::Waiting
            };
            assert_eq!(info.state, want, "job of producer {n}");
        }
    }
    let stats = q.stats().await.expect("stats");
    let added = PRODUCERS - PRODUCERS / 10 + 1;
    assert_eq!(ids.len(), added);
    assert_eq!((stats.waiting + stats.delayed) as usize, added, "{stats:?}");
    assert_eq!(stats.delayed, 1);
}

/// A lone enqueue call is sent from its caller's task: callers that stop
/// waiting in the middle of theirs (dropped futures) neither strand the
/// calls queued behind them nor use up the handle's room for calls on
/// their way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_lone_enqueue_calls_leave_the_handle_working() {
    use futures::FutureExt;
    use sluice_testkit::{Commands, Fault, Rule};
    if common::redis_url().starts_with("redis+cluster://") {
        return;
    }
    let r = TestRedis::new().await;
    let (proxy, q) = queue_behind_a_proxy(&r, "dropped-lone").await;
    proxy.inject(Rule::new(
        Fault::DelayReply(Duration::from_millis(200)),
        Commands::Scripts,
    ));
    for round in 0..3u64 {
        // Calls polled once are on their way (as many as the handle lets
        // go at once, and more); then one more waits behind them.
        let payloads: Vec<u64> = (0..6).map(|n| round * 100 + n).collect();
        let mut started: Vec<_> = payloads
            .iter()
            .map(|n| Box::pin(q.enqueue_value(n, JobOptions::new())))
            .collect();
        for call in &mut started {
            assert!(call.as_mut().now_or_never().is_none(), "answered at once");
        }
        let behind = {
            let q = q.clone();
            tokio::spawn(async move {
                q.enqueue_value(&(round * 100 + 99), JobOptions::new())
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(started);
        let answered = tokio::time::timeout(Duration::from_secs(10), behind)
            .await
            .expect("the call behind the dropped ones was never sent")
            .expect("task")
            .expect("enqueue");
        assert!(q.job(&answered.id).await.expect("lookup").is_some());
    }
    proxy.clear();
    // Every dropped call gave its room back: calls still go.
    for n in 0..10u64 {
        tokio::time::timeout(
            Duration::from_secs(5),
            q.enqueue_value(&n, JobOptions::new()),
        )
        .await
        .expect("an enqueue call hung after dropped ones")
        .expect("enqueue");
    }
}

/// Single enqueues without idempotency keys from many producers at once,
/// while the first script replies are lost after Redis ran the calls:
/// a combined call sent again with its token adds nothing twice, so every
/// producer's job is there once, under the id it was answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_enqueue_calls_whose_replies_are_lost_add_each_job_once() {
    use sluice_testkit::{Commands, Fault, Rule};
    const PRODUCERS: u64 = 200;
    if common::redis_url().starts_with("redis+cluster://") {
        return;
    }
    let r = TestRedis::new().await;
    let (proxy, q) = queue_behind_a_proxy(&r, "combined-lost").await;
    // One job first, so that the lost replies are of calls that ran (not
    // of a first call that Redis refused for want of the script).
    q.enqueue_value(&PRODUCERS, JobOptions::new())
        .await
        .expect("enqueue");
    proxy.inject(Rule::new(Fault::DropReply, Commands::Scripts).limit(3));
    let mut producers = tokio::task::JoinSet::new();
    for n in 0..PRODUCERS {
        let q = q.clone();
        producers.spawn(async move {
            let e = q
                .enqueue_value(&n, JobOptions::new())
                .await
                .expect("enqueue");
            (n, e.id)
        });
    }
    let answers = producers.join_all().await;
    let dropped = proxy.fired_count();
    proxy.clear();
    assert!(dropped > 0, "no reply was lost: the test shows nothing");
    let mut ids = std::collections::HashSet::new();
    for (n, id) in &answers {
        assert!(ids.insert(id.clone()), "id {id} answered twice");
        let info = q.job(id).await.expect("job").expect("the job exists");
        let payload: u64 = rmp_serde::from_slice(&info.payload).expect("payload");
        assert_eq!(payload, *n, "producer {n} got another job's id");
    }
    let stats = q.stats().await.expect("stats");
    assert_eq!(
        stats.waiting,
        PRODUCERS + 1,
        "{stats:?} after {dropped} lost replies"
    );
    assert_eq!(stats.enqueued_total, PRODUCERS + 1, "{stats:?}");
}

/// A handle on queue `name` of `r`'s prefix through a fault proxy in front
/// of the one test server (not for the cluster run).
async fn queue_behind_a_proxy(
    r: &TestRedis,
    name: &str,
) -> (sluice_testkit::FaultProxy, sluice_engine::Queue) {
    let proxy = sluice_testkit::FaultProxy::start(&common::redis_url())
        .await
        .expect("proxy");
    let config = sluice_engine::ClientConfig::new(proxy.url()).prefix(&r.prefix);
    let client = sluice_engine::Client::connect_with(config)
        .await
        .expect("connect");
    let q = client.queue_with(name, fast_config()).await.expect("queue");
    (proxy, q)
}

/// Issue 39, defect 1: a cancel that arrives after the job finished (its
/// acknowledged entry still in the stream, not yet trimmed) changes
/// nothing: the job is not made a dead letter, counted dead, or left in the
/// cancelled-entry list, waiting counts stay right, and later jobs run.
/// A cancel replayed after the job finished (its first reply was lost)
/// answers the same.
#[tokio::test]
async fn a_cancel_after_the_job_finished_changes_nothing() {
    use sluice_engine::Cancelled;
    let t = TestRedis::new().await;
    let q = t.queue("cancel-late").await;
    let first = q
        .enqueue_value(&1u32, JobOptions::new())
        .await
        .expect("enq")
        .id;
    let second = q
        .enqueue_value(&2u32, JobOptions::new())
        .await
        .expect("enq")
        .id;
    let job = claim_when_ready(&q, "w").await;
    assert_eq!(job.id, first);
    // Cancelled while it ran, as a cancel whose reply was lost would be.
    assert_eq!(
        q.cancel(&first).await.expect("cancel"),
        Cancelled::Requested
    );
    assert_eq!(
        q.settle(&job, Outcome::Done).await.expect("settle"),
        Settled::Done
    );
    let job = claim_when_ready(&q, "w").await;
    assert_eq!(job.id, second);
    assert_eq!(
        q.settle(&job, Outcome::Done).await.expect("settle"),
        Settled::Done
    );
    for id in [&first, &second] {
        let answer = q.cancel(id).await.expect("late cancel");
        assert!(
            matches!(answer, Cancelled::Finished(_) | Cancelled::Missing),
            "a finished job's cancel answered {answer:?}"
        );
        if let Some(info) = q.job(id).await.expect("lookup") {
            assert_eq!(info.state, JobState::Completed, "{info:?}");
        }
        assert!(
            !q.redrive(id).await.expect("redrive"),
            "a finished job is no dead letter"
        );
    }
    let s = q.stats().await.expect("stats");
    assert_eq!(
        (s.waiting, s.dead, s.dead_total, s.completed_total),
        (0, 0, 0, 2),
        "{s:?}"
    );
    let cx_keys: Vec<String> = t
        .keys()
        .await
        .into_iter()
        .filter(|k| k.ends_with(":cx"))
        .collect();
    assert!(
        cx_keys.is_empty(),
        "the cancelled-entry list holds nothing: {cx_keys:?}"
    );
    // Jobs enqueued after run, and count as waiting meanwhile.
    let third = q
        .enqueue_value(&3u32, JobOptions::new())
        .await
        .expect("enq")
        .id;
    assert_eq!(q.stats().await.expect("stats").waiting, 1);
    let job = claim_when_ready(&q, "w").await;
    assert_eq!(job.id, third);
}

/// Issue 39, defect 6: a stale worker's refused outcome leaves the
/// operator's cancel request alone, so the real owner's failure buries the
/// job instead of retrying it.
#[tokio::test]
async fn a_stale_outcome_keeps_the_cancel_request() {
    use sluice_engine::Cancelled;
    let t = TestRedis::new().await;
    let q = t.queue("cancel-stale").await; // visibility timeout 600 ms
    let e = q
        .enqueue_value(&1u32, JobOptions::new())
        .await
        .expect("enqueue");
    let old = q.claim("worker-a", 1).await.expect("claim").remove(0);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = q.reclaim_lost("worker-b").await.expect("reclaim");
    assert_eq!((r.retried, r.dead), (1, 0));
    let new = claim_when_ready(&q, "worker-b").await;
    assert_eq!(new.id, e.id);
    assert_eq!(q.cancel(&e.id).await.expect("cancel"), Cancelled::Requested);
    let failed = || Outcome::Retry {
        reason: "boom".into(),
        after: None,
    };
    assert_eq!(
        q.settle(&old, failed()).await.expect("stale settle"),
        Settled::Fenced
    );
    assert_eq!(
        q.settle(&new, failed()).await.expect("settle"),
        Settled::Dead,
        "the owner's failure of a job whose cancel was requested buries it"
    );
    let info = q.job(&e.id).await.expect("lookup").expect("dead");
    assert_eq!(
        info.last_error.as_deref(),
        Some("cancelled by an operator: boom")
    );
}

/// Issue 39, defect 11: a snooze or retry delay beyond what a script can
/// add to the clock waits as long as the longest delay accepted, instead
/// of overflowing into the past and running at once.
#[tokio::test]
async fn a_snooze_of_duration_max_waits() {
    let t = TestRedis::new().await;
    let q = t.queue("snooze-max").await;
    let snoozed = q
        .enqueue_value(&1u32, JobOptions::new())
        .await
        .expect("enq")
        .id;
    let job = claim_when_ready(&q, "w").await;
    assert_eq!(
        q.settle(&job, Outcome::Snooze(Duration::MAX))
            .await
            .expect("settle"),
        Settled::Snoozed
    );
    let retried = q
        .enqueue_value(&2u32, JobOptions::new())
        .await
        .expect("enq")
        .id;
    let job = claim_when_ready(&q, "w").await;
    let retry = Outcome::Retry {
        reason: "later".into(),
        after: Some(Duration::MAX),
    };
    assert_eq!(q.settle(&job, retry).await.expect("settle"), Settled::Retry);
    assert_eq!(q.promote_due(100).await.expect("promote").moved, 0);
    assert!(q.claim("w", 10).await.expect("claim").is_empty());
    for id in [&snoozed, &retried] {
        let info = q.job(id).await.expect("lookup").expect("kept");
        assert_eq!(info.state, JobState::Delayed, "{info:?}");
    }
    let s = q.stats().await.expect("stats");
    assert_eq!((s.waiting, s.delayed), (0, 2), "{s:?}");
}

/// Issue 39, defect 9: an idempotency window or timeout below one
/// millisecond is refused by validation (it would reach the script as 0 ms:
/// `PX 0` fails the script after part of a combined call was written).
#[tokio::test]
async fn sub_millisecond_windows_and_timeouts_are_refused() {
    let t = TestRedis::new().await;
    let q = t.queue("sub-ms").await;
    let window = JobOptions::new()
        .idempotency_key("k")
        .idempotency_window(Duration::from_micros(500));
    let err = q.enqueue_value(&1u32, window).await.expect_err("refused");
    assert!(err.to_string().contains("idempotency_window"), "{err}");
    let timeout = JobOptions::new().timeout(Duration::from_micros(999));
    let err = q.enqueue_value(&1u32, timeout).await.expect_err("refused");
    assert!(err.to_string().contains("timeout"), "{err}");
    // Calls combined with a refused one commit and answer as usual.
    let (a, b) = tokio::join!(
        q.enqueue_value(&2u32, JobOptions::new()),
        q.enqueue_value(
            &3u32,
            JobOptions::new()
                .idempotency_key("k2")
                .idempotency_window(Duration::from_nanos(1))
        ),
    );
    assert!(a.is_ok() && b.is_err(), "{a:?} {b:?}");
    assert_eq!(q.stats().await.expect("stats").waiting, 1);
}

/// Issue 39, defect 16: a worker silent past the visibility timeout is
/// presumed dead and its job reclaimed (a dead letter with no attempts
/// left, a retry otherwise). When that worker later reports success and
/// nobody has run the job since, the job ran: it is recorded completed,
/// not dead or waiting to run again. Once another worker has claimed it,
/// the late success is refused as before.
#[tokio::test]
async fn a_late_success_nobody_overtook_is_recorded_completed() {
    let t = TestRedis::new().await;
    let q = t.queue("late-success").await; // visibility timeout 600 ms
    let last = q
        .enqueue_value(&1u32, JobOptions::new().max_attempts(1))
        .await
        .expect("enq")
        .id;
    // Its retry waits a minute, so only `overtaken` runs meanwhile.
    let slow = sluice_engine::Backoff {
        base: Duration::from_secs(60),
        factor: 1.0,
        max: Duration::from_secs(60),
        jitter: 0.0,
    };
    let retried = q
        .enqueue_value(&2u32, JobOptions::new().max_attempts(3).backoff(slow))
        .await
        .expect("enq")
        .id;
    let overtaken = q
        .enqueue_value(&3u32, JobOptions::new().max_attempts(3))
        .await
        .expect("enq")
        .id;
    let jobs = q.claim("silent", 3).await.expect("claim");
    assert_eq!(jobs.len(), 3);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let r = q.reclaim_lost("rescuer").await.expect("reclaim");
    assert_eq!((r.retried, r.dead), (2, 1), "{r:?}");
    // Another worker runs `overtaken` before its first owner comes back.
    let newer = claim_when_ready(&q, "rescuer").await;
    assert_eq!(newer.id, overtaken);
    for job in &jobs {
        let answer = q.settle(job, Outcome::Done).await.expect("late settle");
        if job.id == overtaken {
            assert_eq!(answer, Settled::Fenced, "another worker runs it");
        } else {
            assert_eq!(answer, Settled::Done, "{}: nobody ran it since", job.id);
        }
    }
    for id in [&last, &retried] {
        if let Some(info) = q.job(id).await.expect("lookup") {
            assert_eq!(info.state, JobState::Completed, "{info:?}");
        }
    }
    assert!(q.dead_letters(0, 10).await.expect("dead").is_empty());
    assert_eq!(
        q.settle(&newer, Outcome::Done).await.expect("settle"),
        Settled::Done
    );
    let s = q.stats().await.expect("stats");
    assert_eq!(
        (
            s.waiting,
            s.delayed,
            s.active,
            s.dead,
            s.dead_total,
            s.completed_total
        ),
        (0, 0, 0, 0, 0, 3),
        "{s:?}"
    );
    assert!(q.claim("w", 10).await.expect("claim").is_empty());
}

/// Issue 39, defect 15: one promote, claim and settle of 9,000 heavy jobs
/// (more than Lua's `unpack` takes at once, about 8,000) moves, runs and
/// records every one of them.
#[tokio::test]
async fn nine_thousand_jobs_in_one_call_each() {
    const N: usize = 9_000;
    let t = TestRedis::new().await;
    let q = t
        .queue_with(
            "unpack",
            QueueConfig {
                max_batch: N,
                ..fast_config()
            },
        )
        .await;
    let jobs: Vec<NewJob> = (0..N)
        .map(|n| NewJob::new(&n, JobOptions::new().delay(Duration::from_millis(1))).expect("job"))
        .collect();
    q.enqueue_many(jobs).await.expect("enqueue");
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(q.promote_due(N).await.expect("promote").moved, N as u64);
    let claimed = q.claim("w", N).await.expect("claim");
    assert_eq!(claimed.len(), N);
    let outcomes = claimed.iter().map(|j| (j, Outcome::Done)).collect();
    let settled = q.settle_many(outcomes).await.expect("settle");
    assert!(settled.iter().all(|s| *s == Settled::Done));
    let s = q.stats().await.expect("stats");
    assert_eq!(
        (s.waiting, s.active, s.delayed, s.completed_total),
        (0, 0, 0, N as u64),
        "{s:?}"
    );
}

/// Issue 39, defect 4 (promote.lua): a job left in the delayed set while it
/// runs (a promote stopped half-way by a slot migration, after it added the
/// job to its stream and before it removed it from the set) is not moved a
/// second time: no second entry, no second worker.
#[tokio::test]
async fn a_promote_leaves_a_running_job_found_in_the_delayed_set() {
    let t = TestRedis::new().await;
    let q = t.queue("promote-stale").await;
    let id = q
        .enqueue_value(&1u32, JobOptions::new().delay(Duration::from_millis(1)))
        .await
        .expect("enq")
        .id;
    let job = claim_when_ready(&q, "w1").await;
    assert_eq!(job.id, id);
    let delayed = t
        .keys()
        .await
        .into_iter()
        .find(|k| k.ends_with(":delayed"))
        .unwrap_or_else(|| format!("{}:{{promote-stale}}:delayed", t.prefix));
    let _: i64 = t
        .query(redis::cmd("ZADD").arg(&delayed).arg(0).arg(&id))
        .await;
    assert_eq!(q.promote_due(10).await.expect("promote").moved, 0);
    assert!(q.claim("w2", 10).await.expect("claim").is_empty());
    assert_eq!(
        q.job(&id).await.expect("lookup").expect("kept").state,
        JobState::Active
    );
    assert_eq!(
        q.settle(&job, Outcome::Done).await.expect("settle"),
        Settled::Done
    );
    let s = q.stats().await.expect("stats");
    assert_eq!((s.waiting, s.active, s.delayed), (0, 0, 0), "{s:?}");
}

/// Issue 39, defect 14: an import into the queue the backup was taken
/// from, which still holds those jobs (waiting, running, and one finished
/// since), adds nothing: no job runs twice.
#[tokio::test]
async fn an_import_into_the_queue_that_holds_the_jobs_adds_nothing() {
    let t = TestRedis::new().await;
    let q = t.queue("backup-same").await;
    for n in 0..4u32 {
        q.enqueue_value(&n, JobOptions::new())
            .await
            .expect("enqueue");
    }
    q.enqueue_value(&9u32, JobOptions::new().delay(Duration::from_secs(3600)))
        .await
        .expect("enqueue");
    let running = q.claim("w", 2).await.expect("claim");
    assert_eq!(running.len(), 2);
    let records = q.export().await.expect("export");
    assert_eq!(records.len(), 5);
    // One of the running jobs finishes after the backup.
    q.settle(&running[0], Outcome::Done).await.expect("settle");
    assert_eq!(q.import(&records).await.expect("import"), 0);
    let s = q.stats().await.expect("stats");
    assert_eq!((s.waiting, s.active, s.delayed), (2, 1, 1), "{s:?}");
    let waiting = q.claim("w", 10).await.expect("claim");
    assert_eq!(waiting.len(), 2, "only the two waiting jobs run");
    assert!(q.claim("w", 10).await.expect("claim").is_empty());
}

/// An operator's cancel of a job reclaimed from a silent worker comes
/// before that worker's late success: the cancel stands (the job stays a
/// dead letter, counted once), the late success is refused.
#[tokio::test]
async fn a_cancel_between_a_reclaim_and_a_late_success_stands() {
    use sluice_engine::Cancelled;
    let t = TestRedis::new().await;
    let q = t.queue("cancel-late-success").await;
    let slow = sluice_engine::Backoff {
        base: Duration::from_secs(60),
        factor: 1.0,
        max: Duration::from_secs(60),
        jitter: 0.0,
    };
    let id = q
        .enqueue_value(&1u32, JobOptions::new().max_attempts(3).backoff(slow))
        .await
        .expect("enq")
        .id;
    let job = q.claim("silent", 1).await.expect("claim").remove(0);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(q.reclaim_lost("rescuer").await.expect("reclaim").retried, 1);
    assert_eq!(q.cancel(&id).await.expect("cancel"), Cancelled::Cancelled);
    assert_eq!(
        q.settle(&job, Outcome::Done).await.expect("late settle"),
        Settled::Fenced
    );
    let s = q.stats().await.expect("stats");
    assert_eq!(
        (s.dead, s.dead_total, s.completed_total, s.delayed),
        (1, 1, 0, 0),
        "{s:?}"
    );
}

/// Issue 39, defect 3: a failover to a replica that missed worker 1's
/// claim (rolled back here by hand: the entries unread again, the heavy
/// job's hash as before the claim) lets worker 2 claim the same jobs at the
/// same fences. Worker 1's outcomes are then refused, light or heavy, and
/// worker 2's are recorded.
#[tokio::test]
async fn a_claim_lost_in_a_failover_leaves_the_first_worker_fenced() {
    let t = TestRedis::new().await;
    let q = t.queue("failover-fence").await;
    let base = format!("{}:{{failover-fence}}:", t.prefix);
    let stream = format!("{base}p:0");
    let light = q
        .enqueue_value(&1u32, JobOptions::new())
        .await
        .expect("enq")
        .id;
    let heavy = q
        .enqueue_value(&2u32, JobOptions::new().delay(Duration::from_millis(1)))
        .await
        .expect("enq")
        .id;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(q.promote_due(10).await.expect("promote").moved, 1);
    let first = q.claim("w1", 2).await.expect("claim");
    assert_eq!(first.len(), 2);

    // What the promoted replica holds: W1's claim never happened.
    assert_eq!(unread_again(&t, &stream).await, 2);
    let jk = format!("{base}job:{heavy}");
    let _: i64 = t
        .query(
            redis::cmd("HDEL")
                .arg(&jk)
                .arg("fence")
                .arg("att")
                .arg("wk")
                .arg("ct")
                .arg("sat"),
        )
        .await;
    let _: i64 = t
        .query(redis::cmd("HSET").arg(&jk).arg("state").arg("waiting"))
        .await;

    let second = q.claim("w2", 2).await.expect("claim");
    assert_eq!(second.len(), 2);
    for job in &first {
        let failed = Outcome::Retry {
            reason: "stale".into(),
            after: None,
        };
        assert_eq!(
            q.settle(job, failed).await.expect("stale settle"),
            Settled::Fenced,
            "worker 1's outcome for {} was accepted",
            job.id
        );
    }
    for job in &second {
        assert_eq!(
            q.settle(job, Outcome::Done).await.expect("settle"),
            Settled::Done
        );
    }
    let s = q.stats().await.expect("stats");
    assert_eq!(
        (
            s.completed_total,
            s.retried_total,
            s.waiting,
            s.delayed,
            s.active
        ),
        (2, 0, 0, 0, 0),
        "{s:?} ({light}, {heavy})"
    );
}

/// Found by the model-based checker: a light job cancelled while it waited,
/// whose dead letter an operator then deleted, is gone: a lookup finds
/// nothing (it found the job waiting, from its entry still to be skipped),
/// a second cancel answers missing (it buried the job again), and no claim
/// runs it.
#[tokio::test]
async fn a_deleted_letter_cancelled_while_it_waited_stays_gone() {
    use sluice_engine::Cancelled;
    let t = TestRedis::new().await;
    let q = t.queue("cancel-delete").await;
    let id = q
        .enqueue_value(&1u32, JobOptions::new())
        .await
        .expect("enq")
        .id;
    assert_eq!(q.cancel(&id).await.expect("cancel"), Cancelled::Cancelled);
    assert!(q.delete_dead(&id).await.expect("delete"));
    assert!(q.job(&id).await.expect("lookup").is_none(), "found again");
    assert_eq!(q.cancel(&id).await.expect("cancel"), Cancelled::Missing);
    assert!(q.dead_letters(0, 10).await.expect("dead").is_empty());
    assert!(q.claim("w", 10).await.expect("claim").is_empty());
    let s = q.stats().await.expect("stats");
    assert_eq!((s.waiting, s.dead), (0, 0), "{s:?}");
}

/// Found by the model-based checker: a job cancelled while it waited,
/// re-driven, and cancelled again before any claim read its first entry
/// has two entries to skip; neither counts as waiting, and no claim runs
/// either.
#[tokio::test]
async fn a_job_cancelled_twice_before_a_claim_is_not_waiting() {
    use sluice_engine::Cancelled;
    let t = TestRedis::new().await;
    let q = t.queue("cancel-twice").await;
    let id = q
        .enqueue_value(&1u32, JobOptions::new())
        .await
        .expect("enq")
        .id;
    assert_eq!(q.cancel(&id).await.expect("cancel"), Cancelled::Cancelled);
    assert!(q.redrive(&id).await.expect("redrive"));
    assert_eq!(q.cancel(&id).await.expect("cancel"), Cancelled::Cancelled);
    let s = q.stats().await.expect("stats");
    assert_eq!((s.waiting, s.dead), (0, 1), "{s:?}");
    assert!(q.claim("w", 10).await.expect("claim").is_empty());
    let s = q.stats().await.expect("stats");
    assert_eq!((s.waiting, s.dead), (0, 1), "{s:?}");
    // Re-driven once more, it runs once.
    assert!(q.redrive(&id).await.expect("redrive"));
    assert_eq!(q.stats().await.expect("stats").waiting, 1);
    let job = claim_when_ready(&q, "w").await;
    assert_eq!(job.id, id);
    assert!(q.claim("w", 10).await.expect("claim").is_empty());
}

/// Found by the model-based checker: a job reclaimed into a retry and then
/// completed by its late owner (its re-added entry still waits to be
/// skipped) is not backed up: an export lists only unfinished jobs.
#[tokio::test]
async fn an_export_leaves_out_a_job_its_late_owner_completed() {
    let t = TestRedis::new().await;
    let q = t
        .queue_with(
            "export-late",
            QueueConfig {
                keep_completed: Duration::from_secs(60),
                ..fast_config()
            },
        )
        .await;
    let id = q
        .enqueue_value(&1u32, JobOptions::new().max_attempts(3))
        .await
        .expect("enq")
        .id;
    let job = q.claim("silent", 1).await.expect("claim").remove(0);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(q.reclaim_lost("rescuer").await.expect("reclaim").retried, 1);
    // Its retry (20 ms) falls due: it waits in its stream again.
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(q.promote_due(10).await.expect("promote").moved, 1);
    assert_eq!(
        q.settle(&job, Outcome::Done).await.expect("late settle"),
        Settled::Done
    );
    let records = q.export().await.expect("export");
    assert!(
        records.iter().all(|r| r.id != id),
        "the completed job was exported"
    );
}

/// An idempotency key whose job was cancelled and deleted from the dead
/// letters no longer answers with that job: an enqueue under it makes a
/// new one, which a lookup finds.
#[tokio::test]
async fn a_deleted_letters_idempotency_key_makes_a_new_job() {
    use sluice_engine::Cancelled;
    let t = TestRedis::new().await;
    let q = t.queue("idem-deleted").await;
    let first = q
        .enqueue_value(&1u32, JobOptions::new().idempotency_key("k"))
        .await
        .expect("enq");
    assert_eq!(
        q.cancel(&first.id).await.expect("cancel"),
        Cancelled::Cancelled
    );
    assert!(q.delete_dead(&first.id).await.expect("delete"));
    let second = q
        .enqueue_value(&2u32, JobOptions::new().idempotency_key("k"))
        .await
        .expect("enq");
    assert_ne!(second.id, first.id, "the key named a deleted job");
    assert!(q.job(&second.id).await.expect("lookup").is_some());
}

/// The adversarial review of defect 3: after a failover lost worker 1's
/// claim and worker 2 claimed the job again, worker 1's keep-alive (it
/// still runs the job it was given) does not take the entry back, so
/// worker 2's outcome is the one recorded and worker 1's is refused.
#[tokio::test]
async fn a_keep_alive_takes_no_entry_from_another_worker() {
    let t = TestRedis::new().await;
    let q = t.queue("keep-alive-steal").await;
    let base = format!("{}:{{keep-alive-steal}}:", t.prefix);
    let stream = format!("{base}p:0");
    q.enqueue_value(&1u32, JobOptions::new())
        .await
        .expect("enq");
    let first = q.claim("w1", 1).await.expect("claim").remove(0);
    // The promoted replica never saw worker 1's claim.
    assert_eq!(unread_again(&t, &stream).await, 1);
    let second = q.claim("w2", 1).await.expect("claim").remove(0);
    assert_eq!(second.id, first.id);
    q.keep_alive(&[&first]).await.expect("keep alive");
    let failed = || Outcome::Retry {
        reason: "boom".into(),
        after: None,
    };
    assert_eq!(
        q.settle(&second, failed()).await.expect("settle"),
        Settled::Retry,
        "worker 2's outcome was refused"
    );
    assert_eq!(
        q.settle(&first, failed()).await.expect("stale settle"),
        Settled::Fenced
    );
}

/// What a replica that missed a claim holds after a failover: every entry
/// of `stream` pending for a worker is unread again (acknowledged and read
/// from the start). Returns how many there were.
async fn unread_again(t: &TestRedis, stream: &str) -> usize {
    let pending: Vec<(String, String, u64, u64)> = t
        .query(
            redis::cmd("XPENDING")
                .arg(stream)
                .arg("workers")
                .arg("-")
                .arg("+")
                .arg(100),
        )
        .await;
    for (entry, _, _, _) in &pending {
        let _: i64 = t
            .query(redis::cmd("XACK").arg(stream).arg("workers").arg(entry))
            .await;
    }
    let _: () = t
        .query(
            redis::cmd("XGROUP")
                .arg("SETID")
                .arg(stream)
                .arg("workers")
                .arg("0"),
        )
        .await;
    pending.len()
}

/// The third adversarial review: a failover lost the claim that moved an
/// entry from a worker's blocking-read name (`<worker>~b`) to the worker,
/// which runs the job. Its keep-alive takes the entry back (nobody else
/// holds that name's entries), so the job is not reclaimed as never run
/// while it runs, and the worker's outcome stands.
#[tokio::test]
async fn a_keep_alive_takes_back_its_blocking_reads_entry() {
    let t = TestRedis::new().await;
    let q = t.queue("keep-alive-delivered").await;
    let stream = format!("{}:{{keep-alive-delivered}}:p:0", t.prefix);
    q.enqueue_value(&1u32, JobOptions::new())
        .await
        .expect("enq");
    let job = q.claim("w1", 1).await.expect("claim").remove(0);
    let pending: Vec<(String, String, u64, u64)> = t
        .query(
            redis::cmd("XPENDING")
                .arg(&stream)
                .arg("workers")
                .arg("-")
                .arg("+")
                .arg(10),
        )
        .await;
    let entry = pending[0].0.clone();
    // What the promoted replica holds: the entry still delivered to w1~b.
    let _: redis::Value = t
        .query(
            redis::cmd("XCLAIM")
                .arg(&stream)
                .arg("workers")
                .arg("w1~b")
                .arg(0)
                .arg(&entry)
                .arg("JUSTID"),
        )
        .await;
    q.keep_alive(&[&job]).await.expect("keep alive");
    let failed = Outcome::Retry {
        reason: "boom".into(),
        after: None,
    };
    assert_eq!(
        q.settle(&job, failed).await.expect("settle"),
        Settled::Retry,
        "the worker's outcome was refused"
    );
}

/// A settle sent again after its call record expired (its reply was held
/// longer than the record lives: an outage longer than that) answers what
/// its first run recorded, for a light job that run gave a hash as for a
/// heavy one. It used to answer `fenced`, which a worker counts as its job
/// taken by another (scenario 6, `redis_unreachable_for_ten_seconds`).
/// Another call with the same outcome is still refused: it is not the
/// one that was recorded.
#[tokio::test]
async fn a_light_settle_sent_again_after_its_record_expired_answers_its_outcome() {
    let t = TestRedis::new().await;
    let q = t
        .queue_with(
            "settled-again",
            QueueConfig {
                keep_completed: Duration::from_secs(60),
                ..fast_config()
            },
        )
        .await;
    for n in 0..2 {
        q.enqueue_value(&Email { to: "a".into(), n }, JobOptions::new())
            .await
            .expect("enqueue");
    }
    let done = claim_when_ready(&q, "w").await;
    let retried = claim_when_ready(&q, "w").await;
    assert_eq!((done.fence(), retried.fence()), (0, 0), "light jobs");
    let base = format!("{}:{{settled-again}}:", t.prefix);
    let source = sluice_engine::script_source("settle.lua").expect("settle.lua");
    // settle.lua as the worker sends it: one outcome, under `token`.
    let settle = |job: &sluice_engine::Job, kind: &str, delay: &str, token: &str| {
        let (level, eid) = job
            .id
            .split_once('-')
            .expect("epoch")
            .1
            .split_once('-')
            .expect("level");
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(source).arg(2 + 5 + PRIORITY_LEVELS as usize);
        cmd.arg(format!("{base}meta"))
            .arg(format!("{base}slot-probe"));
        for fixed in ["stats", "delayed", "dead", "cr", "cx"] {
            cmd.arg(format!("{base}{fixed}"));
        }
        for l in 0..PRIORITY_LEVELS {
            cmd.arg(format!("{base}p:{l}"));
        }
        cmd.arg(&base)
            .arg(60_000)
            .arg(1000)
            .arg(1)
            .arg(token)
            .arg(10_000)
            .arg("")
            .arg("w");
        cmd.arg(1)
            .arg(&job.id)
            .arg(level)
            .arg(eid)
            .arg(0)
            .arg(kind)
            .arg("why")
            .arg(delay);
        cmd.arg(1).arg(level).arg(eid).arg(0);
        cmd
    };
    for (job, kind, delay) in [(&done, "done", "0"), (&retried, "retry", "60000")] {
        let token = format!("first-{kind}");
        let first: String = t.query(&settle(job, kind, delay, &token)).await;
        assert_eq!(first, kind);
        // The record expires; the same call comes again.
        let _: i64 = t
            .query(redis::cmd("DEL").arg(format!("{base}call:{token}")))
            .await;
        let again: String = t.query(&settle(job, kind, delay, &token)).await;
        assert_eq!(again, kind, "the first run's outcome");
        let other: String = t.query(&settle(job, kind, delay, "another")).await;
        assert_eq!(other, "fenced", "another call is not the one recorded");
    }
    let s = q.stats().await.expect("stats");
    assert_eq!((s.completed_total, s.delayed, s.active), (1, 1, 0));
}

/// A queue a later version wrote (its storage version above this one's) is
/// refused, not migrated down.
#[tokio::test]
async fn a_queue_of_a_later_storage_version_is_refused() {
    let t = TestRedis::new().await;
    t.queue("later").await;
    let meta = format!("{}:{{later}}:meta", t.prefix);
    let _: () = t
        .query(redis::cmd("HSET").arg(&meta).arg("sv").arg(4))
        .await;
    let opened = t.client.queue_with("later", fast_config()).await;
    assert!(
        matches!(opened, Err(Error::NewerStorage { supported: 3, .. })),
        "{opened:?}"
    );
    let version: String = t.query(redis::cmd("HGET").arg(&meta).arg("sv")).await;
    assert_eq!(version, "4");
}
