//! SIGTERM / SIGINT: the first asks for a graceful stop (stop claiming,
//! finish running jobs within the grace period, exit 0); a second one exits
//! at once with status 130 (running jobs are reclaimed by other workers
//! after their visibility timeout; none is lost).

use sluice_engine::Shutdown;
use tokio::signal::unix::{SignalKind, signal};

/// The process's stop signal, triggered by the first signal (or by the
/// process itself, when a part fails). Installs the handlers.
pub fn stop_on_signals() -> anyhow::Result<Shutdown> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = Shutdown::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("stop requested: finishing running jobs (a second signal exits at once)");
        on_signal.trigger();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: exiting now; running jobs will be reclaimed");
        std::process::exit(130);
    });
    Ok(shutdown)
}
