//! Test helpers: each test gets its own key prefix on the shared Redis (and
//! deletes its keys at the end), or a private `redis-server` of its own.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use sluice_engine::{
    Backoff, Client, ClientConfig, Queue, QueueConfig, RetryPolicy, Runner, Worker, WorkerReport,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub mod cluster;

/// The shared Redis the suite runs against: `SLUICE_TEST_REDIS_URL`, or with
/// `SLUICE_TEST_CLUSTER=1` a 3-primary cluster this test binary starts.
pub fn redis_url() -> String {
    if std::env::var("SLUICE_TEST_CLUSTER").is_ok_and(|v| !v.is_empty() && v != "0") {
        return cluster::shared().url();
    }
    std::env::var("SLUICE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".to_owned())
}

/// The plain URL of every node behind `url`: the seeds of a
/// `redis+cluster://` URL, or `url` itself.
pub fn node_urls(url: &str) -> Vec<String> {
    match url.strip_prefix("redis+cluster://") {
        Some(rest) => rest
            .trim_end_matches('/')
            .split(',')
            .map(|h| format!("redis://{h}/"))
            .collect(),
        None => vec![url.to_owned()],
    }
}

/// Every key matching `pattern` on every node behind `url`.
fn keys_on_nodes(url: &str, pattern: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for node in node_urls(url) {
        let conn = redis::Client::open(node.as_str())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(1)));
        if let Ok(mut conn) = conn {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query(&mut conn)
                .unwrap_or_default();
            found.extend(keys.into_iter().map(|k| (node.clone(), k)));
        }
    }
    found
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A key prefix no other test (or run) uses.
pub fn unique_prefix() -> String {
    format!(
        "sluicetest-{}-{}-{:06x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>() & 0xff_ffff
    )
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

/// A client on the shared Redis under a fresh prefix; deletes the prefix's
/// keys when dropped.
pub struct TestRedis {
    pub client: Client,
    pub prefix: String,
    url: String,
}

impl TestRedis {
    pub async fn new() -> Self {
        Self::at(&redis_url()).await
    }

    pub async fn at(url: &str) -> Self {
        let prefix = unique_prefix();
        let client = Client::connect_with(ClientConfig::new(url).prefix(&prefix))
            .await
            .expect("connect to redis");
        Self {
            client,
            prefix,
            url: url.to_owned(),
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
        if self.url.starts_with("redis+cluster://") {
            let mut conn = redis::cluster::ClusterClient::new(node_urls(&self.url))
                .expect("cluster urls")
                .get_async_connection()
                .await
                .expect("connect");
            cmd.query_async(&mut conn).await.expect("query")
        } else {
            let mut conn = redis::Client::open(self.url.as_str())
                .expect("url")
                .get_multiplexed_async_connection()
                .await
                .expect("connect");
            cmd.query_async(&mut conn).await.expect("query")
        }
    }

    /// Keys under this test's prefix (on every node of a cluster).
    pub async fn keys(&self) -> Vec<String> {
        let url = self.url.clone();
        let pattern = format!("{}:*", self.prefix);
        let mut keys: Vec<String> =
            tokio::task::spawn_blocking(move || keys_on_nodes(&url, &pattern))
                .await
                .expect("keys")
                .into_iter()
                .map(|(_, k)| k)
                .collect();
        keys.sort();
        keys
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        // Drop cannot be async; clean up on plain connections, one key at a
        // time (a cluster node refuses a DEL across slots).
        let pattern = format!("{}:*", self.prefix);
        let found = keys_on_nodes(&self.url, &pattern);
        for node in node_urls(&self.url) {
            let mut pipe = redis::pipe();
            for (_, key) in found.iter().filter(|(n, _)| *n == node) {
                pipe.cmd("DEL").arg(key).ignore();
            }
            if let Ok(mut conn) = redis::Client::open(node.as_str())
                .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(1)))
            {
                let _: redis::RedisResult<()> = pipe.query(&mut conn);
            }
        }
    }
}

/// A `redis-server` of the test's own on a free loopback port, stopped by
/// PID when dropped.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

impl PrivateRedis {
    pub fn start() -> Self {
        let mut r = Self {
            port: free_port(),
            child: None,
        };
        r.restart();
        r
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Start it (again) on the same port, and wait until it answers.
    pub fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            let ok = redis::Client::open(self.url().as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok();
            if ok {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kill it (SIGKILL by PID) and wait for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
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

/// Poll `check` until it returns true, for at most `limit`.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
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
    let handle = tokio::spawn(worker.run(async move {
        let _ = rx.await;
    }));
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
