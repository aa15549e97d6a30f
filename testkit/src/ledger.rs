//! The ledger of a fault run: an append-only file with three kinds of
//! entries kept apart, written by whoever saw the event happen:
//! - `ack`: the producer got the enqueue's acknowledgement;
//! - `start`: the handler began an attempt;
//! - `done`: the worker's settle call for that attempt answered `done`
//!   (and `refused`: it answered something else for a finished attempt).
//!
//! It is a file, not memory, so that it outlives any process that is
//! killed, and several processes can write one ledger (each line goes out
//! in one append).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// One line of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The producer's enqueue of `job` was acknowledged at `at_ms`.
    Ack { job: String, at_ms: u64 },
    /// A handler began attempt `attempt` of `job`, under `fence`.
    Start {
        job: String,
        attempt: u32,
        fence: u64,
        worker: String,
        at_ms: u64,
    },
    /// The settle of that attempt answered `done`.
    Done {
        job: String,
        attempt: u32,
        fence: u64,
        worker: String,
        at_ms: u64,
    },
    /// The settle of that attempt answered `status` (fenced, gone, ...).
    Refused {
        job: String,
        attempt: u32,
        fence: u64,
        worker: String,
        status: String,
        at_ms: u64,
    },
}

impl Entry {
    /// The job the entry is about.
    pub fn job(&self) -> &str {
        match self {
            Entry::Ack { job, .. }
            | Entry::Start { job, .. }
            | Entry::Done { job, .. }
            | Entry::Refused { job, .. } => job,
        }
    }

    fn line(&self) -> String {
        match self {
            Entry::Ack { job, at_ms } => format!("ack {job} {at_ms}\n"),
            Entry::Start {
                job,
                attempt,
                fence,
                worker,
                at_ms,
            } => format!("start {job} {attempt} {fence} {worker} {at_ms}\n"),
            Entry::Done {
                job,
                attempt,
                fence,
                worker,
                at_ms,
            } => format!("done {job} {attempt} {fence} {worker} {at_ms}\n"),
            Entry::Refused {
                job,
                attempt,
                fence,
                worker,
                status,
                at_ms,
            } => format!("refused {job} {attempt} {fence} {worker} {status} {at_ms}\n"),
        }
    }

    fn parse(line: &str) -> Option<Self> {
        let w: Vec<&str> = line.split_whitespace().collect();
        let n = |i: usize| w.get(i).and_then(|v| v.parse::<u64>().ok());
        let s = |i: usize| w.get(i).map(|v| (*v).to_owned());
        Some(match *w.first()? {
            "ack" => Entry::Ack {
                job: s(1)?,
                at_ms: n(2)?,
            },
            "start" => Entry::Start {
                job: s(1)?,
                attempt: n(2)? as u32,
                fence: n(3)?,
                worker: s(4)?,
                at_ms: n(5)?,
            },
            "done" => Entry::Done {
                job: s(1)?,
                attempt: n(2)? as u32,
                fence: n(3)?,
                worker: s(4)?,
                at_ms: n(5)?,
            },
            "refused" => Entry::Refused {
                job: s(1)?,
                attempt: n(2)? as u32,
                fence: n(3)?,
                worker: s(4)?,
                status: s(5)?,
                at_ms: n(6)?,
            },
            _ => return None,
        })
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// An append-only ledger file. See the module docs.
#[derive(Debug)]
pub struct Ledger {
    path: PathBuf,
    file: Mutex<File>,
    owned: bool,
}

static LEDGERS: AtomicU32 = AtomicU32::new(0);

impl Ledger {
    /// A new ledger in the temporary directory, deleted when dropped.
    pub fn temp() -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!(
            "sluice-ledger-{}-{}-{:08x}",
            std::process::id(),
            LEDGERS.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        ));
        let mut ledger = Self::open(&path)?;
        ledger.owned = true;
        Ok(ledger)
    }

    /// The ledger at `path` (created if missing), for appending; several
    /// processes may append to one.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
            owned: false,
        })
    }

    /// Where the file is (to hand to another process).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append one entry.
    pub fn write(&self, entry: &Entry) {
        let line = entry.line();
        if let Ok(mut file) = self.file.lock() {
            // One write per line: O_APPEND keeps lines of several writers
            // whole.
            if let Err(e) = file.write_all(line.as_bytes()) {
                panic!("ledger {}: {e}", self.path.display());
            }
        }
    }

    /// Record an acknowledged enqueue.
    pub fn ack(&self, job: &str) {
        self.write(&Entry::Ack {
            job: job.to_owned(),
            at_ms: now_ms(),
        });
    }

    /// Record the start of an attempt.
    pub fn start(&self, job: &str, attempt: u32, fence: u64, worker: &str) {
        self.write(&Entry::Start {
            job: job.to_owned(),
            attempt,
            fence,
            worker: worker.to_owned(),
            at_ms: now_ms(),
        });
    }

    /// Record the answer of the settle of an attempt: `done`, or another
    /// status.
    pub fn settled(&self, job: &str, attempt: u32, fence: u64, worker: &str, status: &str) {
        let (job, worker, at_ms) = (job.to_owned(), worker.to_owned(), now_ms());
        self.write(&if status == "done" {
            Entry::Done {
                job,
                attempt,
                fence,
                worker,
                at_ms,
            }
        } else {
            Entry::Refused {
                job,
                attempt,
                fence,
                worker,
                status: status.to_owned(),
                at_ms,
            }
        });
    }

    /// Every entry so far, in the order written.
    pub fn entries(&self) -> Vec<Entry> {
        read_entries(&self.path)
    }
}

/// Every entry of the ledger file at `path`.
pub fn read_entries(path: &Path) -> Vec<Entry> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(Entry::parse)
        .collect()
}

impl Drop for Ledger {
    fn drop(&mut self) {
        if self.owned {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
