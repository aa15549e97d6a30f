//! The only module that talks to Redis: one method per transition, each one
//! script call (or one pipeline), retried with backoff on transient failures.
//!
//! A queue's calls, by role: `calls` (how a call reaches Redis and is
//! retried, call tokens), `replies` (typed replies and value readers),
//! `transitions` (one script per change of state), `direct` (claims of
//! light jobs by a plain read), `group` (the consumer group), `inspect`
//! (reads), `meta` (the queue's settings and registration).
//!
//! The client-wide keys, outside any queue, one store per concern, each
//! used by one handle: `client` (the queue registry, ping and the server's
//! facts, for [`Client`](crate::Client)), `registry` (worker processes and
//! cron schedule states), `limits` (revocations and request windows),
//! `breakers` (circuit breakers) and `alerts` (alert rules, latency series,
//! counter samples).

mod alerts;
mod breakers;
mod calls;
mod client;
mod direct;
mod group;
mod inspect;
mod limits;
mod meta;
mod registry;
mod replies;
mod transitions;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::{FromRedisValue, ScriptInvocation};

use crate::conn::Conn;
use crate::error::Result;
use crate::keys::QueueKeys;

pub(crate) use alerts::AlertStore;
pub(crate) use breakers::BreakerStore;
pub use calls::RetryPolicy;
pub(crate) use calls::{CallToken, with_retry};
pub(crate) use client::ClientStore;
pub(crate) use direct::DirectRead;
pub(crate) use limits::LimitStore;
pub(crate) use registry::RegistryStore;
pub use replies::{Cancelled, Promoted, Reclaimed, Settled};
pub(crate) use replies::{ClaimStatus, RateState};
pub(crate) use transitions::{Delivered, EnqueueItem, SettleItem};

/// Redis access for one queue.
#[derive(Clone)]
pub(crate) struct Store {
    conn: Conn,
    keys: QueueKeys,
    retry: RetryPolicy,
    /// When (unix ms) a call last found the queue's Redis Cluster slot
    /// migrating; 0 when none did. Shared by the store's clones.
    slot_moving_at: Arc<AtomicU64>,
}

/// How long a slot found migrating counts as migrating: new jobs without
/// a key go to other partitions meanwhile (`Queue`'s routing).
const SLOT_MOVING_FOR: Duration = Duration::from_secs(10);

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("keys", &self.keys).finish()
    }
}

impl Store {
    pub(crate) fn new(conn: Conn, keys: QueueKeys, retry: RetryPolicy) -> Self {
        Self {
            conn,
            keys,
            retry,
            slot_moving_at: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Whether a call found the queue's slot migrating in the last
    /// [`SLOT_MOVING_FOR`].
    pub(crate) fn slot_moving(&self) -> bool {
        let at = self.slot_moving_at.load(Ordering::Relaxed);
        at != 0
            && crate::registry::unix_ms().saturating_sub(at) < SLOT_MOVING_FOR.as_millis() as u64
    }

    pub(crate) fn keys(&self) -> &QueueKeys {
        &self.keys
    }
}

/// The connection, key prefix and retry policy of a client, which every
/// client-wide store works with (the keys under the prefix that belong to
/// no queue). Cheap to clone.
#[derive(Clone)]
pub(crate) struct PrefixConn {
    conn: Conn,
    prefix: Arc<str>,
    retry: RetryPolicy,
}

impl std::fmt::Debug for PrefixConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrefixConn")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl PrefixConn {
    pub(crate) fn new(conn: Conn, prefix: &str, retry: RetryPolicy) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            retry,
        }
    }

    /// The key prefix.
    fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A connection for a call tried once, without retries.
    fn conn(&self) -> Conn {
        self.conn.clone()
    }

    /// One command, retried with [`with_retry`].
    async fn query<T: FromRedisValue>(
        &self,
        operation: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T> {
        calls::query(&self.conn, self.retry, operation, cmd).await
    }

    /// One script call, retried with [`with_retry`].
    async fn invoke<T: FromRedisValue>(
        &self,
        operation: &'static str,
        invocation: &ScriptInvocation<'_>,
    ) -> Result<T> {
        with_retry(self.retry, operation, || {
            let mut conn = self.conn.clone();
            async move { invocation.invoke_async(&mut conn).await }
        })
        .await
    }

    /// One pipeline, retried with [`with_retry`].
    async fn pipeline<T: FromRedisValue>(
        &self,
        operation: &'static str,
        pipe: &redis::Pipeline,
    ) -> Result<T> {
        calls::query_pipeline(&self.conn, self.retry, operation, pipe).await
    }
}
