//! One struct per page and per live fragment. A page embeds its live
//! fragment already rendered (`live_html`); the script fetches the same
//! fragment again every few seconds and swaps it in, so what updates live
//! is rendered (and escaped) by the same template as the first load.

use askama::Template;

/// What every page shows around its content.
#[derive(Debug, Clone, Default)]
pub struct Chrome {
    /// The page's title.
    pub title: String,
    /// Which menu entry is current.
    pub section: &'static str,
    /// The signed-in key's name.
    pub operator: String,
    /// Read-only key: actions are hidden.
    pub read_only: bool,
    /// The session's CSRF token, for forms.
    pub csrf: String,
    /// The plugged-in applications' menu entries, after the server's.
    pub menu: Vec<MenuEntry>,
    /// No API keys configured: the dashboard is open to anyone.
    pub open: bool,
}

/// A menu entry of a page an application adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuEntry {
    /// What the menu says.
    pub label: &'static str,
    /// Where it leads.
    pub href: &'static str,
    /// The section its pages name ([`Chrome::section`]) to mark it current.
    pub section: &'static str,
}

/// The login form.
#[derive(Debug, Template)]
#[template(path = "login.html")]
pub struct LoginPage {
    /// Why the last attempt failed.
    pub error: Option<String>,
}

/// An error page.
#[derive(Debug, Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    /// Around it.
    pub chrome: Chrome,
    /// HTTP status.
    pub status: u16,
    /// What went wrong.
    pub message: String,
}

/// One queue's line on the overview.
#[derive(Debug, Clone, Default)]
pub struct QueueRow {
    /// Name.
    pub name: String,
    /// Paused.
    pub paused: bool,
    /// Ready jobs.
    pub waiting: u64,
    /// Ready jobs per non-empty priority level: `p0 3 · p5 2`.
    pub by_priority: String,
    /// Running.
    pub active: u64,
    /// Waiting for their time.
    pub delayed: u64,
    /// Dead letters.
    pub dead: u64,
    /// Completed in the last full minute.
    pub completed_per_min: u64,
    /// Failed attempts in the last full minute.
    pub failed_per_min: u64,
    /// The rate limit, if any.
    pub rate_limit: Option<String>,
    /// How long the next job to run has been waiting.
    pub wait: String,
}

/// `GET /dashboard`.
#[derive(Debug, Template)]
#[template(path = "overview.html")]
pub struct OverviewPage {
    /// Around it.
    pub chrome: Chrome,
    /// `hour` or `day`.
    pub range: String,
    /// The live part, rendered.
    pub live_html: String,
}

/// The live part of the overview.
#[derive(Debug, Template)]
#[template(path = "overview_live.html")]
pub struct OverviewLive {
    /// Every queue.
    pub queues: Vec<QueueRow>,
    /// Live worker processes.
    pub workers: usize,
    /// Jobs running across the fleet.
    pub in_flight: usize,
    /// Completed and failed per minute, as the chart's JSON.
    pub throughput_json: String,
    /// Wait of each queue's next job, as the chart's JSON.
    pub wait_json: String,
    /// `last hour` or `last day`.
    pub range_label: String,
    /// Server time of this answer.
    pub updated: String,
}

/// One job in a list.
#[derive(Debug, Clone, Default)]
pub struct JobRow {
    /// Id.
    pub id: String,
    /// Priority level.
    pub priority: u8,
    /// `runs/allowed`.
    pub attempts: String,
    /// Enqueued.
    pub created: String,
    /// Due (delayed), started (active) or died (dead).
    pub when: String,
    /// The worker holding it.
    pub worker: String,
    /// The last error.
    pub error: String,
}

/// A state tab of the queue page.
#[derive(Debug, Clone)]
pub struct Tab {
    /// `waiting`, `active`, `delayed`, `dead`.
    pub state: &'static str,
    /// Jobs in it.
    pub count: u64,
}

/// `GET /dashboard/queues/{queue}`.
#[derive(Debug, Template)]
#[template(path = "queue.html")]
pub struct QueuePage {
    /// Around it.
    pub chrome: Chrome,
    /// The queue.
    pub queue: String,
    /// The live part, rendered.
    pub live_html: String,
    /// The answer to an id search, when one failed.
    pub search_error: Option<String>,
    /// The searched id.
    pub search: String,
}

/// The live part of the queue page.
#[derive(Debug, Template)]
#[template(path = "queue_live.html")]
pub struct QueueLive {
    /// The queue's counts.
    pub row: QueueRow,
    /// The state shown.
    pub state: &'static str,
    /// The tabs.
    pub tabs: Vec<Tab>,
    /// Jobs of the page.
    pub jobs: Vec<JobRow>,
    /// Page number, from 1.
    pub page: usize,
    /// Whether a next page exists.
    pub has_next: bool,
    /// Read-only key.
    pub read_only: bool,
    /// CSRF token.
    pub csrf: String,
}

/// A failed attempt.
#[derive(Debug, Clone)]
pub struct AttemptRow {
    /// Which run.
    pub attempt: u32,
    /// When.
    pub at: String,
    /// The error.
    pub error: String,
}

