//! The audit sink through a Redis outage: events recorded while Redis is
//! down are spilled to a file and replayed in order once it is back, so
//! every event reaches the audit queue exactly once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use sluice_engine::{Client, ClientConfig, RetryPolicy};
use sluice_testkit::{Persistence, RedisServer};
use sluice_trading::audit::{AuditEvent, AuditSink};
use sluice_trading::spill::SpillConfig;

fn event(n: usize) -> AuditEvent {
    let mut e = AuditEvent::now("tester", "webhook", "ok");
    e.target = Some(format!("n{n}"));
    e
}

async fn targets(client: &Client) -> Vec<String> {
    let q = client
        .queue(sluice_trading::queues::AUDIT)
        .await
        .expect("queue");
    q.export()
        .await
        .expect("export")
        .into_iter()
        .filter_map(|r| {
            let payload = r.fields.iter().find(|(k, _)| k == "payload")?.1.clone();
            let e: AuditEvent = rmp_serde::from_slice(&payload).ok()?;
            e.target
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_recorded_while_redis_is_down_are_spilled_and_replayed_once() {
    let mut redis = RedisServer::start(Persistence::AofAlways);
    let mut config = ClientConfig::new(redis.url())
        .prefix("spilltest")
        .retry(RetryPolicy {
            retries: 2,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
        });
    config.response_timeout = Duration::from_secs(1);
    config.connect_timeout = Duration::from_millis(300);
    let client = Client::connect_with(config).await.expect("connect");
    let dir = std::env::temp_dir().join(format!("sluice-spill-{}", std::process::id()));
    let path = dir.join("audit-spill.jsonl");
    let _ = std::fs::remove_file(&path);
    let sink = AuditSink::spawn(
        client.clone(),
        SpillConfig {
            path: path.clone(),
            max_bytes: 64 << 20,
        },
    );

    let mut n = 0;
    let mut record = |count: usize| {
        for _ in 0..count {
            sink.record(event(n));
            n += 1;
        }
    };
    record(500);
    let started = Instant::now();
    while targets(&client).await.len() < 500 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the first events never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Redis down for about three seconds under 20,000 events a second:
    // more than the sink's in-memory buffer (50,000) holds.
    redis.kill();
    for _ in 0..15 {
        record(4000);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        std::fs::metadata(&path).is_ok_and(|m| m.len() > 0),
        "nothing was spilled"
    );
    redis.restart();
    record(500);

    let want = n;
    let started = Instant::now();
    let seen = loop {
        let seen = targets(&client).await;
        if seen.len() >= want || started.elapsed() > Duration::from_secs(60) {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an event was enqueued twice");
    assert_eq!(
        seen.len(),
        want,
        "events lost: {} of {want} arrived",
        seen.len()
    );
    assert_eq!(sink.dropped(), 0);
    assert!(!path.exists(), "the replayed spill file was not removed");
    let _ = std::fs::remove_dir_all(dir);
}
