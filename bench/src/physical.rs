//! The physical limits of a Redis Streams job queue on this Redis: the
//! least command mix a job needs, fully pipelined through one connection,
//! with no job hash, no fencing, no retries and no handler. No real queue
//! can beat them.
//!
//! - [`measure`]: XADD, then XREADGROUP and XACK, all timed. Sluice's
//!   `e2e`, which both enqueues and consumes, is reported as a share of it.
//! - [`measure_consume`]: XREADGROUP and XACK over a stream filled first
//!   (not timed). Sluice's `drain`, which only consumes what was enqueued
//!   before it started, is reported as a share of it.

use std::time::Instant;

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;

/// Commands per pipeline (XADDs) and entries per XREADGROUP.
const CHUNK: u64 = 1000;

const STREAM: &str = "physical:stream";
const GROUP: &str = "physical";

/// Jobs per second through XADD, then XREADGROUP + XACK, for `jobs` jobs.
pub async fn measure(redis_url: &str, jobs: u64) -> anyhow::Result<f64> {
    let mut conn = empty_stream(redis_url).await?;
    let start = Instant::now();
    fill(&mut conn, jobs).await?;
    consume(&mut conn, jobs).await?;
    let rate = jobs as f64 / start.elapsed().as_secs_f64();
    let _: () = conn.del(STREAM).await?;
    Ok(rate)
}

/// Jobs per second through XREADGROUP + XACK alone, over `jobs` entries
/// added before the clock starts.
pub async fn measure_consume(redis_url: &str, jobs: u64) -> anyhow::Result<f64> {
    let mut conn = empty_stream(redis_url).await?;
    fill(&mut conn, jobs).await?;
    let start = Instant::now();
    consume(&mut conn, jobs).await?;
    let rate = jobs as f64 / start.elapsed().as_secs_f64();
    let _: () = conn.del(STREAM).await?;
    Ok(rate)
}

/// A connection, with the stream emptied and its group created.
async fn empty_stream(redis_url: &str) -> anyhow::Result<MultiplexedConnection> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let _: () = conn.del(STREAM).await?;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg(GROUP)
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await?;
    Ok(conn)
}

/// XADD `jobs` entries, `CHUNK` per pipeline.
async fn fill(conn: &mut MultiplexedConnection, jobs: u64) -> anyhow::Result<()> {
    let mut added = 0;
    while added < jobs {
        let mut pipe = redis::pipe();
        for n in added..jobs.min(added + CHUNK) {
            pipe.cmd("XADD")
                .arg(STREAM)
                .arg("*")
                .arg("i")
                .arg(n)
                .ignore();
        }
        let _: () = pipe.query_async(conn).await?;
        added += CHUNK;
    }
    Ok(())
}

/// Read and acknowledge `jobs` entries: each round trip carries the XACK
/// of the previous read and the next XREADGROUP of `CHUNK` entries.
async fn consume(conn: &mut MultiplexedConnection, jobs: u64) -> anyhow::Result<()> {
    let mut read_total = 0u64;
    let mut unacked: Vec<String> = Vec::new();
    loop {
        let mut pipe = redis::pipe();
        if !unacked.is_empty() {
            pipe.cmd("XACK")
                .arg(STREAM)
                .arg(GROUP)
                .arg(&unacked)
                .ignore();
        }
        if read_total >= jobs {
            let _: () = pipe.query_async(conn).await?;
            return Ok(());
        }
        pipe.cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg("c")
            .arg("COUNT")
            .arg(CHUNK)
            .arg("STREAMS")
            .arg(STREAM)
            .arg(">");
        let (read,): (redis::streams::StreamReadReply,) = pipe.query_async(conn).await?;
        unacked = read
            .keys
            .into_iter()
            .flat_map(|k| k.ids.into_iter().map(|e| e.id))
            .collect();
        anyhow::ensure!(
            !unacked.is_empty(),
            "stream ran dry at {read_total} of {jobs}"
        );
        read_total += unacked.len() as u64;
    }
}
