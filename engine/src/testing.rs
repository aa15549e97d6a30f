//! Run a handler on a payload and get its outcome, without Redis or a
//! worker (like oban's `perform_job` and apalis' `TestWorker`).
//!
//! The call goes through the same code a worker uses: the payload is
//! decoded by typed handlers (a poison message is buried), a panic counts
//! as a failed attempt, a run past the job's timeout is cancelled and
//! fails, and the cancel rules of [`CancelReason`] apply.
//!
//! ```
//! use sluice_engine::testing::{TestJob, TestWorker};
//! use sluice_engine::{Outcome, handler_fn};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let double = handler_fn(|_job, n: u32| async move { Ok(Outcome::DoneWith((n * 2).to_string())) });
//! let outcome = TestWorker::new(double).perform(TestJob::new(&21u32)).await;
//! assert_eq!(outcome, Outcome::DoneWith("42".to_owned()));
//! # }
//! ```

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::handler::{BatchHandler, Batched, Runner};
use crate::job::{CancelReason, Job, Outcome};
use crate::run::Cancellation;

/// A job as a test hands it to a handler. Defaults: id `test-1`, queue
/// `test`, attempt 1 of 4, priority 0, no timeout.
#[derive(Debug, Clone)]
pub struct TestJob {
    job: Job,
    operator_cancel_after: Option<Duration>,
}

impl TestJob {
    /// A job whose payload is `payload` encoded as the typed API encodes it
    /// (MessagePack). A value MessagePack cannot encode gives an empty
    /// payload, which a typed handler buries as a poison message.
    pub fn new<T: Serialize + ?Sized>(payload: &T) -> Self {
        // Encoded as a producer's enqueue encodes it.
        let encoded = crate::NewJob::new(payload, crate::JobOptions::new());
        Self::raw(encoded.map(|job| job.payload).unwrap_or_default())
    }

    /// A job with this payload as stored.
    pub fn raw(payload: Vec<u8>) -> Self {
        Self {
            job: Job {
                id: "test-1".to_owned(),
                queue: "test".to_owned(),
                attempt: 1,
                max_attempts: 4,
                priority: 0,
                timeout: None,
                created_at_ms: crate::registry::unix_ms(),
                payload,
                entry_id: String::new(),
                fence: 0,
                consumer: String::new(),
                cancel: Default::default(),
            },
            operator_cancel_after: None,
        }
    }

    /// Its id.
    pub fn id(mut self, id: &str) -> Self {
        self.job.id = id.to_owned();
        self
    }

    /// Its queue's name.
    pub fn queue(mut self, queue: &str) -> Self {
        self.job.queue = queue.to_owned();
        self
    }

    /// This run's number and the runs allowed in all.
    pub fn attempt(mut self, attempt: u32, max_attempts: u32) -> Self {
        self.job.attempt = attempt;
        self.job.max_attempts = max_attempts;
        self
    }

    /// Its priority level.
    pub fn priority(mut self, level: u8) -> Self {
        self.job.priority = level;
        self
    }

    /// Its run timeout.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.job.timeout = Some(limit);
        self
    }

    /// Have an operator cancel it this long after it starts.
    pub fn cancelled_by_operator_after(mut self, after: Duration) -> Self {
        self.operator_cancel_after = Some(after);
        self
    }
}

/// Runs a handler on [`TestJob`]s.
#[derive(Debug)]
pub struct TestWorker<R> {
    handler: Arc<R>,
    cancel_grace: Duration,
}

impl<B: BatchHandler> TestWorker<Batched<B>> {
    /// A test worker for a batch handler.
    pub fn batched(handler: B) -> Self {
        Self::new(Batched(handler))
    }
}

impl<R: Runner> TestWorker<R> {
    /// A test worker for `handler`, with the worker's default cancel grace.
    pub fn new(handler: R) -> Self {
        Self {
            handler: Arc::new(handler),
            cancel_grace: crate::WorkerConfig::default().cancel_grace,
        }
    }

    /// How long a cancelled handler may take to return.
    pub fn cancel_grace(mut self, grace: Duration) -> Self {
        self.cancel_grace = grace;
        self
    }

    /// Run one job and return the outcome a worker would record.
    pub async fn perform(&self, job: TestJob) -> Outcome {
        let mut outcomes = self.perform_batch(vec![job]).await;
        outcomes.pop().unwrap_or(Outcome::Done)
    }

