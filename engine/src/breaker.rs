//! Circuit breakers shared by every process under a prefix: one per
//! downstream target (an HTTP host, a database), its state in Redis, each
//! transition one Lua script (`lua/breaker.lua`), so every worker of every
//! machine sees the same state and no leader is needed. See
//! `docs/breakers.md`. [`Breakers`] (from
//! [`Client::breakers`](crate::Client::breakers)) makes a [`Breaker`] by
//! name, lists their statuses and lets an operator force one.
//!
//! A handler asks [`Breaker::acquire`] before it calls the target:
//! - **closed**: the call goes ahead; its result is recorded with
//!   [`Breaker::record`], and once, over the rolling window, at least
//!   `min_calls` were seen and their failure rate is at or above
//!   `failure_rate` % with 99 % confidence (the lower bound of the Wilson
//!   score interval), the breaker opens. A dead target opens it at
//!   `min_calls`; failures scattered below the threshold do not open it by
//!   the chance of a few calls;
//! - **open**: the call is refused with the time left of the cool-down;
//!   the handler snoozes its job that long ([`Admission::outcome`]), which
//!   spends no attempt;
//! - **half-open** (after the cool-down): `probes` calls at once, over
//!   every process, go through. A probe's success closes the breaker; its failure
//!   re-opens it with twice the cool-down, up to `max_cool_down`.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::client::ClientConfig;
use crate::error::{Error, Result};
use crate::job::Outcome;
use crate::options::bounded;
use crate::store::BreakerStore;

/// Longest breaker name.
pub const MAX_BREAKER_NAME_LEN: usize = 200;

/// A breaker's settings. They travel with every call, so the processes
/// sharing a breaker should share them; the state itself is shared in
/// Redis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerConfig {
    /// Failure percentage (0 to 100) over the window that opens it, once
    /// reached with 99 % confidence (100: every call failed).
    pub failure_rate: f64,
    /// Least calls in the window before the rate counts.
    pub min_calls: u32,
    /// Length of the rolling window.
    pub window: Duration,
    /// How long it stays open the first time.
    pub cool_down: Duration,
    /// Longest cool-down, after failed probes doubled it.
    pub max_cool_down: Duration,
    /// Calls let through at once, over every process, while half-open.
    pub probes: u32,
    /// A probe not answered in this long frees its slot (its worker died).
    pub probe_lease: Duration,
    /// How long a call refused while half-open waits before it asks again.
    pub half_open_wait: Duration,
}

impl Default for BreakerConfig {
    /// 50 % of at least 10 calls over 30 s opens it for 5 s, doubling to at
    /// most a minute; one probe at a time.
    fn default() -> Self {
        Self {
            failure_rate: 50.0,
            min_calls: 10,
            window: Duration::from_secs(30),
            cool_down: Duration::from_secs(5),
            max_cool_down: Duration::from_secs(60),
            probes: 1,
            probe_lease: Duration::from_secs(60),
            half_open_wait: Duration::from_secs(1),
        }
    }
}

impl BreakerConfig {
    /// Check the ranges; the error names the setting.
    pub fn validate(&self) -> Result<()> {
        if !self.failure_rate.is_finite() || !(0.0..=100.0).contains(&self.failure_rate) {
            return Err(Error::invalid(
                "breaker.failure_rate",
                format!("{} is not a percentage from 0 to 100", self.failure_rate),
            ));
        }
        if self.min_calls == 0 {
            return Err(Error::invalid("breaker.min_calls", "must be at least 1"));
        }
        if self.probes == 0 {
            return Err(Error::invalid("breaker.probes", "must be at least 1"));
        }
        for (option, value) in [
            ("breaker.window", self.window),
            ("breaker.cool_down", self.cool_down),
            ("breaker.probe_lease", self.probe_lease),
            ("breaker.half_open_wait", self.half_open_wait),
        ] {
            if value < Duration::from_millis(1) {
                return Err(Error::invalid(option, "must be at least 1 ms"));
            }
            bounded(option, value)?;
        }
        bounded("breaker.max_cool_down", self.max_cool_down)?;
        if self.max_cool_down < self.cool_down {
            return Err(Error::invalid(
                "breaker.max_cool_down",
                "must not be below breaker.cool_down",
            ));
        }
        Ok(())
    }

