/**
 * One person in the directory (the shared slapd) and in Google Workspace (the Admin SDK stand-in),
 * offboarded through the workflow on Temporal's time-skipping server with a playbook whose revoke
 * stage also hands the person's Drive files to their manager: afterwards the directory bind
 * fails, the Google user is suspended and signed out, holds no token, app password, backup code,
 * group or admin role, and owns no file; after the retention period the user is deleted.
 */
import assert from 'node:assert/strict';
import { DEFAULT_PLAYBOOKS } from '../model/policy.js';
import {
  GOOGLE_SANDBOX_ADMIN,
  googleUserOf,
  startGoogleWorkspaceSandbox,
  type GoogleWorkspaceSandbox,
} from '../sandbox/google-workspace.js';
import { canBind } from './helpers/environment.js';
import { offboardOnce } from './helpers/offboard-once.js';

const EMPLOYEE_ID = 'E1047';

describe('offboarding workflow with Google Workspace (Admin SDK stand-in, real slapd)', function () {
  this.timeout(300_000);
  let google: GoogleWorkspaceSandbox | undefined;

  afterEach(async () => {
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

    const { involuntary } = DEFAULT_PLAYBOOKS;
    const { status: final } = await offboardOnce({
      employeeId: EMPLOYEE_ID,
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
      // transfer_ownership is a step like any other: here in the revoke stage, well before the delete stage.
      playbooks: {
        involuntary: {
          ...involuntary,
          stages: involuntary.stages.map((stage) =>
            stage.name === 'revoke' ? { ...stage, steps: [...stage.steps, { action: 'transfer_ownership' }] } : stage,
          ),
        },
      },
      timeoutMs: 240_000,
      // What the revoke stage left, read before the retention period ends.
      afterRevoke: (revoked) => {
        assert.equal(revoked.accounts.workspace, user.id);
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
      },
      // The retention is skipped by the time-skipping server: the delete stage follows.
      until: 'completed',
    });

    assert.deepEqual(final.manualTasks, [], 'each stage verified clean: no leftover became a task');
    assert.equal(await canBind(EMPLOYEE_ID), false);
    assert.ok((state.signOuts[user.id] ?? 0) >= 1, 'signed out');
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
