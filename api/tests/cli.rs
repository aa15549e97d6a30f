//! The `sluice` binary's operator commands, run as a process against the
//! real Redis under a prefix of the test's own.

use std::process::{Command, Output};

use crate::common;

use common::Prefix;

/// Runs the binary under a key prefix of the test's own (deleted afterwards).
struct Env {
    p: Prefix,
}

impl Env {
    fn new() -> Self {
        Self {
            p: Prefix::new("cli"),
        }
    }

    fn sluice(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .env("SLUICE_REDIS_URL", &self.p.url)
            .env("SLUICE_PREFIX", &self.p.name)
            .env_remove("SLUICE_CONFIG")
            .output()
            .expect("run sluice")
    }

    /// Run, expect success, return stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.sluice(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Run, expect failure, return the one-line error.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.sluice(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8(out.stderr).expect("utf-8");
        assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
        err
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        serde_json::from_str(&self.ok(&all)).expect("json")
    }
}

#[test]
fn enqueue_stats_show_pause_resume() {
    let env = Env::new();
    let first = env.json(&[
        "enqueue",
        "orders",
        "--payload",
        r#"{"sku":"A-1"}"#,
        "--priority",
        "2",
    ]);
    let id = first["id"].as_str().expect("id").to_owned();
    assert_eq!(first["duplicate"], false);
    let again = env.json(&[
        "enqueue",
        "orders",
        "--payload",
        "1",
        "--idempotency-key",
        "k",
    ]);
    let dup = env.json(&[
        "enqueue",
        "orders",
        "--payload",
        "2",
        "--idempotency-key",
        "k",
    ]);
    assert_eq!(dup["id"], again["id"]);
    assert_eq!(dup["duplicate"], true);

    let stats = env.json(&["stats"]);
    assert_eq!(stats[0]["queue"], "orders");
    assert_eq!(stats[0]["waiting"], 2);
    assert_eq!(stats[0]["waiting_by_priority"][2], 1);
    assert!(env.ok(&["stats"]).contains("orders"));

    let job = env.json(&["jobs", "show", &id]);
    assert_eq!(job["state"], "waiting");
    assert_eq!(job["payload"]["sku"], "A-1");
    assert!(
        env.ok(&["jobs", "show", &id, "--queue", "orders"])
            .contains("A-1")
    );

    env.ok(&["pause", "orders"]);
    assert_eq!(env.json(&["stats", "orders"])[0]["paused"], true);
    env.ok(&["resume", "orders"]);
    assert_eq!(env.json(&["stats", "orders"])[0]["paused"], false);

    let cancelled = env.json(&["jobs", "cancel", "orders", &id]);
    assert_eq!(cancelled["result"], "cancelled");
    assert_eq!(env.json(&["jobs", "show", &id])["state"], "dead");
    assert!(
        env.ok(&["jobs", "cancel", "orders", &id])
            .contains("dead letter")
    );
}

#[tokio::test]
async fn dead_letters_list_show_retry_and_purge() {
    let env = Env::new();
    let client = sluice_engine::Client::connect_with(
        sluice_engine::ClientConfig::new(&env.p.url).prefix(&env.p.name),
    )
    .await
    .expect("connect");
    let q = client.queue("mail").await.expect("queue");
    for n in 0..3u32 {
        q.enqueue_value(&n, sluice_engine::JobOptions::new())
            .await
            .expect("enqueue");
    }
    let jobs = q.claim("w", 3).await.expect("claim");
    for job in &jobs {
        q.settle(job, sluice_engine::Outcome::Bury("smtp said 550".into()))
            .await
            .expect("bury");
    }
    let list = env.json(&["dead", "list", "mail"]);
    assert_eq!(list.as_array().expect("array").len(), 3);
    assert_eq!(list[0]["last_error"], "smtp said 550");
    let table = env.ok(&["dead", "list", "mail"]);
    assert!(table.contains("smtp said 550"));
    // Tables show local times, not raw milliseconds; --json keeps them.
    let died = table
        .lines()
        .next()
        .and_then(|l| l.split("died ").nth(1))
        .map(|rest| rest.chars().take(19).collect::<String>())
        .unwrap_or_default();
    assert!(
        chrono::NaiveDateTime::parse_from_str(&died, "%Y-%m-%d %H:%M:%S").is_ok(),
        "{table}"
    );
    assert!(list[0]["finished_at_ms"].as_u64().is_some(), "{list}");
    let id = jobs[0].id.as_str();
    assert_eq!(env.json(&["dead", "show", "mail", id])["state"], "dead");
    env.ok(&["dead", "retry", "mail", id]);
    assert!(
        env.fails(&["dead", "retry", "mail", id])
            .contains("no dead letter")
    );
    assert_eq!(env.json(&["dead", "retry-all", "mail"])["retried"], 2);
    let more = q.claim("w", 3).await.expect("claim");
    assert_eq!(more.len(), 3);
    for job in more.iter().skip(1) {
        q.settle(job, sluice_engine::Outcome::Bury("again".into()))
            .await
            .expect("bury");
    }
    assert_eq!(env.json(&["dead", "purge", "mail"])["deleted"], 2);
    assert_eq!(env.json(&["stats", "mail"])[0]["dead"], 0);
}

