//! Transitions: one script call per change of a job's state.

use std::time::Duration;

use redis::streams::StreamReadReply;
use redis::{ScriptInvocation, Value};

use crate::conn::Conn;
use crate::error::{Error, Result};
use crate::job::{Job, JobRecord, JobState, RunFields};
use crate::keys::{GROUP, PRIORITY_LEVELS};
use crate::scripts;

use super::Store;
use super::calls::*;
use super::replies::*;

/// One finished attempt, ready to settle.
#[derive(Debug, Clone)]
pub(crate) struct SettleItem {
    pub job_id: String,
    pub level: u8,
    pub entry_id: String,
    pub fence: u64,
    /// The attempt this outcome ends (not sent to Redis; for observers).
    pub attempt: u32,
    pub kind: &'static str,
    pub text: String,
    pub delay_ms: i64,
}

/// One job's arguments to `enqueue.lua`.
#[derive(Debug, Clone)]
pub(crate) struct EnqueueItem {
    pub id: String,
    pub payload: Vec<u8>,
    pub priority: u8,
    pub delay_ms: u64,
    pub max_attempts: u32,
    pub backoff: String,
    pub timeout_ms: u64,
    pub idempotency_key: String,
    pub idempotency_window_ms: u64,
}

/// A part of an enqueue batch as `enqueue.lua` takes it: a run of
/// consecutive jobs that are ready at once, have no idempotency key and
/// share their options (sent as one header and a payload each), or one
/// job with all its fields.
enum EnqueueSegment<'a> {
    Run(std::ops::Range<usize>),
    One(&'a EnqueueItem),
}

/// `items` cut into segments, in their order (so FIFO order within a
/// priority holds across segments).
fn enqueue_segments(items: &[EnqueueItem]) -> Vec<EnqueueSegment<'_>> {
    let plain = |it: &EnqueueItem| it.delay_ms == 0 && it.idempotency_key.is_empty();
    let same = |a: &EnqueueItem, b: &EnqueueItem| {
        (a.priority, a.max_attempts, a.timeout_ms, &a.backoff)
            == (b.priority, b.max_attempts, b.timeout_ms, &b.backoff)
    };
    let mut out = Vec::new();
    let mut i = 0;
    while i < items.len() {
        if !plain(&items[i]) {
            out.push(EnqueueSegment::One(&items[i]));
            i += 1;
            continue;
        }
        let start = i;
        while i < items.len() && plain(&items[i]) && same(&items[start], &items[i]) {
            i += 1;
        }
        out.push(EnqueueSegment::Run(start..i));
    }
    out
}

/// The consumer name a worker's blocking reads deliver to: entries stay
/// under it until a claim activates them (`claim.lua`), so a reclaimer can
/// tell delivered-but-never-run entries from running jobs. Consumer names
/// cannot contain '~' (`keys::validate_name`).
pub(crate) fn delivered_name(consumer: &str) -> String {
    format!("{consumer}~b")
}

/// Entries delivered to a worker and not yet activated, for its next
/// [`Store::claim`] to activate first.
#[derive(Debug, Default, Clone)]
pub(crate) struct Delivered {
    /// (level, entry id, job id or '' for a light entry).
    pub entries: Vec<(u8, String, String)>,
    /// Delivered by a blocking read, to [`delivered_name`]; otherwise by a
    /// direct read, to the worker's own name (`direct.rs`).
    pub by_blocking_read: bool,
}

