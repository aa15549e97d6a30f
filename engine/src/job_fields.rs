//! The names of a heavy job's hash fields (`job:<id>`) and of a light
//! job's stream entry fields, in one place for the Rust side. The Lua
//! scripts write the same names (`lua/common.lua` describes both layouts;
//! docs/design.md has the key table); a rename must change both. Fields
//! only the scripts read (`fence`, `bo`, `ct`, `gb`) are not named here.

/// The payload (MessagePack, or whatever the producer sent).
pub(crate) const PAYLOAD: &str = "payload";
/// `waiting`, `active`, `delayed`, `completed` or `dead`; absent while a
/// job waits as enqueued.
pub(crate) const STATE: &str = "state";
/// Priority level, 0 most urgent.
pub(crate) const PRIORITY: &str = "prio";
/// Attempts started (absent: 0).
pub(crate) const ATTEMPT: &str = "att";
/// `max_attempts,timeout_ms,created_ms`.
pub(crate) const RUN: &str = "run";
/// Due, started and finished times (ms).
pub(crate) const DUE: &str = "due";
pub(crate) const STARTED: &str = "sat";
pub(crate) const FINISHED: &str = "fat";
/// The worker (consumer name) running it.
pub(crate) const WORKER: &str = "wk";
/// The last error, and the last ten as JSON.
pub(crate) const ERROR: &str = "err";
pub(crate) const ERRORS: &str = "hist";
/// A kept result.
pub(crate) const RESULT: &str = "res";
/// Its idempotency key.
pub(crate) const IDEMPOTENCY_KEY: &str = "idem";

/// A stream entry's fields: a heavy job's entry holds only its id; a light
/// job's holds the payload and its options (and its idempotency key).
pub(crate) const ENTRY_JOB_ID: &str = "i";
pub(crate) const ENTRY_PAYLOAD: &str = "p";
