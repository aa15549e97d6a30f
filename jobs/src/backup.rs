//! Backups: the application's tables and the queue state (waiting, active,
//! delayed and dead jobs with their payloads) in one gzip'd JSON-lines file,
//! and the restore that brings them back into an empty database and Redis.
//!
//! File layout, one JSON object per line:
//! - `{"kind":"header","format":"sluice-backup","version":2,...}`
//! - `{"kind":"table","name":"users","data":"..."}`: a chunk of the table in
//!   PostgreSQL's COPY text format (a table takes as many lines as chunks);
//! - `{"kind":"job","queue":"ingest","id":"...","fields":{"payload":"<base64>",...}}`.
//!
//! With a backup key (`trading.backup_key`), the file is encrypted
//! (`backup_seal`: XChaCha20-Poly1305 in the STREAM construction over the
//! gzip'd bytes) and its last line is `{"kind":"mac","hmac":"<hex>"}`, an
//! HMAC-SHA256 of every line before it; restore checks both, before it
//! changes anything, and refuses a file not written with its key.
//!
//! Versions: 2 writes `audit_logs` without the `id` column it lost when it
//! became partitioned by day (migration 0004), in the columns of
//! [`AUDIT_COLUMNS`]; 1 wrote it with `id` first. Restore reads both.
//!
//! The tables are read in one repeatable-read transaction, so they agree
//! with each other. The queue state is read queue by queue right after; a
//! job that moves meanwhile may be missed or seen twice (import skips ids
//! that exist).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::Utc;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use sluice_engine::{Client, Handler, HandlerError, IdempotencyRecord, Job, JobRecord, Outcome};
use sqlx::PgPool;

use crate::error::{Error, Result};

/// The tables, in an order that satisfies their foreign keys on restore.
/// `signal_daily` comes after `signals`: loading signals fires the trigger
/// that counts them, so the aggregates are emptied before their own rows
/// are loaded (they also count signals retention deleted long ago).
pub const TABLES: [&str; 5] = [
    "users",
    "user_config",
    "signals",
    "audit_logs",
    "signal_daily",
];

/// The tables whose `id` comes from a sequence.
const SERIAL_TABLES: [&str; 2] = ["users", "signals"];

/// The columns of `audit_logs` a backup holds (format 2), in order.
pub const AUDIT_COLUMNS: &str =
    "event_id, at, actor, action, target, outcome, status, source_ip, latency_ms, detail";

/// Where a restore stages `audit_logs` before moving it into its days: a
/// partitioned table takes no COPY into days it has no partition for.
const AUDIT_STAGE: &str = "audit_logs_restore";

/// The longest line a restore reads, bytes: far more than a backup writes
/// (a table row, or a job with its payload), so that a hostile file cannot
/// make it read gigabytes into memory at once.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// The lines of a reader, each at most `max` bytes (an error past it).
struct BoundedLines<R> {
    reader: R,
    max: usize,
}

impl<R: BufRead> Iterator for BoundedLines<R> {
    type Item = std::io::Result<String>;

    fn next(&mut self) -> Option<Self::Item> {
        use std::io::Read;
        let mut line = Vec::new();
        let limit = self.max as u64 + 1;
        match (&mut self.reader).take(limit).read_until(b'\n', &mut line) {
            Ok(0) => None,
            Ok(_) if line.len() > self.max => Some(Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a line longer than {} bytes", self.max),
            ))),
            Ok(_) => {
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                Some(String::from_utf8(line).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string())
                }))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

const FORMAT: &str = "sluice-backup";
/// The format written.
pub const VERSION: u32 = 2;
/// The formats restore reads.
const READS: [u32; 2] = [1, 2];
const FILE_PREFIX: &str = "sluice-backup-";
const FILE_SUFFIX: &str = ".jsonl.gz";

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Line {
    Header {
        format: String,
        version: u32,
        created_at: String,
    },
    Table {
        name: String,
        data: String,
    },
    Job {
        queue: String,
        id: String,
        fields: BTreeMap<String, String>,
    },
    /// An idempotency mapping and when its window ends (ms since the Unix
    /// epoch), so a restore gives it only the time it had left.
    Idempotency {
        queue: String,
        key: String,
        id: String,
        expires_at_ms: u64,
    },
    /// The last line, with a backup key: the HMAC of every line before it.
    Mac {
        hmac: String,
    },
}

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The key that encrypts and signs backups, so that a backup file tells
/// nothing to whoever reads it and a restore refuses a file someone
/// changed or made. Two keys are derived from it, one for each use.
#[derive(Clone)]
pub struct BackupKey([u8; 32]);

impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackupKey(..)")
    }
}

impl BackupKey {
    /// A key from its base64 text (32 bytes: `openssl rand -base64 32`).
    pub fn from_base64(text: &str) -> Result<Self> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|_| Error::Invalid("the backup key is not base64".into()))?;
        let key = <[u8; 32]>::try_from(bytes.as_slice())
            .map_err(|_| Error::Invalid("the backup key must be 32 bytes".into()))?;
        Ok(Self(key))
    }

    /// The key derived from this one for `purpose`.
    fn derived(&self, purpose: &[u8]) -> [u8; 32] {
        use hmac::Mac;
        // HMAC takes keys of any length; this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!());
        mac.update(purpose);
        mac.finalize().into_bytes().into()
    }

    fn mac(&self) -> HmacSha256 {
        use hmac::Mac;
        HmacSha256::new_from_slice(&self.derived(b"sluice-backup-mac-1"))
            .unwrap_or_else(|_| unreachable!())
    }

    fn sealing(&self) -> [u8; 32] {
        self.derived(b"sluice-backup-sealing-1")
    }
}

/// Where a backup's gzip'd bytes go: the file, sealed with a key or not.
enum Sink {
    Plain(BufWriter<std::fs::File>),
    Sealed(crate::backup_seal::Sealing<BufWriter<std::fs::File>>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Plain(w) => w.write(buf),
            Self::Sealed(w) => w.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::Plain(w) => w.flush(),
            Self::Sealed(w) => w.flush(),
        }
    }
}

impl Sink {
    /// The file, everything written.
    fn finish(self) -> std::io::Result<BufWriter<std::fs::File>> {
        match self {
            Self::Plain(w) => Ok(w),
            Self::Sealed(w) => w.finish(),
        }
    }
}

/// The lines of backup `file`, opened with `key` when it is sealed. A
/// sealed file without a key, or a file not sealed when a key is given,
/// is refused.
fn open_lines(file: &Path, key: Option<&BackupKey>) -> Result<BoundedLines<impl BufRead>> {
    use std::io::Read;
    let bad = |what: &str| Error::Invalid(format!("{}: {what}", file.display()));
    let mut opened = std::fs::File::open(file)
        .map_err(|e| Error::io(format!("cannot open {}", file.display()), e))?;
    let magic = crate::backup_seal::MAGIC;
    let mut head = Vec::with_capacity(magic.len());
    (&mut opened)
        .take(magic.len() as u64)
        .read_to_end(&mut head)
        .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
    let reader: Box<dyn Read + Send> = match (head.as_slice() == magic, key) {
        (true, Some(key)) => Box::new(
            crate::backup_seal::Opening::new(opened, &key.sealing())
                .map_err(|e| bad(&e.to_string()))?,
        ),
        (true, None) => {
            return Err(bad(
                "it is encrypted: restore it with its backup key (trading.backup_key)",
            ));
        }
        (false, Some(_)) => return Err(bad("not written with a backup key")),
        (false, None) => Box::new(std::io::Cursor::new(head).chain(opened)),
    };
    Ok(BoundedLines {
        reader: BufReader::new(GzDecoder::new(reader)),
        max: MAX_LINE_BYTES,
    })
}

/// Check that `file` ends with the MAC `key` makes of its lines.
fn verify(file: &Path, key: &BackupKey) -> Result<()> {
    use hmac::Mac;
    let bad = |what: &str| Error::Invalid(format!("{}: {what}", file.display()));
    let lines = open_lines(file, Some(key))?;
    let mut mac = key.mac();
    let mut signed: Option<Vec<u8>> = None;
    for line in lines {
        let line = line.map_err(|e| bad(&e.to_string()))?;
        if signed.is_some() {
            return Err(bad("lines after its MAC: it was changed"));
        }
        if line.starts_with("{\"kind\":\"mac\"") {
            let Ok(Line::Mac { hmac }) = serde_json::from_str::<Line>(&line) else {
                return Err(bad("a MAC line that cannot be read"));
            };
            signed = Some(hex::decode(hmac).map_err(|_| bad("a MAC that is not hex"))?);
            continue;
        }
        mac.update(line.as_bytes());
        mac.update(b"\n");
    }
    let signed = signed.ok_or_else(|| bad("no MAC: not written with a backup key"))?;
    mac.verify_slice(&signed)
        .map_err(|_| bad("its MAC does not match: written with another key, or changed since"))
}

