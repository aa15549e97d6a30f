//! The ledger of a fault run: an append-only file with three kinds of
//! entries kept apart, written by whoever saw the event happen:
//! - `ack`: the producer got the enqueue's acknowledgement;
//! - `start`: the handler began an attempt;
//! - `done`: the worker's settle call for that attempt answered `done`
//!   (and `settled`: it answered something else, such as retry or fenced).
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

/// One attempt of a job as a worker saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The job.
    pub job: String,
    /// Its attempt number.
    pub attempt: u32,
    /// The fence it ran under.
    pub fence: u64,
    /// The worker (consumer name).
    pub worker: String,
    /// When the line was written, ms since the Unix epoch.
    pub at_ms: u64,
}

impl Attempt {
    fn new(job: &str, attempt: u32, fence: u64, worker: &str) -> Self {
        Self {
            job: job.to_owned(),
            attempt,
            fence,
            worker: worker.to_owned(),
            at_ms: now_ms(),
        }
    }

    /// `job attempt fence worker at_ms`, as a line holds it.
    fn fields(&self) -> String {
        format!(
            "{} {} {} {} {}",
            self.job, self.attempt, self.fence, self.worker, self.at_ms
        )
    }

    fn parse(w: &[&str]) -> Option<Self> {
        Some(Self {
            job: (*w.first()?).to_owned(),
            attempt: w.get(1)?.parse().ok()?,
            fence: w.get(2)?.parse().ok()?,
            worker: (*w.get(3)?).to_owned(),
            at_ms: w.get(4)?.parse().ok()?,
        })
    }
}

/// One line of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The producer's enqueue of `job` was acknowledged at `at_ms`.
    Ack { job: String, at_ms: u64 },
    /// A handler began an attempt.
    Start(Attempt),
    /// The settle of that attempt answered `done`.
    Done(Attempt),
    /// The settle of that attempt answered `status`, not `done`: retry,
    /// dead, snoozed, or refused (fenced, gone).
    NotDone { attempt: Attempt, status: String },
}

impl Entry {
    /// The job the entry is about.
    pub fn job(&self) -> &str {
        match self {
            Entry::Ack { job, .. } => job,
            Entry::Start(a) | Entry::Done(a) | Entry::NotDone { attempt: a, .. } => &a.job,
        }
    }

    /// The attempt the entry is about (none for an acknowledgement).
    pub fn attempt(&self) -> Option<&Attempt> {
        match self {
            Entry::Ack { .. } => None,
            Entry::Start(a) | Entry::Done(a) | Entry::NotDone { attempt: a, .. } => Some(a),
        }
    }

    fn line(&self) -> String {
        match self {
            Entry::Ack { job, at_ms } => format!("ack {job} {at_ms}\n"),
            Entry::Start(a) => format!("start {}\n", a.fields()),
            Entry::Done(a) => format!("done {}\n", a.fields()),
            // The status goes first: the attempt's fields end the line.
            Entry::NotDone { attempt, status } => {
                format!("settled {status} {}\n", attempt.fields())
            }
        }
    }

    fn parse(line: &str) -> Option<Self> {
        let w: Vec<&str> = line.split_whitespace().collect();
        Some(match *w.first()? {
            "ack" => Entry::Ack {
                job: (*w.get(1)?).to_owned(),
                at_ms: w.get(2)?.parse().ok()?,
            },
            "start" => Entry::Start(Attempt::parse(&w[1..])?),
            "done" => Entry::Done(Attempt::parse(&w[1..])?),
            "settled" => Entry::NotDone {
                status: (*w.get(1)?).to_owned(),
                attempt: Attempt::parse(w.get(2..)?)?,
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
        self.write(&Entry::Start(Attempt::new(job, attempt, fence, worker)));
    }

    /// Record the answer of the settle of an attempt: `done`, or another
    /// status.
    pub fn settled(&self, job: &str, attempt: u32, fence: u64, worker: &str, status: &str) {
        let attempt = Attempt::new(job, attempt, fence, worker);
        self.write(&if status == "done" {
            Entry::Done(attempt)
        } else {
            Entry::NotDone {
                attempt,
                status: status.to_owned(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_reads_back_as_written() {
        let a = Attempt {
            job: "j1".into(),
            attempt: 2,
            fence: 7,
            worker: "w-1".into(),
            at_ms: 123,
        };
        for entry in [
            Entry::Ack {
                job: "j1".into(),
                at_ms: 5,
            },
            Entry::Start(a.clone()),
            Entry::Done(a.clone()),
            Entry::NotDone {
                attempt: a,
                status: "fenced".into(),
            },
        ] {
            assert_eq!(Entry::parse(&entry.line()), Some(entry));
        }
        assert_eq!(Entry::parse("start j1 2"), None);
    }
}
