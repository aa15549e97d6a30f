//! Calls and retries: how every command and script reaches Redis, with
//! backoff on transient failures, and the call tokens that make replays
//! of claim and settle safe.

use std::future::Future;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use redis::{FromRedisValue, RedisError, RetryMethod, ScriptInvocation, Value};

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::keys::PRIORITY_LEVELS;
use crate::scripts::Transition;

use super::Store;

/// How calls to Redis are retried when it is unreachable or overloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try.
    pub retries: usize,
    /// First delay.
    pub min_delay: Duration,
    /// Longest delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// 5 retries from 50 ms doubling to at most 1 s: a call gives up after
    /// about 2 s of failures.
    fn default() -> Self {
        Self {
            retries: 5,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(1),
        }
    }
}

/// What makes a claim or settle call safe to replay: a token made before
/// the first try and sent with every retry, so the script answers a
/// replay with the first run's recorded reply instead of running again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CallToken {
    /// Unique per call (not per try).
    pub token: String,
    /// How long the script keeps the reply, ms.
    pub record_ms: u64,
    /// The caller's previous call of the same kind whose reply arrived:
    /// its record is no longer needed and is deleted.
    pub confirmed: Option<String>,
}

impl CallToken {
    /// A new token whose reply is kept `record_for`, confirming `previous`.
    pub(crate) fn new(record_for: Duration, confirmed: Option<String>) -> Self {
        Self {
            token: uuid::Uuid::now_v7().simple().to_string(),
            record_ms: record_for.as_millis().max(1) as u64,
            confirmed,
        }
    }
}

pub(super) fn is_transient(e: &RedisError) -> bool {
    if e.kind() == redis::ErrorKind::AuthenticationFailed {
        return false;
    }
    is_slot_migrating(e)
        || e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || !matches!(e.retry_method(), RetryMethod::NoRetry)
}

/// Whether a script stopped, before it wrote anything, because the
/// queue's Redis Cluster slot is migrating (common.lua's `fixed_keys`):
/// "Script attempted to access a non local key in a cluster node". Like
/// TRYAGAIN and ASK, it passes once the migration is over.
pub(super) fn is_slot_migrating(e: &RedisError) -> bool {
    e.to_string().contains("non local key")
}

/// Whether a failed call shows the queue's slot moving between nodes: a
/// script stopped by the migration, or TRYAGAIN / ASK left after the
/// cluster client's own retries.
fn shows_slot_moving(e: &RedisError) -> bool {
    is_slot_migrating(e) || matches!(e.code(), Some("TRYAGAIN" | "ASK"))
}

/// Whether Redis refused the call for want of memory (`maxmemory` reached
/// under `noeviction`): `-OOM command not allowed ...`.
pub(super) fn is_out_of_memory(e: &RedisError) -> bool {
    // A transaction whose commands were refused comes back as one error
    // listing each command's ("Transaction aborted: [(Index 0, error:
    // "OOM": ...)]"): nothing in it ran.
    e.code() == Some("OOM") || e.to_string().contains("\"OOM\"")
}

pub(super) fn is_nogroup(e: &RedisError) -> bool {
    e.code() == Some("NOGROUP") || e.to_string().contains("NOGROUP")
}

/// Whether Redis lost the queue's streams (XINFO answers "no such key") or
/// their consumer group: `ensure` brings them back.
pub(super) fn is_missing_stream(e: &RedisError) -> bool {
    is_nogroup(e) || e.to_string().contains("no such key")
}

/// Run `op` against Redis, retrying transient failures with exponential
/// backoff; give up with [`Error::Unavailable`] when the retries run out.
pub(crate) async fn with_retry<T, F, Fut>(
    policy: RetryPolicy,
    operation: &'static str,
    op: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = redis::RedisResult<T>>,
{
    let started = Instant::now();
    let mut attempts = 0usize;
    let backoff = ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.retries)
        .with_jitter()
        .with_jitter_seed(rand::random());
    let mut op = op;
    let result = (|| {
        attempts += 1;
        op()
    })
    .retry(backoff)
    .when(is_transient)
    .notify(|e, after| {
        metrics::counter!("sluice_redis_retries_total", "operation" => operation).increment(1);
        tracing::debug!(operation, error = %e, ?after, "redis call failed; retrying");
    })
    .await;
    result.map_err(|source| {
        // Full only when the first try was refused: a retry refused follows
        // a try that may have run (its reply was lost), so what happened
        // is not known, as for any call that ran out of retries.
        if is_out_of_memory(&source) && attempts == 1 {
            Error::Full { operation }
        } else if is_transient(&source) || is_out_of_memory(&source) {
            Error::Unavailable {
                operation,
                attempts,
                elapsed: started.elapsed(),
                source,
            }
        } else {
            Error::Redis { operation, source }
        }
    })
}

/// One command on `conn`, retried with [`with_retry`].
pub(crate) async fn query<T: FromRedisValue>(
    conn: &Conn,
    retry: RetryPolicy,
    operation: &'static str,
    cmd: &redis::Cmd,
) -> Result<T> {
    with_retry(retry, operation, || {
        let mut conn = conn.clone();
        async move { cmd.query_async(&mut conn).await }
    })
    .await
}

/// One pipeline (one round trip) on `conn`, retried with [`with_retry`].
pub(crate) async fn query_pipeline<T: FromRedisValue>(
    conn: &Conn,
    retry: RetryPolicy,
    operation: &'static str,
    pipe: &redis::Pipeline,
) -> Result<T> {
    with_retry(retry, operation, || {
        let mut conn = conn.clone();
        async move { pipe.query_async(&mut conn).await }
    })
    .await
}