    /// The script's settings arguments, in its order.
    fn args(&self) -> [String; 8] {
        [
            self.failure_rate.to_string(),
            self.min_calls.to_string(),
            ms(self.window),
            ms(self.cool_down),
            ms(self.max_cool_down),
            self.probes.to_string(),
            ms(self.probe_lease),
            ms(self.half_open_wait),
        ]
    }
}

fn ms(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

/// Where a breaker is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the cool-down ends.
    Open,
    /// A few probe calls go through.
    HalfOpen,
}

impl BreakerState {
    fn parse(text: &str) -> Result<Self> {
        match text {
            "closed" => Ok(Self::Closed),
            "open" => Ok(Self::Open),
            "half_open" => Ok(Self::HalfOpen),
            other => Err(Error::Protocol {
                operation: "breaker",
                detail: format!("unknown breaker state {other:?}"),
            }),
        }
    }

    /// The state's name, as in the API and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }

    /// The value of the `sluice_breaker_state` gauge: 0 closed, 1 open,
    /// 2 half-open.
    pub fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::Open => 1.0,
            Self::HalfOpen => 2.0,
        }
    }
}

/// A state an operator holds a breaker in, whatever the calls say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Forced {
    /// Refuse every call.
    Open,
    /// Let every call through.
    Closed,
}

/// A call the breaker let through; give it back to [`Breaker::record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permit {
    token: String,
    probe: bool,
}

impl Permit {
    /// Whether the call is one of the half-open breaker's probes.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

/// The breaker's answer to [`Breaker::acquire`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Make the call, then record its result.
    Allowed(Permit),
    /// Do not call now; ask again after `wait`.
    Refused {
        /// Open or half-open.
        state: BreakerState,
        /// How long until a call may be let through.
        wait: Duration,
    },
}

impl Admission {
    /// For a handler: `None` when allowed, else the outcome that puts the
    /// job off until the breaker may let it through, without spending an
    /// attempt.
    pub fn outcome(&self) -> Option<Outcome> {
        match self {
            Admission::Allowed(_) => None,
            Admission::Refused { wait, .. } => Some(Outcome::Snooze(*wait)),
        }
    }
}

/// A breaker as its hash shows it, for the API, the dashboard, metrics and
/// alerts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreakerStatus {
    /// The breaker's name (its target).
    pub name: String,
    /// Its state.
    pub state: BreakerState,
    /// Held by an operator.
    pub forced: Option<Forced>,
    /// When an open breaker may half-open, ms since the Unix epoch.
    pub open_until_ms: Option<u64>,
    /// The current cool-down, ms (while open or half-open).
    pub cool_down_ms: Option<u64>,
    /// When it last changed state, ms since the Unix epoch.
    pub changed_at_ms: Option<u64>,
    /// Times it opened.
    pub opened_total: u64,
    /// Times it half-opened.
    pub half_opened_total: u64,
    /// Times it closed again.
    pub closed_total: u64,
    /// Calls recorded as successes, ever.
    pub successes_total: u64,
    /// Calls recorded as failures, ever.
    pub failures_total: u64,
    /// Probes in flight now.
    pub probes_in_flight: u64,
}

