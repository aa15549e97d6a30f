//! The engine side: a private `redis-server`, a fault proxy in front of it
//! through which every producer, worker and operator talks, and a direct,
//! fault-free view for the checks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sluice_engine::{Backoff, Client, ClientConfig, Queue, QueueConfig, RetryPolicy};
use sluice_testkit::{FaultProxy, Persistence, RedisServer};

use super::reference::{SHORT, VISIBILITY};

/// The clients' response timeout: a reply held longer is a timeout, and
/// the call is sent again.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);

/// One process's world for any number of cases, each on a queue of its own.
pub struct World {
    _redis: RedisServer,
    pub proxy: FaultProxy,
    /// Through the proxy: what the operations use.
    faulty: Client,
    /// Straight to Redis: what the checks use.
    direct: Client,
    /// Straight to Redis, for reads the public API does not offer
    /// (pending entries per consumer, the keys a queue leaves).
    pub raw: redis::aio::MultiplexedConnection,
    pub prefix: String,
    queues: AtomicU64,
    /// Faults that fired, over every case.
    pub faults: AtomicU64,
}

async fn connect(url: &str, prefix: &str) -> Client {
    let mut config = ClientConfig::new(url).prefix(prefix).retry(RetryPolicy {
        // Enough to outlast an outage of the visibility timeout and more.
        retries: 14,
        min_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(250),
    });
    config.response_timeout = RESPONSE_TIMEOUT;
    config.connect_timeout = Duration::from_millis(250);
    let started = Instant::now();
    loop {
        match Client::connect_with(config.clone()).await {
            Ok(c) => return c,
            Err(e) => {
                assert!(started.elapsed() < Duration::from_secs(20), "connect: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The queue settings of every case: short visibility timeout and backoff,
/// no jitter, so the model knows when things fall due.
pub fn queue_config(keep_completed: bool) -> QueueConfig {
    QueueConfig {
        max_attempts: 2,
        backoff: Backoff {
            base: SHORT,
            factor: 1.0,
            max: SHORT,
            jitter: 0.0,
        },
        visibility_timeout: VISIBILITY,
        keep_completed: if keep_completed {
            Duration::from_secs(600)
        } else {
            Duration::ZERO
        },
        ..QueueConfig::default()
    }
}

/// The handles of one case's queue.
pub struct Handles {
    pub producers: Vec<Queue>,
    /// Workers' claims, settles and keep-alives (each worker its consumer
    /// name), reclaims and promotions.
    pub workers: Queue,
    pub operator: Queue,
    /// Direct, for the checks.
    pub inspector: Queue,
}

impl World {
    pub async fn start() -> Self {
        let redis = RedisServer::start(Persistence::None);
        let proxy = FaultProxy::start(&redis.url()).await.expect("proxy");
        let prefix = format!("model{:06x}", rand::random::<u32>() & 0xff_ffff);
        let faulty = connect(&proxy.url(), &prefix).await;
        let direct = connect(&redis.url(), &prefix).await;
        let raw = redis::Client::open(redis.url().as_str())
            .expect("redis url")
            .get_multiplexed_async_connection()
            .await
            .expect("raw connection");
        Self {
            _redis: redis,
            proxy,
            faulty,
            direct,
            raw,
            prefix,
            queues: AtomicU64::new(0),
            faults: AtomicU64::new(0),
        }
    }

    /// A new queue's name and handles.
    pub async fn new_queue(&self, keep_completed: bool) -> (String, Handles) {
        let name = format!("q{}", self.queues.fetch_add(1, Ordering::Relaxed));
        let config = queue_config(keep_completed);
        let open = |client: &Client| {
            let client = client.clone();
            let (name, config) = (name.clone(), config.clone());
            async move {
                client
                    .queue_with(&name, config)
                    .await
                    .unwrap_or_else(|e| panic!("open queue {name}: {e}"))
            }
        };
        let mut producers = Vec::new();
        for _ in 0..super::ops::PRODUCERS {
            producers.push(open(&self.faulty).await);
        }
        let handles = Handles {
            producers,
            workers: open(&self.faulty).await,
            operator: open(&self.faulty).await,
            inspector: open(&self.direct).await,
        };
        (name, handles)
    }
}