impl Store {
    /// A script call with the queue's standard keys (meta, its fixed keys,
    /// then the streams; see `lua/common.lua`) and its key base as the first
    /// argument.
    pub(super) fn invocation<'a>(&self, script: &'a Transition) -> ScriptInvocation<'a> {
        self.invocation_to_level(script, PRIORITY_LEVELS - 1)
    }

    /// Like `invocation`, with the streams of levels 0..=`deepest` only: for
    /// a script that touches no other level (each key costs the script a
    /// Lua value per call, which a single enqueue pays in full).
    pub(super) fn invocation_to_level<'a>(
        &self,
        script: &'a Transition,
        deepest: u8,
    ) -> ScriptInvocation<'a> {
        let mut inv = script.prepare_invoke();
        inv.key(self.keys.meta());
        // A key that never exists: no script runs while the slot migrates
        // (`lua/common.lua`, `fixed_keys`).
        inv.key(self.keys.slot_probe());
        // In the order the script declares them (`lua/common.lua`).
        for name in &script.fixed_keys {
            if let Some(key) = self.keys.fixed(name) {
                inv.key(key);
            }
        }
        for level in 0..=deepest.min(PRIORITY_LEVELS - 1) {
            inv.key(self.keys.stream(level));
        }
        inv.arg(self.keys.base());
        inv
    }

    pub(super) async fn run(
        &self,
        operation: &'static str,
        inv: &ScriptInvocation<'_>,
    ) -> Result<Value> {
        let moving = &self.slot_moving_at;
        with_retry(self.retry, operation, || {
            let mut conn = self.conn.clone();
            async move {
                let reply = inv.invoke_async::<Value>(&mut conn).await;
                if let Err(e) = &reply
                    && shows_slot_moving(e)
                {
                    moving.store(
                        crate::registry::unix_ms(),
                        std::sync::atomic::Ordering::Relaxed,
                    );
                }
                reply
            }
        })
        .await
    }

    /// Like `run`, but recreates the consumer group once if Redis lost it.
    pub(super) async fn run_grouped(
        &self,
        operation: &'static str,
        inv: &ScriptInvocation<'_>,
    ) -> Result<Value> {
        match self.run(operation, inv).await {
            Err(Error::Redis { source, .. }) if is_nogroup(&source) => {
                tracing::warn!(
                    queue = self.keys.queue(),
                    "consumer group missing; recreating it"
                );
                self.ensure().await?;
                self.run(operation, inv).await
            }
            other => other,
        }
    }

    /// Like `query_pipe`, but recreates the queue's streams and group once
    /// if Redis lost them; any other failure is returned as it is.
    pub(super) async fn query_pipe_grouped<T: FromRedisValue>(
        &self,
        operation: &'static str,
        pipe: &redis::Pipeline,
    ) -> Result<T> {
        match self.query_pipe(operation, pipe).await {
            Err(Error::Redis { source, .. }) if is_missing_stream(&source) => {
                tracing::warn!(
                    queue = self.keys.queue(),
                    "streams or consumer group missing; recreating them"
                );
                self.ensure().await?;
                self.query_pipe(operation, pipe).await
            }
            other => other,
        }
    }

    /// Like `query`, but recreates the queue's streams and group once if
    /// Redis lost them (see `query_pipe_grouped`).
    pub(super) async fn query_grouped<T: FromRedisValue>(
        &self,
        operation: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T> {
        match self.query(operation, cmd).await {
            Err(Error::Redis { source, .. }) if is_missing_stream(&source) => {
                tracing::warn!(
                    queue = self.keys.queue(),
                    "streams or consumer group missing; recreating them"
                );
                self.ensure().await?;
                self.query(operation, cmd).await
            }
            other => other,
        }
    }

    /// One command, retried like every call.
    pub(super) async fn query<T: FromRedisValue>(
        &self,
        operation: &'static str,
        cmd: &redis::Cmd,
    ) -> Result<T> {
        query(&self.conn, self.retry, operation, cmd).await
    }

    /// One pipeline (one round trip), retried like every call.
    pub(super) async fn query_pipe<T: FromRedisValue>(
        &self,
        operation: &'static str,
        pipe: &redis::Pipeline,
    ) -> Result<T> {
        query_pipeline(&self.conn, self.retry, operation, pipe).await
    }

    /// One pipeline, tried once: for a call that must not be sent again
    /// after an ambiguous failure (a direct read, see `direct.rs`).
    /// Transient failures are [`Error::Unavailable`] as after retries.
    pub(super) async fn query_pipe_once<T: FromRedisValue>(
        &self,
        operation: &'static str,
        pipe: &redis::Pipeline,
    ) -> Result<T> {
        let policy = RetryPolicy {
            retries: 0,
            ..self.retry
        };
        with_retry(policy, operation, || {
            let mut conn = self.conn.clone();
            async move { pipe.query_async(&mut conn).await }
        })
        .await
    }

    /// Delete the replay records of calls whose replies arrived (a worker
    /// that stops, or a manual claim or settle, has no next call to
    /// confirm them with). Best effort: they expire anyway.
    pub(crate) async fn forget_calls(&self, tokens: &[String]) {
        if tokens.is_empty() {
            return;
        }
        let mut cmd = redis::cmd("DEL");
        for t in tokens {
            cmd.arg(self.keys.call(t));
        }
        if let Err(e) = self.query::<i64>("forget calls", &cmd).await {
            tracing::debug!(queue = self.keys.queue(), error = %e, "could not delete call records; they expire");
        }
    }
}
