//! One connection type for a single Redis and for Redis Cluster, so the
//! store runs unchanged on both.
//!
//! A URL `redis://host:port/` is a single server (reconnecting
//! [`ConnectionManager`]); `redis+cluster://host1:port1,host2:port2/` (or
//! `rediss+cluster://` for TLS) lists seed nodes of a cluster, reached
//! through redis-rs `cluster-async`, which follows MOVED and ASK, retries
//! TRYAGAIN and CLUSTERDOWN, and reconnects to nodes that went away. Every
//! key of a queue shares the queue's hash tag, so every script and pipeline
//! of one queue goes to one node.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};
use tokio::sync::OnceCell;

/// Where Redis is: one server, or the seed nodes of a cluster.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    // Boxed: with TLS compiled in a client holds its TLS settings.
    Single(Box<redis::Client>),
    Cluster(Vec<String>),
}

/// The URL schemes that mean "a cluster, these are seed nodes".
const CLUSTER_SCHEMES: [(&str, &str); 2] = [
    ("redis+cluster://", "redis://"),
    ("rediss+cluster://", "rediss://"),
];

impl Target {
    /// Parse `url` (see the module docs).
    pub(crate) fn parse(url: &str) -> RedisResult<Self> {
        for (cluster_scheme, node_scheme) in CLUSTER_SCHEMES {
            if let Some(rest) = url.strip_prefix(cluster_scheme) {
                let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
                let nodes: Vec<String> = hosts
                    .split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(|h| format!("{node_scheme}{h}/{path}"))
                    .collect();
                if nodes.is_empty() {
                    return Err(redis::RedisError::from((
                        redis::ErrorKind::InvalidClientConfig,
                        "a cluster URL needs at least one host:port",
                    )));
                }
                // Check every node URL now, not at the first command.
                for node in &nodes {
                    redis::Client::open(node.as_str())?;
                }
                return Ok(Target::Cluster(nodes));
            }
        }
        Ok(Target::Single(Box::new(redis::Client::open(url)?)))
    }

    /// A connection whose commands time out after `response_timeout`,
    /// connected now.
    pub(crate) async fn connect(
        &self,
        response_timeout: Duration,
        connect_timeout: Duration,
    ) -> RedisResult<Conn> {
        match self {
            Target::Single(client) => {
                let config = manager_config(response_timeout, connect_timeout);
                Ok(Conn::Single(
                    ConnectionManager::new_with_config((**client).clone(), config).await?,
                ))
            }
            Target::Cluster(_) => {
                let conn = self.connect_lazy(response_timeout, connect_timeout)?;
                if let Conn::Cluster(lazy) = &conn {
                    lazy.get().await?;
                }
                Ok(conn)
            }
        }
    }

    /// A connection that connects on first use (and again after a failed
    /// first try): for processes that must start while Redis is down.
    pub(crate) fn connect_lazy(
        &self,
        response_timeout: Duration,
        connect_timeout: Duration,
    ) -> RedisResult<Conn> {
        match self {
            Target::Single(client) => {
                let config = manager_config(response_timeout, connect_timeout);
                Ok(Conn::Single(ConnectionManager::new_lazy_with_config(
                    (**client).clone(),
                    config,
                )?))
            }
            Target::Cluster(nodes) => {
                let client = ClusterClientBuilder::new(nodes.clone())
                    .response_timeout(response_timeout)
                    .connection_timeout(connect_timeout)
                    .retries(4)
                    .min_retry_wait(50)
                    .max_retry_wait(1000)
                    .build()?;
                Ok(Conn::Cluster(Arc::new(LazyCluster {
                    client,
                    conn: OnceCell::new(),
                })))
            }
        }
    }
}

/// A cluster connection made at first use. redis-rs's cluster connection
/// reconnects to nodes by itself once made; only the first connect can
/// fail for good, and then the next call tries again.
pub(crate) struct LazyCluster {
    client: ClusterClient,
    conn: OnceCell<ClusterConnection>,
}

impl LazyCluster {
    async fn get(&self) -> RedisResult<ClusterConnection> {
        self.conn
            .get_or_try_init(|| self.client.get_async_connection())
            .await
            .cloned()
    }
}

fn manager_config(
    response_timeout: Duration,
    connect_timeout: Duration,
) -> ConnectionManagerConfig {
    // The manager's own reconnect retries stay few: our calls retry with
    // backoff around it, so a call fails within a bounded time.
    ConnectionManagerConfig::new()
        .set_response_timeout(Some(response_timeout))
        .set_connection_timeout(Some(connect_timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500))
}

/// A connection to a single Redis or to a cluster. Cheap to clone; clones
/// share the underlying multiplexed connection.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(Arc<LazyCluster>),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(lazy) => Box::pin(async move {
                let mut c = lazy.get().await?;
                c.req_packed_command(cmd).await
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(lazy) => Box::pin(async move {
                let mut c = lazy.get().await?;
                c.req_packed_commands(pipeline, offset, count).await
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            // A cluster has only database 0.
            Conn::Cluster(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_urls_list_seed_nodes() {
        let Ok(Target::Cluster(nodes)) =
            Target::parse("redis+cluster://127.0.0.1:7000,127.0.0.1:7001/")
        else {
            panic!("not a cluster");
        };
        assert_eq!(
            nodes,
            ["redis://127.0.0.1:7000/", "redis://127.0.0.1:7001/"]
        );
        assert!(matches!(
            Target::parse("redis://127.0.0.1:6379/"),
            Ok(Target::Single(_))
        ));
        assert!(Target::parse("redis+cluster:///").is_err());
        assert!(Target::parse("redis+cluster://:notaport/").is_err());
    }
}
