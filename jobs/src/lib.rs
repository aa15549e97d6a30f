//! # sluice-jobs: the trading-alert application, built on Sluice
//!
//! Users point their TradingView alerts at a personal webhook; each alert
//! is answered at once (the API enqueues an `ingest` job), parsed and stored
//! as a signal, and illustrated with a screenshot of the user's chart taken
//! in headless Chromium, paid plans first. Every API call and webhook is
//! audited; old rows are deleted on a schedule; the database and the queue
//! state are backed up on a schedule and can be restored.
//!
//! Everything here uses the engine's and the server's public API only; the
//! application plugs into the `sluice` binary as [`app::TradingApp`] (its
//! routes, its dashboard page, its readiness, its audit log), its config
//! section, the handlers of its queues and its subcommands. Without a
//! `[pipeline]` section none of it runs.
//!
//! # Layout
//!
//! - `app`: the plug-in: `[pipeline]` (`app/config.rs`), the runtime a
//!   process shares (`app/runtime.rs`), the routes, the signals page
//!   (`app/signals.rs`, `templates/`) and the subcommands.
//! - `db`: pools and the numbered migrations (`jobs/migrations`).
//! - `plan`, `users`, `secrets`: plans and quotas, users and their webhook
//!   tokens, cookie encryption.
//! - `webhook`: admission of a webhook call (token, enabled, quota).
//! - `alert`: the alert parser (JSON or `Label: value` lines).
//! - `ingest`, `screenshot` (+ `browser`), `audit`, `retention`, `backup`:
//!   the handlers, each with its payload type; `ingest` and `audit` are
//!   batch handlers (one SQL statement per batch of jobs).
//! - `storage`: where screenshots go (a directory or an S3 bucket).
//! - `reads`: the platform's read queries.
//! - `queues`: the pipeline's queue names.
//! - `results`: a signal's outcome on the trading platform (win, loss,
//!   skip).
//! - `spill`: the audit sink's spill file, where audit events wait while
//!   Redis cannot take them.
//! - `error`: the pipeline's error type.

pub mod alert;
pub mod app;
pub mod audit;
pub mod backup;
pub mod backup_seal;
pub mod browser;
pub mod db;
mod error;
pub mod ingest;
pub mod plan;
pub mod queues;
pub mod reads;
pub mod results;
pub mod retention;
pub mod screenshot;
pub mod secrets;
pub mod spill;
pub mod storage;
pub mod users;
pub mod webhook;

pub use error::{Error, Result};
