//! # sluice-plugin: what an application brings to the `sluice` binary
//!
//! The binary names no application. It links plug-ins (its `main.rs` lists
//! them, the one place that names one) and asks each, through these
//! traits, what it brings. A plug-in meets the binary in three phases, one
//! trait each, because each phase has what the one before lacks:
//!
//! 1. [`Plugin`], as linked, before the config file is read: its name
//!    (its config section `[name]` and its command `sluice name ...`), the
//!    names it had before, its subcommands and how to run them, and how to
//!    turn it on from its section.
//! 2. [`ConfiguredPlugin`], turned on by its section (parsed, the
//!    environment's overlay applied, checked): its queues, its cron
//!    schedules, and the start-up work of `sluice up` (a local database,
//!    migrations).
//! 3. [`PluginRuntime`], opened on a Redis client in a long-running
//!    process: the handlers of its queues (added to the engine's
//!    [`Handlers`] registry), its part of the server (a
//!    [`sluice_server::App`]) and its dependencies' [`HealthCheck`]s, which
//!    serve both `GET /health/ready` and the alert rules.
//!
//! # Layout
//!
//! - this file: the three traits and what they exchange ([`Section`],
//!   [`CommandContext`], [`PluginQueue`], [`HandledQueue`],
//!   [`Dependency`]).
//!
//! A plug-in's methods answer `anyhow` errors: the binary reports them to
//! the operator as they are and never matches on them.

use std::fmt::Debug;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use sluice_engine::{BreakerConfig, Client, CronSchedule, Handlers};
pub use sluice_server::{App, HealthCheck, HealthState};

/// An application as the binary links it, before the config is read.
pub trait Plugin: Send + Sync + 'static {
    /// Its one name: its config section (`[name]`) and its command
    /// (`sluice name ...`).
    fn name(&self) -> &'static str;

    /// The names its section had before: still read, with a deprecation
    /// warning.
    fn former_names(&self) -> &'static [&'static str] {
        &[]
    }

    /// Its commands, mounted among the binary's (and listed by
    /// `sluice --help`). The binary hands one that matched back to
    /// [`run_command`](Self::run_command).
    fn commands(&self) -> Vec<clap::Command> {
        Vec::new()
    }

    /// Run the command that `matches` (the whole command line's matches,
    /// whose subcommand is one of [`commands`](Self::commands)) names, with
    /// its section of the config (its defaults when the file has none).
    fn run_command<'a>(
        &'a self,
        matches: &'a clap::ArgMatches,
        section: &'a Section,
        context: CommandContext,
    ) -> BoxFuture<'a, anyhow::Result<()>>;

    /// Turn it on with its section: parsed, the environment's overlay
    /// applied, checked. `None` when the config has no section for it:
    /// then it stays off, and no process serves its queues or routes.
    fn configure(&self, section: &Section) -> anyhow::Result<Option<Arc<dyn ConfiguredPlugin>>>;

    /// The dependencies it checks when turned on, declared before the
    /// config is read: the binary refuses an alert rule on a dependency
    /// that no plug-in turned on checks (it could never fire), and every
    /// process reads a dependency's latency series fleet-wide, whether or
    /// not it holds the health check itself.
    fn dependencies(&self) -> Vec<Dependency> {
        Vec::new()
    }
}

/// A dependency a plug-in checks: its name, as its [`HealthCheck`],
/// `GET /health/ready` and the alert rules name it, and the engine's
/// latency series (`sluice_engine::alerting`) where its handlers record
/// their round trips to it, if they do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dependency {
    /// Its name (`postgres`).
    pub name: &'static str,
    /// The latency series its round trips are recorded in (`db`), if any.
    pub latency_series: Option<&'static str>,
}

/// A plug-in turned on by its section: what it adds to a process before
/// anything is opened.
pub trait ConfiguredPlugin: Send + Sync + Debug + 'static {
    /// Its name, as [`Plugin::name`].
    fn name(&self) -> &'static str;

    /// Its queues, which `sluice up` and `sluice work` serve along with the
    /// configured ones.
    fn queues(&self) -> Vec<PluginQueue>;

    /// Its cron schedules, checked.
    fn schedules(&self) -> Vec<CronSchedule>;

    /// What `sluice up` (everything on one machine) does before it starts
    /// anything else, such as starting the machine's database and applying
    /// migrations. Nothing by default.
    fn start_up(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Open it on `client`: what the server, the workers and the alert
    /// rules of one process share. Nothing waits on a dependency here: a
    /// database that is down is reported by its health check.
    fn open(&self, client: &Client) -> anyhow::Result<Arc<dyn PluginRuntime>>;
}

