//! The server of the config file: the `[api]` settings, the alert rules and
//! the schedules it shows, the queue directory, and the trading-alert
//! application when `[pipeline]` is configured, handed to `sluice-server`.

use std::sync::Arc;

use sluice_engine::Client;
use sluice_server::{AlertRuleInfo, App, ServerSettings};
pub use sluice_server::{
    AppState, install_recorder, key_hash, listen, router, serve, serve_local_metrics,
};

use crate::config::FileConfig;
use crate::config::alerts::AlertRule;
use crate::pipeline::{Pipeline, TradingApp};

/// The server's state for `file` on `client`, opening the pipeline when
/// the file configures one.
pub fn state(client: Client, file: &FileConfig) -> anyhow::Result<AppState> {
    let pipeline = file
        .pipeline
        .as_ref()
        .map(|p| Pipeline::open(p, &client))
        .transpose()?;
    state_with_pipeline(client, file, pipeline)
}

/// The server's state for `file` on `client` with its pipeline already open.
pub fn state_with_pipeline(
    client: Client,
    file: &FileConfig,
    pipeline: Option<Pipeline>,
) -> anyhow::Result<AppState> {
    let apps: Vec<Arc<dyn App>> = pipeline
        .map(|p| Arc::new(TradingApp::new(p)) as Arc<dyn App>)
        .into_iter()
        .collect();
    let settings = ServerSettings {
        api: file.api.clone(),
        alert_rules: alert_rules(file),
        schedules: crate::schedules::load(&file.all_schedules())?,
        apps,
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
