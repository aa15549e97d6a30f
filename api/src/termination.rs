//! SIGTERM / SIGINT: the first asks for a graceful stop (stop claiming,
//! finish running jobs within the grace period, exit 0); a second one exits
//! at once with status 130 (running jobs are reclaimed by other workers
//! after their visibility timeout; none is lost).

use sluice_engine::Shutdown;
use tokio::signal::unix::{SignalKind, signal};

/// The process's [`Shutdown`], triggered by the first SIGTERM or SIGINT
/// (or by the process itself, when a part fails). Installs the handlers.
pub fn stop_on_sigterm() -> anyhow::Result<Shutdown> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let shutdown = Shutdown::new();
    let on_sigterm = shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!(
            "stop requested: finishing running jobs (a second SIGTERM or SIGINT exits at once)"
        );
        on_sigterm.trigger();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second SIGTERM or SIGINT: exiting now; running jobs will be reclaimed");
        std::process::exit(130);
    });
    Ok(shutdown)
}
