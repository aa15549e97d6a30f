//! The operators' dashboard at `/dashboard`: gathers the data and renders
//! the pages of `sluice-dashboard`.
//!
//! Login is with an API key (its SHA-256 is looked up like the API's
//! bearer keys); the session is a signed cookie (`HttpOnly`,
//! `SameSite=Strict`). A read key sees every page with every action hidden
//! and refused; every state-changing form carries the session's CSRF token.
//! With no API keys configured, the dashboard is open like the API (a
//! banner says so) and still checks CSRF tokens.

use std::net::SocketAddr;
use std::time::Duration;

use askama::Template;
use axum::Router;
use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sluice_dashboard::format::{ago, duration_ms, time_ms};
use sluice_dashboard::pages::{
    AttemptRow, Chrome, DeadLive, DeadPage, DeadRow, ErrorPage, JobPage, JobRow, LoginPage,
    OverviewLive, OverviewPage, QueueLive, QueuePage, QueueRow, ScheduleRow, SchedulesPage,
    SignalRow, SignalsLive, SignalsPage, Tab, WorkerRow, WorkersLive, WorkersPage,
};
use sluice_dashboard::session::{self, Access, Session};
use sluice_engine::{DeadQuery, JobInfo, JobState, Overview, QueueSummary, unix_ms};

use super::AppState;
use super::audit::Actor;
use super::error::ApiError;
use crate::config::Scope;

mod alerts;
mod breakers;

/// Rows per page.
const PAGE_SIZE: usize = 50;

/// The deepest page: listings start at most `MAX_LIST_OFFSET` deep.
const MAX_PAGE: usize = sluice_engine::MAX_LIST_OFFSET / PAGE_SIZE + 1;

/// Login attempts per source address per minute.
const LOGIN_ATTEMPTS_PER_MINUTE: u32 = 10;

/// The dashboard's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/dashboard", get(overview))
        .route("/dashboard/", get(|| async { Redirect::to("/dashboard") }))
        .route("/dashboard/login", get(login_form).post(login))
        .route("/dashboard/logout", post(logout))
        .route("/dashboard/static/app.js", get(script))
        .route("/dashboard/static/app.css", get(stylesheet))
        .route("/dashboard/live/overview", get(overview_live))
        .route("/dashboard/workers", get(workers))
        .route("/dashboard/live/workers", get(workers_live))
        .route("/dashboard/schedules", get(schedules))
        .route("/dashboard/alerts", get(alerts::page))
        .route("/dashboard/alerts/{name}/silence", post(alerts::silence))
        .route("/dashboard/breakers", get(breakers::page))
        .route("/dashboard/breakers/{name}/force", post(breakers::force))
        .route("/dashboard/signals", get(signals))
        .route("/dashboard/live/signals", get(signals_live))
        .route("/dashboard/queues/{queue}", get(queue_page))
        .route("/dashboard/live/queues/{queue}", get(queue_live))
        .route("/dashboard/queues/{queue}/find", get(find_job))
        .route("/dashboard/queues/{queue}/jobs/{id}", get(job_page))
        .route(
            "/dashboard/queues/{queue}/jobs/{id}/cancel",
            post(cancel_job),
        )
        .route("/dashboard/queues/{queue}/pause", post(pause))
        .route("/dashboard/queues/{queue}/resume", post(resume))
        .route("/dashboard/queues/{queue}/dead", get(dead_page))
        .route("/dashboard/live/queues/{queue}/dead", get(dead_live))
        .route(
            "/dashboard/queues/{queue}/dead/retry",
            post(dead_retry_matching),
        )
        .route("/dashboard/queues/{queue}/dead/purge", post(dead_purge))
        .route(
            "/dashboard/queues/{queue}/dead/{id}/retry",
            post(dead_retry),
        )
        .route(
            "/dashboard/queues/{queue}/dead/{id}/delete",
            post(dead_delete),
        )
        .layer(axum::middleware::map_response(security_headers))
}

