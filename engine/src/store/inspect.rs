//! Inspection reads: lookups, counts, listings and snapshots.

use std::collections::{HashMap, HashSet};

use redis::Value;

use crate::error::Result;
use crate::job::{JobInfo, JobRecord, JobState, MinuteCount, Stats};
use crate::keys::{GROUP, PRIORITY_LEVELS};
use crate::options::RateLimit;
use crate::scripts;

use super::Store;
use super::replies::*;

/// The id of the job a stream entry holds (`i`) or is: a light job's id is
/// its place, `<epoch>-<level>-<entry id>` (see `lua/common.lua`).
/// Entries, pending entries or set members read per call by a backup.
const SNAPSHOT_PAGE: usize = 1000;

/// The jobs of `entries` (of the stream of `level`) that are waiting or
/// running: entries the group has not delivered (past `last`) or holds
/// pending; each id once (`seen`), appended to `out`.
fn collect_stream_jobs(
    entries: &redis::streams::StreamRangeReply,
    last: (u64, u64),
    pending: &HashSet<String>,
    epoch: Option<&str>,
    level: usize,
    seen: &mut HashSet<String>,
    out: &mut Vec<String>,
) {
    for entry in &entries.ids {
        let undelivered = parse_stream_id(&entry.id).is_some_and(|id| id > last);
        if (undelivered || pending.contains(&entry.id))
            && let Some(id) = entry_job_id(epoch, level, entry)
            && seen.insert(id.clone())
        {
            out.push(id);
        }
    }
}

fn entry_job_id(
    epoch: Option<&str>,
    level: usize,
    entry: &redis::streams::StreamId,
) -> Option<String> {
    if let Some(id) = entry.get::<String>(crate::job_fields::ENTRY_JOB_ID) {
        return Some(id);
    }
    let epoch = epoch?;
    entry
        .map
        .contains_key(crate::job_fields::ENTRY_PAYLOAD)
        .then(|| format!("{epoch}-{level}-{}", entry.id))
}

impl Store {
    /// A job, light or heavy.
    pub(crate) async fn job(&self, id: &str) -> Result<Option<JobInfo>> {
        Ok(self.jobs(&[id.to_owned()]).await?.pop())
    }

    /// Several jobs in one call, in order; missing ones skipped.
    pub(crate) async fn jobs(&self, ids: &[String]) -> Result<Vec<JobInfo>> {
        Ok(self
            .raw_jobs(ids)
            .await?
            .into_iter()
            .filter_map(|r| {
                JobInfo::from_hash(self.keys.queue(), &r.id, r.fields.into_iter().collect())
            })
            .collect())
    }

