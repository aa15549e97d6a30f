//! The audit sink's spill file: where audit events go while Redis cannot
//! take them, so the audit log stays complete through an outage.
//!
//! One JSON line per event (`{"id": ..., "event": {...}}`), appended in
//! order; bounded by `max_bytes` (past it, events are dropped, counted in
//! `sluice_audit_dropped_total{reason="spill_full"}` and logged as errors).
//! Once Redis answers again, the file is replayed in order, each event
//! enqueued under an idempotency key made from its line's id, so a replay
//! cut short and started again adds nothing twice; then the file is
//! removed. A file left by a process that stopped is replayed by the next
//! one using the same path.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_engine::{JobOptions, NewJob, Queue};

use crate::audit::AuditEvent;

/// How long a replayed event's idempotency key lasts: longer than any
/// replay takes.
const REPLAY_WINDOW: Duration = Duration::from_secs(3600);

/// Events enqueued per call when replaying.
const REPLAY_BATCH: usize = 500;

/// Where and how much to spill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpillConfig {
    /// The file (one per process).
    pub path: PathBuf,
    /// Its largest size, bytes.
    pub max_bytes: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Line {
    id: String,
    event: AuditEvent,
}

/// The spill file of one sink.
#[derive(Debug)]
pub(crate) struct Spill {
    config: SpillConfig,
    /// Bytes in the file (0: none).
    bytes: u64,
}

impl Spill {
    /// The spill at `config.path`, with what a previous process left there.
    pub(crate) fn open(config: SpillConfig) -> Self {
        let bytes = std::fs::metadata(&config.path).map_or(0, |m| m.len());
        if bytes > 0 {
            tracing::warn!(path = %config.path.display(), bytes, "audit events spilled earlier are waiting to be replayed");
        }
        Self { config, bytes }
    }

    /// Whether events wait in the file (new ones must follow them there).
    pub(crate) fn is_empty(&self) -> bool {
        self.bytes == 0
    }

    /// Append `events` in order; those past the size bound are dropped and
    /// counted. Returns how many were dropped.
    pub(crate) fn append(&mut self, events: Vec<AuditEvent>) -> u64 {
        let mut file = match self.file() {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(path = %self.config.path.display(), error = %e, events = events.len(), "cannot write the audit spill file: events dropped");
                return self.dropped(events.len() as u64);
            }
        };
        let mut dropped = 0;
        let mut buf = Vec::new();
        for event in events {
            let line = Line {
                id: uuid::Uuid::now_v7().simple().to_string(),
                event,
            };
            let Ok(mut json) = serde_json::to_vec(&line) else {
                dropped += 1;
                continue;
            };
            json.push(b'\n');
            if self.bytes + (buf.len() + json.len()) as u64 > self.config.max_bytes {
                dropped += 1;
                continue;
            }
            buf.extend_from_slice(&json);
        }
        match file.write_all(&buf).and_then(|()| file.flush()) {
            Ok(()) => self.bytes += buf.len() as u64,
            Err(e) => {
                tracing::error!(path = %self.config.path.display(), error = %e, "cannot write the audit spill file: events dropped");
                let lines = buf.iter().filter(|b| **b == b'\n').count() as u64;
                dropped += lines;
            }
        }
        if dropped > 0 {
            tracing::error!(path = %self.config.path.display(), dropped, max_bytes = self.config.max_bytes, "audit spill file full: events dropped");
        }
        self.dropped(dropped)
    }

    fn dropped(&self, n: u64) -> u64 {
        if n > 0 {
            metrics::counter!("sluice_audit_dropped_total", "reason" => "spill_full").increment(n);
        }
        n
    }

    fn file(&self) -> std::io::Result<File> {
        if let Some(dir) = self.config.path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.config.path)
    }

    /// Enqueue what the file holds, in order, then remove it. `Err` when
    /// Redis refused a batch: the file stays, and the next replay starts
    /// over (the events already enqueued are not added twice).
    pub(crate) async fn replay(&mut self, queue: &Queue) -> sluice_engine::Result<u64> {
        if self.is_empty() {
            return Ok(0);
        }
        let file = match File::open(&self.config.path) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(path = %self.config.path.display(), error = %e, "cannot read the audit spill file");
                return Ok(0);
            }
        };
        let mut replayed = 0;
        let mut batch = Vec::with_capacity(REPLAY_BATCH);
        for line in BufReader::new(file).lines() {
            let Ok(line) = line else { break };
            // A line cut by a crash mid-write is skipped.
            let Ok(Line { id, event }) = serde_json::from_str::<Line>(&line) else {
                continue;
            };
            let options = JobOptions::new()
                .idempotency_key(format!("spill:{id}"))
                .idempotency_window(REPLAY_WINDOW);
            if let Ok(job) = NewJob::new(&event, options) {
                batch.push(job);
            }
            if batch.len() == REPLAY_BATCH {
                replayed += batch.len() as u64;
                queue.enqueue_many(std::mem::take(&mut batch)).await?;
            }
        }
        if !batch.is_empty() {
            replayed += batch.len() as u64;
            queue.enqueue_many(batch).await?;
        }
        if let Err(e) = std::fs::remove_file(&self.config.path) {
            tracing::error!(path = %self.config.path.display(), error = %e, "cannot remove the replayed audit spill file");
        }
        self.bytes = 0;
        tracing::info!(
            events = replayed,
            "audit events spilled during the outage replayed"
        );
        Ok(replayed)
    }
}
