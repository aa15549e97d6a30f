//! Sequences the checker shrank a violation to, each replayed as a test of
//! its own with the defects it needs turned on. Each failed on the code it
//! was found on (issue 39, 0e9fcd6) and passes on the fixes.

use super::ops::*;
use super::runner::{Defects, run_case};
use super::world::World;

/// Replay `steps` on a fresh world; panic with the violation.
async fn replay(keep_completed: bool, steps: Vec<Step>) {
    let world = World::start().await;
    let case = Case {
        keep_completed,
        steps,
    };
    if let Err(violation) = run_case(&world, &case, Defects::all()).await {
        panic!("{violation}");
    }
}

fn step(op: Op) -> Step {
    Step { op, fault: None }
}

fn ready(priority: u8) -> JobSpec {
    JobSpec {
        priority,
        delay: Delay::None,
        max_attempts: 1,
        idempotency: None,
    }
}

fn enqueue(priority: u8) -> Step {
    step(Op::Enqueue {
        producer: 0,
        job: ready(priority),
    })
}

fn claim(count: u8) -> Step {
    step(Op::Claim { worker: 0, count })
}

fn settle(outcome: OutcomeSpec) -> Step {
    step(Op::Settle {
        worker: 0,
        pick: 0,
        outcome,
    })
}

fn cancel(pick: Pick) -> Step {
    step(Op::Cancel(Target::In(pick, 0)))
}

/// The plainest life of a job, on which every check runs once.
#[tokio::test]
async fn a_job_claimed_settled_and_looked_up_agrees_with_the_model() {
    replay(false, vec![enqueue(0), claim(1), settle(OutcomeSpec::Done)]).await;
}

/// Shrunk from a run with `SLUICE_MODEL_DEFECTS=1.1`: the cancel answered
/// `Cancelled`, and the completed job became a dead letter.
#[tokio::test]
async fn a_cancel_after_completion_leaves_the_job_completed() {
    replay(
        false,
        vec![
            enqueue(0),
            claim(1),
            settle(OutcomeSpec::Done),
            cancel(Pick::Completed),
        ],
    )
    .await;
}

/// Shrunk from the default run (7 steps, before cancels of finished
/// light jobs were put behind §1.1's switch): the job failed on its one
/// attempt, its letter was deleted, and the cancel found the entry it was
/// enqueued as, which lingers in the stream, and made it a dead letter
/// again (counted dead twice).
#[tokio::test]
async fn a_cancel_of_a_deleted_letter_leaves_it_deleted() {
    replay(
        false,
        vec![
            enqueue(0),
            claim(1),
            settle(OutcomeSpec::Retry(None)),
            step(Op::DeleteDead(Target::In(Pick::Dead, 0))),
            cancel(Pick::Any),
        ],
    )
    .await;
}

/// Shrunk from a run with `SLUICE_MODEL_DEFECTS=1.1`: the entry of a job
/// cancelled while waiting stays unread until a claim reads past it, and
/// meanwhile the lookup of the deleted letter describes the entry:
/// waiting.
#[tokio::test]
async fn a_deleted_letter_cancelled_while_waiting_is_not_found_waiting() {
    replay(
        false,
        vec![
            enqueue(0),
            cancel(Pick::Waiting),
            step(Op::DeleteDead(Target::In(Pick::Dead, 0))),
        ],
    )
    .await;
}

/// Shrunk from a run with `SLUICE_MODEL_DEFECTS=1.1`: `cx` holds one
/// field per job, so the re-driven job's two entries (the cancelled one,
/// unread, and the new one) count one as waiting after the second cancel.
#[tokio::test]
async fn a_letter_cancelled_twice_while_waiting_is_not_counted_waiting() {
    replay(
        false,
        vec![
            enqueue(0),
            cancel(Pick::Waiting),
            step(Op::Redrive(Target::In(Pick::Dead, 0))),
            cancel(Pick::Waiting),
        ],
    )
    .await;
}

