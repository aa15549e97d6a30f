//! Admission of webhook calls: token, enabled flag, monthly quota.
//!
//! Tokens are looked up by their SHA-256, cached for a short time, and the
//! stored hash is compared in constant time. A token no user has is cached
//! too (for [`UNKNOWN_TTL`]), so that one sent again and again costs no
//! query; and an address that sends many tokens no user has is refused
//! before its next lookup for a while ([`WebhookGate::refuse_caller`]),
//! so that made-up tokens cannot keep the database pool busy. The quota is counted in
//! PostgreSQL with one atomic `UPDATE` per accepted call, on a pool whose
//! commits do not wait for the WAL flush (a PostgreSQL crash may forget the
//! last fraction of a second of counts, never a signal).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use subtle::ConstantTimeEq;

use crate::error::Result;
use crate::plan::Plan;
use crate::users::token_hash;

/// How long a token's user stays cached.
const CACHE_TTL: Duration = Duration::from_secs(30);

/// Most cached tokens before the cache is cleared.
const CACHE_MAX: usize = 100_000;

/// How long a token no user has stays known as such. A user's new token
/// is random, so no one asks for it before it exists.
pub const UNKNOWN_TTL: Duration = Duration::from_secs(60);

/// The answer to a webhook call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Accepted and counted against the quota.
    Accepted {
        /// The user.
        user_id: i64,
        /// Their plan.
        plan: Plan,
        /// Their messages write numbers with a decimal comma.
        decimal_comma: bool,
    },
    /// No user has this token (or it was rotated).
    Unknown,
    /// The user's webhook is turned off.
    Disabled,
    /// The quota for this period is used up.
    QuotaExhausted {
        /// When it starts over.
        resets_at: DateTime<Utc>,
    },
}

/// Whose token it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    /// The user.
    pub user_id: i64,
    /// Their plan.
    pub plan: Plan,
    hash: [u8; 32],
}

#[derive(Debug, Clone, Copy)]
struct Cached {
    hash: [u8; 32],
    user_id: i64,
    plan: Plan,
    at: Instant,
}

/// What the gate knows of a token without asking the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// A user's.
    User(Identity),
    /// No user's (looked up a short while ago).
    Unknown,
    /// Not known: looking it up takes a query.
    NotCached,
}

/// Checks webhook tokens and counts quotas.
#[derive(Debug)]
pub struct WebhookGate {
    pool: PgPool,
    cache: RwLock<HashMap<[u8; 32], Cached>>,
    /// Tokens no user has, with when that was found.
    unknown: RwLock<HashMap<[u8; 32], Instant>>,
    /// Addresses refused a lookup until the instant.
    refused_callers: RwLock<HashMap<String, Instant>>,
}

