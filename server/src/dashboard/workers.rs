//! The workers and schedules pages.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use sluice_dashboard::format::{ago, time_ms};
use sluice_dashboard::pages::{ScheduleRow, SchedulesPage, WorkerRow, WorkersLive, WorkersPage};
use sluice_engine::unix_ms;

use super::{DashResult, fragment_operator, operator, render};
use crate::AppState;

async fn workers_data(state: &AppState) -> DashResult<WorkersLive> {
    let now_ms = unix_ms();
    let workers = state
        .client
        .registry()
        .workers()
        .await?
        .into_iter()
        .map(|w| WorkerRow {
            queues: w
                .queues
                .iter()
                .map(|q| format!("{}×{}", q.queue, q.concurrency))
                .collect::<Vec<_>>()
                .join(", "),
            last_beat: ago(Some(w.last_beat_ms), now_ms),
            started: time_ms(Some(w.started_at_ms)),
            id: w.id,
            host: w.host,
            pid: w.pid,
            concurrency: w.concurrency,
            in_flight: w.in_flight,
            version: w.version,
        })
        .collect();
    Ok(WorkersLive { workers })
}

pub(super) async fn workers(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    let live = workers_data(&state).await?;
    Ok(render(&WorkersPage {
        chrome: op.chrome(&state, "Workers", "workers"),
        live_html: render(&live).0,
    })
    .into_response())
}

pub(super) async fn workers_live(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> DashResult<Response> {
    fragment_operator(&state, &headers).await?;
    Ok(render(&workers_data(&state).await?).into_response())
}

pub(super) async fn schedules(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    let rows = crate::system::schedule_views(&state)
        .await?
        .into_iter()
        .map(|s| ScheduleRow {
            name: s.name,
            cron: s.cron,
            timezone: s.timezone,
            queue: s.queue,
            next_runs: s.next_runs,
            last_run: s
                .last_run
                .as_ref()
                .map(|l| time_ms(Some(l.tick_ms.max(0) as u64)))
                .unwrap_or_else(|| "never".into()),
            last_job: s.last_run.map(|l| l.job_id),
        })
        .collect();
    Ok(render(&SchedulesPage {
        chrome: op.chrome(&state, "Schedules", "schedules"),
        schedules: rows,
    })
    .into_response())
}
