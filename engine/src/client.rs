//! The connection to Redis, shared by every queue handle of a process, and
//! the maker of the handles on what the client-wide keys hold: breakers,
//! alerts, limits and the worker registry.

use std::sync::Arc;
use std::time::Duration;

use crate::alerting::{Alerts, LatencySamples};
use crate::breaker::Breakers;
use crate::conn::{Conn, Target};
use crate::error::{Error, Result};
use crate::keys::{QueueKeys, validate_name};
use crate::limits::Limits;
use crate::options::QueueConfig;
use crate::partition::Partition;
use crate::queue::Queue;
use crate::registry::Registry;
use crate::store::{
    AlertStore, BreakerStore, ClientStore, LimitStore, PrefixConn, RegistryStore, RetryPolicy,
    Store, with_retry,
};

/// When an enqueue counts as acknowledged. See the crate docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Redis has the job in memory. A Redis crash can lose what it had not
    /// yet written to its AOF (up to a second with `appendfsync everysec`).
    #[default]
    Memory,
    /// Redis appended the job to its AOF and fsynced it before answering.
    /// Needs `appendonly yes` with `appendfsync always` on the server; Sluice
    /// checks at connect and warns when the server is not set up so.
    Fsync,
    /// At least `replicas` replicas have the job (`WAIT`) within `timeout`;
    /// otherwise the enqueue fails with an error (the job may still be
    /// there: retrying with the same idempotency key is safe).
    Replicated {
        /// Replicas that must have the job.
        replicas: u32,
        /// How long to wait for them.
        timeout: Duration,
    },
}

/// How to reach Redis.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Redis URL, for example `redis://127.0.0.1:6379/`.
    pub url: String,
    /// First part of every key (`sluice`); separate prefixes are separate
    /// worlds on one Redis.
    pub prefix: String,
    /// Retries of each call while Redis is unreachable.
    pub retry: RetryPolicy,
    /// Longest wait for a reply to a normal command.
    pub response_timeout: Duration,
    /// Longest wait to open a connection.
    pub connect_timeout: Duration,
    /// When an enqueue counts as acknowledged.
    pub durability: Durability,
}

impl ClientConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: "sluice".to_owned(),
            retry: RetryPolicy::default(),
            response_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(2),
            durability: Durability::Memory,
        }
    }

    /// Use this key prefix.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Use this retry policy.
    pub fn retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Use this durability setting.
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }
}

/// A connection to Redis (reconnecting by itself), from which queue handles
/// are made, and the handles on what is shared under its prefix outside any
/// queue: [`breakers`](Self::breakers), [`alerts`](Self::alerts),
/// [`limits`](Self::limits) and the worker [`registry`](Self::registry).
/// Cheap to clone.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    target: Target,
    conn: Conn,
    config: ClientConfig,
    /// The connection and prefix the client-wide stores work with.
    prefixed: PrefixConn,
    /// Latency samples recorded through the series of this client's
    /// [`Alerts`] and not yet added to Redis: held here so that every
    /// `alerts()` handle of the client and its clones shares them.
    latency: LatencySamples,
}

impl Inner {
    fn new(target: Target, conn: Conn, config: ClientConfig) -> Self {
        let prefixed = PrefixConn::new(conn.clone(), &config.prefix, config.retry);
        Self {
            target,
            conn,
            config,
            prefixed,
            latency: Default::default(),
        }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("prefix", &self.inner.config.prefix)
            .field("durability", &self.inner.config.durability)
            .finish()
    }
}

/// Check the prefix and parse the URL: what every way of connecting needs.
fn open_client(config: &ClientConfig) -> Result<Target> {
    validate_name("prefix", &config.prefix)?;
    Target::parse(config.url.as_str()).map_err(|source| Error::Redis {
        operation: "parse redis url",
        source,
    })
}

