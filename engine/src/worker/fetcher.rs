//! The fetcher: one partition's fetch loop. It asks for as many jobs as
//! there are free slots and `prefetch` more (`pace.rs`), in one of four
//! ways: a `claim.lua` call; a direct read without the script after a
//! claim that came back full (`store/direct.rs`); a read of its own
//! pending entries after a direct read that failed and may have run; and,
//! when nothing is ready, a blocking read on every level, or polling
//! instead on a paused or rate-limited queue. What it claims goes to the
//! executor (`executor.rs`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::WorkerConfig;
use super::executor::Executor;
use super::held::InFlight;
use super::pace::{Pace, adaptive_prefetch, average, payload_average, within_claim_bytes};
use crate::backoff::LoopBackoff;
use crate::conn::Conn;
use crate::error::Result;
use crate::handler::Runner;
use crate::job::Job;
use crate::partition::Partition;
use crate::shutdown::Shutdown;
use crate::store::{CallToken, ClaimStatus, Delivered, DirectRead, RateState};

/// How often an empty rate-limited queue is polled for new jobs.
const RATE_LIMITED_POLL: Duration = Duration::from_millis(100);

/// Entries per level a blocking read takes (`block_for_entries`).
const WAKE_UP_ENTRIES: usize = 1;

/// What a fetch brought: jobs, or why none.
type Fetched = std::result::Result<Vec<Job>, NoJobs>;

/// Why a fetch brought no jobs, which says what comes before the next.
enum NoJobs {
    /// A direct read took none (it found none, or only entries `claim.lua`
    /// must activate): `claim.lua` next, at once, which also says whether
    /// to wait, and how.
    ClaimNext,
    /// `claim.lua` found none ready; what it saw of the queue says how to
    /// wait.
    NoneReady(ClaimStatus),
    /// The call failed.
    Failed(crate::Error),
}

/// One partition's fetch loop, and what it keeps from one fetch to the
/// next.
pub(super) struct Fetcher {
    queue: Partition,
    consumer: String,
    config: WorkerConfig,
    in_flight: InFlight,
    pace: Arc<Pace>,
    stop: Shutdown,
    backoff: LoopBackoff,
    /// The connection of the blocking reads: one would hold up every
    /// command sharing it.
    blocking: Conn,
    /// Entries delivered to us and not yet activated (by a blocking read,
    /// or by a direct read that found them needing claim.lua): claimed on
    /// the next fetch.
    delivered: Delivered,
    /// A claim call that failed (perhaps after Redis ran it) is sent again
    /// with its token until it is answered: the answer is then the first
    /// run's jobs, not a second claim.
    unanswered: Option<CallToken>,
    /// The token of the last answered call goes with the next one, to free
    /// its record.
    answered: Option<String>,
    /// Direct reads (store/direct.rs): after a claim that came back full
    /// with the queue neither paused nor limited, the next claim reads
    /// levels 0..=this one without claim.lua (the level a claim.lua call
    /// filled up from, or the most urgent level a direct read found and
    /// that alone filled it). A claim that comes back short goes through
    /// claim.lua again, which looks for the next level strictly.
    direct: Option<u8>,
    /// A direct read failed and may have run: the next claim reads this
    /// worker's own pending entries instead, to take those it never saw.
    lost_read: bool,
    /// How long a claim's round trip takes, on average (for the default
    /// prefetch).
    claim_time: Option<Duration>,
    /// The size of the jobs' payloads, on average (for the claims' size).
    payload_size: Option<usize>,
}

impl Fetcher {
    /// The fetch loop of `consumer` on `queue`, once its blocking connection
    /// is open. Redis may be down when the worker starts: it keeps trying
    /// until Redis answers, or returns None at a stop.
    pub(super) async fn connect(
        queue: Partition,
        consumer: String,
        config: WorkerConfig,
        in_flight: InFlight,
        pace: Arc<Pace>,
        mut stop: Shutdown,
    ) -> Option<Self> {
        let mut backoff = LoopBackoff::new("claim");
        let blocking = loop {
            match queue
                .client()
                .blocking_connection(config.block_timeout)
                .await
            {
                Ok(conn) => break conn,
                Err(e) => {
                    let wait = backoff.failed(queue.name(), &e);
                    stop.sleep(wait).await;
                    if stop.is_triggered() {
                        return None;
                    }
                }
            }
        };
        Some(Self {
            queue,
            consumer,
            config,
            in_flight,
            pace,
            stop,
            backoff,
            blocking,
            delivered: Delivered::default(),
            unanswered: None,
            answered: None,
            direct: None,
            lost_read: false,
            claim_time: None,
            payload_size: None,
        })
    }

