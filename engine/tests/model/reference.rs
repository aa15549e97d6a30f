//! The reference model: one queue in plain Rust, as the docs describe it
//! (docs/state-machine.md, the crate docs, each script's header), with no
//! Redis in it.
//!
//! Time is Redis's clock in the engine, and the model cannot read it. So a
//! moment the model knows is a [`Span`]: it happened somewhere between the
//! start and the end of the call that made it. Whether a job is due or a
//! claim has expired is then yes, no, or maybe ([`Known`]); a maybe is
//! settled by looking at what the engine did, among the outcomes that are
//! all valid (see `runner.rs`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::ops::{After, Delay, OutcomeSpec};

/// The short delay, backoff and idempotency window.
pub const SHORT: Duration = Duration::from_millis(60);
/// The visibility timeout of the checker's queues.
pub const VISIBILITY: Duration = Duration::from_millis(200);
/// How far Redis's clock and this process's may disagree about when
/// something happened inside a call (Redis counts whole milliseconds).
const MARGIN: Duration = Duration::from_millis(5);

/// The dead-letter reason of an operator's cancel (`common.lua`).
pub const CANCELLED: &str = "cancelled by an operator";
/// The start of the reason a reclaim gives (`reclaim.lua`).
pub const WORKER_LOST: &str = "worker lost";

/// When something happened in Redis: during the call that did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: Instant,
    pub end: Instant,
}

impl Span {
    pub fn plus(self, d: Duration) -> Span {
        Span {
            start: self.start + d,
            end: self.end + d,
        }
    }
}

/// A yes/no the model may not be able to give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    Yes,
    No,
    Maybe,
}

/// Whether the moment in `later` came at `by` or more after the moment in
/// `earlier`.
pub fn passed(earlier: Span, by: Duration, later: Span) -> Known {
    let least = later.start.saturating_duration_since(earlier.end);
    let most = later.end.saturating_duration_since(earlier.start);
    if least >= by + MARGIN {
        Known::Yes
    } else if most + MARGIN < by {
        Known::No
    } else {
        Known::Maybe
    }
}

/// A dead letter's reason, as exactly as the model knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    Exact(String),
    StartsWith(String),
}

impl Reason {
    pub fn matches(&self, error: Option<&str>) -> bool {
        match (self, error) {
            (Reason::Exact(r), Some(e)) => r == e,
            (Reason::StartsWith(r), Some(e)) => e.starts_with(r.as_str()),
            _ => false,
        }
    }
}

/// A job's state in the model.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Waiting,
    /// Due at `due` plus the delay (`None`: not within the test).
    Delayed {
        due: Option<Span>,
    },
    /// Held by claim `claim`, last delivered or refreshed during `touched`.
    /// `unconfirmed`: a fault hit the claim, so its call record may have
    /// outlived its reply, and a reclaim may give the attempt back.
    /// `outage`: Redis was unreachable for longer than the visibility
    /// timeout since, so its worker could not refresh it: a reclaim may
    /// take it or leave it (issue 39 §1.2 asks to leave it).
    Active {
        claim: u64,
        worker: u8,
        touched: Span,
        unconfirmed: bool,
        outage: bool,
    },
    Completed,
    Dead {
        reason: Reason,
    },
    /// A dead letter deleted.
    Deleted,
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Waiting => "waiting",
            State::Delayed { .. } => "delayed",
            State::Active { .. } => "active",
            State::Completed => "completed",
            State::Dead { .. } => "dead",
            State::Deleted => "deleted",
        }
    }
}

/// One job of the model.
#[derive(Debug, Clone)]
pub struct ModelJob {
    pub id: String,
    pub priority: u8,
    pub max_attempts: u32,
    /// Runs started and not given back.
    pub attempt: u32,
    pub state: State,
    /// An operator asked to cancel its run.
    pub cancel_requested: bool,
    /// Enqueued ready: a light job at first, its stream entry alone
    /// (common.lua), and its id names that entry, which stays in the
    /// stream, read or not, until a trim drops it (light.lua,
    /// `trim_acked`).
    pub light_entry: bool,
    /// Cancelled while waiting, and its stream entry may not have been
    /// read by a claim yet (it stays in the stream until one reads past
    /// it, cancel.lua).
    pub lingering: bool,
    /// The claim this job was reclaimed from (through the failure path, or
    /// with its attempt given back), and what that reclaim counted, while
    /// nobody has run it since: that claim's late success means the job
    /// ran (issue 39 §1.16).
    pub reclaimed_from: Option<(u64, ReclaimKind)>,
}

