//! What alerting over every process needs from Redis, through
//! [`Alerts`] (from [`Client::alerts`](crate::Client::alerts)): each alert
//! rule's state machine (`lua/alert.lua`), so that every process may
//! evaluate every rule and each transition is still announced once; latency
//! series that every process adds its samples to, so a percentile over the
//! window is every process's, not one's; and samples of counters, so every
//! process looks back over the same history. The rules, channels and
//! evaluation loop live with the binary (`api/src/alerts`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::AlertStore;

/// Upper bounds of the latency buckets, ms; the last bucket is unbounded.
pub const LATENCY_BUCKETS_MS: [u64; 16] = [
    1,
    2,
    5,
    10,
    25,
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    30_000,
    60_000,
    u64::MAX,
];

/// Width of one latency slot in Redis.
const SLOT_MS: u64 = 10_000;

/// How long a latency slot is kept.
const SLOT_KEEP_MS: u64 = 2 * 3600 * 1000;

/// The latency series of the API's authenticated requests (the
/// `api_latency` alert reads it).
pub const API_LATENCY: &str = "api";

/// The latency series of the application's database writes (the `db_slow`
/// alert reads it).
pub const DB_LATENCY: &str = "db";

/// Samples recorded through a client's latency series and not yet added
/// to Redis: bucket counts by series. Shared by the client's clones and
/// their [`Alerts`].
pub(crate) type LatencySamples = Arc<Mutex<HashMap<&'static str, [u64; 16]>>>;

/// One latency series (for example `api` or `db`), summed over every
/// process: where a part of the process records how long its calls take,
/// for the alert rules that read the series' quantiles
/// ([`Alerts::latency_quantile`]). Samples are counted in the process and
/// added to Redis by [`Alerts::flush_latency`].
///
/// ```
/// # fn demo(client: &sluice_engine::Client) {
/// let api = client.alerts().latency_series(sluice_engine::alerting::API_LATENCY);
/// api.record(std::time::Duration::from_millis(12));
/// # }
/// ```
#[derive(Clone)]
pub struct LatencySeries {
    name: &'static str,
    samples: LatencySamples,
}

impl std::fmt::Debug for LatencySeries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencySeries")
            .field("name", &self.name)
            .finish()
    }
}

impl LatencySeries {
    /// Count one sample.
    pub fn record(&self, took: Duration) {
        let ms = took.as_millis() as u64;
        let bucket = LATENCY_BUCKETS_MS
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(LATENCY_BUCKETS_MS.len() - 1);
        if let Ok(mut samples) = self.samples.lock() {
            samples.entry(self.name).or_insert([0; 16])[bucket] += 1;
        }
    }

    /// The series' name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// The timing of an alert rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertTiming {
    /// How long the condition must hold before the rule fires.
    pub hold: Duration,
    /// How long the condition must stay false before a firing resolves.
    pub clear: Duration,
    /// Re-announce a firing this often; `None`: once.
    pub repeat: Option<Duration>,
}

/// What an observation changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeKind {
    /// The rule started firing (or was announced after a silence).
    Firing,
    /// Still firing, after the repeat interval.
    Repeat,
    /// It stopped firing.
    Resolved,
}

impl NoticeKind {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "firing" => Some(Self::Firing),
            "repeat" => Some(Self::Repeat),
            "resolved" => Some(Self::Resolved),
            _ => None,
        }
    }

    /// The kind's name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Repeat => "repeat",
            Self::Resolved => "resolved",
        }
    }
}

/// A rule's state after a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertReply {
    /// The notice this call made, if it made one: the caller sends it.
    pub notice: Option<NoticeKind>,
    /// Notices made so far (the last one's number).
    pub seq: u64,
    /// ok, pending or firing.
    pub state: String,
    /// When the current firing began, ms.
    pub firing_since_ms: u64,
    /// Silenced now.
    pub silenced: bool,
    /// The last notice that was handed to the channels.
    pub enqueued: u64,
    /// The last notice's kind.
    pub last_kind: Option<NoticeKind>,
    /// When the last notice was made, ms.
    pub last_at_ms: u64,
}

/// A rule's record, for listings.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AlertRecord {
    /// ok, pending or firing.
    pub state: String,
    /// The last observed value.
    pub value: Option<String>,
    /// When it was last observed, ms.
    pub observed_at_ms: Option<u64>,
    /// When the current firing began, ms.
    pub firing_since_ms: Option<u64>,
    /// When it last fired (a notice of kind firing or repeat), ms.
    pub last_fired_ms: Option<u64>,
    /// Silenced until, ms.
    pub silenced_until_ms: Option<u64>,
    /// Times it fired.
    pub fired_total: u64,
}

/// The alert rules' state, latency series and counter samples under a
/// client's prefix, shared by every process that uses it. Made by
/// [`Client::alerts`](crate::Client::alerts); cheap to clone.
#[derive(Debug, Clone)]
pub struct Alerts {
    store: AlertStore,
    samples: LatencySamples,
}

impl Alerts {
    pub(crate) fn new(store: AlertStore, samples: LatencySamples) -> Self {
        Self { store, samples }
    }

    /// Record an observation of rule `name`'s condition (`holds`, with the
    /// value seen) and move its state; see `lua/alert.lua`.
    pub async fn observe(
        &self,
        name: &str,
        holds: bool,
        value: &str,
        timing: AlertTiming,
    ) -> Result<AlertReply> {
        let ms = |d: Duration| d.as_millis().to_string();
        self.call(
            name,
            [
                if holds { "1" } else { "0" }.to_owned(),
                value.to_owned(),
                ms(timing.hold),
                ms(timing.clear),
                timing.repeat.map_or_else(|| "0".to_owned(), ms),
                "observe".to_owned(),
                "0".to_owned(),
            ],
        )
        .await
    }

