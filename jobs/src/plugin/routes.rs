//! The application's routes: the TradingView webhook, the platform's read API
//! (a user's signals and stats) and the stored screenshots.

use crate::storage::ScreenshotStore;
use std::time::Duration;

use crate::ingest::IngestJob;
use crate::message::MAX_MESSAGE_BYTES;
use crate::reads::{self, SignalFilter};
use crate::screenshot::valid_chart_id;
use crate::webhook::Admission;
use axum::body::{Body, Bytes};
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use sluice_engine::JobOptions;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use sluice_server::error::{ApiError, ApiPath, ApiQuery, ApiResult, ErrorBody};
use sluice_server::{Actor, AppState};

use super::runtime::TradingRuntime;

/// The trading application's routes, with their OpenAPI operations,
/// on `trading`; the server merges them only when `[trading]` is
/// configured.
pub fn routes(trading: TradingRuntime) -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(webhook))
        .routes(routes!(user_signals))
        .routes(routes!(user_stats))
        .routes(routes!(signal_result))
        .routes(routes!(screenshot))
        .layer(Extension(trading))
}

/// `{token}` of a webhook.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TokenPath {
    /// The user's webhook token.
    #[param(pattern = r"^[A-Za-z0-9_-]{1,128}$")]
    pub token: String,
}

/// `{id}` of a user or a signal: a positive integer.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdPath {
    /// The id.
    #[param(pattern = r"^[1-9][0-9]{0,17}$")]
    pub id: String,
}

/// `{file}` of a screenshot.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FilePath {
    /// The file's name, as a signal's `screenshot_url` gives it.
    #[param(min_length = 1)]
    pub file: String,
}

/// The same answer for every token that does not open a webhook: it never
/// says whether a token existed.
fn no_webhook() -> ApiError {
    ApiError::not_found("not_found", "no webhook at this address")
}

/// `?chart=ID`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WebhookQuery {
    /// The chart to capture: 1 to 64 letters, digits, `-` or `_` (empty:
    /// none).
    #[param(pattern = r"^[A-Za-z0-9_-]{0,64}$")]
    chart: Option<String>,
}

/// A webhook's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// Always `accepted`.
    pub status: String,
    /// The ingestion job's id.
    pub id: String,
    /// The user's plan.
    pub plan: crate::plan::Plan,
}

/// `POST /webhook/u/{token}?chart=ID`: check the token, the per-user rate
/// limit and the quota, queue the raw body for ingestion, answer 202.
#[utoipa::path(post, path = "/webhook/u/{token}", tag = "trading", params(TokenPath, WebhookQuery),
    request_body(content = String, description = "The message as TradingView sends it: JSON or text", content_type = "text/plain"),
    security(()),
    responses(
        (status = 202, description = "Queued for ingestion", body = Accepted),
        (status = 400, description = "A bad query", body = ErrorBody),
        (status = 403, description = "The webhook is turned off", body = ErrorBody),
        (status = 404, description = "No webhook at this address", body = ErrorBody),
        (status = 413, description = "The message is too large", body = ErrorBody),
        (status = 429, description = "Over the plan's rate or quota", body = ErrorBody),
    ))]
