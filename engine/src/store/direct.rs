//! Direct reads: a worker draining a level claims light jobs with a plain
//! `XREADGROUP` instead of `claim.lua`.
//!
//! Why: a light job is active while its entry is pending for its worker
//! (`lua/common.lua`), so reading it is all a claim of it does. Inside a
//! script every entry read is converted into Lua values and back into the
//! reply, which costs more than the read itself (bench/README.md); sent
//! directly, Redis writes the entries straight to the worker.
//!
//! What keeps it as safe as a claim:
//! - The read goes in one `MULTI` with what `claim.lua` would check first:
//!   the paused flag, the rate limit, pending cancels of waiting jobs and
//!   the queue's epoch. When any of them says the entries need the script
//!   (paused, limited, cancels pending, no epoch), or an entry is heavy, the
//!   worker hands them to `claim.lua` as delivered entries, which activates,
//!   requeues or drops each as it would have.
//! - The same `MULTI` writes a call record (`call:<token>` = `read <ms>`)
//!   and points `ct:<consumer>` at it, and deletes the record of the
//!   worker's previous call, whose reply arrived. While the record exists
//!   the read is unconfirmed, and `reclaim.lua` gives back the attempt of
//!   the entries it delivered, as for a claim whose reply was lost.
//! - A read whose reply was lost is not sent again: the worker reads its
//!   own pending entries instead ([`Store::read_own_pending`]) and takes
//!   those it does not know, so nothing it was given stays unseen.

use redis::Value;

use crate::error::Result;
use crate::job::Job;
use crate::keys::{GROUP, PRIORITY_LEVELS};

use super::Store;
use super::calls::*;
use super::replies::*;

/// What a direct read found.
#[derive(Debug, Default)]
pub(crate) struct DirectRead {
    /// The queue is paused, rate-limited, has cancels of waiting jobs
    /// pending, or lost its epoch: claims must go through `claim.lua`.
    pub needs_script: bool,
    /// Light jobs, active from the read on.
    pub jobs: Vec<Job>,
    /// Entries read that only `claim.lua` may activate (level, entry id,
    /// job id or '' for a light entry), pending for the worker's own name.
    pub deferred: Vec<(u8, String, String)>,
}

/// One entry of an `XREADGROUP` reply: its id and field list (empty when
/// the entry was deleted while pending).
type RawEntry = (String, Vec<(String, Value)>);

impl Store {
    /// Read up to `count` new entries from each of levels `0..=deepest` for
    /// `consumer` (see the module doc). One try, never retried: on an
    /// error the read may have run, and the caller recovers with
    /// [`Store::read_own_pending`].
    pub(crate) async fn read_direct(
        &self,
        consumer: &str,
        count: usize,
        deepest: u8,
        call: &CallToken,
    ) -> Result<DirectRead> {
        let levels = usize::from(deepest.min(PRIORITY_LEVELS - 1)) + 1;
        self.read(consumer, count, &vec![">"; levels], call, |_| false)
            .await
    }

    /// The entries pending for `consumer` on every level that `known`
    /// (level, entry id) does not name: those of a direct read whose reply
    /// was lost. Read like [`Store::read_direct`], under a new record.
    pub(crate) async fn read_own_pending(
        &self,
        consumer: &str,
        count: usize,
        call: &CallToken,
        known: impl Fn((u8, &str)) -> bool,
    ) -> Result<DirectRead> {
        let ids = vec!["0"; usize::from(PRIORITY_LEVELS)];
        self.read(consumer, count, &ids, call, known).await
    }