/// One breaker, named after its target. Cheap to clone. Made by
/// [`Breakers::get`].
#[derive(Debug, Clone)]
pub struct Breaker {
    name: String,
    config: BreakerConfig,
    store: BreakerStore,
    /// How long Redis keeps a recorded call's token: longer than any retry
    /// of the record can come.
    keep: Duration,
    /// Whether the name is in the registry yet (a breaker made while Redis
    /// is down registers at its first call that reaches Redis).
    registered: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Breaker {
    fn new(name: String, config: BreakerConfig, store: BreakerStore, keep: Duration) -> Self {
        Self {
            name,
            config,
            store,
            keep,
            registered: Default::default(),
        }
    }

    /// The breaker's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its settings.
    pub fn config(&self) -> &BreakerConfig {
        &self.config
    }

    /// May a call go to the target now? `lease` is how long the call may
    /// take (a probe's slot is held that long at most).
    pub async fn acquire(&self, lease: Duration) -> Result<Admission> {
        self.register().await;
        let token = uuid::Uuid::now_v7().simple().to_string();
        let mut config = self.config;
        config.probe_lease = config.probe_lease.max(lease);
        let reply = self
            .store
            .call(&self.name, "acquire", &token, "0", "0", &config.args(), 0)
            .await?;
        self.observe(&reply);
        match reply.verdict.as_str() {
            "allow" => Ok(Admission::Allowed(Permit {
                token,
                probe: false,
            })),
            "probe" => Ok(Admission::Allowed(Permit { token, probe: true })),
            "deny" => Ok(Admission::Refused {
                state: BreakerState::parse(&reply.state)?,
                wait: Duration::from_millis(reply.wait_ms.max(1)),
            }),
            other => Err(Error::Protocol {
                operation: "breaker acquire",
                detail: format!("unknown verdict {other:?}"),
            }),
        }
    }

    /// Record how the call of `permit` went: `success` is false for what
    /// says the target is unwell (a timeout, a refused connection, a 5xx, a
    /// 429), true for anything else, including errors that are the call's
    /// own fault. Returns the breaker's state after it.
    pub async fn record(&self, permit: Permit, success: bool) -> Result<BreakerState> {
        let reply = self.record_reply(permit, success).await?;
        BreakerState::parse(&reply.state)
    }

    async fn record_reply(&self, permit: Permit, success: bool) -> Result<BreakerReply> {
        let reply = self
            .store
            .call(
                &self.name,
                "record",
                &permit.token,
                if success { "1" } else { "0" },
                if permit.probe { "1" } else { "0" },
                &self.config.args(),
                self.keep.as_millis().max(1) as u64,
            )
            .await?;
        self.observe(&reply);
        Ok(reply)
    }

    /// Run `call` under the breaker: `Err(wait)` without calling when it
    /// refuses, and `Err(wait)` too when the call was a probe that failed
    /// (the target is still down: its job should wait for the next probe
    /// round rather than spend an attempt on the breaker's behalf).
    /// Otherwise the call's result, recorded as a success when `healthy`
    /// says so. When Redis cannot be asked, the call goes ahead unrecorded
    /// (the breaker must not stop work it cannot see), and the failure is
    /// logged.
    pub async fn call<T, Fut>(
        &self,
        lease: Duration,
        call: impl FnOnce() -> Fut,
        healthy: impl FnOnce(&T) -> bool,
    ) -> std::result::Result<T, Duration>
    where
        Fut: std::future::Future<Output = T>,
    {
        let permit = match self.acquire(lease).await {
            Ok(Admission::Allowed(p)) => Some(p),
            Ok(Admission::Refused { wait, .. }) => return Err(wait),
            Err(e) => {
                tracing::warn!(breaker = %self.name, error = %e, "cannot ask the circuit breaker; calling anyway");
                None
            }
        };
        let result = call().await;
        let Some(permit) = permit else {
            return Ok(result);
        };
        let probe = permit.probe;
        let success = healthy(&result);
        match self.record_reply(permit, success).await {
            Ok(reply) if probe && !success && reply.state == "open" => {
                Err(Duration::from_millis(reply.wait_ms.max(1)))
            }
            Ok(_) => Ok(result),
            Err(e) => {
                tracing::warn!(breaker = %self.name, error = %e, "cannot record a call on the circuit breaker");
                Ok(result)
            }
        }
    }

    /// Put the name in the registry, once it can be.
    async fn register(&self) {
        use std::sync::atomic::Ordering;
        if self.registered.load(Ordering::Relaxed) {
            return;
        }
        match self.store.register(&self.name).await {
            Ok(()) => self.registered.store(true, Ordering::Relaxed),
            Err(e) => {
                tracing::debug!(breaker = %self.name, error = %e, "cannot register the breaker yet")
            }
        }
    }

    /// Log a transition this process made (the counters are in Redis,
    /// for metrics over every process).
    fn observe(&self, reply: &BreakerReply) {
        if reply.transition.is_empty() {
            return;
        }
        match reply.transition.as_str() {
            "open" => tracing::warn!(
                breaker = %self.name,
                cool_down_ms = reply.wait_ms,
                "circuit breaker opened: calls to its target are put off"
            ),
            other => {
                tracing::info!(breaker = %self.name, to = other, "circuit breaker changed state")
            }
        }
    }
}

/// The circuit breakers under a client's prefix: [`Breaker`]s by name,
/// their statuses, and an operator's force. Made by
/// [`Client::breakers`](crate::Client::breakers); cheap to clone.
#[derive(Debug, Clone)]
pub struct Breakers {
    store: BreakerStore,
    /// How long Redis keeps a recorded call's token (see [`Breaker`]).
    keep: Duration,
}

impl Breakers {
    pub(crate) fn new(store: BreakerStore, client: &ClientConfig) -> Self {
        // A record's token must outlive every retry of that record.
        let keep = ((client.retry.max_delay + client.response_timeout)
            * (client.retry.retries as u32 + 1))
            .max(Duration::from_secs(10));
        Self { store, keep }
    }

