//! Typed replies: what the scripts answer, and the helpers that read
//! Redis values.

use std::time::Duration;

use redis::Value;

use crate::error::{Error, Result};
use crate::job::JobState;

/// What a claim saw besides the jobs it took (by default: neither paused
/// nor limited, what a direct read that took jobs saw).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct ClaimStatus {
    /// The queue is paused.
    pub paused: bool,
    /// Where the queue's rate limit stands.
    pub rate: RateState,
}

/// A queue's rate limit as a claim saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum RateState {
    /// No rate limit.
    #[default]
    Unlimited,
    /// Limited, and a token is free.
    Open,
    /// Limited, and the next token comes after this long.
    Wait(Duration),
}

/// What an operator's cancel did ([`Queue::cancel`](crate::Queue::cancel)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "result", content = "state")]
pub enum Cancelled {
    /// It was waiting or delayed; it is a dead letter now, with the reason
    /// "cancelled by an operator", and can be re-driven.
    Cancelled,
    /// It is running: its worker tells the handler
    /// ([`CancelReason::Operator`](crate::CancelReason::Operator)), and
    /// unless the run still succeeds the job is dead-lettered, also when
    /// its worker dies first.
    Requested,
    /// It had finished already (completed or dead): nothing changed.
    Finished(JobState),
    /// No such job (or a completed one no longer kept).
    Missing,
}

/// What one settled outcome turned into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The job completed.
    Done,
    /// The failure was recorded and a retry scheduled.
    Retry,
    /// The job went to the dead letters.
    Dead,
    /// The job will run again later, no attempt used.
    Snoozed,
    /// Refused: the job was reclaimed and belongs to another worker now, so
    /// this (stale) outcome changed nothing.
    Fenced,
    /// The job no longer exists; its stream entry was dropped.
    Gone,
}

impl Settled {
    /// The status as settle.lua names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Settled::Done => "done",
            Settled::Retry => "retry",
            Settled::Dead => "dead",
            Settled::Snoozed => "snoozed",
            Settled::Fenced => "fenced",
            Settled::Gone => "gone",
        }
    }
}

/// A result of `reclaim.lua`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reclaimed {
    /// Jobs of dead workers scheduled for another attempt.
    pub retried: u64,
    /// Jobs of dead workers that had no attempts left and were dead-lettered.
    pub dead: u64,
    /// Stale entries whose job no longer existed.
    pub dropped: u64,
    /// Entries delivered to a worker that never activated them (it waited
    /// for a slot too long, or never heard the reply): back in line with
    /// no attempt spent.
    pub requeued: u64,
    /// This reclaim found that nobody in the fleet had reclaimed for
    /// longer than its reclaimers allow (Redis was out of reach, frozen or
    /// restarting), so it took nothing from owners silent only as long as
    /// the outage (reclaim.lua). Always false for [`crate::Queue::reclaim_lost`].
    pub after_outage: bool,
}

impl Reclaimed {
    /// Add another partition's counts.
    pub(crate) fn add(&mut self, other: &Reclaimed) {
        self.retried += other.retried;
        self.dead += other.dead;
        self.dropped += other.dropped;
        self.requeued += other.requeued;
        self.after_outage |= other.after_outage;
    }
}

/// A result of `promote.lua`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Promoted {
    /// Jobs moved to their stream.
    pub moved: u64,
    /// Time until the next delayed job is due, if any.
    pub next_due: Option<Duration>,
}

impl Promoted {
    /// Add another partition's result: the moves summed, the soonest due.
    pub(crate) fn add(&mut self, other: &Promoted) {
        self.moved += other.moved;
        self.next_due = match (self.next_due, other.next_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
}

pub(super) fn protocol(operation: &'static str, detail: impl Into<String>) -> Error {
    Error::Protocol {
        operation,
        detail: detail.into(),
    }
}

/// A script's reply that is one text of words joined by spaces (enqueue.lua,
/// settle.lua: one value to parse instead of one per job), as its words.
pub(super) fn words(operation: &'static str, v: Value) -> Result<Vec<String>> {
    match v {
        Value::BulkString(bytes) => {
            let text = std::str::from_utf8(&bytes)
                .map_err(|e| protocol(operation, format!("reply not UTF-8: {e}")))?;
            Ok(text.split_ascii_whitespace().map(str::to_owned).collect())
        }
        other => Err(protocol(operation, format!("expected text, got {other:?}"))),
    }
}

pub(super) fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        Value::Okay => "OK".to_owned(),
        _ => String::new(),
    }
}

/// What `XINFO GROUPS` says of one consumer group on one stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GroupInfo {
    /// Entries up to this id have been delivered.
    pub(super) last_delivered: String,
    /// Entries delivered and not yet acknowledged.
    pub(super) pending: Option<u64>,
    /// Entries not yet delivered (Redis 7; absent when Redis cannot tell).
    pub(super) lag: Option<u64>,
}

impl GroupInfo {
    /// Whether the stream may hold entries on this side of the group's
    /// last-delivered id (unknown counts say yes).
    pub(super) fn may_hold(&self, delivered: bool) -> bool {
        let count = if delivered { self.pending } else { self.lag };
        count != Some(0)
    }
}

/// `group`'s entry in an `XINFO GROUPS` reply.
pub(super) fn group_info(reply: &Value, group: &str) -> Option<GroupInfo> {
    let Value::Array(groups) = reply else {
        return None;
    };
    groups.iter().find_map(|g| {
        let fields: Vec<(String, String)> = match g {
            Value::Array(kv) => kv
                .chunks(2)
                .filter(|p| p.len() == 2)
                .map(|p| (text(&p[0]), text(&p[1])))
                .collect(),
            Value::Map(kv) => kv.iter().map(|(k, v)| (text(k), text(v))).collect(),
            _ => return None,
        };
        let field = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        (field("name")? == group).then(|| GroupInfo {
            last_delivered: field("last-delivered-id").unwrap_or_else(|| "0-0".into()),
            pending: field("pending").and_then(|v| v.parse().ok()),
            lag: field("lag").and_then(|v| v.parse().ok()),
        })
    })
}

/// A stream entry id as (milliseconds, sequence), ordered as Redis orders them.
pub(super) fn parse_stream_id(id: &str) -> Option<(u64, u64)> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

pub(super) fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => text(other).parse().unwrap_or(0),
    }
}

pub(super) fn bytes(v: Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b,
        other => text(&other).into_bytes(),
    }
}

pub(super) fn array(operation: &'static str, v: Value) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) => Ok(a),
        Value::Nil => Ok(Vec::new()),
        other => Err(protocol(
            operation,
            format!("expected an array, got {other:?}"),
        )),
    }
}
