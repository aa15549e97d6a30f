//! # sluice-api: the HTTP API
//!
//! # Layout
//!
//! The axum service: webhooks, enqueue, job lookup, queue stats, dead-letter
//! management, health, Prometheus metrics and the OpenAPI document. It renders
//! the operators' dashboard from `sluice-dashboard`. The `sluice` binary will
//! live here too (CLI, config, wiring), kept thin.
//!
//! Nothing lives here yet; the API arrives with its issue.
