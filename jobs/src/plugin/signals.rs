//! The trading signals page, `/dashboard/signals`: the application's page
//! on the operators' dashboard. Its templates (`jobs/templates/`) extend
//! the dashboard's `base.html` (`askama.toml`).

use askama::Template;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sluice_dashboard::pages::Chrome;

use axum::Extension;
use sluice_server::AppState;
use sluice_server::dashboard::{DashError, DashResult, fragment_operator, operator, render};

use super::runtime::TradingRuntime;

/// One trading signal.
#[derive(Debug, Clone)]
pub struct SignalRow {
    /// Id.
    pub id: i64,
    /// Its user.
    pub user_id: i64,
    /// Ticker.
    pub ticker: String,
    /// Signal type.
    pub signal_type: String,
    /// Price.
    pub price: String,
    /// Message time.
    pub alert_time: String,
    /// Screenshot status.
    pub screenshot_status: String,
    /// Screenshot URL.
    pub screenshot_url: Option<String>,
    /// Screenshot error.
    pub screenshot_error: Option<String>,
    /// Result.
    pub result: String,
}

/// `GET /dashboard/signals`.
#[derive(Debug, Template)]
#[template(path = "signals.html")]
pub struct SignalsPage {
    /// Around it.
    pub chrome: Chrome,
    /// User filter.
    pub user: String,
    /// Ticker filter.
    pub ticker: String,
    /// The live part, rendered.
    pub live_html: String,
}

/// The live part of the signals page.
#[derive(Debug, Template)]
#[template(path = "signals_live.html")]
pub struct SignalsLive {
    /// The latest signals.
    pub rows: Vec<SignalRow>,
    /// Why none could be read.
    pub error: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct SignalsQuery {
    user: Option<String>,
    ticker: Option<String>,
}

async fn signals_data(p: &TradingRuntime, q: &SignalsQuery) -> DashResult<SignalsLive> {
    let user = match q.user.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        None => None,
        Some(u) => Some(u.parse::<i64>().map_err(|_| {
            DashError::status(
                StatusCode::BAD_REQUEST,
                format!("user {u:?}: use a user id"),
            )
        })?),
    };
    let ticker = q
        .ticker
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.chars().take(40).collect::<String>());
    let filter = crate::reads::SignalFilter {
        ticker,
        limit: Some(60),
        ..Default::default()
    };
    match crate::reads::signals(&p.pool, user, &filter).await {
        Ok(page) => Ok(SignalsLive {
            rows: page
                .signals
                .into_iter()
                .map(|s| SignalRow {
                    id: s.id,
                    user_id: s.user_id,
                    ticker: s.ticker,
                    signal_type: s.signal_type,
                    price: s
                        .price
                        .map(|p| p.normalize().to_string())
                        .unwrap_or_default(),
                    alert_time: s.alert_time.format("%Y-%m-%d %H:%M:%S").to_string(),
                    screenshot_status: s.screenshot_status,
                    screenshot_url: s.screenshot_url,
                    screenshot_error: s.screenshot_error,
                    result: s.result,
                })
                .collect(),
            error: None,
        }),
        Err(e) => {
            tracing::warn!(error = %e, "dashboard cannot read signals");
            Ok(SignalsLive {
                rows: Vec::new(),
                error: Some("PostgreSQL is unreachable; retrying".into()),
            })
        }
    }
}

/// `GET /dashboard/signals`.
pub async fn signals(
    State(state): State<AppState>,
    Extension(trading): Extension<TradingRuntime>,
    headers: HeaderMap,
    Query(q): Query<SignalsQuery>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    let live = signals_data(&trading, &q).await?;
    Ok(render(&SignalsPage {
        chrome: op.chrome(&state, "Signals", "signals"),
        user: q.user.unwrap_or_default(),
        ticker: q.ticker.unwrap_or_default(),
        live_html: render(&live).0,
    })
    .into_response())
}

/// `GET /dashboard/live/signals`: the page's live part.
pub async fn signals_live(
    State(state): State<AppState>,
    Extension(trading): Extension<TradingRuntime>,
    headers: HeaderMap,
    Query(q): Query<SignalsQuery>,
) -> DashResult<Response> {
    fragment_operator(&state, &headers).await?;
    Ok(render(&signals_data(&trading, &q).await?).into_response())
}
