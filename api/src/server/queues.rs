//! Queue endpoints: enqueue (single and batch), job lookup, stats,
//! pause/resume and dead-letter management.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sluice_engine::{
    Cancelled, Enqueued, JobOptions, JobOptionsInput, JobState, MAX_LIST_LIMIT, MAX_LIST_OFFSET,
    MinuteCount, NewJob, Queue, Stats,
};

use super::AppState;
use super::error::{ApiError, ApiJson, ApiResult};
use crate::views::JobView;

/// One job to enqueue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnqueueRequest {
    /// Any JSON value; handlers receive it as is.
    pub payload: serde_json::Value,
    /// 0 (most urgent) to 9; default 0.
    pub priority: Option<i64>,
    /// Run no earlier than this many ms from now.
    pub delay_ms: Option<i64>,
    /// Runs allowed in all, the first included.
    pub max_attempts: Option<i64>,
    /// Base delay of the exponential backoff between attempts, ms.
    pub backoff_ms: Option<i64>,
    /// Cancel a run after this many ms (counts as a failed attempt).
    pub timeout_ms: Option<i64>,
    /// Enqueue at most once under this key within the idempotency window.
    pub idempotency_key: Option<String>,
    /// How long the key is remembered, ms (default 24 h).
    pub idempotency_window_ms: Option<i64>,
    /// For a partitioned queue: jobs with the same key go to the same
    /// partition, and keep their order among themselves.
    pub partition_key: Option<String>,
}

impl EnqueueRequest {
    /// The job, and its partition key.
    fn into_keyed_job(mut self) -> Result<(Option<String>, NewJob), ApiError> {
        let key = self.partition_key.take();
        if key.as_deref().is_some_and(str::is_empty) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_options",
                "partition_key must not be empty",
            ));
        }
        Ok((key, self.into_job()?))
    }

    fn into_job(self) -> Result<NewJob, ApiError> {
        let options = JobOptions::try_from(JobOptionsInput {
            priority: self.priority,
            delay_ms: self.delay_ms,
            max_attempts: self.max_attempts,
            backoff_ms: self.backoff_ms,
            timeout_ms: self.timeout_ms,
            idempotency_key: self.idempotency_key,
            idempotency_window_ms: self.idempotency_window_ms,
        })?;
        Ok(NewJob::new(&self.payload, options)?)
    }
}

/// A batch of jobs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The jobs, enqueued in one atomic step, in order.
    pub jobs: Vec<EnqueueRequest>,
}

/// The answer to a batch.
#[derive(Debug, Clone, Serialize)]
pub struct BatchResponse {
    /// One entry per job, in request order.
    pub jobs: Vec<Enqueued>,
}

/// `POST /api/queues/{queue}/jobs`: 201 for a new job, 200 when the
/// idempotency key matched an existing one (its id is returned).
pub async fn enqueue(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    ApiJson(body): ApiJson<EnqueueRequest>,
) -> ApiResult<(StatusCode, Json<Enqueued>)> {
    let (partition_key, job) = body.into_keyed_job()?;
    let q = state.queue_for_write(&queue).await?;
    refuse_partition_key(&q, partition_key.is_some())?;
    let e = q
        .enqueue_raw_keyed(partition_key.as_deref(), job.payload, job.options)
        .await?;
    let status = if e.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(e)))
}

/// `POST /api/queues/{queue}/jobs/batch`.
pub async fn enqueue_batch(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    ApiJson(body): ApiJson<BatchRequest>,
) -> ApiResult<(StatusCode, Json<BatchResponse>)> {
    let max = state.file.api.max_batch;
    if body.jobs.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("{} jobs in one batch; at most {max}", body.jobs.len()),
        ));
    }
    let jobs = body
        .jobs
        .into_iter()
        .enumerate()
        .map(|(i, j)| {
            j.into_keyed_job().map_err(|e| ApiError {
                message: format!("jobs[{i}]: {}", e.message),
                ..e
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let q = state.queue_for_write(&queue).await?;
    refuse_partition_key(&q, jobs.iter().any(|(key, _)| key.is_some()))?;
    let done = q.enqueue_batch_keyed(jobs).await?;
    Ok((StatusCode::CREATED, Json(BatchResponse { jobs: done })))
}

/// A partition key for a queue that has no partitions is a mistake the
/// caller should hear about, not a key silently dropped.
fn refuse_partition_key(queue: &Queue, given: bool) -> ApiResult<()> {
    if given && !queue.is_partitioned() {
        let queue = queue.name();
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_partitioned",
            format!("queue {queue:?} is not partitioned; leave out partition_key"),
        ));
    }
    Ok(())
}

/// `GET /api/queues/{queue}/jobs/{id}`.
pub async fn job(
    State(state): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
) -> ApiResult<Json<JobView>> {
    if let Some(info) = state.queue_handle(&queue).await?.job(&id).await? {
        return Ok(Json(info.into()));
    }
    Err(ApiError::not_found(
        "job_not_found",
        format!(
            "no job {id:?} in queue {queue:?} (completed jobs are kept only for the queue's keep window)"
        ),
    ))
}

/// `POST /api/queues/{queue}/jobs/{id}/cancel`: a waiting or delayed job
/// becomes a dead letter, a running one is asked to stop; a finished one
/// is left alone (`409`).
pub async fn job_cancel(
    State(state): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    let result = match state.queue_handle(&queue).await?.cancel(&id).await? {
        Cancelled::Cancelled => "cancelled",
        Cancelled::Requested => "requested",
        Cancelled::Finished(state) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "job_finished",
                format!("job {id:?} is {state} already: nothing to cancel"),
            ));
        }
        Cancelled::Missing => {
            return Err(ApiError::not_found(
                "job_not_found",
                format!("no job {id:?} in queue {queue:?}"),
            ));
        }
    };
    Ok(Json(serde_json::json!({ "id": id, "result": result })))
}

