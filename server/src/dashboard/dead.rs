//! A queue's dead letters: the page with its search, and the actions
//! (retry, delete, retry matching, purge).

use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use sluice_dashboard::format::time_ms;
use sluice_dashboard::pages::{DeadLive, DeadPage, DeadRow};
use sluice_engine::DeadQuery;

use super::{
    ActionForm, DashError, DashResult, ListQuery, Operator, PAGE_SIZE, fragment_operator, operator,
    page_number, render, urlencode,
};
use crate::AppState;

fn filter_text(q: Option<&str>) -> DashResult<String> {
    let text = q.unwrap_or("").trim().to_owned();
    if text.chars().count() > 200 {
        return Err(DashError::status(
            StatusCode::BAD_REQUEST,
            "the filter is longer than 200 characters",
        ));
    }
    Ok(text)
}

async fn dead_data(
    state: &AppState,
    op: &Operator,
    name: &str,
    q: &ListQuery,
) -> DashResult<DeadLive> {
    let filter = filter_text(q.q.as_deref())?;
    let page = page_number(q.page.as_deref())?;
    let queue = state.queue_handle(name).await?;
    let found = state
        .client
        .inspector()
        .dead(
            &queue,
            DeadQuery {
                text: Some(&filter),
                offset: (page - 1) * PAGE_SIZE,
                limit: PAGE_SIZE + 1,
                ..DeadQuery::default()
            },
        )
        .await?;
    let (total, matched, mut letters) = (found.total, found.matched, found.letters);
    let has_next = letters.len() > PAGE_SIZE;
    letters.truncate(PAGE_SIZE);
    Ok(DeadLive {
        queue: name.to_owned(),
        filter,
        rows: letters
            .iter()
            .map(|j| DeadRow {
                id: j.id.clone(),
                died: time_ms(j.finished_at_ms),
                reason: j.last_error.clone().unwrap_or_default(),
                attempts: j.attempt,
            })
            .collect(),
        matched,
        total,
        page,
        has_next,
        read_only: op.read_only(),
        csrf: op.csrf.clone(),
    })
}

pub(super) async fn dead_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> DashResult<Response> {
    let op = operator(&state, &headers).await?;
    let live = dead_data(&state, &op, &name, &q).await?;
    Ok(render(&DeadPage {
        chrome: op.chrome(&state, format!("Dead letters of {name}"), "overview"),
        queue: name,
        filter: live.filter.clone(),
        live_html: render(&live).0,
    })
    .into_response())
}

pub(super) async fn dead_live(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> DashResult<Response> {
    let op = fragment_operator(&state, &headers).await?;
    Ok(render(&dead_data(&state, &op, &name, &q).await?).into_response())
}

fn dead_list_url(name: &str, filter: &str) -> String {
    if filter.is_empty() {
        format!("/dashboard/queues/{name}/dead")
    } else {
        format!("/dashboard/queues/{name}/dead?q={}", urlencode(filter))
    }
}

/// Retry or delete one dead letter: `.../dead/{id}/retry` or
/// `.../dead/{id}/delete`; any other last segment is no page (404).
pub(super) async fn dead_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, id, action)): Path<(String, String, String)>,
    Form(form): Form<ActionForm>,
) -> DashResult<Response> {
    let retry = match action.as_str() {
        "retry" => true,
        "delete" => false,
        _ => return Err(DashError::status(StatusCode::NOT_FOUND, "no such page")),
    };
    let op = operator(&state, &headers).await?;
    op.may_act(&state, form.csrf.as_deref())?;
    let queue = state.queue_handle(&name).await?;
    let was_dead = if retry {
        queue.redrive(&id).await?
    } else {
        queue.delete_dead(&id).await?
    };
    if !was_dead {
        return Err(DashError::status(
            StatusCode::NOT_FOUND,
            format!("{id:?} is not a dead letter of {name} (retried or deleted already?)"),
        ));
    }
    Ok(op.acted(&dead_list_url(&name, "")))
}

/// Act on a queue's dead letters at once: `.../dead/retry` re-drives those
/// matching the form's filter (all of them without one), `.../dead/purge`
/// deletes them all; any other last segment is no page (404).
pub(super) async fn dead_all(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> DashResult<Response> {
    let retry = match action.as_str() {
        "retry" => true,
        "purge" => false,
        _ => return Err(DashError::status(StatusCode::NOT_FOUND, "no such page")),
    };
    let op = operator(&state, &headers).await?;
    op.may_act(&state, form.csrf.as_deref())?;
    let filter = filter_text(form.q.as_deref())?;
    let queue = state.queue_handle(&name).await?;
    if !retry {
        queue.purge_dead().await?;
        return Ok(op.acted(&dead_list_url(&name, "")));
    }
    if filter.is_empty() {
        queue.redrive_all().await?;
    } else {
        // Re-driven letters leave the dead set, so each search finds the
        // next ones; stop when none match (or a pass re-drives nothing,
        // should another operator be deleting them meanwhile).
        loop {
            let (letters, _) = queue.find_dead(&filter, 0, 1000).await?;
            let ids: Vec<String> = letters.into_iter().map(|j| j.id).collect();
            if ids.is_empty() || queue.redrive_many(&ids).await? == 0 {
                break;
            }
        }
    }
    Ok(op.acted(&dead_list_url(&name, &filter)))
}
