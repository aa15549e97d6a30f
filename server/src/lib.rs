//! # sluice-server: the HTTP server over Sluice's queues
//!
//! The JSON API, the operators' dashboard, auth, metrics and the OpenAPI
//! document, over any queues. It takes typed settings
//! ([`ServerSettings`]) and a [`QueueDirectory`], never a config file, and
//! knows no application: one plugs in as an [`App`] (its routes, pages,
//! request log) and its [`HealthCheck`]s (readiness).
//!
//! # Layout
//!
//! - this file: the shared state, the router (every route, with auth,
//!   metrics and the body limit) and serving with a graceful stop;
//! - `settings`: the `[api]` section (listen address, limits, keys);
//! - `app`: the plug-in interface;
//! - `queues`, `alerts`, `breakers`, `system`: the JSON routes;
//! - `dashboard`: the operators' pages (their templates are
//!   `sluice-dashboard`'s);
//! - `auth`, `origin`, `requests`, `metrics`, `client_ip`: the middleware
//!   and what it needs;
//! - `error`, `integral`: answers and extractors every route shares;
//! - `openapi`: the generated document; `views`: how a job is shown.

pub mod alerts;
mod app;
mod auth;
mod breakers;
pub mod client_ip;
pub mod dashboard;
pub mod error;
mod integral;
pub mod listen;
mod metrics;
mod openapi;
mod origin;
mod queues;
mod requests;
pub mod settings;
mod system;
pub mod views;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use sluice_engine::{Client, CronSchedule, Queue, QueueDirectory, Shutdown};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use alerts::AlertRuleInfo;
pub use app::{App, HealthCheck, HealthState, MenuEntry, RequestRecord};
pub use auth::key_hash;
pub use error::{ApiError, ApiResult};
pub use metrics::install_recorder;
pub use requests::Actor;
pub use settings::{ApiConfig, ApiKeySection, BadProxy, Scope, Unsafe};

/// What a server is made of, besides its queues.
#[derive(Default)]
pub struct ServerSettings {
    /// The `[api]` settings.
    pub api: ApiConfig,
    /// The alert rules, as the API and the dashboard show them.
    pub alert_rules: Vec<AlertRuleInfo>,
    /// The cron schedules, as the API and the dashboard show them.
    pub schedules: Vec<CronSchedule>,
    /// The applications plugged in.
    pub apps: Vec<Arc<dyn App>>,
    /// The applications' dependencies, asked by `GET /health/ready`.
    pub health_checks: Vec<Arc<dyn HealthCheck>>,
}

impl std::fmt::Debug for ServerSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSettings")
            .field("api", &self.api)
            .field("alert_rules", &self.alert_rules)
            .field("schedules", &self.schedules.len())
            .field("apps", &self.apps.len())
            .field("health_checks", &self.health_checks)
            .finish()
    }
}

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The Redis client.
    pub client: Client,
    /// The `[api]` settings.
    pub api: Arc<ApiConfig>,
    /// The proxies whose `X-Forwarded-For` is believed (`api.trusted_proxies`).
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    /// The alert rules.
    pub alert_rules: Arc<Vec<AlertRuleInfo>>,
    /// The queues, by name, with their configured settings.
    pub queues: QueueDirectory,
    /// The applications plugged in.
    pub apps: Arc<Vec<Arc<dyn App>>>,
    /// The applications' dependencies, asked by `GET /health/ready`.
    pub health_checks: Arc<Vec<Arc<dyn HealthCheck>>>,
    shared: Arc<Shared>,
}

struct Shared {
    /// API keys by the hex SHA-256 of the key.
    keys: HashMap<String, ApiKeySection>,
    schedules: Vec<CronSchedule>,
    started: Instant,
    /// Signs dashboard sessions.
    sessions: sluice_dashboard::session::SessionKeys,
    /// Random, per process: the open dashboard's CSRF tokens derive from
    /// it (with no keys there is no login to give each visitor a nonce).
    open_nonce: String,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("client", &self.client)
            .field("keys", &self.shared.keys.len())
            .field("apps", &self.apps.len())
            .finish()
    }
}

impl AppState {
    /// State for a server of `queues` (and their client) with `settings`.
    pub fn new(queues: QueueDirectory, settings: ServerSettings) -> Result<Self, BadProxy> {
        let ServerSettings {
            api,
            alert_rules,
            schedules,
            apps,
            health_checks,
        } = settings;
        let keys = api
            .keys
            .iter()
            .map(|k| (k.sha256.to_ascii_lowercase(), k.clone()))
            .collect();
        let sessions = sluice_dashboard::session::SessionKeys::new(api.session_secret.as_deref());
        Ok(Self {
            client: queues.client().clone(),
            trusted_proxies: Arc::new(api.trusted_proxies()?),
            alert_rules: Arc::new(alert_rules),
            api: Arc::new(api),
            queues,
            apps: Arc::new(apps),
            health_checks: Arc::new(health_checks),
            shared: Arc::new(Shared {
                keys,
                schedules,
                started: Instant::now(),
                sessions,
                open_nonce: hex::encode(rand::random::<[u8; 16]>()),
            }),
        })
    }

    /// The queue, created when new (for enqueues), with its configured
    /// settings and, when the config splits it, its configured partitions.
    pub async fn queue_for_write(&self, name: &str) -> ApiResult<Queue> {
        Ok(self.queues.for_write(name).await?)
    }

