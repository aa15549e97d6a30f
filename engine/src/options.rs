//! Job options, queue settings, and their validation.
//!
//! Everything here is checked before anything touches Redis.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::keys::PRIORITY_LEVELS;

/// Longest idempotency key accepted, in characters (as the HTTP API
/// schema's `maxLength` counts them).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;

/// Longest duration any option may take (ten years). Every duration ends up
/// as milliseconds in a script, added to the server's clock or given to
/// `PX`; bounding them here means a value that passes validation never fails
/// inside a script, after part of a batch was written.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Refuse `value` above [`MAX_DURATION`].
pub(crate) fn bounded(option: &'static str, value: Duration) -> Result<()> {
    if value > MAX_DURATION {
        return Err(Error::invalid(
            option,
            format!(
                "{} ms is above the longest accepted, {} ms (ten years)",
                value.as_millis(),
                MAX_DURATION.as_millis()
            ),
        ));
    }
    Ok(())
}

/// Refuse `value` below one millisecond, the unit every duration reaches a
/// script in: a shorter one would arrive as 0 (no timeout, or a `PX 0` that
/// fails the script part-way through a combined call).
fn at_least_a_millisecond(option: &'static str, value: Duration) -> Result<()> {
    if value < Duration::from_millis(1) {
        return Err(Error::invalid(option, "must be at least 1 ms"));
    }
    Ok(())
}

/// Retry delays: `min(max, base * factor^(attempt-1))`, each lowered at random
/// by up to `jitter` of itself (0 = exact, 1 = "full jitter").
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Backoff {
    /// Delay after the first failed attempt.
    pub base: Duration,
    /// Growth per further attempt (at least 1).
    pub factor: f64,
    /// Longest delay.
    pub max: Duration,
    /// Share of each delay (0 to 1) taken off at random, so that jobs that
    /// failed together do not come back together.
    pub jitter: f64,
}

impl Default for Backoff {
    /// 2 s, 4 s, 8 s, ... up to an hour, with up to 20% taken off at random.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(2),
            factor: 2.0,
            max: Duration::from_secs(3600),
            jitter: 0.2,
        }
    }
}

impl Backoff {
    /// The delay before retrying after failed attempt number `attempt`
    /// (1-based), before jitter.
    pub fn nominal_delay(&self, attempt: u32) -> Duration {
        let exp = i32::try_from(attempt.saturating_sub(1)).unwrap_or(i32::MAX);
        let ms = self.base.as_millis() as f64 * self.factor.powi(exp);
        Duration::from_millis(ms.min(self.max.as_millis() as f64) as u64)
    }

    /// Check the policy's ranges.
    pub fn validate(&self) -> Result<()> {
        if !self.factor.is_finite() || self.factor < 1.0 || self.factor > 100.0 {
            return Err(Error::invalid(
                "backoff.factor",
                "must be between 1 and 100",
            ));
        }
        if !self.jitter.is_finite() || !(0.0..=1.0).contains(&self.jitter) {
            return Err(Error::invalid("backoff.jitter", "must be between 0 and 1"));
        }
        if self.max < self.base {
            return Err(Error::invalid(
                "backoff.max",
                "must not be below backoff.base",
            ));
        }
        bounded("backoff.base", self.base)?;
        bounded("backoff.max", self.max)?;
        Ok(())
    }

    /// The job-hash form read by the scripts: `base_ms,factor,max_ms,jitter`.
    pub(crate) fn encode(&self) -> String {
        format!(
            "{},{},{},{}",
            self.base.as_millis(),
            self.factor,
            self.max.as_millis(),
            self.jitter
        )
    }
}

/// Per-job options. Anything left `None` takes the queue's default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobOptions {
    /// Strict priority level, 0 (most urgent, the default) to 9.
    pub priority: u8,
    /// Run no earlier than this long from now.
    pub delay: Duration,
    /// Runs allowed in all, the first included (at least 1).
    pub max_attempts: Option<u32>,
    /// Retry delays.
    pub backoff: Option<Backoff>,
    /// A run longer than this is cancelled and counts as a failed attempt.
    pub timeout: Option<Duration>,
    /// Enqueue at most once under this key within the idempotency window:
    /// a second enqueue returns the first job's id and adds nothing.
    pub idempotency_key: Option<String>,
    /// How long an idempotency key is remembered.
    pub idempotency_window: Option<Duration>,
}

impl JobOptions {
    /// Default options.
    pub fn new() -> Self {
        Self::default()
    }
    /// Set the priority level (0 most urgent).
    pub fn priority(mut self, level: u8) -> Self {
        self.priority = level;
        self
    }
    /// Run after `delay`.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
    /// Allow `n` runs in all.
    pub fn max_attempts(mut self, n: u32) -> Self {
        self.max_attempts = Some(n);
        self
    }
    /// Use this retry policy.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }
    /// Cancel a run after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
    /// Enqueue at most once under `key` within the idempotency window.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
    /// Remember the idempotency key this long.
    pub fn idempotency_window(mut self, window: Duration) -> Self {
        self.idempotency_window = Some(window);
        self
    }

