//! The trading application's runtime, shared by the API, the workers and
//! the alert rules of a process (database pools, webhook gate, audit sink,
//! screenshot store): the plug-in's [`PluginRuntime`], which adds the
//! handlers of its queues to the process's registry, gives the server its
//! [`TradingApp`](super::TradingApp) and PostgreSQL's health check.
//!
//! Without a `[trading]` section none of it runs: no webhook route, no
//! audit events, no PostgreSQL.

use std::sync::Arc;
use std::time::Duration;

use crate::audit::{AuditHandler, AuditSink};
use crate::backup::{BackupHandler, BackupSettings};
use crate::browser::{BrowserPool, BrowserSettings};
use crate::db::DbConfig;
use crate::ingest::IngestHandler;
use crate::queues;
use crate::retention::{RetentionHandler, RetentionPolicy};
use crate::screenshot::{ScreenshotHandler, ScreenshotSettings};
use crate::spill::SpillConfig;
use crate::storage::ScreenshotStore;
use crate::webhook::WebhookGate;
use anyhow::Context;
use futures::future::BoxFuture;
use sluice_engine::{Batched, BoxedHandler, BreakerConfig, Client, Handlers, Typed};
use sluice_plugin::{App, HandledQueue, HealthCheck, HealthState, PluginRuntime};
use sqlx::PgPool;

use super::config::TradingSection;

/// What the API and the workers of one process share.
#[derive(Debug, Clone)]
pub struct TradingRuntime {
    /// The settings.
    pub section: Arc<TradingSection>,
    /// Rows that jobs settle (full durability).
    pub pool: PgPool,
    /// The webhook's token checks and quota counts.
    pub gate: Arc<WebhookGate>,
    /// Where audit events go.
    pub audit: Option<AuditSink>,
    /// Where screenshots are.
    pub store: ScreenshotStore,
    /// The Redis client.
    pub client: Client,
}

impl TradingRuntime {
    /// Where the handlers' database round trips are recorded: the series
    /// the plug-in declares for `postgres`, which `db_slow` reads.
    fn db_latency(&self) -> sluice_engine::alerting::LatencySeries {
        self.client
            .alerts()
            .latency_series(super::linked::DB_SERIES)
    }

    /// Open the pools (lazily: PostgreSQL may be down) and start the audit
    /// sink.
    pub fn open(section: &TradingSection, client: &Client) -> anyhow::Result<Self> {
        let db = section.db();
        let pool = db.pool()?;
        let fast = DbConfig {
            max_connections: db.max_connections.min(8),
            ..db.clone()
        }
        .fast_commit_pool()?;
        let spill = SpillConfig {
            path: section.audit_spill_file.clone(),
            max_bytes: section.audit_spill_max_mib.saturating_mul(1 << 20),
        };
        let audit = section
            .audit
            .then(|| AuditSink::spawn(client.clone(), spill));
        Ok(Self {
            section: Arc::new(section.clone()),
            pool,
            gate: Arc::new(WebhookGate::new(fast)),
            audit,
            store: section.store()?,
            client: client.clone(),
        })
    }

