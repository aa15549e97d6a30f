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
//!   killed and restarted on its append-only file.

mod checker;
mod ledger;
mod proxy;
mod redis_server;
mod resp;

pub use checker::{Summary, check};
pub use ledger::{Attempt, Entry, Ledger, now_ms, read_entries};
pub use proxy::{Commands, Fault, FaultProxy, Fired, Rule};
pub use redis_server::{Persistence, RedisServer, free_port};