    /// Counts per state, in one round trip. Waiting and active jobs come
    /// from each stream's consumer group (lag and pending count), not from
    /// the stream's length: acknowledged entries linger in a stream until
    /// it is trimmed (see `trim_acked` in `lua/common.lua`).
    pub(crate) async fn stats(&self) -> Result<Stats> {
        let mut pipe = redis::pipe();
        for s in self.keys.streams() {
            pipe.cmd("XINFO").arg("GROUPS").arg(&s);
            pipe.cmd("XLEN").arg(&s);
        }
        pipe.cmd("ZCARD").arg(self.keys.delayed());
        pipe.cmd("ZCARD").arg(self.keys.dead());
        pipe.cmd("HGETALL").arg(self.keys.stats());
        pipe.cmd("HGET").arg(self.keys.meta()).arg("paused");
        pipe.cmd("HMGET")
            .arg(self.keys.meta())
            .arg("rate")
            .arg("burst");
        pipe.cmd("HVALS").arg(self.keys.cancelled_entries());
        let reply: Vec<Value> = self.query_pipe_grouped("queue stats", &pipe).await?;
        let levels = usize::from(PRIORITY_LEVELS);
        if reply.len() != levels * 2 + 6 {
            return Err(protocol("queue stats", "wrong number of replies"));
        }
        let mut stats = Stats {
            queue: self.keys.queue().to_owned(),
            ..Stats::default()
        };
        // Entries of jobs cancelled while waiting stay in their stream until
        // a claim reads past them (cancel.lua); they are not waiting.
        let mut cancelled = vec![0u64; levels];
        // One word per such entry: "3", or "3 3" for a job cancelled twice
        // before a claim read its first entry (light.lua, cx_mark).
        if let Value::Array(vals) | Value::Set(vals) = &reply[levels * 2 + 5] {
            for v in vals {
                let marks: String = redis::from_redis_value(v.clone()).unwrap_or_default();
                for level in marks.split_whitespace() {
                    if let Some(n) = level
                        .parse::<usize>()
                        .ok()
                        .and_then(|l| cancelled.get_mut(l))
                    {
                        *n += 1;
                    }
                }
            }
        }
        for l in 0..levels {
            let group = group_info(&reply[l * 2], GROUP);
            let pending = group.as_ref().and_then(|g| g.pending).unwrap_or(0);
            let waiting = match group.and_then(|g| g.lag) {
                Some(lag) => lag,
                // Redis without lag (before 7.0, or after an XDEL by hand):
                // the length less the pending entries, which counts
                // acknowledged entries not yet trimmed as waiting.
                None => (int(&reply[l * 2 + 1]).max(0) as u64).saturating_sub(pending),
            };
            stats
                .waiting_by_priority
                .push(waiting.saturating_sub(cancelled[l]));
            stats.active += pending;
        }
        stats.waiting = stats.waiting_by_priority.iter().sum();
        stats.delayed = int(&reply[levels * 2]).max(0) as u64;
        stats.dead = int(&reply[levels * 2 + 1]).max(0) as u64;
        // The counters hash: an array of pairs (RESP2) or a map (RESP3).
        let mut counter = |name: &Value, v: &Value| {
            let v = int(v).max(0) as u64;
            match text(name).as_str() {
                "enqueued" => stats.enqueued_total = v,
                "completed" => stats.completed_total = v,
                "failed" => stats.failed_total = v,
                "retried" => stats.retried_total = v,
                "dead" => stats.dead_total = v,
                _ => {}
            }
        };
        if let Value::Array(kv) | Value::Set(kv) = &reply[levels * 2 + 2] {
            for pair in kv.chunks(2) {
                counter(&pair[0], pair.get(1).unwrap_or(&Value::Nil));
            }
        } else if let Value::Map(kv) = &reply[levels * 2 + 2] {
            for (k, v) in kv {
                counter(k, v);
            }
        }
        stats.paused = text(&reply[levels * 2 + 3]) == "1";
        if let Value::Array(rb) = &reply[levels * 2 + 4] {
            let per_second = rb.first().map(text).and_then(|t| t.parse::<f64>().ok());
            let burst = rb.get(1).map(text).and_then(|t| t.parse::<u32>().ok());
            if let (Some(per_second), Some(burst)) = (per_second, burst) {
                stats.rate_limit = Some(RateLimit { per_second, burst });
            }
        }
        Ok(stats)
    }

    /// Set or clear the paused flag that `claim.lua` honours.
    /// Completed and failed attempts per minute, for the `minutes` minutes
    /// up to and including the one holding `now_ms`, oldest first.
    pub(crate) async fn throughput(&self, now_ms: u64, minutes: u64) -> Result<Vec<MinuteCount>> {
        let last = now_ms / 60_000;
        let first = last.saturating_sub(minutes.saturating_sub(1));
        let hours: Vec<u64> = (first / 60..=last / 60).collect();
        let mut pipe = redis::pipe();
        for h in &hours {
            pipe.cmd("HGETALL").arg(self.keys.throughput(*h));
        }
        let replies: Vec<HashMap<String, u64>> = self.query_pipe("throughput", &pipe).await?;
        let mut counts: HashMap<u64, (u64, u64)> = HashMap::new();
        for (h, fields) in hours.iter().zip(replies) {
            for (field, n) in fields {
                let (minute, kind) = field.split_at(field.len().saturating_sub(1));
                let Ok(m) = minute.parse::<u64>() else {
                    continue;
                };
                let entry = counts.entry(h * 60 + m).or_default();
                match kind {
                    "c" => entry.0 += n,
                    "f" => entry.1 += n,
                    _ => {}
                }
            }
        }
        Ok((first..=last)
            .map(|m| {
                let (completed, failed) = counts.get(&m).copied().unwrap_or_default();
                MinuteCount {
                    minute_ms: m * 60_000,
                    completed,
                    failed,
                }
            })
            .collect())
    }