/// A queue's counts as the API shows them.
#[derive(Debug, Serialize)]
pub struct QueueView {
    #[serde(flatten)]
    stats: Stats,
    /// Completed jobs in the last minute and the last hour.
    throughput: Throughput,
}

/// Recent throughput.
#[derive(Debug, Serialize)]
pub struct Throughput {
    /// Jobs completed in the last full minute.
    pub completed_last_minute: u64,
    /// Attempts failed in the last full minute.
    pub failed_last_minute: u64,
    /// Jobs completed in the last 60 minutes.
    pub completed_last_hour: u64,
    /// Attempts failed in the last 60 minutes.
    pub failed_last_hour: u64,
    /// Per minute over the last hour, oldest first (the current minute last).
    pub per_minute: Vec<sluice_engine::MinuteCount>,
}

async fn queue_view(q: &Queue) -> ApiResult<QueueView> {
    let (stats, per_minute) = futures::try_join!(q.stats(), q.throughput(61))?;
    Ok(view(stats, per_minute))
}

fn view(stats: Stats, per_minute: Vec<MinuteCount>) -> QueueView {
    let full = &per_minute[..per_minute.len().saturating_sub(1)];
    let last = full.last().copied().unwrap_or_default();
    let throughput = Throughput {
        completed_last_minute: last.completed,
        failed_last_minute: last.failed,
        completed_last_hour: full.iter().map(|m| m.completed).sum(),
        failed_last_hour: full.iter().map(|m| m.failed).sum(),
        per_minute: per_minute.get(1..).unwrap_or_default().to_vec(),
    };
    QueueView { stats, throughput }
}

/// `GET /api/queues`.
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<serde_json::Value>> {
    // Every queue's reads go out together, not one queue after another.
    let names = state.client.queues().await?;
    let all = futures::future::try_join_all(names.iter().map(|name| async {
        let q = state.existing_queue(name).await?;
        queue_view(&q).await
    }))
    .await?;
    Ok(Json(serde_json::json!({ "queues": all })))
}

/// `GET /api/queues/{queue}`.
pub async fn show(
    State(state): State<AppState>,
    Path(queue): Path<String>,
) -> ApiResult<Json<QueueView>> {
    Ok(Json(queue_view(&state.queue_handle(&queue).await?).await?))
}

/// `POST /api/queues/{queue}/pause`.
pub async fn pause(
    State(state): State<AppState>,
    Path(queue): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    state.queue_handle(&queue).await?.pause().await?;
    Ok(Json(serde_json::json!({ "queue": queue, "paused": true })))
}

/// `POST /api/queues/{queue}/resume`.
pub async fn resume(
    State(state): State<AppState>,
    Path(queue): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    state.queue_handle(&queue).await?.resume().await?;
    Ok(Json(serde_json::json!({ "queue": queue, "paused": false })))
}

/// Paging of lists.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Page {
    /// Skip this many.
    #[serde(default)]
    pub offset: usize,
    /// At most this many (1 to 1000, default 50).
    pub limit: Option<usize>,
    /// Only dead letters whose error contains this text (case-insensitive).
    pub q: Option<String>,
    /// Dead letters: start after this cursor (a page's `next_cursor`)
    /// instead of an offset; as cheap at any depth.
    pub cursor: Option<String>,
}

/// Most dead letters scanned by a filtered listing or retry.
const FILTER_SCAN_LIMIT: usize = 100_000;

