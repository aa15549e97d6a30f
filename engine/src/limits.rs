//! Limits shared by every process under a prefix, through [`Limits`] (from
//! [`Client::limits`](crate::Client::limits)): revoked tokens (a logged-out
//! session, say), and sliding-window request limits (the API limits each
//! key's requests with them). A window's counters live in Redis under
//! `<prefix>:{rl:<name>}:<window start>` and expire after two windows.

use std::time::Duration;

use crate::error::{Error, Result};
use crate::keys::validate_name;
use crate::registry::unix_ms;
use crate::store::LimitStore;

/// Revoked tokens and request windows under a client's prefix. Made by
/// [`Client::limits`](crate::Client::limits); cheap to clone.
#[derive(Debug, Clone)]
pub struct Limits {
    store: LimitStore,
}

impl Limits {
    pub(crate) fn new(store: LimitStore) -> Self {
        Self { store }
    }

    /// Revoke `token` (a session's id, say) for `ttl`, for every process:
    /// [`is_revoked`](Self::is_revoked) answers true until then.
    pub async fn revoke(&self, token: &str, ttl: Duration) -> Result<()> {
        validate_name("revoked token", token)?;
        self.store
            .revoke(token, ttl.as_millis().min(u128::from(u64::MAX)) as u64)
            .await
    }

    /// Whether `token` was revoked (and its revocation has not expired).
    pub async fn is_revoked(&self, token: &str) -> Result<bool> {
        validate_name("revoked token", token)?;
        self.store.is_revoked(token).await
    }

    /// Count one request of `name` against `limit` requests per `window`.
    /// `Ok(None)`: allowed; `Ok(Some(wait))`: refused (and not counted),
    /// retry after `wait`.
    pub async fn count_request(
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
        let wait = self.store.rate_window(name, limit, len, start).await?;
        Ok((wait > 0).then(|| Duration::from_millis(wait)))
    }
}
