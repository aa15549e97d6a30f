//! What alerting keeps in Redis (see `alerting.rs`): each alert rule's
//! state, moved by `lua/alert.lua`; latency series counted per slot of
//! time; samples of counters over time; and the server's clock they are
//! all measured by.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::keys::{alert_key, latency_key, samples_key};
use crate::scripts;

use super::PrefixConn;

/// Redis access for alert rules, latency series and counter samples.
#[derive(Debug, Clone)]
pub(crate) struct AlertStore {
    redis: PrefixConn,
}

impl AlertStore {
    pub(crate) fn new(redis: PrefixConn) -> Self {
        Self { redis }
    }

    /// One `alert.lua` call for rule `name`.
    pub(crate) async fn call<T: redis::FromRedisValue>(
        &self,
        name: &str,
        args: &[String],
    ) -> Result<T> {
        let mut inv = scripts::ALERT.prepare_invoke();
        inv.key(alert_key(self.redis.prefix(), name));
        for a in args {
            inv.arg(a);
        }
        self.redis.invoke("alert state", &inv).await
    }

    /// Rule `name`'s hash.
    pub(crate) async fn fields(&self, name: &str) -> Result<HashMap<String, String>> {
        self.redis
            .query(
                "read alert",
                redis::cmd("HGETALL").arg(alert_key(self.redis.prefix(), name)),
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
            let key = latency_key(self.redis.prefix(), name, slot);
            for (bucket, n) in counts.iter().enumerate().filter(|(_, n)| **n > 0) {
                pipe.cmd("HINCRBY").arg(&key).arg(bucket).arg(*n).ignore();
            }
            pipe.cmd("PEXPIRE").arg(&key).arg(keep_ms).ignore();
        }
        let mut conn = self.redis.conn();
        pipe.query_async::<()>(&mut conn)
            .await
            .map_err(|source| Error::Redis {
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
                .arg(latency_key(self.redis.prefix(), series, slot));
        }
        let slots: Vec<HashMap<usize, u64>> = self.redis.pipeline("read latency", &pipe).await?;
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
            self.redis.query("server time", &redis::cmd("TIME")).await?;
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
        let key = samples_key(self.redis.prefix(), name);
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
        self.redis.pipeline("add counter sample", &pipe).await
    }

    /// The newest sample at or before `at_ms`, else the oldest one.
    pub(crate) async fn counter_sample_before(
        &self,
        name: &str,
        at_ms: u64,
    ) -> Result<Option<Vec<u64>>> {
        let key = samples_key(self.redis.prefix(), name);
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
            self.redis.pipeline("read counter sample", &pipe).await?;
        Ok(before.into_iter().chain(oldest).next().map(|m| {
            m.split(':')
                .skip(1)
                .filter_map(|v| v.parse().ok())
                .collect()
        }))
    }
}
