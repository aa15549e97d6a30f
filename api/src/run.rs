//! The long-running commands: `up` (everything on one machine), `serve`
//! (the API) and `work` (a worker process). Each also runs the cron
//! schedules unless told not to; any number of processes may, and each tick
//! still enqueues one job. Each evaluates the alert rules too, and sends
//! their notifications (`alerts`).

use std::path::PathBuf;

use anyhow::Context;
use sluice_engine::{Client, ClientConfig, Shutdown};
use tokio::task::JoinSet;

use crate::cli::{ServeArgs, UpArgs, WorkArgs};
use crate::config::{DEFAULT_LISTEN, FileConfig, Settings};
use crate::plugins::{Enabled, Opened};
use crate::server::install_recorder;

/// Where `sluice up` keeps data by default.
const DEFAULT_DATA_DIR: &str = ".sluice";

fn client(settings: &Settings) -> anyhow::Result<Client> {
    // Lazy: the process starts, and reports Redis as down, while it is.
    Client::connect_lazy(ClientConfig::new(&settings.redis_url).prefix(&settings.prefix))
        .with_context(|| {
            format!(
                "bad redis settings {}",
                sluice_engine::redact_url(&settings.redis_url)
            )
        })
}

fn listen_addr(
    flag: Option<std::net::SocketAddr>,
    file: &FileConfig,
) -> anyhow::Result<std::net::SocketAddr> {
    match flag.or(file.api.listen) {
        Some(a) => Ok(a),
        None => DEFAULT_LISTEN.parse().context("default listen address"),
    }
}

fn spawn_schedules(
    tasks: &mut JoinSet<anyhow::Result<()>>,
    client: &Client,
    file: &FileConfig,
    plugins: &Enabled,
    stop: &Shutdown,
) -> anyhow::Result<()> {
    let schedules = crate::schedules::all(file, plugins)?;
    if schedules.is_empty() {
        return Ok(());
    }
    let (client, stop) = (client.clone(), stop.clone());
    tasks.spawn(async move {
        crate::schedules::run(client, schedules, stop).await;
        Ok(())
    });
    Ok(())
}

/// Wait for every task; the first error (after all have ended) is returned.
async fn join_all(
    mut tasks: JoinSet<anyhow::Result<()>>,
    stop: Option<&Shutdown>,
) -> anyhow::Result<()> {
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        let result = joined.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(e) = result {
            tracing::error!(error = %format!("{e:#}"), "a part of sluice failed; stopping");
            // One part failed: stop the others too.
            if let Some(stop) = stop {
                stop.trigger();
            }
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// `sluice serve`.
pub async fn serve(
    settings: Settings,
    mut file: FileConfig,
    plugins: Enabled,
    args: ServeArgs,
) -> anyhow::Result<()> {
    file.api.insecure_open |= args.insecure_open;
    let addr = listen_addr(args.listen, &file)?;
    // Before anything starts: nothing runs with settings that are refused.
    file.api.check_safe(addr)?;
    install_recorder();
    let client = client(&settings)?;
    let stop = crate::termination::stop_on_sigterm()?;
    let mut tasks = JoinSet::new();
    if !args.no_schedules {
        spawn_schedules(&mut tasks, &client, &file, &plugins, &stop)?;
    }
    let plugins = plugins.open(&client)?;
    crate::alerts::spawn(&mut tasks, &client, &file, &plugins, &stop)?;
    let state = crate::server::state(client, &file, &plugins)?;
    tasks.spawn(crate::server::serve(state, addr, stop.clone()));
    join_all(tasks, Some(&stop)).await
}

/// `sluice work`.
pub async fn work(
    settings: Settings,
    file: FileConfig,
    plugins: Enabled,
    args: WorkArgs,
) -> anyhow::Result<()> {
    install_recorder();
    let queues = crate::fleet::select(&file, &plugins, &args.queues)?;
    let client = client(&settings)?;
    let stop = crate::termination::stop_on_sigterm()?;
    let mut tasks = JoinSet::new();
    if !args.no_schedules {
        spawn_schedules(&mut tasks, &client, &file, &plugins, &stop)?;
    }
    if let Some(addr) = args.metrics_listen {
        tasks.spawn(crate::server::serve_local_metrics(
            addr,
            client.clone(),
            stop.clone(),
        ));
    }
    let plugins = plugins.open(&client)?;
    crate::alerts::spawn(&mut tasks, &client, &file, &plugins, &stop)?;
    let file = std::sync::Arc::new(file);
    let (c, f, s) = (client.clone(), file.clone(), stop.clone());
    tasks.spawn(async move { crate::fleet::run(c, &f, &plugins, queues, s).await });
    join_all(tasks, Some(&stop)).await
}

/// `sluice up`: before anything starts, a private Redis when none answers
/// and the plug-ins' start-up work (their databases, migrations).
pub async fn up(
    settings: Settings,
    mut file: FileConfig,
    plugins: Enabled,
    args: UpArgs,
) -> anyhow::Result<()> {
    file.api.insecure_open |= args.insecure_open;
    file.api.check_safe(listen_addr(args.listen, &file)?)?;
    install_recorder();
    let data_dir: PathBuf = args
        .data_dir
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let local = crate::local::ensure_redis(&settings.redis_url, &data_dir).await?;
    let result = match plugins.start_up().await {
        Ok(()) => up_with_redis(settings, file, plugins, args.listen).await,
        Err(e) => Err(e),
    };
    if let Some(redis) = local {
        redis.stop().await;
    }
    result
}

async fn up_with_redis(
    settings: Settings,
    file: FileConfig,
    plugins: Enabled,
    listen: Option<std::net::SocketAddr>,
) -> anyhow::Result<()> {
    let client = client(&settings)?;
    let addr = listen_addr(listen, &file)?;
    let queues = crate::fleet::select(&file, &plugins, &[])?;
    let stop = crate::termination::stop_on_sigterm()?;
    let mut tasks = JoinSet::new();
    spawn_schedules(&mut tasks, &client, &file, &plugins, &stop)?;
    let plugins: Opened = plugins.open(&client)?;
    crate::alerts::spawn(&mut tasks, &client, &file, &plugins, &stop)?;
    if queues.is_empty() {
        tracing::warn!("no [[queues]] with a url configured: running the API without workers");
    } else {
        let file = std::sync::Arc::new(file.clone());
        let (c, s, p) = (client.clone(), stop.clone(), plugins.clone());
        tasks.spawn(async move { crate::fleet::run(c, &file, &p, queues, s).await });
    }
    let state = crate::server::state(client, &file, &plugins)?;
    eprintln!(
        "sluice: API on http://{addr}/ (health: /health, metrics: /metrics, OpenAPI: /api/openapi.json)"
    );
    tasks.spawn(crate::server::serve(state, addr, stop.clone()));
    join_all(tasks, Some(&stop)).await
}
