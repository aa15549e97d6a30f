//! Circuit breakers: the registry of their names and each one's state,
//! moved by `lua/breaker.lua` (see `breaker.rs`).

use std::collections::HashMap;

use crate::breaker::BreakerReply;
use crate::error::Result;
use crate::keys::{breaker_keys, breakers_key};
use crate::scripts;

use super::PrefixConn;

/// Redis access for circuit breakers.
#[derive(Debug, Clone)]
pub(crate) struct BreakerStore {
    redis: PrefixConn,
}

impl BreakerStore {
    pub(crate) fn new(redis: PrefixConn) -> Self {
        Self { redis }
    }

    /// One `breaker.lua` call (see the script for the arguments).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn call(
        &self,
        name: &str,
        op: &str,
        token: &str,
        success: &str,
        probe: &str,
        settings: &[String],
        keep_ms: u64,
    ) -> Result<BreakerReply> {
        let [hash, probes, seen] = breaker_keys(self.redis.prefix(), name);
        let mut inv = scripts::BREAKER.prepare_invoke();
        inv.key(hash)
            .key(probes)
            .key(seen)
            .arg(op)
            .arg(token)
            .arg(success)
            .arg(probe);
        for s in settings {
            inv.arg(s);
        }
        inv.arg(keep_ms.max(1));
        let (verdict, state, wait_ms, transition): (String, String, i64, String) =
            self.redis.invoke("circuit breaker", &inv).await?;
        Ok(BreakerReply {
            verdict,
            state,
            wait_ms: wait_ms.max(0) as u64,
            transition,
        })
    }

    /// Add `name` to the breaker registry (idempotent).
    pub(crate) async fn register(&self, name: &str) -> Result<()> {
        self.redis
            .query::<()>(
                "register breaker",
                redis::cmd("SADD")
                    .arg(breakers_key(self.redis.prefix()))
                    .arg(name),
            )
            .await
    }

    /// Whether `name` is in the breaker registry.
    pub(crate) async fn is_registered(&self, name: &str) -> Result<bool> {
        self.redis
            .query(
                "find breaker",
                redis::cmd("SISMEMBER")
                    .arg(breakers_key(self.redis.prefix()))
                    .arg(name),
            )
            .await
    }

    /// Every registered breaker's name (unsorted).
    pub(crate) async fn names(&self) -> Result<Vec<String>> {
        self.redis
            .query(
                "list breakers",
                redis::cmd("SMEMBERS").arg(breakers_key(self.redis.prefix())),
            )
            .await
    }

    /// Breaker `name`'s hash fields and its probes whose lease runs past
    /// `now_ms`.
    pub(crate) async fn fields(
        &self,
        name: &str,
        now_ms: u64,
    ) -> Result<(HashMap<String, String>, u64)> {
        let [hash, probes, _] = breaker_keys(self.redis.prefix(), name);
        let mut pipe = redis::pipe();
        pipe.cmd("HGETALL")
            .arg(hash)
            .cmd("ZCOUNT")
            .arg(probes)
            .arg(now_ms)
            .arg("+inf");
        self.redis.pipeline("read breaker", &pipe).await
    }
}