impl WebhookGate {
    /// A gate on `pool` (best a [fast-commit
    /// pool](crate::db::DbConfig::fast_commit_pool)).
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            cache: RwLock::new(HashMap::new()),
            unknown: RwLock::new(HashMap::new()),
            refused_callers: RwLock::new(HashMap::new()),
        }
    }

    /// What the caches say of `token`.
    pub fn known(&self, token: &str) -> Known {
        let hash = token_hash(token);
        let user = self
            .cache
            .read()
            .ok()
            .and_then(|c| c.get(&hash).copied())
            .filter(|c| c.at.elapsed() < CACHE_TTL);
        if let Some(user) = user
            && bool::from(user.hash.ct_eq(&hash))
        {
            return Known::User(Identity {
                user_id: user.user_id,
                plan: user.plan,
                hash,
            });
        }
        let unknown = self
            .unknown
            .read()
            .ok()
            .and_then(|c| c.get(&hash).copied())
            .is_some_and(|at| at.elapsed() < UNKNOWN_TTL);
        if unknown {
            Known::Unknown
        } else {
            Known::NotCached
        }
    }

    /// Whether lookups from `caller` (an address) are refused for now.
    pub fn refuses(&self, caller: &str) -> bool {
        self.refused_callers
            .read()
            .ok()
            .and_then(|r| r.get(caller).copied())
            .is_some_and(|until| Instant::now() < until)
    }

    /// Refuse lookups from `caller` for `wait`.
    pub fn refuse_caller(&self, caller: &str, wait: Duration) {
        if let Ok(mut refused) = self.refused_callers.write() {
            if refused.len() >= CACHE_MAX {
                refused.retain(|_, until| Instant::now() < *until);
                if refused.len() >= CACHE_MAX {
                    refused.clear();
                }
            }
            refused.insert(caller.to_owned(), Instant::now() + wait);
        }
    }

    async fn lookup(&self, hash: [u8; 32]) -> Result<Option<Cached>> {
        let hit = self
            .cache
            .read()
            .ok()
            .and_then(|c| c.get(&hash).copied())
            .filter(|c| c.at.elapsed() < CACHE_TTL);
        if let Some(c) = hit {
            return Ok(Some(c));
        }
        let unknown = self
            .unknown
            .read()
            .ok()
            .and_then(|c| c.get(&hash).copied())
            .is_some_and(|at| at.elapsed() < UNKNOWN_TTL);
        if unknown {
            return Ok(None);
        }
        let row: Option<(i64, Vec<u8>, String)> =
            sqlx::query_as("SELECT id, token_hash, plan FROM users WHERE token_hash = $1")
                .bind(&hash[..])
                .fetch_optional(&self.pool)
                .await?;
        let Some((user_id, stored, plan)) = row else {
            if let Ok(mut unknown) = self.unknown.write() {
                if unknown.len() >= CACHE_MAX {
                    unknown.clear();
                }
                unknown.insert(hash, Instant::now());
            }
            return Ok(None);
        };
        let Ok(stored) = <[u8; 32]>::try_from(stored.as_slice()) else {
            return Ok(None);
        };
        let Ok(plan) = plan.parse::<Plan>() else {
            return Ok(None);
        };
        let c = Cached {
            hash: stored,
            user_id,
            plan,
            at: Instant::now(),
        };
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
            cache.insert(hash, c);
        }
        Ok(Some(c))
    }

    /// Whose `token` it is, if anyone's.
    pub async fn identify(&self, token: &str) -> Result<Option<Identity>> {
        let hash = token_hash(token);
        let Some(user) = self.lookup(hash).await? else {
            return Ok(None);
        };
        if !bool::from(user.hash.ct_eq(&hash)) {
            return Ok(None);
        }
        Ok(Some(Identity {
            user_id: user.user_id,
            plan: user.plan,
            hash,
        }))
    }

    /// Check `token` and count one signal against its user's quota.
    pub async fn admit(&self, token: &str) -> Result<Admission> {
        match self.identify(token).await? {
            Some(who) => self.count(&who).await,
            None => Ok(Admission::Unknown),
        }
    }

    /// Count one signal against `who`'s quota, unless the webhook is off or
    /// the quota used up.
    pub async fn count(&self, who: &Identity) -> Result<Admission> {
        let (user, hash) = (who, who.hash);
        // A new period starts the count over; the row's token must still
        // match (a rotation makes the cached entry useless at once).
        let counted: Option<(bool,)> = sqlx::query_as(
            "UPDATE users SET
                 signals_used = CASE WHEN quota_resets_at <= now() THEN 1 ELSE signals_used + 1 END,
                 quota_resets_at = CASE WHEN quota_resets_at <= now()
                     THEN date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                          + interval '1 month'
                     ELSE quota_resets_at END,
                 last_used_at = now()
             WHERE id = $1 AND token_hash = $2 AND webhook_enabled
               AND (quota_resets_at <= now() OR signals_used < signal_quota)
             RETURNING decimal_comma",
        )
        .bind(user.user_id)
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        if let Some((decimal_comma,)) = counted {
            return Ok(Admission::Accepted {
                user_id: user.user_id,
                plan: user.plan,
                decimal_comma,
            });
        }
        // Refused: say why.
        let row: Option<(bool, DateTime<Utc>)> = sqlx::query_as(
            "SELECT webhook_enabled, quota_resets_at FROM users WHERE id = $1 AND token_hash = $2",
        )
        .bind(user.user_id)
        .bind(&hash[..])
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            None => {
                if let Ok(mut cache) = self.cache.write() {
                    cache.remove(&hash);
                }
                Admission::Unknown
            }
            Some((false, _)) => Admission::Disabled,
            Some((true, resets_at)) => Admission::QuotaExhausted { resets_at },
        })
    }
}
