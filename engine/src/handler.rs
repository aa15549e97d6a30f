//! What a worker runs: the [`Handler`] and [`BatchHandler`] traits, their
//! typed forms, and the adapters between them.
//!
//! The poison-message rule lives here once: a payload that does not decode
//! into a typed handler's `Args` is buried (dead-lettered) with the
//! decoding error as the reason, and the handler never sees it.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;

use crate::job::{Job, Outcome};

/// The error a handler may return: any error. It counts as a failed attempt,
/// retried with the job's backoff.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// Runs jobs one at a time (many at once, up to the worker's concurrency).
/// An `Err` is a failed attempt (retried with backoff, then dead-lettered);
/// a panic is caught and counts the same; a run past the job's timeout is
/// cancelled (see [`Job::cancelled`]) and counts the same.
pub trait Handler: Send + Sync + 'static {
    /// Run one job.
    fn handle(&self, job: Job) -> impl Future<Output = Result<Outcome, HandlerError>> + Send;
}

impl<F, Fut> Handler for F
where
    F: Fn(Job) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Outcome, HandlerError>> + Send,
{
    fn handle(&self, job: Job) -> impl Future<Output = Result<Outcome, HandlerError>> + Send {
        self(job)
    }
}

/// Runs up to [`BatchHandler::max_batch`] claimed jobs in one call, for
/// handlers that write in bulk (one SQL statement for hundreds of jobs).
/// Run it with [`Worker::batched`](crate::Worker::batched); the batch's
/// outcomes are recorded in one settle call.
///
/// Return one outcome per job, in the order given. An `Err` is a failed
/// attempt of every job of the batch; so is a panic, and a run past the
/// smallest timeout among the batch's jobs. A batch of `n` jobs holds `n`
/// of the worker's concurrency slots while it runs.
pub trait BatchHandler: Send + Sync + 'static {
    /// Most jobs handed to one call.
    fn max_batch(&self) -> usize;

    /// Run `jobs` (at least one, at most `max_batch`).
    fn handle_batch(
        &self,
        jobs: Vec<Job>,
    ) -> impl Future<Output = Result<Vec<Outcome>, HandlerError>> + Send;
}

/// A [`Handler`] that receives its payload decoded (from MessagePack) as
/// `Args`. Run it wrapped in [`Typed`].
pub trait TypedHandler: Send + Sync + 'static {
    /// The payload's type.
    type Args: DeserializeOwned + Send + 'static;

    /// Run one job whose payload decoded as `args`.
    fn handle(
        &self,
        job: Job,
        args: Self::Args,
    ) -> impl Future<Output = Result<Outcome, HandlerError>> + Send;
}

/// A [`BatchHandler`] that receives every payload decoded as `Args`. Run
/// it wrapped in [`Typed`]; jobs whose payload does not decode are buried
/// and left out of the batch.
pub trait TypedBatchHandler: Send + Sync + 'static {
    /// The payload's type.
    type Args: DeserializeOwned + Send + 'static;

    /// Most jobs handed to one call.
    fn max_batch(&self) -> usize;

    /// Run the jobs with their decoded payloads; one outcome per job, in
    /// order.
    fn handle_batch(
        &self,
        jobs: Vec<(Job, Self::Args)>,
    ) -> impl Future<Output = Result<Vec<Outcome>, HandlerError>> + Send;
}

/// Adapts a [`TypedHandler`] to a [`Handler`], or a [`TypedBatchHandler`]
/// to a [`BatchHandler`], by decoding each payload first.
#[derive(Debug, Clone)]
pub struct Typed<H>(pub H);

/// The outcome of a job whose payload does not decode.
fn poison(e: &crate::DecodeError) -> Outcome {
    Outcome::Bury(format!("poison message: {e}"))
}

impl<H: TypedHandler> Handler for Typed<H> {
    fn handle(&self, job: Job) -> impl Future<Output = Result<Outcome, HandlerError>> + Send {
        let decoded = job.decode::<H::Args>();
        async move {
            match decoded {
                Ok(args) => self.0.handle(job, args).await,
                Err(e) => Ok(poison(&e)),
            }
        }
    }
}

impl<H: TypedBatchHandler> BatchHandler for Typed<H> {
    fn max_batch(&self) -> usize {
        self.0.max_batch()
    }

