//! The config file (TOML) and how it combines with flags and environment.
//!
//! Flags and environment variables (clap reads both) win over the file,
//! which wins over defaults. The file alone describes what has no flag:
//! queues with their delivery targets and limits, cron schedules and API
//! keys. A plug-in's section is kept as it is (raw TOML) for the plug-in to
//! read. Unknown keys are refused, so a typo never silently falls back to a
//! default. See `docs/configuration.md` for an annotated example.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub mod alerts;

pub use sluice_server::settings::{ApiConfig, ApiKeySection, Scope};

use anyhow::{Context, bail};
use serde::Deserialize;
use sluice_engine::{BreakerConfig, QueueConfig, QueueName, RateLimit, validate_name};

/// Default Redis URL.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379/";

/// Default key prefix.
pub const DEFAULT_PREFIX: &str = "sluice";

/// Default address of the HTTP API.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// What a config file may hold. Its `Debug` shows the Redis URL without
/// its password, and of the plug-ins' sections only their names (each
/// section hides its own secrets).
// Not `deny_unknown_fields` (serde cannot have it with `flatten`): `load`
// refuses a top-level key that no linked plug-in claims.
#[derive(Clone, Default, PartialEq, Deserialize)]
pub struct FileConfig {
    /// Redis URL.
    pub redis_url: Option<String>,
    /// Key prefix.
    pub prefix: Option<String>,
    /// Where `sluice up` keeps the data of the Redis it starts.
    pub data_dir: Option<PathBuf>,
    /// Log format: "human" or "json".
    pub log_format: Option<LogFormat>,
    /// The HTTP API.
    #[serde(default)]
    pub api: ApiConfig,
    /// Worker processes.
    #[serde(default)]
    pub worker: WorkerSection,
    /// Queues served by `sluice work` and `sluice up`.
    #[serde(default)]
    pub queues: Vec<QueueSection>,
    /// Cron schedules.
    #[serde(default)]
    pub schedules: Vec<ScheduleSection>,
    /// How alert rules are evaluated.
    #[serde(default)]
    pub alerting: alerts::AlertingSection,
    /// Alert rules (see `docs/alerts.md`).
    #[serde(default)]
    pub alerts: Vec<alerts::AlertRule>,
    /// Where alerts are sent.
    #[serde(default)]
    pub alert_channels: Vec<alerts::ChannelSection>,
    /// The plug-ins' sections, by name, as the file has them: each plug-in
    /// reads its own.
    #[serde(flatten)]
    pub plugin_sections: BTreeMap<String, toml::Value>,
}

impl std::fmt::Debug for FileConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileConfig")
            .field(
                "redis_url",
                &self.redis_url.as_deref().map(sluice_engine::redact_url),
            )
            .field("prefix", &self.prefix)
            .field("data_dir", &self.data_dir)
            .field("log_format", &self.log_format)
            .field("api", &self.api)
            .field("worker", &self.worker)
            .field("queues", &self.queues)
            .field("schedules", &self.schedules)
            .field("alerting", &self.alerting)
            .field("alerts", &self.alerts)
            .field("alert_channels", &self.alert_channels)
            .field(
                "plugin_sections",
                &self.plugin_sections.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Log output.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people.
    #[default]
    Human,
    /// One JSON object per line.
    Json,
}

/// `[worker]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerSection {
    /// How long running jobs may take to finish at a stop, seconds.
    pub shutdown_grace_secs: u64,
    /// Seconds between heartbeats; a worker is gone after three missed.
    pub heartbeat_secs: u64,
}

impl Default for WorkerSection {
    fn default() -> Self {
        Self {
            shutdown_grace_secs: 30,
            heartbeat_secs: sluice_engine::DEFAULT_HEARTBEAT.as_secs(),
        }
    }
}

