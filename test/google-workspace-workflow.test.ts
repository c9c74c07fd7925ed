/**
 * One person in the directory (the shared slapd) and in Google Workspace (the Admin SDK stand-in),
 * offboarded through the workflow on Temporal's time-skipping server with a playbook whose revoke
 * stage also hands the person's Drive files to their manager: afterwards the directory bind
 * fails, the Google user is suspended and signed out, holds no token, app password, backup code,
 * group or admin role, and owns no file; after the retention period the user is deleted.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { startOffboarding } from '../client/temporal.js';
import {
  GOOGLE_SANDBOX_ADMIN,
  googleUserOf,
  startGoogleWorkspaceSandbox,
  type GoogleWorkspaceSandbox,
} from '../sandbox/google-workspace.js';
import { createOffboardingWorker } from '../workers/create-worker.js';
import type { OffboardingStatus } from '../workflows/messages.js';
import type { offboarding } from '../workflows/offboarding.js';
import {
  canBind,
  eventually,
  sharedPool,
  skipAhead,
  testConfig,
  timeSkippingEnvironment,
  workflowBundle,
} from './helpers/environment.js';

const EMPLOYEE_ID = 'E1047';
const DAY = 86_400_000;

describe('offboarding workflow with Google Workspace (Admin SDK stand-in, real slapd)', function () {
  this.timeout(300_000);
  let env: TestWorkflowEnvironment | undefined;
  let worker: Worker | undefined;
  let google: GoogleWorkspaceSandbox | undefined;

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
    await google?.stop();
  });

  it('an immediate offboarding suspends, signs out, revokes every credential and membership, hands Drive to the manager, then deletes after retention', async () => {
    google = await startGoogleWorkspaceSandbox();
    const state = google.state;
    const user = googleUserOf(state, EMPLOYEE_ID)!;
    const keeper = googleUserOf(state, 'E1000')!;
    // An admin role as well, so that the removal of both kinds of entitlement shows.
    const helpDesk = Object.values(state.roles).find((r) => r.roleName === '_HELP_DESK_ADMIN_ROLE')!;
    state.roleAssignments['9170516996789999'] = {
      roleAssignmentId: '9170516996789999',
      roleId: helpDesk.roleId,
      assignedTo: user.id,
      scopeType: 'CUSTOMER',
    };
    assert.equal(await canBind(EMPLOYEE_ID), true);
    assert.equal(state.driveFiles.filter((f) => f.ownerId === user.id).length, 2);

    env = await timeSkippingEnvironment();
    const taskQueue = `test-${randomUUID()}`;
    const config = await testConfig({
      systems: {
        workspace: {
          type: 'google_workspace',
          adminSubject: GOOGLE_SANDBOX_ADMIN,
          serviceAccountKey: { env: 'TEST_GOOGLE_SERVICE_ACCOUNT_KEY' },
          rootUrl: google.url,
          tokenUrl: google.tokenUrl,
        },
      },
      env: { TEST_GOOGLE_SERVICE_ACCOUNT_KEY: google.serviceAccountKey },
    });
    // transfer_ownership is a step like any other: here in the revoke stage, well before the delete stage.
    config.policy.playbooks.involuntary.stages[0]!.steps.push({ action: 'transfer_ownership' });
    worker = await createOffboardingWorker({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      config,
      pool: await sharedPool(),
      taskQueue,
      workflowBundle: await workflowBundle(),
    });
    const testEnv = env;
    const { revoked, final } = await worker.runUntil(async () => {
      const started = await startOffboarding(
        testEnv.client,
        {
          requestId: `hr-${randomUUID()}`,
          subject: { employeeId: EMPLOYEE_ID },
          trigger: 'termination',
          reason: 'involuntary',
          employmentType: 'employee',
          effectiveAt: new Date(await testEnv.currentTimeMs()).toISOString(),
          requestedBy: 'hr-system',
        },
        { taskQueue, searchAttributes: false },
      );
      const handle = testEnv.client.workflow.getHandle<typeof offboarding>(started.workflowId, started.runId);
      const revoked = await eventually(
        () => handle.query<OffboardingStatus>('status'),
        (s) => s.stages.some((stage) => stage.name === 'revoke' && stage.finishedAt),
        'the revoke stage',
        240_000,
      );
      // What the revoke stage left, read before the retention period ends.
      assert.equal(state.users[user.id]?.suspended, true);
      assert.deepEqual(
        [state.tokens[user.id], state.asps[user.id], state.backupCodes[user.id]],
        [[], [], []],
        'no OAuth token, app password or valid backup code',
      );
      assert.deepEqual(
        Object.values(state.groups).filter((g) => g.members.includes(user.id)),
        [],
      );
      assert.deepEqual(
        Object.values(state.roleAssignments).filter((a) => a.assignedTo === user.id),
        [],
      );
      await skipAhead(testEnv, 31 * DAY);
      const final = await eventually(
        () => handle.query<OffboardingStatus>('status'),
        (s) => s.stages.some((stage) => stage.name === 'delete' && stage.finishedAt),
        'the delete stage',
        240_000,
      );
      return { revoked, final };
    });

    assert.equal(revoked.accounts.workspace, user.id);
    assert.deepEqual(final.manualTasks, [], 'each stage verified clean: no leftover became a task');
    assert.equal(await canBind(EMPLOYEE_ID), false);
    assert.ok((state.signOuts[user.id] ?? 0) >= 1, 'signed out');
    const workspaceActions = revoked.actions.filter((a) => a.system === 'workspace' && a.stage === 'revoke');
    assert.deepEqual([...new Set(workspaceActions.map((a) => a.kind))].sort(), [
      'disable_login',
      'remove_entitlement',
      'revoke_sessions',
      'revoke_tokens',
      'transfer_ownership',
    ]);
    assert.deepEqual(
      [...new Set(workspaceActions.map((a) => a.state))],
      ['done'],
      JSON.stringify(workspaceActions.map((a) => [a.id, a.state, a.lastError])),
    );
    const transfers = Object.values(state.transfers);
    assert.deepEqual(
      transfers.map((t) => [t.oldOwnerUserId, t.newOwnerUserId, t.overallTransferStatusCode]),
      [[user.id, keeper.id, 'completed']],
      'one transfer, to the manager, and none asked again by the deletion',
    );
    assert.deepEqual(
      state.driveFiles.filter((f) => f.ownerId === user.id),
      [],
    );

    // Deleted after the retention period.
    assert.equal(state.users[user.id], undefined);
    assert.ok(state.deletedUsers[user.id]);
    assert.deepEqual(
      final.actions.filter((a) => a.system === 'workspace' && a.stage === 'delete').map((a) => [a.kind, a.state]),
      [['delete_account', 'done']],
    );
  });
});
