//! # sluice-engine: a durable job queue on Redis Streams
//!
//! ```no_run
//! use sluice_engine::{Client, JobOptions, Outcome, Shutdown, Worker, handler_fn};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::connect("redis://127.0.0.1:6379/").await?;
//! let emails = client.queue("emails").await?;
//! emails.enqueue_value(&"hello@example.com", JobOptions::new().priority(1)).await?;
//!
//! let worker = Worker::new(emails, handler_fn(|_job, to: String| async move {
//!     println!("sending to {to}");
//!     Ok(Outcome::Done)
//! }));
//! worker.run(Shutdown::when(async { let _ = tokio::signal::ctrl_c().await; })).await?;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! - `client`: [`Client`], the reconnecting Redis connection and the
//!   durability setting; makes [`Queue`] handles, finding a queue's
//!   partitions by the count its first partition records, and the handles
//!   on what is shared under its prefix outside any queue:
//!   [`Client::breakers`], [`Client::alerts`], [`Client::limits`],
//!   [`Client::registry`].
//! - `clock`: [`Clock`], where the scheduler reads the time; a
//!   [`ManualClock`] holds it still for tests.
//! - `conn`: one connection type over a single Redis and Redis Cluster
//!   (`redis+cluster://host:port,host:port/` URLs).
//! - `queue`: [`Queue`], the one handle on a queue and all its partitions
//!   (one unless the queue was split): enqueue (routed by partition key,
//!   idempotency key or at random), lookup, listings, dead letters,
//!   re-drive, stats, throughput, pause, the rate limit (shared out over the
//!   partitions), backups and the manual claim/settle path, each correct
//!   over every partition.
//! - `combine`: enqueue calls of one handle that arrive while others are
//!   on their way go together in the next `enqueue.lua` call.
//! - `partition`: `Partition` (internal), one partition (`name#i`, or the whole of a
//!   queue never split), a stream set of its own that Redis Cluster places
//!   by its hash tag; what [`Queue`] does, for one partition.
//! - `worker`: [`Worker`], which runs a [`Handler`] on every partition of
//!   its [`Queue`] with one concurrency limit, batch claims, batched
//!   settles, claim keep-alive and graceful shutdown.
//! - `promoter`, `reclaimer`: the worker's background loops that promote due
//!   delayed jobs and take over jobs of dead workers.
//! - `handler`: the [`Handler`] and [`BatchHandler`] traits, their typed
//!   forms ([`TypedHandler`], [`TypedBatchHandler`] through [`Typed`]),
//!   [`handler_fn`], and [`Runner`], what a worker runs.
//! - `handlers`: [`Handlers`], each served queue's handler by name, as
//!   [`BoxedHandler`]s: any kind of handler behind one type.
//! - `run`: one handler call, under its timeout and cancellable; used by
//!   the worker and by [`testing`], the handler test harness.
//! - `testing`: the handler test harness ([`testing::TestWorker`]): a
//!   handler run on a payload, without Redis or a worker.
//! - `backoff`: how the worker's loops wait, log and count while Redis is
//!   failing.
//! - `inspect`: [`Inspector`], the reads of operators' views (overview,
//!   queue summary, dead-letter pages), over many queues at once; the API,
//!   the dashboard and the CLI map its results.
//! - `job`: [`Job`], [`JobInfo`], [`JobState`], [`Outcome`], [`Stats`].
//! - `job_fields`: the names of a job's hash and stream entry fields on
//!   the Rust side (the scripts write the same).
//! - `options`: [`JobOptions`], [`QueueConfig`], [`Backoff`] and validation.
//! - `store`: every call to Redis. A queue's, split by role: `calls`
//!   (retries, call tokens), `replies` (typed replies), `transitions` (one
//!   script each), `direct` (claims of light jobs by a plain `XREADGROUP`
//!   in a `MULTI`), `group` (the consumer group), `inspect` (reads), `meta`
//!   (settings). The client-wide keys, one store per concern, each called
//!   by one module: `client` (the queue registry, ping, server facts; by
//!   `client`), `registry`, `limits`, `breakers` (by `breaker`) and
//!   `alerts` (by `alerting`). No other module sends a command.
//! - `scripts` and `lua/`: one Lua script per state transition, with the
//!   helpers it uses (`common.lua`, `light.lua`, `outcomes.lua`); each
//!   declares the fixed keys it touches, which it gets as `KEYS`.
//! - `fleet`: [`Fleet`], what a worker process runs: workers for many
//!   queues under one worker id, the registry heartbeat, one graceful stop
//!   and leaving the registry.
//! - `schedule`: cron, [`CronSchedule`] and [`Scheduler`]: a job per tick,
//!   once across every process, by idempotent enqueue.
//! - `shutdown`: [`Shutdown`], one stop signal for every part of a process.
//! - `directory`: [`QueueDirectory`], the queues a process knows by name,
//!   opened with their configured settings and partitions, and kept.
//! - `registry`: [`Registry`], the registry of live worker processes and
//!   the recorded last runs of cron schedules; `limits`: [`Limits`],
//!   revoked tokens and sliding-window request limits shared by every
//!   process (the API's per-key rates).
//! - `keys` (internal): every Redis key, all of a queue's under its
//!   `{queue}` hash tag; [`QueueName`] and [`validate_name`] check names.
//! - `alerting`: [`Alerts`], the state of alert rules shared by every
//!   process (`lua/alert.lua`), latency series summed over every process,
//!   and counter samples.
//! - `breaker`: [`Breakers`] and [`Breaker`], circuit breakers whose state
//!   every process shares in Redis (`lua/breaker.lua`).
//! - `redact`: [`redact_url`], secrets out of messages.
//! - `error`: [`Error`].
//!
//! # Semantics
//!
//! - **At-least-once execution.** A job runs until a worker records its
//!   outcome. If a worker dies mid-job, its claim goes idle; after the
//!   queue's visibility timeout another worker reclaims the job and it runs
//!   again (counting an attempt). So a job can run more than once, and
//!   handlers should be idempotent; it is never lost once acknowledged.
//! - **Fencing.** Every reclaim raises the job's fence, and so does every
//!   claim of a job that has a hash; a job on its first run since enqueue
//!   is fenced by its stream entry being pending for its worker (see
//!   `docs/design.md`, "Storage"). An outcome is recorded only under the
//!   current fence, so a worker that was presumed dead cannot overwrite
//!   what the job's new owner recorded: its outcome is refused
//!   ([`Settled::Fenced`]) and logged.
//! - **Every transition is safe to replay.** Any call may have run in
//!   Redis although its reply was lost or late; sent again, it has the
//!   effect of running once (claim and settle carry a call token whose
//!   reply Redis records; the other scripts check state). See
//!   `docs/design.md` and the fault scenarios of `docs/reliability.md`.
//! - **Exactly-once enqueue under an idempotency key.** Within the key's
//!   window, a second enqueue with the same key adds nothing and returns the
//!   first job's id with `duplicate: true`. Without a key, a retried call
//!   whose reply was lost is still not enqueued twice: every enqueue call
//!   carries a token made before its first try, and Redis keeps a record
//!   of the call until no retry can come.
//! - **Strict priority.** Levels 0 (most urgent) to 9; a level is served only
//!   when all more urgent levels have nothing ready. Two exceptions, each
//!   at most one claim batch: a worker woken from a blocking wait takes
//!   what arrived on any level at that moment; and a worker draining a
//!   level reads it together with the more urgent levels (a direct read,
//!   see `docs/design.md`), so a job arriving on a more urgent level at
//!   that moment runs beside that read's jobs of the drained level.
//! - **Retries.** A failed attempt is retried after
//!   `min(max, base * factor^(attempt-1))`, lowered at random by up to the
//!   jitter share, while attempts are left (default 4 runs: the first and 3
//!   retries after about 2 s, 4 s and 8 s); then the job is dead-lettered
//!   with its error. Dead letters can be listed, inspected, re-driven and
//!   deleted.
//! - **Cancellation.** A timeout, a stop past the shutdown grace, or an
//!   operator's [`Queue::cancel`] reaches the running handler through
//!   [`Job::cancelled`]; the handler gets the worker's cancel grace to
//!   return, then it is aborted (see [`CancelReason`] for what is recorded).
//!   A cancelled waiting or delayed job is a dead letter at once.
//! - **What "acknowledged" means** ([`Durability`]): `Memory`, Redis has the
//!   job in memory (a Redis crash loses what its AOF had not written, up to
//!   a second with `appendfsync everysec`, everything without AOF); `Fsync`,
//!   Redis appended it to its AOF and fsynced before answering (needs
//!   `appendfsync always`, checked at connect); `Replicated`, `WAIT` saw the
//!   given number of replicas take it.
//! - **Bounded memory.** A job ready at enqueue is its stream entry and one
//!   index field, nothing more; completed jobs leave only counters (or a
//!   hash that expires after the keep window); stream entries are deleted
//!   when their job leaves the stream; dead letters are capped; idempotency
//!   keys and call records expire.

