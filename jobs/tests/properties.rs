//! Property tests of the message parser: no input makes it panic, every
//! rejection says why, and what it accepts is consistent. Random inputs of
//! three shapes: any text, `Label: value` lines built from the labels and
//! value shapes messages use, and JSON objects. `PROPTEST_CASES` sets how many
//! of each (256 by default; the closing note of issue 7 gives a long run).

use proptest::prelude::*;
use sluice_trading::message::{parse, parse_price, parse_price_in};

fn label() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("Ticker".to_owned()),
        Just("🪙 Ticker".to_owned()),
        Just("Símbolo".to_owned()),
        Just("Price".to_owned()),
        Just("💰 Precio".to_owned()),
        Just("Signal".to_owned()),
        Just("📊 Señal".to_owned()),
        Just("Indicator".to_owned()),
        Just("Time".to_owned()),
        Just("Notes".to_owned()),
        "[A-Za-z ]{0,12}",
        "\\PC{0,12}",
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Z]{1,8}:[A-Z]{1,10}",
        "\\$?[0-9]{1,3}(,[0-9]{3}){0,4}(\\.[0-9]{1,8})?",
        "[0-9]{1,3}(\\.[0-9]{3}){0,4}(,[0-9]{1,8})?",
        "-?[0-9e+.,]{0,30}",
        "20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z",
        "[0-9]{1,13}",
        "\\PC{0,40}",
    ]
}

fn label_lines() -> impl Strategy<Value = String> {
    prop::collection::vec((label(), "[:：=-]?", " {0,2}", value()), 0..8).prop_map(|lines| {
        lines
            .into_iter()
            .map(|(l, sep, sp, v)| format!("{l}{sep}{sp}{v}"))
            .collect::<Vec<_>>()
            .join("\n")
    })
}

fn json_alert() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop_oneof![
                Just("ticker"),
                Just("price"),
                Just("signal"),
                Just("time"),
                Just("exchange"),
                Just("other")
            ],
            prop_oneof![
                value().prop_map(serde_json::Value::String),
                any::<f64>().prop_map(|f| serde_json::json!(f)),
                any::<i64>().prop_map(|i| serde_json::json!(i)),
                Just(serde_json::Value::Null),
                Just(serde_json::json!([1, {"a": []}])),
            ],
        ),
        0..6,
    )
    .prop_map(|fields| {
        let map: serde_json::Map<String, serde_json::Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        serde_json::Value::Object(map).to_string()
    })
}

fn check(body: &str) {
    match parse(body) {
        Ok(message) => {
            // An accepted message names a ticker and the input was not blank.
            assert!(!body.trim().is_empty());
            assert!(!format!("{message:?}").is_empty());
        }
        Err(e) => assert!(
            !e.to_string().trim().is_empty(),
            "empty reason for {body:?}"
        ),
    }
}

proptest! {
    #[test]
    fn any_text_is_parsed_or_refused_with_a_reason(body in "\\PC{0,400}") {
        check(&body);
    }

    #[test]
    fn any_bytes_as_lossy_text_are_parsed_or_refused(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        check(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn label_lines_are_parsed_or_refused_with_a_reason(body in label_lines()) {
        check(&body);
    }

    #[test]
    fn json_alerts_are_parsed_or_refused_with_a_reason(body in json_alert()) {
        check(&body);
    }

    #[test]
    fn prices_never_panic_and_are_never_negative_by_accident(raw in prop_oneof![value(), "\\PC{0,40}"]) {
        if let Some(price) = parse_price(&raw) {
            // A leading minus is the only way to a negative price.
            prop_assert!(price >= rust_decimal::Decimal::ZERO || raw.trim_start().starts_with('-'));
        }
    }

    #[test]
    fn a_price_written_with_separators_reads_back_exactly(whole in 0u64..1_000_000_000_000, fraction in proptest::option::of("[0-9]{1,8}"), comma in any::<bool>()) {
        let (point, thousands) = if comma { (",", ".") } else { (".", ",") };
        let digits = whole.to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push_str(thousands);
            }
            grouped.push(c);
        }
        let mut written = format!("${grouped}");
        let mut plain = digits.clone();
        if let Some(f) = &fraction {
            written.push_str(point);
            written.push_str(f);
            plain.push('.');
            plain.push_str(f);
        }
        let want: rust_decimal::Decimal = plain.parse().expect("decimal");
        prop_assert_eq!(parse_price_in(&written, comma), Some(want));
        // Written with more than one decimal separator, it is refused.
        let twice = format!("{written}{point}5");
        if fraction.is_some() {
            prop_assert_eq!(parse_price_in(&twice, comma), None);
        }
    }
}
