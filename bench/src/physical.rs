//! The physical limit of a Redis Streams job queue on this Redis: the
//! least command mix a job needs (XADD; then XREADGROUP and XACK), fully
//! pipelined through one connection, with no job hash, no fencing, no
//! retries and no handler. No real queue can beat it; Sluice's `e2e` is
//! reported as a share of it.

use std::time::Instant;

use redis::AsyncCommands;

/// Commands per pipeline (XADDs) and entries per XREADGROUP.
const CHUNK: u64 = 1000;

/// Jobs per second through XADD, then XREADGROUP + XACK, for `jobs` jobs.
/// XADDs go `CHUNK` per pipeline; each later round trip carries the XACK of
/// the previous read and the next XREADGROUP of `CHUNK` entries.
pub async fn measure(redis_url: &str, jobs: u64) -> anyhow::Result<f64> {
    let client = redis::Client::open(redis_url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let stream = "physical:stream";
    let group = "physical";
    let _: () = conn.del(stream).await?;
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(stream)
        .arg(group)
        .arg("$")
        .arg("MKSTREAM")
        .query_async(&mut conn)
        .await?;
    let start = Instant::now();
    let mut added = 0;
    while added < jobs {
        let mut pipe = redis::pipe();
        for n in added..jobs.min(added + CHUNK) {
            pipe.cmd("XADD")
                .arg(stream)
                .arg("*")
                .arg("i")
                .arg(n)
                .ignore();
        }
        let _: () = pipe.query_async(&mut conn).await?;
        added += CHUNK;
    }
    // Each round trip acknowledges the previous read and reads the next.
    let mut read_total = 0u64;
    let mut unacked: Vec<String> = Vec::new();
    loop {
        let mut pipe = redis::pipe();
        if !unacked.is_empty() {
            pipe.cmd("XACK")
                .arg(stream)
                .arg(group)
                .arg(&unacked)
                .ignore();
        }
        if read_total >= jobs {
            let _: () = pipe.query_async(&mut conn).await?;
            break;
        }
        pipe.cmd("XREADGROUP")
            .arg("GROUP")
            .arg(group)
            .arg("c")
            .arg("COUNT")
            .arg(CHUNK)
            .arg("STREAMS")
            .arg(stream)
            .arg(">");
        let (read,): (redis::streams::StreamReadReply,) = pipe.query_async(&mut conn).await?;
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
    let rate = jobs as f64 / start.elapsed().as_secs_f64();
    let _: () = conn.del(stream).await?;
    Ok(rate)
}
