//! The server's settings, the `[api]` section of the config file: where it
//! listens, its limits, its API keys and whom it trusts to name a client.
//! The `sluice` binary's config schema holds them as they are.

use std::net::SocketAddr;

use serde::Deserialize;

/// `[api]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on.
    pub listen: Option<SocketAddr>,
    /// Serve `/health*` and `/metrics` without an API key.
    pub open_health: bool,
    /// Most jobs in one batch enqueue.
    pub max_batch: usize,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// API keys. With none, the API is open (for a laptop); a warning says so.
    pub keys: Vec<ApiKeySection>,
    /// Secret that signs dashboard sessions (`SLUICE_SESSION_SECRET` wins).
    /// API processes behind one address must share it; without one each
    /// process makes its own and sessions end when it restarts.
    pub session_secret: Option<String>,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names
    /// the client, for login throttling and the audit log. Others' headers
    /// are ignored: anyone can send one.
    pub trusted_proxies: Vec<String>,
}

/// A trusted proxy that is neither an address nor a CIDR range.
#[derive(Debug, thiserror::Error)]
#[error("api.trusted_proxies: {0:?} is not an address or a CIDR range")]
pub struct BadProxy(pub String);

impl ApiConfig {
    /// The trusted proxies, parsed.
    pub fn trusted_proxies(&self) -> Result<Vec<ipnet::IpNet>, BadProxy> {
        self.trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| BadProxy(p.clone()))
            })
            .collect()
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            listen: None,
            open_health: true,
            max_batch: 1000,
            max_body_bytes: 2 * 1024 * 1024,
            keys: Vec::new(),
            session_secret: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// One `[[api.keys]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySection {
    /// A name for logs and metrics.
    pub name: String,
    /// SHA-256 of the key, hex (`sluice keys new` prints both).
    pub sha256: String,
    /// What the key may do.
    pub scope: Scope,
    /// Most requests per second with this key, across every API process
    /// (sliding window in Redis). None: no limit.
    pub requests_per_second: Option<u32>,
}

/// What an API key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Look, never change.
    Read,
    /// Everything.
    Admin,
}
