//! Client-wide keys, outside any queue: the queue registry, the worker
//! registry, cron schedule states, sliding-window request counters, and
//! the server checks a client makes at connect.

use std::collections::HashMap;

use crate::breaker::BreakerReply;
use crate::conn::Conn;
use crate::error::Result;
use crate::keys::{
    alert_key, breaker_keys, breakers_key, latency_key, queues_key, samples_key, schedules_key,
    worker_key, workers_key,
};
use crate::scripts;

use super::calls::{RetryPolicy, query, with_retry};

/// Redis access for what a whole client (not one queue) reads and writes.
#[derive(Clone)]
pub(crate) struct FleetStore {
    conn: Conn,
    prefix: String,
    retry: RetryPolicy,
}

impl std::fmt::Debug for FleetStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl FleetStore {
    pub(crate) fn new(conn: Conn, prefix: &str, retry: RetryPolicy) -> Self {
        Self {
            conn,
            prefix: prefix.to_owned(),
            retry,
        }
    }

    /// Names of every queue opened under this prefix (unsorted).
    pub(crate) async fn queue_names(&self) -> Result<Vec<String>> {
        let key = queues_key(&self.prefix);
        query(
            &self.conn,
            self.retry,
            "list queues",
            redis::cmd("SMEMBERS").arg(key),
        )
        .await
    }

    /// Whether Redis answers PING now (one try, no retries).
    pub(crate) async fn ping(&self) -> bool {
        let mut conn = self.conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok()
    }

    /// The server's `append*` settings as name/value pairs (one try; empty
    /// when it does not answer).
    pub(crate) async fn append_settings(&self) -> Vec<String> {
        let mut conn = self.conn.clone();
        redis::cmd("CONFIG")
            .arg("GET")
            .arg("append*")
            .query_async(&mut conn)
            .await
            .unwrap_or_default()
    }