/// One `[[queues]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueSection {
    /// The queue.
    pub name: String,
    /// Jobs run at once per worker process.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// HTTP delivery: POST each job's payload to this URL.
    pub url: Option<String>,
    /// HTTP delivery: HMAC-SHA256 key for the `Sluice-Signature` header.
    pub secret: Option<String>,
    /// HTTP delivery: request timeout, ms (also the job's run timeout).
    pub timeout_ms: Option<u64>,
    /// Jobs started per second across the fleet. Absent: the queue keeps
    /// whatever limit it has (a worker without one in its config does not
    /// lift the fleet's); `0`: remove the queue's limit.
    pub rate_limit: Option<f64>,
    /// Most jobs started at once after a quiet spell (default: the rate).
    pub rate_burst: Option<u32>,
    /// Runs allowed per job by default, the first included.
    pub max_attempts: Option<u32>,
    /// A claimed job whose worker is silent this long is reclaimed, ms.
    pub visibility_timeout_ms: Option<u64>,
    /// Split the queue over this many partitions (`name#0` ...), which Redis
    /// Cluster places on different shards; order then holds per partition.
    pub partitions: Option<u16>,
    /// The circuit breaker of the queue's target (see `docs/breakers.md`).
    #[serde(default)]
    pub breaker: BreakerSection,
}

/// `[queues.breaker]`: the circuit breaker in front of the queue's target
/// (its `url`'s host, or what a plug-in's handler calls). Absent keys take
/// the engine's defaults.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerSection {
    /// `false`: no breaker; every job calls the target.
    pub enabled: bool,
    /// Failure percentage (0 to 100) over the window that opens it.
    pub failure_rate: Option<f64>,
    /// Least calls in the window before the rate counts.
    pub min_calls: Option<u32>,
    /// The rolling window, ms.
    pub window_ms: Option<u64>,
    /// First cool-down, ms.
    pub cool_down_ms: Option<u64>,
    /// Longest cool-down, ms.
    pub max_cool_down_ms: Option<u64>,
    /// Probe calls at once, fleet-wide, while half-open.
    pub probes: Option<u32>,
}

impl Default for BreakerSection {
    fn default() -> Self {
        Self {
            enabled: true,
            failure_rate: None,
            min_calls: None,
            window_ms: None,
            cool_down_ms: None,
            max_cool_down_ms: None,
            probes: None,
        }
    }
}

impl BreakerSection {
    /// The engine's settings; `None` when disabled.
    pub fn config(&self) -> Option<BreakerConfig> {
        if !self.enabled {
            return None;
        }
        let mut c = BreakerConfig::default();
        let ms = Duration::from_millis;
        if let Some(v) = self.failure_rate {
            c.failure_rate = v;
        }
        if let Some(v) = self.min_calls {
            c.min_calls = v;
        }
        if let Some(v) = self.window_ms {
            c.window = ms(v);
        }
        if let Some(v) = self.cool_down_ms {
            c.cool_down = ms(v);
            c.max_cool_down = c.max_cool_down.max(c.cool_down);
        }
        if let Some(v) = self.max_cool_down_ms {
            c.max_cool_down = ms(v);
        }
        if let Some(v) = self.probes {
            c.probes = v;
        }
        Some(c)
    }
}

fn default_concurrency() -> usize {
    10
}

impl QueueSection {
    /// A queue served with `concurrency` and nothing else configured (a
    /// plug-in's queue not named in `[[queues]]`).
    pub fn named(name: &str, concurrency: usize) -> Self {
        Self {
            name: name.to_owned(),
            concurrency,
            url: None,
            secret: None,
            timeout_ms: None,
            rate_limit: None,
            rate_burst: None,
            max_attempts: None,
            visibility_timeout_ms: None,
            partitions: None,
            breaker: BreakerSection::default(),
        }
    }

    /// The engine's settings for this queue.
    pub fn queue_config(&self) -> QueueConfig {
        let mut c = QueueConfig::default();
        if let Some(n) = self.max_attempts {
            c.max_attempts = n;
        }
        if let Some(ms) = self.visibility_timeout_ms {
            c.visibility_timeout = Duration::from_millis(ms);
        }
        c
    }

    /// What this config says of the queue's rate limit.
    pub fn rate_limit_setting(&self) -> anyhow::Result<RateLimitSetting> {
        Ok(match (self.rate_limit, self.rate_limit()?) {
            (None, _) => RateLimitSetting::Keep,
            (Some(_), None) => RateLimitSetting::Remove,
            (Some(_), Some(l)) => RateLimitSetting::Set(l),
        })
    }

