//! Test helpers: each test gets its own key prefix on the shared Redis (and
//! deletes its keys at the end), or a private `redis-server` of its own.
#![allow(dead_code, unused_imports)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_engine::{
    Backoff, Client, ClientConfig, Queue, QueueConfig, RetryPolicy, Runner, Worker, WorkerReport,
};
pub use sluice_testkit::cluster;
pub use sluice_testkit::{KeyPrefix, eventually, node_urls};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A job of `value` routed by the partition key `key`.
pub fn keyed<T: serde::Serialize + ?Sized>(
    key: &str,
    value: &T,
    options: sluice_engine::JobOptions,
) -> sluice_engine::NewJob {
    sluice_engine::NewJob::new(value, options)
        .expect("encode")
        .partition_key(key)
}

/// The shared Redis the suite runs against: `SLUICE_TEST_REDIS_URL`, or with
/// `SLUICE_TEST_CLUSTER=1` a 3-primary cluster this test process starts.
pub fn redis_url() -> String {
    if std::env::var("SLUICE_TEST_CLUSTER").is_ok_and(|v| !v.is_empty() && v != "0") {
        return cluster::shared().url();
    }
    std::env::var("SLUICE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

/// A key prefix no other test (or run) uses.
pub fn unique_prefix() -> String {
    sluice_testkit::unique_prefix("engine")
}

/// Queue settings with short delays, so tests do not wait for the defaults.
pub fn fast_config() -> QueueConfig {
    QueueConfig {
        backoff: Backoff {
            base: Duration::from_millis(20),
            factor: 2.0,
            max: Duration::from_millis(200),
            jitter: 0.0,
        },
        visibility_timeout: Duration::from_millis(600),
        ..QueueConfig::default()
    }
}

/// A client on the shared Redis under a fresh prefix; the prefix's keys go
/// when it is dropped.
pub struct TestRedis {
    pub client: Client,
    pub prefix: String,
    keys: Arc<KeyPrefix>,
}

impl TestRedis {
    pub async fn new() -> Self {
        Self::at(&redis_url()).await
    }

    pub async fn at(url: &str) -> Self {
        let keys = Arc::new(KeyPrefix::new(url, "engine"));
        let client = Client::connect_with(ClientConfig::new(url).prefix(&keys.name))
            .await
            .expect("connect to redis");
        Self {
            client,
            prefix: keys.name.clone(),
            keys,
        }
    }

    pub async fn queue(&self, name: &str) -> Queue {
        self.client
            .queue_with(name, fast_config())
            .await
            .expect("open queue")
    }

    pub async fn queue_with(&self, name: &str, config: QueueConfig) -> Queue {
        self.client
            .queue_with(name, config)
            .await
            .expect("open queue")
    }

    /// Run one command directly (on the right node of a cluster).
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        let url = &self.keys.url;
        if url.starts_with("redis+cluster://") {
            let mut conn = redis::cluster::ClusterClient::new(node_urls(url))
                .expect("cluster urls")
                .get_async_connection()
                .await
                .expect("connect");
            cmd.query_async(&mut conn).await.expect("query")
        } else {
            let mut conn = redis::Client::open(url.as_str())
                .expect("url")
                .get_multiplexed_async_connection()
                .await
                .expect("connect");
            cmd.query_async(&mut conn).await.expect("query")
        }
    }

    /// Keys under this test's prefix (on every node of a cluster).
    pub async fn keys(&self) -> Vec<String> {
        let keys = self.keys.clone();
        tokio::task::spawn_blocking(move || keys.keys())
            .await
            .expect("keys")
    }
}

/// A client whose calls give up quickly, for tests where Redis goes away.
pub fn impatient(url: &str, prefix: &str) -> ClientConfig {
    let mut c = ClientConfig::new(url).prefix(prefix).retry(RetryPolicy {
        retries: 2,
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(100),
    });
    c.response_timeout = Duration::from_secs(1);
    c.connect_timeout = Duration::from_millis(300);
    c
}

/// Promote and claim until one job comes (at most 3 s); panics otherwise.
pub async fn claim_when_ready(q: &Queue, consumer: &str) -> sluice_engine::Job {
    let started = Instant::now();
    loop {
        q.promote_due(100).await.expect("promote");
        if let Some(job) = q.claim(consumer, 1).await.expect("claim").pop() {
            return job;
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "no job became ready"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A running worker: `stop` shuts it down gracefully and returns its report.
pub struct RunningWorker {
    stop: oneshot::Sender<()>,
    handle: JoinHandle<sluice_engine::Result<WorkerReport>>,
}

/// Start `worker` in a task.
pub fn spawn<H: Runner>(worker: Worker<H>) -> RunningWorker {
    let (stop, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(worker.run(sluice_engine::Shutdown::when(async move {
        let _ = rx.await;
    })));
    RunningWorker { stop, handle }
}

impl RunningWorker {
    pub fn is_finished(&self) -> bool {
        self.handle.is_finished()
    }

    pub async fn stop(self) -> WorkerReport {
        let _ = self.stop.send(());
        self.handle.await.expect("worker task").expect("worker run")
    }
}
