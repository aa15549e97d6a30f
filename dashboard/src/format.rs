//! Times, ages and numbers as operators read them.

use chrono::{DateTime, Utc};

/// `2026-11-22 10:00:03` (UTC) of ms since the Unix epoch; `—` for none.
pub fn time_ms(ms: Option<u64>) -> String {
    ms.filter(|m| *m > 0)
        .and_then(|m| DateTime::<Utc>::from_timestamp_millis(m as i64))
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_else(|| "—".into())
}

/// A duration in ms as `850 ms`, `12.3 s`, `4 min`, `3 h`, `2 d`.
pub fn duration_ms(ms: u64) -> String {
    match ms {
        0..1_000 => format!("{ms} ms"),
        1_000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{} min", ms / 60_000),
        3_600_000..86_400_000 => format!("{} h", ms / 3_600_000),
        _ => format!("{} d", ms / 86_400_000),
    }
}

/// How long before `now_ms` `ms` was: `12.3 s ago`; `—` for none.
pub fn ago(ms: Option<u64>, now_ms: u64) -> String {
    match ms.filter(|m| *m > 0) {
        Some(m) if m <= now_ms => format!("{} ago", duration_ms(now_ms - m)),
        Some(m) => format!("in {}", duration_ms(m - now_ms)),
        None => "—".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_well() {
        assert_eq!(time_ms(Some(0)), "—");
        assert_eq!(time_ms(Some(1_700_000_000_000)), "2023-11-14 22:13:20");
        assert_eq!(duration_ms(850), "850 ms");
        assert_eq!(duration_ms(12_300), "12.3 s");
        assert_eq!(ago(Some(1_000), 61_000), "1 min ago");
        assert_eq!(ago(Some(5_000), 1_000), "in 4.0 s");
    }
}
