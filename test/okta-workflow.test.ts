/**
 * One person in the directory (the shared slapd) and in Okta (the Management API stand-in),
 * offboarded through the workflow on Temporal's time-skipping server: at the effective time the
 * directory bind fails and the Okta user is suspended with no session, token, grant, group, app
 * or admin role left, verified clean; after the retention the user is deleted.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createAuditStore } from '../activities/audit.js';
import { startOffboarding } from '../client/temporal.js';
import { samplePerson } from '../sandbox/org.js';
import { SANDBOX_OKTA_SERVICE_APP, oktaUsersOf, startOktaSandbox, type OktaSandbox } from '../sandbox/okta.js';
import { createOffboardingWorker } from '../workers/create-worker.js';
import type { OffboardingStatus } from '../workflows/messages.js';
import type { offboarding } from '../workflows/offboarding.js';
import {
  canBind,
  eventually,
  sharedPool,
  testConfig,
  timeSkippingEnvironment,
  workflowBundle,
} from './helpers/environment.js';

/** Reserved for this test: Dorothy Lamarr, a contractor in finance, vpn-users and developers. */
const EMPLOYEE_ID = 'E1045';

describe('offboarding workflow with Okta (Management API stand-in, real slapd)', function () {
  this.timeout(300_000);
  let env: TestWorkflowEnvironment | undefined;
  let worker: Worker | undefined;
  let okta: OktaSandbox | undefined;

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
    await okta?.stop();
  });

  it('an immediate offboarding suspends the Okta user and leaves no session, token or entitlement, verified clean; deleted after retention', async () => {
    okta = await startOktaSandbox();
    const person = samplePerson(EMPLOYEE_ID);
    const [user] = oktaUsersOf(okta.state, EMPLOYEE_ID);
    assert.ok(user, 'seeded from the sample organisation');
    const mine = (r: { userId: string }) => r.userId === user.id;
    assert.ok(okta.state.sessions.some(mine) && okta.state.refreshTokens.some(mine) && okta.state.grants.some(mine));
    assert.equal(await canBind(EMPLOYEE_ID), true);

    env = await timeSkippingEnvironment();
    const taskQueue = `test-${randomUUID()}`;
    worker = await createOffboardingWorker({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      config: await testConfig({
        // As an API service app, the production shape: the private key comes from the environment.
        systems: {
          sso: {
            type: 'okta',
            orgUrl: okta.url,
            oauth: { clientId: SANDBOX_OKTA_SERVICE_APP, privateKey: { env: 'TEST_OKTA_SERVICE_KEY' } },
          },
        },
        env: { TEST_OKTA_SERVICE_KEY: okta.servicePrivateKey },
      }),
      pool: await sharedPool(),
      taskQueue,
      workflowBundle: await workflowBundle(),
    });
    const testEnv = env;
    const sandbox = okta;
    await worker.runUntil(async () => {
      const started = await startOffboarding(
        testEnv.client,
        {
          requestId: `hr-${randomUUID()}`,
          // No email from HR: the Okta user is found by employeeNumber.
          subject: { employeeId: EMPLOYEE_ID },
          trigger: 'termination',
          reason: 'involuntary',
          employmentType: person.employmentType,
          effectiveAt: new Date(await testEnv.currentTimeMs()).toISOString(),
          requestedBy: 'hr-system',
        },
        { taskQueue, searchAttributes: false },
      );
      const handle = testEnv.client.workflow.getHandle<typeof offboarding>(started.workflowId, started.runId);
      const audit = createAuditStore(await sharedPool());
      const revoked = await eventually(
        () => handle.query<OffboardingStatus>('status'),
        (s) => s.stages.some((stage) => stage.name === 'revoke' && stage.finishedAt),
        'the revoke stage',
        240_000,
      );
      assert.equal(revoked.accounts.sso, user.id);
      assert.deepEqual(revoked.manualTasks, [], JSON.stringify(revoked.manualTasks));
      const okta = revoked.actions.filter((a) => a.system === 'sso');
      assert.ok(okta.length >= 6, JSON.stringify(okta));
      assert.ok(
        okta.every((a) => a.state === 'done'),
        JSON.stringify(okta.map((a) => [a.id, a.state])),
      );

      assert.equal(await canBind(EMPLOYEE_ID), false);
      const after = sandbox.state.users.find((u) => u.id === user.id)!;
      assert.equal(after.status, 'SUSPENDED');
      assert.deepEqual(sandbox.state.sessions.filter(mine), []);
      assert.deepEqual(sandbox.state.refreshTokens.filter(mine), []);
      assert.deepEqual(sandbox.state.grants.filter(mine), []);
      assert.deepEqual(sandbox.state.roles.filter(mine), []);
      const groups = sandbox.state.memberships
        .filter(mine)
        .map((m) => sandbox.state.groups.find((g) => g.id === m.groupId)!)
        .map((g) => `${g.profile.name}/${g.type}`)
        .sort();
      assert.deepEqual(
        groups,
        ['Domain Users/APP_GROUP', 'Everyone/BUILT_IN'],
        'only the groups the API may not change',
      );
      assert.deepEqual(
        sandbox.state.appUsers.filter(mine).filter((a) => a.scope === 'USER'),
        [],
        'no direct app assignment',
      );
      const verified = await eventually(
        () => audit.eventsFor(started.workflowId),
        (rows) => rows.some((e) => e.action === 'stage_verified' && e.system === 'sso'),
        "Okta's stage_verified audit row",
      );
      assert.equal(verified.find((e) => e.action === 'stage_verified' && e.system === 'sso')?.outcome, 'clean');

      // The retention is skipped by the time-skipping server: the delete stage deactivates, then deletes.
      await handle.result();
      assert.equal(
        sandbox.state.users.some((u) => u.id === user.id),
        false,
        'the Okta user is deleted',
      );
      assert.equal(sandbox.state.factors.some(mine), false);
      assert.ok(Object.keys(sandbox.state.accessTokens).length >= 1, 'through the service app');
    });
  });
});
