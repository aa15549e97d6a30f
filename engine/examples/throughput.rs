//! End-to-end throughput of no-op jobs, and Redis round trips per job.
//!
//! `cargo run --release -p sluice-engine --example throughput -- [JOBS] [CONCURRENCY]`
//! (defaults 100000 and 50). Uses a throwaway key prefix on the Redis at
//! `SLUICE_REDIS_URL` (default 127.0.0.1:6379) and deletes it afterwards.
//! Round trips are counted from the server's `INFO commandstats`, so run it
//! on a Redis nothing else is using for exact figures.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sluice_engine::{
    Client, ClientConfig, HandlerError, Job, JobOptions, NewJob, Outcome, Shutdown, Worker,
    WorkerConfig,
};

async fn command_calls(
    conn: &mut redis::aio::MultiplexedConnection,
) -> redis::RedisResult<HashMap<String, u64>> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    Ok(info
        .lines()
        .filter_map(|l| {
            let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect())
}

fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> Vec<(String, u64)> {
    let mut d: Vec<(String, u64)> = after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(k, v)| *v > 0 && k != "info")
        .collect();
    d.sort();
    d
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let jobs: u64 = args.first().map_or(Ok(100_000), |s| s.parse())?;
    let concurrency: usize = args.get(1).map_or(Ok(50), |s| s.parse())?;
    let url =
        std::env::var("SLUICE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let prefix = format!("sluicebench{}", std::process::id());
    let client = Client::connect_with(ClientConfig::new(&url).prefix(&prefix)).await?;
    let queue = client.queue("throughput").await?;
    let mut raw = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;

    // Enqueue in batches of 1000: one round trip each.
    let calls0 = command_calls(&mut raw).await?;
    let started = Instant::now();
    let mut sent = 0;
    while sent < jobs {
        let n = (jobs - sent).min(1000);
        let batch = (0..n)
            .map(|i| NewJob::new(&(sent + i), JobOptions::new()))
            .collect::<Result<Vec<_>, _>>()?;
        queue.enqueue_many(batch).await?;
        sent += n;
    }
    let enqueue_time = started.elapsed();
    let calls1 = command_calls(&mut raw).await?;

    // Drain with a worker.
    let handler = |_job: Job| async move { Ok::<_, HandlerError>(Outcome::Done) };
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let worker = Worker::new(queue.clone(), handler).with_config(WorkerConfig {
        concurrency,
        batch_size: concurrency.max(100),
        block_timeout: Duration::from_millis(500),
        ..WorkerConfig::default()
    });
    let drain_started = Instant::now();
    let handle = tokio::spawn(worker.run(Shutdown::when(async move {
        let _ = rx.await;
    })));
    loop {
        let s = queue.stats().await?;
        if s.completed_total >= jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drain_time = drain_started.elapsed();
    let calls2 = command_calls(&mut raw).await?;
    let _ = tx.send(());
    let report = handle.await??;

    // Round trips are the script calls (EVALSHA) plus blocking reads; the
    // other counts are commands run inside the scripts (server work). The
    // stats polling of this program (XLEN, XPENDING, ZCARD, HGETALL) is left
    // out of both.
    let count =
        |d: &[(String, u64)], name: &str| d.iter().find(|(k, _)| k == name).map_or(0, |(_, v)| *v);
    let polling = ["xlen", "xpending", "zcard", "hgetall"];
    let server_commands = |d: &[(String, u64)]| {
        d.iter()
            .filter(|(k, _)| !polling.contains(&k.as_str()))
            .map(|(_, v)| *v)
            .sum::<u64>() as f64
            / jobs as f64
    };
    let enq = delta(&calls0, &calls1);
    let drain = delta(&calls1, &calls2);
    let phase = |label: &str, d: &[(String, u64)], took: Duration| {
        println!(
            "{label}: {:.0} jobs/s in {took:?}; script calls/job {:.4}; redis commands/job {:.2}",
            jobs as f64 / took.as_secs_f64(),
            count(d, "evalsha") as f64 / jobs as f64,
            server_commands(d)
        );
    };
    println!(
        "jobs {jobs}, concurrency {concurrency}, completed {}",
        report.completed
    );
    phase("enqueue (batches of 1000)", &enq, enqueue_time);
    phase("drain (claim + run + settle)", &drain, drain_time);
    println!("drain commands: {drain:?}");
    println!(
        "end to end: {:.0} jobs/s",
        jobs as f64 / (enqueue_time + drain_time).as_secs_f64()
    );

    // Clean up the throwaway prefix.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut raw)
        .await?;
    if !keys.is_empty() {
        redis::cmd("DEL")
            .arg(keys)
            .query_async::<()>(&mut raw)
            .await?;
    }
    Ok(())
}
