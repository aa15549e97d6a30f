//! The audit log partitioned by day (migration 0004): both bulk writes add
//! nothing twice when a batch is retried, days are made on demand, the
//! rows written before the migration move into their days, retention drops
//! whole days, and restore reads backups of both formats.

use std::io::Write;

use chrono::{DateTime, Utc};
use sluice_engine::testing::{TestJob, TestWorker};
use sluice_engine::{Client, ClientConfig, Outcome, Typed};
use sluice_testkit::{KeyPrefix, PgSchema, database_url};
use sluice_trading::audit::{AuditEvent, AuditHandler, BulkWrite, copy_events, write_events};
use sluice_trading::db::{DbConfig, MIGRATOR, migrate};
use sluice_trading::retention::{self, RetentionPolicy};
use sluice_trading::storage::{LocalStore, ScreenshotStore};
use sqlx::PgPool;

const DAY_MS: i64 = 86_400_000;

struct Schema {
    db: DbConfig,
    _schema: PgSchema,
}

impl Schema {
    fn new(tag: &str) -> Self {
        let schema = PgSchema::new(tag);
        let mut db = DbConfig::new(database_url());
        db.schema = Some(schema.name.clone());
        Self {
            db,
            _schema: schema,
        }
    }

    async fn migrated(tag: &str) -> Self {
        let s = Self::new(tag);
        migrate(&s.db).await.expect("migrate");
        s
    }

    fn pool(&self) -> PgPool {
        self.db.pool().expect("pool")
    }
}

fn event_days_ago(days: i64, action: &str) -> AuditEvent {
    let mut e = AuditEvent::now("tester", action, "ok");
    e.at_ms -= days * DAY_MS;
    e.target = Some("/t".into());
    e.status = Some(201);
    e.latency_ms = Some(1.5);
    e
}

async fn count(pool: &PgPool, filter: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM audit_logs {filter}"))
        .fetch_one(pool)
        .await
        .expect("count");
    n
}

async fn days(pool: &PgPool) -> Vec<String> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'audit_logs'::regclass ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .expect("partitions");
    rows.into_iter().map(|(n,)| n).collect()
}

/// A batch over three days (no partition for any of them yet) is written
/// whole, and written again adds nothing, by either bulk write, also when
/// part of it was written before.
#[tokio::test]
async fn a_retried_batch_adds_nothing_twice_by_either_bulk_write() {
    let schema = Schema::migrated("audit_retry").await;
    let pool = schema.pool();
    assert!(days(&pool).await.is_empty());
    let batch: Vec<(String, AuditEvent)> = (0..30)
        .map(|i| {
            let mut e = event_days_ago(i % 3, &format!("POST /{i}"));
            e.detail = (i % 2 == 0).then(|| format!("tab\there é {i}"));
            (format!("ev-{i:03}"), e)
        })
        .collect();
    assert_eq!(write_events(&pool, &batch[..10]).await.expect("first"), 10);
    assert_eq!(days(&pool).await.len(), 3, "one partition per day");
    // The whole batch, of which a third is there: by COPY (which meets
    // the rows there, fails, and falls back) and by INSERT.
    assert_eq!(copy_events(&pool, &batch).await.expect("copy"), 20);
    assert_eq!(copy_events(&pool, &batch).await.expect("copy again"), 0);
    assert_eq!(write_events(&pool, &batch).await.expect("insert again"), 0);
    assert_eq!(count(&pool, "").await, 30);

    // COPY alone into an empty table, then each again.
    sqlx::query("TRUNCATE audit_logs")
        .execute(&pool)
        .await
        .expect("truncate");
    for (how, adds) in [
        (BulkWrite::Copy, 30),
        (BulkWrite::Unnest, 0),
        (BulkWrite::Copy, 0),
    ] {
        assert_eq!(
            how.write(&pool, &batch).await.expect("write"),
            adds,
            "{how:?}"
        );
    }
    assert_eq!(count(&pool, "").await, 30);
    // What COPY wrote reads back as INSERT would have written it.
    let (detail, status, latency, at): (Option<String>, Option<i32>, Option<f32>, DateTime<Utc>) =
        sqlx::query_as(
            "SELECT detail, status, latency_ms, at FROM audit_logs WHERE event_id = 'ev-004'",
        )
        .fetch_one(&pool)
        .await
        .expect("row");
    assert_eq!(detail.as_deref(), Some("tab\there é 4"));
    assert_eq!((status, latency), (Some(201), Some(1.5)));
    assert_eq!(at.timestamp_millis(), batch[4].1.at_ms);
}

