//! Queue endpoints: enqueue (single and batch), job lookup, stats,
//! pause/resume and dead-letter management.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use sluice_engine::{
    Cancelled, DeadQuery, Enqueued, JobOptions, JobOptionsInput, JobState, MAX_LIST_LIMIT,
    MAX_LIST_OFFSET, NewJob, Queue, QueueSummary, Stats,
};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery, ApiResult, ErrorBody};
use super::integral;
use crate::views::JobView;

/// `{queue}`. Its pattern is the engine's rule for queue names (see
/// `validate_name`): letters, digits, `.`, `_` and `-`, not dots only, and
/// optionally a partition's `#<index>`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct QueuePath {
    /// The queue's name.
    #[param(
        pattern = r"^[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*(#[0-9]{1,4})?$",
        min_length = 1,
        max_length = 128
    )]
    pub queue: String,
}

/// `{queue}` and `{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct JobPath {
    /// The queue's name.
    #[param(
        pattern = r"^[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*(#[0-9]{1,4})?$",
        min_length = 1,
        max_length = 128
    )]
    pub queue: String,
    /// The job's id.
    #[param(min_length = 1)]
    pub id: String,
}

/// One job to enqueue. The bounds are the engine's (`MAX_DURATION`, ten
/// years, for every duration; `MAX_IDEMPOTENCY_KEY_LEN` characters).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnqueueRequest {
    /// Any JSON value; handlers receive it as is.
    #[schema(value_type = Value)]
    pub payload: serde_json::Value,
    /// 0 (most urgent) to 9; default 0.
    #[serde(default, deserialize_with = "integral::option_i64")]
    #[schema(minimum = 0, maximum = 9)]
    pub priority: Option<i64>,
    /// Run no earlier than this many ms from now.
    #[serde(default, deserialize_with = "integral::option_i64")]
    #[schema(minimum = 0, maximum = 315_360_000_000_i64)]
    pub delay_ms: Option<i64>,
    /// Runs allowed in all, the first included.
    #[serde(default, deserialize_with = "integral::option_i64")]
    #[schema(minimum = 1, maximum = 4_294_967_295_i64)]
    pub max_attempts: Option<i64>,
    /// Base delay of the exponential backoff between attempts, ms.
    #[serde(default, deserialize_with = "integral::option_i64")]
    #[schema(minimum = 0, maximum = 315_360_000_000_i64)]
    pub backoff_ms: Option<i64>,
    /// Cancel a run after this many ms (counts as a failed attempt).
    #[serde(default, deserialize_with = "integral::option_i64")]
    #[schema(minimum = 1, maximum = 315_360_000_000_i64)]
    pub timeout_ms: Option<i64>,
    /// Enqueue at most once under this key within the idempotency window.
    #[schema(min_length = 1, max_length = 256)]
    pub idempotency_key: Option<String>,
    /// How long the key is remembered, ms (default 24 h, at most 30 days).
    #[serde(default, deserialize_with = "integral::option_i64")]
    #[schema(minimum = 1, maximum = 2_592_000_000_i64)]
    pub idempotency_window_ms: Option<i64>,
    /// For a partitioned queue: jobs with the same key go to the same
    /// partition, and keep their order among themselves. A queue without
    /// partitions answers 409 to it.
    #[schema(min_length = 1)]
    pub partition_key: Option<String>,
}

impl EnqueueRequest {
    /// The job, and its partition key.
    fn into_keyed_job(mut self) -> Result<NewJob, ApiError> {
        let key = self.partition_key.take();
        if key.as_deref().is_some_and(str::is_empty) {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_options",
                "partition_key must not be empty",
            ));
        }
        let mut job = self.into_job()?;
        job.partition_key = key;
        Ok(job)
    }

    fn into_job(self) -> Result<NewJob, ApiError> {
        // Each key is a Redis key for the whole window: an API caller may
        // not keep one for years.
        if self
            .idempotency_window_ms
            .is_some_and(|w| w > MAX_IDEMPOTENCY_WINDOW_MS)
        {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_options",
                format!("idempotency_window_ms: at most {MAX_IDEMPOTENCY_WINDOW_MS} (30 days)"),
            ));
        }
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

