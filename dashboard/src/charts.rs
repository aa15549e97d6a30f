//! The charts' data as `static/app.js` draws it (a JSON spec per chart:
//! kind, labels, named series with their colours), so that colours and the
//! shape of a chart live with the pages, not with the code that gathers
//! the numbers.

use serde_json::json;

/// Completed jobs' colour.
pub const COMPLETED: &str = "#1f8a4c";
/// Failed attempts' colour.
pub const FAILED: &str = "#c0362c";
/// Waiting times' colour.
pub const WAIT: &str = "#2f6fde";

/// Completed and failed attempts per minute: two lines over `labels`.
pub fn throughput(labels: &[String], completed: &[u64], failed: &[u64]) -> String {
    json!({
        "kind": "lines",
        "labels": labels,
        "series": [
            { "name": "completed", "color": COMPLETED, "values": completed },
            { "name": "failed", "color": FAILED, "values": failed },
        ],
    })
    .to_string()
}

/// How long each queue's next job has waited, in seconds: one bar per
/// queue.
pub fn waits(queues: &[(String, f64)]) -> String {
    let labels: Vec<&str> = queues.iter().map(|(n, _)| n.as_str()).collect();
    let values: Vec<f64> = queues.iter().map(|(_, w)| *w).collect();
    json!({
        "kind": "bars",
        "labels": labels,
        "series": [{ "name": "wait (s)", "color": WAIT, "values": values }],
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_spec_names_its_kind_labels_and_coloured_series() {
        let spec: serde_json::Value =
            serde_json::from_str(&throughput(&["10:00".into()], &[3], &[1])).expect("json");
        assert_eq!(spec["kind"], "lines");
        assert_eq!(spec["labels"][0], "10:00");
        assert_eq!(spec["series"][0]["values"][0], 3);
        assert_eq!(spec["series"][1]["color"], FAILED);
        let bars: serde_json::Value =
            serde_json::from_str(&waits(&[("mails".into(), 1.5)])).expect("json");
        assert_eq!(bars["kind"], "bars");
        assert_eq!(bars["labels"][0], "mails");
        assert_eq!(bars["series"][0]["values"][0], 1.5);
    }
}
