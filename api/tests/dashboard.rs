//! The dashboard in Debian's Chromium (headless, driven over CDP) against a
//! running `sluice up` with the real Redis and PostgreSQL: login, counts
//! matching the API, live updates without reload, dead letters retried from
//! the page, pause stopping the workers, XSS payloads shown as text, CSRF
//! and read-only refusals. Screenshots of each page are saved under
//! `target/dashboard-screenshots/` (out of git) for people to look at.

use crate::common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use chromiumoxide::cdp::browser_protocol::emulation::SetDeviceMetricsOverrideParams;
use chromiumoxide::cdp::browser_protocol::page::CaptureScreenshotFormat;
use chromiumoxide::cdp::js_protocol::runtime::EvaluateParams;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::{Browser, BrowserConfig, Page};
use common::pg::TestSchema;
use common::{Prefix, free_port};
use futures::StreamExt;
use serde_json::{Value, json};
use sluice::server::key_hash;

/// `sluice up`, killed when dropped.
struct Sluice(Child);

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The HTTP endpoint the `orders` workers deliver to: 400 (a permanent
/// failure: the job is dead-lettered) while `failing` is on, else 200.
async fn delivery_target(failing: Arc<AtomicBool>) -> String {
    let app = Router::new().route(
        "/hook",
        post(move |body: String| {
            let failing = failing.clone();
            async move {
                if failing.load(Ordering::SeqCst) && body.contains("\"fail\":true") {
                    (axum::http::StatusCode::BAD_REQUEST, "refused on purpose")
                } else {
                    (axum::http::StatusCode::OK, "ok")
                }
            }
        }),
    );
    let addr = common::serve_on_loopback(app).await;
    format!("http://{addr}/hook")
}

/// Evaluate `js` in the page. While the page navigates (a form post, a
/// redirect), Chromium answers "Cannot find context with specified id": the
/// expression did not run, so it is sent again once the new page has a
/// context (at most 20 tries).
async fn eval(page: &Page, js: &str) -> Value {
    let mut tries = 0;
    loop {
        match try_eval(page, js).await {
            Ok(value) => return value,
            Err(e) if tries < 20 && e.contains("Cannot find context") => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("evaluate {js}: {e}"),
        }
    }
}

async fn try_eval(page: &Page, js: &str) -> Result<Value, String> {
    let params = EvaluateParams::builder()
        .expression(js)
        .await_promise(true)
        .return_by_value(true)
        .build()
        .expect("params");
    let result = page
        .evaluate_expression(params)
        .await
        .map_err(|e| e.to_string())?;
    Ok(result.value().cloned().unwrap_or(Value::Null))
}

/// Wait until the JS expression is true in the page (at most 20 s). An
/// evaluation that fails counts as "not yet": while the page navigates (a
/// form post, a redirect), Chromium answers "Cannot find context with
/// specified id" for the page that is going away.
async fn wait_until(page: &Page, js: &str) {
    let started = Instant::now();
    loop {
        if try_eval(page, js).await == Ok(Value::Bool(true)) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting for `{js}` on {}",
            eval(page, "location.href").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn goto(page: &Page, url: &str) {
    page.goto(url).await.expect("goto");
    wait_until(page, "document.readyState === 'complete'").await;
}

/// Click the element `selector` finds. The dashboard refreshes parts of
/// the page by itself, so the element found may be replaced before the
/// click lands ("Node is detached from document"), or between the query
/// and the look-up of the node it found ("Could not find node with given
/// id"): then it is found again.
async fn click(page: &Page, selector: &str) {
    let replaced = |e: &dyn std::fmt::Display| {
        let e = e.to_string();
        e.contains("detached") || e.contains("Could not find node")
    };
    let mut tries = 0;
    loop {
        let clicked = match page.find_element(selector).await {
            Ok(element) => element.click().await.map(|_| ()),
            Err(e) => Err(e),
        };
        match clicked {
            Ok(()) => return,
            Err(e) if tries < 20 && replaced(&e) => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("click {selector}: {e}"),
        }
    }
}

fn shots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    dir
}

async fn shoot(page: &Page, name: &str) {
    let png = page
        .screenshot(
            ScreenshotParams::builder()
                .format(CaptureScreenshotFormat::Png)
                .full_page(true)
                .build(),
        )
        .await
        .expect("screenshot");
    std::fs::write(shots_dir().join(format!("{name}.png")), png).expect("write screenshot");
}

struct Api {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Api {
    async fn enqueue(&self, queue: &str, payload: Value) -> String {
        let r: Value = self
            .http
            .post(format!("{}/api/queues/{queue}/jobs", self.base))
            .bearer_auth(&self.key)
            .header("content-type", "application/json")
            .body(json!({ "payload": payload }).to_string())
            .send()
            .await
            .expect("enqueue")
            .text()
            .await
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .expect("json");
        r["id"].as_str().expect("id").to_owned()
    }

    async fn send_get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .expect("get")
    }

    async fn get(&self, path: &str) -> Value {
        self.send_get(path)
            .await
            .text()
            .await
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .expect("json")
    }

    async fn status(&self, path: &str) -> u16 {
        self.send_get(path).await.status().as_u16()
    }

    /// Wait until `queue` has completed `n` jobs in all (completed jobs may
    /// leave only their counts behind).
    async fn wait_for_completed(&self, queue: &str, n: u64) {
        let started = Instant::now();
        while self.get(&format!("/api/queues/{queue}")).await["completed_total"] != json!(n) {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{queue} did not reach {n} completed jobs"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Enqueue `N` jobs on `orders` that its target refuses (while `failing`
/// is set), open its dead-letter page and wait until it lists them all.
async fn dead_letters_on_the_page<const N: usize>(
    page: &Page,
    base: &str,
    api: &Api,
) -> [String; N] {
    let mut ids = Vec::with_capacity(N);
    for _ in 0..N {
        ids.push(api.enqueue("orders", json!({ "fail": true })).await);
    }
    goto(page, &format!("{base}/dashboard/queues/orders/dead")).await;
    let all_listed = ids
        .iter()
        .map(|id| format!("document.querySelector('tr[data-job=\"{id}\"]') !== null"))
        .collect::<Vec<_>>()
        .join(" && ");
    wait_until(page, &all_listed).await;
    ids.try_into().expect("N ids")
}

#[tokio::test]
async fn operators_drive_the_queues_from_the_dashboard_in_a_real_browser() {
    let prefix = Prefix::new("dashboard");
    let schema = TestSchema::new("dashboard").await;
    let failing = Arc::new(AtomicBool::new(true));
    let target = delivery_target(failing.clone()).await;
    let admin_key = format!("admin-{:016x}", rand::random::<u64>());
    let read_key = format!("read-{:016x}", rand::random::<u64>());
    let port = free_port();
    let config = std::env::temp_dir().join(format!("{}.toml", prefix.name));
    std::fs::write(
        &config,
        format!(
            r#"redis_url = {redis:?}
prefix = {prefix:?}

[api]
open_health = true
[[api.keys]]
name = "ops"
sha256 = "{admin}"
scope = "admin"
[[api.keys]]
name = "viewer"
sha256 = "{read}"
scope = "read"

[[queues]]
name = "orders"
url = {target:?}
concurrency = 4

[[alerts]]
name = "orders-backlog"
kind = "queue_depth"
queue = "orders"
threshold = 1000

[[schedules]]
name = "nightly-report"
cron = "0 0 3 * * *"
queue = "reports"

[trading]
database_url = {db:?}
database_schema = {schema:?}
backup_cron = ""
retention_cron = ""
audit = false
"#,
            redis = prefix.url,
            prefix = prefix.name,
            admin = key_hash(&admin_key),
            read = key_hash(&read_key),
            db = schema.db.url,
            schema = schema.name(),
        ),
    )
    .expect("config");
    let _sluice = Sluice(
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("--config")
            .arg(&config)
            .args(["up", "--listen", &format!("127.0.0.1:{port}")])
            .env("SLUICE_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start sluice up"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let api = Api {
        base: base.clone(),
        key: admin_key.clone(),
        http: reqwest::Client::new(),
    };
    let started = Instant::now();
    while api
        .http
        .get(format!("{base}/health/ready"))
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "sluice up did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One stored signal for the signals page.
    let pool = schema.pool();
    let (user, _) = sluice_trading::users::add(&pool, sluice_trading::plan::Plan::Pro, None)
        .await
        .expect("user");
    sqlx::query(
        "INSERT INTO signals (job_id, user_id, ticker, exchange, symbol, price, signal_type, alert_time, screenshot_status, screenshot_error)
         VALUES ('dash-1', $1, 'BINANCE:BTCUSDT', 'BINANCE', 'BTCUSDT', 67890.5, 'Bullish <b>divergence</b>', now(), 'failed', 'chart timed out')",
    )
    .bind(user.id)
    .execute(&pool)
    .await
    .expect("signal");

    let data_dir = std::env::temp_dir().join(format!("{}-chromium", prefix.name));
    let (browser, mut handler) = Browser::launch(
        BrowserConfig::builder()
            .chrome_executable("/usr/bin/chromium")
            .no_sandbox()
            .user_data_dir(&data_dir)
            .window_size(1280, 900)
            .args(sluice_trading::browser::FLAGS)
            .build()
            .expect("browser config"),
    )
    .await
    .expect("launch /usr/bin/chromium");
    let driver = tokio::spawn(async move { while handler.next().await.is_some() {} });
    let page = browser.new_page("about:blank").await.expect("page");

    // Not logged in: the login form; a wrong key is refused.
    goto(&page, &format!("{base}/dashboard")).await;
    wait_until(&page, "location.pathname === '/dashboard/login'").await;
    shoot(&page, "login").await;
    click(&page, "#key").await;
    page.find_element("#key")
        .await
        .expect("key")
        .type_str("wrong-key")
        .await
        .expect("type");
    click(&page, "button[type=submit]").await;
    wait_until(&page, "document.querySelector('.error') !== null").await;

    // Log in as the admin.
    goto(&page, &format!("{base}/dashboard/login")).await;
    click(&page, "#key").await;
    page.find_element("#key")
        .await
        .expect("key")
        .type_str(&admin_key)
        .await
        .expect("type");
    click(&page, "button[type=submit]").await;
    wait_until(
        &page,
        "location.pathname === '/dashboard' && document.querySelector('table.queues') !== null",
    )
    .await;
    let cookie_visible = eval(&page, "document.cookie.includes('sluice_session')").await;
    assert_eq!(
        cookie_visible,
        json!(false),
        "the session cookie is HttpOnly"
    );

    // Counts match the API, and update live as jobs arrive.
    for i in 0..3 {
        api.enqueue("reports", json!({ "report": i })).await;
    }
    wait_until(
        &page,
        "(document.querySelector('tr[data-queue=reports] [data-field=waiting]') || {}).textContent === '3'",
    )
    .await;
    let stats = api.get("/api/queues/reports").await;
    assert_eq!(stats["waiting"], json!(3));
    // `sluice up` runs one worker process; on a busy machine it may
    // register after the page first drew, and the live fragment shows it.
    wait_until(
        &page,
        "(document.querySelector('[data-testid=workers]') || {}).textContent === '1'",
    )
    .await;
    let workers_shown = eval(
        &page,
        "document.querySelector('[data-testid=workers]').textContent",
    )
    .await;
    assert_eq!(
        workers_shown,
        json!("1"),
        "`sluice up` runs one worker process"
    );
    shoot(&page, "overview").await;

    // A job enqueued through the API appears on the queue page without reload.
    goto(&page, &format!("{base}/dashboard/queues/reports")).await;
    eval(&page, "window.__notReloaded = true").await;
    let fresh = api.enqueue("reports", json!({ "report": "fresh" })).await;
    wait_until(
        &page,
        &format!("document.querySelector('tr[data-job=\"{fresh}\"]') !== null"),
    )
    .await;
    assert_eq!(
        eval(&page, "window.__notReloaded === true").await,
        json!(true)
    );
    shoot(&page, "queue").await;

    // XSS payloads render as text.
    let evil = api
        .enqueue(
            "reports",
            json!({ "html": "<script>window.__xss=1</script>\"><img src=x onerror=\"window.__xss=2\">" }),
        )
        .await;
    goto(
        &page,
        &format!("{base}/dashboard/queues/reports/jobs/{evil}"),
    )
    .await;
    let payload = eval(
        &page,
        "document.querySelector('[data-testid=payload]').textContent",
    )
    .await;
    assert!(
        payload
            .as_str()
            .is_some_and(|p| p.contains("<script>window.__xss=1</script>")),
        "{payload}"
    );
    assert_eq!(eval(&page, "typeof window.__xss").await, json!("undefined"));
    assert_eq!(
        eval(&page, "document.querySelectorAll('main img').length").await,
        json!(0)
    );
    shoot(&page, "job").await;

    // A waiting job is cancelled from its page: it becomes a dead letter.
    eval(&page, "window.confirm = () => true").await;
    click(&page, "[data-testid=cancel]").await;
    wait_until(
        &page,
        "(document.querySelector('[data-testid=state]') || {}).textContent === 'dead'",
    )
    .await;
    let cancelled = api.get(&format!("/api/queues/reports/jobs/{evil}")).await;
    assert_eq!(cancelled["last_error"], json!("cancelled by an operator"));

    // A job dead-lettered by its handler is retried from the page and
    // leaves the dead list.
    let [doomed, discarded] = dead_letters_on_the_page(&page, &base, &api).await;
    shoot(&page, "dead-letters").await;
    // Another is deleted from the page: gone for good.
    eval(&page, "window.confirm = () => true").await;
    click(
        &page,
        &format!("tr[data-job=\"{discarded}\"] button[data-testid=delete]"),
    )
    .await;
    wait_until(&page, &format!("location.pathname === '/dashboard/queues/orders/dead' && document.querySelector('tr[data-job=\"{discarded}\"]') === null")).await;
    assert_eq!(
        api.status(&format!("/api/queues/orders/jobs/{discarded}"))
            .await,
        404
    );
    failing.store(false, Ordering::SeqCst);
    click(
        &page,
        &format!("tr[data-job=\"{doomed}\"] button[data-testid=retry]"),
    )
    .await;
    wait_until(&page, &format!("location.pathname === '/dashboard/queues/orders/dead' && document.querySelector('tr[data-job=\"{doomed}\"]') === null")).await;
    api.wait_for_completed("orders", 1).await;

    // All dead letters at once: purged from the page, then retried.
    failing.store(true, Ordering::SeqCst);
    dead_letters_on_the_page::<2>(&page, &base, &api).await;
    eval(&page, "window.confirm = () => true").await;
    click(&page, "[data-testid=purge]").await;
    wait_until(
        &page,
        "(document.querySelector('[data-testid=dead-count]') || {}).textContent === '0 dead letters'",
    )
    .await;
    assert_eq!(api.get("/api/queues/orders").await["dead"], json!(0));
    dead_letters_on_the_page::<1>(&page, &base, &api).await;
    failing.store(false, Ordering::SeqCst);
    eval(&page, "window.confirm = () => true").await;
    click(&page, "[data-testid=retry-all]").await;
    api.wait_for_completed("orders", 2).await;

    // A POST without the CSRF token is refused, and changes nothing.
    let status = eval(
        &page,
        "fetch('/dashboard/queues/orders/pause', {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'}, body: 'x=1'}).then(r => r.status)",
    )
    .await;
    assert_eq!(status, json!(403));
    assert_eq!(api.get("/api/queues/orders").await["paused"], json!(false));
    // A dead letter's actions are retry and delete; any other is no page.
    let status = eval(
        &page,
        "fetch('/dashboard/queues/orders/dead/some-id/explode', {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'}, body: 'x=1'}).then(r => r.status)",
    )
    .await;
    assert_eq!(status, json!(404));

    // Pausing from the page stops the workers claiming; resuming restarts them.
    goto(&page, &format!("{base}/dashboard/queues/orders")).await;
    eval(&page, "window.confirm = () => true").await;
    click(&page, "[data-testid=pause]").await;
    wait_until(
        &page,
        "document.querySelector('[data-testid=paused]') !== null",
    )
    .await;
    assert_eq!(api.get("/api/queues/orders").await["paused"], json!(true));
    let completed_before = api.get("/api/queues/orders").await["completed_total"].clone();
    for i in 0..5 {
        api.enqueue("orders", json!({ "order": i })).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let paused = api.get("/api/queues/orders").await;
    assert_eq!(paused["waiting"], json!(5), "{paused}");
    assert_eq!(paused["completed_total"], completed_before);
    shoot(&page, "queue-paused").await;
    click(&page, "[data-testid=resume]").await;
    wait_until(
        &page,
        "document.querySelector('[data-testid=running]') !== null",
    )
    .await;
    let started = Instant::now();
    while api.get("/api/queues/orders").await["waiting"] != json!(0) {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "workers did not resume"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Workers, schedules and signals pages.
    goto(&page, &format!("{base}/dashboard/workers")).await;
    let pid = _sluice.0.id().to_string();
    wait_until(
        &page,
        &format!("document.querySelector('table.workers').textContent.includes('{pid}')"),
    )
    .await;
    shoot(&page, "workers").await;
    goto(&page, &format!("{base}/dashboard/schedules")).await;
    wait_until(
        &page,
        "document.querySelector('table.schedules').textContent.includes('nightly-report')",
    )
    .await;
    shoot(&page, "schedules").await;
    // An alert rule, silenced for an hour from its page.
    goto(&page, &format!("{base}/dashboard/alerts")).await;
    wait_until(
        &page,
        "document.querySelector(\"tr[data-alert='orders-backlog']\") !== null",
    )
    .await;
    click(
        &page,
        "tr[data-alert='orders-backlog'] [data-testid=silence]",
    )
    .await;
    wait_until(
        &page,
        "document.querySelector(\"tr[data-alert='orders-backlog'] [data-testid=unsilence]\") !== null",
    )
    .await;
    let alerts = api.get("/api/alerts").await;
    assert!(
        alerts["alerts"][0]["silenced_until_ms"].as_u64().is_some(),
        "{alerts}"
    );
    assert_eq!(alerts["alerts"][0]["state"], json!("ok"), "{alerts}");
    shoot(&page, "alerts").await;
    click(
        &page,
        "tr[data-alert='orders-backlog'] [data-testid=unsilence]",
    )
    .await;
    wait_until(
        &page,
        "document.querySelector(\"tr[data-alert='orders-backlog'] [data-testid=silence]\") !== null",
    )
    .await;
    // The breaker of the orders target: forced open, then released.
    goto(&page, &format!("{base}/dashboard/breakers")).await;
    let row = "tr[data-breaker^='http:127.0.0.1:']";
    wait_until(
        &page,
        &format!("document.querySelector(\"{row}\") !== null"),
    )
    .await;
    click(&page, &format!("{row} [data-testid=force-open]")).await;
    wait_until(
        &page,
        &format!("document.querySelector(\"{row}\").textContent.includes('forced open')"),
    )
    .await;
    let orders_breaker = |all: Value| {
        all["breakers"]
            .as_array()
            .and_then(|b| {
                b.iter()
                    .find(|b| {
                        b["name"]
                            .as_str()
                            .is_some_and(|n| n.starts_with("http:127.0.0.1:"))
                    })
                    .cloned()
            })
            .unwrap_or(Value::Null)
    };
    let forced = orders_breaker(api.get("/api/breakers").await);
    assert_eq!(forced["forced"], json!("open"), "{forced}");
    shoot(&page, "breakers").await;
    click(&page, &format!("{row} [data-testid=force-none]")).await;
    wait_until(
        &page,
        &format!("document.querySelector(\"{row} [data-testid=force-open]\") !== null"),
    )
    .await;
    let released = orders_breaker(api.get("/api/breakers").await);
    assert_eq!(released["forced"], Value::Null, "{released}");
    goto(&page, &format!("{base}/dashboard/signals?ticker=BTCUSDT")).await;
    wait_until(&page, "document.querySelector('[data-signal]') !== null").await;
    let text = eval(&page, "document.querySelector('[data-signal]').textContent").await;
    assert!(
        text.as_str().is_some_and(
            |t| t.contains("Bullish <b>divergence</b>") && t.contains("chart timed out")
        ),
        "{text}"
    );
    shoot(&page, "signals").await;

    // On a phone-sized screen the page does not overflow sideways.
    page.execute(SetDeviceMetricsOverrideParams::new(390, 844, 2.0, true))
        .await
        .expect("phone viewport");
    goto(&page, &format!("{base}/dashboard")).await;
    assert_eq!(
        eval(
            &page,
            "document.documentElement.scrollWidth <= window.innerWidth + 1"
        )
        .await,
        json!(true)
    );
    shoot(&page, "overview-phone").await;
    page.execute(SetDeviceMetricsOverrideParams::new(1280, 900, 1.0, false))
        .await
        .expect("desktop viewport");

    // A read-only key sees no actions and cannot act even with its token.
    goto(&page, &format!("{base}/dashboard")).await;
    click(&page, "form[action='/dashboard/logout'] button").await;
    wait_until(&page, "location.pathname === '/dashboard/login'").await;
    click(&page, "#key").await;
    page.find_element("#key")
        .await
        .expect("key")
        .type_str(&read_key)
        .await
        .expect("type");
    click(&page, "button[type=submit]").await;
    wait_until(&page, "location.pathname === '/dashboard'").await;
    goto(&page, &format!("{base}/dashboard/queues/orders")).await;
    assert_eq!(
        eval(
            &page,
            "document.querySelector('[data-testid=pause]') === null"
        )
        .await,
        json!(true)
    );
    let status = eval(
        &page,
        "fetch('/dashboard/queues/orders/pause', {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'}, body: 'csrf=' + document.querySelector('input[name=csrf]').value}).then(r => r.status)",
    )
    .await;
    assert_eq!(status, json!(403));
    assert_eq!(api.get("/api/queues/orders").await["paused"], json!(false));
    shoot(&page, "queue-read-only").await;

    drop(browser);
    driver.abort();
    let _ = std::fs::remove_dir_all(&data_dir);
    let _ = std::fs::remove_file(&config);
}