/// A plug-in opened in a long-running process.
pub trait PluginRuntime: Send + Sync + Debug + 'static {
    /// Add the handler of each of `queues` (its own, which this process
    /// serves) to `handlers`.
    fn add_handlers<'a>(
        &'a self,
        handlers: &'a mut Handlers,
        queues: &'a [HandledQueue],
    ) -> BoxFuture<'a, anyhow::Result<()>>;

    /// Its part of the server: routes, dashboard pages, a look at every
    /// request. None by default.
    fn app(&self) -> Option<Arc<dyn App>> {
        None
    }

    /// Its dependencies' health checks: `GET /health/ready` asks them and
    /// the alert rules on dependencies read them.
    fn health_checks(&self) -> Vec<Arc<dyn HealthCheck>> {
        Vec::new()
    }
}

/// One of a plug-in's queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginQueue {
    /// The queue.
    pub name: String,
    /// Jobs a worker process runs at once when `[[queues]]` does not say.
    pub concurrency: usize,
}

/// A plug-in's queue that a process serves, as its handler is made.
#[derive(Debug, Clone, PartialEq)]
pub struct HandledQueue {
    /// The queue.
    pub name: String,
    /// The circuit breaker in front of what its handler calls, from the
    /// queue's `[[queues]]` entry (the engine's defaults when it has none);
    /// `None` when turned off.
    pub breaker: Option<BreakerConfig>,
}

/// A variable of the environment: its value, when set.
pub type Environment = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// A plug-in's section of the config file, and the environment that
/// overlays it.
#[derive(Clone)]
pub struct Section {
    table: Option<toml::Value>,
    env: Environment,
}

impl Debug for Section {
    // The section may hold secrets: only whether it is there.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Section")
            .field("present", &self.table.is_some())
            .finish_non_exhaustive()
    }
}

impl Section {
    /// The section `table` (`None`: the file has none) with `env`.
    pub fn new(table: Option<toml::Value>, env: Environment) -> Self {
        Self { table, env }
    }

    /// Whether the config file has the section.
    pub fn is_present(&self) -> bool {
        self.table.is_some()
    }

    /// The section as `T`; `T`'s defaults when the file has none.
    pub fn parse<T: DeserializeOwned + Default>(&self) -> Result<T, toml::de::Error> {
        match &self.table {
            Some(table) => T::deserialize(table.clone()),
            None => Ok(T::default()),
        }
    }

    /// Whether the section sets `key` (to warn of a renamed key).
    pub fn has_key(&self, key: &str) -> bool {
        self.table.as_ref().and_then(|t| t.get(key)).is_some()
    }

    /// The environment variable `name`, when set and not empty (empty
    /// means unset, as everywhere in Sluice).
    pub fn var(&self, name: &str) -> Option<String> {
        (self.env)(name).filter(|v| !v.is_empty())
    }
}

/// What a plug-in's command gets from the command line besides its own
/// arguments.
pub struct CommandContext {
    /// `--json`: print JSON instead of text.
    pub json: bool,
    /// A client of the Redis the command line and the config name; only
    /// the commands that need Redis await it.
    pub redis: BoxFuture<'static, anyhow::Result<Client>>,
}

impl Debug for CommandContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandContext")
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(deny_unknown_fields, default)]
    struct Settings {
        url: Option<String>,
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("v".to_owned()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn a_section_parses_with_its_defaults_when_absent_and_refuses_unknown_keys() {
        let absent = Section::new(None, Arc::new(env));
        assert!(!absent.is_present());
        assert_eq!(
            absent.parse::<Settings>().expect("defaults"),
            Settings::default()
        );
        let table: toml::Value = toml::from_str("url = \"x\"").expect("toml");
        let present = Section::new(Some(table), Arc::new(env));
        assert_eq!(
            present.parse::<Settings>().expect("parsed").url.as_deref(),
            Some("x")
        );
        let typo: toml::Value = toml::from_str("ulr = \"x\"").expect("toml");
        let err = Section::new(Some(typo), Arc::new(env))
            .parse::<Settings>()
            .expect_err("unknown key");
        assert!(err.to_string().contains("ulr"), "{err}");
        assert!(present.has_key("url") && !present.has_key("ulr"));
        assert_eq!(present.var("SET").as_deref(), Some("v"));
        assert_eq!(present.var("EMPTY"), None);
        assert_eq!(present.var("UNSET"), None);
    }
}