    /// Claim jobs and hand them to `executor` until the stop, and until the
    /// entries already delivered are claimed.
    pub(super) async fn run<H: Runner>(mut self, executor: &mut Executor<H>) -> Result<()> {
        loop {
            if self.stop.is_triggered() && self.delivered.entries.is_empty() {
                let store = self.queue.store();
                store.forget_calls(self.answered.as_slice()).await;
                return Ok(());
            }
            executor.reap();
            // Entries delivered are claimed whatever the stop: it does not
            // cut this wait short while there are some.
            let stop = self.delivered.entries.is_empty().then_some(&mut self.stop);
            let batch_size = self.config.batch_size;
            let Some(slots) = executor.slots_for_claim(batch_size, stop).await? else {
                continue;
            };
            let want = self.how_many(slots.len());
            let jobs = match self.fetch(want).await {
                Ok(jobs) => jobs,
                Err(no_jobs) => {
                    drop(slots);
                    self.before_next_fetch(no_jobs).await;
                    continue;
                }
            };
            self.hold(&jobs);
            executor.start(jobs, slots, &mut self.stop).await?;
        }
    }

    /// How many jobs to ask for with `free` slots (at most `batch_size`):
    /// those and the prefetch, within the batch size and the claim's byte
    /// bound.
    fn how_many(&self, free: usize) -> usize {
        let prefetch = self.config.prefetch.unwrap_or_else(|| {
            adaptive_prefetch(
                self.config.concurrency,
                self.claim_time,
                self.pace.run_time(),
            )
        });
        let want = (free + prefetch).min(self.config.batch_size);
        within_claim_bytes(want, self.payload_size)
    }

    /// Ask for up to `want` jobs, the way the answers to the calls before
    /// call for.
    async fn fetch(&mut self, want: usize) -> Fetched {
        // A claim.lua call still unanswered is sent again first (its token
        // answers it); a direct read never reuses its token.
        if let Some(call) = self.unanswered.take() {
            return self.claim(want, call).await;
        }
        let call = self.queue.claim_token(self.answered.take());
        if self.lost_read {
            self.read_own_pending(want, call).await
        } else if let (Some(deepest), true) = (self.direct, self.delivered.entries.is_empty()) {
            self.read_direct(want, deepest, call).await
        } else {
            self.claim(want, call).await
        }
    }

    /// `claim.lua`: activate the entries delivered, then claim up to `want`
    /// more in priority order.
    async fn claim(&mut self, want: usize, call: CallToken) -> Fetched {
        let sent = Instant::now();
        let claimed = self
            .queue
            .store()
            .claim(&self.consumer, want, &self.delivered, &call)
            .await;
        match claimed {
            Ok((status, jobs)) => {
                self.answered(call, sent);
                self.delivered = Delivered::default();
                let open = !status.paused && status.rate == RateState::Unlimited;
                self.direct = (open && jobs.len() >= want)
                    .then(|| deepest_level(&jobs))
                    .flatten();
                if jobs.is_empty() {
                    return Err(NoJobs::NoneReady(status));
                }
                Ok(jobs)
            }
            Err(e) => {
                self.unanswered = Some(call);
                Err(NoJobs::Failed(e))
            }
        }
    }

    /// A direct read of levels `0..=deepest`, without claim.lua.
    async fn read_direct(&mut self, want: usize, deepest: u8, call: CallToken) -> Fetched {
        let sent = Instant::now();
        let read = self
            .queue
            .store()
            .read_direct(&self.consumer, want, deepest, &call)
            .await;
        self.after_read(read, want, call, sent)
    }

    /// This worker's own pending entries that it does not hold, after a
    /// direct read that failed and may have run.
    async fn read_own_pending(&mut self, want: usize, call: CallToken) -> Fetched {
        let sent = Instant::now();
        let known: HashSet<(u8, String)> = self
            .in_flight
            .entries()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let count = known.len() + 2 * self.config.batch_size + 64;
        let read = self
            .queue
            .store()
            .read_own_pending(&self.consumer, count, &call, |(level, entry)| {
                known.contains(&(level, entry.to_owned()))
            })
            .await;
        self.after_read(read, want, call, sent)
    }

    /// Keep what a read without claim.lua answered for the next fetch.
    fn after_read(
        &mut self,
        read: Result<DirectRead>,
        want: usize,
        call: CallToken,
        sent: Instant,
    ) -> Fetched {
        let DirectRead {
            needs_script,
            jobs,
            deferred,
        } = match read {
            Ok(read) => read,
            Err(e) => {
                self.direct = None;
                // A transaction a full Redis refused ran nothing; any
                // other failure may have delivered entries unheard of.
                // Either way the next claim goes through claim.lua,
                // which runs while Redis is full.
                self.lost_read = !e.is_full();
                return Err(NoJobs::Failed(e));
            }
        };
        self.answered(call, sent);
        self.lost_read = false;
        // The next read goes down to the most urgent level this one found,
        // and only while that level filled it: a job that arrived on a
        // more urgent level narrows the next read to it, so less urgent
        // jobs are read beside it once at most, and a short level goes
        // back to claim.lua's strict search.
        self.direct = (!needs_script)
            .then(|| full_top_level(&jobs, want))
            .flatten();
        if !deferred.is_empty() {
            self.delivered = Delivered {
                entries: deferred,
                by_blocking_read: false,
            };
        }
        if jobs.is_empty() {
            return Err(NoJobs::ClaimNext);
        }
        Ok(jobs)
    }

