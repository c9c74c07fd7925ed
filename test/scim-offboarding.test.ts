/**
 * A whole offboarding, through the workflow and its worker, of a person whose only account is on
 * scim2-server (an independent SCIM 2.0 server whose Users carry no `groups` and whose DELETE
 * leaves the user's id in groups): afterwards the group, read back over HTTP, no longer lists them.
 */
import assert from 'node:assert/strict';
import { offboardOnce } from './helpers/offboard-once.js';
import { startScim2Target, type ScimTarget } from './helpers/scim-targets.js';

describe('offboarding a person on scim2-server (time-skipping server)', function () {
  let target: ScimTarget;

  before(async function () {
    this.timeout(120_000);
    target = await startScim2Target();
  });
  after(async () => {
    await target?.stop();
  });

  it('memberships come from /Groups, are removed, and the group no longer lists the deleted user', async () => {
    // Someone the directory does not know, so no other test's person is touched.
    const employeeId = 'E3001';
    const created = await fetch(`${target.url}/Users`, {
      method: 'POST',
      headers: { authorization: `Bearer ${target.token}`, 'content-type': 'application/scim+json' },
      body: JSON.stringify({
        schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
        userName: 'contractor-3001',
        externalId: employeeId,
        active: true,
      }),
    });
    const userId = ((await created.json()) as { id: string }).id;
    const engineering = await target.groupNamed('Engineering');
    const added = await fetch(`${target.url}/Groups/${engineering.id}`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${target.token}`, 'content-type': 'application/scim+json' },
      body: JSON.stringify({
        schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
        Operations: [{ op: 'add', path: 'members', value: [{ value: userId }] }],
      }),
    });
    assert.ok(added.ok, `PATCH add member: ${added.status}`);
    assert.deepEqual(await target.groupsListing(userId), ['Engineering']);
    assert.equal((await target.read(`/Users/${userId}`))!.groups, undefined, 'Users carry no groups there');

    const { status } = await offboardOnce({
      employeeId,
      systems: {
        app: { type: 'scim', baseUrl: target.url, bearerToken: { env: 'TEST_SCIM2_TOKEN' }, matchBy: 'externalId' },
      },
      env: { TEST_SCIM2_TOKEN: target.token },
      request: { employmentType: 'contractor' },
      until: 'completed', // skips the retention before the deletion
    });

    assert.equal(status.accounts.app, userId);
    const removal = status.actions.find((a) => a.kind === 'remove_entitlement' && a.system === 'app');
    assert.equal(removal?.state, 'done', JSON.stringify(status.actions));
    assert.deepEqual(status.manualTasks, [], 'nothing was left for a person to do');
    assert.equal(await target.read(`/Users/${userId}`), undefined, 'the user is deleted');
    assert.deepEqual(await target.groupsListing(userId), [], 'and no group lists their id');
  });
});
