//! `compare`: the same workloads with Sluice, BullMQ and apalis on one
//! private Redis, run twice (no persistence, then AOF `everysec`), with the
//! physical limit of that Redis measured in the same run. Prints one table
//! per Redis setting with Sluice's ratio to each peer, and writes every
//! measurement as a JSON line and a chart as SVG.
//!
//! The peers are set up here, not by hand: `npm ci` in `bench/peers/bullmq`
//! (when its `node_modules` is missing) and `cargo build --release` of
//! `bench/peers/apalis` into `target/peers`. A peer that cannot be set up is
//! reported and left out; the others still run.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::workloads::{Measured, Workload};

/// Longest a peer's run may take before it is killed and counted failed.
const PEER_TIMEOUT: Duration = Duration::from_secs(300);

/// Settings of one compare run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Jobs per throughput workload (`e2e c1` runs a quarter of it).
    pub jobs: u64,
    /// Offered rate and duration of the latency workload.
    pub latency_rate: u64,
    pub latency_seconds: u64,
    /// Run the AOF `everysec` round as well as the no-persistence one.
    pub with_aof: bool,
    /// Where the JSON lines and the charts go.
    pub out_dir: PathBuf,
}

/// A system under comparison.
#[derive(Debug, Clone)]
enum System {
    Sluice,
    /// A peer program: the command and its leading arguments.
    Peer {
        name: &'static str,
        program: PathBuf,
        args: Vec<String>,
        cwd: PathBuf,
    },
}

impl System {
    fn name(&self) -> &'static str {
        match self {
            System::Sluice => "sluice",
            System::Peer { name, .. } => name,
        }
    }
}

fn workloads(s: &Settings) -> Vec<(Workload, u64)> {
    vec![
        (Workload::EnqueueBatch, s.jobs),
        (Workload::EnqueueSingle, s.jobs),
        (Workload::E2e { concurrency: 1 }, s.jobs / 4),
        (Workload::E2e { concurrency: 10 }, s.jobs),
        (Workload::E2e { concurrency: 50 }, s.jobs),
        (Workload::E2ePriority, s.jobs),
        // The drain target is stated for a queue of 100,000 jobs.
        (Workload::Drain { concurrency: 50 }, s.jobs * 5),
        (Workload::Retry, s.jobs),
        (
            Workload::Latency {
                rate: s.latency_rate,
                seconds: s.latency_seconds,
            },
            s.latency_rate * s.latency_seconds,
        ),
    ]
}

/// `npm ci` for BullMQ when needed; `None` (with the reason printed) when
/// Node.js or npm is missing or the install fails.
fn setup_bullmq(root: &Path) -> Option<System> {
    let dir = root.join("bench/peers/bullmq");
    if !dir.join("node_modules/bullmq").exists() {
        eprintln!("setting up BullMQ: npm ci in {}", dir.display());
        let ok = std::process::Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            eprintln!("BullMQ left out: `npm ci` failed (are Node.js and npm installed?)");
            return None;
        }
    }
    Some(System::Peer {
        name: "bullmq",
        program: PathBuf::from("node"),
        args: vec!["bench.js".into()],
        cwd: dir,
    })
}

/// `cargo build --release` of the apalis program; `None` when it fails.
fn setup_apalis(root: &Path) -> Option<System> {
    let dir = root.join("bench/peers/apalis");
    let target = root.join("target/peers");
    eprintln!(
        "setting up apalis: cargo build --release in {}",
        dir.display()
    );
    let ok = std::process::Command::new("cargo")
        .args(["build", "--release", "-q", "--target-dir"])
        .arg(&target)
        .current_dir(&dir)
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("apalis left out: its build failed");
        return None;
    }
    Some(System::Peer {
        name: "apalis",
        program: target.join("release/sluice-bench-apalis"),
        args: Vec::new(),
        cwd: dir,
    })
}

/// Does this system run this workload? apalis-redis has no priorities.
fn supports(system: &System, workload: Workload) -> bool {
    match workload {
        Workload::E2ePriority => system.name() != "apalis",
        _ => true,
    }
}

