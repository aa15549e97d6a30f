//! The worker against the real Redis: concurrency, blocking wake-up, retries,
//! timeouts, panics, poison messages, reclaim of a dead worker's jobs,
//! pause, graceful shutdown.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{TestRedis, eventually, fast_config, spawn};
use sluice_engine::{
    HandlerError, Job, JobOptions, JobState, NewJob, Outcome, Queue, QueueConfig, Worker,
    WorkerConfig, handler_fn,
};

fn quick_worker_config() -> WorkerConfig {
    WorkerConfig {
        concurrency: 8,
        block_timeout: Duration::from_millis(300),
        shutdown_grace: Duration::from_secs(5),
        reclaim_interval: Some(Duration::from_millis(200)),
        ..WorkerConfig::default()
    }
}

/// One job at a time, claiming ten per read (nine ahead of the slot).
fn one_at_a_time_reading_ahead() -> WorkerConfig {
    WorkerConfig {
        concurrency: 1,
        batch_size: 10,
        prefetch: Some(9),
        ..quick_worker_config()
    }
}

/// A handler that records each job's priority and payload, in the order
/// the jobs start, into `order`.
fn recording_order(order: Arc<std::sync::Mutex<Vec<(u8, u32)>>>) -> impl sluice_engine::Handler {
    handler_fn(move |job: Job, n: u32| {
        let order = order.clone();
        async move {
            order.lock().expect("lock").push((job.priority, n));
            tokio::time::sleep(Duration::from_millis(1)).await;
            Ok::<_, HandlerError>(Outcome::Done)
        }
    })
}

/// On a paused queue served by a running worker: a job enqueued now stays
/// waiting; after a resume it completes.
async fn enqueue_while_paused_then_resume(q: &Queue) {
    q.enqueue_value(&1u32, JobOptions::new())
        .await
        .expect("enq");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let s = q.stats().await.expect("stats");
    assert_eq!(
        (s.waiting, s.completed_total),
        (1, 0),
        "a paused queue was claimed"
    );
    q.resume().await.expect("resume");
    assert!(settled(q, 1, 0).await);
}

async fn settled(q: &Queue, completed: u64, dead: u64) -> bool {
    eventually(Duration::from_secs(10), || async {
        let s = q.stats().await.expect("stats");
        s.completed_total == completed && s.dead == dead && s.active == 0
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_every_job_once_with_bounded_concurrency() {
    let t = TestRedis::new().await;
    let q = t.queue("bulk").await;
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (r, p, s) = (running.clone(), peak.clone(), seen.clone());
    let handler = handler_fn(move |_job: Job, n: u32| {
        let (r, p, s) = (r.clone(), p.clone(), s.clone());
        async move {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            p.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(2)).await;
            s.lock().expect("lock").push(n);
            r.fetch_sub(1, Ordering::SeqCst);
            Ok::<_, HandlerError>(Outcome::Done)
        }
    });
    let batch = (0..500u32)
        .map(|n| NewJob::new(&n, JobOptions::new()).expect("enc"))
        .collect();
    q.enqueue_many(batch).await.expect("enqueue");
    let running = spawn(Worker::new(q.clone(), handler).with_config(quick_worker_config()));
    assert!(settled(&q, 500, 0).await, "jobs not all completed");
    let report = running.stop().await;
    assert_eq!(report.completed, 500);
    let mut seen = seen.lock().expect("lock").clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..500).collect::<Vec<_>>(), "each job exactly once");
    assert!(
        peak.load(Ordering::SeqCst) <= 8,
        "concurrency limit exceeded"
    );
    assert_eq!(
        t.keys()
            .await
            .iter()
            .filter(|k| k.contains(":job:") || k.ends_with(":ix"))
            .count(),
        0
    );
}

