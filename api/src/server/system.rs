//! Health, readiness, metrics, workers, schedules, the OpenAPI document and
//! the JSON answers for unknown paths and methods.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::metrics;

/// The OpenAPI document.
const OPENAPI: &str = include_str!("../../openapi.json");

/// `GET /health/live`: the process is up.
pub async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /health/ready`: 200 when Redis (and PostgreSQL, with the
/// pipeline) answer, else 503 naming what is down.
pub async fn ready(State(state): State<AppState>) -> Response {
    let redis = state.client.ping().await;
    let mut checks = serde_json::Map::new();
    checks.insert("redis".into(), json!(if redis { "up" } else { "down" }));
    let mut ok = redis;
    if let Some(p) = &state.pipeline {
        let pg = sluice_jobs::db::ping(&p.pool).await;
        checks.insert("postgres".into(), json!(if pg { "up" } else { "down" }));
        ok &= pg;
    }
    if ok {
        Json(json!({ "status": "ready", "checks": checks })).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "checks": checks })),
        )
            .into_response()
    }
}

/// `GET /health`: status, queue lengths, live workers, uptime.
pub async fn health(State(state): State<AppState>) -> Response {
    let uptime = state.shared.started.elapsed().as_secs();
    let version = env!("CARGO_PKG_VERSION");
    match health_details(&state).await {
        Ok((queues, workers)) => Json(json!({
            "status": "ok",
            "version": version,
            "uptime_secs": uptime,
            "checks": { "redis": "up" },
            "queues": queues,
            "active_workers": workers,
        }))
        .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unavailable",
                "version": version,
                "uptime_secs": uptime,
                "checks": { "redis": "down" },
            })),
        )
            .into_response(),
    }
}

/// Queue lengths and live workers; `Err` when Redis cannot tell.
async fn health_details(state: &AppState) -> ApiResult<(serde_json::Value, usize)> {
    if !state.client.ping().await {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "redis_unavailable",
            "Redis is unreachable",
        ));
    }
    let mut queues = serde_json::Map::new();
    for s in state.client.all_stats().await? {
        queues.insert(
            s.queue.clone(),
            json!({
                "waiting": s.waiting,
                "active": s.active,
                "delayed": s.delayed,
                "dead": s.dead,
                "paused": s.paused,
            }),
        );
    }
    let workers = state.client.workers().await?.len();
    Ok((serde_json::Value::Object(queues), workers))
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> ApiResult<Response> {
    let stats = state.client.all_stats().await?;
    let workers = state.client.workers().await?;
    let in_flight = workers.iter().map(|w| w.in_flight).sum();
    let breakers = state.client.breakers().await?;
    let mut body = metrics::render_fleet(&stats, &breakers, workers.len(), in_flight);
    body.push_str(&metrics::render_local());
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}

/// `GET /api/workers`.
pub async fn workers(State(state): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    let workers = state.client.workers().await?;
    Ok(Json(json!({ "workers": workers })))
}

/// `GET /api/schedules`: configured schedules, next runs, last run.
pub async fn schedules(State(state): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(json!({ "schedules": schedule_views(&state).await? })))
}

/// Every configured schedule with its next runs and last run.
pub(super) async fn schedule_views(
    state: &AppState,
) -> ApiResult<Vec<crate::schedules::ScheduleView>> {
    let mut last = crate::schedules::last_runs(&state.client)
        .await
        .map_err(|e| match e.downcast::<sluice_engine::Error>() {
            Ok(engine) => ApiError::from(engine),
            Err(other) => {
                tracing::error!(error = %format!("{other:#}"), "cannot read schedules");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            }
        })?;
    let now = chrono::Utc::now();
    Ok(state
        .shared
        .schedules
        .iter()
        .map(|s| s.view(now, last.remove(&s.section.name)))
        .collect())
}

/// `GET /api/openapi.json`.
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Unknown path.
pub async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such path")
}

/// Known path, wrong method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this path does not take that method",
    )
}