async fn run_peer(system: &System, redis_url: &str, workload: Workload, jobs: u64) -> Measured {
    let System::Peer {
        name,
        program,
        args,
        cwd,
    } = system
    else {
        unreachable!("run_peer is only called with peers")
    };
    let mut failed = Measured {
        system: (*name).into(),
        workload: workload.to_string(),
        jobs,
        ..Measured::default()
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .arg(workload.peer_name())
        .args(["--redis", redis_url, "--jobs", &jobs.to_string()])
        .args(["--concurrency", &workload.concurrency().to_string()])
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Workload::Latency { rate, seconds } = workload {
        cmd.args([
            "--rate",
            &rate.to_string(),
            "--seconds",
            &seconds.to_string(),
        ]);
    }
    let output = match tokio::time::timeout(PEER_TIMEOUT, cmd.output()).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            failed.error = Some(format!("could not start: {e}"));
            return failed;
        }
        Err(_) => {
            failed.error = Some(format!("no result within {PEER_TIMEOUT:?}"));
            return failed;
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    match stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Measured>(l).ok())
    {
        Some(mut m) if output.status.success() => {
            m.workload = workload.to_string();
            m
        }
        _ => {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let reason = stderr
                .lines()
                .rfind(|l| !l.trim().is_empty())
                .unwrap_or("no output");
            failed.error = Some(format!("{}: {reason}", output.status));
            failed
        }
    }
}

async fn flush(redis_url: &str) -> anyhow::Result<()> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await?;
    Ok(())
}

/// One round: every workload on every system against one Redis setting.
struct Round {
    label: &'static str,
    /// XADD + XREADGROUP/XACK: e2e's limit.
    physical: f64,
    /// XREADGROUP/XACK over a filled stream: drain's limit.
    consume_only: f64,
    results: Vec<Measured>,
}

