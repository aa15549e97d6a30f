//! A Redis Cluster of private `redis-server` processes on loopback ports,
//! made with `redis-cli --cluster create`.
//!
//! Each node runs under a small shell watchdog that kills it when the test
//! process is gone, so a cluster shared by a whole test binary (see
//! [`shared`]) never outlives it; a [`TestCluster`] that is dropped stops its
//! nodes by PID at once.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One node: its port and the watchdog shell that runs it.
#[derive(Debug)]
pub struct Node {
    pub port: u16,
    /// The port the node tells clients and replicas to use (a fault
    /// proxy's), when it is not its own.
    pub announce: Option<u16>,
    watchdog: Option<Child>,
}

impl Node {
    /// The port clients reach it at.
    pub fn client_port(&self) -> u16 {
        self.announce.unwrap_or(self.port)
    }
}

/// A free port for a cluster node (see `free_port`).
pub fn free_node_port() -> u16 {
    free_port()
}

/// A running cluster.
#[derive(Debug)]
pub struct TestCluster {
    pub nodes: Vec<Node>,
    dir: PathBuf,
}

/// Cluster nodes take their ports from below the kernel's ephemeral range
/// (32768 and up here, and on most Linux machines), bus ports included:
/// a port picked from the ephemeral range can be taken by any outgoing
/// connection's local end before the node binds it, and the node then never
/// starts.
const NODE_PORTS: std::ops::RangeInclusive<u16> = 10_000..=22_767;

/// A free port whose cluster bus port (the port + 10000) is free too, both
/// below the ephemeral range (see `NODE_PORTS`).
fn free_port() -> u16 {
    loop {
        let port = rand::random_range(NODE_PORTS);
        let free = |p: u16| std::net::TcpListener::bind(("127.0.0.1", p)).is_ok();
        if free(port) && free(port + 10_000) {
            return port;
        }
    }
}

/// Answer of one command to one node, as text.
pub fn node_command(port: u16, args: &[&str]) -> Option<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).ok()?;
    let mut conn = client
        .get_connection_with_timeout(Duration::from_millis(500))
        .ok()?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    let value: redis::Value = cmd.query(&mut conn).ok()?;
    Some(match value {
        redis::Value::BulkString(b) => String::from_utf8_lossy(&b).into_owned(),
        redis::Value::SimpleString(s) => s,
        redis::Value::VerbatimString { text, .. } => text,
        redis::Value::Okay => "OK".to_owned(),
        redis::Value::Int(i) => i.to_string(),
        other => format!("{other:?}"),
    })
}

