//! The trading application's handlers one by one: screenshots in headless Chromium
//! (timeout, crashed browser, missing browser), retention, and backups
//! with a full restore round trip.

use crate::common;

use std::time::Duration;

use common::Prefix;
use common::chart::{ChartServer, png_facts};
use common::pg::TestSchema;
use sluice_engine::{JobOptions, Outcome};
use sluice_trading::audit::{AuditEvent, write_events};
use sluice_trading::browser::{BrowserPool, BrowserSettings};
use sluice_trading::plan::Plan;
use sluice_trading::retention::{self, RetentionPolicy};
use sluice_trading::storage::{LocalStore, ScreenshotStore};
use sluice_trading::users::{self, SessionCookie};

fn browser(tabs: usize) -> std::sync::Arc<BrowserPool> {
    BrowserPool::new(BrowserSettings {
        tabs,
        ..BrowserSettings::default()
    })
}

#[tokio::test]
async fn cookies_never_pass_between_captures_and_a_crashed_browser_is_replaced() {
    let charts = ChartServer::start().await;
    let pool = browser(2);
    let url = format!("http://127.0.0.1:{}/chart/one", charts.port);
    let cookie = SessionCookie {
        name: "sessionid".into(),
        value: "secret".into(),
        domain: None,
        path: None,
    };
    let png = pool
        .capture(&url, std::slice::from_ref(&cookie), Duration::from_secs(20))
        .await
        .expect("first capture");
    let (w, h, colours) = png_facts(&png);
    assert_eq!((w, h), (1280, 720));
    assert!(colours > 2);
    // A second capture without cookies: the first user's
    // cookie is gone.
    pool.capture(&url, &[], Duration::from_secs(20))
        .await
        .expect("second capture");
    let seen = charts.cookies_seen.lock().expect("lock").clone();
    assert!(seen[0].contains("sessionid=secret"), "{seen:?}");
    assert!(
        !seen[1].contains("sessionid"),
        "cookies leaked between captures: {seen:?}"
    );

    // Kill the browser: the next capture launches a new one.
    let pid = pool.browser_pid().await.expect("a browser runs");
    std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut recovered = false;
    for _ in 0..3 {
        if pool
            .capture(&url, &[], Duration::from_secs(20))
            .await
            .is_ok()
        {
            recovered = true;
            break;
        }
    }
    assert!(recovered, "no capture after the browser was killed");
    assert_ne!(pool.browser_pid().await, Some(pid));
    pool.close().await;
}

/// Each capture has a browser context of its own: what one user's chart
/// page leaves in the browser (local storage, cache) is gone for the next
/// capture, not only the cookies.
#[tokio::test]
async fn each_capture_starts_from_a_fresh_browser_context() {
    let charts = ChartServer::start().await;
    let pool = browser(1);
    for id in ["first-user", "second-user", "third-user"] {
        let url = format!("http://127.0.0.1:{}/storage/{id}", charts.port);
        pool.capture(&url, &[], Duration::from_secs(20))
            .await
            .expect("capture");
    }
    let seen = charts.storage_seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        ["null", "null", "null"],
        "storage leaked between captures"
    );
    pool.close().await;
}