/// Every dashboard answer: the Content-Security-Policy (no inline script
/// runs, whatever a payload holds), no framing, no sniffing, no caching of
/// pages.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(sluice_dashboard::assets::CONTENT_SECURITY_POLICY),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Why a dashboard request failed, as a page.
#[derive(Debug)]
enum DashError {
    /// No valid session: pages go to the login form.
    LogIn,
    /// Anything else: its status and message.
    Page(StatusCode, String),
}

type DashResult<T> = Result<T, DashError>;

impl DashError {
    fn status(status: StatusCode, message: impl Into<String>) -> Self {
        Self::Page(status, message.into())
    }
}

impl From<ApiError> for DashError {
    fn from(e: ApiError) -> Self {
        Self::Page(e.status, e.message)
    }
}

impl From<sluice_engine::Error> for DashError {
    fn from(e: sluice_engine::Error) -> Self {
        ApiError::from(e).into()
    }
}

impl IntoResponse for DashError {
    fn into_response(self) -> Response {
        match self {
            Self::LogIn => Redirect::to("/dashboard/login").into_response(),
            Self::Page(status, message) => {
                let page = ErrorPage {
                    chrome: Chrome {
                        title: status.to_string(),
                        ..Chrome::default()
                    },
                    status: status.as_u16(),
                    message,
                };
                (status, render(&page)).into_response()
            }
        }
    }
}

fn render(t: &impl Template) -> Html<String> {
    Html(t.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "dashboard template failed");
        "<!doctype html><title>Error</title><p>The page could not be rendered.</p>".into()
    }))
}

/// The signed-in operator of a request.
struct Operator {
    session: Session,
    csrf: String,
}

impl Operator {
    fn read_only(&self) -> bool {
        self.session.access == Access::Read
    }

    fn chrome(&self, state: &AppState, title: impl Into<String>, section: &'static str) -> Chrome {
        Chrome {
            title: title.into(),
            section,
            operator: self.session.name.clone(),
            read_only: self.read_only(),
            csrf: self.csrf.clone(),
            signals: state.pipeline.is_some(),
            open: state.shared.keys.is_empty(),
        }
    }

    /// Refuse unless the session may act and `token` is its CSRF token.
    fn may_act(&self, state: &AppState, token: Option<&str>) -> DashResult<()> {
        if !state
            .shared
            .sessions
            .csrf_ok(&self.session, token.unwrap_or(""))
        {
            return Err(DashError::status(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token: reload the page and try again",
            ));
        }
        if self.read_only() {
            return Err(DashError::status(
                StatusCode::FORBIDDEN,
                format!("key {:?} is read-only", self.session.name),
            ));
        }
        Ok(())
    }

    /// A redirect after an action, marked with who acted for the audit log.
    fn acted(&self, to: &str) -> Response {
        let mut r = Redirect::to(to).into_response();
        r.extensions_mut().insert(Actor(self.session.name.clone()));
        r
    }
}

fn now_secs() -> i64 {
    (unix_ms() / 1000) as i64
}

/// The operator of the request: from the session cookie, re-checked
/// against the configured keys; anyone when no key is configured.
async fn operator(state: &AppState, headers: &HeaderMap) -> DashResult<Operator> {
    let sessions = &state.shared.sessions;
    let session = if state.shared.keys.is_empty() {
        Session {
            name: "anonymous".into(),
            access: Access::Admin,
            key: String::new(),
            expires: i64::MAX,
            nonce: "open".into(),
        }
    } else {
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|h| session::cookie_value(h, session::COOKIE))
            .ok_or(DashError::LogIn)?;
        let session = sessions.open(cookie, now_secs()).ok_or(DashError::LogIn)?;
        // The key must still exist (the same name and hash: a rotated key
        // ends its sessions), with at least the session's scope.
        let scope = state
            .shared
            .keys
            .iter()
            .find(|(hash, k)| {
                k.name == session.name && !session.key.is_empty() && hash.starts_with(&session.key)
            })
            .map(|(_, k)| k.scope)
            .ok_or(DashError::LogIn)?;
        if session.access == Access::Admin && scope != Scope::Admin {
            return Err(DashError::LogIn);
        }
        // Logged out (anywhere in the fleet): the cookie is dead.
        if state.client.is_revoked(&session_token(&session)).await? {
            return Err(DashError::LogIn);
        }
        session
    };
    let csrf = sessions.csrf_token(&session);
    Ok(Operator { session, csrf })
}

