//! The alerting part of the config file: `[alerting]`, `[[alerts]]` (the
//! rules) and `[[alert_channels]]`, and their checks. See `docs/alerts.md`.

use std::collections::HashSet;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use sluice_engine::alerting::AlertTiming;
use sluice_engine::{QueueName, validate_name};

/// The dependency `postgres_down` and `db_slow` watch: the health check of
/// that name.
pub const POSTGRES: &str = "postgres";

/// Default evaluation interval.
pub const DEFAULT_INTERVAL_MS: u64 = 1000;

/// Default window of the rules that look back.
pub const DEFAULT_WINDOW_SECS: f64 = 300.0;

/// Default least time a firing rule's condition must stay false before it
/// resolves (the damping of flapping), when it is longer than its `for`.
pub const DEFAULT_CLEAR_SECS: f64 = 10.0;

/// `[alerting]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertingSection {
    /// How often every process evaluates the rules, ms.
    pub interval_ms: u64,
    /// The dashboard's address, for the links in messages
    /// (e.g. `https://sluice.example.com`).
    pub dashboard_url: Option<String>,
}

impl Default for AlertingSection {
    fn default() -> Self {
        Self {
            interval_ms: DEFAULT_INTERVAL_MS,
            dashboard_url: None,
        }
    }
}

/// What a rule watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Waiting jobs (at one priority with `priority`) above `threshold`.
    QueueDepth,
    /// The oldest waiting job has waited longer than `threshold` seconds.
    OldestWaiting,
    /// Failed attempts over the window above `threshold` %, once at least
    /// `min_attempts` attempts were seen.
    FailureRate,
    /// Dead letters grew by at least `threshold` over the window.
    DeadLetters,
    /// No live worker serves the queue (for `for_secs`).
    NoWorkers,
    /// The API's p99 latency over the window above `threshold` ms.
    ApiLatency,
    /// `dependency_slow` of the dependency `postgres` (the name it had
    /// first, kept).
    DbSlow,
    /// Redis does not answer.
    RedisDown,
    /// `dependency_down` of the dependency `postgres` (the name it had
    /// first, kept).
    PostgresDown,
    /// A circuit breaker (`breaker`, or any) is not closed.
    BreakerOpen,
    /// A plug-in's dependency (`dependency`, the name of its health check)
    /// does not answer. Evaluated by the processes that have the plug-in.
    DependencyDown,
    /// The p99 of the round trips to a plug-in's dependency (`dependency`)
    /// over the window above `threshold` ms, as its handlers recorded them
    /// fleet-wide.
    DependencySlow,
}

impl AlertKind {
    /// The kind's name, as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::QueueDepth => "queue_depth",
            Self::OldestWaiting => "oldest_waiting",
            Self::FailureRate => "failure_rate",
            Self::DeadLetters => "dead_letters",
            Self::NoWorkers => "no_workers",
            Self::ApiLatency => "api_latency",
            Self::DbSlow => "db_slow",
            Self::RedisDown => "redis_down",
            Self::PostgresDown => "postgres_down",
            Self::BreakerOpen => "breaker_open",
            Self::DependencyDown => "dependency_down",
            Self::DependencySlow => "dependency_slow",
        }
    }

    /// Whether it watches a plug-in's dependency (named by `dependency`,
    /// or by its kind).
    fn watches_a_dependency(self) -> bool {
        matches!(
            self,
            Self::DependencyDown | Self::DependencySlow | Self::PostgresDown | Self::DbSlow
        )
    }

    /// Whether it reads a latency series (`*_slow`, `api_latency`).
    pub fn reads_latency(self) -> bool {
        matches!(self, Self::ApiLatency | Self::DbSlow | Self::DependencySlow)
    }

    fn needs_queue(self) -> bool {
        matches!(
            self,
            Self::QueueDepth
                | Self::OldestWaiting
                | Self::FailureRate
                | Self::DeadLetters
                | Self::NoWorkers
        )
    }

    fn needs_threshold(self) -> bool {
        matches!(
            self,
            Self::QueueDepth
                | Self::OldestWaiting
                | Self::FailureRate
                | Self::DeadLetters
                | Self::ApiLatency
                | Self::DbSlow
                | Self::DependencySlow
        )
    }

    /// What the threshold and the value are counted in.
    pub fn unit(self) -> &'static str {
        match self {
            Self::QueueDepth => "jobs",
            Self::OldestWaiting => "s",
            Self::FailureRate => "%",
            Self::DeadLetters => "dead letters",
            Self::ApiLatency | Self::DbSlow | Self::DependencySlow => "ms",
            Self::NoWorkers
            | Self::RedisDown
            | Self::PostgresDown
            | Self::BreakerOpen
            | Self::DependencyDown => "",
        }
    }
}

