//! `sluice work` and `sluice serve` as real processes against the real
//! Redis and a local HTTP target: the HTTP delivery handler's statuses,
//! headers and signature; two workers sharing a queue; a SIGKILLed worker's
//! job finished by another; SIGTERM draining; a second signal; cron ticks
//! fired once with three processes; the worker registry; alert rules on a
//! plug-in's dependencies, which read its health checks.

use crate::common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use common::{Prefix, eventually, free_port};
use serde_json::json;
use sluice_engine::{JobOptions, JobOptionsInput, JobState, Queue};

/// One request the target received.
#[derive(Debug, Clone)]
struct Seen {
    job: String,
    attempt: u32,
    at: Instant,
    signature: Option<String>,
    body: Vec<u8>,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// What the target does is in the payload: `{"answer": 200|400|429|500,
/// "first_only": bool, "sleep_ms": n}`; with `first_only`, later attempts
/// get 200.
async fn target(
    State(log): State<Log>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let attempt: u32 = header("sluice-attempt")
        .and_then(|a| a.parse().ok())
        .unwrap_or(0);
    log.lock().expect("log").push(Seen {
        job: header("sluice-job-id").unwrap_or_default(),
        attempt,
        at: Instant::now(),
        signature: header("sluice-signature"),
        body: body.to_vec(),
    });
    let payload: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let first_only = payload["first_only"].as_bool().unwrap_or(false);
    if let Some(ms) = payload["sleep_ms"].as_u64()
        && (!first_only || attempt == 1)
    {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let answer = payload["answer"].as_u64().unwrap_or(200) as u16;
    if first_only && attempt > 1 {
        return StatusCode::OK.into_response();
    }
    let status = StatusCode::from_u16(answer).unwrap_or(StatusCode::OK);
    match answer {
        429 => (status, [("retry-after", "1")], "slow down").into_response(),
        400 => (status, "nope: field `x` is missing").into_response(),
        _ => (status, "").into_response(),
    }
}

/// Start the target; returns its URL and log.
async fn start_target() -> (String, Log) {
    let log: Log = Arc::default();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(target))
        .with_state(log.clone());
    let addr = common::serve_on_loopback(app).await;
    (format!("http://{addr}/hook"), log)
}

/// A config file of the test's own, deleted when dropped.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(prefix: &Prefix, body: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{}.toml", prefix.name));
        let text = format!(
            "redis_url = {:?}\nprefix = {:?}\n{body}",
            prefix.url, prefix.name
        );
        std::fs::write(&path, text).expect("write config");
        Self(path)
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A `sluice` process, SIGKILLed when dropped if still running.
struct Process(Child);

impl Process {
    fn start(config: &ConfigFile, args: &[&str]) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("--config")
            .arg(&config.0)
            .args(args)
            .env_remove("SLUICE_REDIS_URL")
            .env_remove("SLUICE_PREFIX")
            .env("SLUICE_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sluice");
        Self(child)
    }

    fn signal(&self, sig: &str) {
        common::signal(self.0.id(), sig);
    }

