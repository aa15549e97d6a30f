//! The `sluice` binary: parse the command line, read the config, set up
//! logging, run; runtime errors are reported on one line, usage errors with
//! the usage line, both with a non-zero exit.

use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: a worker allocates and frees a few
/// small buffers per job (replies, payloads, tasks), and with glibc that
/// was a fifth of a worker's CPU (`bench/README.md`, 2026-12-05).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use sluice::cli::{Cli, Command, RunCommand};
use sluice::config::{FileConfig, LogFormat, Settings};

fn init_logging(format: LogFormat, long_running: bool) {
    let default = if long_running { "info" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLUICE_LOG")
        .unwrap_or_else(|_| default.into());
    // Colour only on a terminal, and never under NO_COLOR (no-color.org):
    // a log file or a pipe gets plain text.
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let file = match &cli.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::without_file()?,
    };
    let long_running = cli.command.is_long_running();
    init_logging(
        cli.log_format.or(file.log_format).unwrap_or_default(),
        long_running,
    );
    let settings = Settings::resolve(cli.redis_url.clone(), cli.prefix.clone(), &file);
    match cli.command {
        Command::Run(RunCommand::Up(args)) => sluice::run::up(settings, file, args).await,
        Command::Run(RunCommand::Serve(args)) => sluice::run::serve(settings, file, args).await,
        Command::Run(RunCommand::Work(args)) => sluice::run::work(settings, file, args).await,
        Command::Pipeline(command) => {
            let section = file.pipeline.clone().unwrap_or_default();
            let redis = sluice::ops::connect(&settings);
            sluice::pipeline::commands::run(command, cli.json, &section, redis).await
        }
        Command::Keys(command) => sluice::ops::keys(command, cli.json),
        Command::Operate(command) => sluice::ops::run(command, cli.json, settings, &file).await,
    }
}

/// A usage error as clap renders it, made compact: the error on one line
/// with what it lists (the missing arguments) and clap's tips, then the
/// usage line when clap gives one.
fn usage_error(rendered: &str) -> String {
    let mut message = Vec::new();
    let mut usage = None;
    for line in rendered.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("For more information") {
            continue;
        } else if line.starts_with("Usage:") {
            usage = Some(line);
        } else {
            message.push(line.trim_start_matches("error: "));
        }
    }
    let mut out = String::from("sluice: error:");
    for part in message {
        out.push_str(if part.starts_with("tip:") { "; " } else { " " });
        out.push_str(part);
    }
    if let Some(usage) = usage {
        out.push('\n');
        out.push_str(usage);
    }
    out
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version: print as clap renders them.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", usage_error(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes.
            eprintln!("sluice: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