/// The name a session is revoked under.
fn session_token(session: &Session) -> String {
    format!("session-{}", session.nonce)
}

/// A live fragment's operator: 401 (the script then goes to the login
/// page) rather than a redirect.
async fn fragment_operator(state: &AppState, headers: &HeaderMap) -> DashResult<Operator> {
    operator(state, headers).await.map_err(|e| match e {
        DashError::LogIn => DashError::status(StatusCode::UNAUTHORIZED, "log in again"),
        other => other,
    })
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        sluice_dashboard::assets::APP_JS,
    )
}

async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", sluice_dashboard::assets::APP_CSS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

// ---- login ----

async fn login_form(State(state): State<AppState>) -> Response {
    if state.shared.keys.is_empty() {
        return Redirect::to("/dashboard").into_response();
    }
    render(&LoginPage { error: None }).into_response()
}

#[derive(Debug, Deserialize)]
struct LoginForm {
    key: String,
}

async fn login(
    State(state): State<AppState>,
    extensions: Extensions,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if state.shared.keys.is_empty() {
        return Redirect::to("/dashboard").into_response();
    }
    let refused = |status: StatusCode, message: &str| {
        (
            status,
            render(&LoginPage {
                error: Some(message.to_owned()),
            }),
        )
            .into_response()
    };
    // Throttled across API processes: failed attempts per client address
    // (behind `api.trusted_proxies`, the address `X-Forwarded-For` names),
    // logins with a valid key per key name and address. So one client's
    // guesses never lock out an operator elsewhere, nor a valid key at all.
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let trusted = state.file.api.trusted_proxies().unwrap_or_default();
    let source = super::client_ip::client_address(peer, &headers, &trusted)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
        .replace(':', "-");
    let hash = super::key_hash(form.key.trim());
    let known = state.shared.keys.get(&hash);
    let window = match known {
        Some(key) => format!(
            "dashboard-login-{}-{source}",
            hex::encode(key.name.as_bytes())
        ),
        None => format!("dashboard-login-{source}"),
    };
    match state
        .client
        .rate_window(&window, LOGIN_ATTEMPTS_PER_MINUTE, Duration::from_secs(60))
        .await
    {
        Ok(None) => {}
        Ok(Some(_)) => {
            return refused(
                StatusCode::TOO_MANY_REQUESTS,
                "too many attempts: wait a minute",
            );
        }
        Err(_) => {
            return refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "Redis is unreachable; try again shortly",
            );
        }
    }
    let Some(key) = known else {
        return refused(StatusCode::UNAUTHORIZED, "unknown API key");
    };
    let access = match key.scope {
        Scope::Admin => Access::Admin,
        Scope::Read => Access::Read,
    };
    let s = state
        .shared
        .sessions
        .start(&key.name, &hash, access, now_secs());
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let mut response = Redirect::to("/dashboard").into_response();
    if let Ok(v) = HeaderValue::from_str(&session::set_cookie(
        &state.shared.sessions.seal(&s),
        secure,
    )) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response.extensions_mut().insert(Actor(key.name.clone()));
    response
}

#[derive(Debug, Deserialize)]
struct ActionForm {
    csrf: Option<String>,
    q: Option<String>,
}

