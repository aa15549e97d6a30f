//! Chromium gets none of this process's secrets: the cookie key, the
//! database URL, Redis's, the session secret and S3's keys are in the
//! environment of the process that launches it. A stand-in for Chromium
//! writes down the environment it was given.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use sluice_trading::browser::{BrowserPool, BrowserSettings};

#[tokio::test]
async fn chromium_is_launched_with_a_minimal_environment() {
    let dir = std::env::temp_dir().join(format!("sluice-browser-env-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let seen = dir.join("env.txt");
    let fake = dir.join("chromium");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\nenv > {}\nexit 1\n", seen.display()),
    )
    .expect("write");
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let pool = BrowserPool::new(BrowserSettings {
        executable: fake,
        ..BrowserSettings::default()
    });
    let launched = pool
        .capture("http://127.0.0.1:9/", &[], Duration::from_secs(30))
        .await;
    assert!(launched.is_err(), "the stand-in is no browser");
    let env = std::fs::read_to_string(&seen).expect("the stand-in ran");
    // Cargo gives every test process variables of its own; any variable of
    // the parent stands for its secrets.
    let parents: Vec<String> = std::env::vars()
        .filter(|(k, v)| !v.is_empty() && k.starts_with("CARGO"))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    assert!(!parents.is_empty(), "cargo set no variable to look for");
    for line in &parents {
        assert!(
            !env.lines().any(|l| l == line),
            "{line} reached Chromium:\n{env}"
        );
    }
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
    let _ = std::fs::remove_dir_all(&dir);
}