    /// Check the options' ranges.
    pub fn validate(&self) -> Result<()> {
        if self.priority >= PRIORITY_LEVELS {
            return Err(Error::invalid(
                "priority",
                format!(
                    "{} is out of range 0..={}",
                    self.priority,
                    PRIORITY_LEVELS - 1
                ),
            ));
        }
        if self.max_attempts == Some(0) {
            return Err(Error::invalid("max_attempts", "must be at least 1"));
        }
        if let Some(b) = &self.backoff {
            b.validate()?;
        }
        if let Some(t) = self.timeout {
            at_least_a_millisecond("timeout", t)?;
        }
        if let Some(key) = &self.idempotency_key
            && (key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY_LEN)
        {
            return Err(Error::invalid(
                "idempotency_key",
                format!("must be 1 to {MAX_IDEMPOTENCY_KEY_LEN} characters"),
            ));
        }
        if let Some(w) = self.idempotency_window {
            at_least_a_millisecond("idempotency_window", w)?;
        }
        bounded("delay", self.delay)?;
        if let Some(t) = self.timeout {
            bounded("timeout", t)?;
        }
        if let Some(w) = self.idempotency_window {
            bounded("idempotency_window", w)?;
        }
        Ok(())
    }
}

/// Job options as they arrive from outside (HTTP bodies, the CLI, config
/// files): plain numbers that may be negative or out of range. Convert with
/// `JobOptions::try_from`, which refuses what is wrong with a typed error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobOptionsInput {
    /// Priority level, 0 (most urgent) to 9.
    pub priority: Option<i64>,
    /// Delay in milliseconds.
    pub delay_ms: Option<i64>,
    /// Runs allowed in all.
    pub max_attempts: Option<i64>,
    /// Backoff base delay in milliseconds.
    pub backoff_ms: Option<i64>,
    /// Timeout in milliseconds.
    pub timeout_ms: Option<i64>,
    /// Idempotency key.
    pub idempotency_key: Option<String>,
    /// Idempotency window in milliseconds.
    pub idempotency_window_ms: Option<i64>,
}

fn non_negative_ms(option: &'static str, v: Option<i64>) -> Result<Option<Duration>> {
    match v {
        None => Ok(None),
        Some(ms) if ms < 0 => Err(Error::invalid(option, format!("{ms} is negative"))),
        Some(ms) => Ok(Some(Duration::from_millis(ms as u64))),
    }
}

impl TryFrom<JobOptionsInput> for JobOptions {
    type Error = Error;

    fn try_from(input: JobOptionsInput) -> Result<Self> {
        let priority = match input.priority {
            None => 0,
            Some(p) => u8::try_from(p)
                .ok()
                .filter(|p| *p < PRIORITY_LEVELS)
                .ok_or_else(|| {
                    Error::invalid(
                        "priority",
                        format!("{p} is out of range 0..={}", PRIORITY_LEVELS - 1),
                    )
                })?,
        };
        let max_attempts = match input.max_attempts {
            None => None,
            Some(n) => Some(
                u32::try_from(n)
                    .ok()
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| Error::invalid("max_attempts", "must be at least 1"))?,
            ),
        };
        let backoff = non_negative_ms("backoff_ms", input.backoff_ms)?.map(|base| Backoff {
            base,
            max: Backoff::default().max.max(base),
            ..Backoff::default()
        });
        let options = JobOptions {
            priority,
            delay: non_negative_ms("delay_ms", input.delay_ms)?.unwrap_or_default(),
            max_attempts,
            backoff,
            timeout: non_negative_ms("timeout_ms", input.timeout_ms)?,
            idempotency_key: input.idempotency_key,
            idempotency_window: non_negative_ms(
                "idempotency_window_ms",
                input.idempotency_window_ms,
            )?,
        };
        options.validate()?;
        Ok(options)
    }
}

/// Settings of a queue as one process uses it. Job-level values are written
/// into each job at enqueue, so workers and producers with other settings
/// still agree on a given job.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueConfig {
    /// Runs allowed per job in all, the first included. The default 4 is the
    /// first run plus 3 retries after 2 s, 4 s and 8 s.
    pub max_attempts: u32,
    /// Default retry delays.
    pub backoff: Backoff,
    /// Default run timeout (`None`: no limit).
    pub timeout: Option<Duration>,
    /// A claimed job whose worker shows no sign of life for this long is
    /// reclaimed by another worker. Live workers refresh their claims at a
    /// third of it, so it bounds how long a dead worker's jobs wait.
    pub visibility_timeout: Duration,
    /// How long a completed job's hash stays for lookup (zero: deleted at once,
    /// leaving only the counters).
    pub keep_completed: Duration,
    /// Most dead letters kept; the oldest beyond it are deleted.
    pub dead_letter_cap: usize,
    /// Largest encoded payload accepted.
    pub max_payload_bytes: usize,
    /// Most jobs in one batch enqueue.
    pub max_batch: usize,
    /// Default idempotency window.
    pub idempotency_window: Duration,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            backoff: Backoff::default(),
            timeout: None,
            visibility_timeout: Duration::from_secs(30),
            keep_completed: Duration::ZERO,
            dead_letter_cap: 10_000,
            max_payload_bytes: 1024 * 1024,
            max_batch: 10_000,
            idempotency_window: Duration::from_secs(24 * 3600),
        }
    }
}

