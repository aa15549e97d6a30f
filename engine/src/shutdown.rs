//! One stop signal for a whole process: triggered once (by a signal
//! handler, or by a part that failed), seen by every part that runs until
//! the process stops. Clones share the signal. A worker also stops its own
//! loops with one (`worker/mod.rs`), each loop on a clone of its own.

use std::sync::Arc;
use std::time::Duration;

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

    /// A signal triggered when `event` completes (a `ctrl_c`, a channel):
    /// a task waits for it, and lives until it completes, so make one per
    /// process and clone it. A signal triggered already stops at once
    /// whatever it is given to.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime.
    pub fn when(event: impl Future<Output = ()> + Send + 'static) -> Self {
        let shutdown = Self::new();
        let trigger = shutdown.clone();
        tokio::spawn(async move {
            event.await;
            trigger.trigger();
        });
        shutdown
    }

    /// Ask every part to stop. Triggering again changes nothing.
    pub fn trigger(&self) {
        // Not a new value on a second trigger, so a clone that noticed the
        // first is not woken again (see `noticed`).
        self.sender
            .send_if_modified(|stop| !std::mem::replace(stop, true));
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

    /// Completes when this clone notices the stop: at once if it was asked
    /// for and this clone has not noticed it yet, and never once it has.
    /// Loops that go on after a stop (the keep-alive while jobs finish, a
    /// claim of entries already delivered) are woken by it once, not at
    /// every wait. A clone starts where its original is: one made from a
    /// clone that noticed the stop already never notices it, so give each
    /// loop a clone of a handle that has not waited.
    pub(crate) async fn noticed(&mut self) {
        // The sender lives as long as any clone, so this only ends at a
        // trigger.
        let _ = self.receiver.changed().await;
    }

    /// Sleep `wait`, cut short when this clone notices the stop (see
    /// [`noticed`](Self::noticed)).
    pub(crate) async fn sleep(&mut self, wait: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = self.noticed() => {}
        }
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

    /// The worker's loops rely on this: a loop that goes on after the stop
    /// (the keep-alive while jobs finish) is woken by it once, then sleeps
    /// in full again, and a second trigger does not wake it again.
    #[tokio::test(start_paused = true)]
    async fn a_clone_notices_the_stop_once() {
        use std::time::Duration;
        use tokio::time::Instant;

        let shutdown = Shutdown::new();
        let mut looping = shutdown.clone();
        shutdown.trigger();
        let start = Instant::now();
        looping.sleep(Duration::from_secs(5)).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "cut short when noticed");
        shutdown.trigger();
        looping.sleep(Duration::from_secs(5)).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(5),
            "in full once noticed"
        );
        assert!(looping.is_triggered());
        // Another clone notices it for itself.
        let mut other = shutdown.clone();
        other.sleep(Duration::from_secs(5)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(5));
    }
}
