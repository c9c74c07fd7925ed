/**
 * Replays recorded workflow histories (test/histories/, made by `npm run record-histories`)
 * against the current workflow code: a change that would break offboardings already in flight
 * fails here with a DeterminismViolationError.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from '@temporalio/worker';
import proto from '@temporalio/proto';
import { projectRoot } from '../scripts/services.js';
import { installRuntime, workflowBundle } from './helpers/environment.js';

describe('replay of recorded histories', () => {
  const dir = join(projectRoot, 'test', 'histories');
  const files = readdirSync(dir).filter((f) => f.endsWith('.binpb'));

  it('there are recorded histories to replay', () => {
    assert.ok(files.length >= 2, `expected recorded histories in ${dir}`);
  });

  it('a run of the retired stage-barrier version is refused with what to do, not run on other code', async () => {
    installRuntime();
    const file = join(dir, 'retired', 'immediate-completed.2026-11-25.binpb');
    const history = proto.temporal.api.history.v1.History.decode(readFileSync(file));
    await assert.rejects(
      Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, 'retired'),
      (err: Error) => {
        // A workflow task failure (retried by the server, the run kept), not a determinism error.
        assert.match(err.message, /workflow task failure/);
        // The failure converter encodes the message; the error shows the start of it.
        const encoded = /encoded_attributes: Some\(\[([A-Za-z0-9+/=]+)\.\./.exec(err.message)?.[1] ?? '';
        assert.match(Buffer.from(encoded, 'base64').toString(), /^\{"message":"this offboarding sta/);
        return true;
      },
    );
  });

  for (const file of files) {
    it(`replays ${file} deterministically`, async () => {
      installRuntime();
      const history = proto.temporal.api.history.v1.History.decode(readFileSync(join(dir, file)));
      assert.ok((history.events?.length ?? 0) > 20, 'a real history, not an empty one');
      await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, file.replace('.binpb', ''));
    });
  }
});