/// Small workers, whose fetch loop may hold every slot while it claims:
/// the jobs that claim brings must still get those slots. (A worker of
/// concurrency 1 that took the slot before its claim, then waited for
/// another, ran no more jobs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_with_few_slots_and_little_prefetch_run_every_job() {
    let t = TestRedis::new().await;
    for (n, (concurrency, prefetch)) in [(1, None), (1, Some(0)), (2, Some(0)), (3, Some(1))]
        .into_iter()
        .enumerate()
    {
        let q = t.queue(&format!("small-{n}")).await;
        let done = Arc::new(AtomicUsize::new(0));
        let d = done.clone();
        let handler = handler_fn(move |_job: Job, _n: u32| {
            let d = d.clone();
            async move {
                d.fetch_add(1, Ordering::SeqCst);
                Ok::<_, HandlerError>(Outcome::Done)
            }
        });
        let config = WorkerConfig {
            concurrency,
            prefetch,
            ..quick_worker_config()
        };
        let running = spawn(Worker::new(q.clone(), handler).with_config(config));
        // Some jobs arrive while the worker waits, more in a backlog.
        for i in 0..20u32 {
            q.enqueue_value(&i, JobOptions::new())
                .await
                .expect("enqueue");
        }
        let batch = (20..200u32)
            .map(|i| NewJob::new(&i, JobOptions::new()).expect("enc"))
            .collect();
        q.enqueue_many(batch).await.expect("enqueue");
        assert!(
            settled(&q, 200, 0).await,
            "concurrency {concurrency}, prefetch {prefetch:?}: {} of 200 jobs ran",
            done.load(Ordering::SeqCst)
        );
        let report = running.stop().await;
        assert_eq!(report.completed, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_wakes_when_a_job_arrives() {
    let t = TestRedis::new().await;
    let q = t.queue("wake").await;
    let config = WorkerConfig {
        block_timeout: Duration::from_secs(20),
        ..quick_worker_config()
    };
    let done = Arc::new(tokio::sync::Notify::new());
    let d = done.clone();
    let handler = move |_job: Job| {
        let d = d.clone();
        async move {
            d.notify_one();
            Ok::<_, HandlerError>(Outcome::Done)
        }
    };
    let running = spawn(Worker::new(q.clone(), handler).with_config(config));
    // Let the worker find the queue empty and block.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent = Instant::now();
    q.enqueue_value(&1u32, JobOptions::new().priority(7))
        .await
        .expect("enqueue");
    // It must run long before the 20 s block would have timed out.
    tokio::time::timeout(Duration::from_secs(10), done.notified())
        .await
        .expect("blocked worker did not wake for the new job");
    eprintln!("woke after {:?}", sent.elapsed());
    let report = running.stop().await;
    assert_eq!(report.completed, 1);
}

/// A caller that stops awaiting `run` (it dropped the future, as a
/// `select!` does with the branch that lost) stops the worker: nothing it
/// spawned keeps running jobs. A blocking read it had in flight may still
/// take the next entry on the server; that entry is then pending for a
/// consumer that is gone, and another worker takes it over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_run_future_stops_the_worker() {
    let t = TestRedis::new().await;
    let config = QueueConfig {
        visibility_timeout: Duration::from_millis(400),
        ..fast_config()
    };
    let q = t.queue_with("dropped-run", config.clone()).await;
    let ran = Arc::new(AtomicUsize::new(0));
    let counting = |ran: Arc<AtomicUsize>| {
        move |_job: Job| {
            let ran = ran.clone();
            async move {
                ran.fetch_add(1, Ordering::SeqCst);
                Ok::<_, HandlerError>(Outcome::Done)
            }
        }
    };
    let run = Worker::new(q.clone(), counting(ran.clone()))
        .with_config(quick_worker_config())
        .run(sluice_engine::Shutdown::new());
    // The worker starts, then its future is dropped.
    assert!(
        tokio::time::timeout(Duration::from_millis(500), run)
            .await
            .is_err()
    );
    q.enqueue_value(&1u32, JobOptions::new())
        .await
        .expect("enqueue");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(ran.load(Ordering::SeqCst), 0, "a dropped worker ran a job");
    let stats = q.stats().await.expect("stats");
    eprintln!(
        "after the drop: waiting {}, active {}",
        stats.waiting, stats.active
    );
    assert_eq!(
        (stats.waiting + stats.active, stats.completed_total),
        (1, 0),
        "{stats:?}"
    );
    // Whether it is still waiting or was taken by the dropped worker's last
    // read, a live worker runs it once.
    let q2 = t.queue_with("dropped-run", config).await;
    let running = spawn(Worker::new(q2, counting(ran.clone())).with_config(quick_worker_config()));
    assert!(settled(&q, 1, 0).await, "{:?}", q.stats().await);
    let report = running.stop().await;
    assert_eq!(report.completed, 1);
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_timeouts_and_panics_are_retried_then_dead_lettered() {
    let t = TestRedis::new().await;
    let q = t.queue("failing").await;
    let handler = |job: Job| async move {
        match job.decode::<String>()?.as_str() {
            "error" => Err::<Outcome, HandlerError>("database said no".into()),
            "slow" => {
                tokio::time::sleep(Duration::from_secs(30)).await;
                Ok(Outcome::Done)
            }
            "panic" => panic!("handler blew up"),
            "flaky" if job.attempt < 2 => Err("first try fails".into()),
            _ => Ok(Outcome::Done),
        }
    };
    let opts = JobOptions::new()
        .max_attempts(2)
        .timeout(Duration::from_millis(100));
    let mut ids = Vec::new();
    for kind in ["error", "slow", "panic", "flaky"] {
        ids.push(
            q.enqueue_value(&kind, opts.clone())
                .await
                .expect("enqueue")
                .id,
        );
    }
    let running = spawn(Worker::new(q.clone(), handler).with_config(quick_worker_config()));
    assert!(settled(&q, 1, 3).await, "{:?}", q.stats().await);
    let report = running.stop().await;
    assert_eq!((report.completed, report.dead), (1, 3));
    let reason = |i: usize| {
        let q = q.clone();
        let id = ids[i].clone();
        async move {
            q.job(&id)
                .await
                .expect("lookup")
                .expect("dead")
                .last_error
                .expect("reason")
        }
    };
    assert_eq!(reason(0).await, "database said no");
    assert!(reason(1).await.contains("timed out after 100 ms"));
    assert!(reason(2).await.contains("panicked: handler blew up"));
    let panicked = q.job(&ids[2]).await.expect("lookup").expect("dead");
    assert_eq!(
        (panicked.state, panicked.attempt, panicked.errors.len()),
        (JobState::Dead, 2, 2)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_without_stopping_the_worker() {
    let t = TestRedis::new().await;
    let q = t.queue("poison").await;
    #[derive(serde::Deserialize)]
    struct Order {
        #[allow(dead_code)]
        id: u64,
    }
    let handler =
        handler_fn(|_job: Job, _order: Order| async move { Ok::<_, HandlerError>(Outcome::Done) });
    // Not MessagePack at all, and MessagePack of the wrong shape.
    let bad1 = q
        .enqueue(NewJob::raw(vec![0xc1, 0xff, 0x00], JobOptions::new()))
        .await
        .expect("enq")
        .id;
    let bad2 = q
        .enqueue_value(&"just a string", JobOptions::new())
        .await
        .expect("enq")
        .id;
    #[derive(serde::Serialize)]
    struct GoodOrder {
        id: u64,
    }
    q.enqueue_value(&GoodOrder { id: 7 }, JobOptions::new())
        .await
        .expect("enq");
    let running = spawn(Worker::new(q.clone(), handler).with_config(quick_worker_config()));
    assert!(settled(&q, 1, 2).await, "{:?}", q.stats().await);
    let report = running.stop().await;
    assert_eq!((report.completed, report.dead), (1, 2));
    for id in [bad1, bad2] {
        let info = q.job(&id).await.expect("lookup").expect("dead letter");
        assert_eq!(info.state, JobState::Dead);
        assert_eq!(info.attempt, 1, "a poison message is not retried");
        assert!(
            info.last_error
                .expect("reason")
                .contains("payload could not be decoded")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_workers_job_is_taken_over_and_long_jobs_keep_their_claim() {
    let t = TestRedis::new().await;
    let q = t
        .queue_with(
            "takeover",
            QueueConfig {
                visibility_timeout: Duration::from_millis(400),
                ..fast_config()
            },
        )
        .await;
    // A worker claims a job and dies without a word.
    let lost = q
        .enqueue_value(&"lost", JobOptions::new())
        .await
        .expect("enq")
        .id;
    q.claim("crashed-worker", 1).await.expect("claim");
    // A long job (3 visibility timeouts) on a live worker is not reclaimed.
    let long = q
        .enqueue_value(&"long", JobOptions::new())
        .await
        .expect("enq")
        .id;
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let handler = move |job: Job| {
        let r = r.clone();
        async move {
            r.fetch_add(1, Ordering::SeqCst);
            if job.decode::<String>()? == "long" {
                tokio::time::sleep(Duration::from_millis(1200)).await;
            }
            Ok::<_, HandlerError>(Outcome::DoneWith(format!("attempt {}", job.attempt)))
        }
    };
    let q2 = t
        .queue_with(
            "takeover",
            QueueConfig {
                visibility_timeout: Duration::from_millis(400),
                keep_completed: Duration::from_secs(60),
                ..fast_config()
            },
        )
        .await;
    let running = spawn(Worker::new(q2.clone(), handler).with_config(quick_worker_config()));
    assert!(settled(&q, 2, 0).await, "{:?}", q.stats().await);
    let report = running.stop().await;
    assert_eq!((report.completed, report.fenced), (2, 0));
    assert_eq!(runs.load(Ordering::SeqCst), 2, "the long job ran twice");
    let lost_info = q.job(&lost).await.expect("lookup").expect("kept");
    assert_eq!(
        lost_info.result.as_deref(),
        Some("attempt 2"),
        "the dead worker's run counts"
    );
    let long_info = q.job(&long).await.expect("lookup").expect("kept");
    assert_eq!(long_info.result.as_deref(), Some("attempt 1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_claims_and_resume_restarts_them() {
    let t = TestRedis::new().await;
    let q = t.queue("pausing").await;
    q.pause().await.expect("pause");
    let handler = |_job: Job| async move { Ok::<_, HandlerError>(Outcome::Done) };
    let running = spawn(Worker::new(q.clone(), handler).with_config(quick_worker_config()));
    enqueue_while_paused_then_resume(&q).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_running_jobs_within_the_grace_period() {
    let t = TestRedis::new().await;
    let q = t.queue("drain").await;
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let handler = move |_job: Job| {
        let s = s.clone();
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok::<_, HandlerError>(Outcome::Done)
        }
    };
    let batch = (0..20u32)
        .map(|n| NewJob::new(&n, JobOptions::new()).expect("enc"))
        .collect();
    q.enqueue_many(batch).await.expect("enqueue");
    let config = WorkerConfig {
        concurrency: 4,
        ..quick_worker_config()
    };
    let running = spawn(Worker::new(q.clone(), handler).with_config(config));
    assert!(
        eventually(Duration::from_secs(5), || async {
            started.load(Ordering::SeqCst) >= 4
        })
        .await
    );
    let report = running.stop().await;
    // The 4 running jobs finished and were recorded; nothing else was claimed.
    assert_eq!(report.completed, 4);
    assert_eq!(report.abandoned, 0);
    let st = q.stats().await.expect("stats");
    assert_eq!((st.completed_total, st.active, st.waiting), (4, 0, 16));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_past_the_grace_period_are_abandoned_to_reclaim() {
    let t = TestRedis::new().await;
    let q = t.queue("abandon").await;
    let handler = |_job: Job| async move {
        tokio::time::sleep(Duration::from_secs(60)).await;
        Ok::<_, HandlerError>(Outcome::Done)
    };
    q.enqueue_value(&1u32, JobOptions::new())
        .await
        .expect("enqueue");
    let config = WorkerConfig {
        shutdown_grace: Duration::from_millis(200),
        ..quick_worker_config()
    };
    let running = spawn(Worker::new(q.clone(), handler).with_config(config));
    assert!(
        eventually(Duration::from_secs(5), || async {
            q.stats().await.expect("s").active == 1
        })
        .await
    );
    let report = running.stop().await;
    assert_eq!(report.abandoned, 1);
    // The abandoned job is reclaimed (another run of a worker takes it over).
    let quick = |_job: Job| async move { Ok::<_, HandlerError>(Outcome::Done) };
    let running = spawn(Worker::new(q.clone(), quick).with_config(quick_worker_config()));
    assert!(settled(&q, 1, 0).await, "{:?}", q.stats().await);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_stops_a_worker_that_is_already_waiting() {
    let t = TestRedis::new().await;
    let q = t.queue("waiting-pause").await;
    let handler = |_job: Job| async move { Ok::<_, HandlerError>(Outcome::Done) };
    let config = WorkerConfig {
        block_timeout: Duration::from_secs(5),
        ..quick_worker_config()
    };
    let running = spawn(Worker::new(q.clone(), handler).with_config(config));
    // Let the worker reach its blocking wait on the empty queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    q.pause().await.expect("pause");
    enqueue_while_paused_then_resume(&q).await;
    running.stop().await;
}

/// A worker claims ahead of its free slots; at a stop, the jobs it claimed
/// and never started go back in line with no attempt spent, and run once
/// each on the next worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_claimed_ahead_go_back_unspent_at_a_stop() {
    let t = TestRedis::new().await;
    let q = t.queue("ahead").await;
    let batch = (0..6u32)
        .map(|n| NewJob::new(&n, JobOptions::new().max_attempts(1)).expect("enc"))
        .collect();
    let ids: Vec<String> = q
        .enqueue_many(batch)
        .await
        .expect("enqueue")
        .into_iter()
        .map(|e| e.id)
        .collect();
    let runs = Arc::new(AtomicUsize::new(0));
    let slow = {
        let runs = runs.clone();
        move |_job: Job| {
            let runs = runs.clone();
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(400)).await;
                Ok::<_, HandlerError>(Outcome::Done)
            }
        }
    };
    let config = WorkerConfig {
        concurrency: 1,
        prefetch: Some(5),
        ..quick_worker_config()
    };
    let first = spawn(Worker::new(q.clone(), slow.clone()).with_config(config.clone()));
    assert!(
        eventually(Duration::from_secs(5), || async {
            runs.load(Ordering::SeqCst) == 1
        })
        .await
    );
    // One running, five claimed ahead (active in Redis, not started).
    assert_eq!(q.stats().await.expect("stats").active, 6);
    let report = first.stop().await;
    assert_eq!((report.completed, report.snoozed), (1, 5));
    let s = q.stats().await.expect("stats");
    assert_eq!((s.active, s.waiting + s.delayed, s.dead), (0, 5, 0));
    for id in &ids {
        if let Some(info) = q.job(id).await.expect("lookup") {
            assert_eq!(info.attempt, 0, "{info:?}");
        }
    }
    let second = spawn(Worker::new(q.clone(), slow).with_config(config));
    assert!(
        eventually(Duration::from_secs(10), || async {
            q.stats().await.expect("stats").completed_total == 6
        })
        .await
    );
    second.stop().await;
    assert_eq!(runs.load(Ordering::SeqCst), 6);
    assert_eq!(q.stats().await.expect("stats").dead, 0);
}

/// Collects the sizes of the batches it is given; fails the first batch.
struct Recording {
    sizes: Arc<std::sync::Mutex<Vec<usize>>>,
    runs: Arc<std::sync::Mutex<Vec<(u32, u32)>>>,
}

impl sluice_engine::TypedBatchHandler for Recording {
    type Args = u32;

    fn max_batch(&self) -> usize {
        50
    }

    async fn handle_batch(&self, jobs: Vec<(Job, u32)>) -> Result<Vec<Outcome>, HandlerError> {
        let first = {
            let mut sizes = self.sizes.lock().expect("lock");
            sizes.push(jobs.len());
            sizes.len() == 1
        };
        self.runs
            .lock()
            .expect("lock")
            .extend(jobs.iter().map(|(job, n)| (*n, job.attempt)));
        if first {
            return Err("the first batch fails".into());
        }
        Ok(vec![Outcome::Done; jobs.len()])
    }
}

/// A batch handler gets claimed jobs many at once (never more than its
/// `max_batch`); a failed batch is a failed attempt of each of its jobs;
/// every job completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_handler_gets_jobs_together_and_a_failed_batch_is_retried() {
    let t = TestRedis::new().await;
    let q = t.queue("batched").await;
    let batch = (0..300u32)
        .map(|n| {
            let quick_retry = sluice_engine::Backoff {
                base: Duration::from_millis(50),
                factor: 1.0,
                max: Duration::from_millis(50),
                jitter: 0.0,
            };
            NewJob::new(&n, JobOptions::new().backoff(quick_retry)).expect("enc")
        })
        .collect();
    q.enqueue_many(batch).await.expect("enqueue");
    let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let runs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let handler = sluice_engine::Typed(Recording {
        sizes: sizes.clone(),
        runs: runs.clone(),
    });
    let config = WorkerConfig {
        concurrency: 100,
        batch_size: 100,
        ..quick_worker_config()
    };
    let running = spawn(Worker::batched(q.clone(), handler).with_config(config));
    assert!(settled(&q, 300, 0).await, "{:?}", q.stats().await);
    let report = running.stop().await;
    let sizes = sizes.lock().expect("lock").clone();
    assert!(sizes.iter().all(|&n| (1..=50).contains(&n)), "{sizes:?}");
    assert!(sizes.iter().any(|&n| n > 1), "never batched: {sizes:?}");
    let first = sizes[0] as u64;
    assert_eq!((report.completed, report.retried), (300, first));
    // Each job completed once; those of the failed batch ran twice.
    let runs = runs.lock().expect("lock").clone();
    let mut per_job = std::collections::HashMap::<u32, Vec<u32>>::new();
    for (n, attempt) in runs {
        per_job.entry(n).or_default().push(attempt);
    }
    assert_eq!(per_job.len(), 300);
    let twice = per_job.values().filter(|a| a.as_slice() == [1, 2]).count() as u64;
    let once = per_job.values().filter(|a| a.as_slice() == [1]).count() as u64;
    assert_eq!((twice, once), (first, 300 - first), "{per_job:?}");
}

/// At a stop past the shutdown grace, a running job is told why; the
/// failure it then returns puts it back in line with no attempt spent, and
/// the next worker runs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_cancels_running_jobs_which_go_back_unspent() {
    let t = TestRedis::new().await;
    let q = t.queue("cancel-stop").await;
    let id = q
        .enqueue_value(&1u32, JobOptions::new().max_attempts(1))
        .await
        .expect("enqueue")
        .id;
    let reasons = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = reasons.clone();
    let interruptible = move |job: Job| {
        let seen = seen.clone();
        async move {
            job.cancelled().await;
            seen.lock().expect("lock").push(job.cancel_reason());
            Err::<Outcome, HandlerError>("interrupted while writing".into())
        }
    };
    let config = WorkerConfig {
        shutdown_grace: Duration::from_millis(200),
        ..quick_worker_config()
    };
    let running = spawn(Worker::new(q.clone(), interruptible).with_config(config));
    assert!(
        eventually(Duration::from_secs(5), || async {
            q.stats().await.expect("s").active == 1
        })
        .await
    );
    let report = running.stop().await;
    assert_eq!((report.snoozed, report.abandoned, report.dead), (1, 0, 0));
    assert_eq!(
        *reasons.lock().expect("lock"),
        vec![Some(sluice_engine::CancelReason::Shutdown)]
    );
    let info = q.job(&id).await.expect("lookup").expect("still there");
    assert_eq!(
        (info.state, info.attempt),
        (JobState::Waiting, 0),
        "{info:?}"
    );
    let quick = |_job: Job| async move { Ok::<_, HandlerError>(Outcome::Done) };
    let running = spawn(Worker::new(q.clone(), quick).with_config(quick_worker_config()));
    assert!(settled(&q, 1, 0).await, "{:?}", q.stats().await);
    running.stop().await;
}

/// A run past its timeout is told, may clean up, and counts as failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_handler_is_told_and_the_attempt_fails() {
    let t = TestRedis::new().await;
    let q = t.queue("cancel-timeout").await;
    let id = q
        .enqueue_value(
            &1u32,
            JobOptions::new()
                .max_attempts(1)
                .timeout(Duration::from_millis(100)),
        )
        .await
        .expect("enqueue")
        .id;
    let cleaned = Arc::new(std::sync::Mutex::new(None));
    let seen = cleaned.clone();
    let slow = move |job: Job| {
        let seen = seen.clone();
        async move {
            job.cancelled().await;
            *seen.lock().expect("lock") = job.cancel_reason();
            Ok::<_, HandlerError>(Outcome::Done)
        }
    };
    let running = spawn(Worker::new(q.clone(), slow).with_config(quick_worker_config()));
    assert!(settled(&q, 0, 1).await, "{:?}", q.stats().await);
    running.stop().await;
    assert_eq!(
        *cleaned.lock().expect("lock"),
        Some(sluice_engine::CancelReason::Timeout)
    );
    let info = q.job(&id).await.expect("lookup").expect("dead");
    assert_eq!(info.last_error.as_deref(), Some("timed out after 100 ms"));
}

/// An operator's cancel reaches the running handler, which stops; the job
/// is dead-lettered with the handler's reason, and not run again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operators_cancel_reaches_the_running_handler() {
    let t = TestRedis::new().await;
    let q = t.queue("cancel-operator").await;
    let id = q
        .enqueue_value(&1u32, JobOptions::new())
        .await
        .expect("enq")
        .id;
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let stoppable = move |job: Job| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::select! {
                _ = job.cancelled() => {}
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
            let why = job.cancel_reason().map(|r| r.as_str()).unwrap_or("none");
            Err::<Outcome, HandlerError>(format!("stopped: {why}").into())
        }
    };
    let config = WorkerConfig {
        cancel_poll: Duration::from_millis(100),
        ..quick_worker_config()
    };
    let running = spawn(Worker::new(q.clone(), stoppable).with_config(config));
    assert!(
        eventually(Duration::from_secs(5), || async {
            runs.load(Ordering::SeqCst) == 1
        })
        .await
    );
    assert_eq!(
        q.cancel(&id).await.expect("cancel"),
        sluice_engine::Cancelled::Requested
    );
    assert!(settled(&q, 0, 1).await, "{:?}", q.stats().await);
    let report = running.stop().await;
    assert_eq!(report.dead, 1);
    let info = q.job(&id).await.expect("lookup").expect("dead");
    assert_eq!(
        info.last_error.as_deref(),
        Some("cancelled by an operator: stopped: operator")
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
}

/// A worker draining a backlog reads ahead from the level it drains
/// (direct reads, store/direct.rs); it still serves the levels strictly,
/// most urgent first and in order within a level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_drains_a_backlog_in_strict_priority_order() {
    let t = TestRedis::new().await;
    let q = t.queue("prio-drain").await;
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let handler = recording_order(order.clone());
    let batch = (0..300u32)
        .map(|n| {
            let level = rand::random_range(0..4u8);
            NewJob::new(&n, JobOptions::new().priority(level)).expect("enc")
        })
        .collect();
    q.enqueue_many(batch).await.expect("enqueue");
    let running = spawn(Worker::new(q.clone(), handler).with_config(one_at_a_time_reading_ahead()));
    assert!(settled(&q, 300, 0).await, "jobs not all completed");
    running.stop().await;
    let order = order.lock().expect("lock").clone();
    assert_eq!(order.len(), 300);
    let levels: Vec<u8> = order.iter().map(|(level, _)| *level).collect();
    assert!(levels.is_sorted(), "not most urgent first: {levels:?}");
    for level in 0..4u8 {
        let ns: Vec<u32> = order
            .iter()
            .filter(|(l, _)| *l == level)
            .map(|(_, n)| *n)
            .collect();
        assert!(ns.is_sorted(), "level {level} out of order: {ns:?}");
    }
}

/// A pause reaches a worker in the middle of a backlog (reading ahead
/// without claim.lua): the jobs it holds finish, nothing more starts, and
/// after a resume every job runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_stops_a_worker_in_the_middle_of_a_backlog() {
    let t = TestRedis::new().await;
    let q = t.queue("pause-drain").await;
    let started = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (s, n_seen) = (started.clone(), seen.clone());
    let handler = handler_fn(move |_job: Job, n: u32| {
        let (s, n_seen) = (s.clone(), n_seen.clone());
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            n_seen.lock().expect("lock").push(n);
            tokio::time::sleep(Duration::from_millis(3)).await;
            Ok::<_, HandlerError>(Outcome::Done)
        }
    });
    let batch = (0..400u32)
        .map(|n| NewJob::new(&n, JobOptions::new()).expect("enc"))
        .collect();
    q.enqueue_many(batch).await.expect("enqueue");
    let config = WorkerConfig {
        concurrency: 2,
        batch_size: 10,
        ..quick_worker_config()
    };
    let running = spawn(Worker::new(q.clone(), handler).with_config(config));
    assert!(
        eventually(Duration::from_secs(10), || async {
            started.load(Ordering::SeqCst) >= 100
        })
        .await
    );
    q.pause().await.expect("pause");
    // What the worker held when the pause came may still finish...
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after_pause = started.load(Ordering::SeqCst);
    // ... but nothing starts later.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        started.load(Ordering::SeqCst),
        after_pause,
        "a paused queue was claimed"
    );
    assert!(after_pause < 400, "the backlog finished before the pause");
    q.resume().await.expect("resume");
    assert!(settled(&q, 400, 0).await, "jobs not all completed");
    running.stop().await;
    let mut seen = seen.lock().expect("lock").clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..400).collect::<Vec<_>>(), "each job exactly once");
}