/// The queue's counters (`Stats`'s `*_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub enqueued: u64,
    pub completed: u64,
    pub failed: u64,
    pub retried: u64,
    pub dead: u64,
}

/// What a reclaim of one job did, as `Reclaimed` counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReclaimKind {
    Retried,
    Dead,
    Requeued,
}

/// The model of one queue.
#[derive(Debug)]
pub struct Model {
    pub keep_completed: bool,
    /// Every job acknowledged, in that order.
    pub jobs: Vec<ModelJob>,
    by_id: HashMap<String, usize>,
    /// Per priority level, the waiting jobs in stream order, in groups:
    /// the order within a group is not known (a promotion moves several
    /// jobs at once, in an order of due times the model knows only
    /// roughly).
    lines: Vec<Vec<Vec<usize>>>,
    pub paused: bool,
    pub counters: Counters,
    /// Idempotency keys: the job each maps to, and when it was set and
    /// for how long (None: its window outlasts the test).
    keys: HashMap<String, (usize, Option<(Span, Duration)>)>,
}

/// Whether an idempotency key is mapped when an enqueue reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyLookup {
    /// Mapped to this job for certain.
    Mapped(String),
    /// Not mapped for certain.
    Free,
    /// Its window may or may not have passed.
    Either(String),
}

impl Model {
    pub fn new(keep_completed: bool) -> Self {
        Self {
            keep_completed,
            jobs: Vec::new(),
            by_id: HashMap::new(),
            lines: vec![Vec::new(); 10],
            paused: false,
            counters: Counters::default(),
            keys: HashMap::new(),
        }
    }

    pub fn index(&self, id: &str) -> Option<usize> {
        self.by_id.get(id).copied()
    }

    /// Whether `key` is mapped for an enqueue during `at`.
    pub fn key_lookup(&self, key: &str, at: Span) -> KeyLookup {
        match self.keys.get(key) {
            None => KeyLookup::Free,
            Some((job, None)) => KeyLookup::Mapped(self.jobs[*job].id.clone()),
            Some((job, Some((set, window)))) => {
                let id = self.jobs[*job].id.clone();
                match passed(*set, *window, at) {
                    Known::Yes => KeyLookup::Free,
                    Known::No => KeyLookup::Mapped(id),
                    Known::Maybe => KeyLookup::Either(id),
                }
            }
        }
    }

    /// A job acknowledged as new.
    pub fn add(
        &mut self,
        id: &str,
        priority: u8,
        delay: Delay,
        max_attempts: u32,
        key: Option<(String, Option<(Span, Duration)>)>,
        at: Span,
    ) -> Result<(), String> {
        if self.by_id.contains_key(id) {
            return Err(format!("enqueue answered the id of job {id} as a new job"));
        }
        let index = self.jobs.len();
        let state = match delay {
            Delay::None => State::Waiting,
            Delay::Short => State::Delayed {
                due: Some(at.plus(SHORT)),
            },
            Delay::Long => State::Delayed { due: None },
        };
        self.jobs.push(ModelJob {
            id: id.to_owned(),
            priority,
            max_attempts,
            attempt: 0,
            state,
            cancel_requested: false,
            lingering: false,
            light_entry: delay == Delay::None,
            reclaimed_from: None,
        });
        self.by_id.insert(id.to_owned(), index);
        if delay == Delay::None {
            self.lines[usize::from(priority)].push(vec![index]);
        }
        if let Some((key, window)) = key {
            self.keys.insert(key, (index, window));
        }
        self.counters.enqueued += 1;
        Ok(())
    }

    /// The waiting jobs a claim of `count` may take, in strict priority
    /// order: (jobs it must take, jobs it may take, how many of those).
    pub fn claimable(&self, count: usize) -> (Vec<usize>, Vec<usize>, usize) {
        let mut must = Vec::new();
        if self.paused {
            return (must, Vec::new(), 0);
        }
        let mut left = count;
        for line in &self.lines {
            for group in line {
                if left == 0 {
                    return (must, Vec::new(), 0);
                }
                if group.len() <= left {
                    must.extend(group);
                    left -= group.len();
                } else {
                    return (must, group.clone(), left);
                }
            }
        }
        (must, Vec::new(), 0)
    }

