//! TLS to Redis (`rediss://`) and to PostgreSQL (`sslmode=verify-full`):
//! the `sluice` binary against a Redis and a PostgreSQL of the test's own
//! that speak TLS with a certificate of a test authority, trusted through
//! `SSL_CERT_FILE` (Redis) and `sslrootcert` (PostgreSQL).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Prefix;
use sluice_testkit::{Persistence, PrivatePostgres, RedisServer, free_port};

/// A test authority and a certificate it signed for `localhost` and
/// 127.0.0.1, in `dir`: (ca.pem, server.crt, server.key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).expect("dir");
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=sluice test authority",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "ext",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.crt"),
        dir.join("server.key"),
    )
}

fn sluice(args: &[&str], env: &[(&str, &Path)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .args(args)
        .env_remove("SLUICE_REDIS_URL")
        .env_remove("SLUICE_CONFIG")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().expect("run sluice")
}

#[test]
fn redis_over_tls_with_the_servers_certificate_checked() {
    let dir = std::env::temp_dir().join(format!("sluice-tls-redis-{}", std::process::id()));
    let (ca, crt, key) = certificates(&dir);
    let tls_port = free_port().to_string();
    let _server = RedisServer::start_with(
        Persistence::None,
        &[
            "--tls-port",
            &tls_port,
            "--tls-cert-file",
            crt.to_str().expect("path"),
            "--tls-key-file",
            key.to_str().expect("path"),
            "--tls-ca-cert-file",
            ca.to_str().expect("path"),
            "--tls-auth-clients",
            "no",
        ],
    );
    let prefix = Prefix::new("tls");
    let url = format!("rediss://localhost:{tls_port}/");
    let out = sluice(
        &[
            "--redis-url",
            &url,
            "--prefix",
            &prefix.name,
            "enqueue",
            "orders",
        ],
        &[("SSL_CERT_FILE", &ca)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Not trusting the authority, the client refuses the server.
    let out = sluice(
        &["--redis-url", &url, "--prefix", &prefix.name, "stats"],
        &[],
    );
    assert!(
        !out.status.success(),
        "a server of an unknown authority was trusted"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn postgresql_over_tls_with_verify_full() {
    let dir = std::env::temp_dir().join(format!("sluice-tls-pg-{}", std::process::id()));
    let (ca, crt, key) = certificates(&dir);
    let pg = PrivatePostgres::start();
    let data = pg.data_dir();
    std::fs::copy(&crt, data.join("server.crt")).expect("crt");
    std::fs::copy(&key, data.join("server.key")).expect("key");
    let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("conf");
    conf.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
    std::fs::write(data.join("postgresql.conf"), conf).expect("conf");
    // Only TLS connections are let in.
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
    )
    .expect("hba");
    let owned = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "if [ \"$(id -u)\" = 0 ]; then chown postgres:postgres {d}/server.crt {d}/server.key {d}/postgresql.conf {d}/pg_hba.conf; fi; chmod 0600 {d}/server.key",
            d = data.display()
        ))
        .status()
        .expect("chown");
    assert!(owned.success());
    pg.stop();
    pg.run();
    let url = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        pg.port,
        ca.display()
    );
    let config = dir.join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[trading]\ndatabase_url = {url:?}\nscreenshots_dir = {:?}\nbackups_dir = {:?}\n",
            dir.join("shots"),
            dir.join("backups")
        ),
    )
    .expect("config");
    let out = sluice(
        &[
            "--config",
            config.to_str().expect("path"),
            "trading",
            "migrate",
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
