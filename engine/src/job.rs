//! Jobs as handlers see them, as lookups show them, and what handlers return.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The states of a job. Each variant says which component moves a job out of
/// it; `docs/state-machine.md` draws them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// In its priority stream, ready. A worker's claim (`claim.lua`) moves it
    /// to `Active`.
    Waiting,
    /// Waiting for its due time (a delayed job, or a retry's backoff). The
    /// promoter (`promote.lua`) moves it to `Waiting`.
    Delayed,
    /// Claimed by a worker. The worker's outcome (`settle.lua`) moves it to
    /// `Completed`, `Delayed`/`Waiting` (retry, snooze) or `Dead`; the
    /// reclaimer (`reclaim.lua`) does the same for a worker that died.
    Active,
    /// Finished. Terminal: its hash expires after the keep window.
    Completed,
    /// Out of attempts, or buried by its handler. Re-drive (`redrive.lua`)
    /// moves it back to `Waiting`; deletion removes it.
    Dead,
}

impl JobState {
    /// The name stored in the job hash and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "waiting",
            JobState::Delayed => "delayed",
            JobState::Active => "active",
            JobState::Completed => "completed",
            JobState::Dead => "dead",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "waiting" => JobState::Waiting,
            "delayed" => JobState::Delayed,
            "active" => JobState::Active,
            "completed" => JobState::Completed,
            "dead" => JobState::Dead,
            _ => return None,
        })
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A claimed job, handed to a [`Handler`](crate::Handler).
#[derive(Debug, Clone)]
pub struct Job {
    /// The job's id.
    pub id: String,
    /// The queue it came from.
    pub queue: String,
    /// This run's number, 1 for the first.
    pub attempt: u32,
    /// Runs allowed in all.
    pub max_attempts: u32,
    /// Priority level it was claimed at.
    pub priority: u8,
    /// Run timeout, if any.
    pub timeout: Option<Duration>,
    /// When it was enqueued, Redis server time in ms since the Unix epoch.
    pub created_at_ms: u64,
    /// The payload as stored (MessagePack when enqueued through the typed API).
    pub payload: Vec<u8>,
    pub(crate) entry_id: String,
    pub(crate) fence: u64,
    /// The consumer name that claimed it (a light job's fence is its
    /// entry pending under this name).
    pub(crate) consumer: String,
    pub(crate) cancel: CancelSignal,
}

/// Why a running job was asked to stop ([`Job::cancelled`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The run passed the job's timeout. The attempt counts as failed
    /// whatever the handler then returns.
    Timeout,
    /// The worker is stopping and its shutdown grace is over. What the
    /// handler returns within the cancel grace is recorded, except that a
    /// failure becomes a snooze of zero: the job goes back in line with no
    /// attempt spent, since it was interrupted, not at fault.
    Shutdown,
    /// An operator cancelled the job ([`Queue::cancel`](crate::Queue::cancel)).
    /// Unless the handler still returns a success, the job goes to the dead
    /// letters ("cancelled by an operator"), whatever attempts are left.
    Operator,
}

impl CancelReason {
    /// The name shown in logs and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::Timeout => "timeout",
            CancelReason::Shutdown => "shutdown",
            CancelReason::Operator => "operator",
        }
    }
}

/// A running job's cancellation: set once, with the first reason.
#[derive(Debug, Clone, Default)]
pub(crate) struct CancelSignal {
    token: CancellationToken,
    reason: Arc<OnceLock<CancelReason>>,
}

impl CancelSignal {
    /// Ask the job to stop. A later reason does not replace the first.
    pub(crate) fn cancel(&self, reason: CancelReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }

    pub(crate) fn reason(&self) -> Option<CancelReason> {
        self.reason.get().copied()
    }
}

impl Job {
    /// The fence this run holds: raised at every claim and reclaim, so an
    /// outcome recorded under an older one is refused. 0 for a job on its
    /// first run since enqueue, which has no hash: its fence is its stream
    /// entry pending for this worker (a reclaim gives it a hash with fence 1
    /// and raises that).
    pub fn fence(&self) -> u64 {
        self.fence
    }

    /// Decode the payload into `T`. A payload that does not decode is a
    /// poison message: return `Outcome::Bury` with the error (the typed
    /// handler adapter [`handler_fn`](crate::handler_fn) does this for you).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, DecodeError> {
        rmp_serde::from_slice(&self.payload).map_err(|e| DecodeError(e.to_string()))
    }

    /// True when a failure of this run sends the job to the dead letters.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }

    /// Completes when this run is asked to stop: its timeout passed, the
    /// worker is shutting down, or an operator cancelled the job. A handler
    /// that selects on it can clean up and return; one that does not is
    /// aborted at its next await once the worker's cancel grace is over.
    pub async fn cancelled(&self) {
        self.cancel.token.cancelled().await
    }

    /// Why this run was asked to stop, once it was.
    pub fn cancel_reason(&self) -> Option<CancelReason> {
        self.cancel.reason()
    }
}

/// A payload that could not be decoded into the handler's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("payload could not be decoded: {0}")]
pub struct DecodeError(pub String);

