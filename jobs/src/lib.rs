//! # sluice-trading: the trading application, built on Sluice
//!
//! Users have TradingView send their messages to a personal webhook; each
//! message is answered at once (the API enqueues an `ingest` job), parsed
//! and stored as a signal, and illustrated with a screenshot of the user's
//! chart taken in headless Chromium, paid plans first. Every API call and
//! webhook is audited; old rows are deleted on a schedule; the database and
//! the queue state are backed up on a schedule and can be restored.
//!
//! Everything here uses the engine's and the server's public API only; the
//! application plugs into the `sluice` binary as
//! [`plugin::TradingPlugin`] (a `sluice_plugin::Plugin`: its section, its
//! commands, its queues' handlers, its schedules, its start-up work, its
//! health check) and into the server as [`plugin::TradingApp`] (its routes,
//! its dashboard page, its audit log). Its one name is `trading`: the
//! section `[trading]` (formerly `[pipeline]`), the command
//! `sluice trading ...`. Without a `[trading]` section none of it runs.
//!
//! Words: a *message* is what TradingView sends to a webhook, and a
//! *signal* is what one becomes once stored; an *alert* is the operations'
//! rule (`[[alerts]]`), never a message. (The `alert_time` column and JSON
//! field keep the name they have always had.)
//!
//! # Layout
//!
//! - `plugin`: the plug-in: `[trading]` (`plugin/config.rs`), the
//!   runtime a process shares (`plugin/runtime.rs`), the routes, the
//!   signals page (`plugin/signals.rs`, `templates/`), the subcommands and
//!   the start-up work.
//! - `db`: pools and the numbered migrations (`jobs/migrations`).
//! - `plan`, `users`, `secrets`: plans and quotas, users and their webhook
//!   tokens, cookie encryption.
//! - `webhook`: admission of a webhook call (token, enabled, quota).
//! - `message`: the message parser (JSON or `Label: value` lines).
//! - `ingest`, `screenshot` (+ `browser`), `audit`, `retention`, `backup`:
//!   the handlers, each with its payload type; `ingest` and `audit` are
//!   batch handlers (one SQL statement per batch of jobs).
//! - `storage`: where screenshots go (a directory or an S3 bucket).
//! - `reads`: the platform's read queries.
//! - `queues`: the application's queue names.
//! - `results`: a signal's outcome on the trading platform (win, loss,
//!   skip).
//! - `spill`: the audit sink's spill file, where audit events wait while
//!   Redis cannot take them.
//! - `error`: the application's error type.

pub mod audit;
pub mod backup;
pub mod backup_seal;
pub mod browser;
pub mod db;
mod error;
pub mod ingest;
pub mod message;
pub mod plan;
pub mod plugin;
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

/// The message parser's former name, which `audit.rs` still uses: it is
/// being redesigned on its own branch; drop this when that lands.
use message as alert;
