/**
 * The Entra ID connector (Graph client + @azure/identity) against the HTTPS stand-in of the
 * Microsoft identity platform and Graph v1.0: discovery and identity resolution, each action, its
 * repetition (`already`), cancel, the memberships Graph will not remove, permissions, rate limits
 * and credentials — asserted in the stand-in's tenant state.
 */
import assert from 'node:assert/strict';
import { MockActivityEnvironment } from '@temporalio/testing';
import { boundedCall, DEFAULT_CALL_BOUNDS, SystemPauses } from '../activities/call-bounds.js';
import { createEntraConnector, entraSystemSchema } from '../activities/connectors/entra.js';
import { ConnectorError, type ApplyResult, type Connector } from '../activities/connectors/types.js';
import type { Action, Entitlement } from '../model/plan.js';
import {
  ENTRA_DUPLICATE_EMPLOYEE_ID,
  ENTRA_MISSING_EMPLOYEE_ID,
  ENTRA_ROLES,
  ENTRA_SANDBOX_CLIENTS,
  ENTRA_SKUS,
  ENTRA_SOLE_OWNER_EMPLOYEE_ID,
  entraGroupIdFor,
  entraIdFor,
  entraUserIdFor,
  startEntraSandbox,
  type EntraSandbox,
} from '../sandbox/entra.js';
import { samplePerson } from '../sandbox/org.js';

const PERSON = 'E1046';

