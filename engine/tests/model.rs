//! The model-based checker (issue 39 §2): random sequences of operations
//! from several producers, workers and operators, some under faults at
//! their Redis calls, run on the engine (through a fault proxy, on a
//! private `redis-server`) and on a reference model of one queue side by
//! side, with every invariant checked after every step. A violation is
//! shrunk by proptest to a minimal sequence; each sequence that found a
//! defect is a named test in `model/regressions.rs`.
//!
//! - `model/ops.rs`: the operations and faults, and their generators;
//! - `model/reference.rs`: the model;
//! - `model/world.rs`: the engine side (servers, proxy, handles);
//! - `model/runner.rs`: one case on both sides, and the invariants.
//!
//! `SLUICE_MODEL_CASES` (default 120) and `SLUICE_MODEL_STEPS` (longest
//! case, default 40) run it longer; `SLUICE_MODEL_SEED` replays a run;
//! `SLUICE_MODEL_DEFECTS` limits the steps that reach the defects of
//! issue 39, all fixed and all on by default (see `runner::Defects`). The
//! run prints one summary line.

use std::time::Instant;

use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

pub mod ops;
pub mod reference;
pub mod regressions;
pub mod runner;
pub mod world;

use self::runner::{Defects, Tally, run_case};
use self::world::World;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn the_engine_agrees_with_the_model() {
    let cases = env_number("SLUICE_MODEL_CASES", 120) as u32;
    let max_steps = env_number("SLUICE_MODEL_STEPS", 40) as usize;
    let seed = env_number("SLUICE_MODEL_SEED", rand::random());
    let defects = Defects::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let world = runtime.block_on(World::start());
    let config = Config {
        cases,
        // Each case takes real time on a real Redis: shrink within bounds.
        max_shrink_iters: env_number("SLUICE_MODEL_SHRINK_ITERS", 400) as u32,
        failure_persistence: None,
        ..Config::default()
    };
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes(seed));
    let mut runner = TestRunner::new_with_rng(config, rng);
    let total = std::sync::Mutex::new(Tally::default());
    let started = Instant::now();
    let result = runner.run(&ops::case(max_steps), |case| {
        let tally = runtime
            .block_on(run_case(&world, &case, defects))
            .map_err(TestCaseError::fail)?;
        total.lock().expect("tally").add(&tally);
        Ok(())
    });
    let t = *total.lock().expect("tally");
    let violations = u64::from(result.is_err());
    println!(
        "model: seed={seed} sequences={} steps={} skipped={} jobs={} faults={} lookups={} violations={violations} defects={defects:?} seconds={}",
        t.cases,
        t.steps,
        t.skipped,
        t.jobs,
        t.faults,
        t.lookups,
        started.elapsed().as_secs()
    );
    match result {
        Ok(()) => {}
        Err(TestError::Fail(reason, minimal)) => {
            let steps: Vec<String> = minimal.steps.iter().map(|s| format!("  {s:?}")).collect();
            panic!(
                "violation: {reason}\nminimal sequence (keep_completed: {}, {} steps):\n{}",
                minimal.keep_completed,
                steps.len(),
                steps.join("\n")
            )
        }
        Err(e) => panic!("{e}"),
    }
}

fn seed_bytes(seed: u64) -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(seed.wrapping_add(i as u64)).to_le_bytes());
    }
    bytes
}