    fn unline(&mut self, job: usize) {
        for line in &mut self.lines {
            for group in line.iter_mut() {
                group.retain(|j| *j != job);
            }
            line.retain(|g| !g.is_empty());
        }
    }

    fn enline(&mut self, job: usize) {
        let level = usize::from(self.jobs[job].priority);
        self.lines[level].push(vec![job]);
    }

    /// A claim read every level to its end: no cancelled entry lingers.
    pub fn read_to_the_end(&mut self) {
        for j in &mut self.jobs {
            j.lingering = false;
        }
    }

    /// Job `job` claimed by `worker` under claim `claim`.
    pub fn activate(&mut self, job: usize, claim: u64, worker: u8, at: Span, unconfirmed: bool) {
        self.unline(job);
        let j = &mut self.jobs[job];
        j.reclaimed_from = None;
        j.attempt += 1;
        j.state = State::Active {
            claim,
            worker,
            touched: at,
            unconfirmed,
            outage: false,
        };
    }

    /// Claim `claim` still holds its job.
    pub fn holds(&self, job: usize, claim: u64) -> bool {
        matches!(self.jobs[job].state, State::Active { claim: c, .. } if c == claim)
    }

    fn schedule(&mut self, job: usize, after: Option<Duration>, at: Span) {
        match after {
            Some(d) if d.is_zero() => {
                self.jobs[job].state = State::Waiting;
                self.enline(job);
            }
            Some(d) => {
                self.jobs[job].state = State::Delayed {
                    due: Some(at.plus(d)),
                }
            }
            None => self.jobs[job].state = State::Delayed { due: None },
        }
    }

    fn bury(&mut self, job: usize, reason: Reason) {
        self.jobs[job].reclaimed_from = None;
        self.jobs[job].state = State::Dead { reason };
        self.counters.dead += 1;
    }

    /// A failed attempt: retried after `after` while attempts are left,
    /// else dead with `reason`. Returns whether it was retried.
    fn fail(&mut self, job: usize, reason: Reason, after: Option<Duration>, at: Span) -> bool {
        self.counters.failed += 1;
        let j = &self.jobs[job];
        if j.attempt < j.max_attempts {
            self.counters.retried += 1;
            self.schedule(job, after, at);
            true
        } else {
            self.bury(job, reason);
            false
        }
    }

