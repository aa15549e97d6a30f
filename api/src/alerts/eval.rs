//! The evaluation loop every `up`, `serve` and `work` process runs: each
//! interval it observes every rule from the fleet's data in Redis, records
//! the observation in the rule's fleet-wide state, and enqueues the
//! notifications of a transition it was the first to record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_engine::alerting::{AlertReply, NoticeKind};
use sluice_engine::{Alerts, Client, Queue, Shutdown};
use sluice_plugin::Dependency;
use sluice_server::{HealthCheck, HealthState};

use super::notify::{self, Notification, Notifier};
use super::rules::{AlertKind, AlertRule};
use crate::config::FileConfig;

/// A notice recorded but not handed to the channels is sent by another
/// process after this long (its recorder died in between).
const ORPHAN_AFTER_MS: u64 = 5_000;

/// How long counter samples are kept: the longest window and some.
const SAMPLES_KEEP: Duration = Duration::from_secs(2 * 3600);

/// A dependency whose health check has not answered in this long is down.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// One observation of a rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The condition holds.
    pub holds: bool,
    /// What was seen, in the kind's unit.
    pub value: String,
}

/// Redis down is seen without Redis: this process tells the channels
/// itself, once per outage (there is no fleet-wide state to agree on).
#[derive(Debug, Default)]
struct LocalOutage {
    since: Option<Instant>,
    announced: bool,
    seq: u64,
}

/// Evaluates the rules of one process.
#[derive(Debug)]
pub struct Evaluator {
    client: Client,
    /// Where the rules' state, latency series and counter samples are.
    alerts: Alerts,
    file: Arc<FileConfig>,
    health_checks: Vec<Arc<dyn HealthCheck>>,
    dependencies: Vec<Dependency>,
    notifier: Notifier,
    queues: HashMap<String, Queue>,
    outages: HashMap<String, LocalOutage>,
}

impl Evaluator {
    /// An evaluator of `file`'s rules. `health_checks` are the plug-ins'
    /// checks in this process, which `dependency_down` probes;
    /// `dependencies` are what the plug-ins turned on declare, whose
    /// latency series `dependency_slow` reads fleet-wide, in any process.
    pub fn new(
        client: Client,
        file: Arc<FileConfig>,
        health_checks: Vec<Arc<dyn HealthCheck>>,
        dependencies: Vec<Dependency>,
    ) -> anyhow::Result<Self> {
        let notifier = Notifier::new(&file.alert_channels)?;
        Ok(Self {
            alerts: client.alerts(),
            client,
            file,
            health_checks,
            dependencies,
            notifier,
            queues: HashMap::new(),
            outages: HashMap::new(),
        })
    }

