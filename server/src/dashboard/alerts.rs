//! The Alerts page: every rule with its fleet-wide state, and the silence
//! buttons (admins, CSRF-protected).

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sluice_dashboard::format::{ago, time_ms};
use sluice_dashboard::pages::{AlertRow, AlertsPage};
use sluice_engine::unix_ms;

use super::{DashError, DashResult, operator, render};
use crate::AppState;

/// `GET /dashboard/alerts`.
pub(super) async fn page(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    let now = unix_ms();
    let alerts = crate::alerts::views(&state.client, &state.alert_rules)
        .await?
        .into_iter()
        .map(|a| {
            let silenced_until = a.record.silenced_until_ms.filter(|until| *until > now);
            AlertRow {
                threshold: a.rule.threshold.map_or_else(
                    || "—".into(),
                    |t| format!("{t} {}", a.rule.unit).trim().to_owned(),
                ),
                state: a.record.state.clone(),
                value: a.record.value.clone().unwrap_or_else(|| "—".into()),
                last_fired: ago(a.record.last_fired_ms, now),
                fired: a.record.fired_total,
                channels: a.rule.channels.join(", "),
                silenced: silenced_until.map_or_else(|| "—".into(), |u| time_ms(Some(u))),
                is_silenced: silenced_until.is_some(),
                kind: a.rule.kind.to_owned(),
                queue: a.rule.queue,
                name: a.rule.name,
            }
        })
        .collect();
    Ok(render(&AlertsPage {
        chrome: op.chrome(&state, "Alerts", "alerts"),
        alerts,
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
pub(super) struct SilenceForm {
    csrf: Option<String>,
    for_secs: u64,
}

/// `POST /dashboard/alerts/{name}/silence`.
pub(super) async fn silence(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<SilenceForm>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    op.may_act(&state, form.csrf.as_deref())?;
    if !state.alert_rules.iter().any(|r| r.name == name) {
        return Err(DashError::status(
            StatusCode::NOT_FOUND,
            format!("no alert rule named {name:?}"),
        ));
    }
    let until = match form.for_secs.min(30 * 24 * 3600) {
        0 => None,
        secs => Some(state.client.alerts().server_time_ms().await? + secs * 1000),
    };
    state.client.alerts().silence(&name, until).await?;
    Ok(op.acted("/dashboard/alerts"))
}
