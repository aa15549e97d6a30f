//! [`TradingPlugin`]: the trading application as the `sluice` binary
//! links it. Its one name, `trading`, is its config section (`[trading]`)
//! and its command (`sluice trading ...`); the names it had before
//! (`[pipeline]`, and its commands at the top level, `sluice migrate` and
//! the rest) still work, with a deprecation warning.

use std::sync::Arc;

use anyhow::{Context, bail};
use clap::{FromArgMatches, Subcommand};
use futures::future::BoxFuture;
use sluice_engine::{Client, CronSchedule};
use sluice_plugin::{
    CommandContext, ConfiguredPlugin, Dependency, Plugin, PluginQueue, PluginRuntime, Section,
};

use super::commands::{self, TradingCommand};
use super::config::TradingSection;
use super::runtime::TradingRuntime;
use crate::queues;

/// The application's one name.
pub const NAME: &str = "trading";

/// What its section was called before.
const FORMER_NAMES: &[&str] = &["pipeline"];

/// The series the handlers' database writes are recorded in, which
/// `db_slow` reads.
pub(super) const DB_SERIES: &str = sluice_engine::alerting::DB_LATENCY;

/// Its database: the health check `GET /health/ready` and the
/// `postgres_down` rule read, and [`DB_SERIES`].
pub(super) const POSTGRES: Dependency = Dependency {
    name: "postgres",
    latency_series: Some(DB_SERIES),
};

/// The trading application, as the `sluice` binary links it.
#[derive(Debug, Clone, Copy, Default)]
pub struct TradingPlugin;

impl TradingPlugin {
    /// The plug-in turned on with `settings` (checked here), as
    /// [`Plugin::configure`] turns it on from the config file.
    pub fn configured(settings: TradingSection) -> anyhow::Result<Arc<dyn ConfiguredPlugin>> {
        settings.validate()?;
        let schedules = settings
            .schedules()
            .iter()
            .map(|s| s.cron())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Arc::new(ConfiguredTrading {
            settings,
            schedules,
        }))
    }
}

impl Plugin for TradingPlugin {
    fn name(&self) -> &'static str {
        NAME
    }

    fn former_names(&self) -> &'static [&'static str] {
        FORMER_NAMES
    }

    /// `sluice trading <command>`, and each command at the top level as it
    /// was before (hidden from `--help`).
    fn commands(&self) -> Vec<clap::Command> {
        let trading = TradingCommand::augment_subcommands(
            clap::Command::new(NAME)
                .about("The trading application: its database, users and backups")
                .subcommand_required(true)
                .arg_required_else_help(true),
        );
        let former: Vec<clap::Command> = trading
            .get_subcommands()
            .map(|c| c.clone().hide(true))
            .collect();
        std::iter::once(trading).chain(former).collect()
    }

    fn run_command<'a>(
        &'a self,
        matches: &'a clap::ArgMatches,
        section: &'a Section,
        context: CommandContext,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let command = match matches.subcommand() {
                Some((NAME, own)) => TradingCommand::from_arg_matches(own)?,
                Some((former, _)) => {
                    tracing::warn!("`sluice {former}` is deprecated: use `sluice {NAME} {former}`");
                    TradingCommand::from_arg_matches(matches)?
                }
                None => bail!("no {NAME} command given"),
            };
            let settings = TradingSection::from_section(section)?;
            commands::run(command, context.json, &settings, context.redis).await
        })
    }

    fn configure(&self, section: &Section) -> anyhow::Result<Option<Arc<dyn ConfiguredPlugin>>> {
        if !section.is_present() {
            return Ok(None);
        }
        let settings = TradingSection::from_section(section)?;
        Self::configured(settings).map(Some)
    }

    fn dependencies(&self) -> Vec<Dependency> {
        vec![POSTGRES]
    }
}

/// The application turned on by its section.
#[derive(Debug)]
struct ConfiguredTrading {
    settings: TradingSection,
    schedules: Vec<CronSchedule>,
}

impl ConfiguredPlugin for ConfiguredTrading {
    fn name(&self) -> &'static str {
        NAME
    }

    fn queues(&self) -> Vec<PluginQueue> {
        queues::ALL
            .iter()
            .map(|name| PluginQueue {
                name: (*name).to_owned(),
                concurrency: self.settings.concurrency(name),
            })
            .collect()
    }

    fn schedules(&self) -> Vec<CronSchedule> {
        self.schedules.clone()
    }

    /// The machine's PostgreSQL started when none answers, and the
    /// migrations applied.
    fn start_up(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async { super::local::start_up(&self.settings.db()).await })
    }

    fn open(&self, client: &Client) -> anyhow::Result<Arc<dyn PluginRuntime>> {
        let runtime =
            TradingRuntime::open(&self.settings, client).context("cannot open trading")?;
        Ok(Arc::new(runtime))
    }
}
