//! The start-up work of `sluice up` (everything on one machine): when no
//! PostgreSQL answers at the configured URL and the URL points at this
//! machine, start the machine's own cluster; then apply the migrations.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::Command;

use crate::db::{self, DbConfig};

/// Ensure PostgreSQL answers at `config`'s URL, then apply the migrations.
pub async fn start_up(config: &DbConfig) -> anyhow::Result<()> {
    ensure_postgres(&config.url).await?;
    db::migrate(config)
        .await
        .context("cannot apply the database migrations")?;
    eprintln!("sluice: database migrations applied");
    Ok(())
}

/// Ensure PostgreSQL answers at `url`. When it does not and the URL points
/// at this machine, start the machine's own cluster the way Debian does
/// (`pg_ctlcluster <version> main start`), then wait for it. PostgreSQL is
/// not started privately like Redis: it refuses to run as root, and the
/// machine's cluster already has a data directory and its settings.
async fn ensure_postgres(url: &str) -> anyhow::Result<()> {
    let probe = DbConfig::new(url).pool()?;
    if db::ping(&probe).await {
        return Ok(());
    }
    let parsed = reqwest::Url::parse(url)
        .with_context(|| format!("bad database url {}", db::redact(url)))?;
    let host = parsed.host_str().unwrap_or("localhost");
    if !matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]") {
        bail!(
            "PostgreSQL does not answer at {} (not on this machine, so not started here)",
            db::redact(url)
        );
    }
    let versions: Vec<String> = std::fs::read_dir("/etc/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    let Some(version) = versions.iter().max() else {
        bail!(
            "PostgreSQL does not answer at {} and none is installed here (apt-get install postgresql)",
            db::redact(url)
        );
    };
    eprintln!("sluice: no PostgreSQL answers; starting the local cluster {version}/main");
    let status = Command::new("pg_ctlcluster")
        .args(["--skip-systemctl-redirect", version, "main", "start"])
        .status()
        .await
        .context("cannot run pg_ctlcluster")?;
    if !status.success() {
        tracing::warn!(%status, "pg_ctlcluster did not succeed; waiting for PostgreSQL anyway");
    }
    for _ in 0..60 {
        if db::ping(&probe).await {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    bail!("PostgreSQL still does not answer at {}", db::redact(url))
}
