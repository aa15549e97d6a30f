//! A fault-injecting proxy between Sluice processes and Redis, on loopback.
//!
//! It forwards bytes both ways and cuts them into RESP frames, so that it
//! knows which reply answers which request. Switched at run time, it can
//! - forward a request and then drop its reply while closing the connection
//!   ([`Fault::DropReply`]): Redis ran the command, the client never hears;
//! - hold replies past the client's response timeout
//!   ([`Fault::DelayReply`]);
//! - cut a connection in the middle of a pipeline ([`Fault::CutPipeline`]):
//!   the first half of the pipeline reaches Redis, then the connection closes;
//! - black-hole every connection for a while and then heal
//!   ([`FaultProxy::partition`]): nothing moves either way, new connections
//!   hang, and what was sent meanwhile arrives after the heal.
//!
//! One proxy per process targets that process; a [`Rule`] narrows a fault to
//! some command kinds and fires with a given probability, at most a given
//! number of times.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::resp;

/// What a rule does to the requests it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward the request, then drop its reply and close the connection.
    DropReply,
    /// Forward the request and hold its reply this long (replies behind it
    /// wait too, as behind a slow server).
    DelayReply(Duration),
    /// When the request arrives within a pipeline (several requests in one
    /// write), forward the first half of that pipeline and close.
    CutPipeline,
    /// Forward the request, drop its reply and close, and black-hole this
    /// proxy's clients for this long at once: the client's retries cannot
    /// get through either (a reply lost at the start of a partition).
    DropReplyAndPartition(Duration),
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::DropReply => "drop-reply",
            Fault::DelayReply(_) => "delay-reply",
            Fault::CutPipeline => "cut-pipeline",
            Fault::DropReplyAndPartition(_) => "drop-reply-and-partition",
        }
    }
}

/// Which requests a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Commands {
    /// Every request.
    Any,
    /// Requests whose command name is one of these (any case).
    Named(Vec<String>),
    /// Blocking reads: `XREADGROUP`/`XREAD` with `BLOCK`, and the `B*POP`
    /// family.
    Blocking,
    /// Script calls (`EVALSHA`, `EVAL`) that do not block.
    Scripts,
    /// Calls of one script: `EVALSHA <sha>` (any case).
    Script(String),
}

impl Commands {
    /// Requests named `names`.
    pub fn named(names: &[&str]) -> Self {
        Commands::Named(names.iter().map(|n| n.to_ascii_uppercase()).collect())
    }

    fn matches(&self, words: &[String]) -> bool {
        let Some(name) = words.first() else {
            return false;
        };
        let name = name.to_ascii_uppercase();
        match self {
            Commands::Any => true,
            Commands::Named(names) => names.contains(&name),
            Commands::Blocking => is_blocking(&name, words),
            Commands::Scripts => matches!(name.as_str(), "EVALSHA" | "EVAL"),
            Commands::Script(sha) => {
                name == "EVALSHA" && words.get(1).is_some_and(|w| w.eq_ignore_ascii_case(sha))
            }
        }
    }
}

fn is_blocking(name: &str, words: &[String]) -> bool {
    match name {
        "XREADGROUP" | "XREAD" => words.iter().any(|w| w.eq_ignore_ascii_case("BLOCK")),
        "BLPOP" | "BRPOP" | "BLMOVE" | "BZPOPMIN" | "BZPOPMAX" | "BLMPOP" | "BZMPOP" => true,
        _ => false,
    }
}

/// One fault, the requests it targets, how likely it fires on each and how
/// many times at most.
#[derive(Debug, Clone)]
pub struct Rule {
    /// What happens.
    pub fault: Fault,
    /// To which requests.
    pub commands: Commands,
    /// Chance per matching request, 0 to 1.
    pub probability: f64,
    /// Most times it fires (`None`: no limit).
    pub limit: Option<u64>,
    fired: u64,
}

