//! The operations the checker plays, the faults it puts under them, and
//! how proptest generates them.
//!
//! An operation names what it acts on by small indexes (the n-th job
//! acknowledged, the n-th job a worker holds), taken modulo what exists
//! when it runs: any sequence is runnable, and removing a step while
//! shrinking leaves the others meaningful.

use proptest::prelude::*;

/// Producers, workers: each a handle (producers) or consumer name
/// (workers) of its own.
pub const PRODUCERS: u8 = 2;
pub const WORKERS: u8 = 3;

/// How long a job waits before it is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delay {
    /// Ready at once.
    None,
    /// Due within the test ([`super::reference::SHORT`]); a `Sleep` passes it.
    Short,
    /// Never due within the test (an hour).
    Long,
}

/// How long an idempotency key is remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Past within the test ([`super::reference::SHORT`]).
    Short,
    /// Never past within the test (an hour).
    Long,
    /// Half a millisecond (issue 39 §1.9).
    SubMs,
}

/// One job to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    pub priority: u8,
    pub delay: Delay,
    pub max_attempts: u32,
    /// An idempotency key (one of a few, so that they meet) and its window.
    pub idempotency: Option<(u8, Window)>,
}

/// A delay given with an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Zero,
    Short,
    Long,
    /// `Duration::MAX` (issue 39 §1.11).
    Max,
}

/// What a worker reports for a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutcomeSpec {
    Done,
    DoneWith,
    /// `Retry` with the job's backoff (`None`) or a given delay.
    Retry(Option<After>),
    Snooze(After),
    Bury,
}

/// Which job an operator names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The n-th job in this state (modulo how many are; any job when
    /// none is).
    In(Pick, u8),
    /// An id no job has.
    Unknown,
}

/// Which jobs a [`Target`] picks among.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    Any,
    Waiting,
    Delayed,
    Active,
    Completed,
    Dead,
}

/// One operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    Enqueue {
        producer: u8,
        job: JobSpec,
    },
    EnqueueBatch {
        producer: u8,
        jobs: Vec<JobSpec>,
    },
    /// Enqueue calls of one producer at once, one job each: they are
    /// combined into fewer script calls (combine.rs).
    EnqueueTogether {
        producer: u8,
        jobs: Vec<JobSpec>,
    },
    Claim {
        worker: u8,
        count: u8,
    },
    /// Settle the n-th job the worker holds.
    Settle {
        worker: u8,
        pick: u8,
        outcome: OutcomeSpec,
    },
    /// Settle the worker's first jobs in one call, one outcome each.
    SettleMany {
        worker: u8,
        outcomes: Vec<OutcomeSpec>,
    },
    /// Settle again a claim that was settled already (a replay past its
    /// call record's life).
    SettleAgain {
        pick: u8,
        outcome: OutcomeSpec,
    },
    /// Refresh every claim the worker holds.
    KeepAlive {
        worker: u8,
    },
    /// Wait past the visibility timeout, the short delays and windows.
    Sleep,
    Promote,
    Reclaim {
        worker: u8,
    },
    Cancel(Target),
    Redrive(Target),
    RedriveAll,
    DeleteDead(Target),
    PurgeDead,
    Pause,
    Resume,
    /// Export, and compare with the model.
    Export,
    /// Export, then import the records into the same queue.
    ExportImport,
}

/// A fault under one operation's Redis calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultSpec {
    /// The first call's reply is lost after Redis ran it; the client
    /// sends it again.
    DropReply,
    /// The first call's reply comes later than the response timeout.
    LateReply,
    /// Redis is unreachable for longer than the visibility timeout when
    /// the operation starts.
    Outage,
}

/// One step: an operation, maybe under a fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub op: Op,
    pub fault: Option<FaultSpec>,
}

/// One generated case: the queue's settings and the steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Case {
    /// Completed jobs kept for lookup (else deleted at once).
    pub keep_completed: bool,
    pub steps: Vec<Step>,
}

