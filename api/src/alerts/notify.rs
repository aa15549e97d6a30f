//! Sending notifications. A notification is a job on the internal
//! [`QUEUE`], one per channel, enqueued under an idempotency key made of
//! the rule, the notice's number and the channel, so a channel that is down
//! is retried with backoff, and two processes never send one twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sluice_engine::{Backoff, HandlerError, Job, JobOptions, NewJob, Outcome, TypedHandler};

use super::rules::{ChannelKind, ChannelSection};

/// The internal queue of notifications.
pub const QUEUE: &str = "_alerts";

/// Default request timeout of a channel.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Telegram's Bot API.
const TELEGRAM_API: &str = "https://api.telegram.org";

/// What one notification job carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// The rule.
    pub rule: String,
    /// The rule's kind.
    pub kind: String,
    /// firing, repeat or resolved.
    pub notice: String,
    /// The notice's number (per rule).
    pub seq: u64,
    /// The channel it goes to.
    pub channel: String,
    /// The observed value.
    pub value: String,
    /// The rule's threshold.
    pub threshold: Option<f64>,
    /// Since when the rule fires, ms since the Unix epoch.
    pub since_ms: u64,
    /// The dashboard page, when the dashboard's address is configured.
    pub link: Option<String>,
    /// The message, ready to send.
    pub text: String,
}

impl Notification {
    /// The job, keyed so that every process enqueues it once.
    pub fn job(&self) -> anyhow::Result<NewJob> {
        let options = JobOptions::new()
            .idempotency_key(format!("{}:{}:{}", self.rule, self.seq, self.channel))
            .idempotency_window(Duration::from_secs(7 * 24 * 3600))
            .max_attempts(500)
            .backoff(Backoff {
                base: Duration::from_secs(1),
                factor: 2.0,
                max: Duration::from_secs(30),
                jitter: 0.2,
            });
        NewJob::new(self, options).context("cannot encode a notification")
    }
}

/// Runs notification jobs: sends each to its channel.
#[derive(Debug, Clone)]
pub struct Notifier {
    channels: Arc<HashMap<String, ChannelSection>>,
    http: reqwest::Client,
}

impl Notifier {
    /// A notifier for these channels.
    pub fn new(channels: &[ChannelSection]) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sluice/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self {
            channels: Arc::new(
                channels
                    .iter()
                    .map(|c| (c.name.clone(), c.clone()))
                    .collect(),
            ),
            http,
        })
    }

    /// Send `n` to its channel now.
    pub async fn send(&self, n: &Notification) -> Outcome {
        let Some(channel) = self.channels.get(&n.channel) else {
            return Outcome::Bury(format!("no channel named {:?} is configured", n.channel));
        };
        let timeout = channel
            .timeout_ms
            .map(Duration::from_millis)
            .unwrap_or(DEFAULT_TIMEOUT);
        let request = match channel.kind {
            ChannelKind::Webhook => {
                let body = serde_json::to_vec(&WebhookBody::from(n)).unwrap_or_default();
                let mut r = self
                    .http
                    .post(channel.url.clone().unwrap_or_default())
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .header("Idempotency-Key", format!("{}:{}", n.rule, n.seq));
                if let Some(secret) = &channel.secret {
                    let t = sluice_engine::unix_ms() / 1000;
                    r = r.header(
                        "Sluice-Signature",
                        crate::delivery::sign(secret.as_bytes(), t, &body),
                    );
                }
                r.body(body)
            }
            ChannelKind::Slack => self
                .http
                .post(channel.url.clone().unwrap_or_default())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::json!({ "text": n.text }).to_string()),
            ChannelKind::Telegram => {
                let base = channel.api_url.as_deref().unwrap_or(TELEGRAM_API);
                let token = channel.telegram_token().unwrap_or_default();
                self.http
                    .post(format!(
                        "{}/bot{token}/sendMessage",
                        base.trim_end_matches('/')
                    ))
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(
                        serde_json::json!({
                            "chat_id": channel.chat_id,
                            "text": n.text,
                            "disable_web_page_preview": true,
                        })
                        .to_string(),
                    )
            }
        };
        let what = format!("{} channel {}", kind_name(channel.kind), channel.name);
        match request.timeout(timeout).send().await {
            Err(e) => Outcome::Retry {
                // Without the URL: a Telegram URL carries the bot token.
                reason: format!("{what}: {}", e.without_url()),
                after: None,
            },
            Ok(r) if r.status().is_success() => Outcome::Done,
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                let reason = format!(
                    "{what} answered {status}: {}",
                    text.chars().take(200).collect::<String>()
                );
                if status.as_u16() == 429 || status.is_server_error() {
                    Outcome::Retry {
                        reason,
                        after: None,
                    }
                } else {
                    // A wrong token, chat or URL: no retry will help; the
                    // dead letter keeps the notification for a re-drive.
                    Outcome::Bury(reason)
                }
            }
        }
    }
}

fn kind_name(kind: ChannelKind) -> &'static str {
    match kind {
        ChannelKind::Webhook => "webhook",
        ChannelKind::Telegram => "telegram",
        ChannelKind::Slack => "slack",
    }
}

impl TypedHandler for Notifier {
    type Args = Notification;

    async fn handle(&self, _job: Job, n: Notification) -> Result<Outcome, HandlerError> {
        Ok(self.send(&n).await)
    }
}

/// The generic webhook's JSON body.
#[derive(Debug, Serialize)]
struct WebhookBody<'a> {
    rule: &'a str,
    kind: &'a str,
    notice: &'a str,
    seq: u64,
    value: &'a str,
    threshold: Option<f64>,
    since_ms: u64,
    link: Option<&'a str>,
    text: &'a str,
}

impl<'a> From<&'a Notification> for WebhookBody<'a> {
    fn from(n: &'a Notification) -> Self {
        Self {
            rule: &n.rule,
            kind: &n.kind,
            notice: &n.notice,
            seq: n.seq,
            value: &n.value,
            threshold: n.threshold,
            since_ms: n.since_ms,
            link: n.link.as_deref(),
            text: &n.text,
        }
    }
}