pub async fn webhook(
    State(state): State<AppState>,
    Extension(trading): Extension<TradingRuntime>,
    ApiPath(TokenPath { token }): ApiPath<TokenPath>,
    query: Result<Query<WebhookQuery>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> ApiResult<Response> {
    let p = &trading;
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
    let source_ip = sluice_server::client_ip::of_request(&request, &state.trusted_proxies);
    // The token first, before a byte of the body is read: a stranger's
    // made-up token costs no more than its headers.
    let who = identify(&state, p, &token, source_ip.as_deref()).await?;
    // Refuse an oversized body from its declared length before reading it,
    // and stop reading one that grows past the limit.
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_MESSAGE_BYTES) {
        return Err(too_large());
    }
    let body: Bytes = axum::body::to_bytes(request.into_body(), MAX_MESSAGE_BYTES)
        .await
        .map_err(|_| too_large())?;
    let actor = Actor(format!("user:{}", who.user_id));
    let refuse = |e: ApiError| {
        let mut r = e.into_response();
        r.extensions_mut().insert(actor.clone());
        Ok(r)
    };
    let per_minute = who.plan.requests_per_minute();
    if let Some(wait) = state
        .client
        .limits()
        .count_request(
            &format!("webhook-user-{}", who.user_id),
            per_minute,
            Duration::from_secs(60),
        )
        .await?
    {
        return refuse(ApiError::too_many(
            format!("this webhook is over its {per_minute} messages per minute"),
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
        .queue_for_write(crate::queues::INGEST)
        .await?
        .enqueue_value(&job, JobOptions::new())
        .await?
        .id;
    let accepted = Accepted {
        status: "accepted".to_owned(),
        id,
        plan,
    };
    let mut response = (StatusCode::ACCEPTED, Json(accepted)).into_response();
    response.extensions_mut().insert(actor);
    Ok(response)
}

/// Unknown webhook tokens one address may send per minute (across the API
/// processes) before its lookups are refused for the rest of the minute.
/// Well above what a user's stale token costs through TradingView's few
/// addresses (once a minute, [`UNKNOWN_TTL`](crate::webhook::UNKNOWN_TTL)).
pub const UNKNOWN_TOKENS_PER_MINUTE: u32 = 60;

/// Whose `token` is, from the gate's caches, else from the database unless
/// `caller` has sent too many unknown tokens lately.
async fn identify(
    state: &AppState,
    p: &TradingRuntime,
    token: &str,
    caller: Option<&str>,
) -> ApiResult<crate::webhook::Identity> {
    use crate::webhook::Known;
    match p.gate.known(token) {
        Known::User(who) => return Ok(who),
        Known::Unknown => return Err(no_webhook()),
        Known::NotCached => {}
    }
    let caller = caller.unwrap_or("unknown").replace(':', "-");
    if p.gate.refuses(&caller) {
        return Err(too_many_unknown(Duration::from_secs(60)));
    }
    if let Some(who) = p.gate.identify(token).await? {
        return Ok(who);
    }
    let wait = state
        .client
        .limits()
        .count_request(
            &format!("webhook-unknown-{caller}"),
            UNKNOWN_TOKENS_PER_MINUTE,
            Duration::from_secs(60),
        )
        .await?;
    match wait {
        Some(wait) => {
            p.gate.refuse_caller(&caller, wait);
            Err(too_many_unknown(wait))
        }
        None => Err(no_webhook()),
    }
}

fn too_many_unknown(wait: Duration) -> ApiError {
    ApiError::too_many(
        "too many webhook addresses that do not exist from this address: wait a minute",
        wait,
    )
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("a message may be at most {MAX_MESSAGE_BYTES} bytes"),
    )
}

fn user_id(raw: &str) -> ApiResult<i64> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request("invalid_user_id", "a user id is a positive number"))
}

/// `GET /api/users/{id}/signals?ticker=&signal_type=&result=&from=&to=&limit=&before_id=`.
#[utoipa::path(get, path = "/api/users/{id}/signals", tag = "trading", params(IdPath, SignalFilter),
    responses(
        (status = 200, description = "A page of the user's signals, newest first", body = reads::SignalPage),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
pub async fn user_signals(
    State(_state): State<AppState>,
    Extension(trading): Extension<TradingRuntime>,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
    ApiQuery(filter): ApiQuery<SignalFilter>,
) -> ApiResult<Json<reads::SignalPage>> {
    let p = &trading;
    let id = user_id(&id)?;
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
    if crate::users::get(&p.pool, id).await?.is_none() {
        return Err(ApiError::not_found(
            "user_not_found",
            format!("no user {id}"),
        ));
    }
    Ok(Json(reads::signals(&p.pool, Some(id), &filter).await?))
}

/// What `POST /api/signals/{id}/result` asks for.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResultRequest {
    /// win, loss, skip or pending.
    pub result: crate::results::SignalResult,
}

/// `POST /api/signals/{id}/result` (admin): record a signal's outcome; the
/// user's aggregates follow, counting it once however often it is sent.
#[utoipa::path(post, path = "/api/signals/{id}/result", tag = "trading", params(IdPath),
    request_body = ResultRequest,
    responses(
        (status = 200, description = "What changed", body = crate::results::ResultSet),
        (status = 404, description = "No such signal", body = ErrorBody),
    ))]
