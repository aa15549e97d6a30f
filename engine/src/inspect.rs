//! Reads over every queue at once, for overviews (the API's `/health` and
//! `/metrics` so far): the round trips of all queues go out together on
//! the shared connection, instead of one queue after another, each opened
//! first.

use crate::{Client, Result, Stats};

impl Client {
    /// The counts of every queue of the fleet ([`Client::queues`]), in its
    /// order: a name that is a partitioned queue's gets its partitions
    /// summed, as [`crate::Queue::stats`] does. It only reads, except for a
    /// queue whose streams are not all there (deleted by hand): that one is
    /// opened as [`Client::existing_queue`] opens it (which makes them
    /// again), and counted as empty when it is gone.
    pub async fn all_stats(&self) -> Result<Vec<Stats>> {
        let names = self.queues().await?;
        let partitions =
            futures::future::try_join_all(names.iter().map(|n| self.recorded_partitions(n)))
                .await?;
        futures::future::try_join_all(
            names
                .iter()
                .zip(partitions)
                .map(|(name, count)| self.stats_of(name, count)),
        )
        .await
    }

    /// One queue's counts for [`Client::all_stats`]; `partitions`: the count
    /// it recorded, if it is split.
    async fn stats_of(&self, name: &str, partitions: Option<u16>) -> Result<Stats> {
        let stores = match partitions {
            Some(n) => (0..n)
                .map(|i| self.store(&format!("{name}#{i}")))
                .collect::<Result<Vec<_>>>()?,
            None => vec![self.store(name)?],
        };
        match futures::future::try_join_all(stores.iter().map(|s| s.stats())).await {
            Ok(parts) => Ok(Stats::summed(name, parts)),
            // Redis is down: opening the queue would only wait out the
            // retries a second time.
            Err(e) if e.is_unavailable() => Err(e),
            // A stream missing (XINFO answers an error): open it the way a
            // lookup does, which makes what is missing, and read again.
            Err(_) => match self.existing_queue(name).await? {
                Some(queue) => queue.stats().await,
                None => Ok(Stats::summed(name, [])),
            },
        }
    }
}
