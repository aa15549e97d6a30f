//! Shared helpers of the API's integration tests: a key prefix of the
//! test's own (deleted afterwards), requests against the router, free
//! ports, and running the `sluice` binary.
#![allow(dead_code, unused_imports)]

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use sluice::config::FileConfig;
use sluice::plugins::Opened;
use sluice::server::router;
use sluice_engine::{Client, ClientConfig, RetryPolicy};
pub use sluice_testkit::{KeyPrefix, eventually, free_port};
use tower::ServiceExt;

pub fn redis_url() -> String {
    std::env::var("SLUICE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

/// A key prefix of the test's own (the test kit's [`KeyPrefix`]); its keys
/// are deleted when dropped.
pub struct Prefix(KeyPrefix);

impl Prefix {
    pub fn new(tag: &str) -> Self {
        Self(KeyPrefix::new(&redis_url(), tag))
    }

    pub async fn client(&self) -> Client {
        Client::connect_with(ClientConfig::new(&self.url).prefix(&self.name))
            .await
            .expect("connect")
    }
}

impl std::ops::Deref for Prefix {
    type Target = KeyPrefix;

    fn deref(&self) -> &KeyPrefix {
        &self.0
    }
}

impl std::ops::DerefMut for Prefix {
    fn deref_mut(&mut self) -> &mut KeyPrefix {
        &mut self.0
    }
}

/// The API's router on `prefix` with `file` (and no plug-in).
pub async fn api(prefix: &Prefix, file: FileConfig) -> Router {
    let state =
        sluice::server::state(prefix.client().await, &file, &Opened::default()).expect("state");
    router(state)
}

/// The API's router on a Redis that is not there (calls fail fast).
pub fn api_without_redis() -> Router {
    let url = format!("redis://127.0.0.1:{}/", free_port());
    let config = ClientConfig::new(&url)
        .prefix("nowhere")
        .retry(RetryPolicy {
            retries: 1,
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
        });
    let client = Client::connect_lazy(config).expect("lazy client");
    router(
        sluice::server::state(client, &FileConfig::default(), &Opened::default()).expect("state"),
    )
}

/// An answer: status, JSON body (Null when not JSON), headers.
pub struct Answer {
    pub status: StatusCode,
    pub json: serde_json::Value,
    pub text: String,
    pub headers: HeaderMap,
}

/// Send one request. `body` is sent as JSON when given.
pub async fn call(
    app: &Router,
    method: Method,
    path: &str,
    key: Option<&str>,
    body: Option<&str>,
) -> Answer {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    } else if !matches!(req.method_ref(), Some(&Method::GET) | Some(&Method::HEAD)) {
        // A client that is not a browser says so (see server/origin.rs).
        req = req.header("x-sluice-client", "tests");
    }
    let req = req
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let headers = res.headers().clone();
    let bytes = axum::body::to_bytes(res.into_body(), 64 * 1024 * 1024)
        .await
        .expect("body");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Answer {
        status,
        json: serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        text,
        headers,
    }
}

/// Send a request without a key or a body.
pub async fn send(app: &Router, method: Method, path: &str) -> Answer {
    call(app, method, path, None, None).await
}

/// Check an error answer's shape and code.
pub fn assert_error(a: &Answer, status: StatusCode, code: &str) {
    assert_eq!(a.status, status, "{}", a.text);
    assert_eq!(a.json["error"]["code"], code, "{}", a.text);
    assert!(
        a.json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{}",
        a.text
    );
}
/// Serve `app` on a free loopback port in the background; its address.
pub async fn serve_on_loopback(app: Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    addr
}

/// Send signal `sig` (`TERM`, `KILL`, `STOP`, ...) to process `pid`.
pub fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{sig} {pid} failed");
}

pub mod chart;
pub mod pg;
