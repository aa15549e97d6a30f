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
    ConfiguredPlugin, HandledQueue, HealthCheck, Plugin, PluginQueue, PluginRuntime, Section,
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
    /// queue belongs to one plug-in, and a schedule's name is used once
    /// across the file and the plug-ins.
    pub fn configure(&self, file: &FileConfig) -> anyhow::Result<Enabled> {
        let mut enabled = Vec::new();
        for plugin in &self.plugins {
            let section = Self::section(plugin.as_ref(), file)?;
            if let Some(configured) = plugin.configure(&section)? {
                enabled.push(configured);
            }
        }
        let enabled = Enabled::new(enabled)?;
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
}

/// The plug-ins a config file turns on.
#[derive(Debug, Clone, Default)]
pub struct Enabled {
    plugins: Vec<Arc<dyn ConfiguredPlugin>>,
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
        Ok(Self { plugins })
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
