//! # sluice: the `sluice` binary: its command line, its configuration
//! and the wiring of the engine, the server and the application
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
//! - `local`: `sluice up`'s private Redis when none answers.
//! - `server`: the config file's server: `sluice-server`'s state from the
//!   `[api]` settings, the rules and schedules it shows, the queues, and the
//!   trading-alert application (`app`) plugged in when `[pipeline]` is
//!   configured.
//! - `pipeline`: the trading-alert application (`sluice_jobs::app`), a
//!   plug-in: the binary mounts its config section, its subcommands, its
//!   queues' handlers and its `sluice_server::App`.

pub mod alerts;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod doctor;
pub mod fleet;
pub mod local;
pub mod ops;
pub mod queues;
pub mod run;
pub mod schedules;
pub mod server;
pub mod signals;

/// The trading-alert application, plugged in.
pub use sluice_jobs::app as pipeline;
