//! Runs a case on the engine and the model side by side: each step on
//! both, then every invariant; at the end the queue is drained and the
//! keys it leaves are checked.
//!
//! A step whose outcome the model cannot tell (a job at the edge of its
//! due time or visibility timeout, an idempotency window at its end, a
//! claim a fault may have left unconfirmed) looks at what the engine did,
//! and accepts it only when it is one of the valid outcomes; the model
//! then follows it, and every invariant is checked against that.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant};

use sluice_engine::{Enqueued, Job, JobInfo, JobOptions, JobState, NewJob, Outcome, Settled};
use sluice_testkit::{Commands, Fault, Rule};

use super::ops::*;
use super::reference::*;
use super::world::{Handles, RESPONSE_TIMEOUT, World};

/// Longer than any test: a delay or window that never passes.
const HOUR: Duration = Duration::from_secs(3600);
/// An id no job has.
const UNKNOWN_ID: &str = "0123456789abcdef-0-1-0";

/// The defects of issue 39 §1 (and the checker's own finding, `cx`) that
/// the checker can reach, each a switch for the steps that reach it. They
/// were off while the defects were open; all are fixed now, so all are on
/// by default. `SLUICE_MODEL_DEFECTS` with a comma list of the numbers
/// (`1.1,1.6,1.9,1.11,1.14,1.16,cx`) turns on only those, `none` none:
/// off, a step that would reach one is skipped (or, for an option, given
/// a valid neighbour).
#[derive(Debug, Clone, Copy, Default)]
pub struct Defects {
    /// §1.1: cancel a job enqueued ready (light) whose hash is gone:
    /// completed (not kept), or a dead letter deleted since.
    pub cancel_finished: bool,
    /// §1.6: a stale claim's outcome for a job whose cancel is requested.
    pub stale_settle_cancel: bool,
    /// §1.9: a sub-millisecond idempotency window.
    pub sub_ms_window: bool,
    /// §1.11: `Duration::MAX` as a snooze or retry delay.
    pub huge_delay: bool,
    /// §1.14: import into the queue that holds the exported jobs.
    pub import_duplicates: bool,
    /// Found by this checker: a job cancelled while waiting keeps its
    /// stream entry until a claim reads it, and meanwhile (for a light
    /// job) a lookup finds it waiting once its dead letter is deleted, an export lists
    /// it twice, and once re-driven and cancelled again it is counted
    /// waiting. Off: the checks allow the first two, and such a letter is
    /// not re-driven while its entry may be unread.
    pub lingering_cancel: bool,
    /// §1.16: the late success of a silent owner whose job was reclaimed
    /// and not run since. On, the model expects the job completed (from
    /// the dead letters for certain; from a pending retry, completed or
    /// refused); off, such an outcome is not sent.
    pub late_success: bool,
}

impl Defects {
    pub fn all() -> Self {
        Self {
            cancel_finished: true,
            stale_settle_cancel: true,
            sub_ms_window: true,
            huge_delay: true,
            import_duplicates: true,
            lingering_cancel: true,
            late_success: true,
        }
    }

    pub fn from_env() -> Self {
        // Every defect these switches were made for is fixed on main: all
        // are on unless a list names fewer ("none" for none).
        let Ok(list) = std::env::var("SLUICE_MODEL_DEFECTS") else {
            return Self::all();
        };
        if list.trim() == "all" {
            return Self::all();
        }
        let on: HashSet<&str> = list.split(',').map(str::trim).collect();
        Self {
            cancel_finished: on.contains("1.1"),
            stale_settle_cancel: on.contains("1.6"),
            sub_ms_window: on.contains("1.9"),
            huge_delay: on.contains("1.11"),
            import_duplicates: on.contains("1.14"),
            lingering_cancel: on.contains("cx"),
            late_success: on.contains("1.16"),
        }
    }
}

/// What a run did, summed over its cases.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub cases: u64,
    pub steps: u64,
    /// Steps skipped: nothing to act on, or a known defect turned off.
    pub skipped: u64,
    /// Faults that fired.
    pub faults: u64,
    /// Job lookups compared with the model.
    pub lookups: u64,
    /// Jobs acknowledged.
    pub jobs: u64,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.cases += other.cases;
        self.steps += other.steps;
        self.skipped += other.skipped;
        self.faults += other.faults;
        self.lookups += other.lookups;
        self.jobs += other.jobs;
    }
}

/// A claimed job as its worker holds it.
#[derive(Debug, Clone)]
struct Claimed {
    claim: u64,
    index: usize,
    job: Job,
}

fn consumer(worker: u8) -> String {
    format!("w{worker}")
}

/// Run `call` under `fault`: (its result, when it ran, whether it may
/// have been sent more than once: the fault fired, or the call took
/// longer than the response timeout anyway, as on a loaded machine).
async fn faulted<T>(
    world: &World,
    fault: Option<FaultSpec>,
    call: impl Future<Output = T>,
) -> (T, Span, bool) {
    let before = world.proxy.fired_count();
    match fault {
        None => {}
        Some(FaultSpec::DropReply) => world
            .proxy
            .inject(Rule::new(Fault::DropReply, Commands::Any).limit(1)),
        Some(FaultSpec::LateReply) => world.proxy.inject(
            Rule::new(
                Fault::DelayReply(RESPONSE_TIMEOUT + Duration::from_millis(100)),
                Commands::Any,
            )
            .limit(1),
        ),
        Some(FaultSpec::Outage) => world
            .proxy
            .partition(VISIBILITY + Duration::from_millis(100)),
    }
    let start = Instant::now();
    let out = call.await;
    let end = Instant::now();
    world.proxy.clear();
    world.proxy.heal();
    let fired = fault == Some(FaultSpec::Outage) || world.proxy.fired_count() > before;
    if fired {
        world
            .faults
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let slow = end - start >= RESPONSE_TIMEOUT;
    (out, Span { start, end }, fired || slow)
}

/// One case on one queue.
pub struct CaseRun<'w> {
    world: &'w World,
    defects: Defects,
    pub model: Model,
    h: Handles,
    keys: RawKeys,
    held: Vec<Vec<Claimed>>,
    settled: Vec<Claimed>,
    next_claim: u64,
    pub tally: Tally,
}

