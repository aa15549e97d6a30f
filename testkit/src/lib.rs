//! # sluice-testkit: what Sluice's fault scenarios are made of
//!
//! - `proxy`: [`FaultProxy`], a loopback proxy between any Sluice process
//!   and Redis that drops, holds or cuts replies and partitions clients;
//! - `ledger`: [`Ledger`], the append-only record of acknowledged
//!   enqueues, starts and completions, written by the processes that saw
//!   them;
//! - `checker`: [`check`], the ledger against Redis, in categories
//!   (lost, duplicated, unexpected, stuck, dead without a run, fenced
//!   outcome accepted) and counters, as one [`Summary`] line;
//! - `redis_server`: [`RedisServer`], a private `redis-server` that can be
//!   killed and restarted on its append-only file;
//! - `cluster`: [`TestCluster`], a Redis Cluster of private servers (with
//!   replicas, behind fault proxies if asked), and [`cluster::shared`], one
//!   per test binary;
//! - `prefix`: [`KeyPrefix`], a key prefix of the test's own on a shared
//!   Redis whose keys go when it is dropped;
//! - `wait`: [`eventually`], a condition polled until it holds or time is up;
//! - `postgres`: [`PgSchema`], a schema of the test's own on the shared
//!   PostgreSQL, and [`PrivatePostgres`], a server of the test's own.
//!
//! Every integration test of the workspace takes its servers and prefixes
//! from here, so there is one way to start a `redis-server` in tests.

mod checker;
pub mod cluster;
mod ledger;
mod postgres;
mod prefix;
mod proxy;
mod redis_server;
mod resp;
mod wait;

pub use cluster::{TestCluster, node_command};
pub use postgres::{PgSchema, PrivatePostgres, database_url};
pub use prefix::{KeyPrefix, keys_on_nodes, node_urls, unique_prefix};
pub use wait::eventually;

pub use checker::{Summary, check};
pub use ledger::{Attempt, Entry, Ledger, now_ms, read_entries};
pub use proxy::{Commands, Fault, FaultProxy, Fired, Rule};
pub use redis_server::{Persistence, RedisServer, free_port};
