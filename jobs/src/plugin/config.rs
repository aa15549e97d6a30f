//! `[trading]` (formerly `[pipeline]`): the trading application's section of the config
//! file (the `sluice` binary hands it over as it is), the environment
//! variables that win over it, its defaults and its checks, and the typed
//! settings of this crate it converts to (the runtime that uses them is
//! `runtime`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;
use sluice_engine::CronSchedule;
use sluice_plugin::Section;

use crate::db::DbConfig;
use crate::message::{MessageField, ParseOptions};
use crate::queues;
use crate::secrets::CookieCipher;
use crate::storage::{LocalStore, S3Settings, S3Store, ScreenshotStore};

/// Keys renamed when a TradingView message stopped being called an alert
/// (an alert is the operations' rule): the former names are still read
/// (serde aliases), with a deprecation warning.
const FORMER_KEYS: [(&str, &str); 3] = [
    ("alert_price_required", "message_price_required"),
    ("alert_decimal_comma", "message_decimal_comma"),
    ("alert_aliases", "message_aliases"),
];

/// Default PostgreSQL URL.
pub const DEFAULT_DATABASE_URL: &str = "postgres://127.0.0.1:5432/postgres";

/// The longest `audit_retention_days`: the audit log keeps a partition per
/// day, and a backup (one transaction over every partition), a restore and
/// a migration each take a few locks per partition from PostgreSQL's shared
/// lock table, which `max_locks_per_transaction` (64 by default) sizes:
/// about 1,700 days failed with "out of shared memory" there. Past a year,
/// raise it (docs/trading.md).
pub const MAX_AUDIT_DAYS: u64 = 1_000;

/// `[trading]`. Its `Debug` shows the database URL without its password
/// and no cookie key.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TradingSection {
    /// PostgreSQL URL (`SLUICE_DATABASE_URL` wins).
    pub database_url: Option<String>,
    /// Schema for the tables (default: the URL's search path, `public`).
    pub database_schema: Option<String>,
    /// Most connections per process.
    pub database_connections: u32,
    /// Base64 32-byte key that encrypts users' cookies
    /// (`SLUICE_COOKIE_KEY` wins). Without it cookies cannot be stored and
    /// charts are opened without them.
    pub cookie_key: Option<String>,
    /// How webhook URLs printed by `sluice trading users` start.
    pub public_url: String,
    /// Chart page, `{chart}` replaced by the chart id.
    pub chart_url: String,
    /// The Chromium binary.
    pub chromium: PathBuf,
    /// Tabs (screenshots at once) per worker process.
    pub screenshot_concurrency: usize,
    /// Longest one screenshot may take, seconds.
    pub screenshot_timeout_secs: u64,
    /// Element to wait for before capturing; empty: only the load event.
    pub ready_selector: String,
    /// Viewport width, CSS pixels.
    pub viewport_width: u32,
    /// Viewport height, CSS pixels.
    pub viewport_height: u32,
    /// Where screenshots are stored (unless `[trading.s3]` is set).
    pub screenshots_dir: PathBuf,
    /// Store screenshots in an S3-compatible bucket instead.
    pub s3: Option<S3Section>,
    /// Where backups are written.
    pub backups_dir: PathBuf,
    /// Backups kept.
    pub backups_keep: usize,
    /// Base64 32-byte key that signs backups (`SLUICE_BACKUP_KEY` wins):
    /// each ends with an HMAC of its lines, and restore refuses a file
    /// whose HMAC does not match. Without it backups are not signed.
    pub backup_key: Option<String>,
    /// When backups run (cron with seconds, UTC). Empty: never.
    pub backup_cron: String,
    /// When retention runs (cron with seconds, UTC). Empty: never.
    pub retention_cron: String,
    /// Signals (and screenshots) older than this are deleted, days.
    pub signals_retention_days: u64,
    /// Audit logs older than this are dropped, days: whole days (the
    /// table's partitions), so a row lives up to a day longer. 1 to
    /// [`MAX_AUDIT_DAYS`].
    pub audit_retention_days: u64,
    /// Per-user, per-day signal aggregates older than this are deleted,
    /// days (they outlive the raw signals).
    pub aggregates_retention_days: u64,
    /// Ingest jobs run at once per worker process (they are written in
    /// batches of up to this many).
    pub ingest_concurrency: usize,
    /// Audit events run at once per worker process (batch size).
    pub audit_concurrency: usize,
    /// Record API calls and webhooks in the audit log.
    pub audit: bool,
    /// Where audit events wait while Redis is unreachable (one file per
    /// process; a relative path is under the working directory).
    pub audit_spill_file: PathBuf,
    /// The spill file's largest size, MiB; past it events are dropped.
    pub audit_spill_max_mib: u64,
    /// Refuse a signal without a usable price (the default); off, it is
    /// stored without one.
    #[serde(alias = "alert_price_required")]
    pub message_price_required: bool,
    /// Messages write numbers with a decimal comma (`1.234,56`) instead of a
    /// decimal point (`1,234.56`).
    #[serde(alias = "alert_decimal_comma")]
    pub message_decimal_comma: bool,
    /// Extra message labels, each naming a field (`strategy = "indicator"`);
    /// when set, they replace the default aliases (`close`, `timenow`,
    /// `action`). See docs/trading.md.
    #[serde(alias = "alert_aliases")]
    pub message_aliases: Option<std::collections::BTreeMap<String, String>>,
}