/// Run `case`: Ok with what it did, or the first violation.
pub async fn run_case(world: &World, case: &Case, defects: Defects) -> Result<Tally, String> {
    let faults_before = world.faults.load(std::sync::atomic::Ordering::Relaxed);
    let (name, h) = world.new_queue(case.keep_completed).await;
    let keys = RawKeys::new(&world.prefix, &name);
    let mut run = CaseRun {
        world,
        defects,
        model: Model::new(case.keep_completed),
        h,
        keys,
        held: vec![Vec::new(); usize::from(WORKERS)],
        settled: Vec::new(),
        next_claim: 0,
        tally: Tally {
            cases: 1,
            ..Tally::default()
        },
    };
    if std::env::var_os("SLUICE_MODEL_TRACE").is_some() {
        eprintln!("case on {name}, keep_completed: {}", case.keep_completed);
    }
    for (n, step) in case.steps.iter().enumerate() {
        run.step(step)
            .await
            .map_err(|e| format!("step {n} {step:?}: {e}"))?;
        run.check()
            .await
            .map_err(|e| format!("after step {n} {step:?}: {e}"))?;
    }
    run.drain().await.map_err(|e| format!("drain: {e}"))?;
    run.tally.jobs = run.model.jobs.len() as u64;
    run.tally.faults = world.faults.load(std::sync::atomic::Ordering::Relaxed) - faults_before;
    Ok(run.tally)
}