#![warn(missing_docs)]

/// The examples of `docs/architecture.md` ("The engine's doors"), compiled
/// as doc tests so the document stays true.
#[cfg(doctest)]
#[doc = include_str!("../../docs/architecture.md")]
struct ArchitectureExamples;

pub mod alerting;
mod backoff;
mod breaker;
mod client;
mod clock;
mod combine;
mod conn;
mod directory;
mod error;
mod fleet;
mod handler;
mod handlers;
mod inspect;
mod job;
mod job_fields;
mod keys;
mod limits;
mod options;
mod partition;
mod promoter;
mod queue;
mod reclaimer;
mod redact;
mod registry;
mod run;
mod schedule;
mod scripts;
mod shutdown;
mod store;
pub mod testing;
mod worker;

pub use alerting::Alerts;
pub use breaker::{
    Admission, Breaker, BreakerConfig, BreakerState, BreakerStatus, Breakers, Forced,
    MAX_BREAKER_NAME_LEN, Permit, target_breaker_name, validate_breaker_name,
};
pub use client::{Client, ClientConfig, Durability, ServerReport};
pub use clock::{Clock, ManualClock, SystemClock};
pub use directory::QueueDirectory;
pub use error::{Error, Result};
pub use fleet::{DEFAULT_HEARTBEAT, Fleet, FleetReport};
pub use handler::{
    BatchHandler, Batched, FnHandler, Handler, HandlerError, Runner, Typed, TypedBatchHandler,
    TypedHandler, handler_fn, run_each,
};
pub use handlers::{BoxedHandler, Handlers};
pub use inspect::{DeadPage, DeadQuery, Inspector, Overview, QueueSummary};
pub use job::{
    AttemptError, CancelReason, DecodeError, Job, JobInfo, JobRecord, JobState, MinuteCount,
    Outcome, Stats,
};
pub use keys::{MAX_QUEUE_NAME_LEN, PRIORITY_LEVELS, QueueName, validate_name};
pub use limits::Limits;
pub use options::{Backoff, JobOptions, JobOptionsInput, MAX_DURATION, QueueConfig, RateLimit};
pub use partition::{
    DeadCursor, Enqueued, IdempotencyRecord, MAX_LIST_LIMIT, MAX_LIST_OFFSET, NewJob,
};
pub use promoter::PromoterConfig;
pub use queue::{MAX_PARTITIONS, Queue};
pub use redact::redact_url;
pub use registry::{Registry, ServedQueue, WorkerInfo, host_name, new_worker_id, unix_ms};
pub use schedule::{CronSchedule, LastRun, Scheduler};
pub use scripts::source as script_source;
pub use shutdown::Shutdown;
pub use store::{Cancelled, Promoted, Reclaimed, RetryPolicy, Settled};
pub use worker::{SettledAttempt, Worker, WorkerConfig, WorkerReport};