/// The longest idempotency window an API caller may ask for, ms: 30 days.
pub const MAX_IDEMPOTENCY_WINDOW_MS: i64 = 30 * 24 * 3600 * 1000;

/// A batch of jobs.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The jobs, enqueued in one atomic step, in order (at most
    /// `api.max_batch`; the served document gives the configured figure).
    #[schema(min_items = 1)]
    pub jobs: Vec<EnqueueRequest>,
}

/// The answer to a batch.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BatchResponse {
    /// One entry per job, in request order.
    pub jobs: Vec<Enqueued>,
}

/// `POST /api/queues/{queue}/jobs`: 201 for a new job, 200 when the
/// idempotency key matched an existing one (its id is returned).
#[utoipa::path(post, path = "/api/queues/{queue}/jobs", tag = "jobs", params(QueuePath),
    request_body = EnqueueRequest,
    responses(
        (status = 201, description = "Enqueued", body = Enqueued),
        (status = 200, description = "The idempotency key matched an earlier job; nothing was added", body = Enqueued),
        (status = 403, description = "The queue is Sluice's own (its name starts with _) or a plugged-in application's, or the key may only read", body = ErrorBody),
        (status = 409, description = "A partition key for a queue without partitions, or a new queue past api.max_queues", body = ErrorBody),
    ))]
pub async fn enqueue(
    State(state): State<AppState>,
    ApiPath(QueuePath { queue }): ApiPath<QueuePath>,
    ApiJson(body): ApiJson<EnqueueRequest>,
) -> ApiResult<(StatusCode, Json<Enqueued>)> {
    refuse_reserved(&state, &queue)?;
    let job = body.into_keyed_job()?;
    room_for(&state, &queue).await?;
    let q = state.queue_for_write(&queue).await?;
    refuse_partition_key(&q, job.partition_key.is_some())?;
    let e = q.enqueue(job).await?;
    let status = if e.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(e)))
}

/// `POST /api/queues/{queue}/jobs/batch`: all the jobs or none.
#[utoipa::path(post, path = "/api/queues/{queue}/jobs/batch", tag = "jobs", params(QueuePath),
    request_body = BatchRequest,
    responses(
        (status = 201, description = "Enqueued, one entry per job in request order", body = BatchResponse),
        (status = 403, description = "The queue is Sluice's own (its name starts with _) or a plugged-in application's, or the key may only read", body = ErrorBody),
        (status = 409, description = "A partition key for a queue without partitions, or a new queue past api.max_queues", body = ErrorBody),
    ))]
pub async fn enqueue_batch(
    State(state): State<AppState>,
    ApiPath(QueuePath { queue }): ApiPath<QueuePath>,
    ApiJson(body): ApiJson<BatchRequest>,
) -> ApiResult<(StatusCode, Json<BatchResponse>)> {
    refuse_reserved(&state, &queue)?;
    let max = state.api.max_batch;
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
    room_for(&state, &queue).await?;
    let q = state.queue_for_write(&queue).await?;
    refuse_partition_key(&q, jobs.iter().any(|job| job.partition_key.is_some()))?;
    let done = q.enqueue_many(jobs).await?;
    Ok((StatusCode::CREATED, Json(BatchResponse { jobs: done })))
}

