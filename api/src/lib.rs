//! # sluice: the `sluice` binary: its command line, its configuration
//! and the wiring of the engine, the server and the plug-ins
//!
//! It names no application: `main.rs` lists the plug-ins it links and
//! hands them to [`entry::main`]; each brings its config section, commands,
//! queues' handlers, schedules, start-up work, server part and health
//! checks through the `sluice_plugin` traits (`tests/layers.rs` checks that
//! nothing else here names one).
//!
//! # Layout
//!
//! - `entry`: the entry point: parse the command line, read the config,
//!   set up logging, dispatch.
//! - `plugins`: the linked plug-ins, those the config turns on, and those
//!   opened in a process.
//! - `alerts`: alert rules and channels, the leaderless evaluation loop
//!   and the notifier of the internal `_alerts` queue.
//! - `cli`: the command line (clap): global flags, each readable from an
//!   environment variable, and the subcommands in groups, one runner each
//!   (`ops`, `run`; `entry` matches the groups exhaustively), with the
//!   plug-ins' commands added.
//! - `config`: the TOML config file's schema and its checks, a leaf (it
//!   names no other module of this crate; `tests/layers.rs`): queues,
//!   schedules, API keys, `config/alerts.rs` (`[alerting]`, `[[alerts]]`,
//!   `[[alert_channels]]`), the plug-ins' sections kept as raw TOML, and
//!   how the environment overrides the file; no I/O but reading the file.
//! - `queues`: [`QueueDirectory`](queues::QueueDirectory), opening the
//!   queues the file describes (settings, partitions), the one way the
//!   server, the CLI and the alert evaluator open queues.
//! - `ops`: the operator commands that talk to Redis directly (`enqueue`,
//!   `stats`, `jobs show`, `dead ...`, `pause`, `resume`, `workers`,
//!   `doctor`), and `keys new`, which needs no Redis.
//! - `run`: the long-running commands (`up`, `serve`, `work`).
//! - `fleet`: a worker process: which queues it serves and what runs their
//!   jobs (the engine's `Handlers`), handed to the engine's `Fleet`.
//! - `delivery`: the generic HTTP delivery handler.
//! - `doctor`: `sluice doctor`, the Redis server's checks.
//! - `schedules`: the configured and the plug-ins' cron schedules as the
//!   engine's `CronSchedule`s, and the API's view of them.
//! - `termination`: SIGTERM/SIGINT handling, which triggers the process's
//!   [`Shutdown`](sluice_engine::Shutdown).
//! - `local`: `sluice up`'s private Redis when none answers.
//! - `server`: the config file's server: `sluice-server`'s state from the
//!   `[api]` settings, the rules and schedules it shows, the queues, and
//!   the opened plug-ins' routes, pages and health checks.

pub mod alerts;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod doctor;
pub mod entry;
pub mod fleet;
pub mod local;
pub mod ops;
pub mod plugins;
pub mod queues;
pub mod run;
pub mod schedules;
pub mod server;
pub mod termination;
