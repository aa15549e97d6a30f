//! `sluice doctor`: check a Redis server for what Sluice needs, and say
//! plainly what to change.

use anyhow::bail;
use serde::Serialize;
use sluice_engine::{Client, ServerReport};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// As it should be.
    Ok,
    /// Works, with a risk or a cost worth knowing.
    Warn,
    /// Must be fixed: jobs can be lost or Sluice cannot run.
    Fail,
}

/// One check's finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What was checked.
    pub check: &'static str,
    /// How it went.
    pub level: Level,
    /// What was seen and what to do.
    pub message: String,
}

fn finding(check: &'static str, level: Level, message: impl Into<String>) -> Finding {
    Finding {
        check,
        level,
        message: message.into(),
    }
}

/// The findings for `report`.
pub fn check(report: &ServerReport) -> Vec<Finding> {
    let mut out = Vec::new();
    out.push(match report.maxmemory_policy.as_deref() {
        Some("noeviction") => finding("maxmemory-policy", Level::Ok, "noeviction: Redis refuses writes when full instead of dropping keys"),
        Some(p) => finding(
            "maxmemory-policy",
            Level::Fail,
            format!("{p}: when memory fills, Redis evicts keys, and evicted jobs are lost without a trace; set maxmemory-policy noeviction"),
        ),
        None => finding("maxmemory-policy", Level::Warn, "CONFIG GET is refused here; make sure the policy is noeviction"),
    });
    let aof = report.appendonly.as_deref() == Some("yes");
    let rdb = report.save.as_deref().is_some_and(|s| !s.trim().is_empty());
    out.push(match (report.appendonly.as_deref(), aof, report.appendfsync.as_deref(), rdb) {
        (None, ..) => finding("persistence", Level::Warn, "CONFIG GET is refused here; check persistence with your provider"),
        (_, true, Some("always"), _) => finding("persistence", Level::Ok, "appendonly yes, appendfsync always: an acknowledged job survives a crash (durability fsync)"),
        (_, true, fsync, _) => finding(
            "persistence",
            Level::Warn,
            format!("appendonly yes, appendfsync {}: up to a second of acknowledged jobs can be lost in a crash; use appendfsync always with durability fsync, or replicas with durability replicated", fsync.unwrap_or("?")),
        ),
        (_, false, _, true) => finding("persistence", Level::Warn, "RDB snapshots only: a crash loses every job since the last snapshot; turn on appendonly"),
        (_, false, _, false) => finding("persistence", Level::Warn, "no persistence: a restart loses every job; fine for tests, not for production (appendonly yes)"),
    });
    let version: Vec<u32> = report
        .version
        .split('.')
        .filter_map(|p| p.parse().ok())
        .collect();
    let at_least = |major: u32, minor: u32| {
        let (a, b) = (
            version.first().copied().unwrap_or(0),
            version.get(1).copied().unwrap_or(0),
        );
        (a, b) >= (major, minor)
    };
    out.push(if !at_least(6, 2) {
        finding("version", Level::Fail, format!("Redis {}: Sluice needs 6.2 or later (ZRANGE BYSCORE REV, XAUTOCLAIM)", report.version))
    } else if !at_least(7, 0) {
        finding("version", Level::Warn, format!("Redis {}: 7.0 reports consumer-group lag, which lets listings and stats skip empty priority levels", report.version))
    } else if !at_least(7, 4) {
        finding("version", Level::Ok, format!("Redis {}; 7.4 adds per-field expiry (HEXPIRE), which would let Sluice expire call records inside one hash", report.version))
    } else {
        finding("version", Level::Ok, format!("Redis {}", report.version))
    });
    if report.maxmemory.as_deref() == Some("0") {
        out.push(finding("maxmemory", Level::Warn, "no maxmemory: a runaway queue grows until the machine swaps or the kernel kills Redis; set maxmemory with noeviction"));
    }
    out.push(finding(
        "replicas",
        if report.connected_replicas > 0 {
            Level::Ok
        } else {
            Level::Warn
        },
        format!(
            "{} connected: durability replicated needs at least one",
            report.connected_replicas
        ),
    ));
    out
}

/// Print the findings; an error (exit 1) when one must be fixed.
pub async fn run(client: &Client, json: bool) -> anyhow::Result<()> {
    let report = client.server_report().await?;
    let findings = check(&report);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "server": report, "findings": findings })
            )?
        );
    } else {
        for f in &findings {
            let mark = match f.level {
                Level::Ok => "ok  ",
                Level::Warn => "warn",
                Level::Fail => "FAIL",
            };
            println!("{mark}  {:<17} {}", f.check, f.message);
        }
    }
    let failed: Vec<&str> = findings
        .iter()
        .filter(|f| f.level == Level::Fail)
        .map(|f| f.check)
        .collect();
    if !failed.is_empty() {
        bail!("the Redis server needs fixing: {}", failed.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(policy: &str, aof: &str, fsync: &str, save: &str, version: &str) -> ServerReport {
        ServerReport {
            version: version.into(),
            mode: "standalone".into(),
            maxmemory_policy: Some(policy.into()),
            maxmemory: Some("1000000".into()),
            appendonly: Some(aof.into()),
            appendfsync: Some(fsync.into()),
            save: Some(save.into()),
            connected_replicas: 1,
        }
    }

    fn level(findings: &[Finding], check: &str) -> Level {
        findings
            .iter()
            .find(|f| f.check == check)
            .expect(check)
            .level
    }

    #[test]
    fn eviction_fails_and_weak_persistence_warns() {
        let good = check(&report("noeviction", "yes", "always", "", "7.2.4"));
        assert!(good.iter().all(|f| f.level == Level::Ok), "{good:?}");
        let evicting = check(&report("allkeys-lru", "yes", "always", "", "7.2.4"));
        assert_eq!(level(&evicting, "maxmemory-policy"), Level::Fail);
        let everysec = check(&report("noeviction", "yes", "everysec", "", "7.2.4"));
        assert_eq!(level(&everysec, "persistence"), Level::Warn);
        let none = check(&report("noeviction", "no", "everysec", "", "7.2.4"));
        assert!(
            none.iter()
                .any(|f| f.message.contains("a restart loses every job"))
        );
        let old = check(&report("noeviction", "yes", "always", "", "6.0.9"));
        assert_eq!(level(&old, "version"), Level::Fail);
        let six = check(&report("noeviction", "yes", "always", "", "6.2.14"));
        assert_eq!(level(&six, "version"), Level::Warn);
    }
}