/// Urgent jobs arriving while a worker drains a less urgent level take
/// over at once: the worker reads the less urgent level beside them once
/// at most (one claim batch), not on every read while both have jobs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urgent_jobs_arriving_mid_drain_are_not_interleaved_with_the_drained_level() {
    let t = TestRedis::new().await;
    let q = t.queue("prio-arrive").await;
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let handler = recording_order(order.clone());
    let less_urgent = (0..400u32)
        .map(|n| NewJob::new(&n, JobOptions::new().priority(3)).expect("enc"))
        .collect();
    q.enqueue_many(less_urgent).await.expect("enqueue");
    let running = spawn(Worker::new(q.clone(), handler).with_config(one_at_a_time_reading_ahead()));
    assert!(
        eventually(Duration::from_secs(10), || async {
            order.lock().expect("lock").len() >= 30
        })
        .await
    );
    let urgent = (0..150u32)
        .map(|n| NewJob::new(&n, JobOptions::new().priority(0)).expect("enc"))
        .collect();
    q.enqueue_many(urgent).await.expect("enqueue");
    assert!(settled(&q, 550, 0).await, "jobs not all completed");
    running.stop().await;
    let order: Vec<u8> = order
        .lock()
        .expect("lock")
        .iter()
        .map(|(l, _)| *l)
        .collect();
    let first = order
        .iter()
        .position(|l| *l == 0)
        .expect("an urgent job ran");
    let last = order
        .iter()
        .rposition(|l| *l == 0)
        .expect("an urgent job ran");
    let beside = order[first..=last].iter().filter(|l| **l == 3).count();
    // What was claimed ahead when they arrived, and one read beside them.
    assert!(
        beside <= 20,
        "{beside} less urgent jobs ran among the urgent ones: {:?}",
        &order[first..=last]
    );
}
