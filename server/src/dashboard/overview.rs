//! The overview page: every queue's row, the throughput and wait charts,
//! the live workers (the engine's inspector overview).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use sluice_dashboard::charts;
use sluice_dashboard::format::{duration_ms, time_ms};
use sluice_dashboard::pages::{OverviewLive, OverviewPage, QueueRow};
use sluice_engine::{Overview, QueueSummary, unix_ms};

use super::{DashError, DashResult, fragment_operator, operator, render};
use crate::AppState;

#[derive(Debug, Deserialize)]
pub(super) struct RangeQuery {
    range: Option<String>,
}

fn range_minutes(range: Option<&str>) -> DashResult<(&'static str, u64)> {
    match range.unwrap_or("hour") {
        "hour" => Ok(("hour", 60)),
        "day" => Ok(("day", 1440)),
        other => Err(DashError::status(
            StatusCode::BAD_REQUEST,
            format!("range {other:?}: use hour or day"),
        )),
    }
}

pub(super) async fn overview(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RangeQuery>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    let (range, minutes) = range_minutes(q.range.as_deref())?;
    let live = overview_data(&state, minutes).await?;
    Ok(render(&OverviewPage {
        chrome: op.chrome(&state, "Overview", "overview"),
        range: range.into(),
        live_html: render(&live).0,
    })
    .into_response())
}

pub(super) async fn overview_live(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RangeQuery>,
) -> DashResult<Response> {
    fragment_operator(&state, &headers).await?;
    let (_, minutes) = range_minutes(q.range.as_deref())?;
    Ok(render(&overview_data(&state, minutes).await?).into_response())
}

/// One queue's row, from its summary.
pub(super) fn queue_row(summary: &QueueSummary) -> QueueRow {
    let stats = &summary.stats;
    let last_full = summary.last_full_minute();
    let by_priority = stats
        .waiting_by_priority
        .iter()
        .enumerate()
        .filter(|(_, n)| **n > 0)
        .map(|(p, n)| format!("p{p} {n}"))
        .collect::<Vec<_>>()
        .join(" · ");
    QueueRow {
        name: stats.queue.clone(),
        paused: stats.paused,
        waiting: stats.waiting,
        by_priority,
        active: stats.active,
        delayed: stats.delayed,
        dead: stats.dead,
        completed_per_min: last_full.completed,
        failed_per_min: last_full.failed,
        rate_limit: stats
            .rate_limit
            .map(|r| format!("{}/s, burst {}", r.per_second, r.burst)),
        wait: summary
            .next_job_wait_ms
            .map(duration_ms)
            .unwrap_or_else(|| "—".into()),
    }
}

async fn overview_data(state: &AppState, minutes: u64) -> DashResult<OverviewLive> {
    let now_ms = unix_ms();
    let Overview { queues, workers } = state.client.inspector().overview(minutes).await?;
    let mut rows = Vec::with_capacity(queues.len());
    let mut completed = vec![0u64; minutes as usize];
    let mut failed = vec![0u64; minutes as usize];
    let mut labels: Vec<String> = Vec::new();
    let mut waits = Vec::new();
    for summary in &queues {
        let row = queue_row(summary);
        let series = &summary.per_minute;
        let series = &series[series.len().saturating_sub(minutes as usize)..];
        for (i, m) in series.iter().enumerate() {
            completed[i] += m.completed;
            failed[i] += m.failed;
        }
        if labels.is_empty() {
            labels = series
                .iter()
                .map(|m| {
                    time_ms(Some(m.minute_ms))
                        .chars()
                        .skip(11)
                        .take(5)
                        .collect()
                })
                .collect();
        }
        let wait = summary.next_job_wait_ms.unwrap_or(0);
        waits.push((row.name.clone(), wait as f64 / 1000.0));
        rows.push(row);
    }
    Ok(OverviewLive {
        queues: rows,
        workers: workers.len(),
        in_flight: workers.iter().map(|w| w.in_flight).sum(),
        throughput_json: charts::throughput(&labels, &completed, &failed),
        wait_json: charts::waits(&waits),
        range_label: if minutes > 60 {
            "last day"
        } else {
            "last hour"
        }
        .into(),
        updated: time_ms(Some(now_ms)),
    })
}
