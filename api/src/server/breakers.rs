//! `/api/breakers`: the fleet's circuit breakers, and an operator's force.

use axum::Json;
use axum::extract::{Path, State};
use serde::Deserialize;
use serde_json::json;
use sluice_engine::{BreakerStatus, Forced};

use super::AppState;
use super::error::{ApiError, ApiJson, ApiResult};

/// `GET /api/breakers`: every breaker, sorted by name.
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(json!({ "breakers": state.client.breakers().await? })))
}

/// `GET /api/breakers/{name}`.
pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<BreakerStatus>> {
    Ok(Json(status(&state, &name).await?))
}

/// What `POST /api/breakers/{name}/force` asks for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForceRequest {
    /// `open`, `closed`, or `none` to let the calls decide again.
    pub state: ForceState,
}

/// A forced state, or none.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ForceState {
    /// Refuse every call.
    Open,
    /// Let every call through.
    Closed,
    /// Release the breaker.
    None,
}

/// `POST /api/breakers/{name}/force` (admin): hold a breaker open or
/// closed, or release it. Answers its status after.
pub async fn force(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<ForceRequest>,
) -> ApiResult<Json<BreakerStatus>> {
    let forced = match body.state {
        ForceState::Open => Some(Forced::Open),
        ForceState::Closed => Some(Forced::Closed),
        ForceState::None => None,
    };
    if !state.client.force_breaker(&name, forced).await? {
        return Err(unknown(&name));
    }
    Ok(Json(status(&state, &name).await?))
}

async fn status(state: &AppState, name: &str) -> ApiResult<BreakerStatus> {
    state
        .client
        .breaker_status(name)
        .await?
        .ok_or_else(|| unknown(name))
}

fn unknown(name: &str) -> ApiError {
    ApiError::not_found("breaker_not_found", format!("no breaker named {name:?}"))
}
