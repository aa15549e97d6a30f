//! One stop signal for a whole process: triggered once (by a signal
//! handler, or by a part that failed), seen by every part that runs until
//! the process stops. Clones share the signal.

use std::sync::Arc;

use tokio::sync::watch;

/// A process's stop signal. [`Shutdown::trigger`] once; every clone's
/// [`Shutdown::triggered`] then completes and [`Shutdown::is_triggered`]
/// is true.
///
/// ```
/// # async fn demo() {
/// let shutdown = sluice_engine::Shutdown::new();
/// let seen = shutdown.clone();
/// let task = tokio::spawn(async move { seen.triggered().await });
/// shutdown.trigger();
/// task.await.unwrap();
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Shutdown {
    sender: Arc<watch::Sender<bool>>,
    receiver: watch::Receiver<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    /// A signal not yet triggered.
    pub fn new() -> Self {
        let (sender, receiver) = watch::channel(false);
        Self {
            sender: Arc::new(sender),
            receiver,
        }
    }

    /// Ask every part to stop. Triggering again changes nothing.
    pub fn trigger(&self) {
        self.sender.send_replace(true);
    }

    /// Whether a stop was asked for.
    pub fn is_triggered(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Completes once a stop is asked for (at once if it was).
    pub async fn triggered(&self) {
        let mut receiver = self.receiver.clone();
        // The sender lives as long as any clone, so this only ends at a
        // trigger.
        let _ = receiver.wait_for(|stop| *stop).await;
    }
}

#[cfg(test)]
mod tests {
    use super::Shutdown;

    #[tokio::test]
    async fn every_clone_sees_one_trigger() {
        let shutdown = Shutdown::new();
        let clones: Vec<Shutdown> = (0..3).map(|_| shutdown.clone()).collect();
        assert!(clones.iter().all(|c| !c.is_triggered()));
        let waiting: Vec<_> = clones
            .iter()
            .cloned()
            .map(|c| tokio::spawn(async move { c.triggered().await }))
            .collect();
        clones[1].trigger();
        for w in waiting {
            w.await.expect("task");
        }
        assert!(shutdown.is_triggered());
        // Already triggered: completes at once, and a second trigger is a no-op.
        shutdown.trigger();
        shutdown.triggered().await;
    }
}
