/**
 * The SCIM 2.0 connector against two servers holding the sample organisation: PyPI's scim2-server
 * (an independent implementation) and our stand-in (sandbox/scim.ts). What must agree runs on
 * both and is read back from the server over HTTP; the stand-in alone covers what only it can
 * be made to do (faults, rate limits, filters refused or ignored): discovery by userName,
 * externalId and email, each action and its idempotency, ETag handling, and how each RFC 7644
 * error is classified.
 */
import assert from 'node:assert/strict';
import {
  createScimConnector,
  retryAfterMs,
  scimSystemSchema,
  type ScimSystemInput,
} from '../activities/connectors/scim.js';
import { ConnectorError, type Connector } from '../activities/connectors/types.js';
import type { Action, Entitlement } from '../model/plan.js';
import { samplePerson } from '../sandbox/org.js';
import {
  SCIM_DEFAULT_READ_ONLY_TOKEN,
  SCIM_DEFAULT_TOKEN,
  SCIM_INACTIVE_EMPLOYEE_ID,
  SCIM_SHARED_EMAIL_EMPLOYEE_ID,
  startScimSandbox,
  type ScimSandbox,
} from '../sandbox/scim.js';
import { plan } from '../model/plan.js';
import { actionsForStage, leftoversAfterStage } from '../model/plan.js';
import { defaultPolicy } from '../model/policy.js';
import { SCIM_TARGETS, type ScimTarget } from './helpers/scim-targets.js';
import { startScim2Server } from '../scripts/services.js';

const isConnectorError = (check: (err: ConnectorError) => boolean) => (err: unknown) =>
  err instanceof ConnectorError && check(err);
const subjectOf = (employeeId: string) => ({ employeeId, email: samplePerson(employeeId).email });
const actionOf = (kind: Action['kind'], accountId: string, target?: Entitlement): Action => ({
  id: `t/${kind}`,
  stage: 't',
  system: 'app',
  kind,
  accountId,
  target,
});

