//! Health, readiness, metrics, workers, schedules, the OpenAPI document and
//! the JSON answers for unknown paths and methods.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sluice_engine::{CronSchedule, LastRun};
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};
use crate::metrics;
use crate::{AppState, HealthState};

/// `{"status": "ok"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Live {
    /// Always `ok`.
    pub status: String,
}

/// `GET /health/live`: the process is up.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "The process is up", body = Live)))]
pub async fn live() -> Json<Live> {
    Json(Live {
        status: "ok".into(),
    })
}

/// Readiness and what each dependency says.
#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`.
    pub status: String,
    /// `up` or `down` per dependency: `redis`, and each plugged-in
    /// application's health check (one that answers but cannot serve yet
    /// says why, e.g. `not_migrated`).
    pub checks: std::collections::BTreeMap<String, String>,
}

/// `GET /health/ready`: 200 when Redis and every plugged-in application's
/// dependencies answer, else 503 naming what is down.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Every dependency answers", body = Readiness),
        (status = 503, description = "A dependency is down", body = Readiness),
    ))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let up = |ok: bool| String::from(if ok { "up" } else { "down" });
    let redis = state.client.ping().await;
    let mut checks = std::collections::BTreeMap::new();
    checks.insert("redis".to_owned(), up(redis));
    let mut ok = redis;
    for check in state.health_checks.iter() {
        let health = check.probe().await;
        ok &= health == HealthState::Up;
        checks.insert(check.name().to_owned(), health.as_str().to_owned());
    }
    let (status, word) = if ok {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    let body = Readiness {
        status: word.to_owned(),
        checks,
    };
    (status, Json(body)).into_response()
}

/// What `GET /health` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`, or `unavailable` when Redis is down.
    pub status: String,
    /// Sluice's version.
    pub version: String,
    /// Seconds since this process started.
    pub uptime_secs: u64,
    /// `redis`: `up` or `down`.
    pub checks: std::collections::BTreeMap<String, String>,
    /// Per queue: waiting, active, delayed, dead, paused (absent while
    /// Redis is down).
    #[schema(value_type = Option<Object>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queues: Option<serde_json::Value>,
    /// Live worker processes (absent while Redis is down).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_workers: Option<usize>,
}

/// `GET /health`: status, queue lengths, live workers, uptime.
#[utoipa::path(get, path = "/health", tag = "health",
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "Redis is down", body = Health),
    ))]
pub async fn health(State(state): State<AppState>) -> Response {
    let details = health_details(&state).await.ok();
    let healthy = details.is_some();
    let (queues, active_workers) = details.unzip();
    let body = Health {
        status: if healthy { "ok" } else { "unavailable" }.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_secs: state.shared.started.elapsed().as_secs(),
        checks: [(
            "redis".to_owned(),
            if healthy { "up" } else { "down" }.to_owned(),
        )]
        .into(),
        queues,
        active_workers,
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
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
    for s in state.client.inspector().all_stats().await? {
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
    let workers = state.client.registry().workers().await?.len();
    Ok((serde_json::Value::Object(queues), workers))
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8")))]
pub async fn metrics(State(state): State<AppState>) -> ApiResult<Response> {
    let stats = state.client.inspector().all_stats().await?;
    let workers = state.client.registry().workers().await?;
    let in_flight = workers.iter().map(|w| w.in_flight).sum();
    let breakers = state.client.breakers().list().await?;
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

/// The fleet's live worker processes.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkerList {
    /// The workers.
    pub workers: Vec<sluice_engine::WorkerInfo>,
}

/// `GET /api/workers`.
#[utoipa::path(get, path = "/api/workers", tag = "fleet",
    responses((status = 200, description = "Live worker processes", body = WorkerList)))]
pub async fn workers(State(state): State<AppState>) -> ApiResult<Json<WorkerList>> {
    let workers = state.client.registry().workers().await?;
    Ok(Json(WorkerList { workers }))
}

/// What the API shows of a schedule.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScheduleView {
    /// Name.
    pub name: String,
    /// Cron expression.
    pub cron: String,
    /// Time zone.
    pub timezone: String,
    /// Target queue.
    pub queue: String,
    /// Payload of each job.
    #[schema(value_type = Value)]
    pub payload: serde_json::Value,
    /// The next run times (RFC 3339, in the schedule's time zone).
    pub next_runs: Vec<String>,
    /// The last tick that enqueued a job, if any.
    pub last_run: Option<LastRun>,
}

impl ScheduleView {
    /// What the API shows of `schedule` at `now`.
    pub fn of(schedule: &CronSchedule, now: DateTime<Utc>, last_run: Option<LastRun>) -> Self {
        Self {
            name: schedule.name().to_owned(),
            cron: schedule.expression().to_owned(),
            timezone: schedule.timezone().to_owned(),
            queue: schedule.queue().to_owned(),
            payload: rmp_serde::from_slice(schedule.payload()).unwrap_or(serde_json::Value::Null),
            next_runs: schedule
                .next_ticks(now, 5)
                .iter()
                .map(|t| t.to_rfc3339())
                .collect(),
            last_run,
        }
    }
}

/// The configured schedules.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleList {
    /// The schedules, in config order.
    pub schedules: Vec<ScheduleView>,
}

/// `GET /api/schedules`: configured schedules, next runs, last run.
#[utoipa::path(get, path = "/api/schedules", tag = "fleet",
    responses((status = 200, description = "Configured schedules", body = ScheduleList)))]
pub async fn schedules(State(state): State<AppState>) -> ApiResult<Json<ScheduleList>> {
    Ok(Json(ScheduleList {
        schedules: schedule_views(&state).await?,
    }))
}

/// Every configured schedule with its next runs and last run.
pub(crate) async fn schedule_views(state: &AppState) -> ApiResult<Vec<ScheduleView>> {
    let mut last = state.client.registry().schedule_last_runs().await?;
    let now = Utc::now();
    Ok(state
        .shared
        .schedules
        .iter()
        .map(|s| ScheduleView::of(s, now, last.remove(s.name())))
        .collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_schedule_is_shown_with_its_next_runs_in_its_time_zone() {
        let schedule = CronSchedule::new(
            "s",
            "0 30 9 * * *",
            Some("America/New_York"),
            "q",
            &json!({"k": 1}),
            None,
        )
        .expect("valid");
        let start = DateTime::parse_from_rfc3339("2026-01-10T00:00:00Z")
            .expect("date")
            .with_timezone(&Utc);
        let view = ScheduleView::of(&schedule, start, None);
        assert_eq!(view.timezone, "America/New_York");
        assert_eq!(view.payload, json!({"k": 1}));
        assert_eq!(view.next_runs.len(), 5);
        assert_eq!(view.next_runs[0], "2026-01-10T09:30:00-05:00");
    }
}
