// BullMQ side of `sluice-bench compare`: runs one workload against the
// Redis given and prints one JSON line with what it measured.
//
//   node bench.js <workload> --redis redis://127.0.0.1:PORT/ --jobs N
//        [--concurrency C] [--rate R --seconds S]
//
// Used the way BullMQ's docs recommend for speed: `addBulk` for batches,
// `removeOnComplete` / `removeOnFail` so finished jobs do not pile up,
// worker `concurrency` for parallel handlers. Producer and worker share this
// process, as the Sluice and apalis sides do, except in `drain`: this
// process fills the queue, then a second one (`drain-worker`) drains it, so
// the worker has a Node event loop to itself.
'use strict';

const { Queue, Worker } = require('bullmq');
const { execFile } = require('child_process');

const BATCH = 1000;
const SINGLE_PRODUCERS = 50;
const RETRY_SHARE = 10; // one job in 10 fails its first attempt

function parseArgs(argv) {
  const args = { workload: argv[0], jobs: 20000, concurrency: 50, rate: 10000, seconds: 5 };
  for (let i = 1; i < argv.length; i += 2) {
    const key = argv[i].replace(/^--/, '');
    args[key] = key === 'redis' ? argv[i + 1] : Number(argv[i + 1]);
  }
  if (!args.redis) throw new Error('--redis is required');
  return args;
}

function connection(url) {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port), maxRetriesPerRequest: null };
}

const nowMs = () => performance.timeOrigin + performance.now();

const jobOpts = { removeOnComplete: true, removeOnFail: true };

async function enqueueBatches(queue, total, makeOpts) {
  for (let start = 0; start < total; start += BATCH) {
    const jobs = [];
    for (let i = start; i < Math.min(total, start + BATCH); i++) {
      jobs.push({ name: 'noop', data: { n: i }, opts: makeOpts(i) });
    }
    await queue.addBulk(jobs);
  }
}

// A worker on `queueName` at `concurrency` that counts completions up to
// `jobs`: started, then `during()` runs (an enqueue, or nothing), then it
// waits for the last completion and closes. Returns when it started, when
// the last job completed and when it had closed (ms).
async function countingWorker(args, queueName, handler, during) {
  let done = 0;
  let finish;
  const finished = new Promise((resolve) => { finish = resolve; });
  const worker = new Worker(queueName, handler, {
    connection: connection(args.redis),
    concurrency: args.concurrency,
    autorun: false,
  });
  worker.on('completed', () => {
    done += 1;
    if (done === args.jobs) finish();
  });
  worker.on('error', (e) => console.error('worker error', e));
  await worker.waitUntilReady();
  const start = nowMs();
  worker.run();
  await during();
  await finished;
  const lastDone = nowMs();
  await worker.close();
  return { start, lastDone, closed: nowMs() };
}

// Enqueue `total` jobs while a worker at `concurrency` drains them; resolves
// with the seconds from the first enqueue to the last completion (every
// system's timed part ends there, not at its worker's close).
async function endToEnd(args, queue, makeOpts, handler) {
  const t = await countingWorker(args, queue.name, handler,
    () => enqueueBatches(queue, args.jobs, makeOpts));
  return (t.lastDone - t.start) / 1000;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.round((sorted.length - 1) * p))];
}

