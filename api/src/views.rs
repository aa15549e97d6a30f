//! How jobs are shown to people and scripts, the same in the CLI's `--json`
//! output and in the HTTP API.

use serde::Serialize;
use sluice_engine::{JobInfo, Queue};

/// A job's info with its payload as JSON.
#[derive(Debug, Serialize)]
pub struct JobView {
    #[serde(flatten)]
    info: JobInfo,
    payload: serde_json::Value,
}

/// The payload as JSON, or its size when it is not MessagePack that decodes
/// (a job enqueued raw by another producer).
pub fn payload_json(info: &JobInfo) -> serde_json::Value {
    info.payload_json()
        .unwrap_or_else(|| serde_json::json!({ "undecodable_bytes": info.payload.len() }))
}

impl From<JobInfo> for JobView {
    fn from(info: JobInfo) -> Self {
        let payload = payload_json(&info);
        Self { info, payload }
    }
}

/// Dead letters `offset..offset+limit` of a queue's parts (a partitioned
/// queue's partitions, or the one queue), newest death first: a partitioned
/// queue's page merges the newest of each partition.
pub async fn newest_dead(
    parts: &[Queue],
    offset: usize,
    limit: usize,
) -> sluice_engine::Result<Vec<JobInfo>> {
    if let [q] = parts {
        return q.dead_letters(offset, limit).await;
    }
    let mut all = Vec::new();
    for q in parts {
        all.extend(q.dead_letters(0, offset + limit).await?);
    }
    newest_first(&mut all);
    Ok(all.into_iter().skip(offset).take(limit).collect())
}

/// Newest death first, as one queue lists its dead letters.
pub fn newest_first(letters: &mut [JobInfo]) {
    letters.sort_by(|a, b| {
        b.finished_at_ms
            .cmp(&a.finished_at_ms)
            .then_with(|| a.id.cmp(&b.id))
    });
}
