//! The alert state shared by every process (`lua/alert.lua`), through
//! `Client::alerts`, against the real Redis: one notice per transition
//! whatever the number of processes observing, `for`, repeat and resolve
//! timing, damping, silences; and latency series summed over processes.

use crate::common;

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
    let mut processes = Vec::new();
    for _ in 0..3 {
        let client = Client::connect_with(ClientConfig::new(common::redis_url()).prefix(&r.prefix))
            .await
            .expect("connect");
        processes.push(client.alerts());
    }
    let t = timing(0, 0, None);
    for round in 0..5 {
        let holds = round % 2 == 0;
        let (a, b, c) = tokio::join!(
            processes[0].observe("depth", holds, "250", t),
            processes[1].observe("depth", holds, "250", t),
            processes[2].observe("depth", holds, "250", t),
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
    let record = r.client.alerts().record_of("depth").await.expect("record");
    assert_eq!((record.state.as_str(), record.fired_total), ("firing", 3));
    assert_eq!(record.value.as_deref(), Some("250"));
}

#[tokio::test]
async fn a_rule_waits_for_its_hold_repeats_and_resolves_after_staying_clear() {
    let r = TestRedis::new().await;
    let alerts = r.client.alerts();
    let t = timing(200, 300, Some(400));
    // Holding for less than `for`, then not: never fires.
    assert_eq!(
        alerts.observe("r", true, "1", t).await.expect("o").notice,
        None
    );
    assert_eq!(
        alerts.observe("r", false, "0", t).await.expect("o").state,
        "ok"
    );
    assert_eq!(
        alerts.observe("r", true, "1", t).await.expect("o").state,
        "pending"
    );
    tokio::time::sleep(Duration::from_millis(220)).await;
    let fired = alerts.observe("r", true, "1", t).await.expect("o");
    assert_eq!((fired.notice, fired.seq), (Some(NoticeKind::Firing), 1));
    assert_eq!(
        alerts.observe("r", true, "1", t).await.expect("o").notice,
        None
    );
    tokio::time::sleep(Duration::from_millis(420)).await;
    let repeat = alerts.observe("r", true, "1", t).await.expect("o");
    assert_eq!((repeat.notice, repeat.seq), (Some(NoticeKind::Repeat), 2));
    // Damped: false, then true again before `clear` passed: no resolve.
    assert_eq!(
        alerts.observe("r", false, "0", t).await.expect("o").notice,
        None
    );
    assert_eq!(
        alerts.observe("r", true, "1", t).await.expect("o").notice,
        None
    );
    assert_eq!(
        alerts.observe("r", false, "0", t).await.expect("o").notice,
        None
    );
    tokio::time::sleep(Duration::from_millis(320)).await;
    let resolved = alerts.observe("r", false, "0", t).await.expect("o");
    assert_eq!(
        (resolved.notice, resolved.seq),
        (Some(NoticeKind::Resolved), 3)
    );
    assert_eq!(resolved.state, "ok");
    // Handing a notice to the channels is recorded once, never backwards.
    assert_eq!(alerts.notice_enqueued("r", 3).await.expect("e").enqueued, 3);
    assert_eq!(alerts.notice_enqueued("r", 2).await.expect("e").enqueued, 3);
}

#[tokio::test]
async fn a_silenced_rule_stays_quiet_and_is_announced_when_the_silence_ends() {
    let r = TestRedis::new().await;
    let alerts = r.client.alerts();
    let t = timing(0, 0, Some(60_000));
    let now = alerts.server_time_ms().await.expect("time");
    assert!(
        alerts
            .silence("s", Some(now + 60_000))
            .await
            .expect("s")
            .silenced
    );
    let quiet = alerts.observe("s", true, "9", t).await.expect("o");
    assert_eq!((quiet.notice, quiet.state.as_str()), (None, "firing"));
    assert_eq!(
        alerts.observe("s", true, "9", t).await.expect("o").notice,
        None
    );
    // Lifted while still firing: announced now, once.
    assert!(!alerts.silence("s", None).await.expect("s").silenced);
    let told = alerts.observe("s", true, "9", t).await.expect("o");
    assert_eq!(told.notice, Some(NoticeKind::Firing));
    assert_eq!(
        alerts.observe("s", true, "9", t).await.expect("o").notice,
        None
    );
    // A firing kept quiet entirely resolves quietly too.
    let now = alerts.server_time_ms().await.expect("time");
    alerts.silence("q", Some(now + 60_000)).await.expect("s");
    alerts.observe("q", true, "1", t).await.expect("o");
    alerts.silence("q", None).await.expect("s");
    let resolved = alerts.observe("q", false, "0", t).await.expect("o");
    assert_eq!((resolved.notice, resolved.state.as_str()), (None, "ok"));
}

#[tokio::test]
async fn latency_percentiles_sum_every_process_samples() {
    let r = TestRedis::new().await;
    let alerts = r.client.alerts();
    let series = "requests";
    assert_eq!(
        alerts
            .latency_quantile(series, Duration::from_secs(60), 0.99)
            .await
            .expect("q"),
        None
    );
    let recorded = alerts.latency_series(series);
    for _ in 0..98 {
        recorded.record(Duration::from_millis(3));
    }
    alerts.flush_latency().await.expect("flush");
    for _ in 0..2 {
        recorded.record(Duration::from_millis(700));
    }
    alerts.flush_latency().await.expect("flush");
    let p99 = alerts
        .latency_quantile(series, Duration::from_secs(60), 0.99)
        .await
        .expect("q");
    assert_eq!(p99, Some((Duration::from_millis(1000), 100)));
    let p50 = alerts
        .latency_quantile(series, Duration::from_secs(60), 0.5)
        .await
        .expect("q");
    assert_eq!(p50, Some((Duration::from_millis(5), 100)));
}

#[tokio::test]
async fn latency_samples_wait_in_their_client_until_any_of_its_alerts_handles_flushes() {
    let r = TestRedis::new().await;
    let other = Client::connect_with(ClientConfig::new(common::redis_url()).prefix(&r.prefix))
        .await
        .expect("connect");
    let series = "requests";
    let highest = || async {
        r.client
            .alerts()
            .latency_quantile(series, Duration::from_secs(60), 1.0)
            .await
            .expect("q")
    };
    r.client
        .alerts()
        .latency_series(series)
        .record(Duration::from_millis(3));
    other
        .alerts()
        .latency_series(series)
        .record(Duration::from_millis(700));
    // A handle of a clone, made after the sample was recorded, flushes it;
    // the other client's sample waits in that client.
    r.client
        .clone()
        .alerts()
        .flush_latency()
        .await
        .expect("flush");
    assert_eq!(highest().await, Some((Duration::from_millis(5), 1)));
    other.alerts().flush_latency().await.expect("flush");
    assert_eq!(highest().await, Some((Duration::from_millis(1000), 2)));
    // Flushed samples are gone from the client: a second flush adds none.
    r.client.alerts().flush_latency().await.expect("flush");
    assert_eq!(highest().await, Some((Duration::from_millis(1000), 2)));
}