/// `[trading.s3]`: an S3-compatible bucket for screenshots.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Section {
    /// The service's URL, e.g. `https://s3.eu-west-1.amazonaws.com`.
    pub endpoint: String,
    /// The bucket (it must exist).
    pub bucket: String,
    /// The region requests are signed for.
    #[serde(default = "default_region")]
    pub region: String,
    /// Access key id (`SLUICE_S3_ACCESS_KEY` wins).
    #[serde(default)]
    pub access_key: String,
    /// Secret access key (`SLUICE_S3_SECRET_KEY` wins).
    #[serde(default)]
    pub secret_key: String,
    /// Key prefix of the objects.
    #[serde(default = "default_s3_prefix")]
    pub prefix: String,
    /// Bucket in the URL path (MinIO and most self-hosted servers) rather
    /// than in the host name.
    #[serde(default = "default_true")]
    pub path_style: bool,
    /// Base URL that stored objects are linked under (a CDN or the
    /// bucket's public address). Default: the bucket's URL.
    #[serde(default)]
    pub public_url: Option<String>,
}

impl std::fmt::Debug for TradingSection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TradingSection")
            .field(
                "database_url",
                &self.database_url.as_deref().map(sluice_engine::redact_url),
            )
            .field("database_schema", &self.database_schema)
            .field("cookie_key", &self.cookie_key.as_ref().map(|_| "***"))
            .field("backup_key", &self.backup_key.as_ref().map(|_| "***"))
            .field("public_url", &self.public_url)
            .field("chart_url", &self.chart_url)
            .field("chromium", &self.chromium)
            .field("screenshots_dir", &self.screenshots_dir)
            .field("s3", &self.s3)
            .field("backups_dir", &self.backups_dir)
            .field("audit", &self.audit)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for S3Section {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Section")
            .field("endpoint", &self.endpoint)
            .field("bucket", &self.bucket)
            .field("region", &self.region)
            .field("access_key", &"***")
            .field("secret_key", &"***")
            .field("prefix", &self.prefix)
            .field("path_style", &self.path_style)
            .field("public_url", &self.public_url)
            .finish()
    }
}

fn default_region() -> String {
    "us-east-1".into()
}

fn default_s3_prefix() -> String {
    "screenshots/".into()
}

fn default_true() -> bool {
    true
}

impl S3Section {
    fn settings(&self) -> S3Settings {
        S3Settings {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
            prefix: self.prefix.clone(),
            path_style: self.path_style,
            public_url: self.public_url.clone(),
        }
    }
}

impl Default for TradingSection {
    fn default() -> Self {
        Self {
            database_url: None,
            database_schema: None,
            database_connections: 10,
            cookie_key: None,
            public_url: "http://127.0.0.1:8080".into(),
            chart_url: "https://www.tradingview.com/chart/{chart}/".into(),
            chromium: PathBuf::from("/usr/bin/chromium"),
            screenshot_concurrency: 3,
            screenshot_timeout_secs: 30,
            ready_selector: "canvas".into(),
            viewport_width: 1280,
            viewport_height: 720,
            screenshots_dir: PathBuf::from(".sluice/screenshots"),
            s3: None,
            backups_dir: PathBuf::from(".sluice/backups"),
            backups_keep: 7,
            backup_key: None,
            backup_cron: "0 0 3 * * *".into(),
            retention_cron: "0 30 3 * * *".into(),
            signals_retention_days: 7,
            audit_retention_days: 90,
            aggregates_retention_days: 365,
            ingest_concurrency: 500,
            audit_concurrency: 500,
            audit: true,
            audit_spill_file: PathBuf::from(".sluice/audit-spill.jsonl"),
            audit_spill_max_mib: 256,
            message_price_required: true,
            message_decimal_comma: false,
            message_aliases: None,
        }
    }
}

