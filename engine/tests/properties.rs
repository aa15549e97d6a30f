//! Property tests of job options and payload decoding: options from any
//! JSON are accepted or refused with a typed error, never a panic; payload
//! bytes of any kind enqueue, claim and decode (or fail to decode) without
//! a panic. `PROPTEST_CASES` sets the number of cases.

use crate::common;

use std::time::Duration;

use common::TestRedis;
use proptest::prelude::*;
use serde::Deserialize;
use sluice_engine::{JobOptions, JobOptionsInput, NewJob};

fn json_number() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<u64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>().prop_map(|n| serde_json::json!(n)),
        (-20i64..20).prop_map(|n| serde_json::json!(n)),
        "\\PC{0,20}".prop_map(serde_json::Value::String),
        Just(serde_json::Value::Null),
        Just(serde_json::json!([])),
        Just(serde_json::json!({})),
        Just(serde_json::json!(true)),
    ]
}

fn options_json() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop_oneof![
                Just("priority"),
                Just("delay_ms"),
                Just("max_attempts"),
                Just("backoff_ms"),
                Just("timeout_ms"),
                Just("idempotency_key"),
                Just("idempotency_window_ms"),
                Just("unknown"),
            ],
            json_number(),
        ),
        0..8,
    )
    .prop_map(|fields| {
        let map: serde_json::Map<String, serde_json::Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        serde_json::Value::Object(map).to_string()
    })
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Order {
    sku: String,
    quantity: u32,
}

proptest! {
    #[test]
    fn options_from_any_json_are_accepted_or_refused(text in options_json()) {
        if let Ok(input) = serde_json::from_str::<JobOptionsInput>(&text) {
            match JobOptions::try_from(input) {
                Ok(options) => prop_assert!(options.validate().is_ok()),
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }
    }

    #[test]
    fn options_from_any_text_never_panic(text in "\\PC{0,200}") {
        let _ = serde_json::from_str::<JobOptionsInput>(&text).map(JobOptions::try_from);
    }
}

proptest! {
    // Each case is a round trip to Redis: fewer of them.
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_payload_bytes_claim_and_decode_without_panic(payload in prop::collection::vec(any::<u8>(), 0..512)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let t = TestRedis::new().await;
            let q = t.queue("poison").await;
            q.enqueue(NewJob::raw(payload.clone(), JobOptions::new())).await.expect("enqueue");
            let job = common::claim_when_ready(&q, "fuzz").await;
            assert_eq!(job.payload, payload);
            match job.decode::<Order>() {
                Ok(_) => {}
                Err(e) => assert!(!e.to_string().is_empty()),
            }
            let _ = job.decode::<serde_json::Value>();
            q.settle(&job, sluice_engine::Outcome::Done).await.expect("settle");
            tokio::time::sleep(Duration::ZERO).await;
        });
    }
}
