//! SIGTERM / SIGINT: the first asks for a graceful stop (stop claiming,
//! finish running jobs within the grace period, exit 0); a second one exits
//! at once with status 130 (running jobs are reclaimed by other workers
//! after their visibility timeout; none is lost).

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// A stop channel that turns true at the first signal (or when the process
/// sends on it itself). Installs the handlers.
pub fn stop_on_signals() -> anyhow::Result<(watch::Sender<bool>, watch::Receiver<bool>)> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = watch::channel(false);
    let signal_tx = tx.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("stop requested: finishing running jobs (a second signal exits at once)");
        let _ = signal_tx.send(true);
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: exiting now; running jobs will be reclaimed");
        std::process::exit(130);
    });
    Ok((tx, rx))
}

/// Completes when `stop` turns true (or its sender is gone).
pub async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}
