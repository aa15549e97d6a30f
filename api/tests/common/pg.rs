//! A PostgreSQL schema of the test's own, migrated, dropped afterwards.

use sluice_jobs::db::DbConfig;

pub fn database_url() -> String {
    std::env::var("SLUICE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub struct TestSchema {
    pub db: DbConfig,
}

impl TestSchema {
    pub async fn new(tag: &str) -> Self {
        let mut db = DbConfig::new(database_url());
        db.schema = Some(format!(
            "t_{tag}_{}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        sluice_jobs::db::migrate(&db).await.expect("migrate");
        Self { db }
    }

    pub fn name(&self) -> &str {
        self.db.schema.as_deref().unwrap_or_default()
    }

    pub fn pool(&self) -> sqlx::PgPool {
        self.db.pool().expect("pool")
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let _ = std::process::Command::new("psql")
            .arg(database_url())
            .arg("-qc")
            .arg(format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name()))
            .output();
    }
}

/// A PostgreSQL server of the test's own on a free loopback port, run as
/// the `postgres` user when the tests run as root (PostgreSQL refuses root).
/// Stopped and deleted when dropped.
pub struct PrivatePostgres {
    pub port: u16,
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

impl PrivatePostgres {
    fn command(&self, program: &str) -> std::process::Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            std::process::Command::new(path)
        }
    }

    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is installed")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("initdb");
        let dir = std::env::temp_dir().join(format!(
            "sluice-pg-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("dir");
        if is_root() {
            std::process::Command::new("chown")
                .args(["postgres:postgres"])
                .arg(&dir)
                .status()
                .expect("chown");
        }
        let pg = Self {
            port: super::free_port(),
            dir,
            bin,
        };
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(pg.dir.join("data"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.run();
        pg
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Start (again) on the same data and port.
    pub fn run(&self) {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .arg("-o")
            .arg(format!(
                "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off",
                self.port,
                self.dir.display()
            ))
            .args(["-w", "start"])
            .output()
            .expect("pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stop at once (like a crash: no checkpoint).
    pub fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
