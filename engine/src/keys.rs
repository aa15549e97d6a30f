//! Every Redis key the Rust side uses is built here, and nowhere else. The
//! scripts get a queue's fixed keys as `KEYS` from here, and derive only
//! keys made from an id (job hashes, call records, idempotency keys,
//! throughput hours) from the key base (`lua/common.lua`).
//!
//! All keys of queue `q` carry `{q}` as a hash tag (`sluice:{q}:...`), so a
//! queue lives in one Redis Cluster slot and its scripts never fail with
//! CROSSSLOT. The registries (`sluice:queues`, `sluice:workers`) are global.

use crate::error::Error;

/// Number of strict priority levels: 0 (most urgent) to 9.
pub const PRIORITY_LEVELS: u8 = 10;

/// The consumer group every worker of a queue reads through.
pub const GROUP: &str = "workers";

/// Longest queue name accepted.
pub const MAX_QUEUE_NAME_LEN: usize = 128;

/// A queue's name, checked once (see [`validate_name`]: ASCII letters,
/// digits, `.`, `_` and `-`, at most [`MAX_QUEUE_NAME_LEN`] of them, so
/// it sits inside the queue's hash tag; `#<index>` names a partition).
///
/// ```
/// let name = sluice_engine::QueueName::new("emails").unwrap();
/// assert_eq!(name.as_str(), "emails");
/// assert!(sluice_engine::QueueName::new("a:b").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueName(String);

impl QueueName {
    /// `name` if it is a valid queue name, else [`Error::InvalidName`].
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        validate_name("queue name", &name)?;
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for QueueName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for QueueName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for QueueName {
    type Err = Error;
    fn from_str(name: &str) -> Result<Self, Error> {
        Self::new(name)
    }
}

/// Key names of one queue under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueKeys {
    prefix: String,
    queue: String,
    base: String,
}

impl QueueKeys {
    /// Keys of `queue` under `prefix` (for example `sluice`). Both must be
    /// valid names (see [`validate_name`]).
    pub fn new(prefix: &str, queue: &str) -> Result<Self, Error> {
        validate_name("prefix", prefix)?;
        validate_name("queue name", queue)?;
        Ok(Self {
            prefix: prefix.to_owned(),
            queue: queue.to_owned(),
            base: format!("{prefix}:{{{queue}}}:"),
        })
    }

    /// The queue's name.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The common start of every key of this queue: `sluice:{q}:`. Scripts
    /// derive job hashes and the other keys of the queue from it.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Stream of ready jobs at priority `level`.
    pub fn stream(&self, level: u8) -> String {
        format!("{}p:{level}", self.base)
    }

    /// All priority streams, most urgent first.
    pub fn streams(&self) -> Vec<String> {
        (0..PRIORITY_LEVELS).map(|l| self.stream(l)).collect()
    }

    /// Hash of one job: payload, options, state, attempt, fence, errors.
    pub fn job(&self, id: &str) -> String {
        format!("{}job:{id}", self.base)
    }

    /// The replay record of one claim or settle call (see `CallToken`).
    pub fn call(&self, token: &str) -> String {
        format!("{}call:{token}", self.base)
    }

    /// Sorted set of delayed jobs and retries waiting out their backoff.
    pub fn delayed(&self) -> String {
        format!("{}delayed", self.base)
    }

    /// Sorted set of dead letters, scored by the time they died.
    pub fn dead(&self) -> String {
        format!("{}dead", self.base)
    }

    /// Hash of an operator's requests to cancel running jobs: job id to the
    /// request's time (see `lua/cancel.lua`).
    pub fn cancel_requests(&self) -> String {
        format!("{}cr", self.base)
    }

    /// Hash of cancelled jobs whose stream entry no claim has read yet: job
    /// id to its level (see `lua/cancel.lua`).
    pub fn cancelled_entries(&self) -> String {
        format!("{}cx", self.base)
    }

    /// Hash of storage version 2's light-job index: job id to
    /// `<level> <entry id>` (read and emptied by `lua/migrate.lua`, never
    /// written).
    pub fn old_index(&self) -> String {
        format!("{}ix", self.base)
    }

    /// A fixed key by the name the scripts give it (`lua/common.lua`'s
    /// `fixed_keys`); None for a name no script may declare.
    pub(crate) fn fixed(&self, name: &str) -> Option<String> {
        Some(match name {
            "stats" => self.stats(),
            "delayed" => self.delayed(),
            "dead" => self.dead(),
            "cr" => self.cancel_requests(),
            "cx" => self.cancelled_entries(),
            "ix" => self.old_index(),
            _ => return None,
        })
    }

    /// Hash of queue settings: the paused flag, the rate limit and its bucket.
    pub fn meta(&self) -> String {
        format!("{}meta", self.base)
    }

    /// A key of the queue's slot that is never written: every queue script
    /// declares it, so none runs while the slot migrates (`lua/common.lua`).
    pub fn slot_probe(&self) -> String {
        format!("{}slot-probe", self.base)
    }

    /// Hash of per-minute completed/failed counts for one hour (hours since
    /// the Unix epoch), written by settle.lua and reclaim.lua.
    pub fn throughput(&self, hour: u64) -> String {
        format!("{}tp:{hour}", self.base)
    }

