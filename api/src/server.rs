//! The server of the config file: the `[api]` settings, the alert rules and
//! the schedules it shows, the queue directory, and the plug-ins' parts
//! (routes, pages, health checks), handed to `sluice-server`.

use sluice_engine::Client;
use sluice_server::{AlertRuleInfo, ServerSettings};
pub use sluice_server::{
    AppState, install_recorder, key_hash, listen, router, serve, serve_local_metrics,
};

use crate::config::FileConfig;
use crate::config::alerts::AlertRule;
use crate::plugins::Opened;

/// The server's state for `file` on `client`, with the opened `plugins`'
/// routes, pages, health checks and schedules.
pub fn state(client: Client, file: &FileConfig, plugins: &Opened) -> anyhow::Result<AppState> {
    let settings = ServerSettings {
        api: file.api.clone(),
        alert_rules: alert_rules(file),
        schedules: crate::schedules::all(file, plugins.enabled())?,
        apps: plugins.apps(),
        health_checks: plugins.health_checks(),
    };
    Ok(AppState::new(
        crate::queues::directory(client, file),
        settings,
    )?)
}

/// What the server shows of `file`'s alert rules.
pub fn alert_rules(file: &FileConfig) -> Vec<AlertRuleInfo> {
    file.alerts.iter().map(rule_info).collect()
}

fn rule_info(rule: &AlertRule) -> AlertRuleInfo {
    AlertRuleInfo {
        name: rule.name.clone(),
        kind: rule.kind.as_str(),
        queue: rule.queue.clone(),
        threshold: rule.threshold,
        unit: rule.kind.unit(),
        channels: rule.channels.clone(),
    }
}
