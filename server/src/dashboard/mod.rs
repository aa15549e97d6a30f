//! The operators' dashboard at `/dashboard`: gathers the data and renders
//! the pages of `sluice-dashboard`.
//!
//! Login is with an API key (its SHA-256 is looked up like the API's
//! bearer keys); the session is a signed cookie (`HttpOnly`,
//! `SameSite=Strict`). A read key sees every page with every action hidden
//! and refused; every state-changing form carries the session's CSRF token.
//! With no API keys configured, the dashboard is open like the API (a
//! banner says so) and still checks CSRF tokens.
//!
//! # Layout
//!
//! - this file: the routes, the security headers, errors, the operator of
//!   a request (session, scope, CSRF), and what the pages share (forms,
//!   page numbers);
//! - one file per page and its actions: `login`, `overview`, `queue` (a
//!   queue's jobs, a job), `dead`, `workers` (workers and schedules),
//!   `alerts`, `breakers`.
//!
//! A plugged-in [`App`](crate::App) adds its pages ([`App::pages`](crate::App::pages))
//! and renders them with what this file makes public: [`operator`],
//! [`fragment_operator`], [`Operator::chrome`], [`render`] and [`DashError`].
//!
//! Reads come from the engine's inspector; how things look (templates,
//! formats, chart colours) is the `sluice-dashboard` crate's.

use askama::Template;
use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sluice_dashboard::pages::{Chrome, ErrorPage};
use sluice_dashboard::session::{self, Access, Session};
use sluice_engine::unix_ms;

use super::AppState;
use super::error::ApiError;
use crate::requests::Actor;
use crate::settings::Scope;

mod alerts;
mod breakers;
mod dead;
mod login;
mod overview;
mod queue;
mod workers;

/// Rows per page.
const PAGE_SIZE: usize = 50;

/// The deepest page: listings start at most `MAX_LIST_OFFSET` deep.
const MAX_PAGE: usize = sluice_engine::MAX_LIST_OFFSET / PAGE_SIZE + 1;

/// Login attempts per source address per minute.
const LOGIN_ATTEMPTS_PER_MINUTE: u32 = 10;

/// The dashboard's routes, with the pages of `apps`.
pub fn routes(apps: &[std::sync::Arc<dyn crate::App>]) -> Router<AppState> {
    let pages = apps
        .iter()
        .fold(Router::new(), |pages, app| pages.merge(app.pages()));
    Router::new()
        .route("/", get(|| async { Redirect::to("/dashboard") }))
        .route("/dashboard", get(overview::overview))
        .route("/dashboard/", get(|| async { Redirect::to("/dashboard") }))
        .route(
            "/dashboard/login",
            get(login::login_form).post(login::login),
        )
        .route("/dashboard/logout", post(login::logout))
        .route("/dashboard/static/app.js", get(script))
        .route("/dashboard/static/app.css", get(stylesheet))
        .route("/dashboard/live/overview", get(overview::overview_live))
        .route("/dashboard/workers", get(workers::workers))
        .route("/dashboard/live/workers", get(workers::workers_live))
        .route("/dashboard/schedules", get(workers::schedules))
        .route("/dashboard/alerts", get(alerts::page))
        .route("/dashboard/alerts/{name}/silence", post(alerts::silence))
        .route("/dashboard/breakers", get(breakers::page))
        .route("/dashboard/breakers/{name}/force", post(breakers::force))
        .route("/dashboard/queues/{queue}", get(queue::queue_page))
        .route("/dashboard/live/queues/{queue}", get(queue::queue_live))
        .route("/dashboard/queues/{queue}/find", get(queue::find_job))
        .route("/dashboard/queues/{queue}/jobs/{id}", get(queue::job_page))
        .route(
            "/dashboard/queues/{queue}/jobs/{id}/cancel",
            post(queue::cancel_job),
        )
        .route("/dashboard/queues/{queue}/pause", post(queue::pause))
        .route("/dashboard/queues/{queue}/resume", post(queue::resume))
        .route("/dashboard/queues/{queue}/dead", get(dead::dead_page))
        .route("/dashboard/live/queues/{queue}/dead", get(dead::dead_live))
        .route(
            "/dashboard/queues/{queue}/dead/{action}",
            post(dead::dead_all),
        )
        .route(
            "/dashboard/queues/{queue}/dead/{id}/{action}",
            post(dead::dead_one),
        )
        .merge(pages)
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
pub enum DashError {
    /// No valid session: pages go to the login form.
    LogIn,
    /// Anything else: its status and message.
    Page(StatusCode, String),
}

/// What a dashboard handler answers.
pub type DashResult<T> = Result<T, DashError>;

impl DashError {
    /// A page saying `message`, with `status`.
    pub fn status(status: StatusCode, message: impl Into<String>) -> Self {
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

/// `t` rendered, or a page saying it could not be.
pub fn render(t: &impl Template) -> Html<String> {
    Html(t.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "dashboard template failed");
        "<!doctype html><title>Error</title><p>The page could not be rendered.</p>".into()
    }))
}

/// The signed-in operator of a request.
#[derive(Debug)]
pub struct Operator {
    session: Session,
    csrf: String,
}

impl Operator {
    /// Whether the operator's key may only look.
    pub fn read_only(&self) -> bool {
        self.session.access == Access::Read
    }

    /// What is around a page: its title, the menu with `section` current,
    /// the operator.
    pub fn chrome(
        &self,
        state: &AppState,
        title: impl Into<String>,
        section: &'static str,
    ) -> Chrome {
        Chrome {
            title: title.into(),
            section,
            operator: self.session.name.clone(),
            read_only: self.read_only(),
            csrf: self.csrf.clone(),
            menu: state.apps.iter().flat_map(|a| a.menu()).collect(),
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
pub async fn operator(state: &AppState, headers: &HeaderMap) -> DashResult<Operator> {
    let sessions = &state.shared.sessions;
    let session = if state.shared.keys.is_empty() {
        Session {
            name: "anonymous".into(),
            access: Access::Admin,
            key: String::new(),
            expires: i64::MAX,
            // The process's own: a token never follows from the
            // configured secret alone.
            nonce: state.shared.open_nonce.clone(),
        }
    } else {
        let cookie = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|h| session::cookie_value(h, session::COOKIE))
            .ok_or(DashError::LogIn)?;
        let session = sessions.open(cookie, now_secs()).ok_or(DashError::LogIn)?;
        // The key must still exist (the same name and whole hash: a rotated
        // key ends its sessions), with at least the session's scope.
        let scope = state
            .shared
            .keys
            .iter()
            .find(|(hash, k)| k.name == session.name && sessions.belongs_to(&session, hash))
            .map(|(_, k)| k.scope)
            .ok_or(DashError::LogIn)?;
        if session.access == Access::Admin && scope != Scope::Admin {
            return Err(DashError::LogIn);
        }
        // Logged out (anywhere in the fleet): the cookie is dead.
        if state
            .client
            .limits()
            .is_revoked(&session_token(&session))
            .await?
        {
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
pub async fn fragment_operator(state: &AppState, headers: &HeaderMap) -> DashResult<Operator> {
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

// ---- shared by the pages ----

#[derive(Debug, Deserialize)]
struct ActionForm {
    csrf: Option<String>,
    q: Option<String>,
}

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

/// Percent-encode a path segment or query value.
fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}
