//! The server's settings, the `[api]` section of the config file: where it
//! listens, its limits, its API keys and whom it trusts to name a client.
//! The `sluice` binary's config schema holds them as they are.

use std::net::SocketAddr;

use serde::Deserialize;

/// `[api]`. Its `Debug` shows whether a session secret is set, never the
/// secret.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on.
    pub listen: Option<SocketAddr>,
    /// Serve `/health` and `/metrics` without an API key (the probes
    /// `/health/live` and `/health/ready` are always open). Off by default.
    pub open_health: bool,
    /// Most jobs in one batch enqueue.
    pub max_batch: usize,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Most seconds a client may take to send a request's headers; also
    /// how long an idle connection is kept open.
    pub header_timeout_secs: u64,
    /// Most seconds a client may take to send a request's body, from the
    /// end of its headers.
    pub body_timeout_secs: u64,
    /// Most connections open at once; more are closed as they arrive.
    pub max_connections: usize,
    /// Most queues: an enqueue that would make one more answers 409.
    pub max_queues: usize,
    /// API keys. With none, the API is open (for a laptop); a warning says
    /// so, and the server refuses to listen anywhere but on loopback unless
    /// `insecure_open` says that is meant.
    pub keys: Vec<ApiKeySection>,
    /// Serve an API without keys on an address other than loopback (off:
    /// refused at start).
    pub insecure_open: bool,
    /// Names an open API (no keys) answers to besides loopback ones
    /// (`localhost`, `127.0.0.1`, `[::1]`): a request whose `Host` names
    /// anything else gets 421, so a web page whose name was rebound to this
    /// address cannot use it.
    pub hosts: Vec<String>,
    /// Secret that signs dashboard sessions (`SLUICE_SESSION_SECRET` wins).
    /// API processes behind one address must share it; without one each
    /// process makes its own and sessions end when it restarts.
    pub session_secret: Option<String>,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names
    /// the client, for login throttling and the audit log. Others' headers
    /// are ignored: anyone can send one.
    pub trusted_proxies: Vec<String>,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("listen", &self.listen)
            .field("open_health", &self.open_health)
            .field("max_batch", &self.max_batch)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("header_timeout_secs", &self.header_timeout_secs)
            .field("body_timeout_secs", &self.body_timeout_secs)
            .field("max_connections", &self.max_connections)
            .field("max_queues", &self.max_queues)
            .field("keys", &self.keys)
            .field("insecure_open", &self.insecure_open)
            .field("hosts", &self.hosts)
            .field(
                "session_secret",
                &self.session_secret.as_ref().map(|_| "***"),
            )
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

/// A trusted proxy that is neither an address nor a CIDR range.
#[derive(Debug, thiserror::Error)]
#[error("api.trusted_proxies: {0:?} is not an address or a CIDR range")]
pub struct BadProxy(pub String);

/// Why the server refuses to start with its settings.
#[derive(Debug, thiserror::Error)]
pub enum Unsafe {
    /// No API keys, on an address others can reach.
    #[error(
        "refusing to serve on {0} with no API keys: anyone who reaches it could do everything. Add [[api.keys]] (`sluice keys new`), listen on 127.0.0.1, or say an open API is meant with --insecure-open (api.insecure_open)"
    )]
    OpenOnNetwork(SocketAddr),
    /// A session secret anyone could guess.
    #[error(
        "the session secret (api.session_secret or SLUICE_SESSION_SECRET) is {0}: use {MIN_SESSION_SECRET_CHARS} or more random characters (`openssl rand -base64 32`), or none for a random one per process"
    )]
    WeakSessionSecret(&'static str),
}

/// The shortest session secret accepted, characters.
pub const MIN_SESSION_SECRET_CHARS: usize = 32;

/// Why `secret` is too weak to sign sessions, if it is.
fn session_secret_weakness(secret: &str) -> Option<&'static str> {
    let folded = secret.to_ascii_lowercase();
    let placeholders = [
        "change",
        "replace",
        "example",
        "placeholder",
        "secret",
        "password",
    ];
    if placeholders.iter().any(|p| folded.contains(p)) {
        return Some("a placeholder");
    }
    if secret.chars().count() < MIN_SESSION_SECRET_CHARS {
        return Some("too short");
    }
    // Random text of this length has far more distinct characters.
    let distinct: std::collections::HashSet<char> = secret.chars().collect();
    if distinct.len() < 10 {
        return Some("not random");
    }
    None
}

impl ApiConfig {
    /// Whether an open API answers a request whose `Host` is `host`: a
    /// loopback name or address, or one of `hosts` (any port).
    pub fn answers_to(&self, host: &str) -> bool {
        let name = match host.strip_prefix('[') {
            // [::1]:8080
            Some(rest) => rest.split(']').next().unwrap_or(""),
            None => host.rsplit_once(':').map_or(host, |(name, _)| name),
        };
        let name = name.trim_end_matches('.');
        name.eq_ignore_ascii_case("localhost")
            || name.to_ascii_lowercase().ends_with(".localhost")
            || name
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
            || self.hosts.iter().any(|h| h.eq_ignore_ascii_case(name))
    }

    /// Refuse what would leave the server open to whoever reaches it when
    /// it listens on `addr`: no keys on an address other than loopback
    /// (unless `insecure_open`), a guessable session secret.
    pub fn check_safe(&self, addr: SocketAddr) -> Result<(), Unsafe> {
        if let Some(why) = self
            .session_secret
            .as_deref()
            .and_then(session_secret_weakness)
        {
            return Err(Unsafe::WeakSessionSecret(why));
        }
        if self.keys.is_empty() && !addr.ip().is_loopback() && !self.insecure_open {
            return Err(Unsafe::OpenOnNetwork(addr));
        }
        Ok(())
    }

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
            open_health: false,
            max_batch: 1000,
            max_body_bytes: 2 * 1024 * 1024,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
            max_connections: 2048,
            max_queues: 10_000,
            keys: Vec::new(),
            insecure_open: false,
            hosts: Vec::new(),
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