async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<ActionForm>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    if !state
        .shared
        .sessions
        .csrf_ok(&op.session, form.csrf.as_deref().unwrap_or(""))
    {
        return Err(DashError::status(
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token",
        ));
    }
    // Ended server-side too: the cookie, copied or not, opens nothing.
    if !state.shared.keys.is_empty() {
        let left = (op.session.expires - now_secs()).max(1) as u64;
        state
            .client
            .revoke(&session_token(&op.session), Duration::from_secs(left))
            .await?;
    }
    let mut response = op.acted("/dashboard/login");
    if let Ok(v) = HeaderValue::from_str(&session::clear_cookie()) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    Ok(response)
}

// ---- overview ----

#[derive(Debug, Deserialize)]
struct RangeQuery {
    range: Option<String>,
}

fn range_minutes(range: Option<&str>) -> DashResult<(&'static str, u64)> {
    match range.unwrap_or("hour") {
        "hour" => Ok(("hour", 60)),
        "day" => Ok(("day", 1440)),
        other => Err(DashError::status(
            StatusCode::BAD_REQUEST,
            format!("range {other:?}: use hour or day"),
        )),
    }
}

async fn overview(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RangeQuery>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    let (range, minutes) = range_minutes(q.range.as_deref())?;
    let live = overview_data(&state, minutes).await?;
    Ok(render(&OverviewPage {
        chrome: op.chrome(&state, "Overview", "overview"),
        range: range.into(),
        live_html: render(&live).0,
    })
    .into_response())
}

async fn overview_live(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RangeQuery>,
) -> DashResult<Response> {
    fragment_operator(&state, &headers).await?;
    let (_, minutes) = range_minutes(q.range.as_deref())?;
    Ok(render(&overview_data(&state, minutes).await?).into_response())
}

/// One queue's row, from its summary.
fn queue_row(summary: &QueueSummary) -> QueueRow {
    let stats = &summary.stats;
    let last_full = summary.last_full_minute();
    let by_priority = stats
        .waiting_by_priority
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(p, n)| format!("p{p} {n}"))
        .collect::<Vec<_>>()
        .join(" · ");
    QueueRow {
        name: stats.queue.clone(),
        paused: stats.paused,
        waiting: stats.waiting,
        by_priority,
        active: stats.active,
        delayed: stats.delayed,
        dead: stats.dead,
        completed_per_min: last_full.completed,
        failed_per_min: last_full.failed,
        rate_limit: stats
            .rate_limit
            .map(|r| format!("{}/s, burst {}", r.per_second, r.burst)),
        wait: summary
            .next_job_wait_ms
            .map(duration_ms)
            .unwrap_or_else(|| "—".into()),
    }
}

async fn overview_data(state: &AppState, minutes: u64) -> DashResult<OverviewLive> {
    let now_ms = unix_ms();
    let Overview { queues, workers } = state.client.inspector().overview(minutes).await?;
    let mut rows = Vec::with_capacity(queues.len());
    let mut completed = vec![0u64; minutes as usize];
    let mut failed = vec![0u64; minutes as usize];
    let mut labels: Vec<String> = Vec::new();
    let mut waits = Vec::new();
    for summary in &queues {
        let row = queue_row(summary);
        let series = &summary.per_minute;
        let series = &series[series.len().saturating_sub(minutes as usize)..];
        for (i, m) in series.iter().enumerate() {
            completed[i] += m.completed;
            failed[i] += m.failed;
        }
        if labels.is_empty() {
            labels = series
                .iter()
                .map(|m| {
                    time_ms(Some(m.minute_ms))
                        .chars()
                        .skip(11)
                        .take(5)
                        .collect()
                })
                .collect();
        }
        let wait = summary.next_job_wait_ms.unwrap_or(0);
        waits.push((row.name.clone(), wait as f64 / 1000.0));
        rows.push(row);
    }
    let throughput = serde_json::json!({
        "kind": "lines",
        "labels": labels,
        "series": [
            { "name": "completed", "color": "#1f8a4c", "values": completed },
            { "name": "failed", "color": "#c0362c", "values": failed },
        ],
    });
    let wait = serde_json::json!({
        "kind": "bars",
        "labels": waits.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        "series": [
            { "name": "wait (s)", "color": "#2f6fde", "values": waits.iter().map(|(_, w)| *w).collect::<Vec<_>>() },
        ],
    });
    Ok(OverviewLive {
        queues: rows,
        workers: workers.len(),
        in_flight: workers.iter().map(|w| w.in_flight).sum(),
        throughput_json: throughput.to_string(),
        wait_json: wait.to_string(),
        range_label: if minutes > 60 {
            "last day"
        } else {
            "last hour"
        }
        .into(),
        updated: time_ms(Some(now_ms)),
    })
}

