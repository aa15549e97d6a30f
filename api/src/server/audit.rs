//! The audit middleware: every API call and webhook becomes an audit event
//! (who, what, when, outcome, source address, latency) on the `audit`
//! queue, when the pipeline is configured. Health checks, metrics scrapes
//! and screenshot downloads are not audited (they are noise, not actions).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use sluice_jobs::audit::AuditEvent;

use super::AppState;

/// Who made a request, set on the response by whoever authenticated it (the
/// API key's name, or `user:<id>` for a webhook).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

fn is_noise(path: &str) -> bool {
    path == "/health"
        || path.starts_with("/health/")
        || path == "/metrics"
        || path.starts_with("/screenshots/")
        // The dashboard's polling and assets: page views and actions are
        // recorded, the refreshes every few seconds are not.
        || path.starts_with("/dashboard/live/")
        || path.starts_with("/dashboard/static/")
}

/// The middleware.
pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(sink) = state.pipeline.as_ref().and_then(|p| p.audit.clone()) else {
        return next.run(request).await;
    };
    let path = request.uri().path().to_owned();
    if is_noise(&path) {
        return next.run(request).await;
    }
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned());
    let source_ip = super::client_ip::of_request(&request, &state.trusted_proxies);
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status();
    let actor = response
        .extensions()
        .get::<Actor>()
        .map(|a| a.0.clone())
        .unwrap_or_else(|| "anonymous".to_owned());
    let outcome = if status.is_server_error() {
        "error"
    } else if status.is_client_error() {
        "refused"
    } else {
        "ok"
    };
    // A webhook's path holds its token: never write it down.
    let target = if path.starts_with("/webhook/") {
        "/webhook/u/…".to_owned()
    } else {
        path.chars().take(300).collect()
    };
    let mut event = AuditEvent::now(
        actor,
        format!("{method} {}", route.as_deref().unwrap_or("(no route)")),
        outcome,
    );
    event.target = Some(target);
    event.status = Some(status.as_u16());
    event.source_ip = source_ip;
    event.latency_ms = Some(started.elapsed().as_secs_f32() * 1000.0);
    sink.record(event);
    response
}
