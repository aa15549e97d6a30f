//! What a [`Client`](crate::Client) itself reads: the registry of queue
//! names, and the server's answers to PING, INFO and CONFIG.

use crate::error::Result;
use crate::keys::queues_key;

use super::PrefixConn;

/// Redis access for the client's own reads.
#[derive(Debug, Clone)]
pub(crate) struct ClientStore {
    redis: PrefixConn,
}

impl ClientStore {
    pub(crate) fn new(redis: PrefixConn) -> Self {
        Self { redis }
    }

    /// Names of every queue opened under this prefix (unsorted).
    pub(crate) async fn queue_names(&self) -> Result<Vec<String>> {
        let key = queues_key(self.redis.prefix());
        self.redis
            .query("list queues", redis::cmd("SMEMBERS").arg(key))
            .await
    }

    /// Whether Redis answers PING now (one try, no retries).
    pub(crate) async fn ping(&self) -> bool {
        let mut conn = self.redis.conn();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok()
    }

    /// The server's `append*` settings as name/value pairs (one try; empty
    /// when it does not answer).
    pub(crate) async fn append_settings(&self) -> Vec<String> {
        let mut conn = self.redis.conn();
        redis::cmd("CONFIG")
            .arg("GET")
            .arg("append*")
            .query_async(&mut conn)
            .await
            .unwrap_or_default()
    }

    /// The replicas connected to the server (one try; 0 when it does not
    /// answer).
    pub(crate) async fn connected_replicas(&self) -> u32 {
        let mut conn = self.redis.conn();
        let info: redis::RedisResult<String> = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut conn)
            .await;
        info.unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("connected_slaves:"))
            .and_then(|n| n.trim().parse::<u32>().ok())
            .unwrap_or(0)
    }

    /// `INFO server` and `INFO replication` text, and the `CONFIG GET`
    /// pairs of `names`; one try each (a managed Redis may refuse CONFIG:
    /// its pairs are then empty).
    pub(crate) async fn server_facts(&self, names: &[&str]) -> Result<(String, Vec<String>)> {
        let info: String = self
            .redis
            .query(
                "server info",
                redis::cmd("INFO").arg("server").arg("replication"),
            )
            .await?;
        let mut pairs = Vec::new();
        for name in names {
            let mut conn = self.redis.conn();
            let got: Vec<String> = redis::cmd("CONFIG")
                .arg("GET")
                .arg(*name)
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            pairs.extend(got);
        }
        Ok((info, pairs))
    }
}
