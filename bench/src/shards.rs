//! `shards`: a partitioned queue end to end on a Redis Cluster of 1 shard
//! and of 3 shards (private `redis-server`s, slots assigned by hand so one
//! node can hold all 16,384), same partitions, same workload.
//!
//! The 3-shard cluster's slot ranges are cut between the partitions' slots
//! so each shard holds the same number of partitions, as an operator would
//! place them (equal thirds of the slot space put 4 of 6 partitions named
//! `shards#0..5` on one shard: where a name hashes is luck).
//!
//! Two cores cannot show three shards' capacity in seconds, so
//! `--callgrind` runs every node under valgrind's callgrind instead and
//! reports the Redis instructions each shard executed per job: the capacity
//! table of docs/operations.md.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sluice_engine::{Client, ClientConfig, HandlerError, Job, JobOptions, Outcome, QueueConfig};

use crate::Proc;
use crate::workloads::{BATCH, Finish, job, worker_config};

const SLOTS: u32 = 16_384;

/// A cluster of `shards` primaries, one slot range each.
struct Cluster {
    nodes: Vec<Proc>,
    ports: Vec<u16>,
    dir: std::path::PathBuf,
    callgrind: bool,
}

impl Cluster {
    /// Zero every node's instruction counters (`--callgrind`).
    fn zero_counters(&self) -> anyhow::Result<()> {
        for node in &self.nodes {
            callgrind_control(&["-z", &node.0.id().to_string()])?;
        }
        Ok(())
    }

    /// Each node's instructions since the counters were zeroed.
    fn instructions(&self) -> anyhow::Result<Vec<u64>> {
        let mut totals = Vec::new();
        for (node, port) in self.nodes.iter().zip(&self.ports) {
            callgrind_control(&["-d", &node.0.id().to_string()])?;
            let prefix = format!("cg-{port}.out.");
            let newest = std::fs::read_dir(&self.dir)?
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
                .with_context(|| format!("no callgrind dump of the node on {port}"))?;
            let text = std::fs::read_to_string(newest.path())?;
            let total = text
                .lines()
                .find_map(|l| {
                    l.strip_prefix("summary:")
                        .or_else(|| l.strip_prefix("totals:"))
                })
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .with_context(|| format!("no totals in the callgrind dump of {port}"))?;
            totals.push(total);
        }
        Ok(totals)
    }

    /// Forget every node's command counts (`INFO commandstats`).
    fn reset_command_stats(&self) -> anyhow::Result<()> {
        for &port in &self.ports {
            cli(port, &["CONFIG", "RESETSTAT"])?;
        }
        Ok(())
    }