    /// The current owner's outcome: what settle must answer, applied.
    pub fn settle(&mut self, job: usize, outcome: &OutcomeSpec, at: Span) -> &'static str {
        let requested = std::mem::take(&mut self.jobs[job].cancel_requested);
        let done = matches!(outcome, OutcomeSpec::Done | OutcomeSpec::DoneWith);
        if done {
            self.counters.completed += 1;
            self.jobs[job].state = State::Completed;
            return "done";
        }
        if requested {
            // `cancelled_outcome`: anything but a success buries the job,
            // keeping the handler's reason after the cancel's.
            self.counters.failed += 1;
            let reason = match outcome {
                OutcomeSpec::Retry(_) => format!("{CANCELLED}: {}", retry_reason()),
                OutcomeSpec::Bury => format!("{CANCELLED}: {}", bury_reason()),
                _ => CANCELLED.to_owned(),
            };
            self.bury(job, Reason::Exact(reason));
            return "dead";
        }
        match outcome {
            OutcomeSpec::Done | OutcomeSpec::DoneWith => unreachable!("handled above"),
            OutcomeSpec::Retry(after) => {
                let after = match after {
                    None => Some(SHORT),
                    Some(a) => after_duration(*a),
                };
                let reason = Reason::Exact(retry_reason().to_owned());
                if self.fail(job, reason, after, at) {
                    "retry"
                } else {
                    "dead"
                }
            }
            OutcomeSpec::Snooze(after) => {
                self.jobs[job].attempt -= 1;
                self.schedule(job, after_duration(*after), at);
                "snoozed"
            }
            OutcomeSpec::Bury => {
                self.counters.failed += 1;
                self.bury(job, Reason::Exact(bury_reason().to_owned()));
                "dead"
            }
        }
    }

    /// The late success of the claim job `job` was reclaimed from, nobody
    /// having run it since (issue 39 §1.16): it ran, so it completed, and
    /// what the reclaim counted (a failed attempt, and a retry or a dead
    /// letter) is taken back.
    pub fn late_success(&mut self, job: usize) {
        self.unline(job);
        match self.jobs[job].reclaimed_from.take().map(|(_, kind)| kind) {
            Some(ReclaimKind::Retried) => {
                self.counters.failed -= 1;
                self.counters.retried -= 1;
            }
            Some(ReclaimKind::Dead) => {
                self.counters.failed -= 1;
                self.counters.dead -= 1;
            }
            Some(ReclaimKind::Requeued) | None => {}
        }
        self.jobs[job].state = State::Completed;
        self.counters.completed += 1;
    }

    /// Redis was unreachable longer than the visibility timeout.
    pub fn outage(&mut self) {
        for j in &mut self.jobs {
            if let State::Active { outage, .. } = &mut j.state {
                *outage = true;
            }
        }
    }

    /// Claim `claim` refreshed during `at`.
    pub fn refresh(&mut self, claim: u64, at: Span) {
        for j in &mut self.jobs {
            if let State::Active {
                claim: c,
                touched,
                outage,
                ..
            } = &mut j.state
                && *c == claim
            {
                *touched = at;
                *outage = false;
            }
        }
    }

    /// Delayed jobs a promotion during `at` must move, and those it may.
    pub fn due(&self, at: Span) -> (Vec<usize>, Vec<usize>) {
        let (mut must, mut may) = (Vec::new(), Vec::new());
        for (i, j) in self.jobs.iter().enumerate() {
            if let State::Delayed { due: Some(due) } = j.state {
                match passed(due, Duration::ZERO, at) {
                    Known::Yes => must.push(i),
                    Known::Maybe => may.push(i),
                    Known::No => {}
                }
            }
        }
        (must, may)
    }

    /// Delayed jobs promoted by one call.
    pub fn promote(&mut self, jobs: &[usize]) {
        self.enline_group(jobs);
    }

    /// Dead letters re-driven by one call.
    pub fn redrive_group(&mut self, jobs: &[usize]) {
        for j in jobs {
            self.jobs[*j].attempt = 0;
            self.jobs[*j].reclaimed_from = None;
        }
        self.enline_group(jobs);
    }

    /// Jobs just added by calls made at once: their order in line is not
    /// known.
    pub fn regroup(&mut self, jobs: &[usize]) {
        for j in jobs {
            self.unline(*j);
        }
        let waiting: Vec<usize> = jobs
            .iter()
            .copied()
            .filter(|j| self.jobs[*j].state == State::Waiting)
            .collect();
        self.enline_group(&waiting);
    }

    /// Jobs that went back in line in one call, in an order the model does
    /// not know: one group per level.
    fn enline_group(&mut self, jobs: &[usize]) {
        for level in 0..10u8 {
            let group: Vec<usize> = jobs
                .iter()
                .copied()
                .filter(|j| self.jobs[*j].priority == level)
                .collect();
            for j in &group {
                self.jobs[*j].state = State::Waiting;
            }
            if !group.is_empty() {
                self.lines[usize::from(level)].push(group);
            }
        }
    }

    /// Active jobs a reclaim during `at` must take, and those it may.
    pub fn expired(&self, at: Span) -> (Vec<usize>, Vec<usize>) {
        let (mut must, mut may) = (Vec::new(), Vec::new());
        for (i, j) in self.jobs.iter().enumerate() {
            if let State::Active {
                touched, outage, ..
            } = j.state
            {
                match passed(touched, VISIBILITY, at) {
                    Known::Yes if !outage => must.push(i),
                    Known::Yes => may.push(i),
                    Known::Maybe => may.push(i),
                    Known::No => {}
                }
            }
        }
        (must, may)
    }

    /// Job `job` reclaimed during `at`; `given_back`: the engine put it
    /// back with its attempt given back (valid only for an unconfirmed
    /// claim, which the caller checks).
    pub fn reclaim(&mut self, job: usize, given_back: bool, at: Span) -> ReclaimKind {
        if std::mem::take(&mut self.jobs[job].cancel_requested) {
            self.bury(job, Reason::Exact(CANCELLED.to_owned()));
            return ReclaimKind::Dead;
        }
        let claim = match self.jobs[job].state {
            State::Active { claim, .. } => Some(claim),
            _ => None,
        };
        if given_back {
            self.jobs[job].attempt -= 1;
            self.jobs[job].state = State::Waiting;
            self.enline(job);
            self.jobs[job].reclaimed_from = claim.map(|c| (c, ReclaimKind::Requeued));
            return ReclaimKind::Requeued;
        }
        let reason = Reason::StartsWith(WORKER_LOST.to_owned());
        let retried = self.fail(job, reason, Some(SHORT), at);
        let kind = if retried {
            ReclaimKind::Retried
        } else {
            ReclaimKind::Dead
        };
        self.jobs[job].reclaimed_from = claim.map(|c| (c, kind));
        kind
    }

    /// What an operator's cancel must answer, applied. Several answers
    /// may be valid; the first is applied.
    pub fn cancel(&mut self, job: Option<usize>) -> Vec<sluice_engine::Cancelled> {
        use sluice_engine::{Cancelled, JobState};
        let Some(job) = job else {
            return vec![Cancelled::Missing];
        };
        match self.jobs[job].state.clone() {
            State::Waiting => {
                self.unline(job);
                self.jobs[job].lingering = true;
                self.bury(job, Reason::Exact(CANCELLED.to_owned()));
                vec![Cancelled::Cancelled]
            }
            State::Delayed { .. } => {
                self.bury(job, Reason::Exact(CANCELLED.to_owned()));
                vec![Cancelled::Cancelled]
            }
            State::Active { .. } => {
                self.jobs[job].cancel_requested = true;
                vec![Cancelled::Requested]
            }
            State::Dead { reason } if reason == Reason::Exact(CANCELLED.to_owned()) => {
                vec![Cancelled::Cancelled]
            }
            State::Dead { .. } => vec![Cancelled::Finished(JobState::Dead)],
            State::Completed if self.keep_completed => {
                vec![Cancelled::Finished(JobState::Completed)]
            }
            // Not kept: the job is gone, or still known as completed.
            State::Completed => vec![Cancelled::Missing, Cancelled::Finished(JobState::Completed)],
            State::Deleted => vec![Cancelled::Missing],
        }
    }

    /// Re-drive: whether `job` was a dead letter (now waiting again).
    pub fn redrive(&mut self, job: Option<usize>) -> bool {
        let Some(job) = job else { return false };
        if !matches!(self.jobs[job].state, State::Dead { .. }) {
            return false;
        }
        self.jobs[job].attempt = 0;
        self.jobs[job].reclaimed_from = None;
        self.jobs[job].state = State::Waiting;
        self.enline(job);
        true
    }

    /// Every dead letter, oldest acknowledged first.
    pub fn dead_letters(&self) -> Vec<usize> {
        (0..self.jobs.len())
            .filter(|&j| matches!(self.jobs[j].state, State::Dead { .. }))
            .collect()
    }

    /// Delete a dead letter: whether it was one.
    pub fn delete_dead(&mut self, job: Option<usize>) -> bool {
        let Some(job) = job else { return false };
        if !matches!(self.jobs[job].state, State::Dead { .. }) {
            return false;
        }
        self.jobs[job].state = State::Deleted;
        self.jobs[job].reclaimed_from = None;
        // Its idempotency key no longer names it (delete_dead.lua).
        self.keys.retain(|_, (mapped, _)| *mapped != job);
        true
    }

    /// How many jobs are in each state: (waiting, active, delayed, dead).
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        let mut c = (0, 0, 0, 0);
        for j in &self.jobs {
            match j.state {
                State::Waiting => c.0 += 1,
                State::Active { .. } => c.1 += 1,
                State::Delayed { .. } => c.2 += 1,
                State::Dead { .. } => c.3 += 1,
                _ => {}
            }
        }
        c
    }

    /// Active jobs per worker.
    pub fn active_by_worker(&self) -> HashMap<u8, u64> {
        let mut out = HashMap::new();
        for j in &self.jobs {
            if let State::Active { worker, .. } = j.state {
                *out.entry(worker).or_default() += 1;
            }
        }
        out
    }
}

/// The error a `Retry` outcome gives.
pub fn retry_reason() -> &'static str {
    "boom"
}

/// The reason a `Bury` outcome gives.
pub fn bury_reason() -> &'static str {
    "poison"
}

/// The delay an outcome's `After` means (`None`: not within the test).
pub fn after_duration(after: After) -> Option<Duration> {
    match after {
        After::Zero => Some(Duration::ZERO),
        After::Short => Some(SHORT),
        After::Long | After::Max => None,
    }
}