/// Queues whose name starts with `_` are Sluice's own (`_alerts` carries
/// the alert notifications, which its workers send), and a plugged-in
/// application's own are its ([`App::reserved_queues`](crate::App::reserved_queues)):
/// jobs from outside have no place in them.
fn refuse_reserved(state: &AppState, queue: &str) -> ApiResult<()> {
    if queue.starts_with('_') {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "reserved_queue",
            format!("queue {queue:?} is Sluice's own (names starting with _ are reserved)"),
        ));
    }
    // A partition (`ingest#3`) belongs to its queue.
    let base = queue.split_once('#').map_or(queue, |(base, _)| base);
    if state
        .apps
        .iter()
        .any(|app| app.reserved_queues().contains(&base))
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "reserved_queue",
            format!("queue {queue:?} is the application's own: only it enqueues there"),
        ));
    }
    Ok(())
}

/// Refuse to make a new queue past `api.max_queues`: every queue costs
/// Redis keys and a place in every listing and scrape.
async fn room_for(state: &AppState, queue: &str) -> ApiResult<()> {
    if state.queues.existing(queue).await?.is_some() {
        return Ok(());
    }
    let max = state.api.max_queues;
    if state.client.queues().await?.len() >= max {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_queues",
            format!(
                "there are {max} queues, the most api.max_queues allows: enqueue into one of them"
            ),
        ));
    }
    Ok(())
}

/// A partition key for a queue that has no partitions is a mistake the
/// caller should hear about, not a key silently dropped.
fn refuse_partition_key(queue: &Queue, given: bool) -> ApiResult<()> {
    if given && !queue.is_partitioned() {
        let queue = queue.name();
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_partitioned",
            format!("queue {queue:?} is not partitioned; leave out partition_key"),
        ));
    }
    Ok(())
}

/// `GET /api/queues/{queue}/jobs/{id}`.
#[utoipa::path(get, path = "/api/queues/{queue}/jobs/{id}", tag = "jobs", params(JobPath),
    responses(
        (status = 200, description = "The job", body = JobView),
        (status = 404, description = "No such job (completed jobs are kept for the keep window)", body = ErrorBody),
    ))]
pub async fn job(
    State(state): State<AppState>,
    ApiPath(JobPath { queue, id }): ApiPath<JobPath>,
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
#[utoipa::path(post, path = "/api/queues/{queue}/jobs/{id}/cancel", tag = "jobs", params(JobPath),
    responses(
        (status = 200, description = "Cancelled, or asked to stop", body = CancelAnswer),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job has finished already", body = ErrorBody),
    ))]
pub async fn job_cancel(
    State(state): State<AppState>,
    ApiPath(JobPath { queue, id }): ApiPath<JobPath>,
) -> ApiResult<Json<CancelAnswer>> {
    let result = match state.queue_handle(&queue).await?.cancel(&id).await? {
        Cancelled::Cancelled => CancelResult::Cancelled,
        Cancelled::Requested => CancelResult::Requested,
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
    Ok(Json(CancelAnswer { id, result }))
}

/// What a cancel did.
#[derive(Debug, Serialize, ToSchema)]
pub struct CancelAnswer {
    /// The job.
    pub id: String,
    /// What happened.
    pub result: CancelResult,
}

/// `cancelled`: it was waiting or delayed and is a dead letter now;
/// `requested`: it is running and its handler is asked to stop.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelResult {
    /// A dead letter now.
    Cancelled,
    /// Its worker was asked to stop it.
    Requested,
}

/// A queue's counts as the API shows them.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueView {
    #[serde(flatten)]
    stats: Stats,
    /// Completed jobs in the last minute and the last hour.
    throughput: Throughput,
}

/// Every queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueList {
    /// The queues, by name.
    pub queues: Vec<QueueView>,
}

/// Recent throughput.
#[derive(Debug, Serialize, ToSchema)]
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

/// Minutes of throughput a queue's view sums up.
const VIEW_MINUTES: u64 = 60;