    /// Run jobs in one call (a batch handler gets them all, up to its
    /// `max_batch`; a per-job handler gets them one after another) and
    /// return one outcome per job.
    pub async fn perform_batch(&self, jobs: Vec<TestJob>) -> Vec<Outcome> {
        // Without a stop every call returns its outcomes (a handler that
        // hangs hangs the test, as it would hang a worker's slot).
        self.perform_stopping(jobs, None).await.unwrap_or_default()
    }

    /// Run one job and stop the worker `after` this long with its shutdown
    /// grace over. `None` when the handler did not return within the
    /// cancel grace: a worker leaves such a job to be reclaimed.
    pub async fn perform_until_shutdown(&self, job: TestJob, after: Duration) -> Option<Outcome> {
        let mut outcomes = self.perform_stopping(vec![job], Some(after)).await?;
        outcomes.pop()
    }

    async fn perform_stopping(
        &self,
        jobs: Vec<TestJob>,
        stop_after: Option<Duration>,
    ) -> Option<Vec<Outcome>> {
        let cancellation = Cancellation {
            stop: CancellationToken::new(),
            grace: self.cancel_grace,
        };
        let mut timers = Vec::new();
        if let Some(after) = stop_after {
            let stop = cancellation.stop.clone();
            timers.push(tokio::spawn(async move {
                tokio::time::sleep(after).await;
                stop.cancel();
            }));
        }
        let mut all = Vec::with_capacity(jobs.len());
        for job in &jobs {
            if let Some(after) = job.operator_cancel_after {
                let signal = job.job.cancel.clone();
                timers.push(tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    signal.cancel(CancelReason::Operator);
                }));
            }
        }
        let jobs: Vec<Job> = jobs.into_iter().map(|j| j.job).collect();
        let max_batch = self.handler.max_batch().max(1);
        let mut jobs = jobs.into_iter().peekable();
        let mut stopped = false;
        while jobs.peek().is_some() && !stopped {
            let batch: Vec<Job> = jobs.by_ref().take(max_batch).collect();
            match crate::run::run(self.handler.clone(), batch, &cancellation).await {
                Some(outcomes) => all.extend(outcomes),
                None => stopped = true,
            }
        }
        for timer in timers {
            timer.abort();
        }
        (!stopped).then_some(all)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::handler::{TypedBatchHandler, handler_fn};
    use crate::{HandlerError, Typed};

    #[tokio::test]
    async fn a_typed_handler_gets_its_args_and_a_poison_message_is_buried() {
        let worker = TestWorker::new(handler_fn(|job: Job, n: u32| async move {
            Ok(Outcome::DoneWith(format!("{} {}", job.id, n + 1)))
        }));
        let ok = worker.perform(TestJob::new(&41u32).id("j7")).await;
        assert_eq!(ok, Outcome::DoneWith("j7 42".to_owned()));
        let poison = worker.perform(TestJob::new("not a number")).await;
        assert!(
            matches!(&poison, Outcome::Bury(r) if r.starts_with("poison message")),
            "{poison:?}"
        );
    }

    #[tokio::test]
    async fn a_panic_and_an_error_are_failed_attempts() {
        let worker = TestWorker::new(|job: Job| async move {
            if job.attempt == 1 {
                panic!("boom");
            }
            Err::<Outcome, HandlerError>("db down".into())
        });
        let panicked = worker.perform(TestJob::raw(vec![])).await;
        assert!(
            matches!(&panicked, Outcome::Retry { reason, .. } if reason == "handler panicked: boom"),
            "{panicked:?}"
        );
        let failed = worker.perform(TestJob::raw(vec![]).attempt(2, 4)).await;
        assert!(
            matches!(&failed, Outcome::Retry { reason, .. } if reason == "db down"),
            "{failed:?}"
        );
    }

    /// Waits for its cancellation, notes the reason, and returns `answer`.
    fn cleaning_up(
        seen: Arc<std::sync::Mutex<Option<CancelReason>>>,
        answer: Outcome,
    ) -> impl crate::Handler {
        move |job: Job| {
            let seen = seen.clone();
            let answer = answer.clone();
            async move {
                job.cancelled().await;
                *seen.lock().expect("lock") = job.cancel_reason();
                Ok(answer)
            }
        }
    }

    // Paused time: the timers fire in order, at once, whatever the load.
    #[tokio::test(start_paused = true)]
    async fn a_timeout_reaches_the_handler_and_fails_the_attempt() {
        let seen = Arc::default();
        let worker = TestWorker::new(cleaning_up(Arc::clone(&seen), Outcome::Done));
        let job = TestJob::raw(vec![]).timeout(Duration::from_millis(30));
        let outcome = worker.perform(job).await;
        assert!(
            matches!(&outcome, Outcome::Retry { reason, .. } if reason == "timed out after 30 ms"),
            "{outcome:?}"
        );
        assert_eq!(*seen.lock().expect("lock"), Some(CancelReason::Timeout));
    }

    // Real time: the handler blocks its thread, so no timer can interrupt
    // it; what it returns after its timeout must still not count.
    #[tokio::test]
    async fn a_handler_that_blocks_past_its_timeout_still_fails_the_attempt() {
        let worker = TestWorker::new(|_job: Job| async move {
            std::thread::sleep(Duration::from_millis(60));
            Ok::<_, HandlerError>(Outcome::Done)
        });
        for _ in 0..5 {
            let job = TestJob::raw(vec![]).timeout(Duration::from_millis(10));
            let outcome = worker.perform(job).await;
            assert!(
                matches!(&outcome, Outcome::Retry { reason, .. } if reason == "timed out after 10 ms"),
                "{outcome:?}"
            );
        }
    }

    /// A call that blocks its thread, then returns; it notes any poll
    /// after it returned (a future must not be polled again then).
    struct BlocksThenReturns {
        repolled: Arc<AtomicBool>,
    }

    struct BlockingCall {
        returned: bool,
        repolled: Arc<AtomicBool>,
    }

    impl std::future::Future for BlockingCall {
        type Output = Result<Vec<Outcome>, HandlerError>;

        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Self::Output> {
            if self.returned {
                self.repolled.store(true, Ordering::SeqCst);
                return std::task::Poll::Pending;
            }
            std::thread::sleep(Duration::from_millis(60));
            self.returned = true;
            std::task::Poll::Ready(Ok(vec![Outcome::Done]))
        }
    }

    impl crate::handler::Runner for BlocksThenReturns {
        fn max_batch(&self) -> usize {
            1
        }

        fn run(
            self: Arc<Self>,
            _jobs: Vec<Job>,
        ) -> impl std::future::Future<Output = Result<Vec<Outcome>, HandlerError>> + Send + 'static
        {
            BlockingCall {
                returned: false,
                repolled: self.repolled.clone(),
            }
        }
    }

    // Real time, as above.
    #[tokio::test]
    async fn a_call_that_returned_past_its_timeout_is_not_polled_again() {
        let repolled = Arc::new(AtomicBool::new(false));
        let worker = TestWorker::new(BlocksThenReturns {
            repolled: repolled.clone(),
        });
        let job = TestJob::raw(vec![]).timeout(Duration::from_millis(10));
        let outcome = worker.perform(job).await;
        assert!(
            matches!(&outcome, Outcome::Retry { reason, .. } if reason == "timed out after 10 ms"),
            "{outcome:?}"
        );
        assert!(!repolled.load(Ordering::SeqCst), "polled after it returned");
    }

    // Paused time: the timers fire in order, at once, whatever the load.
    #[tokio::test(start_paused = true)]
    async fn a_shutdown_reaches_the_handler_and_its_failure_spends_no_attempt() {
        let seen = Arc::default();
        let failing = Outcome::Retry {
            reason: "interrupted".to_owned(),
            after: None,
        };
        let worker = TestWorker::new(cleaning_up(Arc::clone(&seen), failing));
        let outcome = worker
            .perform_until_shutdown(TestJob::raw(vec![]), Duration::from_millis(20))
            .await;
        assert_eq!(outcome, Some(Outcome::Snooze(Duration::ZERO)));
        assert_eq!(*seen.lock().expect("lock"), Some(CancelReason::Shutdown));
    }

    // Paused time: the timers fire in order, at once, whatever the load.
    #[tokio::test(start_paused = true)]
    async fn a_handler_deaf_to_cancellation_is_aborted_after_the_grace() {
        let finished = Arc::new(AtomicBool::new(false));
        let flag = finished.clone();
        let worker = TestWorker::new(move |_job: Job| {
            let flag = flag.clone();
            async move {
                tokio::time::sleep(Duration::from_secs(30)).await;
                flag.store(true, Ordering::SeqCst);
                Ok(Outcome::Done)
            }
        })
        .cancel_grace(Duration::from_millis(20));
        let stopped = worker
            .perform_until_shutdown(TestJob::raw(vec![]), Duration::from_millis(10))
            .await;
        assert_eq!(stopped, None, "left to reclaim");
        let timed_out = worker
            .perform(TestJob::raw(vec![]).timeout(Duration::from_millis(10)))
            .await;
        assert!(matches!(timed_out, Outcome::Retry { .. }), "{timed_out:?}");
        assert!(!finished.load(Ordering::SeqCst), "the task was aborted");
    }

    // Paused time: the timers fire in order, at once, whatever the load.
    #[tokio::test(start_paused = true)]
    async fn an_operator_cancel_buries_unless_the_job_still_succeeded() {
        let seen = Arc::default();
        let failing = Outcome::Retry {
            reason: "stopped early".to_owned(),
            after: None,
        };
        let worker = TestWorker::new(cleaning_up(Arc::clone(&seen), failing));
        let job = TestJob::raw(vec![]).cancelled_by_operator_after(Duration::from_millis(10));
        let outcome = worker.perform(job).await;
        assert_eq!(
            outcome,
            Outcome::Bury("cancelled by an operator: stopped early".to_owned())
        );
        assert_eq!(*seen.lock().expect("lock"), Some(CancelReason::Operator));

        let finishing = TestWorker::new(cleaning_up(Arc::default(), Outcome::Done));
        let job = TestJob::raw(vec![]).cancelled_by_operator_after(Duration::from_millis(10));
        assert_eq!(finishing.perform(job).await, Outcome::Done);
    }

    /// Sums its numbers; fails the batch when one is 13.
    struct Summing;

    impl TypedBatchHandler for Summing {
        type Args = u32;

        fn max_batch(&self) -> usize {
            3
        }

        async fn handle_batch(&self, jobs: Vec<(Job, u32)>) -> Result<Vec<Outcome>, HandlerError> {
            if jobs.iter().any(|(_, n)| *n == 13) {
                return Err("unlucky batch".into());
            }
            let sum: u32 = jobs.iter().map(|(_, n)| n).sum();
            Ok(jobs
                .iter()
                .map(|(job, _)| Outcome::DoneWith(format!("{} of {sum}", job.id)))
                .collect())
        }
    }

    #[tokio::test]
    async fn a_batch_handler_gets_decoded_batches_and_poison_is_left_out() {
        let worker = TestWorker::batched(Typed(Summing));
        let jobs = vec![
            TestJob::new(&1u32).id("a"),
            TestJob::new("poison").id("b"),
            TestJob::new(&2u32).id("c"),
            TestJob::new(&4u32).id("d"),
            TestJob::new(&8u32).id("e"),
        ];
        let outcomes = worker.perform_batch(jobs).await;
        // Batches of three: [a, b, c] sums 1 + 2, [d, e] sums 4 + 8.
        assert_eq!(outcomes.len(), 5);
        assert_eq!(outcomes[0], Outcome::DoneWith("a of 3".to_owned()));
        assert!(matches!(&outcomes[1], Outcome::Bury(r) if r.starts_with("poison message")));
        assert_eq!(outcomes[2], Outcome::DoneWith("c of 3".to_owned()));
        assert_eq!(outcomes[3], Outcome::DoneWith("d of 12".to_owned()));
        assert_eq!(outcomes[4], Outcome::DoneWith("e of 12".to_owned()));

        let failed = worker
            .perform_batch(vec![TestJob::new(&13u32), TestJob::new(&1u32)])
            .await;
        assert!(
            failed
                .iter()
                .all(|o| matches!(o, Outcome::Retry { reason, .. } if reason == "unlucky batch")),
            "{failed:?}"
        );
    }

    /// Returns one outcome too few.
    struct Miscounting;

    impl BatchHandler for Miscounting {
        fn max_batch(&self) -> usize {
            10
        }

        async fn handle_batch(&self, jobs: Vec<Job>) -> Result<Vec<Outcome>, HandlerError> {
            Ok(vec![Outcome::Done; jobs.len() - 1])
        }
    }

    #[tokio::test]
    async fn a_batch_answered_with_the_wrong_count_fails_every_job() {
        let outcomes = TestWorker::batched(Miscounting)
            .perform_batch(vec![TestJob::raw(vec![]), TestJob::raw(vec![])])
            .await;
        assert_eq!(outcomes.len(), 2);
        for o in outcomes {
            assert!(
                matches!(&o, Outcome::Retry { reason, .. } if reason.contains("1 outcomes for 2 jobs")),
                "{o:?}"
            );
        }
    }
}