fn wait_until(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) {
    let started = Instant::now();
    while !ok() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl TestCluster {
    /// Start `primaries` primaries with `replicas` replicas each and wait
    /// until every node reports `cluster_state:ok`.
    pub fn start(primaries: usize, replicas: usize) -> Self {
        let ports: Vec<(u16, Option<u16>)> = (0..primaries * (1 + replicas))
            .map(|_| (free_port(), None))
            .collect();
        Self::start_on(primaries, replicas, &ports)
    }

    /// Start a cluster on the given node ports, each with the port it
    /// announces to clients and replicas (a fault proxy in front of it), so
    /// every client's traffic, redirections included, goes through the
    /// proxies. Nodes still meet each other on their own bus ports.
    pub fn start_on(primaries: usize, replicas: usize, ports: &[(u16, Option<u16>)]) -> Self {
        assert_eq!(ports.len(), primaries * (1 + replicas), "one port per node");
        let dir = std::env::temp_dir().join(format!(
            "sluice-cluster-{}-{:08x}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&dir).expect("cluster dir");
        let mut cluster = Self {
            nodes: Vec::new(),
            dir,
        };
        for &(port, announce) in ports {
            let mut node = Node {
                port,
                announce,
                watchdog: None,
            };
            cluster.run(&mut node);
            cluster.nodes.push(node);
        }
        for node in &cluster.nodes {
            let port = node.port;
            wait_until(Duration::from_secs(10), "node start", || {
                node_command(port, &["PING"]).as_deref() == Some("PONG")
            });
        }
        let addrs: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli --cluster create");
        assert!(
            out.status.success(),
            "cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        cluster.wait_ok();
        cluster
    }

    /// Start (again) `node` under a watchdog that kills it when this test
    /// process ends.
    fn run(&self, node: &mut Node) {
        let port = node.port;
        let announce = node.announce.map_or(String::new(), |a| {
            format!(
                "--cluster-announce-port {a} --cluster-announce-bus-port {}",
                port + 10_000
            )
        });
        let script = format!(
            "redis-server --port {port} --bind 127.0.0.1 --cluster-enabled yes {announce} \
             --cluster-config-file nodes-{port}.conf --cluster-node-timeout 1000 \
             --save '' --appendonly no --dir '{dir}' >/dev/null 2>&1 & \
             node=$!; trap 'kill -9 $node 2>/dev/null; rm -f \"{dir}/nodes-{port}.conf\"; exit 0' TERM; \
             while kill -0 {parent} 2>/dev/null && kill -0 $node 2>/dev/null; do sleep 0.5; done; \
             kill -9 $node 2>/dev/null; rm -f '{dir}/nodes-{port}.conf'; rmdir '{dir}' 2>/dev/null",
            dir = self.dir.display(),
            parent = std::process::id(),
        );
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        node.watchdog = Some(child);
    }

    /// Wait until every running node says the cluster is ok.
    pub fn wait_ok(&self) {
        for node in self.nodes.iter().filter(|n| n.watchdog.is_some()) {
            let port = node.port;
            wait_until(Duration::from_secs(20), "cluster_state:ok", || {
                node_command(port, &["CLUSTER", "INFO"])
                    .is_some_and(|info| info.contains("cluster_state:ok"))
            });
            // A replica counts once it has synced with its primary.
            wait_until(Duration::from_secs(20), "replica in sync", || {
                node_command(port, &["INFO", "replication"]).is_some_and(|info| {
                    !info.contains("role:slave") || info.contains("master_link_status:up")
                })
            });
        }
    }

    /// The engine's URL for this cluster (every node as a seed).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.client_port()))
            .collect();
        format!("redis+cluster://{}/", hosts.join(","))
    }

    /// The node that serves `key` as primary now.
    pub fn primary_of(&self, key: &str) -> u16 {
        self.try_primary_of(key)
            .unwrap_or_else(|| panic!("no primary serves the slot of {key}"))
    }

    /// The node that serves `key` as primary now, if one does (none in the
    /// middle of a failover).
    pub fn try_primary_of(&self, key: &str) -> Option<u16> {
        let slot: u16 = self
            .nodes
            .iter()
            .filter(|n| n.watchdog.is_some())
            .find_map(|n| node_command(n.port, &["CLUSTER", "KEYSLOT", key]))
            .and_then(|s| s.parse().ok())
            .expect("keyslot");
        let nodes = self
            .nodes
            .iter()
            .filter(|n| n.watchdog.is_some())
            .find_map(|n| node_command(n.port, &["CLUSTER", "NODES"]))
            .expect("cluster nodes");
        for line in nodes.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() < 9 || !fields[2].contains("master") || fields[2].contains("fail") {
                continue;
            }
            let port: u16 = fields[1]
                .split('@')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            for range in &fields[8..] {
                let (lo, hi) = range.split_once('-').unwrap_or((range, range));
                if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>())
                    && (lo..=hi).contains(&slot)
                {
                    // CLUSTER NODES shows announced ports: the node's own.
                    return Some(
                        self.nodes
                            .iter()
                            .find(|n| n.announce == Some(port))
                            .map_or(port, |n| n.port),
                    );
                }
            }
        }
        None
    }

    /// SIGKILL the node on `port` (and its watchdog).
    pub fn kill(&mut self, port: u16) {
        if let Some(node) = self.nodes.iter_mut().find(|n| n.port == port)
            && let Some(mut watchdog) = node.watchdog.take()
        {
            let _ = Command::new("kill")
                .args(["-TERM", &watchdog.id().to_string()])
                .status();
            let _ = watchdog.wait();
        }
    }

    /// Ports of the nodes that are running.
    pub fn running_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|n| n.watchdog.is_some())
            .map(|n| n.port)
            .collect()
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let ports: Vec<u16> = self.nodes.iter().map(|n| n.port).collect();
        for port in ports {
            self.kill(port);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One 3-primary cluster for the whole test process, started at first use.
/// Its nodes die with the test process (see the module docs).
pub fn shared() -> &'static TestCluster {
    static CLUSTER: OnceLock<TestCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| TestCluster::start(3, 0))
}
