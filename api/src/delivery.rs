//! The generic HTTP delivery handler: a queue configured with a target URL
//! POSTs each job's payload there, so queues work without writing Rust.
//!
//! The request: the payload as JSON, with headers `Sluice-Job-Id`,
//! `Sluice-Queue`, `Sluice-Attempt`, `Sluice-Max-Attempts`,
//! `Idempotency-Key` (the job id, stable across retries) and, when the
//! queue has a secret, `Sluice-Signature: t=<unix seconds>,v1=<hex>` where
//! `<hex>` is HMAC-SHA256 over `<t>.<body>` (the timestamp lets receivers
//! refuse replays).
//!
//! The answer: 2xx is done; 429, 5xx, timeouts and connection errors are
//! retried (after `Retry-After` when the target sends one, else with the
//! job's backoff); any other status is a permanent failure and the job is
//! dead-lettered with the status and the start of the body.
//!
//! With a circuit breaker (the default for a queue with a `url`), the
//! retried kinds of failure count against the target (scheme, host and
//! port), shared by every queue and worker that delivers there; while it
//! is open, jobs are snoozed until it may close, spending no attempt (see
//! `docs/breakers.md`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sluice_engine::{Breaker, HandlerError, Job, Outcome, TypedHandler};

/// Longest body excerpt kept in a dead letter's reason.
const EXCERPT_CHARS: usize = 300;

/// Most bytes of an error answer read to make the excerpt: a target that
/// answers a huge body is not read to its end.
const MAX_ERROR_BODY: usize = 4 * 1024;

/// Longest `Retry-After` honoured; a longer one is cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

pub use crate::config::check_target;

/// POSTs jobs to one URL. See the module docs.
#[derive(Debug, Clone)]
pub struct HttpDelivery {
    client: reqwest::Client,
    target: reqwest::Url,
    /// The target as messages and error histories show it: without its
    /// user info's password or its query's values, which read-only users
    /// can see.
    shown: String,
    secret: Option<Vec<u8>>,
    timeout: Duration,
    breaker: Option<Breaker>,
}

/// One POST's result.
struct Delivered {
    outcome: Outcome,
    /// False for what says the target is unwell (timeouts, connection
    /// errors, 5xx, 429); a 4xx is the job's own fault.
    target_healthy: bool,
}

/// A target as errors show it (they end up in every failed job's history,
/// which a read key sees): no password, no query values, and only the
/// first segment of the path, since Slack's and Discord's webhook URLs
/// carry their credential in the path (`/services/T…/B…/<secret>`).
fn shown_target(target: &reqwest::Url) -> String {
    let mut shown = target.clone();
    let mut segments = target.path().trim_start_matches('/').splitn(2, '/');
    let first = segments.next().unwrap_or("");
    if segments.next().is_some_and(|rest| !rest.is_empty()) {
        shown.set_path(&format!("/{first}/***"));
    }
    sluice_engine::redact_url(shown.as_str())
}

impl HttpDelivery {
    /// Deliver to `target`, signing with `secret` when given, giving up on a
    /// request after `timeout`.
    pub fn new(target: &str, secret: Option<&str>, timeout: Duration) -> anyhow::Result<Self> {
        let target = check_target(target)?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            client,
            shown: shown_target(&target),
            target,
            secret: secret.map(|s| s.as_bytes().to_vec()),
            timeout,
            breaker: None,
        })
    }

    /// Put the target's calls under `breaker`.
    pub fn with_breaker(mut self, breaker: Breaker) -> Self {
        self.breaker = Some(breaker);
        self
    }

    async fn deliver(&self, job: &Job, payload: serde_json::Value) -> Outcome {
        let body = match serde_json::to_vec(&payload) {
            Ok(b) => b,
            Err(e) => return Outcome::Bury(format!("payload is not JSON-encodable: {e}")),
        };
        let Some(breaker) = &self.breaker else {
            return self.post(job, body).await.outcome;
        };
        // A probe's slot is held for as long as the request may take.
        let lease = self.timeout + Duration::from_secs(5);
        match breaker
            .call(lease, || self.post(job, body), |d| d.target_healthy)
            .await
        {
            Ok(delivered) => delivered.outcome,
            Err(wait) => Outcome::Snooze(wait),
        }
    }

    async fn post(&self, job: &Job, body: Vec<u8>) -> Delivered {
        let mut request = self
            .client
            .post(self.target.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("Sluice-Job-Id", &job.id)
            .header("Sluice-Queue", &job.queue)
            .header("Sluice-Attempt", job.attempt.to_string())
            .header("Sluice-Max-Attempts", job.max_attempts.to_string())
            .header("Idempotency-Key", &job.id);
        if let Some(secret) = &self.secret {
            request = request.header("Sluice-Signature", sign(secret, unix_seconds(), &body));
        }
        let response = match request.body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "connection failed"
                } else {
                    "request failed"
                };
                return Delivered {
                    outcome: Outcome::Retry {
                        reason: format!(
                            "POST {}: {what}: {}",
                            self.shown,
                            sluice_engine::redact_url(&e.without_url().to_string())
                        ),
                        after: None,
                    },
                    target_healthy: false,
                };
            }
        };
        let status = response.status();
        if status.is_success() {
            return Delivered {
                outcome: Outcome::Done,
                target_healthy: true,
            };
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let excerpt = excerpt(&String::from_utf8_lossy(&bounded_body(response).await));
        let reason = format!("POST {} answered {status}: {excerpt}", self.shown);
        if status.as_u16() == 429 || status.is_server_error() {
            Delivered {
                outcome: Outcome::Retry {
                    reason,
                    after: retry_after,
                },
                target_healthy: false,
            }
        } else {
            Delivered {
                outcome: Outcome::Bury(reason),
                target_healthy: true,
            }
        }
    }
}

