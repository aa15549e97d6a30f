//! # sluice-bench: benchmarks side by side with peers
//!
//! # Layout
//!
//! Load generators and scenarios (`enqueue`, `e2e`, `latency`, `http`,
//! `retry`, `memory`, `compare`) that measure Sluice against BullMQ and
//! apalis on the same Redis and report ratios.
//!
//! Nothing lives here yet; the scenarios arrive with their issue.