impl Rule {
    /// `fault` on every request in `commands`.
    pub fn new(fault: Fault, commands: Commands) -> Self {
        Self {
            fault,
            commands,
            probability: 1.0,
            limit: None,
            fired: 0,
        }
    }

    /// Fire on a matching request with this chance.
    pub fn probability(mut self, p: f64) -> Self {
        self.probability = p.clamp(0.0, 1.0);
        self
    }

    /// Fire at most `n` times.
    pub fn limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }
}

/// A fault that fired: when, what, on which command.
#[derive(Debug, Clone)]
pub struct Fired {
    /// When it fired.
    pub at: Instant,
    /// Which fault.
    pub fault: &'static str,
    /// The command name of the request it hit.
    pub command: String,
}

struct Shared {
    upstream: SocketAddr,
    rules: Mutex<Vec<Rule>>,
    fired: Mutex<Vec<Fired>>,
    /// True while partitioned.
    partition: watch::Sender<bool>,
    /// Raised to close every open connection.
    generation: watch::Sender<u64>,
    connections: AtomicU64,
    /// Reply bytes that reached the clients.
    reply_bytes: AtomicU64,
}

impl Shared {
    /// The fault for a request, if a rule fires on it.
    fn decide(&self, words: &[String], in_pipeline: bool) -> Option<Fault> {
        let mut rules = self.rules.lock().ok()?;
        for rule in rules.iter_mut() {
            if rule.limit.is_some_and(|l| rule.fired >= l) {
                continue;
            }
            if rule.fault == Fault::CutPipeline && !in_pipeline {
                continue;
            }
            if !rule.commands.matches(words) {
                continue;
            }
            if rule.probability < 1.0 && rand::random::<f64>() >= rule.probability {
                continue;
            }
            rule.fired += 1;
            let command = words
                .first()
                .cloned()
                .unwrap_or_default()
                .to_ascii_uppercase();
            if let Ok(mut fired) = self.fired.lock() {
                fired.push(Fired {
                    at: Instant::now(),
                    fault: rule.fault.name(),
                    command,
                });
            }
            return Some(rule.fault);
        }
        None
    }

    fn record(&self, fault: &'static str, command: &str) {
        if let Ok(mut fired) = self.fired.lock() {
            fired.push(Fired {
                at: Instant::now(),
                fault,
                command: command.to_owned(),
            });
        }
    }

    async fn healed(&self) {
        let mut rx = self.partition.subscribe();
        let _ = rx.wait_for(|partitioned| !partitioned).await;
    }
}

/// The proxy; stops when dropped. See the module docs.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish()
    }
}

impl FaultProxy {
    /// A proxy on a free loopback port in front of `upstream`, a Redis URL
    /// (`redis://127.0.0.1:6379/`) or `host:port` on loopback.
    pub async fn start(upstream: &str) -> std::io::Result<Self> {
        let upstream = loopback_addr(upstream)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            rules: Mutex::new(Vec::new()),
            fired: Mutex::new(Vec::new()),
            partition: watch::channel(false).0,
            generation: watch::channel(0).0,
            connections: AtomicU64::new(0),
            reply_bytes: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(Self {
            addr,
            shared,
            accept,
        })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The Redis URL of the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// Add a rule; rules are tried in the order they were added.
    pub fn inject(&self, rule: Rule) {
        if let Ok(mut rules) = self.shared.rules.lock() {
            rules.push(rule);
        }
    }

    /// Remove every rule (a partition stays until healed).
    pub fn clear(&self) {
        if let Ok(mut rules) = self.shared.rules.lock() {
            rules.clear();
        }
    }

    /// Black-hole every connection, open and new, until [`FaultProxy::heal`].
    pub fn start_partition(&self) {
        self.shared.partition.send_replace(true);
        self.shared.record("partition", "-");
    }

    /// End a partition: what was held moves on.
    pub fn heal(&self) {
        self.shared.partition.send_replace(false);
    }

    /// Black-hole every connection for `duration`, then heal (in the
    /// background; returns at once).
    pub fn partition(&self, duration: Duration) {
        self.start_partition();
        let shared = self.shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            shared.partition.send_replace(false);
        });
    }

    /// Close every open connection now (as a reset would).
    pub fn cut_all(&self) {
        self.shared.generation.send_modify(|g| *g += 1);
        self.shared.record("cut-all", "-");
    }

    /// Faults that fired so far.
    pub fn fired(&self) -> Vec<Fired> {
        self.shared
            .fired
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default()
    }

    /// How many faults fired so far.
    pub fn fired_count(&self) -> usize {
        self.shared.fired.lock().map(|f| f.len()).unwrap_or(0)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }

    /// Bytes of replies Redis sent through the proxy so far: what the
    /// clients behind it had to read (and hold) of Redis's answers.
    pub fn reply_bytes(&self) -> u64 {
        self.shared.reply_bytes.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.shared.partition.send_replace(false);
        self.shared.generation.send_modify(|g| *g += 1);
    }
}

