//! The integration tests of this crate, in one test binary: one build
//! and one link for all of them, where each file used to be a binary of
//! its own (issue 40, §4). Each module below is one of those files;
//! run one with a filter, e.g. `cargo test -p sluice-engine --test integration alerting::`.

mod common;

mod alerting;
mod breaker;
mod cluster;
mod durability;
mod faults;
mod fleet;
mod model;
mod partitioned;
mod properties;
mod queue_api;
mod worker;