/// What a backup or a restore contained.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Contents {
    /// The file.
    pub file: PathBuf,
    /// Rows per table.
    pub rows: BTreeMap<String, u64>,
    /// Jobs per queue.
    pub jobs: BTreeMap<String, u64>,
}

/// Write a backup into `dir` and keep the newest `keep` backups there.
pub async fn backup(
    pool: &PgPool,
    client: &Client,
    dir: &Path,
    keep: usize,
    key: Option<&BackupKey>,
) -> Result<Contents> {
    // Backups hold every user's data and cookies (encrypted): readable by
    // the owner only, the directory as well as the files.
    std::fs::create_dir_all(dir)
        .and_then(|()| {
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        })
        .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let now = Utc::now();
    let name = format!(
        "{FILE_PREFIX}{}{FILE_SUFFIX}",
        now.format("%Y%m%dT%H%M%S%.3fZ")
    );
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let file = {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io(format!("cannot create {}", tmp.display()), e))?
    };
    let sink = match key {
        Some(key) => Sink::Sealed(
            crate::backup_seal::Sealing::new(BufWriter::new(file), &key.sealing())
                .map_err(|e| Error::io("cannot write the backup", e))?,
        ),
        None => Sink::Plain(BufWriter::new(file)),
    };
    let mut out = GzEncoder::new(sink, Compression::default());
    let mut contents = Contents {
        file: path.clone(),
        ..Contents::default()
    };
    let mut mac = key.map(BackupKey::mac);
    let mut write = |out: &mut GzEncoder<Sink>, line: &Line| -> Result<()> {
        let mut bytes = serde_json::to_vec(line).map_err(|e| Error::Invalid(e.to_string()))?;
        bytes.push(b'\n');
        if let Some(mac) = &mut mac {
            hmac::Mac::update(mac, &bytes);
        }
        out.write_all(&bytes)
            .map_err(|e| Error::io("cannot write the backup", e))
    };
    write(
        &mut out,
        &Line::Header {
            format: FORMAT.into(),
            version: VERSION,
            created_at: now.to_rfc3339(),
        },
    )?;

    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    for table in TABLES {
        let mut rows = 0u64;
        // A partitioned table is read through a query (COPY of one is
        // refused), in the columns format 2 names.
        let source = if table == "audit_logs" {
            format!("(SELECT {AUDIT_COLUMNS} FROM audit_logs)")
        } else {
            table.to_owned()
        };
        let mut stream = tx.copy_out_raw(&format!("COPY {source} TO STDOUT")).await?;
        while let Some(chunk) = stream.try_next().await? {
            rows += chunk.iter().filter(|b| **b == b'\n').count() as u64;
            let data = String::from_utf8(chunk.to_vec())
                .map_err(|_| Error::Invalid(format!("{table}: COPY data is not UTF-8")))?;
            write(
                &mut out,
                &Line::Table {
                    name: table.into(),
                    data,
                },
            )?;
        }
        drop(stream);
        contents.rows.insert(table.into(), rows);
    }
    tx.commit().await?;

    for queue in client.queues().await? {
        let q = client.queue(&queue).await?;
        let records = q.export().await?;
        contents.jobs.insert(queue.clone(), records.len() as u64);
        let now_ms = Utc::now().timestamp_millis().max(0) as u64;
        for m in q.export_idempotency().await? {
            write(
                &mut out,
                &Line::Idempotency {
                    queue: queue.clone(),
                    key: m.key,
                    id: m.job_id,
                    expires_at_ms: now_ms + m.ttl_ms,
                },
            )?;
        }
        for r in records {
            let fields = r
                .fields
                .into_iter()
                .map(|(k, v)| (k, BASE64.encode(v)))
                .collect();
            write(
                &mut out,
                &Line::Job {
                    queue: queue.clone(),
                    id: r.id,
                    fields,
                },
            )?;
        }
    }
    if let Some(mac) = mac {
        let hmac = hex::encode(hmac::Mac::finalize(mac).into_bytes());
        let mut bytes =
            serde_json::to_vec(&Line::Mac { hmac }).map_err(|e| Error::Invalid(e.to_string()))?;
        bytes.push(b'\n');
        out.write_all(&bytes)
            .map_err(|e| Error::io("cannot write the backup", e))?;
    }
    let inner = out
        .finish()
        .and_then(Sink::finish)
        .map_err(|e| Error::io("cannot write the backup", e))?;
    let file = inner
        .into_inner()
        .map_err(|e| Error::io("cannot write the backup", e.into_error()))?;
    file.sync_all()
        .map_err(|e| Error::io("cannot write the backup", e))?;
    std::fs::rename(&tmp, &path)
        .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    prune(dir, keep)?;
    Ok(contents)
}