// The worker process of `drain`: drain `jobs` jobs from queue `bench-drain`
// at `concurrency`; prints the seconds from its start to the last one.
async function drainWorker(args) {
  const t = await countingWorker(args, 'bench-drain', async () => {}, async () => {});
  process.stdout.write(`${JSON.stringify({ seconds: (t.lastDone - t.start) / 1000 })}\n`);
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  if (args.workload === 'drain-worker') return drainWorker(args);
  const queue = new Queue(`bench-${args.workload}`, { connection: connection(args.redis) });
  await queue.waitUntilReady();
  const result = { system: 'bullmq', version: require('bullmq/package.json').version, workload: args.workload };
  const noop = async () => {};

  switch (args.workload) {
    case 'enqueue-batch': {
      const start = nowMs();
      await enqueueBatches(queue, args.jobs, () => jobOpts);
      result.seconds = (nowMs() - start) / 1000;
      result.jobs = args.jobs;
      result.how = `addBulk of ${BATCH}`;
      break;
    }
    case 'enqueue-single': {
      const start = nowMs();
      let next = 0;
      const producers = [];
      for (let p = 0; p < SINGLE_PRODUCERS; p++) {
        producers.push((async () => {
          while (next < args.jobs) {
            const n = next++;
            await queue.add('noop', { n }, jobOpts);
          }
        })());
      }
      await Promise.all(producers);
      result.seconds = (nowMs() - start) / 1000;
      result.jobs = args.jobs;
      result.how = `add, ${SINGLE_PRODUCERS} producers at once`;
      break;
    }
    case 'e2e': {
      result.seconds = await endToEnd(args, queue, () => jobOpts, noop);
      result.jobs = args.jobs;
      result.how = `addBulk of ${BATCH}, worker concurrency ${args.concurrency}, removeOnComplete`;
      break;
    }
    case 'drain': {
      await enqueueBatches(queue, args.jobs, () => jobOpts);
      const out = await new Promise((resolve, reject) => {
        execFile(process.execPath, [__filename, 'drain-worker', '--redis', args.redis,
          '--jobs', String(args.jobs), '--concurrency', String(args.concurrency)],
        { maxBuffer: 1 << 20 }, (e, stdout) => (e ? reject(e) : resolve(stdout)));
      });
      result.seconds = JSON.parse(out.trim().split('\n').pop()).seconds;
      result.jobs = args.jobs;
      result.how = `${args.jobs} jobs added first (addBulk of ${BATCH}), then a worker process of its own at concurrency ${args.concurrency}, removeOnComplete`;
      break;
    }
    case 'e2e-priority': {
      const opts = [1, 2, 3, 4].map((priority) => ({ ...jobOpts, priority }));
      result.seconds = await endToEnd(args, queue, () => opts[Math.floor(Math.random() * 4)], noop);
      result.jobs = args.jobs;
      result.how = `addBulk of ${BATCH} with priorities 1-4, concurrency ${args.concurrency}`;
      break;
    }
    case 'retry': {
      const opts = { ...jobOpts, attempts: 2 };
      const failing = async (job) => {
        if (job.data.n % RETRY_SHARE === 0 && job.attemptsMade === 0) throw new Error('first attempt fails');
      };
      result.seconds = await endToEnd(args, queue, () => opts, failing);
      result.jobs = args.jobs;
      result.how = `1 in ${RETRY_SHARE} fails once, attempts 2, no backoff, concurrency ${args.concurrency}`;
      break;
    }
    case 'latency': {
      const total = args.rate * args.seconds;
      const waits = [];
      let finish;
      const finished = new Promise((resolve) => { finish = resolve; });
      const worker = new Worker(queue.name, async (job) => {
        waits.push(nowMs() - job.data.t);
        if (waits.length === total) finish();
      }, { connection: connection(args.redis), concurrency: args.concurrency });
      await worker.waitUntilReady();
      const start = nowMs();
      let sent = 0;
      const adds = [];
      // Open loop: every millisecond, send what is due by now.
      await new Promise((resolve) => {
        const timer = setInterval(() => {
          const due = Math.min(total, Math.floor(((nowMs() - start) / 1000) * args.rate));
          while (sent < due) {
            adds.push(queue.add('noop', { n: sent, t: nowMs() }, jobOpts));
            sent += 1;
          }
          if (sent >= total) { clearInterval(timer); resolve(); }
        }, 1);
      });
      await Promise.all(adds);
      await finished;
      await worker.close();
      waits.sort((a, b) => a - b);
      result.jobs = total;
      result.seconds = (nowMs() - start) / 1000;
      result.offered_per_s = args.rate;
      result.p50_ms = percentile(waits, 0.5);
      result.p99_ms = percentile(waits, 0.99);
      result.p999_ms = percentile(waits, 0.999);
      result.how = `add at ${args.rate}/s, concurrency ${args.concurrency}; enqueue to handler start`;
      break;
    }
    default:
      throw new Error(`unknown workload ${args.workload}`);
  }
  await queue.obliterate({ force: true }).catch(() => {});
  await queue.close();
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().then(() => process.exit(0), (e) => {
  console.error(e);
  process.exit(1);
});
