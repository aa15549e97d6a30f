//! The binary's entry point, given the plug-ins it links: parse the
//! command line (the binary's commands and the plug-ins'), read the config,
//! set up logging, run; runtime errors are reported on one line, usage
//! errors with the usage line, both with a non-zero exit.

use std::process::ExitCode;

use clap::FromArgMatches;
use sluice_plugin::{CommandContext, Plugin};

use crate::cli::{Command, GlobalArgs, RunCommand};
use crate::config::{FileConfig, LogFormat, Settings};
use crate::plugins::Linked;

/// Run the `sluice` command line with `plugins` linked.
pub async fn main(plugins: Vec<Box<dyn Plugin>>) -> ExitCode {
    let linked = Linked::new(plugins);
    let matches = match crate::cli::command(&linked).try_get_matches() {
        Ok(matches) => matches,
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
    match run(&linked, &matches).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes.
            eprintln!("sluice: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(linked: &Linked, matches: &clap::ArgMatches) -> anyhow::Result<()> {
    let global = GlobalArgs::from_arg_matches(matches)?;
    let file = match &global.config {
        Some(path) => FileConfig::load(path, &linked.section_names())?,
        None => FileConfig::without_file()?,
    };
    let log_format = global.log_format.or(file.log_format).unwrap_or_default();
    let settings = Settings::resolve(global.redis_url.clone(), global.prefix.clone(), &file);
    let plugin = matches
        .subcommand_name()
        .and_then(|name| linked.command_owner(name));
    if let Some(plugin) = plugin {
        // A plug-in's command is the plug-in's to parse and run, on a
        // config checked as every other command checks it.
        init_logging(log_format, false);
        let checked = linked.configure(&file)?;
        let section = checked
            .section(plugin.name())
            .cloned()
            .expect("every linked plug-in's section is read");
        let context = CommandContext {
            json: global.json,
            redis: Box::pin(async move { crate::ops::connect(&settings).await }),
        };
        return plugin.run_command(matches, &section, context).await;
    }
    let command = Command::from_arg_matches(matches)?;
    init_logging(log_format, command.is_long_running());
    // Every other command checks the plug-ins' sections too: a config
    // mistake shows at once, whatever the command.
    let plugins = linked.configure(&file)?;
    match command {
        Command::Run(RunCommand::Up(args)) => crate::run::up(settings, file, plugins, args).await,
        Command::Run(RunCommand::Serve(args)) => {
            crate::run::serve(settings, file, plugins, args).await
        }
        Command::Run(RunCommand::Work(args)) => {
            crate::run::work(settings, file, plugins, args).await
        }
        Command::Keys(command) => crate::ops::keys(command, global.json),
        Command::Operate(command) => crate::ops::run(command, global.json, settings, &file).await,
    }
}

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