    /// Breaker `name` with `config`, registered so that listings and
    /// metrics show it (at its first call that reaches Redis when Redis is
    /// down now). Its state is shared with every process that gets a
    /// breaker of the same name under the same prefix.
    pub async fn get(&self, name: &str, config: BreakerConfig) -> Result<Breaker> {
        validate_breaker_name(name)?;
        config.validate()?;
        let breaker = Breaker::new(name.to_owned(), config, self.store.clone(), self.keep);
        // Registered now if Redis answers, else at its first call: a worker
        // starting while Redis is down must not fail for it.
        breaker.register().await;
        Ok(breaker)
    }

    /// Every registered breaker's status, sorted by name.
    pub async fn list(&self) -> Result<Vec<BreakerStatus>> {
        let mut names = self.store.names().await?;
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            if let Some(s) = self.status(&name).await? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Breaker `name`'s status; `None` when no process registered it.
    pub async fn status(&self, name: &str) -> Result<Option<BreakerStatus>> {
        validate_breaker_name(name)?;
        if !self.store.is_registered(name).await? {
            return Ok(None);
        }
        let (fields, probes) = self.store.fields(name, now_ms()).await?;
        Ok(Some(BreakerStatus::from_fields(name, &fields, probes)?))
    }

    /// Hold breaker `name` open or closed (`None`: let the calls decide
    /// again; a breaker released from open probes at the next call).
    /// Returns false when no process registered it.
    pub async fn force(&self, name: &str, forced: Option<Forced>) -> Result<bool> {
        validate_breaker_name(name)?;
        if !self.store.is_registered(name).await? {
            return Ok(false);
        }
        let what = match forced {
            Some(Forced::Open) => "open",
            Some(Forced::Closed) => "closed",
            None => "none",
        };
        let reply = self
            .store
            .call(
                name,
                "force",
                what,
                "0",
                "0",
                &BreakerConfig::default().args(),
                1,
            )
            .await?;
        tracing::info!(breaker = name, forced = what, state = %reply.state, "circuit breaker forced by an operator");
        Ok(true)
    }
}

impl BreakerStatus {
    fn from_fields(name: &str, fields: &HashMap<String, String>, probes: u64) -> Result<Self> {
        let number = |k: &str| fields.get(k).and_then(|v| v.parse::<u64>().ok());
        Ok(Self {
            name: name.to_owned(),
            state: BreakerState::parse(fields.get("state").map_or("closed", String::as_str))?,
            forced: match fields.get("forced").map(String::as_str) {
                Some("open") => Some(Forced::Open),
                Some("closed") => Some(Forced::Closed),
                _ => None,
            },
            open_until_ms: number("until"),
            cool_down_ms: number("cool"),
            changed_at_ms: number("changed"),
            opened_total: number("opened").unwrap_or(0),
            half_opened_total: number("half_opened").unwrap_or(0),
            closed_total: number("closed").unwrap_or(0),
            successes_total: number("successes").unwrap_or(0),
            failures_total: number("failures").unwrap_or(0),
            probes_in_flight: probes,
        })
    }
}

/// The script's reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BreakerReply {
    pub verdict: String,
    pub state: String,
    pub wait_ms: u64,
    pub transition: String,
}

/// Check a breaker name: 1 to 200 characters of ASCII letters, digits and
/// `. _ - :` (a target such as `http:example.com:443`).
pub fn validate_breaker_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_BREAKER_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            what: "breaker name",
            name: name.chars().take(MAX_BREAKER_NAME_LEN + 1).collect(),
        })
    }
}

