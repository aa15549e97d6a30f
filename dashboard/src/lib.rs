//! # sluice-dashboard: the operators' web page
//!
//! # Layout
//!
//! Server-rendered templates and static assets (plain JavaScript for live
//! updates and charts) that `sluice-api` serves. No Node build step.
//!
//! Nothing lives here yet; the dashboard arrives with its issue.
