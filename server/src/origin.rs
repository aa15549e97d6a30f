//! Cross-site protection for the JSON API. In open mode (no API keys, the
//! README's first command) any web page an operator visits could otherwise
//! make the browser `POST` to `localhost:8080/api/...`: a form or a simple
//! `fetch` needs no preflight. So a state-changing `/api/` request must
//! carry something a browser sends cross-site only after a CORS preflight,
//! which this server never grants: `Content-Type: application/json`, an
//! `Authorization` header, or an `X-Sluice-Client` header. And a request
//! whose `Origin` names another site is refused outright.
//!
//! Not covered here: webhooks (TradingView posts text; the token in the
//! path authorizes) and the dashboard (its forms carry a CSRF token).

use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;

/// The header a non-browser client may send instead of a JSON body.
pub const CLIENT_HEADER: &str = "x-sluice-client";

fn changes_state(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// `Origin`'s host and port, when it names one other than `Host`.
fn foreign_origin(headers: &HeaderMap) -> Option<String> {
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?.trim();
    // `Origin: null` (sandboxed frames, file:// pages) is foreign too.
    let authority = origin
        .split_once("://")
        .map_or("", |(_, rest)| rest)
        .trim_end_matches('/');
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    (authority.is_empty() || !authority.eq_ignore_ascii_case(host)).then(|| origin.to_owned())
}

/// The middleware.
pub async fn guard(request: Request, next: Next) -> Response {
    if !request.uri().path().starts_with("/api/") || !changes_state(request.method()) {
        return next.run(request).await;
    }
    let headers = request.headers();
    if let Some(origin) = foreign_origin(headers) {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "cross_origin",
            format!("requests from {origin:?} may not change anything here"),
        )
        .into_response();
    }
    let vouched = is_json(headers)
        || headers.contains_key(header::AUTHORIZATION)
        || headers.contains_key(CLIENT_HEADER);
    if !vouched {
        return ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "a request that changes something needs Content-Type: application/json (or an X-Sluice-Client header when it has no body)",
        )
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn an_origin_is_foreign_unless_it_is_the_host() {
        let same = headers(&[
            ("host", "localhost:8080"),
            ("origin", "http://localhost:8080"),
        ]);
        assert_eq!(foreign_origin(&same), None);
        let none = headers(&[("host", "localhost:8080")]);
        assert_eq!(foreign_origin(&none), None);
        for origin in ["https://evil.example", "http://localhost:8081", "null"] {
            let h = headers(&[("host", "localhost:8080"), ("origin", origin)]);
            assert!(foreign_origin(&h).is_some(), "{origin}");
        }
    }

    #[test]
    fn json_is_recognised_with_parameters() {
        assert!(is_json(&headers(&[(
            "content-type",
            "application/json; charset=utf-8"
        )])));
        assert!(!is_json(&headers(&[("content-type", "text/plain")])));
        assert!(!is_json(&headers(&[(
            "content-type",
            "application/x-www-form-urlencoded"
        )])));
    }
}