    /// Calls of each command on each node since the reset: for every
    /// command, its calls per node, in node order.
    fn command_calls(&self) -> anyhow::Result<Vec<(String, Vec<u64>)>> {
        let mut by_command: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
        for (i, &port) in self.ports.iter().enumerate() {
            let text = cli(port, &["INFO", "commandstats"])?;
            for line in text.lines() {
                // cmdstat_evalsha:calls=12,usec=...
                let Some((name, fields)) = line
                    .strip_prefix("cmdstat_")
                    .and_then(|l| l.split_once(':'))
                else {
                    continue;
                };
                let calls = fields
                    .split(',')
                    .find_map(|f| f.strip_prefix("calls="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                by_command
                    .entry(name.to_owned())
                    .or_insert_with(|| vec![0; self.ports.len()])[i] = calls;
            }
        }
        Ok(by_command.into_iter().collect())
    }
}

fn callgrind_control(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("callgrind_control")
        .args(args)
        .output()
        .context("callgrind_control (apt-get install -y valgrind)")?;
    if !out.status.success() {
        bail!(
            "callgrind_control {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn cli(port: u16, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .context("redis-cli")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The first slot of each shard: equal thirds of the slot space, moved so
/// each shard holds the same number of the partitions, whose slots are
/// `partition_slots`. Falls back to equal ranges when partitions share
/// slots so that no such cut exists.
fn shard_starts(shards: u32, partition_slots: &[u32]) -> Vec<u32> {
    let equal: Vec<u32> = (0..shards).map(|i| SLOTS * i / shards).collect();
    let mut sorted = partition_slots.to_vec();
    sorted.sort_unstable();
    let n = sorted.len() as u32;
    if shards <= 1 || n < shards {
        return equal;
    }
    let mut starts = vec![0];
    for i in 1..shards {
        // Between the last partition of shard i - 1 and the first of i.
        let before = sorted[(n * i / shards - 1) as usize];
        let after = sorted[(n * i / shards) as usize];
        if after <= before || before < *starts.last().unwrap_or(&0) {
            return equal;
        }
        starts.push(before + (after - before).div_ceil(2));
    }
    starts
}

fn start_cluster(
    shards: u32,
    partition_tags: &[String],
    callgrind: bool,
) -> anyhow::Result<Cluster> {
    let dir = std::env::temp_dir().join(format!(
        "sluice-bench-cluster-{}-{shards}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    let mut nodes = Vec::new();
    let mut ports = Vec::new();
    for _ in 0..shards {
        // The cluster bus listens on the port + 10000, which must exist.
        let port = loop {
            let port = crate::free_port()?;
            if port <= 55_535 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
                break port;
            }
        };
        let mut command = if callgrind {
            let mut c = Command::new("valgrind");
            c.arg("--tool=callgrind")
                .arg(format!(
                    "--callgrind-out-file={}",
                    dir.join(format!("cg-{port}.out")).display()
                ))
                .arg("redis-server")
                .stderr(Stdio::null());
            c
        } else {
            Command::new("redis-server")
        };
        let child = command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--cluster-enabled",
                "yes",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .context("start redis-server")?;
        nodes.push(Proc(child));
        ports.push(port);
    }
    for &port in &ports {
        // Redis starts in seconds under valgrind.
        let up = (0..400).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            cli(port, &["PING"]).is_ok_and(|r| r.contains("PONG"))
        });
        if !up {
            bail!("redis-server on {port} did not start");
        }
    }
    let mut partition_slots = Vec::new();
    for tag in partition_tags {
        let slot = cli(ports[0], &["CLUSTER", "KEYSLOT", tag])?;
        partition_slots.push(
            slot.trim()
                .parse()
                .with_context(|| format!("CLUSTER KEYSLOT {tag}: {slot}"))?,
        );
    }
    let mut starts = shard_starts(shards, &partition_slots);
    starts.push(SLOTS);
    for (i, &port) in ports.iter().enumerate() {
        let first = starts[i];
        let last = starts[i + 1] - 1;
        cli(
            port,
            &[
                "CLUSTER",
                "ADDSLOTSRANGE",
                &first.to_string(),
                &last.to_string(),
            ],
        )?;
        if i > 0 {
            cli(
                ports[0],
                &["CLUSTER", "MEET", "127.0.0.1", &port.to_string()],
            )?;
        }
    }
    let ok = (0..600).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        ports
            .iter()
            .all(|&p| cli(p, &["CLUSTER", "INFO"]).is_ok_and(|i| i.contains("cluster_state:ok")))
    });
    if !ok {
        bail!("the cluster did not become ready");
    }
    Ok(Cluster {
        nodes,
        ports,
        dir,
        callgrind,
    })
}

/// Enqueue `jobs` in batches and drain them with workers over every
/// partition; jobs per second from the first enqueue to the last handler
/// finished (as `e2e` measures). Completions are counted in the handler, so nothing polls the
/// Redis being measured.
async fn measure(url: &str, partitions: u16, jobs: u64, concurrency: usize) -> anyhow::Result<f64> {
    let client = Client::connect_with(ClientConfig::new(url).prefix("bench")).await?;
    let pq = client
        .partitioned_queue("shards", partitions, QueueConfig::default())
        .await?;
    let (finish, mut stopped) = Finish::new(jobs);
    let mut all_done = stopped.clone();
    let handler = move |_job: Job| {
        let finish = finish.clone();
        async move {
            finish.one();
            Ok::<_, HandlerError>(Outcome::Done)
        }
    };
    let started = Instant::now();
    let workers = {
        let pq = pq.clone();
        tokio::spawn(async move {
            sluice_engine::Worker::new(pq, handler)
                .with_config(worker_config(concurrency))
                .run(sluice_engine::Shutdown::when(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                }))
                .await
        })
    };
    let mut sent = 0;
    while sent < jobs {
        let batch = (sent..jobs.min(sent + BATCH))
            .map(|n| job(n, JobOptions::new()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        pq.enqueue_many(batch).await?;
        sent += BATCH;
    }
    // Timed to the last completion: an idle worker's stop waits out its
    // blocking read, which is not part of the work.
    let _ = all_done.wait_for(|s| *s).await;
    let seconds = started.elapsed().as_secs_f64();
    workers.await??;
    Ok(jobs as f64 / seconds)
}

pub async fn run(
    jobs: u64,
    partitions: u16,
    concurrency: usize,
    callgrind: bool,
) -> anyhow::Result<()> {
    println!(
        "partitioned queue of {partitions} partitions, {jobs} no-op jobs, batches of 1,000, workers at concurrency {concurrency} over all partitions, one process; {}{}",
        crate::redis_version(),
        if callgrind {
            "; every node under callgrind"
        } else {
            ""
        }
    );
    let tags: Vec<String> = (0..partitions).map(|i| format!("{{shards#{i}}}")).collect();
    let mut rates = Vec::new();
    let mut one_shard_total = None;
    for shards in [1u32, 3] {
        let cluster = start_cluster(shards, &tags, callgrind)?;
        let hosts: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let url = format!("redis+cluster://{}/", hosts.join(","));
        if cluster.callgrind {
            cluster.zero_counters()?;
        }
        cluster.reset_command_stats()?;
        let rate = measure(&url, partitions, jobs, concurrency).await?;
        // Where the work went: each command's calls per 1,000 jobs, on each
        // node (commands scripts run count too, beside the script's own).
        for (command, calls) in cluster.command_calls()? {
            let per_thousand: Vec<String> = calls
                .iter()
                .map(|c| format!("{:.1}", *c as f64 * 1000.0 / jobs as f64))
                .collect();
            println!("    {command}: {} per 1,000 jobs", per_thousand.join(" / "));
        }
        if cluster.callgrind {
            let totals = cluster.instructions()?;
            let sum: u64 = totals.iter().sum();
            let per_job: Vec<String> = totals.iter().map(|t| format!("{}", t / jobs)).collect();
            println!(
                "  {shards} shard(s): Redis instructions per job {} on the shards ({} in all)",
                per_job.join(" / "),
                sum / jobs
            );
            match one_shard_total {
                None => one_shard_total = Some(sum),
                Some(one) => {
                    let third = one as f64 / f64::from(shards);
                    let shares: Vec<String> = totals
                        .iter()
                        .map(|t| format!("{:+.1} %", (*t as f64 / third - 1.0) * 100.0))
                        .collect();
                    println!(
                        "  each shard against a third of the 1-shard total: {}",
                        shares.join(" / ")
                    );
                }
            }
        } else {
            println!("  {shards} shard(s): {rate:.0} jobs/s end to end");
        }
        rates.push(rate);
        drop(cluster);
    }
    if let ([one, three], false) = (&rates[..], callgrind) {
        println!("  3 shards / 1 shard: {:.2}x", three / one);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_starts_give_each_shard_as_many_partitions() {
        // The slots of `shards#0..5`: 4 of them in the last third.
        let slots = [11502, 15567, 3244, 7309, 11370, 15435];
        let starts = shard_starts(3, &slots);
        assert_eq!(starts.len(), 3);
        assert_eq!(starts[0], 0);
        for i in 0..3 {
            let end = starts.get(i + 1).copied().unwrap_or(SLOTS);
            let held = slots
                .iter()
                .filter(|s| (starts[i]..end).contains(s))
                .count();
            assert_eq!(held, 2, "shard {i} of {starts:?}");
        }
        assert_eq!(shard_starts(1, &slots), vec![0]);
        // Partitions on one slot cannot be cut apart: equal thirds.
        assert_eq!(shard_starts(3, &[5, 5, 5]), vec![0, 5461, 10922]);
    }
}
