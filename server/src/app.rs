//! [`App`]: an application plugged into the server. The server serves
//! queues; an application built on them (the trading-alert pipeline is the
//! worked example, in `sluice-jobs`) adds its own JSON routes, dashboard
//! pages, readiness checks and a look at every request, without the server
//! knowing what it is.
//!
//! An application's handlers take the server's [`AppState`] and reach their
//! own state through an `axum::Extension` layered on their routes.

use futures::future::BoxFuture;
use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// A dashboard menu entry of an application's page.
pub use sluice_dashboard::pages::MenuEntry;

/// A dependency's state in `GET /health/ready`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// The dependency (`postgres`).
    pub name: String,
    /// `up` when it answers; any other word says why it does not
    /// (`down`, `not_migrated`) and makes the process unready.
    pub state: String,
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

    /// Its dependencies' readiness, asked at every `GET /health/ready`.
    fn readiness(&self) -> BoxFuture<'_, Vec<Check>> {
        Box::pin(async { Vec::new() })
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