/// `url` or `host:port` as a socket address, refused unless on loopback.
fn loopback_addr(upstream: &str) -> std::io::Result<SocketAddr> {
    let rest = upstream
        .strip_prefix("redis://")
        .unwrap_or(upstream)
        .trim_end_matches('/');
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hostport = hostport.split('/').next().unwrap_or(hostport);
    let hostport = hostport.replace("localhost", "127.0.0.1");
    let addr: SocketAddr = hostport.parse().map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{upstream:?}: {e}"),
        )
    })?;
    if !addr.ip().is_loopback() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{upstream:?} is not on loopback"),
        ));
    }
    Ok(addr)
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        shared.connections.fetch_add(1, Ordering::Relaxed);
        let shared = shared.clone();
        tokio::spawn(async move {
            // A new connection during a partition hangs until the heal.
            shared.healed().await;
            let Ok(server) = TcpStream::connect(shared.upstream).await else {
                return;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            serve(client, server, shared).await;
        });
    }
}

/// The fate of one forwarded request's reply.
#[derive(Debug, Clone, Copy)]
enum ReplyFate {
    Forward,
    Drop,
    DropAndPartition(Duration),
    Delay(Duration),
}

/// Forward one connection both ways until either side closes or a fault
/// closes it.
async fn serve(client: TcpStream, server: TcpStream, shared: Arc<Shared>) {
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let fates: Arc<Mutex<VecDeque<ReplyFate>>> = Arc::default();
    let raw = Arc::new(AtomicBool::new(false));
    let (close_tx, close_rx) = watch::channel(false);
    let close_tx = Arc::new(close_tx);
    let mut generation = shared.generation.subscribe();
    let requests = tokio::spawn(forward_requests(
        client_read,
        server_write,
        Link {
            shared: shared.clone(),
            fates: fates.clone(),
            raw: raw.clone(),
            close: close_tx.clone(),
        },
    ));
    let replies = tokio::spawn(forward_replies(
        server_read,
        client_write,
        Link {
            shared: shared.clone(),
            fates,
            raw,
            close: close_tx.clone(),
        },
    ));
    let mut close_rx = close_rx;
    tokio::select! {
        _ = close_rx.wait_for(|c| *c) => {}
        _ = generation.changed() => {}
    }
    // Dropping both halves of both sockets closes the connections.
    requests.abort();
    replies.abort();
}

/// What the two directions of one connection share.
struct Link {
    shared: Arc<Shared>,
    fates: Arc<Mutex<VecDeque<ReplyFate>>>,
    /// Set once the client asked for replication (SYNC, PSYNC): from then
    /// on the server sends an RDB file and a command stream, not replies,
    /// and bytes pass untouched (partitions still hold them).
    raw: Arc<AtomicBool>,
    close: Arc<watch::Sender<bool>>,
}