    async fn read(
        &self,
        consumer: &str,
        count: usize,
        ids: &[&str],
        call: &CallToken,
        known: impl Fn((u8, &str)) -> bool,
    ) -> Result<DirectRead> {
        let streams: Vec<String> = (0..ids.len() as u8).map(|l| self.keys.stream(l)).collect();
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("HMGET")
            .arg(self.keys.meta())
            .arg("paused")
            .arg("rate")
            .arg("ep");
        pipe.cmd("HLEN").arg(self.keys.cancelled_entries());
        pipe.cmd("SET")
            .arg(self.keys.call(&call.token))
            .arg(format!("read {}", call.record_ms))
            .arg("PX")
            .arg(call.record_ms)
            .ignore();
        pipe.cmd("HSET")
            .arg(self.keys.meta())
            .arg(format!("ct:{consumer}"))
            .arg(&call.token)
            .ignore();
        if let Some(confirmed) = &call.confirmed {
            pipe.cmd("DEL").arg(self.keys.call(confirmed)).ignore();
        }
        pipe.cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(consumer)
            .arg("COUNT")
            .arg(count)
            .arg("STREAMS")
            .arg(&streams)
            .arg(ids);
        let (meta, cancels, read): (Vec<Option<String>>, i64, Value) =
            self.query_pipe_once("direct read", &pipe).await?;
        let field = |n: usize| meta.get(n).cloned().flatten();
        let paused = field(0).as_deref() == Some("1");
        let limited = field(1)
            .and_then(|r| r.parse::<f64>().ok())
            .is_some_and(|r| r > 0.0);
        let epoch = field(2).unwrap_or_default();
        let needs_script = paused || limited || cancels > 0 || epoch.is_empty();

        let mut out = DirectRead {
            needs_script,
            ..DirectRead::default()
        };
        for (key, entries) in stream_entries(read)? {
            let Some(level) = streams.iter().position(|s| *s == key) else {
                continue;
            };
            let level = level as u8;
            for (entry, fields) in entries {
                if known((level, &entry)) {
                    continue;
                }
                let get = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| v);
                let (payload, options) = (get("p"), get("o"));
                match (get("i"), payload, options) {
                    // A light entry of this version: p, o[, k].
                    (None, Some(payload), Some(options)) if !needs_script => {
                        let id = format!("{epoch}-{level}-{entry}");
                        let payload = bytes(payload.clone());
                        let run = text(options);
                        out.jobs.push(self.claimed_job(
                            id,
                            i64::from(level),
                            entry,
                            (0, 1),
                            &run,
                            payload,
                            consumer,
                        ));
                    }
                    (job, _, _) => {
                        let job = job.map(text).unwrap_or_default();
                        out.deferred.push((level, entry, job));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// The entries of an `XREADGROUP` reply, stream by stream (RESP2 arrays or
/// a RESP3 map; nil when nothing was read).
fn stream_entries(reply: Value) -> Result<Vec<(String, Vec<RawEntry>)>> {
    let streams: Vec<(Value, Value)> = match reply {
        Value::Nil => return Ok(Vec::new()),
        Value::Map(m) => m,
        Value::Array(a) => a
            .into_iter()
            .filter_map(|s| match s {
                Value::Array(mut kv) if kv.len() == 2 => {
                    let entries = kv.pop()?;
                    Some((kv.pop()?, entries))
                }
                _ => None,
            })
            .collect(),
        other => return Err(protocol("direct read", format!("unexpected {other:?}"))),
    };
    let mut out = Vec::with_capacity(streams.len());
    for (key, entries) in streams {
        let mut list = Vec::new();
        for e in array("direct read", entries)? {
            let Value::Array(mut parts) = e else { continue };
            if parts.is_empty() {
                continue;
            }
            let fields = if parts.len() > 1 {
                parts.pop().unwrap_or(Value::Nil)
            } else {
                Value::Nil
            };
            let id = text(&parts[0]);
            let fields = match fields {
                Value::Array(kv) => {
                    let mut it = kv.into_iter();
                    let mut pairs = Vec::new();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((text(&k), v));
                    }
                    pairs
                }
                Value::Map(kv) => kv.into_iter().map(|(k, v)| (text(&k), v)).collect(),
                _ => Vec::new(),
            };
            list.push((id, fields));
        }
        out.push((text(&key), list));
    }
    Ok(out)
}