    /// Redis server time, ms since the Unix epoch.
    /// When the oldest waiting (ready, not yet delivered) entry of any
    /// priority level was added, ms by Redis time; `None` when nothing waits.
    pub(crate) async fn oldest_waiting_ms(&self) -> Result<Option<u64>> {
        let mut pipe = redis::pipe();
        for s in self.keys.streams() {
            pipe.cmd("XINFO").arg("GROUPS").arg(&s);
        }
        let groups: Vec<Value> = self.query_pipe_grouped("oldest waiting", &pipe).await?;
        let mut ranges = redis::pipe();
        let mut asked = 0;
        for (level, stream) in self.keys.streams().iter().enumerate() {
            let info = groups.get(level).and_then(|g| group_info(g, GROUP));
            if info.as_ref().is_some_and(|i| !i.may_hold(false)) {
                continue;
            }
            let last = info.map_or_else(|| "0-0".to_owned(), |i| i.last_delivered);
            ranges
                .cmd("XRANGE")
                .arg(stream)
                .arg(format!("({last}"))
                .arg("+")
                .arg("COUNT")
                .arg(1);
            asked += 1;
        }
        if asked == 0 {
            return Ok(None);
        }
        let replies: Vec<redis::streams::StreamRangeReply> =
            self.query_pipe("oldest waiting", &ranges).await?;
        Ok(replies
            .iter()
            .flat_map(|r| r.ids.first())
            .filter_map(|e| parse_stream_id(&e.id).map(|(ms, _)| ms))
            .min())
    }

    pub(crate) async fn server_time_ms(&self) -> Result<u64> {
        let (secs, micros): (u64, u64) = self.query("server time", &redis::cmd("TIME")).await?;
        Ok(secs * 1000 + micros / 1000)
    }