// ---- queue ----

#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<String>,
    page: Option<String>,
    id: Option<String>,
    q: Option<String>,
}

fn page_number(page: Option<&str>) -> DashResult<usize> {
    match page.filter(|p| !p.is_empty()) {
        None => Ok(1),
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                DashError::status(
                    StatusCode::BAD_REQUEST,
                    format!("page {p:?}: use a number from 1 to {MAX_PAGE}; search to go deeper"),
                )
            }),
    }
}

fn list_state(state: Option<&str>) -> DashResult<JobState> {
    match state.unwrap_or("waiting") {
        "waiting" => Ok(JobState::Waiting),
        "active" => Ok(JobState::Active),
        "delayed" => Ok(JobState::Delayed),
        "dead" => Ok(JobState::Dead),
        other => Err(DashError::status(
            StatusCode::BAD_REQUEST,
            format!("state {other:?}: use waiting, active, delayed or dead"),
        )),
    }
}

fn job_row(j: &JobInfo, state: JobState, now_ms: u64) -> JobRow {
    let when = match state {
        JobState::Active => j.started_at_ms,
        JobState::Dead => j.finished_at_ms,
        _ => j.due_at_ms.or(Some(j.created_at_ms)),
    };
    JobRow {
        id: j.id.clone(),
        priority: j.priority,
        attempts: format!("{}/{}", j.attempt, j.max_attempts),
        created: time_ms(Some(j.created_at_ms)),
        when: format!("{} ({})", time_ms(when), ago(when, now_ms)),
        worker: j.worker.clone().unwrap_or_default(),
        error: j.last_error.clone().unwrap_or_default(),
    }
}

async fn queue_data(
    state: &AppState,
    op: &Operator,
    name: &str,
    q: &ListQuery,
) -> DashResult<QueueLive> {
    let job_state = list_state(q.state.as_deref())?;
    let page = page_number(q.page.as_deref())?;
    let queue = state.queue_handle(name).await?;
    let now_ms = unix_ms();
    let row = queue_row(&state.client.inspector().summary(&queue, 1).await?);
    let mut jobs = queue
        .jobs_in_state(job_state, (page - 1) * PAGE_SIZE, PAGE_SIZE + 1)
        .await?;
    let has_next = jobs.len() > PAGE_SIZE;
    jobs.truncate(PAGE_SIZE);
    let tabs = vec![
        Tab {
            state: "waiting",
            count: row.waiting,
        },
        Tab {
            state: "active",
            count: row.active,
        },
        Tab {
            state: "delayed",
            count: row.delayed,
        },
        Tab {
            state: "dead",
            count: row.dead,
        },
    ];
    Ok(QueueLive {
        state: job_state.as_str(),
        tabs,
        jobs: jobs.iter().map(|j| job_row(j, job_state, now_ms)).collect(),
        page,
        has_next,
        read_only: op.read_only(),
        csrf: op.csrf.clone(),
        row,
    })
}

