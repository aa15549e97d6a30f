//! Sliding-window request limits shared by every process of the fleet (the
//! API limits each key's requests with it). Counters live in Redis under
//! `<prefix>:{rl:<name>}:<window start>` and expire after two windows.

use std::time::Duration;

use crate::client::Client;
use crate::error::{Error, Result};
use crate::keys::validate_name;
use crate::registry::unix_ms;

impl Client {
    /// Revoke `token` (a session's id, say) for `ttl`, for every process
    /// of the fleet: [`is_revoked`](Self::is_revoked) answers true until
    /// then.
    pub async fn revoke(&self, token: &str, ttl: Duration) -> Result<()> {
        validate_name("revoked token", token)?;
        self.fleet()
            .revoke(token, ttl.as_millis().min(u128::from(u64::MAX)) as u64)
            .await
    }

    /// Whether `token` was revoked (and its revocation has not expired).
    pub async fn is_revoked(&self, token: &str) -> Result<bool> {
        validate_name("revoked token", token)?;
        self.fleet().is_revoked(token).await
    }

    /// Count one request of `name` against `limit` requests per `window`.
    /// `Ok(None)`: allowed; `Ok(Some(wait))`: refused, retry after `wait`.
    pub async fn rate_window(
        &self,
        name: &str,
        limit: u32,
        window: Duration,
    ) -> Result<Option<Duration>> {
        validate_name("rate limit name", name)?;
        let len = window.as_millis() as u64;
        if len == 0 || limit == 0 {
            return Err(Error::invalid(
                "rate window",
                "limit and window must be above zero",
            ));
        }
        // Window boundaries by this machine's clock are only a key naming
        // scheme; the script measures elapsed time by the server's clock.
        let start = unix_ms() / len * len;
        let wait = self.fleet().rate_window(name, limit, len, start).await?;
        Ok((wait > 0).then(|| Duration::from_millis(wait)))
    }
}