for (const { name, start } of SCIM_TARGETS) {
  describe(`SCIM 2.0 connector, on ${name}: what every server must agree on`, () => {
    let target: ScimTarget;
    let scim: Connector;
    const connect = (settings: Partial<ScimSystemInput> = {}) =>
      createScimConnector(
        'app',
        scimSystemSchema.parse({
          type: 'scim',
          baseUrl: target.url,
          bearerToken: target.token,
          timeoutMs: 5_000,
          ...settings,
        }),
      );
    const idOf = async (employeeId: string) => (await target.userOf(employeeId))!.id;

    // One server per target for the block; each test offboards its own sample person.
    before(async function () {
      this.timeout(60_000);
      target = await start();
      scim = connect();
    });
    after(async () => {
      await target?.stop();
    });

    it('Users carry no groups attribute, and discovery reads memberships from /Groups', async () => {
      const id = await idOf('E1001');
      assert.equal((await target.read(`/Users/${id}`))!.groups, undefined, 'the server leaves groups out of Users');
      const found = await scim.discover(subjectOf('E1001'));
      assert.equal(found.account?.id, id);
      const byKind = (kind: string) =>
        found.entitlements
          .filter((e) => e.kind === kind)
          .map((e) => e.name ?? e.id)
          .sort();
      assert.deepEqual(byKind('group'), await target.groupsListing(id));
      assert.deepEqual(byKind('group'), ['App Admins', 'Finance']);
      assert.deepEqual(byKind('role'), ['Administrator']);
      assert.deepEqual(byKind('entitlement'), ['Approve invoices']);
      assert.equal(
        found.entitlements.find((e) => e.name === 'Finance')!.id,
        (await target.groupNamed('Finance')).id,
        'a group is identified by its SCIM id on that server',
      );
    });

    it('each membership, role and entitlement is removed, read back from the group and the user; again is already', async () => {
      const found = await scim.discover(subjectOf('E1007'));
      const id = found.account!.id;
      assert.ok(found.entitlements.length >= 2, JSON.stringify(found.entitlements));
      for (const entitlement of found.entitlements) {
        const what = `${entitlement.kind} ${entitlement.name ?? entitlement.id}`;
        assert.equal(
          (await scim.apply(actionOf('remove_entitlement', id, entitlement), subjectOf('E1007'))).outcome,
          'done',
          what,
        );
        assert.equal(
          (await scim.apply(actionOf('remove_entitlement', id, entitlement), subjectOf('E1007'))).outcome,
          'already',
          `${what} again`,
        );
      }
      assert.deepEqual(await target.groupsListing(id), [], 'no group lists the user');
      const user = (await target.read(`/Users/${id}`))!;
      assert.deepEqual([user.roles ?? [], user.entitlements ?? []], [[], []]);
      assert.deepEqual((await scim.discover(subjectOf('E1007'))).entitlements, []);
    });

    it('a removal from a group the user is not in, or from a group that is gone, is already and changes nothing', async () => {
      const id = await idOf('E1002');
      const groups = await target.groupsListing(id);
      const other = ['Engineering', 'Finance', 'App Admins'].find((g) => !groups.includes(g))!;
      const group = await target.groupNamed(other);
      const members = (group.members ?? []).map((m) => m.value).sort();
      const result = await scim.apply(
        actionOf('remove_entitlement', id, { id: group.id, kind: 'group', name: other }),
        subjectOf('E1002'),
      );
      assert.equal(result.outcome, 'already');
      assert.deepEqual(((await target.read(`/Groups/${group.id}`))!.members ?? []).map((m) => m.value).sort(), members);
      assert.equal(
        (
          await scim.apply(
            actionOf('remove_entitlement', id, { id: 'no-such-group', kind: 'group' }),
            subjectOf('E1002'),
          )
        ).outcome,
        'already',
      );
    });

    it('disable_login and enable_login are read back; again is already', async () => {
      const id = await idOf('E1003');
      assert.equal((await scim.apply(actionOf('disable_login', id), subjectOf('E1003'))).outcome, 'done');
      assert.equal((await target.read(`/Users/${id}`))!.active, false);
      assert.equal((await scim.apply(actionOf('disable_login', id), subjectOf('E1003'))).outcome, 'already');
      assert.equal((await scim.discover(subjectOf('E1003'))).account?.disabled, true);
      assert.equal((await scim.apply(actionOf('enable_login', id), subjectOf('E1003'))).outcome, 'done');
      assert.equal((await target.read(`/Users/${id}`))!.active, true);
    });

    it('delete_account deletes the user (read back: 404); a membership left behind is still removed', async () => {
      const id = await idOf('E1004');
      const finance = await target.groupNamed('App Admins');
      assert.ok(
        (finance.members ?? []).some((m) => m.value === id),
        'E1004 is an app admin',
      );
      assert.equal((await scim.apply(actionOf('delete_account', id), subjectOf('E1004'))).outcome, 'done');
      assert.equal(await target.read(`/Users/${id}`), undefined);
      assert.equal((await scim.apply(actionOf('delete_account', id), subjectOf('E1004'))).outcome, 'already');
      assert.equal((await scim.discover(subjectOf('E1004'))).account, null);
      // Neither server cascades a DELETE to groups (scim2-server never does; the stand-in only when configured).
      assert.deepEqual(await target.groupsListing(id), ['App Admins', 'Engineering']);
      const removal = actionOf('remove_entitlement', id, { id: finance.id, kind: 'group' });
      assert.equal((await scim.apply(removal, subjectOf('E1004'))).outcome, 'done');
      assert.deepEqual(await target.groupsListing(id), ['Engineering']);
    });

    it('check() makes an authenticated read: a wrong token fails it, though /ServiceProviderConfig needs none', async () => {
      assert.equal((await fetch(`${target.url}/ServiceProviderConfig`)).status, 200, 'served without authentication');
      await scim.check!();
      await assert.rejects(
        connect({ bearerToken: 'not-the-token' }).check!(),
        isConnectorError(
          (err) =>
            !err.retryable &&
            err.code === 'scim_401' &&
            /check \(an authenticated read of \/Users\)/.test(err.message) &&
            /bearer token is wrong, expired or revoked/.test(err.message) &&
            !err.message.includes('not-the-token'),
        ),
      );
    });

    if (name === 'scim2-server') {
      it('check() fails on a server that answers without any token (scim2-server started without --bearer-token)', async () => {
        const open = await startScim2Server({ unauthenticated: true });
        try {
          await assert.rejects(
            createScimConnector(
              'app',
              scimSystemSchema.parse({ type: 'scim', baseUrl: open.url, bearerToken: 'any-token-at-all' }),
            ).check!(),
            isConnectorError(
              (err) =>
                !err.retryable &&
                err.code === 'scim_unauthenticated' &&
                /answered GET \/Users without any bearer token/.test(err.message) &&
                !err.message.includes('any-token-at-all'),
            ),
          );
        } finally {
          await open.stop();
        }
      });
    }

    it('a full involuntary offboarding, stage by stage, leaves nothing: no group lists the user, who is gone', async () => {
      const subject = subjectOf('E1005');
      const id = await idOf('E1005');
      assert.ok((await target.groupsListing(id)).length > 0, 'E1005 starts in groups');
      const offboarding = plan(
        {
          requestId: 'hr-1',
          subject,
          trigger: 'termination',
          reason: 'involuntary',
          employmentType: 'employee',
          effectiveAt: new Date().toISOString(),
          requestedBy: 'hr',
        },
        defaultPolicy(),
      );
      for (const stage of offboarding.stages) {
        const actions = actionsForStage(stage, [await scim.discover(subject)], offboarding);
        for (const action of actions) {
          const { outcome } = await scim.apply(action, subject);
          assert.ok(['done', 'not_applicable'].includes(outcome), `${action.id}: ${outcome}`);
        }
        assert.deepEqual(leftoversAfterStage(stage, [await scim.discover(subject)], offboarding), [], stage.name);
      }
      assert.equal(await target.read(`/Users/${id}`), undefined, 'the user is deleted');
      assert.deepEqual(await target.groupsListing(id), [], 'and no group lists their id');
    });
  });
}

