//! The trading application end to end, against the real Redis,
//! PostgreSQL and Chromium: a webhook POST becomes a signal row with a
//! screenshot file; bad input gets the right answers and loses nothing.

use crate::common;

use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::chart::{ChartServer, png_facts};
use common::pg::TestSchema;
use common::{Prefix, assert_error, call};
use sluice::config::FileConfig;
use sluice::plugins::Enabled;
use sluice_engine::Shutdown;
use sluice_testkit::{Persistence, RedisServer};
use sluice_trading::plan::Plan;
use sluice_trading::plugin::{TradingPlugin, TradingSection};
use sluice_trading::secrets::CookieCipher;
use sluice_trading::storage::LocalStore;
use sluice_trading::users;

/// Screenshot status, URL, price, exchange, symbol of a signal.
type SignalRow = (String, Option<String>, String, Option<String>, String);

fn section(schema: &TestSchema, chart_url: String, shots: &std::path::Path) -> TradingSection {
    TradingSection {
        database_url: Some(schema.db.url.clone()),
        database_schema: schema.db.schema.clone(),
        cookie_key: Some(CookieCipher::generate_key()),
        chart_url,
        screenshots_dir: shots.to_owned(),
        screenshot_timeout_secs: 20,
        backup_cron: String::new(),
        retention_cron: String::new(),
        ingest_concurrency: 50,
        audit_concurrency: 50,
        ..TradingSection::default()
    }
}

async fn eventually<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            started.elapsed() < limit,
            "{what} did not happen within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Stops the workers of `start_workers` when dropped.
struct StopOnDrop(Shutdown);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.trigger();
    }
}

/// A config with the trading application turned on by `section`, as the
/// binary's config file would turn it on.
#[derive(Clone)]
struct TradingConfig {
    file: FileConfig,
    plugins: Enabled,
}

fn trading(section: TradingSection) -> TradingConfig {
    let configured = TradingPlugin::configured(section).expect("a valid section");
    TradingConfig {
        file: FileConfig::default(),
        plugins: Enabled::new(vec![configured]).expect("plug-ins"),
    }
}

/// The API's router on `prefix` with `config`'s file and plug-ins.
async fn api(prefix: &Prefix, config: TradingConfig) -> axum::Router {
    let client = prefix.client().await;
    let plugins = config.plugins.open(&client).expect("open");
    let state = sluice::server::state(client, &config.file, &plugins).expect("state");
    sluice::server::router(state)
}

/// Workers for every trading queue, in this process, until the guard is
/// dropped.
async fn start_workers(prefix: &Prefix, config: &TradingConfig) -> StopOnDrop {
    let client = prefix.client().await;
    let shutdown = Shutdown::new();
    let rx = shutdown.clone();
    let plugins = config.plugins.open(&client).expect("open");
    let queues = sluice::fleet::select(&config.file, &config.plugins, &[]).expect("select");
    let file = config.file.clone();
    tokio::spawn(async move {
        sluice::fleet::run(client, &file, &plugins, queues, rx)
            .await
            .expect("fleet");
    });
    StopOnDrop(shutdown)
}

