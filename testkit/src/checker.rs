//! The checker of one fault run: the ledger against what Redis holds.
//!
//! Categories (a job can be in several):
//! - `lost`: acknowledged, never completed;
//! - `duplicated`: completed more than once;
//! - `unexpected`: completed, never acknowledged;
//! - `stuck`: acknowledged and, after the drain window, neither completed
//!   nor dead in Redis (a non-terminal state, or no state at all);
//! - `dead_without_run`: dead-lettered without a single start;
//! - `fenced_accepted`: an outcome accepted under a fence older than one a
//!   later attempt had already started with.
//!
//! It also checks the engine's counters against the ledger and Redis:
//! completed (counter) = completions in the ledger; dead letters (count) =
//! jobs in state dead; active (pending entries) = jobs in state active.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use sluice_engine::{JobState, Queue};

use crate::ledger::Entry;

/// What a run of one scenario came to.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// The scenario's name.
    pub scenario: String,
    /// Enqueues acknowledged.
    pub acknowledged: usize,
    /// Distinct jobs completed.
    pub completed: usize,
    /// Faults injected.
    pub faults: usize,
    /// See the module docs for each category; job ids.
    pub lost: BTreeSet<String>,
    /// Jobs completed more than once.
    pub duplicated: BTreeSet<String>,
    /// Completed, never acknowledged.
    pub unexpected: BTreeSet<String>,
    /// Neither completed nor dead after the drain window, with the state
    /// Redis gave (`none`: no state at all).
    pub stuck: BTreeMap<String, String>,
    /// Dead without a start.
    pub dead_without_run: BTreeSet<String>,
    /// An outcome accepted under a fence that had moved on.
    pub fenced_accepted: BTreeSet<String>,
    /// Outcomes refused (fenced or gone), counted.
    pub refused: usize,
    /// Jobs Redis holds as completed whose completion no ledger line shows:
    /// the worker died after Redis recorded the outcome and before it could
    /// write the line. They ran (only a worker whose handler returned can
    /// complete a job), so they are not lost; they are counted apart.
    pub completed_unobserved: usize,
    /// Counters that disagree with the ledger or with Redis.
    pub counter_mismatches: Vec<String>,
}

impl Summary {
    /// The one summary line.
    pub fn line(&self) -> String {
        format!(
            "scenario={} jobs={} completed={} completed_unobserved={} faults={} lost={} duplicated={} unexpected={} stuck={} dead_without_run={} fenced_accepted={} refused={} counters={}",
            self.scenario,
            self.acknowledged,
            self.completed,
            self.completed_unobserved,
            self.faults,
            self.lost.len(),
            self.duplicated.len(),
            self.unexpected.len(),
            self.stuck.len(),
            self.dead_without_run.len(),
            self.fenced_accepted.len(),
            self.refused,
            if self.counter_mismatches.is_empty() {
                "ok".to_owned()
            } else {
                self.counter_mismatches.join(";")
            }
        )
    }

    /// What is wrong with the run, if anything: any job lost, stuck, dead
    /// without a run, fenced-but-accepted or unexpected; counters that
    /// disagree; or more duplicates than `duplicate_bound` (the faults
    /// times the jobs that can be in flight at one fault).
    pub fn failures(&self, duplicate_bound: usize) -> Vec<String> {
        let mut out = Vec::new();
        if !self.stuck.is_empty() {
            let some: Vec<_> = self.stuck.iter().take(5).collect();
            out.push(format!("stuck {}: {some:?}", self.stuck.len()));
        }
        for (what, ids) in [
            ("lost", &self.lost),
            ("dead without a run", &self.dead_without_run),
            ("fenced outcome accepted", &self.fenced_accepted),
            ("unexpected", &self.unexpected),
        ] {
            if !ids.is_empty() {
                let some: Vec<_> = ids.iter().take(5).collect();
                out.push(format!("{what} {}: {some:?}", ids.len()));
            }
        }
        if self.duplicated.len() > duplicate_bound {
            out.push(format!(
                "duplicated {} > bound {duplicate_bound}",
                self.duplicated.len()
            ));
        }
        out.extend(self.counter_mismatches.iter().cloned());
        out
    }

    /// Print the line, then panic with the failures, if any.
    pub fn assert_ok(&self, duplicate_bound: usize) {
        println!("{}", self.line());
        let failures = self.failures(duplicate_bound);
        assert!(
            failures.is_empty(),
            "{}: {}",
            self.scenario,
            failures.join("; ")
        );
    }
}