    /// The replicas connected to the server (one try; 0 when it does not
    /// answer).
    pub(crate) async fn connected_replicas(&self) -> u32 {
        let mut conn = self.conn.clone();
        let info: redis::RedisResult<String> = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut conn)
            .await;
        info.unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("connected_slaves:"))
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or(0)
    }

    /// Write worker `id`'s registration (`json`), expiring after `ttl_ms`,
    /// and index it under its last beat.
    pub(crate) async fn heartbeat(
        &self,
        id: &str,
        json: String,
        ttl_ms: u64,
        beat_ms: u64,
    ) -> Result<()> {
        query::<()>(
            &self.conn,
            self.retry,
            "worker heartbeat",
            redis::cmd("SET")
                .arg(worker_key(&self.prefix, id))
                .arg(json)
                .arg("PX")
                .arg(ttl_ms),
        )
        .await?;
        query::<()>(
            &self.conn,
            self.retry,
            "worker heartbeat",
            redis::cmd("ZADD")
                .arg(workers_key(&self.prefix))
                .arg(beat_ms)
                .arg(id),
        )
        .await
    }

    /// Remove worker `id`'s registration and index entry.
    pub(crate) async fn deregister(&self, id: &str) -> Result<()> {
        query::<()>(
            &self.conn,
            self.retry,
            "deregister worker",
            redis::cmd("DEL").arg(worker_key(&self.prefix, id)),
        )
        .await?;
        query::<()>(
            &self.conn,
            self.retry,
            "deregister worker",
            redis::cmd("ZREM").arg(workers_key(&self.prefix)).arg(id),
        )
        .await
    }

    /// Every indexed worker id with its registration (`None`: expired).
    pub(crate) async fn registrations(&self) -> Result<Vec<(String, Option<String>)>> {
        let ids: Vec<String> = query(
            &self.conn,
            self.retry,
            "list workers",
            redis::cmd("ZRANGE")
                .arg(workers_key(&self.prefix))
                .arg(0)
                .arg(-1),
        )
        .await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut mget = redis::cmd("MGET");
        for id in &ids {
            mget.arg(worker_key(&self.prefix, id));
        }
        let values: Vec<Option<String>> =
            query(&self.conn, self.retry, "list workers", &mget).await?;
        Ok(ids.into_iter().zip(values).collect())
    }

    /// Drop expired ids from the worker index (best effort: the next
    /// reader tries again).
    pub(crate) async fn drop_expired(&self, ids: &[String]) {
        let mut zrem = redis::cmd("ZREM");
        zrem.arg(workers_key(&self.prefix)).arg(ids);
        let _ = query::<()>(&self.conn, self.retry, "drop expired workers", &zrem).await;
    }

    /// Record cron schedule `name`'s state.
    pub(crate) async fn set_schedule_state(&self, name: &str, state: &str) -> Result<()> {
        query(
            &self.conn,
            self.retry,
            "record schedule",
            redis::cmd("HSET")
                .arg(schedules_key(&self.prefix))
                .arg(name)
                .arg(state),
        )
        .await
    }

    /// Every cron schedule's recorded state, by name.
    pub(crate) async fn schedule_states(&self) -> Result<HashMap<String, String>> {
        query(
            &self.conn,
            self.retry,
            "read schedules",
            redis::cmd("HGETALL").arg(schedules_key(&self.prefix)),
        )
        .await
    }

    /// Mark `token` revoked for `ttl_ms`.
    pub(crate) async fn revoke(&self, token: &str, ttl_ms: u64) -> Result<()> {
        query(
            &self.conn,
            self.retry,
            "revoke",
            redis::cmd("SET")
                .arg(format!("{}:revoked:{token}", self.prefix))
                .arg(1)
                .arg("PX")
                .arg(ttl_ms.max(1)),
        )
        .await
    }

    /// Whether `token` is revoked.
    pub(crate) async fn is_revoked(&self, token: &str) -> Result<bool> {
        query(
            &self.conn,
            self.retry,
            "check revocation",
            redis::cmd("EXISTS").arg(format!("{}:revoked:{token}", self.prefix)),
        )
        .await
    }

    /// `rate_window.lua` on window `start` of `len` ms for `name`: the wait
    /// in ms before another request is allowed (0: this one is).
    pub(crate) async fn rate_window(
        &self,
        name: &str,
        limit: u32,
        len: u64,
        start: u64,
    ) -> Result<u64> {
        let key = |s: u64| format!("{}:{{rl:{name}}}:{s}", self.prefix);
        let mut inv = scripts::RATE_WINDOW.prepare_invoke();
        inv.key(key(start))
            .key(key(start.saturating_sub(len)))
            .arg(limit)
            .arg(len)
            .arg(start);
        with_retry(self.retry, "rate window", || {
            let mut conn = self.conn.clone();
            let inv = &inv;
            async move { inv.invoke_async(&mut conn).await }
        })
        .await
    }

    /// One `breaker.lua` call (see the script for the arguments).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn breaker_call(
        &self,
        name: &str,
        op: &str,
        token: &str,
        success: &str,
        probe: &str,
        settings: &[String],
        keep_ms: u64,
    ) -> Result<BreakerReply> {
        let [hash, probes, seen] = breaker_keys(&self.prefix, name);
        let mut inv = scripts::BREAKER.prepare_invoke();
        inv.key(hash)
            .key(probes)
            .key(seen)
            .arg(op)
            .arg(token)
            .arg(success)
            .arg(probe);
        for s in settings {
            inv.arg(s);
        }
        inv.arg(keep_ms.max(1));
        let (verdict, state, wait_ms, transition): (String, String, i64, String) =
            with_retry(self.retry, "circuit breaker", || {
                let mut conn = self.conn.clone();
                let inv = &inv;
                async move { inv.invoke_async(&mut conn).await }
            })
            .await?;
        Ok(BreakerReply {
            verdict,
            state,
            wait_ms: wait_ms.max(0) as u64,
            transition,
        })
    }

    /// Add `name` to the breaker registry (idempotent).
    pub(crate) async fn register_breaker(&self, name: &str) -> Result<()> {
        query::<()>(
            &self.conn,
            self.retry,
            "register breaker",
            redis::cmd("SADD").arg(breakers_key(&self.prefix)).arg(name),
        )
        .await
    }

    /// Whether `name` is in the breaker registry.
    pub(crate) async fn is_breaker_registered(&self, name: &str) -> Result<bool> {
        query(
            &self.conn,
            self.retry,
            "find breaker",
            redis::cmd("SISMEMBER")
                .arg(breakers_key(&self.prefix))
                .arg(name),
        )
        .await
    }

    /// Every registered breaker's name (unsorted).
    pub(crate) async fn breaker_names(&self) -> Result<Vec<String>> {
        query(
            &self.conn,
            self.retry,
            "list breakers",
            redis::cmd("SMEMBERS").arg(breakers_key(&self.prefix)),
        )
        .await
    }

    /// Breaker `name`'s hash fields and its probes whose lease runs past
    /// `now_ms`.
    pub(crate) async fn breaker_fields(
        &self,
        name: &str,
        now_ms: u64,
    ) -> Result<(HashMap<String, String>, u64)> {
        let [hash, probes, _] = breaker_keys(&self.prefix, name);
        let mut pipe = redis::pipe();
        pipe.cmd("HGETALL")
            .arg(hash)
            .cmd("ZCOUNT")
            .arg(probes)
            .arg(now_ms)
            .arg("+inf");
        with_retry(self.retry, "read breaker", || {
            let mut conn = self.conn.clone();
            let pipe = &pipe;
            async move { pipe.query_async(&mut conn).await }
        })
        .await
    }

    /// One `alert.lua` call for rule `name`.
    pub(crate) async fn alert_call<T: redis::FromRedisValue>(
        &self,
        name: &str,
        args: &[String],
    ) -> Result<T> {
        let mut inv = scripts::ALERT.prepare_invoke();
        inv.key(alert_key(&self.prefix, name));
        for a in args {
            inv.arg(a);
        }
        with_retry(self.retry, "alert state", || {
            let mut conn = self.conn.clone();
            let inv = &inv;
            async move { inv.invoke_async(&mut conn).await }
        })
        .await
    }

    /// Rule `name`'s hash.
    pub(crate) async fn alert_fields(&self, name: &str) -> Result<HashMap<String, String>> {
        query(
            &self.conn,
            self.retry,
            "read alert",
            redis::cmd("HGETALL").arg(alert_key(&self.prefix, name)),
        )
        .await
    }

    /// Add latency counts to `slot`, kept `keep_ms`, in one try: HINCRBY
    /// is not safe to replay, so a failed call is not retried here (its
    /// counts go back to the caller's next flush). A reply lost after Redis
    /// ran it can count a flush twice; these are statistics for alerts,
    /// where that shifts a percentile by at most one flush's samples.
    pub(crate) async fn add_latency(
        &self,
        slot: u64,
        keep_ms: u64,
        series: &[(&'static str, [u64; 16])],
    ) -> Result<()> {
        let mut pipe = redis::pipe();
        for (name, counts) in series {
            let key = latency_key(&self.prefix, name, slot);
            for (bucket, n) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
                pipe.cmd("HINCRBY").arg(&key).arg(bucket).arg(*n).ignore();
            }
            pipe.cmd("PEXPIRE").arg(&key).arg(keep_ms).ignore();
        }
        let mut conn = self.conn.clone();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|source| crate::error::Error::Redis {
                operation: "add latency",
                source,
            })
    }

    /// The counts per bucket of `series` over slots `first..=last`.
    pub(crate) async fn latency_counts(
        &self,
        series: &str,
        first: u64,
        last: u64,
    ) -> Result<[u64; 16]> {
        let mut pipe = redis::pipe();
        for slot in first..=last {
            pipe.cmd("HGETALL")
                .arg(latency_key(&self.prefix, series, slot));
        }
        let slots: Vec<HashMap<usize, u64>> = with_retry(self.retry, "read latency", || {
            let mut conn = self.conn.clone();
            let pipe = &pipe;
            async move { pipe.query_async(&mut conn).await }
        })
        .await?;
        let mut out = [0u64; 16];
        for slot in slots {
            for (bucket, n) in slot {
                if let Some(o) = out.get_mut(bucket) {
                    *o += n;
                }
            }
        }
        Ok(out)
    }

    /// Redis server time, ms.
    pub(crate) async fn server_time_ms(&self) -> Result<u64> {
        let (secs, micros): (u64, u64) =
            query(&self.conn, self.retry, "server time", &redis::cmd("TIME")).await?;
        Ok(secs * 1000 + micros / 1000)
    }

    /// Add a counters sample at `now_ms`, dropping those older than
    /// `keep_ms`. Safe to replay: the member is the sample itself, added
    /// again as the same member.
    pub(crate) async fn add_counter_sample(
        &self,
        name: &str,
        now_ms: u64,
        values: &[u64],
        keep_ms: u64,
    ) -> Result<()> {
        let key = samples_key(&self.prefix, name);
        let member = std::iter::once(now_ms)
            .chain(values.iter().copied())
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join(":");
        let mut pipe = redis::pipe();
        pipe.cmd("ZADD")
            .arg(&key)
            .arg(now_ms)
            .arg(member)
            .ignore()
            .cmd("ZREMRANGEBYSCORE")
            .arg(&key)
            .arg("-inf")
            .arg(now_ms.saturating_sub(keep_ms))
            .ignore()
            .cmd("PEXPIRE")
            .arg(&key)
            .arg(keep_ms.max(1))
            .ignore();
        with_retry(self.retry, "add counter sample", || {
            let mut conn = self.conn.clone();
            let pipe = &pipe;
            async move { pipe.query_async::<()>(&mut conn).await }
        })
        .await
    }

    /// The newest sample at or before `at_ms`, else the oldest one.
    pub(crate) async fn counter_sample_before(
        &self,
        name: &str,
        at_ms: u64,
    ) -> Result<Option<Vec<u64>>> {
        let key = samples_key(&self.prefix, name);
        let mut pipe = redis::pipe();
        pipe.cmd("ZRANGE")
            .arg(&key)
            .arg(at_ms)
            .arg("-inf")
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(1)
            .cmd("ZRANGE")
            .arg(&key)
            .arg(0)
            .arg(0);
        let (before, oldest): (Vec<String>, Vec<String>) =
            with_retry(self.retry, "read counter sample", || {
                let mut conn = self.conn.clone();
                let pipe = &pipe;
                async move { pipe.query_async(&mut conn).await }
            })
            .await?;
        Ok(before.into_iter().chain(oldest).next().map(|m| {
            m.split(':')
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect()
        }))
    }

    /// `INFO server` and `INFO replication` text, and the `CONFIG GET`
    /// pairs of `names`; one try each (a managed Redis may refuse CONFIG:
    /// its pairs are then empty).
    pub(crate) async fn server_facts(&self, names: &[&str]) -> Result<(String, Vec<String>)> {
        let info: String = query(
            &self.conn,
            self.retry,
            "server info",
            redis::cmd("INFO").arg("server").arg("replication"),
        )
        .await?;
        let mut pairs = Vec::new();
        for name in names {
            let mut conn = self.conn.clone();
            let got: Vec<String> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(*name)
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            pairs.extend(got);
        }
        Ok((info, pairs))
    }
}
