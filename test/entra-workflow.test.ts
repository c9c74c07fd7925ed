/**
 * One person in the directory (the shared slapd) and in Entra ID (the HTTPS stand-in of the
 * identity platform and Graph), offboarded through the workflow on Temporal's time-skipping
 * server: afterwards the directory bind fails, and the Entra tenant holds no enabled login, no
 * live session, no consent, no membership, role, direct licence or co-ownership of theirs; the
 * stage's verification read Entra back clean.
 */
import assert from 'node:assert/strict';
import { ENTRA_SANDBOX_CLIENTS, entraUserIdFor, startEntraSandbox, type EntraSandbox } from '../sandbox/entra.js';
import { canBind } from './helpers/environment.js';
import { offboardOnce } from './helpers/offboard-once.js';

const EMPLOYEE_ID = 'E1046';

describe('offboarding workflow with Entra ID (HTTPS stand-in, real slapd)', function () {
  this.timeout(300_000);
  let sandbox: EntraSandbox | undefined;

  afterEach(async () => {
    await sandbox?.stop();
  });

  it('an immediate offboarding disables the directory login and leaves nothing of the person in Entra, verified clean', async function () {
    sandbox = await startEntraSandbox();
    const tenant = sandbox.state;
    const userId = entraUserIdFor(EMPLOYEE_ID);
    assert.equal(await canBind(EMPLOYEE_ID), true);
    assert.ok(tenant.groups.some((g) => g.members.includes(userId)));

    const { status, events } = await offboardOnce({
      employeeId: EMPLOYEE_ID,
      systems: {
        entra: {
          type: 'entra',
          tenantId: sandbox.tenantId,
          clientId: ENTRA_SANDBOX_CLIENTS.offboard.clientId,
          clientSecret: { env: 'TEST_ENTRA_SECRET' },
          graphBaseUrl: sandbox.graphBaseUrl,
          authorityHost: sandbox.authorityHost,
          caCertificates: sandbox.caCertificate,
        },
      },
      env: { TEST_ENTRA_SECRET: ENTRA_SANDBOX_CLIENTS.offboard.clientSecret },
      until: (s) => s.pipelines?.entra?.stagesDone.includes('revoke') === true,
      timeoutMs: 240_000,
    });

    assert.equal(status.accounts.entra, userId);
    const entraActions = status.actions.filter((a) => a.system === 'entra');
    assert.ok(entraActions.length >= 14 && entraActions.every((a) => a.state === 'done'), JSON.stringify(entraActions));
    assert.deepEqual(status.manualTasks, [], 'nothing was left for a person to do');
    const verified = events.filter((e) => e.action === 'stage_verified' && e.system === 'entra');
    assert.deepEqual(
      verified.map((e) => [e.details.stage, e.outcome]),
      [['revoke', 'clean']],
    );

    assert.equal(await canBind(EMPLOYEE_ID), false);
    const user = tenant.users.find((u) => u.id === userId)!;
    assert.equal(user.accountEnabled, false);
    assert.ok(Date.parse(user.signInSessionsValidFromDateTime) >= Date.parse(user.lastSignInDateTime!));
    assert.deepEqual(
      tenant.oauth2PermissionGrants.filter((g) => g.principalId === userId),
      [],
    );
    assert.deepEqual(
      tenant.groups.filter((g) => g.members.includes(userId)),
      [],
    );
    assert.deepEqual(
      tenant.appRoleAssignments.filter((a) => a.principalId === userId),
      [],
    );
    assert.deepEqual(
      tenant.roleAssignments.filter((a) => a.principalId === userId),
      [],
    );
    assert.deepEqual(user.directLicenses, []);
    assert.deepEqual(
      tenant.apps.filter((a) => a.owners.includes(userId)),
      [],
    );
    assert.ok(tenant.apps.filter((a) => a.displayName === 'Build bot').every((a) => a.owners.length === 1));
  });
});