async fn forward_requests(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, link: Link) {
    let Link {
        shared,
        fates,
        raw,
        close,
    } = link;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        shared.healed().await;
        if raw.load(Ordering::Relaxed) {
            if to.write_all(&chunk[..n]).await.is_err() {
                break;
            }
            continue;
        }
        buf.extend_from_slice(&chunk[..n]);
        // Every whole request in what has arrived; those that arrived in
        // one read are one pipeline.
        let mut frames = Vec::new();
        let mut pos = 0;
        loop {
            match resp::frame_len(&buf[pos..]) {
                Ok(Some(len)) => {
                    frames.push(pos..pos + len);
                    pos += len;
                }
                Ok(None) => break,
                Err(_) => {
                    // Not RESP: pass the rest through untouched.
                    frames.push(pos..buf.len());
                    pos = buf.len();
                    break;
                }
            }
        }
        let in_pipeline = frames.len() > 1;
        let mut forward_to = pos;
        let mut cut = false;
        {
            let Ok(mut fates) = fates.lock() else { break };
            for range in &frames {
                let words = resp::request_words(&buf[range.clone()]);
                if words.first().is_some_and(|w| {
                    w.eq_ignore_ascii_case("PSYNC") || w.eq_ignore_ascii_case("SYNC")
                }) {
                    raw.store(true, Ordering::Relaxed);
                }
                let fate = match shared.decide(&words, in_pipeline) {
                    None => ReplyFate::Forward,
                    Some(Fault::DropReply) => ReplyFate::Drop,
                    Some(Fault::DropReplyAndPartition(d)) => ReplyFate::DropAndPartition(d),
                    Some(Fault::DelayReply(d)) => ReplyFate::Delay(d),
                    Some(Fault::CutPipeline) => {
                        // The first half of the pipeline goes through.
                        let keep = (frames.len() / 2).max(1);
                        forward_to = frames[keep - 1].end;
                        cut = true;
                        break;
                    }
                };
                fates.push_back(fate);
            }
        }
        if to.write_all(&buf[..forward_to]).await.is_err() {
            break;
        }
        if cut {
            let _ = to.flush().await;
            // Let Redis read what went through before the connection dies.
            tokio::time::sleep(Duration::from_millis(20)).await;
            break;
        }
        buf.drain(..pos);
    }
    close.send_replace(true);
}

async fn forward_replies(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, link: Link) {
    let Link {
        shared,
        fates,
        raw,
        close,
    } = link;
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    'read: loop {
        let n = match from.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        shared.reply_bytes.fetch_add(n as u64, Ordering::Relaxed);
        shared.healed().await;
        if raw.load(Ordering::Relaxed) {
            // Replies still buffered go first, then everything as it comes.
            buf.extend_from_slice(&chunk[..n]);
            if to.write_all(&buf).await.is_err() {
                break;
            }
            buf.clear();
            continue;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut pos = 0;
        let mut sent = 0;
        loop {
            let len = match resp::frame_len(&buf[pos..]) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(_) => buf.len() - pos,
            };
            let is_push = buf[pos] == b'>';
            let fate = if is_push {
                ReplyFate::Forward
            } else {
                fates
                    .lock()
                    .ok()
                    .and_then(|mut f| f.pop_front())
                    .unwrap_or(ReplyFate::Forward)
            };
            match fate {
                ReplyFate::Forward => {}
                ReplyFate::Drop => {
                    // What came before this reply still reaches the client.
                    let _ = to.write_all(&buf[sent..pos]).await;
                    break 'read;
                }
                ReplyFate::DropAndPartition(d) => {
                    let _ = to.write_all(&buf[sent..pos]).await;
                    shared.partition.send_replace(true);
                    let healer = shared.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(d).await;
                        healer.partition.send_replace(false);
                    });
                    break 'read;
                }
                ReplyFate::Delay(d) => {
                    if to.write_all(&buf[sent..pos]).await.is_err() {
                        break 'read;
                    }
                    sent = pos;
                    tokio::time::sleep(d).await;
                    shared.healed().await;
                }
            }
            pos += len;
        }
        if to.write_all(&buf[sent..pos]).await.is_err() {
            break;
        }
        buf.drain(..pos);
    }
    close.send_replace(true);
}
