//! API keys: sent as `Authorization: Bearer <key>`, configured as their
//! SHA-256 (a leaked config file does not leak keys), with a scope: `read`
//! may only look (GET/HEAD), `admin` may do everything. Each key may carry a
//! request rate limit, counted in Redis so every API process shares it.
//! With no keys configured the API is open (a warning says so at start).

use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;
use crate::requests::Actor;
use crate::settings::Scope;

/// Paths anyone may read when `api.open_health` is on (off by default:
/// the full report and the metrics cost a dozen Redis calls a queue and
/// name the delivery hosts).
pub(super) fn is_health_path(path: &str) -> bool {
    path == "/health" || path.starts_with("/health/") || path == "/metrics"
}

/// The probes' paths, always open: they say nothing but alive or ready,
/// cost one Redis call, and name the pod's address as `Host`.
pub(super) fn is_probe_path(path: &str) -> bool {
    path == "/health/live" || path == "/health/ready"
}

/// The server's paths always open: the API's own description and the
/// dashboard, which has its own login. An application adds its own
/// ([`App::is_public_path`](crate::App::is_public_path)).
pub(super) fn is_public_path(path: &str) -> bool {
    path == "/api/openapi.json"
        || is_probe_path(path)
        // The dashboard checks its own session cookie.
        || path == "/"
        || path == "/dashboard"
        || path.starts_with("/dashboard/")
}

/// Hex SHA-256 of a key, as the config stores it.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The middleware.
pub async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if state.shared.keys.is_empty() && !is_probe_path(path) {
        // Open: only for whoever reaches it by a loopback or configured
        // name, never through a name rebound to this address.
        let host = request
            .headers()
            .get(header::HOST)
            .map(|h| h.to_str().unwrap_or("\u{fffd}"));
        if let Some(host) = host
            && !state.api.answers_to(host)
        {
            return ApiError::new(
                StatusCode::MISDIRECTED_REQUEST,
                "misdirected_request",
                "this open API answers only to loopback names and api.hosts",
            )
            .into_response();
        }
    }
    if state.shared.keys.is_empty() {
        // Open: whoever calls is trusted as much as a key would be.
        let mut response = next.run(request).await;
        if response.extensions().get::<Actor>().is_none() {
            response.extensions_mut().insert(Actor("anonymous".into()));
        }
        return response;
    }
    if state.is_public_path(path) || (state.api.open_health && is_health_path(path)) {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(presented) = presented.filter(|k| !k.is_empty()) else {
        return unauthorized("send an API key as `Authorization: Bearer <key>`");
    };
    // Looking up by hash: the comparison never sees the key itself, so its
    // timing says nothing about how much of a guess was right.
    let hash = key_hash(presented);
    let Some(key) = state.shared.keys.get(&hash) else {
        return unauthorized("unknown API key");
    };
    let needs = if matches!(*request.method(), Method::GET | Method::HEAD) {
        Scope::Read
    } else {
        Scope::Admin
    };
    if key.scope < needs {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("API key {:?} is read-only", key.name),
        )
        .into_response();
    }
    if let Some(limit) = key.requests_per_second {
        let name = format!("key-{}", &hash[..16]);
        match state
            .client
            .limits()
            .count_request(&name, limit, Duration::from_secs(1))
            .await
        {
            Ok(None) => {}
            Ok(Some(wait)) => {
                return ApiError::too_many(
                    format!(
                        "API key {:?} is over its {limit} requests per second",
                        key.name
                    ),
                    wait,
                )
                .into_response();
            }
            Err(e) => return ApiError::from(e).into_response(),
        }
    }
    let name = key.name.clone();
    let mut response = next.run(request).await;
    response.extensions_mut().insert(Actor(name));
    response
}

fn unauthorized(message: &str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_hashed_with_sha256_hex() {
        assert_eq!(
            key_hash("123"),
            "a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3"
        );
    }
}