/// `GET /api/queues/{queue}/dead?offset=&limit=&q=&cursor=`: a page of
/// dead letters; without `q`, its `next_cursor` pages on at any depth.
pub async fn dead_list(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    Query(page): Query<Page>,
) -> ApiResult<Json<serde_json::Value>> {
    let limit = page.limit.unwrap_or(50);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "invalid_limit",
            format!("limit must be 1 to {MAX_LIST_LIMIT}"),
        ));
    }
    // Deep pages would have Redis (and each partition) read everything
    // before them.
    if page.offset > MAX_LIST_OFFSET {
        return Err(ApiError::invalid(
            "invalid_offset",
            format!("offset must be at most {MAX_LIST_OFFSET}; narrow the listing with q"),
        ));
    }
    let cursor = page
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| {
            c.parse::<sluice_engine::DeadCursor>().map_err(|_| {
                ApiError::invalid(
                    "invalid_cursor",
                    "cursor is not one this listing handed out",
                )
            })
        })
        .transpose()?;
    let filter = page.q.as_deref().filter(|t| !t.is_empty());
    if cursor.is_some() && (page.offset > 0 || filter.is_some()) {
        return Err(ApiError::invalid(
            "invalid_cursor",
            "a cursor pages the whole listing: give it without offset or q",
        ));
    }
    let q = state.queue_handle(&queue).await?;
    let total = q.stats().await?.dead;
    let (letters, matched, next) = match filter {
        Some(text) => {
            let (letters, matched) = q.find_dead(text, page.offset, limit).await?;
            (letters, matched, None)
        }
        None if page.offset > 0 => (q.dead_letters(page.offset, limit).await?, total, None),
        None => {
            let (letters, next) = q.dead_letters_after(cursor.as_ref(), limit).await?;
            (letters, total, next)
        }
    };
    let views: Vec<JobView> = letters.into_iter().map(JobView::from).collect();
    Ok(Json(serde_json::json!({
        "queue": queue,
        "total": total,
        "matched": matched,
        "offset": page.offset,
        "limit": limit,
        "dead": views,
        "next_cursor": next.map(|c| c.to_string()),
    })))
}

/// `GET /api/queues/{queue}/dead/{id}`.
pub async fn dead_show(
    State(state): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
) -> ApiResult<Json<JobView>> {
    let q = state.queue_handle(&queue).await?;
    match q.job(&id).await?.filter(|i| i.state == JobState::Dead) {
        Some(info) => Ok(Json(info.into())),
        None => Err(dead_not_found(&queue, &id)),
    }
}

fn dead_not_found(queue: &str, id: &str) -> ApiError {
    ApiError::not_found(
        "dead_letter_not_found",
        format!("no dead letter {id:?} in queue {queue:?}"),
    )
}

/// `POST /api/queues/{queue}/dead/{id}/retry`.
pub async fn dead_retry(
    State(state): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
) -> ApiResult<Json<serde_json::Value>> {
    if state.queue_handle(&queue).await?.redrive(&id).await? {
        return Ok(Json(serde_json::json!({ "retried": 1, "ids": [id] })));
    }
    Err(dead_not_found(&queue, &id))
}

/// Which dead letters to retry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFilter {
    /// Only those whose error contains this text (case-insensitive).
    pub q: Option<String>,
    /// Only these ids.
    pub ids: Option<Vec<String>>,
}

/// `POST /api/queues/{queue}/dead/retry`: all, those matching `q`, or `ids`.
/// The body is optional.
pub async fn dead_retry_many(
    State(state): State<AppState>,
    Path(queue): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let filter: RetryFilter = if body.iter().all(u8::is_ascii_whitespace) {
        RetryFilter::default()
    } else {
        super::error::parse_json(&body)?
    };
    let text = filter.q.filter(|t| !t.is_empty());
    if filter.ids.is_some() && text.is_some() {
        return Err(ApiError::invalid(
            "invalid_filter",
            "give either ids or q, not both",
        ));
    }
    let q = state.queue_handle(&queue).await?;
    let retried = match (&filter.ids, &text) {
        (Some(ids), _) => q.redrive_many(ids).await?,
        (None, Some(text)) => q.redrive_matching(text, FILTER_SCAN_LIMIT).await?,
        (None, None) => q.redrive_all().await?,
    };
    Ok(Json(serde_json::json!({ "retried": retried })))
}

/// `DELETE /api/queues/{queue}/dead/{id}`.
pub async fn dead_delete(
    State(state): State<AppState>,
    Path((queue, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    if state.queue_handle(&queue).await?.delete_dead(&id).await? {
        return Ok(StatusCode::NO_CONTENT);
    }
    Err(dead_not_found(&queue, &id))
}

/// `DELETE /api/queues/{queue}/dead`: purge.
pub async fn dead_purge(
    State(state): State<AppState>,
    Path(queue): Path<String>,
) -> ApiResult<Json<serde_json::Value>> {
    let deleted = state.queue_handle(&queue).await?.purge_dead().await?;
    Ok(Json(serde_json::json!({ "deleted": deleted })))
}
