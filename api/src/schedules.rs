//! Cron schedules from the config: each tick enqueues one job, exactly once
//! across any number of `sluice` processes.
//!
//! There is no leader. Every process running schedules sleeps until the next
//! tick and enqueues with the idempotency key `cron:<name>:<tick ms>`; the
//! engine's idempotent enqueue lets the first one in and hands the others
//! the same job id. A tick missed while no process ran is not made up. The
//! last tick and its job are recorded in `<prefix>:schedules` for the API.

use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sluice_engine::{Client, JobOptions, Shutdown};

use crate::config::ScheduleSection;

/// How long the idempotency key of a tick is kept: a day, or longer for
/// rarer schedules (so a slow process never enqueues a tick again).
const MIN_KEY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// A checked schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Its config.
    pub section: ScheduleSection,
    cron: cron::Schedule,
    tz: Tz,
    payload: serde_json::Value,
}

/// What the API shows of a schedule.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    /// Name.
    pub name: String,
    /// Cron expression.
    pub cron: String,
    /// Time zone.
    pub timezone: String,
    /// Target queue.
    pub queue: String,
    /// Payload of each job.
    #[schema(value_type = Value)]
    pub payload: serde_json::Value,
    /// The next run times (RFC 3339, in the schedule's time zone).
    pub next_runs: Vec<String>,
    /// The last tick that enqueued a job, if any.
    pub last_run: Option<LastRun>,
}

/// The last tick of a schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LastRun {
    /// The tick, ms since the Unix epoch.
    pub tick_ms: i64,
    /// The job it enqueued.
    pub job_id: String,
}

impl Schedule {
    /// Parse a `[[schedules]]` entry.
    pub fn from_section(section: &ScheduleSection) -> anyhow::Result<Self> {
        let cron = cron::Schedule::from_str(&section.cron).map_err(|e| {
            anyhow!(
                "schedule {}: bad cron expression {:?} (want `sec min hour day month weekday [year]`): {e}",
                section.name,
                section.cron
            )
        })?;
        let tz_name = section.timezone.as_deref().unwrap_or("UTC");
        let tz = Tz::from_str(tz_name)
            .map_err(|_| anyhow!("schedule {}: unknown time zone {tz_name:?}", section.name))?;
        if let Some(p) = section.priority
            && p >= sluice_engine::PRIORITY_LEVELS
        {
            return Err(anyhow!(
                "schedule {}: priority must be 0 to 9",
                section.name
            ));
        }
        let payload = match &section.payload {
            Some(v) => serde_json::to_value(v)
                .with_context(|| format!("schedule {}: payload", section.name))?,
            None => serde_json::Value::Null,
        };
        if cron.upcoming(tz).next().is_none() {
            return Err(anyhow!("schedule {}: never fires", section.name));
        }
        Ok(Self {
            section: section.clone(),
            cron,
            tz,
            payload,
        })
    }