    /// The queue's rate limit, if set to a rate above zero.
    pub fn rate_limit(&self) -> anyhow::Result<Option<RateLimit>> {
        let Some(rate) = self.rate_limit else {
            return Ok(None);
        };
        if rate == 0.0 {
            return Ok(None);
        }
        let limit = match self.rate_burst {
            Some(burst) => RateLimit::new(rate, burst),
            None => RateLimit::per_second(rate),
        };
        Ok(Some(limit.with_context(|| {
            format!("queue {}: bad rate limit", self.name)
        })?))
    }
}

/// What a queue's config says of its fleet-wide rate limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RateLimitSetting {
    /// Nothing: leave the queue's limit as it is.
    Keep,
    /// `rate_limit = 0`: remove it.
    Remove,
    /// This limit.
    Set(RateLimit),
}

/// One `[[schedules]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSection {
    /// The schedule's name (part of each tick's idempotency key).
    pub name: String,
    /// Cron expression with seconds: `sec min hour day-of-month month
    /// day-of-week [year]`, e.g. `0 */5 * * * *`.
    pub cron: String,
    /// IANA time zone the expression is read in (default UTC).
    pub timezone: Option<String>,
    /// Queue the jobs go to.
    pub queue: String,
    /// Payload of every job (any TOML value, sent as JSON).
    #[serde(default)]
    pub payload: Option<toml::Value>,
    /// Priority of the jobs.
    pub priority: Option<u8>,
}

impl ScheduleSection {
    /// The payload every job gets, as JSON.
    pub fn payload_json(&self) -> anyhow::Result<serde_json::Value> {
        match &self.payload {
            Some(v) => {
                serde_json::to_value(v).with_context(|| format!("schedule {}: payload", self.name))
            }
            None => Ok(serde_json::Value::Null),
        }
    }

    /// The engine's schedule of this entry: its expression, time zone,
    /// priority and queue checked.
    pub fn cron(&self) -> anyhow::Result<sluice_engine::CronSchedule> {
        Ok(sluice_engine::CronSchedule::new(
            &self.name,
            &self.cron,
            self.timezone.as_deref(),
            &self.queue,
            &self.payload_json()?,
            self.priority,
        )?)
    }
}