/// The payload is delivered as JSON: any MessagePack value decodes.
impl TypedHandler for HttpDelivery {
    type Args = serde_json::Value;

    async fn handle(&self, job: Job, payload: serde_json::Value) -> Result<Outcome, HandlerError> {
        Ok(self.deliver(&job, payload).await)
    }
}

/// `t=<t>,v1=<hex of HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn sign(secret: &[u8], t: u64, body: &[u8]) -> String {
    // HMAC accepts keys of any length; this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => return String::new(),
    };
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `Retry-After` as seconds or an HTTP date, capped.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    let wait = match value.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = httpdate::parse_http_date(value).ok()?;
            at.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
        }
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The start of a response body, at most [`MAX_ERROR_BODY`] bytes: read
/// chunk by chunk, and the rest left unread.
async fn bounded_body(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(MAX_ERROR_BODY);
    body
}

/// The first characters of a response body, on one line.
fn excerpt(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(EXCERPT_CHARS)
        .collect();
    if text.chars().count() > EXCERPT_CHARS {
        format!("{}...", one_line.trim_end())
    } else {
        one_line.trim_end().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date_and_is_capped() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("999999999"), Some(MAX_RETRY_AFTER));
        let soon = SystemTime::now() + Duration::from_secs(120);
        let parsed = parse_retry_after(&httpdate::fmt_http_date(soon)).expect("date");
        assert!(parsed <= Duration::from_secs(120) && parsed >= Duration::from_secs(100));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn signatures_are_hmac_sha256_over_time_and_body() {
        // Reference value from Python's hmac module.
        assert_eq!(
            sign(b"Jefe", 0, b"what do ya want for nothing?"),
            "t=0,v1=37f471929915ccd2cbbe79feb84ffcff4f2bb25e15fc41c2506687331ae179cc"
        );
    }

    #[test]
    fn a_target_is_shown_without_its_credentials_even_in_the_path() {
        let slack = "https://hooks.slack.com/services/T0001/B0002/SECRETPATH";
        let d = HttpDelivery::new(slack, None, Duration::from_secs(1)).expect("target");
        assert!(!d.shown.contains("SECRETPATH"), "{}", d.shown);
        assert!(
            d.shown.starts_with("https://hooks.slack.com/services/"),
            "{}",
            d.shown
        );
        let discord = "https://discord.com/api/webhooks/123/TOKENPART?wait=true";
        let d = HttpDelivery::new(discord, None, Duration::from_secs(1)).expect("target");
        assert!(!d.shown.contains("TOKENPART"), "{}", d.shown);
        let plain = "http://robot:hunter2@127.0.0.1:9/hook?token=SECRET";
        let d = HttpDelivery::new(plain, None, Duration::from_secs(1)).expect("target");
        assert_eq!(d.shown, "http://robot:***@127.0.0.1:9/hook?token=***");
    }

    #[test]
    fn targets_must_be_http_urls() {
        assert!(check_target("http://127.0.0.1:9/x").is_ok());
        assert!(check_target("https://example.com").is_ok());
        assert!(check_target("ftp://example.com").is_err());
        assert!(check_target("not a url").is_err());
    }

    #[test]
    fn excerpts_are_short_and_on_one_line() {
        assert_eq!(excerpt("bad\nrequest"), "bad request");
        let long = "x".repeat(1000);
        assert_eq!(excerpt(&long).len(), EXCERPT_CHARS + 3);
    }
}
