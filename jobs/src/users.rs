//! Users: webhook tokens (stored as SHA-256 only), plans and quotas, and
//! the TradingView session cookies (encrypted at rest).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::PgPool;

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::secrets::CookieCipher;

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Plan name (see [`Plan`]).
    pub plan: String,
    /// Signals allowed per period.
    pub signal_quota: i32,
    /// Signals accepted this period.
    pub signals_used: i32,
    /// When the period ends and the count starts over.
    pub quota_resets_at: DateTime<Utc>,
    /// Whether the webhook accepts messages.
    pub webhook_enabled: bool,
    /// When the webhook last accepted a message.
    pub last_used_at: Option<DateTime<Utc>>,
    /// When the user was added.
    pub created_at: DateTime<Utc>,
    /// Their messages write numbers with a decimal comma (`1.234,5`).
    pub decimal_comma: bool,
}

const USER_COLUMNS: &str = "id, plan, signal_quota, signals_used, quota_resets_at, \
     webhook_enabled, last_used_at, created_at, decimal_comma";

/// A fresh webhook token: 32 random bytes, URL-safe base64 (43 characters).
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What is stored of a token.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Add a user on `plan` (quota: the plan's unless given). Returns the user
/// and its webhook token, which is shown once and never stored.
pub async fn add(pool: &PgPool, plan: Plan, quota: Option<i32>) -> Result<(User, String)> {
    let quota = quota.unwrap_or(plan.default_quota());
    if quota < 0 {
        return Err(Error::Invalid("quota must be 0 or more".into()));
    }
    let token = new_token();
    let user: User = sqlx::query_as(&format!(
        "INSERT INTO users (token_hash, plan, signal_quota, quota_resets_at)
         VALUES ($1, $2, $3, date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                             + interval '1 month')
         RETURNING {USER_COLUMNS}"
    ))
    .bind(&token_hash(&token)[..])
    .bind(plan.as_str())
    .bind(quota)
    .fetch_one(pool)
    .await?;
    Ok((user, token))
}

/// The user with `id`.
pub async fn get(pool: &PgPool, id: i64) -> Result<Option<User>> {
    Ok(
        sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}

/// Replace the user's webhook token; the old one stops working at once in
/// the database (API processes may accept it from their cache for up to
/// the cache's lifetime). `None` when there is no such user.
pub async fn rotate_token(pool: &PgPool, id: i64) -> Result<Option<String>> {
    let token = new_token();
    let done = sqlx::query("UPDATE users SET token_hash = $1 WHERE id = $2")
        .bind(&token_hash(&token)[..])
        .bind(id)
        .execute(pool)
        .await?;
    Ok((done.rows_affected() == 1).then_some(token))
}

/// Read the user's messages with a decimal comma (`1.234,5`) or a decimal
/// point. False when there is no such user.
pub async fn set_decimal_comma(pool: &PgPool, id: i64, decimal_comma: bool) -> Result<bool> {
    let done = sqlx::query("UPDATE users SET decimal_comma = $1 WHERE id = $2")
        .bind(decimal_comma)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Turn the user's webhook on or off. False when there is no such user.
pub async fn set_webhook_enabled(pool: &PgPool, id: i64, enabled: bool) -> Result<bool> {
    let done = sqlx::query("UPDATE users SET webhook_enabled = $1 WHERE id = $2")
        .bind(enabled)
        .bind(id)
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// One browser cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCookie {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
    /// Domain; the chart URL's host when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Path; `/` when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Read cookies as exported by a browser: a JSON array of objects with
/// `name` and `value` (and optionally `domain`, `path`; other fields are
/// ignored), or a JSON object of name to value.
pub fn parse_cookies(json: &str) -> Result<Vec<SessionCookie>> {
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| Error::Invalid(format!("cookies are not JSON: {e}")))?;
    let cookies = match value {
        serde_json::Value::Array(_) => serde_json::from_value::<Vec<SessionCookie>>(value)
            .map_err(|e| {
                Error::Invalid(format!(
                    "cookies: expected objects with name and value: {e}"
                ))
            })?,
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(name, v)| match v {
                serde_json::Value::String(value) => Ok(SessionCookie {
                    name,
                    value,
                    domain: None,
                    path: None,
                }),
                _ => Err(Error::Invalid(format!(
                    "cookie {name:?}: the value must be a string"
                ))),
            })
            .collect::<Result<_>>()?,
        _ => {
            return Err(Error::Invalid(
                "cookies: expected a JSON array or object".into(),
            ));
        }
    };
    if cookies.iter().any(|c| c.name.is_empty()) {
        return Err(Error::Invalid("cookies: a cookie has an empty name".into()));
    }
    Ok(cookies)
}

/// Store the user's session cookies, encrypted, and optionally the default
/// chart. False when there is no such user.
pub async fn set_cookies(
    pool: &PgPool,
    cipher: &CookieCipher,
    id: i64,
    cookies: &[SessionCookie],
    default_chart: Option<&str>,
) -> Result<bool> {
    if get(pool, id).await?.is_none() {
        return Ok(false);
    }
    let plain = serde_json::to_vec(cookies).map_err(|e| Error::Invalid(e.to_string()))?;
    let sealed = cipher.encrypt(&plain)?;
    sqlx::query(
        "INSERT INTO user_config (user_id, cookies_encrypted, cookies_valid, default_chart_id)
         VALUES ($1, $2, true, $3)
         ON CONFLICT (user_id) DO UPDATE SET
             cookies_encrypted = EXCLUDED.cookies_encrypted,
             cookies_valid = true,
             default_chart_id = COALESCE(EXCLUDED.default_chart_id, user_config.default_chart_id),
             updated_at = now()",
    )
    .bind(id)
    .bind(sealed)
    .bind(default_chart)
    .execute(pool)
    .await?;
    Ok(true)
}

/// The user's decrypted session cookies, if any are stored and valid.
pub async fn cookies(pool: &PgPool, cipher: &CookieCipher, id: i64) -> Result<Vec<SessionCookie>> {
    let row: Option<(Option<Vec<u8>>, bool)> = sqlx::query_as(
        "SELECT cookies_encrypted, cookies_valid FROM user_config WHERE user_id = $1",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    match row {
        Some((Some(sealed), true)) => {
            let plain = cipher.decrypt(&sealed)?;
            serde_json::from_slice(&plain).map_err(|_| Error::Decrypt)
        }
        _ => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_url_safe() {
        let a = new_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, new_token());
        assert!(
            a.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn cookies_as_array_or_object() {
        let a = parse_cookies(
            r#"[{"name":"sessionid","value":"abc","domain":".tradingview.com","httpOnly":true}]"#,
        )
        .expect("array");
        assert_eq!(a[0].domain.as_deref(), Some(".tradingview.com"));
        let o = parse_cookies(r#"{"sessionid":"abc"}"#).expect("object");
        assert_eq!(o[0].name, "sessionid");
        assert!(parse_cookies("[1]").is_err());
        assert!(parse_cookies("\"x\"").is_err());
        assert!(parse_cookies("{\"a\": 1}").is_err());
    }
}