    /// Note that notice `seq` of rule `name` was handed to its channels.
    pub async fn notice_enqueued(&self, name: &str, seq: u64) -> Result<AlertReply> {
        self.call(name, alert_args("enqueued", seq)).await
    }

    /// Silence rule `name` until `until_ms` (Redis time), or lift its
    /// silence with `None`. A silenced rule keeps its state but sends
    /// nothing; a firing it kept quiet is announced when the silence ends.
    pub async fn silence(&self, name: &str, until_ms: Option<u64>) -> Result<AlertReply> {
        self.call(name, alert_args("silence", until_ms.unwrap_or(0)))
            .await
    }

    /// Rule `name`'s record (a default one before any observation).
    pub async fn record_of(&self, name: &str) -> Result<AlertRecord> {
        let fields = self.store.fields(name).await?;
        let number = |k: &str| fields.get(k).and_then(|v| v.parse::<u64>().ok());
        Ok(AlertRecord {
            state: fields.get("state").cloned().unwrap_or_else(|| "ok".into()),
            value: fields.get("value").cloned(),
            observed_at_ms: number("observed_at"),
            firing_since_ms: number("firing_since"),
            last_fired_ms: number("last_fired"),
            silenced_until_ms: number("silenced_until"),
            fired_total: number("fired_total").unwrap_or(0),
        })
    }

    async fn call(&self, name: &str, args: [String; 7]) -> Result<AlertReply> {
        let (notice, seq, state, firing_since, silenced, enqueued, last_kind, last_at): (
            String,
            u64,
            String,
            u64,
            u8,
            u64,
            String,
            u64,
        ) = self.store.call(name, &args).await?;
        Ok(AlertReply {
            notice: NoticeKind::parse(&notice),
            seq,
            state,
            firing_since_ms: firing_since,
            silenced: silenced == 1,
            enqueued,
            last_kind: NoticeKind::parse(&last_kind),
            last_at_ms: last_at,
        })
    }

    /// The latency series `name`, to record samples in; they wait in the
    /// client (shared by its clones and their `alerts()`) until
    /// [`flush_latency`](Self::flush_latency).
    pub fn latency_series(&self, name: &'static str) -> LatencySeries {
        LatencySeries {
            name,
            samples: self.samples.clone(),
        }
    }

    /// Add the latency samples recorded through the client's series
    /// ([`LatencySeries::record`]) to Redis, where every process's are
    /// summed.
    pub async fn flush_latency(&self) -> Result<()> {
        let taken: Vec<(&'static str, [u64; 16])> = match self.samples.lock() {
            Ok(mut local) => local.drain().collect(),
            Err(_) => return Ok(()),
        };
        if taken.is_empty() {
            return Ok(());
        }
        let now = self.server_time_ms().await?;
        let slot = now / SLOT_MS;
        if let Err(e) = self.store.add_latency(slot, SLOT_KEEP_MS, &taken).await {
            // Put them back: the next flush tries again.
            if let Ok(mut local) = self.samples.lock() {
                for (series, counts) in taken {
                    let mine = local.entry(series).or_insert([0; 16]);
                    for (m, c) in mine.iter_mut().zip(counts) {
                        *m += c;
                    }
                }
            }
            return Err(e);
        }
        Ok(())
    }

    /// The `quantile` (0 to 1) of `series` over the last `window`, every
    /// process's samples together, as the upper bound of its bucket, with
    /// the number of samples; `None` without samples.
    pub async fn latency_quantile(
        &self,
        series: &str,
        window: Duration,
        quantile: f64,
    ) -> Result<Option<(Duration, u64)>> {
        if !(0.0..=1.0).contains(&quantile) {
            return Err(Error::invalid("quantile", "must be between 0 and 1"));
        }
        let now = self.server_time_ms().await?;
        let last = now / SLOT_MS;
        let first = now.saturating_sub(window.as_millis() as u64) / SLOT_MS;
        let counts = self.store.latency_counts(series, first, last).await?;
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return Ok(None);
        }
        let wanted = ((total as f64) * quantile).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bound, n) in LATENCY_BUCKETS_MS.iter().zip(counts) {
            seen += n;
            if seen >= wanted {
                return Ok(Some((Duration::from_millis(*bound), total)));
            }
        }
        Ok(Some((Duration::from_millis(u64::MAX), total)))
    }

    /// Add a sample of counters `values` to series `name` (samples older
    /// than `keep` are dropped), so every process looks back over the same
    /// history.
    pub async fn add_counter_sample(
        &self,
        name: &str,
        values: &[u64],
        keep: Duration,
    ) -> Result<()> {
        let now = self.server_time_ms().await?;
        self.store
            .add_counter_sample(name, now, values, keep.as_millis() as u64)
            .await
    }

    /// The counters of series `name` as they were `window` ago: the newest
    /// sample at least that old, else the oldest one; `None` without
    /// samples.
    pub async fn counter_sample_before(
        &self,
        name: &str,
        window: Duration,
    ) -> Result<Option<Vec<u64>>> {
        let now = self.server_time_ms().await?;
        let at = now.saturating_sub(window.as_millis() as u64);
        self.store.counter_sample_before(name, at).await
    }

    /// Redis server time, ms: the clock every time of the alerts is on
    /// (a silence's end, a notice's time), whichever process reads it.
    pub async fn server_time_ms(&self) -> Result<u64> {
        self.store.server_time_ms().await
    }
}

fn alert_args(op: &str, n: u64) -> [String; 7] {
    [
        "0".into(),
        String::new(),
        "0".into(),
        "0".into(),
        "0".into(),
        op.into(),
        n.to_string(),
    ]
}
