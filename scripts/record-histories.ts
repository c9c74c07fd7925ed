/**
 * `npm run record-histories`: runs representative offboardings on the time-skipping server
 * (real slapd and PostgreSQL) and saves their histories to test/histories/, which the replay
 * test replays against the current workflow code. Files are named `<scenario>.<label>.binpb`, the
 * label naming the workflow version they were recorded with (`npm run record-histories -- <label>`).
 * Record a new label after a patched change (the date it lands, e.g. `2026-11-26`) and keep the
 * older files: runs started under every released version may still be in flight, and each must
 * keep replaying.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import proto from '@temporalio/proto';
import { sendCommand, startOffboarding } from '../client/temporal.js';
import type { OffboardingRequest } from '../model/request.js';
import { createOffboardingWorker } from '../workers/create-worker.js';
import {
  eventually,
  installRuntime,
  sharedPool,
  stopSharedServers,
  testConfig,
  workflowBundle,
} from '../test/helpers/environment.js';
import type { OffboardingStatus } from '../workflows/messages.js';
import { projectRoot, readToolchain } from './services.js';

const DAY = 86_400_000;
const label = process.argv[2];
if (!label || !/^[a-z0-9-]+$/.test(label)) {
  process.stderr.write(
    'usage: npm run record-histories -- <label>   (the workflow version: the date it lands, e.g. 2026-11-26; lower case, digits, -)\n',
  );
  process.exit(2);
}

installRuntime();
const env = await TestWorkflowEnvironment.createTimeSkipping({
  server: { executable: { type: 'existing-path', path: readToolchain().testServer } },
});
const taskQueue = 'record-histories';
const worker = await createOffboardingWorker({
  connection: env.nativeConnection,
  namespace: 'default',
  config: await testConfig(),
  pool: await sharedPool(),
  taskQueue,
  workflowBundle: await workflowBundle(),
});

const request = async (employeeId: string, reason: OffboardingRequest['reason']): Promise<OffboardingRequest> => ({
  requestId: `record-${employeeId}`,
  subject: { employeeId },
  trigger: 'termination',
  reason,
  employmentType: 'employee',
  effectiveAt: new Date(await env.currentTimeMs()).toISOString(),
  requestedBy: 'hr-system',
});

const scenarios: Record<string, () => Promise<string>> = {
  // Immediate: revoke, 30 days of retention, delete.
  'immediate-completed': async () => {
    const { workflowId } = await startOffboarding(env.client, await request('E1035', 'involuntary'), {
      taskQueue,
      searchAttributes: false,
    });
    await env.client.workflow.getHandle(workflowId).result();
    return workflowId;
  },
  // Staged: disable, a manager's hold for three days, release, the rest, then a cancel.
  'staged-hold-release-cancel': async () => {
    const { workflowId } = await startOffboarding(env.client, await request('E1036', 'voluntary'), {
      taskQueue,
      searchAttributes: false,
    });
    const handle = env.client.workflow.getHandle(workflowId);
    await eventually(
      () => handle.query<OffboardingStatus>('status'),
      (s) => s.stages[0]?.finishedAt !== undefined,
      'the disable stage',
    );
    await sendCommand(env.client, 'E1036', 'hold', { by: 'manager-1', reason: 'handover' });
    await env.sleep(3 * DAY);
    await sendCommand(env.client, 'E1036', 'release', { by: 'manager-1' });
    await eventually(
      () => handle.query<OffboardingStatus>('status'),
      (s) => s.stages[1]?.finishedAt !== undefined,
      'the second stage',
    );
    await sendCommand(env.client, 'E1036', 'cancel', { by: 'hr-system', reason: 'termination rescinded' });
    await handle.result();
    return workflowId;
  },
  // Voluntary, then a security termination for the same person: the plan is replaced (Update supersede).
  'voluntary-superseded-by-security': async () => {
    const voluntary = await request('E1024', 'voluntary');
    const { workflowId } = await startOffboarding(env.client, voluntary, { taskQueue, searchAttributes: false });
    const handle = env.client.workflow.getHandle(workflowId);
    await eventually(
      () => handle.query<OffboardingStatus>('status'),
      (s) => s.stages[0]?.finishedAt !== undefined,
      'the disable stage',
    );
    await startOffboarding(
      env.client,
      { ...voluntary, requestId: 'record-E1024-security', reason: 'security' },
      { taskQueue, searchAttributes: false },
    );
    await handle.result();
    return workflowId;
  },
  // Due in three days: the pre-flight discovery at once, then a cancel before anything is revoked.
  'future-dated-cancelled': async () => {
    const ahead = {
      ...(await request('E1025', 'involuntary')),
      effectiveAt: new Date((await env.currentTimeMs()) + 3 * DAY).toISOString(),
    };
    const { workflowId } = await startOffboarding(env.client, ahead, { taskQueue, searchAttributes: false });
    const handle = env.client.workflow.getHandle(workflowId);
    await eventually(
      () => handle.query<OffboardingStatus>('status'),
      (s) => s.accounts.directory !== undefined,
      'the pre-flight discovery',
    );
    await sendCommand(env.client, 'E1025', 'cancel', { by: 'hr-system', reason: 'termination rescinded' });
    await handle.result();
    return workflowId;
  },
};

await worker.runUntil(async () => {
  for (const [name, run] of Object.entries(scenarios)) {
    const workflowId = await run();
    const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
    // Protobuf binary: the wire format itself, with no JSON mapping in between.
    writeFileSync(
      join(projectRoot, 'test', 'histories', `${name}.${label}.binpb`),
      proto.temporal.api.history.v1.History.encode(history).finish(),
    );
    process.stdout.write(`recorded ${name}.${label} (${history.events?.length} events)\n`);
  }
});
await env.teardown();
await stopSharedServers();