/// The handler writes a batch retried after a crash (the same jobs again)
/// once, and an event claiming to be older than a week before its job was
/// made gets the job's time: a forged date cannot make a partition.
#[tokio::test]
async fn the_handler_adds_a_retried_batch_once_and_makes_no_day_for_a_forged_date() {
    let schema = Schema::migrated("audit_handler").await;
    let pool = schema.pool();
    let worker = TestWorker::batched(Typed(AuditHandler::new(pool.clone())));
    // The same jobs twice, as a retry after a crash hands them again (the
    // payload and the job's creation time with them).
    let jobs = {
        let mut forged = AuditEvent::now("ops", "POST /old", "ok");
        forged.at_ms -= 400 * DAY_MS;
        let mut events = vec![forged, event_days_ago(1, "POST /yesterday")];
        events.extend((0..10).map(|i| AuditEvent::now("ops", format!("GET /{i}"), "ok")));
        events
            .into_iter()
            .enumerate()
            .map(|(n, e)| TestJob::new(&e).id(&format!("job-{n}")))
            .collect::<Vec<_>>()
    };
    for _ in 0..2 {
        let outcomes = worker.perform_batch(jobs.clone()).await;
        assert!(
            outcomes.iter().all(|o| matches!(o, Outcome::Done)),
            "{outcomes:?}"
        );
    }
    assert_eq!(count(&pool, "").await, 12);
    assert_eq!(days(&pool).await.len(), 2, "yesterday and today only");
    assert_eq!(
        count(
            &pool,
            "WHERE action = 'POST /old' AND at > now() - interval '1 hour'"
        )
        .await,
        1
    );
    // Its own time is not lost: the row keeps it in `detail`.
    let (detail,): (Option<String>,) =
        sqlx::query_as("SELECT detail FROM audit_logs WHERE action = 'POST /old'")
            .fetch_one(&pool)
            .await
            .expect("row");
    let detail = detail.unwrap_or_default();
    assert!(detail.starts_with("[dated "), "{detail}");
}

/// Dropping or making a day locks the whole table. While a long reader (a
/// backup's transaction) holds a day, retention gives up on that lock
/// instead of waiting behind it with every writer queued behind retention:
/// it fails (its job is tried again later), and a write into today still
/// goes through afterwards.
#[tokio::test]
async fn retention_does_not_wait_behind_a_long_reader() {
    let schema = Schema::migrated("audit_lock").await;
    let pool = schema.pool();
    write_events(&pool, &[("old".into(), event_days_ago(100, "GET /old"))])
        .await
        .expect("write");
    let mut reader = pool.begin().await.expect("begin");
    sqlx::query("SELECT count(*) FROM audit_logs")
        .execute(&mut *reader)
        .await
        .expect("read");
    let dir = std::env::temp_dir().join(format!("sluice-audit-lock-{}", std::process::id()));
    let store = ScreenshotStore::Local(LocalStore::new(&dir, "/s"));
    // A guard against a hang only: without a lock timeout this would wait
    // as long as the reader's transaction lasts, which is for ever here.
    let tried = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        retention::run(&pool, &store, RetentionPolicy::default()),
    )
    .await
    .expect("retention waited behind the reader");
    let err = tried.expect_err("the day is held by the reader");
    assert!(format!("{err:#}").contains("lock"), "{err:#}");
    reader.rollback().await.expect("rollback");
    let removed = retention::run(&pool, &store, RetentionPolicy::default())
        .await
        .expect("retention once the reader is gone");
    assert_eq!(removed.audit_days, 1);
    write_events(&pool, &[("new".into(), event_days_ago(0, "GET /new"))])
        .await
        .expect("write");
    assert_eq!(count(&pool, "").await, 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rows written before migration 0004 are in their days after it, with
/// everything they held, and their event ids still refuse a second write.
#[tokio::test]
async fn the_migration_moves_the_rows_into_their_days() {
    let schema = Schema::new("audit_migrate");
    let admin = DbConfig::new(database_url()).pool().expect("pool");
    sqlx::query(&format!("CREATE SCHEMA \"{}\"", schema._schema.name))
        .execute(&admin)
        .await
        .expect("schema");
    let pool = schema.pool();
    let before = sqlx::migrate::Migrator {
        migrations: MIGRATOR
            .iter()
            .filter(|m| m.version < 4)
            .cloned()
            .collect::<Vec<_>>()
            .into(),
        ..sqlx::migrate::Migrator::DEFAULT
    };
    before.run(&pool).await.expect("migrations 1-3");
    sqlx::query(
        "INSERT INTO audit_logs (event_id, at, actor, action, target, outcome, status,
                                 source_ip, latency_ms, detail)
         SELECT 'old-' || g, now() - g * interval '7 hours', 'key:' || (g % 3), 'GET /x',
                '/x', 'ok', 200, '10.0.0.1', 0.5, CASE WHEN g % 2 = 0 THEN 'd' || g END
         FROM generate_series(1, 40) g",
    )
    .execute(&pool)
    .await
    .expect("old rows");
    let snapshot = "SELECT string_agg(concat_ws('|', event_id, at, actor, action, target,
                        outcome, status, source_ip, latency_ms, detail), ',' ORDER BY event_id)
                    FROM audit_logs";
    let (was,): (String,) = sqlx::query_as(snapshot)
        .fetch_one(&pool)
        .await
        .expect("snapshot");
    MIGRATOR.run(&pool).await.expect("migration 4");
    let (is,): (String,) = sqlx::query_as(snapshot)
        .fetch_one(&pool)
        .await
        .expect("snapshot");
    assert_eq!(was, is);
    // 40 rows 7 hours apart cover 12 or 13 UTC days.
    let (spread,): (i64,) =
        sqlx::query_as("SELECT count(DISTINCT (at AT TIME ZONE 'UTC')::date) FROM audit_logs")
            .fetch_one(&pool)
            .await
            .expect("days");
    assert_eq!(days(&pool).await.len() as i64, spread);
    let (misplaced,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM audit_logs
         WHERE tableoid::regclass::text <> 'audit_logs_' || to_char(at AT TIME ZONE 'UTC', 'YYYYMMDD')",
    )
    .fetch_one(&pool)
    .await
    .expect("placement");
    assert_eq!(misplaced, 0);
    let added = sqlx::query(
        "INSERT INTO audit_logs (event_id, at, actor, action, outcome)
         SELECT event_id, at, actor, action, outcome FROM audit_logs WHERE event_id = 'old-5'
         ON CONFLICT (event_id, at) DO NOTHING",
    )
    .execute(&pool)
    .await
    .expect("again");
    assert_eq!(added.rows_affected(), 0);
}