    /// The handle on a queue by name, with all its partitions (404 when
    /// there is none). Reads and operators' actions go through it; the
    /// engine makes each of them correct over the partitions.
    pub async fn queue_handle(&self, name: &str) -> ApiResult<Queue> {
        self.queues.existing(name).await?.ok_or_else(|| {
            ApiError::not_found("queue_not_found", format!("no queue named {name:?}"))
        })
    }

    /// Whether `path` needs no API key: the server's open paths, and what
    /// an application says carries its own credential.
    pub fn is_public_path(&self, path: &str) -> bool {
        auth::is_public_path(path) || self.apps.iter().any(|a| a.is_public_path(path))
    }
}

/// Every route, with auth, metrics and the body limit.
pub fn router(state: AppState) -> Router {
    // Requests are counted from the first one, not from the first scrape.
    install_recorder();
    let api = OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(queues::list))
        .routes(routes!(queues::show))
        .routes(routes!(queues::enqueue))
        .routes(routes!(queues::enqueue_batch))
        .routes(routes!(queues::job))
        .routes(routes!(queues::job_cancel))
        .routes(routes!(queues::pause))
        .routes(routes!(queues::resume))
        .routes(routes!(queues::dead_list, queues::dead_purge))
        .routes(routes!(queues::dead_retry_many))
        .routes(routes!(queues::dead_show, queues::dead_delete))
        .routes(routes!(queues::dead_retry))
        .routes(routes!(alerts::list))
        .routes(routes!(alerts::silence))
        .routes(routes!(breakers::list))
        .routes(routes!(breakers::show))
        .routes(routes!(breakers::force))
        .routes(routes!(system::workers))
        .routes(routes!(system::schedules))
        .routes(routes!(system::health))
        .routes(routes!(system::live))
        .routes(routes!(system::ready))
        .routes(routes!(system::metrics));
    // An application's routes exist only when it is plugged in: without it
    // they are unknown paths like any other.
    let api = state
        .apps
        .iter()
        .fold(api, |api, app| api.merge(app.routes()));
    let (api, doc) = api.split_for_parts();
    let doc = openapi::finish(doc, &state.api, |path| state.is_public_path(path));
    let doc: Arc<str> = serde_json::to_string(&doc)
        .unwrap_or_else(|_| String::from("{}"))
        .into();
    let api = api
        .route(
            "/api/openapi.json",
            get(openapi::openapi_document).layer(axum::Extension(doc)),
        )
        .merge(dashboard::routes(&state.apps));
    // The origin guard guards routed requests only: a method no route
    // takes is 405, and (being inside auth) a request without a key hears
    // 401, what is missing, rather than 415.
    api.route_layer(axum::middleware::from_fn(origin::guard))
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            requests::record,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            strict_transport_security,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state
                .client
                .alerts()
                .latency_series(sluice_engine::alerting::API_LATENCY),
            metrics::track,
        ))
        .layer(axum::middleware::from_fn(metrics::refuse_unknown_methods))
        .layer(axum::middleware::from_fn_with_state(
            std::time::Duration::from_secs(state.api.body_timeout_secs.max(1)),
            listen::body_deadline,
        ))
        .layer(DefaultBodyLimit::max(state.api.max_body_bytes))
        .with_state(state)
}

/// HSTS on every answer to a client that came over HTTPS (through a
/// trusted proxy): its browser then never uses plain HTTP here again.
async fn strict_transport_security(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let https = client_ip::over_https(peer, request.headers(), &state.trusted_proxies);
    let mut response = next.run(request).await;
    if https {
        response.headers_mut().insert(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// Serve `state`'s API on `addr` until `stop` is triggered; running requests
/// finish first.
pub async fn serve(state: AppState, addr: SocketAddr, stop: Shutdown) -> anyhow::Result<()> {
    state.api.check_safe(addr)?;
    if state.shared.keys.is_empty() {
        tracing::warn!("no API keys configured: the API is open to anyone who can reach {addr}");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(%addr, "API listening");
    let limits = listen::ConnectionLimits::of(&state.api);
    listen::serve_on(listener, router(state), limits, stop)
        .await
        .context("API server failed")
}

/// Serve this process's own metrics (`GET /metrics`) on `addr`: what a
/// worker-only process (`sluice work --metrics-listen`) measures itself,
/// job run and wait times and Redis backoffs. Needs no Redis, so it answers
/// through an outage.
pub async fn serve_local_metrics(
    addr: SocketAddr,
    client: sluice_engine::Client,
    stop: Shutdown,
) -> anyhow::Result<()> {
    // A worker's probes: alive while it serves this; ready while Redis
    // answers (the worker backs off and waits otherwise).
    let app = Router::new()
        .route(
            "/metrics",
            get(|| async {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics::render_local(),
                )
            }),
        )
        .route("/health/live", get(system::live))
        .route(
            "/health/ready",
            get(move || {
                let client = client.clone();
                async move {
                    if client.ping().await {
                        (axum::http::StatusCode::OK, axum::Json(serde_json::json!({ "status": "ready" })))
                    } else {
                        (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            axum::Json(serde_json::json!({ "status": "unavailable", "checks": { "redis": "down" } })),
                        )
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(%addr, "worker metrics listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.triggered().await })
        .await
        .context("metrics server failed")
}
