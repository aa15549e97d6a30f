//! The HTTP API (axum): routes, shared state, auth, metrics, and serving
//! with a graceful stop. The OpenAPI document is generated from the
//! handlers and their types (`openapi.rs`), served at
//! `GET /api/openapi.json`.

mod alerts;
mod audit;
mod auth;
mod breakers;
pub mod client_ip;
mod dashboard;
mod error;
mod integral;
mod metrics;
mod openapi;
mod origin;
mod pipeline;
mod queues;
mod system;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use sluice_engine::{Client, Queue, Shutdown};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use auth::key_hash;
pub use error::{ApiError, ApiResult};
pub use metrics::install_recorder;

use crate::config::alerts::AlertRule;
use crate::config::{ApiConfig, ApiKeySection, FileConfig};
use crate::pipeline::Pipeline;
use crate::queues::QueueDirectory;
use crate::schedules::Schedule;

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The Redis client.
    pub client: Client,
    /// The `[api]` settings.
    pub api: Arc<ApiConfig>,
    /// The proxies whose `X-Forwarded-For` is believed (`api.trusted_proxies`).
    pub trusted_proxies: Arc<Vec<ipnet::IpNet>>,
    /// The alert rules (`[[alerts]]`).
    pub alert_rules: Arc<Vec<AlertRule>>,
    /// The trading-alert pipeline, when configured.
    pub pipeline: Option<Pipeline>,
    /// The queues, by name, with their configured settings.
    pub queues: QueueDirectory,
    shared: Arc<Shared>,
}

struct Shared {
    /// API keys by the hex SHA-256 of the key.
    keys: HashMap<String, ApiKeySection>,
    schedules: Vec<Schedule>,
    started: Instant,
    /// Signs dashboard sessions.
    sessions: sluice_dashboard::session::SessionKeys,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("client", &self.client)
            .field("keys", &self.shared.keys.len())
            .finish()
    }
}

impl AppState {
    /// State for `file`'s API on `client`, opening the pipeline when the
    /// file configures one.
    pub fn new(client: Client, file: FileConfig) -> anyhow::Result<Self> {
        let pipeline = file
            .pipeline
            .as_ref()
            .map(|p| Pipeline::open(p, &client))
            .transpose()?;
        Self::with_pipeline(client, file, pipeline)
    }

    /// State for `file`'s API on `client` with a pipeline already open.
    pub fn with_pipeline(
        client: Client,
        file: FileConfig,
        pipeline: Option<Pipeline>,
    ) -> anyhow::Result<Self> {
        let keys = file
            .api
            .keys
            .iter()
            .map(|k| (k.sha256.to_ascii_lowercase(), k.clone()))
            .collect();
        let schedules = crate::schedules::load(&file.all_schedules())?;
        let sessions =
            sluice_dashboard::session::SessionKeys::new(file.api.session_secret.as_deref());
        Ok(Self {
            queues: QueueDirectory::new(client.clone(), &file),
            trusted_proxies: Arc::new(file.api.trusted_proxies()?),
            alert_rules: Arc::new(file.alerts.clone()),
            client,
            api: Arc::new(file.api.clone()),
            pipeline,
            shared: Arc::new(Shared {
                keys,
                schedules,
                started: Instant::now(),
                sessions,
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
    // The trading-alert application's routes exist only when it is
    // configured: without it they are unknown paths like any other.
    let api = if state.pipeline.is_some() {
        api.merge(pipeline::routes())
    } else {
        api
    };
    let (api, doc) = api.split_for_parts();
    let doc = openapi::finish(doc, &state.api);
    let doc: Arc<str> = serde_json::to_string(&doc)
        .unwrap_or_else(|_| String::from("{}"))
        .into();
    let api = api
        .route(
            "/api/openapi.json",
            get(openapi::openapi_document).layer(axum::Extension(doc)),
        )
        .merge(dashboard::routes());
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
            audit::record,
        ))
        .layer(axum::middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(state.api.max_body_bytes))
        .with_state(state)
}

/// Serve `state`'s API on `addr` until `stop` is triggered; running requests
/// finish first.
pub async fn serve(state: AppState, addr: SocketAddr, stop: Shutdown) -> anyhow::Result<()> {
    if state.shared.keys.is_empty() {
        tracing::warn!("no API keys configured: the API is open to anyone who can reach {addr}");
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(%addr, "API listening");
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move { stop.triggered().await })
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
