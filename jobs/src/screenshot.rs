//! Screenshot capture: open the signal's chart in headless Chromium with
//! the user's session cookies, store the PNG by content hash, and record
//! the outcome on the signal.
//!
//! Retries follow the engine's default backoff (about 2 s, 4 s, 8 s); after
//! the last attempt the signal is marked `failed` with the reason and the
//! job is dead-lettered.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sluice_engine::{Handler, HandlerError, Job, Outcome};
use sqlx::PgPool;

use crate::browser::BrowserPool;
use crate::error::{Error, Result};
use crate::secrets::CookieCipher;
use crate::users;

/// What the ingest handler enqueues for each stored signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScreenshotJob {
    /// The signal.
    pub signal_id: i64,
    /// Its user (whose cookies to use).
    pub user_id: i64,
    /// The chart to capture.
    pub chart_id: String,
}

/// Whether a chart id is safe to put in a URL path: letters, digits, `-`
/// and `_`, at most 64.
pub fn valid_chart_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Where screenshots go: a local directory, one file per content hash.
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
    url_prefix: String,
}

impl LocalStore {
    /// Files in `dir`, linked as `<url_prefix>/<hash>.png`.
    pub fn new(dir: impl Into<PathBuf>, url_prefix: impl Into<String>) -> Self {
        Self {
            dir: dir.into(),
            url_prefix: url_prefix.into().trim_end_matches('/').to_owned(),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Store `png` and return its URL. The same picture is stored once.
    pub async fn put(&self, png: &[u8]) -> Result<String> {
        let name = format!("{}.png", hex::encode(Sha256::digest(png)));
        let path = self.dir.join(&name);
        if tokio::fs::metadata(&path).await.is_err() {
            tokio::fs::create_dir_all(&self.dir)
                .await
                .map_err(|e| Error::io(format!("cannot create {}", self.dir.display()), e))?;
            // Write then rename: a reader never sees half a file.
            let tmp = self
                .dir
                .join(format!(".{name}.{}", uuid::Uuid::now_v7().simple()));
            tokio::fs::write(&tmp, png)
                .await
                .map_err(|e| Error::io(format!("cannot write {}", tmp.display()), e))?;
            tokio::fs::rename(&tmp, &path)
                .await
                .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
        }
        Ok(format!("{}/{name}", self.url_prefix))
    }

    /// The file behind `url`, if it is one of this store's.
    pub fn path_of(&self, url: &str) -> Option<PathBuf> {
        let name = url.strip_prefix(&self.url_prefix)?.strip_prefix('/')?;
        let hash = name.strip_suffix(".png")?;
        (hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| self.dir.join(name))
    }
}

/// Settings of the screenshot handler.
#[derive(Debug, Clone)]
pub struct ScreenshotSettings {
    /// The chart URL, with `{chart}` where the chart id goes.
    pub chart_url: String,
    /// Longest a capture may take.
    pub timeout: Duration,
}

impl Default for ScreenshotSettings {
    fn default() -> Self {
        Self {
            chart_url: "https://www.tradingview.com/chart/{chart}/".into(),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Takes screenshots of signals' charts.
#[derive(Debug, Clone)]
pub struct ScreenshotHandler {
    pool: PgPool,
    cipher: Option<CookieCipher>,
    browsers: Arc<BrowserPool>,
    store: LocalStore,
    settings: ScreenshotSettings,
}

impl ScreenshotHandler {
    /// A handler updating signals in `pool`, decrypting cookies with
    /// `cipher` (without one, charts are opened without cookies).
    pub fn new(
        pool: PgPool,
        cipher: Option<CookieCipher>,
        browsers: Arc<BrowserPool>,
        store: LocalStore,
        settings: ScreenshotSettings,
    ) -> Self {
        Self {
            pool,
            cipher,
            browsers,
            store,
            settings,
        }
    }

    async fn take(&self, job: &ScreenshotJob) -> Result<String> {
        let cookies = match &self.cipher {
            Some(c) => users::cookies(&self.pool, c, job.user_id).await?,
            None => Vec::new(),
        };
        let url = self.settings.chart_url.replace("{chart}", &job.chart_id);
        let png = self
            .browsers
            .capture(&url, &cookies, self.settings.timeout)
            .await?;
        self.store.put(&png).await
    }
}

impl Handler for ScreenshotHandler {
    async fn handle(&self, job: Job) -> Result<Outcome, HandlerError> {
        match self.run(&job).await {
            Err(Error::Db(e)) if crate::db::is_unavailable(&e) => {
                Ok(crate::db::wait_for_database(&job))
            }
            Err(e) => Err(e.into()),
            Ok(outcome) => Ok(outcome),
        }
    }
}

impl ScreenshotHandler {
    async fn run(&self, job: &Job) -> Result<Outcome> {
        let input: ScreenshotJob = match job.decode() {
            Ok(i) => i,
            Err(e) => return Ok(Outcome::Bury(format!("poison message: {e}"))),
        };
        if !valid_chart_id(&input.chart_id) {
            mark_failed(&self.pool, input.signal_id, "invalid chart id").await?;
            return Ok(Outcome::Bury(format!(
                "invalid chart id {:?}",
                input.chart_id
            )));
        }
        // Claim the signal for this attempt; a signal already captured, or
        // deleted by retention meanwhile, needs nothing more.
        let open: Option<(i64,)> = sqlx::query_as(
            "UPDATE signals SET screenshot_status = 'processing', updated_at = now()
             WHERE id = $1 AND screenshot_status <> 'completed'
             RETURNING id",
        )
        .bind(input.signal_id)
        .fetch_optional(&self.pool)
        .await?;
        if open.is_none() {
            return Ok(Outcome::DoneWith(
                "nothing to do: signal gone or already captured".into(),
            ));
        }
        match self.take(&input).await {
            Ok(url) => {
                sqlx::query(
                    "UPDATE signals SET screenshot_status = 'completed', screenshot_url = $2,
                         screenshot_error = NULL, updated_at = now()
                     WHERE id = $1",
                )
                .bind(input.signal_id)
                .bind(&url)
                .execute(&self.pool)
                .await?;
                Ok(Outcome::DoneWith(url))
            }
            Err(e) => {
                let reason = e.to_string();
                if job.is_last_attempt() {
                    mark_failed(&self.pool, input.signal_id, &reason).await?;
                } else {
                    sqlx::query(
                        "UPDATE signals SET screenshot_status = 'pending', screenshot_error = $2,
                             updated_at = now()
                         WHERE id = $1",
                    )
                    .bind(input.signal_id)
                    .bind(&reason)
                    .execute(&self.pool)
                    .await?;
                }
                Err(e)
            }
        }
    }
}

async fn mark_failed(pool: &PgPool, signal_id: i64, reason: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE signals SET screenshot_status = 'failed', screenshot_error = $2, updated_at = now()
         WHERE id = $1",
    )
    .bind(signal_id)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_ids_and_store_paths_are_checked() {
        assert!(valid_chart_id("aBc-12_x"));
        assert!(!valid_chart_id("../etc"));
        assert!(!valid_chart_id(""));
        let store = LocalStore::new("/tmp/shots", "/screenshots/");
        let hash = "a".repeat(64);
        assert_eq!(
            store.path_of(&format!("/screenshots/{hash}.png")),
            Some(PathBuf::from(format!("/tmp/shots/{hash}.png")))
        );
        assert_eq!(store.path_of("/screenshots/../x.png"), None);
        assert_eq!(store.path_of("/other/x.png"), None);
    }
}
