//! The trading application as a plug-in of Sluice: the worked
//! example of building on the engine and the server.
//!
//! - `plugin`: [`TradingPlugin`], what the `sluice` binary links (a
//!   [`sluice_plugin::Plugin`]): its name, its section, its commands, and
//!   the configured plug-in (its queues, schedules and start-up work);
//! - `config`: its section (`[trading]`, formerly `[pipeline]`) and the
//!   environment variables that win over it;
//! - `runtime`: what the API, the workers and the alert rules of a process
//!   share, the handlers of its queues and PostgreSQL's health check;
//! - [`TradingApp`], a [`sluice_server::App`]: its routes (`routes`), its
//!   dashboard page (`signals`) and the audit log of every request;
//! - `commands`: its subcommands (`sluice trading migrate`, `users`,
//!   `backup`, `restore`);
//! - `local`: the start-up work of `sluice up` (the machine's PostgreSQL,
//!   the migrations).

pub mod commands;
pub mod config;
mod linked;
mod local;
mod routes;
pub mod runtime;
mod signals;

pub use commands::{TradingCommand, UsersCommand};
pub use config::{DEFAULT_DATABASE_URL, S3Section, TradingSchedule, TradingSection};
pub use linked::TradingPlugin;
pub use runtime::TradingRuntime;

use crate::audit::AuditEvent;
use axum::http::StatusCode;
use sluice_server::{ApiError, App, AppState, MenuEntry, RequestRecord};
use utoipa_axum::router::OpenApiRouter;

/// The trading application on its open [`TradingRuntime`].
#[derive(Debug, Clone)]
pub struct TradingApp {
    runtime: TradingRuntime,
    anonymous: std::sync::Arc<AnonymousRefusals>,
}

impl TradingApp {
    /// The application on `runtime`.
    pub fn new(runtime: TradingRuntime) -> Self {
        Self {
            runtime,
            anonymous: std::sync::Arc::new(AnonymousRefusals::default()),
        }
    }
}

/// Anonymous refusals audited one by one per minute (per process); the
/// rest of the minute's are counted in one summary event. A stranger's
/// requests then cannot crowd real events out of the audit buffer.
pub const ANONYMOUS_REFUSALS_PER_MINUTE: u64 = 60;

/// The current minute's anonymous refusals.
#[derive(Debug, Default)]
struct AnonymousRefusals {
    minute: std::sync::Mutex<(Option<std::time::Instant>, u64)>,
}

impl AnonymousRefusals {
    /// Whether to audit one more refusal; and, when a minute has just
    /// ended with refusals left out, how many.
    fn admit(&self) -> (bool, Option<u64>) {
        let Ok(mut minute) = self.minute.lock() else {
            return (false, None);
        };
        let (started, seen) = &mut *minute;
        let mut left_out = None;
        if started.is_none_or(|s| s.elapsed() >= std::time::Duration::from_secs(60)) {
            left_out = seen
                .checked_sub(ANONYMOUS_REFUSALS_PER_MINUTE)
                .filter(|n| *n > 0);
            *started = Some(std::time::Instant::now());
            *seen = 0;
        }
        *seen += 1;
        (*seen <= ANONYMOUS_REFUSALS_PER_MINUTE, left_out)
    }
}

impl App for TradingApp {
    fn routes(&self) -> OpenApiRouter<AppState> {
        routes::routes(self.runtime.clone())
    }

    fn pages(&self) -> axum::Router<AppState> {
        use axum::routing::get;
        axum::Router::new()
            .route("/dashboard/signals", get(signals::signals))
            .route("/dashboard/live/signals", get(signals::signals_live))
            .layer(axum::Extension(self.runtime.clone()))
    }

    fn menu(&self) -> Vec<MenuEntry> {
        vec![MenuEntry {
            label: "Signals",
            href: "/dashboard/signals",
            section: "signals",
        }]
    }

    /// Webhooks carry their token in the path; screenshots are named by an
    /// unguessable content hash.
    /// The application's queues: an ingest job names its user, a screenshot
    /// job opens a user's TradingView session, an audit job is a row of
    /// the audit log. Only the webhook, the schedules and the workers
    /// enqueue there.
    fn reserved_queues(&self) -> &'static [&'static str] {
        &crate::queues::ALL
    }

    fn is_public_path(&self, path: &str) -> bool {
        path.starts_with("/webhook/") || path.starts_with("/screenshots/")
    }

    fn records_requests(&self) -> bool {
        self.runtime.audit.is_some()
    }

    /// Every request becomes an audit event (who, what, when, outcome,
    /// source address, latency) on the `audit` queue. Screenshot downloads
    /// are not audited: they are noise, not actions.
    fn record(&self, request: RequestRecord) {
        let Some(sink) = &self.runtime.audit else {
            return;
        };
        if request.path.starts_with("/screenshots/") {
            return;
        }
        let outcome = match request.status {
            500.. => "error",
            400..500 => "refused",
            _ => "ok",
        };
        if outcome == "refused" && request.actor == "anonymous" {
            let (audit, left_out) = self.anonymous.admit();
            if let Some(n) = left_out {
                let mut summary = AuditEvent::now("anonymous", "refusals.summarised", "refused");
                summary.detail = Some(format!(
                    "{n} more anonymous requests were refused in the last minute (past {ANONYMOUS_REFUSALS_PER_MINUTE} audited one by one)"
                ));
                sink.record(summary);
            }
            if !audit {
                return;
            }
        }
        // A webhook's path holds its token: never write it down.
        let target = if request.path.starts_with("/webhook/") {
            "/webhook/u/…".to_owned()
        } else {
            request.path.chars().take(300).collect()
        };
        let mut event = AuditEvent::now(
            request.actor,
            format!(
                "{} {}",
                request.method,
                request.route.as_deref().unwrap_or("(no route)")
            ),
            outcome,
        );
        event.target = Some(target);
        event.status = Some(request.status);
        event.source_ip = request.source_ip;
        event.latency_ms = Some(request.latency_ms);
        sink.record(event);
    }
}

/// The API's answer to the application's errors: PostgreSQL down is a 503
/// to retry, a refused input a 422.
impl From<crate::Error> for ApiError {
    fn from(e: crate::Error) -> Self {
        use crate::Error as E;
        match e {
            E::Queue(e) => e.into(),
            E::Invalid(m) => ApiError::invalid("invalid", m),
            E::Db(ref db) if crate::db::is_unavailable(db) => {
                tracing::warn!(error = %e, "database unavailable");
                ApiError {
                    retry_after: Some(std::time::Duration::from_secs(1)),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "database_unavailable",
                        "PostgreSQL is unreachable; nothing was changed, try again",
                    )
                }
            }
            e => {
                tracing::error!(error = %e, "internal error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error; see the server log",
                )
            }
        }
    }
}