impl Store {
    /// The `enqueue.lua` call for `items`.
    pub(super) fn enqueue_invocation(
        &self,
        items: &[EnqueueItem],
        call: &CallToken,
        confirmed: &[String],
    ) -> ScriptInvocation<'static> {
        // enqueue.lua touches only the streams of the batch's levels.
        let deepest = items.iter().map(|it| it.priority).max().unwrap_or(0);
        let mut inv = self.invocation_to_level(&scripts::ENQUEUE, deepest);
        inv.arg(&call.token)
            .arg(call.record_ms)
            .arg(confirmed.len());
        for c in confirmed {
            inv.arg(c);
        }
        let segments = enqueue_segments(items);
        inv.arg(segments.len());
        for segment in segments {
            match segment {
                EnqueueSegment::Run(run) => {
                    let first = &items[run.start];
                    inv.arg("q")
                        .arg(first.priority)
                        .arg(format!(
                            "{},{},{}",
                            first.max_attempts, first.timeout_ms, first.backoff
                        ))
                        .arg(run.len());
                    for it in &items[run] {
                        inv.arg(&it.payload);
                    }
                }
                EnqueueSegment::One(it) => {
                    inv.arg("j")
                        .arg(&it.id)
                        .arg(&it.payload)
                        .arg(it.priority)
                        .arg(it.delay_ms)
                        .arg(format!("{},{}", it.max_attempts, it.timeout_ms))
                        .arg(&it.backoff)
                        .arg(&it.idempotency_key)
                        .arg(it.idempotency_window_ms);
                }
            }
        }
        inv
    }

    pub(super) fn enqueue_reply(
        items: &[EnqueueItem],
        reply: Value,
    ) -> Result<Vec<(String, bool)>> {
        // "<id> <0|1>" per job (enqueue.lua).
        let words = words("enqueue", reply)?;
        if words.len() != items.len() * 2 {
            return Err(protocol(
                "enqueue",
                format!("{} fields for {} jobs", words.len(), items.len()),
            ));
        }
        words
            .chunks(2)
            .map(|pair| match pair[1].as_str() {
                "0" => Ok((pair[0].clone(), false)),
                "1" => Ok((pair[0].clone(), true)),
                other => Err(protocol("enqueue", format!("duplicate flag {other:?}"))),
            })
            .collect()
    }

    /// `enqueue.lua`: returns (job id, duplicate) per job.
    /// `confirmed`: tokens of earlier enqueue calls whose replies arrived.
    pub(crate) async fn enqueue(
        &self,
        items: &[EnqueueItem],
        call: &CallToken,
        confirmed: &[String],
    ) -> Result<Vec<(String, bool)>> {
        let inv = self.enqueue_invocation(items, call, confirmed);
        Self::enqueue_reply(items, self.run("enqueue", &inv).await?)
    }

    /// `enqueue.lua` and `WAIT replicas timeout` in one pipeline, so both
    /// go on one connection: a retry after a reconnect sends both again,
    /// and the script writes even when it adds nothing, so the `WAIT`
    /// always waits for a write at least as new as the jobs. (Sent apart,
    /// a `WAIT` after a reconnect ran on a connection that had written
    /// nothing and answered at once.) Returns the reply and how many
    /// replicas acknowledged.
    pub(crate) async fn enqueue_replicated(
        &self,
        items: &[EnqueueItem],
        call: &CallToken,
        confirmed: &[String],
        replicas: u32,
        timeout: Duration,
    ) -> Result<(Vec<(String, bool)>, i64)> {
        let inv = self.enqueue_invocation(items, call, confirmed);
        let mut pipe = redis::pipe();
        pipe.invoke_script(&inv)
            .cmd("WAIT")
            .arg(replicas)
            .arg(timeout.as_millis() as u64);
        let reply: (Value, i64) = match self.query_pipe("enqueue", &pipe).await {
            Err(Error::Redis { source, .. })
                if source.code() == Some("NOSCRIPT") || source.to_string().contains("NOSCRIPT") =>
            {
                // Pipelined scripts are not loaded on demand: load, resend.
                with_retry(self.retry, "load enqueue script", || {
                    let mut conn = self.conn.clone();
                    let inv = &inv;
                    async move { inv.load_async(&mut conn).await }
                })
                .await?;
                self.query_pipe("enqueue", &pipe).await?
            }
            other => other?,
        };
        Ok((Self::enqueue_reply(items, reply.0)?, reply.1))
    }

    /// `claim.lua`: activate `delivered` entries, then claim up to `count`
    /// more in priority order. Returns whether the queue is paused and the
    /// jobs.
    pub(crate) async fn claim(
        &self,
        consumer: &str,
        count: usize,
        delivered: &Delivered,
        call: &CallToken,
    ) -> Result<(ClaimStatus, Vec<Job>)> {
        let mut inv = self.invocation(&scripts::CLAIM);
        inv.arg(consumer)
            .arg(count)
            .arg(&call.token)
            .arg(call.record_ms)
            .arg(call.confirmed.as_deref().unwrap_or(""))
            .arg(delivered.entries.len())
            .arg(if delivered.by_blocking_read {
                delivered_name(consumer)
            } else {
                consumer.to_owned()
            });
        for (level, entry, job) in &delivered.entries {
            inv.arg(*level).arg(entry).arg(job);
        }
        let mut reply = array("claim", self.run_grouped("claim", &inv).await?)?.into_iter();
        let paused = reply.next().map(|v| int(&v) == 1).unwrap_or(false);
        let rate = match reply.next().map(|v| int(&v)).unwrap_or(-1) {
            n if n < 0 => RateState::Unlimited,
            0 => RateState::Open,
            ms => RateState::Wait(Duration::from_millis(ms as u64)),
        };
        let status = ClaimStatus { paused, rate };
        let epoch = reply.next().map(|v| text(&v)).unwrap_or_default();
        let heavy = usize::try_from(reply.next().map(|v| int(&v)).unwrap_or(0)).unwrap_or(0);
        let rest: Vec<Value> = reply.collect();
        if rest.len() < heavy * 7 || !(rest.len() - heavy * 7).is_multiple_of(4) {
            return Err(protocol(
                "claim",
                format!("{} fields for {heavy} jobs of 7 and jobs of 4", rest.len()),
            ));
        }
        let mut jobs = Vec::with_capacity(heavy + (rest.len() - heavy * 7) / 4);
        let mut it = rest.into_iter();
        let mut next = || it.next().unwrap_or(Value::Nil);
        for n in 0.. {
            // Jobs of 7 fields (job id, level, entry, fence, attempt, run,
            // payload), then light ones of 4 (level, entry, run, payload),
            // whose id is their place, fence 0 and attempt 1.
            let (id, level, entry, fence, attempt, run, payload) = if n < heavy {
                let id = text(&next());
                let (level, entry) = (next(), text(&next()));
                (id, level, entry, int(&next()), int(&next()), next(), next())
            } else {
                let level = next();
                if level == Value::Nil {
                    break;
                }
                let entry = text(&next());
                let id = format!("{epoch}-{}-{entry}", int(&level));
                (id, level, entry, 0, 1, next(), next())
            };
            jobs.push(self.claimed_job(
                id,
                int(&level),
                entry,
                (fence, attempt),
                &text(&run),
                bytes(payload),
                consumer,
            ));
        }
        Ok((status, jobs))
    }

    /// A job claimed by `consumer`, from a claim's reply fields (`run` as
    /// `claim.lua` answers it, see there).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn claimed_job(
        &self,
        id: String,
        level: i64,
        entry: String,
        (fence, attempt): (i64, i64),
        run: &str,
        payload: Vec<u8>,
        consumer: &str,
    ) -> Job {
        // A hash edited by hand must not stop every claim of the queue:
        // unreadable fields get the defaults a lookup shows.
        let run = RunFields::parse_claimed(run, &entry).unwrap_or(RunFields {
            max_attempts: 1,
            timeout_ms: 0,
            created_ms: 0,
        });
        Job {
            id,
            queue: self.keys.queue().to_owned(),
            priority: level.clamp(0, i64::from(PRIORITY_LEVELS - 1)) as u8,
            entry_id: entry,
            fence: fence.max(0) as u64,
            consumer: consumer.to_owned(),
            attempt: attempt.max(0) as u32,
            max_attempts: run.max_attempts.clamp(1, u64::from(u32::MAX)) as u32,
            timeout: (run.timeout_ms > 0).then(|| Duration::from_millis(run.timeout_ms)),
            payload,
            created_at_ms: run.created_ms,
            cancel: Default::default(),
        }
    }

    /// Wait up to `block` for new entries on any level, on a connection of
    /// its own (a blocking read would hold up every command sharing one).
    /// The entries are delivered to `consumer` and must then go through
    /// [`Store::claim`] to become active.
    pub(crate) async fn wait_for_entries(
        &self,
        blocking: &mut Conn,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Delivered> {
        let streams = self.keys.streams();
        let ids = vec![">"; streams.len()];
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(GROUP)
            .arg(delivered_name(consumer))
            .arg("COUNT")
            .arg(count)
            .arg("BLOCK")
            .arg(block.as_millis() as u64)
            .arg("STREAMS")
            .arg(&streams)
            .arg(&ids);
        let reply: Option<StreamReadReply> = match cmd.query_async(blocking).await {
            Ok(r) => r,
            Err(e) if is_nogroup(&e) => {
                self.ensure().await?;
                None
            }
            Err(e) if is_transient(&e) => {
                return Err(Error::Unavailable {
                    operation: "wait for jobs",
                    attempts: 1,
                    elapsed: Duration::ZERO,
                    source: e,
                });
            }
            Err(source) => {
                return Err(Error::Redis {
                    operation: "wait for jobs",
                    source,
                });
            }
        };
        let mut out = Vec::new();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            let Some(level) = streams.iter().position(|s| *s == key.key) else {
                continue;
            };
            for entry in key.ids {
                let job: String = entry
                    .get(crate::job_fields::ENTRY_JOB_ID)
                    .unwrap_or_default();
                out.push((level as u8, entry.id, job));
            }
        }
        Ok(Delivered {
            entries: out,
            by_blocking_read: true,
        })
    }

    /// `settle.lua`: record a batch of outcomes.
    pub(crate) async fn settle(
        &self,
        consumer: &str,
        items: &[SettleItem],
        keep_completed: Duration,
        dead_letter_cap: usize,
        call: &CallToken,
    ) -> Result<Vec<Settled>> {
        // Light jobs completed with nothing to keep go as bare entry ids,
        // grouped by level (settle.lua's quick groups); the rest one by
        // one. Ids of the previous layout (no dash) must leave its index,
        // so they go one by one.
        let quick = |it: &SettleItem| {
            it.fence == 0
                && it.kind == "done"
                && keep_completed.is_zero()
                && it.job_id.contains('-')
        };
        let (quick_items, general): (Vec<usize>, Vec<usize>) =
            (0..items.len()).partition(|&i| quick(&items[i]));
        let mut inv = self.invocation(&scripts::SETTLE);
        inv.arg(keep_completed.as_millis() as u64)
            .arg(dead_letter_cap)
            .arg(rand::random::<u32>())
            .arg(&call.token)
            .arg(call.record_ms)
            .arg(call.confirmed.as_deref().unwrap_or(""))
            .arg(consumer)
            .arg(general.len());
        // Per level, the newest entry of the batch: the script trims up to
        // it without comparing ids in Lua.
        let mut newest: Vec<(u8, (u64, u64))> = Vec::new();
        for it in items {
            let Some(id) = parse_stream_id(&it.entry_id) else {
                continue;
            };
            match newest.iter_mut().find(|(level, _)| *level == it.level) {
                Some((_, n)) => *n = (*n).max(id),
                None => newest.push((it.level, id)),
            }
        }
        for &i in &general {
            let it = &items[i];
            inv.arg(&it.job_id)
                .arg(it.level)
                .arg(&it.entry_id)
                .arg(it.fence)
                .arg(it.kind)
                .arg(&it.text)
                .arg(it.delay_ms);
        }
        inv.arg(newest.len());
        for (level, (ms, seq)) in newest {
            inv.arg(level).arg(format!("{ms}-{seq}"));
        }
        let mut levels: Vec<u8> = quick_items.iter().map(|&i| items[i].level).collect();
        levels.sort_unstable();
        levels.dedup();
        // The order the script answers in: the general outcomes, then the
        // quick ones level by level.
        let mut order = general.clone();
        inv.arg(levels.len());
        for level in levels {
            let group: Vec<usize> = quick_items
                .iter()
                .copied()
                .filter(|&i| items[i].level == level)
                .collect();
            inv.arg(level).arg(group.len());
            for &i in &group {
                inv.arg(&items[i].entry_id);
            }
            order.extend(group);
        }
        // A status per outcome (settle.lua).
        let statuses = words("settle", self.run("settle", &inv).await?)?;
        if statuses.len() != items.len() {
            return Err(protocol("settle", "wrong number of statuses"));
        }
        let mut out = vec![Settled::Gone; items.len()];
        for (position, status) in order.into_iter().zip(statuses) {
            out[position] = match status.as_str() {
                "done" => Settled::Done,
                "retry" => Settled::Retry,
                "dead" => Settled::Dead,
                "snoozed" => Settled::Snoozed,
                "fenced" => Settled::Fenced,
                "gone" => Settled::Gone,
                other => return Err(protocol("settle", format!("unknown status {other:?}"))),
            };
        }
        Ok(out)
    }

    /// `promote.lua`: move up to `limit` due delayed jobs to their stream.
    pub(crate) async fn promote(&self, limit: usize) -> Result<Promoted> {
        let mut inv = self.invocation(&scripts::PROMOTE);
        inv.arg(limit);
        let reply = array("promote", self.run("promote", &inv).await?)?;
        let moved = reply.first().map(int).unwrap_or(0).max(0) as u64;
        let next = reply.get(1).map(int).unwrap_or(-1);
        Ok(Promoted {
            moved,
            next_due: (next >= 0).then(|| Duration::from_millis(next as u64)),
        })
    }

    /// `reclaim.lua`: take over entries idle longer than `min_idle`.
    /// `quiet_bound`: the longest silence between the fleet's reclaims that
    /// is no outage (a worker's reclaimer), or `None` (see reclaim.lua).
    pub(crate) async fn reclaim(
        &self,
        consumer: &str,
        min_idle: Duration,
        count: usize,
        dead_letter_cap: usize,
        quiet_bound: Option<Duration>,
    ) -> Result<Reclaimed> {
        let mut inv = self.invocation(&scripts::RECLAIM);
        inv.arg(consumer)
            .arg(min_idle.as_millis() as u64)
            .arg(count)
            .arg(dead_letter_cap)
            .arg(rand::random::<u32>())
            .arg(quiet_bound.map_or(String::new(), |b| b.as_millis().to_string()));
        let reply = array("reclaim", self.run_grouped("reclaim", &inv).await?)?;
        let n = |i: usize| reply.get(i).map(int).unwrap_or(0).max(0) as u64;
        Ok(Reclaimed {
            retried: n(0),
            dead: n(1),
            dropped: n(2),
            requeued: n(3),
            after_outage: n(4) == 1,
        })
    }

    /// `import.lua`: returns how many jobs were added.
    pub(crate) async fn import(&self, records: &[JobRecord]) -> Result<u64> {
        let mut inv = self.invocation(&scripts::IMPORT);
        inv.arg(records.len());
        for r in records {
            inv.arg(&r.id).arg(r.fields.len());
            for (k, v) in &r.fields {
                inv.arg(k).arg(v);
            }
        }
        Ok(int(&self.run("import jobs", &inv).await?).max(0) as u64)
    }

    /// `redrive.lua` for these ids, or the oldest batch when `ids` is empty.
    /// `cancel.lua` for one job.
    pub(crate) async fn cancel(&self, id: &str, dead_letter_cap: usize) -> Result<Cancelled> {
        let mut inv = self.invocation(&scripts::CANCEL);
        inv.arg(dead_letter_cap).arg(id);
        let reply = text(&self.run("cancel a job", &inv).await?);
        Ok(match reply.as_str() {
            "cancelled" => Cancelled::Cancelled,
            "requested" => Cancelled::Requested,
            "missing" => Cancelled::Missing,
            other => match JobState::parse(other) {
                Some(state) => Cancelled::Finished(state),
                None => return Err(protocol("cancel a job", "unknown reply")),
            },
        })
    }

    pub(crate) async fn redrive(&self, ids: &[String]) -> Result<u64> {
        let mut inv = self.invocation(&scripts::REDRIVE);
        for id in ids {
            inv.arg(id);
        }
        Ok(int(&self.run("re-drive dead letters", &inv).await?).max(0) as u64)
    }

    /// `delete_dead.lua` for these ids, or the oldest batch when `ids` is empty.
    pub(crate) async fn delete_dead(&self, ids: &[String]) -> Result<u64> {
        let mut inv = self.invocation_to_level(&scripts::DELETE_DEAD, 0);
        for id in ids {
            inv.arg(id);
        }
        Ok(int(&self.run("delete dead letters", &inv).await?).max(0) as u64)
    }

    /// Write idempotency mappings back (key, job id, ms left), each only
    /// where the key has none: a mapping made since wins.
    pub(crate) async fn restore_idempotency(
        &self,
        mappings: &[(String, String, u64)],
    ) -> Result<()> {
        if mappings.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for (key, id, left) in mappings {
            pipe.cmd("SET")
                .arg(format!("{}idem:{key}", self.keys.base()))
                .arg(id)
                .arg("PX")
                .arg((*left).max(1))
                .arg("NX")
                .ignore();
        }
        self.query_pipe("restore idempotency keys", &pipe).await
    }
}
