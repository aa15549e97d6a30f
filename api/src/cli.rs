//! The command line. Every global flag can also come from an environment
//! variable or the config file. The linked plug-ins add their commands
//! ([`command`]).

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::plugins::Linked;

/// Sluice: a durable job queue on Redis Streams. `sluice up` runs the
/// HTTP API, the dashboard and workers on one machine; the other commands
/// enqueue jobs and operate queues, dead letters and schedules.
#[derive(Debug, Parser)]
#[command(name = "sluice", version)]
pub struct Cli {
    /// The flags every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The command line's grammar: the binary's commands and the linked
/// plug-ins'.
pub fn command(plugins: &Linked) -> clap::Command {
    plugins
        .commands()
        .into_iter()
        .fold(Cli::command(), clap::Command::subcommand)
}

/// The flags every command takes, a plug-in's too.
// `Debug` by hand: the Redis URL may hold a password.
#[derive(Args)]
pub struct GlobalArgs {
    /// TOML config file.
    #[arg(long, global = true, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Redis URL [default: redis://127.0.0.1:6379/].
    // Its value is never shown in `--help`: it may hold a password.
    #[arg(long, global = true, env = "SLUICE_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Key prefix; separate prefixes are separate worlds on one Redis [default: sluice].
    #[arg(long, global = true, env = "SLUICE_PREFIX")]
    pub prefix: Option<String>,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Log format [default: human].
    #[arg(long, global = true, env = "SLUICE_LOG_FORMAT", value_enum)]
    pub log_format: Option<crate::config::LogFormat>,
}

impl std::fmt::Debug for GlobalArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalArgs")
            .field("config", &self.config)
            .field(
                "redis_url",
                &self.redis_url.as_deref().map(sluice_engine::redact_url),
            )
            .field("prefix", &self.prefix)
            .field("json", &self.json)
            .field("log_format", &self.log_format)
            .finish()
    }
}

/// The binary's subcommands, in groups that each have one runner: the
/// command line shows them as one flat list, and `entry` dispatches over
/// the groups with one exhaustive match (a command added to a group its
/// runner does not handle fails to compile, not at run time). A plug-in's
/// commands are its own (`plugins`).
#[derive(Debug, Subcommand)]
pub enum Command {
    #[command(flatten)]
    Operate(OperatorCommand),
    #[command(flatten)]
    Run(RunCommand),
    /// API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
}

impl Command {
    /// Whether it runs until stopped (and logs at `info` by default).
    pub fn is_long_running(&self) -> bool {
        matches!(self, Command::Run(_))
    }
}

/// Operator commands on queues and jobs, against Redis (`ops.rs`).
#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Enqueue one job.
    Enqueue(EnqueueArgs),
    /// Counts per state of one queue, or of all.
    Stats {
        /// Only this queue.
        queue: Option<String>,
    },
    /// Look jobs up.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Dead letters of a queue.
    #[command(subcommand)]
    Dead(DeadCommand),
    /// Stop workers from claiming jobs of a queue.
    Pause {
        /// The queue.
        queue: String,
    },
    /// Let workers claim jobs of a queue again.
    Resume {
        /// The queue.
        queue: String,
    },
    /// Live worker processes of the fleet.
    Workers,
    /// Check the Redis server for what Sluice needs: eviction policy,
    /// persistence, version. Exits 1 when something must be fixed.
    Doctor,
}

/// The long-running processes (`run.rs`).
#[derive(Debug, Subcommand)]
pub enum RunCommand {
    /// Everything on one machine: API, workers for every configured queue
    /// and schedules; starts a private Redis when none answers.
    Up(UpArgs),
    /// The HTTP API only (and the schedules).
    Serve(ServeArgs),
    /// A worker process (and the schedules).
    Work(WorkArgs),
}

/// `sluice up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Address of the HTTP API [default: 127.0.0.1:8080].
    #[arg(long, env = "SLUICE_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    /// Where the private Redis keeps its data [default: .sluice].
    #[arg(long, env = "SLUICE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Serve the API without keys on an address other than loopback
    /// (refused otherwise: anyone who reaches it could do everything).
    #[arg(long, env = "SLUICE_INSECURE_OPEN")]
    pub insecure_open: bool,
}