/// One `[[alerts]]` rule.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRule {
    /// The rule's name (unique; part of its Redis key).
    pub name: String,
    /// What it watches.
    pub kind: AlertKind,
    /// The queue, for the queue kinds.
    pub queue: Option<String>,
    /// `queue_depth`: count the waiting jobs of this priority only.
    pub priority: Option<u8>,
    /// The limit; its unit depends on the kind (see [`AlertKind::unit`]).
    pub threshold: Option<f64>,
    /// The window of `failure_rate`, `dead_letters`, `api_latency`,
    /// `dependency_slow` and `db_slow`, seconds.
    pub window_secs: Option<f64>,
    /// `failure_rate`: least attempts in the window before it counts.
    #[serde(default)]
    pub min_attempts: u64,
    /// `breaker_open`: this breaker only.
    pub breaker: Option<String>,
    /// `dependency_down`, `dependency_slow`: the dependency, by the name
    /// of the health check a plug-in gives it (`postgres`).
    pub dependency: Option<String>,
    /// How long the condition must hold before the rule fires, seconds.
    #[serde(default, rename = "for_secs")]
    pub hold_secs: f64,
    /// Re-announce a firing this often, seconds (none: once).
    pub repeat_secs: Option<f64>,
    /// How long the condition must stay false before a firing resolves,
    /// seconds (default: the longer of `for_secs` and 10 s).
    pub clear_secs: Option<f64>,
    /// The channels told, by name.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Said when the rule fires, before the facts.
    pub message: Option<String>,
    /// Said when it resolves, before the facts.
    pub resolve_message: Option<String>,
}

impl AlertRule {
    /// The window of the kinds that look back.
    pub fn window(&self) -> Duration {
        Duration::from_secs_f64(self.window_secs.unwrap_or(DEFAULT_WINDOW_SECS))
    }

    /// The dependency it watches, by its health check's name:
    /// `dependency`, or `postgres` for the kinds named after it.
    pub fn dependency(&self) -> Option<&str> {
        match self.kind {
            AlertKind::PostgresDown | AlertKind::DbSlow => Some(POSTGRES),
            AlertKind::DependencyDown | AlertKind::DependencySlow => self.dependency.as_deref(),
            _ => None,
        }
    }

    /// Its timing, for the fleet-wide state.
    pub fn timing(&self) -> AlertTiming {
        let hold = Duration::from_secs_f64(self.hold_secs);
        AlertTiming {
            hold,
            clear: self
                .clear_secs
                .map(Duration::from_secs_f64)
                .unwrap_or_else(|| hold.max(Duration::from_secs_f64(DEFAULT_CLEAR_SECS))),
            repeat: self.repeat_secs.map(Duration::from_secs_f64),
        }
    }

    /// Check what the types cannot; errors name the rule and the key.
    fn validate(&self, channels: &HashSet<&str>) -> anyhow::Result<()> {
        let at = || format!("alerts[{}]", self.name);
        validate_name("alert name", &self.name)?;
        if self.kind.needs_queue() {
            let Some(q) = &self.queue else {
                bail!("{}.queue: kind {} needs a queue", at(), self.kind.as_str());
            };
            QueueName::new(q.as_str()).with_context(|| format!("{}.queue", at()))?;
        }
        match (self.kind.needs_threshold(), self.threshold) {
            (true, None) => bail!(
                "{}.threshold: kind {} needs a threshold",
                at(),
                self.kind.as_str()
            ),
            (true, Some(t)) if !t.is_finite() || t < 0.0 => {
                bail!("{}.threshold: {t} must be a number of at least 0", at())
            }
            (false, Some(_)) => bail!(
                "{}.threshold: kind {} takes no threshold",
                at(),
                self.kind.as_str()
            ),
            _ => {}
        }
        if self.kind == AlertKind::FailureRate && self.threshold.is_some_and(|t| t > 100.0) {
            bail!(
                "{}.threshold: a failure rate is a percentage, 0 to 100",
                at()
            );
        }
        if let Some(p) = self.priority {
            if self.kind != AlertKind::QueueDepth {
                bail!("{}.priority: only queue_depth takes a priority", at());
            }
            if p >= sluice_engine::PRIORITY_LEVELS {
                bail!(
                    "{}.priority: {p} is out of range 0..={}",
                    at(),
                    sluice_engine::PRIORITY_LEVELS - 1
                );
            }
        }
        if let Some(b) = &self.breaker {
            if self.kind != AlertKind::BreakerOpen {
                bail!("{}.breaker: only breaker_open takes a breaker", at());
            }
            sluice_engine::validate_breaker_name(b).with_context(|| format!("{}.breaker", at()))?;
        }
        match (&self.dependency, self.kind) {
            (None, AlertKind::DependencyDown | AlertKind::DependencySlow) => bail!(
                "{}.dependency: kind {} needs a dependency (a health check's name)",
                at(),
                self.kind.as_str()
            ),
            (Some(_), AlertKind::PostgresDown | AlertKind::DbSlow) => bail!(
                "{}.dependency: kind {} watches postgres; use dependency_{} for another",
                at(),
                self.kind.as_str(),
                if self.kind == AlertKind::DbSlow {
                    "slow"
                } else {
                    "down"
                }
            ),
            (Some(_), kind) if !kind.watches_a_dependency() => bail!(
                "{}.dependency: only dependency_down and dependency_slow take a dependency",
                at()
            ),
            (Some(d), _) => {
                validate_name("dependency", d).with_context(|| format!("{}.dependency", at()))?
            }
            (None, _) => {}
        }
        for (key, secs) in [
            ("for_secs", Some(self.hold_secs)),
            ("window_secs", self.window_secs),
            ("repeat_secs", self.repeat_secs),
            ("clear_secs", self.clear_secs),
        ] {
            if let Some(s) = secs
                && (!s.is_finite() || !(0.0..=31_536_000.0).contains(&s))
            {
                bail!("{}.{key}: {s} must be 0 to 31536000 seconds", at());
            }
        }
        if self.window_secs == Some(0.0) || self.repeat_secs == Some(0.0) {
            bail!(
                "{}: window_secs and repeat_secs must be above 0 when given",
                at()
            );
        }
        for c in &self.channels {
            if !channels.contains(c.as_str()) {
                bail!("{}.channels: no [[alert_channels]] named {c:?}", at());
            }
        }
        Ok(())
    }
}

