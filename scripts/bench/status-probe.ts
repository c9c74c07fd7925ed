/**
 * `tsx scripts/bench/status-probe.ts PREFIX COUNT N`: while a backlog is worked, reads the status of
 * N offboardings (`offboarding-PREFIX-<i>`, i < COUNT, spread evenly) as `offboard status` does, and
 * counts the answers, the queued ones and the slow ones (over 5 s).
 */
import { connectClient, readStatus } from '../../client/temporal.js';

const [prefix, count = '2000', n = '50'] = process.argv.slice(2);
if (!prefix) throw new Error('usage: status-probe.ts PREFIX [COUNT] [N]');
const client = await connectClient();
const tally = { answered: 0, queued: 0, slow: 0, failed: 0 };
let worst = 0;
for (let i = 0; i < Number(n); i++) {
  const id = `${prefix}-${Math.floor((i * Number(count)) / Number(n))}`;
  const t0 = Date.now();
  try {
    const answer = await readStatus(client, id);
    if ('queued' in answer) tally.queued += 1;
    else tally.answered += 1;
  } catch {
    tally.failed += 1;
  }
  const ms = Date.now() - t0;
  worst = Math.max(worst, ms);
  if (ms > 5000) tally.slow += 1;
}
process.stdout.write(`${JSON.stringify({ ...tally, worstMs: worst })}\n`);
await client.connection.close();