/// The backups in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(FILE_PREFIX) && n.ends_with(FILE_SUFFIX))
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io(format!("cannot list {}", dir.display()), e)),
    };
    // The timestamp in the name sorts in time order.
    files.sort();
    Ok(files)
}

fn prune(dir: &Path, keep: usize) -> Result<()> {
    let files = list(dir)?;
    let excess = files.len().saturating_sub(keep.max(1));
    for old in &files[..excess] {
        std::fs::remove_file(old)
            .map_err(|e| Error::io(format!("cannot remove {}", old.display()), e))?;
    }
    Ok(())
}

/// Bring a backup back into an empty database (migrated first) and Redis.
/// Refuses when any of the tables has rows. Jobs whose id exists in Redis
/// are left alone.
///
/// With `key`, the file must end with the MAC that key makes of it
/// (checked before anything is changed); without, a MAC is not checked.
pub async fn restore(
    pool: &PgPool,
    client: &Client,
    file: &Path,
    key: Option<&BackupKey>,
) -> Result<Contents> {
    if let Some(key) = key {
        verify(file, key)?;
    }
    for table in TABLES {
        let (any,): (bool,) = sqlx::query_as(&format!("SELECT EXISTS (SELECT 1 FROM {table})"))
            .fetch_one(pool)
            .await?;
        if any {
            return Err(Error::Invalid(format!(
                "table {table} is not empty: restore only into an empty database"
            )));
        }
    }
    let mut lines = open_lines(file, key)?;
    let bad = |what: String| Error::Invalid(format!("{}: {what}", file.display()));
    let first = lines
        .next()
        .transpose()
        .map_err(|e| bad(format!("not a gzip'd backup ({e})")))?
        .ok_or_else(|| bad("empty file".into()))?;
    let version = match serde_json::from_str::<Line>(&first) {
        Ok(Line::Header {
            format, version, ..
        }) if format == FORMAT && READS.contains(&version) => version,
        _ => return Err(bad("not a Sluice backup (version 1 or 2)".into())),
    };
    let mut contents = Contents {
        file: file.to_owned(),
        ..Contents::default()
    };
    let mut tx = pool.begin().await?;
    stage_audit_logs(&mut tx, version).await?;
    // COPY data is sent in pieces of at most this many bytes; several COPY
    // statements into one table add up.
    const PIECE: usize = 8 << 20;
    let mut pending: Option<(String, Vec<u8>)> = None;
    let mut jobs: BTreeMap<String, Vec<JobRecord>> = BTreeMap::new();
    let mut keys: BTreeMap<String, Vec<IdempotencyRecord>> = BTreeMap::new();
    let mut aggregates_emptied = false;
    for (n, line) in lines.enumerate() {
        let line = line.map_err(|e| bad(format!("line {}: {e}", n + 2)))?;
        let parsed: Line =
            serde_json::from_str(&line).map_err(|e| bad(format!("line {}: {e}", n + 2)))?;
        match parsed {
            Line::Header { .. } => return Err(bad(format!("line {}: a second header", n + 2))),
            Line::Mac { .. } => {}
            Line::Table { name, data } => {
                if !TABLES.contains(&name.as_str()) {
                    return Err(bad(format!("line {}: unknown table {name:?}", n + 2)));
                }
                let switch = pending
                    .as_ref()
                    .is_some_and(|(t, buf)| *t != name || buf.len() > PIECE);
                if switch && let Some((table, buf)) = pending.take() {
                    copy_in(&mut tx, &table, &buf).await?;
                }
                if name == "signal_daily" && !aggregates_emptied {
                    if let Some((table, buf)) = pending.take() {
                        copy_in(&mut tx, &table, &buf).await?;
                    }
                    sqlx::query("DELETE FROM signal_daily")
                        .execute(&mut *tx)
                        .await?;
                    aggregates_emptied = true;
                }
                *contents.rows.entry(name.clone()).or_default() +=
                    data.bytes().filter(|b| *b == b'\n').count() as u64;
                pending
                    .get_or_insert_with(|| (name, Vec::new()))
                    .1
                    .extend_from_slice(data.as_bytes());
            }
            Line::Job { queue, id, fields } => {
                let fields = fields
                    .into_iter()
                    .map(|(k, v)| {
                        BASE64
                            .decode(v)
                            .map(|v| (k, v))
                            .map_err(|_| bad(format!("line {}: bad base64", n + 2)))
                    })
                    .collect::<Result<Vec<_>>>()?;
                jobs.entry(queue)
                    .or_default()
                    .push(JobRecord { id, fields });
            }
            Line::Idempotency {
                queue,
                key,
                id,
                expires_at_ms,
            } => {
                let now_ms = Utc::now().timestamp_millis().max(0) as u64;
                // A window that ended since the backup is not brought back.
                if expires_at_ms > now_ms {
                    keys.entry(queue).or_default().push(IdempotencyRecord {
                        key,
                        job_id: id,
                        ttl_ms: expires_at_ms - now_ms,
                    });
                }
            }
        }
    }
    if let Some((table, buf)) = pending.take() {
        copy_in(&mut tx, &table, &buf).await?;
    }
    unstage_audit_logs(&mut tx).await?;
    for table in SERIAL_TABLES {
        // New rows continue after the restored ids.
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                           COALESCE((SELECT max(id) FROM {table}), 0) + 1, false)"
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    for (queue, records) in jobs {
        let q = client.queue(&queue).await?;
        q.import(&records).await?;
        contents.jobs.insert(queue, records.len() as u64);
    }
    for (queue, records) in keys {
        client
            .queue(&queue)
            .await?
            .import_idempotency(&records)
            .await?;
    }
    Ok(contents)
}

