//! # sluice-bench: benchmarks of Sluice
//!
//! `cargo run -p sluice-bench --release -- <scenario>`. Every scenario
//! starts its own `redis-server` on a free loopback port (no persistence)
//! and the release `sluice` binary (built first if missing), so runs do not
//! disturb, or get disturbed by, the shared Redis.
//!
//! Scenarios:
//! - `compare`: the workloads below with Sluice, BullMQ and apalis on one
//!   private Redis (no persistence, then AOF `everysec`), plus the physical
//!   limit of that Redis; one table of ratios, JSON lines, SVG charts.
//! - `enqueue`, `e2e`, `e2e-priority`, `latency`, `retry`: one workload
//!   with Sluice alone (see `workloads.rs`).
//! - `http`: single-job `POST /api/queues/{q}/jobs` at a steady offered
//!   rate from an open-loop generator (latency counted from each request's
//!   scheduled time, so a stall is not hidden by the generator waiting);
//!   p50/p90/p99/p99.9/max, errors, achieved rate, and a check that every
//!   acknowledged job is in Redis.
//! - `audit`: audit events from enqueue to rows in PostgreSQL through the
//!   audit handler's bulk writes, against one `INSERT` per row.
//! - `memory`: RSS of an idle `sluice serve` and an idle `sluice work`, and
//!   Redis memory per waiting job.
//! - `shards`: a partitioned queue end to end on Redis Cluster with 1 and 3
//!   shards.
//! - `soak`: the fault-injection suite with long fault phases.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tokio::sync::Mutex;

/// The allocator the `sluice` binary runs with (see its `main.rs`), so the
/// in-process workers of the bench run as Sluice's own processes do.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod audit;
mod chart;
mod compare;
mod physical;
mod shards;
mod workloads;

use workloads::{Measured, Workload};