async fn queue_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    let live = queue_data(&state, &op, &name, &q).await?;
    Ok(render(&QueuePage {
        chrome: op.chrome(&state, format!("Queue {name}"), "overview"),
        queue: name,
        live_html: render(&live).0,
        search_error: None,
        search: String::new(),
    })
    .into_response())
}

async fn queue_live(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> DashResult<Response> {
    let op = fragment_operator(&state, &headers).await?;
    Ok(render(&queue_data(&state, &op, &name, &q).await?).into_response())
}

async fn find_job(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    let id = q.id.clone().unwrap_or_default().trim().to_owned();
    let queue = state.queue_handle(&name).await?;
    if !id.is_empty() && id.len() <= 200 && queue.job(&id).await?.is_some() {
        return Ok(
            Redirect::to(&format!("/dashboard/queues/{name}/jobs/{}", urlencode(&id)))
                .into_response(),
        );
    }
    let live = queue_data(&state, &op, &name, &ListQuery { id: None, ..q }).await?;
    let page = QueuePage {
        chrome: op.chrome(&state, format!("Queue {name}"), "overview"),
        queue: name.clone(),
        live_html: render(&live).0,
        search_error: Some(if id.is_empty() {
            "type a job id".to_owned()
        } else {
            format!("no job {id:?} in queue {name} (completed jobs are kept only for a while)")
        }),
        search: id,
    };
    Ok((StatusCode::NOT_FOUND, render(&page)).into_response())
}

/// Percent-encode a path segment or query value.
fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

async fn job_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    let queue = state.queue_handle(&name).await?;
    let Some(j) = queue.job(&id).await? else {
        return Err(DashError::status(
            StatusCode::NOT_FOUND,
            format!("no job {id:?} in queue {name}"),
        ));
    };
    let payload = serde_json::to_string_pretty(&crate::views::payload_json(&j)).unwrap_or_default();
    let facts = vec![
        ("priority", j.priority.to_string()),
        ("runs", format!("{} of {}", j.attempt, j.max_attempts)),
        (
            "timeout",
            j.timeout_ms
                .map(duration_ms)
                .unwrap_or_else(|| "none".into()),
        ),
        (
            "idempotency key",
            j.idempotency_key.clone().unwrap_or_else(|| "—".into()),
        ),
        ("enqueued", time_ms(Some(j.created_at_ms))),
        ("due", time_ms(j.due_at_ms)),
        ("last run started", time_ms(j.started_at_ms)),
        ("finished", time_ms(j.finished_at_ms)),
        ("worker", j.worker.clone().unwrap_or_else(|| "—".into())),
    ];
    let attempts = j
        .errors
        .iter()
        .map(|e| AttemptRow {
            attempt: e.attempt,
            at: time_ms(Some(e.at)),
            error: e.error.clone(),
        })
        .collect();
    Ok(render(&JobPage {
        chrome: op.chrome(&state, format!("Job {id}"), "overview"),
        queue: name,
        id: j.id.clone(),
        state: j.state.as_str().into(),
        facts,
        payload,
        result: j.result.clone(),
        last_error: j.last_error.clone(),
        attempts,
    })
    .into_response())
}

/// Cancel one job (see `Queue::cancel`).
async fn cancel_job(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    op.may_act(&state, form.csrf.as_deref())?;
    state.queue_handle(&name).await?.cancel(&id).await?;
    Ok(op.acted(&format!("/dashboard/queues/{name}/jobs/{id}")))
}

async fn pause(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<ActionForm>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    op.may_act(&state, form.csrf.as_deref())?;
    state.queue_handle(&name).await?.pause().await?;
    Ok(op.acted(&format!("/dashboard/queues/{name}")))
}

async fn resume(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<ActionForm>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    op.may_act(&state, form.csrf.as_deref())?;
    state.queue_handle(&name).await?.resume().await?;
    Ok(op.acted(&format!("/dashboard/queues/{name}")))
}

// ---- dead letters ----