    /// `call`, sent at `sent`, was answered.
    fn answered(&mut self, call: CallToken, sent: Instant) {
        self.backoff.succeeded(self.queue.name());
        self.claim_time = Some(average(self.claim_time, sent.elapsed()));
        self.answered = Some(call.token);
    }

    /// Wait, if need be, after a fetch that brought no jobs (its slots are
    /// free again meanwhile).
    async fn before_next_fetch(&mut self, no_jobs: NoJobs) {
        match no_jobs {
            NoJobs::ClaimNext => {}
            NoJobs::NoneReady(status) => self.wait_for_jobs(status).await,
            NoJobs::Failed(e) => {
                if self.stop.is_triggered() && !self.delivered.entries.is_empty() {
                    // Stopping, and Redis does not answer: the entries a
                    // blocking read delivered are left, not waited on. They
                    // are pending under the blocking reads' name, so a
                    // reclaim puts them back in line with no attempt spent;
                    // a claim that activated them unanswered left its
                    // record, by which a reclaim gives the attempt back.
                    tracing::warn!(
                        entries = self.delivered.entries.len(),
                        error = %e,
                        "stopping while redis does not answer; entries delivered to this worker go back in line"
                    );
                    self.delivered = Delivered::default();
                    return;
                }
                self.back_off(&e).await
            }
        }
    }

    /// Wait for jobs as the queue's state says: poll a paused or
    /// rate-limited queue, block on an open one.
    async fn wait_for_jobs(&mut self, status: ClaimStatus) {
        if status.paused {
            self.stop.sleep(self.config.pause_poll).await;
            return;
        }
        if self.stop.is_triggered() {
            return;
        }
        // A rate-limited queue is polled: a blocking read would take
        // entries without asking the bucket.
        match status.rate {
            RateState::Unlimited => self.block_for_entries().await,
            RateState::Open => self.stop.sleep(RATE_LIMITED_POLL).await,
            RateState::Wait(wait) => self.stop.sleep(wait.min(self.config.pause_poll)).await,
        }
    }

    /// Nothing ready: wait on every level at once, up to the block timeout,
    /// for entries to claim next. Not cut short by a stop, so entries
    /// delivered meanwhile are still claimed.
    ///
    /// The read takes one entry per level: it only wakes the fetch loop.
    /// The claim.lua call that follows it (one call in any case) reads the
    /// rest of `want` itself, whereas each entry the blocking read delivers
    /// costs that call an XPENDING and an XCLAIM to activate. Reads of up
    /// to `want` made Redis do about 40 % more work per job on a queue whose
    /// shards often run empty (issue 40, §6).
    async fn block_for_entries(&mut self) {
        let delivered = self
            .queue
            .store()
            .wait_for_entries(
                &mut self.blocking,
                &self.consumer,
                WAKE_UP_ENTRIES,
                self.config.block_timeout,
            )
            .await;
        match delivered {
            Ok(delivered) => self.delivered = delivered,
            Err(e) => self.back_off(&e).await,
        }
    }

    /// After a failed call: wait as the backoff says, or until the stop.
    async fn back_off(&mut self, error: &crate::Error) {
        let wait = self.backoff.failed(self.queue.name(), error);
        self.stop.sleep(wait).await;
    }

    /// Hold `jobs`, just claimed: every job claimed is kept alive from now
    /// on, also those that wait for a slot (claimed ahead).
    fn hold(&mut self, jobs: &[Job]) {
        self.in_flight.hold(jobs);
        self.payload_size = payload_average(self.payload_size, jobs);
    }
}

/// The least urgent level among `jobs` (None when there are none).
fn deepest_level(jobs: &[Job]) -> Option<u8> {
    jobs.iter().map(|job| job.priority).max()
}

/// The most urgent level among `jobs` when it alone gave `want` of them
/// (None otherwise).
fn full_top_level(jobs: &[Job], want: usize) -> Option<u8> {
    let top = jobs.iter().map(|job| job.priority).min()?;
    let at_top = jobs.iter().filter(|job| job.priority == top).count();
    (at_top >= want).then_some(top)
}
