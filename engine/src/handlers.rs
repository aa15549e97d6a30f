//! Handlers by queue name: [`BoxedHandler`], any [`Runner`] behind one
//! object-safe type, and [`Handlers`], the registry a process fills once
//! (as asynq's `ServeMux` and river's `Workers` are) and a [`Fleet`]
//! serves from.
//!
//! [`Fleet`]: crate::Fleet

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::handler::{HandlerError, Runner};
use crate::job::{Job, Outcome};
use crate::keys::QueueName;

/// What a boxed run returns.
type RunFuture = Pin<Box<dyn Future<Output = Result<Vec<Outcome>, HandlerError>> + Send>>;

/// [`Runner`] made object-safe: its future boxed.
trait DynRunner: Send + Sync + 'static {
    fn max_batch(&self) -> usize;
    fn run_boxed(self: Arc<Self>, jobs: Vec<Job>) -> RunFuture;
}

impl<R: Runner> DynRunner for R {
    fn max_batch(&self) -> usize {
        Runner::max_batch(self)
    }

    fn run_boxed(self: Arc<Self>, jobs: Vec<Job>) -> RunFuture {
        Box::pin(self.run(jobs))
    }
}

/// Any [`Runner`] (a [`Handler`](crate::Handler), a typed handler in
/// [`Typed`](crate::Typed), a batch handler in
/// [`Batched`](crate::Batched)) as one type, so handlers of every kind sit
/// in one [`Handlers`] registry and one worker type runs them. Costs one
/// allocation per call. Cheap to clone.
#[derive(Clone)]
pub struct BoxedHandler(Arc<dyn DynRunner>);

impl std::fmt::Debug for BoxedHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoxedHandler")
            .field("max_batch", &self.0.max_batch())
            .finish_non_exhaustive()
    }
}

impl BoxedHandler {
    /// Box `runner`.
    pub fn new(runner: impl Runner) -> Self {
        Self(Arc::new(runner))
    }
}

impl Runner for BoxedHandler {
    fn max_batch(&self) -> usize {
        self.0.max_batch()
    }

    fn run(
        self: Arc<Self>,
        jobs: Vec<Job>,
    ) -> impl Future<Output = Result<Vec<Outcome>, HandlerError>> + Send + 'static {
        self.0.clone().run_boxed(jobs)
    }
}

/// The handler of each queue a process serves, by queue name: filled once
/// at start-up, then read by whatever runs the workers (see
/// [`Fleet::serve_registered`](crate::Fleet::serve_registered)).
///
/// ```
/// use sluice_engine::{Batched, Handlers, Outcome, handler_fn};
///
/// let mut handlers = Handlers::new();
/// handlers
///     .add("emails", handler_fn(|_job, to: String| async move { Ok(Outcome::Done) }))
///     .expect("a new queue name");
/// assert!(handlers.get("emails").is_some());
/// assert!(handlers.add("emails", handler_fn(|_job, _: String| async { Ok(Outcome::Done) })).is_err());
/// ```
#[derive(Clone, Debug, Default)]
pub struct Handlers {
    by_queue: BTreeMap<String, BoxedHandler>,
}

impl Handlers {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register `handler` for `queue`. Refused when the name is not a
    /// valid queue name, or when the queue already has a handler: a queue
    /// has one handler, and a second registration is a wiring mistake to
    /// report, not to settle silently.
    pub fn add(&mut self, queue: &str, handler: impl Runner) -> Result<&mut Self> {
        let name = QueueName::new(queue)?;
        if self.by_queue.contains_key(name.as_str()) {
            return Err(Error::invalid(
                "handler",
                format!("queue {queue} already has a handler"),
            ));
        }
        self.by_queue
            .insert(name.as_str().to_owned(), BoxedHandler::new(handler));
        Ok(self)
    }

    /// The handler registered for `queue`.
    pub fn get(&self, queue: &str) -> Option<&BoxedHandler> {
        self.by_queue.get(queue)
    }

    /// The queues that have a handler, in name order.
    pub fn queues(&self) -> impl Iterator<Item = &str> {
        self.by_queue.keys().map(String::as_str)
    }

    /// Whether no queue has a handler.
    pub fn is_empty(&self) -> bool {
        self.by_queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::{BatchHandler, Batched};

    struct CountsBatch;

    impl BatchHandler for CountsBatch {
        fn max_batch(&self) -> usize {
            7
        }

        async fn handle_batch(&self, jobs: Vec<Job>) -> Result<Vec<Outcome>, HandlerError> {
            Ok(vec![Outcome::Done; jobs.len()])
        }
    }

    #[test]
    fn a_boxed_handler_keeps_its_batch_size() {
        let mut handlers = Handlers::new();
        handlers.add("bulk", Batched(CountsBatch)).expect("add");
        handlers
            .add("one", |_job: Job| async { Ok(Outcome::Done) })
            .expect("add");
        assert_eq!(Runner::max_batch(handlers.get("bulk").expect("bulk")), 7);
        assert_eq!(Runner::max_batch(handlers.get("one").expect("one")), 1);
        assert_eq!(handlers.queues().collect::<Vec<_>>(), ["bulk", "one"]);
    }

    #[test]
    fn a_bad_queue_name_is_refused() {
        let mut handlers = Handlers::new();
        assert!(
            handlers
                .add("a{b}", |_job: Job| async { Ok(Outcome::Done) })
                .is_err()
        );
        assert!(handlers.is_empty());
    }
}
