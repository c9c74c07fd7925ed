/**
 * End to end on the Temporal CLI's dev server (the server `npm start` runs), with real slapd and
 * PostgreSQL: what an operator and an auditor would see.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { createAuditStore } from '../activities/audit.js';
import { InvalidRequestError, startOffboarding } from '../client/temporal.js';
import type { OffboardingRequest } from '../model/request.js';
import { startTemporalDevServer, type TemporalDevServer } from '../scripts/services.js';
import { createOffboardingWorker } from '../workers/create-worker.js';
import type { OffboardingStatus } from '../workflows/messages.js';
import { canBind, directoryState, eventually, installRuntime, sharedPool, testConfig, workflowBundle } from './helpers/environment.js';

describe('offboarding on the Temporal dev server (real slapd and PostgreSQL)', function () {
  let server: TemporalDevServer;
  let client: Client;
  let nativeConnection: NativeConnection;
  let worker: Worker;
  let running: Promise<void>;
  const taskQueue = `dev-${randomUUID()}`;

  before(async function () {
    installRuntime();
    server = await startTemporalDevServer({ headless: true });
    client = new Client({ connection: await Connection.connect({ address: server.address }) });
    nativeConnection = await NativeConnection.connect({ address: server.address });
    worker = await createOffboardingWorker({ connection: nativeConnection, namespace: 'default', config: await testConfig(), pool: await sharedPool(), taskQueue, workflowBundle: await workflowBundle() });
    running = worker.run();
  });

  after(async function () {
    worker?.shutdown();
    await running;
    await nativeConnection?.close();
    await client?.connection.close();
    await server?.stop();
  });

  const request = (employeeId: string): OffboardingRequest => ({
    requestId: `hr-${randomUUID()}`,
    subject: { employeeId },
    trigger: 'termination',
    reason: 'involuntary',
    employmentType: 'employee',
    effectiveAt: new Date().toISOString(),
    requestedBy: 'hr-system',
  });

  const revoked = (employeeId: string) =>
    eventually(() => client.workflow.getHandle(`offboarding-${employeeId}`).query<OffboardingStatus>('status'), (s) => s.stages[0]?.finishedAt !== undefined, `${employeeId}'s revoke stage`, 60_000);

  it('locks a seeded person and removes every group; the audit has each row once and the chain verifies', async () => {
    assert.equal(await canBind('E1011'), true);
    const started = await startOffboarding(client, request('E1011'), { taskQueue });
    assert.equal(started.workflowId, 'offboarding-E1011');
    const status = await revoked('E1011');

    assert.deepEqual(await directoryState('E1011'), { exists: true, locked: true, groups: [] });
    assert.equal(await canBind('E1011'), false);

    const store = createAuditStore(await sharedPool());
    const events = await eventually(() => store.eventsFor(started.workflowId), (rows) => rows.some((r) => r.action === 'stage_verified'), 'the verification row');
    assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'no event recorded twice');
    const actionRows = events.filter((e) => e.details.actionId !== undefined);
    assert.deepEqual(actionRows.map((e) => e.details.actionId).sort(), status.actions.map((a) => a.id).sort(), 'one row per action');
    assert.ok(events.find((e) => e.action === 'stage_verified')?.outcome === 'clean');
    assert.equal((await store.verify()).ok, true);
  });

  it('shows the offboarding with its search attributes, which filter the list', async () => {
    const handle = client.workflow.getHandle('offboarding-E1011');
    const description = await handle.describe();
    const attributes = description.searchAttributes as Record<string, unknown[]>;
    assert.deepEqual(attributes.OffboardingEmployeeId, ['E1011']);
    assert.deepEqual(attributes.OffboardingMode, ['immediate']);
    assert.deepEqual(attributes.OffboardingStage, ['waiting'], 'waiting for the delete stage');
    assert.deepEqual(attributes.OffboardingHeld, [false]);
    assert.ok(attributes.OffboardingEffectiveAt);
    const listed = await eventually(async () => {
      const ids: string[] = [];
      for await (const workflow of client.workflow.list({ query: `OffboardingEmployeeId = "E1011" AND OffboardingMode = "immediate"` })) ids.push(workflow.workflowId);
      return ids;
    }, (ids) => ids.length === 1, 'the visibility query');
    assert.deepEqual(listed, ['offboarding-E1011']);
    const summary = await client.workflowService.describeWorkflowExecution({ namespace: 'default', execution: { workflowId: 'offboarding-E1011' } });
    assert.ok(summary.executionConfig?.userMetadata?.summary, 'a static summary is set');
  });

  it('concurrent offboardings do not fork the audit chain', async () => {
    const people = ['E1012', 'E1013', 'E1014', 'E1015', 'E1016', 'E1017'];
    await Promise.all(people.map((id) => startOffboarding(client, request(id), { taskQueue })));
    await Promise.all(people.map(revoked));
    for (const id of people) assert.deepEqual(await directoryState(id), { exists: true, locked: true, groups: [] });
    const pool = await sharedPool();
    const { rows } = await pool.query<{ seq: string; prev_hash: string }>('SELECT seq, prev_hash FROM audit_events ORDER BY seq');
    assert.deepEqual(rows.map((r) => Number(r.seq)), rows.map((_, i) => i + 1));
    assert.equal(new Set(rows.map((r) => r.prev_hash)).size, rows.length, 'no two rows share a predecessor');
    assert.equal((await createAuditStore(pool).verify()).ok, true);
  });

  it('refuses LDAP injection strings as identifiers before anything starts', async () => {
    const before = await directoryState('E1018');
    for (const evil of ['*', '*)(uid=*', 'E1018)(|(objectClass=*']) {
      await assert.rejects(startOffboarding(client, { ...request('E1018'), subject: { employeeId: evil } }, { taskQueue }), (err: Error) => err instanceof InvalidRequestError && /subject\.employeeId/.test(err.message));
    }
    await assert.rejects(startOffboarding(client, { ...request('E1018'), subject: { employeeId: 'E1018', email: '*)(mail=*' } }, { taskQueue }), /subject\.email/);
    assert.deepEqual(await directoryState('E1018'), before);
    await assert.rejects(client.workflow.getHandle('offboarding-E1018').describe(), /not found/i);
  });
});
