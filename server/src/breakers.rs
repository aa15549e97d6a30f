//! `/api/breakers`: the fleet's circuit breakers, and an operator's force.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use sluice_engine::{BreakerStatus, Forced};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ApiJson, ApiPath, ApiResult, ErrorBody};

/// The fleet's breakers.
#[derive(Debug, Serialize, ToSchema)]
pub struct BreakerList {
    /// Every breaker, sorted by name.
    pub breakers: Vec<BreakerStatus>,
}

/// `GET /api/breakers`: every breaker, sorted by name.
#[utoipa::path(get, path = "/api/breakers", tag = "breakers",
    responses((status = 200, description = "Every breaker", body = BreakerList)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<BreakerList>> {
    Ok(Json(BreakerList {
        breakers: state.client.breakers().list().await?,
    }))
}

/// `{name}` of a breaker.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct BreakerPath {
    /// The breaker's name (its target), as the engine accepts it.
    #[param(pattern = r"^[A-Za-z0-9._:-]{1,200}$")]
    pub name: String,
}

/// `GET /api/breakers/{name}`.
#[utoipa::path(get, path = "/api/breakers/{name}", tag = "breakers", params(BreakerPath),
    responses(
        (status = 200, description = "The breaker", body = BreakerStatus),
        (status = 404, description = "No such breaker", body = ErrorBody),
    ))]
pub async fn show(
    State(state): State<AppState>,
    ApiPath(BreakerPath { name }): ApiPath<BreakerPath>,
) -> ApiResult<Json<BreakerStatus>> {
    Ok(Json(status(&state, &name).await?))
}

/// What `POST /api/breakers/{name}/force` asks for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForceRequest {
    /// `open`, `closed`, or `none` to let the calls decide again.
    pub state: ForceState,
}

/// A forced state, or none.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
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
#[utoipa::path(post, path = "/api/breakers/{name}/force", tag = "breakers", params(BreakerPath),
    request_body = ForceRequest,
    responses(
        (status = 200, description = "The breaker after", body = BreakerStatus),
        (status = 404, description = "No such breaker", body = ErrorBody),
    ))]
pub async fn force(
    State(state): State<AppState>,
    ApiPath(BreakerPath { name }): ApiPath<BreakerPath>,
    ApiJson(body): ApiJson<ForceRequest>,
) -> ApiResult<Json<BreakerStatus>> {
    let forced = match body.state {
        ForceState::Open => Some(Forced::Open),
        ForceState::Closed => Some(Forced::Closed),
        ForceState::None => None,
    };
    if !state.client.breakers().force(&name, forced).await? {
        return Err(unknown(&name));
    }
    Ok(Json(status(&state, &name).await?))
}

async fn status(state: &AppState, name: &str) -> ApiResult<BreakerStatus> {
    state
        .client
        .breakers()
        .status(name)
        .await?
        .ok_or_else(|| unknown(name))
}

fn unknown(name: &str) -> ApiError {
    ApiError::not_found("breaker_not_found", format!("no breaker named {name:?}"))
}