/// `sluice serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address of the HTTP API [default: 127.0.0.1:8080].
    #[arg(long, env = "SLUICE_LISTEN")]
    pub listen: Option<std::net::SocketAddr>,
    /// Do not run the cron schedules in this process.
    #[arg(long)]
    pub no_schedules: bool,
    /// Serve the API without keys on an address other than loopback
    /// (refused otherwise: anyone who reaches it could do everything).
    #[arg(long, env = "SLUICE_INSECURE_OPEN")]
    pub insecure_open: bool,
}

/// `sluice work`.
#[derive(Debug, Args)]
pub struct WorkArgs {
    /// A queue to serve, as NAME or NAME:CONCURRENCY; repeat for more
    /// [default: every configured queue with a url, and the plug-ins'
    /// queues].
    #[arg(
        long = "queue",
        value_name = "NAME[:CONCURRENCY]",
        env = "SLUICE_QUEUES",
        value_delimiter = ','
    )]
    pub queues: Vec<crate::fleet::Served>,
    /// Do not run the cron schedules in this process.
    #[arg(long)]
    pub no_schedules: bool,
    /// Serve this process's own metrics (`GET /metrics`: job run and wait
    /// times, Redis backoffs) on this address, for Prometheus, with the
    /// worker's probes `/health/live` and `/health/ready`.
    #[arg(long, env = "SLUICE_METRICS_LISTEN")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

/// `sluice keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new API key: prints the key (once) and the config entry that
    /// holds its hash.
    New {
        /// A name for the key.
        #[arg(long, default_value = "default")]
        name: String,
        /// What the key may do.
        #[arg(long, value_enum, default_value = "read")]
        scope: KeyScope,
    },
}

/// Scope of a new key.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum KeyScope {
    /// Look, never change.
    Read,
    /// Everything.
    Admin,
}

/// `sluice enqueue`.
#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// The queue (created if new).
    pub queue: String,
    /// The payload as JSON.
    #[arg(long, default_value = "null")]
    pub payload: String,
    /// Priority level, 0 (most urgent) to 9.
    #[arg(long, allow_negative_numbers = true)]
    pub priority: Option<i64>,
    /// Run no earlier than this many milliseconds from now.
    #[arg(long, allow_negative_numbers = true)]
    pub delay_ms: Option<i64>,
    /// Runs allowed in all, the first included.
    #[arg(long, allow_negative_numbers = true)]
    pub max_attempts: Option<i64>,
    /// Cancel a run after this many milliseconds.
    #[arg(long, allow_negative_numbers = true)]
    pub timeout_ms: Option<i64>,
    /// Enqueue at most once under this key (within the idempotency window).
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// For a queue configured with `partitions`: jobs with the same key go
    /// to the same partition and keep their order.
    #[arg(long)]
    pub partition_key: Option<String>,
}

/// `sluice jobs ...`.
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Show one job.
    Show {
        /// The job id.
        id: String,
        /// Its queue (default: look in every queue).
        #[arg(long)]
        queue: Option<String>,
    },
    /// Cancel a job: a waiting or delayed one becomes a dead letter, a
    /// running one is asked to stop.
    Cancel {
        /// The queue.
        queue: String,
        /// The job id.
        id: String,
    },
}

/// `sluice dead ...`.
#[derive(Debug, Subcommand)]
pub enum DeadCommand {
    /// List dead letters, newest first.
    List {
        /// The queue.
        queue: String,
        /// Skip this many.
        #[arg(long, default_value_t = 0)]
        offset: usize,
        /// Show at most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Show one dead letter.
    Show {
        /// The queue.
        queue: String,
        /// The job id.
        id: String,
    },
    /// Send one dead letter back to its queue with fresh attempts.
    Retry {
        /// The queue.
        queue: String,
        /// The job id.
        id: String,
    },
    /// Send every dead letter of a queue back.
    RetryAll {
        /// The queue.
        queue: String,
    },
    /// Delete every dead letter of a queue.
    Purge {
        /// The queue.
        queue: String,
    },
}