#[derive(Debug, Parser)]
#[command(about = "Benchmarks of Sluice")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Enqueue over HTTP at a steady rate.
    Http {
        /// Requests per second offered.
        #[arg(long, default_value_t = 5000)]
        rate: u64,
        /// Seconds measured (after a 2 s warm-up at the same rate).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// The TradingView webhook (`POST /webhook/u/{token}`) at a steady
    /// rate, spread over 100 users, against the local PostgreSQL.
    Webhook {
        /// Requests per second offered.
        #[arg(long, default_value_t = 2000)]
        rate: u64,
        /// Seconds measured (after a 2 s warm-up at the same rate).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// PostgreSQL URL.
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        database_url: String,
    },
    /// Audit events from enqueue to rows in PostgreSQL (bulk `UNNEST`
    /// writes by the audit handler), against the same rows written one
    /// `INSERT` at a time.
    Audit {
        /// Events enqueued and written.
        #[arg(long, default_value_t = 500_000)]
        events: u64,
        /// Rows written one `INSERT` at a time for the comparison.
        #[arg(long, default_value_t = 50_000)]
        single_rows: u64,
        /// PostgreSQL URL.
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        database_url: String,
    },
    /// RSS of idle API and worker processes; Redis memory per waiting job.
    Memory {
        /// Jobs left waiting to measure Redis memory per job.
        #[arg(long, default_value_t = 100_000)]
        jobs: u64,
    },
    /// Sluice, BullMQ and apalis side by side on one private Redis.
    Compare {
        /// Jobs per throughput workload (`e2e c1` runs a quarter).
        #[arg(long, default_value_t = 20_000)]
        jobs: u64,
        /// Offered rate of the latency workload, jobs/s.
        #[arg(long, default_value_t = 10_000)]
        latency_rate: u64,
        /// Seconds of the latency workload.
        #[arg(long, default_value_t = 5)]
        latency_seconds: u64,
        /// Skip the second round on a Redis with AOF `everysec`.
        #[arg(long)]
        no_aof: bool,
        /// Where the JSON lines and SVG charts go.
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
    },
    /// Enqueue in batches of 1,000 and one job per call (50 producers).
    Enqueue {
        #[arg(long, default_value_t = 50_000)]
        jobs: u64,
    },
    /// Enqueue and drain no-op jobs at concurrency 1, 10 and 50.
    E2e {
        #[arg(long, default_value_t = 50_000)]
        jobs: u64,
        /// Concurrencies to run at, one run each (to profile one alone).
        #[arg(long, value_delimiter = ',', default_values_t = [1, 10, 50])]
        concurrency: Vec<usize>,
    },
    /// `e2e` at concurrency 50 with random priorities over 4 levels.
    E2ePriority {
        #[arg(long, default_value_t = 50_000)]
        jobs: u64,
    },
    /// A queue filled with `jobs` first, then drained at concurrency 1, 10
    /// and 50 (only the draining is timed).
    Drain {
        #[arg(long, default_value_t = 100_000)]
        jobs: u64,
        /// Concurrencies to drain at, one run each (to profile one alone).
        #[arg(long, value_delimiter = ',', default_values_t = [1, 10, 50])]
        concurrency: Vec<usize>,
    },
    /// Time from enqueue to handler start at a steady offered rate.
    Latency {
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// `e2e` at concurrency 50 where one job in 10 fails once, against the
    /// same without failures.
    Retry {
        #[arg(long, default_value_t = 50_000)]
        jobs: u64,
    },
    /// A partitioned queue end to end on Redis Cluster with 1 and 3 shards.
    Shards {
        #[arg(long, default_value_t = 100_000)]
        jobs: u64,
        #[arg(long, default_value_t = 6)]
        partitions: u16,
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
        /// Run every node under valgrind's callgrind and report Redis
        /// instructions per job on each shard instead of seconds (the
        /// capacity table of docs/operations.md; needs valgrind).
        #[arg(long)]
        callgrind: bool,
    },
    /// The fault-injection suites (the engine's ambiguous-failure
    /// scenarios, then the process-kill scenarios), with longer runs,
    /// repeated until `--minutes` are over.
    Soak {
        /// Seconds of faults per process-kill scenario.
        #[arg(long, default_value_t = 120)]
        seconds: u64,
        /// Keep running both suites, round after round, this long.
        #[arg(long)]
        minutes: Option<u64>,
        /// Jobs per engine scenario.
        #[arg(long, default_value_t = 5000)]
        jobs: u64,
    },
}

/// What one request of a load run sends: URL, body, and the status that
/// counts as success.
type MakeRequest = Arc<dyn Fn(u64) -> (String, String) + Send + Sync>;

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A child process killed when dropped.
pub(crate) struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn start_redis() -> anyhow::Result<(Proc, String)> {
    // For profiling (INFO commandstats, SLOWLOG): an existing Redis the
    // scenario then shares with whatever else uses it.
    if let Ok(url) = std::env::var("SLUICE_BENCH_REDIS_URL") {
        let stand_in = Command::new("sleep").arg("infinity").spawn()?;
        return Ok((Proc(stand_in), url));
    }
    start_redis_with(&["--save", "", "--appendonly", "no"], &std::env::temp_dir())
}

/// A private `redis-server` with these settings, its files in `dir`.
pub(crate) fn start_redis_with(args: &[&str], dir: &Path) -> anyhow::Result<(Proc, String)> {
    let port = free_port()?;
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .arg("--dir")
        .arg(dir)
        .args(args)
        .stdout(Stdio::null())
        .spawn()
        .context("start redis-server")?;
    let url = format!("redis://127.0.0.1:{port}/");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok((Proc(child), url));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("redis-server did not start")
}

/// `redis-server --version`, e.g. "Redis 7.0.15".
pub(crate) fn redis_version() -> String {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.split_whitespace()
                .find_map(|w| w.strip_prefix("v=").map(|v| format!("Redis {v}")))
        })
        .unwrap_or_else(|| "Redis, version unknown".into())
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn sluice_binary() -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let status = Command::new("cargo")
        .args([
            "build",
            "--release",
            "-q",
            "-p",
            "sluice",
            "--bin",
            "sluice",
        ])
        .current_dir(&root)
        .status()
        .context("cargo build sluice")?;
    if !status.success() {
        bail!("building sluice failed");
    }
    Ok(root.join("target/release/sluice"))
}

fn start_sluice(bin: &Path, config: &Path, args: &[&str]) -> anyhow::Result<Proc> {
    let child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("SLUICE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("start sluice")?;
    Ok(Proc(child))
}

/// `sluice serve` on a free port, once ready; the process and its base URL.
async fn start_api(bin: &Path, config: &Path) -> anyhow::Result<(Proc, String)> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let api = start_sluice(bin, config, &["serve", "--listen", &addr])?;
    let base = format!("http://{addr}");
    wait_ready(&base).await?;
    Ok((api, base))
}

