//! The `sluice` binary: parse the command line, run, report errors on one
//! line with a non-zero exit.

use clap::Parser;
use sluice_api::cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match sluice_api::ops::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes.
            eprintln!("sluice: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
