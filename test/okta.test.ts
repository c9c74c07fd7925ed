/**
 * The Okta connector (@okta/okta-sdk-nodejs) against the local stand-in of the Management API:
 * discovery and identity resolution, each action with its read-back and its repeat, cancel, and
 * how failures are classified (429 waited out through the real activities, 5xx, a refused token, a
 * missing admin role) — asserted in the stand-in's state and in the requests it received.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger, type LogEntry } from '@temporalio/worker';
import type { AuditStore } from '../activities/audit.js';
import { createOktaConnector, oktaAuthIssues, oktaConnector, oktaSystemSchema } from '../activities/connectors/okta.js';
import { ConnectorError, type Connector } from '../activities/connectors/types.js';
import { createActivities } from '../activities/index.js';
import type { Action, Discovery } from '../model/plan.js';
import type { Policy } from '../model/policy.js';
import { samplePerson } from '../sandbox/org.js';
import {
  OKTA_DUPLICATE_EMPLOYEE_ID,
  OKTA_EMAIL_ONLY_EMPLOYEE_ID,
  OKTA_SUSPENDED_EMPLOYEE_ID,
  SANDBOX_OKTA_ORG_ADMIN_TOKEN,
  SANDBOX_OKTA_READONLY_TOKEN,
  SANDBOX_OKTA_SERVICE_APP,
  SANDBOX_OKTA_TOKEN,
  oktaUsersOf,
  startOktaSandbox,
  type OktaSandbox,
} from '../sandbox/okta.js';

describe('Okta connector (okta-sdk-nodejs against the Management API stand-in)', () => {
  let sandbox: OktaSandbox;
  let okta: Connector;
  const connectorWith = (settings: Record<string, unknown> = {}) =>
    createOktaConnector(
      'okta',
      oktaSystemSchema.parse({
        type: 'okta',
        orgUrl: sandbox.url,
        apiToken: SANDBOX_OKTA_TOKEN,
        timeoutMs: 5_000,
        ...settings,
      }),
    );

  before(async () => {
    sandbox = await startOktaSandbox();
    okta = connectorWith();
  });
  after(async () => {
    await sandbox?.stop();
  });
  beforeEach(() => sandbox.reset());

  const subject = (employeeId: string) => ({ employeeId, email: samplePerson(employeeId).email });
  const action = (kind: Action['kind'], accountId: string, target?: Action['target']): Action => ({
    id: `t/okta/${kind}`,
    stage: 't',
    system: 'okta',
    kind,
    accountId,
    target,
  });
  const userOf = (employeeId: string) => oktaUsersOf(sandbox.state, employeeId)[0]!;
  const byUser = (id: string) => (r: { userId: string }) => r.userId === id;
  const groupsIn = (id: string) =>
    sandbox.state.memberships
      .filter(byUser(id))
      .map((m) => sandbox.state.groups.find((g) => g.id === m.groupId)!.profile.name)
      .sort();
  const appsOf = (id: string) =>
    sandbox.state.appUsers
      .filter(byUser(id))
      .map((a) => `${sandbox.state.apps.find((x) => x.id === a.appId)!.label}/${a.scope}`);
  const failsWith = (check: (err: ConnectorError) => boolean) => (err: unknown) =>
    err instanceof ConnectorError && check(err);

  it('discovers the user by employeeNumber: OKTA_GROUP groups, direct app assignments, admin roles, grants, refresh tokens, email', async () => {
    const user = userOf('E1001');
    const found = await okta.discover(subject('E1001'));
    assert.deepEqual(found.account, { id: user.id, disabled: false });
    const ids = found.entitlements.map((e) => e.id);
    assert.deepEqual(
      ids.filter((id) => id.startsWith('group:')).sort(),
      ['developers', 'domain-admins', 'finance', 'prod-access', 'sudoers', 'vpn-users'].map((g) => `group:${g}`),
      'Everyone (BUILT_IN) and the directory-imported Domain Users (APP_GROUP) are not listed',
    );
    assert.ok(groupsIn(user.id).includes('Everyone') && groupsIn(user.id).includes('Domain Users'));
    assert.deepEqual(
      found.entitlements
        .filter((e) => e.kind === 'app_assignment')
        .map((e) => e.name)
        .sort(),
      ['Expenses', 'GitHub Enterprise Cloud', 'Slack'],
      'direct assignments only',
    );
    assert.ok(appsOf(user.id).includes('AWS/GROUP'), 'AWS comes through prod-access and goes with it');
    assert.deepEqual(
      found.entitlements.filter((e) => e.kind === 'admin_role').map((e) => e.id),
      ['admin-role:APP_ADMIN'],
    );
    assert.deepEqual(found.credentials.map((c) => `${c.kind}:${c.id.split(':')[0]}`).sort(), [
      'session:okta-sessions',
      'token:grant',
      'token:refresh-tokens',
      'token:refresh-tokens',
    ]);
    assert.deepEqual(found.identity, { email: samplePerson('E1001').email });
    assert.ok(
      sandbox.state.requests.every((r) => r.startsWith('GET /api/v1/')),
      'discovery only reads',
    );
    assert.match(
      sandbox.state.requests[0]!,
      /^GET \/api\/v1\/users\?search=profile\.employeeNumber%20eq%20%22E1001%22/,
    );
  });

  it('a person without a user is account: null; one without employeeNumber is found by login/email; a suspended one is disabled', async () => {
    assert.deepEqual(await okta.discover({ employeeId: 'E9999', email: 'nobody@example.org' }), {
      system: 'okta',
      account: null,
      entitlements: [],
      credentials: [],
    });
    const emailOnly = await okta.discover(subject(OKTA_EMAIL_ONLY_EMPLOYEE_ID));
    assert.equal(emailOnly.account?.id, userOf(OKTA_EMAIL_ONLY_EMPLOYEE_ID).id);
    assert.equal(
      (await okta.discover({ employeeId: OKTA_EMAIL_ONLY_EMPLOYEE_ID })).account,
      null,
      'no email, no fallback',
    );
    assert.equal(
      (await connectorWith({ matchByEmail: false }).discover(subject(OKTA_EMAIL_ONLY_EMPLOYEE_ID))).account,
      null,
      'matchByEmail: false',
    );
    const suspended = await okta.discover(subject(OKTA_SUSPENDED_EMPLOYEE_ID));
    assert.equal(suspended.account?.disabled, true);
    assert.ok(!suspended.credentials.some((c) => c.kind === 'session'), 'a suspended user cannot sign in');
  });

  it('two users with the employeeNumber, or an email match carrying another HR id, is ambiguous', async () => {
    await assert.rejects(
      okta.discover(subject(OKTA_DUPLICATE_EMPLOYEE_ID)),
      failsWith(
        (err) =>
          !err.retryable &&
          err.code === 'ambiguous_identity' &&
          /2 users match profile\.employeeNumber/.test(err.message),
      ),
    );
    await assert.rejects(
      okta.discover({ employeeId: 'E9998', email: samplePerson('E1002').email }),
      failsWith(
        (err) =>
          !err.retryable && err.code === 'ambiguous_identity' && /"E1002", another person's HR id/.test(err.message),
      ),
    );
  });

  it('quotes and backslashes in the HR id or email are matched literally in the search expression', async () => {
    const quoted = 'pat"o\\brien@example.org';
    const user = structuredClone(userOf('E1003'));
    Object.assign(user, { id: '00uQUOTED' });
    Object.assign(user.profile, { login: quoted, email: quoted, employeeNumber: 'X9' });
    sandbox.state.users.push(user);
    await assert.rejects(
      okta.discover({ employeeId: 'E9997', email: quoted }),
      failsWith((e) => e.code === 'ambiguous_identity'),
    );
    user.profile.employeeNumber = undefined;
    assert.equal((await okta.discover({ employeeId: 'E9997', email: quoted })).account?.id, '00uQUOTED');
    const injection = await okta.discover({ employeeId: 'E1001" or profile.employeeNumber eq "E1002' });
    assert.equal(injection.account, null);
  });

  it('disable_login suspends, keeping groups and apps; again is already; enable_login unsuspends; again is already', async () => {
    const user = userOf('E1002');
    const groups = groupsIn(user.id);
    const apps = appsOf(user.id);
    const disabled = await okta.apply(action('disable_login', user.id), subject('E1002'));
    assert.deepEqual([disabled.outcome, disabled.details.status], ['done', 'SUSPENDED']);
    assert.equal(userOf('E1002').status, 'SUSPENDED');
    assert.deepEqual([groupsIn(user.id), appsOf(user.id)], [groups, apps], 'suspension keeps assignments');
    assert.ok(sandbox.state.requests.includes(`POST /api/v1/users/${user.id}/lifecycle/suspend`));
    assert.equal((await okta.apply(action('disable_login', user.id), subject('E1002'))).outcome, 'already');
    assert.equal((await okta.discover(subject('E1002'))).account?.disabled, true);
    assert.equal((await okta.apply(action('enable_login', user.id), subject('E1002'))).outcome, 'done');
    assert.equal(userOf('E1002').status, 'ACTIVE');
    assert.equal((await okta.apply(action('enable_login', user.id), subject('E1002'))).outcome, 'already');
  });

  it('a user Okta will not suspend (RECOVERY) is escalated, saying why and that deactivation is left to a person', async () => {
    const user = userOf('E1004');
    user.status = 'RECOVERY';
    await assert.rejects(
      okta.apply(action('disable_login', user.id), subject('E1004')),
      failsWith(
        (err) =>
          !err.retryable &&
          err.code === 'okta_cannot_suspend' &&
          /only ACTIVE users.*RECOVERY.*password reset/.test(err.message),
      ),
    );
    assert.equal(userOf('E1004').status, 'RECOVERY');
    assert.ok(!sandbox.state.requests.some((r) => r.startsWith('POST') || r.startsWith('DELETE')), 'nothing written');
  });

  it('revoke_sessions ends the sessions and refresh tokens, says the sessions cannot be read back, and runs again when repeated', async () => {
    const user = userOf('E1002');
    assert.equal(sandbox.state.sessions.filter(byUser(user.id)).length, 1);
    const result = await okta.apply(action('revoke_sessions', user.id), subject('E1002'));
    assert.equal(result.outcome, 'done');
    assert.equal(result.details.sessionsReadBack, false);
    assert.match(String(result.details.note), /lists no sessions/);
    assert.deepEqual(sandbox.state.sessions.filter(byUser(user.id)), []);
    assert.deepEqual(sandbox.state.refreshTokens.filter(byUser(user.id)), [], 'oauthTokens=true');
    assert.ok(sandbox.state.requests.includes(`DELETE /api/v1/users/${user.id}/sessions?oauthTokens=true`));
    // Nothing in Okta says whether sessions are left, so a repeat revokes again rather than claiming `already`.
    assert.equal((await okta.apply(action('revoke_sessions', user.id), subject('E1002'))).outcome, 'done');
    sandbox.state.users = sandbox.state.users.filter((u) => u.id !== user.id);
    assert.equal((await okta.apply(action('revoke_sessions', user.id), subject('E1002'))).outcome, 'already');
  });

  it('revoke_tokens revokes the grants and every client’s refresh tokens, read back; again is already', async () => {
    const user = userOf('E1001');
    assert.equal(sandbox.state.refreshTokens.filter(byUser(user.id)).length, 2);
    const result = await okta.apply(action('revoke_tokens', user.id), subject('E1001'));
    assert.equal(result.outcome, 'done');
    assert.deepEqual(result.details.clients, ['0oaSANDBOXexpenses01', '0oaSANDBOXdeploycli01']);
    assert.deepEqual(sandbox.state.grants.filter(byUser(user.id)), []);
    assert.deepEqual(sandbox.state.refreshTokens.filter(byUser(user.id)), []);
    assert.equal((await okta.apply(action('revoke_tokens', user.id), subject('E1001'))).outcome, 'already');
    const after = await okta.discover(subject('E1001'));
    assert.ok(!after.credentials.some((c) => c.kind === 'token'));
  });

  it('remove_entitlement leaves a group, a direct app assignment and an admin role, each read back; again is already', async () => {
    const user = userOf('E1001');
    const found = await okta.discover(subject('E1001'));
    const pick = (id: string) => found.entitlements.find((e) => e.id === id)!;
    const slack = found.entitlements.find((e) => e.name === 'Slack')!;
    for (const target of [pick('group:prod-access'), slack, pick('admin-role:APP_ADMIN')]) {
      const result = await okta.apply(action('remove_entitlement', user.id, target), subject('E1001'));
      assert.equal(result.outcome, 'done', target.id);
      assert.equal(
        (await okta.apply(action('remove_entitlement', user.id, target), subject('E1001'))).outcome,
        'already',
        target.id,
      );
    }
    assert.ok(!groupsIn(user.id).includes('prod-access'));
    assert.ok(!appsOf(user.id).includes('Slack/USER'));
    assert.deepEqual(sandbox.state.roles.filter(byUser(user.id)), []);
    assert.ok(
      appsOf(user.id).includes('AWS/GROUP'),
      'the stand-in does not cascade: Okta removes group-scoped apps itself',
    );
    await assert.rejects(
      okta.apply(action('remove_entitlement', user.id, { id: 'team:x', kind: 'team' }), subject('E1001')),
      failsWith((err) => !err.retryable && err.code === 'bad_action'),
    );
  });

  it('removals running side by side share their reads: each list read once before and once after, each removal read back', async () => {
    const user = userOf('E1004');
    const found = await okta.discover(subject('E1004'));
    const targets = found.entitlements;
    assert.ok(targets.filter((e) => e.kind === 'group').length >= 3, 'several groups to remove');
    const from = sandbox.state.requests.length;
    const results = await Promise.all(
      targets.map((t) => okta.apply(action('remove_entitlement', user.id, t), subject('E1004'))),
    );
    assert.deepEqual(
      results.map((r) => r.outcome),
      targets.map(() => 'done'),
    );
    const removedGroups = targets.filter((t) => t.kind === 'group').map((t) => t.name);
    assert.deepEqual(
      groupsIn(user.id).filter((name) => removedGroups.includes(name)),
      [],
    );
    assert.deepEqual(sandbox.state.roles.filter(byUser(user.id)), []);
    const sent = sandbox.state.requests.slice(from);
    const count = (pattern: RegExp) => sent.filter((r) => pattern.test(r)).length;
    assert.equal(count(/^GET \/api\/v1\/users\/[^/]+\/groups/), 2, sent.join('\n'));
    assert.equal(count(/^GET \/api\/v1\/users\/[^/?]+$/), 0, 'a 404 of the list says the user is gone');
    assert.equal(count(/^DELETE /), targets.length);

    // The same side by side with writes that change nothing: none is done.
    const again = userOf('E1005');
    const theirs = (await okta.discover(subject('E1005'))).entitlements;
    sandbox.inject({ ignoreWrites: true });
    const ignored = await Promise.allSettled(
      theirs.map((t) => okta.apply(action('remove_entitlement', again.id, t), subject('E1005'))),
    );
    assert.deepEqual(
      ignored.map((r) => (r.status === 'rejected' ? (r.reason as ConnectorError).code : r.value.outcome)),
      theirs.map(() => 'okta_not_applied'),
    );
  });

  it('revocations and removals for a user deleted meanwhile are already, from the 404 of its lists, with no GET of the user', async () => {
    const user = userOf('E1003');
    const found = await okta.discover(subject('E1003'));
    sandbox.state.users = sandbox.state.users.filter((u) => u.id !== user.id);
    const from = sandbox.state.requests.length;
    const kinds = [action('revoke_sessions', user.id), action('revoke_tokens', user.id)];
    const removals = found.entitlements
      .filter((e) => e.kind !== 'app_assignment')
      .map((e) => action('remove_entitlement', user.id, e));
    for (const a of [...kinds, ...removals]) {
      const result = await okta.apply(a, subject('E1003'));
      assert.deepEqual([result.outcome, result.details.note], ['already', 'no such user'], a.id);
    }
    assert.ok(!sandbox.state.requests.slice(from).includes(`GET /api/v1/users/${user.id}`));
  });

  it('delete_account unenrols the factors, deactivates, then deletes (DELETE twice); again is already', async () => {
    const user = userOf('E1002');
    assert.equal(sandbox.state.factors.filter(byUser(user.id)).length, 2);
    const result = await okta.apply(action('delete_account', user.id), subject('E1002'));
    assert.equal(result.outcome, 'done');
    assert.deepEqual(result.details.factorsRemoved, ['push', 'token:software:totp']);
    assert.equal(oktaUsersOf(sandbox.state, 'E1002').length, 0, 'the user is gone');
    assert.deepEqual(
      sandbox.state.requests
        .filter((r) => r.startsWith('DELETE'))
        .map((r) => r.replace(/\/factors\/[^/?]+/, '/factors/{fid}')),
      [
        `DELETE /api/v1/users/${user.id}/factors/{fid}`,
        `DELETE /api/v1/users/${user.id}/factors/{fid}`,
        `DELETE /api/v1/users/${user.id}?sendEmail=false`,
        `DELETE /api/v1/users/${user.id}?sendEmail=false`,
      ],
    );
    assert.equal((await okta.apply(action('delete_account', user.id), subject('E1002'))).outcome, 'already');
  });

  it('a user already deactivated is deleted with one DELETE (a retry resumes), and cancel activates one found deactivated', async () => {
    const first = userOf('E1003');
    first.status = 'DEPROVISIONED';
    assert.equal((await okta.apply(action('delete_account', first.id), subject('E1003'))).outcome, 'done');
    assert.equal(sandbox.state.requests.filter((r) => r.startsWith('DELETE')).length, 1);
    assert.equal(oktaUsersOf(sandbox.state, 'E1003').length, 0);

    const second = userOf('E1004');
    second.status = 'DEPROVISIONED';
    const enabled = await okta.apply(action('enable_login', second.id), subject('E1004'));
    assert.deepEqual([enabled.outcome, enabled.details.status], ['done', 'ACTIVE']);
    assert.ok(sandbox.state.requests.includes(`POST /api/v1/users/${second.id}/lifecycle/activate?sendEmail=false`));
    assert.ok(!JSON.stringify(enabled).includes('/welcome/'), 'the activation link is not kept');
    sandbox.state.users = sandbox.state.users.filter((u) => u.id !== second.id);
    await assert.rejects(
      okta.apply(action('enable_login', second.id), subject('E1004')),
      failsWith((err) => !err.retryable && err.code === 'account_gone'),
    );
  });

  it('a write answered with success that changed nothing is retryable, never done', async () => {
    const user = userOf('E1002');
    sandbox.inject({ ignoreWrites: true });
    await assert.rejects(
      okta.apply(action('disable_login', user.id), subject('E1002')),
      failsWith((err) => err.retryable && err.code === 'okta_not_applied'),
    );
    const group = { id: 'group:engineering', kind: 'group' };
    await assert.rejects(
      okta.apply(action('remove_entitlement', user.id, group), subject('E1002')),
      failsWith((err) => err.retryable && err.code === 'okta_not_applied'),
    );
    assert.equal(userOf('E1002').status, 'ACTIVE');
  });

  it('a 429 carries the wait until X-Rate-Limit-Reset, and the real activities wait it out within the attempt', async () => {
    sandbox.inject({ tooManyRequests: { count: 1, resetSeconds: 1 } });
    await assert.rejects(
      okta.discover(subject('E1001')),
      failsWith(
        (err) =>
          err.retryable &&
          err.code === 'okta_rate_limited' &&
          /E0000047/.test(err.message) &&
          err.retryAfterMs! >= 1_000 &&
          err.retryAfterMs! <= 3_000,
      ),
    );
    sandbox.reset();
    sandbox.inject({ tooManyRequests: { count: 1, resetSeconds: 1 } });
    const activities = createActivities({
      policy: {} as Policy,
      audit: {} as AuditStore,
      notify: async () => ({ delivered: [] }),
      connectors: new Map([['okta', okta]]),
      callTimeoutMs: 10_000,
      heartbeatEveryMs: 50,
    });
    const logs: LogEntry[] = [];
    const env = new MockActivityEnvironment({}, { logger: new DefaultLogger('INFO', (entry) => logs.push(entry)) });
    const started = Date.now();
    const found = (await env.run(activities.discover, { system: 'okta', subject: subject('E1001') })) as Discovery;
    const took = Date.now() - started;
    assert.equal(found.account?.id, userOf('E1001').id);
    assert.ok(took >= 900, `answered after ${took} ms: the reset was waited for`);
    assert.equal(
      sandbox.state.requests.filter((r) => r.includes('search=')).length,
      2,
      'the refused search, then its repeat',
    );
    const paused = logs.find((entry) => entry.message.startsWith('system rate-limited'));
    assert.equal(paused?.meta?.system, 'okta');
  });

  it('a 5xx, a reset connection or a slow answer is retryable; the message names neither the token nor the person', async () => {
    sandbox.inject({ serverErrorRate: 1 });
    await assert.rejects(
      okta.discover(subject('E1001')),
      failsWith((err) => err.retryable && err.code === 'okta_http_500' && !err.message.includes(SANDBOX_OKTA_TOKEN)),
    );
    sandbox.inject({ connectionResets: 1 });
    await assert.rejects(
      okta.discover(subject('E1001')),
      failsWith((err) => err.retryable && err.code === 'okta_unreachable' && !err.message.includes('E1001')),
    );
    sandbox.inject({ latencyMs: 1_500 });
    await assert.rejects(
      connectorWith({ timeoutMs: 300 }).discover(subject('E1001')),
      failsWith((err) => err.retryable && err.code === 'okta_unreachable' && /no answer within/.test(err.message)),
    );
  });

  it('a refused token is non-retryable; a missing admin role is named and nothing changes', async () => {
    await assert.rejects(
      connectorWith({ apiToken: 'not-a-token' }).discover(subject('E1001')),
      failsWith(
        (err) => !err.retryable && err.code === 'okta_unauthorized' && /E0000011.*check apiToken/.test(err.message),
      ),
    );
    const user = userOf('E1001');
    const role = { id: 'admin-role:APP_ADMIN', kind: 'admin_role' };
    await assert.rejects(
      connectorWith({ apiToken: SANDBOX_OKTA_ORG_ADMIN_TOKEN }).apply(
        action('remove_entitlement', user.id, role),
        subject('E1001'),
      ),
      failsWith(
        (err) => !err.retryable && err.code === 'okta_forbidden' && /E0000006.*Super Administrator/.test(err.message),
      ),
    );
    assert.equal(sandbox.state.roles.filter(byUser(user.id)).length, 1);
    await assert.rejects(
      connectorWith({ apiToken: SANDBOX_OKTA_READONLY_TOKEN }).apply(
        action('disable_login', user.id),
        subject('E1001'),
      ),
      failsWith(
        (err) =>
          !err.retryable &&
          err.code === 'okta_forbidden' &&
          /Organization Administrator/.test(err.message) &&
          !err.message.includes(SANDBOX_OKTA_READONLY_TOKEN),
      ),
    );
    assert.equal(userOf('E1001').status, 'ACTIVE');
    await connectorWith({ apiToken: SANDBOX_OKTA_READONLY_TOKEN }).check!();
  });

  it('settings: https only, http for a local stand-in; the API token is a secret field; transfer_ownership not applicable', async () => {
    const parse = (orgUrl: string) => oktaSystemSchema.safeParse({ type: 'okta', orgUrl, apiToken: 'x' });
    assert.equal(parse('http://example.okta.com').success, false);
    assert.equal(parse('https://example.okta.com/').data?.orgUrl, 'https://example.okta.com');
    assert.equal(parse('http://localhost:8080').success, true);
    assert.equal(parse('https://example.okta.com').data?.employeeIdAttribute, 'employeeNumber');
    assert.equal(
      oktaSystemSchema.safeParse({
        type: 'okta',
        orgUrl: 'https://x.okta.com',
        apiToken: 'x',
        employeeIdAttribute: 'a eq "b"',
      }).success,
      false,
    );
    assert.deepEqual(oktaConnector.secretFields, ['apiToken', 'oauth.privateKey']);
    assert.equal(okta.providesIdentity, true);
    const result = await okta.apply(action('transfer_ownership', 'x'), subject('E1001'));
    assert.equal(result.outcome, 'not_applicable');
    assert.deepEqual(sandbox.state.requests, []);
  });

  it('the stand-in speaks Okta’s wire format: SSWS check, error body, rate-limit headers, Link pagination, faults over HTTP', async () => {
    const unauthenticated = await fetch(`${sandbox.url}/api/v1/users`);
    assert.equal(unauthenticated.status, 401);
    const body = (await unauthenticated.json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body).sort(), ['errorCauses', 'errorCode', 'errorId', 'errorLink', 'errorSummary']);
    assert.deepEqual([body.errorCode, body.errorSummary], ['E0000011', 'Invalid token provided']);

    const auth = { authorization: `SSWS ${SANDBOX_OKTA_TOKEN}` };
    const first = await fetch(`${sandbox.url}/api/v1/users?limit=2`, { headers: auth });
    assert.equal(first.status, 200);
    assert.equal(((await first.json()) as unknown[]).length, 2);
    for (const header of ['x-rate-limit-limit', 'x-rate-limit-remaining', 'x-rate-limit-reset'])
      assert.match(first.headers.get(header) ?? '', /^\d+$/, header);
    const next = /<([^>]+)>; rel="next"/.exec(first.headers.get('link') ?? '')?.[1];
    assert.ok(next?.includes('after='), 'a next link with a cursor');
    const missing = await fetch(`${sandbox.url}/api/v1/users/00uNOPE`, { headers: auth });
    assert.deepEqual([missing.status, ((await missing.json()) as { errorCode: string }).errorCode], [404, 'E0000007']);

    await fetch(`${sandbox.url}/_sandbox/faults`, {
      method: 'POST',
      body: JSON.stringify({ tooManyRequests: { count: 1, resetSeconds: 5 } }),
    });
    const limited = await fetch(`${sandbox.url}/api/v1/users`, { headers: auth });
    assert.deepEqual([limited.status, limited.headers.get('x-rate-limit-remaining')], [429, '0']);
    assert.equal(((await limited.json()) as { errorCode: string }).errorCode, 'E0000047');
    // Okta counts each API apart: /api/v1/users* being out of requests leaves /api/v1/apps* its own.
    const apps = await fetch(`${sandbox.url}/api/v1/apps?limit=1`, { headers: auth });
    assert.equal(apps.status, 200);
    assert.equal(apps.headers.get('x-rate-limit-limit'), '600');
    const stillLimited = await fetch(`${sandbox.url}/api/v1/users/00uNOPE`, { headers: auth });
    assert.equal(stillLimited.status, 429);
    const state = (await (await fetch(`${sandbox.url}/_sandbox/state`)).json()) as { users: unknown[] };
    assert.equal(state.users.length, sandbox.state.users.length);
  });
  describe('as an OAuth 2.0 service app (private_key_jwt)', () => {
    const serviceApp = (oauth: Record<string, unknown> = {}) =>
      createOktaConnector(
        'okta',
        oktaSystemSchema.parse({
          type: 'okta',
          orgUrl: sandbox.url,
          oauth: { clientId: SANDBOX_OKTA_SERVICE_APP, privateKey: sandbox.servicePrivateKey, ...oauth },
        }),
      );
    const tokenRequests = () => sandbox.state.requests.filter((r) => r === 'POST /oauth2/v1/token').length;

    it('discovers and suspends with one access token, asked for with a signed client assertion', async () => {
      const connector = serviceApp();
      const user = userOf('E1002');
      const found = await connector.discover(subject('E1002'));
      assert.equal(found.account?.id, user.id);
      assert.equal((await connector.apply(action('disable_login', user.id), subject('E1002'))).outcome, 'done');
      assert.equal(userOf('E1002').status, 'SUSPENDED');
      assert.equal(tokenRequests(), 1, 'one token for every call');
      assert.deepEqual(Object.values(sandbox.state.accessTokens)[0]?.scopes.length, 8);
    });

    it('an expired access token is replaced and the refused request repeated', async () => {
      const connector = serviceApp();
      await connector.discover(subject('E1002'));
      sandbox.expireAccessTokens();
      assert.equal((await connector.discover(subject('E1002'))).account?.id, userOf('E1002').id);
      assert.equal(tokenRequests(), 2);
    });

    it('a scope the token lacks is named; nothing changes', async () => {
      const connector = serviceApp({ scopes: ['okta.users.read', 'okta.users.manage', 'okta.roles.read'] });
      const user = userOf('E1001');
      const role = { id: 'admin-role:APP_ADMIN', kind: 'admin_role' };
      await assert.rejects(
        connector.apply(action('remove_entitlement', user.id, role), subject('E1001')),
        failsWith(
          (err) => !err.retryable && err.code === 'okta_forbidden' && /lacks okta\.roles\.manage/.test(err.message),
        ),
      );
      assert.equal(sandbox.state.roles.filter(byUser(user.id)).length, 1);
    });

    it('a wrong key, client id or scope fails non-retryably, saying what to check, without the key', async () => {
      const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 })
        .privateKey.export({ type: 'pkcs8', format: 'pem' })
        .toString();
      for (const oauth of [{ privateKey: otherKey }, { clientId: '0oaSOMEONEELSE' }]) {
        await assert.rejects(
          serviceApp(oauth).discover(subject('E1001')),
          failsWith(
            (err) =>
              !err.retryable &&
              err.code === 'okta_bad_credentials' &&
              /check oauth\.clientId, oauth\.privateKey/.test(err.message) &&
              !err.message.includes('PRIVATE KEY'),
          ),
        );
      }
      await assert.rejects(
        serviceApp({ scopes: ['okta.users.read', 'okta.logs.read'] }).discover(subject('E1001')),
        failsWith(
          (err) =>
            !err.retryable &&
            err.code === 'okta_bad_credentials' &&
            /invalid_scope.*okta\.logs\.read.*grant the scope to the app/.test(err.message),
        ),
      );
      assert.deepEqual(sandbox.state.accessTokens, {});
      assert.ok(!sandbox.state.requests.some((r) => r.includes('/api/v1/')), 'no call goes out without a token');
    });

    it('config: exactly one of apiToken and oauth; the private key is a secret field', () => {
      const checked = oktaSystemSchema.superRefine(oktaAuthIssues);
      const base = { type: 'okta', orgUrl: 'https://example.okta.com' };
      const oauth = { clientId: 'x', privateKey: 'y' };
      assert.match(checked.safeParse(base).error?.issues[0]?.message ?? '', /apiToken \(SSWS\) or oauth/);
      assert.match(checked.safeParse({ ...base, apiToken: 't', oauth }).error?.issues[0]?.message ?? '', /not both/);
      assert.equal(checked.safeParse({ ...base, oauth }).success, true);
      assert.ok(oktaConnector.secretFields.includes('oauth.privateKey'));
      assert.throws(() => createOktaConnector('okta', oktaSystemSchema.parse(base)), /apiToken \(SSWS\) or oauth/);
    });
  });
});