#[tokio::test]
async fn a_webhook_post_becomes_a_signal_with_a_screenshot() {
    let prefix = Prefix::new("pipe-e2e");
    let schema = TestSchema::new("e2e").await;
    let charts = ChartServer::start().await;
    let shots = std::env::temp_dir().join(format!("sluice-shots-{}", schema.name()));
    let section = section(&schema, charts.chart_url(), &shots);
    let file = trading(section.clone());
    let pool = schema.pool();
    let (user, token) = users::add(&pool, Plan::Pro, None).await.expect("add user");
    let cipher = section.cipher().expect("key").expect("cipher");
    let cookies = users::parse_cookies(r#"{"sessionid": "secret"}"#).expect("cookies");
    users::set_cookies(&pool, &cipher, user.id, &cookies, Some("abc123"))
        .await
        .expect("cookies");

    let app = api(&prefix, file.clone()).await;
    let body = "🚨 Alerta\n🪙 Ticker: BINANCE:BTCUSDT\n💰 Precio: $67,890.50\n📊 Señal: Bullish divergence\n📈 Indicador: RSI Pro";
    let a = call(
        &app,
        Method::POST,
        &format!("/webhook/u/{token}?chart=chart-1"),
        None,
        Some(body),
    )
    .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
    assert!(a.json["id"].as_str().is_some_and(|id| !id.is_empty()));

    let _stop = start_workers(&prefix, &file).await;
    let (status, url, price, exchange, symbol): (
        String,
        Option<String>,
        String,
        Option<String>,
        String,
    ) = eventually("the screenshot", Duration::from_secs(90), || {
        let pool = pool.clone();
        async move {
            let row: Option<SignalRow> = sqlx::query_as(
                "SELECT screenshot_status, screenshot_url, price::text, exchange, symbol
                     FROM signals WHERE user_id = $1",
            )
            .bind(user.id)
            .fetch_optional(&pool)
            .await
            .expect("query");
            row.filter(|r| r.0 == "completed" || r.0 == "failed")
        }
    })
    .await;
    assert_eq!(status, "completed");
    assert_eq!(price, "67890.5000000000");
    assert_eq!(exchange.as_deref(), Some("BINANCE"));
    assert_eq!(symbol, "BTCUSDT");
    let url = url.expect("screenshot url");
    let path = LocalStore::new(&section.screenshots_dir, "/screenshots")
        .path_of(&url)
        .expect("a store path");
    let png = std::fs::read(&path).expect("the file");
    let (w, h, colours) = png_facts(&png);
    assert_eq!((w, h), (1280, 720));
    assert!(colours > 2, "the capture is blank ({colours} colours)");
    assert!(
        charts
            .cookies_seen
            .lock()
            .expect("lock")
            .iter()
            .any(|c| c.contains("sessionid=secret")),
        "the chart was opened with the user's cookies"
    );

    // The picture is served, and the read API shows the signal.
    let img = call(&app, Method::GET, &url, None, None).await;
    assert_eq!(img.status, StatusCode::OK);
    assert_eq!(img.headers["content-type"], "image/png");
    let page = call(
        &app,
        Method::GET,
        &format!("/api/users/{}/signals?ticker=btcusdt", user.id),
        None,
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert_eq!(page.json["signals"][0]["signal_type"], "Bullish divergence");
    assert_eq!(page.json["signals"][0]["chart_id"], "chart-1");
    let stats = call(
        &app,
        Method::GET,
        &format!("/api/users/{}/stats", user.id),
        None,
        None,
    )
    .await;
    assert_eq!(stats.json["stats"]["total_signals"], 1, "{}", stats.text);
    assert_eq!(stats.json["quota"]["used"], 1);

    // The platform records the signal's outcome; the aggregates follow,
    // once however often it is sent, and move when it changes.
    let signal_id = page.json["signals"][0]["id"].as_i64().expect("signal id");
    let result_path = format!("/api/signals/{signal_id}/result");
    for _ in 0..2 {
        let set = call(
            &app,
            Method::POST,
            &result_path,
            None,
            Some(r#"{"result":"win"}"#),
        )
        .await;
        assert_eq!(set.status, StatusCode::OK, "{}", set.text);
        assert_eq!(set.json["result"], "win");
        assert_eq!(set.json["user_id"], user.id);
    }
    let wins = |stats: &common::Answer| {
        (
            stats.json["stats"]["wins"].clone(),
            stats.json["stats"]["losses"].clone(),
        )
    };
    let stats_path = format!("/api/users/{}/stats", user.id);
    let after = call(&app, Method::GET, &stats_path, None, None).await;
    assert_eq!(
        wins(&after),
        (serde_json::json!(1), serde_json::json!(0)),
        "{}",
        after.text
    );
    let changed = call(
        &app,
        Method::POST,
        &result_path,
        None,
        Some(r#"{"result":"loss"}"#),
    )
    .await;
    assert_eq!(changed.json["previous"], "win", "{}", changed.text);
    let after = call(&app, Method::GET, &stats_path, None, None).await;
    assert_eq!(
        wins(&after),
        (serde_json::json!(0), serde_json::json!(1)),
        "{}",
        after.text
    );
    let bad = call(
        &app,
        Method::POST,
        &result_path,
        None,
        Some(r#"{"result":"jackpot"}"#),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", bad.text);
    let none = call(
        &app,
        Method::POST,
        "/api/signals/999999999/result",
        None,
        Some(r#"{"result":"win"}"#),
    )
    .await;
    common::assert_error(&none, StatusCode::NOT_FOUND, "signal_not_found");
    let junk = call(
        &app,
        Method::POST,
        "/api/signals/x/result",
        None,
        Some(r#"{"result":"win"}"#),
    )
    .await;
    common::assert_error(&junk, StatusCode::BAD_REQUEST, "invalid_id");

    // The webhook call is in the audit log, without its token.
    let (actor, target): (String, String) =
        eventually("the audit row", Duration::from_secs(20), || {
            let pool = pool.clone();
            async move {
                sqlx::query_as(
                    "SELECT actor, target FROM audit_logs WHERE action LIKE 'POST /webhook/%'",
                )
                .fetch_optional(&pool)
                .await
                .expect("query")
            }
        })
        .await;
    assert_eq!(actor, format!("user:{}", user.id));
    assert!(!target.contains(&token));
    let _ = std::fs::remove_dir_all(&shots);
}

#[tokio::test]
async fn webhook_refusals_and_unparseable_alerts() {
    let prefix = Prefix::new("pipe-bad");
    let schema = TestSchema::new("bad").await;
    let shots = std::env::temp_dir().join(format!("sluice-shots-{}", schema.name()));
    let section = section(&schema, "http://127.0.0.1:9/chart/{chart}".into(), &shots);
    let file = trading(section);
    let pool = schema.pool();
    let (user, token) = users::add(&pool, Plan::Free, Some(2)).await.expect("add");
    let app = api(&prefix, file.clone()).await;
    let hook = |q: &str| format!("/webhook/u/{token}{q}");

    // Unknown and malformed tokens look the same.
    let unknown = call(
        &app,
        Method::POST,
        &format!("/webhook/u/{}", users::new_token()),
        None,
        Some("x"),
    )
    .await;
    assert_error(&unknown, StatusCode::NOT_FOUND, "not_found");
    let odd = call(
        &app,
        Method::POST,
        "/webhook/u/..%2F..%2Fetc",
        None,
        Some("x"),
    )
    .await;
    assert_error(&odd, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        unknown.json["error"]["message"],
        odd.json["error"]["message"]
    );
    // Bad chart id, oversized body.
    let chart = call(&app, Method::POST, &hook("?chart=../x"), None, Some("x")).await;
    assert_error(&chart, StatusCode::BAD_REQUEST, "invalid_chart");
    let big = "a".repeat(70 * 1024);
    let large = call(&app, Method::POST, &hook(""), None, Some(&big)).await;
    assert_error(&large, StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");

    // An unparseable message is still accepted (the sender cannot fix it).
    let junk = call(
        &app,
        Method::POST,
        &hook(""),
        None,
        Some("hello, no ticker here"),
    )
    .await;
    assert_eq!(junk.status, StatusCode::ACCEPTED, "{}", junk.text);
    let junk_id = junk.json["id"].as_str().expect("id").to_owned();
    let good = call(
        &app,
        Method::POST,
        &hook(""),
        None,
        Some(r#"{"ticker":"NASDAQ:AAPL","action":"buy","price":"189.5"}"#),
    )
    .await;
    assert_eq!(good.status, StatusCode::ACCEPTED);
    // Quota of 2 used up.
    let over = call(
        &app,
        Method::POST,
        &hook(""),
        None,
        Some("Ticker: A\nSignal: b"),
    )
    .await;
    assert_error(&over, StatusCode::TOO_MANY_REQUESTS, "quota_exhausted");
    assert!(over.headers.contains_key("retry-after"));
    // Turned off.
    users::set_webhook_enabled(&pool, user.id, false)
        .await
        .expect("disable");
    let off = call(
        &app,
        Method::POST,
        &hook(""),
        None,
        Some("Ticker: A\nSignal: b"),
    )
    .await;
    assert_error(&off, StatusCode::FORBIDDEN, "webhook_disabled");

    let _stop = start_workers(&prefix, &file).await;
    // The junk is a dead letter with the reason, and audited as such.
    let client = prefix.client().await;
    let ingest = client.queue("ingest").await.expect("queue");
    let dead = eventually("the dead letter", Duration::from_secs(20), || {
        let ingest = ingest.clone();
        let junk_id = junk_id.clone();
        async move {
            ingest
                .dead_letters(0, 10)
                .await
                .expect("dead")
                .into_iter()
                .find(|j| j.id == junk_id)
        }
    })
    .await;
    assert!(
        dead.last_error
            .as_deref()
            .is_some_and(|e| e.contains("no ticker")),
        "{dead:?}"
    );
    let (detail,): (String,) = eventually(
        "the parse-failure audit row",
        Duration::from_secs(20),
        || {
            let pool = pool.clone();
            async move {
                sqlx::query_as("SELECT detail FROM audit_logs WHERE action = 'ingest.parse_failed'")
                    .fetch_optional(&pool)
                    .await
                    .expect("query")
            }
        },
    )
    .await;
    assert!(detail.contains("no ticker"));
    // The good one is a signal; its screenshot has no chart to open.
    let (n, shot): (i64, String) = eventually("the signal", Duration::from_secs(20), || {
        let pool = pool.clone();
        async move {
            sqlx::query_as(
                "SELECT count(*) OVER (), screenshot_status FROM signals WHERE user_id = $1",
            )
            .bind(user.id)
            .fetch_optional(&pool)
            .await
            .expect("query")
        }
    })
    .await;
    assert_eq!((n, shot.as_str()), (1, "failed"));

    // Read API input checks.
    let bad_id = call(&app, Method::GET, "/api/users/abc/signals", None, None).await;
    assert_error(&bad_id, StatusCode::BAD_REQUEST, "invalid_user_id");
    let nobody = call(&app, Method::GET, "/api/users/999999/stats", None, None).await;
    assert_error(&nobody, StatusCode::NOT_FOUND, "user_not_found");
    let bad_date = call(
        &app,
        Method::GET,
        &format!("/api/users/{}/signals?from=yesterday", user.id),
        None,
        None,
    )
    .await;
    assert_error(&bad_date, StatusCode::BAD_REQUEST, "invalid_query");
}

#[tokio::test]
async fn jobs_wait_out_a_postgres_outage_and_nothing_is_lost() {
    let prefix = Prefix::new("pipe-pgdown");
    let pg = common::pg::PrivatePostgres::start();
    let mut db = sluice_trading::db::DbConfig::new(pg.url());
    db.max_connections = 4;
    sluice_trading::db::migrate(&db).await.expect("migrate");
    let shots = std::env::temp_dir().join(format!("sluice-shots-pgdown-{}", pg.port));
    let section = TradingSection {
        database_url: Some(pg.url()),
        database_schema: None,
        chart_url: "http://127.0.0.1:9/chart/{chart}".into(),
        screenshots_dir: shots,
        backup_cron: String::new(),
        retention_cron: String::new(),
        ingest_concurrency: 20,
        audit_concurrency: 20,
        ..TradingSection::default()
    };
    let file = trading(section);
    let pool = db.pool().expect("pool");
    let (user, token) = users::add(&pool, Plan::Basic, None).await.expect("user");
    let app = api(&prefix, file.clone()).await;
    let mut first_id = String::new();
    for i in 0..5 {
        let body = format!("Ticker: NYSE:T{i}\nSignal: buy\nPrice: {i}.5");
        let a = call(
            &app,
            Method::POST,
            &format!("/webhook/u/{token}"),
            None,
            Some(&body),
        )
        .await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
        if i == 0 {
            first_id = a.json["id"].as_str().expect("id").to_owned();
        }
    }

    // PostgreSQL goes away before any worker runs.
    pg.stop();
    let ready = call(&app, Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(ready.json["checks"]["postgres"], "down");
    let refused = call(
        &app,
        Method::POST,
        &format!("/webhook/u/{}", users::new_token()),
        None,
        Some("x"),
    )
    .await;
    assert_error(
        &refused,
        StatusCode::SERVICE_UNAVAILABLE,
        "database_unavailable",
    );

    let _stop = start_workers(&prefix, &file).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let client = prefix.client().await;
    let ingest = client.queue("ingest").await.expect("queue");
    let stats = ingest.stats().await.expect("stats");
    assert_eq!(
        stats.dead, 0,
        "nothing is given up while PostgreSQL is down"
    );
    assert_eq!(stats.completed_total, 0);
    // Postponed, not failed: no attempt was spent on the outage.
    assert_eq!(stats.failed_total, 0, "{stats:?}");
    let first = ingest
        .job(&first_id)
        .await
        .expect("lookup")
        .expect("exists");
    assert!(first.attempt <= 1, "attempts grew while waiting: {first:?}");

    pg.run();
    let n: i64 = eventually("every signal stored", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM signals WHERE user_id = $1")
                .bind(user.id)
                .fetch_one(&pool)
                .await
                .ok()?;
            (n == 5).then_some(n)
        }
    })
    .await;
    assert_eq!(n, 5);
    let ready = call(&app, Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(ingest.stats().await.expect("stats").dead, 0);
}

/// A user whose messages write a decimal comma has `1.234.567,89` read as
/// 1234567.89; for every other user that price is ambiguous and refused
/// with the reason, never guessed.
#[tokio::test]
async fn a_users_decimal_comma_is_read_for_that_user_only() {
    let prefix = Prefix::new("pipe-comma");
    let schema = TestSchema::new("comma").await;
    let shots = std::env::temp_dir().join(format!("sluice-shots-{}", schema.name()));
    let section = section(&schema, "http://127.0.0.1:9/chart/{chart}".into(), &shots);
    let file = trading(section);
    let pool = schema.pool();
    let (comma, comma_token) = users::add(&pool, Plan::Basic, None).await.expect("add");
    let (point, point_token) = users::add(&pool, Plan::Basic, None).await.expect("add");
    assert!(
        users::set_decimal_comma(&pool, comma.id, true)
            .await
            .expect("set")
    );
    assert!(
        users::get(&pool, comma.id)
            .await
            .expect("get")
            .expect("user")
            .decimal_comma
    );
    let app = api(&prefix, file.clone()).await;
    let body = "Ticker: NYSE:IBM\nSignal: buy\nPrice: 1.234.567,89";
    let mut ids = Vec::new();
    for token in [&comma_token, &point_token] {
        let a = call(
            &app,
            Method::POST,
            &format!("/webhook/u/{token}"),
            None,
            Some(body),
        )
        .await;
        assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
        ids.push(a.json["id"].as_str().expect("id").to_owned());
    }
    let _stop = start_workers(&prefix, &file).await;
    let cents: i64 = eventually("the comma user's signal", Duration::from_secs(20), || {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (i64,)>(
                "SELECT (price * 100)::bigint FROM signals WHERE user_id = $1",
            )
            .bind(comma.id)
            .fetch_optional(&pool)
            .await
            .expect("query")
            .map(|r| r.0)
        }
    })
    .await;
    assert_eq!(cents, 123_456_789);
    let client = prefix.client().await;
    let ingest = client.queue("ingest").await.expect("queue");
    let dead = eventually(
        "the point user's dead letter",
        Duration::from_secs(20),
        || {
            let ingest = ingest.clone();
            let id = ids[1].clone();
            async move {
                ingest
                    .dead_letters(0, 10)
                    .await
                    .expect("dead")
                    .into_iter()
                    .find(|j| j.id == id)
            }
        },
    )
    .await;
    assert!(
        dead.last_error
            .as_deref()
            .is_some_and(|e| e.contains("price")),
        "{dead:?}"
    );
    let (stored,): (i64,) = sqlx::query_as("SELECT count(*) FROM signals WHERE user_id = $1")
        .bind(point.id)
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(stored, 0);
    let _ = std::fs::remove_dir_all(&shots);
}

/// Every webhook call is in the audit log, through a 10 s Redis outage
/// under 2,000 calls a second: the calls refused while Redis is down are
/// recorded too, spilled to the local file, and replayed once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_webhook_call_is_audited_through_a_10s_redis_outage() {
    let mut server = RedisServer::start(Persistence::None);
    let mut prefix = Prefix::new("pipe-audit-outage");
    prefix.url = server.url();
    let schema = TestSchema::new("auditoutage").await;
    let shots = std::env::temp_dir().join(format!("sluice-shots-{}", schema.name()));
    let mut section = section(&schema, "http://127.0.0.1:9/chart/{chart}".into(), &shots);
    section.audit = true;
    section.audit_spill_file = std::env::temp_dir().join(format!("{}-spill.jsonl", schema.name()));
    let file = trading(section.clone());
    let pool = schema.pool();
    let (_, token) = users::add(&pool, Plan::Premium, Some(1_000_000))
        .await
        .expect("user");
    let app = api(&prefix, file.clone()).await;
    let _stop = start_workers(&prefix, &file).await;
    let client = prefix.client().await;
    let ready = eventually("the workers registered", Duration::from_secs(30), || {
        let client = client.clone();
        async move { (!client.registry().workers().await.ok()?.is_empty()).then_some(()) }
    })
    .await;
    let () = ready;
    drop(client);

    // Redis goes away; 2,000 calls a second for 10 s; Redis comes back.
    server.kill();
    let started = Instant::now();
    let mut calls = Vec::new();
    for round in 0..200u32 {
        for _ in 0..100 {
            let app = app.clone();
            let path = format!("/webhook/u/{token}");
            calls.push(tokio::spawn(async move {
                call(
                    &app,
                    Method::POST,
                    &path,
                    None,
                    Some("Ticker: NYSE:T\nSignal: buy\nPrice: 1"),
                )
                .await
                .status
            }));
        }
        let next = started + Duration::from_millis(50 * u64::from(round + 1));
        tokio::time::sleep_until(next.into()).await;
    }
    let sent = calls.len() as i64;
    server.restart();
    let mut refused = 0;
    for c in calls {
        if c.await.expect("call") != StatusCode::ACCEPTED {
            refused += 1;
        }
    }
    assert!(refused > 0, "Redis was down: calls must have been refused");
    let audited: i64 = eventually("every call audited", Duration::from_secs(120), || {
        let pool = pool.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM audit_logs WHERE action LIKE 'POST /webhook/%'",
            )
            .fetch_one(&pool)
            .await
            .ok()?;
            (n >= sent).then_some(n)
        }
    })
    .await;
    assert_eq!(audited, sent, "each call once");
    let _ = std::fs::remove_file(&section.audit_spill_file);
    let _ = std::fs::remove_dir_all(&shots);
    // The prefix's keys are deleted while its Redis still answers.
    drop(app);
    drop(prefix);
    server.kill();
}

/// A database the migrations have not reached is not ready: the probe
/// says so (503, `not_migrated`) instead of answering 200 while every
/// trading route fails with a 500; after `sluice trading migrate` it is
/// ready.
#[tokio::test]
async fn an_unmigrated_database_is_not_ready() {
    let prefix = Prefix::new("pipe-unmigrated");
    let schema = sluice_testkit::PgSchema::new("unmigrated");
    let mut db = sluice_trading::db::DbConfig::new(common::pg::database_url());
    db.schema = Some(schema.name.clone());
    let section = TradingSection {
        database_url: Some(db.url.clone()),
        database_schema: db.schema.clone(),
        backup_cron: String::new(),
        retention_cron: String::new(),
        ..TradingSection::default()
    };
    let file = trading(section);
    let app = api(&prefix, file).await;
    let ready = call(&app, Method::GET, "/health/ready", None, None).await;
    assert_eq!(
        ready.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        ready.text
    );
    assert_eq!(ready.json["checks"]["postgres"], "not_migrated");
    assert_eq!(ready.json["checks"]["redis"], "up");

    sluice_trading::db::migrate(&db).await.expect("migrate");
    let ready = call(&app, Method::GET, "/health/ready", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(ready.json["checks"]["postgres"], "up");
}

/// Values PostgreSQL refuses never reach the batch insert, and a batch that
/// still fails on a data error is split so that only its offending job is
/// buried: one poison message of each kind (a NUL byte in a text field, a
/// price of 10^20, a time before 4713 BC, and one that passes the parser
/// but breaks a constraint of the table) among 50 good messages of other
/// users. The 50 are stored on the first try; only the poison is buried.
#[tokio::test]
async fn poison_alerts_are_buried_alone_and_their_batch_is_stored_first_time() {
    let prefix = Prefix::new("pipe-poison");
    let schema = TestSchema::new("poison").await;
    let shots = std::env::temp_dir().join(format!("sluice-shots-{}", schema.name()));
    let section = section(&schema, "http://127.0.0.1:9/chart/{chart}".into(), &shots);
    let file = trading(section);
    let pool = schema.pool();
    // A data error the parser cannot know about: this table refuses one
    // symbol (SQLSTATE 23514, class 23).
    sqlx::query("ALTER TABLE signals ADD CONSTRAINT no_poison CHECK (symbol <> 'POISONED')")
        .execute(&pool)
        .await
        .expect("constraint");
    let app = api(&prefix, file.clone()).await;
    let post = |token: String, body: String| {
        let app = app.clone();
        async move {
            let a = call(
                &app,
                Method::POST,
                &format!("/webhook/u/{token}"),
                None,
                Some(&body),
            )
            .await;
            assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.text);
        }
    };
    let (poison_user, poisoner) = users::add(&pool, Plan::Pro, None).await.expect("add");
    let poison = [
        r#"{"ticker":"BINANCE:BTCUSDT","signal":"buy\u0000now","price":"1"}"#.to_owned(),
        "Ticker: BINANCE:ETHUSDT\nSignal: buy\nPrice: 1\nNotes: a\u{0}b".to_owned(),
        r#"{"ticker":"BINANCE:BTCUSDT","signal":"buy","price":"100000000000000000000"}"#.to_owned(),
        r#"{"ticker":"BINANCE:BTCUSDT","signal":"buy","price":"1","time":"-300000000000000"}"#
            .to_owned(),
        r#"{"ticker":"BINANCE:POISONED","signal":"buy","price":"1"}"#.to_owned(),
    ];
    // Interleaved, so that every batch the worker claims holds both.
    let mut good_users = Vec::new();
    for _ in 0..5 {
        good_users.push(users::add(&pool, Plan::Pro, None).await.expect("add"));
    }
    for i in 0..50 {
        let (_, token) = &good_users[i % 5];
        post(
            token.clone(),
            format!(
                r#"{{"ticker":"NASDAQ:AAPL","signal":"buy","price":"{}.5"}}"#,
                100 + i
            ),
        )
        .await;
        if i % 10 == 0 {
            post(poisoner.clone(), poison[i / 10].clone()).await;
        }
    }

    let _stop = start_workers(&prefix, &file).await;
    let client = prefix.client().await;
    let ingest = client.queue("ingest").await.expect("queue");
    let stats = eventually("every message settled", Duration::from_secs(30), || {
        let ingest = ingest.clone();
        async move {
            let s = ingest.stats().await.expect("stats");
            (s.completed_total + s.dead == 55).then_some(s)
        }
    })
    .await;
    // Nothing was tried twice: the good messages were stored on the first try.
    assert_eq!(stats.retried_total, 0, "{stats:?}");
    let count = |user: Option<i64>| {
        let pool = pool.clone();
        async move {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM signals WHERE $1::int8 IS NULL OR user_id <> $1",
            )
            .bind(user)
            .fetch_one(&pool)
            .await
            .expect("count");
            n
        }
    };
    assert_eq!(count(Some(poison_user.id)).await, 50, "good signals stored");
    // The poison: cleaned (the NUL bytes dropped, the time left out) or
    // buried (the price too large, the row the table refuses).
    let cleaned: Vec<(String, Option<String>, i32)> = sqlx::query_as(
        "SELECT signal_type, notes, extract(year FROM alert_time)::int4 FROM signals
         WHERE user_id = $1 ORDER BY id",
    )
    .bind(poison_user.id)
    .fetch_all(&pool)
    .await
    .expect("poison rows");
    assert_eq!(cleaned.len(), 3, "{cleaned:?}");
    assert_eq!(cleaned[0].0, "buynow");
    assert_eq!(cleaned[1].1.as_deref(), Some("ab"));
    assert!(cleaned[2].2 >= 2026, "the time was kept: {cleaned:?}");
    let buried = ingest.dead_letters(0, 10).await.expect("dead");
    let mut reasons: Vec<String> = buried
        .into_iter()
        .map(|d| d.last_error.unwrap_or_default())
        .collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons[0].contains("cannot store this message") && reasons[0].contains("no_poison"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("too large"), "{reasons:?}");
}

/// The trading application's own queues take no job from the API: a producer key
/// could otherwise forge signals (`ingest`), audit rows (`audit`), or
/// captures with other users' TradingView sessions (`screenshot`).
#[tokio::test]
async fn the_trading_queues_take_no_job_from_the_api() {
    let prefix = Prefix::new("pipe-reserved");
    let schema = TestSchema::new("reserved").await;
    let shots = std::env::temp_dir().join(format!("sluice-shots-{}", schema.name()));
    let section = section(&schema, "http://127.0.0.1:9/chart/{chart}".into(), &shots);
    let file = trading(section);
    let app = api(&prefix, file).await;
    let forged = r#"{"payload": {"user_id": 1, "chart_id": "x", "body": "Ticker: A\nSignal: b\nPrice: 1", "received_at_ms": 0, "signal_id": 1, "actor": "admin", "action": "x", "outcome": "ok"}}"#;
    for queue in ["ingest", "audit", "screenshot", "retention", "backup"] {
        let one = call(
            &app,
            Method::POST,
            &format!("/api/queues/{queue}/jobs"),
            None,
            Some(forged),
        )
        .await;
        assert_error(&one, StatusCode::FORBIDDEN, "reserved_queue");
        let batch = format!(r#"{{"jobs": [{}]}}"#, &forged[..forged.len()]);
        let many = call(
            &app,
            Method::POST,
            &format!("/api/queues/{queue}/jobs/batch"),
            None,
            Some(&batch),
        )
        .await;
        assert_error(&many, StatusCode::FORBIDDEN, "reserved_queue");
    }
    // (The audit queue has the request log's own events of these calls.)
    let client = prefix.client().await;
    for queue in ["ingest", "screenshot"] {
        if let Some(q) = client.existing_queue(queue).await.expect("lookup") {
            assert_eq!(q.stats().await.expect("stats").enqueued_total, 0, "{queue}");
        }
    }
    // Other queues still take jobs.
    let ok = call(
        &app,
        Method::POST,
        "/api/queues/orders/jobs",
        None,
        Some(forged),
    )
    .await;
    assert_eq!(ok.status, StatusCode::CREATED, "{}", ok.text);
}

/// Send raw bytes on a new connection to `addr`; the status line's code of
/// the answer (`None`: closed without one).
async fn raw_status(addr: std::net::SocketAddr, request: Vec<u8>) -> Option<u16> {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .expect("timeout");
        stream.write_all(&request).expect("write");
        let mut answer = [0u8; 64];
        let n = stream.read(&mut answer).unwrap_or(0);
        let text = String::from_utf8_lossy(&answer[..n]).into_owned();
        text.split(' ').nth(1).and_then(|s| s.parse().ok())
    })
    .await
    .expect("join")
}

/// A webhook's token is checked before its body is read (a stranger
/// cannot hold a connection open by sending the headers of a large body to
/// a made-up token), and one address that sends many unknown tokens is
/// refused before they cost the database a query each.
#[tokio::test]
async fn unknown_webhook_tokens_are_refused_before_the_body_and_limited_per_address() {
    let prefix = Prefix::new("pipe-tokens");
    let schema = TestSchema::new("tokens").await;
    let shots = std::env::temp_dir().join(format!("sluice-shots-{}", schema.name()));
    let section = section(&schema, "http://127.0.0.1:9/chart/{chart}".into(), &shots);
    let file = trading(section);
    let pool = schema.pool();
    let (_, token) = users::add(&pool, Plan::Premium, None).await.expect("add");
    let app = api(&prefix, file).await;
    let addr = common::serve_on_loopback(app).await;
    let headers_only = |token: &str| {
        format!(
            "POST /webhook/u/{token} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: 60000\r\n\r\n"
        )
        .into_bytes()
    };
    let whole = |token: &str| {
        let body = "Ticker: BINANCE:BTCUSDT\nSignal: buy\nPrice: 1";
        format!(
            "POST /webhook/u/{token} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    // The headers of a 60 kB body, and no body: an unknown token hears
    // 404 at once.
    assert_eq!(
        raw_status(addr, headers_only(&users::new_token())).await,
        Some(404)
    );
    // A known token works (and is cached).
    assert_eq!(raw_status(addr, whole(&token)).await, Some(202));
    // Many unknown tokens from one address: refused with 429 after a while.
    let mut statuses = Vec::new();
    for _ in 0..80 {
        statuses.push(raw_status(addr, whole(&users::new_token())).await);
    }
    assert!(
        statuses.iter().all(|s| matches!(s, Some(404) | Some(429))),
        "{statuses:?}"
    );
    assert_eq!(statuses.last(), Some(&Some(429)), "{statuses:?}");
    // The same unknown token again and again: refused, never 5xx.
    let same = users::new_token();
    for _ in 0..3 {
        let s = raw_status(addr, whole(&same)).await;
        assert!(matches!(s, Some(404) | Some(429)), "{s:?}");
    }
    // The user whose token is known is still served from that address.
    assert_eq!(raw_status(addr, whole(&token)).await, Some(202));
}

/// Strangers cannot flood the audit log: refusals of anonymous requests
/// are audited up to a budget a minute and the rest counted in one
/// summary event, while every authenticated action is still audited.
#[tokio::test]
async fn anonymous_refusals_cannot_crowd_the_audit_log() {
    use sluice::config::{ApiKeySection, Scope};
    let prefix = Prefix::new("pipe-audit-anon");
    let schema = TestSchema::new("auditanon").await;
    let shots = std::env::temp_dir().join(format!("sluice-shots-{}", schema.name()));
    let mut section = section(&schema, "http://127.0.0.1:9/chart/{chart}".into(), &shots);
    section.audit = true;
    section.audit_spill_file = std::env::temp_dir().join(format!("{}-spill.jsonl", schema.name()));
    let mut file = trading(section);
    file.file.api.keys = vec![ApiKeySection {
        name: "ops".into(),
        sha256: sluice::server::key_hash("admin-secret"),
        scope: Scope::Admin,
        requests_per_second: None,
    }];
    let pool = schema.pool();
    let app = api(&prefix, file.clone()).await;
    let long = "x".repeat(5_000);
    for i in 0..300 {
        let a = call(
            &app,
            Method::GET,
            &format!("/api/queues/{long}{i}"),
            None,
            None,
        )
        .await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    }
    let a = call(&app, Method::GET, "/api/queues", Some("admin-secret"), None).await;
    assert_eq!(a.status, StatusCode::OK);
    let _stop = start_workers(&prefix, &file).await;
    let () = eventually(
        "the operator's request audited",
        Duration::from_secs(30),
        || {
            let pool = pool.clone();
            async move {
                let (n,): (i64,) =
                    sqlx::query_as("SELECT count(*) FROM audit_logs WHERE actor = 'ops'")
                        .fetch_one(&pool)
                        .await
                        .expect("count");
                (n == 1).then_some(())
            }
        },
    )
    .await;
    let (anonymous, longest): (i64, Option<i32>) = sqlx::query_as(
        "SELECT count(*), max(length(target))::int4 FROM audit_logs WHERE actor = 'anonymous'",
    )
    .fetch_one(&pool)
    .await
    .expect("count");
    assert!(
        anonymous <= 61,
        "{anonymous} anonymous refusals audited one by one"
    );
    assert!(longest.is_some_and(|l| l <= 300), "{longest:?}");
}

/// With the trading application on, the served OpenAPI document lists its
/// routes under the tag `trading`, its one name (it was `pipeline`), and
/// no operation of the document carries the former name.
#[tokio::test]
async fn the_openapi_document_tags_the_applications_routes_trading() {
    let prefix = Prefix::new("pipe-openapi");
    let schema = TestSchema::new("openapi").await;
    let shots = std::env::temp_dir().join(format!("sluice-shots-{}", schema.name()));
    let config = trading(section(
        &schema,
        "http://127.0.0.1:1/{chart}".into(),
        &shots,
    ));
    let app = api(&prefix, config).await;
    let doc = call(&app, Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK, "{}", doc.text);
    let paths = doc.json["paths"].as_object().expect("paths");
    for (path, method) in [
        ("/webhook/u/{token}", "post"),
        ("/api/users/{id}/signals", "get"),
        ("/api/signals/{id}/result", "post"),
        ("/api/users/{id}/stats", "get"),
        ("/screenshots/{file}", "get"),
    ] {
        let tags = &paths[path][method]["tags"];
        assert_eq!(tags, &serde_json::json!(["trading"]), "{path}: {tags}");
    }
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("path item") {
            let tags = operation["tags"].to_string();
            assert!(!tags.contains("pipeline"), "{method} {path}: {tags}");
        }
    }
}