/// Retention drops the days wholly older than the age, and only those: it
/// reports the rows and the days, and leaves today's and tomorrow's
/// partitions made.
#[tokio::test]
async fn retention_drops_whole_days() {
    let schema = Schema::migrated("audit_retention").await;
    let pool = schema.pool();
    let events: Vec<(String, AuditEvent)> = [100, 100, 92, 89, 0]
        .iter()
        .enumerate()
        .map(|(i, d)| (format!("r{i}"), event_days_ago(*d, "GET /r")))
        .collect();
    write_events(&pool, &events).await.expect("write");
    let dir = std::env::temp_dir().join(format!("sluice-audit-ret-{}", std::process::id()));
    let removed = retention::run(
        &pool,
        &ScreenshotStore::Local(LocalStore::new(&dir, "/s")),
        RetentionPolicy::default(),
    )
    .await
    .expect("retention");
    assert_eq!((removed.audit_logs, removed.audit_days), (3, 2));
    assert_eq!(count(&pool, "").await, 2);
    let today = Utc::now().date_naive();
    let names = days(&pool).await;
    for day in [today, today + chrono::Days::new(1)] {
        let name = format!("audit_logs_{}", day.format("%Y%m%d"));
        assert!(names.contains(&name), "{name} in {names:?}");
    }
    let again = retention::run(
        &pool,
        &ScreenshotStore::Local(LocalStore::new(&dir, "/s")),
        RetentionPolicy::default(),
    )
    .await
    .expect("retention");
    assert_eq!((again.audit_logs, again.audit_days), (0, 0));
    let _ = std::fs::remove_dir_all(&dir);
}

