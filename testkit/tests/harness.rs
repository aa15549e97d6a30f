//! The harness itself must be able to fail: the proxy really runs a command
//! whose reply it drops, and the checker really reports what the ledger and
//! Redis disagree on.

use std::time::Duration;

use sluice_engine::{Client, ClientConfig, JobOptions, QueueConfig, RetryPolicy};
use sluice_testkit::{Commands, Fault, FaultProxy, Ledger, Persistence, RedisServer, Rule, check};

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

#[tokio::test]
async fn a_dropped_reply_is_a_command_that_ran() {
    let server = RedisServer::start(Persistence::None);
    let proxy = FaultProxy::start(&server.url()).await.expect("proxy");
    proxy.inject(Rule::new(Fault::DropReply, Commands::named(&["SET"])).limit(1));
    let mut through = raw(&proxy.url()).await;
    let answer: redis::RedisResult<()> = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query_async(&mut through)
        .await;
    assert!(answer.is_err(), "the reply reached the client: {answer:?}");
    let mut direct = raw(&server.url()).await;
    let value: Option<String> = redis::cmd("GET")
        .arg("k")
        .query_async(&mut direct)
        .await
        .expect("get");
    assert_eq!(value.as_deref(), Some("v"), "Redis did not run the command");
    assert_eq!(proxy.fired_count(), 1);
}

#[tokio::test]
async fn a_held_reply_times_the_client_out_and_a_partition_heals() {
    let server = RedisServer::start(Persistence::None);
    let proxy = FaultProxy::start(&server.url()).await.expect("proxy");
    let client = redis::Client::open(proxy.url().as_str()).expect("url");
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_millis(200)));
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("connect");
    proxy.inject(
        Rule::new(
            Fault::DelayReply(Duration::from_millis(600)),
            Commands::named(&["INCR"]),
        )
        .limit(1),
    );
    let late: redis::RedisResult<i64> = redis::cmd("INCR").arg("n").query_async(&mut conn).await;
    assert!(late.is_err(), "the held reply came in time: {late:?}");
    let mut direct = raw(&server.url()).await;
    let n: i64 = redis::cmd("GET")
        .arg("n")
        .query_async(&mut direct)
        .await
        .expect("get");
    assert_eq!(n, 1, "the held command did not run");

    proxy.partition(Duration::from_millis(500));
    let cut_off: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut conn).await;
    assert!(cut_off.is_err(), "a partitioned client was answered");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut healed = raw(&proxy.url()).await;
    let pong: String = redis::cmd("PING")
        .query_async(&mut healed)
        .await
        .expect("healed");
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn the_checker_reports_lost_unexpected_and_stuck_jobs() {
    let server = RedisServer::start(Persistence::None);
    let mut config = ClientConfig::new(server.url()).retry(RetryPolicy::default());
    config.prefix = "checker".into();
    let client = Client::connect_with(config).await.expect("client");
    let queue = client
        .queue_with("q", QueueConfig::default())
        .await
        .expect("queue");
    let waiting = queue
        .enqueue_value(&1, JobOptions::new())
        .await
        .expect("enqueue");
    let ledger = Ledger::temp().expect("ledger");
    ledger.ack(&waiting.id);
    ledger.settled("never-acked", 1, 1, "w", "done");
    let summary = check("self-test", &ledger.entries(), &[queue], 0).await;
    assert!(summary.lost.contains(&waiting.id), "{}", summary.line());
    assert!(
        summary.stuck.contains_key(&waiting.id),
        "{}",
        summary.line()
    );
    assert!(
        summary.unexpected.contains("never-acked"),
        "{}",
        summary.line()
    );
    assert!(!summary.failures(0).is_empty());
}

/// A session of the test's own that still holds a lock in the schema when
/// the test ends (in a `#[tokio::test]`, a task the blocking drop keeps
/// from running) must not keep the schema's drop waiting for ever: the
/// drop ends that session and the schema is gone.
#[test]
fn a_schema_is_dropped_even_while_a_session_of_the_test_holds_a_lock_in_it() {
    use std::io::Write;
    use std::process::{Command, Stdio};

    let schema = sluice_testkit::PgSchema::new("harness");
    let name = schema.name.clone();
    let url = sluice_testkit::database_url();
    let run = |sql: &str| {
        let out = Command::new("psql")
            .arg(&url)
            .args(["-Atqc", sql])
            .output()
            .expect("psql");
        assert!(out.status.success(), "{sql}: {out:?}");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    run(&format!(
        "CREATE SCHEMA \"{name}\"; CREATE TABLE \"{name}\".t (n int)"
    ));
    // Idle in a transaction that holds the table's lock, as a COPY the
    // test's runtime no longer drives does.
    let mut holder = Command::new("psql")
        .arg(&url)
        .arg("-q")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("psql");
    let mut input = holder.stdin.take().expect("stdin");
    writeln!(
        input,
        "BEGIN; LOCK TABLE \"{name}\".t IN ACCESS SHARE MODE;"
    )
    .expect("write");
    input.flush().expect("flush");
    let held = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(100));
        run(&format!(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = '{name}' AND l.granted"
        )) != "0"
    });
    assert!(held, "the lock was never taken");

    // The drop, on a thread of its own so that a drop that waits for ever
    // fails the test instead of hanging it.
    let (done, dropped) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(schema);
        let _ = done.send(());
    });
    let finished = dropped.recv_timeout(Duration::from_secs(120)).is_ok();
    let _ = holder.kill();
    let _ = holder.wait();
    drop(input);
    assert!(
        finished,
        "the schema's drop still waits for the lock after 120 s"
    );
    assert_eq!(
        run(&format!(
            "SELECT count(*) FROM pg_namespace WHERE nspname = '{name}'"
        )),
        "0",
        "the schema is still there"
    );
}
