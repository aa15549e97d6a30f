//! The Breakers page: every circuit breaker of the fleet, and the force
//! buttons (admins, CSRF-protected).

use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sluice_dashboard::format::{ago, duration_ms, time_ms};
use sluice_dashboard::pages::{BreakerRow, BreakersPage};
use sluice_engine::{BreakerState, BreakerStatus, Forced, unix_ms};

use super::{DashError, DashResult, operator, render};
use crate::AppState;

fn row(b: BreakerStatus, now_ms: u64) -> BreakerRow {
    let open = b.state != BreakerState::Closed;
    let actions = match b.forced {
        Some(_) => vec![("none", "Release")],
        None => vec![("open", "Force open"), ("closed", "Force closed")],
    };
    BreakerRow {
        state: b.state.as_str(),
        forced: b.forced.map(|f| match f {
            Forced::Open => "open",
            Forced::Closed => "closed",
        }),
        until: match (b.state, b.open_until_ms) {
            (BreakerState::Open, Some(ms)) => time_ms(Some(ms)),
            _ => "—".into(),
        },
        cool_down: match (open, b.cool_down_ms) {
            (true, Some(ms)) => duration_ms(ms),
            _ => "—".into(),
        },
        changed: ago(b.changed_at_ms, now_ms),
        opened: b.opened_total,
        successes: b.successes_total,
        failures: b.failures_total,
        probes: b.probes_in_flight,
        actions,
        name: b.name,
    }
}

/// `GET /dashboard/breakers`.
pub(super) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    let now = unix_ms();
    let breakers = state
        .client
        .breakers()
        .list()
        .await?
        .into_iter()
        .map(|b| row(b, now))
        .collect();
    Ok(render(&BreakersPage {
        chrome: op.chrome(&state, "Breakers", "breakers"),
        breakers,
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct ForceForm {
    csrf: Option<String>,
    state: String,
}

/// `POST /dashboard/breakers/{name}/force`.
pub(super) async fn force(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<ForceForm>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    op.may_act(&state, form.csrf.as_deref())?;
    let forced = match form.state.as_str() {
        "open" => Some(Forced::Open),
        "closed" => Some(Forced::Closed),
        "none" => None,
        other => {
            return Err(DashError::status(
                axum::http::StatusCode::UNPROCESSABLE_ENTITY,
                format!("unknown breaker state {other:?}: use open, closed or none"),
            ));
        }
    };
    if !state.client.breakers().force(&name, forced).await? {
        return Err(DashError::status(
            axum::http::StatusCode::NOT_FOUND,
            format!("no breaker named {name:?}"),
        ));
    }
    Ok(op.acted("/dashboard/breakers"))
}
