//! [`Inspector`]: the reads an operator's view is made of (an overview of
//! every queue, one queue's summary, a page of dead letters), in one place,
//! so that the HTTP API, the dashboard and the CLI only map its results.
//!
//! Reads over many queues go out together on the shared connection (one
//! round trip's wait for all of them, not one per queue), and a queue is
//! read without being opened first: opening makes missing streams, which
//! a read has no reason to do.

use serde::Serialize;

use crate::partition::DeadCursor;
use crate::partition::Partition;
use crate::{Client, JobInfo, JobState, MinuteCount, Queue, QueueConfig, Result, Stats};
use crate::{WorkerInfo, unix_ms};

/// Reads for operators' views; made by [`Client::inspector`].
#[derive(Debug, Clone)]
pub struct Inspector {
    client: Client,
}

/// One queue as an overview shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct QueueSummary {
    /// Its counts (summed over its partitions).
    pub stats: Stats,
    /// Completed and failed attempts per minute, oldest first: the asked
    /// number of full minutes, then the current minute, still running.
    pub per_minute: Vec<MinuteCount>,
    /// How long the job that runs next has waited (since it was enqueued,
    /// or since it became due), ms; `None` when nothing waits.
    pub next_job_wait_ms: Option<u64>,
}

impl QueueSummary {
    /// The last full minute's counts (the current one is still running).
    pub fn last_full_minute(&self) -> MinuteCount {
        self.full_minutes().last().copied().unwrap_or_default()
    }

    /// The full minutes, oldest first (without the current one).
    pub fn full_minutes(&self) -> &[MinuteCount] {
        &self.per_minute[..self.per_minute.len().saturating_sub(1)]
    }
}

/// Every queue and every live worker.
#[derive(Debug, Clone, Default)]
pub struct Overview {
    /// Every queue of the fleet, by name.
    pub queues: Vec<QueueSummary>,
    /// The live workers.
    pub workers: Vec<WorkerInfo>,
}

/// Which dead letters a [`DeadPage`] holds.
#[derive(Debug, Clone, Default)]
pub struct DeadQuery<'a> {
    /// Only letters whose error contains this text (ignoring case); `None`
    /// or empty: all of them.
    pub text: Option<&'a str>,
    /// Only letters after this one (a page's [`DeadPage::next`]).
    pub cursor: Option<&'a DeadCursor>,
    /// Letters skipped first.
    pub offset: usize,
    /// At most this many.
    pub limit: usize,
}

/// A page of a queue's dead letters, newest first.
#[derive(Debug, Clone, Default)]
pub struct DeadPage {
    /// Dead letters of the queue, in all.
    pub total: u64,
    /// Those matching the query's text (`total` without one).
    pub matched: u64,
    /// This page's letters.
    pub letters: Vec<JobInfo>,
    /// Where the next page starts, for a listing without text that has more.
    pub next: Option<DeadCursor>,
}

impl Client {
    /// Reads for operators' views.
    pub fn inspector(&self) -> Inspector {
        Inspector {
            client: self.clone(),
        }
    }
}

impl Inspector {
    /// Every queue's summary over the last `minutes` full minutes, and the
    /// live workers, read together.
    pub async fn overview(&self, minutes: u64) -> Result<Overview> {
        let registry = self.client.registry();
        let (queues, workers) = futures::try_join!(self.queues(minutes), registry.workers())?;
        Ok(Overview { queues, workers })
    }

    /// Every queue's summary ([`Inspector::summary`]), by name.
    pub async fn queues(&self, minutes: u64) -> Result<Vec<QueueSummary>> {
        self.read_each(|q| async move { self.summary(&q, minutes).await })
            .await
    }

    /// One queue's counts, its attempts per minute over the last `minutes`
    /// full minutes and the current one, and how long its next job has
    /// waited; the three reads go out together.
    pub async fn summary(&self, queue: &Queue, minutes: u64) -> Result<QueueSummary> {
        let (stats, per_minute, next) = futures::try_join!(
            queue.stats(),
            queue.throughput(minutes + 1),
            queue.jobs_in_state(JobState::Waiting, 0, 1),
        )?;
        let now = unix_ms();
        Ok(QueueSummary {
            stats,
            per_minute,
            next_job_wait_ms: next
                .first()
                .map(|j| now.saturating_sub(j.due_at_ms.unwrap_or(j.created_at_ms))),
        })
    }

    /// The counts of every queue of the fleet, in [`Client::queues`]'s
    /// order: a partitioned queue's summed over its partitions, as
    /// [`Queue::stats`] does.
    pub async fn all_stats(&self) -> Result<Vec<Stats>> {
        self.read_each(|q| async move { q.stats().await }).await
    }