fn filter_text(q: Option<&str>) -> DashResult<String> {
    let text = q.unwrap_or("").trim().to_owned();
    if text.chars().count() > 200 {
        return Err(DashError::status(
            StatusCode::BAD_REQUEST,
            "the filter is longer than 200 characters",
        ));
    }
    Ok(text)
}

async fn dead_data(
    state: &AppState,
    op: &Operator,
    name: &str,
    q: &ListQuery,
) -> DashResult<DeadLive> {
    let filter = filter_text(q.q.as_deref())?;
    let page = page_number(q.page.as_deref())?;
    let queue = state.queue_handle(name).await?;
    let found = state
        .client
        .inspector()
        .dead(
            &queue,
            DeadQuery {
                text: Some(&filter),
                offset: (page - 1) * PAGE_SIZE,
                limit: PAGE_SIZE + 1,
                ..DeadQuery::default()
            },
        )
        .await?;
    let (total, matched, mut letters) = (found.total, found.matched, found.letters);
    let has_next = letters.len() > PAGE_SIZE;
    letters.truncate(PAGE_SIZE);
    Ok(DeadLive {
        queue: name.to_owned(),
        filter,
        rows: letters
            .iter()
            .map(|j| DeadRow {
                id: j.id.clone(),
                died: time_ms(j.finished_at_ms),
                reason: j.last_error.clone().unwrap_or_default(),
                attempts: j.attempt,
            })
            .collect(),
        matched,
        total,
        page,
        has_next,
        read_only: op.read_only(),
        csrf: op.csrf.clone(),
    })
}

async fn dead_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    let live = dead_data(&state, &op, &name, &q).await?;
    Ok(render(&DeadPage {
        chrome: op.chrome(&state, format!("Dead letters of {name}"), "overview"),
        queue: name,
        filter: live.filter.clone(),
        live_html: render(&live).0,
    })
    .into_response())
}

async fn dead_live(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> DashResult<Response> {
    let op = fragment_operator(&state, &headers).await?;
    Ok(render(&dead_data(&state, &op, &name, &q).await?).into_response())
}

fn dead_list_url(name: &str, filter: &str) -> String {
    if filter.is_empty() {
        format!("/dashboard/queues/{name}/dead")
    } else {
        format!("/dashboard/queues/{name}/dead?q={}", urlencode(filter))
    }
}

/// What is done to one dead letter.
#[derive(Debug, Clone, Copy)]
enum DeadAction {
    Retry,
    Delete,
}

async fn dead_retry(
    state: State<AppState>,
    headers: HeaderMap,
    path: Path<(String, String)>,
    form: Form<ActionForm>,
) -> DashResult<Response> {
    dead_one(state, headers, path, form, DeadAction::Retry).await
}

async fn dead_delete(
    state: State<AppState>,
    headers: HeaderMap,
    path: Path<(String, String)>,
    form: Form<ActionForm>,
) -> DashResult<Response> {
    dead_one(state, headers, path, form, DeadAction::Delete).await
}

async fn dead_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
    action: DeadAction,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    op.may_act(&state, form.csrf.as_deref())?;
    let queue = state.queue_handle(&name).await?;
    let was_dead = match action {
        DeadAction::Retry => queue.redrive(&id).await?,
        DeadAction::Delete => queue.delete_dead(&id).await?,
    };
    if !was_dead {
        return Err(DashError::status(
            StatusCode::NOT_FOUND,
            format!("{id:?} is not a dead letter of {name} (retried or deleted already?)"),
        ));
    }
    Ok(op.acted(&dead_list_url(&name, "")))
}

