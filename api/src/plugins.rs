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
    fn section(plugin: &dyn Plugin, file: &FileConfig) -> anyhow::Result<Section> {
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
    /// one that a linked plug-in declares.
    pub fn configure(&self, file: &FileConfig) -> anyhow::Result<Enabled> {
        let mut enabled = Vec::new();
        let mut sections = Vec::new();
        for plugin in &self.plugins {
            let section = Self::section(plugin.as_ref(), file)?;
            if let Some(configured) = plugin.configure(&section)? {
                enabled.push(configured);
            }
            sections.push((plugin.name(), section));
        }
        let declared: Vec<Dependency> =
            self.plugins.iter().flat_map(|p| p.dependencies()).collect();
        check_rules(file, &declared)?;
        let mut enabled = Enabled::new(enabled)?;
        enabled.declared = declared;
        enabled.sections = sections;
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

/// Refuse a rule on a dependency that no linked plug-in declares (a typo:
/// it could never fire, and an operator would trust its silence), and a
/// slow rule on one whose round trips nobody records. A rule on a
/// dependency whose plug-in this config leaves off is kept: rules are
/// fleet-wide, and the processes that turn the plug-in on evaluate it.
fn check_rules(file: &FileConfig, declared: &[Dependency]) -> anyhow::Result<()> {
    for rule in &file.alerts {
        let Some(name) = rule.dependency() else {
            continue;
        };
        let kind = rule.kind.as_str();
        match declared.iter().find(|d| d.name == name) {
            None => {
                let mut known: Vec<&str> = declared.iter().map(|d| d.name).collect();
                known.sort_unstable();
                known.dedup();
                bail!(
                    "alert {} ({kind}) watches {name}, which no plug-in checks (known: {})",
                    rule.name,
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                );
            }
            Some(d) if d.latency_series.is_none() && rule.kind.reads_latency() => bail!(
                "alert {} ({kind}): the round trips to {name} are not recorded, so only dependency_down can watch it",
                rule.name
            ),
            Some(_) => {}
        }
    }
    Ok(())
}

/// The plug-ins a config file turns on.
#[derive(Debug, Clone, Default)]
pub struct Enabled {
    plugins: Vec<Arc<dyn ConfiguredPlugin>>,
    /// The dependencies every linked plug-in declares, on or off.
    declared: Vec<Dependency>,
    /// Every linked plug-in's section, by the plug-in's name, as read once
    /// (with its deprecation warnings).
    sections: Vec<(&'static str, Section)>,
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
            declared: Vec::new(),
            sections: Vec::new(),
        })
    }

    /// The dependencies the linked plug-ins declare, whether or not this
    /// config turns them on: the slow rules read their series fleet-wide.
    pub fn declared_dependencies(&self) -> &[Dependency] {
        &self.declared
    }

    /// Linked plug-in `name`'s section of the config, as read.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections
            .iter()
            .find(|(plugin, _)| *plugin == name)
            .map(|(_, section)| section)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(toml: &str) -> FileConfig {
        toml::from_str(toml).expect("config")
    }

    const CACHE: Dependency = Dependency {
        name: "cache",
        latency_series: None,
    };
    const DB: Dependency = Dependency {
        name: "db",
        latency_series: Some("db"),
    };

    #[test]
    fn a_rule_names_a_declared_dependency_and_a_slow_rule_one_whose_round_trips_are_recorded() {
        let declared = [CACHE, DB];
        let down = "[[alerts]]\nname = \"r\"\nkind = \"dependency_down\"\ndependency = ";
        let slow =
            "[[alerts]]\nname = \"r\"\nkind = \"dependency_slow\"\nthreshold = 5\ndependency = ";
        for ok in [format!("{down}\"cache\""), format!("{slow}\"db\"")] {
            check_rules(&rules(&ok), &declared).expect(&ok);
        }
        let typo = check_rules(&rules(&format!("{down}\"cahce\"")), &declared)
            .expect_err("a typo")
            .to_string();
        assert!(typo.contains("known: cache, db"), "{typo}");
        let unrecorded = check_rules(&rules(&format!("{slow}\"cache\"")), &declared)
            .expect_err("no series")
            .to_string();
        assert!(unrecorded.contains("only dependency_down"), "{unrecorded}");
        let none = check_rules(&rules(&format!("{down}\"db\"")), &[])
            .expect_err("nothing linked")
            .to_string();
        assert!(none.contains("known: none"), "{none}");
    }
}
