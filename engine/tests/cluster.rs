//! The engine on Redis Cluster: clusters of private `redis-server`
//! processes started here. (The rest of the engine's integration tests run
//! on a cluster too with `SLUICE_TEST_CLUSTER=1`; `scripts/test.sh` does.)

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::cluster::{TestCluster, node_command};
use common::{eventually, fast_config, spawn, unique_prefix};
use sluice_engine::{
    Client, ClientConfig, Durability, HandlerError, Job, JobOptions, JobState, NewJob, Outcome,
    RetryPolicy, Worker, WorkerConfig,
};

async fn done(_job: Job) -> Result<Outcome, HandlerError> {
    Ok(Outcome::Done)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queues_on_every_shard_run_end_to_end() {
    let cluster = TestCluster::start(3, 0);
    let prefix = unique_prefix();
    let client = Client::connect_with(ClientConfig::new(cluster.url()).prefix(&prefix))
        .await
        .expect("connect");

    // Nine queues: their hash tags land on different shards.
    let mut shards = HashSet::new();
    let mut workers = Vec::new();
    let mut queues = Vec::new();
    for n in 0..9 {
        let name = format!("shard-test-{n}");
        let q = client
            .queue_with(&name, fast_config())
            .await
            .expect("queue");
        shards.insert(cluster.primary_of(&format!("{prefix}:{{{name}}}:meta")));
        let jobs = (0..50u32)
            .map(|i| NewJob::new(&i, JobOptions::new().priority((i % 4) as u8)).expect("job"))
            .collect();
        q.enqueue_many(jobs).await.expect("enqueue batch");
        workers.push(spawn(Worker::new(q.clone(), done).with_config(
            WorkerConfig {
                concurrency: 10,
                block_timeout: Duration::from_millis(300),
                ..WorkerConfig::default()
            },
        )));
        queues.push(q);
    }
    assert!(shards.len() >= 2, "all queues on one shard: {shards:?}");
    for q in &queues {
        let drained = eventually(Duration::from_secs(30), || async {
            q.stats().await.is_ok_and(|s| s.completed_total == 50)
        })
        .await;
        assert!(drained, "{}: {:?}", q.name(), q.stats().await);
    }
    for w in workers {
        assert_eq!(w.stop().await.completed, 50);
    }
    // The partitions of a partitioned queue land on different shards (by
    // their slots: with as many partitions as shards, two may share one).
    let pq = client
        .partitioned_queue("spread", 3, fast_config())
        .await
        .expect("partitioned");
    let partition_shards: HashSet<u16> = pq
        .partitions()
        .iter()
        .map(|q| cluster.primary_of(&format!("{prefix}:{{{}}}:meta", q.name())))
        .collect();
    assert!(partition_shards.len() >= 2, "{partition_shards:?}");

    let mut names = client.queues().await.expect("queues");
    names.sort();
    assert_eq!(names.len(), 12, "{names:?}");

    // Retries, dead letters, re-drive, delays and idempotency on one shard.
    let q = &queues[0];
    let flaky = q
        .enqueue_value(&"x", JobOptions::new().max_attempts(2))
        .await
        .expect("enqueue");
    for _ in 0..2 {
        let job = common::claim_when_ready(q, "manual").await;
        q.settle(
            &job,
            Outcome::Retry {
                after: None,
                reason: "boom".into(),
            },
        )
        .await
        .expect("settle");
    }
    let dead = q.job(&flaky.id).await.expect("lookup").expect("exists");
    assert_eq!(dead.state, JobState::Dead);
    assert!(q.redrive(&flaky.id).await.expect("redrive"));
    let job = common::claim_when_ready(q, "manual").await;
    assert_eq!(job.id, flaky.id);
    q.settle(&job, Outcome::Done).await.expect("settle");

    let first = q
        .enqueue_value(&1u32, JobOptions::new().idempotency_key("once"))
        .await
        .expect("enqueue");
    let second = q
        .enqueue_value(&2u32, JobOptions::new().idempotency_key("once"))
        .await
        .expect("enqueue");
    assert!(second.duplicate);
    assert_eq!(second.id, first.id);

    let later = q
        .enqueue_value(&3u32, JobOptions::new().delay(Duration::from_millis(300)))
        .await
        .expect("enqueue");
    assert_eq!(
        q.job(&later.id)
            .await
            .expect("lookup")
            .expect("exists")
            .state,
        JobState::Delayed
    );
    let mut seen = HashSet::new();
    while seen.len() < 2 {
        q.promote_due(100).await.expect("promote");
        for job in q.claim("manual", 10).await.expect("claim") {
            seen.insert(job.id.clone());
            q.settle(&job, Outcome::Done).await.expect("settle");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen.contains(&later.id) && seen.contains(&first.id));
}

/// With the replicated durability setting, an enqueue is acknowledged only
/// once a replica has it (WAIT on the queue's node): killing the primary
/// right after loses nothing, and clients ride out the failover. Two
/// replicas per primary, so that the promoted one still has a replica to
/// WAIT for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_after_wait_acknowledged_loses_no_job() {
    let mut cluster = TestCluster::start(3, 2);
    let prefix = unique_prefix();
    let config = ClientConfig::new(cluster.url())
        .prefix(&prefix)
        .durability(Durability::Replicated {
            replicas: 1,
            timeout: Duration::from_secs(2),
        })
        .retry(RetryPolicy {
            retries: 4,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(500),
        });
    let client = Client::connect_with(config).await.expect("connect");
    let q = client
        .queue_with("failover", fast_config())
        .await
        .expect("queue");
    let mut acked = Vec::new();
    for n in 0..200u32 {
        let e = q
            .enqueue_value(&n, JobOptions::new().idempotency_key(format!("k{n}")))
            .await
            .expect("enqueue");
        acked.push(e.id);
    }

    let primary = cluster.primary_of(&format!("{prefix}:{{failover}}:meta"));
    cluster.kill(primary);

    // Keep enqueueing through the failover: each job is retried under its
    // idempotency key until it is acknowledged.
    for n in 200..300u32 {
        let mut tries = 0;
        loop {
            match q
                .enqueue_value(&n, JobOptions::new().idempotency_key(format!("k{n}")))
                .await
            {
                Ok(e) => {
                    acked.push(e.id);
                    break;
                }
                Err(e) => {
                    tries += 1;
                    assert!(tries < 100, "enqueue never recovered: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
    // A replica was promoted in the dead primary's place.
    let promoted = cluster.primary_of(&format!("{prefix}:{{failover}}:meta"));
    assert_ne!(promoted, primary);
    let info = node_command(promoted, &["ROLE"]).unwrap_or_default();
    assert!(info.contains("master"), "{info}");

    let worker = spawn(Worker::new(q.clone(), done).with_config(WorkerConfig {
        concurrency: 20,
        block_timeout: Duration::from_millis(300),
        ..WorkerConfig::default()
    }));
    let drained = eventually(Duration::from_secs(30), || async {
        q.stats()
            .await
            .map(|s| s.completed_total >= 300 && s.waiting + s.active + s.delayed == 0)
            .unwrap_or(false)
    })
    .await;
    let stats = q.stats().await;
    let report = worker.stop().await;
    assert!(drained, "not drained: {stats:?}");
    let unique: HashSet<&String> = acked.iter().collect();
    assert_eq!(unique.len(), 300, "every acknowledged job has its own id");
    assert_eq!(report.completed, 300, "{report:?}");
}

/// A queue's slot moved to another primary while jobs flow (the steps of a
/// resharding: IMPORTING/MIGRATING, MIGRATE of every key, SETSLOT NODE):
/// clients follow ASK and MOVED and retry TRYAGAIN, and every acknowledged
/// job still runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_moved_to_another_shard_mid_flow_loses_no_job() {
    let cluster = TestCluster::start(3, 0);
    let prefix = unique_prefix();
    let client = Client::connect_with(ClientConfig::new(cluster.url()).prefix(&prefix).retry(
        RetryPolicy {
            retries: 8,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(500),
        },
    ))
    .await
    .expect("connect");
    let q = client
        .queue_with("moving", fast_config())
        .await
        .expect("queue");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(HashSet::new()));
    let handler = {
        let seen = seen.clone();
        sluice_engine::handler_fn(move |_job, n: u32| {
            let seen = seen.clone();
            async move {
                seen.lock().expect("seen").insert(n);
                Ok(Outcome::Done)
            }
        })
    };
    let worker = spawn(Worker::new(q.clone(), handler).with_config(WorkerConfig {
        concurrency: 10,
        block_timeout: Duration::from_millis(200),
        ..WorkerConfig::default()
    }));
    let producer = {
        let q = q.clone();
        tokio::spawn(async move {
            let mut acked = Vec::new();
            for n in 0..1500u32 {
                let mut tries = 0;
                loop {
                    let options = JobOptions::new().idempotency_key(format!("k{n}"));
                    match q.enqueue_value(&n, options).await {
                        Ok(_) => break,
                        Err(e) => {
                            // A migration is transient: retried inside the
                            // call, and at worst an Unavailable (503), never
                            // a Redis error (500) (issue 39, defect 4).
                            assert!(e.is_unavailable(), "enqueue of {n} failed for good: {e:?}");
                            tries += 1;
                            assert!(tries < 200, "enqueue of {n} never succeeded: {e}");
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                acked.push(n);
                if n % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            acked
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Move the queue's slot from its primary to another, key by key.
    let key = format!("{prefix}:{{moving}}:meta");
    let moving = SlotMove::of(&cluster, &key);
    let target = moving.target;
    moving.start();
    tokio::task::spawn_blocking(move || moving.finish(20, Duration::from_millis(5)))
        .await
        .expect("resharding");
    assert_eq!(cluster.primary_of(&key), target, "the slot did not move");
    assert!(
        !producer.is_finished(),
        "the producer finished before the move: nothing flowed through it"
    );

    let acked = producer.await.expect("producer");
    let drained = eventually(Duration::from_secs(60), || async {
        seen.lock().expect("seen").len() == acked.len()
    })
    .await;
    let report = worker.stop().await;
    let missing: Vec<u32> = {
        let seen = seen.lock().expect("seen");
        acked
            .iter()
            .copied()
            .filter(|n| !seen.contains(n))
            .collect()
    };
    assert!(
        drained && missing.is_empty(),
        "{} acknowledged jobs never ran: {:?}; {report:?}; {:?}",
        missing.len(),
        &missing[..missing.len().min(20)],
        q.stats().await
    );
}

/// Issue 39, defect 4: calls made while the queue's slot migrates to
/// another primary stop before they change anything, retry inside the call
/// and go through once the slot has moved: a settle that gives a light job
/// its hash, a promote, an enqueue, a cancel. None fails for good (the API
/// answered 500), none is applied half-way (a settle acknowledged the
/// entry, then failed on the new job hash: the job was lost).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_during_a_slot_migration_wait_for_it_and_apply_whole() {
    use sluice_engine::{Cancelled, Settled};
    let cluster = TestCluster::start(3, 0);
    let prefix = unique_prefix();
    let client = patient_client(&cluster, &prefix).await;
    let q = client
        .queue_with("migrating", fast_config())
        .await
        .expect("queue");
    let delayed = q
        .enqueue_value(&1u32, JobOptions::new().delay(Duration::from_millis(1)))
        .await
        .expect("enqueue")
        .id;
    let running = q
        .enqueue_value(&2u32, JobOptions::new())
        .await
        .expect("enqueue")
        .id;
    let other = q
        .enqueue_value(&3u32, JobOptions::new())
        .await
        .expect("enqueue")
        .id;
    let mut claimed = q.claim("w", 2).await.expect("claim");
    assert_eq!(claimed.len(), 2);
    let job = claimed.remove(0);
    assert_eq!(job.id, running);
    let waiting = q
        .enqueue_value(&4u32, JobOptions::new())
        .await
        .expect("enqueue")
        .id;
    let gone = q
        .enqueue_value(&5u32, JobOptions::new())
        .await
        .expect("enqueue")
        .id;
    // Every key the scripts declare exists on the source node, so they run
    // there (a declared key missing is refused before any script runs):
    // a cancel request (`cr`), a cancelled entry and a dead letter (`cx`,
    // `dead`), and the delayed set.
    assert_eq!(
        q.cancel(&other).await.expect("cancel"),
        Cancelled::Requested
    );
    assert_eq!(q.cancel(&gone).await.expect("cancel"), Cancelled::Cancelled);

    let key = format!("{prefix}:{{migrating}}:meta");
    let moving = SlotMove::of(&cluster, &key);
    moving.start();

    // The calls start, at once, while the slot migrates.
    let retry = Outcome::Retry {
        reason: "again".into(),
        after: None,
    };
    let calls = {
        let q = q.clone();
        let (job, waiting) = (job.clone(), waiting.clone());
        tokio::spawn(async move {
            tokio::join!(
                q.settle(&job, retry),
                q.promote_due(10),
                q.enqueue_value(&6u32, JobOptions::new()),
                q.cancel(&waiting),
            )
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::spawn_blocking(move || moving.finish(100, Duration::ZERO))
        .await
        .expect("resharding");
    let (settled, promoted, enqueued, cancelled) = calls.await.expect("calls");
    assert_eq!(settled.expect("settle"), Settled::Retry);
    // The delayed job, and the retried one when its retry (20 ms) fell due
    // before the promote ran.
    assert!((1..=2).contains(&promoted.expect("promote").moved));
    enqueued.expect("enqueue");
    assert_eq!(cancelled.expect("cancel"), Cancelled::Cancelled);
    let info = q.job(&running).await.expect("lookup").expect("kept");
    assert!(
        matches!(info.state, JobState::Delayed | JobState::Waiting),
        "{info:?}"
    );
    assert_eq!(
        q.job(&delayed).await.expect("lookup").expect("kept").state,
        JobState::Waiting
    );
    let s = q.stats().await.expect("stats");
    // Running: `other` (its cancel requested). Dead: `gone`, `waiting`.
    // Waiting or delayed: `running` (retried), `delayed` (promoted), the
    // new job.
    assert_eq!((s.active, s.dead), (1, 2), "{s:?}");
    assert_eq!(s.waiting + s.delayed, 3, "{s:?}");
}

/// A queue's slot moved from its primary to another, in the steps of a
/// resharding: IMPORTING on the target and MIGRATING on the source
/// (`start`), then MIGRATE of every key and SETSLOT NODE (`finish`).
struct SlotMove {
    source: u16,
    target: u16,
    slot: String,
    source_id: String,
    target_id: String,
}

impl SlotMove {
    /// The move of `key`'s slot from its primary to another primary.
    fn of(cluster: &TestCluster, key: &str) -> Self {
        let source = cluster.primary_of(key);
        let target = cluster
            .running_ports()
            .into_iter()
            .find(|p| *p != source)
            .expect("another primary");
        let id_of = |port: u16| node_command(port, &["CLUSTER", "MYID"]).expect("id");
        Self {
            source,
            target,
            slot: node_command(source, &["CLUSTER", "KEYSLOT", key]).expect("slot"),
            source_id: id_of(source),
            target_id: id_of(target),
        }
    }

    /// The slot starts migrating.
    fn start(&self) {
        node_command(
            self.target,
            &[
                "CLUSTER",
                "SETSLOT",
                &self.slot,
                "IMPORTING",
                &self.source_id,
            ],
        )
        .expect("importing");
        node_command(
            self.source,
            &[
                "CLUSTER",
                "SETSLOT",
                &self.slot,
                "MIGRATING",
                &self.target_id,
            ],
        )
        .expect("migrating");
    }

    /// Every key moved, `batch` at a time with `pause` between, then the
    /// slot given to the target (blocking: run it off the runtime).
    fn finish(self, batch: usize, pause: Duration) {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{}/", self.source)).expect("url");
        let mut conn = client.get_connection().expect("connect");
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(&self.slot)
                .arg(batch)
                .query(&mut conn)
                .expect("getkeysinslot");
            if keys.is_empty() {
                break;
            }
            let _: redis::Value = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(self.target)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query(&mut conn)
                .expect("migrate");
            std::thread::sleep(pause);
        }
        for port in [self.target, self.source] {
            node_command(
                port,
                &["CLUSTER", "SETSLOT", &self.slot, "NODE", &self.target_id],
            )
            .expect("setslot node");
        }
    }
}

/// On a partitioned queue, jobs without a key go to partitions whose slot
/// is not moving: once a call found one partition's slot migrating, new
/// keyless jobs are dealt out to the others instead of waiting on it (a
/// keyed job still waits for its own partition, and lands once the move
/// is over).
#[tokio::test]
async fn keyless_jobs_go_around_a_partition_whose_slot_is_moving() {
    let cluster = TestCluster::start(3, 0);
    let prefix = unique_prefix();
    let client = patient_client(&cluster, &prefix).await;
    let q = client
        .partitioned_queue("spread", 3, fast_config())
        .await
        .expect("queue");
    let key = (0..)
        .map(|n| format!("key-{n}"))
        .find(|k| q.partition_for(k).name() == "spread#0")
        .expect("a key of partition 0");
    let moving = SlotMove::of(&cluster, &format!("{prefix}:{{spread#0}}:meta"));
    moving.start();
    let keyed = {
        let q = q.clone();
        tokio::spawn(async move {
            q.enqueue(common::keyed(&key, &0u32, JobOptions::new()))
                .await
        })
    };
    // The keyed call finds the slot migrating (once the cluster client's
    // own TRYAGAIN retries give up), and waits for it.
    assert!(
        eventually(Duration::from_secs(10), || async {
            q.partitions()[0].slot_moving()
        })
        .await,
        "no call found the slot moving"
    );
    let jobs: Vec<NewJob> = (1..=30u32)
        .map(|n| NewJob::new(&n, JobOptions::new()).expect("job"))
        .collect();
    let placed = q
        .enqueue_many(jobs)
        .await
        .expect("keyless jobs go to partitions whose slot stays");
    assert_eq!(placed.len(), 30);
    assert!(
        !keyed.is_finished(),
        "the keyed job waits for its partition"
    );
    tokio::task::spawn_blocking(move || moving.finish(100, Duration::ZERO))
        .await
        .expect("resharding");
    keyed.await.expect("task").expect("the keyed job lands");
    let waiting = |i: usize| {
        let p = q.partitions()[i].clone();
        async move { p.stats().await.expect("stats").waiting }
    };
    assert_eq!(waiting(0).await, 1, "only the keyed job");
    assert_eq!(waiting(1).await + waiting(2).await, 30);
}

/// A client on `cluster` whose calls retry for a few seconds: long enough
/// to outlast a short slot migration.
async fn patient_client(cluster: &TestCluster, prefix: &str) -> Client {
    Client::connect_with(
        ClientConfig::new(cluster.url())
            .prefix(prefix)
            .retry(RetryPolicy {
                retries: 12,
                min_delay: Duration::from_millis(20),
                max_delay: Duration::from_millis(200),
            }),
    )
    .await
    .expect("connect")
}

/// Issue 39, defect 4, on the importing node: once every key a script
/// declares has moved, but a job hash it reads has not, the script must
/// not run there (its reads would see nil while the slot migrates). A
/// promote then removed the due job from the delayed set without moving
/// it: the job was lost. Every queue script declares a key that never
/// exists, so Redis answers TRYAGAIN on either node until the move is over.
#[tokio::test]
async fn a_script_does_not_run_on_the_importing_node_before_the_slot_has_moved() {
    let cluster = TestCluster::start(3, 0);
    let prefix = unique_prefix();
    let client = patient_client(&cluster, &prefix).await;
    let q = client
        .queue_with("half-moved", fast_config())
        .await
        .expect("queue");
    let id = q
        .enqueue_value(&7u32, JobOptions::new().delay(Duration::from_millis(1)))
        .await
        .expect("enqueue")
        .id;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let moving = SlotMove::of(&cluster, &format!("{prefix}:{{half-moved}}:meta"));
    moving.start();
    // Every key of the slot but the job's hash goes to the target.
    let (source, target, slot) = (moving.source, moving.target, moving.slot.clone());
    let keys: Vec<String> = {
        let client = redis::Client::open(format!("redis://127.0.0.1:{source}/")).expect("url");
        let mut conn = client.get_connection().expect("connect");
        redis::cmd("CLUSTER")
            .arg("GETKEYSINSLOT")
            .arg(&slot)
            .arg(1000)
            .query(&mut conn)
            .expect("keys")
    };
    let (hash, others): (Vec<String>, Vec<String>) =
        keys.into_iter().partition(|k| k.contains(":job:"));
    assert_eq!(hash.len(), 1, "the delayed job's hash");
    let mut migrate = vec![
        "MIGRATE".to_owned(),
        "127.0.0.1".to_owned(),
        target.to_string(),
        String::new(),
        "0".to_owned(),
        "5000".to_owned(),
        "KEYS".to_owned(),
    ];
    migrate.extend(others);
    let migrate: Vec<&str> = migrate.iter().map(String::as_str).collect();
    node_command(source, &migrate).expect("migrate");
    let promote = {
        let q = q.clone();
        tokio::spawn(async move { q.promote_due(10).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    tokio::task::spawn_blocking(move || moving.finish(100, Duration::ZERO))
        .await
        .expect("resharding");
    promote.await.expect("task").expect("promote");
    let job = q.job(&id).await.expect("lookup").expect("the job is kept");
    assert_eq!(job.state, JobState::Waiting, "{job:?}");
    q.promote_due(10).await.expect("promote");
    let claimed = q.claim("w", 10).await.expect("claim");
    assert_eq!(
        claimed.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
}