fn job_spec() -> impl Strategy<Value = JobSpec> {
    (
        prop_oneof![3 => 0u8..3, 1 => 0u8..10],
        prop_oneof![
            6 => Just(Delay::None),
            2 => Just(Delay::Short),
            1 => Just(Delay::Long)
        ],
        1u32..=3,
        prop_oneof![
            3 => Just(None),
            1 => (0u8..3, prop_oneof![
                3 => Just(Window::Long),
                2 => Just(Window::Short),
                1 => Just(Window::SubMs)
            ])
                .prop_map(Some)
        ],
    )
        .prop_map(|(priority, delay, max_attempts, idempotency)| JobSpec {
            priority,
            delay,
            max_attempts,
            idempotency,
        })
}

fn after() -> impl Strategy<Value = After> {
    prop_oneof![
        3 => Just(After::Zero),
        3 => Just(After::Short),
        1 => Just(After::Long),
        1 => Just(After::Max)
    ]
}

fn outcome() -> impl Strategy<Value = OutcomeSpec> {
    prop_oneof![
        5 => Just(OutcomeSpec::Done),
        1 => Just(OutcomeSpec::DoneWith),
        3 => prop::option::of(after()).prop_map(OutcomeSpec::Retry),
        2 => after().prop_map(OutcomeSpec::Snooze),
        1 => Just(OutcomeSpec::Bury),
    ]
}

fn target() -> impl Strategy<Value = Target> {
    let pick = prop_oneof![
        Just(Pick::Any),
        Just(Pick::Waiting),
        Just(Pick::Delayed),
        Just(Pick::Active),
        Just(Pick::Completed),
        Just(Pick::Dead),
    ];
    prop_oneof![
        8 => (pick, 0u8..4).prop_map(|(pick, n)| Target::In(pick, n)),
        1 => Just(Target::Unknown)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let producer = 0..PRODUCERS;
    let worker = || 0..WORKERS;
    prop_oneof![
        8 => (producer.clone(), job_spec()).prop_map(|(producer, job)| Op::Enqueue { producer, job }),
        2 => (producer.clone(), prop::collection::vec(job_spec(), 2..5))
            .prop_map(|(producer, jobs)| Op::EnqueueBatch { producer, jobs }),
        2 => (producer.clone(), prop::collection::vec(job_spec(), 2..5))
            .prop_map(|(producer, jobs)| Op::EnqueueTogether { producer, jobs }),
        8 => (worker(), 1u8..4).prop_map(|(worker, count)| Op::Claim { worker, count }),
        8 => (worker(), any::<u8>(), outcome())
            .prop_map(|(worker, pick, outcome)| Op::Settle { worker, pick, outcome }),
        2 => (worker(), prop::collection::vec(outcome(), 2..4))
            .prop_map(|(worker, outcomes)| Op::SettleMany { worker, outcomes }),
        1 => (any::<u8>(), outcome()).prop_map(|(pick, outcome)| Op::SettleAgain { pick, outcome }),
        2 => worker().prop_map(|worker| Op::KeepAlive { worker }),
        2 => Just(Op::Sleep),
        3 => Just(Op::Promote),
        3 => worker().prop_map(|worker| Op::Reclaim { worker }),
        3 => target().prop_map(Op::Cancel),
        2 => target().prop_map(Op::Redrive),
        1 => Just(Op::RedriveAll),
        1 => target().prop_map(Op::DeleteDead),
        1 => Just(Op::PurgeDead),
        1 => Just(Op::Pause),
        2 => Just(Op::Resume),
        1 => Just(Op::Export),
        1 => Just(Op::ExportImport),
    ]
}

fn fault() -> impl Strategy<Value = Option<FaultSpec>> {
    prop_oneof![
        24 => Just(None),
        2 => Just(Some(FaultSpec::DropReply)),
        1 => Just(Some(FaultSpec::LateReply)),
        1 => Just(Some(FaultSpec::Outage)),
    ]
}

/// Cases of 1 to `max_steps` steps.
pub fn case(max_steps: usize) -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        prop::collection::vec(
            (op(), fault()).prop_map(|(op, fault)| Step { op, fault }),
            1..=max_steps,
        ),
    )
        .prop_map(|(keep_completed, steps)| Case {
            keep_completed,
            steps,
        })
}