impl CaseRun<'_> {
    async fn step(&mut self, step: &Step) -> Result<(), String> {
        self.tally.steps += 1;
        let fault = step.fault;
        let ran = match &step.op {
            Op::Enqueue { producer, job } => {
                self.enqueue(*producer, std::slice::from_ref(job), false, fault)
                    .await?
            }
            Op::EnqueueBatch { producer, jobs } => {
                self.enqueue(*producer, jobs, true, fault).await?
            }
            Op::EnqueueTogether { producer, jobs } => {
                self.enqueue_together(*producer, jobs, fault).await?
            }
            Op::Claim { worker, count } => self.claim(*worker, usize::from(*count), fault).await?,
            Op::Settle {
                worker,
                pick,
                outcome,
            } => {
                self.settle(*worker, *pick, std::slice::from_ref(outcome), fault)
                    .await?
            }
            Op::SettleMany { worker, outcomes } => self.settle(*worker, 0, outcomes, fault).await?,
            Op::SettleAgain { pick, outcome } => self.settle_again(*pick, outcome, fault).await?,
            Op::KeepAlive { worker } => self.keep_alive(*worker, fault).await?,
            Op::Sleep => {
                tokio::time::sleep(VISIBILITY + Duration::from_millis(50)).await;
                true
            }
            Op::Promote => self.promote(fault).await?,
            Op::Reclaim { worker } => self.reclaim(*worker, fault).await?,
            Op::Cancel(target) => self.cancel(self.resolve(*target), fault).await?,
            Op::Redrive(target) => self.redrive(self.resolve(*target), fault).await?,
            Op::RedriveAll => self.redrive_all(fault).await?,
            Op::DeleteDead(target) => self.delete_dead(self.resolve(*target), fault).await?,
            Op::PurgeDead => self.purge_dead(fault).await?,
            Op::Pause => self.pause(true, fault).await?,
            Op::Resume => self.pause(false, fault).await?,
            Op::Export => self.export(false, fault).await?,
            Op::ExportImport => self.export(true, fault).await?,
        };
        if !ran {
            self.tally.skipped += 1;
        }
        if std::env::var_os("SLUICE_MODEL_TRACE").is_some() {
            eprintln!("{} {step:?}", if ran { "ran" } else { "skipped" });
        }
        Ok(())
    }

    fn resolve(&self, target: Target) -> Option<usize> {
        let Target::In(pick, n) = target else {
            return None;
        };
        let wanted = |state: &State| match pick {
            Pick::Any => true,
            Pick::Waiting => *state == State::Waiting,
            Pick::Delayed => matches!(state, State::Delayed { .. }),
            Pick::Active => matches!(state, State::Active { .. }),
            Pick::Completed => *state == State::Completed,
            Pick::Dead => matches!(state, State::Dead { .. }),
        };
        let mut among: Vec<usize> = (0..self.model.jobs.len())
            .filter(|&j| wanted(&self.model.jobs[j].state))
            .collect();
        if among.is_empty() {
            among = (0..self.model.jobs.len()).collect();
        }
        (!among.is_empty()).then(|| among[usize::from(n) % among.len()])
    }

    fn id_of(&self, job: Option<usize>) -> String {
        job.map_or_else(|| UNKNOWN_ID.to_owned(), |j| self.model.jobs[j].id.clone())
    }

    /// Tell the model of an outage; `fired` as it is.
    fn fired(&mut self, fired: bool, fault: Option<FaultSpec>) -> bool {
        if fault == Some(FaultSpec::Outage) {
            self.model.outage();
        }
        fired
    }

    // ---- producers ----

    fn gate_spec(&self, spec: &JobSpec) -> JobSpec {
        let mut spec = spec.clone();
        if let Some((key, Window::SubMs)) = spec.idempotency
            && !self.defects.sub_ms_window
        {
            spec.idempotency = Some((key, Window::Short));
        }
        spec
    }

    fn options(spec: &JobSpec) -> JobOptions {
        let mut o = JobOptions::new()
            .priority(spec.priority)
            .max_attempts(spec.max_attempts);
        match spec.delay {
            Delay::None => {}
            Delay::Short => o = o.delay(SHORT),
            Delay::Long => o = o.delay(HOUR),
        }
        if let Some((key, window)) = spec.idempotency {
            o = o
                .idempotency_key(format!("k{key}"))
                .idempotency_window(match window {
                    Window::Short => SHORT,
                    Window::Long => HOUR,
                    Window::SubMs => Duration::from_micros(500),
                });
        }
        o
    }

    async fn enqueue(
        &mut self,
        producer: u8,
        specs: &[JobSpec],
        batch: bool,
        fault: Option<FaultSpec>,
    ) -> Result<bool, String> {
        let specs: Vec<JobSpec> = specs.iter().map(|s| self.gate_spec(s)).collect();
        let q = self.h.producers[usize::from(producer % PRODUCERS)].clone();
        let jobs: Vec<NewJob> = specs
            .iter()
            .map(|s| NewJob::raw(vec![s.priority], Self::options(s)))
            .collect();
        let call = async {
            if batch {
                q.enqueue_many(jobs).await
            } else {
                let job = jobs.into_iter().next().expect("one job");
                q.enqueue(job).await.map(|e| vec![e])
            }
        };
        let (reply, at, fired) = faulted(self.world, fault, call).await;
        self.fired(fired, fault);
        let answers = match reply {
            Ok(answers) => answers,
            // A refused option changes nothing.
            Err(sluice_engine::Error::InvalidOption { .. })
                if specs
                    .iter()
                    .any(|s| matches!(s.idempotency, Some((_, Window::SubMs)))) =>
            {
                return Ok(true);
            }
            Err(e) => return Err(format!("enqueue failed: {e}")),
        };
        if answers.len() != specs.len() {
            return Err(format!(
                "{} answers for {} jobs",
                answers.len(),
                specs.len()
            ));
        }
        for (spec, answer) in specs.iter().zip(&answers) {
            self.accept(spec, answer, at)?;
        }
        Ok(true)
    }

    /// One enqueue call per job, all at once on one handle. Each call is
    /// answered for itself: one refused does not fail the others.
    async fn enqueue_together(
        &mut self,
        producer: u8,
        specs: &[JobSpec],
        fault: Option<FaultSpec>,
    ) -> Result<bool, String> {
        let specs: Vec<JobSpec> = specs.iter().map(|s| self.gate_spec(s)).collect();
        let q = self.h.producers[usize::from(producer % PRODUCERS)].clone();
        let calls = specs.iter().map(|s| {
            let (q, options) = (q.clone(), Self::options(s));
            let payload = vec![s.priority];
            async move { q.enqueue(NewJob::raw(payload, options)).await }
        });
        let (replies, at, fired) =
            faulted(self.world, fault, futures::future::join_all(calls)).await;
        self.fired(fired, fault);
        let mut answers = Vec::new();
        for (spec, reply) in specs.iter().zip(replies) {
            match reply {
                Ok(answer) => answers.push((spec, answer)),
                Err(sluice_engine::Error::InvalidOption { .. })
                    if matches!(spec.idempotency, Some((_, Window::SubMs))) => {}
                Err(e) => {
                    return Err(format!(
                        "one of {} enqueues at once failed: {e}",
                        specs.len()
                    ));
                }
            }
        }
        // Their order is not known: the new jobs first, so that a
        // duplicate finds the job its key maps to.
        answers.sort_by_key(|(_, answer)| answer.duplicate);
        let before = self.model.jobs.len();
        for (spec, answer) in answers {
            self.accept(spec, &answer, at)?;
        }
        let added: Vec<usize> = (before..self.model.jobs.len()).collect();
        self.model.regroup(&added);
        Ok(true)
    }

    /// The engine's answer to one job of an enqueue, against the model.
    fn accept(&mut self, spec: &JobSpec, answer: &Enqueued, at: Span) -> Result<(), String> {
        let key = spec.idempotency.map(|(k, w)| (format!("k{k}"), w));
        let lookup = match &key {
            None => KeyLookup::Free,
            Some((k, _)) => self.model.key_lookup(k, at),
        };
        match (lookup, answer.duplicate) {
            (KeyLookup::Mapped(id) | KeyLookup::Either(id), true) => {
                if answer.id == id {
                    Ok(())
                } else {
                    Err(format!(
                        "a duplicate enqueue answered job {}, its key maps to {id}",
                        answer.id
                    ))
                }
            }
            (KeyLookup::Mapped(id), false) => Err(format!(
                "enqueue under {key:?} added job {} although the key maps to {id} within its window",
                answer.id
            )),
            (KeyLookup::Free, true) => Err(format!(
                "enqueue under {key:?} answered duplicate of {} although no key is mapped",
                answer.id
            )),
            (KeyLookup::Free | KeyLookup::Either(_), false) => {
                let key = key.map(|(k, w)| {
                    let window = match w {
                        Window::Long => None,
                        Window::Short => Some((at, SHORT)),
                        Window::SubMs => Some((at, Duration::from_millis(1))),
                    };
                    (k, window)
                });
                self.model.add(
                    &answer.id,
                    spec.priority,
                    spec.delay,
                    spec.max_attempts,
                    key,
                    at,
                )
            }
        }
    }

    // ---- workers ----

    async fn claim(
        &mut self,
        worker: u8,
        count: usize,
        fault: Option<FaultSpec>,
    ) -> Result<bool, String> {
        let worker = worker % WORKERS;
        let name = consumer(worker);
        let q = self.h.workers.clone();
        let (reply, at, fired) = faulted(self.world, fault, q.claim(&name, count)).await;
        let fired = self.fired(fired, fault);
        let jobs = reply.map_err(|e| format!("claim failed: {e}"))?;
        let (must, may, from_may) = self.model.claimable(count);
        let mut taken = HashSet::new();
        let mut taken_from_may = 0;
        for job in &jobs {
            let index = self.model.index(&job.id).ok_or_else(|| {
                format!("claim took job {}, which was never acknowledged", job.id)
            })?;
            if !taken.insert(index) {
                return Err(format!("one claim took job {} twice", job.id));
            }
            if may.contains(&index) {
                taken_from_may += 1;
            } else if !must.contains(&index) {
                return Err(format!(
                    "claim took job {} ({}, priority {}), not among the next in priority order",
                    job.id,
                    self.model.jobs[index].state.name(),
                    self.model.jobs[index].priority
                ));
            }
            let m = &self.model.jobs[index];
            if (job.attempt, job.max_attempts, job.priority)
                != (m.attempt + 1, m.max_attempts, m.priority)
            {
                return Err(format!(
                    "claim of job {}: attempt {}/{} at priority {}, model {}/{} at {}",
                    job.id,
                    job.attempt,
                    job.max_attempts,
                    job.priority,
                    m.attempt + 1,
                    m.max_attempts,
                    m.priority
                ));
            }
        }
        if taken_from_may != from_may || jobs.len() != must.len() + from_may {
            return Err(format!(
                "claim of {count} took {} jobs (paused: {}); the model has {} to give",
                jobs.len(),
                self.model.paused,
                must.len() + from_may
            ));
        }
        if jobs.len() < count && !self.model.paused {
            self.model.read_to_the_end();
        }
        for job in jobs {
            let index = self.model.index(&job.id).expect("checked above");
            self.next_claim += 1;
            self.model
                .activate(index, self.next_claim, worker, at, fired);
            self.held[usize::from(worker)].push(Claimed {
                claim: self.next_claim,
                index,
                job,
            });
        }
        Ok(true)
    }

    fn gate_outcome(&self, outcome: &OutcomeSpec) -> OutcomeSpec {
        if self.defects.huge_delay {
            return outcome.clone();
        }
        match outcome {
            OutcomeSpec::Snooze(After::Max) => OutcomeSpec::Snooze(After::Long),
            OutcomeSpec::Retry(Some(After::Max)) => OutcomeSpec::Retry(Some(After::Long)),
            other => other.clone(),
        }
    }

    fn engine_outcome(outcome: &OutcomeSpec) -> Outcome {
        let duration = |a: &After| match a {
            After::Zero => Duration::ZERO,
            After::Short => SHORT,
            After::Long => HOUR,
            After::Max => Duration::MAX,
        };
        match outcome {
            OutcomeSpec::Done => Outcome::Done,
            OutcomeSpec::DoneWith => Outcome::DoneWith("result".to_owned()),
            OutcomeSpec::Retry(after) => Outcome::Retry {
                reason: retry_reason().to_owned(),
                after: after.as_ref().map(duration),
            },
            OutcomeSpec::Snooze(after) => Outcome::Snooze(duration(after)),
            OutcomeSpec::Bury => Outcome::Bury(bury_reason().to_owned()),
        }
    }

    /// A success from the claim the job was reclaimed from, nobody having
    /// run it since (§1.16).
    fn late(&self, c: &Claimed, outcome: &OutcomeSpec) -> bool {
        matches!(outcome, OutcomeSpec::Done | OutcomeSpec::DoneWith)
            && !self.model.holds(c.index, c.claim)
            && self.model.jobs[c.index]
                .reclaimed_from
                .map(|(claim, _)| claim)
                == Some(c.claim)
    }

    /// Such a success (§1.16), when that defect is turned off.
    fn gated_late(&self, c: &Claimed, outcome: &OutcomeSpec) -> bool {
        !self.defects.late_success && self.late(c, outcome)
    }

    /// `worker`, or when it holds no job the next worker that does.
    fn holding(&self, worker: u8) -> Option<usize> {
        (0..WORKERS)
            .map(|i| usize::from((worker % WORKERS + i) % WORKERS))
            .find(|&w| !self.held[w].is_empty())
    }

    /// A stale claim's outcome for a job whose cancel is requested
    /// (§1.6), when that defect is turned off.
    fn gated_stale(&self, c: &Claimed) -> bool {
        !self.defects.stale_settle_cancel
            && !self.model.holds(c.index, c.claim)
            && self.model.jobs[c.index].cancel_requested
    }

    /// Settle `outcomes.len()` of the worker's jobs from the `pick`-th on
    /// (modulo), in one call.
    async fn settle(
        &mut self,
        worker: u8,
        pick: u8,
        outcomes: &[OutcomeSpec],
        fault: Option<FaultSpec>,
    ) -> Result<bool, String> {
        let Some(worker) = self.holding(worker) else {
            return Ok(false);
        };
        let held = &self.held[worker];
        let from = usize::from(pick) % held.len();
        let n = outcomes.len().min(held.len() - from);
        if held[from..from + n]
            .iter()
            .zip(outcomes)
            .any(|(c, o)| self.gated_stale(c) || self.gated_late(c, o))
        {
            return Ok(false);
        }
        let batch: Vec<Claimed> = self.held[worker].drain(from..from + n).collect();
        let outcomes: Vec<OutcomeSpec> =
            outcomes[..n].iter().map(|o| self.gate_outcome(o)).collect();
        let q = self.h.workers.clone();
        let items: Vec<(&Job, Outcome)> = batch
            .iter()
            .zip(&outcomes)
            .map(|(c, o)| (&c.job, Self::engine_outcome(o)))
            .collect();
        let (reply, at, fired) = faulted(self.world, fault, q.settle_many(items)).await;
        self.fired(fired, fault);
        let answers = reply.map_err(|e| format!("settle failed: {e}"))?;
        if answers.len() != n {
            return Err(format!("{} answers for {n} outcomes", answers.len()));
        }
        for ((c, outcome), answer) in batch.iter().zip(&outcomes).zip(answers) {
            if self.model.holds(c.index, c.claim) {
                let want = self.model.settle(c.index, outcome, at);
                if answer.as_str() != want {
                    return Err(format!(
                        "settle {outcome:?} of job {} by its owner answered {}, model {want}",
                        c.job.id,
                        answer.as_str()
                    ));
                }
            } else if self.late(c, outcome) {
                let dead = matches!(self.model.jobs[c.index].state, State::Dead { .. });
                match answer {
                    Settled::Done => self.model.late_success(c.index),
                    Settled::Fenced | Settled::Gone if !dead => {}
                    other => {
                        return Err(format!(
                            "the late success of job {} ({}), reclaimed and not run since, answered {}",
                            c.job.id,
                            self.model.jobs[c.index].state.name(),
                            other.as_str()
                        ));
                    }
                }
            } else if !matches!(answer, Settled::Fenced | Settled::Gone) {
                return Err(format!(
                    "a stale claim's outcome {outcome:?} for job {} ({}) was accepted: {}",
                    c.job.id,
                    self.model.jobs[c.index].state.name(),
                    answer.as_str()
                ));
            }
        }
        self.settled.extend(batch);
        Ok(true)
    }

    /// Settle a claim that was settled already: whatever it answers, it
    /// changes nothing (the checks after the step see to that).
    async fn settle_again(
        &mut self,
        pick: u8,
        outcome: &OutcomeSpec,
        fault: Option<FaultSpec>,
    ) -> Result<bool, String> {
        if self.settled.is_empty() {
            return Ok(false);
        }
        let c = self.settled[usize::from(pick) % self.settled.len()].clone();
        if self.gated_stale(&c) || self.late(&c, outcome) {
            return Ok(false);
        }
        let outcome = Self::engine_outcome(&self.gate_outcome(outcome));
        let q = self.h.workers.clone();
        let (reply, _, fired) = faulted(self.world, fault, q.settle(&c.job, outcome)).await;
        self.fired(fired, fault);
        reply.map_err(|e| format!("settle failed: {e}"))?;
        Ok(true)
    }

    async fn keep_alive(&mut self, worker: u8, fault: Option<FaultSpec>) -> Result<bool, String> {
        let Some(worker) = self.holding(worker) else {
            return Ok(false);
        };
        let q = self.h.workers.clone();
        let held = self.held[worker].clone();
        let jobs: Vec<&Job> = held.iter().map(|c| &c.job).collect();
        let (reply, at, fired) = faulted(self.world, fault, q.keep_alive(&jobs)).await;
        self.fired(fired, fault);
        reply.map_err(|e| format!("keep-alive failed: {e}"))?;
        for c in &held {
            if self.model.holds(c.index, c.claim) {
                self.model.refresh(c.claim, at);
            }
        }
        Ok(true)
    }

    /// The job as a lookup shows it now.
    async fn look(&mut self, index: usize) -> Result<Option<JobInfo>, String> {
        self.tally.lookups += 1;
        self.h
            .inspector
            .job(&self.model.jobs[index].id)
            .await
            .map_err(|e| format!("lookup failed: {e}"))
    }

    async fn promote(&mut self, fault: Option<FaultSpec>) -> Result<bool, String> {
        let q = self.h.workers.clone();
        let (reply, at, fired) = faulted(self.world, fault, q.promote_due(1000)).await;
        let fired = self.fired(fired, fault);
        let promoted = reply.map_err(|e| format!("promote failed: {e}"))?;
        let (mut moved, may) = self.model.due(at);
        for j in may {
            if self
                .look(j)
                .await?
                .is_some_and(|i| i.state == JobState::Waiting)
            {
                moved.push(j);
            }
        }
        if !fired && promoted.moved != moved.len() as u64 {
            return Err(format!(
                "promote moved {}, the model {} (those due, and those near it that moved)",
                promoted.moved,
                moved.len()
            ));
        }
        self.model.promote(&moved);
        Ok(true)
    }

    async fn reclaim(&mut self, worker: u8, fault: Option<FaultSpec>) -> Result<bool, String> {
        let q = self.h.workers.clone();
        let name = consumer(worker % WORKERS);
        let (reply, at, fired) = faulted(self.world, fault, q.reclaim_lost(&name)).await;
        let fired = self.fired(fired, fault);
        let reclaimed = reply.map_err(|e| format!("reclaim failed: {e}"))?;
        let (must, may) = self.model.expired(at);
        let (mut retried, mut dead, mut requeued) = (0, 0, 0);
        for j in must.iter().chain(&may).copied() {
            let info = self.look(j).await?;
            if info.as_ref().is_some_and(|i| i.state == JobState::Active) {
                if must.contains(&j) {
                    return Err(format!(
                        "job {} was idle past the visibility timeout and not reclaimed",
                        self.model.jobs[j].id
                    ));
                }
                continue;
            }
            let m = &self.model.jobs[j];
            let unconfirmed = matches!(
                m.state,
                State::Active {
                    unconfirmed: true,
                    ..
                }
            );
            let given_back = unconfirmed
                && !m.cancel_requested
                && info.is_some_and(|i| i.state == JobState::Waiting && i.attempt + 1 == m.attempt);
            match self.model.reclaim(j, given_back, at) {
                ReclaimKind::Retried => retried += 1,
                ReclaimKind::Dead => dead += 1,
                ReclaimKind::Requeued => requeued += 1,
            }
        }
        let counted = (
            reclaimed.retried,
            reclaimed.dead,
            reclaimed.requeued,
            reclaimed.dropped,
        );
        if !fired && counted != (retried, dead, requeued, 0) {
            return Err(format!(
                "reclaim counted {reclaimed:?}, the model retried {retried}, dead {dead}, requeued {requeued}"
            ));
        }
        Ok(true)
    }

    // ---- operators ----

    async fn cancel(
        &mut self,
        job: Option<usize>,
        fault: Option<FaultSpec>,
    ) -> Result<bool, String> {
        // §1.1: the entry a job was enqueued as lingers, and a cancel of
        // the job once its hash is gone materializes it again.
        if let Some(j) = job
            && !self.defects.cancel_finished
            && self.model.jobs[j].light_entry
            && match self.model.jobs[j].state {
                State::Completed => !self.model.keep_completed,
                State::Deleted => true,
                _ => false,
            }
        {
            return Ok(false);
        }
        let id = self.id_of(job);
        let q = self.h.operator.clone();
        let (reply, _, fired) = faulted(self.world, fault, q.cancel(&id)).await;
        self.fired(fired, fault);
        let answer = reply.map_err(|e| format!("cancel failed: {e}"))?;
        let state = job.map_or("unknown", |j| self.model.jobs[j].state.name());
        let valid = self.model.cancel(job);
        if !valid.contains(&answer) {
            return Err(format!(
                "cancel of job {id} ({state}) answered {answer:?}, valid: {valid:?}"
            ));
        }
        Ok(true)
    }

    /// A dead letter whose cancelled entry lingers (see `Defects`): once
    /// re-driven, its job has two entries and `cx` one field for both.
    fn gated_lingering(&self, job: usize) -> bool {
        !self.defects.lingering_cancel && self.model.jobs[job].lingering
    }

    async fn redrive(
        &mut self,
        job: Option<usize>,
        fault: Option<FaultSpec>,
    ) -> Result<bool, String> {
        if job.is_some_and(|j| self.gated_lingering(j)) {
            return Ok(false);
        }
        let id = self.id_of(job);
        let q = self.h.operator.clone();
        let (reply, _, fired) = faulted(self.world, fault, q.redrive(&id)).await;
        let fired = self.fired(fired, fault);
        let answer = reply.map_err(|e| format!("re-drive failed: {e}"))?;
        let state = job.map_or("unknown", |j| self.model.jobs[j].state.name());
        let want = self.model.redrive(job);
        // A replay after a lost reply finds the letter re-driven already.
        if answer != want && !fired {
            return Err(format!(
                "re-drive of job {id} ({state}) answered {answer}, model {want}"
            ));
        }
        Ok(true)
    }

    async fn redrive_all(&mut self, fault: Option<FaultSpec>) -> Result<bool, String> {
        if (0..self.model.jobs.len()).any(|j| self.gated_lingering(j)) {
            return Ok(false);
        }
        let q = self.h.operator.clone();
        let (reply, _, fired) = faulted(self.world, fault, q.redrive_all()).await;
        let fired = self.fired(fired, fault);
        let answer = reply.map_err(|e| format!("re-drive all failed: {e}"))?;
        let letters = self.model.dead_letters();
        self.model.redrive_group(&letters);
        if answer != letters.len() as u64 && !fired {
            return Err(format!(
                "re-drive of every dead letter answered {answer}, the model has {}",
                letters.len()
            ));
        }
        Ok(true)
    }

    async fn delete_dead(
        &mut self,
        job: Option<usize>,
        fault: Option<FaultSpec>,
    ) -> Result<bool, String> {
        let id = self.id_of(job);
        let q = self.h.operator.clone();
        let (reply, _, fired) = faulted(self.world, fault, q.delete_dead(&id)).await;
        let fired = self.fired(fired, fault);
        let answer = reply.map_err(|e| format!("delete failed: {e}"))?;
        let state = job.map_or("unknown", |j| self.model.jobs[j].state.name());
        let want = self.model.delete_dead(job);
        if answer != want && !fired {
            return Err(format!(
                "delete of dead letter {id} ({state}) answered {answer}, model {want}"
            ));
        }
        Ok(true)
    }

    async fn purge_dead(&mut self, fault: Option<FaultSpec>) -> Result<bool, String> {
        let q = self.h.operator.clone();
        let (reply, _, fired) = faulted(self.world, fault, q.purge_dead()).await;
        let fired = self.fired(fired, fault);
        let answer = reply.map_err(|e| format!("purge failed: {e}"))?;
        let letters = self.model.dead_letters();
        for j in &letters {
            self.model.delete_dead(Some(*j));
        }
        if answer != letters.len() as u64 && !fired {
            return Err(format!(
                "purge answered {answer}, the model has {} dead letters",
                letters.len()
            ));
        }
        Ok(true)
    }

    async fn pause(&mut self, paused: bool, fault: Option<FaultSpec>) -> Result<bool, String> {
        let q = self.h.operator.clone();
        let call = async {
            if paused {
                q.pause().await
            } else {
                q.resume().await
            }
        };
        let (reply, _, fired) = faulted(self.world, fault, call).await;
        self.fired(fired, fault);
        reply.map_err(|e| format!("pause/resume failed: {e}"))?;
        self.model.paused = paused;
        Ok(true)
    }

    /// Export and compare with the model; with `import`, import the
    /// records back into the same queue, which must add nothing (§1.14:
    /// off by default, then only the export runs).
    async fn export(&mut self, import: bool, fault: Option<FaultSpec>) -> Result<bool, String> {
        let q = self.h.operator.clone();
        let (reply, _, fired) = faulted(self.world, fault, q.export()).await;
        self.fired(fired, fault);
        let records = reply.map_err(|e| format!("export failed: {e}"))?;
        let mut got: Vec<(String, &str)> = records
            .iter()
            .map(|r| (r.id.clone(), r.state().as_str()))
            .collect();
        got.sort();
        let mut want: Vec<(String, &str)> = self
            .model
            .jobs
            .iter()
            .filter_map(|j| engine_state(&j.state, false).map(|s| (j.id.clone(), s.as_str())))
            .collect();
        want.sort();
        if !self.defects.lingering_cancel {
            // Lingering entries (see `Defects`) are left out of the match.
            let lingering: HashSet<&str> = self
                .model
                .jobs
                .iter()
                .filter(|j| j.lingering)
                .map(|j| j.id.as_str())
                .collect();
            got.retain(|(id, _)| !lingering.contains(id.as_str()));
            want.retain(|(id, _)| !lingering.contains(id.as_str()));
        }
        if got != want {
            return Err(format!("export gave {got:?}, the model {want:?}"));
        }
        if !(import && self.defects.import_duplicates) {
            return Ok(true);
        }
        let (reply, _, fired) = faulted(self.world, None, q.import(&records)).await;
        self.fired(fired, None);
        let added = reply.map_err(|e| format!("import failed: {e}"))?;
        if added != 0 {
            return Err(format!(
                "import of the queue's own export into it added {added} jobs"
            ));
        }
        Ok(true)
    }

    // ---- the invariants ----

    /// Every invariant that holds after each step.
    async fn check(&mut self) -> Result<(), String> {
        // Every acknowledged job is in the model's state, and a lookup
        // agrees; a finished job stays finished.
        for j in 0..self.model.jobs.len() {
            let info = self.look(j).await?;
            let m = &self.model.jobs[j];
            let want = engine_state(&m.state, self.model.keep_completed);
            match (want, info) {
                (None, None) => {}
                (None, Some(i))
                    if m.lingering
                        && m.state == State::Deleted
                        && i.state == JobState::Waiting
                        && !self.defects.lingering_cancel => {}
                (None, Some(i)) => {
                    return Err(format!(
                        "job {} is {} in the model, a lookup finds it {}",
                        m.id,
                        m.state.name(),
                        i.state
                    ));
                }
                (Some(s), None) => {
                    return Err(format!(
                        "job {} is {s} in the model, a lookup finds nothing",
                        m.id
                    ));
                }
                (Some(s), Some(i)) => {
                    let seen = (i.state, i.attempt, i.max_attempts, i.priority);
                    let model = (s, m.attempt, m.max_attempts, m.priority);
                    if seen != model {
                        return Err(format!(
                            "job {}: (state, attempt, max attempts, priority) {seen:?}, model {model:?}",
                            m.id
                        ));
                    }
                    match &m.state {
                        State::Active { worker, .. }
                            if i.worker.as_deref() != Some(consumer(*worker).as_str()) =>
                        {
                            return Err(format!(
                                "job {} is held by {:?}, model w{worker}",
                                m.id, i.worker
                            ));
                        }
                        State::Dead { reason } if !reason.matches(i.last_error.as_deref()) => {
                            return Err(format!(
                                "dead job {} has reason {:?}, model {reason:?}",
                                m.id, i.last_error
                            ));
                        }
                        _ => {}
                    }
                }
            }
        }
        self.check_counts().await?;
        self.check_pending().await
    }

    /// The counts and counters equal the model's.
    async fn check_counts(&mut self) -> Result<(), String> {
        let s = self
            .h
            .inspector
            .stats()
            .await
            .map_err(|e| format!("stats failed: {e}"))?;
        let (waiting, active, delayed, dead) = self.model.counts();
        let c = self.model.counters;
        let seen = (
            (s.waiting, s.active, s.delayed, s.dead, s.paused),
            (
                s.enqueued_total,
                s.completed_total,
                s.failed_total,
                s.retried_total,
                s.dead_total,
            ),
        );
        let model = (
            (waiting, active, delayed, dead, self.model.paused),
            (c.enqueued, c.completed, c.failed, c.retried, c.dead),
        );
        if seen != model {
            return Err(format!(
                "stats ((waiting, active, delayed, dead, paused), (enqueued, completed, failed, retried, dead)) {seen:?}, model {model:?}"
            ));
        }
        Ok(())
    }

    /// Nothing is active without a pending entry of its worker, and no
    /// entry is pending for a worker that holds no such job.
    async fn check_pending(&mut self) -> Result<(), String> {
        let mut pending: HashMap<String, u64> = HashMap::new();
        let mut raw = self.world.raw.clone();
        for level in 0..sluice_engine::PRIORITY_LEVELS {
            let reply: redis::Value = redis::cmd("XPENDING")
                .arg(self.keys.stream(level))
                .arg(RawKeys::GROUP)
                .query_async(&mut raw)
                .await
                .map_err(|e| format!("XPENDING: {e}"))?;
            if let redis::Value::Array(parts) = reply
                && let Some(redis::Value::Array(consumers)) = parts.get(3)
            {
                for c in consumers {
                    let (name, n): (String, u64) =
                        redis::from_redis_value(c.clone()).map_err(|e| format!("XPENDING: {e}"))?;
                    *pending.entry(name).or_default() += n;
                }
            }
        }
        let want: HashMap<String, u64> = self
            .model
            .active_by_worker()
            .into_iter()
            .map(|(w, n)| (consumer(w), n))
            .collect();
        if pending != want {
            return Err(format!(
                "entries pending per consumer {pending:?}, the model's active jobs per worker {want:?}"
            ));
        }
        Ok(())
    }

    /// Finish every job (through the same steps and checks), then check
    /// that the queue left only its fixed keys and keys that expire.
    async fn drain(&mut self) -> Result<(), String> {
        self.pause(false, None).await?;
        self.check().await?;
        for _ in 0..20 {
            for w in 0..WORKERS {
                self.held[usize::from(w)].retain(|c| self.model.holds(c.index, c.claim));
                while !self.held[usize::from(w)].is_empty() {
                    self.settle(w, 0, &[OutcomeSpec::Done], None).await?;
                    self.check().await?;
                }
            }
            for j in 0..self.model.jobs.len() {
                if matches!(self.model.jobs[j].state, State::Delayed { .. }) {
                    self.cancel(Some(j), None).await?;
                    self.check().await?;
                }
            }
            if self.model.counts().0 > 0 {
                self.claim(0, 10, None).await?;
                self.check().await?;
                continue;
            }
            if self.model.counts().3 > 0 {
                self.purge_dead(None).await?;
                self.check().await?;
            }
            if self
                .model
                .jobs
                .iter()
                .all(|j| matches!(j.state, State::Completed | State::Deleted))
            {
                // Idle workers keep claiming: a claim that finds nothing
                // has read every level to its end.
                self.claim(0, 10, None).await?;
                self.check().await?;
                return self.check_keys().await;
            }
        }
        Err("the queue did not drain".to_owned())
    }

    /// A drained queue holds only its fixed keys; anything else must
    /// expire, or it grows with every job.
    async fn check_keys(&mut self) -> Result<(), String> {
        let mut raw = self.world.raw.clone();
        let base = self.keys.base().to_owned();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{base}*"))
            .query_async(&mut raw)
            .await
            .map_err(|e| format!("KEYS: {e}"))?;
        let mut fixed: HashSet<String> = (0..sluice_engine::PRIORITY_LEVELS)
            .map(|l| self.keys.stream(l))
            .collect();
        fixed.insert(self.keys.meta());
        fixed.insert(self.keys.stats());
        for key in keys {
            if fixed.contains(&key) {
                continue;
            }
            let ttl: i64 = redis::cmd("PTTL")
                .arg(&key)
                .query_async(&mut raw)
                .await
                .map_err(|e| format!("PTTL: {e}"))?;
            if ttl == -1 {
                return Err(format!("the drained queue left {key}, which never expires"));
            }
        }
        Ok(())
    }
}

/// The queue's keys as docs/design.md lays them out, for the checks that
/// read Redis directly (the engine keeps its own key builder private).
struct RawKeys {
    base: String,
}

impl RawKeys {
    const GROUP: &'static str = "workers";

    fn new(prefix: &str, queue: &str) -> Self {
        Self {
            base: format!("{prefix}:{{{queue}}}:"),
        }
    }

    fn base(&self) -> &str {
        &self.base
    }

    fn stream(&self, level: u8) -> String {
        format!("{}p:{level}", self.base)
    }

    fn meta(&self) -> String {
        format!("{}meta", self.base)
    }

    fn stats(&self) -> String {
        format!("{}stats", self.base)
    }
}

/// The state a lookup must show for a job in `state` (None: no job).
fn engine_state(state: &State, keep_completed: bool) -> Option<JobState> {
    match state {
        State::Waiting => Some(JobState::Waiting),
        State::Delayed { .. } => Some(JobState::Delayed),
        State::Active { .. } => Some(JobState::Active),
        State::Dead { .. } => Some(JobState::Dead),
        State::Completed if keep_completed => Some(JobState::Completed),
        State::Completed | State::Deleted => None,
    }
}