/// How a channel is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// A JSON POST, signed like the HTTP delivery handler.
    Webhook,
    /// The Telegram Bot API's `sendMessage`.
    Telegram,
    /// A Slack-compatible incoming webhook.
    Slack,
}

/// One `[[alert_channels]]` entry. Its `Debug` shows neither the URL (a
/// Slack or Discord URL's path is its credential) nor the secret or token.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSection {
    /// The channel's name, as rules name it.
    pub name: String,
    /// How it is reached.
    pub kind: ChannelKind,
    /// webhook, slack: where to POST.
    pub url: Option<String>,
    /// webhook: HMAC-SHA256 key for `Sluice-Signature`.
    pub secret: Option<String>,
    /// telegram: the chat to write to.
    pub chat_id: Option<String>,
    /// telegram: the bot token.
    pub token: Option<String>,
    /// telegram: the environment variable holding the bot token.
    pub token_env: Option<String>,
    /// telegram: the Bot API's address (default `https://api.telegram.org`).
    pub api_url: Option<String>,
    /// Request timeout, ms (default 10 000).
    pub timeout_ms: Option<u64>,
}

impl std::fmt::Debug for ChannelSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "***");
        f.debug_struct("ChannelSection")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("url", &hidden(&self.url))
            .field("secret", &hidden(&self.secret))
            .field("chat_id", &self.chat_id)
            .field("token", &hidden(&self.token))
            .field("token_env", &self.token_env)
            .field("api_url", &self.api_url)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

impl ChannelSection {
    /// The Telegram bot token: `token`, which holds the variable `token_env`
    /// names when the file gave none (`FileConfig::apply_environment`).
    pub fn telegram_token(&self) -> Option<String> {
        self.token.clone()
    }

    fn validate(&self) -> anyhow::Result<()> {
        let at = || format!("alert_channels[{}]", self.name);
        validate_name("channel name", &self.name)?;
        let check_url = |key: &str, url: &Option<String>| -> anyhow::Result<()> {
            let Some(url) = url else {
                bail!("{}.{key}: this kind of channel needs a {key}", at());
            };
            super::check_target(url).with_context(|| format!("{}.{key}", at()))?;
            Ok(())
        };
        match self.kind {
            ChannelKind::Webhook | ChannelKind::Slack => check_url("url", &self.url)?,
            ChannelKind::Telegram => {
                if self.chat_id.as_deref().is_none_or(str::is_empty) {
                    bail!("{}.chat_id: a telegram channel needs a chat_id", at());
                }
                if self.telegram_token().is_none() {
                    bail!(
                        "{}.token: a telegram channel needs a token, or token_env naming a set environment variable",
                        at()
                    );
                }
                if self.api_url.is_some() {
                    check_url("api_url", &self.api_url)?;
                }
            }
        }
        if self.timeout_ms == Some(0) {
            bail!("{}.timeout_ms: must be at least 1", at());
        }
        Ok(())
    }
}

/// Check the rules and channels together.
pub fn validate(
    alerting: &AlertingSection,
    rules: &[AlertRule],
    channels: &[ChannelSection],
) -> anyhow::Result<()> {
    if alerting.interval_ms == 0 {
        bail!("alerting.interval_ms: must be at least 1");
    }
    if let Some(url) = &alerting.dashboard_url {
        super::check_target(url).context("alerting.dashboard_url")?;
    }
    let mut names = HashSet::new();
    for c in channels {
        c.validate()?;
        if !names.insert(c.name.as_str()) {
            bail!("alert_channels[{}]: configured twice", c.name);
        }
    }
    let mut seen = HashSet::new();
    for r in rules {
        r.validate(&names)?;
        if !seen.insert(r.name.as_str()) {
            bail!("alerts[{}]: configured twice", r.name);
        }
    }
    Ok(())
}
