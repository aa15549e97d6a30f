//! The request log: after every answered request but the server's own
//! noise, each plugged-in [`App`](crate::App) that asks is handed a
//! [`RequestRecord`] (who, what, outcome, source address, latency). The
//! trading application writes them to its audit log.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::AppState;
use crate::app::RequestRecord;

/// Who made a request, set on the response by whoever authenticated it (the
/// API key's name, the dashboard's operator, or an application's own, like
/// `user:<id>` for a webhook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

/// The server's own noise: health checks, metrics scrapes and the
/// dashboard's polling and assets (page views and actions are recorded,
/// the refreshes every few seconds are not).
fn is_noise(path: &str) -> bool {
    path == "/health"
        || path.starts_with("/health/")
        || path == "/metrics"
        || path.starts_with("/dashboard/live/")
        || path.starts_with("/dashboard/static/")
}

/// The middleware.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if !state.apps.iter().any(|a| a.records_requests()) || is_noise(&path) {
        return next.run(request).await;
    }
    let method = crate::metrics::method_label(request.method()).to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let source_ip = crate::client_ip::of_request(&request, &state.trusted_proxies);
    let started = Instant::now();
    let response = next.run(request).await;
    let actor = response
        .extensions()
        .get::<Actor>()
        .map(|a| a.0.clone())
        .unwrap_or_else(|| "anonymous".to_owned());
    let record = RequestRecord {
        actor,
        method,
        route,
        path,
        status: response.status().as_u16(),
        source_ip,
        latency_ms: started.elapsed().as_secs_f32() * 1000.0,
    };
    for app in state.apps.iter().filter(|a| a.records_requests()) {
        app.record(record.clone());
    }
    response
}