#[tokio::test]
async fn a_partitioned_queues_dead_letters_are_managed_under_its_name() {
    let env = Env::new();
    let config = std::env::temp_dir().join(format!("{}-dead.toml", env.p.name));
    std::fs::write(&config, "[[queues]]\nname = \"parts\"\npartitions = 3\n").expect("config");
    let path = config.to_str().expect("path");
    let client = sluice_engine::Client::connect_with(
        sluice_engine::ClientConfig::new(&env.p.url).prefix(&env.p.name),
    )
    .await
    .expect("connect");
    let pq = client
        .partitioned_queue("parts", 3, sluice_engine::QueueConfig::default())
        .await
        .expect("partitions");
    // A dead letter in every partition, oldest in partition 0.
    let mut buried = Vec::new();
    for q in pq.partitions() {
        q.enqueue_value(&1, sluice_engine::JobOptions::new())
            .await
            .expect("enqueue");
        let job = q.claim("w", 1).await.expect("claim").remove(0);
        q.settle(
            &job,
            sluice_engine::Outcome::Bury(format!("bad in {}", q.name())),
        )
        .await
        .expect("bury");
        buried.push(job.id);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let list = env.json(&["--config", path, "dead", "list", "parts"]);
    let ids: Vec<&str> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|d| d["id"].as_str().expect("id"))
        .collect();
    let newest_first: Vec<&str> = buried.iter().rev().map(String::as_str).collect();
    assert_eq!(ids, newest_first);
    let shown = env.json(&["--config", path, "dead", "show", "parts", &buried[1]]);
    assert_eq!(shown["state"], "dead");
    env.ok(&["--config", path, "dead", "retry", "parts", &buried[2]]);
    let missing = env.fails(&["--config", path, "dead", "retry", "parts", &buried[2]]);
    assert!(missing.contains("no dead letter"), "{missing}");
    assert_eq!(
        env.json(&["--config", path, "dead", "retry-all", "parts"])["retried"],
        2
    );
    for q in pq.partitions().iter().take(2) {
        let job = q.claim("w", 1).await.expect("claim").remove(0);
        q.settle(&job, sluice_engine::Outcome::Bury("again".into()))
            .await
            .expect("bury");
    }
    assert_eq!(
        env.json(&["--config", path, "dead", "purge", "parts"])["deleted"],
        2
    );
    let _ = std::fs::remove_file(&config);
}

