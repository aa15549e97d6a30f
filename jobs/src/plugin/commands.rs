//! The application's operator commands, `sluice trading migrate`,
//! `users ...`, `backup` and `restore`. They use its section of the config
//! (or its defaults) with the environment's overrides
//! (`SLUICE_DATABASE_URL`), so they work without a config file too.

use std::io::Read;

use crate::plan::Plan;
use crate::users;
use anyhow::{Context, anyhow, bail};
use serde_json::json;
use sluice_engine::Client;

use std::path::PathBuf;

use clap::Subcommand;

use super::config::TradingSection;

/// The trading application's commands, which the `sluice` binary
/// mounts as `sluice trading <command>`.
#[derive(Debug, Subcommand)]
pub enum TradingCommand {
    /// Apply the application's database migrations not yet applied.
    Migrate,
    /// Users of the trading application.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Write a backup of the application's tables and the queue state now.
    Backup {
        /// Directory [default: trading.backups_dir].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Bring a backup back into an empty database and Redis.
    Restore {
        /// The backup file (`sluice-backup-*.jsonl.gz`).
        file: PathBuf,
    },
}

/// `sluice trading users ...`.
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user; prints their webhook URL with a fresh token, once.
    Add {
        /// free, basic, pro or premium.
        #[arg(long, default_value = "free")]
        plan: String,
        /// Signals per month [default: the plan's].
        #[arg(long)]
        quota: Option<i32>,
    },
    /// Show a user.
    Show {
        /// The user's id.
        id: i64,
    },
    /// Give a user a new webhook token; the old one stops working.
    RotateToken {
        /// The user's id.
        id: i64,
    },
    /// Store a user's TradingView session cookies (encrypted), from a JSON
    /// file or stdin: an array of {name, value, domain?, path?} or an
    /// object of name to value.
    SetCookies {
        /// The user's id.
        id: i64,
        /// The JSON file; `-` or absent: stdin.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Also set the user's default chart.
        #[arg(long)]
        chart: Option<String>,
    },
    /// How a user's messages write numbers: `comma` reads `1.234.567,89`
    /// for this user, `point` (the default) reads `1,234,567.89`.
    NumberFormat {
        /// The user's id.
        id: i64,
        /// point or comma.
        #[arg(value_parser = ["point", "comma"])]
        format: String,
    },
    /// Turn a user's webhook off.
    Disable {
        /// The user's id.
        id: i64,
    },
    /// Turn a user's webhook on.
    Enable {
        /// The user's id.
        id: i64,
    },
}

fn print(json_output: bool, text: &str, value: serde_json::Value) -> anyhow::Result<()> {
    if json_output {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{text}");
    }
    Ok(())
}

/// Run one of the application's operator commands with `section` (the
/// config's `[trading]`, or its defaults). `redis` connects to Redis; only
/// `backup` and `restore` await it.
pub async fn run(
    command: TradingCommand,
    json_output: bool,
    section: &TradingSection,
    redis: impl Future<Output = anyhow::Result<Client>>,
) -> anyhow::Result<()> {
    let db = section.db();
    let where_ = crate::db::redact(&db.url);
    let pool = db.pool()?;
    let reach = |e: crate::Error| anyhow!(e).context(format!("database at {where_}"));
    match command {
        TradingCommand::Migrate => {
            crate::db::migrate(&db).await.map_err(reach)?;
            let n = crate::db::MIGRATOR.iter().count();
            print(
                json_output,
                &format!("migrations applied ({n} known) to {where_}"),
                json!({ "migrations": n, "database": where_ }),
            )
        }
        TradingCommand::Users(cmd) => users_command(cmd, json_output, section, &pool).await,
        TradingCommand::Backup { dir } => {
            let client = redis.await?;
            let dir = dir.unwrap_or_else(|| section.backups_dir.clone());
            let key = section.backup_key()?;
            let c = crate::backup::backup(&pool, &client, &dir, section.backups_keep, key.as_ref())
                .await
                .map_err(reach)?;
            print(
                json_output,
                &format!(
                    "backup written: {} ({} rows, {} jobs)",
                    c.file.display(),
                    c.rows.values().sum::<u64>(),
                    c.jobs.values().sum::<u64>()
                ),
                serde_json::to_value(&c)?,
            )
        }
        TradingCommand::Restore { file: backup } => {
            let client = redis.await?;
            crate::db::migrate(&db).await.map_err(reach)?;
            let key = section.backup_key()?;
            let c = crate::backup::restore(&pool, &client, &backup, key.as_ref())
                .await
                .map_err(reach)?;
            print(
                json_output,
                &format!(
                    "restored {}: {} rows, {} jobs",
                    c.file.display(),
                    c.rows.values().sum::<u64>(),
                    c.jobs.values().sum::<u64>()
                ),
                serde_json::to_value(&c)?,
            )
        }
    }
}

