//! Cron schedules from the config: each `[[schedules]]` entry becomes the
//! engine's [`CronSchedule`] (one job per tick, once across the fleet), and
//! the plug-ins add theirs. The server shows them as they are.

use sluice_engine::{Client, CronSchedule, Scheduler, Shutdown};

use crate::config::{FileConfig, ScheduleSection};
use crate::plugins::Enabled;

/// Every configured schedule, checked.
pub fn load(sections: &[ScheduleSection]) -> anyhow::Result<Vec<CronSchedule>> {
    sections.iter().map(ScheduleSection::cron).collect()
}

/// The file's schedules and the plug-ins'.
pub fn all(file: &FileConfig, plugins: &Enabled) -> anyhow::Result<Vec<CronSchedule>> {
    let mut all = load(&file.schedules)?;
    all.extend(plugins.schedules());
    Ok(all)
}

/// Fire every schedule at its ticks until `stop` is triggered (the
/// engine's [`Scheduler`]).
pub async fn run(client: Client, schedules: Vec<CronSchedule>, stop: Shutdown) {
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
            payload: Some(toml::Value::Table(toml::toml! { k = 1 })),
            priority: None,
        }
    }

    #[test]
    fn a_section_is_checked_into_its_schedule() {
        let s = load(&[section("0 30 9 * * *", Some("America/New_York"))]).expect("valid");
        assert_eq!(s[0].timezone(), "America/New_York");
        assert_eq!(s[0].expression(), "0 30 9 * * *");
        let payload: serde_json::Value = rmp_serde::from_slice(s[0].payload()).expect("payload");
        assert_eq!(payload, serde_json::json!({"k": 1}));
        assert!(load(&[section("every minute", None)]).is_err());
        assert!(load(&[section("0 * * * * *", Some("Nowhere/City"))]).is_err());
    }
}
