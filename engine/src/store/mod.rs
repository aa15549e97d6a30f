//! The only module that talks to Redis: one method per transition, each one
//! script call (or one pipeline), retried with backoff on transient failures.
//!
//! By role: `calls` (how a call reaches Redis and is retried, call tokens),
//! `replies` (typed replies and value readers), `transitions` (one script
//! per change of state), `direct` (claims of light jobs by a plain read),
//! `group` (the consumer group), `inspect` (reads),
//! `meta` (the queue's settings and registration), and `fleet` (client-wide
//! keys: the queue and worker registries, cron schedules, request windows).

mod calls;
mod direct;
mod fleet;
mod group;
mod inspect;
mod meta;
mod replies;
mod transitions;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::conn::Conn;
use crate::keys::QueueKeys;

pub use calls::RetryPolicy;
pub(crate) use calls::{CallToken, with_retry};
pub(crate) use direct::DirectRead;
pub(crate) use fleet::FleetStore;
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