impl From<QueueSummary> for QueueView {
    fn from(summary: QueueSummary) -> Self {
        let full = summary.full_minutes();
        let last = summary.last_full_minute();
        let throughput = Throughput {
            completed_last_minute: last.completed,
            failed_last_minute: last.failed,
            completed_last_hour: full.iter().map(|m| m.completed).sum(),
            failed_last_hour: full.iter().map(|m| m.failed).sum(),
            // The last hour's minutes, the current one last.
            per_minute: summary.per_minute.get(1..).unwrap_or_default().to_vec(),
        };
        QueueView {
            stats: summary.stats,
            throughput,
        }
    }
}

/// `GET /api/queues`.
#[utoipa::path(get, path = "/api/queues", tag = "queues",
    responses((status = 200, description = "Every queue's counts", body = QueueList)))]
pub async fn list(State(state): State<AppState>) -> ApiResult<Json<QueueList>> {
    let all = state.client.inspector().queues(VIEW_MINUTES).await?;
    Ok(Json(QueueList {
        queues: all.into_iter().map(QueueView::from).collect(),
    }))
}

/// `GET /api/queues/{queue}`.
#[utoipa::path(get, path = "/api/queues/{queue}", tag = "queues", params(QueuePath),
    responses(
        (status = 200, description = "The queue's counts", body = QueueView),
        (status = 404, description = "No such queue", body = ErrorBody),
    ))]
pub async fn show(
    State(state): State<AppState>,
    ApiPath(QueuePath { queue }): ApiPath<QueuePath>,
) -> ApiResult<Json<QueueView>> {
    let q = state.queue_handle(&queue).await?;
    let summary = state.client.inspector().summary(&q, VIEW_MINUTES).await?;
    Ok(Json(summary.into()))
}

/// Whether a queue is paused, after a pause or a resume.
#[derive(Debug, Serialize, ToSchema)]
pub struct PauseState {
    /// The queue.
    pub queue: String,
    /// Whether workers are told not to claim.
    pub paused: bool,
}

/// `POST /api/queues/{queue}/pause`.
#[utoipa::path(post, path = "/api/queues/{queue}/pause", tag = "queues", params(QueuePath),
    responses(
        (status = 200, description = "Paused", body = PauseState),
        (status = 404, description = "No such queue", body = ErrorBody),
    ))]
pub async fn pause(
    State(state): State<AppState>,
    ApiPath(QueuePath { queue }): ApiPath<QueuePath>,
) -> ApiResult<Json<PauseState>> {
    state.queue_handle(&queue).await?.pause().await?;
    Ok(Json(PauseState {
        queue,
        paused: true,
    }))
}

/// `POST /api/queues/{queue}/resume`.
#[utoipa::path(post, path = "/api/queues/{queue}/resume", tag = "queues", params(QueuePath),
    responses(
        (status = 200, description = "Resumed", body = PauseState),
        (status = 404, description = "No such queue", body = ErrorBody),
    ))]
pub async fn resume(
    State(state): State<AppState>,
    ApiPath(QueuePath { queue }): ApiPath<QueuePath>,
) -> ApiResult<Json<PauseState>> {
    state.queue_handle(&queue).await?.resume().await?;
    Ok(Json(PauseState {
        queue,
        paused: false,
    }))
}

/// Paging of dead letters.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// Skip this many (after `cursor`, when one is given).
    #[serde(default)]
    #[param(minimum = 0, maximum = 10_000)]
    pub offset: usize,
    /// At most this many (default 50).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// Only dead letters whose error contains this text (case-insensitive).
    #[param(max_length = 200)]
    pub q: Option<String>,
    /// Start after this cursor (a page's `next_cursor`): as cheap at any
    /// depth as the first page. Empty: from the newest.
    #[param(pattern = r"^([0-9]{1,19}-[^\n\r\u2028\u2029]{1,200})?$")]
    pub cursor: Option<String>,
}

/// Longest search text (`q`), in characters, as the dashboard's.
const MAX_SEARCH_CHARS: usize = 200;

/// Most dead letters scanned by a filtered listing or retry.
const FILTER_SCAN_LIMIT: usize = 100_000;

