//! Revoked tokens and sliding-window request counters (see `limits.rs`).

use crate::error::Result;
use crate::keys::{rate_window_key, revoked_key};
use crate::scripts;

use super::PrefixConn;

/// Redis access for revocations and request windows.
#[derive(Debug, Clone)]
pub(crate) struct LimitStore {
    redis: PrefixConn,
}

impl LimitStore {
    pub(crate) fn new(redis: PrefixConn) -> Self {
        Self { redis }
    }

    /// Mark `token` revoked for `ttl_ms`.
    pub(crate) async fn revoke(&self, token: &str, ttl_ms: u64) -> Result<()> {
        self.redis
            .query(
                "revoke",
                redis::cmd("SET")
                    .arg(revoked_key(self.redis.prefix(), token))
                    .arg(1)
                    .arg("PX")
                    .arg(ttl_ms.max(1)),
            )
            .await
    }

    /// Whether `token` is revoked.
    pub(crate) async fn is_revoked(&self, token: &str) -> Result<bool> {
        self.redis
            .query(
                "check revocation",
                redis::cmd("EXISTS").arg(revoked_key(self.redis.prefix(), token)),
            )
            .await
    }

    /// `rate_window.lua` on window `start` of `len` ms for `name`: the wait
    /// in ms before another request is allowed (0: this one is).
    pub(crate) async fn rate_window(
        &self,
        name: &str,
        limit: u32,
        len: u64,
        start: u64,
    ) -> Result<u64> {
        let prefix = self.redis.prefix();
        let mut inv = scripts::RATE_WINDOW.prepare_invoke();
        inv.key(rate_window_key(prefix, name, start))
            .key(rate_window_key(prefix, name, start.saturating_sub(len)))
            .arg(limit)
            .arg(len)
            .arg(start);
        self.redis.invoke("rate window", &inv).await
    }
}
