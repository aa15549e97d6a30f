//! `/api/alerts`: the configured alert rules with their fleet-wide state,
//! and silences.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ApiJson, ApiResult};
use crate::alerts::{AlertView, views};

/// Longest silence: 30 days.
const MAX_SILENCE_SECS: u64 = 30 * 24 * 3600;

/// `GET /api/alerts`: every rule, in config order.
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(
        json!({ "alerts": views(&state.client, &state.file).await? }),
    ))
}

/// What `POST /api/alerts/{name}/silence` asks for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceRequest {
    /// Silence for this many seconds (1 to 30 days); 0 lifts the silence.
    pub for_secs: u64,
}

/// `POST /api/alerts/{name}/silence` (admin): the rule keeps its state but
/// sends nothing until the silence ends. Answers the rule after.
pub async fn silence(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<SilenceRequest>,
) -> ApiResult<Json<AlertView>> {
    if !state.file.alerts.iter().any(|r| r.name == name) {
        return Err(ApiError::not_found(
            "alert_not_found",
            format!("no alert rule named {name:?}"),
        ));
    }
    if body.for_secs > MAX_SILENCE_SECS {
        return Err(ApiError::invalid(
            "invalid_silence",
            format!("for_secs must be 0 to {MAX_SILENCE_SECS}"),
        ));
    }
    let until = match body.for_secs {
        0 => None,
        secs => Some(state.client.server_time_ms().await? + secs * 1000),
    };
    state.client.silence_alert(&name, until).await?;
    let view = views(&state.client, &state.file)
        .await?
        .into_iter()
        .find(|v| v.name == name)
        .ok_or_else(|| ApiError::not_found("alert_not_found", "no such alert rule"))?;
    Ok(Json(view))
}