    /// The counts of each partition of every queue of the fleet (one row
    /// for a queue never split), queue by queue.
    pub async fn partition_stats(&self) -> Result<Vec<Stats>> {
        let per_queue = self
            .read_each(|q| async move { Self::partitions_of(&q).await })
            .await?;
        Ok(per_queue.into_iter().flatten().collect())
    }

    /// The counts of each partition of `queue`, read together.
    pub async fn partitions_of(queue: &Queue) -> Result<Vec<Stats>> {
        futures::future::try_join_all(queue.partition_handles().iter().map(|p| p.stats())).await
    }

    /// Job `id` in whichever queue of the fleet holds it (every queue asked
    /// at once); `None` when none does (completed jobs are kept only for
    /// their queue's keep window).
    pub async fn find_job(&self, id: &str) -> Result<Option<JobInfo>> {
        let found = self.read_each(|q| async move { q.job(id).await }).await?;
        Ok(found.into_iter().flatten().next())
    }

    /// A page of `queue`'s dead letters, newest first, with how many there
    /// are and how many match.
    pub async fn dead(&self, queue: &Queue, query: DeadQuery<'_>) -> Result<DeadPage> {
        let text = query.text.filter(|t| !t.is_empty());
        let total = async { Ok(queue.stats().await?.dead) };
        match text {
            Some(text) => {
                let (total, (letters, matched)) = futures::try_join!(
                    total,
                    queue.find_dead_after(text, query.cursor, query.offset, query.limit)
                )?;
                Ok(DeadPage {
                    total,
                    matched,
                    letters,
                    next: None,
                })
            }
            None => {
                let (total, (letters, next)) = futures::try_join!(
                    total,
                    queue.dead_letters_after(query.cursor, query.offset, query.limit)
                )?;
                Ok(DeadPage {
                    total,
                    matched: total,
                    letters,
                    next,
                })
            }
        }
    }

    /// `read` of every queue of the fleet, in [`Client::queues`]'s order,
    /// all at once. Each queue is a handle on the partitions it recorded,
    /// not opened (no write): the reads answer for a queue whose streams or
    /// group are missing (deleted by hand) as for an empty one.
    async fn read_each<T, F, Fut>(&self, read: F) -> Result<Vec<T>>
    where
        F: Fn(Queue) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let queues = self.logical_queues().await?;
        futures::future::try_join_all(queues.into_iter().map(read)).await
    }

    /// Every queue of the fleet, a partitioned queue once (the registry
    /// lists its partitions, `name#i`), each a handle on its partitions,
    /// not opened. A partition name whose queue records no
    /// split (a queue opened by that name) is a queue of its own.
    async fn logical_queues(&self) -> Result<Vec<Queue>> {
        let registered = self.client.queues().await?;
        let mut bases: Vec<&str> = registered.iter().map(|n| queue_of(n)).collect();
        bases.sort_unstable();
        bases.dedup();
        let recorded =
            futures::future::try_join_all(bases.iter().map(|b| self.client.recorded_partitions(b)))
                .await?;
        let split: std::collections::HashMap<&str, u16> = bases
            .into_iter()
            .zip(recorded)
            .filter_map(|(b, n)| Some((b, n?)))
            .collect();
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for name in &registered {
            let base = queue_of(name);
            let (name, partitions) = match split.get(base) {
                Some(n) => (base, Some(*n)),
                None => (name.as_str(), None),
            };
            if seen.insert(name) {
                out.push(self.unopened(name, partitions)?);
            }
        }
        Ok(out)
    }

    /// A handle on queue `name`'s `partitions` (none recorded: a queue
    /// never split), without opening it.
    fn unopened(&self, name: &str, partitions: Option<u16>) -> Result<Queue> {
        let names = match partitions {
            Some(n) => (0..n).map(|i| format!("{name}#{i}")).collect(),
            None => vec![name.to_owned()],
        };
        let parts = names
            .iter()
            .map(|n| {
                let store = self.client.store(n)?;
                Ok(Partition::new(
                    self.client.clone(),
                    store,
                    QueueConfig::default(),
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Queue::from_partitions(name, parts))
    }
}

/// The queue a registered name belongs to: `name#<index>` is a partition
/// of `name`; any other name is its own.
fn queue_of(name: &str) -> &str {
    match name.rsplit_once('#') {
        Some((base, index)) if !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit()) => {
            base
        }
        _ => name,
    }
}

#[cfg(test)]
mod tests {
    use super::queue_of;

    #[test]
    fn a_partition_name_belongs_to_its_queue() {
        assert_eq!(queue_of("orders#0"), "orders");
        assert_eq!(queue_of("orders#12"), "orders");
        assert_eq!(queue_of("orders"), "orders");
        assert_eq!(queue_of("orders#"), "orders#");
        assert_eq!(queue_of("a.b-c_d#3"), "a.b-c_d");
    }
}