    async fn handle_batch(&self, jobs: Vec<Job>) -> Result<Vec<Outcome>, HandlerError> {
        // Every position is set: poison messages now, the rest from the call.
        let mut outcomes = vec![Outcome::Done; jobs.len()];
        let mut positions = Vec::with_capacity(jobs.len());
        let mut decoded = Vec::with_capacity(jobs.len());
        for (position, job) in jobs.into_iter().enumerate() {
            match job.decode::<H::Args>() {
                Ok(args) => {
                    positions.push(position);
                    decoded.push((job, args));
                }
                Err(e) => outcomes[position] = poison(&e),
            }
        }
        if !decoded.is_empty() {
            let ran = self.0.handle_batch(decoded).await?;
            if ran.len() != positions.len() {
                return Err(miscounted(positions.len(), ran.len()).into());
            }
            for (position, outcome) in positions.into_iter().zip(ran) {
                outcomes[position] = outcome;
            }
        }
        Ok(outcomes)
    }
}

/// Why a batch is failed when its handler miscounted its outcomes.
pub(crate) fn miscounted(jobs: usize, outcomes: usize) -> String {
    format!("the batch handler returned {outcomes} outcomes for {jobs} jobs")
}

/// A typed handler made of a function. See [`handler_fn`].
pub struct FnHandler<T, F> {
    f: F,
    _payload: PhantomData<fn() -> T>,
}

impl<T, F> std::fmt::Debug for FnHandler<T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FnHandler")
    }
}

/// Wrap `f` so it receives the payload decoded from MessagePack as `T`. A
/// payload that does not decode is a poison message: it goes to the dead
/// letters with the decoding error as the reason, and `f` never sees it.
pub fn handler_fn<T, F, Fut>(f: F) -> Typed<FnHandler<T, F>>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(Job, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Outcome, HandlerError>> + Send,
{
    Typed(FnHandler {
        f,
        _payload: PhantomData,
    })
}

impl<T, F, Fut> TypedHandler for FnHandler<T, F>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(Job, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Outcome, HandlerError>> + Send,
{
    type Args = T;

    fn handle(
        &self,
        job: Job,
        args: T,
    ) -> impl Future<Output = Result<Outcome, HandlerError>> + Send {
        (self.f)(job, args)
    }
}

/// Runs a [`BatchHandler`] in a [`Worker`](crate::Worker): see
/// [`Worker::batched`](crate::Worker::batched).
#[derive(Debug)]
pub struct Batched<B>(pub B);

/// What the worker runs: a [`Handler`] one job per call, or a
/// [`BatchHandler`] (as [`Batched`]) many per call. Implemented for both;
/// a [`BoxedHandler`](crate::BoxedHandler) holds either, so one worker
/// type serves queues of both kinds (a [`Handlers`](crate::Handlers)
/// registry holds them by queue name).
pub trait Runner: Send + Sync + 'static {
    /// Most jobs per call: 1 for a [`Handler`].
    fn max_batch(&self) -> usize;

    /// Run `jobs` (at least one, at most `max_batch`): one outcome each.
    fn run(
        self: Arc<Self>,
        jobs: Vec<Job>,
    ) -> impl Future<Output = Result<Vec<Outcome>, HandlerError>> + Send + 'static;
}

impl<H: Handler> Runner for H {
    fn max_batch(&self) -> usize {
        1
    }

    async fn run(self: Arc<Self>, jobs: Vec<Job>) -> Result<Vec<Outcome>, HandlerError> {
        run_each(&*self, jobs).await
    }
}

/// Run `jobs` one after another through `handler`: what a [`Runner`] of
/// several kinds of handler (an enum over them) does for its per-job ones,
/// which the worker calls with one job at a time.
pub async fn run_each<H: Handler>(
    handler: &H,
    jobs: Vec<Job>,
) -> Result<Vec<Outcome>, HandlerError> {
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        outcomes.push(handler.handle(job).await?);
    }
    Ok(outcomes)
}

impl<B: BatchHandler> Runner for Batched<B> {
    fn max_batch(&self) -> usize {
        self.0.max_batch().max(1)
    }

    async fn run(self: Arc<Self>, jobs: Vec<Job>) -> Result<Vec<Outcome>, HandlerError> {
        self.0.handle_batch(jobs).await
    }
}
