/**
 * `npm run bench:waiting`: the worker's memory with many future-dated offboardings waiting, against
 * a running `npm start` (or any Temporal server and offboard worker): the scenario of
 * scripts/bench/waiting-scenario.ts with BENCH_WAITING (2,000) runs due BENCH_WAITING_DAYS (30)
 * ahead, measuring the process running workers/worker.ts (or BENCH_WORKER_PID). Every run it started
 * is terminated at the end. `npm run bench` has the same scenario as its `waiting` phase, with a
 * worker process of its own and 10,000 runs.
 */
import { connectClient } from '../../client/temporal.js';
import { findWorkerPid, measureWaiting, terminateWaiting } from './waiting-scenario.js';

const say = (line: string) => process.stdout.write(`[bench:waiting] ${line}\n`);

async function main() {
  const client = await connectClient();
  const figures = await measureWaiting({
    client,
    workerPid: process.env.BENCH_WORKER_PID ? Number(process.env.BENCH_WORKER_PID) : findWorkerPid(),
    count: Number(process.env.BENCH_WAITING ?? 2000),
    days: Number(process.env.BENCH_WAITING_DAYS ?? 30),
    prefix: process.env.BENCH_WAITING_PREFIX ?? `W${Date.now().toString(36).toUpperCase()}`,
    say,
  });
  const from = figures.samples.find((s) => s.waiting >= Math.min(250, figures.count / 2)) ?? figures.samples[0]!;
  say(
    `from ${from.waiting} to ${figures.count} waiting: ${from.rssMb.toFixed(0)} → ${figures.afterMb.toFixed(0)} MB, ` +
      `${figures.slopeKbPerRun.toFixed(0)} KB a run (garbage not yet collected included); ` +
      `10,000 waiting ≈ ${figures.at10kMb.toFixed(0)} MB if that slope held`,
  );
  say('terminating the runs it started…');
  await terminateWaiting(client, figures.employeeIds, 'bench:waiting over');
  await client.connection.close();
}

await main();
