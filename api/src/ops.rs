//! Operator commands: they talk to Redis directly through the engine's
//! public API, print tables for people and JSON (`--json`) for scripts.

use anyhow::{Context, anyhow, bail};
use serde::Serialize;
use sluice_engine::{
    Cancelled, Client, ClientConfig, DeadQuery, Inspector, JobInfo, JobOptions, JobOptionsInput,
    NewJob, Queue, Stats,
};

use crate::cli::{DeadCommand, EnqueueArgs, JobsCommand, KeyScope, KeysCommand, OperatorCommand};
use crate::config::{FileConfig, Settings};
use sluice_server::views::{JobView, payload_json};

/// `sluice keys ...`: made here, without Redis.
pub fn keys(command: KeysCommand, json: bool) -> anyhow::Result<()> {
    match command {
        KeysCommand::New { name, scope } => new_key(&name, scope, Output { json }),
    }
}

/// A client of the Redis that `settings` name, or why it cannot be had.
pub async fn connect(settings: &Settings) -> anyhow::Result<Client> {
    Client::connect_with(ClientConfig::new(&settings.redis_url).prefix(&settings.prefix))
        .await
        .with_context(|| {
            format!(
                "cannot reach redis at {}",
                sluice_engine::redact_url(&settings.redis_url)
            )
        })
}

/// Run one operator command.
pub async fn run(
    command: OperatorCommand,
    json: bool,
    settings: Settings,
    file: &FileConfig,
) -> anyhow::Result<()> {
    let out = Output { json };
    let client = connect(&settings).await?;
    match command {
        OperatorCommand::Enqueue(args) => enqueue(&client, file, args, out).await,
        OperatorCommand::Stats { queue } => stats(&client, file, queue, out).await,
        OperatorCommand::Jobs(JobsCommand::Show { id, queue }) => {
            show_job(&client, file, &id, queue, out).await
        }
        OperatorCommand::Jobs(JobsCommand::Cancel { queue, id }) => {
            cancel_job(&client, file, &queue, &id, out).await
        }
        OperatorCommand::Dead(cmd) => dead(&client, file, cmd, out).await,
        OperatorCommand::Pause { queue } => {
            handle(&client, file, &queue).await?.pause().await?;
            out.done(
                &format!("queue {queue} paused"),
                serde_json::json!({"queue": queue, "paused": true}),
            )
        }
        OperatorCommand::Workers => workers(&client, out).await,
        OperatorCommand::Doctor => crate::doctor::run(&client, out.json).await,
        OperatorCommand::Resume { queue } => {
            handle(&client, file, &queue).await?.resume().await?;
            out.done(
                &format!("queue {queue} resumed"),
                serde_json::json!({"queue": queue, "paused": false}),
            )
        }
    }
}

/// `sluice jobs cancel`.
async fn cancel_job(
    client: &Client,
    file: &FileConfig,
    queue: &str,
    id: &str,
    out: Output,
) -> anyhow::Result<()> {
    let (text, result) = match handle(client, file, queue).await?.cancel(id).await? {
        Cancelled::Missing => bail!("no job {id:?} in queue {queue:?}"),
        Cancelled::Cancelled => (
            format!("{id} cancelled: it is a dead letter now"),
            "cancelled",
        ),
        Cancelled::Requested => (
            format!("{id} is running: its worker was asked to stop it"),
            "requested",
        ),
        Cancelled::Finished(state) => bail!("job {id:?} is {state} already: nothing to cancel"),
    };
    out.done(&text, serde_json::json!({"id": id, "result": result}))
}

#[derive(Clone, Copy)]
struct Output {
    json: bool,
}

impl Output {
    /// Print `text` for people, or `value` as JSON.
    fn done(self, text: &str, value: impl Serialize) -> anyhow::Result<()> {
        if self.json {
            println!("{}", serde_json::to_string_pretty(&value)?);
        } else {
            println!("{text}");
        }
        Ok(())
    }
}

/// The handle on a queue by name (which must exist), with all its
/// partitions (the config's count opens them when they are not yet there).
async fn handle(client: &Client, file: &FileConfig, name: &str) -> anyhow::Result<Queue> {
    crate::queues::directory(client.clone(), file)
        .existing(name)
        .await?
        .ok_or_else(|| anyhow!("unknown queue {name:?} (known queues: `sluice stats`)"))
}

