//! Sluice on one machine: a producer and a worker pool on the `demo` queue,
//! with live stats, until Ctrl-C (then a graceful shutdown).
//!
//! `cargo run --release -p sluice-engine --example quickstart [-- --jobs N]`
//! With `--jobs N` it enqueues N jobs, waits until they are done and exits.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_engine::{
    Client, HandlerError, Job, JobOptions, NewJob, Outcome, Shutdown, Worker, WorkerConfig,
    handler_fn,
};

#[derive(Debug, Serialize, Deserialize)]
struct Email {
    to: String,
    subject: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let jobs_to_run: Option<u64> = match std::env::args().skip(1).collect::<Vec<_>>().as_slice() {
        [] => None,
        [flag, n] if flag == "--jobs" => Some(
            n.parse()
                .map_err(|_| format!("--jobs wants a number, got {n:?}"))?,
        ),
        other => {
            return Err(
                format!("unknown arguments {other:?}; usage: quickstart [--jobs N]").into(),
            );
        }
    };
    let url =
        std::env::var("SLUICE_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let client = Client::connect(&url).await?;
    let queue = client.queue("demo").await?;
    println!("sluice: connected to {url}; queue 'demo' (Ctrl-C stops)");

    // The handler: "send" an email; about 1 in 20 fails and is retried.
    let handler = handler_fn(|job: Job, email: Email| async move {
        tokio::time::sleep(Duration::from_millis(5 + rand::random::<u64>() % 20)).await;
        if rand::random::<u8>().is_multiple_of(20) {
            return Err::<Outcome, HandlerError>(
                format!("smtp timeout sending to {}", email.to).into(),
            );
        }
        tracing::debug!(id = %job.id, to = %email.to, subject = %email.subject, "sent");
        Ok(Outcome::Done)
    });
    let worker = Worker::new(queue.clone(), handler).with_config(WorkerConfig {
        concurrency: 50,
        ..WorkerConfig::default()
    });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut worker_stop = stop_rx.clone();
    let worker = tokio::spawn(worker.run(Shutdown::when(async move {
        let _ = worker_stop.changed().await;
    })));

    let before = queue.stats().await?.completed_total;
    let producer = {
        let queue = queue.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut sent = 0u64;
            loop {
                let n = match jobs_to_run {
                    Some(total) if sent >= total => return Ok::<_, sluice_engine::Error>(sent),
                    Some(total) => (total - sent).min(1000),
                    None => 50,
                };
                let batch = (0..n)
                    .map(|i| {
                        let email = Email {
                            to: format!("user{}@example.com", sent + i),
                            subject: "Your order shipped".into(),
                        };
                        NewJob::new(&email, JobOptions::new().priority(rand::random::<u8>() % 4))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                queue.enqueue_many(batch).await?;
                sent += n;
                if jobs_to_run.is_none() {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = stop.changed() => return Ok(sent),
                    }
                }
            }
        })
    };

    let mut ticker = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                let s = queue.stats().await?;
                println!(
                    "waiting {:>6} (by priority {:?})  active {:>3}  delayed {:>4}  dead {:>4}  completed {:>8}  failed {:>6}",
                    s.waiting, &s.waiting_by_priority[..4], s.active, s.delayed, s.dead, s.completed_total, s.failed_total
                );
                if let Some(total) = jobs_to_run
                    && s.completed_total + s.dead >= before + total
                    && s.waiting + s.active + s.delayed == 0
                {
                    break;
                }
            }
            _ = tokio::signal::ctrl_c() => {
                println!("sluice: stopping (running jobs finish first)");
                break;
            }
        }
    }
    let _ = stop_tx.send(true);
    let sent = producer.await??;
    let report = worker.await??;
    println!("sluice: enqueued {sent}; worker report {report:?}");
    Ok(())
}