    /// The next `n` ticks after `after`.
    pub fn next_ticks(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Tz>> {
        self.cron
            .after(&after.with_timezone(&self.tz))
            .take(n)
            .collect()
    }

    /// The idempotency key of a tick.
    pub fn tick_key(&self, tick: &DateTime<Tz>) -> String {
        format!("cron:{}:{}", self.section.name, tick.timestamp_millis())
    }

    /// Enqueue the job of `tick` (once across the fleet); returns its id and
    /// whether another process had enqueued it already.
    pub async fn fire(
        &self,
        client: &Client,
        tick: &DateTime<Tz>,
    ) -> anyhow::Result<(String, bool)> {
        let queue = client.queue(&self.section.queue).await?;
        let window = self.key_window(tick);
        let mut options = JobOptions::new()
            .idempotency_key(self.tick_key(tick))
            .idempotency_window(window);
        if let Some(p) = self.section.priority {
            options = options.priority(p);
        }
        let e = queue.enqueue(&self.payload, options).await?;
        let last = LastRun {
            tick_ms: tick.timestamp_millis(),
            job_id: e.id.clone(),
        };
        client
            .set_schedule_state(&self.section.name, &serde_json::to_string(&last)?)
            .await?;
        Ok((e.id, e.duplicate))
    }

    fn key_window(&self, tick: &DateTime<Tz>) -> Duration {
        let gap = self
            .cron
            .after(tick)
            .next()
            .map(|next| (next - *tick).to_std().unwrap_or_default())
            .unwrap_or_default();
        (gap * 2).max(MIN_KEY_WINDOW)
    }

    /// What the API shows.
    pub fn view(&self, now: DateTime<Utc>, last_run: Option<LastRun>) -> ScheduleView {
        ScheduleView {
            name: self.section.name.clone(),
            cron: self.section.cron.clone(),
            timezone: self.tz.name().to_owned(),
            queue: self.section.queue.clone(),
            payload: self.payload.clone(),
            next_runs: self
                .next_ticks(now, 5)
                .iter()
                .map(|t| t.to_rfc3339())
                .collect(),
            last_run,
        }
    }
}

/// Every configured schedule, checked.
pub fn load(sections: &[ScheduleSection]) -> anyhow::Result<Vec<Schedule>> {
    sections.iter().map(Schedule::from_section).collect()
}

/// The last runs recorded, by schedule name.
pub async fn last_runs(
    client: &Client,
) -> anyhow::Result<std::collections::HashMap<String, LastRun>> {
    Ok(client
        .schedule_states()
        .await?
        .into_iter()
        .filter_map(|(name, json)| serde_json::from_str(&json).ok().map(|r| (name, r)))
        .collect())
}

/// Fire every schedule at its ticks until `stop` is triggered.
pub async fn run(client: Client, schedules: Vec<Schedule>, stop: Shutdown) {
    let tasks: Vec<_> = schedules
        .into_iter()
        .map(|s| tokio::spawn(run_one(client.clone(), s, stop.clone())))
        .collect();
    for t in tasks {
        let _ = t.await;
    }
}

async fn run_one(client: Client, schedule: Schedule, stop: Shutdown) {
    let name = schedule.section.name.clone();
    let mut after = Utc::now();
    loop {
        let Some(tick) = schedule.next_ticks(after, 1).pop() else {
            return;
        };
        let wait = (tick.with_timezone(&Utc) - Utc::now())
            .to_std()
            .unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.triggered() => return,
        }
        // Retry a failed tick a few times while it is still recent.
        let mut delay = Duration::from_millis(200);
        for _ in 0..6 {
            match schedule.fire(&client, &tick).await {
                Ok((id, duplicate)) => {
                    tracing::info!(schedule = %name, tick = %tick.to_rfc3339(), job = %id, duplicate, "schedule fired");
                    break;
                }
                Err(e) => {
                    tracing::warn!(schedule = %name, error = %format!("{e:#}"), "schedule tick failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        after = tick.with_timezone(&Utc).max(Utc::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(cron: &str, tz: Option<&str>) -> ScheduleSection {
        ScheduleSection {
            name: "s".into(),
            cron: cron.into(),
            timezone: tz.map(Into::into),
            queue: "q".into(),
            payload: None,
            priority: None,
        }
    }

    #[test]
    fn ticks_follow_the_expression_in_its_time_zone() {
        let s = Schedule::from_section(&section("0 30 9 * * *", Some("America/New_York")))
            .expect("valid");
        let start = DateTime::parse_from_rfc3339("2026-01-10T00:00:00Z")
            .expect("date")
            .with_timezone(&Utc);
        let ticks = s.next_ticks(start, 2);
        // 09:30 in New York in January is 14:30 UTC.
        assert_eq!(
            ticks[0].with_timezone(&Utc).to_rfc3339(),
            "2026-01-10T14:30:00+00:00"
        );
        assert_eq!(
            ticks[1].with_timezone(&Utc).to_rfc3339(),
            "2026-01-11T14:30:00+00:00"
        );
        assert_eq!(
            s.tick_key(&ticks[0]),
            format!("cron:s:{}", ticks[0].timestamp_millis())
        );
    }

    #[test]
    fn bad_expressions_and_zones_are_refused() {
        assert!(Schedule::from_section(&section("every minute", None)).is_err());
        assert!(Schedule::from_section(&section("0 61 * * * *", None)).is_err());
        assert!(Schedule::from_section(&section("0 * * * * *", Some("Nowhere/City"))).is_err());
        assert!(Schedule::from_section(&section("0 * * * * *", Some("Europe/Madrid"))).is_ok());
    }
}
