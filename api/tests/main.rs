//! The integration tests of this crate, in one test binary: one build
//! and one link for all of them, where each file used to be a binary of
//! its own (issue 40, §4). Each module below is one of those files;
//! run one with a filter, e.g. `cargo test -p sluice --test integration cli::`.

mod common;

mod cli;
mod closed;
mod dashboard;
mod faults;
mod hostile;
mod http;
mod layers;
mod pipeline;
mod pipeline_jobs;
mod processes;
mod properties;
mod tls;
