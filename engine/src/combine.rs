//! Enqueue calls of one partition handle that arrive while others are on
//! their way to Redis travel together, in one `enqueue.lua` call.
//!
//! Why: a script call costs Redis far more than the `XADD` of one job
//! inside it (the call's record, the counters, Lua's set-up), so many
//! producers each enqueueing one job at a time (API requests, handlers)
//! would pay that cost per job. With at most [`MAX_SENDING`] calls on
//! their way per handle, whatever arrives meanwhile waits and goes in the
//! next call, so the cost is shared; a lone call still goes at once.
//!
//! What each caller gets is unchanged: its own jobs' ids in its order, or
//! the error of the call that carried them. A combined call is one call:
//! it has one call token, so a retry after a lost reply adds nothing twice
//! (`enqueue.lua`), and its jobs are added all together or not at all.
//! Jobs with the same idempotency key in one call are taken in order, as
//! in any batch: the first is added and the others answer its id.
//!
//! A combined call runs in a task of its own, so a caller that stops
//! waiting (a dropped HTTP request) never cuts short a call that carries
//! other callers' jobs. A lone call, which carries only its caller's jobs,
//! runs in the caller's task: a hand-off to another task and back would
//! cost it two wake-ups.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::partition::{Enqueued, Partition};
use crate::store::EnqueueItem;

/// Combined calls on their way at once, per handle: one on the wire while
/// Redis runs another, and some slack for a call that is being retried.
pub(crate) const MAX_SENDING: usize = 4;

/// The most jobs a combined call carries: a script blocks Redis while it
/// runs, so one call stays short. A caller's batch this large or larger
/// is sent alone, at once.
pub(crate) const MAX_COMBINED_JOBS: usize = 1_000;

/// The most payload bytes a combined call carries, for the same reason: a
/// call of many callers' large jobs would block Redis and could take
/// longer than the response timeout, then be sent again, whole. A caller's
/// own call this large goes alone.
pub(crate) const MAX_COMBINED_BYTES: usize = 4 << 20;

/// The calls waiting to go, and how many combined calls are on their way.
#[derive(Debug, Default)]
pub(crate) struct EnqueueCombiner {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    waiting: VecDeque<Waiter>,
    sending: usize,
}

#[derive(Debug)]
struct Waiter {
    items: Vec<EnqueueItem>,
    reply: oneshot::Sender<Result<Vec<Enqueued>>>,
}

impl EnqueueCombiner {
    /// Enqueue `items` (checked already) on `partition`, together with
    /// whatever other calls wait.
    pub(crate) async fn enqueue(
        &self,
        partition: &Partition,
        items: Vec<EnqueueItem>,
    ) -> Result<Vec<Enqueued>> {
        if items.len() >= MAX_COMBINED_JOBS {
            return partition.send_enqueue(&items).await;
        }
        let route = {
            let mut state = lock(&self.state);
            if state.sending < MAX_SENDING && state.waiting.is_empty() {
                state.sending += 1;
                Route::Lone(items)
            } else {
                let (reply, answer) = oneshot::channel();
                state.waiting.push_back(Waiter { items, reply });
                let first = (state.sending < MAX_SENDING).then(|| {
                    state.sending += 1;
                    take_calls(&mut state)
                });
                Route::Queued(answer, first)
            }
        };
        match route {
            Route::Lone(items) => {
                // It carries only this caller's jobs, so it is sent from
                // this task, without a hand-off to a sender task and back
                // (two wake-ups, a good part of a lone call's latency).
                // Calls that arrive meanwhile wait, and go when it ends
                // (`LoneCall`).
                let lone = LoneCall {
                    state: Arc::clone(&self.state),
                    partition: partition.clone(),
                };
                let result = partition.send_enqueue(&items).await;
                drop(lone);
                result
            }
            Route::Queued(answer, first) => {
                if let Some(calls) = first {
                    let sender = Sender {
                        state: Arc::clone(&self.state),
                        done: false,
                    };
                    tokio::spawn(sender.send(partition.clone(), calls));
                }
                answer.await.unwrap_or_else(|_| Err(not_sent()))
            }
        }
    }
}

/// How one caller's call goes: alone, from its own task, when nothing else
/// waits and there is room on the way; otherwise queued, to go with the
/// others in a sender task (started by this caller when there is room).
enum Route {
    Lone(Vec<EnqueueItem>),
    Queued(
        oneshot::Receiver<Result<Vec<Enqueued>>>,
        Option<Vec<Waiter>>,
    ),
}

/// A lone call sent from its caller's task. When it ends, answered or
/// dropped with its caller, its place goes to the calls that arrived
/// meanwhile (a sender task for them), or is freed.
struct LoneCall {
    state: Arc<Mutex<State>>,
    partition: Partition,
}

