/**
 * One person in the directory (the shared slapd) and in Keycloak (the shared real Keycloak, a
 * realm of this test's own), offboarded through the workflow on Temporal's time-skipping server:
 * afterwards the directory bind fails, and the refresh and offline tokens the person's app held
 * are refused by Keycloak's real token endpoint.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { startOffboarding } from '../client/temporal.js';
import { addPerson, refresh, seedRealm, signIn } from '../sandbox/keycloak.js';
import { samplePerson } from '../sandbox/org.js';
import { createOffboardingWorker } from '../workers/create-worker.js';
import { keycloakMissing } from '../scripts/keycloak.js';
import type { OffboardingStatus } from '../workflows/messages.js';
import type { offboarding } from '../workflows/offboarding.js';
import {
  canBind,
  eventually,
  sharedKeycloak,
  sharedPool,
  testConfig,
  timeSkippingEnvironment,
  workflowBundle,
} from './helpers/environment.js';

describe('offboarding workflow with Keycloak (real Keycloak, real slapd)', function () {
  this.timeout(300_000);
  let env: TestWorkflowEnvironment | undefined;
  let worker: Worker | undefined;

  afterEach(async function () {
    this.timeout(60_000);
    if (worker?.getState() === 'RUNNING') worker.shutdown();
    if (worker)
      await eventually(
        async () => worker!.getState(),
        (state) => state === 'STOPPED' || state === 'FAILED',
        'the worker to stop',
      );
    await env?.teardown();
  });

  it('an immediate offboarding disables the directory login and leaves no Keycloak session or token', async function () {
    const missing = keycloakMissing();
    if (missing) {
      console.log(`      (skipped: ${missing})`);
      this.skip();
    }
    const keycloak = await sharedKeycloak();
    const seeded = await seedRealm(keycloak, `offboard-workflow-${process.pid}`);
    const person = samplePerson('E1041');
    const userId = await addPerson(seeded, person);
    const online = await signIn(keycloak, seeded.realm, person.uid);
    const offline = await signIn(keycloak, seeded.realm, person.uid, { offline: true });
    assert.equal(await canBind('E1041'), true);

    env = await timeSkippingEnvironment();
    const taskQueue = `test-${randomUUID()}`;
    worker = await createOffboardingWorker({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      config: await testConfig({
        systems: {
          sso: {
            type: 'keycloak',
            url: keycloak.url,
            realm: seeded.realm,
            clientId: seeded.clientId,
            clientSecret: { env: 'TEST_KEYCLOAK_SECRET' },
          },
        },
        env: { TEST_KEYCLOAK_SECRET: seeded.clientSecret },
      }),
      pool: await sharedPool(),
      taskQueue,
      workflowBundle: await workflowBundle(),
    });
    const testEnv = env;
    const done = await worker.runUntil(async () => {
      const started = await startOffboarding(
        testEnv.client,
        {
          requestId: `hr-${randomUUID()}`,
          subject: { employeeId: 'E1041' },
          trigger: 'termination',
          reason: 'involuntary',
          employmentType: 'employee',
          effectiveAt: new Date(await testEnv.currentTimeMs()).toISOString(),
          requestedBy: 'hr-system',
        },
        { taskQueue, searchAttributes: false },
      );
      const handle = testEnv.client.workflow.getHandle<typeof offboarding>(started.workflowId, started.runId);
      return eventually(
        () => handle.query<OffboardingStatus>('status'),
        (s) => s.stages.some((stage) => stage.name === 'revoke' && stage.finishedAt),
        'the revoke stage',
        240_000,
      );
    });

    assert.equal(done.accounts.sso, userId);
    assert.equal(await canBind('E1041'), false);
    const { admin, realm } = seeded;
    assert.equal((await admin.users.findOne({ realm, id: userId }))?.enabled, false);
    assert.deepEqual(await admin.users.listSessions({ realm, id: userId }), []);
    assert.deepEqual(await admin.users.listConsents({ realm, id: userId }), []);
    assert.deepEqual(await admin.users.listGroups({ realm, id: userId }), []);
    for (const token of [online.refreshToken, offline.refreshToken])
      assert.equal((await refresh(keycloak, realm, token)).body.error, 'invalid_grant');
  });
});
