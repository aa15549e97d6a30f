//! [`App`]: an application plugged into the server. The server serves
//! queues; an application built on them (the trading application is the
//! worked example, in `sluice-trading`) adds its own JSON routes, dashboard
//! pages and a look at every request, without the server knowing what it
//! is. Its dependencies' health reaches the server as [`HealthCheck`]s
//! (in [`ServerSettings`](crate::ServerSettings)), which the binary's alert
//! rules read too.
//!
//! An application's handlers take the server's [`AppState`] and reach their
//! own state through an `axum::Extension` layered on their routes.

use futures::future::BoxFuture;
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// A dashboard menu entry of an application's page.
pub use sluice_dashboard::pages::MenuEntry;

/// What a [`HealthCheck`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthState {
    /// It answers and can serve.
    Up,
    /// It does not answer.
    Down,
    /// It answers but cannot serve yet; the word says why
    /// (`not_migrated`).
    Unready(&'static str),
}

impl HealthState {
    /// As `GET /health/ready` shows it: `up`, `down`, or the reason.
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthState::Up => "up",
            HealthState::Down => "down",
            HealthState::Unready(why) => why,
        }
    }
}

/// One dependency of an application (its database), probed on demand:
/// `GET /health/ready` asks every check, and the binary's
/// `dependency_down` alert rule probes the same checks, so the two never
/// disagree on what a dependency is or how it is reached.
pub trait HealthCheck: Send + Sync + std::fmt::Debug + 'static {
    /// The dependency's name (`postgres`), as readiness and rules name it.
    fn name(&self) -> &str;

    /// Probe it now. The caller bounds how long it may take.
    fn probe(&self) -> BoxFuture<'_, HealthState>;
}

/// One answered request, as an application's request log sees it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// Who made it: the API key's or dashboard operator's name, what a
    /// handler set as [`Actor`](crate::Actor), or `anonymous`.
    pub actor: String,
    /// `GET`, `POST`, …
    pub method: String,
    /// The matched route (`/api/queues/{queue}`), if any.
    pub route: Option<String>,
    /// The path as requested.
    pub path: String,
    /// The status answered.
    pub status: u16,
    /// The client's address (through trusted proxies).
    pub source_ip: Option<String>,
    /// How long the answer took, milliseconds.
    pub latency_ms: f32,
}

/// An application plugged into the server. Every method has a default that
/// adds nothing, so an application implements only what it contributes.
pub trait App: Send + Sync + 'static {
    /// Its JSON routes, with their OpenAPI operations; merged into the
    /// server's behind the same auth, limits and metrics.
    fn routes(&self) -> OpenApiRouter<AppState> {
        OpenApiRouter::new()
    }

    /// Its dashboard pages, merged into the dashboard's (security headers
    /// included); they render with [`crate::dashboard`]'s helpers.
    fn pages(&self) -> axum::Router<AppState> {
        axum::Router::new()
    }

    /// The dashboard menu entries of its pages.
    fn menu(&self) -> Vec<MenuEntry> {
        Vec::new()
    }

    /// Paths that need no API key because they carry their own credential
    /// (a webhook's token) or name something unguessable.
    fn is_public_path(&self, _path: &str) -> bool {
        false
    }

    /// Its own queues: what its jobs carry is trusted (a user, a chart, a
    /// time), so only it enqueues there, never the API.
    fn reserved_queues(&self) -> &'static [&'static str] {
        &[]
    }

    /// Whether it wants [`App::record`] calls (building a record costs a
    /// little on every request).
    fn records_requests(&self) -> bool {
        false
    }

    /// Called after each answered request but the server's own noise
    /// (health checks, metrics scrapes, the dashboard's polling and assets).
    fn record(&self, _request: RequestRecord) {}
}