/// Check that `url` is an absolute http(s) URL with a host (a queue's
/// delivery target, an alert channel's webhook).
pub fn check_target(url: &str) -> anyhow::Result<reqwest::Url> {
    // Messages show the URL without its secrets (user info, query values).
    let shown = sluice_engine::redact_url(url);
    let parsed = reqwest::Url::parse(url).with_context(|| format!("{shown:?} is not a URL"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("{shown:?}: only http and https targets are supported");
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        bail!("{shown:?} has no host");
    }
    Ok(parsed)
}

impl FileConfig {
    /// Read, parse and check `path`. A top-level key is either the
    /// binary's or one of `plugin_sections` (the linked plug-ins' sections,
    /// whose checks are their own); any other is refused.
    pub fn load(path: &Path, plugin_sections: &[&str]) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let invalid =
            |why: String| anyhow::anyhow!("invalid config file {}: {why}", path.display());
        let mut config: Self = toml::from_str(&text).map_err(|e| invalid(one_line(&text, &e)))?;
        if let Some(key) = config
            .plugin_sections
            .keys()
            .find(|k| !plugin_sections.contains(&k.as_str()))
        {
            return Err(invalid(unknown_key(&text, key)));
        }
        config.apply_environment(&process_env)?;
        config
            .validate()
            .with_context(|| format!("invalid config file {}", path.display()))?;
        Ok(config)
    }

    /// The defaults, with the environment's overrides (no config file).
    pub fn without_file() -> anyhow::Result<Self> {
        let mut config = Self::default();
        config.apply_environment(&process_env)?;
        config.validate()?;
        Ok(config)
    }

    /// The environment's overrides of the file, applied once, here, so
    /// that the rest of the program reads only the settings: a non-empty
    /// `SLUICE_SESSION_SECRET` wins over the file, and a Telegram channel
    /// without a `token` takes the variable its `token_env` names (a
    /// plug-in applies the overrides of its own section). `SLUICE_API_KEYS` adds API keys to the file's:
    /// `NAME:SCOPE:SHA256` entries separated by commas (what a container's
    /// secret can hold). `env` answers a variable's value.
    pub fn apply_environment(
        &mut self,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<()> {
        let set = |name: &str| env(name).filter(|v| !v.is_empty());
        if let Some(secret) = set("SLUICE_SESSION_SECRET") {
            self.api.session_secret = Some(secret);
        }
        if let Some(keys) = set("SLUICE_API_KEYS") {
            for (n, entry) in keys.split(',').map(str::trim).enumerate() {
                self.api.keys.push(api_key_of(entry).with_context(|| {
                    format!("SLUICE_API_KEYS: entry {} is not NAME:SCOPE:SHA256", n + 1)
                })?);
            }
        }
        for channel in &mut self.alert_channels {
            if channel.token.is_none() {
                channel.token = channel.token_env.as_deref().and_then(set);
            }
        }
        Ok(())
    }

    /// Check what the types cannot: names, uniqueness, ranges, cron syntax.
    pub fn validate(&self) -> anyhow::Result<()> {
        let mut names = HashSet::new();
        for q in &self.queues {
            QueueName::new(q.name.as_str())?;
            if !names.insert(q.name.as_str()) {
                bail!("queue {} is configured twice", q.name);
            }
            if q.concurrency == 0 {
                bail!("queue {}: concurrency must be at least 1", q.name);
            }
            if let Some(n) = q.partitions {
                if n == 0 || n > sluice_engine::MAX_PARTITIONS {
                    bail!(
                        "queue {}: partitions must be 1 to {}",
                        q.name,
                        sluice_engine::MAX_PARTITIONS
                    );
                }
                if q.name.contains('#') {
                    bail!(
                        "queue {}: a partitioned queue's name cannot name a partition",
                        q.name
                    );
                }
            }
            if let Some(url) = &q.url {
                check_target(url).with_context(|| format!("queue {}: bad url", q.name))?;
            }
            q.rate_limit()?;
            if let Some(b) = q.breaker.config() {
                b.validate()
                    .with_context(|| format!("queue {}: queues.breaker", q.name))?;
            }
            q.queue_config()
                .validate()
                .with_context(|| format!("queue {}", q.name))?;
        }
        alerts::validate(&self.alerting, &self.alerts, &self.alert_channels)?;
        let mut schedules = HashSet::new();
        for s in &self.schedules {
            validate_name("schedule name", &s.name)?;
            QueueName::new(s.queue.as_str())?;
            if !schedules.insert(s.name.as_str()) {
                bail!("schedule {} is configured twice", s.name);
            }
            s.cron()?;
        }
        let mut keys = HashSet::new();
        for k in &self.api.keys {
            if k.sha256.len() != 64 || !k.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!("api key {}: sha256 must be 64 hex digits", k.name);
            }
            if !keys.insert(k.sha256.to_ascii_lowercase()) {
                bail!("api key {} is configured twice", k.name);
            }
        }
        self.api.trusted_proxies()?;
        if self.api.max_batch == 0 {
            bail!("api.max_batch must be at least 1");
        }
        for (name, value) in [
            ("api.header_timeout_secs", self.api.header_timeout_secs),
            ("api.body_timeout_secs", self.api.body_timeout_secs),
            ("api.max_connections", self.api.max_connections as u64),
            ("api.max_queues", self.api.max_queues as u64),
        ] {
            if value == 0 {
                bail!("{name} must be at least 1");
            }
        }
        Ok(())
    }

    /// The `[[queues]]` entry named `name`.
    pub fn queue(&self, name: &str) -> Option<&QueueSection> {
        self.queues.iter().find(|q| q.name == name)
    }
}