/// What a handler says happened to a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Finished.
    Done,
    /// Finished, with a result kept on the job for its keep window.
    DoneWith(String),
    /// Failed: retry after `after` (the job's backoff when `None`) while
    /// attempts are left, otherwise dead-letter. Counts an attempt.
    Retry {
        /// Why it failed.
        reason: String,
        /// Retry after this long instead of the backoff.
        after: Option<Duration>,
    },
    /// Not now: run again after this long, without using an attempt.
    Snooze(Duration),
    /// Give up now: dead-letter with this reason, whatever attempts are left.
    Bury(String),
}

/// One failed attempt in a job's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptError {
    /// The attempt's number.
    pub attempt: u32,
    /// The error.
    pub error: String,
    /// When it failed, ms since the Unix epoch.
    pub at: u64,
}

/// A job as a lookup shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobInfo {
    /// The job's id.
    pub id: String,
    /// Its queue.
    pub queue: String,
    /// Where it is in its life.
    pub state: JobState,
    /// Priority level.
    pub priority: u8,
    /// Runs started so far.
    pub attempt: u32,
    /// Runs allowed in all.
    pub max_attempts: u32,
    /// Run timeout in ms, if any.
    pub timeout_ms: Option<u64>,
    /// The last error (for a dead job: why it died).
    pub last_error: Option<String>,
    /// Failed attempts, oldest first (the last 10).
    pub errors: Vec<AttemptError>,
    /// Enqueue time, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// When it is or was due to run.
    pub due_at_ms: Option<u64>,
    /// When its latest run started.
    pub started_at_ms: Option<u64>,
    /// When it completed or died.
    pub finished_at_ms: Option<u64>,
    /// The worker that holds it while active.
    pub worker: Option<String>,
    /// Its idempotency key.
    pub idempotency_key: Option<String>,
    /// The result its handler recorded.
    pub result: Option<String>,
    /// The raw payload.
    #[serde(skip)]
    pub payload: Vec<u8>,
}

impl JobInfo {
    /// The payload as JSON, when it is MessagePack (as the typed API and the
    /// HTTP API store it); `None` when it is not.
    pub fn payload_json(&self) -> Option<serde_json::Value> {
        rmp_serde::from_slice(&self.payload).ok()
    }

    /// Build from a job hash (`HGETALL`); `None` when the hash is empty.
    pub(crate) fn from_hash(queue: &str, id: &str, h: HashMap<String, Vec<u8>>) -> Option<Self> {
        use crate::job_fields as F;
        if h.is_empty() {
            return None;
        }
        let text = |k: &str| h.get(k).map(|v| String::from_utf8_lossy(v).into_owned());
        let num = |k: &str| text(k).and_then(|s| s.parse::<u64>().ok());
        // `run` holds max attempts, timeout and creation time.
        let run = text(F::RUN).and_then(|r| RunFields::parse(&r));
        let max_attempts = run.map(|r| r.max_attempts);
        let timeout_ms = run.map(|r| r.timeout_ms);
        let created_at_ms = run.map(|r| r.created_ms);
        Some(JobInfo {
            id: id.to_owned(),
            queue: queue.to_owned(),
            state: text(F::STATE)
                .and_then(|s| JobState::parse(&s))
                .unwrap_or(JobState::Waiting),
            priority: num(F::PRIORITY).unwrap_or(0).min(u64::from(u8::MAX)) as u8,
            attempt: num(F::ATTEMPT).unwrap_or(0) as u32,
            max_attempts: max_attempts.unwrap_or(1) as u32,
            timeout_ms: timeout_ms.filter(|t| *t > 0),
            last_error: text(F::ERROR),
            errors: text(F::ERRORS)
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default(),
            created_at_ms: created_at_ms.unwrap_or(0),
            // A job ready at enqueue has no due field: due when created.
            due_at_ms: num(F::DUE).or(created_at_ms),
            started_at_ms: num(F::STARTED),
            finished_at_ms: num(F::FINISHED),
            worker: text(F::WORKER),
            idempotency_key: text(F::IDEMPOTENCY_KEY),
            result: text(F::RESULT),
            payload: h.get(F::PAYLOAD).cloned().unwrap_or_default(),
        })
    }
}

/// The job hash's `run` field, "max_attempts,timeout_ms,created_ms": what a
/// claim needs and nothing changes, in one field (a claim's cost grows with
/// every field it reads).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunFields {
    pub max_attempts: u64,
    pub timeout_ms: u64,
    pub created_ms: u64,
}

impl RunFields {
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let mut parts = text.split(',').map(|p| p.parse::<u64>().ok());
        let fields = Self {
            max_attempts: parts.next()??,
            timeout_ms: parts.next()??,
            created_ms: parts.next()??,
        };
        parts.next().is_none().then_some(fields)
    }

    /// What a claim answers: a heavy job's `run`, or a light job's
    /// "max_attempts,timeout_ms", created when its entry `entry_id` was.
    pub(crate) fn parse_claimed(text: &str, entry_id: &str) -> Option<Self> {
        // A light job's: "max_attempts,timeout_ms" (the version before) or
        // its options field, the same followed by its backoff's four
        // numbers; its creation time is its entry id's.
        let commas = text.bytes().filter(|b| *b == b',').count();
        if commas == 1 || commas == 5 {
            let mut numbers = text.splitn(3, ',');
            let (max, timeout) = (numbers.next()?, numbers.next()?);
            let created = entry_id.split_once('-')?.0;
            return Self::parse(&format!("{max},{timeout},{created}"));
        }
        Self::parse(text)
    }
}

