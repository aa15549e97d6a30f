//! A signal's outcome on the trading platform: win, loss or skip (or back
//! to pending). The per-day aggregates follow through the `signals_daily`
//! trigger (migration 0002), which moves a count from the old result to the
//! new one, so setting the same result twice counts it once.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::error::Result;

/// A signal's result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SignalResult {
    /// Not known yet.
    Pending,
    /// The trade won.
    Win,
    /// The trade lost.
    Loss,
    /// The signal was not traded.
    Skip,
}

impl SignalResult {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Win => "win",
            Self::Loss => "loss",
            Self::Skip => "skip",
        }
    }
}

/// What setting a result changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ResultSet {
    /// The signal.
    pub id: i64,
    /// Its user.
    pub user_id: i64,
    /// The result before.
    pub previous: String,
    /// The result now.
    pub result: String,
}

/// Set signal `id`'s result; `None` when there is no such signal (never
/// stored, or its raw row was retained away).
pub async fn set(pool: &PgPool, id: i64, result: SignalResult) -> Result<Option<ResultSet>> {
    // One statement: the old value is read under the row lock the update
    // takes, so two concurrent setters each see what they replaced.
    let row: Option<(i64, String)> = sqlx::query_as(
        "WITH old AS (SELECT id, result FROM signals WHERE id = $1 FOR UPDATE)
         UPDATE signals s SET result = $2, updated_at = now()
         FROM old WHERE s.id = old.id
         RETURNING s.user_id, old.result",
    )
    .bind(id)
    .bind(result.as_str())
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(user_id, previous)| ResultSet {
        id,
        user_id,
        previous,
        result: result.as_str().to_owned(),
    }))
}