/// A page of dead letters.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeadPage {
    /// The queue.
    pub queue: String,
    /// Dead letters in all.
    pub total: u64,
    /// Those matching `q` (all of them without one), after the cursor.
    pub matched: u64,
    /// The offset asked for.
    pub offset: usize,
    /// The limit applied.
    pub limit: usize,
    /// The page, newest first.
    pub dead: Vec<JobView>,
    /// Give as `cursor` for the next page; null on the last page, and for
    /// a search (`q`), which pages by offset.
    pub next_cursor: Option<String>,
}

/// `GET /api/queues/{queue}/dead?offset=&limit=&q=&cursor=`: a page of
/// dead letters; without `q`, its `next_cursor` pages on at any depth.
/// With a cursor, `offset` skips that many after it and `q` searches only
/// the letters after it.
#[utoipa::path(get, path = "/api/queues/{queue}/dead", tag = "dead letters", params(QueuePath, Page),
    responses(
        (status = 200, description = "A page of dead letters", body = DeadPage),
        (status = 404, description = "No such queue", body = ErrorBody),
    ))]
pub async fn dead_list(
    State(state): State<AppState>,
    ApiPath(QueuePath { queue }): ApiPath<QueuePath>,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<DeadPage>> {
    let limit = page.limit.unwrap_or(50);
    if !(1..=MAX_LIST_LIMIT).contains(&limit) {
        return Err(ApiError::invalid(
            "invalid_limit",
            format!("limit must be 1 to {MAX_LIST_LIMIT}"),
        ));
    }
    if page
        .q
        .as_ref()
        .is_some_and(|q| q.chars().count() > MAX_SEARCH_CHARS)
    {
        return Err(ApiError::invalid(
            "invalid_query",
            format!("q must be at most {MAX_SEARCH_CHARS} characters"),
        ));
    }
    // Deep pages would have Redis (and each partition) read everything
    // before them.
    if page.offset > MAX_LIST_OFFSET {
        return Err(ApiError::invalid(
            "invalid_offset",
            format!("offset must be at most {MAX_LIST_OFFSET}; page with cursor or narrow with q"),
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
    let q = state.queue_handle(&queue).await?;
    let found = state
        .client
        .inspector()
        .dead(
            &q,
            DeadQuery {
                text: page.q.as_deref(),
                cursor: cursor.as_ref(),
                offset: page.offset,
                limit,
            },
        )
        .await?;
    Ok(Json(DeadPage {
        queue,
        total: found.total,
        matched: found.matched,
        offset: page.offset,
        limit,
        dead: found.letters.into_iter().map(JobView::from).collect(),
        next_cursor: found.next.map(|c| c.to_string()),
    }))
}

/// `GET /api/queues/{queue}/dead/{id}`.
#[utoipa::path(get, path = "/api/queues/{queue}/dead/{id}", tag = "dead letters", params(JobPath),
    responses(
        (status = 200, description = "The dead letter", body = JobView),
        (status = 404, description = "No such dead letter", body = ErrorBody),
    ))]
pub async fn dead_show(
    State(state): State<AppState>,
    ApiPath(JobPath { queue, id }): ApiPath<JobPath>,
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

/// How many dead letters went back to their queue.
#[derive(Debug, Serialize, ToSchema)]
pub struct Retried {
    /// How many.
    pub retried: u64,
    /// Which, for a retry of one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<String>>,
}

/// `POST /api/queues/{queue}/dead/{id}/retry`.
#[utoipa::path(post, path = "/api/queues/{queue}/dead/{id}/retry", tag = "dead letters", params(JobPath),
    responses(
        (status = 200, description = "Back in its queue with fresh attempts", body = Retried),
        (status = 404, description = "No such dead letter", body = ErrorBody),
    ))]
pub async fn dead_retry(
    State(state): State<AppState>,
    ApiPath(JobPath { queue, id }): ApiPath<JobPath>,
) -> ApiResult<Json<Retried>> {
    if state.queue_handle(&queue).await?.redrive(&id).await? {
        return Ok(Json(Retried {
            retried: 1,
            ids: Some(vec![id]),
        }));
    }
    Err(dead_not_found(&queue, &id))
}

/// Which dead letters to retry: all of them (no body, or `{}`), those
/// whose error contains `q`, `ids`, or those of `ids` whose error
/// contains `q`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryFilter {
    /// Only those whose error contains this text (case-insensitive).
    pub q: Option<String>,
    /// Only these ids.
    pub ids: Option<Vec<String>>,
}

