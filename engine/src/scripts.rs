//! The Lua scripts: one per state transition, the reads that must see a
//! queue whole (`job_fields`, `idem_scan`), the storage migration, and the
//! fleet-wide breakers, alerts and request windows. Each is prefixed with
//! the shared helpers it uses: `lua/common.lua` always, then
//! `lua/light.lua` (light and heavy entries, trims) and `lua/outcomes.lua`
//! (retries, dead letters) where needed. The helpers are closures made again on every call, so a
//! script carries only what it uses. Loaded once (EVALSHA, reloaded by the
//! client on NOSCRIPT).

use std::sync::LazyLock;

use redis::Script;

/// One loaded script and the fixed keys it declares (`fixed_keys(...)`, its
/// first statement; see `lua/common.lua`), which the caller passes as
/// `KEYS[2 ..]` in that order.
pub(crate) struct Transition {
    pub script: Script,
    pub fixed_keys: Vec<&'static str>,
}

impl std::ops::Deref for Transition {
    type Target = Script;
    fn deref(&self) -> &Script {
        &self.script
    }
}

impl Transition {
    fn load(file: &'static str) -> Self {
        let text = source(file).expect("every transition is in `sources!`");
        Self {
            script: Script::new(text),
            fixed_keys: declared_fixed_keys(text),
        }
    }
}

/// The names in a script's `fixed_keys('a', 'b')` statement (the one at the
/// start of a line; common.lua's definition is `local function`); none when
/// it has none.
fn declared_fixed_keys(text: &'static str) -> Vec<&'static str> {
    let Some(start) = text.find("\nfixed_keys(") else {
        return Vec::new();
    };
    let args = &text[start + "\nfixed_keys(".len()..];
    let args = &args[..args.find(')').unwrap_or(0)];
    args.split(',')
        .map(|a| a.trim().trim_matches('\''))
        .filter(|a| !a.is_empty())
        .collect()
}

macro_rules! transition {
    ($(#[$doc:meta])* $name:ident, $file:literal) => {
        $(#[$doc])*
        pub(crate) static $name: LazyLock<Transition> =
            LazyLock::new(|| Transition::load($file));
    };
}

/// The text of each script as it is loaded: its first line, then its
/// helpers, then itself.
///
/// The first line is a Redis 7 shebang where a queue script needs to say
/// how it meets a full Redis (`maxmemory` under `noeviction`). Without one,
/// Redis checks memory only at a script's first write that could grow it,
/// and not at all once the script has written anything (a `DEL` of an
/// answered call's record counts): a full Redis then took new jobs anyway.
/// - `#!lua`: refused whole, before it runs, while Redis is full: what
///   adds jobs (enqueue, import);
/// - `#!lua flags=allow-oom`: runs while Redis is full: what moves, settles
///   or removes jobs, so that workers can drain a full Redis;
/// - nothing: the fleet-wide scripts, which are not a queue's.
macro_rules! sources {
    ($($first:literal $file:literal $(+ $part:literal)*),* $(,)?) => {
        /// The text the engine loads for script `file` (`settle.lua`, ...):
        /// its helpers, then the script; for tests that must address a
        /// script by its SHA (the fault proxy). `None` for an unknown name.
        #[doc(hidden)]
        pub fn source(file: &str) -> Option<&'static str> {
            match file {
                $($file => Some(concat!(
                    $first,
                    "\n",
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
    "#!lua flags=allow-oom" "ensure.lua",
    "#!lua flags=allow-oom" "migrate.lua" + "light.lua",
    "#!lua" "enqueue.lua",
    "#!lua flags=allow-oom" "claim.lua" + "light.lua",
    "#!lua flags=allow-oom" "settle.lua" + "light.lua" + "outcomes.lua",
    "#!lua flags=allow-oom" "promote.lua",
    "#!lua flags=allow-oom" "reclaim.lua" + "light.lua" + "outcomes.lua",
    "#!lua flags=allow-oom" "remove_consumers.lua",
    "#!lua flags=allow-oom" "redrive.lua" + "outcomes.lua",
    "#!lua flags=allow-oom" "delete_dead.lua",
    "#!lua flags=allow-oom" "cancel.lua" + "light.lua" + "outcomes.lua",
    "#!lua flags=allow-oom" "idem_scan.lua",
    "#!lua" "import.lua" + "light.lua",
    "#!lua flags=allow-oom" "job_fields.lua" + "light.lua",
    "#!lua flags=allow-oom" "rate_limit.lua",
    "" "rate_window.lua",
    "" "breaker.lua",
    "" "alert.lua",
);

transition!(
    /// Create missing priority streams and consumer groups.
    ENSURE, "ensure.lua");
transition!(
    /// One page of bringing a queue of an earlier storage version to this one.
    MIGRATE, "migrate.lua");
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

#[cfg(test)]
mod tests {
    use super::source;

    /// The queue scripts (those that get the key base as `ARGV[1]`).
    const QUEUE_SCRIPTS: [&str; 14] = [
        "ensure.lua",
        "migrate.lua",
        "enqueue.lua",
        "claim.lua",
        "settle.lua",
        "promote.lua",
        "reclaim.lua",
        "remove_consumers.lua",
        "redrive.lua",
        "delete_dead.lua",
        "cancel.lua",
        "import.lua",
        "job_fields.lua",
        "idem_scan.lua",
    ];

    /// Every fixed key a script touches comes in `KEYS`: it uses only the
    /// names it declares, each a key the store knows; only keys made from
    /// an id are derived from the key base.
    #[test]
    fn queue_scripts_take_their_fixed_keys_as_keys() {
        let keys = crate::keys::QueueKeys::new("t", "q").expect("keys");
        let fixed = ["stats", "delayed", "dead", "cr", "cx", "ix", "meta", "p:"];
        for file in QUEUE_SCRIPTS {
            let text = source(file).expect("a known script");
            let declared = super::declared_fixed_keys(text);
            for name in &declared {
                assert!(
                    keys.fixed(name).is_some(),
                    "{file} declares an unknown key {name:?}"
                );
            }
            for (at, _) in text.match_indices("KEY.") {
                let name: String = text[at + 4..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase())
                    .collect();
                if !name.is_empty() {
                    assert!(
                        declared.contains(&name.as_str()),
                        "{file} uses KEY.{name} without declaring it"
                    );
                }
            }
            for name in fixed {
                let derived = format!("base .. '{name}");
                assert!(
                    !text.contains(&derived),
                    "{file} derives the fixed key {name:?} from the key base"
                );
            }
            // Streams by level only through stream_key / FIRST_STREAM.
            assert!(
                !text.contains("KEYS[2 +"),
                "{file} reads a stream at a fixed place"
            );
        }
    }

    #[test]
    fn a_script_declares_its_fixed_keys_in_order() {
        let settle = source("settle.lua").expect("settle");
        assert_eq!(
            super::declared_fixed_keys(settle),
            ["stats", "delayed", "dead", "cr", "cx"]
        );
        assert_eq!(
            super::declared_fixed_keys(source("ensure.lua").expect("ensure")),
            ["ix"]
        );
    }
}
