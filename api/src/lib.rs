//! # sluice-api: the `sluice` binary, its configuration, the worker
//! runtime and the HTTP API
//!
//! # Layout
//!
//! - `alerts`: alert rules and channels, the leaderless evaluation loop
//!   and the notifier of the internal `_alerts` queue.
//! - `cli`: the command line (clap): global flags, each readable from an
//!   environment variable, and the subcommands in groups, one runner each
//!   (`ops`, `run`, `pipeline_ops`; `main` matches the groups exhaustively).
//! - `config`: the TOML config file's schema and its checks, a leaf (it
//!   names no other module of this crate; `tests/layers.rs`): queues,
//!   schedules, API keys, `config/alerts.rs` (`[alerting]`, `[[alerts]]`,
//!   `[[alert_channels]]`) and `config/pipeline.rs` (`[pipeline]`), and how
//!   the environment overrides the file; no I/O but reading the file.
//! - `queues`: [`QueueDirectory`](queues::QueueDirectory), opening the
//!   queues the file describes (settings, partitions), the one way the
//!   server, the CLI and the alert evaluator open queues.
//! - `ops`: the operator commands that talk to Redis directly (`enqueue`,
//!   `stats`, `jobs show`, `dead ...`, `pause`, `resume`, `workers`,
//!   `doctor`), and `keys new`, which needs no Redis.
//! - `run`: the long-running commands (`up`, `serve`, `work`).
//! - `fleet`: a worker process: which queues it serves and what runs their
//!   jobs, handed to the engine's `Fleet`.
//! - `delivery`: the generic HTTP delivery handler.
//! - `doctor`: `sluice doctor`, the Redis server's checks.
//! - `schedules`: the configured cron schedules as the engine's
//!   `CronSchedule`s, and the API's view of them.
//! - `signals`: SIGTERM/SIGINT handling, which triggers the process's
//!   [`Shutdown`](sluice_engine::Shutdown).
//! - `views`: how a job is shown, shared by the CLI and the API.
//! - `pipeline`: the trading-alert pipeline's runtime and handlers;
//!   `pipeline_ops`: its operator commands (`migrate`, `users`, `backup`,
//!   `restore`).
//! - `local`: `sluice up`'s private Redis when none answers.
//! - `server`: the axum API (routes, auth, errors, metrics, OpenAPI); the
//!   pipeline's routes (`server/pipeline.rs`) are merged only when
//!   `[pipeline]` is configured.

pub mod alerts;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod doctor;
pub mod fleet;
pub mod local;
pub mod ops;
pub mod pipeline;
pub mod pipeline_ops;
pub mod queues;
pub mod run;
pub mod schedules;
pub mod server;
pub mod signals;
pub mod views;