impl TradingSection {
    /// The section of the config file (its defaults when the file has
    /// none), with the environment's overrides applied: a non-empty
    /// `SLUICE_DATABASE_URL`, `SLUICE_COOKIE_KEY`, `SLUICE_BACKUP_KEY`,
    /// `SLUICE_S3_ACCESS_KEY` and `SLUICE_S3_SECRET_KEY` win over the file.
    /// Not checked: see [`validate`](Self::validate).
    pub fn from_section(section: &Section) -> anyhow::Result<Self> {
        let mut parsed: Self = section.parse().context("[trading]")?;
        for (former, key) in FORMER_KEYS {
            if section.has_key(former) {
                tracing::warn!("trading.{former} is deprecated: call it {key}");
            }
        }
        if let Some(url) = section.var("SLUICE_DATABASE_URL") {
            parsed.database_url = Some(url);
        }
        if let Some(key) = section.var("SLUICE_COOKIE_KEY") {
            parsed.cookie_key = Some(key);
        }
        if let Some(key) = section.var("SLUICE_BACKUP_KEY") {
            parsed.backup_key = Some(key);
        }
        if let Some(s3) = &mut parsed.s3 {
            if let Some(key) = section.var("SLUICE_S3_ACCESS_KEY") {
                s3.access_key = key;
            }
            if let Some(key) = section.var("SLUICE_S3_SECRET_KEY") {
                s3.secret_key = key;
            }
        }
        Ok(parsed)
    }

    /// The database settings (`SLUICE_DATABASE_URL` was applied by
    /// [`from_section`](Self::from_section)).
    pub fn db(&self) -> DbConfig {
        let url = self
            .database_url
            .clone()
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        DbConfig {
            url,
            schema: self.database_schema.clone(),
            max_connections: self.database_connections.max(1),
        }
    }

    /// The cookie cipher, if a key is configured.
    pub fn cipher(&self) -> anyhow::Result<Option<CookieCipher>> {
        self.cookie_key
            .clone()
            .map(|k| CookieCipher::from_base64(&k).context("trading.cookie_key"))
            .transpose()
    }

    /// The key that signs backups, when configured.
    pub fn backup_key(&self) -> anyhow::Result<Option<crate::backup::BackupKey>> {
        self.backup_key
            .as_deref()
            .map(|k| crate::backup::BackupKey::from_base64(k).context("trading.backup_key"))
            .transpose()
    }

    /// Where screenshots are stored and how they are linked.
    pub fn store(&self) -> anyhow::Result<ScreenshotStore> {
        Ok(match &self.s3 {
            Some(s3) => S3Store::new(&s3.settings()).context("trading.s3")?.into(),
            None => LocalStore::new(&self.screenshots_dir, "/screenshots").into(),
        })
    }

    /// Checked at start with the rest of the config.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.db().pool().context("trading database")?;
        self.cipher()?;
        self.backup_key()?;
        self.store()?;
        if !self.chart_url.contains("{chart}") {
            bail!("trading.chart_url must contain {{chart}}");
        }
        if self.screenshot_concurrency == 0
            || self.ingest_concurrency == 0
            || self.audit_concurrency == 0
        {
            bail!("trading: concurrencies must be at least 1");
        }
        for s in self.schedules() {
            s.cron()
                .with_context(|| format!("trading schedule {}", s.name))?;
        }
        if !(1..=MAX_AUDIT_DAYS).contains(&self.audit_retention_days) {
            bail!(
                "trading.audit_retention_days must be 1 to {MAX_AUDIT_DAYS} (the audit log keeps a table per day), not {}",
                self.audit_retention_days
            );
        }
        self.parse_options()?;
        Ok(())
    }

    /// How the ingest handler reads messages.
    pub fn parse_options(&self) -> anyhow::Result<ParseOptions> {
        let mut options = ParseOptions {
            price_required: self.message_price_required,
            decimal_comma: self.message_decimal_comma,
            ..ParseOptions::default()
        };
        if let Some(aliases) = &self.message_aliases {
            options.aliases = aliases
                .iter()
                .map(|(label, field)| match MessageField::parse(field) {
                    Some(f) => Ok((label.clone(), f)),
                    None => bail!(
                        "trading.message_aliases: {label:?} names {field:?}, not one of ticker, exchange, price, signal, indicator, time, notes"
                    ),
                })
                .collect::<anyhow::Result<_>>()?;
        }
        Ok(options)
    }

    /// The cron schedules of retention and backups. Their names stay what
    /// they were when the application was called the pipeline: a
    /// schedule's name is part of each tick's idempotency key and of its
    /// last run's record, and a new name would fire a tick twice while a
    /// fleet is upgraded.
    pub fn schedules(&self) -> Vec<TradingSchedule> {
        [
            (
                "pipeline-retention",
                &self.retention_cron,
                queues::RETENTION,
            ),
            ("pipeline-backup", &self.backup_cron, queues::BACKUP),
        ]
        .into_iter()
        .filter(|(_, cron, _)| !cron.trim().is_empty())
        .map(|(name, cron, queue)| TradingSchedule {
            name,
            cron: cron.clone(),
            queue,
        })
        .collect()
    }

    /// How many jobs of a trading queue run at once per worker process,
    /// when `[[queues]]` does not say.
    pub fn concurrency(&self, queue: &str) -> usize {
        match queue {
            queues::INGEST => self.ingest_concurrency,
            queues::AUDIT => self.audit_concurrency,
            queues::SCREENSHOT => self.screenshot_concurrency,
            _ => 1,
        }
    }
}

