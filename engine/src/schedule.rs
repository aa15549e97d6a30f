//! Cron: [`CronSchedule`], a job enqueued at each tick of a cron expression
//! in a time zone, and [`Scheduler`], which fires schedules until a
//! [`Shutdown`], exactly once per tick across any number of processes.
//!
//! There is no leader. Every process running a schedule sleeps until its
//! next tick and enqueues with the idempotency key `cron:<name>:<tick ms>`;
//! idempotent enqueue lets the first one in and hands the others the same
//! job id. A tick missed while no process ran is not made up. The last tick
//! and its job are recorded for operators
//! ([`Registry::schedule_last_runs`](crate::Registry::schedule_last_runs)).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::{
    Client, Clock, Error, JobOptions, NewJob, PRIORITY_LEVELS, Result, Shutdown, SystemClock,
};

/// How long the idempotency key of a tick is kept: a day, or two gaps
/// between ticks for rarer schedules, so a slow process never enqueues a
/// tick again.
const MIN_KEY_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// How many times a tick whose enqueue failed is tried again (waits of
/// 0.2 s doubling: about 12 s in all, while the tick is still recent).
const TICK_RETRIES: u32 = 6;

/// A job enqueued at every tick of a cron expression.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    name: String,
    expression: String,
    cron: cron::Schedule,
    tz: Tz,
    queue: String,
    payload: Vec<u8>,
    priority: Option<u8>,
}

/// The last tick of a schedule that enqueued a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LastRun {
    /// The tick, ms since the Unix epoch.
    pub tick_ms: i64,
    /// The job it enqueued.
    pub job_id: String,
}

