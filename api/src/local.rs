//! `sluice up` on a laptop: when no Redis answers at the configured URL and
//! the URL points at this machine, start a private `redis-server` with the
//! append-only file on (fsync every second), its data under the data
//! directory, and stop it cleanly when Sluice stops.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use sluice_engine::{Client, ClientConfig, RetryPolicy};
use tokio::process::{Child, Command};

/// A `redis-server` this process started.
#[derive(Debug)]
pub struct LocalRedis {
    child: Child,
    /// Where it keeps its data.
    pub dir: PathBuf,
}

impl LocalRedis {
    /// Stop it with SIGTERM (it writes its AOF and exits) and wait.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await;
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

async fn answers(url: &str) -> bool {
    let config = ClientConfig::new(url).retry(RetryPolicy {
        retries: 0,
        min_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(10),
    });
    match Client::connect_with(config).await {
        Ok(c) => c.ping().await,
        Err(_) => false,
    }
}

/// Ensure a Redis answers at `url`; start one under `data_dir` if not.
/// Returns the started server, or `None` when one was already there.
pub async fn ensure_redis(url: &str, data_dir: &Path) -> anyhow::Result<Option<LocalRedis>> {
    // Every message names the URL without its password.
    let shown = sluice_engine::redact_url(url);
    if answers(url).await {
        return Ok(None);
    }
    if url.contains("+cluster://") {
        bail!("no Redis Cluster answers at {shown}; sluice up starts only a single local Redis");
    }
    let parsed = reqwest::Url::parse(url).with_context(|| format!("bad redis url {shown:?}"))?;
    let host = parsed
        .host_str()
        .unwrap_or("127.0.0.1")
        .trim_matches(['[', ']']);
    if !matches!(host, "127.0.0.1" | "localhost" | "::1") {
        bail!(
            "no Redis answers at {shown}; it is not on this machine, so sluice up will not start one"
        );
    }
    let port = parsed.port().unwrap_or(6379);
    let dir = data_dir.join("redis");
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))?;
    let dir = dir.canonicalize().unwrap_or(dir);
    let child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--appendonly", "yes", "--appendfsync", "everysec"])
        .args(["--save", "", "--daemonize", "no"])
        .arg("--dir")
        .arg(&dir)
        .arg("--logfile")
        .arg(dir.join("redis.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        // Its own process group: a Ctrl-C in the terminal stops Sluice, which
        // drains its workers and then stops this Redis, not both at once.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .context(
            "no Redis answers and redis-server could not be started; install it (apt-get install redis-server) or set --redis-url",
        )?;
    let local = LocalRedis { child, dir };
    for _ in 0..100 {
        if answers(url).await {
            eprintln!(
                "sluice: no Redis was running at {shown}; started a private redis-server (append-only file on) with its data in {}",
                local.dir.display()
            );
            return Ok(Some(local));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    local.stop().await;
    bail!(
        "started redis-server on port {port} but it does not answer; see {}/redis.log",
        data_dir.join("redis").display()
    )
}