/// The breaker name of a URL's target: `<scheme>:<host>:<port>`, the port
/// the scheme's default when absent. `None` for a URL without a host.
pub fn target_breaker_name(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let (host, port) = if let Some(v6) = host_port.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host.to_owned(), after.strip_prefix(':').map(str::to_owned))
    } else {
        match host_port.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), Some(p.to_owned())),
            None => (host_port.to_owned(), None),
        }
    };
    let scheme = scheme.to_ascii_lowercase();
    let port = match port.filter(|p| !p.is_empty()) {
        Some(p) => p,
        None => match scheme.as_str() {
            "http" | "ws" => "80".to_owned(),
            "https" | "wss" => "443".to_owned(),
            _ => return None,
        },
    };
    let host: String = host
        .to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'))
        .collect();
    if host.is_empty() {
        return None;
    }
    let name = format!("{scheme}:{host}:{port}");
    validate_breaker_name(&name).ok().map(|()| name)
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_named_by_scheme_host_and_port() {
        assert_eq!(
            target_breaker_name("http://127.0.0.1:8080/hook?x=1").as_deref(),
            Some("http:127.0.0.1:8080")
        );
        assert_eq!(
            target_breaker_name("https://User@Example.COM/a").as_deref(),
            Some("https:example.com:443")
        );
        assert_eq!(
            target_breaker_name("http://[::1]:9/").as_deref(),
            Some("http:::1:9")
        );
        assert_eq!(target_breaker_name("not a url"), None);
        assert_eq!(target_breaker_name("ftp://host/"), None);
    }

    #[test]
    fn settings_out_of_range_are_refused_by_name() {
        let bad = |c: BreakerConfig| format!("{}", c.validate().expect_err("invalid"));
        let d = BreakerConfig::default();
        d.validate().expect("defaults are valid");
        for rate in [-1.0, 100.5, f64::NAN] {
            assert!(
                bad(BreakerConfig {
                    failure_rate: rate,
                    ..d
                })
                .contains("breaker.failure_rate")
            );
        }
        assert!(bad(BreakerConfig { min_calls: 0, ..d }).contains("breaker.min_calls"));
        assert!(bad(BreakerConfig { probes: 0, ..d }).contains("breaker.probes"));
        assert!(
            bad(BreakerConfig {
                max_cool_down: Duration::from_secs(1),
                ..d
            })
            .contains("breaker.max_cool_down")
        );
        assert!(
            bad(BreakerConfig {
                window: Duration::ZERO,
                ..d
            })
            .contains("breaker.window")
        );
    }

    #[test]
    fn names_keep_to_the_key_alphabet() {
        assert!(validate_breaker_name("http:example.com:443").is_ok());
        assert!(validate_breaker_name("postgres").is_ok());
        assert!(validate_breaker_name("a{b}").is_err());
        assert!(validate_breaker_name("").is_err());
        assert!(validate_breaker_name(&"x".repeat(201)).is_err());
    }
}
