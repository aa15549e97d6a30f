//! The settler: records a worker's finished attempts in batches.

use super::*;

/// The settler's task, and the stop that ends its retries.
pub(super) struct Settler {
    task: tokio::task::JoinHandle<()>,
    hard_stop: Shutdown,
}

impl Settler {
    /// Start recording what `rx` brings (see [`settle_loop`]).
    pub(super) fn spawn(
        (queue, consumer): (Partition, String),
        rx: mpsc::UnboundedReceiver<Vec<SettleItem>>,
        batch: usize,
        counters: Arc<Counters>,
        in_flight: InFlight,
        observer: Option<SettleObserver>,
    ) -> Self {
        let hard_stop = Shutdown::new();
        let task = tokio::spawn(settle_loop(
            (queue, consumer),
            rx,
            batch,
            counters,
            in_flight,
            hard_stop.clone(),
            observer,
        ));
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

/// Record finished attempts of `consumer` on `queue` in batches (the
/// outcomes of one handler call always in the same settle call, when they
/// fit); retry while Redis is down (the jobs stay claimed meanwhile, kept
/// alive, so nothing is lost or run twice).
async fn settle_loop(
    (queue, consumer): (Partition, String),
    mut rx: mpsc::UnboundedReceiver<Vec<SettleItem>>,
    batch: usize,
    counters: Arc<Counters>,
    in_flight: InFlight,
    mut hard_stop: Shutdown,
    observer: Option<SettleObserver>,
) {
    let mut backoff = LoopBackoff::new("settler");
    let mut groups: Vec<Vec<SettleItem>> = Vec::new();
    let mut answered: Option<String> = None;
    while rx.recv_many(&mut groups, batch).await > 0 {
        let mut items: Vec<SettleItem> = Vec::with_capacity(batch);
        let mut calls: Vec<Vec<SettleItem>> = Vec::new();
        for group in groups.drain(..) {
            if !items.is_empty() && items.len() + group.len() > batch {
                calls.push(std::mem::take(&mut items));
            }
            items.extend(group);
        }
        calls.push(items);
        for items in calls {
            for items in items.chunks(batch) {
                // One token per call, kept across its retries (see claim.lua).
                let call = queue.call_token(answered.take());
                let statuses = loop {
                    match queue.settle_items(&consumer, items, &call).await {
                        Ok(statuses) => break statuses,
                        Err(e) => {
                            let wait = backoff.failed(queue.name(), &e);
                            hard_stop.sleep(wait).await;
                            if hard_stop.is_triggered() {
                                return;
                            }
                        }
                    }
                };
                backoff.succeeded(queue.name());
                answered = Some(call.token.clone());
                for (item, status) in items.iter().zip(statuses) {
                    counters.count(status);
                    if let Some(observer) = &observer {
                        (observer.0)(&SettledAttempt {
                            job_id: item.job_id.clone(),
                            attempt: item.attempt,
                            fence: item.fence,
                            consumer: consumer.clone(),
                            status,
                        });
                    }
                    if status == Settled::Fenced {
                        tracing::warn!(
                            queue = queue.name(),
                            id = %item.job_id,
                            "outcome refused: the job was reclaimed by another worker after this one was presumed dead"
                        );
                    }
                }
                in_flight.release(items);
            }
        }
    }
    queue.store().forget_calls(answered.as_slice()).await;
}
