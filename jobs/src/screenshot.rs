//! Screenshot capture: open the signal's chart in headless Chromium with
//! the user's session cookies, store the PNG by content hash, and record
//! the outcome on the signal.
//!
//! Retries follow the engine's default backoff (about 2 s, 4 s, 8 s); after
//! the last attempt the signal is marked `failed` with the reason and the
//! job is dead-lettered.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_engine::{Breaker, HandlerError, Job, Outcome, TypedHandler};
use sqlx::PgPool;

use crate::browser::BrowserPool;
use crate::error::{Error, Result};
use crate::secrets::CookieCipher;
use crate::storage::ScreenshotStore;
use crate::users;

/// What the ingest handler enqueues for each stored signal. The handler
/// reads the user and the chart from the signal's row; the copies here
/// only say what the job was for.
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
    store: ScreenshotStore,
    settings: ScreenshotSettings,
    breaker: Option<Breaker>,
    /// Captures running, by user.
    running: Arc<std::sync::Mutex<std::collections::HashMap<i64, usize>>>,
}

/// How long a capture over its user's share waits before it asks again.
const OVER_SHARE_WAIT: Duration = Duration::from_secs(2);

/// One running capture of a user, counted until dropped.
struct Running {
    running: Arc<std::sync::Mutex<std::collections::HashMap<i64, usize>>>,
    user_id: i64,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(mut running) = self.running.lock()
            && let Some(n) = running.get_mut(&self.user_id)
        {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.user_id);
            }
        }
    }
}

impl ScreenshotHandler {
    /// A handler updating signals in `pool`, decrypting cookies with
    /// `cipher` (without one, charts are opened without cookies).
    pub fn new(
        pool: PgPool,
        cipher: Option<CookieCipher>,
        browsers: Arc<BrowserPool>,
        store: ScreenshotStore,
        settings: ScreenshotSettings,
    ) -> Self {
        Self {
            pool,
            cipher,
            browsers,
            store,
            settings,
            breaker: None,
            running: Arc::default(),
        }
    }

    /// A user's share of the browser's tabs: half of them, at least one,
    /// so that one user's charts (that never get ready, say) cannot hold
    /// every tab for the capture timeout while others wait.
    fn share(&self) -> usize {
        (self.browsers.tabs() / 2).max(1)
    }

    /// Count one more capture of `user_id`, unless the user has its share
    /// running already.
    fn start(&self, user_id: i64) -> Option<Running> {
        let mut running = self.running.lock().ok()?;
        let n = running.entry(user_id).or_insert(0);
        if *n >= self.share() {
            return None;
        }
        *n += 1;
        Some(Running {
            running: self.running.clone(),
            user_id,
        })
    }

    /// Put the browser's visits to the chart host under `breaker`.
    pub fn with_breaker(mut self, breaker: Breaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    /// The breaker name of the chart host of `chart_url` (a template with
    /// `{chart}`): `browser:<scheme>:<host>:<port>`.
    pub fn breaker_name(chart_url: &str) -> Option<String> {
        sluice_engine::target_breaker_name(&chart_url.replace("{chart}", "chart"))
            .map(|target| format!("browser:{target}"))
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

impl TypedHandler for ScreenshotHandler {
    type Args = ScreenshotJob;

    async fn handle(&self, job: Job, input: ScreenshotJob) -> Result<Outcome, HandlerError> {
        match self.run(&job, input).await {
            Err(Error::Db(e)) if crate::db::is_unavailable(&e) => {
                Ok(crate::db::wait_for_database(&job))
            }
            Err(e) => Err(e.into()),
            Ok(outcome) => Ok(outcome),
        }
    }
}

impl ScreenshotHandler {
    async fn run(&self, job: &Job, input: ScreenshotJob) -> Result<Outcome> {
        // The user's share of the tabs is taken: wait without spending an
        // attempt (the job's user is the webhook's, the only enqueuer).
        let Some(_running) = self.start(input.user_id) else {
            return Ok(Outcome::Snooze(OVER_SHARE_WAIT));
        };
        // Claim the signal for this attempt; a signal already captured, or
        // deleted by retention meanwhile, needs nothing more. Whose
        // cookies open which chart is the signal's to say, not the job's:
        // a job names its signal only.
        let open: Option<(i64, Option<String>)> = sqlx::query_as(
            "UPDATE signals SET screenshot_status = 'processing', updated_at = now()
             WHERE id = $1 AND screenshot_status <> 'completed'
             RETURNING user_id, chart_id",
        )
        .bind(input.signal_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some((user_id, chart_id)) = open else {
            return Ok(Outcome::DoneWith(
                "nothing to do: signal gone or already captured".into(),
            ));
        };
        let input = ScreenshotJob {
            signal_id: input.signal_id,
            user_id,
            chart_id: chart_id.unwrap_or_default(),
        };
        if !valid_chart_id(&input.chart_id) {
            mark_failed(&self.pool, input.signal_id, "invalid chart id").await?;
            return Ok(Outcome::Bury(format!(
                "invalid chart id {:?}",
                input.chart_id
            )));
        }
        let taken = match &self.breaker {
            None => self.take(&input).await,
            Some(b) => {
                // Only the browser's failures say the chart host is unwell.
                let lease = self.settings.timeout + Duration::from_secs(30);
                let visit = || self.take(&input);
                match b
                    .call(lease, visit, |r| !matches!(r, Err(Error::Browser(_))))
                    .await
                {
                    Ok(taken) => taken,
                    Err(wait) => {
                        sqlx::query(
                            "UPDATE signals SET screenshot_status = 'pending', updated_at = now()
                             WHERE id = $1 AND screenshot_status = 'processing'",
                        )
                        .bind(input.signal_id)
                        .execute(&self.pool)
                        .await?;
                        return Ok(Outcome::Snooze(wait));
                    }
                }
            }
        };
        match taken {
            Err(Error::ChartMissing(reason)) => {
                // Retrying a chart that is not there opens it no better.
                mark_failed(&self.pool, input.signal_id, &reason).await?;
                Ok(Outcome::Bury(reason))
            }
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
    fn chart_ids_are_checked() {
        assert!(valid_chart_id("aBc-12_x"));
        assert!(!valid_chart_id("../etc"));
        assert!(!valid_chart_id(""));
        assert!(!valid_chart_id(&"a".repeat(65)));
    }
}
