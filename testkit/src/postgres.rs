//! PostgreSQL for tests: a schema of the test's own on the shared server,
//! dropped afterwards, and a private server that can be stopped like a
//! crash and started again.

/// The shared PostgreSQL the suite runs against: `SLUICE_TEST_DATABASE_URL`,
/// or the local server's `test` database.
pub fn database_url() -> String {
    std::env::var("SLUICE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A schema name no other test (or run) uses, on [`database_url`]; the
/// schema (created by whoever migrates it) is dropped with everything in
/// it when this is dropped.
#[derive(Debug)]
pub struct PgSchema {
    /// The schema's name: `t_<tag>_<pid>_<random>`.
    pub name: String,
}

impl PgSchema {
    /// A fresh name; `tag` makes it easy to tell apart.
    pub fn new(tag: &str) -> Self {
        Self {
            name: format!(
                "t_{tag}_{}_{:08x}",
                std::process::id(),
                rand::random::<u32>()
            ),
        }
    }
}

impl Drop for PgSchema {
    /// Drops the schema. The drop blocks its thread, which in a
    /// `#[tokio::test]` is the runtime's only one: a task of the test still
    /// holding a lock in the schema (an audit COPY under way when the test
    /// ended) can then never finish, and a plain DROP waited for it for
    /// ever. So the DROP waits for locks 5 s at most; then the sessions
    /// that hold locks in the schema, the test's own leftovers, are ended
    /// and the DROP runs again.
    fn drop(&mut self) {
        let drop_schema = format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name);
        let dropped = psql(&["SET lock_timeout = '5s'", &drop_schema]);
        if !dropped {
            let holders = format!(
                "SELECT pg_terminate_backend(l.pid) FROM pg_locks l \
                 JOIN pg_class c ON c.oid = l.relation \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = '{}' AND l.pid <> pg_backend_pid()",
                self.name
            );
            psql(&[&holders]);
            psql(&["SET lock_timeout = '5s'", &drop_schema]);
        }
    }
}

/// Run `commands` in one `psql` session on [`database_url`], stopping at
/// the first error; whether all of them succeeded.
fn psql(commands: &[&str]) -> bool {
    let mut psql = std::process::Command::new("psql");
    psql.arg(database_url())
        .args(["-q", "-v", "ON_ERROR_STOP=1"]);
    for command in commands {
        psql.arg("-c").arg(command);
    }
    psql.output().is_ok_and(|o| o.status.success())
}

/// A PostgreSQL server of the test's own on a free loopback port, run as
/// the `postgres` user when the tests run as root (PostgreSQL refuses root).
/// Stopped and deleted when dropped.
#[derive(Debug)]
pub struct PrivatePostgres {
    /// Its port on loopback.
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

    /// Create a cluster in a fresh directory and start it.
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
            port: crate::free_port(),
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

    /// Its data directory (`postgresql.conf`, certificates).
    pub fn data_dir(&self) -> std::path::PathBuf {
        self.dir.join("data")
    }

    /// Its URL (database `postgres`).
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
