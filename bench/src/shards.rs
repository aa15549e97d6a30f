//! `shards`: a partitioned queue end to end on a Redis Cluster of 1 shard
//! and of 3 shards (private `redis-server`s, slots assigned by hand so one
//! node can hold all 16,384), same partitions, same workload.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sluice_engine::{Client, ClientConfig, HandlerError, Job, JobOptions, Outcome, QueueConfig};

use crate::Proc;
use crate::workloads::{BATCH, Finish, job, worker_config};

const SLOTS: u32 = 16_384;

/// A cluster of `shards` primaries, one slot range each.
struct Cluster {
    _nodes: Vec<Proc>,
    ports: Vec<u16>,
    dir: std::path::PathBuf,
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

fn start_cluster(shards: u32) -> anyhow::Result<Cluster> {
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
        let child = Command::new("redis-server")
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
        let up = (0..100).any(|_| {
            std::thread::sleep(Duration::from_millis(50));
            cli(port, &["PING"]).is_ok_and(|r| r.contains("PONG"))
        });
        if !up {
            bail!("redis-server on {port} did not start");
        }
    }
    for (i, &port) in ports.iter().enumerate() {
        let first = SLOTS * i as u32 / shards;
        let last = SLOTS * (i as u32 + 1) / shards - 1;
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
    let ok = (0..200).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        ports
            .iter()
            .all(|&p| cli(p, &["CLUSTER", "INFO"]).is_ok_and(|i| i.contains("cluster_state:ok")))
    });
    if !ok {
        bail!("the cluster did not become ready");
    }
    Ok(Cluster {
        _nodes: nodes,
        ports,
        dir,
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
            pq.run_workers(handler, worker_config(concurrency), async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
        })
    };
    let mut sent = 0;
    while sent < jobs {
        let batch = (sent..jobs.min(sent + BATCH))
            .map(|n| job(n, JobOptions::new()))
            .collect::<anyhow::Result<Vec<_>>>()?;
        pq.enqueue_batch(batch).await?;
        sent += BATCH;
    }
    // Timed to the last completion: an idle worker's stop waits out its
    // blocking read, which is not part of the work.
    let _ = all_done.wait_for(|s| *s).await;
    let seconds = started.elapsed().as_secs_f64();
    workers.await??;
    Ok(jobs as f64 / seconds)
}

pub async fn run(jobs: u64, partitions: u16, concurrency: usize) -> anyhow::Result<()> {
    println!(
        "partitioned queue of {partitions} partitions, {jobs} no-op jobs, batches of 1,000, workers at concurrency {concurrency} over all partitions, one process; {}",
        crate::redis_version()
    );
    let mut rates = Vec::new();
    for shards in [1u32, 3] {
        let cluster = start_cluster(shards)?;
        let hosts: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let url = format!("redis+cluster://{}/", hosts.join(","));
        let rate = measure(&url, partitions, jobs, concurrency).await?;
        println!("  {shards} shard(s): {rate:.0} jobs/s end to end");
        rates.push(rate);
        drop(cluster);
    }
    if let [one, three] = rates[..] {
        println!("  3 shards / 1 shard: {:.2}x", three / one);
    }
    Ok(())
}