/// An API key of `SLUICE_API_KEYS`: `NAME:SCOPE:SHA256` (its hash is
/// checked with the file's keys).
fn api_key_of(entry: &str) -> anyhow::Result<ApiKeySection> {
    let mut parts = entry.splitn(3, ':');
    let (Some(name), Some(scope), Some(sha256)) = (parts.next(), parts.next(), parts.next()) else {
        bail!("three parts are needed");
    };
    let scope = match scope.trim() {
        "read" => Scope::Read,
        "admin" => Scope::Admin,
        _ => bail!("the scope is read or admin"),
    };
    let name = name.trim();
    if name.is_empty() {
        bail!("the name is empty");
    }
    Ok(ApiKeySection {
        name: name.to_owned(),
        sha256: sha256.trim().to_owned(),
        scope,
        requests_per_second: None,
    })
}

/// A variable of this process's environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A top-level key no one reads, on one line: where, as a TOML error.
fn unknown_key(text: &str, key: &str) -> String {
    let line = text.lines().enumerate().find(|(_, line)| {
        let line = line.trim_start().trim_start_matches('[').trim_start();
        line.strip_prefix(key)
            .is_some_and(|rest| rest.starts_with([' ', '=', ']', '.', '\t']))
    });
    match line {
        Some((n, line)) => format!("line {} ({}): unknown key `{key}`", n + 1, line.trim()),
        None => format!("unknown key `{key}`"),
    }
}

/// A TOML error on one line: where, the line itself (which names the
/// key), and what is wrong.
fn one_line(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return message;
    };
    let start = span.start.min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
    format!("line {line_no} ({line}): {message}")
}

/// Settings after combining flags, environment, file and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Redis URL.
    pub redis_url: String,
    /// Key prefix.
    pub prefix: String,
}