/// One user's charts that never get ready, or do not exist, say nothing
/// about the chart host: they do not open its breaker for everyone. A
/// chart that does not exist is buried at once, without retries.
#[tokio::test]
async fn one_users_bad_charts_neither_open_the_breaker_nor_get_retried() {
    use sluice_engine::testing::{TestJob, TestWorker};
    use sluice_engine::{BreakerConfig, BreakerState, Typed};
    use sluice_trading::screenshot::{ScreenshotHandler, ScreenshotJob, ScreenshotSettings};
    let charts = ChartServer::start().await;
    let schema = TestSchema::new("shot_breaker").await;
    let prefix = Prefix::new("shot-breaker");
    let pool = schema.pool();
    let client = prefix.client().await;
    let (user, _) = users::add(&pool, Plan::Pro, None).await.expect("user");
    let ids: Vec<(i64,)> = sqlx::query_as(
        "INSERT INTO signals (job_id, user_id, ticker, symbol, signal_type, alert_time, chart_id)
         SELECT 'j' || g, $1, 'X:Y', 'Y', 'buy', now(),
                CASE WHEN g <= 12 THEN 'never-' || (g - 1) WHEN g = 13 THEN 'missing-1' ELSE 'good-1' END
         FROM generate_series(1, 14) g ORDER BY g
         RETURNING id",
    )
    .bind(user.id)
    .fetch_all(&pool)
    .await
    .expect("signals");
    let breaker = client
        .breakers()
        .get(
            "browser:test-host",
            BreakerConfig {
                failure_rate: 50.0,
                min_calls: 2,
                ..BreakerConfig::default()
            },
        )
        .await
        .expect("breaker");
    let dir = std::env::temp_dir().join(format!("sluice-shots-{}", schema.name()));
    let handler = ScreenshotHandler::new(
        pool.clone(),
        None,
        browser(6),
        ScreenshotStore::Local(LocalStore::new(&dir, "/screenshots")),
        ScreenshotSettings {
            chart_url: format!("http://127.0.0.1:{}/c/{{chart}}", charts.port),
            timeout: Duration::from_secs(5),
        },
    )
    .with_breaker(breaker);
    let worker = TestWorker::new(Typed(handler));
    let shot = |signal: usize, chart: &str| {
        TestJob::new(&ScreenshotJob {
            signal_id: ids[signal].0,
            user_id: user.id,
            chart_id: chart.to_owned(),
        })
        .attempt(1, 5)
    };
    // Twelve, enough for the breaker to be sure of a failure rate; three
    // at a time, the user's share of the six tabs.
    for round in 0..4 {
        let never: Vec<_> = (round * 3..round * 3 + 3)
            .map(|n| worker.perform(shot(n, &format!("never-{n}"))))
            .collect();
        for outcome in futures::future::join_all(never).await {
            assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
        }
    }
    let status = client
        .breakers()
        .status("browser:test-host")
        .await
        .expect("status")
        .expect("known");
    assert_eq!(
        status.state,
        BreakerState::Closed,
        "pages that never got ready opened the breaker"
    );
    // A chart that does not exist: buried at once, the signal says why.
    let outcome = worker.perform(shot(12, "missing-1")).await;
    assert!(
        matches!(&outcome, Outcome::Bury(r) if r.contains("404")),
        "{outcome:?}"
    );
    let (state, error): (String, Option<String>) =
        sqlx::query_as("SELECT screenshot_status, screenshot_error FROM signals WHERE id = $1")
            .bind(ids[12].0)
            .fetch_one(&pool)
            .await
            .expect("signal");
    assert_eq!(state, "failed");
    assert!(error.is_some_and(|e| e.contains("404")));
    // The host is still served.
    let outcome = worker.perform(shot(13, "good-1")).await;
    assert!(matches!(outcome, Outcome::DoneWith(_)), "{outcome:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A screenshot job names its signal; the user whose cookies open the
/// chart, and the chart, are the signal's, whatever else the job says: a
/// job that names another user captures nothing with their session.
#[tokio::test]
async fn a_capture_uses_its_signals_user_and_chart_not_the_jobs() {
    use sluice_engine::Typed;
    use sluice_engine::testing::{TestJob, TestWorker};
    use sluice_trading::screenshot::{ScreenshotHandler, ScreenshotJob, ScreenshotSettings};
    let charts = ChartServer::start().await;
    let schema = TestSchema::new("shot_owner").await;
    let pool = schema.pool();
    let (victim, _) = users::add(&pool, Plan::Pro, None).await.expect("user");
    let (owner, _) = users::add(&pool, Plan::Pro, None).await.expect("user");
    let key = sluice_trading::secrets::CookieCipher::generate_key();
    let cipher = sluice_trading::secrets::CookieCipher::from_base64(&key).expect("key");
    users::set_cookies(
        &pool,
        &cipher,
        victim.id,
        &users::parse_cookies(r#"{"sessionid": "secret"}"#).expect("cookies"),
        None,
    )
    .await
    .expect("cookies");
    let (signal,): (i64,) = sqlx::query_as(
        "INSERT INTO signals (job_id, user_id, ticker, symbol, signal_type, alert_time, chart_id)
         VALUES ('j1', $1, 'X:Y', 'Y', 'buy', now(), 'owners-chart') RETURNING id",
    )
    .bind(owner.id)
    .fetch_one(&pool)
    .await
    .expect("signal");
    let dir = std::env::temp_dir().join(format!("sluice-shots-{}", schema.name()));
    let handler = ScreenshotHandler::new(
        pool.clone(),
        Some(cipher),
        browser(1),
        ScreenshotStore::Local(LocalStore::new(&dir, "/screenshots")),
        ScreenshotSettings {
            chart_url: format!("http://127.0.0.1:{}/c/{{chart}}", charts.port),
            timeout: Duration::from_secs(20),
        },
    );
    let forged = TestJob::new(&ScreenshotJob {
        signal_id: signal,
        user_id: victim.id,
        chart_id: "missing-victims-chart".into(),
    });
    let outcome = TestWorker::new(Typed(handler)).perform(forged).await;
    assert!(matches!(outcome, Outcome::DoneWith(_)), "{outcome:?}");
    let seen = charts.cookies_seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        !seen[0].contains("secret"),
        "the victim's session was used: {seen:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The audit writer stamps what it can vouch for: an event dated after its
/// job was made (or out of PostgreSQL's range) gets the job's time, and a
/// NUL byte in a field cannot make the batch fail for every event in it.
#[tokio::test]
async fn the_audit_writer_stamps_its_own_time_and_a_bad_event_fails_no_batch() {
    use sluice_engine::testing::{TestJob, TestWorker};
    use sluice_engine::{Outcome, Typed};
    use sluice_trading::audit::AuditHandler;
    let schema = TestSchema::new("audit_stamp").await;
    let pool = schema.pool();
    let worker = TestWorker::batched(Typed(AuditHandler::new(pool.clone())));
    let mut forged = AuditEvent::now("ops", "POST /x", "ok");
    forged.at_ms = 32_503_680_000_000; // the year 3000
    let mut far = AuditEvent::now("ops", "POST /y", "ok");
    far.at_ms = i64::MAX / 2;
    let mut nul = AuditEvent::now("op\u{0}s", "POST /z", "ok");
    nul.detail = Some("a\u{0}b".into());
    let mut jobs = vec![forged, far, nul];
    for n in 0..20 {
        jobs.push(AuditEvent::now("ops", format!("GET /{n}"), "ok"));
    }
    let outcomes = worker
        .perform_batch(
            jobs.iter()
                .enumerate()
                .map(|(n, e)| TestJob::new(e).id(&format!("ev-{n}")))
                .collect(),
        )
        .await;
    assert!(
        outcomes.iter().all(|o| matches!(o, Outcome::Done)),
        "{outcomes:?}"
    );
    let (rows, latest): (i64, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("SELECT count(*), max(at) FROM audit_logs")
            .fetch_one(&pool)
            .await
            .expect("rows");
    assert_eq!(rows, 23);
    assert!(
        latest <= chrono::Utc::now(),
        "an event dated {latest} was believed"
    );
    let (detail,): (Option<String>,) =
        sqlx::query_as("SELECT detail FROM audit_logs WHERE action = 'POST /z'")
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!(detail.as_deref(), Some("ab"));
}

/// One user's captures take at most half the browser's tabs of a worker
/// process: the rest wait (without spending an attempt) while another
/// user's capture goes through.
#[tokio::test]
async fn one_user_cannot_take_every_tab() {
    use sluice_engine::Typed;
    use sluice_engine::testing::{TestJob, TestWorker};
    use sluice_trading::screenshot::{ScreenshotHandler, ScreenshotJob, ScreenshotSettings};
    let charts = ChartServer::start().await;
    let schema = TestSchema::new("shot_budget").await;
    let pool = schema.pool();
    let (greedy, _) = users::add(&pool, Plan::Premium, None).await.expect("user");
    let (other, _) = users::add(&pool, Plan::Free, None).await.expect("user");
    let insert = |user: i64, chart: &'static str| {
        let pool = pool.clone();
        async move {
            let (id,): (i64,) = sqlx::query_as(
                "INSERT INTO signals (job_id, user_id, ticker, symbol, signal_type, alert_time, chart_id)
                 VALUES (gen_random_uuid()::text, $1, 'X:Y', 'Y', 'buy', now(), $2) RETURNING id",
            )
            .bind(user)
            .bind(chart)
            .fetch_one(&pool)
            .await
            .expect("signal");
            TestJob::new(&ScreenshotJob {
                signal_id: id,
                user_id: user,
                chart_id: chart.into(),
            })
            .attempt(1, 5)
        }
    };
    let dir = std::env::temp_dir().join(format!("sluice-shots-{}", schema.name()));
    let handler = ScreenshotHandler::new(
        pool.clone(),
        None,
        browser(4),
        ScreenshotStore::Local(LocalStore::new(&dir, "/screenshots")),
        ScreenshotSettings {
            chart_url: format!("http://127.0.0.1:{}/c/{{chart}}", charts.port),
            // Long enough for a capture on a loaded machine; the greedy
            // user's pages never draw, so their captures take all of it.
            timeout: Duration::from_secs(15),
        },
    );
    let worker = TestWorker::new(Typed(handler));
    let mut greedy_jobs = Vec::new();
    for _ in 0..4 {
        greedy_jobs.push(insert(greedy.id, "never-x").await);
    }
    let others = insert(other.id, "good-1").await;
    let (greedy_outcomes, other_outcome) = tokio::join!(
        futures::future::join_all(greedy_jobs.into_iter().map(|j| worker.perform(j))),
        async {
            // After the greedy user's captures have started.
            tokio::time::sleep(Duration::from_millis(300)).await;
            worker.perform(others).await
        }
    );
    let snoozed = greedy_outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Snooze(_)))
        .count();
    assert_eq!(snoozed, 2, "{greedy_outcomes:?}");
    assert!(
        matches!(other_outcome, Outcome::DoneWith(_)),
        "{other_outcome:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_page_that_never_gets_ready_times_out_and_a_missing_browser_is_an_error() {
    let charts = ChartServer::start().await;
    let pool = browser(1);
    let url = format!("http://127.0.0.1:{}/never/x", charts.port);
    let err = pool
        .capture(&url, &[], Duration::from_secs(2))
        .await
        .expect_err("times out");
    assert!(err.to_string().contains("within"), "{err}");
    pool.close().await;

    let missing = BrowserPool::new(BrowserSettings {
        executable: "/nonexistent/chromium".into(),
        ..BrowserSettings::default()
    });
    let err = missing
        .capture(&url, &[], Duration::from_secs(5))
        .await
        .expect_err("no browser");
    assert!(
        err.to_string()
            .contains("cannot launch /nonexistent/chromium"),
        "{err}"
    );
}

#[tokio::test]
async fn retention_deletes_old_rows_in_batches_and_files_no_signal_shows() {
    let schema = TestSchema::new("retention").await;
    let pool = schema.pool();
    let dir = std::env::temp_dir().join(format!("sluice-ret-{}", schema.name()));
    let store = LocalStore::new(&dir, "/screenshots");
    let (user, _) = users::add(&pool, Plan::Basic, None).await.expect("user");
    let only_old = store.put(b"old picture").await.expect("put");
    let shared = store.put(b"shared picture").await.expect("put");
    for (i, (age_days, url)) in [(8, &only_old), (9, &shared), (1, &shared)]
        .into_iter()
        .enumerate()
    {
        sqlx::query(
            "INSERT INTO signals (job_id, user_id, ticker, symbol, signal_type, alert_time,
                                  screenshot_status, screenshot_url, created_at)
             VALUES ($1, $2, 'X', 'X', 'buy', now(), 'completed', $3,
                     now() - make_interval(days => $4))",
        )
        .bind(format!("job-{i}"))
        .bind(user.id)
        .bind(url)
        .bind(age_days)
        .execute(&pool)
        .await
        .expect("insert");
    }
    // 2,500 old signals without files: three batches.
    sqlx::query(
        "INSERT INTO signals (job_id, user_id, ticker, symbol, signal_type, alert_time, created_at)
         SELECT 'bulk-' || g, $1, 'X', 'X', 'buy', now(), now() - interval '30 days'
         FROM generate_series(1, 2500) g",
    )
    .bind(user.id)
    .execute(&pool)
    .await
    .expect("bulk");
    let mut old = AuditEvent::now("tester", "GET /x", "ok");
    old.at_ms -= 91 * 86_400_000;
    let recent = AuditEvent::now("tester", "GET /y", "ok");
    write_events(&pool, &[("a1".into(), old), ("a2".into(), recent)])
        .await
        .expect("audit");

    let removed = retention::run(
        &pool,
        &ScreenshotStore::Local(store.clone()),
        RetentionPolicy::default(),
    )
    .await
    .expect("retention");
    assert_eq!(removed.signals, 2502);
    assert_eq!(removed.screenshots, 1);
    assert_eq!(removed.audit_logs, 1);
    assert!(store.path_of(&only_old).is_some_and(|p| !p.exists()));
    assert!(
        store.path_of(&shared).is_some_and(|p| p.exists()),
        "a file a recent signal shows is kept"
    );
    let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM signals")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(left, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every unfinished job of `queue`: id and state, sorted.
async fn ids_and_states(queue: &sluice_engine::Queue) -> Vec<(String, &'static str)> {
    let mut out: Vec<(String, &'static str)> = queue
        .export()
        .await
        .expect("export")
        .into_iter()
        .map(|r| (r.id.clone(), r.state().as_str()))
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn a_backup_restores_into_an_empty_database_and_redis() {
    let backup_key = sluice_trading::backup::BackupKey::from_base64(
        &sluice_trading::secrets::CookieCipher::generate_key(),
    )
    .expect("key");
    let source = TestSchema::new("backup_src").await;
    let src_prefix = Prefix::new("backup-src");
    let pool = source.pool();
    let client = src_prefix.client().await;
    let (user, _) = users::add(&pool, Plan::Premium, None).await.expect("user");
    users::add(&pool, Plan::Free, None).await.expect("user");
    let cipher = sluice_trading::secrets::CookieCipher::from_base64(
        &sluice_trading::secrets::CookieCipher::generate_key(),
    )
    .expect("key");
    users::set_cookies(
        &pool,
        &cipher,
        user.id,
        &users::parse_cookies(r#"{"a":"b"}"#).expect("c"),
        Some("c1"),
    )
    .await
    .expect("cookies");
    sqlx::query(
        "INSERT INTO signals (job_id, user_id, ticker, symbol, signal_type, alert_time, price, notes)
         SELECT 'j' || g, $1, 'BINANCE:BTCUSDT', 'BTCUSDT', 'buy', now(), 67890.5, E'tab\\there'
         FROM generate_series(1, 300) g",
    )
    .bind(user.id)
    .execute(&pool)
    .await
    .expect("signals");
    let events: Vec<(String, AuditEvent)> = (0..50)
        .map(|i| (format!("e{i}"), AuditEvent::now("tester", "POST /x", "ok")))
        .collect();
    write_events(&pool, &events).await.expect("audit");
    let q = client.queue("ingest").await.expect("queue");
    q.enqueue_value(&"waiting", JobOptions::new().priority(2))
        .await
        .expect("enqueue");
    q.enqueue_value(&"later", JobOptions::new().delay(Duration::from_secs(3600)))
        .await
        .expect("enqueue");
    let keyed = q
        .enqueue_value(
            &"keyed",
            JobOptions::new().priority(9).idempotency_key("alert-77"),
        )
        .await
        .expect("enqueue");
    q.enqueue_value(&"doomed", JobOptions::new())
        .await
        .expect("enqueue");
    let claimed = q.claim("w", 1).await.expect("claim");
    q.settle(&claimed[0], Outcome::Bury("broken".into()))
        .await
        .expect("bury");

    let dir = std::env::temp_dir().join(format!("sluice-backups-{}", source.name()));
    let mut last = None;
    for _ in 0..3 {
        last = Some(
            sluice_trading::backup::backup(&pool, &client, &dir, 2, Some(&backup_key))
                .await
                .expect("backup"),
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let written = last.expect("a backup");
    assert_eq!(
        sluice_trading::backup::list(&dir).expect("list").len(),
        2,
        "only the newest 2 are kept"
    );
    assert_eq!(written.rows["signals"], 300);
    assert_eq!(written.jobs["ingest"], 4);

    let target = TestSchema::new("backup_dst").await;
    let dst_prefix = Prefix::new("backup-dst");
    let dst_pool = target.pool();
    let dst_client = dst_prefix.client().await;
    let restored =
        sluice_trading::backup::restore(&dst_pool, &dst_client, &written.file, Some(&backup_key))
            .await
            .expect("restore");
    assert_eq!(restored.rows, written.rows);
    for table in sluice_trading::backup::TABLES {
        let count = |p: sqlx::PgPool| async move {
            let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {table}"))
                .fetch_one(&p)
                .await
                .expect("count");
            n
        };
        assert_eq!(
            count(pool.clone()).await,
            count(dst_pool.clone()).await,
            "{table}"
        );
    }
    let (notes, price): (String, String) =
        sqlx::query_as("SELECT notes, price::text FROM signals LIMIT 1")
            .fetch_one(&dst_pool)
            .await
            .expect("row");
    assert_eq!(
        (notes.as_str(), price.as_str()),
        ("tab\there", "67890.5000000000")
    );
    // Cookies still decrypt with the same key.
    let back = users::cookies(&dst_pool, &cipher, user.id)
        .await
        .expect("cookies");
    assert_eq!(back[0].name, "a");
    // Same job ids in the same states.
    let dst_queue = dst_client.queue("ingest").await.expect("queue");
    assert_eq!(ids_and_states(&q).await, ids_and_states(&dst_queue).await);
    // An enqueue retried after the restore still meets its first try.
    let retried = dst_queue
        .enqueue_value(
            &"keyed",
            JobOptions::new().priority(9).idempotency_key("alert-77"),
        )
        .await
        .expect("enqueue");
    assert!(retried.duplicate);
    assert_eq!(retried.id, keyed.id);
    // New rows continue after the restored ids.
    users::add(&dst_pool, Plan::Free, None)
        .await
        .expect("a new user");
    // A second restore is refused: the database is no longer empty.
    let again =
        sluice_trading::backup::restore(&dst_pool, &dst_client, &written.file, Some(&backup_key))
            .await;
    assert!(again.is_err_and(|e| e.to_string().contains("not empty")));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Per-day aggregates outlive the raw signals: they count each signal
/// once (also when an ingest batch is retried), follow results and
/// screenshot outcomes, answer for any range of days, survive retention of
/// the raw rows, and are themselves kept a year.
#[tokio::test]
async fn aggregates_count_signals_once_and_outlive_retention() {
    let schema = TestSchema::new("aggregates").await;
    let pool = schema.pool();
    let (user, _) = users::add(&pool, Plan::Basic, None).await.expect("user");
    let insert = |job: &'static str, ticker: &'static str, days_ago: i32| {
        let pool = pool.clone();
        async move {
            // As the ingest handler writes (a retried batch meets its rows).
            sqlx::query(
                "INSERT INTO signals (job_id, user_id, ticker, symbol, signal_type, alert_time, created_at)
                 VALUES ($1, $2, $3, $3, 'buy', now(), now() - make_interval(days => $4))
                 ON CONFLICT (job_id) DO UPDATE SET job_id = EXCLUDED.job_id",
            )
            .bind(job)
            .bind(user.id)
            .bind(ticker)
            .bind(days_ago)
            .execute(&pool)
            .await
            .expect("insert");
        }
    };
    insert("a", "BTC", 10).await;
    insert("b", "BTC", 10).await;
    insert("c", "ETH", 2).await;
    insert("a", "BTC", 10).await; // the retry: counted once
    sqlx::query("UPDATE signals SET result = 'win', screenshot_status = 'completed' WHERE job_id IN ('a', 'c')")
        .execute(&pool)
        .await
        .expect("results");
    sqlx::query(
        "UPDATE signals SET result = 'loss', screenshot_status = 'failed' WHERE job_id = 'b'",
    )
    .execute(&pool)
    .await
    .expect("results");
    // A result changed again moves the counts, not adds to them.
    sqlx::query("UPDATE signals SET result = 'loss' WHERE job_id = 'c'")
        .execute(&pool)
        .await
        .expect("results");

    let all = sluice_trading::reads::stats(&pool, user.id, None, None)
        .await
        .expect("stats");
    assert_eq!(
        (
            all.total_signals,
            all.wins,
            all.losses,
            all.screenshots_done,
            all.screenshots_failed
        ),
        (3, 1, 2, 2, 1),
        "{all:?}"
    );
    assert_eq!(all.by_ticker[0].ticker, "BTC");
    assert_eq!(all.by_ticker[0].signals, 2);

    // Retention deletes the raw rows older than a week; the aggregates stay.
    retention::run(
        &pool,
        &ScreenshotStore::Local(LocalStore::new(std::env::temp_dir(), "/screenshots")),
        RetentionPolicy::default(),
    )
    .await
    .expect("retention");
    let (left,): (i64,) = sqlx::query_as("SELECT count(*) FROM signals")
        .fetch_one(&pool)
        .await
        .expect("count");
    assert_eq!(left, 1, "only the recent signal is kept raw");
    let after = sluice_trading::reads::stats(&pool, user.id, None, None)
        .await
        .expect("stats");
    assert_eq!((after.total_signals, after.wins, after.losses), (3, 1, 2));
    // Any range of days.
    let today = chrono::Utc::now().date_naive();
    let last_week = sluice_trading::reads::stats(
        &pool,
        user.id,
        Some(today - chrono::Days::new(7)),
        Some(today),
    )
    .await
    .expect("stats");
    assert_eq!((last_week.total_signals, last_week.losses), (1, 1));

    // Aggregates older than their own retention go too.
    sqlx::query("UPDATE signal_daily SET day = day - 400")
        .execute(&pool)
        .await
        .expect("age");
    let removed = retention::run(
        &pool,
        &ScreenshotStore::Local(LocalStore::new(std::env::temp_dir(), "/screenshots")),
        RetentionPolicy::default(),
    )
    .await
    .expect("retention");
    assert_eq!(removed.aggregates, 2);
}

/// With a backup key, a backup is encrypted and signed: its bytes show
/// nothing, and a restore refuses a file someone changed, one written with
/// another key or none, before it changes anything.
#[tokio::test]
async fn a_backup_with_a_key_is_sealed_and_a_restore_refuses_any_other() {
    use sluice_trading::backup::{BackupKey, backup, restore};
    let key = |k: &str| BackupKey::from_base64(k).expect("key");
    let ours = key(&sluice_trading::secrets::CookieCipher::generate_key());
    let theirs = key(&sluice_trading::secrets::CookieCipher::generate_key());
    let schema = TestSchema::new("backup_mac").await;
    let prefix = Prefix::new("backup-mac");
    let pool = schema.pool();
    let client = prefix.client().await;
    users::add(&pool, Plan::Free, None).await.expect("user");
    let dir = std::env::temp_dir().join(format!("sluice-backups-{}", schema.name()));
    let sealed = backup(&pool, &client, &dir, 5, Some(&ours))
        .await
        .expect("backup");
    let plain = backup(&pool, &client, &dir, 5, None).await.expect("backup");
    let bytes = std::fs::read(&sealed.file).expect("read");
    assert!(
        !bytes.starts_with(&[0x1f, 0x8b]),
        "a sealed backup is a plain gzip file"
    );
    // One byte changed in the middle.
    let changed = dir.join("changed.jsonl.gz");
    let mut altered = bytes.clone();
    let middle = altered.len() / 2;
    altered[middle] ^= 0x40;
    std::fs::write(&changed, &altered).expect("write");
    let empty = TestSchema::new("backup_mac_dst").await;
    let dst_prefix = Prefix::new("backup-mac-dst");
    let dst_client = dst_prefix.client().await;
    for (file, key, why) in [
        (&changed, Some(&ours), "changed since"),
        (&sealed.file, Some(&theirs), "another key"),
        (&plain.file, Some(&ours), "not written with a backup key"),
        (&sealed.file, None, "encrypted"),
    ] {
        let err = restore(&empty.pool(), &dst_client, file, key)
            .await
            .expect_err("restored");
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    let (users,): (i64,) = sqlx::query_as("SELECT count(*) FROM users")
        .fetch_one(&empty.pool())
        .await
        .expect("count");
    assert_eq!(users, 0, "a refused restore changed the database");
    restore(&empty.pool(), &dst_client, &sealed.file, Some(&ours))
        .await
        .expect("the sealed backup restores with its key");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Backups are readable by their owner only, and a restore refuses a line
/// longer than any backup writes instead of reading it into memory whole.
#[tokio::test]
async fn backups_are_private_and_restore_bounds_each_line() {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let schema = TestSchema::new("backup_private").await;
    let prefix = Prefix::new("backup-private");
    let pool = schema.pool();
    let client = prefix.client().await;
    users::add(&pool, Plan::Free, None).await.expect("user");
    let dir = std::env::temp_dir().join(format!("sluice-backups-{}", schema.name()));
    let made = sluice_trading::backup::backup(&pool, &client, &dir, 3, None)
        .await
        .expect("backup");
    let mode = std::fs::metadata(&made.file)
        .expect("file")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o077,
        0,
        "the backup is readable by others: {mode:o}"
    );
    let dir_mode = std::fs::metadata(&dir).expect("dir").permissions().mode();
    assert_eq!(
        dir_mode & 0o077,
        0,
        "the backup directory is open to others: {dir_mode:o}"
    );

    // A valid header, then one line of 80 MiB (it compresses to little).
    let hostile = dir.join("hostile.jsonl.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&hostile).expect("create"),
        flate2::Compression::fast(),
    );
    gz.write_all(b"{\"kind\":\"header\",\"format\":\"sluice-backup\",\"version\":1,\"created_at\":\"2026-01-01T00:00:00Z\"}\n{\"kind\":\"table\",\"name\":\"users\",\"data\":\"")
        .expect("write");
    let block = vec![b'a'; 1 << 20];
    for _ in 0..80 {
        gz.write_all(&block).expect("write");
    }
    gz.write_all(b"\"}\n").expect("write");
    gz.finish().expect("finish");
    let empty = TestSchema::new("backup_private_dst").await;
    let err = sluice_trading::backup::restore(&empty.pool(), &client, &hostile, None)
        .await
        .expect_err("restored a hostile file");
    assert!(err.to_string().contains("longer than"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