impl Drop for LoneCall {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        if state.waiting.is_empty() {
            state.sending -= 1;
            return;
        }
        let calls = take_calls(&mut state);
        drop(state);
        let sender = Sender {
            state: Arc::clone(&self.state),
            done: false,
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(sender.send(self.partition.clone(), calls));
            }
            // No runtime to send them from (it is shutting down): they
            // are answered as unsent, and the sender's drop gives back the
            // place (failing any that arrive meanwhile, when it was the
            // last).
            Err(_) => {
                for waiter in calls {
                    let _ = waiter.reply.send(Err(not_sent()));
                }
                drop(sender);
            }
        }
    }
}

/// One task sending combined calls until nothing waits. Dropped without
/// finishing (a panic), it fails the calls still waiting, which were not
/// sent, rather than leave them waiting for a sender that never comes.
struct Sender {
    state: Arc<Mutex<State>>,
    done: bool,
}

impl Sender {
    async fn send(mut self, partition: Partition, mut calls: Vec<Waiter>) {
        loop {
            let counts: Vec<usize> = calls.iter().map(|c| c.items.len()).collect();
            let items: Vec<EnqueueItem> = calls
                .iter_mut()
                .flat_map(|c| std::mem::take(&mut c.items))
                .collect();
            let result = partition.send_enqueue(&items).await;
            answer(calls, &counts, result);
            let mut state = lock(&self.state);
            if state.waiting.is_empty() {
                state.sending -= 1;
                self.done = true;
                return;
            }
            calls = take_calls(&mut state);
        }
    }
}

/// Each call its own jobs' answers, in its order (`counts[i]` jobs for
/// `calls[i]`), or the error of the call that carried them.
fn answer(calls: Vec<Waiter>, counts: &[usize], result: Result<Vec<Enqueued>>) {
    match result {
        Ok(enqueued) => {
            let mut enqueued = enqueued.into_iter();
            for (call, &n) in calls.into_iter().zip(counts) {
                let _ = call.reply.send(Ok(enqueued.by_ref().take(n).collect()));
            }
        }
        Err(e) => {
            for call in calls {
                let _ = call.reply.send(Err(e.for_another_caller()));
            }
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut state = lock(&self.state);
        state.sending -= 1;
        if state.sending == 0 {
            for waiter in state.waiting.drain(..) {
                let _ = waiter.reply.send(Err(not_sent()));
            }
        }
    }
}

/// The calls that go next: the oldest first, as many as fit in one call
/// by jobs and by bytes (always at least one).
fn take_calls(state: &mut State) -> Vec<Waiter> {
    let (mut jobs, mut bytes) = (0, 0);
    let mut calls = Vec::new();
    while let Some(next) = state.waiting.front() {
        let next_bytes: usize = next.items.iter().map(|i| i.payload.len()).sum();
        if !calls.is_empty()
            && (jobs + next.items.len() > MAX_COMBINED_JOBS
                || bytes + next_bytes > MAX_COMBINED_BYTES)
        {
            break;
        }
        jobs += next.items.len();
        bytes += next_bytes;
        calls.extend(state.waiting.pop_front());
    }
    calls
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding it leaves a queue of waiters: still good.
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The answer of a caller whose sender stopped (a panic, or the runtime
/// shutting down) before answering it: its jobs may or may not be in.
fn not_sent() -> Error {
    Error::Protocol {
        operation: "enqueue",
        detail: "the call's sender stopped before it answered".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(jobs: usize, payload_bytes: usize) -> Waiter {
        let item = EnqueueItem {
            id: String::new(),
            payload: vec![0; payload_bytes],
            priority: 0,
            delay_ms: 0,
            max_attempts: 1,
            backoff: String::new(),
            timeout_ms: 0,
            idempotency_key: String::new(),
            idempotency_window_ms: 0,
        };
        Waiter {
            items: vec![item; jobs],
            reply: oneshot::channel().0,
        }
    }

    /// Issue 39, defect 10: calls are combined up to a size in bytes as
    /// well as in jobs, so many callers' large jobs do not make one call
    /// that blocks Redis (and may outlast the response timeout); a caller's
    /// own call still goes whole.
    #[test]
    fn combined_calls_stay_under_a_size_in_bytes() {
        let mut state = State::default();
        for _ in 0..100 {
            state.waiting.push_back(waiter(1, 1 << 20));
        }
        let mut rounds = 0;
        while !state.waiting.is_empty() {
            let calls = take_calls(&mut state);
            let bytes: usize = calls
                .iter()
                .flat_map(|c| &c.items)
                .map(|i| i.payload.len())
                .sum();
            assert!(
                calls.len() == 1 || bytes <= MAX_COMBINED_BYTES,
                "{} calls of {bytes} bytes combined",
                calls.len()
            );
            rounds += 1;
        }
        assert!(rounds >= 100 * (1 << 20) / MAX_COMBINED_BYTES);
        state.waiting.push_back(waiter(20, 1 << 20));
        assert_eq!(take_calls(&mut state).len(), 1, "a large call goes alone");
    }
}
