//! One call of a handler: with its panic caught, under the smallest
//! timeout of its jobs, and cancellable. The worker and
//! the test harness ([`crate::testing`]) both run handlers through here, so
//! what a test sees is what a worker records.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

use crate::handler::{Runner, miscounted};
use crate::job::{CancelReason, CancelSignal, Job, Outcome};

/// When the worker stops and its shutdown grace is over, `stop` is
/// cancelled; running jobs then get `grace` to return after their own
/// cancellation (for a timeout or a shutdown) before they are aborted.
#[derive(Debug, Clone)]
pub(crate) struct Cancellation {
    pub(crate) stop: CancellationToken,
    pub(crate) grace: Duration,
}

/// Run `jobs` in one call of `runner`. `None` when the worker stopped and
/// the handler did not return within the cancel grace: the jobs are left
/// to be reclaimed, as after a crash.
pub(crate) async fn run(
    runner: Arc<impl Runner>,
    jobs: Vec<Job>,
    cancellation: &Cancellation,
) -> Option<Vec<Outcome>> {
    let n = jobs.len();
    let signals: Vec<CancelSignal> = jobs.iter().map(|j| j.cancel.clone()).collect();
    let timeout = jobs.iter().filter_map(|j| j.timeout).min();
    // Polled in the caller's task, not a task of its own: one task per job
    // instead of two. A panic is caught here; the call stops when the
    // caller's task is dropped or aborted.
    let call = AssertUnwindSafe(runner.run(jobs)).catch_unwind();
    tokio::pin!(call);
    // The deadline is fixed before the first poll: a handler that blocks
    // its thread is not interrupted by the timer, and what it returns past
    // the deadline must not count either.
    let deadline = timeout.map(|limit| tokio::time::Instant::now() + limit);
    let expired = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    // Why the call is cut short, and whether it returned already (past
    // its deadline): a future that returned must not be polled again.
    let (reason, returned) = tokio::select! {
        joined = &mut call => {
            if deadline.is_none_or(|at| tokio::time::Instant::now() < at) {
                return Some(settled(outcomes(n, joined), &signals));
            }
            (CancelReason::Timeout, true)
        }
        _ = expired => (CancelReason::Timeout, false),
        _ = cancellation.stop.cancelled() => (CancelReason::Shutdown, false),
    };
    for signal in &signals {
        signal.cancel(reason);
    }
    // The call gets the cancel grace to return.
    let joined = if returned {
        None
    } else {
        tokio::time::timeout(cancellation.grace, &mut call)
            .await
            .ok()
    };
    let outcomes = match reason {
        CancelReason::Timeout => {
            // What a handler returns after its timeout does not count: the
            // attempt failed (and a late success is retried, at least once).
            let limit = timeout.unwrap_or_default();
            vec![retry(&format!("timed out after {} ms", limit.as_millis())); n]
        }
        _ => outcomes(n, joined?),
    };
    Some(settled(outcomes, &signals))
}

/// Each job's outcome as it is recorded, given why it was cancelled.
fn settled(outcomes: Vec<Outcome>, signals: &[CancelSignal]) -> Vec<Outcome> {
    outcomes
        .into_iter()
        .zip(signals)
        .map(|(outcome, signal)| after_cancel(outcome, signal.reason()))
        .collect()
}

/// Per job: the operator's cancel turns anything but a success into a
/// burial; a shutdown turns a failure into a snooze of zero.
fn after_cancel(outcome: Outcome, reason: Option<CancelReason>) -> Outcome {
    match (reason, outcome) {
        (_, done @ (Outcome::Done | Outcome::DoneWith(_))) => done,
        (Some(CancelReason::Operator), Outcome::Bury(why) | Outcome::Retry { reason: why, .. }) => {
            Outcome::Bury(format!("cancelled by an operator: {why}"))
        }
        (Some(CancelReason::Operator), Outcome::Snooze(_)) => {
            Outcome::Bury("cancelled by an operator".to_owned())
        }
        (Some(CancelReason::Shutdown), Outcome::Retry { .. }) => Outcome::Snooze(Duration::ZERO),
        (_, other) => other,
    }
}

fn retry(reason: &str) -> Outcome {
    Outcome::Retry {
        reason: reason.to_owned(),
        after: None,
    }
}

/// The outcomes of a call that returned (or panicked): one per job.
fn outcomes(
    n: usize,
    joined: std::thread::Result<std::result::Result<Vec<Outcome>, crate::HandlerError>>,
) -> Vec<Outcome> {
    let failed = match joined {
        Ok(Ok(outcomes)) if outcomes.len() == n => return outcomes,
        Ok(Ok(outcomes)) => miscounted(n, outcomes.len()),
        Ok(Err(e)) => e.to_string(),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".to_owned());
            format!("handler panicked: {msg}")
        }
    };
    vec![retry(&failed); n]
}