    /// Hash of the queue's counters.
    pub fn stats(&self) -> String {
        format!("{}stats", self.base)
    }

    /// Registry of queues under this prefix.
    pub fn queues(&self) -> String {
        queues_key(&self.prefix)
    }
}

/// Registry of all queue names under `prefix`.
pub fn queues_key(prefix: &str) -> String {
    format!("{prefix}:queues")
}

/// Sorted set indexing the live worker processes (see `registry.rs`).
pub fn workers_key(prefix: &str) -> String {
    format!("{prefix}:workers")
}

/// One worker process's registration (JSON, expires unless refreshed).
pub fn worker_key(prefix: &str, id: &str) -> String {
    format!("{prefix}:worker:{id}")
}

/// Hash of each cron schedule's last tick (JSON by schedule name).
pub fn schedules_key(prefix: &str) -> String {
    format!("{prefix}:schedules")
}

/// Registry of every circuit breaker's name under `prefix`.
pub fn breakers_key(prefix: &str) -> String {
    format!("{prefix}:breakers")
}

/// Circuit breaker `name`'s keys: its hash, its probes in flight and its
/// recorded calls, under one hash tag (see `lua/breaker.lua`).
pub fn breaker_keys(prefix: &str, name: &str) -> [String; 3] {
    let hash = format!("{prefix}:{{breaker:{name}}}");
    let probes = format!("{hash}:probes");
    let seen = format!("{hash}:seen");
    [hash, probes, seen]
}

/// Alert rule `name`'s state hash (see `lua/alert.lua`).
pub fn alert_key(prefix: &str, name: &str) -> String {
    format!("{prefix}:alert:{name}")
}

/// The latency counts of `series` in slot `slot` (a hash: bucket -> count).
pub fn latency_key(prefix: &str, series: &str, slot: u64) -> String {
    format!("{prefix}:lat:{series}:{slot}")
}

/// Samples of counters `name` over time (a sorted set by ms).
pub fn samples_key(prefix: &str, name: &str) -> String {
    format!("{prefix}:samples:{name}")
}

/// Marks `token` (a session's id, say) revoked until the key expires (see
/// `limits.rs`).
pub fn revoked_key(prefix: &str, token: &str) -> String {
    format!("{prefix}:revoked:{token}")
}

/// Request window `name`'s counter for the window that starts at `start`
/// ms; a window and the one before it share the hash tag, so
/// `lua/rate_window.lua` reads both in one call.
pub fn rate_window_key(prefix: &str, name: &str, start: u64) -> String {
    format!("{prefix}:{{rl:{name}}}:{start}")
}

/// Check that `name` is usable inside the key layout: 1 to 128 characters of
/// ASCII letters, digits, `.`, `_` and `-`. Braces would break the hash tag,
/// `:` would blur the key layout, and `#` is kept for queue partitions: a
/// queue name may end in `#<index>` (1 to 4 digits), the partition's name.
/// Names of dots only are refused: `..` would read as a step up in a URL.
/// For queue names, [`QueueName`] checks them; this is for the other names
/// the config holds (schedules, alert rules, channels, breakers), and says
/// `what` the name is in its error.
pub fn validate_name(what: &'static str, name: &str) -> Result<(), Error> {
    // A partition of a partitioned queue is `<queue>#<index>`.
    let base = match name.split_once('#') {
        Some((base, index))
            if what == "queue name"
                && (1..=4).contains(&index.len())
                && index.bytes().all(|b| b.is_ascii_digit()) =>
        {
            base
        }
        _ => name,
    };
    // Only dots ("." or "..") would read as a path step in URLs that carry
    // the name (API, dashboard).
    let ok = !base.is_empty()
        && !base.bytes().all(|b| b == b'.')
        && name.len() <= MAX_QUEUE_NAME_LEN
        && base
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what,
            name: name.chars().take(MAX_QUEUE_NAME_LEN + 1).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_the_queue_hash_tag() {
        let k = QueueKeys::new("sluice", "emails").expect("valid");
        assert_eq!(k.stream(3), "sluice:{emails}:p:3");
        assert_eq!(k.job("abc"), "sluice:{emails}:job:abc");
        for key in [k.delayed(), k.dead(), k.meta(), k.stats()] {
            assert!(key.starts_with("sluice:{emails}:"), "{key}");
        }
        assert_eq!(k.queues(), "sluice:queues");
    }

    #[test]
    fn names_that_break_the_layout_are_refused() {
        for bad in [
            "",
            "a{b",
            "a}b",
            "a:b",
            "a b",
            "a#",
            "a#b",
            "#0",
            "a#0#1",
            "a#12345",
            ".",
            "..",
            "ü",
            &"x".repeat(129),
        ] {
            assert!(QueueKeys::new("sluice", bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            QueueKeys::new("sluice", "orders#2")
                .expect("partition")
                .stream(0),
            "sluice:{orders#2}:p:0"
        );
        assert!(
            QueueKeys::new("sluice#1", "q").is_err(),
            "prefixes have no partitions"
        );
        assert!(QueueKeys::new("bad:prefix", "q").is_err());
        assert!(QueueKeys::new("sluice", "Orders_v2.eu-west").is_ok());
    }
}
