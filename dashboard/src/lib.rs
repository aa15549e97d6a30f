//! # sluice-dashboard: the operators' web page
//!
//! Server-rendered pages (askama templates in `templates/`, every value
//! HTML-escaped), one small script and one stylesheet (`static/`, no build
//! step), and the signed login session with its CSRF token. The API crate
//! owns the routes and gathers the data; this crate owns how it looks.
//!
//! # Layout
//!
//! - `session`: the session cookie, its signature and the CSRF token.
//! - `pages`: one struct per page or live fragment, each with its template.
//! - `format`: times, ages and numbers as people read them.
//! - `charts`: the charts' data as the script draws them, with their colours.
//! - `assets`: the script and the stylesheet, and the Content-Security-Policy
//!   that allows them and nothing inline.

pub mod charts;
pub mod format;
pub mod pages;
pub mod session;

/// The static files, embedded in the binary.
pub mod assets {
    /// `GET /dashboard/static/app.js`: live updates, charts, confirmations.
    pub const APP_JS: &str = include_str!("../static/app.js");
    /// `GET /dashboard/static/app.css`.
    pub const APP_CSS: &str = include_str!("../static/app.css");

    /// The policy every dashboard response carries: scripts and styles only
    /// from the dashboard's own files (no inline code, no `eval`), images
    /// also from HTTPS (screenshots in a bucket), no framing.
    pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
        style-src 'self'; img-src 'self' data: https:; connect-src 'self'; \
        object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
}
