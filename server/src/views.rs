//! How jobs are shown to people and scripts, the same in the CLI's `--json`
//! output and in the HTTP API.

use serde::Serialize;
use sluice_engine::JobInfo;

/// A job's info with its payload as JSON.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct JobView {
    #[serde(flatten)]
    info: JobInfo,
    /// The payload as JSON; `{"undecodable_bytes": n}` for one that is
    /// not MessagePack (enqueued raw by another producer).
    #[schema(value_type = Value)]
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