async fn enqueue(
    client: &Client,
    file: &FileConfig,
    args: EnqueueArgs,
    out: Output,
) -> anyhow::Result<()> {
    let payload: serde_json::Value =
        serde_json::from_str(&args.payload).context("--payload is not valid JSON")?;
    let options = JobOptions::try_from(JobOptionsInput {
        priority: args.priority,
        delay_ms: args.delay_ms,
        max_attempts: args.max_attempts,
        timeout_ms: args.timeout_ms,
        idempotency_key: args.idempotency_key,
        ..JobOptionsInput::default()
    })?;
    let mut job = NewJob::new(&payload, options)?;
    job.partition_key = args.partition_key;
    let queue = crate::queues::directory(client.clone(), file)
        .for_write(&args.queue)
        .await?;
    if job.partition_key.is_some() && !queue.is_partitioned() {
        bail!(
            "queue {} is not partitioned; leave out --partition-key",
            args.queue
        )
    }
    let e = queue.enqueue(job).await?;
    let text = if e.duplicate {
        format!(
            "{} (idempotency key matched an existing job; nothing added)",
            e.id
        )
    } else {
        e.id.clone()
    };
    out.done(&text, &e)
}

async fn stats(
    client: &Client,
    file: &FileConfig,
    queue: Option<String>,
    out: Output,
) -> anyhow::Result<()> {
    // A partitioned queue shows a row per partition; every partition's
    // counts are read together.
    let all: Vec<Stats> = match queue {
        Some(name) => Inspector::partitions_of(&handle(client, file, &name).await?).await?,
        None => client.inspector().partition_stats().await?,
    };
    if out.json {
        return out.done("", &all);
    }
    if all.is_empty() {
        println!("no queues yet");
        return Ok(());
    }
    println!(
        "{:<24} {:>6} {:>9} {:>7} {:>8} {:>7} {:>11} {:>9}  waiting by priority 0..9",
        "QUEUE", "PAUSED", "WAITING", "ACTIVE", "DELAYED", "DEAD", "COMPLETED", "FAILED"
    );
    for s in &all {
        println!(
            "{:<24} {:>6} {:>9} {:>7} {:>8} {:>7} {:>11} {:>9}  {:?}",
            s.queue,
            if s.paused { "yes" } else { "no" },
            s.waiting,
            s.active,
            s.delayed,
            s.dead,
            s.completed_total,
            s.failed_total,
            s.waiting_by_priority
        );
    }
    Ok(())
}

fn print_job(info: &JobInfo, out: Output) -> anyhow::Result<()> {
    if out.json {
        return out.done("", JobView::from(info.clone()));
    }
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), local_time);
    println!("id           {}", info.id);
    println!("queue        {}", info.queue);
    println!("state        {}", info.state);
    println!("priority     {}", info.priority);
    println!("attempt      {} of {}", info.attempt, info.max_attempts);
    println!("created      {}", local_time(info.created_at_ms));
    println!("due          {}", opt(info.due_at_ms));
    println!("started      {}", opt(info.started_at_ms));
    println!("finished     {}", opt(info.finished_at_ms));
    println!("worker       {}", info.worker.as_deref().unwrap_or("-"));
    println!("last error   {}", info.last_error.as_deref().unwrap_or("-"));
    for e in &info.errors {
        println!("  attempt {} at {}: {}", e.attempt, e.at, e.error);
    }
    println!(
        "payload      {}",
        serde_json::to_string(&payload_json(info))?
    );
    Ok(())
}

async fn show_job(
    client: &Client,
    file: &FileConfig,
    id: &str,
    queue: Option<String>,
    out: Output,
) -> anyhow::Result<()> {
    let found = match queue {
        Some(name) => handle(client, file, &name).await?.job(id).await?,
        None => client.inspector().find_job(id).await?,
    };
    if let Some(info) = found {
        return print_job(&info, out);
    }
    bail!("no job {id:?} (completed jobs are kept only for their queue's keep window)")
}