impl Client {
    /// Connect with default settings.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(ClientConfig::new(url)).await
    }

    /// Connect with `config`. Fails with [`Error::Unavailable`] when Redis
    /// cannot be reached within the retry policy.
    pub async fn connect_with(config: ClientConfig) -> Result<Self> {
        let target = open_client(&config)?;
        let conn = with_retry(config.retry, "connect", || {
            target.connect(config.response_timeout, config.connect_timeout)
        })
        .await?;
        let client = Client {
            inner: Arc::new(Inner::new(target, conn, config)),
        };
        client.check_durability().await;
        Ok(client)
    }

    /// A client that connects on first use instead of now: for long-running
    /// processes that must start (and report Redis as down) while Redis is
    /// unreachable. Fails only on a malformed URL or prefix.
    pub fn connect_lazy(config: ClientConfig) -> Result<Self> {
        let target = open_client(&config)?;
        let conn = target
            .connect_lazy(config.response_timeout, config.connect_timeout)
            .map_err(|source| Error::Redis {
                operation: "connect",
                source,
            })?;
        Ok(Client {
            inner: Arc::new(Inner::new(target, conn, config)),
        })
    }

    /// The client's settings.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// A handle on queue `name` with default settings; creates the queue's
    /// streams and group when missing. A queue split into partitions
    /// ([`partitioned_queue`](Self::partitioned_queue)) is found as such:
    /// the handle covers all its partitions.
    pub async fn queue(&self, name: &str) -> Result<Queue> {
        self.queue_with(name, QueueConfig::default()).await
    }

    /// A handle on queue `name` with `config` (see [`queue`](Self::queue)).
    pub async fn queue_with(&self, name: &str, config: QueueConfig) -> Result<Queue> {
        config.validate()?;
        match self.recorded_partitions(name).await? {
            Some(n) => Queue::open(self, name, n, config).await,
            None => Ok(Queue::single(self.partition_with(name, config).await?)),
        }
    }

    /// The handle on one partition (or a queue without partitions) by its
    /// own name; creates its streams and group when missing.
    pub(crate) async fn partition_with(
        &self,
        name: &str,
        config: QueueConfig,
    ) -> Result<Partition> {
        config.validate()?;
        let store = self.store(name)?;
        store.ensure().await?;
        Ok(Partition::new(self.clone(), store, config))
    }

    /// How many partitions queue `name` was split into, when it was: the
    /// count its first partition records (see `Queue::open`). A name that
    /// itself names a partition (`name#i`) is one partition.
    pub(crate) async fn recorded_partitions(&self, name: &str) -> Result<Option<u16>> {
        if name.contains('#') {
            return Ok(None);
        }
        crate::keys::validate_name("queue name", name)?;
        // A name with no room for `#0` cannot have been split.
        if name.len() + 2 > crate::keys::MAX_QUEUE_NAME_LEN {
            return Ok(None);
        }
        self.store(&format!("{name}#0"))?
            .recorded_partitions()
            .await
    }

    /// A handle on queue `name` (default settings) only if it exists, that
    /// is, was opened before under this prefix: for operator commands, which
    /// must not create a queue because of a typo. A partitioned queue is
    /// found by its name, with all its partitions.
    pub async fn existing_queue(&self, name: &str) -> Result<Option<Queue>> {
        if let Some(n) = self.recorded_partitions(name).await? {
            return Queue::open(self, name, n, QueueConfig::default())
                .await
                .map(Some);
        }
        let store = self.store(name)?;
        if !store.is_registered().await? {
            return Ok(None);
        }
        store.ensure().await?;
        Ok(Some(Queue::single(Partition::new(
            self.clone(),
            store,
            QueueConfig::default(),
        ))))
    }

    pub(crate) fn store(&self, name: &str) -> Result<Store> {
        let keys = QueueKeys::new(&self.inner.config.prefix, name)?;
        Ok(Store::new(
            self.inner.conn.clone(),
            keys,
            self.inner.config.retry,
        ))
    }

    /// Redis access for what the client itself reads.
    fn client_store(&self) -> ClientStore {
        ClientStore::new(self.inner.prefixed.clone())
    }

    /// The circuit breakers under this client's prefix, shared with every
    /// process that uses the same prefix.
    pub fn breakers(&self) -> Breakers {
        Breakers::new(
            BreakerStore::new(self.inner.prefixed.clone()),
            &self.inner.config,
        )
    }

    /// The alert rules' state, latency series and counter samples under
    /// this client's prefix. The latency samples recorded through any of
    /// its handles (and its clones') wait in this client until one of them
    /// flushes them.
    pub fn alerts(&self) -> Alerts {
        Alerts::new(
            AlertStore::new(self.inner.prefixed.clone()),
            self.inner.latency.clone(),
        )
    }

    /// Revoked tokens and request windows under this client's prefix.
    pub fn limits(&self) -> Limits {
        Limits::new(LimitStore::new(self.inner.prefixed.clone()))
    }

    /// The registry of live worker processes and the recorded states of
    /// cron schedules under this client's prefix.
    pub fn registry(&self) -> Registry {
        Registry::new(RegistryStore::new(self.inner.prefixed.clone()))
    }

    /// Names of every queue opened under this prefix, sorted.
    pub async fn queues(&self) -> Result<Vec<String>> {
        let mut names = self.client_store().queue_names().await?;
        names.sort();
        Ok(names)
    }

    /// True when Redis answers PING now (one try, no retries): for
    /// readiness probes.
    pub async fn ping(&self) -> bool {
        self.client_store().ping().await
    }

    /// What the server says of itself, for `sluice doctor`.
    pub async fn server_report(&self) -> Result<ServerReport> {
        let names = [
            "maxmemory-policy",
            "maxmemory",
            "appendonly",
            "appendfsync",
            "save",
        ];
        let (info, pairs) = self.client_store().server_facts(&names).await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .map(|v| v.trim().to_owned())
        };
        let config = |name: &str| {
            pairs
                .chunks(2)
                .find(|c| c.len() == 2 && c[0] == name)
                .map(|c| c[1].clone())
        };
        Ok(ServerReport {
            version: field("redis_version").unwrap_or_default(),
            mode: field("redis_mode").unwrap_or_default(),
            maxmemory_policy: config("maxmemory-policy"),
            maxmemory: config("maxmemory"),
            appendonly: config("appendonly"),
            appendfsync: config("appendfsync"),
            save: config("save"),
            connected_replicas: field("connected_slaves")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0),
        })
    }

    /// A connection of its own for blocking reads, whose response timeout
    /// leaves room for a BLOCK of `block`.
    pub(crate) async fn blocking_connection(&self, block: Duration) -> Result<Conn> {
        let config = &self.inner.config;
        let target = &self.inner.target;
        with_retry(config.retry, "connect for blocking reads", || {
            target.connect(block + config.response_timeout, config.connect_timeout)
        })
        .await
    }

    /// Warn when the server cannot give the promised durability.
    async fn check_durability(&self) {
        match self.inner.config.durability {
            Durability::Memory => {}
            Durability::Fsync => {
                let cfg = self.client_store().append_settings().await;
                let get = |k: &str| {
                    cfg.chunks(2)
                        .find(|c| c[0] == k)
                        .and_then(|c| c.get(1).cloned())
                        .unwrap_or_default()
                };
                if get("appendonly") != "yes" || get("appendfsync") != "always" {
                    tracing::warn!(
                        appendonly = %get("appendonly"),
                        appendfsync = %get("appendfsync"),
                        "durability 'fsync' needs appendonly yes and appendfsync always on the Redis server; an acknowledged enqueue can be lost in a Redis crash"
                    );
                }
            }
            Durability::Replicated { replicas, .. } => {
                let connected = self.client_store().connected_replicas().await;
                if connected < replicas {
                    tracing::warn!(
                        connected,
                        wanted = replicas,
                        "durability 'replicated' wants more replicas than Redis has; enqueues will fail until they connect"
                    );
                }
            }
        }
    }
}

/// What a Redis server says of itself (see [`Client::server_report`]).
/// `CONFIG` values are `None` where the server refuses `CONFIG GET`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerReport {
    /// `redis_version`.
    pub version: String,
    /// standalone, cluster or sentinel.
    pub mode: String,
    /// `maxmemory-policy`.
    pub maxmemory_policy: Option<String>,
    /// `maxmemory`, bytes (0: no limit).
    pub maxmemory: Option<String>,
    /// `appendonly`.
    pub appendonly: Option<String>,
    /// `appendfsync`.
    pub appendfsync: Option<String>,
    /// `save` (RDB snapshots; empty: none).
    pub save: Option<String>,
    /// Replicas connected to this server.
    pub connected_replicas: u32,
}
