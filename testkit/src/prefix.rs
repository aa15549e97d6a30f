//! A key prefix of the test's own on a shared Redis (or Redis Cluster),
//! whose keys are deleted when it is dropped, so tests sharing one server
//! never see each other's keys and leave nothing behind.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A key prefix no other test (or run) uses: `sluicetest-<tag>-<pid>-<n>-<random>`.
pub fn unique_prefix(tag: &str) -> String {
    format!(
        "sluicetest-{tag}-{}-{}-{:06x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>() & 0xff_ffff
    )
}

/// The plain URL of every node behind `url`: the seeds of a
/// `redis+cluster://` URL, or `url` itself.
pub fn node_urls(url: &str) -> Vec<String> {
    match url.strip_prefix("redis+cluster://") {
        Some(rest) => rest
            .trim_end_matches('/')
            .split(',')
            .map(|h| format!("redis://{h}/"))
            .collect(),
        None => vec![url.to_owned()],
    }
}

/// Every key matching `pattern` on every node behind `url`, with the node
/// that holds it. Nodes that do not answer are skipped.
pub fn keys_on_nodes(url: &str, pattern: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for node in node_urls(url) {
        let conn = redis::Client::open(node.as_str())
            .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(1)));
        if let Ok(mut conn) = conn {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query(&mut conn)
                .unwrap_or_default();
            found.extend(keys.into_iter().map(|k| (node.clone(), k)));
        }
    }
    found
}

/// See the module docs.
#[derive(Debug)]
pub struct KeyPrefix {
    /// The prefix (keys are `<name>:...`).
    pub name: String,
    /// The Redis (or `redis+cluster://` seeds) it lives on.
    pub url: String,
}

impl KeyPrefix {
    /// A fresh prefix on `url`; `tag` makes its keys easy to tell apart.
    pub fn new(url: &str, tag: &str) -> Self {
        Self {
            name: unique_prefix(tag),
            url: url.to_owned(),
        }
    }

    /// Its keys on every node, sorted (blocking: call it from
    /// `spawn_blocking` in an async test that must not stall).
    pub fn keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = keys_on_nodes(&self.url, &format!("{}:*", self.name))
            .into_iter()
            .map(|(_, k)| k)
            .collect();
        keys.sort();
        keys
    }
}

impl Drop for KeyPrefix {
    fn drop(&mut self) {
        // Drop cannot be async: plain connections, one DEL per key (a
        // cluster node refuses a DEL across slots), pipelined per node.
        let found = keys_on_nodes(&self.url, &format!("{}:*", self.name));
        for node in node_urls(&self.url) {
            let mut pipe = redis::pipe();
            for (_, key) in found.iter().filter(|(n, _)| *n == node) {
                pipe.cmd("DEL").arg(key).ignore();
            }
            if let Ok(mut conn) = redis::Client::open(node.as_str())
                .and_then(|client| client.get_connection_with_timeout(Duration::from_secs(1)))
            {
                let _: redis::RedisResult<()> = pipe.query(&mut conn);
            }
        }
    }
}