impl CronSchedule {
    /// Schedule `name`: at each tick of `expression` (`sec min hour day
    /// month weekday [year]`) in time zone `timezone` (IANA name; `None`:
    /// UTC), enqueue `payload` into `queue`, at `priority` if given.
    pub fn new<T: Serialize + ?Sized>(
        name: &str,
        expression: &str,
        timezone: Option<&str>,
        queue: &str,
        payload: &T,
        priority: Option<u8>,
    ) -> Result<Self> {
        let invalid = |reason: String| Error::InvalidSchedule {
            name: name.to_owned(),
            reason,
        };
        let cron = cron::Schedule::from_str(expression).map_err(|e| {
            invalid(format!(
                "bad cron expression {expression:?} (want `sec min hour day month weekday [year]`): {e}"
            ))
        })?;
        let tz_name = timezone.unwrap_or("UTC");
        let tz =
            Tz::from_str(tz_name).map_err(|_| invalid(format!("unknown time zone {tz_name:?}")))?;
        if priority.is_some_and(|p| p >= PRIORITY_LEVELS) {
            return Err(invalid(format!(
                "priority must be 0 to {}",
                PRIORITY_LEVELS - 1
            )));
        }
        crate::keys::validate_name("queue name", queue)?;
        if cron.upcoming(tz).next().is_none() {
            return Err(invalid("never fires".into()));
        }
        Ok(Self {
            name: name.to_owned(),
            expression: expression.to_owned(),
            cron,
            tz,
            queue: queue.to_owned(),
            payload: rmp_serde::to_vec_named(payload)?,
            priority,
        })
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its cron expression, as given.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Its time zone's name.
    pub fn timezone(&self) -> &str {
        self.tz.name()
    }

    /// The queue it enqueues into.
    pub fn queue(&self) -> &str {
        &self.queue
    }

    /// The payload of each job it enqueues (MessagePack).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The next `n` ticks after `after`, in the schedule's time zone.
    pub fn next_ticks(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Tz>> {
        self.cron
            .after(&after.with_timezone(&self.tz))
            .take(n)
            .collect()
    }

    /// The idempotency key of a tick.
    pub fn tick_key(&self, tick: &DateTime<Tz>) -> String {
        format!("cron:{}:{}", self.name, tick.timestamp_millis())
    }

    /// Enqueue the job of `tick`, once across the fleet, and record it as
    /// the last run; returns its id and whether another process had
    /// enqueued it already.
    pub async fn fire(&self, client: &Client, tick: &DateTime<Tz>) -> Result<(String, bool)> {
        let queue = client.queue(&self.queue).await?;
        let mut options = JobOptions::new()
            .idempotency_key(self.tick_key(tick))
            .idempotency_window(self.key_window(tick));
        if let Some(p) = self.priority {
            options = options.priority(p);
        }
        let e = queue
            .enqueue(NewJob::raw(self.payload.clone(), options))
            .await?;
        let last = LastRun {
            tick_ms: tick.timestamp_millis(),
            job_id: e.id.clone(),
        };
        let state = serde_json::to_string(&last).expect("a LastRun is always JSON");
        client
            .registry()
            .set_schedule_state(&self.name, &state)
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
}

/// Fires [`CronSchedule`]s at their ticks until a [`Shutdown`].
#[derive(Debug, Clone)]
pub struct Scheduler {
    client: Client,
    schedules: Vec<CronSchedule>,
    clock: Arc<dyn Clock>,
}

impl Scheduler {
    /// A scheduler firing `schedules` through `client`, on the machine's
    /// clock.
    pub fn new(client: Client, schedules: Vec<CronSchedule>) -> Self {
        Self {
            client,
            schedules,
            clock: Arc::new(SystemClock),
        }
    }

    /// Read the time from `clock` instead (a [`crate::ManualClock`] in
    /// tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Fire every schedule at its ticks until `stop` is triggered. A tick
    /// whose enqueue fails is tried again a few times, then left (the next
    /// tick is not held up).
    pub async fn run(self, stop: Shutdown) {
        let tasks: Vec<_> = self
            .schedules
            .into_iter()
            .map(|s| {
                tokio::spawn(run_one(
                    self.client.clone(),
                    s,
                    stop.clone(),
                    self.clock.clone(),
                ))
            })
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }
}

async fn run_one(client: Client, schedule: CronSchedule, stop: Shutdown, clock: Arc<dyn Clock>) {
    let mut after = clock.now();
    loop {
        let Some(tick) = schedule.next_ticks(after, 1).pop() else {
            return;
        };
        tokio::select! {
            _ = clock.sleep_until(tick.with_timezone(&Utc)) => {}
            _ = stop.triggered() => return,
        }
        let mut delay = Duration::from_millis(200);
        for _ in 0..TICK_RETRIES {
            match schedule.fire(&client, &tick).await {
                Ok((id, duplicate)) => {
                    tracing::info!(schedule = %schedule.name, tick = %tick.to_rfc3339(), job = %id, duplicate, "schedule fired");
                    break;
                }
                Err(e) => {
                    tracing::warn!(schedule = %schedule.name, error = %e, "schedule tick failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        // Ticks the clock passed meanwhile are not made up.
        after = tick.with_timezone(&Utc).max(clock.now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(cron: &str, tz: Option<&str>) -> Result<CronSchedule> {
        CronSchedule::new("s", cron, tz, "q", &(), None)
    }

    #[test]
    fn ticks_follow_the_expression_in_its_time_zone() {
        let s = schedule("0 30 9 * * *", Some("America/New_York")).expect("valid");
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
    fn bad_expressions_zones_priorities_and_queues_are_refused() {
        assert!(schedule("every minute", None).is_err());
        assert!(schedule("0 61 * * * *", None).is_err());
        assert!(schedule("0 * * * * *", Some("Nowhere/City")).is_err());
        assert!(schedule("0 * * * * *", Some("Europe/Madrid")).is_ok());
        assert!(CronSchedule::new("s", "0 * * * * *", None, "q", &(), Some(10)).is_err());
        assert!(CronSchedule::new("s", "0 * * * * *", None, "a:b", &(), None).is_err());
        // A year long past: valid, but it never fires.
        let never = schedule("0 0 0 1 1 * 2001", None).expect_err("never fires");
        assert_eq!(never.to_string(), "schedule s: never fires");
    }

    #[test]
    fn a_ticks_key_outlives_the_gap_to_the_next_tick() {
        let s = schedule("0 0 0 1 * *", None).expect("monthly");
        let tick = s.next_ticks(Utc::now(), 1)[0];
        assert!(s.key_window(&tick) >= Duration::from_secs(2 * 28 * 86_400));
        let hourly = schedule("0 0 * * * *", None).expect("hourly");
        let tick = hourly.next_ticks(Utc::now(), 1)[0];
        assert_eq!(hourly.key_window(&tick), MIN_KEY_WINDOW);
    }
}
