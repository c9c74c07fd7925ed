/**
 * The bench's no-op baseline (scripts/bench.ts): as many activities as one offboarding runs, in
 * as many concurrent lanes as it has systems, each activity doing nothing. Its own bundle and task
 * queue; it measures what the dev server and one worker cost per activity, with no connector work.
 */
import { proxyActivities } from '@temporalio/workflow';
import type * as activities from './baseline-activities.js';

const { noop } = proxyActivities<typeof activities>({ startToCloseTimeout: '1 minute' });

export async function benchBaseline(input: { activities: number; lanes: number }): Promise<number> {
  const perLane = Math.ceil(input.activities / input.lanes);
  let done = 0;
  await Promise.all(
    Array.from({ length: input.lanes }, async (_, lane) => {
      for (let i = 0; i < perLane && lane * perLane + i < input.activities; i += 1) {
        await noop();
        done += 1;
      }
    }),
  );
  return done;
}
