//! The Lua scripts, one per state transition, each prefixed with the shared
//! helpers it uses: `lua/common.lua` always, then `lua/light.lua` (entries
//! of both layouts, trims) and `lua/outcomes.lua` (retries, dead letters)
//! where needed. The helpers are closures made again on every call, so a
//! script carries only what it uses. Loaded once (EVALSHA, reloaded by the
//! client on NOSCRIPT).

use std::sync::LazyLock;

use redis::Script;

macro_rules! transition {
    ($(#[$doc:meta])* $name:ident, $file:literal) => {
        $(#[$doc])*
        pub(crate) static $name: LazyLock<Script> =
            LazyLock::new(|| Script::new(source($file).expect("every transition is in `sources!`")));
    };
}

/// The text of each script as it is loaded: its helpers, then itself.
macro_rules! sources {
    ($($file:literal $(+ $part:literal)*),* $(,)?) => {
        /// The text the engine loads for script `file` (`settle.lua`, ...):
        /// its helpers, then the script; for tests that must address a
        /// script by its SHA (the fault proxy). `None` for an unknown name.
        #[doc(hidden)]
        pub fn source(file: &str) -> Option<&'static str> {
            match file {
                $($file => Some(concat!(
                    include_str!("../lua/common.lua"),
                    "\n",
                    $(include_str!(concat!("../lua/", $part)), "\n",)*
                    include_str!(concat!("../lua/", $file))
                )),)*
                _ => None,
            }
        }
    };
}

sources!(
    "ensure.lua",
    "enqueue.lua",
    "claim.lua" + "light.lua",
    "settle.lua" + "light.lua" + "outcomes.lua",
    "promote.lua",
    "reclaim.lua" + "light.lua" + "outcomes.lua",
    "remove_consumers.lua",
    "redrive.lua" + "outcomes.lua",
    "delete_dead.lua",
    "cancel.lua" + "light.lua" + "outcomes.lua",
    "idem_scan.lua",
    "import.lua",
    "job_fields.lua" + "light.lua",
    "rate_limit.lua",
    "rate_window.lua",
    "breaker.lua",
    "alert.lua",
);

transition!(
    /// Create missing priority streams and consumer groups.
    ENSURE, "ensure.lua");
transition!(
    /// Add jobs (single or batch), honouring idempotency keys.
    ENQUEUE, "enqueue.lua");
transition!(
    /// Claim jobs in strict priority order and mark them active.
    CLAIM, "claim.lua");
transition!(
    /// Record outcomes: complete, retry, snooze, dead-letter.
    SETTLE, "settle.lua");
transition!(
    /// Move due delayed jobs to their stream.
    PROMOTE, "promote.lua");
transition!(
    /// Take over jobs of dead workers.
    RECLAIM, "reclaim.lua");
transition!(
    /// Delete consumers without pending entries (idle ones, or one by name).
    REMOVE_CONSUMERS, "remove_consumers.lua");
transition!(
    /// Send dead letters back to their stream.
    REDRIVE, "redrive.lua");
transition!(
    /// Delete dead letters.
    DELETE_DEAD, "delete_dead.lua");
transition!(
    /// An operator's cancel of one job.
    CANCEL, "cancel.lua");
transition!(
    /// One page of the queue's idempotency mappings, for a backup.
    IDEM_SCAN, "idem_scan.lua");
transition!(
    /// Bring jobs back from a backup, each in its state.
    IMPORT, "import.lua");
transition!(
    /// Read jobs by id, light (stream entry) or heavy (hash) alike.
    JOB_FIELDS, "job_fields.lua");
transition!(
    /// Set or remove a queue's rate limit, keeping the bucket when unchanged.
    RATE_LIMIT, "rate_limit.lua");
transition!(
    /// Count a request against a sliding-window rate limit.
    RATE_WINDOW, "rate_window.lua");
transition!(
    /// Every transition of a circuit breaker.
    BREAKER, "breaker.lua");
transition!(
    /// One alert rule's state, moved by an observation.
    ALERT, "alert.lua");