/// `POST /api/queues/{queue}/dead/retry`: all, those matching `q`, or `ids`.
/// The body is optional.
#[utoipa::path(post, path = "/api/queues/{queue}/dead/retry", tag = "dead letters", params(QueuePath),
    request_body(content = Option<RetryFilter>, description = "Optional: without it, every dead letter"),
    responses(
        (status = 200, description = "Retried", body = Retried),
        (status = 404, description = "No such queue", body = ErrorBody),
    ))]
pub async fn dead_retry_many(
    State(state): State<AppState>,
    ApiPath(QueuePath { queue }): ApiPath<QueuePath>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Retried>> {
    let filter: RetryFilter = if body.iter().all(u8::is_ascii_whitespace) {
        RetryFilter::default()
    } else {
        // `null` is no filter, as an absent body is.
        super::error::parse_json::<RetryFilter>(&body)?.unwrap_or_default()
    };
    let text = filter.q.filter(|t| !t.is_empty());
    let q = state.queue_handle(&queue).await?;
    let retried = match (&filter.ids, &text) {
        (Some(ids), Some(text)) => {
            let needle = text.to_lowercase();
            let mut matching = Vec::new();
            for id in ids {
                let Some(job) = q.job(id).await? else {
                    continue;
                };
                let error = job.last_error.unwrap_or_default().to_lowercase();
                if job.state == JobState::Dead && error.contains(&needle) {
                    matching.push(job.id);
                }
            }
            q.redrive_many(&matching).await?
        }
        (Some(ids), None) => q.redrive_many(ids).await?,
        (None, Some(text)) => q.redrive_matching(text, FILTER_SCAN_LIMIT).await?,
        (None, None) => q.redrive_all().await?,
    };
    Ok(Json(Retried { retried, ids: None }))
}

/// `DELETE /api/queues/{queue}/dead/{id}`.
#[utoipa::path(delete, path = "/api/queues/{queue}/dead/{id}", tag = "dead letters", params(JobPath),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such dead letter", body = ErrorBody),
    ))]
pub async fn dead_delete(
    State(state): State<AppState>,
    ApiPath(JobPath { queue, id }): ApiPath<JobPath>,
) -> ApiResult<StatusCode> {
    if state.queue_handle(&queue).await?.delete_dead(&id).await? {
        return Ok(StatusCode::NO_CONTENT);
    }
    Err(dead_not_found(&queue, &id))
}

/// How many dead letters a purge deleted.
#[derive(Debug, Serialize, ToSchema)]
pub struct Purged {
    /// How many.
    pub deleted: u64,
}

/// `DELETE /api/queues/{queue}/dead`: purge.
#[utoipa::path(delete, path = "/api/queues/{queue}/dead", tag = "dead letters", params(QueuePath),
    responses(
        (status = 200, description = "Every dead letter deleted", body = Purged),
        (status = 404, description = "No such queue", body = ErrorBody),
    ))]
pub async fn dead_purge(
    State(state): State<AppState>,
    ApiPath(QueuePath { queue }): ApiPath<QueuePath>,
) -> ApiResult<Json<Purged>> {
    let deleted = state.queue_handle(&queue).await?.purge_dead().await?;
    Ok(Json(Purged { deleted }))
}
