//! The pipeline's routes: the TradingView webhook, the platform's read API
//! (a user's signals and stats) and the stored screenshots.

use sluice_jobs::storage::ScreenshotStore;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use sluice_engine::JobOptions;
use sluice_jobs::alert::MAX_ALERT_BYTES;
use sluice_jobs::ingest::IngestJob;
use sluice_jobs::reads::{self, SignalFilter};
use sluice_jobs::screenshot::valid_chart_id;
use sluice_jobs::webhook::Admission;

use super::AppState;
use super::audit::Actor;
use super::error::{ApiError, ApiResult};
use crate::pipeline::Pipeline;

/// The trading-alert application's routes; the router merges them only
/// when `[pipeline]` is configured.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/webhook/u/{token}", post(webhook))
        .route("/api/users/{id}/signals", get(user_signals))
        .route("/api/users/{id}/stats", get(user_stats))
        .route("/api/signals/{id}/result", post(signal_result))
        .route("/screenshots/{file}", get(screenshot))
}

/// The pipeline of a state whose router has its routes (always there: the
/// routes are merged only with a pipeline).
fn pipeline(state: &AppState) -> ApiResult<&Pipeline> {
    state.pipeline.as_ref().ok_or_else(|| {
        ApiError::not_found("not_found", "no such path (the pipeline is not configured)")
    })
}

/// The same answer for every token that does not open a webhook: it never
/// says whether a token existed.
fn no_webhook() -> ApiError {
    ApiError::not_found("not_found", "no webhook at this address")
}

/// `?chart=ID`.
#[derive(Debug, Deserialize)]
pub struct WebhookQuery {
    chart: Option<String>,
}

/// `POST /webhook/u/{token}?chart=ID`: check the token, the per-user rate
/// limit and the quota, queue the raw body for ingestion, answer 202.
pub async fn webhook(
    State(state): State<AppState>,
    Path(token): Path<String>,
    query: Result<Query<WebhookQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> ApiResult<Response> {
    let p = pipeline(&state)?;
    if token.len() > 128
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(no_webhook());
    }
    let Query(query) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let chart = query.chart.filter(|c| !c.is_empty());
    if let Some(c) = &chart
        && !valid_chart_id(c)
    {
        return Err(ApiError::bad_request(
            "invalid_chart",
            "chart must be 1 to 64 letters, digits, - or _",
        ));
    }
    let source_ip = super::client_ip::of_request(
        &request,
        &state.file.api.trusted_proxies().unwrap_or_default(),
    );
    // Refuse an oversized body from its declared length before reading it,
    // and stop reading one that grows past the limit.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_ALERT_BYTES) {
        return Err(too_large());
    }
    let body: Bytes = axum::body::to_bytes(request.into_body(), MAX_ALERT_BYTES)
        .await
        .map_err(|_| too_large())?;

    let Some(who) = p.gate.identify(&token).await? else {
        return Err(no_webhook());
    };
    let actor = Actor(format!("user:{}", who.user_id));
    let refuse = |e: ApiError| {
        let mut r = e.into_response();
        r.extensions_mut().insert(actor.clone());
        Ok(r)
    };
    let per_minute = who.plan.requests_per_minute();
    if let Some(wait) = state
        .client
        .rate_window(
            &format!("webhook-user-{}", who.user_id),
            per_minute,
            Duration::from_secs(60),
        )
        .await?
    {
        return refuse(ApiError::too_many(
            format!("this webhook is over its {per_minute} alerts per minute"),
            wait,
        ));
    }
    let (user_id, plan, decimal_comma) = match p.gate.count(&who).await? {
        Admission::Accepted {
            user_id,
            plan,
            decimal_comma,
        } => (user_id, plan, decimal_comma),
        Admission::Unknown => return Err(no_webhook()),
        Admission::Disabled => {
            return refuse(ApiError::new(
                StatusCode::FORBIDDEN,
                "webhook_disabled",
                "this webhook is turned off",
            ));
        }
        Admission::QuotaExhausted { resets_at } => {
            let wait = (resets_at - chrono::Utc::now())
                .to_std()
                .unwrap_or(Duration::from_secs(1));
            return refuse(ApiError::quota_exhausted(
                format!(
                    "the signal quota of this plan is used up until {}",
                    resets_at.to_rfc3339()
                ),
                wait,
            ));
        }
    };
    let job = IngestJob {
        user_id,
        chart_id: chart,
        body: String::from_utf8_lossy(&body).into_owned(),
        received_at_ms: chrono::Utc::now().timestamp_millis(),
        source_ip,
        decimal_comma,
    };
    let id = state
        .queue_for_write(sluice_jobs::queues::INGEST)
        .await?
        .enqueue(&job, JobOptions::new())
        .await?
        .id;
    let mut response = (
        StatusCode::ACCEPTED,
        Json(json!({ "status": "accepted", "id": id, "plan": plan })),
    )
        .into_response();
    response.extensions_mut().insert(actor);
    Ok(response)
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("an alert may be at most {MAX_ALERT_BYTES} bytes"),
    )
}