    /// Wait for the exit (at most `limit`); its code.
    async fn wait(&mut self, limit: Duration) -> Option<i32> {
        let until = Instant::now() + limit;
        while Instant::now() < until {
            if let Some(status) = self.0.try_wait().expect("wait") {
                return status.code();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn quick(backoff_ms: i64) -> JobOptions {
    JobOptions::try_from(JobOptionsInput {
        backoff_ms: Some(backoff_ms),
        ..JobOptionsInput::default()
    })
    .expect("options")
}

async fn completed(q: &Queue) -> u64 {
    q.stats().await.expect("stats").completed_total
}

fn queue_section(name: &str, url: &str, extra: &str) -> String {
    format!(
        "[worker]\nheartbeat_secs = 1\nshutdown_grace_secs = 10\n[[queues]]\nname = {name:?}\nurl = {url:?}\n{extra}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_delivery_honours_statuses_and_signs_requests() {
    let p = Prefix::new("deliver");
    let (url, log) = start_target().await;
    let config = ConfigFile::new(
        &p,
        &queue_section("hooks", &url, "secret = \"s3cret\"\nconcurrency = 4"),
    );
    let client = p.client().await;
    let q = client.queue("hooks").await.expect("queue");
    let ok = q
        .enqueue_value(&json!({"answer": 200}), quick(50))
        .await
        .expect("enqueue")
        .id;
    let throttled = q
        .enqueue_value(&json!({"answer": 429, "first_only": true}), quick(50))
        .await
        .expect("enqueue")
        .id;
    let flaky = q
        .enqueue_value(&json!({"answer": 500, "first_only": true}), quick(50))
        .await
        .expect("enqueue")
        .id;
    let bad = q
        .enqueue_value(&json!({"answer": 400}), quick(50))
        .await
        .expect("enqueue")
        .id;

    let mut worker = Process::start(&config, &["work", "--queue", "hooks"]);
    let done = eventually(Duration::from_secs(20), || async {
        let s = q.stats().await.expect("stats");
        s.completed_total == 3 && s.dead == 1
    })
    .await;
    assert!(done, "{:?}", q.stats().await);

    let seen = log.lock().expect("log").clone();
    let by_job = |id: &str| {
        seen.iter()
            .filter(|s| s.job == id)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(by_job(&ok).len(), 1);
    let t = by_job(&throttled);
    assert_eq!(t.iter().map(|s| s.attempt).collect::<Vec<_>>(), vec![1, 2]);
    assert!(
        t[1].at - t[0].at >= Duration::from_millis(900),
        "Retry-After: 1 not honoured"
    );
    assert_eq!(
        by_job(&flaky).iter().map(|s| s.attempt).collect::<Vec<_>>(),
        vec![1, 2]
    );
    // A 400 is permanent: one attempt, then a dead letter with the status
    // and the start of the body.
    assert_eq!(by_job(&bad).len(), 1);
    let dead = q.job(&bad).await.expect("lookup").expect("kept");
    assert_eq!(dead.state, JobState::Dead);
    let reason = dead.last_error.unwrap_or_default();
    assert!(
        reason.contains("400 Bad Request") && reason.contains("nope: field `x` is missing"),
        "{reason}"
    );

    // Every request is signed over its timestamp and body.
    for s in &seen {
        let sig = s.signature.clone().expect("signed");
        let t: u64 = sig
            .strip_prefix("t=")
            .and_then(|r| r.split(',').next())
            .and_then(|t| t.parse().ok())
            .expect("timestamp");
        assert_eq!(sig, sluice::delivery::sign(b"s3cret", t, &s.body));
    }

    worker.signal("TERM");
    assert_eq!(worker.wait(Duration::from_secs(20)).await, Some(0));
    assert!(
        client
            .registry()
            .workers()
            .await
            .expect("workers")
            .is_empty(),
        "left the registry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_a_queue_without_double_processing() {
    let p = Prefix::new("share");
    let (url, log) = start_target().await;
    let config = ConfigFile::new(&p, &queue_section("shared", &url, "concurrency = 8"));
    let client = p.client().await;
    let q = client.queue("shared").await.expect("queue");
    let a = Process::start(&config, &["work"]);
    let b = Process::start(&config, &["work", "--queue", "shared:4"]);
    let both = eventually(Duration::from_secs(20), || async {
        client.registry().workers().await.expect("workers").len() == 2
    })
    .await;
    assert!(both, "both workers registered");
    let listed = client.registry().workers().await.expect("workers");
    let pids: Vec<u32> = listed.iter().map(|w| w.pid).collect();
    assert!(pids.contains(&a.0.id()) && pids.contains(&b.0.id()));
    let conc: Vec<usize> = listed.iter().map(|w| w.queues[0].concurrency).collect();
    assert!(conc.contains(&8) && conc.contains(&4), "{conc:?}");

    // The operator command sees them too.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--config"])
        .arg(&config.0)
        .args(["workers", "--json"])
        .output()
        .expect("sluice workers");
    let workers: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(workers.as_array().map(Vec::len), Some(2));

    let jobs = (0..300)
        .map(|i| {
            sluice_engine::NewJob::new(&json!({"n": i, "sleep_ms": 2}), JobOptions::new())
                .expect("job")
        })
        .collect();
    let ids: Vec<String> = q
        .enqueue_many(jobs)
        .await
        .expect("enqueue")
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert!(
        eventually(Duration::from_secs(30), || async {
            completed(&q).await == 300
        })
        .await,
        "{:?}",
        q.stats().await
    );
    let seen = log.lock().expect("log").clone();
    let mut count: HashMap<String, usize> = HashMap::new();
    for s in &seen {
        *count.entry(s.job.clone()).or_default() += 1;
    }
    assert_eq!(count.len(), 300);
    assert!(
        ids.iter().all(|id| count.get(id) == Some(&1)),
        "a job was delivered twice"
    );
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_job_is_finished_by_another() {
    let p = Prefix::new("kill");
    let (url, log) = start_target().await;
    let config = ConfigFile::new(
        &p,
        &queue_section("k", &url, "visibility_timeout_ms = 1500"),
    );
    let client = p.client().await;
    let q = client.queue("k").await.expect("queue");
    let mut a = Process::start(&config, &["work"]);
    let id = q
        .enqueue_value(&json!({"sleep_ms": 60000, "first_only": true}), quick(50))
        .await
        .expect("enqueue")
        .id;
    assert!(
        eventually(Duration::from_secs(20), || async {
            !log.lock().expect("log").is_empty()
        })
        .await,
        "first attempt never arrived"
    );
    a.signal("KILL");
    a.wait(Duration::from_secs(5)).await;
    let b = Process::start(&config, &["work"]);
    assert!(
        eventually(Duration::from_secs(30), || async {
            completed(&q).await == 1
        })
        .await,
        "{:?}",
        q.stats().await
    );
    let attempts: Vec<u32> = log
        .lock()
        .expect("log")
        .iter()
        .filter(|s| s.job == id)
        .map(|s| s.attempt)
        .collect();
    assert_eq!(attempts, vec![1, 2]);
    // The killed worker stops beating and leaves the registry.
    let alone = eventually(Duration::from_secs(10), || async {
        let w = client.registry().workers().await.expect("workers");
        w.len() == 1 && w[0].pid == b.0.id()
    })
    .await;
    assert!(alone, "{:?}", client.registry().workers().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_running_jobs_and_a_second_signal_exits_at_once() {
    let p = Prefix::new("term");
    let (url, log) = start_target().await;
    let config = ConfigFile::new(&p, &queue_section("t", &url, ""));
    let client = p.client().await;
    let q = client.queue("t").await.expect("queue");

    let mut w = Process::start(&config, &["work"]);
    q.enqueue_value(&json!({"sleep_ms": 1500}), JobOptions::new())
        .await
        .expect("enqueue");
    assert!(
        eventually(Duration::from_secs(20), || async {
            log.lock().expect("log").len() == 1
        })
        .await
    );
    w.signal("TERM");
    assert_eq!(
        w.wait(Duration::from_secs(20)).await,
        Some(0),
        "graceful exit"
    );
    assert_eq!(
        completed(&q).await,
        1,
        "the running job finished before exit"
    );

    let mut w = Process::start(&config, &["work"]);
    q.enqueue_value(&json!({"sleep_ms": 60000}), JobOptions::new())
        .await
        .expect("enqueue");
    assert!(
        eventually(Duration::from_secs(20), || async {
            log.lock().expect("log").len() == 2
        })
        .await
    );
    w.signal("TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.signal("TERM");
    assert_eq!(
        w.wait(Duration::from_secs(5)).await,
        Some(130),
        "second signal exits at once"
    );
    // The job is not lost: still claimed, to be reclaimed.
    assert_eq!(q.stats().await.expect("stats").active, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_schedule_fires_once_per_tick_with_three_processes() {
    let p = Prefix::new("cron");
    let config = ConfigFile::new(
        &p,
        "[[schedules]]\nname = \"every-second\"\ncron = \"* * * * * *\"\nqueue = \"ticks\"\npayload = { kind = \"tick\" }\n",
    );
    // Port 0: the test never calls their APIs, and a port picked free
    // beforehand can be taken by another test before `serve` binds it.
    let mut procs: Vec<Process> = (0..3)
        .map(|_| Process::start(&config, &["serve", "--listen", "127.0.0.1:0"]))
        .collect();
    let client = p.client().await;
    let enough = eventually(Duration::from_secs(30), || async {
        match client.existing_queue("ticks").await.expect("lookup") {
            Some(q) => q.stats().await.expect("stats").enqueued_total >= 4,
            None => false,
        }
    })
    .await;
    assert!(enough, "schedule did not fire");
    for proc in &procs {
        proc.signal("TERM");
    }
    for proc in &mut procs {
        assert_eq!(proc.wait(Duration::from_secs(10)).await, Some(0));
    }
    // One job per tick: every job's idempotency key names a distinct tick.
    // (Nothing serves the queue, so every job is still there to export.)
    let q = client
        .existing_queue("ticks")
        .await
        .expect("lookup")
        .expect("queue");
    let jobs = q.export().await.expect("export");
    let ticks: Vec<String> = jobs
        .iter()
        .map(|j| j.field("idem").unwrap_or_default())
        .collect();
    let total = q.stats().await.expect("stats").enqueued_total;
    assert_eq!(jobs.len() as u64, total);
    let mut distinct = ticks.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        ticks.len(),
        "a tick enqueued twice: {ticks:?}"
    );
    assert!(ticks.iter().all(|t| t.starts_with("cron:every-second:")));
    let last: serde_json::Value =
        serde_json::from_str(&client.registry().schedule_states().await.expect("states")[0].1)
            .expect("json");
    assert!(last["job_id"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_queue_is_enqueued_through_the_api_and_served_over_every_partition() {
    use axum::http::Method;
    let p = Prefix::new("parts");
    let (url, log) = start_target().await;
    let config = ConfigFile::new(
        &p,
        &format!(
            "[worker]\nheartbeat_secs = 1\n[[queues]]\nname = \"parts\"\nurl = {url:?}\npartitions = 3\nconcurrency = 6\n[[queues]]\nname = \"plain\"\nurl = {url:?}\n"
        ),
    );
    let file = sluice::config::FileConfig::load(&config.0, &[]).expect("config");
    let app = common::api(&p, file).await;
    // 30 jobs without a key, then 10 under one partition key.
    for n in 0..40 {
        let body = if n < 30 {
            json!({"payload": {"n": n}})
        } else {
            json!({"payload": {"n": n}, "partition_key": "acct-1"})
        };
        let a = common::call(
            &app,
            Method::POST,
            "/api/queues/parts/jobs",
            None,
            Some(&body.to_string()),
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    }
    let batch = json!({"jobs": (40..50).map(|n| json!({"payload": {"n": n}, "partition_key": "acct-2"})).collect::<Vec<_>>()});
    let a = common::call(
        &app,
        Method::POST,
        "/api/queues/parts/jobs/batch",
        None,
        Some(&batch.to_string()),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);

    // Keyed jobs share a partition; keyless ones reach every partition; the
    // queue's own page sums them.
    let client = p.client().await;
    let pq = client
        .partitioned_queue("parts", 3, sluice_engine::QueueConfig::default())
        .await
        .expect("partitions");
    for key in ["acct-1", "acct-2"] {
        let waiting = pq.partition_for(key).stats().await.expect("stats").waiting;
        assert!(waiting >= 10, "{key}: {waiting}");
    }
    for q in pq.partitions() {
        assert!(
            q.stats().await.expect("stats").waiting > 0,
            "{} empty",
            q.name()
        );
    }
    let a = common::call(&app, Method::GET, "/api/queues/parts", None, None).await;
    assert_eq!(a.json["waiting"], 50, "{}", a.text);
    let body = json!({"payload": 1, "partition_key": "x"}).to_string();
    let a = common::call(
        &app,
        Method::POST,
        "/api/queues/plain/jobs",
        None,
        Some(&body),
    )
    .await;
    common::assert_error(&a, StatusCode::CONFLICT, "not_partitioned");

    // One worker process serves every partition.
    let _worker = Process::start(&config, &["work", "--no-schedules", "--queue", "parts"]);
    let delivered = eventually(Duration::from_secs(30), || async {
        log.lock().expect("log").len() >= 50
    })
    .await;
    assert!(
        delivered,
        "{} of 50 delivered",
        log.lock().expect("log").len()
    );
    assert!(
        eventually(Duration::from_secs(10), || async {
            let a = common::call(&app, Method::GET, "/api/queues/parts", None, None).await;
            a.json["completed_total"] == 50
        })
        .await
    );
    let mut numbers: Vec<u64> = log
        .lock()
        .expect("log")
        .iter()
        .filter_map(|s| serde_json::from_slice::<serde_json::Value>(&s.body).ok()?["n"].as_u64())
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers, (0..50).collect::<Vec<_>>());
}

/// A target that answers 503 until `healthy_at`, or fails 30 % of the
/// requests at random when `thirty_percent`; it logs each request's start and end and counts the
/// requests in flight.
#[derive(Debug)]
struct Flaky {
    healthy_at: Instant,
    thirty_percent: bool,
    requests: std::sync::atomic::AtomicU64,
    in_flight: std::sync::atomic::AtomicU64,
    /// (start, end, requests in flight at the start, failed).
    log: Mutex<Vec<(Instant, Instant, u64, bool)>>,
    attempts: Mutex<HashMap<String, u32>>,
}

async fn flaky(State(t): State<Arc<Flaky>>, headers: HeaderMap) -> StatusCode {
    use std::sync::atomic::Ordering::SeqCst;
    let start = Instant::now();
    t.requests.fetch_add(1, SeqCst);
    let concurrent = t.in_flight.fetch_add(1, SeqCst) + 1;
    let fail = if t.thirty_percent {
        rand::random::<f64>() < 0.3
    } else {
        start < t.healthy_at
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    t.in_flight.fetch_sub(1, SeqCst);
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    let attempt: u32 = header("sluice-attempt").parse().unwrap_or(0);
    let mut attempts = t.attempts.lock().expect("attempts");
    let seen = attempts
        .entry(header("sluice-job-id").to_owned())
        .or_default();
    *seen = (*seen).max(attempt);
    drop(attempts);
    t.log
        .lock()
        .expect("log")
        .push((start, Instant::now(), concurrent, fail));
    if fail {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    }
}

async fn start_flaky(healthy_in: Duration, thirty_percent: bool) -> (String, Arc<Flaky>) {
    let state = Arc::new(Flaky {
        healthy_at: Instant::now() + healthy_in,
        thirty_percent,
        requests: Default::default(),
        in_flight: Default::default(),
        log: Mutex::default(),
        attempts: Mutex::default(),
    });
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(flaky))
        .with_state(state.clone());
    let addr = common::serve_on_loopback(app).await;
    (format!("http://{addr}/hook"), state)
}

/// Three worker processes deliver to a target that is down for 10 s, to
/// one that is healthy, and to one that fails 30 % of its requests. The
/// breaker of the first opens and its jobs wait without spending
/// attempts: none is dead-lettered, at most one probe (K = 1) is in
/// flight fleet-wide while it is half-open, and all are delivered within
/// the cool-down plus a probe round after the target recovers. The
/// healthy target's jobs are not held up, and the 30 % target's breaker
/// stays closed while its jobs retry as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_breaker_holds_jobs_for_a_dead_target_without_spending_attempts() {
    let p = Prefix::new("breaker");
    let down_for = Duration::from_secs(10);
    let (down_url, down) = start_flaky(down_for, false).await;
    let (up_url, up) = start_flaky(Duration::ZERO, false).await;
    let (some_url, some) = start_flaky(Duration::ZERO, true).await;
    let started = down.healthy_at - down_for;
    let breaker =
        "[queues.breaker]\nmin_calls = 7\ncool_down_ms = 1000\nmax_cool_down_ms = 3000\nprobes = 1";
    let body = format!(
        "[worker]\nheartbeat_secs = 1\nshutdown_grace_secs = 5\n\
         [[queues]]\nname = \"down\"\nurl = {down_url:?}\nconcurrency = 4\nmax_attempts = 3\n{breaker}\n\
         [[queues]]\nname = \"up\"\nurl = {up_url:?}\nconcurrency = 4\nmax_attempts = 3\n{breaker}\n\
         [[queues]]\nname = \"some\"\nurl = {some_url:?}\nconcurrency = 2\nmax_attempts = 20\n"
    );
    let config = ConfigFile::new(&p, &body);
    let client = p.client().await;
    let mut queues = HashMap::new();
    for name in ["down", "up", "some"] {
        let q = client.queue(name).await.expect("queue");
        // Attempts are the producer's: 20 for the 30 % target, so that
        // only the breaker, not bad luck (0.3^4 per job), could bury one.
        let options = if name == "some" {
            quick(100).max_attempts(20)
        } else {
            quick(100)
        };
        let jobs = (0..40)
            .map(|i| sluice_engine::NewJob::new(&json!({ "n": i }), options.clone()).expect("job"))
            .collect();
        q.enqueue_many(jobs).await.expect("enqueue");
        queues.insert(name, q);
    }
    let _workers: Vec<Process> = (0..3)
        .map(|_| Process::start(&config, &["work", "--no-schedules"]))
        .collect();

    // The healthy target's jobs go through while the other is down.
    assert!(
        eventually(Duration::from_secs(20), || async {
            completed(&queues["up"]).await == 40
        })
        .await,
        "{:?}",
        queues["up"].stats().await
    );
    assert!(
        Instant::now() < down.healthy_at,
        "the healthy queue was held up"
    );
    let status = client
        .breakers()
        .status(&sluice_engine::target_breaker_name(&down_url).expect("name"))
        .await
        .expect("status")
        .expect("registered");
    assert_ne!(
        status.state,
        sluice_engine::BreakerState::Closed,
        "{status:?}"
    );

    assert!(
        eventually(Duration::from_secs(30), || async {
            completed(&queues["down"]).await == 40
        })
        .await,
        "{:?}",
        queues["down"].stats().await
    );
    let recovered_after = Instant::now() - down.healthy_at;
    // Cool-down (at most 3 s) plus a probe round (a refused call waits 1 s)
    // plus polling and promotion slack.
    assert!(
        recovered_after < Duration::from_secs(7),
        "delivered {recovered_after:?} after the target recovered"
    );
    let stats = queues["down"].stats().await.expect("stats");
    assert_eq!(stats.dead_total, 0, "{stats:?}");
    let attempts = down.attempts.lock().expect("a").clone();
    assert_eq!(attempts.len(), 40);
    assert!(
        attempts.values().all(|a| *a <= 3),
        "an attempt was spent while open: {attempts:?}"
    );
    let log = down.log.lock().expect("log").clone();
    let failed = log.iter().filter(|r| r.3).count();
    // Before the breaker opened: at most min_calls plus what 3 workers of
    // 4 had in flight; then one probe per cool-down round (1, 2, 3, 3 s).
    assert!(failed <= 7 + 12 + 6, "{failed} failed requests while down");
    // Once it is open, only probes reach the target: one at a time.
    let settled = started + Duration::from_secs(2);
    let overlapping = log
        .iter()
        .filter(|r| r.0 > settled && r.0 < down.healthy_at)
        .map(|r| r.2)
        .max()
        .unwrap_or(0);
    assert!(overlapping <= 1, "{overlapping} probes at once");

    // The 30 % target: retried as usual, never refused by its breaker.
    let all_done = eventually(Duration::from_secs(30), || async {
        completed(&queues["some"]).await == 40
    })
    .await;
    assert!(
        all_done,
        "{:?} {:?}",
        queues["some"].stats().await,
        queues["some"].dead_letters(0, 5).await.map(|d| d
            .into_iter()
            .map(|j| (j.attempt, j.errors))
            .collect::<Vec<_>>())
    );
    let some_status = client
        .breakers()
        .status(&sluice_engine::target_breaker_name(&some_url).expect("name"))
        .await
        .expect("status")
        .expect("registered");
    assert_eq!(
        (some_status.state, some_status.opened_total),
        (sluice_engine::BreakerState::Closed, 0),
        "{some_status:?}"
    );
    let retried = some
        .attempts
        .lock()
        .expect("a")
        .values()
        .filter(|a| **a > 1)
        .count();
    assert!(retried > 0, "no job of the 30 % target was retried");
    assert_eq!(queues["some"].stats().await.expect("s").dead_total, 0);
    drop(up);
}

/// One message a fake channel server received.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    body: serde_json::Value,
    raw: Vec<u8>,
    signature: Option<String>,
    at: Instant,
}

type Inbox = Arc<Mutex<Vec<Received>>>;

async fn receive(
    State(inbox): State<Inbox>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    inbox.lock().expect("inbox").push(Received {
        path: uri.path().to_owned(),
        body: serde_json::from_slice(&body).unwrap_or_default(),
        raw: body.to_vec(),
        signature: headers
            .get("sluice-signature")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        at: Instant::now(),
    });
    axum::Json(json!({ "ok": true })).into_response()
}

/// A fake Telegram Bot API / Slack webhook on `port` (any free one for 0).
async fn channel_server(port: u16) -> (String, Inbox) {
    let inbox: Inbox = Arc::default();
    let app = axum::Router::new()
        .fallback(axum::routing::post(receive))
        .with_state(inbox.clone());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), inbox)
}

fn texts(inbox: &Inbox) -> Vec<String> {
    inbox
        .lock()
        .expect("inbox")
        .iter()
        .map(|r| r.body["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Three API processes evaluate the same queue-depth rule. It fires once,
/// repeats once after its repeat interval, and resolves once when the
/// queue drains: one Telegram message per transition, with the exact
/// request the Bot API expects.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_alert_fires_repeats_and_resolves_once_fleet_wide_on_telegram() {
    let p = Prefix::new("alerts");
    let (telegram, inbox) = channel_server(0).await;
    let (pager, paged) = channel_server(0).await;
    let config = ConfigFile::new(
        &p,
        &format!(
            "[alerting]\ninterval_ms = 200\ndashboard_url = \"http://dash.example\"\n\
             [[alert_channels]]\nname = \"ops\"\nkind = \"telegram\"\nchat_id = \"-1001\"\ntoken = \"123:ABC\"\napi_url = {telegram:?}\n\
             [[alert_channels]]\nname = \"pager\"\nkind = \"webhook\"\nurl = \"{pager}/page\"\nsecret = \"s3cret\"\n\
             [[alerts]]\nname = \"backlog\"\nkind = \"queue_depth\"\nqueue = \"orders\"\nthreshold = 5\n\
             repeat_secs = 2.5\nclear_secs = 0.5\nchannels = [\"ops\", \"pager\"]\nmessage = \"orders are piling up\"\n"
        ),
    );
    let _procs: Vec<Process> = (0..3)
        .map(|_| {
            Process::start(
                &config,
                &["serve", "--no-schedules", "--listen", "127.0.0.1:0"],
            )
        })
        .collect();
    let client = p.client().await;
    let q = client.queue("orders").await.expect("queue");
    // Let the processes see the quiet queue first.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(texts(&inbox).is_empty(), "{:?}", texts(&inbox));
    // In one call: enqueued one at a time on a loaded machine, an
    // evaluation between two of them saw 7 jobs and fired with "Now 7".
    let jobs = (0..10)
        .map(|n| sluice_engine::NewJob::new(&n, JobOptions::new()).expect("job"))
        .collect();
    q.enqueue_many(jobs).await.expect("enqueue");
    assert!(
        eventually(Duration::from_secs(10), || async {
            texts(&inbox)
                .iter()
                .any(|t| t.starts_with("[STILL FIRING]"))
        })
        .await,
        "{:?}",
        texts(&inbox)
    );
    // Drain: the rule resolves.
    let claimed = q.claim("drain", 100).await.expect("claim");
    assert_eq!(claimed.len(), 10);
    assert!(
        eventually(Duration::from_secs(10), || async {
            texts(&inbox).iter().any(|t| t.starts_with("[RESOLVED]"))
        })
        .await,
        "{:?}",
        texts(&inbox)
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let got = inbox.lock().expect("inbox").clone();
    let heads: Vec<&str> = got
        .iter()
        .map(|r| {
            r.body["text"]
                .as_str()
                .and_then(|t| t.split(']').next())
                .unwrap_or_default()
        })
        .collect();
    assert_eq!(
        heads,
        ["[FIRING", "[STILL FIRING", "[RESOLVED"],
        "one message per transition: {got:#?}"
    );
    for r in &got {
        assert_eq!(r.path, "/bot123:ABC/sendMessage");
        assert_eq!(r.body["chat_id"], "-1001");
        assert_eq!(r.body["disable_web_page_preview"], true);
    }
    let first = got[0].body["text"].as_str().expect("text");
    assert!(
        first.starts_with("[FIRING] backlog: queue_depth on queue orders — orders are piling up. Now 10 jobs against a threshold of 5 jobs; firing since "),
        "{first}"
    );
    assert!(
        first.ends_with(" UTC. http://dash.example/dashboard/queues/orders"),
        "{first}"
    );
    // The webhook got the same three, signed, in JSON.
    let pages = paged.lock().expect("paged").clone();
    let notices: Vec<&str> = pages
        .iter()
        .filter_map(|r| r.body["notice"].as_str())
        .collect();
    assert_eq!(notices, ["firing", "repeat", "resolved"], "{pages:#?}");
    for r in &pages {
        assert_eq!(r.path, "/page");
        assert_eq!(r.body["rule"], "backlog");
        assert_eq!(r.body["kind"], "queue_depth");
        assert_eq!(r.body["threshold"], 5.0);
        let signature = r.signature.as_deref().expect("signed");
        let t: u64 = signature
            .strip_prefix("t=")
            .and_then(|s| s.split(',').next())
            .and_then(|t| t.parse().ok())
            .expect("timestamp");
        assert_eq!(signature, sluice::delivery::sign(b"s3cret", t, &r.raw));
    }
    let last = got[2].body["text"].as_str().expect("text");
    assert!(
        last.contains("Now 0 jobs against a threshold of 5 jobs; resolved at"),
        "{last}"
    );

    // The API shows the rule's state.
    let views = sluice_server::alerts::views(
        &client,
        &sluice::server::alert_rules(
            &sluice::config::FileConfig::load(&config.0, &[]).expect("config"),
        ),
    )
    .await
    .expect("views");
    assert_eq!(views[0].record.state, "ok");
    assert_eq!(views[0].record.fired_total, 1);
}

/// A silenced rule stays quiet; a Slack channel that is down (nothing
/// listening) for 10 s gets its notification once it comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_silenced_rule_stays_quiet_and_a_channel_down_for_10s_gets_its_message_after() {
    let p = Prefix::new("alerts2");
    let slack_port = free_port();
    let (hook, loud) = channel_server(0).await;
    let config = ConfigFile::new(
        &p,
        &format!(
            "[alerting]\ninterval_ms = 200\n\
             [[alert_channels]]\nname = \"slack\"\nkind = \"slack\"\nurl = \"http://127.0.0.1:{slack_port}/services/T/B/X\"\n\
             [[alert_channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{hook}/alerts\"\nsecret = \"s3cret\"\n\
             [[alerts]]\nname = \"late\"\nkind = \"no_workers\"\nqueue = \"payments\"\nchannels = [\"slack\"]\n\
             [[alerts]]\nname = \"hushed\"\nkind = \"no_workers\"\nqueue = \"payments\"\nchannels = [\"hook\"]\n"
        ),
    );
    let client = p.client().await;
    let now = client.alerts().server_time_ms().await.expect("time");
    client
        .alerts()
        .silence("hushed", Some(now + 60_000))
        .await
        .expect("silence");
    let addr = format!("127.0.0.1:{}", free_port());
    let _proc = Process::start(&config, &["serve", "--no-schedules", "--listen", &addr]);
    let started = Instant::now();
    // Both rules fire at once (no worker serves payments); Slack is down.
    assert!(
        eventually(Duration::from_secs(10), || async {
            client.alerts().record_of("late").await.expect("r").state == "firing"
        })
        .await
    );
    // The rules are evaluated one after the other: `hushed` may turn
    // firing a moment after `late`.
    assert!(
        eventually(Duration::from_secs(5), || async {
            client.alerts().record_of("hushed").await.expect("r").state == "firing"
        })
        .await
    );
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(started.elapsed())).await;
    let (_, slack) = channel_server(slack_port).await;
    let back = Instant::now();
    assert!(
        eventually(Duration::from_secs(40), || async {
            !texts(&slack).is_empty()
        })
        .await,
        "the notification never arrived"
    );
    eprintln!("arrived {:?} after the channel came back", back.elapsed());
    let got = texts(&slack);
    assert_eq!(got.len(), 1, "{got:?}");
    let request = slack.lock().expect("slack")[0].clone();
    assert_eq!(request.path, "/services/T/B/X");
    assert_eq!(
        request
            .body
            .as_object()
            .map(|o| o.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["text".to_owned()]),
        "a Slack webhook gets only its text"
    );
    assert!(
        got[0].starts_with("[FIRING] late: no_workers on queue payments. Now 0;"),
        "{got:?}"
    );
    let dead = client
        .queue("_alerts")
        .await
        .expect("q")
        .stats()
        .await
        .expect("s");
    assert_eq!((dead.dead_total, dead.completed_total), (0, 1), "{dead:?}");
    assert!(
        texts(&loud).is_empty(),
        "a silenced rule spoke: {:?}",
        texts(&loud)
    );
}

/// By hand: the time from a condition becoming true to its notification
/// arriving, with `for` = 0, over 100 firings (`SLUICE_ALERT_INTERVAL_MS`,
/// default 1000, is the evaluation interval). Prints p50 and p99.
///
/// `cargo test -p sluice --test integration processes::alert_latency -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, run by hand"]
async fn alert_latency_over_100_firings() {
    let interval: u64 = std::env::var("SLUICE_ALERT_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let p = Prefix::new("alertlat");
    let (hook, inbox) = channel_server(0).await;
    let config = ConfigFile::new(
        &p,
        &format!(
            "[alerting]\ninterval_ms = {interval}\n\
             [[alert_channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{hook}/a\"\n\
             [[alerts]]\nname = \"depth\"\nkind = \"queue_depth\"\nqueue = \"lat\"\nthreshold = 0\nclear_secs = 0\nchannels = [\"hook\"]\n"
        ),
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let _proc = Process::start(&config, &["serve", "--no-schedules", "--listen", &addr]);
    let client = p.client().await;
    let q = client.queue("lat").await.expect("queue");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut took = Vec::new();
    for n in 0..100u32 {
        let before = inbox.lock().expect("inbox").len();
        // The condition becomes true at a random point of the evaluation
        // cycle, not just after a round (which the resolve wait lines up).
        tokio::time::sleep(Duration::from_millis(
            rand::random::<u64>() % interval.max(1),
        ))
        .await;
        q.enqueue_value(&n, JobOptions::new())
            .await
            .expect("enqueue");
        let became_true = Instant::now();
        assert!(
            eventually(Duration::from_secs(10), || async {
                inbox.lock().expect("inbox").len() > before
            })
            .await
        );
        let arrived = inbox.lock().expect("inbox")[before].at;
        took.push(arrived - became_true);
        q.claim("drain", 10).await.expect("claim");
        let fired = inbox.lock().expect("inbox").len();
        assert!(
            eventually(Duration::from_secs(10), || async {
                inbox.lock().expect("inbox").len() > fired
            })
            .await
        );
    }
    took.sort();
    println!(
        "alert latency over {} firings (interval {interval} ms): p50 {:?}, p99 {:?}, max {:?}",
        took.len(),
        took[took.len() / 2],
        took[took.len() * 99 / 100],
        took[took.len() - 1]
    );
}

/// A delivery target's secrets (user info, query token) stay out of the
/// error a failed attempt records, which read-only keys can see, and a huge
/// error body is cut to a short excerpt.
#[tokio::test]
async fn delivery_errors_keep_target_secrets_out_and_bodies_short() {
    use sluice_engine::testing::{TestJob, TestWorker};
    use sluice_engine::{Outcome, Typed};
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(|| async {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "e".repeat(2 * 1024 * 1024),
            )
        }),
    );
    let addr = common::serve_on_loopback(app).await;
    let url = format!("http://robot:hunter2@{addr}/hook?token=SECRET123");
    let delivery =
        sluice::delivery::HttpDelivery::new(&url, None, Duration::from_secs(5)).expect("target");
    let worker = TestWorker::new(Typed(delivery));
    let reason = match worker.perform(TestJob::new(&json!({"n": 1}))).await {
        Outcome::Retry { reason, .. } => reason,
        other => panic!("{other:?}"),
    };
    assert!(
        !reason.contains("hunter2") && !reason.contains("SECRET123"),
        "{reason}"
    );
    assert!(
        reason.contains("robot:***@") && reason.contains("token=***"),
        "{reason}"
    );
    assert!(reason.len() < 600, "{} bytes", reason.len());
    // Nothing listens: the connection error is redacted too.
    let closed = format!(
        "http://robot:hunter2@127.0.0.1:{}/hook?token=SECRET123",
        free_port()
    );
    let delivery =
        sluice::delivery::HttpDelivery::new(&closed, None, Duration::from_secs(2)).expect("target");
    let reason = match TestWorker::new(Typed(delivery))
        .perform(TestJob::new(&json!({"n": 2})))
        .await
    {
        Outcome::Retry { reason, .. } => reason,
        other => panic!("{other:?}"),
    };
    assert!(
        !reason.contains("hunter2") && !reason.contains("SECRET123"),
        "{reason}"
    );
    assert!(reason.contains("connection failed"), "{reason}");
}

/// A health check whose answer the test sets.
#[derive(Debug)]
struct SetHealth {
    name: &'static str,
    state: Mutex<sluice_server::HealthState>,
}

impl sluice_server::HealthCheck for SetHealth {
    fn name(&self) -> &str {
        self.name
    }

    fn probe(&self) -> futures::future::BoxFuture<'_, sluice_server::HealthState> {
        let state = self.state.lock().expect("state").clone();
        Box::pin(async move { state })
    }
}

/// The rules on a dependency read the plug-ins' health checks, not a pool
/// of their own: `postgres_down` is the check named `postgres` being down
/// (not merely unready), `dependency_down` names any check, and
/// `dependency_slow` (and `db_slow`) reads the series the plug-ins declare
/// for it, fleet-wide, in any process (issue 38's review, item 2: it read
/// the local check's series, so a process without the check never fired).
/// A down rule on a dependency this process has no check for is not
/// evaluated here.
#[tokio::test]
async fn rules_on_dependencies_read_the_plug_ins_health_checks() {
    use sluice::alerts::eval::Evaluator;
    use sluice_server::HealthState;
    let p = Prefix::new("deprules");
    let file: sluice::config::FileConfig = toml::from_str(
        "[[alerts]]\nname = \"pg\"\nkind = \"postgres_down\"\n\
         [[alerts]]\nname = \"cache\"\nkind = \"dependency_down\"\ndependency = \"cache\"\n\
         [[alerts]]\nname = \"slow\"\nkind = \"dependency_slow\"\ndependency = \"cache\"\nthreshold = 50\n\
         [[alerts]]\nname = \"db\"\nkind = \"db_slow\"\nthreshold = 50\n\
         [[alerts]]\nname = \"gone\"\nkind = \"dependency_down\"\ndependency = \"elsewhere\"\n",
    )
    .expect("rules");
    file.validate().expect("valid");
    let postgres = Arc::new(SetHealth {
        name: "postgres",
        state: Mutex::new(HealthState::Unready("not_migrated")),
    });
    let cache = Arc::new(SetHealth {
        name: "cache",
        state: Mutex::new(HealthState::Up),
    });
    let client = p.client().await;
    let checks: Vec<Arc<dyn sluice_server::HealthCheck>> = vec![postgres.clone(), cache.clone()];
    let declared = vec![
        sluice_plugin::Dependency {
            name: "postgres",
            latency_series: Some("test-db"),
        },
        sluice_plugin::Dependency {
            name: "cache",
            latency_series: Some("test-cache"),
        },
    ];
    let mut evaluator = Evaluator::new(
        client.clone(),
        Arc::new(file.clone()),
        checks,
        declared.clone(),
    )
    .expect("evaluator");
    // A process without the checks (an API-only one) still reads the
    // slow rules' series fleet-wide, as `db_slow` always did; the down
    // rules need the check itself.
    let mut elsewhere =
        Evaluator::new(client.clone(), Arc::new(file.clone()), Vec::new(), declared)
            .expect("evaluator");
    let rules = file.alerts.clone();
    async fn observe(
        e: &mut Evaluator,
        rules: &[sluice::config::alerts::AlertRule],
        name: &str,
    ) -> Option<(bool, String)> {
        let rule = rules.iter().find(|r| r.name == name).expect("rule");
        e.observe(rule)
            .await
            .expect("observed")
            .map(|o| (o.holds, o.value))
    }
    // Unready is readiness's concern: the database answers.
    assert_eq!(
        observe(&mut evaluator, &rules, "pg").await,
        Some((false, "reachable".into()))
    );
    *postgres.state.lock().expect("state") = HealthState::Down;
    assert_eq!(
        observe(&mut evaluator, &rules, "pg").await,
        Some((true, "unreachable".into()))
    );
    assert_eq!(
        observe(&mut evaluator, &rules, "cache").await,
        Some((false, "reachable".into()))
    );
    *cache.state.lock().expect("state") = HealthState::Down;
    assert_eq!(
        observe(&mut evaluator, &rules, "cache").await,
        Some((true, "unreachable".into()))
    );
    assert_eq!(observe(&mut evaluator, &rules, "gone").await, None);
    assert_eq!(observe(&mut elsewhere, &rules, "pg").await, None);
    for e in [&mut evaluator, &mut elsewhere] {
        for rule in ["db", "slow"] {
            assert_eq!(
                observe(e, &rules, rule).await,
                Some((false, "no samples".into()))
            );
        }
    }
    let series = client.alerts().latency_series("test-cache");
    for _ in 0..20 {
        series.record(Duration::from_millis(200));
    }
    client.alerts().flush_latency().await.expect("flush");
    for e in [&mut evaluator, &mut elsewhere] {
        let (holds, value) = observe(e, &rules, "slow").await.expect("observed");
        assert!(holds, "p99 {value} ms");
    }
}
