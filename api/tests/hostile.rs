//! The API against a corpus of hostile requests, over real TCP (so the HTTP
//! parser's own limits answer too): invalid UTF-8, deeply nested JSON,
//! 10 MB bodies, huge headers, path traversal and NUL bytes in queue names,
//! SQL and script injection strings. Each must get the right 4xx with a
//! JSON error body (or the connection refused by the HTTP layer for what
//! never reaches the API), and nothing may be enqueued.
//!
//! Property tests of the same endpoints with random bodies and names are in
//! `api/tests/properties.rs`.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::Prefix;
use sluice::config::FileConfig;

/// Start the API on a free loopback port; returns its address.
async fn serve(prefix: &Prefix) -> String {
    let app = common::api(prefix, FileConfig::default()).await;
    common::serve_on_loopback(app).await.to_string()
}

/// Send raw bytes as one HTTP/1.1 request; the status code of the answer
/// and its body, or `None` when the server closed the connection without
/// answering (what hyper does with a request it cannot parse).
fn raw_request(addr: &str, request: &[u8]) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // The server may answer (and close) before it has read everything.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    Some((status, body))
}

/// [`raw_request`] off the async runtime.
async fn send(addr: &str, request: Vec<u8>) -> Option<(u16, String)> {
    let addr = addr.to_owned();
    tokio::task::spawn_blocking(move || raw_request(&addr, &request))
        .await
        .expect("request")
}