/// A job as Redis stores it: its id and every field of its hash. What a
/// backup keeps, and what [`Queue::import`](crate::Queue::import) brings back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRecord {
    /// The job's id.
    pub id: String,
    /// Field names and values of its hash (`state`, `payload`, `prio`...).
    pub fields: Vec<(String, Vec<u8>)>,
}

impl JobRecord {
    /// The job's state; a job ready since its enqueue stores none (waiting).
    pub fn state(&self) -> JobState {
        self.field(crate::job_fields::STATE)
            .and_then(|s| JobState::parse(&s))
            .unwrap_or(JobState::Waiting)
    }

    /// The value of one field, as text.
    pub fn field(&self, name: &str) -> Option<String> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// Counts of one queue.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Stats {
    /// The queue.
    pub queue: String,
    /// Whether workers are told not to claim.
    pub paused: bool,
    /// Ready jobs per priority level, most urgent first.
    pub waiting_by_priority: Vec<u64>,
    /// Ready jobs in all.
    pub waiting: u64,
    /// Jobs claimed by workers.
    pub active: u64,
    /// Delayed jobs and retries waiting out their backoff.
    pub delayed: u64,
    /// Dead letters.
    pub dead: u64,
    /// Jobs enqueued, ever.
    pub enqueued_total: u64,
    /// Jobs completed, ever.
    pub completed_total: u64,
    /// Attempts failed, ever.
    pub failed_total: u64,
    /// Retries scheduled, ever.
    pub retried_total: u64,
    /// Jobs dead-lettered, ever.
    pub dead_total: u64,
    /// The queue's rate limit, if it has one.
    pub rate_limit: Option<crate::RateLimit>,
}

impl Stats {
    /// The counts of queue `queue` from those of its partitions: summed,
    /// paused when any partition is, and the rate limit the partitions'
    /// shares added up.
    pub(crate) fn summed(queue: &str, parts: impl IntoIterator<Item = Stats>) -> Stats {
        let mut sum = Stats {
            queue: queue.to_owned(),
            ..Stats::default()
        };
        for s in parts {
            sum.paused |= s.paused;
            if sum.waiting_by_priority.len() < s.waiting_by_priority.len() {
                sum.waiting_by_priority
                    .resize(s.waiting_by_priority.len(), 0);
            }
            for (total, n) in sum
                .waiting_by_priority
                .iter_mut()
                .zip(&s.waiting_by_priority)
            {
                *total += n;
            }
            sum.waiting += s.waiting;
            sum.active += s.active;
            sum.delayed += s.delayed;
            sum.dead += s.dead;
            sum.enqueued_total += s.enqueued_total;
            sum.completed_total += s.completed_total;
            sum.failed_total += s.failed_total;
            sum.retried_total += s.retried_total;
            sum.dead_total += s.dead_total;
            sum.rate_limit = match (sum.rate_limit, s.rate_limit) {
                (Some(a), Some(b)) => Some(crate::RateLimit {
                    per_second: a.per_second + b.per_second,
                    burst: a.burst + b.burst,
                }),
                (a, b) => a.or(b),
            };
        }
        sum
    }
}

/// Attempts finished in one minute.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MinuteCount {
    /// Start of the minute, ms since the Unix epoch (Redis server time).
    pub minute_ms: u64,
    /// Jobs completed in it.
    pub completed: u64,
    /// Attempts failed in it (retried or dead-lettered).
    pub failed: u64,
}

#[cfg(test)]
mod tests {
    use super::RunFields;

    #[test]
    fn the_run_field_reads_three_numbers_or_nothing() {
        assert_eq!(
            RunFields::parse("3,30000,1700000000000"),
            Some(RunFields {
                max_attempts: 3,
                timeout_ms: 30_000,
                created_ms: 1_700_000_000_000,
            })
        );
        for bad in ["", "3", "3,0", "3,0,1,4", "a,0,1", "3,-1,1", "3,,1"] {
            assert_eq!(RunFields::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_light_jobs_run_field_takes_its_creation_from_the_entry_id() {
        assert_eq!(
            RunFields::parse_claimed("3,30000", "1700000000000-4"),
            Some(RunFields {
                max_attempts: 3,
                timeout_ms: 30_000,
                created_ms: 1_700_000_000_000,
            })
        );
        assert_eq!(
            RunFields::parse_claimed("3,0,5", "1700000000000-4").map(|r| r.created_ms),
            Some(5)
        );
        for bad in ["3,", ",0", "3,0,"] {
            assert_eq!(RunFields::parse_claimed(bad, "1-0"), None, "{bad:?}");
        }
        assert_eq!(RunFields::parse_claimed("3,0", "junk"), None);
    }
}
