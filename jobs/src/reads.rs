//! What the platform reads back: a user's signals (paged, filtered) and
//! their stats.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::error::Result;

/// A stored signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Signal {
    /// Id.
    pub id: i64,
    /// Its user.
    pub user_id: i64,
    /// The indicator that fired.
    pub indicator: Option<String>,
    /// `EXCHANGE:SYMBOL` as sent.
    pub ticker: String,
    /// Exchange.
    pub exchange: Option<String>,
    /// Symbol.
    pub symbol: String,
    /// Price.
    pub price: Option<Decimal>,
    /// What the alert said.
    pub signal_type: String,
    /// The chart.
    pub chart_id: Option<String>,
    /// pending, processing, completed or failed.
    pub screenshot_status: String,
    /// Where the screenshot is.
    pub screenshot_url: Option<String>,
    /// Why the last capture failed.
    pub screenshot_error: Option<String>,
    /// When the alert fired.
    pub alert_time: DateTime<Utc>,
    /// pending, win, loss or skip.
    pub result: String,
    /// Profit or loss.
    pub profit_loss: Option<Decimal>,
    /// Notes.
    pub notes: Option<String>,
    /// Stored at.
    pub created_at: DateTime<Utc>,
    /// Last changed at.
    pub updated_at: DateTime<Utc>,
}

/// Filters and paging of [`signals`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SignalFilter {
    /// Exact ticker (`BINANCE:BTCUSDT`) or symbol (`BTCUSDT`), any case.
    pub ticker: Option<String>,
    /// Exact signal type, any case.
    pub signal_type: Option<String>,
    /// pending, win, loss or skip.
    pub result: Option<String>,
    /// Alerts at or after.
    pub from: Option<DateTime<Utc>>,
    /// Alerts before.
    pub to: Option<DateTime<Utc>>,
    /// Signals per page (1 to 500, default 50).
    pub limit: Option<i64>,
    /// Only signals with a smaller id (the `next` of the previous page).
    pub before_id: Option<i64>,
}

/// One page of signals, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignalPage {
    /// The signals.
    pub signals: Vec<Signal>,
    /// Pass as `before_id` for the next page; absent on the last page.
    pub next: Option<i64>,
}

/// The signals of one user (or of every user, for operators), newest first.
pub async fn signals(pool: &PgPool, user_id: Option<i64>, f: &SignalFilter) -> Result<SignalPage> {
    let limit = f.limit.unwrap_or(50).clamp(1, 500);
    let mut rows: Vec<Signal> = sqlx::query_as(
        "SELECT id, user_id, indicator, ticker, exchange, symbol, price, signal_type, chart_id,
                screenshot_status, screenshot_url, screenshot_error, alert_time, result,
                profit_loss, notes, created_at, updated_at
         FROM signals
         WHERE ($1::int8 IS NULL OR user_id = $1)
           AND ($2::text IS NULL OR ticker = upper($2) OR symbol = upper($2))
           AND ($3::text IS NULL OR lower(signal_type) = lower($3))
           AND ($4::text IS NULL OR result = lower($4))
           AND ($5::timestamptz IS NULL OR alert_time >= $5)
           AND ($6::timestamptz IS NULL OR alert_time < $6)
           AND ($7::int8 IS NULL OR id < $7)
         ORDER BY id DESC
         LIMIT $8",
    )
    .bind(user_id)
    .bind(&f.ticker)
    .bind(&f.signal_type)
    .bind(&f.result)
    .bind(f.from)
    .bind(f.to)
    .bind(f.before_id)
    .bind(limit + 1)
    .fetch_all(pool)
    .await?;
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|s| s.id)
    } else {
        None
    };
    Ok(SignalPage {
        signals: rows,
        next,
    })
}

/// A user's figures.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct UserStats {
    /// Signals stored.
    pub total_signals: i64,
    /// Signals stored this calendar month (UTC).
    pub this_month: i64,
    /// Screenshots not taken yet.
    pub screenshots_pending: i64,
    /// Signals marked win.
    pub wins: i64,
    /// Signals marked loss.
    pub losses: i64,
    /// wins / (wins + losses), when any is decided.
    pub win_rate: Option<f64>,
}

/// The user's figures.
pub async fn stats(pool: &PgPool, user_id: i64) -> Result<UserStats> {
    Ok(sqlx::query_as(
        "SELECT count(*) AS total_signals,
                count(*) FILTER (WHERE created_at >= date_trunc('month', now() AT TIME ZONE 'UTC')
                                                      AT TIME ZONE 'UTC') AS this_month,
                count(*) FILTER (WHERE screenshot_status IN ('pending', 'processing'))
                    AS screenshots_pending,
                count(*) FILTER (WHERE result = 'win') AS wins,
                count(*) FILTER (WHERE result = 'loss') AS losses,
                (count(*) FILTER (WHERE result = 'win'))::float8
                    / NULLIF(count(*) FILTER (WHERE result IN ('win', 'loss')), 0) AS win_rate
         FROM signals WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await?)
}