/// Shrunk from a run with `SLUICE_MODEL_DEFECTS=1.1`: the export lists the
/// job twice, from its unread stream entry and from the dead letters.
#[tokio::test]
async fn a_job_cancelled_while_waiting_is_exported_once() {
    replay(
        false,
        vec![enqueue(0), cancel(Pick::Waiting), step(Op::Export)],
    )
    .await;
}

/// Written from issue 39 §1.6 (150 random sequences with
/// `SLUICE_MODEL_DEFECTS=1.6` did not reach it): the stale worker's
/// refused outcome deletes the cancel request, and the real owner's
/// failure is then retried instead of buried.
#[tokio::test]
async fn a_stale_outcome_leaves_the_cancel_request_for_the_owner() {
    let job = JobSpec {
        max_attempts: 3,
        ..ready(0)
    };
    replay(
        false,
        vec![
            step(Op::Enqueue { producer: 0, job }),
            claim(1),
            step(Op::Sleep),
            step(Op::Reclaim { worker: 2 }),
            step(Op::Sleep),
            step(Op::Promote),
            step(Op::Claim {
                worker: 1,
                count: 1,
            }),
            cancel(Pick::Active),
            settle(OutcomeSpec::Done),
            step(Op::Settle {
                worker: 1,
                pick: 0,
                outcome: OutcomeSpec::Retry(None),
            }),
        ],
    )
    .await;
}

/// Shrunk from a run with `SLUICE_MODEL_DEFECTS=1.11` (5 steps; one
/// enqueue more, which took no part): the snoozed job was promoted at once.
#[tokio::test]
async fn a_snooze_of_duration_max_does_not_run_at_once() {
    replay(
        false,
        vec![
            enqueue(0),
            claim(1),
            settle(OutcomeSpec::Snooze(After::Max)),
            step(Op::Promote),
        ],
    )
    .await;
}

/// Shrunk from a run with `SLUICE_MODEL_DEFECTS=1.9`: the enqueue failed
/// ("redis error during enqueue") after the script had written the job.
#[tokio::test]
async fn a_sub_millisecond_idempotency_window_writes_all_or_nothing() {
    let job = JobSpec {
        idempotency: Some((0, Window::SubMs)),
        ..ready(0)
    };
    replay(false, vec![step(Op::Enqueue { producer: 0, job })]).await;
}

/// Shrunk from a run with `SLUICE_MODEL_DEFECTS=1.14`: the import added
/// the waiting job again.
#[tokio::test]
async fn an_import_into_the_queue_that_holds_the_jobs_adds_nothing() {
    replay(false, vec![enqueue(0), step(Op::ExportImport)]).await;
}

/// Found with `SLUICE_MODEL_DEFECTS=1.16` (shrunk to 4 steps, where a
/// claim's late reply took the place of the sleep): the silent owner's
/// success, nobody having run the job since it was reclaimed, is refused
/// and the job stays dead.
#[tokio::test]
async fn a_late_success_of_a_job_nobody_ran_since_records_it_completed() {
    replay(
        false,
        vec![
            enqueue(0),
            claim(1),
            step(Op::Sleep),
            step(Op::Reclaim { worker: 1 }),
            settle(OutcomeSpec::Done),
        ],
    )
    .await;
}

/// Shrunk by the checker (all defect steps on, seed 15031383681350775979):
/// a job reclaimed from its silent worker into the dead letters, then
/// re-driven by an operator; the silent worker's late success must be
/// refused (the operator asked for another run), and was accepted.
#[tokio::test]
async fn a_late_success_after_a_redrive_is_refused() {
    replay(
        false,
        vec![
            enqueue(0),
            claim(1),
            Step {
                op: Op::Redrive(Target::In(Pick::Any, 0)),
                fault: Some(FaultSpec::LateReply),
            },
            step(Op::Reclaim { worker: 0 }),
            step(Op::Redrive(Target::In(Pick::Any, 0))),
            settle(OutcomeSpec::Done),
        ],
    )
    .await;
}