    /// Dead letters after `cursor` in (death ms, id) descending order, at
    /// most `limit`, with their death ms: the letters of the cursor's
    /// millisecond whose id sorts below it, then up to `limit` older ones.
    /// Redis work is bounded by `limit` plus one millisecond's letters,
    /// however deep the cursor.
    pub(crate) async fn dead_after(
        &self,
        cursor: (u64, &str),
        limit: usize,
    ) -> Result<Vec<(u64, String)>> {
        let (ms, id) = cursor;
        let dead = self.keys.dead();
        let mut pipe = redis::pipe();
        pipe.cmd("ZRANGE")
            .arg(&dead)
            .arg(ms)
            .arg(ms)
            .arg("BYSCORE")
            .cmd("ZRANGE")
            .arg(&dead)
            .arg(format!("({ms}"))
            .arg("-inf")
            .arg("BYSCORE")
            .arg("REV")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .arg("WITHSCORES");
        let (ties, older): (Vec<String>, Vec<(String, f64)>) =
            self.query_pipe("list dead letters", &pipe).await?;
        let mut out: Vec<(u64, String)> = ties
            .into_iter()
            .filter(|t| t.as_str() < id)
            .map(|t| (ms, t))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1));
        out.extend(older.into_iter().map(|(t, s)| (s as u64, t)));
        out.truncate(limit);
        Ok(out)
    }

    /// The newest dead letters with their death ms, at most `limit`.
    pub(crate) async fn dead_newest(&self, limit: usize) -> Result<Vec<(u64, String)>> {
        self.dead_rows_at(0, limit).await
    }

    /// Dead letters' (time of death, id), newest first, `offset` skipped.
    async fn dead_rows_at(&self, offset: usize, limit: usize) -> Result<Vec<(u64, String)>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let rows: Vec<(String, f64)> = self
            .query(
                "list dead letters",
                redis::cmd("ZREVRANGE")
                    .arg(self.keys.dead())
                    .arg(offset)
                    .arg(offset + limit - 1)
                    .arg("WITHSCORES"),
            )
            .await?;
        Ok(rows.into_iter().map(|(t, s)| (s as u64, t)).collect())
    }

    /// Dead letter ids, newest first.
    pub(crate) async fn dead_ids(&self, offset: usize, limit: usize) -> Result<Vec<String>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let dead = self.keys.dead();
        self.query(
            "list dead letters",
            redis::cmd("ZREVRANGE")
                .arg(&dead)
                .arg(offset)
                .arg(offset + limit - 1),
        )
        .await
    }

    /// Ids of jobs in `state`, `offset` skipped, at most `limit`: waiting
    /// and active in priority order (most urgent first) then stream order,
    /// delayed soonest first, dead newest first. Completed jobs are not
    /// indexed (only counted), so that state lists nothing.
    pub(crate) async fn ids_in_state(
        &self,
        state: JobState,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<String>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        match state {
            JobState::Dead => self.dead_ids(offset, limit).await,
            JobState::Delayed => {
                self.query(
                    "list delayed jobs",
                    redis::cmd("ZRANGE")
                        .arg(self.keys.delayed())
                        .arg(offset)
                        .arg(offset + limit - 1),
                )
                .await
            }
            JobState::Completed => Ok(Vec::new()),
            JobState::Waiting | JobState::Active => {
                self.stream_ids(state == JobState::Active, offset, limit)
                    .await
            }
        }
    }

    /// Job ids of the stream entries the group has delivered and not yet
    /// acknowledged (active: its pending list) or not delivered yet
    /// (waiting: after its last-delivered id), level by level. Acknowledged
    /// entries that linger until the next trim are neither.
    pub(super) async fn stream_ids(
        &self,
        delivered: bool,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<String>> {
        let mut pipe = redis::pipe();
        for s in self.keys.streams() {
            pipe.cmd("XINFO").arg("GROUPS").arg(&s);
        }
        let groups: Vec<Value> = self.query_pipe_grouped("list jobs", &pipe).await?;
        let mut wanted = offset + limit;
        let mut out = Vec::new();
        let epoch = self.epoch().await?;
        for (level, stream) in self.keys.streams().iter().enumerate() {
            if wanted == 0 {
                break;
            }
            let info = groups.get(level).and_then(|g| group_info(g, GROUP));
            // Skip levels the group's counts say are empty on this side:
            // an idle queue is listed in one round trip, not eleven.
            if info.as_ref().is_some_and(|i| !i.may_hold(delivered)) {
                continue;
            }
            let ids = if delivered {
                self.pending_job_ids(stream, level, epoch.as_deref(), wanted)
                    .await?
            } else {
                let last = info.map_or_else(|| "0-0".to_owned(), |i| i.last_delivered);
                let entries: redis::streams::StreamRangeReply = self
                    .query(
                        "list jobs",
                        redis::cmd("XRANGE")
                            .arg(stream)
                            .arg(format!("({last}"))
                            .arg("+")
                            .arg("COUNT")
                            .arg(wanted),
                    )
                    .await?;
                entries
                    .ids
                    .iter()
                    .filter_map(|e| entry_job_id(epoch.as_deref(), level, e))
                    .collect()
            };
            wanted -= ids.len().min(wanted);
            out.extend(ids);
        }
        Ok(out.into_iter().skip(offset).take(limit).collect())
    }

    /// Job ids of the first `count` entries of a stream's pending list,
    /// oldest first: the pending list gives entry ids, the stream the jobs.
    pub(super) async fn pending_job_ids(
        &self,
        stream: &str,
        level: usize,
        epoch: Option<&str>,
        count: usize,
    ) -> Result<Vec<String>> {
        let pending: redis::streams::StreamPendingCountReply = self
            .query(
                "list jobs",
                redis::cmd("XPENDING")
                    .arg(stream)
                    .arg(GROUP)
                    .arg("-")
                    .arg("+")
                    .arg(count),
            )
            .await?;
        if pending.ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for p in &pending.ids {
            pipe.cmd("XRANGE").arg(stream).arg(&p.id).arg(&p.id);
        }
        let entries: Vec<redis::streams::StreamRangeReply> =
            self.query_pipe("list jobs", &pipe).await?;
        Ok(entries
            .iter()
            .flat_map(|r| r.ids.iter().filter_map(|e| entry_job_id(epoch, level, e)))
            .collect())
    }

    /// How many dead letters come before the first one after `cursor` in
    /// listing order (death ms, then id, descending): those that died
    /// later, and those of the cursor's millisecond whose id is not below
    /// the cursor's.
    pub(crate) async fn dead_rank_after(&self, cursor: (u64, &str)) -> Result<usize> {
        let (ms, id) = cursor;
        let dead = self.keys.dead();
        let mut pipe = redis::pipe();
        pipe.cmd("ZCOUNT")
            .arg(&dead)
            .arg(format!("({ms}"))
            .arg("+inf")
            .cmd("ZRANGE")
            .arg(&dead)
            .arg(ms)
            .arg(ms)
            .arg("BYSCORE");
        let (later, ties): (usize, Vec<String>) =
            self.query_pipe("list dead letters", &pipe).await?;
        Ok(later + ties.iter().filter(|t| t.as_str() >= id).count())
    }

    /// Dead letters whose error contains `text` (ignoring case), newest
    /// first, only those after `after` when given: the (time of death, id)
    /// of the `offset..offset+limit` matches, and how many match in all.
    /// Reads only the error field, 1,000 letters per round trip.
    pub(crate) async fn find_dead(
        &self,
        text: &str,
        after: Option<(u64, &str)>,
        offset: usize,
        limit: usize,
    ) -> Result<(Vec<(u64, String)>, u64)> {
        const CHUNK: usize = 1000;
        let needle = text.to_lowercase();
        let mut page = Vec::new();
        let mut matched = 0u64;
        let mut start = match after {
            None => 0,
            Some(cursor) => self.dead_rank_after(cursor).await?,
        };
        loop {
            let rows = self.dead_rows_at(start, CHUNK).await?;
            if rows.is_empty() {
                return Ok((page, matched));
            }
            let mut pipe = redis::pipe();
            for (_, id) in &rows {
                pipe.cmd("HGET")
                    .arg(self.keys.job(id))
                    .arg(crate::job_fields::ERROR);
            }
            let errors: Vec<Option<String>> = self.query_pipe("search dead letters", &pipe).await?;
            let found = rows.len();
            for (row, error) in rows.into_iter().zip(errors) {
                if error.is_some_and(|e| e.to_lowercase().contains(&needle)) {
                    if matched as usize >= offset && page.len() < limit {
                        page.push(row);
                    }
                    matched += 1;
                }
            }
            if found < CHUNK {
                return Ok((page, matched));
            }
            start += CHUNK;
        }
    }

    /// Ids of the jobs in the streams (waiting and active), the delayed set
    /// and the dead letters. A stream entry counts when the group has not
    /// delivered it yet or holds it pending; acknowledged entries that
    /// linger until the next trim do not.
    ///
    /// The streams are read in pages of [`SNAPSHOT_PAGE`], one call each,
    /// so that a backup of a large queue never blocks Redis for long (one
    /// transaction of every entry, payloads included, did). Jobs keep
    /// moving meanwhile, so one transaction at the end reads the delayed
    /// set and the dead letters (ids only) and each stream past the last
    /// entry its pages read: a job present throughout is in a set then, or
    /// has an entry past the pages (added since), or one the pages read and
    /// counted (an entry unread or pending at the end was so when read).
    /// Ids are given once.
    pub(crate) async fn snapshot_ids(&self) -> Result<(Vec<String>, Vec<String>, Vec<String>)> {
        let epoch: Option<String> = self
            .query(
                "list jobs",
                redis::cmd("HGET").arg(self.keys.meta()).arg("ep"),
            )
            .await?;
        let mut seen: HashSet<String> = HashSet::new();
        let mut in_streams = Vec::new();
        let streams = self.keys.streams();
        // The last entry id each stream's pages read (None: none).
        let mut read_to: Vec<Option<String>> = vec![None; streams.len()];
        for (level, stream) in streams.iter().enumerate() {
            let groups: Value = self
                .query_grouped("list jobs", redis::cmd("XINFO").arg("GROUPS").arg(stream))
                .await?;
            let last = group_info(&groups, GROUP)
                .map(|g| g.last_delivered)
                .and_then(|id| parse_stream_id(&id))
                .unwrap_or((0, 0));
            let pending = self.pending_ids(stream).await?;
            let mut start = "-".to_owned();
            loop {
                let entries: redis::streams::StreamRangeReply = self
                    .query(
                        "list jobs",
                        redis::cmd("XRANGE")
                            .arg(stream)
                            .arg(&start)
                            .arg("+")
                            .arg("COUNT")
                            .arg(SNAPSHOT_PAGE),
                    )
                    .await?;
                collect_stream_jobs(
                    &entries,
                    last,
                    &pending,
                    epoch.as_deref(),
                    level,
                    &mut seen,
                    &mut in_streams,
                );
                let Some(last_entry) = entries.ids.last() else {
                    break;
                };
                read_to[level] = Some(last_entry.id.clone());
                if entries.ids.len() < SNAPSHOT_PAGE {
                    break;
                }
                start = format!("({}", last_entry.id);
            }
        }
        // The end: the sets, and what each stream gained past its pages.
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (stream, read) in streams.iter().zip(&read_to) {
            let from = read.as_ref().map_or("-".to_owned(), |id| format!("({id}"));
            pipe.cmd("XINFO").arg("GROUPS").arg(stream);
            pipe.cmd("XPENDING")
                .arg(stream)
                .arg(GROUP)
                .arg(&from)
                .arg("+")
                .arg(i64::MAX);
            pipe.cmd("XRANGE").arg(stream).arg(&from).arg("+");
        }
        pipe.cmd("ZRANGE").arg(self.keys.delayed()).arg(0).arg(-1);
        pipe.cmd("ZRANGE").arg(self.keys.dead()).arg(0).arg(-1);
        let mut replies: Vec<Value> = self.query_pipe_grouped("list jobs", &pipe).await?;
        let bad = |e: redis::ParsingError| protocol("list jobs", e.to_string());
        let dead: Vec<String> =
            redis::from_redis_value(replies.pop().unwrap_or(Value::Nil)).map_err(bad)?;
        let delayed: Vec<String> =
            redis::from_redis_value(replies.pop().unwrap_or(Value::Nil)).map_err(bad)?;
        if replies.len() != streams.len() * 3 {
            return Err(protocol("list jobs", "wrong number of replies"));
        }
        let mut replies = replies.into_iter();
        let mut level = 0;
        while let (Some(groups), Some(pending), Some(range)) =
            (replies.next(), replies.next(), replies.next())
        {
            let last = group_info(&groups, GROUP)
                .map(|g| g.last_delivered)
                .and_then(|id| parse_stream_id(&id))
                .unwrap_or((0, 0));
            let pending: redis::streams::StreamPendingCountReply =
                redis::from_redis_value(pending).map_err(bad)?;
            let pending: HashSet<String> = pending.ids.into_iter().map(|p| p.id).collect();
            let entries: redis::streams::StreamRangeReply =
                redis::from_redis_value(range).map_err(bad)?;
            collect_stream_jobs(
                &entries,
                last,
                &pending,
                epoch.as_deref(),
                level,
                &mut seen,
                &mut in_streams,
            );
            level += 1;
        }
        let delayed: Vec<String> = delayed
            .into_iter()
            .filter(|id| seen.insert(id.clone()))
            .collect();
        let dead: Vec<String> = dead
            .into_iter()
            .filter(|id| seen.insert(id.clone()))
            .collect();
        Ok((in_streams, delayed, dead))
    }

    /// The ids of a stream's entries pending in the group, read in pages.
    async fn pending_ids(&self, stream: &str) -> Result<HashSet<String>> {
        let mut out = HashSet::new();
        let mut start = "-".to_owned();
        loop {
            let page: redis::streams::StreamPendingCountReply = self
                .query_grouped(
                    "list jobs",
                    redis::cmd("XPENDING")
                        .arg(stream)
                        .arg(GROUP)
                        .arg(&start)
                        .arg("+")
                        .arg(SNAPSHOT_PAGE),
                )
                .await?;
            let full = page.ids.len() == SNAPSHOT_PAGE;
            let next = page.ids.last().map(|p| format!("({}", p.id));
            out.extend(page.ids.into_iter().map(|p| p.id));
            match next {
                Some(next) if full => start = next,
                _ => return Ok(out),
            }
        }
    }

    /// Every field of these jobs, in order, as a job hash holds them (a
    /// light job's are read from its stream entry, see
    /// `lua/job_fields.lua`); missing ones skipped.
    pub(crate) async fn raw_jobs(&self, ids: &[String]) -> Result<Vec<JobRecord>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(500) {
            let mut inv = self.invocation(&scripts::JOB_FIELDS);
            for id in chunk {
                inv.arg(id);
            }
            let reply = array("read jobs", self.run("read jobs", &inv).await?)?;
            if reply.len() != chunk.len() {
                return Err(protocol("read jobs", "wrong number of replies"));
            }
            for (id, fields) in chunk.iter().zip(reply) {
                let fields = array("read jobs", fields)?;
                if fields.is_empty() {
                    continue;
                }
                let mut pairs = Vec::with_capacity(fields.len() / 2);
                let mut it = fields.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    pairs.push((text(&k), bytes(v)));
                }
                out.push(JobRecord {
                    id: id.clone(),
                    fields: pairs,
                });
            }
        }
        Ok(out)
    }

    /// One page of idempotency mappings from `cursor`: the next cursor
    /// (`"0"` when done) and (key, job id, remaining ms) per mapping.
    pub(crate) async fn idempotency_page(
        &self,
        cursor: &str,
    ) -> Result<(String, Vec<(String, String, u64)>)> {
        let mut inv = scripts::IDEM_SCAN.prepare_invoke();
        inv.key(self.keys.meta())
            .arg(self.keys.base())
            .arg(cursor)
            .arg(1000);
        let reply = array(
            "read idempotency keys",
            self.run("read idempotency keys", &inv).await?,
        )?;
        let mut it = reply.into_iter();
        let next = it
            .next()
            .map(|v| text(&v))
            .unwrap_or_else(|| "0".to_owned());
        let mut out = Vec::new();
        while let (Some(k), Some(id), Some(left)) = (it.next(), it.next(), it.next()) {
            out.push((text(&k), text(&id), int(&left).max(1) as u64));
        }
        Ok((next, out))
    }

    /// The ids of running jobs an operator asked to cancel.
    pub(crate) async fn cancel_requests(&self) -> Result<Vec<String>> {
        self.query(
            "read cancel requests",
            redis::cmd("HKEYS").arg(self.keys.cancel_requests()),
        )
        .await
    }
}
