//! The plug-ins: those the binary links ([`Linked`], from `main.rs`'s
//! list, the one place that names an application), those the config file
//! turns on ([`Enabled`]), and those opened in a long-running process
//! ([`Opened`]). The rest of the binary reaches an application only through
//! these, by the `sluice_plugin` traits.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::bail;
use sluice_engine::{Client, CronSchedule, Handlers};
use sluice_plugin::{
    ConfiguredPlugin, Dependency, HandledQueue, HealthCheck, Plugin, PluginQueue, PluginRuntime,
    Section,
};
use sluice_server::App;

use crate::config::FileConfig;

/// The plug-ins the binary links, before the config is read.
pub struct Linked {
    plugins: Vec<Box<dyn Plugin>>,
}

impl std::fmt::Debug for Linked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.plugins.iter().map(|p| p.name()).collect();
        f.debug_tuple("Linked").field(&names).finish()
    }
}

impl Linked {
    /// `plugins`, as `main.rs` lists them.
    pub fn new(plugins: Vec<Box<dyn Plugin>>) -> Self {
        Self { plugins }
    }

    /// The config file's top-level keys the plug-ins read: each one's name
    /// and the names its section had before.
    pub fn section_names(&self) -> Vec<&'static str> {
        self.plugins
            .iter()
            .flat_map(|p| std::iter::once(p.name()).chain(p.former_names().iter().copied()))
            .collect()
    }

    /// Every plug-in's commands.
    pub fn commands(&self) -> Vec<clap::Command> {
        self.plugins.iter().flat_map(|p| p.commands()).collect()
    }

    /// The plug-in whose command `name` is.
    pub fn command_owner(&self, name: &str) -> Option<&dyn Plugin> {
        self.plugins
            .iter()
            .find(|p| p.commands().iter().any(|c| c.get_name() == name))
            .map(|p| p.as_ref())
    }

    /// `plugin`'s section of `file`, under its name or one it had before
    /// (which is deprecated: a warning says so), with this process's
    /// environment.
    pub fn section(plugin: &dyn Plugin, file: &FileConfig) -> anyhow::Result<Section> {
        let name = plugin.name();
        let mut found = file.plugin_sections.get(name).map(|t| (name, t));
        for former in plugin.former_names() {
            let Some(table) = file.plugin_sections.get(*former) else {
                continue;
            };
            if let Some((under, _)) = found {
                bail!("the config has both [{under}] and [{former}]: keep [{name}] only");
            }
            tracing::warn!("config section [{former}] is deprecated: call it [{name}]");
            found = Some((former, table));
        }
        Ok(Section::new(
            found.map(|(_, table)| table.clone()),
            Arc::new(crate::config::process_env),
        ))
    }

    /// The plug-ins `file` turns on, each with its section checked. A
    /// queue belongs to one plug-in, a schedule's name is used once across
    /// the file and the plug-ins, and an alert rule on a dependency names
    /// one that a plug-in turned on checks.
    pub fn configure(&self, file: &FileConfig) -> anyhow::Result<Enabled> {
        let mut enabled = Vec::new();
        let mut dependencies = Vec::new();
        for plugin in &self.plugins {
            let section = Self::section(plugin.as_ref(), file)?;
            if let Some(configured) = plugin.configure(&section)? {
                enabled.push(configured);
                dependencies.extend(plugin.dependencies());
            }
        }
        self.check_rules(file, &dependencies)?;
        let mut enabled = Enabled::new(enabled)?;
        enabled.dependencies = dependencies;
        let mut schedules: HashSet<String> =
            file.schedules.iter().map(|s| s.name.clone()).collect();
        for plugin in &enabled.plugins {
            for schedule in plugin.schedules() {
                if !schedules.insert(schedule.name().to_owned()) {
                    bail!(
                        "schedule {} is configured twice (it is {}'s)",
                        schedule.name(),
                        plugin.name()
                    );
                }
            }
        }
        Ok(enabled)
    }

    /// Refuse a rule on a dependency that none of `checked` (the turned-on
    /// plug-ins' dependencies) is: it could never fire, and an operator
    /// would trust its silence. The message names the plug-in to turn on
    /// when a linked one checks it, else what can be named.
    fn check_rules(&self, file: &FileConfig, checked: &[Dependency]) -> anyhow::Result<()> {
        for rule in &file.alerts {
            let Some(name) = rule.dependency() else {
                continue;
            };
            if checked.iter().any(|d| d.name == name) {
                continue;
            }
            let kind = rule.kind.as_str();
            if let Some(plugin) = self
                .plugins
                .iter()
                .find(|p| p.dependencies().iter().any(|d| d.name == name))
            {
                bail!(
                    "alert {} ({kind}) watches {name}, which only the {} plug-in checks, and the config does not turn it on: add a [{}] section or remove the rule",
                    rule.name,
                    plugin.name(),
                    plugin.name()
                );
            }
            let mut known: Vec<&str> = checked.iter().map(|d| d.name).collect();
            known.sort_unstable();
            bail!(
                "alert {} ({kind}) watches {name}, which no plug-in checks (checked: {})",
                rule.name,
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            );
        }
        Ok(())
    }
}