async fn dead_retry_matching(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<ActionForm>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    op.may_act(&state, form.csrf.as_deref())?;
    let filter = filter_text(form.q.as_deref())?;
    let queue = state.queue_handle(&name).await?;
    if filter.is_empty() {
        queue.redrive_all().await?;
    } else {
        // Re-driven letters leave the dead set, so each search finds the
        // next ones; stop when none match (or a pass re-drives nothing,
        // should another operator be deleting them meanwhile).
        loop {
            let (letters, _) = queue.find_dead(&filter, 0, 1000).await?;
            let ids: Vec<String> = letters.into_iter().map(|j| j.id).collect();
            if ids.is_empty() || queue.redrive_many(&ids).await? == 0 {
                break;
            }
        }
    }
    Ok(op.acted(&dead_list_url(&name, &filter)))
}

async fn dead_purge(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<ActionForm>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    op.may_act(&state, form.csrf.as_deref())?;
    state.queue_handle(&name).await?.purge_dead().await?;
    Ok(op.acted(&dead_list_url(&name, "")))
}

// ---- workers, schedules, signals ----

async fn workers_data(state: &AppState) -> DashResult<WorkersLive> {
    let now_ms = unix_ms();
    let workers = state
        .client
        .workers()
        .await?
        .into_iter()
        .map(|w| WorkerRow {
            queues: w
                .queues
                .iter()
                .map(|q| format!("{}×{}", q.queue, q.concurrency))
                .collect::<Vec<_>>()
                .join(", "),
            last_beat: ago(Some(w.last_beat_ms), now_ms),
            started: time_ms(Some(w.started_at_ms)),
            id: w.id,
            host: w.host,
            pid: w.pid,
            concurrency: w.concurrency,
            in_flight: w.in_flight,
            version: w.version,
        })
        .collect();
    Ok(WorkersLive { workers })
}

async fn workers(State(state): State<AppState>, headers: HeaderMap) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    let live = workers_data(&state).await?;
    Ok(render(&WorkersPage {
        chrome: op.chrome(&state, "Workers", "workers"),
        live_html: render(&live).0,
    })
    .into_response())
}

async fn workers_live(State(state): State<AppState>, headers: HeaderMap) -> DashResult<Response> {
    fragment_operator(&state, &headers).await?;
    Ok(render(&workers_data(&state).await?).into_response())
}

async fn schedules(State(state): State<AppState>, headers: HeaderMap) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    let rows = super::system::schedule_views(&state)
        .await?
        .into_iter()
        .map(|s| ScheduleRow {
            name: s.name,
            cron: s.cron,
            timezone: s.timezone,
            queue: s.queue,
            next_runs: s.next_runs,
            last_run: s
                .last_run
                .as_ref()
                .map(|l| time_ms(Some(l.tick_ms.max(0) as u64)))
                .unwrap_or_else(|| "never".into()),
            last_job: s.last_run.map(|l| l.job_id),
        })
        .collect();
    Ok(render(&SchedulesPage {
        chrome: op.chrome(&state, "Schedules", "schedules"),
        schedules: rows,
    })
    .into_response())
}

#[derive(Debug, Deserialize)]
struct SignalsQuery {
    user: Option<String>,
    ticker: Option<String>,
}

async fn signals_data(state: &AppState, q: &SignalsQuery) -> DashResult<SignalsLive> {
    let Some(p) = &state.pipeline else {
        return Err(DashError::status(
            StatusCode::NOT_FOUND,
            "the trading pipeline is not configured",
        ));
    };
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
    let filter = sluice_jobs::reads::SignalFilter {
        ticker,
        limit: Some(60),
        ..Default::default()
    };
    match sluice_jobs::reads::signals(&p.pool, user, &filter).await {
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

async fn signals(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SignalsQuery>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    let live = signals_data(&state, &q).await?;
    Ok(render(&SignalsPage {
        chrome: op.chrome(&state, "Signals", "signals"),
        user: q.user.unwrap_or_default(),
        ticker: q.ticker.unwrap_or_default(),
        live_html: render(&live).0,
    })
    .into_response())
}

async fn signals_live(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SignalsQuery>,
) -> DashResult<Response> {
    fragment_operator(&state, &headers).await?;
    Ok(render(&signals_data(&state, &q).await?).into_response())
}