/// A cron schedule of the application: a job with no payload on `queue` at
/// every tick of `cron` (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradingSchedule {
    /// Its name.
    pub name: &'static str,
    /// Its cron expression (with seconds).
    pub cron: String,
    /// The queue it enqueues into.
    pub queue: &'static str,
}

impl TradingSchedule {
    /// The engine's schedule.
    pub fn cron(&self) -> sluice_engine::Result<CronSchedule> {
        CronSchedule::new(
            self.name,
            &self.cron,
            None,
            self.queue,
            &serde_json::Value::Null,
            None,
        )
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_environment_wins_over_the_section() {
        let table: toml::Value = toml::from_str(
            "database_url = \"postgres://file/db\"\ncookie_key = \"file-key\"\n\
             [s3]\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"b\"\n\
             access_key = \"file-access\"\nsecret_key = \"file-secret\"\n",
        )
        .expect("toml");
        let env = |name: &str| match name {
            "SLUICE_DATABASE_URL" => Some("postgres://env/db".to_owned()),
            // Empty means unset: the file's value stays.
            "SLUICE_COOKIE_KEY" => Some(String::new()),
            "SLUICE_S3_SECRET_KEY" => Some("env-secret".to_owned()),
            _ => None,
        };
        let p = TradingSection::from_section(&Section::new(Some(table), Arc::new(env)))
            .expect("section");
        assert_eq!(p.db().url, "postgres://env/db");
        assert_eq!(p.cookie_key.as_deref(), Some("file-key"));
        let s3 = p.s3.as_ref().expect("s3");
        assert_eq!(
            (s3.access_key.as_str(), s3.secret_key.as_str()),
            ("file-access", "env-secret")
        );
        // Without a section: the defaults, and still the environment.
        let p = TradingSection::from_section(&Section::new(None, Arc::new(env))).expect("defaults");
        assert_eq!(p.db().url, "postgres://env/db");
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let table: toml::Value = toml::from_str(
            "database_url = \"postgres://sluice:pg-pass-3@db/sluice\"\ncookie_key = \"cookie-key-4\"\n\
             backup_key = \"backup-key-9\"\n\
             [s3]\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"b\"\n\
             access_key = \"access-key-5\"\nsecret_key = \"s3-secret-6\"\n",
        )
        .expect("toml");
        let p = TradingSection::from_section(&Section::new(Some(table), Arc::new(|_: &str| None)))
            .expect("section");
        let shown = format!("{p:?}");
        for secret in [
            "pg-pass-3",
            "cookie-key-4",
            "access-key-5",
            "s3-secret-6",
            "backup-key-9",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[tokio::test]
    async fn audit_retention_days_is_checked() {
        for (days, ok) in [
            (0, false),
            (1, true),
            (90, true),
            (1_000, true),
            (1_001, false),
        ] {
            let table: toml::Value =
                toml::from_str(&format!("audit_retention_days = {days}")).expect("toml");
            let p =
                TradingSection::from_section(&Section::new(Some(table), Arc::new(|_: &str| None)))
                    .expect("section");
            let checked = p.validate();
            assert_eq!(checked.is_ok(), ok, "{days}: {checked:?}");
            if let Err(e) = checked {
                assert!(e.to_string().contains("audit_retention_days"), "{e}");
            }
        }
    }

    #[test]
    fn keys_named_for_alerts_are_still_read() {
        let table: toml::Value =
            toml::from_str("alert_price_required = false\nalert_decimal_comma = true\n")
                .expect("toml");
        let p = TradingSection::from_section(&Section::new(Some(table), Arc::new(|_: &str| None)))
            .expect("section");
        assert!(!p.message_price_required);
        assert!(p.message_decimal_comma);
    }
}
