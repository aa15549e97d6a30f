//! # sluice-api: the `sluice` binary, its configuration and (next) the HTTP API
//!
//! # Layout
//!
//! - `cli`: the command line (clap): global flags, each readable from an
//!   environment variable, and the subcommands.
//! - `config`: the TOML config file and how flags, environment and file
//!   combine (flag or environment first, then file, then default).
//! - `ops`: the operator commands that talk to Redis directly (`enqueue`,
//!   `stats`, `jobs show`, `dead ...`, `pause`, `resume`), printing tables
//!   for people and JSON for scripts.
//!
//! The axum service (webhooks, enqueue, job lookup, queue stats, dead-letter
//! management, health, metrics, OpenAPI) and the dashboard it serves come
//! next; `main.rs` stays thin.

pub mod cli;
pub mod config;
pub mod ops;