/// Dead letters of one queue; a partitioned queue's commands work across
/// its partitions.
async fn dead(
    client: &Client,
    file: &FileConfig,
    cmd: DeadCommand,
    out: Output,
) -> anyhow::Result<()> {
    match cmd {
        DeadCommand::List {
            queue,
            offset,
            limit,
        } => {
            let q = handle(client, file, &queue).await?;
            let page = client
                .inspector()
                .dead(
                    &q,
                    DeadQuery {
                        offset,
                        limit,
                        ..DeadQuery::default()
                    },
                )
                .await?;
            let letters = page.letters;
            if out.json {
                let views: Vec<JobView> = letters.into_iter().map(JobView::from).collect();
                return out.done("", views);
            }
            if letters.is_empty() {
                println!("no dead letters in {queue}");
            }
            for d in &letters {
                println!(
                    "{}  died {}  attempts {}  {}",
                    d.id,
                    d.finished_at_ms.map_or_else(|| "-".to_owned(), local_time),
                    d.attempt,
                    d.last_error.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
        DeadCommand::Show { queue, id } => {
            let q = handle(client, file, &queue).await?;
            match q
                .job(&id)
                .await?
                .filter(|i| i.state == sluice_engine::JobState::Dead)
            {
                Some(info) => print_job(&info, out),
                None => bail!("no dead letter {id:?} in queue {queue:?}"),
            }
        }
        DeadCommand::Retry { queue, id } => {
            if !handle(client, file, &queue).await?.redrive(&id).await? {
                bail!("no dead letter {id:?} in queue {queue:?}")
            }
            out.done(
                &format!("{id} re-driven"),
                serde_json::json!({"retried": 1}),
            )
        }
        DeadCommand::RetryAll { queue } => {
            let n = handle(client, file, &queue).await?.redrive_all().await?;
            out.done(
                &format!("{n} dead letters re-driven"),
                serde_json::json!({"retried": n}),
            )
        }
        DeadCommand::Purge { queue } => {
            let n = handle(client, file, &queue).await?.purge_dead().await?;
            out.done(
                &format!("{n} dead letters deleted"),
                serde_json::json!({"deleted": n}),
            )
        }
    }
}

async fn workers(client: &Client, out: Output) -> anyhow::Result<()> {
    let all = client.registry().workers().await?;
    if out.json {
        return out.done("", &all);
    }
    if all.is_empty() {
        println!("no live workers");
        return Ok(());
    }
    let now = sluice_engine::unix_ms();
    println!(
        "{:<40} {:<20} {:>8} {:>6} {:>9} {:>9} {:>8}  QUEUES",
        "ID", "HOST", "PID", "CONC", "IN FLIGHT", "BEAT AGO", "VERSION"
    );
    for w in &all {
        let queues: Vec<String> = w
            .queues
            .iter()
            .map(|q| format!("{}:{}", q.queue, q.concurrency))
            .collect();
        println!(
            "{:<40} {:<20} {:>8} {:>6} {:>9} {:>8}s {:>8}  {}",
            w.id,
            w.host,
            w.pid,
            w.concurrency,
            w.in_flight,
            now.saturating_sub(w.last_beat_ms) / 1000,
            w.version,
            queues.join(" ")
        );
    }
    Ok(())
}

fn new_key(name: &str, scope: KeyScope, out: Output) -> anyhow::Result<()> {
    use rand::RngCore;
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    let key = format!("sk_{}", hex::encode(bytes));
    let hash = crate::server::key_hash(&key);
    let scope = match scope {
        KeyScope::Read => "read",
        KeyScope::Admin => "admin",
    };
    let entry =
        format!("[[api.keys]]\nname = {name:?}\nsha256 = \"{hash}\"\nscope = \"{scope}\"\n");
    out.done(
        &format!("key (shown once; keep it secret): {key}\n\nadd to the config file:\n{entry}"),
        serde_json::json!({"name": name, "key": key, "sha256": hash, "scope": scope}),
    )
}

/// Ms since the Unix epoch as a local time for tables (`--json` keeps the
/// milliseconds).
fn local_time(ms: u64) -> String {
    chrono::DateTime::from_timestamp_millis(ms as i64).map_or_else(
        || ms.to_string(),
        |t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()
        },
    )
}
