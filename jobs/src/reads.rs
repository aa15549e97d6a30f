//! What the platform reads back: a user's signals (paged, filtered) and
//! their stats.

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::error::Result;

/// A stored signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
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
    /// What the message said.
    pub signal_type: String,
    /// The chart.
    pub chart_id: Option<String>,
    /// pending, processing, completed or failed.
    pub screenshot_status: String,
    /// Where the screenshot is.
    pub screenshot_url: Option<String>,
    /// Why the last capture failed.
    pub screenshot_error: Option<String>,
    /// When the message fired.
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignalFilter {
    /// Exact ticker (`BINANCE:BTCUSDT`) or symbol (`BTCUSDT`), any case.
    pub ticker: Option<String>,
    /// Exact signal type, any case.
    pub signal_type: Option<String>,
    /// pending, win, loss or skip (any case).
    #[param(
        pattern = r"^([Pp][Ee][Nn][Dd][Ii][Nn][Gg]|[Ww][Ii][Nn]|[Ll][Oo][Ss][Ss]|[Ss][Kk][Ii][Pp])$"
    )]
    pub result: Option<String>,
    /// Messages at or after.
    pub from: Option<DateTime<Utc>>,
    /// Messages before.
    pub to: Option<DateTime<Utc>>,
    /// Signals per page (1 to 500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Only signals with a smaller id (the `next` of the previous page).
    pub before_id: Option<i64>,
}

/// One page of signals, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
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

/// A user's figures over a range of days (UTC), from the per-day
/// aggregates (`signal_daily`, kept a year), so they outlive the raw
/// signals that retention deletes after a week.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct UserStats {
    /// The first day counted, when the range has one.
    pub from: Option<NaiveDate>,
    /// The last day counted, when the range has one.
    pub to: Option<NaiveDate>,
    /// Signals stored in the range.
    pub total_signals: i64,
    /// Signals stored this calendar month (UTC).
    pub this_month: i64,
    /// Screenshots not taken yet (of the signals still kept).
    pub screenshots_pending: i64,
    /// Signals marked win.
    pub wins: i64,
    /// Signals marked loss.
    pub losses: i64,
    /// Signals marked skip.
    pub skips: i64,
    /// wins / (wins + losses), when any is decided.
    pub win_rate: Option<f64>,
    /// Screenshots taken.
    pub screenshots_done: i64,
    /// Screenshots that failed for good.
    pub screenshots_failed: i64,
    /// Per ticker, most signals first.
    pub by_ticker: Vec<TickerStats>,
    /// Per signal type, most signals first.
    pub by_type: Vec<TypeStats>,
}

/// One ticker's figures.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TickerStats {
    /// The ticker.
    pub ticker: String,
    /// Signals.
    pub signals: i64,
    /// Marked win.
    pub wins: i64,
    /// Marked loss.
    pub losses: i64,
}

/// One signal type's count.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct TypeStats {
    /// The signal type.
    pub signal_type: String,
    /// Signals.
    pub signals: i64,
}

/// The user's figures for the days `from` to `to` (both included; open
/// ends when `None`).
pub async fn stats(
    pool: &PgPool,
    user_id: i64,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Result<UserStats> {
    let range =
        "user_id = $1 AND ($2::date IS NULL OR day >= $2) AND ($3::date IS NULL OR day <= $3)";
    let (total, wins, losses, skips, done, failed): (i64, i64, i64, i64, i64, i64) =
        sqlx::query_as(&format!(
            "SELECT COALESCE(sum(signals), 0)::int8, COALESCE(sum(wins), 0)::int8,
                    COALESCE(sum(losses), 0)::int8, COALESCE(sum(skips), 0)::int8,
                    COALESCE(sum(screenshots_done), 0)::int8,
                    COALESCE(sum(screenshots_failed), 0)::int8
             FROM signal_daily WHERE {range}"
        ))
        .bind(user_id)
        .bind(from)
        .bind(to)
        .fetch_one(pool)
        .await?;
    let (this_month,): (i64,) = sqlx::query_as(
        "SELECT COALESCE(sum(signals), 0)::int8 FROM signal_daily
         WHERE user_id = $1 AND day >= date_trunc('month', now() AT TIME ZONE 'UTC')::date",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await?;
    let (screenshots_pending,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM signals
         WHERE user_id = $1 AND screenshot_status IN ('pending', 'processing')",
    )
    .bind(user_id)
    .fetch_one(pool)
    .await?;
    let by_ticker: Vec<TickerStats> = sqlx::query_as(&format!(
        "SELECT ticker, sum(signals)::int8 AS signals, sum(wins)::int8 AS wins,
                sum(losses)::int8 AS losses
         FROM signal_daily WHERE {range}
         GROUP BY ticker ORDER BY 2 DESC, 1 LIMIT 100"
    ))
    .bind(user_id)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let by_type: Vec<TypeStats> = sqlx::query_as(&format!(
        "SELECT signal_type, sum(signals)::int8 AS signals
         FROM signal_daily WHERE {range}
         GROUP BY signal_type ORDER BY 2 DESC, 1 LIMIT 100"
    ))
    .bind(user_id)
    .bind(from)
    .bind(to)
    .fetch_all(pool)
    .await?;
    let decided = wins + losses;
    Ok(UserStats {
        from,
        to,
        total_signals: total,
        this_month,
        screenshots_pending,
        wins,
        losses,
        skips,
        win_rate: (decided > 0).then(|| wins as f64 / decided as f64),
        screenshots_done: done,
        screenshots_failed: failed,
        by_ticker,
        by_type,
    })
}
