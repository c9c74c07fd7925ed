/**
 * The waiting-offboardings scenario, shared by `npm run bench` (its `waiting` phase, against a
 * worker process it starts) and `npm run bench:waiting` (against a running `npm start`): start
 * `count` offboardings due `days` ahead, each for an employee id no system knows (pre-flight then
 * finds nothing, as for most people in most systems), wait until every one has run its first tasks
 * and is waiting, and sample the worker's resident memory before, every 250 runs and at the end.
 * Then query a sample of the oldest runs, which the workflow cache has evicted: each answer is a
 * replay from history.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { startOffboarding } from '../../client/temporal.js';
import { OFFBOARDING_WORKFLOW_TYPE, statusQuery } from '../../workflows/messages.js';

export interface WaitingSettings {
  client: Client;
  workerPid: number;
  count: number;
  days: number;
  /** Employee ids are `<prefix>-<n>`: unknown everywhere, and easy to find again. */
  prefix: string;
  taskQueue?: string;
  say: (line: string) => void;
  /** Gives up when not every run is waiting after this long. */
  timeoutMs?: number;
}

export interface WaitingFigures {
  count: number;
  beforeMb: number;
  afterMb: number;
  peakMb: number;
  startedSeconds: number;
  allWaitingSeconds: number;
  /** Growth per waiting run once the cache is full (KB), garbage not yet collected included. */
  slopeKbPerRun: number;
  /** The same slope carried to 10,000 waiting (MB); equal to afterMb when count is 10,000. */
  at10kMb: number;
  replayP50Ms: number;
  replayMaxMs: number;
  samples: { waiting: number; rssMb: number }[];
  employeeIds: string[];
}

/** The one process running workers/worker.ts, found in /proc. */
export function findWorkerPid(): number {
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

export const rssMb = (pid: number) =>
  Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

/** Runs `work` over `items` in `lanes` at once. */
async function inLanes<T>(items: T[], lanes: number, work: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: lanes }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

export async function measureWaiting(settings: WaitingSettings): Promise<WaitingFigures> {
  const { client, workerPid: pid, count, days, prefix, say } = settings;
  const timeoutMs = settings.timeoutMs ?? 90 * 60_000;
  const beforeMb = rssMb(pid);
  say(`worker pid ${pid}: ${beforeMb.toFixed(0)} MB before; starting ${count} offboardings due in ${days} days`);
  const began = Date.now();
  const effectiveAt = new Date(Date.now() + days * 86_400_000).toISOString();
  const employeeIds = Array.from({ length: count }, (_, i) => `${prefix}-${i}`);
  let peakMb = beforeMb;
  await inLanes(employeeIds, 8, async (employeeId) => {
    await startOffboarding(
      client,
      {
        requestId: `bench-waiting-${randomUUID()}`,
        subject: { employeeId },
        trigger: 'termination',
        reason: 'voluntary',
        employmentType: 'employee',
        effectiveAt,
        requestedBy: 'bench',
      },
      settings.taskQueue ? { taskQueue: settings.taskQueue } : {},
    );
  });
  const startedSeconds = (Date.now() - began) / 1000;
  say(`${count} started in ${startedSeconds.toFixed(0)} s`);

  const query =
    `WorkflowType = "${OFFBOARDING_WORKFLOW_TYPE}" AND ExecutionStatus = "Running" ` +
    `AND OffboardingStage = "waiting" AND OffboardingEmployeeId STARTS_WITH "${prefix}-"`;
  const samples: { waiting: number; rssMb: number }[] = [];
  for (;;) {
    const { count: waiting } = await client.workflow.count(query);
    const rss = rssMb(pid);
    peakMb = Math.max(peakMb, rss);
    const last = samples[samples.length - 1];
    if (!last || waiting - last.waiting >= 250 || waiting >= count) {
      samples.push({ waiting, rssMb: rss });
      say(`${waiting} waiting: worker ${rss.toFixed(0)} MB (${((Date.now() - began) / 1000).toFixed(0)} s)`);
    }
    if (waiting >= count) break;
    if (Date.now() - began > timeoutMs)
      throw new Error(`only ${waiting} of ${count} reached waiting within ${timeoutMs / 60_000} minutes`);
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
  const allWaitingSeconds = (Date.now() - began) / 1000;
  // Ten seconds for the last activities' garbage to be collected, as a quiet worker would.
  await new Promise((resolve) => setTimeout(resolve, 10_000));
  const afterMb = rssMb(pid);
  peakMb = Math.max(peakMb, afterMb);
  say(
    `all ${count} waiting after ${allWaitingSeconds.toFixed(0)} s; worker ${afterMb.toFixed(0)} MB (peak ${peakMb.toFixed(0)} MB)`,
  );

  // The oldest runs left the cache long ago: each query replays the run from its history.
  const latencies: number[] = [];
  for (const employeeId of employeeIds.slice(0, 20)) {
    const t0 = Date.now();
    const status = await client.workflow.getHandle(`offboarding-${employeeId}`).query(statusQuery);
    latencies.push(Date.now() - t0);
    if (status.phase !== 'waiting') throw new Error(`offboarding-${employeeId} is ${status.phase}, not waiting`);
  }
  latencies.sort((a, b) => a - b);
  const replayP50Ms = latencies[Math.floor(latencies.length / 2)]!;
  const replayMaxMs = latencies[latencies.length - 1]!;
  say(`20 evicted runs queried (replayed): p50 ${replayP50Ms} ms, max ${replayMaxMs} ms`);

  // The first runs also warm the worker up (bundle, connections, pools): the growth that counts
  // is the slope once the cache is full, from the first sample past 250 waiting to the end.
  const from = samples.find((sample) => sample.waiting >= Math.min(250, count / 2)) ?? samples[0]!;
  const slope = from.waiting < count ? (afterMb - from.rssMb) / (count - from.waiting) : NaN;
  return {
    count,
    beforeMb,
    afterMb,
    peakMb,
    startedSeconds,
    allWaitingSeconds,
    slopeKbPerRun: slope * 1024,
    at10kMb: count >= 10_000 ? afterMb : afterMb + slope * (10_000 - count),
    replayP50Ms,
    replayMaxMs,
    samples,
    employeeIds,
  };
}

/** Terminates the runs a scenario started (8 at a time). */
export async function terminateWaiting(client: Client, employeeIds: string[], reason: string) {
  await inLanes(employeeIds, 8, async (employeeId) => {
    await client.workflow
      .getHandle(`offboarding-${employeeId}`)
      .terminate(reason)
      .catch(() => undefined);
  });
}