#[test]
fn bad_input_gets_one_line_and_a_non_zero_exit_and_changes_nothing() {
    let env = Env::new();
    env.ok(&["enqueue", "orders"]);
    let before = env.p.keys();
    let cases: &[(&[&str], &str)] = &[
        (&["enqueue", "orders", "--priority", "12"], "priority"),
        (&["enqueue", "orders", "--priority", "-1"], "priority"),
        (&["enqueue", "orders", "--delay-ms", "-5"], "delay_ms"),
        (
            &["enqueue", "orders", "--max-attempts", "0"],
            "max_attempts",
        ),
        (
            &["enqueue", "orders", "--payload", "{bad"],
            "not valid JSON",
        ),
        (&["enqueue", "bad{name}"], "invalid queue name"),
        (&["stats", "no-such-queue"], "unknown queue"),
        (&["pause", "no-such-queue"], "unknown queue"),
        (&["dead", "list", "no-such-queue"], "unknown queue"),
        (&["jobs", "show", "nope"], "no job"),
        (&["jobs", "cancel", "orders", "nope"], "no job"),
        (&["jobs", "cancel", "no-such-queue", "x"], "unknown queue"),
    ];
    for (args, needle) in cases {
        let err = env.fails(args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert_eq!(env.p.keys(), before, "a refused command changed redis");
    // Unknown subcommands are clap's usage errors (exit 2).
    assert_eq!(env.sluice(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn unreachable_redis_is_reported_on_one_line() {
    let env = Env::new();
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--redis-url", "redis://127.0.0.1:1/", "stats"])
        .env("SLUICE_PREFIX", &env.p.name)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach redis at redis://127.0.0.1:1/"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    // Logs to a pipe carry no colour codes.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--redis-url", "redis://127.0.0.1:1/", "stats"])
        .env("SLUICE_PREFIX", &env.p.name)
        .env("SLUICE_LOG", "debug")
        .env_remove("NO_COLOR")
        .output()
        .expect("run");
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(logs.contains("retrying"), "{logs}");
    assert!(
        !logs.contains('\u{1b}'),
        "ANSI codes in piped logs: {logs:?}"
    );
    // A password in the URL never reaches the message.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--redis-url", "redis://:hunter2@127.0.0.1:1/", "stats"])
        .env("SLUICE_PREFIX", &env.p.name)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("hunter2"), "{err}");
    assert!(err.contains("redis://:***@127.0.0.1:1/"), "{err}");
}

#[test]
fn settings_come_from_the_config_file_when_no_flag_or_variable_is_set() {
    let env = Env::new();
    let dir = std::env::temp_dir().join(format!("{}-cfg", env.p.name));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("sluice.toml");
    std::fs::write(
        &path,
        format!(
            "redis_url = \"{}\"\nprefix = \"{}\"\n",
            env.p.url, env.p.name
        ),
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "--config",
            path.to_str().expect("path"),
            "enqueue",
            "from-file",
            "--json",
        ])
        .env_remove("SLUICE_REDIS_URL")
        .env_remove("SLUICE_PREFIX")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.json(&["stats", "from-file"])[0]["waiting"], 1);
    std::fs::write(&path, "redis_ulr = \"typo\"\n").expect("write");
    let bad = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--config", path.to_str().expect("path"), "stats"])
        .output()
        .expect("run");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid config file"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn workers_lists_none_and_keys_new_prints_a_usable_entry() {
    let env = Env::new();
    assert!(env.ok(&["workers"]).contains("no live workers"));
    assert_eq!(env.json(&["workers"]), serde_json::json!([]));

    let key = env.json(&["keys", "new", "--name", "ops", "--scope", "admin"]);
    let secret = key["key"].as_str().expect("key");
    assert!(secret.starts_with("sk_") && secret.len() > 40);
    assert_eq!(key["sha256"], sluice::server::key_hash(secret));
    let text = env.ok(&["keys", "new", "--scope", "read"]);
    let entry = &text[text.find("[[api.keys]]").expect("entry")..];
    let parsed: sluice::config::FileConfig =
        toml::from_str(&entry.replace("[[api.keys]]", "[[api.keys]]\n")).expect("entry parses");
    parsed.validate().expect("valid");
    assert_eq!(parsed.api.keys[0].scope, sluice::config::Scope::Read);

    // Long-running commands refuse a bad config before doing anything.
    let bad = env.fails(&["work", "--queue", "nope:0"]);
    assert!(bad.contains("concurrency"), "{bad}");
    let unknown = env.fails(&["work", "--queue", "unconfigured"]);
    assert!(unknown.contains("not configured"), "{unknown}");
}

#[test]
fn a_partitioned_queue_is_enqueued_inspected_and_paused_as_one() {
    let env = Env::new();
    let config = std::env::temp_dir().join(format!("{}.toml", env.p.name));
    std::fs::write(
        &config,
        "[[queues]]\nname = \"parts\"\npartitions = 3\n[[queues]]\nname = \"plain\"\n",
    )
    .expect("config");
    let path = config.to_str().expect("path");
    for n in 0..4 {
        env.ok(&[
            "--config",
            path,
            "enqueue",
            "parts",
            "--payload",
            &n.to_string(),
            "--partition-key",
            "acct-9",
        ]);
    }
    let stats = env.json(&["--config", path, "stats", "parts"]);
    let rows = stats.as_array().expect("rows");
    assert_eq!(rows.len(), 3, "{stats}");
    let waiting: Vec<u64> = rows
        .iter()
        .map(|r| r["waiting"].as_u64().expect("waiting"))
        .collect();
    assert_eq!(waiting.iter().sum::<u64>(), 4);
    assert!(
        waiting.contains(&4),
        "one partition holds the key's jobs: {waiting:?}"
    );
    env.ok(&["--config", path, "pause", "parts"]);
    let stats = env.json(&["--config", path, "stats", "parts"]);
    assert!(
        stats
            .as_array()
            .expect("rows")
            .iter()
            .all(|r| r["paused"] == true),
        "{stats}"
    );
    let err = env.fails(&["--config", path, "enqueue", "plain", "--partition-key", "x"]);
    assert!(err.contains("not partitioned"), "{err}");
    let _ = std::fs::remove_file(&config);
}

/// `sluice doctor` passes a server set up for Sluice and fails, on one
/// line and with a non-zero exit, one that evicts keys.
#[test]
fn doctor_fails_an_evicting_redis_and_passes_a_good_one() {
    let server = sluice_testkit::RedisServer::start_with(
        sluice_testkit::Persistence::AofAlways,
        &["--maxmemory-policy", "allkeys-lru"],
    );
    let port = server.port();
    let url = format!("redis://127.0.0.1:{port}/");
    let doctor = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["--redis-url", &url])
            .args(args)
            .output()
            .expect("run")
    };
    let mut out = doctor(&["doctor"]);
    for _ in 0..50 {
        if !String::from_utf8_lossy(&out.stderr).contains("cannot reach") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        out = doctor(&["doctor"]);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}{err}");
    assert!(
        text.contains("FAIL  maxmemory-policy  allkeys-lru"),
        "{text}"
    );
    assert!(text.contains("ok    persistence"), "{text}");
    assert!(
        err.contains("maxmemory-policy") && err.trim_end().lines().count() == 1,
        "{err}"
    );
    let set = Command::new("redis-cli")
        .args([
            "-p",
            &port.to_string(),
            "CONFIG",
            "SET",
            "maxmemory-policy",
            "noeviction",
        ])
        .output()
        .expect("redis-cli");
    assert!(set.status.success());
    let out = doctor(&["--json", "doctor"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(report["server"]["maxmemory_policy"], "noeviction");
    drop(server);
}

/// What a new user meets: `--help` opens with what Sluice is, and a usage
/// error names what is missing or wrong, with clap's tip, then the usage
/// line (issue 38, small truths).
#[test]
fn help_and_usage_errors_speak_to_a_new_user() {
    let env = Env::new();
    let help = String::from_utf8(env.sluice(&["--help"]).stdout).expect("utf-8");
    assert!(help.starts_with("Sluice: a durable job queue"), "{help}");
    let out = env.sluice(&["enqueue"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).expect("utf-8");
    let lines: Vec<&str> = err.trim_end().lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0]
            .starts_with("sluice: error: the following required arguments were not provided: <"),
        "{err}"
    );
    assert!(lines[1].starts_with("Usage: sluice enqueue"), "{err}");
    let err = String::from_utf8(env.sluice(&["stats", "--jsn"]).stderr).expect("utf-8");
    assert!(
        err.contains("unexpected argument '--jsn' found; tip:"),
        "{err}"
    );
    assert!(err.contains("'--json'"), "{err}");
}

/// The linked plug-in's commands are listed under its name, and what its
/// users typed before (`sluice migrate`, a `[pipeline]` section) still
/// works, with a deprecation warning (issue 38, §3).
#[test]
fn a_plug_ins_commands_are_listed_under_its_name_and_its_former_names_still_work() {
    let env = Env::new();
    let listed = |help: &str, command: &str| {
        help.lines()
            .any(|l| l.split_whitespace().next() == Some(command))
    };
    let help = env.ok(&["--help"]);
    assert!(listed(&help, "trading"), "{help}");
    assert!(!listed(&help, "migrate"), "a former name is hidden: {help}");
    let trading = env.ok(&["trading", "--help"]);
    for command in ["migrate", "users", "backup", "restore"] {
        assert!(listed(&trading, command), "{command}: {trading}");
    }
    let schema = sluice_testkit::PgSchema::new("cli_plugin");
    let dir = std::env::temp_dir().join(format!("sluice-cli-{}", schema.name));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = |section: &str| {
        let path = dir.join(format!("{section}.toml"));
        std::fs::write(
            &path,
            format!(
                "[{section}]\ndatabase_url = {:?}\ndatabase_schema = {:?}\n",
                sluice_testkit::database_url(),
                schema.name
            ),
        )
        .expect("config");
        path.display().to_string()
    };
    let (current, former) = (config("trading"), config("pipeline"));
    let out = env.sluice(&["--config", &current, "trading", "migrate", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("deprecated"), "{stderr}");
    let migrated: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(migrated["migrations"].as_u64() > Some(0), "{migrated}");
    let out = env.sluice(&["--config", &former, "migrate"]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config section [pipeline] is deprecated: call it [trading]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`sluice migrate` is deprecated: use `sluice trading migrate`"),
        "{stderr}"
    );
    // The section under both names is refused, whatever the command.
    let both = dir.join("both.toml");
    std::fs::write(&both, "[trading]\n[pipeline]\n").expect("config");
    let err = env.fails(&["--config", both.to_str().expect("path"), "stats"]);
    assert!(err.contains("both [trading] and [pipeline]"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A rule on a dependency that no linked plug-in checks (a typo) could
/// never fire: it is refused when the config is read, whatever the
/// command, with the rule and the dependencies there are named (issue 38's
/// review, item 1). A rule on a dependency whose plug-in this config leaves
/// off is kept: rules are fleet-wide, and a fleet may run the plug-in in
/// some processes only.
#[test]
fn a_rule_on_a_dependency_nothing_checks_is_refused() {
    let env = Env::new();
    let dir = std::env::temp_dir().join(format!("sluice-cli-rules-{}", env.p.name));
    std::fs::create_dir_all(&dir).expect("dir");
    let write = |name: &str, body: &str| {
        let path = dir.join(name);
        std::fs::write(&path, body).expect("config");
        path.display().to_string()
    };
    let trading = format!(
        "[trading]\ndatabase_url = {:?}\n",
        sluice_testkit::database_url()
    );
    let typo = write(
        "typo.toml",
        &format!(
            "{trading}[[alerts]]\nname = \"db\"\nkind = \"dependency_down\"\ndependency = \"postgress\"\n"
        ),
    );
    let err = env.fails(&["--config", &typo, "keys", "new", "--name", "ops"]);
    assert!(
        err.contains("alert db") && err.contains("postgress") && err.contains("postgres"),
        "{err}"
    );
    for (kind, threshold) in [("postgres_down", ""), ("db_slow", "threshold = 100\n")] {
        let rule = format!("[[alerts]]\nname = \"db\"\nkind = \"{kind}\"\n{threshold}");
        let off = write(&format!("{kind}.toml"), &rule);
        env.ok(&["--config", &off, "keys", "new", "--name", "ops"]);
        let on = write(&format!("{kind}-on.toml"), &format!("{trading}{rule}"));
        env.ok(&["--config", &on, "keys", "new", "--name", "ops"]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A plug-in's own commands read a config checked as every other command
/// reads it: the plug-in's section is validated, and a schedule name is
/// used once across the file and the plug-ins (issue 38's review, item 4).
#[test]
fn a_plug_ins_commands_check_the_config_as_the_others_do() {
    let env = Env::new();
    let dir = std::env::temp_dir().join(format!("sluice-cli-checked-{}", env.p.name));
    std::fs::create_dir_all(&dir).expect("dir");
    let database = format!("database_url = {:?}\n", sluice_testkit::database_url());
    let cases = [
        (
            format!("[trading]\n{database}chart_url = \"https://example.com/chart\"\n"),
            "chart_url must contain {chart}",
        ),
        (
            format!(
                "[[schedules]]\nname = \"pipeline-retention\"\ncron = \"0 * * * * *\"\nqueue = \"q\"\n\n[trading]\n{database}"
            ),
            "schedule pipeline-retention is configured twice",
        ),
    ];
    for (i, (body, needle)) in cases.iter().enumerate() {
        let path = dir.join(format!("{i}.toml"));
        std::fs::write(&path, body).expect("config");
        let path = path.display().to_string();
        for command in [
            &["trading", "users", "show", "1"][..],
            &["users", "show", "1"][..],
        ] {
            let mut args = vec!["--config", path.as_str()];
            args.extend_from_slice(command);
            let err = env.fails(&args);
            assert!(err.contains(needle), "{command:?}: {err}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
