//! A private `redis-server` on a free loopback port, with its own directory
//! (for an append-only file), that can be SIGKILLed and started again on the
//! same port and file.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a private server keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Nothing on disk.
    None,
    /// An append-only file fsynced at every write.
    AofAlways,
    /// An append-only file fsynced every second.
    AofEverySec,
}

/// A free TCP port on loopback (free when asked; taken by whoever binds it
/// next).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// See the module docs. Killed and its directory deleted when dropped.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    persistence: Persistence,
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// Start a server and wait until it answers.
    pub fn start(persistence: Persistence) -> Self {
        Self::start_with(persistence, &[])
    }

    /// Start a server with extra `redis-server` arguments.
    pub fn start_with(persistence: Persistence, extra: &[&str]) -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "sluice-redis-{}-{port}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("redis dir {}: {e}", dir.display()));
        let mut server = Self {
            port,
            dir,
            persistence,
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            child: None,
        };
        server.restart();
        server
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Start again (after [`RedisServer::kill`]) on the same port and
    /// append-only file, and wait until it has loaded it and answers.
    pub fn restart(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", ""])
            .arg("--dir")
            .arg(&self.dir);
        match self.persistence {
            Persistence::None => cmd.args(["--appendonly", "no"]),
            Persistence::AofAlways => cmd.args(["--appendonly", "yes", "--appendfsync", "always"]),
            Persistence::AofEverySec => {
                cmd.args(["--appendonly", "yes", "--appendfsync", "everysec"])
            }
        };
        cmd.args(&self.extra);
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start redis-server: {e}"));
        self.child = Some(child);
        let started = Instant::now();
        while !self.answers() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "redis-server on port {} did not start",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether it answers PING (and has loaded its data).
    pub fn answers(&self) -> bool {
        redis::Client::open(self.url().as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// SIGKILL, as a crash: nothing is flushed on the way out.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Its process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
