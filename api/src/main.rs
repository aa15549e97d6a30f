//! The `sluice` binary: the composition root. It names the plug-ins it
//! links, here and only here (`tests/layers.rs` checks that no other file
//! of the binary names an application), and hands them to the library's
//! entry point, which does the rest.

use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: a worker allocates and frees a few
/// small buffers per job (replies, payloads, tasks), and with glibc that
/// was a fifth of a worker's CPU (`bench/README.md`, 2026-12-05).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The plug-ins this binary links.
fn linked_plugins() -> Vec<Box<dyn sluice_plugin::Plugin>> {
    vec![Box::new(sluice_trading::plugin::TradingPlugin)]
}

#[tokio::main]
async fn main() -> ExitCode {
    sluice::entry::main(linked_plugins()).await
}