fn user_id(raw: &str) -> ApiResult<i64> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request("invalid_user_id", "a user id is a positive number"))
}

/// `GET /api/users/{id}/signals?ticker=&signal_type=&result=&from=&to=&limit=&before_id=`.
pub async fn user_signals(
    State(state): State<AppState>,
    Path(id): Path<String>,
    query: Result<Query<SignalFilter>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<reads::SignalPage>> {
    let p = pipeline(&state)?;
    let id = user_id(&id)?;
    let Query(filter) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    if let Some(l) = filter.limit
        && !(1..=500).contains(&l)
    {
        return Err(ApiError::invalid("invalid_limit", "limit must be 1 to 500"));
    }
    if let Some(r) = &filter.result
        && !["pending", "win", "loss", "skip"].contains(&r.to_ascii_lowercase().as_str())
    {
        return Err(ApiError::invalid(
            "invalid_result",
            "result must be pending, win, loss or skip",
        ));
    }
    if sluice_jobs::users::get(&p.pool, id).await?.is_none() {
        return Err(ApiError::not_found(
            "user_not_found",
            format!("no user {id}"),
        ));
    }
    Ok(Json(reads::signals(&p.pool, Some(id), &filter).await?))
}

/// What `POST /api/signals/{id}/result` asks for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultRequest {
    /// win, loss, skip or pending.
    pub result: sluice_jobs::results::SignalResult,
}

/// `POST /api/signals/{id}/result` (admin): record a signal's outcome; the
/// user's aggregates follow, counting it once however often it is sent.
pub async fn signal_result(
    State(state): State<AppState>,
    Path(id): Path<String>,
    super::error::ApiJson(body): super::error::ApiJson<ResultRequest>,
) -> ApiResult<Json<sluice_jobs::results::ResultSet>> {
    let p = pipeline(&state)?;
    let id: i64 =
        id.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::bad_request("invalid_id", "a signal id is a positive integer")
        })?;
    sluice_jobs::results::set(&p.pool, id, body.result)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("signal_not_found", format!("no signal {id}")))
}

/// `GET /api/users/{id}/stats`.
pub async fn user_stats(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(range): Query<StatsRange>,
) -> ApiResult<Json<serde_json::Value>> {
    let day = |field: &str, v: &Option<String>| -> ApiResult<Option<chrono::NaiveDate>> {
        v.as_deref()
            .filter(|d| !d.is_empty())
            .map(|d| {
                chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").map_err(|_| {
                    ApiError::invalid(
                        "invalid_range",
                        format!("{field} {d:?} is not a day like 2026-12-01"),
                    )
                })
            })
            .transpose()
    };
    let (from, to) = (day("from", &range.from)?, day("to", &range.to)?);
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(ApiError::invalid("invalid_range", "from is after to"));
    }
    let p = pipeline(&state)?;
    let id = user_id(&id)?;
    let Some(user) = sluice_jobs::users::get(&p.pool, id).await? else {
        return Err(ApiError::not_found(
            "user_not_found",
            format!("no user {id}"),
        ));
    };
    let stats = reads::stats(&p.pool, id, from, to).await?;
    Ok(Json(json!({
        "user_id": id,
        "plan": user.plan,
        "quota": { "limit": user.signal_quota, "used": user.signals_used, "resets_at": user.quota_resets_at },
        "stats": stats,
    })))
}

/// `?from=YYYY-MM-DD&to=YYYY-MM-DD` of the user stats (both optional,
/// both included).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsRange {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /screenshots/{file}`: a stored screenshot. Names are content
/// hashes, so a file never changes and cannot be guessed.
pub async fn screenshot(
    State(state): State<AppState>,
    Path(file): Path<String>,
) -> ApiResult<Response> {
    let p = pipeline(&state)?;
    // With an S3 store, screenshots are linked at the bucket, not here.
    let ScreenshotStore::Local(store) = &p.store else {
        return Err(ApiError::not_found("not_found", "no such screenshot"));
    };
    let Some(path) = store.path_of(&format!("/screenshots/{file}")) else {
        return Err(ApiError::not_found("not_found", "no such screenshot"));
    };
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|_| ApiError::not_found("not_found", "no such screenshot"))?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("image/png"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("public, max-age=31536000, immutable"),
    );
    Ok((headers, Body::from(bytes)).into_response())
}