fn redis_url() -> String {
    std::env::var("SLUICE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

async fn client(prefix: &KeyPrefix) -> Client {
    Client::connect_with(ClientConfig::new(&prefix.url).prefix(&prefix.name))
        .await
        .expect("connect")
}

/// A backup of format 1 (audit_logs with its bigserial `id` first) still
/// restores, its audit rows into their days; and a backup written now
/// (format 2) restores the same rows.
#[tokio::test]
async fn restore_reads_format_1_and_format_2() {
    let dir = std::env::temp_dir().join(format!(
        "sluice-audit-backup-{}-{:08x}",
        std::process::id(),
        rand_tag()
    ));
    std::fs::create_dir_all(&dir).expect("dir");
    let old = dir.join("sluice-backup-20261101T000000.000Z.jsonl.gz");
    {
        let mut gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&old).expect("file"),
            flate2::Compression::default(),
        );
        let mut line = |v: serde_json::Value| {
            gz.write_all(v.to_string().as_bytes()).expect("write");
            gz.write_all(b"\n").expect("write");
        };
        line(
            serde_json::json!({"kind": "header", "format": "sluice-backup", "version": 1,
                                "created_at": "2026-11-01T00:00:00Z"}),
        );
        let day = |d: i64| {
            (Utc::now() - chrono::Duration::days(d))
                .format("%Y-%m-%d %H:%M:%S%.6f+00")
                .to_string()
        };
        let data = format!(
            "1\tv1-a\t{}\tkey:ops\tPOST /x\t/x\tok\t201\t10.0.0.1\t0.5\t\\N\n\
             2\tv1-b\t{}\tanonymous\tGET /y\t\\N\trefused\t401\t\\N\t\\N\ttab\\there\n\
             3\tv1-c\t{}\tsystem\tingest.parse_failed\t\\N\terror\t\\N\t\\N\t\\N\tbad\n",
            day(3),
            day(2),
            day(0)
        );
        line(serde_json::json!({"kind": "table", "name": "audit_logs", "data": data}));
        gz.finish().expect("gzip");
    }
    let prefix = KeyPrefix::new(&redis_url(), "audit-v1");
    let target = Schema::migrated("audit_v1_dst").await;
    let pool = target.pool();
    let restored = sluice_trading::backup::restore(&pool, &client(&prefix).await, &old, None)
        .await
        .expect("restore format 1");
    assert_eq!(restored.rows.get("audit_logs"), Some(&3));
    assert_eq!(count(&pool, "").await, 3);
    assert_eq!(days(&pool).await.len(), 3);
    let (detail,): (Option<String>,) =
        sqlx::query_as("SELECT detail FROM audit_logs WHERE event_id = 'v1-b'")
            .fetch_one(&pool)
            .await
            .expect("row");
    assert_eq!(detail.as_deref(), Some("tab\there"));

    // Format 2: a backup of what format 1 restored, into another schema.
    let written = sluice_trading::backup::backup(&pool, &client(&prefix).await, &dir, 5, None)
        .await
        .expect("backup");
    assert_eq!(written.rows.get("audit_logs"), Some(&3));
    let header = {
        use std::io::BufRead;
        let mut first = String::new();
        std::io::BufReader::new(flate2::read::GzDecoder::new(
            std::fs::File::open(&written.file).expect("open"),
        ))
        .read_line(&mut first)
        .expect("read");
        first
    };
    assert!(header.contains("\"version\":2"), "{header}");
    let again = Schema::migrated("audit_v2_dst").await;
    let pool2 = again.pool();
    let prefix2 = KeyPrefix::new(&redis_url(), "audit-v2");
    sluice_trading::backup::restore(&pool2, &client(&prefix2).await, &written.file, None)
        .await
        .expect("restore format 2");
    let all = "SELECT string_agg(concat_ws('|', event_id, at, actor, action, target, outcome,
                   status, source_ip, latency_ms, detail), ',' ORDER BY event_id) FROM audit_logs";
    let (a,): (String,) = sqlx::query_as(all).fetch_one(&pool).await.expect("a");
    let (b,): (String,) = sqlx::query_as(all).fetch_one(&pool2).await.expect("b");
    assert_eq!(a, b);
    let _ = std::fs::remove_dir_all(&dir);
}

fn rand_tag() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// A COPY whose caller is dropped half way (a job's timeout, a worker's
/// stop) must not leave its connection in the middle of the protocol,
/// with its transaction open and the table's locks held until that
/// connection is next used: retention's DDL, and dropping the schema,
/// would wait behind it. After each abandoned write here, the whole table
/// can be locked at once.
#[tokio::test]
async fn an_abandoned_copy_holds_no_lock() {
    let schema = Schema::migrated("audit_abandon").await;
    let pool = schema.pool();
    let batch: Vec<(String, AuditEvent)> = (0..20_000)
        .map(|i| (format!("a{i:06}"), event_days_ago(0, "GET /a")))
        .collect();
    copy_events(&pool, &batch[..1]).await.expect("today's day");
    for step in 0..40u64 {
        let rows: Vec<(String, AuditEvent)> = batch
            .iter()
            .map(|(id, e)| (format!("{id}-{step}"), e.clone()))
            .collect();
        let _ = tokio::time::timeout(
            std::time::Duration::from_micros(50 * step * step),
            copy_events(&pool, &rows),
        )
        .await;
        let mut tx = pool.begin().await.expect("begin");
        sqlx::query("SET LOCAL lock_timeout = '10s'")
            .execute(&mut *tx)
            .await
            .expect("timeout");
        sqlx::query("LOCK TABLE audit_logs IN ACCESS EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .unwrap_or_else(|e| panic!("step {step}: a lock is held: {e}"));
        tx.rollback().await.expect("rollback");
    }
}