fn post(path: impl AsRef<[u8]>, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut req = b"POST ".to_vec();
    req.extend_from_slice(path.as_ref());
    req.extend_from_slice(
        format!(
            " HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    req.extend_from_slice(body);
    req
}

/// A JSON error body with a code and a message.
fn is_json_error(body: &str) -> bool {
    // Chunked answers carry a size line first; find the JSON object.
    let start = body.find('{').unwrap_or(0);
    let end = body.rfind('}').map_or(body.len(), |e| e + 1);
    serde_json::from_str::<serde_json::Value>(&body[start..end]).is_ok_and(|v| {
        v["error"]["code"].is_string()
            && v["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_the_right_4xx_and_enqueue_nothing() {
    let prefix = Prefix::new("hostile");
    let addr = serve(&prefix).await;
    // One legitimate queue, so that a refusal is not just "no such queue".
    let client = prefix.client().await;
    let queue = client.queue("orders").await.expect("queue");

    let nested = format!(
        "{{\"payload\":{}1{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let ten_mb = format!("{{\"payload\":\"{}\"}}", "a".repeat(10 * 1024 * 1024));
    let injections = [
        "'; DROP TABLE jobs; --",
        "\" OR 1=1 --",
        "<script>alert(1)</script>",
        "$(rm -rf /)",
        "{orders}",
        "orders:dead",
        "*",
        "orders\r\nX-Injected: 1",
    ];

    // (what, request, acceptable statuses)
    let mut cases: Vec<(String, Vec<u8>, Vec<u16>)> = vec![
        (
            "invalid UTF-8 body".into(),
            post(
                "/api/queues/orders/jobs",
                "application/json",
                b"{\"payload\":\"\xff\xfe\xfd\"}",
            ),
            vec![400],
        ),
        (
            "invalid UTF-8 in the path".into(),
            post(b"/api/queues/or\xffders/jobs", "application/json", b"{}"),
            vec![400, 404],
        ),
        (
            "deeply nested JSON".into(),
            post(
                "/api/queues/orders/jobs",
                "application/json",
                nested.as_bytes(),
            ),
            vec![400, 413, 422],
        ),
        (
            "10 MB body".into(),
            post(
                "/api/queues/orders/jobs",
                "application/json",
                ten_mb.as_bytes(),
            ),
            vec![413],
        ),
        (
            "10 MB batch".into(),
            post(
                "/api/queues/orders/jobs/batch",
                "application/json",
                ten_mb.as_bytes(),
            ),
            vec![413],
        ),
        (
            "not JSON".into(),
            post("/api/queues/orders/jobs", "application/json", b"payload=1"),
            vec![400],
        ),
        (
            "wrong content type".into(),
            post("/api/queues/orders/jobs", "text/plain", b"{\"payload\":1}"),
            vec![415],
        ),
        (
            "JSON of the wrong shape".into(),
            post(
                "/api/queues/orders/jobs",
                "application/json",
                b"{\"payload\":1,\"priority\":\"high\",\"max_attempts\":-1}",
            ),
            vec![400, 422],
        ),
        (
            "priority out of range".into(),
            post(
                "/api/queues/orders/jobs",
                "application/json",
                b"{\"payload\":1,\"priority\":4294967296}",
            ),
            vec![400, 422],
        ),
        (
            "a batch that is not a list".into(),
            post(
                "/api/queues/orders/jobs/batch",
                "application/json",
                b"{\"jobs\":{\"payload\":1}}",
            ),
            vec![400, 422],
        ),
    ];
    for traversal in [
        "..%2F..%2Fetc%2Fpasswd",
        "%2e%2e",
        "orders%00evil",
        "orders%2Fdead",
        "..",
        "orders%23x",
        &"q".repeat(300),
    ] {
        cases.push((
            format!("queue name {traversal:?}"),
            post(
                format!("/api/queues/{traversal}/jobs"),
                "application/json",
                b"{\"payload\":1}",
            ),
            vec![400, 404],
        ));
    }
    for injection in injections {
        let encoded: String = injection.bytes().map(|b| format!("%{b:02X}")).collect();
        cases.push((
            format!("queue name {injection:?}"),
            post(
                format!("/api/queues/{encoded}/jobs"),
                "application/json",
                b"{\"payload\":1}",
            ),
            vec![400],
        ));
        cases.push((
            format!("webhook token {injection:?}"),
            post(format!("/webhook/u/{encoded}"), "text/plain", b"Ticker: X"),
            // No trading application configured: the route answers 404 either way.
            vec![400, 404, 503],
        ));
    }

    for (what, request, allowed) in &cases {
        let (status, body) = send(&addr, request.clone())
            .await
            .unwrap_or_else(|| panic!("{what}: no answer"));
        assert!(
            allowed.contains(&status),
            "{what}: status {status}, wanted one of {allowed:?}: {}",
            body.chars().take(300).collect::<String>()
        );
        // A request line that is not valid HTTP is refused by hyper with a
        // bare 400 before any handler runs.
        let by_http_layer = what.as_str() == "invalid UTF-8 in the path";
        assert!(
            by_http_layer || is_json_error(&body),
            "{what}: no JSON error body: {}",
            body.chars().take(300).collect::<String>()
        );
    }

    // Headers too large for the HTTP layer: refused before the API, with a
    // 431 or a closed connection, and never a crash.
    let huge_header = format!(
        "POST /api/queues/orders/jobs HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\nContent-Type: application/json\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{{\"payload\":1}}",
        "h".repeat(1024 * 1024)
    );
    let many_headers = {
        let mut r = String::from("POST /api/queues/orders/jobs HTTP/1.1\r\nHost: localhost\r\n");
        for i in 0..2000 {
            r.push_str(&format!("X-H{i}: v\r\n"));
        }
        r.push_str("Content-Type: application/json\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{\"payload\":1}");
        r
    };
    for (what, request) in [("huge header", huge_header), ("many headers", many_headers)] {
        let answer = send(&addr, request.into_bytes()).await;
        assert!(
            answer
                .as_ref()
                .is_none_or(|(status, _)| (400..500).contains(status)),
            "{what}: {answer:?}"
        );
    }

    // Nothing of it was enqueued, checked on Redis itself (a half-finished
    // script would skip the counter, so the counter proves nothing): no job
    // hash, no index entry, no idempotency key, no delayed member, no
    // stream entry.
    let written: Vec<String> = prefix
        .keys()
        .into_iter()
        .filter(|k| {
            k.contains(":job:")
                || k.ends_with(":ix")
                || k.contains(":idem:")
                || k.ends_with(":delayed")
        })
        .collect();
    assert!(written.is_empty(), "hostile requests wrote {written:?}");
    let stats = queue.stats().await.expect("stats");
    assert_eq!(
        (
            stats.waiting,
            stats.active,
            stats.delayed,
            stats.enqueued_total
        ),
        (0, 0, 0, 0),
        "{stats:?}"
    );
    let mut raw = redis::Client::open(prefix.url.as_str())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    for level in 0..sluice_engine::PRIORITY_LEVELS {
        let stream = format!("{}:{{orders}}:p:{level}", prefix.name);
        let entries: usize = redis::cmd("XLEN")
            .arg(&stream)
            .query_async(&mut raw)
            .await
            .expect("XLEN");
        assert_eq!(entries, 0, "{stream} has entries");
    }
    let queues = client.queues().await.expect("queues");
    assert_eq!(queues, ["orders"], "a hostile name made a queue");
    let ok = send(
        &addr,
        post(
            "/api/queues/orders/jobs",
            "application/json",
            b"{\"payload\":{\"sku\":\"A-1\"}}",
        ),
    )
    .await;
    assert_eq!(ok.map(|(s, _)| s), Some(201));
}

/// The series of the process-local metric `name` about `/health/live`:
/// one per label set (the other tests of this process ask other routes).
fn series(rendered: &str, name: &str) -> usize {
    rendered
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains("route=\"/health/live\""))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invented_http_methods_do_not_grow_the_metrics() {
    let prefix = Prefix::new("hostile-methods");
    let addr = serve(&prefix).await;
    let recorder = sluice::server::install_recorder();
    // Every method the API knows, once, so that their series exist.
    for method in ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let request = format!(
            "{method} /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        );
        send(&addr, request.into_bytes()).await;
    }
    let before = recorder.render();
    // Hyper takes any token as a method; no key is needed for /health/live.
    for i in 0..1_000 {
        let request = format!(
            "INVENTED{i}XYZ /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        );
        let answer = send(&addr, request.into_bytes()).await;
        let status = answer.map(|(s, _)| s);
        assert!(
            status.is_none_or(|s| (400..500).contains(&s)),
            "method {i}: {status:?}"
        );
    }
    let after = recorder.render();
    for name in [
        "sluice_http_requests_total",
        "sluice_http_request_duration_seconds_count",
    ] {
        let (b, a) = (series(&before, name), series(&after, name));
        // Not one per method: none at all, they are refused before.
        assert_eq!(a, b, "{name}: {b} series before, {a} after");
    }
    assert!(
        !after.contains("INVENTED"),
        "an invented method became a label"
    );
}

/// The API served as `sluice serve` serves it, with `header_timeout` and
/// `max_connections`; its address.
async fn serve_limited(prefix: &Prefix, file: FileConfig) -> String {
    let limits = sluice::server::listen::ConnectionLimits::of(&file.api);
    let app = common::api(prefix, file).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(sluice::server::listen::serve_on(
        listener,
        app,
        limits,
        sluice_engine::Shutdown::new(),
    ));
    addr.to_string()
}

/// Whether the server closes `stream` (after answering or not) rather
/// than keeping it open: what it sent until it closed, or `None` when it
/// was still open after a minute.
fn closed_by_server(mut stream: TcpStream) -> Option<String> {
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    let mut answer = Vec::new();
    match stream.read_to_end(&mut answer) {
        Ok(_) => Some(String::from_utf8_lossy(&answer).into_owned()),
        // Reset by the server: closed too.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
            Some(String::from_utf8_lossy(&answer).into_owned())
        }
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed() {
    let prefix = Prefix::new("hostile-slow");
    let mut file = FileConfig::default();
    file.api.header_timeout_secs = 1;
    file.api.body_timeout_secs = 1;
    let addr = serve_limited(&prefix, file).await;
    prefix.client().await.queue("orders").await.expect("queue");
    let closed = |first: Vec<u8>| {
        let addr = addr.clone();
        tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(&addr).expect("connect");
            stream.write_all(&first).expect("write");
            closed_by_server(stream)
        })
    };
    // Half a request line, then nothing.
    let half = closed(b"GET /health/li".to_vec()).await.expect("join");
    assert!(half.is_some(), "a half request line kept its connection");
    // A whole request on a kept-alive connection, then silence.
    let idle = closed(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec())
        .await
        .expect("join");
    let idle = idle.expect("an idle kept-alive connection stayed open");
    assert!(idle.starts_with("HTTP/1.1 200"), "{idle}");
    // Headers of a 100-byte body, then 10 bytes of it.
    let slow_body = closed(
        b"POST /api/queues/orders/jobs HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"payload\"".to_vec(),
    )
    .await
    .expect("join");
    let slow_body = slow_body.expect("a body that never came kept its connection");
    let status: Option<u16> = slow_body.split(' ').nth(1).and_then(|s| s.parse().ok());
    assert!(
        status.is_none_or(|s| (400..500).contains(&s)),
        "{slow_body}"
    );
    let stats = prefix
        .client()
        .await
        .queue("orders")
        .await
        .expect("queue")
        .stats()
        .await
        .expect("stats");
    assert_eq!(stats.enqueued_total, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_and_the_server_recovers() {
    let prefix = Prefix::new("hostile-cap");
    let mut file = FileConfig::default();
    file.api.max_connections = 3;
    // The held connections stay for the whole test.
    file.api.header_timeout_secs = 600;
    let addr = serve_limited(&prefix, file).await;
    let health = |addr: String| {
        tokio::task::spawn_blocking(move || {
            raw_request(
                &addr,
                b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
            )
        })
    };
    // Three connections that say nothing hold every slot.
    let held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(&addr).expect("connect"))
        .collect();
    // The server has taken them all once a fourth is closed unanswered.
    let refused = common::eventually(Duration::from_secs(30), || {
        let addr = addr.clone();
        async move { health(addr).await.expect("join").is_none() }
    })
    .await;
    assert!(refused, "a fourth connection was served");
    drop(held);
    let served = common::eventually(Duration::from_secs(30), || {
        let addr = addr.clone();
        async move { health(addr).await.expect("join").map(|(s, _)| s) == Some(200) }
    })
    .await;
    assert!(served, "the server did not recover");
}
