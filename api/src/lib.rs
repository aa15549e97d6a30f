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
//! - `config`: the TOML config file (queues, schedules, API keys) and how
//!   flags, environment and file combine; no Redis I/O.
//! - `queues`: opening the queues the file describes (partitions).
//! - `ops`: the operator commands that talk to Redis directly (`enqueue`,
//!   `stats`, `jobs show`, `dead ...`, `pause`, `resume`, `workers`,
//!   `doctor`), and `keys new`, which needs no Redis.
//! - `run`: the long-running commands (`up`, `serve`, `work`).
//! - `fleet`: a worker process: workers per queue, heartbeat, graceful stop.
//! - `delivery`: the generic HTTP delivery handler.
//! - `doctor`: `sluice doctor`, the Redis server's checks.
//! - `schedules`: cron schedules, one job per tick across the fleet.
//! - `signals`: SIGTERM/SIGINT handling, which triggers the process's
//!   [`Shutdown`](sluice_engine::Shutdown).
//! - `views`: how a job is shown, shared by the CLI and the API.
//! - `pipeline`: the trading-alert pipeline's config, runtime and handlers;
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
