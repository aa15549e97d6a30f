//! A queue's page (its jobs by state), a job's page, and the queue and
//! job actions: pause, resume, cancel.

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use sluice_dashboard::format::{ago, duration_ms, time_ms};
use sluice_dashboard::pages::{AttemptRow, JobPage, JobRow, QueueLive, QueuePage, Tab};
use sluice_engine::{JobInfo, JobState, unix_ms};

use super::overview::queue_row;
use super::{
    ActionForm, DashError, DashResult, ListQuery, Operator, PAGE_SIZE, fragment_operator, operator,
    page_number, render, urlencode,
};
use crate::AppState;

fn list_state(state: Option<&str>) -> DashResult<JobState> {
    match state.unwrap_or("waiting") {
        "waiting" => Ok(JobState::Waiting),
        "active" => Ok(JobState::Active),
        "delayed" => Ok(JobState::Delayed),
        "dead" => Ok(JobState::Dead),
        other => Err(DashError::status(
            StatusCode::BAD_REQUEST,
            format!("state {other:?}: use waiting, active, delayed or dead"),
        )),
    }
}

fn job_row(j: &JobInfo, state: JobState, now_ms: u64) -> JobRow {
    let when = match state {
        JobState::Active => j.started_at_ms,
        JobState::Dead => j.finished_at_ms,
        _ => j.due_at_ms.or(Some(j.created_at_ms)),
    };
    JobRow {
        id: j.id.clone(),
        priority: j.priority,
        attempts: format!("{}/{}", j.attempt, j.max_attempts),
        created: time_ms(Some(j.created_at_ms)),
        when: format!("{} ({})", time_ms(when), ago(when, now_ms)),
        worker: j.worker.clone().unwrap_or_default(),
        error: j.last_error.clone().unwrap_or_default(),
    }
}

async fn queue_data(
    state: &AppState,
    op: &Operator,
    name: &str,
    q: &ListQuery,
) -> DashResult<QueueLive> {
    let job_state = list_state(q.state.as_deref())?;
    let page = page_number(q.page.as_deref())?;
    let queue = state.queue_handle(name).await?;
    let now_ms = unix_ms();
    let row = queue_row(&state.client.inspector().summary(&queue, 1).await?);
    let mut jobs = queue
        .jobs_in_state(job_state, (page - 1) * PAGE_SIZE, PAGE_SIZE + 1)
        .await?;
    let has_next = jobs.len() > PAGE_SIZE;
    jobs.truncate(PAGE_SIZE);
    let tabs = vec![
        Tab {
            state: "waiting",
            count: row.waiting,
        },
        Tab {
            state: "active",
            count: row.active,
        },
        Tab {
            state: "delayed",
            count: row.delayed,
        },
        Tab {
            state: "dead",
            count: row.dead,
        },
    ];
    Ok(QueueLive {
        state: job_state.as_str(),
        tabs,
        jobs: jobs.iter().map(|j| job_row(j, job_state, now_ms)).collect(),
        page,
        has_next,
        read_only: op.read_only(),
        csrf: op.csrf.clone(),
        row,
    })
}

pub(super) async fn queue_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    let live = queue_data(&state, &op, &name, &q).await?;
    Ok(render(&QueuePage {
        chrome: op.chrome(&state, format!("Queue {name}"), "overview"),
        queue: name,
        live_html: render(&live).0,
        search_error: None,
        search: String::new(),
    })
    .into_response())
}

pub(super) async fn queue_live(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> DashResult<Response> {
    let op = fragment_operator(&state, &headers).await?;
    Ok(render(&queue_data(&state, &op, &name, &q).await?).into_response())
}

pub(super) async fn find_job(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    let id = q.id.clone().unwrap_or_default().trim().to_owned();
    let queue = state.queue_handle(&name).await?;
    if !id.is_empty() && id.len() <= 200 && queue.job(&id).await?.is_some() {
        return Ok(
            Redirect::to(&format!("/dashboard/queues/{name}/jobs/{}", urlencode(&id)))
                .into_response(),
        );
    }
    let live = queue_data(&state, &op, &name, &ListQuery { id: None, ..q }).await?;
    let page = QueuePage {
        chrome: op.chrome(&state, format!("Queue {name}"), "overview"),
        queue: name.clone(),
        live_html: render(&live).0,
        search_error: Some(if id.is_empty() {
            "type a job id".to_owned()
        } else {
            format!("no job {id:?} in queue {name} (completed jobs are kept only for a while)")
        }),
        search: id,
    };
    Ok((StatusCode::NOT_FOUND, render(&page)).into_response())
}

pub(super) async fn job_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    let queue = state.queue_handle(&name).await?;
    let Some(j) = queue.job(&id).await? else {
        return Err(DashError::status(
            StatusCode::NOT_FOUND,
            format!("no job {id:?} in queue {name}"),
        ));
    };
    let payload = serde_json::to_string_pretty(&crate::views::payload_json(&j)).unwrap_or_default();
    let facts = vec![
        ("priority", j.priority.to_string()),
        ("runs", format!("{} of {}", j.attempt, j.max_attempts)),
        (
            "timeout",
            j.timeout_ms
                .map(duration_ms)
                .unwrap_or_else(|| "none".into()),
        ),
        (
            "idempotency key",
            j.idempotency_key.clone().unwrap_or_else(|| "—".into()),
        ),
        ("enqueued", time_ms(Some(j.created_at_ms))),
        ("due", time_ms(j.due_at_ms)),
        ("last run started", time_ms(j.started_at_ms)),
        ("finished", time_ms(j.finished_at_ms)),
        ("worker", j.worker.clone().unwrap_or_else(|| "—".into())),
    ];
    let attempts = j
        .errors
        .iter()
        .map(|e| AttemptRow {
            attempt: e.attempt,
            at: time_ms(Some(e.at)),
            error: e.error.clone(),
        })
        .collect();
    Ok(render(&JobPage {
        chrome: op.chrome(&state, format!("Job {id}"), "overview"),
        queue: name,
        id: j.id.clone(),
        state: j.state.as_str().into(),
        facts,
        payload,
        result: j.result.clone(),
        last_error: j.last_error.clone(),
        attempts,
    })
    .into_response())
}

/// Cancel one job (see `Queue::cancel`).
pub(super) async fn cancel_job(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    op.may_act(&state, form.csrf.as_deref())?;
    state.queue_handle(&name).await?.cancel(&id).await?;
    Ok(op.acted(&format!("/dashboard/queues/{name}/jobs/{id}")))
}

/// Pause or resume a whole queue (every partition).
pub(super) async fn pause(
    state: State<AppState>,
    headers: HeaderMap,
    path: Path<String>,
    form: Form<ActionForm>,
) -> DashResult<Response> {
    set_paused(state, headers, path, form, true).await
}

/// See [`pause`].
pub(super) async fn resume(
    state: State<AppState>,
    headers: HeaderMap,
    path: Path<String>,
    form: Form<ActionForm>,
) -> DashResult<Response> {
    set_paused(state, headers, path, form, false).await
}

async fn set_paused(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<ActionForm>,
    paused: bool,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    op.may_act(&state, form.csrf.as_deref())?;
    let queue = state.queue_handle(&name).await?;
    if paused {
        queue.pause().await?;
    } else {
        queue.resume().await?;
    }
    Ok(op.acted(&format!("/dashboard/queues/{name}")))
}