/// The plug-ins a config file turns on.
#[derive(Debug, Clone, Default)]
pub struct Enabled {
    plugins: Vec<Arc<dyn ConfiguredPlugin>>,
    /// The dependencies they check, as their linked plug-ins declare them.
    dependencies: Vec<Dependency>,
}

impl Enabled {
    /// `plugins`, refused when two of them claim the same queue.
    pub fn new(plugins: Vec<Arc<dyn ConfiguredPlugin>>) -> anyhow::Result<Self> {
        let mut owners = std::collections::HashMap::new();
        for plugin in &plugins {
            for queue in plugin.queues() {
                if let Some(other) = owners.insert(queue.name.clone(), plugin.name()) {
                    bail!(
                        "queue {} belongs to both {other} and {}",
                        queue.name,
                        plugin.name()
                    );
                }
            }
        }
        Ok(Self {
            plugins,
            dependencies: Vec::new(),
        })
    }

    /// The dependencies they check.
    pub fn dependencies(&self) -> &[Dependency] {
        &self.dependencies
    }

    /// Every plug-in's queues.
    pub fn queues(&self) -> Vec<PluginQueue> {
        self.plugins.iter().flat_map(|p| p.queues()).collect()
    }

    /// Every plug-in's schedules.
    pub fn schedules(&self) -> Vec<CronSchedule> {
        self.plugins.iter().flat_map(|p| p.schedules()).collect()
    }

    /// Every plug-in's start-up work (`sluice up`), in turn.
    pub async fn start_up(&self) -> anyhow::Result<()> {
        for plugin in &self.plugins {
            plugin.start_up().await?;
        }
        Ok(())
    }

    /// Open every plug-in on `client`.
    pub fn open(&self, client: &Client) -> anyhow::Result<Opened> {
        let runtimes = self
            .plugins
            .iter()
            .map(|p| p.open(client))
            .collect::<anyhow::Result<_>>()?;
        Ok(Opened {
            enabled: self.clone(),
            runtimes,
        })
    }
}

/// The plug-ins opened in a long-running process: what its server, its
/// workers and its alert rules share. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Opened {
    enabled: Enabled,
    /// Each plug-in's runtime, in `enabled`'s order.
    runtimes: Vec<Arc<dyn PluginRuntime>>,
}

impl Opened {
    /// The plug-ins, as configured.
    pub fn enabled(&self) -> &Enabled {
        &self.enabled
    }

    /// Their parts of the server.
    pub fn apps(&self) -> Vec<Arc<dyn App>> {
        self.runtimes.iter().filter_map(|r| r.app()).collect()
    }

    /// Their dependencies' health checks.
    pub fn health_checks(&self) -> Vec<Arc<dyn HealthCheck>> {
        self.runtimes
            .iter()
            .flat_map(|r| r.health_checks())
            .collect()
    }

    /// Add the handler of each of `queues` to `handlers`, each made by the
    /// plug-in whose queue it is. Refused when one is no plug-in's.
    pub async fn add_handlers(
        &self,
        handlers: &mut Handlers,
        queues: &[HandledQueue],
    ) -> anyhow::Result<()> {
        let mut left: Vec<&HandledQueue> = queues.iter().collect();
        for (plugin, runtime) in self.enabled.plugins.iter().zip(&self.runtimes) {
            let own: HashSet<String> = plugin.queues().into_iter().map(|q| q.name).collect();
            let (mine, others): (Vec<&HandledQueue>, Vec<&HandledQueue>) =
                left.into_iter().partition(|q| own.contains(&q.name));
            left = others;
            if !mine.is_empty() {
                let mine: Vec<HandledQueue> = mine.into_iter().cloned().collect();
                runtime.add_handlers(handlers, &mine).await?;
            }
        }
        if let Some(q) = left.first() {
            bail!("queue {} has no handler", q.name);
        }
        Ok(())
    }
}
