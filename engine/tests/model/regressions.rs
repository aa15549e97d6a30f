//! Sequences the checker shrank a violation to, each replayed as a test of
//! its own with the defects it needs turned on. Those failing on the code
//! they were found on are ignored with the section until the fix
//! is merged.

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

#[tokio::test]
async fn a_job_claimed_settled_and_looked_up_agrees_with_the_model() {
    replay(
        false,
        vec![
            step(Op::Enqueue {
                producer: 0,
                job: ready(0),
            }),
            step(Op::Claim {
                worker: 0,
                count: 1,
            }),
            step(Op::Settle {
                worker: 0,
                pick: 0,
                outcome: OutcomeSpec::Done,
            }),
        ],
    )
    .await;
}