    /// The built-in handler of a trading queue, its dependency (PostgreSQL
    /// for ingest and audit, the chart host for screenshots) under a
    /// circuit breaker with `breaker` settings, when given. `ingest` and
    /// `audit` take batches.
    pub async fn handler(
        &self,
        queue: &str,
        breaker: Option<BreakerConfig>,
    ) -> anyhow::Result<Option<BoxedHandler>> {
        let s = &self.section;
        let postgres = match breaker {
            Some(config) if matches!(queue, queues::INGEST | queues::AUDIT) => Some(
                self.client
                    .breakers()
                    .get(crate::db::POSTGRES_BREAKER, config)
                    .await?,
            ),
            _ => None,
        };
        Ok(Some(match queue {
            queues::INGEST => {
                let mut h = IngestHandler::new(
                    self.pool.clone(),
                    self.client.queue(queues::SCREENSHOT).await?,
                    self.audit.clone(),
                )
                .with_parse_options(s.parse_options()?)
                .with_latency(self.db_latency());
                if let Some(b) = postgres {
                    h = h.with_breaker(b);
                }
                BoxedHandler::new(Batched(Typed(h)))
            }
            queues::SCREENSHOT => {
                let browsers = BrowserPool::new(BrowserSettings {
                    executable: s.chromium.clone(),
                    tabs: s.screenshot_concurrency,
                    viewport: (s.viewport_width, s.viewport_height),
                    ready_selector: Some(s.ready_selector.clone()).filter(|r| !r.is_empty()),
                });
                let mut h = ScreenshotHandler::new(
                    self.pool.clone(),
                    s.cipher()?,
                    browsers,
                    self.store.clone(),
                    ScreenshotSettings {
                        chart_url: s.chart_url.clone(),
                        timeout: Duration::from_secs(s.screenshot_timeout_secs.max(1)),
                    },
                );
                if let Some(config) = breaker {
                    let name =
                        ScreenshotHandler::breaker_name(&s.chart_url).with_context(|| {
                            format!("trading.chart_url {:?} has no host", s.chart_url)
                        })?;
                    h = h.with_breaker(self.client.breakers().get(&name, config).await?);
                }
                BoxedHandler::new(Typed(h))
            }
            queues::AUDIT => {
                let mut h = AuditHandler::new(self.pool.clone()).with_latency(self.db_latency());
                if let Some(b) = postgres {
                    h = h.with_breaker(b);
                }
                BoxedHandler::new(Batched(Typed(h)))
            }
            queues::RETENTION => BoxedHandler::new(RetentionHandler::new(
                self.pool.clone(),
                self.store.clone(),
                RetentionPolicy {
                    signals: Duration::from_secs(s.signals_retention_days * 86_400),
                    audit_logs: Duration::from_secs(s.audit_retention_days * 86_400),
                    aggregates: Duration::from_secs(s.aggregates_retention_days * 86_400),
                },
            )),
            queues::BACKUP => BoxedHandler::new(BackupHandler::new(
                self.pool.clone(),
                self.client.clone(),
                BackupSettings {
                    dir: s.backups_dir.clone(),
                    keep: s.backups_keep,
                    key: s.backup_key()?,
                },
            )),
            _ => return Ok(None),
        }))
    }
}

impl PluginRuntime for TradingRuntime {
    fn add_handlers<'a>(
        &'a self,
        handlers: &'a mut Handlers,
        queues: &'a [HandledQueue],
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            for queue in queues {
                let handler = self
                    .handler(&queue.name, queue.breaker)
                    .await?
                    .with_context(|| format!("{} is not a queue of trading", queue.name))?;
                handlers.add(&queue.name, handler)?;
            }
            Ok(())
        })
    }

    fn app(&self) -> Option<Arc<dyn App>> {
        Some(Arc::new(super::TradingApp::new(self.clone())))
    }

    fn health_checks(&self) -> Vec<Arc<dyn HealthCheck>> {
        // The one the plug-in declares (`TradingPlugin::dependencies`).
        vec![Arc::new(PostgresCheck {
            pool: self.pool.clone(),
        })]
    }
}

/// PostgreSQL's health: up means migrated too, since an unmigrated
/// database would answer every trading route with a 500.
#[derive(Debug)]
struct PostgresCheck {
    pool: PgPool,
}

impl HealthCheck for PostgresCheck {
    /// As `GET /health/ready` has always named it, and the
    /// `postgres_down` rule looks it up.
    fn name(&self) -> &str {
        super::linked::POSTGRES.name
    }

    fn probe(&self) -> BoxFuture<'_, HealthState> {
        Box::pin(async {
            match crate::db::pending_migrations(&self.pool).await {
                Ok(0) => HealthState::Up,
                Ok(_) => HealthState::Unready("not_migrated"),
                Err(_) => HealthState::Down,
            }
        })
    }
}
