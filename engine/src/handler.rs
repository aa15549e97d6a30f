//! What a worker runs: the `Handler` trait and its adapters.

use std::future::Future;
use std::marker::PhantomData;

use serde::de::DeserializeOwned;

use crate::job::{Job, Outcome};

/// The error a handler may return: any error. It counts as a failed attempt,
/// retried with the job's backoff.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// Runs jobs. An `Err` is a failed attempt (retried with backoff, then
/// dead-lettered); a panic is caught and counts the same; a run past the
/// job's timeout is cancelled and counts the same.
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

/// A handler that receives its payload decoded as `T`. See [`handler_fn`].
pub struct TypedHandler<T, F> {
    f: F,
    _payload: PhantomData<fn() -> T>,
}

impl<T, F> std::fmt::Debug for TypedHandler<T, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TypedHandler")
    }
}

/// Wrap `f` so it receives the payload decoded from MessagePack as `T`. A
/// payload that does not decode is a poison message: it goes to the dead
/// letters with the decoding error as the reason, and `f` never sees it.
pub fn handler_fn<T, F, Fut>(f: F) -> TypedHandler<T, F>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(Job, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Outcome, HandlerError>> + Send,
{
    TypedHandler {
        f,
        _payload: PhantomData,
    }
}

impl<T, F, Fut> Handler for TypedHandler<T, F>
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(Job, T) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Outcome, HandlerError>> + Send,
{
    fn handle(&self, job: Job) -> impl Future<Output = Result<Outcome, HandlerError>> + Send {
        let decoded = job.decode::<T>();
        async move {
            match decoded {
                Ok(payload) => (self.f)(job, payload).await,
                Err(e) => Ok(Outcome::Bury(format!("poison message: {e}"))),
            }
        }
    }
}
