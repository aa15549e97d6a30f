//! The integration tests of this crate, in one test binary: one build
//! and one link for all of them, where each file used to be a binary of
//! its own (issue 40, §4). Each module below is one of those files;
//! run one with a filter, e.g. `cargo test -p sluice-trading --test integration audit_log::`.

mod audit_log;
mod browser_env;
mod properties;
mod s3_store;
mod spill;
