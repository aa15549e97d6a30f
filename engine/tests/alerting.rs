//! The fleet-wide alert state (`lua/alert.lua`) against the real Redis:
//! one notice per transition whatever the number of processes observing,
//! `for`, repeat and resolve timing, damping, silences; and latency series
//! summed over processes.

mod common;

use std::time::Duration;

use common::TestRedis;
use sluice_engine::alerting::{AlertTiming, NoticeKind};
use sluice_engine::{Client, ClientConfig};

fn timing(hold_ms: u64, clear_ms: u64, repeat_ms: Option<u64>) -> AlertTiming {
    AlertTiming {
        hold: Duration::from_millis(hold_ms),
        clear: Duration::from_millis(clear_ms),
        repeat: repeat_ms.map(Duration::from_millis),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_observing_one_rule_make_one_notice_per_transition() {
    let r = TestRedis::new().await;
    let mut fleet = Vec::new();
    for _ in 0..3 {
        fleet.push(
            Client::connect_with(ClientConfig::new(common::redis_url()).prefix(&r.prefix))
                .await
                .expect("connect"),
        );
    }
    let t = timing(0, 0, None);
    for round in 0..5 {
        let holds = round % 2 == 0;
        let (a, b, c) = tokio::join!(
            fleet[0].observe_alert("depth", holds, "250", t),
            fleet[1].observe_alert("depth", holds, "250", t),
            fleet[2].observe_alert("depth", holds, "250", t),
        );
        let replies = [a, b, c];
        let notices: Vec<NoticeKind> = replies
            .into_iter()
            .filter_map(|r| r.expect("observe").notice)
            .collect();
        let want = if holds {
            NoticeKind::Firing
        } else {
            NoticeKind::Resolved
        };
        assert_eq!(notices, vec![want], "round {round}");
    }
    let record = r.client.alert_record("depth").await.expect("record");
    assert_eq!((record.state.as_str(), record.fired_total), ("firing", 3));
    assert_eq!(record.value.as_deref(), Some("250"));
}

#[tokio::test]
async fn a_rule_waits_for_its_hold_repeats_and_resolves_after_staying_clear() {
    let r = TestRedis::new().await;
    let c = &r.client;
    let t = timing(200, 300, Some(400));
    // Holding for less than `for`, then not: never fires.
    assert_eq!(
        c.observe_alert("r", true, "1", t).await.expect("o").notice,
        None
    );
    assert_eq!(
        c.observe_alert("r", false, "0", t).await.expect("o").state,
        "ok"
    );
    assert_eq!(
        c.observe_alert("r", true, "1", t).await.expect("o").state,
        "pending"
    );
    tokio::time::sleep(Duration::from_millis(220)).await;
    let fired = c.observe_alert("r", true, "1", t).await.expect("o");
    assert_eq!((fired.notice, fired.seq), (Some(NoticeKind::Firing), 1));
    assert_eq!(
        c.observe_alert("r", true, "1", t).await.expect("o").notice,
        None
    );
    tokio::time::sleep(Duration::from_millis(420)).await;
    let repeat = c.observe_alert("r", true, "1", t).await.expect("o");
    assert_eq!((repeat.notice, repeat.seq), (Some(NoticeKind::Repeat), 2));
    // Damped: false, then true again before `clear` passed: no resolve.
    assert_eq!(
        c.observe_alert("r", false, "0", t).await.expect("o").notice,
        None
    );
    assert_eq!(
        c.observe_alert("r", true, "1", t).await.expect("o").notice,
        None
    );
    assert_eq!(
        c.observe_alert("r", false, "0", t).await.expect("o").notice,
        None
    );
    tokio::time::sleep(Duration::from_millis(320)).await;
    let resolved = c.observe_alert("r", false, "0", t).await.expect("o");
    assert_eq!(
        (resolved.notice, resolved.seq),
        (Some(NoticeKind::Resolved), 3)
    );
    assert_eq!(resolved.state, "ok");
    // Handing a notice to the channels is recorded once, never backwards.
    assert_eq!(c.alert_enqueued("r", 3).await.expect("e").enqueued, 3);
    assert_eq!(c.alert_enqueued("r", 2).await.expect("e").enqueued, 3);
}

#[tokio::test]
async fn a_silenced_rule_stays_quiet_and_is_announced_when_the_silence_ends() {
    let r = TestRedis::new().await;
    let c = &r.client;
    let t = timing(0, 0, Some(60_000));
    let now = c.server_time_ms().await.expect("time");
    assert!(
        c.silence_alert("s", Some(now + 60_000))
            .await
            .expect("s")
            .silenced
    );
    let quiet = c.observe_alert("s", true, "9", t).await.expect("o");
    assert_eq!((quiet.notice, quiet.state.as_str()), (None, "firing"));
    assert_eq!(
        c.observe_alert("s", true, "9", t).await.expect("o").notice,
        None
    );
    // Lifted while still firing: announced now, once.
    assert!(!c.silence_alert("s", None).await.expect("s").silenced);
    let told = c.observe_alert("s", true, "9", t).await.expect("o");
    assert_eq!(told.notice, Some(NoticeKind::Firing));
    assert_eq!(
        c.observe_alert("s", true, "9", t).await.expect("o").notice,
        None
    );
    // A firing kept quiet entirely resolves quietly too.
    let now = c.server_time_ms().await.expect("time");
    c.silence_alert("q", Some(now + 60_000)).await.expect("s");
    c.observe_alert("q", true, "1", t).await.expect("o");
    c.silence_alert("q", None).await.expect("s");
    let resolved = c.observe_alert("q", false, "0", t).await.expect("o");
    assert_eq!((resolved.notice, resolved.state.as_str()), (None, "ok"));
}

#[tokio::test]
async fn latency_percentiles_sum_every_process_samples() {
    let r = TestRedis::new().await;
    // The series is process-global: a name of this test's own.
    let series: &'static str = Box::leak(format!("t{}", r.prefix).into_boxed_str());
    assert_eq!(
        r.client
            .latency_quantile(series, Duration::from_secs(60), 0.99)
            .await
            .expect("q"),
        None
    );
    let recorded = r.client.latency_series(series);
    for _ in 0..98 {
        recorded.record(Duration::from_millis(3));
    }
    r.client.flush_latency().await.expect("flush");
    for _ in 0..2 {
        recorded.record(Duration::from_millis(700));
    }
    r.client.flush_latency().await.expect("flush");
    let p99 = r
        .client
        .latency_quantile(series, Duration::from_secs(60), 0.99)
        .await
        .expect("q");
    assert_eq!(p99, Some((Duration::from_millis(1000), 100)));
    let p50 = r
        .client
        .latency_quantile(series, Duration::from_secs(60), 0.5)
        .await
        .expect("q");
    assert_eq!(p50, Some((Duration::from_millis(5), 100)));
}