describe('SCIM 2.0 connector (stand-in)', () => {
  let sandbox: ScimSandbox;
  let scim: Connector;

  const connect = (settings: Partial<ScimSystemInput> = {}, on: ScimSandbox = sandbox) =>
    createScimConnector(
      'app',
      scimSystemSchema.parse({
        type: 'scim',
        baseUrl: on.url,
        bearerToken: SCIM_DEFAULT_TOKEN,
        timeoutMs: 2_000,
        ...settings,
      }),
    );
  const subject = (employeeId: string) => ({ employeeId, email: samplePerson(employeeId).email });
  const action = (kind: Action['kind'], accountId: string, target?: Entitlement): Action => ({
    id: `t/${kind}`,
    stage: 't',
    system: 'app',
    kind,
    accountId,
    target,
  });
  const userOf = (employeeId: string) => sandbox.state.users.find((u) => u.externalId === employeeId);
  const groupNamesOf = (userId: string) =>
    sandbox.state.groups
      .filter((g) => g.members.some((m) => m.value === userId))
      .map((g) => g.displayName)
      .sort();
  const isConnectorError = (check: (err: ConnectorError) => boolean) => (err: unknown) =>
    err instanceof ConnectorError && check(err);

  before(async () => {
    sandbox = await startScimSandbox();
    scim = connect();
  });
  after(async () => {
    await sandbox?.stop();
  });
  beforeEach(() => sandbox.reset());

  describe('discover', () => {
    it('finds the user by userName (the email) with groups, roles and entitlements, addressed by SCIM id', async () => {
      const found = await scim.discover(subject('E1001'));
      const user = userOf('E1001')!;
      assert.deepEqual(found.account, { id: user.id, disabled: false });
      assert.deepEqual(found.credentials, [], 'SCIM has no sessions or tokens');
      const byKind = (kind: string) =>
        found.entitlements
          .filter((e) => e.kind === kind)
          .map((e) => e.name)
          .sort();
      assert.deepEqual(byKind('group'), groupNamesOf(user.id));
      assert.deepEqual(byKind('group'), ['App Admins', 'Finance']);
      assert.deepEqual(byKind('role'), ['Administrator']);
      assert.deepEqual(byKind('entitlement'), ['Approve invoices']);
      const group = found.entitlements.find((e) => e.name === 'Finance')!;
      assert.equal(
        group.id,
        sandbox.state.groups.find((g) => g.displayName === 'Finance')!.id,
        'a group is identified by its SCIM id',
      );
    });

    it('matches by externalId (the employee id) without needing an email', async () => {
      const found = await connect({ matchBy: 'externalId' }).discover({ employeeId: 'E1002' });
      assert.equal(found.account?.id, userOf('E1002')!.id);
    });

    it('an inactive user is found disabled; nobody matching is account null', async () => {
      assert.equal((await scim.discover(subject(SCIM_INACTIVE_EMPLOYEE_ID))).account?.disabled, true);
      assert.deepEqual(await scim.discover({ employeeId: 'E9999', email: 'nobody@example.org' }), {
        system: 'app',
        account: null,
        entitlements: [],
        credentials: [],
      });
    });

    it('two users sharing an email are ambiguous by email, but unique by userName', async () => {
      const person = subject(SCIM_SHARED_EMAIL_EMPLOYEE_ID);
      await assert.rejects(
        connect({ matchBy: 'email' }).discover(person),
        isConnectorError(
          (err) =>
            !err.retryable &&
            err.code === 'ambiguous_identity' &&
            /2 users match emails\.value .*refusing to guess/.test(err.message),
        ),
      );
      assert.equal((await scim.discover(person)).account?.id, userOf(SCIM_SHARED_EMAIL_EMPLOYEE_ID)!.id);
    });

    it('quotes and backslashes in the value are escaped, so they match literally and inject nothing', async () => {
      const tricky = 'o"brien\\x@example.org';
      const created = await fetch(`${sandbox.url}/Users`, {
        method: 'POST',
        headers: { authorization: `Bearer ${SCIM_DEFAULT_TOKEN}`, 'content-type': 'application/scim+json' },
        body: JSON.stringify({
          schemas: ['urn:ietf:params:scim:schemas:core:2.0:User'],
          userName: tricky,
          externalId: 'E2000',
        }),
      });
      assert.equal(created.status, 201);
      assert.equal(
        (await scim.discover({ employeeId: 'E2000', email: tricky })).account?.id,
        ((await created.json()) as { id: string }).id,
      );
      for (const evil of ['x" or userName pr "', 'keeper@example.org" or userName ne "', '\\"']) {
        assert.equal(
          (await scim.discover({ employeeId: 'E2001', email: evil })).account,
          null,
          `"${evil}" must match nothing`,
        );
      }
    });

    it('groups on Users are used when the app computes them; groupsFrom: groups asks /Groups anyway', async () => {
      const computing = await startScimSandbox({ basePath: '/api/scim', userGroupsAttribute: true });
      try {
        assert.match(computing.url, /\/api\/scim$/);
        const names = (found: Awaited<ReturnType<Connector['discover']>>) =>
          found.entitlements
            .filter((e) => e.kind === 'group')
            .map((e) => e.name)
            .sort();
        assert.deepEqual(names(await connect({}, computing).discover(subject('E1004'))), ['App Admins', 'Engineering']);
        assert.ok(
          !computing.state.requests.some((r) => r.path.startsWith('/api/scim/Groups')),
          'the groups attribute answered it',
        );
        assert.deepEqual(names(await connect({ groupsFrom: 'groups' }, computing).discover(subject('E1004'))), [
          'App Admins',
          'Engineering',
        ]);
        assert.ok(computing.state.requests.some((r) => r.path.startsWith('/api/scim/Groups?filter=members.value')));
      } finally {
        await computing.stop();
      }
    });

    for (const answer of ['refused', 'ignored', 'empty'] as const) {
      it(`an app whose /Groups members filter is ${answer} is found out, and every group is read instead`, async () => {
        const app = await startScimSandbox({ groupMembersFilter: answer });
        try {
          const connector = connect({}, app);
          const names = async (employeeId: string) =>
            (await connector.discover(subject(employeeId))).entitlements
              .filter((e) => e.kind === 'group')
              .map((e) => e.name)
              .sort();
          const askedFilter = () => app.state.requests.filter((r) => r.path.includes('filter=members.value')).length;
          assert.deepEqual(await names('E1004'), ['App Admins', 'Engineering']);
          const asked = askedFilter();
          assert.ok(asked > 0, 'the filter was tried first');
          assert.deepEqual(await names('E1001'), ['App Admins', 'Finance']);
          assert.equal(askedFilter(), asked, 'once found unsupported, the filter is not asked again');
          const id = app.state.users.find((u) => u.externalId === 'E1004')!.id;
          const admins = app.state.groups.find((g) => g.displayName === 'App Admins')!;
          assert.equal(
            (
              await connector.apply(
                action('remove_entitlement', id, { id: admins.id, kind: 'group' }),
                subject('E1004'),
              )
            ).outcome,
            'done',
          );
          assert.deepEqual(await names('E1004'), ['Engineering']);
        } finally {
          await app.stop();
        }
      });
    }

    it('matching on an email the request lacks is a clear configuration error', async () => {
      await assert.rejects(
        scim.discover({ employeeId: 'E1001' }),
        isConnectorError(
          (err) => !err.retryable && err.code === 'missing_identifier' && /set matchBy: externalId/.test(err.message),
        ),
      );
    });
  });

  describe('actions', () => {
    it('disable_login sets active false with If-Match; again is already; enable_login restores it', async () => {
      const id = (await scim.discover(subject('E1002'))).account!.id;
      assert.equal((await scim.apply(action('disable_login', id), subject('E1002'))).outcome, 'done');
      assert.equal(userOf('E1002')!.active, false);
      const patch = sandbox.state.requests.find((r) => r.method === 'PATCH');
      assert.match(patch?.ifMatch ?? '', /^W\/"\d+"$/, 'the PATCH carries the ETag of the read before it');
      assert.equal((await scim.apply(action('disable_login', id), subject('E1002'))).outcome, 'already');
      assert.equal((await scim.discover(subject('E1002'))).account?.disabled, true);

      assert.equal((await scim.apply(action('enable_login', id), subject('E1002'))).outcome, 'done');
      assert.equal(userOf('E1002')!.active, true);
      assert.equal((await scim.apply(action('enable_login', id), subject('E1002'))).outcome, 'already');
    });

    it('a concurrent change (412) is re-read and retried once; twice in a row is retryable', async () => {
      const id = userOf('E1003')!.id;
      sandbox.inject({ concurrentWrites: 1 });
      assert.equal((await scim.apply(action('disable_login', id), subject('E1003'))).outcome, 'done');
      assert.deepEqual(
        sandbox.state.requests.filter((r) => r.method === 'PATCH').map((r) => r.status),
        [412, 200],
      );
      assert.equal(userOf('E1003')!.active, false);

      sandbox.inject({ concurrentWrites: 2 });
      await assert.rejects(
        scim.apply(action('enable_login', id), subject('E1003')),
        isConnectorError((err) => err.retryable && err.code === 'scim_412'),
      );
      assert.equal(userOf('E1003')!.active, false, 'nothing was written over the other change');
    });

    it('remove_entitlement removes each group membership, role and entitlement; again is already', async () => {
      const found = await scim.discover(subject('E1001'));
      const id = found.account!.id;
      assert.equal(found.entitlements.length, 4);
      for (const entitlement of found.entitlements) {
        assert.equal(
          (await scim.apply(action('remove_entitlement', id, entitlement), subject('E1001'))).outcome,
          'done',
          `${entitlement.kind} ${entitlement.name}`,
        );
        assert.equal(
          (await scim.apply(action('remove_entitlement', id, entitlement), subject('E1001'))).outcome,
          'already',
          `${entitlement.kind} ${entitlement.name} again`,
        );
      }
      assert.deepEqual(groupNamesOf(id), []);
      assert.deepEqual(userOf('E1001')!.roles, []);
      assert.deepEqual(userOf('E1001')!.entitlements, []);
      assert.deepEqual((await scim.discover(subject('E1001'))).entitlements, []);
      assert.ok(
        sandbox.state.requests.some((r) => r.method === 'PATCH' && r.path.includes('/Groups/')),
        'memberships change through the Group',
      );
    });

    it('removing a member from a group that is gone, or that they are not in, is already, read on the group', async () => {
      const found = await scim.discover(subject('E1002'));
      const engineering = found.entitlements.find((e) => e.name === 'Engineering')!;
      sandbox.state.groups.splice(
        sandbox.state.groups.findIndex((g) => g.id === engineering.id),
        1,
      );
      const id = found.account!.id;
      assert.equal(
        (await scim.apply(action('remove_entitlement', id, engineering), subject('E1002'))).outcome,
        'already',
      );
      const finance = sandbox.state.groups.find((g) => g.displayName === 'Finance')!;
      assert.equal(
        (await scim.apply(action('remove_entitlement', id, { id: finance.id, kind: 'group' }), subject('E1002')))
          .outcome,
        'already',
      );
      assert.deepEqual(
        sandbox.state.requests.filter((r) => r.path.includes('/Groups/')).map((r) => `${r.method} ${r.status}`),
        ['GET 404', 'GET 200'],
        'the groups were read, and nothing was written',
      );
    });

    it('a removal the app answers 204 to but does not make fails, and says so', async () => {
      const id = userOf('E1006')!.id;
      const groups = groupNamesOf(id);
      const group = sandbox.state.groups.find((g) => g.displayName === groups[0])!;
      sandbox.inject({ ignoreWrites: true });
      await assert.rejects(
        scim.apply(action('remove_entitlement', id, { id: group.id, kind: 'group' }), subject('E1006')),
        isConnectorError(
          (err) =>
            !err.retryable &&
            err.code === 'scim_removal_ignored' &&
            /answered HTTP 204 to removing the member, but group .* read back, still lists user/.test(err.message),
        ),
      );
      assert.deepEqual(groupNamesOf(id), groups, 'still a member');
      assert.deepEqual(
        sandbox.state.requests.filter((r) => r.method === 'PATCH').map((r) => r.status),
        [204, 204],
        'both PATCH forms were tried',
      );
    });

    it('a user PATCH or DELETE the app answers 204 to but does not make fails, read back', async () => {
      const id = userOf('E1008')!.id;
      sandbox.inject({ ignoreWrites: true });
      await assert.rejects(
        scim.apply(action('disable_login', id), subject('E1008')),
        isConnectorError(
          (err) =>
            !err.retryable &&
            err.code === 'scim_patch_ignored' &&
            /answered HTTP 204 to the PATCH but the user, read back, is unchanged/.test(err.message),
        ),
      );
      assert.equal(userOf('E1008')!.active, true);
      await assert.rejects(
        scim.apply(action('delete_account', id), subject('E1008')),
        isConnectorError((err) => !err.retryable && err.code === 'scim_delete_ignored'),
      );
      assert.ok(userOf('E1008'), 'the user is still there');
    });

    it('delete_account deletes the user; again is already; it cannot be re-enabled', async () => {
      const id = (await scim.discover(subject('E1004'))).account!.id;
      assert.equal((await scim.apply(action('delete_account', id), subject('E1004'))).outcome, 'done');
      assert.equal(userOf('E1004'), undefined);
      assert.deepEqual(groupNamesOf(id), ['App Admins', 'Engineering'], 'no cascade unless configured');
      assert.equal((await scim.apply(action('delete_account', id), subject('E1004'))).outcome, 'already');
      assert.equal((await scim.apply(action('disable_login', id), subject('E1004'))).outcome, 'already');
      assert.equal((await scim.discover(subject('E1004'))).account, null);
      await assert.rejects(
        scim.apply(action('enable_login', id), subject('E1004')),
        isConnectorError(
          (err) =>
            !err.retryable && err.code === 'account_gone' && /was deleted; it cannot be re-enabled/.test(err.message),
        ),
      );
      const cascading = await startScimSandbox({ deleteRemovesMemberships: true });
      try {
        const user = cascading.state.users.find((u) => u.externalId === 'E1004')!;
        assert.equal(
          (await connect({}, cascading).apply(action('delete_account', user.id), subject('E1004'))).outcome,
          'done',
        );
        assert.ok(!cascading.state.groups.some((g) => g.members.some((m) => m.value === user.id)));
      } finally {
        await cascading.stop();
      }
    });

    it('with deleteOnDelete false, delete_account only deactivates', async () => {
      const deactivateOnly = connect({ deleteOnDelete: false });
      const id = userOf('E1005')!.id;
      const result = await deactivateOnly.apply(action('delete_account', id), subject('E1005'));
      assert.equal(result.outcome, 'done');
      assert.equal(result.details.deleted, false);
      assert.equal(userOf('E1005')?.active, false, 'the user still exists, inactive');
      assert.equal((await deactivateOnly.apply(action('delete_account', id), subject('E1005'))).outcome, 'already');
      assert.ok(!sandbox.state.requests.some((r) => r.method === 'DELETE'));
    });

    it('sessions, tokens and ownership are not applicable in SCIM', async () => {
      const id = userOf('E1006')!.id;
      for (const kind of ['revoke_sessions', 'revoke_tokens', 'transfer_ownership'] as const) {
        const result = await scim.apply(action(kind, id), subject('E1006'));
        assert.equal(result.outcome, 'not_applicable');
        assert.match(String(result.details.reason), /no session/);
      }
      assert.equal(sandbox.state.requests.length, 0, 'no request was needed');
    });
  });

  describe('errors', () => {
    it('a 429 burst is retryable with Retry-After in ms, and the same call then succeeds', async () => {
      const id = userOf('E1007')!.id;
      sandbox.inject({ rateLimit: { count: 2, retryAfterSeconds: 7 } });
      for (let i = 0; i < 2; i++) {
        await assert.rejects(
          scim.apply(action('disable_login', id), subject('E1007')),
          isConnectorError((err) => err.retryable && err.code === 'scim_429' && err.retryAfterMs === 7_000),
        );
      }
      assert.equal(userOf('E1007')!.active, true);
      assert.equal((await scim.apply(action('disable_login', id), subject('E1007'))).outcome, 'done');
      assert.equal(userOf('E1007')!.active, false);
    });

    it('Retry-After as an HTTP date becomes the delay until that date', async () => {
      sandbox.inject({ rateLimit: { count: 1, retryAfterSeconds: 30, httpDate: true } });
      await assert.rejects(
        scim.discover(subject('E1008')),
        isConnectorError(
          (err) =>
            err.retryable && err.retryAfterMs !== undefined && err.retryAfterMs > 25_000 && err.retryAfterMs <= 30_000,
        ),
      );
      const now = Date.parse('2025-01-01T00:00:00Z');
      assert.equal(retryAfterMs(new Headers({ 'retry-after': 'Wed, 01 Jan 2025 00:01:00 GMT' }), now), 60_000);
      assert.equal(retryAfterMs(new Headers({ 'x-ratelimit-reset': String(now / 1000 + 5) }), now), 5_000);
    });

    it('5xx, connection resets and timeouts are retryable; 501 is not', async () => {
      sandbox.inject({ serverErrorRate: 1 });
      await assert.rejects(
        scim.discover(subject('E1009')),
        isConnectorError(
          (err) => err.retryable && err.code === 'scim_503' && /Service temporarily unavailable/.test(err.message),
        ),
      );
      sandbox.inject({ serverErrorRate: 0.5 });
      await assert.rejects(
        scim.discover(subject('E1009')).then(() => scim.discover(subject('E1009'))),
        isConnectorError((err) => err.retryable),
        'every second request fails',
      );
      sandbox.inject({ serverErrorRate: 1, serverErrorStatus: 501 });
      await assert.rejects(
        scim.discover(subject('E1009')),
        isConnectorError((err) => !err.retryable && err.code === 'scim_501' && /does not implement/.test(err.message)),
      );
      sandbox.inject({ resets: 1 });
      await assert.rejects(
        scim.discover(subject('E1009')),
        isConnectorError((err) => err.retryable && err.code === 'scim_unreachable'),
      );
      sandbox.inject({ latencyMs: 400 });
      await assert.rejects(
        connect({ timeoutMs: 100 }).discover(subject('E1009')),
        isConnectorError((err) => err.retryable && err.code === 'scim_timeout'),
      );
      sandbox.inject({});
      assert.ok((await scim.discover(subject('E1009'))).account);
    });

    it('a wrong token (401) or a read-only one (403) is not retried, says what to fix and never shows the token', async () => {
      const wrong = connect({ bearerToken: 'not-the-token' });
      await assert.rejects(
        wrong.discover(subject('E1010')),
        isConnectorError(
          (err) =>
            !err.retryable &&
            err.code === 'scim_401' &&
            /bearer token is wrong, expired or revoked/.test(err.message) &&
            !err.message.includes('not-the-token'),
        ),
      );

      const readOnly = connect({ bearerToken: SCIM_DEFAULT_READ_ONLY_TOKEN });
      const found = await readOnly.discover(subject('E1010'));
      await assert.rejects(
        readOnly.apply(action('disable_login', found.account!.id), subject('E1010')),
        isConnectorError(
          (err) =>
            !err.retryable &&
            err.code === 'scim_403' &&
            /lacks rights/.test(err.message) &&
            !err.message.includes(SCIM_DEFAULT_READ_ONLY_TOKEN),
        ),
      );
      assert.equal(userOf('E1010')!.active, true);
    });

    it('a 400 carries the scimType and detail and is not retried', async () => {
      const limited = await startScimSandbox({ userFilterAttributes: ['userName'] });
      try {
        await assert.rejects(
          connect({ matchBy: 'email' }, limited).discover(subject('E1011')),
          isConnectorError(
            (err) =>
              !err.retryable &&
              err.code === 'scim_400' &&
              /HTTP 400 invalidFilter: filtering on emails\.value is not supported/.test(err.message) &&
              /choose another matchBy/.test(err.message),
          ),
        );
        assert.ok((await connect({}, limited).discover(subject('E1011'))).account, 'userName still works on that app');
      } finally {
        await limited.stop();
      }
    });

    it('an unreachable app is retryable', async () => {
      const down = createScimConnector(
        'app',
        scimSystemSchema.parse({
          type: 'scim',
          baseUrl: 'http://127.0.0.1:1/scim/v2',
          bearerToken: 'x',
          timeoutMs: 1_000,
        }),
      );
      await assert.rejects(
        down.discover(subject('E1012')),
        isConnectorError((err) => err.retryable && err.code === 'scim_unreachable'),
      );
    });
  });

  describe('the stand-in', () => {
    it('answers SCIM media type, ETags, 412 on a stale If-Match, and can be steered over HTTP', async () => {
      const user = userOf('E1013')!;
      const auth = { authorization: `Bearer ${SCIM_DEFAULT_TOKEN}` };
      const config = await fetch(`${sandbox.url}/ServiceProviderConfig`, { headers: auth });
      assert.match(config.headers.get('content-type') ?? '', /^application\/scim\+json/);
      const spc = (await config.json()) as {
        patch: { supported: boolean };
        filter: { supported: boolean };
        etag: { supported: boolean };
      };
      assert.deepEqual([spc.patch.supported, spc.filter.supported, spc.etag.supported], [true, true, true]);

      const read = await fetch(`${sandbox.url}/Users/${user.id}`, { headers: auth });
      assert.equal(read.headers.get('etag'), 'W/"1"');
      const stale = await fetch(`${sandbox.url}/Users/${user.id}`, {
        method: 'PATCH',
        headers: { ...auth, 'content-type': 'application/scim+json', 'if-match': 'W/"0"' },
        body: JSON.stringify({
          schemas: ['urn:ietf:params:scim:api:messages:2.0:PatchOp'],
          Operations: [{ op: 'replace', path: 'active', value: false }],
        }),
      });
      assert.equal(stale.status, 412);
      assert.deepEqual(((await stale.json()) as { schemas: string[] }).schemas, [
        'urn:ietf:params:scim:api:messages:2.0:Error',
      ]);
      const unauthenticated = await fetch(`${sandbox.url}/Users`);
      assert.equal(unauthenticated.status, 401);

      const origin = new URL(sandbox.url).origin;
      await fetch(`${origin}/_sandbox/faults`, {
        method: 'POST',
        body: JSON.stringify({ rateLimit: { count: 1, retryAfterSeconds: 3 } }),
      });
      const limited = await fetch(`${sandbox.url}/Users`, { headers: auth });
      assert.equal(limited.status, 429);
      assert.equal(limited.headers.get('retry-after'), '3');
      const state = (await (await fetch(`${origin}/_sandbox/state`)).json()) as {
        users: { externalId?: string; active: boolean }[];
      };
      assert.equal(state.users.find((u) => u.externalId === 'E1013')?.active, true);
    });
  });
});