pub async fn run(settings: Settings) -> anyhow::Result<()> {
    let root = crate::workspace_root();
    let mut systems = vec![System::Sluice];
    systems.extend(setup_bullmq(&root));
    systems.extend(setup_apalis(&root));
    std::fs::create_dir_all(&settings.out_dir)?;
    let stamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    let jsonl_path = settings.out_dir.join(format!("compare-{stamp}.jsonl"));
    let mut jsonl = std::fs::File::create(&jsonl_path)
        .with_context(|| format!("create {}", jsonl_path.display()))?;

    let mut rounds = Vec::new();
    let mut settings_list: Vec<(&'static str, Vec<&str>)> =
        vec![("no persistence", vec!["--save", "", "--appendonly", "no"])];
    if settings.with_aof {
        settings_list.push((
            "AOF everysec",
            vec![
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
            ],
        ));
    }
    let work = workloads(&settings);
    let runs: usize = settings_list.len()
        * work
            .iter()
            .map(|(w, _)| systems.iter().filter(|s| supports(s, *w)).count())
            .sum::<usize>();
    let bar = ProgressBar::new(runs as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} runs  {elapsed_precise}  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    for (label, redis_args) in settings_list {
        let dir = std::env::temp_dir().join(format!("sluice-bench-aof-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let (redis, url) = crate::start_redis_with(&redis_args, &dir)?;
        bar.set_message(format!("{label}: physical limit"));
        let physical = crate::physical::measure(&url, settings.jobs * 5).await?;
        let consume_only = crate::physical::measure_consume(&url, settings.jobs * 5).await?;
        let mut results = Vec::new();
        for (workload, jobs) in &work {
            for system in systems.iter().filter(|s| supports(s, *workload)) {
                bar.set_message(format!("{label}: {workload} on {}", system.name()));
                flush(&url).await?;
                let m = match system {
                    System::Sluice => crate::workloads::run_sluice(&url, *workload, *jobs).await,
                    peer => run_peer(peer, &url, *workload, *jobs).await,
                };
                let mut line = serde_json::to_value(&m)?;
                line["redis"] = label.into();
                line["jobs_per_s"] = m.per_second().into();
                writeln!(jsonl, "{line}")?;
                if let Some(e) = &m.error {
                    bar.println(format!("  {label}: {} {workload} failed: {e}", m.system));
                }
                results.push(m);
                bar.inc(1);
            }
        }
        writeln!(
            jsonl,
            "{}",
            serde_json::json!({"system": "physical limit", "redis": label, "workload": "XADD + XREADGROUP/XACK pipelined", "jobs_per_s": physical})
        )?;
        writeln!(
            jsonl,
            "{}",
            serde_json::json!({"system": "physical limit", "redis": label, "workload": "XREADGROUP/XACK pipelined over a filled stream", "jobs_per_s": consume_only})
        )?;
        drop(redis);
        let _ = std::fs::remove_dir_all(&dir);
        rounds.push(Round {
            label,
            physical,
            consume_only,
            results,
        });
    }
    bar.finish_and_clear();

    let names: Vec<&str> = systems.iter().map(System::name).collect();
    for round in &rounds {
        print_table(round, &names, &work);
        let svg = settings.out_dir.join(format!(
            "compare-{}.svg",
            round.label.replace(' ', "-").to_lowercase()
        ));
        crate::chart::draw(&svg, round.label, &names, &work, &round.results)?;
        println!("  chart: {}", svg.display());
    }
    println!("all measurements: {}", jsonl_path.display());
    print_how(&rounds);
    Ok(())
}

fn find<'a>(results: &'a [Measured], system: &str, workload: Workload) -> Option<&'a Measured> {
    let name = workload.to_string();
    results
        .iter()
        .find(|m| m.system == system && m.workload == name)
}

fn print_table(round: &Round, names: &[&str], work: &[(Workload, u64)]) {
    println!();
    println!(
        "Redis {} (private redis-server, {}): physical limit {:.0} jobs/s, consume-only {:.0} jobs/s",
        round.label,
        crate::redis_version(),
        round.physical,
        round.consume_only
    );
    let mut header = format!("{:<20}", "workload");
    for n in names {
        header.push_str(&format!(" {n:>12}"));
    }
    for n in names.iter().skip(1) {
        header.push_str(&format!(" {:>14}", format!("sluice/{n}")));
    }
    println!("{header}");
    for (workload, _) in work {
        let mut row = format!("{:<20}", workload.to_string());
        let is_latency = matches!(workload, Workload::Latency { .. });
        let figure = |m: Option<&Measured>| -> Option<f64> {
            let m = m?;
            if m.error.is_some() {
                return None;
            }
            if is_latency { m.p99_ms } else { m.per_second() }
        };
        let sluice = figure(find(&round.results, "sluice", *workload));
        for n in names {
            let m = find(&round.results, n, *workload);
            let cell = match (m, figure(m)) {
                (None, _) => "n/a".to_owned(),
                (Some(_), None) => "failed".to_owned(),
                (Some(_), Some(v)) if is_latency => format!("p99 {v:.2}ms"),
                (Some(_), Some(v)) => format!("{v:.0}/s"),
            };
            row.push_str(&format!(" {cell:>12}"));
        }
        for n in names.iter().skip(1) {
            let peer = figure(find(&round.results, n, *workload));
            // Latency: how many times lower Sluice's p99 is.
            let ratio = match (sluice, peer) {
                (Some(s), Some(p)) if is_latency && s > 0.0 => format!("{:.1}x lower", p / s),
                (Some(s), Some(p)) if p > 0.0 => format!("{:.2}x", s / p),
                _ => "-".to_owned(),
            };
            row.push_str(&format!(" {ratio:>14}"));
        }
        println!("{row}");
    }
    if let Some(e2e) = find(&round.results, "sluice", Workload::E2e { concurrency: 50 })
        .and_then(Measured::per_second)
    {
        println!(
            "sluice e2e c50 = {:.0}% of the physical limit",
            100.0 * e2e / round.physical
        );
    }
    if let Some(drain) = find(
        &round.results,
        "sluice",
        Workload::Drain { concurrency: 50 },
    )
    .and_then(Measured::per_second)
    {
        println!(
            "sluice drain c50 = {:.0}% of the consume-only limit",
            100.0 * drain / round.consume_only
        );
    }
    if let Some(lat) = find(
        &round.results,
        "sluice",
        work.iter()
            .map(|(w, _)| *w)
            .find(|w| matches!(w, Workload::Latency { .. }))
            .unwrap_or(Workload::EnqueueBatch),
    ) && let (Some(p50), Some(p99), Some(p999)) = (lat.p50_ms, lat.p99_ms, lat.p999_ms)
    {
        println!("sluice latency: p50 {p50:.2} ms, p99 {p99:.2} ms, p99.9 {p999:.2} ms");
    }
}

/// How each system was driven, once per system and workload.
fn print_how(rounds: &[Round]) {
    let Some(round) = rounds.first() else { return };
    println!("how each system was used:");
    for m in &round.results {
        if !m.how.is_empty() {
            println!("  {:<7} {:<16} {}", m.system, m.workload, m.how);
        }
    }
}
