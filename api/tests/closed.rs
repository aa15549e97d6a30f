//! Closed by default: what the `sluice` binary refuses to start with, and
//! what it never prints. `serve` on an address other than loopback with no
//! API key; weak or placeholder session secrets; the Redis password in
//! `--help`.

use crate::common;

use std::io::Read;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Prefix, free_port};

/// A config file of the test's own, deleted when dropped.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(prefix: &Prefix, body: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{}.toml", prefix.name));
        let text = format!(
            "redis_url = {:?}\nprefix = {:?}\n{body}",
            prefix.url, prefix.name
        );
        std::fs::write(&path, text).expect("write config");
        Self(path)
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn sluice(config: &ConfigFile, args: &[&str], env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .arg("--config")
        .arg(&config.0)
        .args(args)
        .env_remove("SLUICE_REDIS_URL")
        .env_remove("SLUICE_PREFIX")
        .env_remove("SLUICE_SESSION_SECRET")
        .env_remove("SLUICE_INSECURE_OPEN")
        .env("SLUICE_LOG", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    command.spawn().expect("start sluice")
}

/// How a `serve` with `args` (listening on `port`) and `env` went: `Ok`
/// once it accepts connections on loopback `port` (it started; it is then
/// stopped), or its exit code and stderr when it exited first.
fn serve_outcome(
    config: &ConfigFile,
    port: u16,
    args: &[&str],
    env: &[(&str, &str)],
) -> Result<(), (i32, String)> {
    let mut child = sluice(config, args, env);
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            child
                .stderr
                .take()
                .expect("stderr")
                .read_to_string(&mut err)
                .expect("read stderr");
            return Err((status.code().unwrap_or(-1), err));
        }
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(());
        }
        assert!(Instant::now() < until, "serve neither started nor exited");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_refuses_an_open_api_on_an_address_other_than_loopback() {
    let prefix = Prefix::new("closed-serve");
    let config = ConfigFile::new(&prefix, "");
    let port = free_port();
    let everywhere = format!("0.0.0.0:{port}");
    let (code, err) = serve_outcome(
        &config,
        port,
        &["serve", "--no-schedules", "--listen", &everywhere],
        &[],
    )
    .expect_err("serve started an open API on 0.0.0.0");
    assert_ne!(code, 0);
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.contains("no API keys"), "{err}");
    assert!(err.contains("--insecure-open"), "{err}");
    // On loopback, and on any address when told it is meant, it starts.
    let port = free_port();
    serve_outcome(
        &config,
        port,
        &[
            "serve",
            "--no-schedules",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
        &[],
    )
    .expect("serve on loopback");
    let port = free_port();
    serve_outcome(
        &config,
        port,
        &[
            "serve",
            "--no-schedules",
            "--insecure-open",
            "--listen",
            &format!("0.0.0.0:{port}"),
        ],
        &[],
    )
    .expect("serve told it is meant to be open");
}

#[test]
fn serve_refuses_weak_and_placeholder_session_secrets() {
    let prefix = Prefix::new("closed-secret");
    let keyed = "[[api.keys]]\nname = \"ops\"\nsha256 = \"a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3\"\nscope = \"admin\"\n";
    for (secret, from_env) in [
        ("CHANGE-ME", true),
        ("CHANGE-ME", false),
        ("hunter2", true),
        ("changeme-changeme-changeme-changeme", true),
        ("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true),
    ] {
        let body = if from_env {
            keyed.to_owned()
        } else {
            format!("[api]\nsession_secret = {secret:?}\n{keyed}")
        };
        let config = ConfigFile::new(&prefix, &body);
        let port = free_port();
        let loopback = format!("127.0.0.1:{port}");
        let env: &[(&str, &str)] = if from_env {
            &[("SLUICE_SESSION_SECRET", secret)]
        } else {
            &[]
        };
        let (code, err) = serve_outcome(
            &config,
            port,
            &["serve", "--no-schedules", "--listen", &loopback],
            env,
        )
        .expect_err(&format!("serve started with session secret {secret:?}"));
        assert_ne!(code, 0);
        assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
        assert!(err.contains("session secret"), "{secret:?}: {err}");
        assert!(!err.contains(secret), "the secret was printed: {err}");
    }
    // A strong one starts.
    let config = ConfigFile::new(&prefix, keyed);
    let port = free_port();
    serve_outcome(
        &config,
        port,
        &[
            "serve",
            "--no-schedules",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ],
        &[(
            "SLUICE_SESSION_SECRET",
            "q8Jx2vN7rT1mZ4pW9sK3bD6hF0yL5cAeG8uQ",
        )],
    )
    .expect("serve with a strong secret");
}

#[test]
fn help_never_prints_the_redis_password() {
    for args in [
        &["--help"][..],
        &["serve", "--help"][..],
        &["stats", "--help"][..],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(args)
            .env("SLUICE_REDIS_URL", "redis://:hunter2@127.0.0.1:6379/")
            .env("SLUICE_SESSION_SECRET", "hunter3-session")
            .output()
            .expect("run sluice");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("SLUICE_REDIS_URL"), "{args:?}: {text}");
        assert!(
            !text.contains("hunter2"),
            "{args:?} printed the password: {text}"
        );
        assert!(
            !text.contains("hunter3"),
            "{args:?} printed a secret: {text}"
        );
    }
}