    /// Evaluate every `interval` until `stop`.
    pub async fn run(mut self, stop: Shutdown) {
        let interval = Duration::from_millis(self.file.alerting.interval_ms.max(1));
        loop {
            self.round().await;
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.triggered() => return,
            }
        }
    }

    /// One evaluation of every rule.
    pub async fn round(&mut self) {
        let redis_up = self.client.ping().await;
        if redis_up && let Err(e) = self.alerts.flush_latency().await {
            tracing::debug!(error = %e, "cannot add latency samples");
        }
        let rules = self.file.alerts.clone();
        for rule in &rules {
            if rule.kind == AlertKind::RedisDown {
                self.local_outage(rule, !redis_up).await;
                continue;
            }
            if !redis_up {
                continue;
            }
            let observed = match self.observe(rule).await {
                Ok(Some(o)) => o,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(rule = %rule.name, error = %format!("{e:#}"), "cannot evaluate alert rule");
                    continue;
                }
            };
            if let Err(e) = self.record(rule, &observed).await {
                tracing::warn!(rule = %rule.name, error = %format!("{e:#}"), "cannot record alert state");
            }
        }
    }

    /// Record `observed` and send what it made, or an orphaned notice.
    async fn record(&mut self, rule: &AlertRule, observed: &Observation) -> anyhow::Result<()> {
        let reply = self
            .alerts
            .observe(&rule.name, observed.holds, &observed.value, rule.timing())
            .await?;
        let kind = match &reply.notice {
            Some(k) => Some(k.clone()),
            // Recorded by a process that died before enqueueing it (or
            // whose observation's reply was lost): sent by whoever sees it
            // unsent for long enough. The clock is read only then.
            None if reply.seq > reply.enqueued => {
                let now = self.alerts.server_time_ms().await?;
                (now.saturating_sub(reply.last_at_ms) > ORPHAN_AFTER_MS)
                    .then(|| reply.last_kind.clone())
                    .flatten()
            }
            None => None,
        };
        let Some(kind) = kind else {
            return Ok(());
        };
        if reply.notice.is_some() {
            tracing::info!(rule = %rule.name, notice = kind.as_str(), value = %observed.value, "alert");
        }
        self.enqueue(rule, &kind, &reply, &observed.value).await?;
        self.alerts.notice_enqueued(&rule.name, reply.seq).await?;
        Ok(())
    }

    async fn enqueue(
        &self,
        rule: &AlertRule,
        kind: &NoticeKind,
        reply: &AlertReply,
        value: &str,
    ) -> anyhow::Result<()> {
        if rule.channels.is_empty() {
            return Ok(());
        }
        let since = if reply.firing_since_ms > 0 {
            reply.firing_since_ms
        } else {
            reply.last_at_ms
        };
        let jobs = rule
            .channels
            .iter()
            .map(|channel| {
                self.notification(rule, kind, reply.seq, channel, value, since)
                    .job()
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let queue = self.client.queue(notify::QUEUE).await?;
        queue.enqueue_many(jobs).await?;
        Ok(())
    }

    /// The notification of `kind` for `channel`.
    pub fn notification(
        &self,
        rule: &AlertRule,
        kind: &NoticeKind,
        seq: u64,
        channel: &str,
        value: &str,
        since_ms: u64,
    ) -> Notification {
        let link = self.file.alerting.dashboard_url.as_deref().map(|base| {
            let base = base.trim_end_matches('/');
            match (&rule.queue, rule.kind) {
                (_, AlertKind::BreakerOpen) => format!("{base}/dashboard/breakers"),
                (Some(q), _) => format!("{base}/dashboard/queues/{q}"),
                (None, _) => format!("{base}/dashboard/alerts"),
            }
        });
        Notification {
            rule: rule.name.clone(),
            kind: rule.kind.as_str().to_owned(),
            notice: kind.as_str().to_owned(),
            seq,
            channel: channel.to_owned(),
            value: value.to_owned(),
            threshold: rule.threshold,
            since_ms,
            text: super::message(rule, kind, value, since_ms, link.as_deref()),
            link,
        }
    }

    /// Redis unreachable: told by this process itself, straight to the
    /// channels, once per outage and once when it ends.
    async fn local_outage(&mut self, rule: &AlertRule, down: bool) {
        let hold = rule.timing().hold;
        let outage = self.outages.entry(rule.name.clone()).or_default();
        let kind = match (down, outage.since, outage.announced) {
            (true, None, _) => {
                outage.since = Some(Instant::now());
                (hold.is_zero()).then_some(NoticeKind::Firing)
            }
            (true, Some(since), false) if since.elapsed() >= hold => Some(NoticeKind::Firing),
            (false, Some(_), true) => Some(NoticeKind::Resolved),
            (false, Some(_), false) => {
                outage.since = None;
                None
            }
            _ => None,
        };
        let Some(kind) = kind else {
            return;
        };
        let since_ms = sluice_engine::unix_ms()
            .saturating_sub(outage.since.map_or(0, |s| s.elapsed().as_millis() as u64));
        outage.seq += 1;
        let seq = outage.seq;
        if kind == NoticeKind::Resolved {
            outage.since = None;
            outage.announced = false;
        } else {
            outage.announced = true;
        }
        let value = if down { "unreachable" } else { "reachable" };
        for channel in &rule.channels {
            let n = self.notification(rule, &kind, seq, channel, value, since_ms);
            // A few quick tries: the queue that would retry is in Redis.
            for attempt in 0..3u32 {
                match self.notifier.send(&n).await {
                    sluice_engine::Outcome::Done => break,
                    other => {
                        tracing::warn!(rule = %rule.name, channel, ?other, "cannot send the Redis-down alert");
                        tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt + 1)))
                            .await;
                    }
                }
            }
        }
    }

    /// Observe `rule` now; `None` when this process cannot (a dependency
    /// no plug-in of this process has a health check for).
    pub async fn observe(&mut self, rule: &AlertRule) -> anyhow::Result<Option<Observation>> {
        let threshold = rule.threshold.unwrap_or(0.0);
        let queue_name = rule.queue.clone().unwrap_or_default();
        Ok(Some(match rule.kind {
            AlertKind::QueueDepth => {
                let stats = self.queue(&queue_name).await?.stats().await?;
                let waiting = match rule.priority {
                    Some(p) => stats
                        .waiting_by_priority
                        .get(usize::from(p))
                        .copied()
                        .unwrap_or(0),
                    None => stats.waiting,
                };
                observation(waiting as f64 > threshold, waiting.to_string())
            }
            AlertKind::OldestWaiting => {
                let age = self
                    .queue(&queue_name)
                    .await?
                    .oldest_waiting_age()
                    .await?
                    .unwrap_or_default();
                let secs = age.as_secs_f64();
                observation(secs > threshold, format!("{secs:.1}"))
            }
            AlertKind::FailureRate | AlertKind::DeadLetters => {
                let stats = self.queue(&queue_name).await?.stats().await?;
                let now = [stats.failed_total, stats.completed_total, stats.dead_total];
                let series = format!("queue:{queue_name}");
                let before = self
                    .alerts
                    .counter_sample_before(&series, rule.window())
                    .await?
                    .unwrap_or_else(|| now.to_vec());
                self.alerts
                    .add_counter_sample(&series, &now, SAMPLES_KEEP)
                    .await?;
                let delta =
                    |i: usize| now[i].saturating_sub(before.get(i).copied().unwrap_or(now[i]));
                if rule.kind == AlertKind::DeadLetters {
                    let grown = delta(2);
                    observation(grown as f64 >= threshold && grown > 0, grown.to_string())
                } else {
                    let (failed, done) = (delta(0), delta(1));
                    let attempts = failed + done;
                    let rate = if attempts == 0 {
                        0.0
                    } else {
                        failed as f64 * 100.0 / attempts as f64
                    };
                    observation(
                        attempts >= rule.min_attempts.max(1) && rate > threshold,
                        format!("{rate:.1}"),
                    )
                }
            }
            AlertKind::NoWorkers => {
                let serving = self
                    .client
                    .registry()
                    .workers()
                    .await?
                    .iter()
                    .filter(|w| w.queues.iter().any(|q| q.queue == queue_name))
                    .count();
                observation(serving == 0, serving.to_string())
            }
            AlertKind::ApiLatency | AlertKind::DbSlow | AlertKind::DependencySlow => {
                let series = if rule.kind == AlertKind::ApiLatency {
                    sluice_engine::alerting::API_LATENCY
                } else {
                    let declared = rule
                        .dependency()
                        .and_then(|name| self.dependencies.iter().find(|d| d.name == name));
                    match declared.and_then(|d| d.latency_series) {
                        Some(series) => series,
                        None => return Ok(None),
                    }
                };
                match self
                    .alerts
                    .latency_quantile(series, rule.window(), 0.99)
                    .await?
                {
                    Some((p99, _)) => {
                        let ms = p99.as_millis().min(u128::from(u64::MAX)) as u64;
                        let shown = if ms == u64::MAX {
                            "over 60000".to_owned()
                        } else {
                            ms.to_string()
                        };
                        observation(ms as f64 > threshold, shown)
                    }
                    None => observation(false, "no samples".into()),
                }
            }
            AlertKind::PostgresDown | AlertKind::DependencyDown => {
                let Some(check) = self.health_check(rule) else {
                    return Ok(None);
                };
                // Down means it does not answer; one that answers but
                // cannot serve yet (`not_migrated`) is readiness's concern.
                let health = tokio::time::timeout(PROBE_TIMEOUT, check.probe()).await;
                let down = !matches!(health, Ok(h) if h != HealthState::Down);
                observation(down, if down { "unreachable" } else { "reachable" }.into())
            }
            AlertKind::BreakerOpen => {
                let open: Vec<String> = self
                    .client
                    .breakers()
                    .list()
                    .await?
                    .into_iter()
                    .filter(|b| rule.breaker.as_ref().is_none_or(|n| *n == b.name))
                    .filter(|b| b.state != sluice_engine::BreakerState::Closed)
                    .map(|b| b.name)
                    .collect();
                let value = if open.is_empty() {
                    "none open".to_owned()
                } else {
                    open.join(", ")
                };
                observation(!open.is_empty(), value)
            }
            AlertKind::RedisDown => return Ok(None),
        }))
    }

    /// The health check of the dependency `rule` watches, when a plug-in
    /// of this process has one.
    fn health_check(&self, rule: &AlertRule) -> Option<&dyn HealthCheck> {
        let name = rule.dependency()?;
        self.health_checks
            .iter()
            .find(|c| c.name() == name)
            .map(|c| c.as_ref())
    }

    /// Queue `name`'s handle (all its partitions), opened once.
    async fn queue(&mut self, name: &str) -> anyhow::Result<&Queue> {
        if !self.queues.contains_key(name) {
            // Opening creates the queue's streams: a rule may name a queue
            // no one enqueued to yet, which then reads as empty.
            let handle = crate::queues::directory(self.client.clone(), &self.file)
                .for_write(name)
                .await?;
            self.queues.insert(name.to_owned(), handle);
        }
        Ok(&self.queues[name])
    }
}

fn observation(holds: bool, value: String) -> Observation {
    Observation { holds, value }
}
