//! The settler: records a worker's finished attempts in batches (the
//! outcomes of one handler call always in the same settle call, when they
//! fit); retries while Redis is down (the jobs stay claimed meanwhile, kept
//! alive, so nothing is lost or run twice).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::held::InFlight;
use super::{Counters, SettleObserver, SettledAttempt};
use crate::backoff::LoopBackoff;
use crate::partition::Partition;
use crate::shutdown::Shutdown;
use crate::store::{SettleItem, Settled};

/// The settler's task, and the stop that ends its retries.
pub(super) struct Settler {
    task: tokio::task::JoinHandle<()>,
    hard_stop: Shutdown,
}

impl Settler {
    /// Start recording, for `consumer` on `queue`, what `rx` brings, up to
    /// `batch` outcomes per call.
    pub(super) fn spawn(
        (queue, consumer): (Partition, String),
        rx: mpsc::UnboundedReceiver<Vec<SettleItem>>,
        batch: usize,
        counters: Arc<Counters>,
        in_flight: InFlight,
        observer: Option<SettleObserver>,
    ) -> Self {
        let hard_stop = Shutdown::new();
        let settle_loop = SettleLoop {
            queue,
            consumer,
            batch,
            counters,
            in_flight,
            observer,
            hard_stop: hard_stop.clone(),
            backoff: LoopBackoff::new("settler"),
            answered: None,
        };
        let task = tokio::spawn(settle_loop.run(rx));
        Self { task, hard_stop }
    }

    /// Once every sender of outcomes is gone: wait for the settler to
    /// record what it holds, or stop it when `grace` is over while Redis
    /// is down.
    pub(super) async fn finish(self, grace: Duration) {
        let abort = self.task.abort_handle();
        if tokio::time::timeout(grace, self.task).await.is_err() {
            self.hard_stop.trigger();
            abort.abort();
        }
    }
}

/// The settler's loop, and what it keeps from one call to the next.
struct SettleLoop {
    queue: Partition,
    consumer: String,
    batch: usize,
    counters: Arc<Counters>,
    in_flight: InFlight,
    observer: Option<SettleObserver>,
    hard_stop: Shutdown,
    backoff: LoopBackoff,
    /// The token of the last answered call goes with the next one, to free
    /// its record.
    answered: Option<String>,
}

impl SettleLoop {
    /// Record what `rx` brings until every sender is gone, or the hard stop.
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Vec<SettleItem>>) {
        let mut groups: Vec<Vec<SettleItem>> = Vec::new();
        while rx.recv_many(&mut groups, self.batch).await > 0 {
            for items in calls(groups.drain(..), self.batch) {
                for items in items.chunks(self.batch) {
                    if !self.settle(items).await {
                        return;
                    }
                }
            }
        }
        let store = self.queue.store();
        store.forget_calls(self.answered.as_slice()).await;
    }

    /// One settle call of `items`, sent again until Redis answers it; false
    /// when the hard stop came first.
    async fn settle(&mut self, items: &[SettleItem]) -> bool {
        // One token per call, kept across its retries (see claim.lua).
        let call = self.queue.call_token(self.answered.take());
        let statuses = loop {
            match self.queue.settle_items(&self.consumer, items, &call).await {
                Ok(statuses) => break statuses,
                Err(e) => {
                    let wait = self.backoff.failed(self.queue.name(), &e);
                    self.hard_stop.sleep(wait).await;
                    if self.hard_stop.is_triggered() {
                        return false;
                    }
                }
            }
        };
        self.backoff.succeeded(self.queue.name());
        self.answered = Some(call.token.clone());
        for (item, status) in items.iter().zip(statuses) {
            self.settled(item, status);
        }
        self.in_flight.release(items);
        true
    }

    /// Count what Redis recorded of `item`, and tell the observer.
    fn settled(&self, item: &SettleItem, status: Settled) {
        self.counters.count(status);
        if let Some(observer) = &self.observer {
            (observer.0)(&SettledAttempt {
                job_id: item.job_id.clone(),
                attempt: item.attempt,
                fence: item.fence,
                consumer: self.consumer.clone(),
                status,
            });
        }
        if status == Settled::Fenced {
            tracing::warn!(
                queue = self.queue.name(),
                id = %item.job_id,
                "outcome refused: the job was reclaimed by another worker after this one was presumed dead"
            );
        }
    }
}

/// `groups` (the outcomes of one handler call each) packed into calls of
/// up to `batch` outcomes, a group never split across two calls unless it
/// is alone larger than `batch`.
fn calls(groups: impl Iterator<Item = Vec<SettleItem>>, batch: usize) -> Vec<Vec<SettleItem>> {
    let mut items: Vec<SettleItem> = Vec::with_capacity(batch);
    let mut calls: Vec<Vec<SettleItem>> = Vec::new();
    for group in groups {
        if !items.is_empty() && items.len() + group.len() > batch {
            calls.push(std::mem::take(&mut items));
        }
        items.extend(group);
    }
    calls.push(items);
    calls
}
