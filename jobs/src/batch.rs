//! `Batcher`: turns one-job-at-a-time handler calls into bulk writes.
//!
//! The engine runs a handler once per job. The ingest and audit handlers
//! want one SQL statement per hundreds of jobs, so each handler call hands
//! its item to a `Batcher` and waits for its own result; the batcher's task
//! collects what arrives (up to `max` items, waiting at most `linger` after
//! the first) and runs the flush once for all of them. With a worker
//! claiming 500 jobs at a time and running 500 at once, a flush sees up to
//! 500 items.

use std::future::Future;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

type Request<I, O> = (I, oneshot::Sender<O>);

/// Why a batch write failed, as every job of the batch sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// PostgreSQL is down: the jobs wait for it without spending attempts.
    Unavailable(String),
    /// Anything else: a failed attempt, retried with backoff.
    Failed(String),
}

impl StoreError {
    /// Classify a database error.
    pub fn from_db(context: &str, e: &sqlx::Error) -> Self {
        let message = format!("{context}: {e}");
        if crate::db::is_unavailable(e) {
            Self::Unavailable(message)
        } else {
            Self::Failed(message)
        }
    }

    /// What the job's handler answers.
    pub fn into_outcome(
        self,
        job: &sluice_engine::Job,
    ) -> Result<sluice_engine::Outcome, sluice_engine::HandlerError> {
        match self {
            Self::Unavailable(_) => Ok(crate::db::wait_for_database(job)),
            Self::Failed(m) => Err(m.into()),
        }
    }
}

/// Collects items into batches for a flush function. Cheap to clone.
#[derive(Debug)]
pub struct Batcher<I, O> {
    tx: mpsc::Sender<Request<I, O>>,
}

impl<I, O> Clone for Batcher<I, O> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Start the batching task. `flush` gets a batch and returns one output
    /// per item, in order. The task ends when every clone is dropped.
    pub fn spawn<F, Fut>(max: usize, linger: Duration, flush: F) -> Self
    where
        F: Fn(Vec<I>) -> Fut + Send + 'static,
        Fut: Future<Output = Vec<O>> + Send,
    {
        let max = max.max(1);
        let (tx, mut rx) = mpsc::channel::<Request<I, O>>(max * 4);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut batch = vec![first];
                let deadline = tokio::time::Instant::now() + linger;
                while batch.len() < max {
                    match rx.try_recv() {
                        Ok(r) => batch.push(r),
                        Err(mpsc::error::TryRecvError::Disconnected) => break,
                        Err(mpsc::error::TryRecvError::Empty) => {
                            match tokio::time::timeout_at(deadline, rx.recv()).await {
                                Ok(Some(r)) => batch.push(r),
                                Ok(None) | Err(_) => break,
                            }
                        }
                    }
                }
                let (items, replies): (Vec<I>, Vec<oneshot::Sender<O>>) = batch.into_iter().unzip();
                let outputs = flush(items).await;
                // A caller that gave up (its job timed out) has dropped its
                // receiver; its item was still written, and the flushes
                // are idempotent, so the retry adds nothing twice.
                for (reply, out) in replies.into_iter().zip(outputs) {
                    let _ = reply.send(out);
                }
            }
        });
        Self { tx }
    }

    /// Hand `item` to the next batch and wait for its output. `None` when
    /// the batching task has stopped or dropped the item's output.
    pub async fn submit(&self, item: I) -> Option<O> {
        let (reply, wait) = oneshot::channel();
        self.tx.send((item, reply)).await.ok()?;
        wait.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[tokio::test]
    async fn concurrent_items_share_a_flush_and_get_their_own_output() {
        let flushes = Arc::new(AtomicUsize::new(0));
        let seen = flushes.clone();
        let batcher = Batcher::spawn(100, Duration::from_millis(50), move |items: Vec<u32>| {
            seen.fetch_add(1, Ordering::SeqCst);
            async move { items.into_iter().map(|i| i * 2).collect() }
        });
        let mut tasks = Vec::new();
        for i in 0..50u32 {
            let b = batcher.clone();
            tasks.push(tokio::spawn(async move { (i, b.submit(i).await) }));
        }
        for t in tasks {
            let (i, out) = t.await.expect("task");
            assert_eq!(out, Some(i * 2));
        }
        let n = flushes.load(Ordering::SeqCst);
        assert!((1..50).contains(&n), "50 items took {n} flushes");
    }
}
