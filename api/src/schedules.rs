//! Cron schedules from the config: each `[[schedules]]` entry becomes the
//! engine's [`CronSchedule`] (one job per tick, once across the fleet), and
//! the API's view of it.

use chrono::{DateTime, Utc};
use serde::Serialize;
pub use sluice_engine::LastRun;
use sluice_engine::{Client, CronSchedule, Scheduler, Shutdown};

use crate::config::ScheduleSection;

/// A checked schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Its config.
    pub section: ScheduleSection,
    cron: CronSchedule,
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

impl Schedule {
    /// Parse a `[[schedules]]` entry.
    pub fn from_section(section: &ScheduleSection) -> anyhow::Result<Self> {
        let payload = section.payload_json()?;
        let cron = section.cron()?;
        Ok(Self {
            section: section.clone(),
            cron,
            payload,
        })
    }

    /// What the API shows.
    pub fn view(&self, now: DateTime<Utc>, last_run: Option<LastRun>) -> ScheduleView {
        ScheduleView {
            name: self.section.name.clone(),
            cron: self.section.cron.clone(),
            timezone: self.cron.timezone().to_owned(),
            queue: self.section.queue.clone(),
            payload: self.payload.clone(),
            next_runs: self
                .cron
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
    Ok(client.schedule_last_runs().await?)
}

/// Fire every schedule at its ticks until `stop` is triggered (the
/// engine's [`Scheduler`]).
pub async fn run(client: Client, schedules: Vec<Schedule>, stop: Shutdown) {
    let schedules = schedules.into_iter().map(|s| s.cron).collect();
    Scheduler::new(client, schedules).run(stop).await;
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
    fn a_section_is_checked_and_shown_with_its_next_runs() {
        let s = Schedule::from_section(&section("0 30 9 * * *", Some("America/New_York")))
            .expect("valid");
        let start = DateTime::parse_from_rfc3339("2026-01-10T00:00:00Z")
            .expect("date")
            .with_timezone(&Utc);
        let view = s.view(start, None);
        assert_eq!(view.timezone, "America/New_York");
        assert_eq!(view.next_runs.len(), 5);
        assert_eq!(view.next_runs[0], "2026-01-10T09:30:00-05:00");
        assert!(Schedule::from_section(&section("every minute", None)).is_err());
        assert!(Schedule::from_section(&section("0 * * * * *", Some("Nowhere/City"))).is_err());
    }
}