/// `GET /dashboard/queues/{queue}/jobs/{id}`.
#[derive(Debug, Template)]
#[template(path = "job.html")]
pub struct JobPage {
    /// Around it.
    pub chrome: Chrome,
    /// The queue.
    pub queue: String,
    /// Id.
    pub id: String,
    /// State.
    pub state: String,
    /// Label/value pairs: options and timestamps.
    pub facts: Vec<(&'static str, String)>,
    /// The payload, pretty-printed JSON (or a note on undecodable bytes).
    pub payload: String,
    /// The result its handler recorded.
    pub result: Option<String>,
    /// The last error.
    pub last_error: Option<String>,
    /// Failed attempts, oldest first.
    pub attempts: Vec<AttemptRow>,
}

/// One dead letter.
#[derive(Debug, Clone)]
pub struct DeadRow {
    /// Id.
    pub id: String,
    /// When it died.
    pub died: String,
    /// Why.
    pub reason: String,
    /// Runs it had.
    pub attempts: u32,
}

/// `GET /dashboard/queues/{queue}/dead`.
#[derive(Debug, Template)]
#[template(path = "dead.html")]
pub struct DeadPage {
    /// Around it.
    pub chrome: Chrome,
    /// The queue.
    pub queue: String,
    /// Text searched in errors.
    pub filter: String,
    /// The live part, rendered.
    pub live_html: String,
}

/// The live part of the dead-letter page.
#[derive(Debug, Template)]
#[template(path = "dead_live.html")]
pub struct DeadLive {
    /// The queue.
    pub queue: String,
    /// Text searched in errors.
    pub filter: String,
    /// Dead letters of the page.
    pub rows: Vec<DeadRow>,
    /// Matching the filter in all.
    pub matched: u64,
    /// Dead letters in all.
    pub total: u64,
    /// Page number, from 1.
    pub page: usize,
    /// Whether a next page exists.
    pub has_next: bool,
    /// Read-only key.
    pub read_only: bool,
    /// CSRF token.
    pub csrf: String,
}

/// One worker process.
#[derive(Debug, Clone)]
pub struct WorkerRow {
    /// Id.
    pub id: String,
    /// Host.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// Queues served, with their concurrency.
    pub queues: String,
    /// Jobs at once.
    pub concurrency: usize,
    /// Running now.
    pub in_flight: usize,
    /// Last heartbeat.
    pub last_beat: String,
    /// Running since.
    pub started: String,
    /// Sluice version.
    pub version: String,
}

/// `GET /dashboard/workers`.
#[derive(Debug, Template)]
#[template(path = "workers.html")]
pub struct WorkersPage {
    /// Around it.
    pub chrome: Chrome,
    /// The live part, rendered.
    pub live_html: String,
}

/// The live part of the workers page.
#[derive(Debug, Template)]
#[template(path = "workers_live.html")]
pub struct WorkersLive {
    /// Live worker processes.
    pub workers: Vec<WorkerRow>,
}

/// One cron schedule.
#[derive(Debug, Clone)]
pub struct ScheduleRow {
    /// Name.
    pub name: String,
    /// Cron expression.
    pub cron: String,
    /// Time zone.
    pub timezone: String,
    /// Target queue.
    pub queue: String,
    /// Next run times.
    pub next_runs: Vec<String>,
    /// The last run's time.
    pub last_run: String,
    /// The last run's job id.
    pub last_job: Option<String>,
}

/// `GET /dashboard/schedules`.
#[derive(Debug, Template)]
#[template(path = "schedules.html")]
pub struct SchedulesPage {
    /// Around it.
    pub chrome: Chrome,
    /// Every schedule.
    pub schedules: Vec<ScheduleRow>,
}

/// One alert rule.
#[derive(Debug, Clone)]
pub struct AlertRow {
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// Its queue.
    pub queue: Option<String>,
    /// Its threshold with its unit, or a dash.
    pub threshold: String,
    /// ok, pending or firing.
    pub state: String,
    /// The last observed value.
    pub value: String,
    /// When it last fired.
    pub last_fired: String,
    /// Times it fired.
    pub fired: u64,
    /// Its channels, comma-separated.
    pub channels: String,
    /// Until when it is silenced, or a dash.
    pub silenced: String,
    /// Whether it is silenced now.
    pub is_silenced: bool,
}

/// `GET /dashboard/alerts`.
#[derive(Debug, Template)]
#[template(path = "alerts.html")]
pub struct AlertsPage {
    /// Around it.
    pub chrome: Chrome,
    /// Every rule.
    pub alerts: Vec<AlertRow>,
}

/// One circuit breaker.
#[derive(Debug, Clone)]
pub struct BreakerRow {
    /// Its name (target).
    pub name: String,
    /// closed, open or half_open.
    pub state: &'static str,
    /// open or closed when an operator holds it.
    pub forced: Option<&'static str>,
    /// When an open breaker may half-open.
    pub until: String,
    /// The current cool-down.
    pub cool_down: String,
    /// Since when it is in its state.
    pub changed: String,
    /// Times it opened.
    pub opened: u64,
    /// Calls recorded as successes.
    pub successes: u64,
    /// Calls recorded as failures.
    pub failures: u64,
    /// Probes in flight.
    pub probes: u64,
    /// The force buttons: (form value, label).
    pub actions: Vec<(&'static str, &'static str)>,
}

/// `GET /dashboard/breakers`.
#[derive(Debug, Template)]
#[template(path = "breakers.html")]
pub struct BreakersPage {
    /// Around it.
    pub chrome: Chrome,
    /// Every breaker.
    pub breakers: Vec<BreakerRow>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_text_is_rendered_as_text() {
        let evil = r#"<script>alert(1)</script>"><img src=x onerror=alert(1)>"#;
        let page = JobPage {
            chrome: Chrome {
                title: evil.into(),
                ..Chrome::default()
            },
            queue: "q".into(),
            id: "id".into(),
            state: "dead".into(),
            facts: vec![("idempotency key", evil.into())],
            payload: evil.into(),
            result: None,
            last_error: Some(evil.into()),
            attempts: vec![],
        }
        .render()
        .expect("render");
        assert!(!page.contains("<script>alert"), "{page}");
        assert!(!page.contains("<img src=x"), "{page}");
        assert!(page.contains("&#60;script&#62;alert(1)"), "{page}");
    }
}
