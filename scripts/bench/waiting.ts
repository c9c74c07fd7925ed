/**
 * `npm run bench:waiting`: the worker's memory with many future-dated offboardings waiting.
 * Runs against a running `npm start` (or any Temporal server and offboard worker): starts
 * BENCH_WAITING (2,000) offboardings due BENCH_WAITING_DAYS (30) ahead, each for an employee id no
 * system knows (pre-flight then finds nothing, as for most people in most systems), waits until
 * every one has run its first tasks and is waiting, and samples the worker's resident memory
 * (VmRSS of the process running workers/worker.ts, or BENCH_WORKER_PID) before, every 250 runs and
 * at the end. Then it queries a sample of the oldest runs, which the workflow cache has evicted:
 * each answer is a replay from history. Every run it started is terminated at the end.
 *
 * A scenario of its own, not part of `npm run bench`: it needs a worker process to measure, and
 * leaves the per-run figure for docs/bench.md.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { connectClient, startOffboarding } from '../../client/temporal.js';
import { OFFBOARDING_WORKFLOW_TYPE, statusQuery } from '../../workflows/messages.js';

const COUNT = Number(process.env.BENCH_WAITING ?? 2000);
const DAYS = Number(process.env.BENCH_WAITING_DAYS ?? 30);
const PREFIX = process.env.BENCH_WAITING_PREFIX ?? `W${Date.now().toString(36).toUpperCase()}`;
const say = (line: string) => process.stdout.write(`[bench:waiting] ${line}\n`);

function workerPid(): number {
  if (process.env.BENCH_WORKER_PID) return Number(process.env.BENCH_WORKER_PID);
  const found = readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('workers/worker.ts');
      } catch {
        return false;
      }
    });
  if (found.length !== 1)
    throw new Error(`found ${found.length} worker processes (workers/worker.ts); set BENCH_WORKER_PID`);
  return Number(found[0]);
}

const rssMb = (pid: number) =>
  Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

async function main() {
  const pid = workerPid();
  const client = await connectClient();
  const before = rssMb(pid);
  say(`worker pid ${pid}: ${before.toFixed(0)} MB before; starting ${COUNT} offboardings due in ${DAYS} days`);
  const began = Date.now();
  const effectiveAt = new Date(Date.now() + DAYS * 86_400_000).toISOString();
  const ids = Array.from({ length: COUNT }, (_, i) => `${PREFIX}-${i}`);
  const samples: { started: number; waiting: number; rss: number }[] = [];
  let peak = before;
  const lanes = 8;
  let next = 0;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (next < ids.length) {
        const employeeId = ids[next++]!;
        await startOffboarding(client, {
          requestId: `bench-waiting-${randomUUID()}`,
          subject: { employeeId },
          trigger: 'termination',
          reason: 'voluntary',
          employmentType: 'employee',
          effectiveAt,
          requestedBy: 'bench',
        });
      }
    }),
  );
  say(`${COUNT} started in ${((Date.now() - began) / 1000).toFixed(0)} s`);
  const query = `WorkflowType = "${OFFBOARDING_WORKFLOW_TYPE}" AND ExecutionStatus = "Running" AND OffboardingStage = "waiting" AND OffboardingEmployeeId STARTS_WITH "${PREFIX}-"`;
  for (;;) {
    const { count } = await client.workflow.count(query);
    const rss = rssMb(pid);
    peak = Math.max(peak, rss);
    if (samples.length === 0 || count - samples[samples.length - 1]!.waiting >= 250 || count >= COUNT) {
      samples.push({ started: COUNT, waiting: count, rss });
      say(`${count} waiting: worker ${rss.toFixed(0)} MB`);
    }
    if (count >= COUNT) break;
    if (Date.now() - began > 60 * 60_000) throw new Error(`only ${count} of ${COUNT} reached waiting within an hour`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  const settled = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 10_000));
  const after = rssMb(pid);
  peak = Math.max(peak, after);
  say(
    `all ${COUNT} waiting after ${((settled - began) / 1000).toFixed(0)} s; worker ${after.toFixed(0)} MB (peak ${peak.toFixed(0)} MB)`,
  );
  // The oldest runs left the cache long ago: each query replays the run from its history.
  const latencies: number[] = [];
  for (const employeeId of ids.slice(0, 20)) {
    const t0 = Date.now();
    const status = await client.workflow.getHandle(`offboarding-${employeeId}`).query(statusQuery);
    latencies.push(Date.now() - t0);
    if (status.phase !== 'waiting') throw new Error(`offboarding-${employeeId} is ${status.phase}, not waiting`);
  }
  latencies.sort((a, b) => a - b);
  say(
    `20 evicted runs queried (replayed): p50 ${latencies[10]} ms, max ${latencies[19]} ms; worker ${rssMb(pid).toFixed(0)} MB`,
  );
  // The first runs also warm the worker up (bundle, connections, pools): the growth that counts
  // is the slope once the cache is full, from the first sample past 250 waiting to the end.
  const from = samples.find((sample) => sample.waiting >= Math.min(250, COUNT / 2)) ?? samples[0]!;
  const slope = from.waiting < COUNT ? (after - from.rss) / (COUNT - from.waiting) : NaN;
  say(
    `from ${from.waiting} to ${COUNT} waiting: ${from.rss.toFixed(0)} → ${after.toFixed(0)} MB, ${(slope * 1024).toFixed(0)} KB a run ` +
      `(garbage not yet collected included); 10,000 waiting ≈ ${(after + slope * (10_000 - COUNT)).toFixed(0)} MB if that slope held`,
  );
  say('terminating the runs it started…');
  let cursor = 0;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (cursor < ids.length) {
        const employeeId = ids[cursor++]!;
        await client.workflow
          .getHandle(`offboarding-${employeeId}`)
          .terminate('bench:waiting over')
          .catch(() => undefined);
      }
    }),
  );
  await client.connection.close();
}

await main();