impl Settings {
    /// Flag or environment (`cli`) first, then the file, then defaults.
    pub fn resolve(
        cli_redis_url: Option<String>,
        cli_prefix: Option<String>,
        file: &FileConfig,
    ) -> Self {
        Self {
            redis_url: cli_redis_url
                .or_else(|| file.redis_url.clone())
                .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned()),
            prefix: cli_prefix
                .or_else(|| file.prefix.clone())
                .unwrap_or_else(|| DEFAULT_PREFIX.to_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let file: FileConfig =
            toml::from_str("redis_url = \"redis://file/\"\nprefix = \"p\"").expect("toml");
        let s = Settings::resolve(Some("redis://flag/".into()), None, &file);
        assert_eq!(
            (s.redis_url.as_str(), s.prefix.as_str()),
            ("redis://flag/", "p")
        );
        let d = Settings::resolve(None, None, &FileConfig::default());
        assert_eq!(
            (d.redis_url.as_str(), d.prefix.as_str()),
            (DEFAULT_REDIS_URL, DEFAULT_PREFIX)
        );
    }

    #[test]
    fn unknown_keys_are_refused_and_plugin_sections_kept_as_they_are() {
        assert!(toml::from_str::<FileConfig>("[[queues]]\nname = \"a\"\nconcurency = 3").is_err());
        let dir = std::env::temp_dir().join(format!("sluice-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("c.toml");
        std::fs::write(&path, "prefix = \"p\"\nredis_ulr = \"x\"\n").expect("write");
        let err = format!("{:#}", FileConfig::load(&path, &[]).expect_err("typo"));
        assert!(
            err.ends_with("line 2 (redis_ulr = \"x\"): unknown key `redis_ulr`"),
            "{err}"
        );
        std::fs::write(&path, "[plug]\nanything = 1\n[plug.inner]\nx = \"y\"\n").expect("write");
        let err = format!(
            "{:#}",
            FileConfig::load(&path, &[]).expect_err("no plug-in")
        );
        assert!(
            err.ends_with("line 1 ([plug]): unknown key `plug`"),
            "{err}"
        );
        let c = FileConfig::load(&path, &["plug"]).expect("a plug-in's section");
        assert_eq!(c.plugin_sections["plug"]["inner"]["x"].as_str(), Some("y"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_config_parses_and_validates() {
        let text = r#"
            prefix = "app"
            [api]
            listen = "127.0.0.1:9000"
            [[api.keys]]
            name = "ops"
            sha256 = "a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3"
            scope = "admin"
            requests_per_second = 100
            [[queues]]
            name = "hooks"
            concurrency = 4
            url = "http://127.0.0.1:3000/hook"
            secret = "s3cret"
            rate_limit = 20.0
            [[schedules]]
            name = "nightly"
            cron = "0 0 3 * * *"
            timezone = "Europe/Madrid"
            queue = "hooks"
            payload = { report = "daily" }
        "#;
        let c: FileConfig = toml::from_str(text).expect("parse");
        c.validate().expect("valid");
        assert_eq!(c.queue("hooks").expect("queue").concurrency, 4);
        assert_eq!(c.api.keys[0].scope, Scope::Admin);
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        for (text, why) in [
            ("[[queues]]\nname = \"a{b}\"", "queue name"),
            ("[[queues]]\nname = \"a\"\nconcurrency = 0", "concurrency"),
            ("[[queues]]\nname = \"a\"\nrate_limit = -1.0", "rate limit"),
            ("[[queues]]\nname = \"a\"\nurl = \"ftp://x\"", "url"),
            (
                "[[queues]]\nname = \"a\"\n[queues.breaker]\nfailure_rate = 150.0",
                "breaker.failure_rate",
            ),
            (
                "[[queues]]\nname = \"a\"\n[queues.breaker]\nprobes = 0",
                "breaker.probes",
            ),
            (
                "[[schedules]]\nname = \"s\"\ncron = \"nope\"\nqueue = \"a\"",
                "cron",
            ),
            (
                "[[schedules]]\nname = \"s\"\ncron = \"0 * * * * *\"\ntimezone = \"Mars/Base\"\nqueue = \"a\"",
                "time zone",
            ),
            (
                "[[api.keys]]\nname = \"k\"\nsha256 = \"xyz\"\nscope = \"admin\"",
                "sha256",
            ),
            (
                "[api]\ntrusted_proxies = [\"10.0.0.0/33\"]",
                "trusted_proxies",
            ),
        ] {
            let c: FileConfig = toml::from_str(text).expect("parse");
            let err = format!("{:#}", c.validate().expect_err(text));
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn the_environment_wins_over_the_file_once_applied() {
        let text = "[api]\nsession_secret = \"from-file\"\n\
            [[alert_channels]]\nname = \"tg\"\nkind = \"telegram\"\nchat_id = \"1\"\ntoken_env = \"TG_TOKEN\"\n\
            [[alert_channels]]\nname = \"tg2\"\nkind = \"telegram\"\nchat_id = \"1\"\ntoken = \"own\"\ntoken_env = \"TG_TOKEN\"\n";
        let mut c: FileConfig = toml::from_str(text).expect("toml");
        let env = |name: &str| match name {
            "SLUICE_SESSION_SECRET" => Some("from-env".to_owned()),
            "TG_TOKEN" => Some("bot-token".to_owned()),
            _ => None,
        };
        c.apply_environment(&env).expect("environment");
        assert_eq!(c.api.session_secret.as_deref(), Some("from-env"));
        assert_eq!(
            c.alert_channels[0].telegram_token().as_deref(),
            Some("bot-token")
        );
        // A token in the file is not replaced by the variable.
        assert_eq!(c.alert_channels[1].telegram_token().as_deref(), Some("own"));
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let text = r#"
redis_url = "redis://:redis-pass-1@127.0.0.1:6379/"
[api]
session_secret = "session-secret-2-abcdefghijklmnopqrstuvwxyz"
[plug]
database_url = "postgres://sluice:pg-pass-3@db/sluice"
cookie_key = "cookie-key-4"
[plug.s3]
endpoint = "http://127.0.0.1:9000"
bucket = "b"
access_key = "access-key-5"
secret_key = "s3-secret-6"
[[alert_channels]]
name = "ops"
kind = "webhook"
url = "http://127.0.0.1:9/hook"
secret = "hmac-secret-7"
[[alert_channels]]
name = "tg"
kind = "telegram"
chat_id = "1"
token = "bot-token-8"
"#;
        let c: FileConfig = toml::from_str(text).expect("parses");
        // A plug-in's section is shown by name only: it hides its own
        // secrets once the plug-in has read it.
        let shown = format!("{c:?} {:?}", c.api);
        for secret in [
            "redis-pass-1",
            "session-secret-2",
            "pg-pass-3",
            "cookie-key-4",
            "access-key-5",
            "s3-secret-6",
            "hmac-secret-7",
            "bot-token-8",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        assert!(shown.contains("127.0.0.1:6379"), "{shown}");
    }

    #[test]
    fn api_keys_come_from_the_environment_too() {
        let hash = "a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3";
        let mut c = FileConfig::default();
        let keys = format!("ops:admin:{hash}, viewer:read:{}", hash.replace('a', "b"));
        c.apply_environment(&|name: &str| (name == "SLUICE_API_KEYS").then(|| keys.clone()))
            .expect("keys");
        c.validate().expect("valid");
        let named: Vec<(&str, Scope)> = c
            .api
            .keys
            .iter()
            .map(|k| (k.name.as_str(), k.scope))
            .collect();
        assert_eq!(named, [("ops", Scope::Admin), ("viewer", Scope::Read)]);
        for bad in ["ops:admin", "ops:root:{hash}", ":admin:{hash}"] {
            let bad = bad.replace("{hash}", hash);
            let mut c = FileConfig::default();
            let err = c
                .apply_environment(&|name: &str| (name == "SLUICE_API_KEYS").then(|| bad.clone()))
                .expect_err(&bad);
            assert!(format!("{err:#}").contains("SLUICE_API_KEYS"), "{err:#}");
        }
        // A placeholder instead of a hash is refused when checked.
        let mut c = FileConfig::default();
        c.apply_environment(&|name: &str| {
            (name == "SLUICE_API_KEYS").then(|| "ops:admin:REPLACE-ME".to_owned())
        })
        .expect("parsed");
        assert!(c.validate().is_err());
    }

    #[test]
    fn bad_alerting_and_breaker_settings_are_refused_on_one_line_naming_the_key() {
        let dir = std::env::temp_dir().join(format!("sluice-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let channel = "[[alert_channels]]\nname = \"ops\"\nkind = \"slack\"\nurl = \"http://127.0.0.1:9/x\"\n";
        for (n, (text, key)) in [
            (
                format!("{channel}[[alerts]]\nname = \"a\"\nkind = \"queue_deep\"\nqueue = \"q\"\nthreshold = 1\n"),
                "kind = \"queue_deep\"",
            ),
            (
                format!("{channel}[[alerts]]\nname = \"a\"\nkind = \"queue_depth\"\nqueue = \"q\"\nthreshold = \"lots\"\n"),
                "threshold = \"lots\"",
            ),
            (
                "[[alert_channels]]\nname = \"tg\"\nkind = \"telegram\"\nchat_id = \"1\"\n".to_owned(),
                "alert_channels[tg].token",
            ),
            (
                "[[alert_channels]]\nname = \"tg\"\nkind = \"telegram\"\nchat_id = \"1\"\ntoken_env = \"SLUICE_TEST_UNSET_TOKEN\"\n".to_owned(),
                "alert_channels[tg].token",
            ),
            (
                format!("{channel}[[alerts]]\nname = \"f\"\nkind = \"failure_rate\"\nqueue = \"q\"\nthreshold = 150\n"),
                "alerts[f].threshold",
            ),
            (
                "[[alerts]]\nname = \"d\"\nkind = \"queue_depth\"\nqueue = \"q\"\nthreshold = 3\nchannels = [\"nowhere\"]\n".to_owned(),
                "alerts[d].channels",
            ),
            (
                "[[alerts]]\nname = \"d\"\nkind = \"queue_depth\"\nthreshold = 3\n".to_owned(),
                "alerts[d].queue",
            ),
            (
                "[[queues]]\nname = \"q\"\n[queues.breaker]\nfailure_rate = 150\n".to_owned(),
                "breaker.failure_rate",
            ),
            (
                "[[queues]]\nname = \"q\"\n[queues.breaker]\nfailure_rate = \"half\"\n".to_owned(),
                "failure_rate = \"half\"",
            ),
        ]
        .into_iter()
        .enumerate()
        {
            let path = dir.join(format!("{n}.toml"));
            std::fs::write(&path, &text).expect("write");
            let err = format!("{:#}", FileConfig::load(&path, &[]).expect_err(&text));
            assert!(err.contains(key), "{text}: {err}");
            assert!(!err.contains('\n'), "not one line: {err}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