async fn wait_ready(base: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for _ in 0..200 {
        if let Ok(r) = client.get(format!("{base}/health/ready")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("sluice did not become ready")
}

fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    proc_status_kib(pid, "VmRSS")
}

/// One `kB` line of `/proc/<pid>/status`: `VmRSS` is every resident page,
/// `RssAnon` the process's own memory (heap, stacks) without the pages of
/// the binary and libraries, which are shared and can be dropped.
fn proc_status_kib(pid: u32, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

fn write_config(url: &str, body: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("sluice-bench-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        format!("redis_url = {url:?}\nprefix = \"bench\"\n{body}"),
    )?;
    Ok(path)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One line of percentiles of sorted latencies.
fn print_latencies(lat: &[Duration]) {
    println!(
        "  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
        ms(percentile(lat, 0.5)),
        ms(percentile(lat, 0.9)),
        ms(percentile(lat, 0.99)),
        ms(percentile(lat, 0.999)),
        ms(lat.last().copied().unwrap_or_default())
    );
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// Offer `rate` requests per second for `dur`; latencies from scheduled
/// times, and the number of errors.
async fn offer(
    rate: u64,
    dur: Duration,
    make: MakeRequest,
    expect: u16,
) -> (Vec<Duration>, u64, Duration) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()
        .unwrap_or_default();
    let lat = Arc::new(Mutex::new(Vec::with_capacity(
        (rate * dur.as_secs()) as usize,
    )));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let total = rate * dur.as_secs();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let scheduled = start + Duration::from_nanos(i * 1_000_000_000 / rate);
        tokio::time::sleep_until(scheduled.into()).await;
        let (client, lat, errors) = (client.clone(), lat.clone(), errors.clone());
        let (url, body) = make(i);
        tasks.spawn(async move {
            let ok = client
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .map(|r| r.status().as_u16() == expect)
                .unwrap_or(false);
            let took = scheduled.elapsed();
            if ok {
                lat.lock().await.push(took);
            } else {
                errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    let mut lat = std::mem::take(&mut *lat.lock().await);
    lat.sort_unstable();
    (
        lat,
        errors.load(std::sync::atomic::Ordering::Relaxed),
        elapsed,
    )
}

async fn http(rate: u64, seconds: u64) -> anyhow::Result<()> {
    let (_redis, url) = start_redis()?;
    let bin = sluice_binary()?;
    let config = write_config(&url, "")?;
    let (api, base) = start_api(&bin, &config).await?;
    let url = format!("{base}/api/queues/bench/jobs");
    let make: MakeRequest =
        Arc::new(move |i| (url.clone(), format!(r#"{{"payload":{{"n":{i}}}}}"#)));
    offer(rate, Duration::from_secs(2), make.clone(), 201).await;
    let (lat, errors, elapsed) = offer(rate, Duration::from_secs(seconds), make, 201).await;
    let stats: serde_json::Value = serde_json::from_str(
        &reqwest::get(format!("{base}/api/queues/bench"))
            .await?
            .text()
            .await?,
    )?;
    let acked = lat.len() as u64;
    println!(
        "scenario http: POST /api/queues/bench/jobs, offered {rate}/s for {seconds} s (open loop, after 2 s warm-up)"
    );
    print_latencies(&lat);
    println!(
        "  achieved {:.0} req/s, errors {errors}, jobs in redis {} (acknowledged {} incl. warm-up)",
        acked as f64 / elapsed.as_secs_f64(),
        stats["enqueued_total"],
        acked + 2 * rate
    );
    println!("  API RSS after load: {} KiB", rss_kib(api.0.id())?);
    let _ = std::fs::remove_file(config);
    Ok(())
}

async fn webhook(rate: u64, seconds: u64, database_url: &str) -> anyhow::Result<()> {
    let (_redis, url) = start_redis()?;
    let bin = sluice_binary()?;
    let schema = format!("bench_{}", std::process::id());
    let config = write_config(
        &url,
        &format!(
            "[trading]\ndatabase_url = {database_url:?}\ndatabase_schema = {schema:?}\nbackup_cron = \"\"\nretention_cron = \"\"\n"
        ),
    )?;
    let run = |args: &[&str]| -> anyhow::Result<serde_json::Value> {
        let out = Command::new(&bin)
            .arg("--config")
            .arg(&config)
            .arg("--json")
            .args(args)
            .output()?;
        if !out.status.success() {
            bail!("sluice {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    };
    run(&["trading", "migrate"])?;
    let mut tokens = Vec::new();
    for _ in 0..100 {
        let user = run(&[
            "trading",
            "users",
            "add",
            "--plan",
            "premium",
            "--quota",
            "100000000",
        ])?;
        tokens.push(user["token"].as_str().unwrap_or_default().to_owned());
    }
    let (api, base) = start_api(&bin, &config).await?;
    let tokens = Arc::new(tokens);
    let make: MakeRequest = Arc::new(move |i| {
        let token = &tokens[(i % tokens.len() as u64) as usize];
        (
            format!("{base}/webhook/u/{token}?chart=bench"),
            format!("🪙 Ticker: BINANCE:BTCUSDT\n💰 Price: ${i}.50\n📊 Signal: Bullish divergence"),
        )
    });
    offer(rate, Duration::from_secs(2), make.clone(), 202).await;
    let (lat, errors, elapsed) = offer(rate, Duration::from_secs(seconds), make, 202).await;
    println!(
        "scenario webhook: POST /webhook/u/{{token}} (100 premium users), offered {rate}/s for {seconds} s (open loop, after 2 s warm-up)"
    );
    print_latencies(&lat);
    println!(
        "  achieved {:.0} req/s, errors {errors}; API RSS after load: {} KiB",
        lat.len() as f64 / elapsed.as_secs_f64(),
        rss_kib(api.0.id())?
    );
    drop(api);
    let _ = Command::new("psql")
        .arg(database_url)
        .arg("-qc")
        .arg(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .output();
    let _ = std::fs::remove_file(config);
    Ok(())
}

async fn memory(jobs: u64) -> anyhow::Result<()> {
    let (_redis, url) = start_redis()?;
    let bin = sluice_binary()?;
    let config = write_config(
        &url,
        "[[queues]]\nname = \"idle\"\nconcurrency = 10\nurl = \"http://127.0.0.1:9/hook\"\n",
    )?;
    let (api, _base) = start_api(&bin, &config).await?;
    let worker = start_sluice(&bin, &config, &["work"])?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    println!("scenario memory: idle processes after 3 s");
    let processes = [
        ("serve", api.0.id(), ""),
        ("work", worker.0.id(), " (one queue, concurrency 10)"),
    ];
    for (name, pid, what) in processes {
        println!(
            "  sluice {name:<5} RSS: {} KiB, of which its own memory (RssAnon) {} KiB{what}",
            rss_kib(pid)?,
            proc_status_kib(pid, "RssAnon")?,
        );
    }
    let _ = std::fs::remove_file(config);

    // Redis memory per waiting job: small payloads, default options.
    let client = redis::Client::open(url.as_str())?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let used = |info: String| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_default()
    };
    let before = used(
        redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await?,
    );
    let m = workloads::run_sluice(&url, Workload::EnqueueBatch, jobs).await;
    if let Some(e) = m.error {
        bail!("enqueue failed: {e}");
    }
    let after = used(
        redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut conn)
            .await?,
    );
    println!(
        "  Redis used_memory per waiting job: {} bytes ({jobs} jobs, payload {{n, t}} as MessagePack)",
        after.saturating_sub(before) / jobs.max(1)
    );
    Ok(())
}

/// Run Sluice-only workloads on a private Redis and print each.
async fn sluice_only(runs: &[(Workload, u64)]) -> anyhow::Result<()> {
    let (_redis, url) = start_redis()?;
    for (workload, jobs) in runs {
        let m = workloads::run_sluice(&url, *workload, *jobs).await;
        print_measured(&m);
        let client = redis::Client::open(url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await?;
    }
    Ok(())
}

fn print_measured(m: &Measured) {
    match (&m.error, m.per_second()) {
        (Some(e), _) => println!("{:<18} failed: {e}", m.workload),
        (None, Some(rate)) => {
            print!(
                "{:<18} {rate:>9.0} jobs/s  ({} jobs in {:.2} s; {})",
                m.workload, m.jobs, m.seconds, m.how
            );
            if let (Some(p50), Some(p99), Some(p999)) = (m.p50_ms, m.p99_ms, m.p999_ms) {
                print!("  p50 {p50:.3} ms  p99 {p99:.3} ms  p99.9 {p999:.3} ms");
            }
            println!();
        }
        (None, None) => println!("{:<18} no figure", m.workload),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().scenario {
        Scenario::Http { rate, seconds } => http(rate, seconds).await,
        Scenario::Webhook {
            rate,
            seconds,
            database_url,
        } => webhook(rate, seconds, &database_url).await,
        Scenario::Audit {
            events,
            single_rows,
            database_url,
        } => audit::run(events, single_rows, &database_url).await,
        Scenario::Memory { jobs } => memory(jobs).await,
        Scenario::Compare {
            jobs,
            latency_rate,
            latency_seconds,
            no_aof,
            out,
        } => {
            compare::run(compare::Settings {
                jobs,
                latency_rate,
                latency_seconds,
                with_aof: !no_aof,
                out_dir: workspace_root().join(out),
            })
            .await
        }
        Scenario::Enqueue { jobs } => {
            sluice_only(&[
                (Workload::EnqueueBatch, jobs),
                (Workload::EnqueueSingle, jobs),
            ])
            .await
        }
        Scenario::E2e { jobs, concurrency } => {
            let runs: Vec<_> = concurrency
                .into_iter()
                .map(|concurrency| (Workload::E2e { concurrency }, jobs))
                .collect();
            sluice_only(&runs).await
        }
        Scenario::E2ePriority { jobs } => sluice_only(&[(Workload::E2ePriority, jobs)]).await,
        Scenario::Drain { jobs, concurrency } => {
            let runs: Vec<_> = concurrency
                .into_iter()
                .map(|concurrency| (Workload::Drain { concurrency }, jobs))
                .collect();
            sluice_only(&runs).await
        }
        Scenario::Latency { rate, seconds } => {
            sluice_only(&[(Workload::Latency { rate, seconds }, rate * seconds)]).await
        }
        Scenario::Retry { jobs } => {
            sluice_only(&[
                (Workload::E2e { concurrency: 50 }, jobs),
                (Workload::Retry, jobs),
            ])
            .await
        }
        Scenario::Shards {
            jobs,
            partitions,
            concurrency,
            callgrind,
        } => shards::run(jobs, partitions, concurrency, callgrind).await,
        Scenario::Soak {
            seconds,
            minutes,
            jobs,
        } => soak(seconds, minutes, jobs),
    }
}

/// The fault suites: `engine/tests/faults.rs` (ambiguous failures through
/// the fault proxy, `jobs` jobs per scenario) and `api/tests/faults.rs`
/// (killed processes, `seconds` of faults per scenario), round after round
/// until `minutes` are over (once without). Prints every scenario's summary
/// line with the round and fails when a suite does.
fn soak(seconds: u64, minutes: Option<u64>, jobs: u64) -> anyhow::Result<()> {
    let until = minutes.map(|m| Instant::now() + Duration::from_secs(m * 60));
    let mut round = 0;
    let mut failed = false;
    loop {
        round += 1;
        println!(
            "soak round {round}: {jobs} jobs per engine scenario, {seconds} s of faults per process scenario"
        );
        for (package, env, value) in [
            ("sluice-engine", "SLUICE_FAULT_JOBS", jobs),
            ("sluice", "SLUICE_FAULT_SECONDS", seconds),
        ] {
            let output = Command::new("cargo")
                .args(["test", "-q", "-p", package, "--test", "integration", "--"])
                .args(["faults::", "--nocapture", "--test-threads", "1"])
                .env(env, value.to_string())
                .current_dir(workspace_root())
                .stderr(Stdio::inherit())
                .output()
                .context("cargo test")?;
            let stdout = String::from_utf8_lossy(&output.stdout);
            // With --nocapture a test's first line follows its "test name
            // ... " on the same line: print from the summary on.
            for line in stdout.lines() {
                if let Some(at) = line
                    .find("fault summary")
                    .or_else(|| line.find("scenario="))
                {
                    println!("round {round} {}", &line[at..]);
                } else if line.starts_with("test result") || line.contains("FAILED") {
                    println!("{line}");
                }
            }
            failed |= !output.status.success();
        }
        if until.is_none_or(|t| Instant::now() >= t) {
            break;
        }
    }
    if failed {
        bail!("a fault suite failed");
    }
    Ok(())
}
