//! The engine's error type.

use std::time::Duration;

/// What can go wrong in the engine. Option and input errors are raised before
/// anything touches Redis.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A queue name or key prefix that would break the key layout.
    #[error("invalid {what} {name:?}: use 1 to 128 characters of A-Z, a-z, 0-9, '.', '_' and '-'")]
    InvalidName {
        /// What the name was for ("queue name", "prefix").
        what: &'static str,
        /// The name as given (cut to 129 characters).
        name: String,
    },
    /// A job or queue option out of its range.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A cron schedule that cannot run: its expression, time zone,
    /// priority or queue.
    #[error("schedule {name}: {reason}")]
    InvalidSchedule {
        /// The schedule's name.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// A batch with no jobs in it.
    #[error("empty batch: a batch needs at least one job")]
    EmptyBatch,
    /// A batch larger than the configured maximum.
    #[error("batch of {size} jobs is over the maximum of {max}")]
    BatchTooLarge {
        /// Jobs in the batch.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A payload larger than the queue's maximum.
    #[error("payload of {size} bytes is over the maximum of {max} bytes")]
    PayloadTooLarge {
        /// Encoded payload size.
        size: usize,
        /// The configured maximum.
        max: usize,
    },
    /// The payload could not be encoded as MessagePack.
    #[error("payload could not be encoded: {0}")]
    Encode(#[from] rmp_serde::encode::Error),
    /// Redis could not be reached, or kept failing, after the configured
    /// retries.
    #[error(
        "redis unavailable during {operation} after {attempts} attempts over {elapsed:?}: {source}"
    )]
    Unavailable {
        /// What the engine was doing.
        operation: &'static str,
        /// How many times it tried.
        attempts: usize,
        /// How long it tried for.
        elapsed: Duration,
        /// The last error.
        #[source]
        source: redis::RedisError,
    },
    /// Redis answered with an error that retrying will not fix.
    #[error("redis error during {operation}")]
    Redis {
        /// What the engine was doing.
        operation: &'static str,
        /// The error Redis gave.
        #[source]
        source: redis::RedisError,
    },
    /// Redis is at its `maxmemory` and, under `noeviction`, refuses what
    /// would grow it: new jobs are refused, whole, until workers have
    /// drained enough (claims, outcomes and reclaims still run). Not
    /// retried inside the call; the API answers 503 with `Retry-After`.
    #[error(
        "redis is out of memory during {operation}: nothing was added; try again once workers have drained the queues"
    )]
    Full {
        /// What the engine was doing.
        operation: &'static str,
    },
    /// The queue was written by a later version of Sluice, whose storage
    /// layout this one does not read (docs/design.md, "Storage versions").
    #[error(
        "queue {queue} was written by a later version of sluice (storage version above {supported}); upgrade this process"
    )]
    NewerStorage {
        /// The queue (or partition).
        queue: String,
        /// The storage version this process reads.
        supported: u32,
    },
    /// A task of the engine failed (it panicked: a bug); what it was doing
    /// may or may not have happened.
    #[error("internal error during {operation}: {detail}")]
    Internal {
        /// What the engine was doing.
        operation: &'static str,
        /// The task's failure.
        detail: String,
    },
    /// Redis answered with something the engine did not expect.
    #[error("unexpected reply from redis during {operation}: {detail}")]
    Protocol {
        /// What the engine was doing.
        operation: &'static str,
        /// What was wrong with it.
        detail: String,
    },
}

impl Error {
    /// True when the error is Redis being unreachable or failing transiently:
    /// the call may succeed later (the API answers 503 for these).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// True when Redis refused the call because it is out of memory
    /// ([`Error::Full`]).
    pub fn is_full(&self) -> bool {
        matches!(self, Error::Full { .. })
    }

    /// True when the caller gave bad input (the API answers 4xx for these).
    pub fn is_invalid_input(&self) -> bool {
        matches!(
            self,
            Error::InvalidName { .. }
                | Error::InvalidOption { .. }
                | Error::InvalidSchedule { .. }
                | Error::EmptyBatch
                | Error::BatchTooLarge { .. }
                | Error::PayloadTooLarge { .. }
                | Error::Encode(_)
        )
    }

    /// The same error for another caller of a combined enqueue call that
    /// failed (`combine.rs`). Such a call fails only in Redis (every job was
    /// checked before it joined the call), so those kinds are copied as
    /// they are; any other is kept as its text.
    pub(crate) fn for_another_caller(&self) -> Self {
        match self {
            Error::Unavailable {
                operation,
                attempts,
                elapsed,
                source,
            } => Error::Unavailable {
                operation,
                attempts: *attempts,
                elapsed: *elapsed,
                source: source.clone(),
            },
            Error::Redis { operation, source } => Error::Redis {
                operation,
                source: source.clone(),
            },
            Error::Full { operation } => Error::Full { operation },
            Error::Protocol { operation, detail } => Error::Protocol {
                operation,
                detail: detail.clone(),
            },
            other => Error::Protocol {
                operation: "enqueue",
                detail: other.to_string(),
            },
        }
    }

    pub(crate) fn invalid(option: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidOption {
            option,
            reason: reason.into(),
        }
    }
}

/// Result with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