impl QueueConfig {
    /// Check the settings' ranges.
    pub fn validate(&self) -> Result<()> {
        if self.max_attempts == 0 {
            return Err(Error::invalid("max_attempts", "must be at least 1"));
        }
        self.backoff.validate()?;
        if self.visibility_timeout < Duration::from_millis(100) {
            return Err(Error::invalid(
                "visibility_timeout",
                "must be at least 100 ms",
            ));
        }
        if self.dead_letter_cap == 0 || self.max_batch == 0 || self.max_payload_bytes == 0 {
            return Err(Error::invalid(
                "dead_letter_cap/max_batch/max_payload_bytes",
                "must be above zero",
            ));
        }
        at_least_a_millisecond("idempotency_window", self.idempotency_window)?;
        bounded("idempotency_window", self.idempotency_window)?;
        bounded("visibility_timeout", self.visibility_timeout)?;
        bounded("keep_completed", self.keep_completed)?;
        if let Some(t) = self.timeout {
            at_least_a_millisecond("timeout", t)?;
            bounded("timeout", t)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idempotency_keys_are_measured_in_characters() {
        let key = |s: String| JobOptions::new().idempotency_key(s).validate();
        assert!(key("é".repeat(MAX_IDEMPOTENCY_KEY_LEN)).is_ok());
        assert!(key("é".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1)).is_err());
        assert!(key(String::new()).is_err());
    }

    #[test]
    fn default_backoff_is_2_4_8_seconds() {
        let b = Backoff::default();
        let d: Vec<u64> = (1..=3).map(|a| b.nominal_delay(a).as_secs()).collect();
        assert_eq!(d, [2, 4, 8]);
        assert_eq!(b.nominal_delay(40), Duration::from_secs(3600));
        assert_eq!(b.encode(), "2000,2,3600000,0.2");
    }

    #[test]
    fn out_of_range_options_are_refused() {
        assert!(JobOptions::new().priority(10).validate().is_err());
        assert!(JobOptions::new().max_attempts(0).validate().is_err());
        assert!(
            JobOptions::new()
                .timeout(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(JobOptions::new().idempotency_key("").validate().is_err());
        let bad_jitter = Backoff {
            jitter: 1.5,
            ..Backoff::default()
        };
        assert!(JobOptions::new().backoff(bad_jitter).validate().is_err());
        assert!(
            JobOptions::new()
                .priority(9)
                .max_attempts(1)
                .validate()
                .is_ok()
        );
    }

    #[test]
    fn wire_input_rejects_negative_and_out_of_range_numbers() {
        let neg = JobOptionsInput {
            delay_ms: Some(-5),
            ..Default::default()
        };
        let err = JobOptions::try_from(neg).expect_err("negative delay");
        assert!(err.to_string().contains("delay_ms"), "{err}");
        for p in [-1, 10, 300] {
            let input = JobOptionsInput {
                priority: Some(p),
                ..Default::default()
            };
            assert!(JobOptions::try_from(input).is_err(), "priority {p}");
        }
        let zero = JobOptionsInput {
            max_attempts: Some(0),
            ..Default::default()
        };
        assert!(JobOptions::try_from(zero).is_err());
        let ok = JobOptionsInput {
            priority: Some(3),
            delay_ms: Some(1500),
            ..Default::default()
        };
        let opts = JobOptions::try_from(ok).expect("valid");
        assert_eq!(opts.priority, 3);
        assert_eq!(opts.delay, Duration::from_millis(1500));
    }

    #[test]
    fn unknown_wire_fields_are_refused() {
        let r: Result<JobOptionsInput, _> = serde_json::from_str(r#"{"prio": 1}"#);
        assert!(r.is_err());
    }
}

/// A queue's rate limit: jobs started per second across every worker of the
/// fleet, with bursts of up to `burst` jobs after a quiet spell. Enforced at
/// claim time in Redis.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RateLimit {
    /// Jobs per second (may be below 1, e.g. 0.5 for one job every 2 s).
    pub per_second: f64,
    /// Most jobs started at once after a quiet spell (at least 1).
    pub burst: u32,
}

impl RateLimit {
    /// `per_second` jobs per second, in bursts of up to `max(1, per_second)`.
    pub fn per_second(per_second: f64) -> Result<Self> {
        Self::new(per_second, per_second.ceil().max(1.0) as u32)
    }

    /// A checked limit: `per_second` finite and above zero, `burst` >= 1.
    pub fn new(per_second: f64, burst: u32) -> Result<Self> {
        if !(per_second.is_finite() && per_second > 0.0 && per_second <= 1e9) {
            return Err(Error::invalid(
                "rate limit",
                "jobs per second must be above 0 and at most 1e9",
            ));
        }
        if burst == 0 {
            return Err(Error::invalid("rate limit burst", "must be at least 1"));
        }
        Ok(Self { per_second, burst })
    }
}