/// A temporary table for the `audit_logs` rows of a backup in `version`'s
/// layout (1: with the `id` it had then), gone at commit.
async fn stage_audit_logs(conn: &mut sqlx::PgConnection, version: u32) -> Result<()> {
    let id = if version == 1 { "id bigint, " } else { "" };
    sqlx::query(&format!(
        "CREATE TEMPORARY TABLE {AUDIT_STAGE} (
             {id}event_id text, at timestamptz, actor text, action text, target text,
             outcome text, status integer, source_ip text, latency_ms real, detail text
         ) ON COMMIT DROP"
    ))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Move the staged `audit_logs` rows into their days, making the days'
/// partitions first.
async fn unstage_audit_logs(conn: &mut sqlx::PgConnection) -> Result<()> {
    sqlx::query(&format!(
        "SELECT audit_logs_add_days(ARRAY(
             SELECT DISTINCT (at AT TIME ZONE 'UTC')::date FROM {AUDIT_STAGE}))"
    ))
    .execute(&mut *conn)
    .await?;
    sqlx::query(&format!(
        "INSERT INTO audit_logs ({AUDIT_COLUMNS})
         SELECT {AUDIT_COLUMNS} FROM {AUDIT_STAGE} ORDER BY at"
    ))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn copy_in(conn: &mut sqlx::PgConnection, table: &str, data: &[u8]) -> Result<()> {
    // The audit log goes through its stage (see `stage_audit_logs`).
    let table = if table == "audit_logs" {
        AUDIT_STAGE
    } else {
        table
    };
    let mut copy = conn
        .copy_in_raw(&format!("COPY {table} FROM STDIN"))
        .await?;
    copy.send(data).await?;
    copy.finish().await?;
    Ok(())
}

/// Where and how many backups the handler keeps.
#[derive(Debug, Clone)]
pub struct BackupSettings {
    /// The directory.
    pub dir: PathBuf,
    /// Backups kept.
    pub keep: usize,
    /// Signs each backup, when given.
    pub key: Option<BackupKey>,
}

/// Writes a backup when its cron schedule enqueues a job.
#[derive(Debug, Clone)]
pub struct BackupHandler {
    pool: PgPool,
    client: Client,
    settings: BackupSettings,
}

impl BackupHandler {
    /// A handler backing up `pool` and `client`'s queues.
    pub fn new(pool: PgPool, client: Client, settings: BackupSettings) -> Self {
        Self {
            pool,
            client,
            settings,
        }
    }
}

impl Handler for BackupHandler {
    async fn handle(&self, _job: Job) -> Result<Outcome, HandlerError> {
        let c = backup(
            &self.pool,
            &self.client,
            &self.settings.dir,
            self.settings.keep,
            self.settings.key.as_ref(),
        )
        .await?;
        tracing::info!(file = %c.file.display(), rows = ?c.rows, jobs = ?c.jobs, "backup written");
        Ok(Outcome::DoneWith(c.file.display().to_string()))
    }
}
