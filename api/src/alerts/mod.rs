//! Threshold alerts, evaluated by every process without a leader and sent
//! to webhooks, Telegram and Slack. See `docs/alerts.md`.
//!
//! - `rules`: the config (`[alerting]`, `[[alerts]]`, `[[alert_channels]]`)
//!   and its checks.
//! - `eval`: the evaluation loop; the fleet-wide state it records lives in
//!   the engine (`sluice_engine::alerting`, `lua/alert.lua`).
//! - `notify`: the channels, and the notifier of the internal `_alerts`
//!   queue, whose jobs are the notifications.

pub mod eval;
pub mod notify;
pub use crate::config::alerts as rules;

use std::sync::Arc;
use std::time::Duration;

use crate::plugins::Opened;
use sluice_engine::alerting::NoticeKind;
use sluice_engine::{Client, Shutdown, Typed, Worker, WorkerConfig};
use tokio::task::JoinSet;

use crate::config::FileConfig;
use rules::AlertRule;

/// Start the evaluation loop and the notifier when `file` has rules;
/// `plugins`' dependencies are what the rules on dependencies read.
pub fn spawn(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    client: &Client,
    file: &FileConfig,
    plugins: &Opened,
    stop: &Shutdown,
) -> anyhow::Result<()> {
    if file.alerts.is_empty() {
        return Ok(());
    }
    let checks = plugins.health_checks();
    for rule in &file.alerts {
        // A down rule probes the dependency from here; a process whose
        // config leaves the plug-in off leaves it to those that have it.
        if let Some(name) = rule.dependency()
            && !rule.kind.reads_latency()
            && !checks.iter().any(|c| c.name() == name)
        {
            tracing::warn!(
                alert = %rule.name,
                dependency = name,
                "this process does not check the dependency (its plug-in is off here): \
                 the rule is evaluated by the processes that turn the plug-in on"
            );
        }
    }
    let file = Arc::new(file.clone());
    let evaluator = eval::Evaluator::new(
        client.clone(),
        file.clone(),
        checks,
        plugins.enabled().declared_dependencies().to_vec(),
    )?;
    tasks.spawn({
        let stop = stop.clone();
        async move {
            evaluator.run(stop).await;
            Ok(())
        }
    });
    let notifier = notify::Notifier::new(&file.alert_channels)?;
    let (client, stop) = (client.clone(), stop.clone());
    tasks.spawn(async move {
        // The queue is opened when Redis answers; until then, wait.
        let queue = loop {
            match client.queue(notify::QUEUE).await {
                Ok(q) => break q,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the alerts queue; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                        _ = stop.triggered() => return Ok(()),
                    }
                }
            }
        };
        let worker = Worker::new(queue, Typed(notifier)).with_config(WorkerConfig {
            concurrency: 4,
            shutdown_grace: Duration::from_secs(5),
            ..WorkerConfig::default()
        });
        worker.run(stop).await?;
        Ok(())
    });
    Ok(())
}

/// A message: what fired, the value against the threshold, since when,
/// and the dashboard's page.
pub fn message(
    rule: &AlertRule,
    kind: &NoticeKind,
    value: &str,
    since_ms: u64,
    link: Option<&str>,
) -> String {
    let unit = rule.kind.unit();
    let subject = match (&rule.queue, rule.kind) {
        (Some(q), _) => format!("{} on queue {q}", rule.kind.as_str()),
        (None, _) => rule.kind.as_str().to_owned(),
    };
    let facts = match rule.threshold {
        Some(t) => format!("{value} {unit} against a threshold of {t} {unit}")
            .replace("  ", " ")
            .trim()
            .to_owned(),
        None => value.to_owned(),
    };
    let since = sluice_dashboard::format::time_ms(Some(since_ms));
    let (head, said) = match kind {
        NoticeKind::Firing => ("FIRING", rule.message.as_deref()),
        NoticeKind::Repeat => ("STILL FIRING", rule.message.as_deref()),
        NoticeKind::Resolved => ("RESOLVED", rule.resolve_message.as_deref()),
    };
    let mut text = format!("[{head}] {}: {subject}", rule.name);
    if let Some(said) = said {
        text.push_str(&format!(" — {said}"));
    }
    if *kind == NoticeKind::Resolved {
        text.push_str(&format!(". Now {facts}; resolved at {since} UTC."));
    } else {
        text.push_str(&format!(". Now {facts}; firing since {since} UTC."));
    }
    if let Some(link) = link {
        text.push_str(&format!(" {link}"));
    }
    text
}
