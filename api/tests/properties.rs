//! Property tests of the API's request handling and of cron expressions
//! from the config: random queue names and bodies get a 2xx or a 4xx with
//! a JSON error, never a 5xx or a panic; random cron expressions are
//! accepted or refused with a message, never a panic. `PROPTEST_CASES`
//! sets the number of cases (256 by default).

use crate::common;

use axum::http::Method;
use common::{Prefix, call};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sluice::config::{FileConfig, ScheduleSection};

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|n| serde_json::json!(n)),
        "\\PC{0,30}".prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("payload".to_owned()),
                    Just("priority".to_owned()),
                    Just("delay_ms".to_owned()),
                    Just("max_attempts".to_owned()),
                    Just("timeout_ms".to_owned()),
                    Just("idempotency_key".to_owned()),
                    Just("jobs".to_owned()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = String> {
    prop_oneof![
        json_value().prop_map(|v| v.to_string()),
        json_value().prop_map(|v| serde_json::json!({"payload": v}).to_string()),
        (json_value(), json_value())
            .prop_map(|(p, o)| serde_json::json!({"payload": p, "priority": o}).to_string()),
        prop::collection::vec(json_value(), 0..5)
            .prop_map(|jobs| serde_json::json!({"jobs": jobs}).to_string()),
        "\\PC{0,200}",
    ]
}

fn queue_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("orders".to_owned()),
        "[a-zA-Z0-9._#-]{1,20}",
        "\\PC{1,20}",
    ]
    .prop_map(|name| name.bytes().map(|b| format!("%{b:02X}")).collect())
}

#[test]
fn random_requests_get_a_2xx_or_a_4xx_with_a_json_error() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let prefix = Prefix::new("props");
    let app = rt.block_on(common::api(&prefix, FileConfig::default()));
    let mut runner = TestRunner::new(Config::default());
    let strategy = (queue_name(), any::<bool>(), body());
    runner
        .run(&strategy, |(name, batch, body)| {
            let path = if batch {
                format!("/api/queues/{name}/jobs/batch")
            } else {
                format!("/api/queues/{name}/jobs")
            };
            let answer = rt.block_on(call(&app, Method::POST, &path, None, Some(&body)));
            let status = answer.status.as_u16();
            prop_assert!(status < 500, "{path} {body}: {status} {}", answer.text);
            if status >= 400 {
                prop_assert!(
                    answer.json["error"]["message"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty()),
                    "{path} {body}: {status} without a JSON error: {}",
                    answer.text
                );
            }
            Ok(())
        })
        .expect("property");
}

fn cron_field() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        Just("?".to_owned()),
        (0u32..100).prop_map(|n| n.to_string()),
        (0u32..100, 0u32..100).prop_map(|(a, b)| format!("{a}-{b}")),
        (0u32..100, 0u32..100).prop_map(|(a, b)| format!("{a},{b}")),
        (0u32..100).prop_map(|n| format!("*/{n}")),
        (0u32..100, 0u32..100).prop_map(|(a, b)| format!("{a}/{b}")),
        any::<u64>().prop_map(|n| n.to_string()),
        prop_oneof![
            Just("MON"),
            Just("Sun-Sat"),
            Just("JAN-DEC"),
            Just("L"),
            Just("5#3"),
            Just("W"),
            Just("-1"),
            Just("1-"),
            Just(",,"),
            Just("*/0")
        ]
        .prop_map(str::to_owned),
    ]
}

fn cron_expression() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::collection::vec(cron_field(), 0..9).prop_map(|f| f.join(" ")),
        "\\PC{0,60}",
    ]
}

proptest! {
    #[test]
    fn random_cron_expressions_are_accepted_or_refused_with_a_reason(
        cron in cron_expression(),
        timezone in prop_oneof![Just(None), Just(Some("UTC".to_owned())), Just(Some("Europe/Madrid".to_owned())), "\\PC{0,20}".prop_map(Some)],
    ) {
        let section = ScheduleSection {
            name: "fuzzed".into(),
            cron: cron.clone(),
            timezone,
            queue: "q".into(),
            payload: None,
            priority: None,
        };
        if let Err(e) = section.cron() {
            prop_assert!(!e.to_string().is_empty());
        }
    }
}