pub async fn signal_result(
    State(_state): State<AppState>,
    Extension(trading): Extension<TradingRuntime>,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
    sluice_server::error::ApiJson(body): sluice_server::error::ApiJson<ResultRequest>,
) -> ApiResult<Json<crate::results::ResultSet>> {
    let p = &trading;
    let id: i64 =
        id.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::bad_request("invalid_id", "a signal id is a positive integer")
        })?;
    crate::results::set(&p.pool, id, body.result)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("signal_not_found", format!("no signal {id}")))
}

/// A user's plan, quota and figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserStatsAnswer {
    /// The user.
    pub user_id: i64,
    /// Their plan: free, basic, pro or premium.
    pub plan: String,
    /// Their signal quota.
    pub quota: Quota,
    /// Their figures over the range.
    pub stats: reads::UserStats,
}

/// A plan's signal quota.
#[derive(Debug, Serialize, ToSchema)]
pub struct Quota {
    /// Signals allowed per period.
    pub limit: i32,
    /// Used in this period.
    pub used: i32,
    /// When the period ends.
    pub resets_at: chrono::DateTime<chrono::Utc>,
}

/// `GET /api/users/{id}/stats`.
#[utoipa::path(get, path = "/api/users/{id}/stats", tag = "trading", params(IdPath, StatsRange),
    responses(
        (status = 200, description = "The user's figures", body = UserStatsAnswer),
        (status = 404, description = "No such user", body = ErrorBody),
    ))]
pub async fn user_stats(
    State(_state): State<AppState>,
    Extension(trading): Extension<TradingRuntime>,
    ApiPath(IdPath { id }): ApiPath<IdPath>,
    ApiQuery(range): ApiQuery<StatsRange>,
) -> ApiResult<Json<UserStatsAnswer>> {
    let day = |field: &str, v: &Option<String>| -> ApiResult<Option<chrono::NaiveDate>> {
        v.as_deref()
            .filter(|d| !d.is_empty())
            .map(|d| {
                // Exactly `YYYY-MM-DD`, as the schema's `date` says: chrono
                // alone would take `2026-1-5` too.
                let shaped = d.len() == 10 && d.as_bytes()[4] == b'-' && d.as_bytes()[7] == b'-';
                let parsed = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
                parsed.filter(|_| shaped).ok_or_else(|| {
                    ApiError::invalid(
                        "invalid_range",
                        format!("{field} {d:?} is not a day like 2026-12-01"),
                    )
                })
            })
            .transpose()
    };
    let (from, to) = (day("from", &range.from)?, day("to", &range.to)?);
    // A range whose from is after its to is empty: it counts nothing.
    let p = &trading;
    let id = user_id(&id)?;
    let Some(user) = crate::users::get(&p.pool, id).await? else {
        return Err(ApiError::not_found(
            "user_not_found",
            format!("no user {id}"),
        ));
    };
    let stats = reads::stats(&p.pool, id, from, to).await?;
    Ok(Json(UserStatsAnswer {
        user_id: id,
        plan: user.plan,
        quota: Quota {
            limit: user.signal_quota,
            used: user.signals_used,
            resets_at: user.quota_resets_at,
        },
        stats,
    }))
}

/// `?from=YYYY-MM-DD&to=YYYY-MM-DD` of the user stats (both optional,
/// both included).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsRange {
    /// The first day counted (UTC); empty: no bound.
    #[param(schema_with = day_or_empty)]
    from: Option<String>,
    /// The last day counted (UTC); empty: no bound.
    #[param(schema_with = day_or_empty)]
    to: Option<String>,
}

/// A day (`2026-12-01`), or the empty string for none.
fn day_or_empty() -> utoipa::openapi::Schema {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, SchemaFormat, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(0)),
        )
        .build()
        .into()
}

/// `GET /screenshots/{file}`: a stored screenshot. Names are content
/// hashes, so a file never changes and cannot be guessed.
#[utoipa::path(get, path = "/screenshots/{file}", tag = "trading", params(FilePath),
    security(()),
    responses(
        (status = 200, description = "The PNG", content_type = "image/png", body = Vec<u8>),
        (status = 404, description = "No such screenshot", body = ErrorBody),
    ))]
pub async fn screenshot(
    Extension(trading): Extension<TradingRuntime>,
    ApiPath(FilePath { file }): ApiPath<FilePath>,
) -> ApiResult<Response> {
    let p = &trading;
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