describe('Entra ID connector (Graph client and @azure/identity against the HTTPS stand-in)', () => {
  let sandbox: EntraSandbox;
  let entra: Connector;
  const connect = (client: { clientId: string; clientSecret: string } = ENTRA_SANDBOX_CLIENTS.offboard, extra = {}) =>
    createEntraConnector(
      'entra',
      entraSystemSchema.parse({
        type: 'entra',
        tenantId: sandbox.tenantId,
        clientId: client.clientId,
        clientSecret: client.clientSecret,
        graphBaseUrl: sandbox.graphBaseUrl,
        authorityHost: sandbox.authorityHost,
        caCertificates: sandbox.caCertificate,
        ...extra,
      }),
    );
  const subject = (employeeId: string, email?: string) => ({ employeeId, ...(email ? { email } : {}) });
  const action = (kind: Action['kind'], accountId: string, target?: Entitlement): Action => ({
    id: `t/entra/${kind}${target ? `/${target.id}` : ''}`,
    stage: 't',
    system: 'entra',
    kind,
    accountId,
    ...(target ? { target } : {}),
  });
  const userOf = (employeeId: string) => sandbox.state.users.find((u) => u.id === entraUserIdFor(employeeId));
  const failsWith = (test: (err: ConnectorError) => boolean) => (err: unknown) =>
    err instanceof ConnectorError && test(err);

  before(async () => {
    sandbox = await startEntraSandbox();
  });
  beforeEach(() => {
    sandbox.reset();
    entra = connect();
  });
  after(() => sandbox.stop());

  it('discovers the account, its groups, app and directory roles, direct licence, owned apps, session and consent', async () => {
    const id = entraUserIdFor(PERSON);
    const found = await entra.discover(subject(PERSON));
    assert.deepEqual(found.account, { id, disabled: false });
    assert.equal(found.identity?.email, samplePerson(PERSON).email);
    const ids = found.entitlements.map((e) => e.id).sort();
    const groups = ['engineering', 'vpn-users', 'developers', 'domain-admins', 'prod-access', 'sudoers'];
    assert.deepEqual(
      ids,
      [
        ...groups.map((g) => `group:${entraGroupIdFor(g)}`),
        `app-role:${entraIdFor('sp', 'crm')}/00000000-0000-0000-0000-000000000000`,
        `directory-role:${ENTRA_ROLES.userAdministrator.id}`,
        `license:${ENTRA_SKUS.officeE3.skuId}`,
        `owner:application/${entraIdFor('application', 'Build bot')}`,
        `owner:servicePrincipal/${entraIdFor('servicePrincipal', 'Build bot')}`,
      ].sort(),
    );
    // EMS comes through the engineering group: not a direct licence, so not listed.
    assert.ok(!ids.includes(`license:${ENTRA_SKUS.emsE3.skuId}`));
    assert.deepEqual(found.credentials.map((c) => c.kind).sort(), ['session', 'token']);
    // The lookup is Graph's advanced query on employeeId.
    assert.ok(sandbox.state.requests.includes('GET /users'));
  });

  it('follows @odata.nextLink: with pages of two, every membership is still found', async () => {
    sandbox.inject({ pageSize: 2 });
    const found = await entra.discover(subject(PERSON));
    assert.equal(found.entitlements.filter((e) => e.kind === 'group').length, 6);
  });

  it('a person with no user is found nowhere; two users with one employeeId are ambiguous', async () => {
    const missing = await entra.discover(
      subject(ENTRA_MISSING_EMPLOYEE_ID, samplePerson(ENTRA_MISSING_EMPLOYEE_ID).email),
    );
    assert.equal(missing.account, null);
    await assert.rejects(
      entra.discover(subject(ENTRA_DUPLICATE_EMPLOYEE_ID)),
      failsWith(
        (err) => err.code === 'ambiguous_identity' && !err.retryable && /2 users carry employeeId/.test(err.message),
      ),
    );
  });

  it("falls back to the email (UPN) when no user carries the employee id, but not onto someone else's", async () => {
    const user = userOf('E1020')!;
    user.employeeId = null;
    const found = await entra.discover(subject('E1020', samplePerson('E1020').email));
    assert.equal(found.account?.id, user.id);
    await assert.rejects(
      entra.discover(subject('E9999', samplePerson('E1021').email)),
      failsWith((err) => err.code === 'ambiguous_identity' && /another employeeId \(E1021\)/.test(err.message)),
    );
  });

  it('disable_login sets accountEnabled false, again answers already; enable_login (cancel) restores it', async () => {
    const id = entraUserIdFor(PERSON);
    assert.equal((await entra.apply(action('disable_login', id), subject(PERSON))).outcome, 'done');
    assert.equal(userOf(PERSON)?.accountEnabled, false);
    assert.equal((await entra.apply(action('disable_login', id), subject(PERSON))).outcome, 'already');
    assert.equal((await entra.discover(subject(PERSON))).account?.disabled, true);
    assert.equal((await entra.apply(action('enable_login', id), subject(PERSON))).outcome, 'done');
    assert.equal(userOf(PERSON)?.accountEnabled, true);
    assert.equal((await entra.apply(action('enable_login', id), subject(PERSON))).outcome, 'already');
  });

  it('revoke_sessions moves signInSessionsValidFromDateTime past the last sign-in; again already; a new sign-in shows again', async () => {
    const id = entraUserIdFor(PERSON);
    const before = userOf(PERSON)!.signInSessionsValidFromDateTime;
    const result = await entra.apply(action('revoke_sessions', id), subject(PERSON));
    assert.equal(result.outcome, 'done');
    const after = userOf(PERSON)!.signInSessionsValidFromDateTime;
    assert.ok(Date.parse(after) > Date.parse(before));
    assert.equal(result.details.signInSessionsValidFromDateTime, after);
    assert.equal((await entra.apply(action('revoke_sessions', id), subject(PERSON))).outcome, 'already');
    assert.ok(!(await entra.discover(subject(PERSON))).credentials.some((c) => c.kind === 'session'));
    sandbox.signIn(id);
    assert.ok((await entra.discover(subject(PERSON))).credentials.some((c) => c.kind === 'session'));
  });

  it('revoke_tokens deletes the delegated consents; again already', async () => {
    const id = entraUserIdFor(PERSON);
    assert.equal((await entra.apply(action('revoke_tokens', id), subject(PERSON))).outcome, 'done');
    assert.deepEqual(
      sandbox.state.oauth2PermissionGrants.filter((g) => g.principalId === id),
      [],
    );
    assert.equal((await entra.apply(action('revoke_tokens', id), subject(PERSON))).outcome, 'already');
  });

  it('remove_entitlement takes away each group, app role, directory role, licence and co-ownership; again already', async () => {
    const id = entraUserIdFor(PERSON);
    const { entitlements } = await entra.discover(subject(PERSON));
    for (const entitlement of entitlements) {
      const result = await entra.apply(action('remove_entitlement', id, entitlement), subject(PERSON));
      assert.equal(result.outcome, 'done', entitlement.id);
      if (entitlement.id === `group:${entraGroupIdFor('engineering')}`)
        assert.deepEqual(result.details.licensesAssignedByGroup, [ENTRA_SKUS.emsE3.skuId]);
    }
    const state = sandbox.state;
    assert.deepEqual(
      state.groups.filter((g) => g.members.includes(id)),
      [],
    );
    assert.deepEqual(
      state.appRoleAssignments.filter((a) => a.principalId === id),
      [],
    );
    assert.deepEqual(
      state.roleAssignments.filter((a) => a.principalId === id),
      [],
    );
    assert.deepEqual(userOf(PERSON)?.directLicenses, []);
    // The keeper still owns the build bot: it was handed over, not orphaned.
    for (const app of state.apps.filter((a) => a.displayName === 'Build bot'))
      assert.deepEqual(app.owners, [entraUserIdFor('E1000')]);
    for (const entitlement of entitlements)
      assert.equal(
        (await entra.apply(action('remove_entitlement', id, entitlement), subject(PERSON))).outcome,
        'already',
      );
    assert.deepEqual((await entra.discover(subject(PERSON))).entitlements, []);
  });

  it('a dynamic group, a group synced from AD and a sole-owned app become operator tasks that say why', async () => {
    const contractor = entraUserIdFor(ENTRA_SOLE_OWNER_EMPLOYEE_ID);
    const dynamic = { id: `group:${entraGroupIdFor('contractors')}`, kind: 'group' };
    await assert.rejects(
      entra.apply(action('remove_entitlement', contractor, dynamic), subject(ENTRA_SOLE_OWNER_EMPLOYEE_ID)),
      failsWith(
        (err) =>
          err.code === 'entra_dynamic_group' && !err.retryable && /contractors .*dynamic membership/.test(err.message),
      ),
    );
    const payroll = {
      id: `owner:application/${entraIdFor('application', 'Payroll export')}`,
      kind: 'application_owner',
    };
    await assert.rejects(
      entra.apply(action('remove_entitlement', contractor, payroll), subject(ENTRA_SOLE_OWNER_EMPLOYEE_ID)),
      failsWith(
        (err) =>
          err.code === 'entra_sole_owner' &&
          !err.retryable &&
          /only owner of application Payroll export/.test(err.message),
      ),
    );
    const synced = { id: `group:${entraGroupIdFor('hr-records')}`, kind: 'group' };
    await assert.rejects(
      entra.apply(action('remove_entitlement', entraUserIdFor('E1008'), synced), subject('E1008')),
      failsWith((err) => err.code === 'entra_synced_group' && /on-premises Active Directory/.test(err.message)),
    );
    assert.ok(sandbox.state.groups.find((g) => g.displayName === 'contractors')?.members.includes(contractor));
    assert.ok(
      sandbox.state.groups.find((g) => g.displayName === 'hr-records')?.members.includes(entraUserIdFor('E1008')),
    );
    assert.deepEqual(sandbox.state.apps.find((a) => a.displayName === 'Payroll export')?.owners, [contractor]);
  });

  it('a missing permission is escalated naming it: a role-assignable group needs RoleManagement.ReadWrite.Directory', async () => {
    const limited = connect(ENTRA_SANDBOX_CLIENTS.noRoleManagement);
    const id = entraUserIdFor(PERSON);
    const admins = { id: `group:${entraGroupIdFor('domain-admins')}`, kind: 'group' };
    await assert.rejects(
      limited.apply(action('remove_entitlement', id, admins), subject(PERSON)),
      failsWith(
        (err) =>
          err.code === 'entra_forbidden' &&
          !err.retryable &&
          /Authorization_RequestDenied/.test(err.message) &&
          /permission RoleManagement\.ReadWrite\.Directory/.test(err.message),
      ),
    );
    assert.ok(sandbox.state.groups.find((g) => g.displayName === 'domain-admins')?.members.includes(id));
    const reader = connect(ENTRA_SANDBOX_CLIENTS.readOnly);
    await assert.rejects(
      reader.apply(action('disable_login', id), subject(PERSON)),
      failsWith((err) => err.code === 'entra_forbidden' && /permission User\.ReadWrite\.All/.test(err.message)),
    );
    assert.equal(userOf(PERSON)?.accountEnabled, true);
  });

  it('delete_account removes the authentication methods, then the user; again already', async () => {
    const id = entraUserIdFor(PERSON);
    const result = await entra.apply(action('delete_account', id), subject(PERSON));
    assert.equal(result.outcome, 'done');
    assert.deepEqual(result.details.authenticationMethodsRemoved, ['microsoftAuthenticator', 'phone']);
    const order = sandbox.state.requests.filter((r) => r.startsWith('DELETE'));
    assert.deepEqual(order.at(-1), `DELETE /users/${id}`);
    assert.equal(userOf(PERSON), undefined);
    assert.equal((await entra.apply(action('delete_account', id), subject(PERSON))).outcome, 'already');
    assert.equal((await entra.discover(subject(PERSON))).account, null);
  });

  it('429 is retryable with Retry-After, and waited out within the activity; 503 is retryable', async () => {
    const id = entraUserIdFor(PERSON);
    sandbox.inject({ tooManyRequests: { count: 1, retryAfterSeconds: 7 } });
    await assert.rejects(
      entra.apply(action('disable_login', id), subject(PERSON)),
      failsWith((err) => err.code === 'entra_rate_limited' && err.retryable && err.retryAfterMs === 7000),
    );
    sandbox.inject({ serverErrors: 1 });
    await assert.rejects(
      entra.apply(action('disable_login', id), subject(PERSON)),
      failsWith((err) => err.code === 'entra_http_503' && err.retryable),
    );
    assert.equal(userOf(PERSON)?.accountEnabled, true);
    sandbox.inject({ tooManyRequests: { count: 2, retryAfterSeconds: 1 } });
    const result: ApplyResult = await new MockActivityEnvironment().run(() =>
      boundedCall({ system: 'entra', call: 'apply disable_login' }, DEFAULT_CALL_BOUNDS, new SystemPauses(), () =>
        entra.apply(action('disable_login', id), subject(PERSON)),
      ),
    );
    assert.equal(result.outcome, 'done');
    assert.equal(userOf(PERSON)?.accountEnabled, false);
  });

  it('a call that does not answer within timeoutMs fails retryably', async () => {
    const impatient = connect(ENTRA_SANDBOX_CLIENTS.offboard, { timeoutMs: 300 });
    await impatient.check!(); // the token first, so that only Graph is slow
    sandbox.inject({ latencyMs: 2_000 });
    await assert.rejects(
      impatient.apply(action('disable_login', entraUserIdFor(PERSON)), subject(PERSON)),
      failsWith((err) => err.code === 'entra_unreachable' && err.retryable),
    );
  });

  it('a wrong client secret is refused without retry, saying what to fix and never the secret; a wrong tenant is named', async () => {
    const wrong = connect({ clientId: ENTRA_SANDBOX_CLIENTS.offboard.clientId, clientSecret: 'not-the-secret' });
    await assert.rejects(
      wrong.discover(subject(PERSON)),
      failsWith(
        (err) =>
          err.code === 'entra_bad_credentials' &&
          !err.retryable &&
          /invalid_client/.test(err.message) &&
          !err.message.includes('not-the-secret'),
      ),
    );
    const elsewhere = connect(ENTRA_SANDBOX_CLIENTS.offboard, { tenantId: '00000000-0000-4000-8000-00000000dead' });
    // MSAL cannot tell a wrong tenant from an unreachable authority: retried, and the message names both.
    await assert.rejects(
      elsewhere.check!(),
      failsWith(
        (err) => err.code === 'entra_token_unavailable' && /check tenantId and authorityHost/.test(err.message),
      ),
    );
    await entra.check!();
  });

  it('the config refuses http URLs (the libraries would not send a token over them)', () => {
    const parsed = entraSystemSchema.safeParse({
      type: 'entra',
      tenantId: 't',
      clientId: 'c',
      clientSecret: 's',
      authorityHost: 'http://127.0.0.1:1',
    });
    assert.equal(parsed.success, false);
  });
});