async fn users_command(
    cmd: UsersCommand,
    json_output: bool,
    section: &TradingSection,
    pool: &sqlx::PgPool,
) -> anyhow::Result<()> {
    let base = section.public_url.trim_end_matches('/');
    let missing = |id: i64| anyhow!("no user {id}");
    match cmd {
        UsersCommand::Add { plan, quota } => {
            let plan: Plan = plan.parse()?;
            let (user, token) = users::add(pool, plan, quota).await?;
            let url = format!("{base}/webhook/u/{token}");
            print(
                json_output,
                &format!(
                    "user {} ({}, {} signals a month)\nwebhook URL (shown once; `sluice trading users rotate-token {}` makes a new one):\n{url}",
                    user.id, user.plan, user.signal_quota, user.id
                ),
                json!({ "user": user, "token": token, "webhook_url": url }),
            )
        }
        UsersCommand::Show { id } => {
            let user = users::get(pool, id).await?.ok_or_else(|| missing(id))?;
            print(
                json_output,
                &format!(
                    "user {}: {}, {}/{} signals until {}, webhook {}",
                    user.id,
                    user.plan,
                    user.signals_used,
                    user.signal_quota,
                    user.quota_resets_at.to_rfc3339(),
                    if user.webhook_enabled { "on" } else { "off" }
                ),
                json!({ "user": user }),
            )
        }
        UsersCommand::RotateToken { id } => {
            let token = users::rotate_token(pool, id)
                .await?
                .ok_or_else(|| missing(id))?;
            let url = format!("{base}/webhook/u/{token}");
            print(
                json_output,
                &format!("new webhook URL for user {id} (the old one no longer works):\n{url}"),
                json!({ "id": id, "token": token, "webhook_url": url }),
            )
        }
        UsersCommand::SetCookies { id, file, chart } => {
            let cipher = section.cipher()?.ok_or_else(|| {
                anyhow!("no cookie key: set trading.cookie_key or SLUICE_COOKIE_KEY (32 random bytes, base64)")
            })?;
            let text = match file.as_deref() {
                Some(p) if p.as_os_str() != "-" => std::fs::read_to_string(p)
                    .with_context(|| format!("cannot read {}", p.display()))?,
                _ => {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .context("cannot read cookies from stdin")?;
                    s
                }
            };
            let cookies = users::parse_cookies(&text)?;
            if let Some(c) = &chart
                && !crate::screenshot::valid_chart_id(c)
            {
                bail!("--chart must be 1 to 64 letters, digits, - or _");
            }
            if !users::set_cookies(pool, &cipher, id, &cookies, chart.as_deref()).await? {
                return Err(missing(id));
            }
            print(
                json_output,
                &format!("stored {} cookies for user {id} (encrypted)", cookies.len()),
                json!({ "id": id, "cookies": cookies.len(), "chart": chart }),
            )
        }
        UsersCommand::NumberFormat { id, format } => {
            let comma = format == "comma";
            if !users::set_decimal_comma(pool, id, comma).await? {
                return Err(missing(id));
            }
            print(
                json_output,
                &format!(
                    "user {id}'s messages are read with a decimal {}",
                    if comma { "comma" } else { "point" }
                ),
                json!({ "id": id, "decimal_comma": comma }),
            )
        }
        UsersCommand::Disable { id } | UsersCommand::Enable { id } => {
            let on = matches!(cmd, UsersCommand::Enable { .. });
            if !users::set_webhook_enabled(pool, id, on).await? {
                return Err(missing(id));
            }
            print(
                json_output,
                &format!(
                    "webhook of user {id} turned {}",
                    if on { "on" } else { "off" }
                ),
                json!({ "id": id, "webhook_enabled": on }),
            )
        }
    }
}