/// Per job, what the ledger says.
#[derive(Debug, Default)]
struct JobLedger {
    acked: bool,
    starts: usize,
    completions: usize,
    /// Highest fence a start was seen with, so far in ledger order.
    highest_started_fence: u64,
    fenced_accepted: bool,
}

/// Check one run: `entries` from its ledger, `queues` the queues (each with
/// all its partitions) it ran on, `faults` how many faults were injected.
pub async fn check(scenario: &str, entries: &[Entry], queues: &[Queue], faults: usize) -> Summary {
    let mut jobs: HashMap<&str, JobLedger> = HashMap::new();
    let mut summary = Summary {
        scenario: scenario.to_owned(),
        faults,
        ..Summary::default()
    };
    let mut completions_total = 0u64;
    for entry in entries {
        let j = jobs.entry(entry.job()).or_default();
        match entry {
            Entry::Ack { .. } => j.acked = true,
            Entry::Start(a) => {
                j.starts += 1;
                j.highest_started_fence = j.highest_started_fence.max(a.fence);
            }
            Entry::Done(a) => {
                j.completions += 1;
                completions_total += 1;
                if a.fence < j.highest_started_fence {
                    j.fenced_accepted = true;
                }
            }
            Entry::NotDone { status, .. } => {
                if status == "fenced" || status == "gone" {
                    summary.refused += 1;
                }
            }
        }
    }
    let mut dead_in_state = 0u64;
    let mut active_in_state = 0u64;
    for (id, j) in &jobs {
        let id = (*id).to_owned();
        if j.acked {
            summary.acknowledged += 1;
        }
        if j.completions > 0 {
            summary.completed += 1;
        }
        if j.completions > 1 {
            summary.duplicated.insert(id.clone());
        }
        if j.completions > 0 && !j.acked {
            summary.unexpected.insert(id.clone());
        }
        if j.fenced_accepted {
            summary.fenced_accepted.insert(id.clone());
        }
        let state = state_of(queues, &id).await;
        if j.acked && j.completions == 0 {
            if state == Some(JobState::Completed) && j.starts > 0 {
                summary.completed_unobserved += 1;
            } else {
                summary.lost.insert(id.clone());
            }
        }
        match state {
            Some(JobState::Dead) => {
                dead_in_state += 1;
                if j.starts == 0 {
                    summary.dead_without_run.insert(id.clone());
                }
            }
            Some(JobState::Active) => active_in_state += 1,
            _ => {}
        }
        let terminal = match state {
            Some(JobState::Dead | JobState::Completed) => true,
            // A completed job whose hash is already gone.
            None => j.completions > 0,
            _ => false,
        };
        if state == Some(JobState::Completed) && j.completions == 0 && j.starts > 0 && !j.acked {
            summary.unexpected.insert(id.clone());
        }
        if j.acked && !terminal {
            let name = state.map_or("none", JobState::as_str);
            summary.stuck.insert(id, name.to_owned());
        }
    }
    let mut completed_counter = 0u64;
    let mut dead_letters = 0u64;
    let mut pending = 0u64;
    for q in queues {
        match q.stats().await {
            Ok(s) => {
                completed_counter += s.completed_total;
                dead_letters += s.dead;
                pending += s.active;
            }
            Err(e) => summary
                .counter_mismatches
                .push(format!("stats of {}: {e}", q.name())),
        }
    }
    let completions_seen = completions_total + summary.completed_unobserved as u64;
    if completed_counter != completions_seen {
        summary.counter_mismatches.push(format!(
            "completed counter {completed_counter} != completions in the ledger and unobserved {completions_seen}"
        ));
    }
    if dead_letters != dead_in_state {
        summary.counter_mismatches.push(format!(
            "dead letters {dead_letters} != jobs in state dead {dead_in_state}"
        ));
    }
    if pending != active_in_state {
        summary.counter_mismatches.push(format!(
            "pending entries {pending} != jobs in state active {active_in_state}"
        ));
    }
    summary
}

/// The job's state on whichever queue holds it.
async fn state_of(queues: &[Queue], id: &str) -> Option<JobState> {
    for q in queues {
        if let Ok(Some(info)) = q.job(id).await {
            return Some(info.state);
        }
    }
    None
}
