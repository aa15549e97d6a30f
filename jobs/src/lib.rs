//! # sluice-jobs: the built-in job handlers
//!
//! # Layout
//!
//! Handlers of the trading-alert pipeline, built on `sluice-engine`'s public
//! API only, with their PostgreSQL schema:
//!
//! - `ingest`: parses webhook alerts into signals, in batches.
//! - `screenshot`: captures chart screenshots in headless Chromium.
//! - `audit`: writes audit events to PostgreSQL with bulk inserts.
//! - `retention`: deletes rows and files past their age.
//! - `backup`: dumps and restores the tables and the queue state.
//!
//! Nothing lives here yet; the handlers arrive with their issue.
