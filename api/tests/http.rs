//! The HTTP API through its router against the real Redis: every endpoint's
//! happy path and error statuses, auth and scopes, per-key rate limits,
//! metrics parsed back, and 503 while Redis is down.

use crate::common;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use common::{Prefix, api, api_without_redis, assert_error, call, send};
use sluice::config::{ApiKeySection, FileConfig, ScheduleSection, Scope};
use sluice::server::key_hash;
use sluice_engine::{Outcome, ServedQueue, WorkerInfo, unix_ms};

async fn enqueued_total(p: &Prefix, queue: &str) -> u64 {
    match p
        .client()
        .await
        .existing_queue(queue)
        .await
        .expect("lookup")
    {
        Some(q) => q.stats().await.expect("stats").enqueued_total,
        None => 0,
    }
}

#[tokio::test]
async fn enqueue_lookup_and_idempotency() {
    let p = Prefix::new("enqueue");
    let app = api(&p, FileConfig::default()).await;
    let a = call(
        &app,
        Method::POST,
        "/api/queues/emails/jobs",
        None,
        Some(r#"{"payload":{"to":"a@b.c"},"priority":2,"max_attempts":3,"timeout_ms":5000,"idempotency_key":"order-1"}"#),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.json["duplicate"], false);
    let id = a.json["id"].as_str().expect("id").to_owned();

    let again = call(
        &app,
        Method::POST,
        "/api/queues/emails/jobs",
        None,
        Some(r#"{"payload":{"to":"other"},"idempotency_key":"order-1"}"#),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(
        (again.json["id"].as_str(), &again.json["duplicate"]),
        (Some(id.as_str()), &serde_json::json!(true))
    );

    let job = send(&app, Method::GET, &format!("/api/queues/emails/jobs/{id}")).await;
    assert_eq!(job.status, StatusCode::OK);
    assert_eq!(job.json["payload"]["to"], "a@b.c");
    assert_eq!(job.json["state"], "waiting");
    assert_eq!(job.json["priority"], 2);
    assert_eq!(job.json["max_attempts"], 3);
    assert_eq!(job.json["timeout_ms"], 5000);
    assert_eq!(job.json["idempotency_key"], "order-1");

    let missing = send(&app, Method::GET, "/api/queues/emails/jobs/nope").await;
    assert_error(&missing, StatusCode::NOT_FOUND, "job_not_found");
    let no_queue = send(&app, Method::GET, "/api/queues/ghost/jobs/x").await;
    assert_error(&no_queue, StatusCode::NOT_FOUND, "queue_not_found");
    assert_eq!(enqueued_total(&p, "emails").await, 1);
}

#[tokio::test]
async fn bad_enqueues_get_the_right_status_and_add_nothing() {
    let p = Prefix::new("bad");
    let file = FileConfig {
        api: sluice::config::ApiConfig {
            max_batch: 3,
            max_body_bytes: 4096,
            ..Default::default()
        },
        ..FileConfig::default()
    };
    let app = api(&p, file).await;
    // The queue exists, so its counters can be read afterwards.
    let ok = call(
        &app,
        Method::POST,
        "/api/queues/q/jobs",
        None,
        Some(r#"{"payload":1}"#),
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED);

    let cases: Vec<(&str, Option<&str>, StatusCode, &str)> = vec![
        (
            "/api/queues/q/jobs",
            Some("{\"payload\":"),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "/api/queues/q/jobs",
            Some("[1,2]"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/api/queues/q/jobs",
            Some("{}"),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/api/queues/q/jobs",
            Some(r#"{"payload":1,"colour":"red"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/api/queues/q/jobs",
            Some(r#"{"payload":1,"priority":10}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_options",
        ),
        (
            "/api/queues/q/jobs",
            Some(r#"{"payload":1,"priority":"high"}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            "/api/queues/q/jobs",
            Some(r#"{"payload":1,"delay_ms":-5}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_options",
        ),
        (
            "/api/queues/q/jobs",
            Some(r#"{"payload":1,"max_attempts":0}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_options",
        ),
        (
            "/api/queues/q/jobs",
            Some(r#"{"payload":1,"idempotency_key":""}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_options",
        ),
        (
            "/api/queues/a%7Bb%7D/jobs",
            Some(r#"{"payload":1}"#),
            StatusCode::BAD_REQUEST,
            "invalid_name",
        ),
        (
            "/api/queues/q/jobs/batch",
            Some(r#"{"jobs":[]}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_batch",
        ),
        (
            "/api/queues/q/jobs/batch",
            Some(r#"{"jobs":[{"payload":1},{"payload":2},{"payload":3},{"payload":4}]}"#),
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
        ),
        (
            "/api/queues/q/jobs/batch",
            Some(r#"{"jobs":[{"payload":1},{"payload":2,"priority":99}]}"#),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_options",
        ),
    ];
    for (path, body, status, code) in cases {
        let a = call(&app, Method::POST, path, None, body).await;
        assert_error(&a, status, code);
    }
    let big = format!(r#"{{"payload":"{}"}}"#, "x".repeat(10_000));
    let a = call(&app, Method::POST, "/api/queues/q/jobs", None, Some(&big)).await;
    assert_error(&a, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");

    // No content type.
    let req = axum::http::Request::post("/api/queues/q/jobs")
        .body(axum::body::Body::from(r#"{"payload":1}"#))
        .expect("request");
    let res = tower::ServiceExt::oneshot(app.clone(), req)
        .await
        .expect("call");
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let batch = call(
        &app,
        Method::POST,
        "/api/queues/q/jobs/batch",
        None,
        Some(r#"{"jobs":[{"payload":"a"},{"payload":"b","idempotency_key":"k"},{"payload":"c","idempotency_key":"k"}]}"#),
    )
    .await;
    assert_eq!(batch.status, StatusCode::CREATED, "{}", batch.text);
    let jobs = batch.json["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len(), 3);
    assert_eq!(jobs[2]["duplicate"], true);
    assert_eq!(jobs[1]["id"], jobs[2]["id"]);
    // 1 + 2 new jobs; every refused request added nothing.
    assert_eq!(enqueued_total(&p, "q").await, 3);
    assert!(!p.keys().iter().any(|k| k.contains("a{b}")));
}

#[tokio::test]
async fn queue_stats_pause_and_resume() {
    let p = Prefix::new("stats");
    let app = api(&p, FileConfig::default()).await;
    for prio in [0, 0, 5] {
        let body = format!(r#"{{"payload":null,"priority":{prio}}}"#);
        call(
            &app,
            Method::POST,
            "/api/queues/work/jobs",
            None,
            Some(&body),
        )
        .await;
    }
    let all = send(&app, Method::GET, "/api/queues").await;
    assert_eq!(all.status, StatusCode::OK);
    let queues = all.json["queues"].as_array().expect("queues");
    assert_eq!(queues.len(), 1);
    assert_eq!(queues[0]["queue"], "work");
    assert_eq!(queues[0]["waiting"], 3);
    assert_eq!(queues[0]["waiting_by_priority"][5], 1);
    assert_eq!(
        queues[0]["throughput"]["per_minute"]
            .as_array()
            .map(Vec::len),
        Some(60)
    );

    let paused = send(&app, Method::POST, "/api/queues/work/pause").await;
    assert_eq!(paused.json["paused"], true);
    let one = send(&app, Method::GET, "/api/queues/work").await;
    assert_eq!(one.json["paused"], true);
    send(&app, Method::POST, "/api/queues/work/resume").await;
    let one = send(&app, Method::GET, "/api/queues/work").await;
    assert_eq!(one.json["paused"], false);

    let unknown = send(&app, Method::POST, "/api/queues/ghost/pause").await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "queue_not_found");
    let wrong = send(&app, Method::DELETE, "/api/queues/work/pause").await;
    assert_error(&wrong, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let lost = send(&app, Method::GET, "/api/../etc/passwd").await;
    assert_error(&lost, StatusCode::NOT_FOUND, "not_found");
}

/// Dead-letter `n` jobs of `queue` with errors "boom <i>".
async fn make_dead_letters(p: &Prefix, queue: &str, n: usize) -> Vec<String> {
    let client = p.client().await;
    let q = client.queue(queue).await.expect("queue");
    for i in 0..n {
        q.enqueue_value(&i, sluice_engine::JobOptions::new())
            .await
            .expect("enqueue");
    }
    let jobs = q.claim("test", n).await.expect("claim");
    let outcomes = jobs
        .iter()
        .enumerate()
        .map(|(i, j)| {
            (
                j,
                Outcome::Bury(format!("boom {}", if i % 2 == 0 { "even" } else { "odd" })),
            )
        })
        .collect();
    q.settle_many(outcomes).await.expect("settle");
    jobs.into_iter().map(|j| j.id).collect()
}

#[tokio::test]
async fn dead_letters_list_filter_show_retry_delete_purge() {
    let p = Prefix::new("dead");
    let app = api(&p, FileConfig::default()).await;
    let ids = make_dead_letters(&p, "d", 6).await;

    let page = send(&app, Method::GET, "/api/queues/d/dead?limit=4").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.json["total"], 6);
    assert_eq!(page.json["dead"].as_array().map(Vec::len), Some(4));
    let rest = send(&app, Method::GET, "/api/queues/d/dead?offset=4&limit=4").await;
    assert_eq!(rest.json["dead"].as_array().map(Vec::len), Some(2));
    let odd = send(&app, Method::GET, "/api/queues/d/dead?q=ODD").await;
    assert_eq!(odd.json["matched"], 3);
    // A search text is bounded, as the dashboard's is.
    let long = send(
        &app,
        Method::GET,
        &format!("/api/queues/d/dead?q={}", "x".repeat(201)),
    )
    .await;
    assert_error(&long, StatusCode::UNPROCESSABLE_ENTITY, "invalid_query");
    let bad = send(&app, Method::GET, "/api/queues/d/dead?limit=0").await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_limit");
    let bad = send(&app, Method::GET, "/api/queues/d/dead?limit=abc").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // Deep pages are refused: they would make Redis read everything above.
    let deep = send(&app, Method::GET, "/api/queues/d/dead?offset=10001").await;
    assert_error(&deep, StatusCode::UNPROCESSABLE_ENTITY, "invalid_offset");
    let deepest = send(&app, Method::GET, "/api/queues/d/dead?offset=10000").await;
    assert_eq!(deepest.status, StatusCode::OK, "{}", deepest.text);

    let one = send(&app, Method::GET, &format!("/api/queues/d/dead/{}", ids[0])).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json["state"], "dead");
    assert_eq!(one.json["last_error"], "boom even");
    assert_eq!(one.json["errors"][0]["error"], "boom even");

    let retried = send(
        &app,
        Method::POST,
        &format!("/api/queues/d/dead/{}/retry", ids[0]),
    )
    .await;
    assert_eq!(retried.json["retried"], 1);
    let again = send(
        &app,
        Method::POST,
        &format!("/api/queues/d/dead/{}/retry", ids[0]),
    )
    .await;
    assert_error(&again, StatusCode::NOT_FOUND, "dead_letter_not_found");
    let gone = send(&app, Method::GET, &format!("/api/queues/d/dead/{}", ids[0])).await;
    assert_error(&gone, StatusCode::NOT_FOUND, "dead_letter_not_found");

    let by_text = call(
        &app,
        Method::POST,
        "/api/queues/d/dead/retry",
        None,
        Some(r#"{"q":"odd"}"#),
    )
    .await;
    assert_eq!(by_text.json["retried"], 3, "{}", by_text.text);
    let both = call(
        &app,
        Method::POST,
        "/api/queues/d/dead/retry",
        None,
        Some(&format!(
            r#"{{"q":"odd","ids":["{}","{}"]}}"#,
            ids[2], ids[4]
        )),
    )
    .await;
    // Both: those of the ids whose error matches, here none (both even).
    assert_eq!(both.json["retried"], 0, "{}", both.text);

    let deleted = send(
        &app,
        Method::DELETE,
        &format!("/api/queues/d/dead/{}", ids[2]),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let deleted = send(
        &app,
        Method::DELETE,
        &format!("/api/queues/d/dead/{}", ids[2]),
    )
    .await;
    assert_error(&deleted, StatusCode::NOT_FOUND, "dead_letter_not_found");
    let left = send(&app, Method::GET, "/api/queues/d/dead").await;
    assert_eq!(left.json["total"], 1);
    let purged = send(&app, Method::DELETE, "/api/queues/d/dead").await;
    assert_eq!(purged.json["deleted"], 1);
    let all_back = send(&app, Method::POST, "/api/queues/d/dead/retry").await;
    assert_eq!(all_back.json["retried"], 0);
    let stats = send(&app, Method::GET, "/api/queues/d").await;
    assert_eq!(
        (stats.json["dead"].as_u64(), stats.json["waiting"].as_u64()),
        (Some(0), Some(4))
    );
}

fn keyed_config(rps: Option<u32>) -> FileConfig {
    let mut file = FileConfig::default();
    file.api.keys = vec![
        ApiKeySection {
            name: "ops".into(),
            sha256: key_hash("admin-secret"),
            scope: Scope::Admin,
            requests_per_second: rps,
        },
        ApiKeySection {
            name: "viewer".into(),
            sha256: key_hash("read-secret"),
            scope: Scope::Read,
            requests_per_second: None,
        },
    ];
    file
}

#[tokio::test]
async fn api_keys_and_scopes() {
    let p = Prefix::new("auth");
    let app = api(&p, keyed_config(None)).await;
    let body = Some(r#"{"payload":1}"#);
    let none = call(&app, Method::POST, "/api/queues/a/jobs", None, body).await;
    assert_error(&none, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        none.headers.get("www-authenticate").map(|v| v.as_bytes()),
        Some(&b"Bearer"[..])
    );
    let wrong = call(
        &app,
        Method::POST,
        "/api/queues/a/jobs",
        Some("guess"),
        body,
    )
    .await;
    assert_error(&wrong, StatusCode::UNAUTHORIZED, "unauthorized");
    let viewer = call(
        &app,
        Method::POST,
        "/api/queues/a/jobs",
        Some("read-secret"),
        body,
    )
    .await;
    assert_error(&viewer, StatusCode::FORBIDDEN, "forbidden");
    let admin = call(
        &app,
        Method::POST,
        "/api/queues/a/jobs",
        Some("admin-secret"),
        body,
    )
    .await;
    assert_eq!(admin.status, StatusCode::CREATED);
    let look = call(
        &app,
        Method::GET,
        "/api/queues/a",
        Some("read-secret"),
        None,
    )
    .await;
    assert_eq!(look.status, StatusCode::OK);
    let anonymous = send(&app, Method::GET, "/api/queues").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    // The probes and the API description stay open; the full health
    // report and the metrics (a dozen Redis calls per queue, the delivery
    // hosts) need a key unless `open_health` says otherwise.
    for (path, open) in [
        ("/health", false),
        ("/health/live", true),
        ("/health/ready", true),
        ("/metrics", false),
        ("/api/openapi.json", true),
    ] {
        let status = send(&app, Method::GET, path).await.status;
        let wanted = if open {
            StatusCode::OK
        } else {
            StatusCode::UNAUTHORIZED
        };
        assert_eq!(status, wanted, "{path}");
        assert_eq!(
            call(&app, Method::GET, path, Some("read-secret"), None)
                .await
                .status,
            StatusCode::OK,
            "{path} with a read key"
        );
    }
    let mut opened = keyed_config(None);
    opened.api.open_health = true;
    let app = api(&p, opened).await;
    assert_eq!(
        send(&app, Method::GET, "/metrics").await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, Method::GET, "/health").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after() {
    let p = Prefix::new("limit");
    let app = api(&p, keyed_config(Some(5))).await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..20 {
        let a = call(&app, Method::GET, "/api/queues", Some("admin-secret"), None).await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(a.json["error"]["code"], "rate_limited");
            retry_after = a
                .headers
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
        }
        statuses.push(a.status);
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    // 5 per second; however slow the machine, 20 calls cannot all pass.
    assert!((1..=10).contains(&ok), "{statuses:?}");
    let secs: u64 = retry_after
        .expect("a 429 with Retry-After")
        .parse()
        .expect("seconds");
    assert_eq!(secs, 1, "a 1 s window never asks for more");
    // The other key has no limit.
    let other = call(&app, Method::GET, "/api/queues", Some("read-secret"), None).await;
    assert_eq!(other.status, StatusCode::OK);
}

/// `name{labels} value` lines of a Prometheus text answer.
fn sample(metrics: &str, name_and_labels: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let (series, value) = l.rsplit_once(' ')?;
        (series == name_and_labels)
            .then(|| value.parse().ok())
            .flatten()
    })
}

#[tokio::test]
async fn metrics_report_counters_depths_workers_and_http() {
    let p = Prefix::new("metrics");
    let app = api(&p, FileConfig::default()).await;
    for _ in 0..3 {
        call(
            &app,
            Method::POST,
            "/api/queues/m/jobs",
            None,
            Some(r#"{"payload":1}"#),
        )
        .await;
    }
    let client = p.client().await;
    let q = client.queue("m").await.expect("queue");
    let jobs = q.claim("w", 2).await.expect("claim");
    q.settle_many(vec![
        (&jobs[0], Outcome::Done),
        (
            &jobs[1],
            Outcome::Retry {
                reason: "x".into(),
                after: Some(Duration::from_secs(60)),
            },
        ),
    ])
    .await
    .expect("settle");
    client
        .registry()
        .heartbeat(
            &WorkerInfo {
                id: "w-1".into(),
                host: "h".into(),
                pid: 1,
                queues: vec![ServedQueue {
                    queue: "m".into(),
                    concurrency: 4,
                }],
                concurrency: 4,
                in_flight: 2,
                version: "t".into(),
                started_at_ms: unix_ms(),
                last_beat_ms: unix_ms(),
            },
            Duration::from_secs(30),
        )
        .await
        .expect("beat");

    let m = send(&app, Method::GET, "/metrics").await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(
        m.headers["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/plain")
    );
    let t = &m.text;
    for (series, value) in [
        ("sluice_jobs_enqueued_total{queue=\"m\"}", 3.0),
        ("sluice_jobs_completed_total{queue=\"m\"}", 1.0),
        ("sluice_jobs_failed_total{queue=\"m\"}", 1.0),
        ("sluice_jobs_retried_total{queue=\"m\"}", 1.0),
        ("sluice_jobs_dead_total{queue=\"m\"}", 0.0),
        ("sluice_queue_jobs{queue=\"m\",state=\"waiting\"}", 1.0),
        ("sluice_queue_jobs{queue=\"m\",state=\"delayed\"}", 1.0),
        ("sluice_queue_jobs{queue=\"m\",state=\"active\"}", 0.0),
        ("sluice_queue_waiting{queue=\"m\",priority=\"0\"}", 1.0),
        ("sluice_queue_paused{queue=\"m\"}", 0.0),
        ("sluice_workers_active", 1.0),
        ("sluice_worker_jobs_in_flight", 2.0),
    ] {
        assert_eq!(sample(t, series), Some(value), "{series} in:\n{t}");
    }
    assert!(t.contains("# TYPE sluice_jobs_enqueued_total counter"));
    assert!(t.contains("# TYPE sluice_queue_jobs gauge"));
    // HTTP requests are counted with their route template and timed.
    assert!(
        t.lines()
            .any(|l| l.starts_with("sluice_http_requests_total{")
                && l.contains("route=\"/api/queues/{queue}/jobs\"")
                && l.contains("status=\"201\"")),
        "{t}"
    );
    assert!(
        t.contains("sluice_http_request_duration_seconds_bucket{"),
        "{t}"
    );
    let workers = send(&app, Method::GET, "/api/workers").await;
    assert_eq!(workers.json["workers"][0]["id"], "w-1");
    assert_eq!(workers.json["workers"][0]["queues"][0]["queue"], "m");
    let health = send(&app, Method::GET, "/health").await;
    assert_eq!(health.json["status"], "ok");
    assert_eq!(health.json["active_workers"], 1);
    assert_eq!(health.json["queues"]["m"]["waiting"], 1);
    client
        .registry()
        .deregister("w-1")
        .await
        .expect("deregister");
}

#[tokio::test]
async fn schedules_show_their_next_runs() {
    let p = Prefix::new("sched");
    let file = FileConfig {
        schedules: vec![ScheduleSection {
            name: "nightly".into(),
            cron: "0 0 3 * * *".into(),
            timezone: Some("Europe/Madrid".into()),
            queue: "reports".into(),
            payload: Some(toml::Value::String("daily".into())),
            priority: None,
        }],
        ..FileConfig::default()
    };
    let app = api(&p, file).await;
    let s = send(&app, Method::GET, "/api/schedules").await;
    assert_eq!(s.status, StatusCode::OK);
    let one = &s.json["schedules"][0];
    assert_eq!(one["name"], "nightly");
    assert_eq!(one["timezone"], "Europe/Madrid");
    assert_eq!(one["payload"], "daily");
    let runs = one["next_runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 5);
    assert!(
        runs.iter()
            .all(|r| r.as_str().is_some_and(|r| r.contains("T03:00:00")))
    );
    assert!(one["last_run"].is_null());
}

#[tokio::test]
async fn without_redis_the_api_answers_503_and_stays_alive() {
    let app = api_without_redis();
    let live = send(&app, Method::GET, "/health/live").await;
    assert_eq!(live.status, StatusCode::OK);
    let ready = send(&app, Method::GET, "/health/ready").await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json["checks"]["redis"], "down");
    let health = send(&app, Method::GET, "/health").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    let enqueue = call(
        &app,
        Method::POST,
        "/api/queues/q/jobs",
        None,
        Some(r#"{"payload":1}"#),
    )
    .await;
    assert_error(
        &enqueue,
        StatusCode::SERVICE_UNAVAILABLE,
        "redis_unavailable",
    );
    assert!(enqueue.headers.contains_key("retry-after"));
    let stats = send(&app, Method::GET, "/api/queues").await;
    assert_error(&stats, StatusCode::SERVICE_UNAVAILABLE, "redis_unavailable");
}

#[tokio::test]
async fn the_openapi_document_names_every_path() {
    let app = api_without_redis();
    let doc = send(&app, Method::GET, "/api/openapi.json").await;
    assert_eq!(doc.json["openapi"], "3.1.0");
    let paths = doc.json["paths"].as_object().expect("paths");
    for p in [
        "/api/queues",
        "/api/queues/{queue}",
        "/api/queues/{queue}/jobs",
        "/api/queues/{queue}/jobs/batch",
        "/api/queues/{queue}/jobs/{id}",
        "/api/queues/{queue}/jobs/{id}/cancel",
        "/api/queues/{queue}/pause",
        "/api/queues/{queue}/resume",
        "/api/queues/{queue}/dead",
        "/api/queues/{queue}/dead/retry",
        "/api/queues/{queue}/dead/{id}",
        "/api/queues/{queue}/dead/{id}/retry",
        "/api/workers",
        "/api/schedules",
        "/api/alerts",
        "/api/alerts/{name}/silence",
        "/api/breakers",
        "/api/breakers/{name}",
        "/api/breakers/{name}/force",
        "/health",
        "/health/live",
        "/health/ready",
        "/metrics",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
}

/// Queues whose name starts with `_` are Sluice's own (`_alerts` carries
/// the alert notifications): the API does not put jobs in them.
#[tokio::test]
async fn the_api_does_not_enqueue_into_sluices_own_queues() {
    let p = Prefix::new("reserved");
    let app = api(&p, FileConfig::default()).await;
    let body = Some(r#"{"payload": {"text": "hi"}}"#);
    let one = call(&app, Method::POST, "/api/queues/_alerts/jobs", None, body).await;
    assert_error(&one, StatusCode::FORBIDDEN, "reserved_queue");
    let batch = Some(r#"{"jobs": [{"payload": 1}]}"#);
    let many = call(&app, Method::POST, "/api/queues/_x/jobs/batch", None, batch).await;
    assert_error(&many, StatusCode::FORBIDDEN, "reserved_queue");
    let ok = call(&app, Method::POST, "/api/queues/a_b/jobs", None, body).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
}

/// The served document describes the serving process: security and 401s
/// only with keys, the trading routes only with the trading application, the batch
/// limit as configured, and every error answer in the one error shape.
#[tokio::test]
async fn the_openapi_document_describes_this_server() {
    let open = send(&api_without_redis(), Method::GET, "/api/openapi.json").await;
    let doc = &open.json;
    assert!(
        doc["components"]["securitySchemes"].is_null(),
        "{}",
        open.text
    );
    assert!(doc["paths"]["/webhook/u/{token}"].is_null());
    assert!(doc["paths"]["/api/queues"]["get"]["responses"]["401"].is_null());
    let jobs = &doc["components"]["schemas"]["BatchRequest"]["properties"]["jobs"];
    assert_eq!(jobs["maxItems"], FileConfig::default().api.max_batch);
    assert_eq!(jobs["minItems"], 1);
    let enqueue = &doc["paths"]["/api/queues/{queue}/jobs"]["post"];
    for status in ["201", "200", "400", "409", "413", "415", "422", "503"] {
        assert!(enqueue["responses"][status].is_object(), "{status} missing");
    }
    assert_eq!(
        enqueue["responses"]["422"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Error"
    );
    let queue = &enqueue["parameters"][0]["schema"];
    assert!(queue["pattern"].is_string() && queue["maxLength"] == 128);
    // Open mode: a bodiless change needs the client header, an optional
    // body becomes required (see origin.rs).
    let pause = &doc["paths"]["/api/queues/{queue}/pause"]["post"];
    let header = &pause["parameters"][1];
    assert_eq!(
        (&header["name"], &header["in"]),
        (&"x-sluice-client".into(), &"header".into())
    );
    assert_eq!(header["required"], true);
    let retry = &doc["paths"]["/api/queues/{queue}/dead/retry"]["post"];
    assert_eq!(retry["requestBody"]["required"], true, "{}", retry);

    let p = Prefix::new("openapidoc");
    let keyed = send(
        &api(&p, keyed_config(None)).await,
        Method::GET,
        "/api/openapi.json",
    )
    .await;
    let doc = &keyed.json;
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let list = &doc["paths"]["/api/queues"]["get"];
    assert!(list["security"][0]["bearer"].is_array(), "{}", keyed.text);
    assert!(list["responses"]["401"].is_object());
    let live = &doc["paths"]["/health/live"]["get"];
    assert_eq!(live["security"], serde_json::json!([{}]));
    let pause = &doc["paths"]["/api/queues/{queue}/pause"]["post"];
    assert_eq!(pause["parameters"].as_array().map(Vec::len), Some(1));
    let retry = &doc["paths"]["/api/queues/{queue}/dead/retry"]["post"];
    assert_ne!(retry["requestBody"]["required"], true, "{}", retry);
}

#[tokio::test]
async fn a_partitioned_queues_jobs_and_dead_letters_are_managed_under_its_name() {
    let p = Prefix::new("pdead");
    let file: FileConfig =
        toml::from_str("[[queues]]\nname = \"parts\"\npartitions = 3\n").expect("config");
    let app = api(&p, file.clone()).await;
    let client = p.client().await;
    let pq = sluice::queues::partitioned(&file, &client, "parts")
        .await
        .expect("open")
        .expect("partitioned");
    // One partition key per partition.
    let mut keys: Vec<String> = Vec::new();
    let mut partitions: Vec<String> = Vec::new();
    for n in 0.. {
        let key = format!("account-{n}");
        let partition = pq.partition_for(&key).name().to_owned();
        if !partitions.contains(&partition) {
            partitions.push(partition);
            keys.push(key);
        }
        if keys.len() == 3 {
            break;
        }
    }
    for key in &keys {
        let body = serde_json::json!({"payload": 1, "partition_key": key}).to_string();
        let r = call(
            &app,
            Method::POST,
            "/api/queues/parts/jobs",
            None,
            Some(&body),
        )
        .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json);
        let id = r.json["id"].as_str().expect("id").to_owned();
        // Found under the queue's name, whichever partition holds it.
        let found = send(&app, Method::GET, &format!("/api/queues/parts/jobs/{id}")).await;
        assert_eq!(found.status, StatusCode::OK);
        assert_eq!(found.json["state"], "waiting");
    }
    let missing = send(&app, Method::GET, "/api/queues/parts/jobs/nope").await;
    assert_error(&missing, StatusCode::NOT_FOUND, "job_not_found");

    // Dead-letter one job per partition, oldest first in partition order.
    let mut buried = Vec::new();
    for q in pq.partitions() {
        for job in q.claim("w", 10).await.expect("claim") {
            q.settle(&job, Outcome::Bury(format!("bad input {}", q.name())))
                .await
                .expect("bury");
            buried.push(job.id.clone());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    assert_eq!(buried.len(), 3);
    let ids = |r: &common::Answer| -> Vec<String> {
        r.json["dead"]
            .as_array()
            .expect("dead")
            .iter()
            .map(|d| d["id"].as_str().expect("id").to_owned())
            .collect()
    };
    let all = send(&app, Method::GET, "/api/queues/parts/dead").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.json["total"], 3);
    let newest_first: Vec<String> = buried.iter().rev().cloned().collect();
    assert_eq!(ids(&all), newest_first);
    let page = send(&app, Method::GET, "/api/queues/parts/dead?offset=1&limit=1").await;
    assert_eq!(ids(&page), [newest_first[1].clone()]);
    let filtered = call(
        &app,
        Method::GET,
        &format!(
            "/api/queues/parts/dead?q={}",
            urlencode(pq.partitions()[2].name())
        ),
        None,
        None,
    )
    .await;
    assert_eq!(filtered.json["matched"], 1);
    assert_eq!(ids(&filtered), [buried[2].clone()]);
    let shown = send(
        &app,
        Method::GET,
        &format!("/api/queues/parts/dead/{}", buried[1]),
    )
    .await;
    assert_eq!(shown.status, StatusCode::OK);
    assert_eq!(shown.json["state"], "dead");

    // Retry one, delete one, retry the rest, then purge what dies again.
    let retried = send(
        &app,
        Method::POST,
        &format!("/api/queues/parts/dead/{}/retry", buried[0]),
    )
    .await;
    assert_eq!(retried.json["retried"], 1);
    let deleted = send(
        &app,
        Method::DELETE,
        &format!("/api/queues/parts/dead/{}", buried[1]),
    )
    .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = send(
        &app,
        Method::DELETE,
        &format!("/api/queues/parts/dead/{}", buried[1]),
    )
    .await;
    assert_error(&gone, StatusCode::NOT_FOUND, "dead_letter_not_found");
    let rest = send(&app, Method::POST, "/api/queues/parts/dead/retry").await;
    assert_eq!(rest.json["retried"], 1);
    let waiting = send(&app, Method::GET, "/api/queues/parts").await;
    assert_eq!(waiting.json["waiting"], 2);
    // The list shows the queue once, its partitions summed, not each
    // partition as a queue of its own.
    let all = send(&app, Method::GET, "/api/queues").await;
    let listed: Vec<&serde_json::Value> = all.json["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .filter(|q| q["queue"].as_str().is_some_and(|n| n.starts_with("parts")))
        .collect();
    assert_eq!(listed.len(), 1, "{}", all.text);
    assert_eq!(listed[0]["queue"], "parts");
    assert_eq!(listed[0]["waiting"], 2);
    for q in pq.partitions() {
        for job in q.claim("w", 10).await.expect("claim") {
            q.settle(&job, Outcome::Bury("again".into()))
                .await
                .expect("bury");
        }
    }
    let purged = send(&app, Method::DELETE, "/api/queues/parts/dead").await;
    assert_eq!(purged.json["deleted"], 2);
    let none = send(&app, Method::GET, "/api/queues/parts/dead").await;
    assert_eq!(none.json["total"], 0);
}

/// A queue name as a query value (`#` would end the path).
fn urlencode(text: &str) -> String {
    text.replace('#', "%23")
}

#[tokio::test]
async fn a_job_is_cancelled_over_http_and_a_finished_one_is_refused() {
    let p = Prefix::new("cancel");
    let app = api(&p, FileConfig::default()).await;
    let dead = make_dead_letters(&p, "c", 1).await;
    let q = p.client().await.queue("c").await.expect("queue");
    let waiting = q
        .enqueue_value(&1u32, sluice_engine::JobOptions::new())
        .await
        .expect("enqueue")
        .id;

    let path = format!("/api/queues/c/jobs/{waiting}/cancel");
    let cancelled = send(&app, Method::POST, &path).await;
    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.text);
    assert_eq!(cancelled.json["result"], "cancelled");
    let again = send(&app, Method::POST, &path).await;
    assert_eq!(again.json["result"], "cancelled", "{}", again.text);
    let shown = send(&app, Method::GET, &format!("/api/queues/c/jobs/{waiting}")).await;
    assert_eq!(shown.json["state"], "dead");
    assert_eq!(shown.json["last_error"], "cancelled by an operator");

    let finished = send(
        &app,
        Method::POST,
        &format!("/api/queues/c/jobs/{}/cancel", dead[0]),
    )
    .await;
    assert_error(&finished, StatusCode::CONFLICT, "job_finished");
    let missing = send(&app, Method::POST, "/api/queues/c/jobs/nope/cancel").await;
    assert_error(&missing, StatusCode::NOT_FOUND, "job_not_found");
}

/// Open mode (no API keys): a web page the operator visits cannot change
/// anything through the browser. A foreign Origin is refused, and so is a
/// state-changing request without a JSON body or a client header (what a
/// form or a simple fetch sends); nothing changes.
#[tokio::test]
async fn cross_site_requests_cannot_change_anything_in_open_mode() {
    let p = Prefix::new("xsite");
    let app = api(&p, FileConfig::default()).await;
    make_dead_letters(&p, "x", 2).await;
    let raw = |method: Method, path: &str, headers: &[(&str, &str)], body: &str| {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost:8080");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(axum::body::Body::from(body.to_owned()))
            .expect("request");
        let app = app.clone();
        async move {
            use tower::ServiceExt;
            let res = app.oneshot(req).await.expect("infallible");
            let status = res.status();
            let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .expect("body");
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            (
                status,
                json["error"]["code"].as_str().unwrap_or("").to_owned(),
            )
        }
    };
    let evil = [
        ("origin", "https://evil.example"),
        ("content-type", "application/json"),
    ];
    assert_eq!(
        raw(Method::POST, "/api/queues/x/pause", &evil, "").await,
        (StatusCode::FORBIDDEN, "cross_origin".to_owned())
    );
    let form = [("content-type", "application/x-www-form-urlencoded")];
    assert_eq!(
        raw(Method::POST, "/api/queues/x/pause", &form, "a=1")
            .await
            .0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let text = [("content-type", "text/plain")];
    assert_eq!(
        raw(Method::POST, "/api/queues/x/dead/retry", &text, "")
            .await
            .0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        raw(Method::DELETE, "/api/queues/x/dead", &[], "").await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let shown = send(&app, Method::GET, "/api/queues/x").await;
    assert_eq!(
        (shown.json["paused"].clone(), shown.json["dead"].clone()),
        (serde_json::json!(false), serde_json::json!(2))
    );

    // The same origin, a JSON body or a client header go through.
    let same = [
        ("origin", "http://localhost:8080"),
        ("x-sluice-client", "curl"),
    ];
    assert_eq!(
        raw(Method::POST, "/api/queues/x/pause", &same, "").await.0,
        StatusCode::OK
    );
    let json = [("content-type", "application/json")];
    assert_eq!(
        raw(Method::POST, "/api/queues/x/dead/retry", &json, "{}")
            .await
            .0,
        StatusCode::OK
    );
    let shown = send(&app, Method::GET, "/api/queues/x").await;
    assert_eq!(shown.json["paused"], true);

    // A method no route takes is 405, whatever it carries: the guard is
    // about requests that could change something.
    for method in [Method::TRACE, Method::PUT, Method::PATCH] {
        assert_eq!(
            raw(method.clone(), "/api/queues/x/pause", &[], "").await,
            (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed".to_owned()
            ),
            "{method}"
        );
    }
}

/// DNS rebinding: a page of another site whose name now points at
/// 127.0.0.1 reaches an open API with its own name as `Host`, and then
/// `Origin` matches `Host`. In open mode a foreign `Host` is refused with
/// 421; loopback names and the configured ones are served.
#[tokio::test]
async fn open_mode_answers_only_to_loopback_and_configured_host_names() {
    let p = Prefix::new("rebinding");
    let mut file = FileConfig::default();
    file.api.hosts = vec!["sluice.internal".into()];
    let app = api(&p, file).await;
    p.client().await.queue("x").await.expect("queue");
    let with_host = |method: Method, path: &str, host: &str, origin: Option<&str>| {
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", host)
            .header("content-type", "application/json");
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let req = req.body(axum::body::Body::from("{}")).expect("request");
        let app = app.clone();
        async move {
            use tower::ServiceExt;
            let res = app.oneshot(req).await.expect("infallible");
            let status = res.status();
            let bytes = axum::body::to_bytes(res.into_body(), 1 << 20)
                .await
                .expect("body");
            let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
            (
                status,
                json["error"]["code"].as_str().unwrap_or("").to_owned(),
            )
        }
    };
    for (method, path) in [
        (Method::POST, "/api/queues/x/pause"),
        (Method::GET, "/api/queues"),
        (Method::GET, "/dashboard"),
    ] {
        let (status, code) = with_host(
            method.clone(),
            path,
            "evil.example:8080",
            Some("http://evil.example:8080"),
        )
        .await;
        assert_eq!(status, StatusCode::MISDIRECTED_REQUEST, "{method} {path}");
        if path.starts_with("/api/") {
            assert_eq!(code, "misdirected_request");
        }
    }
    let shown = send(&app, Method::GET, "/api/queues/x").await;
    assert_eq!(
        shown.json["paused"], false,
        "a rebound page paused the queue"
    );
    for host in [
        "localhost:8080",
        "127.0.0.1:8080",
        "[::1]:8080",
        "sluice.internal",
        "LOCALHOST",
    ] {
        let (status, _) = with_host(Method::GET, "/api/queues", host, None).await;
        assert_eq!(status, StatusCode::OK, "{host}");
    }
    // The probes name the pod's address: they stay open.
    let (status, _) = with_host(Method::GET, "/health/live", "10.1.2.3:8080", None).await;
    assert_eq!(status, StatusCode::OK);
}

/// A raw request with a cookie and a form body, and its status, headers
/// and body text.
async fn dashboard_call(
    app: &axum::Router,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> (StatusCode, axum::http::HeaderMap, String) {
    use tower::ServiceExt;
    let mut req = axum::http::Request::builder().method(method).uri(path);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    if form.is_some() {
        req = req.header("content-type", "application/x-www-form-urlencoded");
    }
    let req = req
        .body(axum::body::Body::from(form.unwrap_or("").to_owned()))
        .expect("request");
    let res = app.clone().oneshot(req).await.expect("infallible");
    let (status, headers) = (res.status(), res.headers().clone());
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 22)
        .await
        .expect("body");
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// A dashboard session dies with its key: rotating the key's hash under
/// the same name refuses the old cookie, and logging out ends the session
/// server-side, so a copy of the cookie opens nothing.
#[tokio::test]
async fn dashboard_sessions_end_with_a_rotated_key_and_at_logout() {
    let p = Prefix::new("sessions");
    let mut file = keyed_config(None);
    file.api.session_secret = Some("shared secret of the fleet".into());
    let app = api(&p, file.clone()).await;
    let login = |app: axum::Router| async move {
        let (status, headers, _) = dashboard_call(
            &app,
            Method::POST,
            "/dashboard/login",
            None,
            Some("key=admin-secret"),
        )
        .await;
        assert!(status.is_redirection(), "{status}");
        let set = headers
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .expect("cookie");
        set.split(';').next().expect("pair").to_owned()
    };
    let signed_in = |app: axum::Router, cookie: String| async move {
        let (status, _, body) =
            dashboard_call(&app, Method::GET, "/dashboard", Some(&cookie), None).await;
        (status == StatusCode::OK, body)
    };

    let cookie = login(app.clone()).await;
    assert!(signed_in(app.clone(), cookie.clone()).await.0);

    // The key rotated: same name, new hash. The old cookie is refused.
    let mut rotated = file.clone();
    rotated.api.keys[0].sha256 = key_hash("new-admin-secret");
    let after_rotation = api(&p, rotated).await;
    assert!(!signed_in(after_rotation, cookie.clone()).await.0);

    // Logout ends the session for every copy of the cookie.
    let (ok, page) = signed_in(app.clone(), cookie.clone()).await;
    assert!(ok);
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf token on the page")
        .to_owned();
    let (status, _, _) = dashboard_call(
        &app,
        Method::POST,
        "/dashboard/logout",
        Some(&cookie),
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert!(status.is_redirection(), "{status}");
    assert!(
        !signed_in(app.clone(), cookie.clone()).await.0,
        "a copied cookie still opened the dashboard"
    );
    // A new login works.
    let fresh = login(app.clone()).await;
    assert!(signed_in(app, fresh).await.0);
}

/// Whoever knows the session secret and a key's name cannot sign in as
/// that key without the key's full hash: a cookie bound to a prefix of it
/// (16 tries at most for one hex digit) is refused.
#[tokio::test]
async fn a_forged_session_needs_more_than_the_secret_and_the_key_name() {
    use sluice_dashboard::session::{Access, SessionKeys};
    let p = Prefix::new("forged-session");
    let secret = "q8Jx2vN7rT1mZ4pW9sK3bD6hF0yL5cAeG8uQ";
    let mut file = keyed_config(None);
    file.api.session_secret = Some(secret.into());
    let app = api(&p, file).await;
    let keys = SessionKeys::new(Some(secret));
    let hash = key_hash("admin-secret");
    for known in [1, 16] {
        let forged = keys.start(
            "ops",
            &hash[..known],
            Access::Admin,
            unix_ms() as i64 / 1000,
        );
        let cookie = format!("sluice_session={}", keys.seal(&forged));
        let (status, _, _) =
            dashboard_call(&app, Method::GET, "/dashboard", Some(&cookie), None).await;
        assert!(
            status.is_redirection(),
            "a cookie bound to {known} hex digits of the hash opened the dashboard: {status}"
        );
    }
}

/// In open mode the dashboard's CSRF token comes from a value of the
/// process's own, not from the configured session secret: a page that
/// knows (or guesses) the secret still cannot post a form.
#[tokio::test]
async fn open_mode_csrf_tokens_do_not_follow_from_the_session_secret() {
    use sluice_dashboard::session::{Access, Session, SessionKeys};
    let p = Prefix::new("open-csrf");
    let secret = "q8Jx2vN7rT1mZ4pW9sK3bD6hF0yL5cAeG8uQ";
    let mut file = FileConfig::default();
    file.api.session_secret = Some(secret.into());
    let app = api(&p, file).await;
    p.client().await.queue("x").await.expect("queue");
    let open = Session {
        name: "anonymous".into(),
        access: Access::Admin,
        key: String::new(),
        expires: i64::MAX,
        nonce: "open".into(),
    };
    let guessed = SessionKeys::new(Some(secret)).csrf_token(&open);
    let (status, _, _) = dashboard_call(
        &app,
        Method::POST,
        "/dashboard/queues/x/pause",
        None,
        Some(&format!("csrf={guessed}")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let shown = send(&app, Method::GET, "/api/queues/x").await;
    assert_eq!(
        shown.json["paused"], false,
        "the guessed token paused the queue"
    );
    // The token on the page works.
    let (_, _, page) = dashboard_call(&app, Method::GET, "/dashboard/queues/x", None, None).await;
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("csrf token on the page")
        .to_owned();
    let (status, _, _) = dashboard_call(
        &app,
        Method::POST,
        "/dashboard/queues/x/pause",
        None,
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert!(status.is_redirection(), "{status}");
}

#[tokio::test]
async fn breakers_are_listed_shown_forced_by_admins_and_exported_as_metrics() {
    use sluice_engine::{Admission, BreakerConfig};
    let p = Prefix::new("breakers");
    let client = p.client().await;
    let b = client
        .breakers()
        .get(
            "http:down.example:80",
            BreakerConfig {
                min_calls: 10,
                ..BreakerConfig::default()
            },
        )
        .await
        .expect("breaker");
    for _ in 0..10 {
        let Admission::Allowed(permit) = b.acquire(Duration::from_secs(1)).await.expect("acquire")
        else {
            panic!("refused while closed");
        };
        b.record(permit, false).await.expect("record");
    }
    client
        .breakers()
        .get("postgres", BreakerConfig::default())
        .await
        .expect("breaker");
    let app = api(&p, keyed_config(None)).await;
    let admin = Some("admin-secret");
    let viewer = Some("read-secret");

    let list = call(&app, Method::GET, "/api/breakers", viewer, None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    let names: Vec<&str> = list.json["breakers"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|b| b["name"].as_str())
        .collect();
    assert_eq!(names, ["http:down.example:80", "postgres"]);
    assert_eq!(list.json["breakers"][0]["state"], "open");
    assert_eq!(list.json["breakers"][0]["opened_total"], 1);
    assert_eq!(list.json["breakers"][1]["state"], "closed");

    let one = call(&app, Method::GET, "/api/breakers/postgres", viewer, None).await;
    assert_eq!(one.json["name"], "postgres", "{}", one.text);
    let missing = call(&app, Method::GET, "/api/breakers/nope", viewer, None).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "breaker_not_found");
    let bad = call(&app, Method::GET, "/api/breakers/a%7Bb%7D", viewer, None).await;
    assert_error(&bad, StatusCode::BAD_REQUEST, "invalid_name");

    let path = "/api/breakers/http:down.example:80/force";
    let open = Some(r#"{"state":"closed"}"#);
    let refused = call(&app, Method::POST, path, viewer, open).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    let forced = call(&app, Method::POST, path, admin, open).await;
    assert_eq!(forced.status, StatusCode::OK, "{}", forced.text);
    assert_eq!(
        (&forced.json["state"], &forced.json["forced"]),
        (&serde_json::json!("closed"), &serde_json::json!("closed"))
    );
    let unknown_state = call(&app, Method::POST, path, admin, Some(r#"{"state":"ajar"}"#)).await;
    assert_eq!(
        unknown_state.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        unknown_state.text
    );
    let nobody = call(
        &app,
        Method::POST,
        "/api/breakers/nope/force",
        admin,
        Some(r#"{"state":"open"}"#),
    )
    .await;
    assert_error(&nobody, StatusCode::NOT_FOUND, "breaker_not_found");
    let released = call(&app, Method::POST, path, admin, Some(r#"{"state":"none"}"#)).await;
    assert_eq!(
        released.json["forced"],
        serde_json::Value::Null,
        "{}",
        released.text
    );

    let metrics = call(&app, Method::GET, "/metrics", admin, None).await;
    assert!(
        metrics
            .text
            .contains("sluice_breaker_state{target=\"http:down.example:80\"} 0"),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains(
        "sluice_breaker_transitions_total{target=\"http:down.example:80\",to=\"open\"} 1"
    ));
    assert!(
        metrics
            .text
            .contains("sluice_breaker_state{target=\"postgres\"} 0")
    );
}

#[tokio::test]
async fn alert_rules_are_listed_and_silenced_by_admins() {
    let p = Prefix::new("alertsapi");
    let mut file = keyed_config(None);
    file.alerts = toml::from_str::<sluice::config::FileConfig>(
        "[[alerts]]\nname = \"backlog\"\nkind = \"queue_depth\"\nqueue = \"orders\"\nthreshold = 200\n\
         [[alerts]]\nname = \"breakers\"\nkind = \"breaker_open\"\n",
    )
    .expect("rules")
    .alerts;
    let app = api(&p, file).await;
    let (admin, viewer) = (Some("admin-secret"), Some("read-secret"));
    let list = call(&app, Method::GET, "/api/alerts", viewer, None).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert_eq!(list.json["alerts"][0]["name"], "backlog");
    assert_eq!(list.json["alerts"][0]["kind"], "queue_depth");
    assert_eq!(list.json["alerts"][0]["threshold"], 200.0);
    assert_eq!(list.json["alerts"][0]["state"], "ok");
    assert_eq!(list.json["alerts"][1]["name"], "breakers");

    let path = "/api/alerts/backlog/silence";
    let hour = Some(r#"{"for_secs": 3600}"#);
    let refused = call(&app, Method::POST, path, viewer, hour).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    let silenced = call(&app, Method::POST, path, admin, hour).await;
    assert_eq!(silenced.status, StatusCode::OK, "{}", silenced.text);
    assert!(
        silenced.json["silenced_until_ms"].as_u64().is_some(),
        "{}",
        silenced.text
    );
    let too_long = call(
        &app,
        Method::POST,
        path,
        admin,
        Some(r#"{"for_secs": 99999999}"#),
    )
    .await;
    assert_error(
        &too_long,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_silence",
    );
    let bad = call(&app, Method::POST, path, admin, Some(r#"{"for": 1}"#)).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    let unknown = call(&app, Method::POST, "/api/alerts/nope/silence", admin, hour).await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "alert_not_found");
    let lifted = call(&app, Method::POST, path, admin, Some(r#"{"for_secs": 0}"#)).await;
    assert_eq!(
        lifted.json["silenced_until_ms"],
        serde_json::Value::Null,
        "{}",
        lifted.text
    );
}

#[tokio::test]
async fn dead_letters_page_by_cursor_and_bad_cursors_are_refused() {
    let p = Prefix::new("deadcursor");
    let client = p.client().await;
    let q = client.queue("dc").await.expect("queue");
    for n in 0..5 {
        q.enqueue_value(&n, sluice_engine::JobOptions::new())
            .await
            .expect("enqueue");
    }
    let jobs = q.claim("t", 10).await.expect("claim");
    for j in &jobs {
        q.settle(j, Outcome::Bury("gone".into()))
            .await
            .expect("settle");
    }
    let app = api(&p, FileConfig::default()).await;
    let mut seen = Vec::new();
    let mut path = "/api/queues/dc/dead?limit=2".to_owned();
    for _ in 0..5 {
        let page = send(&app, Method::GET, &path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for d in page.json["dead"].as_array().expect("dead") {
            seen.push(d["id"].as_str().expect("id").to_owned());
        }
        match page.json["next_cursor"].as_str() {
            Some(c) => path = format!("/api/queues/dc/dead?limit=2&cursor={c}"),
            None => break,
        }
    }
    let in_order = seen.clone();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5, "{seen:?}");
    let bad = send(&app, Method::GET, "/api/queues/dc/dead?cursor=nonsense").await;
    assert_error(&bad, StatusCode::UNPROCESSABLE_ENTITY, "invalid_cursor");

    // With a cursor, an offset skips that many after it, and a search
    // looks only after it.
    let first = send(&app, Method::GET, "/api/queues/dc/dead?limit=2").await;
    let cursor = first.json["next_cursor"]
        .as_str()
        .expect("cursor")
        .to_owned();
    let skipped = send(
        &app,
        Method::GET,
        &format!("/api/queues/dc/dead?limit=2&offset=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(skipped.status, StatusCode::OK, "{}", skipped.text);
    let ids: Vec<&str> = skipped.json["dead"]
        .as_array()
        .expect("dead")
        .iter()
        .map(|d| d["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, in_order[3..5], "{}", skipped.text);
    let searched = send(
        &app,
        Method::GET,
        &format!("/api/queues/dc/dead?q=GONE&cursor={cursor}"),
    )
    .await;
    assert_eq!(searched.json["matched"], 3, "{}", searched.text);
    assert_eq!(searched.json["dead"].as_array().map(Vec::len), Some(3));
}

/// Login throttling behind a proxy: with the proxy trusted, each client
/// its `X-Forwarded-For` names has its own budget of failed attempts, and
/// a valid key is not locked out by someone else's guesses. A header from
/// an untrusted peer is ignored, so rotating it buys nothing.
#[tokio::test]
async fn login_throttling_is_per_client_behind_trusted_proxies_and_per_key() {
    use tower::ServiceExt;
    let p = Prefix::new("throttle");
    let mut file = keyed_config(None);
    file.api.trusted_proxies = vec!["10.0.0.0/8".into()];
    let app = api(&p, file).await;
    let attempt = |peer: &'static str, forwarded: String, key: &'static str| {
        let app = app.clone();
        async move {
            let req = axum::http::Request::builder()
                .method(Method::POST)
                .uri("/dashboard/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-forwarded-for", forwarded)
                .extension(axum::extract::ConnectInfo(
                    peer.parse::<std::net::SocketAddr>().expect("addr"),
                ))
                .body(axum::body::Body::from(format!("key={key}")))
                .expect("request");
            app.oneshot(req).await.expect("infallible").status()
        }
    };
    // An attacker behind the proxy spends their budget...
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(attempt("10.1.2.3:5000", "203.0.113.5".into(), "guess").await);
    }
    assert_eq!(statuses[0], StatusCode::UNAUTHORIZED);
    assert_eq!(statuses[11], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    // ...while an operator behind the same proxy still gets in, and so
    // does a valid key from the attacker's own address.
    assert!(
        attempt("10.1.2.3:5001", "198.51.100.7".into(), "admin-secret")
            .await
            .is_redirection()
    );
    assert!(
        attempt("10.1.2.3:5002", "203.0.113.5".into(), "admin-secret")
            .await
            .is_redirection()
    );
    // An untrusted peer's header is not believed: rotating it does not
    // reset the budget.
    let mut last = StatusCode::OK;
    for n in 0..12 {
        last = attempt("192.0.2.9:6000", format!("198.18.0.{n}"), "guess").await;
    }
    assert_eq!(last, StatusCode::TOO_MANY_REQUESTS);
}

/// Without a `[trading]` section the trading routes are not there
/// at all: every method on them is an unknown path (404), never a known
/// path with the wrong method (405), and a POST never reaches a handler.
/// A key of any name can log in (the throttle's window was named after
/// the key's name, and a long one overflowed it: 503); the session cookie
/// is `Secure`, with HSTS, only when a trusted proxy says the client used
/// HTTPS, never because the client says so.
#[tokio::test]
async fn long_key_names_log_in_and_only_trusted_proxies_make_cookies_secure() {
    use tower::ServiceExt;
    let p = Prefix::new("login-long");
    let mut file = keyed_config(None);
    file.api.keys[0].name = "n".repeat(120);
    file.api.trusted_proxies = vec!["10.0.0.0/8".into()];
    let app = api(&p, file).await;
    let login = |peer: &'static str, proto: &'static str| {
        let app = app.clone();
        async move {
            let req = axum::http::Request::builder()
                .method(Method::POST)
                .uri("/dashboard/login")
                .header("content-type", "application/x-www-form-urlencoded")
                .header("x-forwarded-proto", proto)
                .extension(axum::extract::ConnectInfo(
                    peer.parse::<std::net::SocketAddr>().expect("addr"),
                ))
                .body(axum::body::Body::from("key=admin-secret"))
                .expect("request");
            let res = app.oneshot(req).await.expect("infallible");
            let cookie = res
                .headers()
                .get("set-cookie")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            let hsts = res.headers().contains_key("strict-transport-security");
            (res.status(), cookie, hsts)
        }
    };
    let (status, cookie, hsts) = login("192.0.2.9:6000", "https").await;
    assert!(status.is_redirection(), "{status}");
    assert!(cookie.starts_with("sluice_session="), "{cookie}");
    assert!(
        !cookie.contains("Secure") && !hsts,
        "an untrusted peer's header was believed"
    );
    let (status, cookie, hsts) = login("10.1.2.3:6000", "https").await;
    assert!(status.is_redirection(), "{status}");
    assert!(cookie.contains("; Secure") && hsts, "{cookie}");
}

/// An admin key cannot make Redis hold without bound: new queues stop at
/// `api.max_queues`, and an idempotency key is remembered for 30 days at
/// most.
#[tokio::test]
async fn queues_and_idempotency_windows_are_bounded() {
    let p = Prefix::new("bounded");
    let mut file = FileConfig::default();
    file.api.max_queues = 3;
    let app = api(&p, file).await;
    let body = Some(r#"{"payload": 1}"#);
    for n in 0..3 {
        let a = call(
            &app,
            Method::POST,
            &format!("/api/queues/q{n}/jobs"),
            None,
            body,
        )
        .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    }
    let fourth = call(&app, Method::POST, "/api/queues/q3/jobs", None, body).await;
    assert_error(&fourth, StatusCode::CONFLICT, "too_many_queues");
    let batch = Some(r#"{"jobs": [{"payload": 1}]}"#);
    let fourth = call(&app, Method::POST, "/api/queues/q4/jobs/batch", None, batch).await;
    assert_error(&fourth, StatusCode::CONFLICT, "too_many_queues");
    // The queues there are still served.
    let again = call(&app, Method::POST, "/api/queues/q0/jobs", None, body).await;
    assert_eq!(again.status, StatusCode::CREATED, "{}", again.text);
    let ten_years =
        Some(r#"{"payload": 1, "idempotency_key": "k", "idempotency_window_ms": 315360000000}"#);
    let long = call(&app, Method::POST, "/api/queues/q0/jobs", None, ten_years).await;
    assert_eq!(
        long.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        long.text
    );
    let month =
        Some(r#"{"payload": 1, "idempotency_key": "k", "idempotency_window_ms": 2592000000}"#);
    let ok = call(&app, Method::POST, "/api/queues/q0/jobs", None, month).await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
}

#[tokio::test]
async fn trading_routes_are_mounted_only_with_the_trading_application() {
    let p = Prefix::new("notrading");
    let app = api(&p, FileConfig::default()).await;
    for (method, path) in [
        (Method::GET, "/webhook/u/sometoken"),
        (Method::POST, "/webhook/u/sometoken"),
        (Method::DELETE, "/api/users/1/signals"),
        (Method::GET, "/api/users/1/stats"),
        (Method::GET, "/api/signals/1/result"),
        (Method::GET, "/screenshots/a.png"),
    ] {
        let a = send(&app, method.clone(), path).await;
        assert_error(&a, StatusCode::NOT_FOUND, "not_found");
        assert_eq!(
            a.json["error"]["message"], "no such path",
            "{method} {path}"
        );
    }
}

/// The queue directory opens a configured queue with its partitions and
/// settings for writes, finds only queues that exist (or that the config
/// splits) for reads, and hands out the same handle again.
#[tokio::test]
async fn the_queue_directory_opens_configured_queues_as_configured() {
    use sluice::queues::directory;

    let p = Prefix::new("qdir");
    let file: FileConfig = toml::from_str(
        "[[queues]]\nname = \"split\"\npartitions = 2\n\n[[queues]]\nname = \"tuned\"\nmax_attempts = 7\n",
    )
    .expect("config");
    let client = p.client().await;
    let queues = directory(client.clone(), &file);

    assert!(
        queues
            .existing("never-made")
            .await
            .expect("lookup")
            .is_none()
    );
    // Configured as split: found for reads before anyone wrote to it.
    let split = queues
        .existing("split")
        .await
        .expect("lookup")
        .expect("configured");
    assert_eq!(split.partitions().len(), 2);
    let tuned = queues.for_write("tuned").await.expect("open");
    assert_eq!(tuned.config().max_attempts, 7);
    let again = queues
        .existing("tuned")
        .await
        .expect("lookup")
        .expect("opened");
    assert_eq!(
        again.config().max_attempts,
        7,
        "the handle opened for writes"
    );
    let plain = queues.for_write("plain").await.expect("open");
    assert!(!plain.is_partitioned());
    assert!(queues.existing("plain").await.expect("lookup").is_some());
}
