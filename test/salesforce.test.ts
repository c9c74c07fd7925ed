/**
 * The Salesforce connector (jsforce) against the local stand-in of the REST API: discovery and
 * identity resolution, each action and its idempotency, the freeze fallback, cancel, and how
 * failures are classified — asserted in the stand-in's state and in the requests it received.
 */
import assert from 'node:assert/strict';
import { createSalesforceConnector, salesforceSystemSchema } from '../activities/connectors/salesforce.js';
import { ConnectorError, type Connector } from '../activities/connectors/types.js';
import type { Action } from '../model/plan.js';
import { samplePerson } from '../sandbox/org.js';
import {
  DEFAULT_WORKFLOW_EMPLOYEE_ID,
  DUPLICATE_EMAIL_EMPLOYEE_ID,
  EMAIL_ONLY_EMPLOYEE_ID,
  FOREIGN_FEDERATION_EMPLOYEE_ID,
  INACTIVE_EMPLOYEE_ID,
  SANDBOX_SALESFORCE_READONLY_TOKEN,
  SANDBOX_SALESFORCE_TOKEN,
  salesforceUsersOf,
  startSalesforceSandbox,
  type SalesforceSandbox,
} from '../sandbox/salesforce.js';

describe('Salesforce connector (jsforce against the REST stand-in)', () => {
  let sandbox: SalesforceSandbox;
  let salesforce: Connector;
  const connectorWith = (settings: Record<string, unknown> = {}) =>
    createSalesforceConnector('salesforce', salesforceSystemSchema.parse({ type: 'salesforce', instanceUrl: sandbox.url, accessToken: SANDBOX_SALESFORCE_TOKEN, ...settings }));

  before(async () => {
    sandbox = await startSalesforceSandbox();
    salesforce = connectorWith();
  });
  after(async () => {
    await sandbox?.stop();
  });
  beforeEach(() => sandbox.reset());

  const subject = (employeeId: string) => ({ employeeId, email: samplePerson(employeeId).email });
  const action = (kind: Action['kind'], accountId: string, target?: Action['target']): Action => ({ id: `t/${kind}`, stage: 't', system: 'salesforce', kind, accountId, target });
  const userOf = (employeeId: string) => salesforceUsersOf(sandbox.state, employeeId)[0]!;
  const userIdOf = (employeeId: string) => String(userOf(employeeId).Id);
  const loginOf = (userId: string) => sandbox.state.records.UserLogin.find((l) => l.UserId === userId)!;
  const permissionSetsOf = (userId: string) =>
    sandbox.state.records.PermissionSetAssignment.filter((a) => a.AssigneeId === userId)
      .map((a) => sandbox.state.records.PermissionSet.find((p) => p.Id === a.PermissionSetId)!)
      .map((p) => ({ name: String(p.Name), ownedByProfile: p.IsOwnedByProfile }));
  const tokensOf = (userId: string) => sandbox.state.records.OauthToken.filter((t) => t.UserId === userId);
  const sessionsOf = (userId: string) => sandbox.state.records.AuthSession.filter((s) => s.UsersId === userId);
  const failsWith = (check: (err: ConnectorError) => boolean) => (err: unknown) => err instanceof ConnectorError && check(err);

  it('discovers the user by FederationIdentifier with its permission sets (not the profile’s), sessions and OAuth grants', async () => {
    const userId = userIdOf('E1001');
    const found = await salesforce.discover(subject('E1001'));
    assert.deepEqual(found.account, { id: userId, disabled: false });
    assert.deepEqual(found.entitlements.map((e) => e.id).sort(), ['API_Enabled', 'Finance_Reports', 'Modify_All_Data_Admin', 'SBQQ__SteelBrickCPQUser', 'View_All_Data']);
    assert.ok(found.entitlements.every((e) => e.kind === 'permission_set' && e.name));
    assert.equal(permissionSetsOf(userId).filter((p) => p.ownedByProfile).length, 1, 'the profile’s own assignment exists but is not listed');
    assert.deepEqual(found.credentials.filter((c) => c.kind === 'session').map((c) => c.id).sort(), sessionsOf(userId).map((s) => String(s.Id)).sort());
    const tokens = found.credentials.filter((c) => c.kind === 'token');
    assert.equal(tokens.length, tokensOf(userId).length);
    assert.match(tokens[0]!.id, /^oauth:Salesforce for Outlook:[0-9a-f]{16}$/);
    assert.ok(!JSON.stringify(found).includes(String(tokensOf(userId)[0]!.DeleteToken)), 'no DeleteToken in the discovery');
    assert.ok(sandbox.state.requests.every((r) => r === 'GET /services/data/v62.0/query'), 'only SOQL queries, on API v62.0');
  });

  it('a person without a user is account: null; a pre-SSO user is found by email', async () => {
    assert.deepEqual(await salesforce.discover({ employeeId: 'E9999', email: 'nobody@example.org' }), { system: 'salesforce', account: null, entitlements: [], credentials: [] });
    const found = await salesforce.discover(subject(EMAIL_ONLY_EMPLOYEE_ID));
    assert.equal(found.account?.id, userIdOf(EMAIL_ONLY_EMPLOYEE_ID));
    assert.equal((await salesforce.discover({ employeeId: EMAIL_ONLY_EMPLOYEE_ID })).account, null, 'no email, no fallback');
    assert.equal((await salesforce.discover(subject(INACTIVE_EMPLOYEE_ID))).account?.disabled, true);
  });

  it('two users with the person’s email, or an email match carrying another FederationIdentifier, is ambiguous', async () => {
    await assert.rejects(salesforce.discover(subject(DUPLICATE_EMAIL_EMPLOYEE_ID)), failsWith((err) => !err.retryable && err.code === 'ambiguous_identity' && /several users/.test(err.message)));
    await assert.rejects(salesforce.discover(subject(FOREIGN_FEDERATION_EMPLOYEE_ID)), failsWith((err) => !err.retryable && err.code === 'ambiguous_identity' && /FederationIdentifier "C-1037"/.test(err.message)));
  });

  it('escapes SOQL literals: quotes and backslashes in an email are matched literally', async () => {
    const quoted = "o'brien\\x@example.org";
    sandbox.state.records.User.push({ Id: '005Dn9999999999AAA', Username: 'obrien@example.org', Email: quoted, FirstName: 'Pat', LastName: "O'Brien", FederationIdentifier: null, IsActive: true, ProfileId: null });
    assert.equal((await salesforce.discover({ employeeId: 'E9997', email: quoted })).account?.id, '005Dn9999999999AAA');
    const injection = "x' OR Email != 'y";
    assert.equal((await salesforce.discover({ employeeId: "E9996' OR IsActive = true OR Email = 'z", email: injection })).account, null);
  });

  it('disable_login deactivates the user; again is already; enable_login reactivates it', async () => {
    const userId = userIdOf('E1002');
    const disabled = await salesforce.apply(action('disable_login', userId), subject('E1002'));
    assert.deepEqual([disabled.outcome, disabled.details.deactivated], ['done', true]);
    assert.equal(userOf('E1002').IsActive, false);
    assert.equal((await salesforce.apply(action('disable_login', userId), subject('E1002'))).outcome, 'already');
    assert.equal((await salesforce.discover(subject('E1002'))).account?.disabled, true);
    assert.equal((await salesforce.apply(action('enable_login', userId), subject('E1002'))).outcome, 'done');
    assert.equal(userOf('E1002').IsActive, true);
    assert.equal(loginOf(userId).IsFrozen, false);
    assert.equal((await salesforce.apply(action('enable_login', userId), subject('E1002'))).outcome, 'already');
  });

  it('the Default Workflow User cannot be deactivated: it is frozen instead, and unfrozen on cancel', async () => {
    const userId = userIdOf(DEFAULT_WORKFLOW_EMPLOYEE_ID);
    const result = await salesforce.apply(action('disable_login', userId), subject(DEFAULT_WORKFLOW_EMPLOYEE_ID));
    assert.equal(result.outcome, 'done');
    assert.equal(result.details.frozen, true);
    assert.equal(result.details.deactivated, false);
    assert.match(String(result.details.deactivationRefused), /FIELD_INTEGRITY_EXCEPTION: You cannot deactivate the Default Workflow User/);
    assert.deepEqual([userOf(DEFAULT_WORKFLOW_EMPLOYEE_ID).IsActive, loginOf(userId).IsFrozen], [true, true]);
    assert.equal((await salesforce.apply(action('disable_login', userId), subject(DEFAULT_WORKFLOW_EMPLOYEE_ID))).outcome, 'already');
    assert.equal((await salesforce.discover(subject(DEFAULT_WORKFLOW_EMPLOYEE_ID))).account?.disabled, true);

    const enabled = await salesforce.apply(action('enable_login', userId), subject(DEFAULT_WORKFLOW_EMPLOYEE_ID));
    assert.deepEqual([enabled.outcome, enabled.details.unfrozen], ['done', true]);
    assert.deepEqual([userOf(DEFAULT_WORKFLOW_EMPLOYEE_ID).IsActive, loginOf(userId).IsFrozen], [true, false]);
    assert.equal((await salesforce.apply(action('enable_login', userId), subject(DEFAULT_WORKFLOW_EMPLOYEE_ID))).outcome, 'already');
  });

  it('cancel cannot reactivate without a free licence: non-retryable, saying so; a freeze placed by someone else stays', async () => {
    const userId = userIdOf('E1004');
    assert.equal((await salesforce.apply(action('disable_login', userId), subject('E1004'))).outcome, 'done');
    sandbox.state.licences.total = sandbox.state.records.User.filter((u) => u.IsActive).length; // the freed licence went to someone else
    await assert.rejects(salesforce.apply(action('enable_login', userId), subject('E1004')), failsWith((err) => !err.retryable && /no free Salesforce licence/.test(err.message)));
    assert.equal(userOf('E1004').IsActive, false);

    const inactiveId = userIdOf(INACTIVE_EMPLOYEE_ID);
    loginOf(inactiveId).IsFrozen = true;
    sandbox.state.licences.total += 1;
    const enabled = await salesforce.apply(action('enable_login', inactiveId), subject(INACTIVE_EMPLOYEE_ID));
    assert.deepEqual([enabled.outcome, enabled.details.reactivated, enabled.details.stillFrozen], ['done', true, true]);
    assert.deepEqual([userOf(INACTIVE_EMPLOYEE_ID).IsActive, loginOf(inactiveId).IsFrozen], [true, true]);
  });

  it('revoke_tokens revokes every OAuth grant at /services/oauth2/revoke; again is already', async () => {
    const userId = userIdOf('E1001');
    const deleteTokens = tokensOf(userId).map((t) => String(t.DeleteToken));
    assert.equal(deleteTokens.length, 2);
    const result = await salesforce.apply(action('revoke_tokens', userId), subject('E1001'));
    assert.deepEqual([result.outcome, result.details.revoked], ['done', 2]);
    assert.ok(deleteTokens.every((token) => !JSON.stringify(result.details).includes(token)), 'no token in the audit details');
    assert.equal(tokensOf(userId).length, 0);
    assert.equal(sandbox.state.requests.filter((r) => r === 'POST /services/oauth2/revoke').length, 2);
    assert.equal((await salesforce.apply(action('revoke_tokens', userId), subject('E1001'))).outcome, 'already');
    assert.deepEqual((await salesforce.discover(subject('E1001'))).credentials.filter((c) => c.kind === 'token'), []);
  });

  it('two racing revoke_tokens attempts revoke each grant once: the loser counts invalid_token as already', async () => {
    const userId = userIdOf('E1003');
    assert.equal(tokensOf(userId).length, 2);
    sandbox.inject({ latencyMs: 50 }); // both attempts list the grants before either revokes one
    const results = await Promise.all([1, 2].map(() => salesforce.apply(action('revoke_tokens', userId), subject('E1003'))));
    const total = (key: string) => results.reduce((sum, r) => sum + Number(r.details[key]), 0);
    assert.deepEqual([total('revoked'), total('alreadyRevoked')], [2, 2]);
    assert.equal(tokensOf(userId).length, 0);
  });

  it('remove_entitlement deletes the assignment of each permission set, namespaced too; the profile’s stays', async () => {
    const userId = userIdOf('E1001');
    const found = await salesforce.discover(subject('E1001'));
    for (const entitlement of found.entitlements) {
      const removed = await salesforce.apply(action('remove_entitlement', userId, entitlement), subject('E1001'));
      assert.equal(removed.outcome, 'done', entitlement.id);
      assert.equal((removed.details.assignmentsRemoved as string[]).length, 1);
      assert.equal((await salesforce.apply(action('remove_entitlement', userId, entitlement), subject('E1001'))).outcome, 'already', entitlement.id);
    }
    assert.deepEqual(permissionSetsOf(userId).map((p) => p.ownedByProfile), [true]);
    assert.deepEqual((await salesforce.discover(subject('E1001'))).entitlements, []);
  });

  it('revoke_sessions deletes the user’s AuthSession records; again is already', async () => {
    const userId = userIdOf('E1003');
    assert.equal(sessionsOf(userId).length, 2);
    const result = await salesforce.apply(action('revoke_sessions', userId), subject('E1003'));
    assert.deepEqual([result.outcome, result.details.sessionsEnded], ['done', 2]);
    assert.equal(sessionsOf(userId).length, 0);
    assert.equal(sessionsOf(userIdOf('E1002')).length, 1, 'other people’s sessions stay');
    assert.equal((await salesforce.apply(action('revoke_sessions', userId), subject('E1003'))).outcome, 'already');
  });

  it('delete_account and transfer_ownership are not applicable, and say why, without calling Salesforce', async () => {
    const userId = userIdOf('E1003');
    const deleted = await salesforce.apply(action('delete_account', userId), subject('E1003'));
    assert.equal(deleted.outcome, 'not_applicable');
    assert.match(String(deleted.details.reason), /cannot be deleted, only deactivated/);
    assert.equal((await salesforce.apply(action('transfer_ownership', userId), subject('E1003'))).outcome, 'not_applicable');
    assert.deepEqual(sandbox.state.requests, []);
    assert.equal(userOf('E1003').IsActive, true);
  });

  it('a burst of 429s: each call fails once, retryable with Retry-After as retryAfterMs; after the burst it succeeds', async () => {
    sandbox.inject({ tooManyRequests: { count: 2, retryAfterSeconds: 7 } });
    for (let i = 1; i <= 2; i++) {
      await assert.rejects(salesforce.discover(subject('E1002')), failsWith((err) => err.retryable && err.code === 'salesforce_429' && err.retryAfterMs === 7000));
      assert.equal(sandbox.state.requests.length, i, 'jsforce sent the request once, without retrying by itself');
    }
    assert.equal((await salesforce.discover(subject('E1002'))).account?.id, userIdOf('E1002'));
  });

  it('a 5xx is retryable, and a failed DELETE is not retried inside jsforce', async () => {
    sandbox.inject({ serverErrorRate: 1 });
    await assert.rejects(salesforce.discover(subject('E1002')), failsWith((err) => err.retryable && err.code === 'salesforce_503' && /SERVER_UNAVAILABLE/.test(err.message)));
    assert.equal(sandbox.state.requests.length, 1);

    sandbox.reset();
    sandbox.inject({ serverErrorRate: 0.5 }); // the query passes, the first DELETE fails
    const userId = userIdOf('E1001');
    await assert.rejects(salesforce.apply(action('revoke_sessions', userId), subject('E1001')), failsWith((err) => err.retryable && err.code === 'salesforce_503'));
    assert.deepEqual(sandbox.state.requests.map((r) => r.split(' ')[0]), ['GET', 'DELETE']);
    sandbox.inject({});
    assert.equal((await salesforce.apply(action('revoke_sessions', userId), subject('E1001'))).outcome, 'done');
  });

  it('a reset connection or a slow answer is retryable, and the message carries no query (nor its email)', async () => {
    sandbox.inject({ connectionResets: 1 });
    await assert.rejects(salesforce.discover(subject('E1002')), failsWith((err) => err.retryable && err.code === 'salesforce_unreachable' && !err.message.includes('example.org')));
    assert.equal(sandbox.state.requests.length, 1);
    assert.equal((await salesforce.discover(subject('E1002'))).account?.id, userIdOf('E1002'));

    sandbox.inject({ latencyMs: 400 });
    await assert.rejects(connectorWith({ timeoutMs: 100 }).discover(subject('E1002')), failsWith((err) => err.retryable && /no answer within the timeout/.test(err.message)));
  });

  it('an expired or invalid access token is non-retryable and says to issue a new one', async () => {
    const stale = connectorWith({ accessToken: '00DSANDBOX000001!stale-token-123' });
    await assert.rejects(stale.discover(subject('E1002')), failsWith((err) => !err.retryable && /access token expired or is invalid/.test(err.message) && !err.message.includes('stale-token-123')));
  });

  it('an integration user without Manage Users gets a non-retryable error naming the permission; nothing changes', async () => {
    const readonly = connectorWith({ accessToken: SANDBOX_SALESFORCE_READONLY_TOKEN });
    const userId = userIdOf('E1005');
    await assert.rejects(readonly.apply(action('disable_login', userId), subject('E1005')), failsWith((err) => !err.retryable && /INSUFFICIENT_ACCESS_OR_READONLY/.test(err.message) && /"Manage Users"/.test(err.message)));
    await assert.rejects(readonly.discover(subject('E1005')), failsWith((err) => !err.retryable && /"Manage Users"/.test(err.message)));
    assert.equal(userOf('E1005').IsActive, true);
  });

  it('the exhausted 24-hour API limit is not hot-retried: non-retryable, saying when to retry', async () => {
    sandbox.inject({ apiLimitExhausted: true });
    await assert.rejects(salesforce.discover(subject('E1002')), failsWith((err) => !err.retryable && err.code === 'salesforce_daily_limit' && /TotalRequests/.test(err.message) && /within 24 hours/.test(err.message)));
  });

  it('settings: the API version defaults to 62.0; plain http is refused except to a local stand-in', () => {
    const parsed = salesforceSystemSchema.parse({ type: 'salesforce', instanceUrl: 'https://acme.my.salesforce.com/', accessToken: 'x' });
    assert.deepEqual([parsed.apiVersion, parsed.instanceUrl], ['62.0', 'https://acme.my.salesforce.com']);
    assert.equal(salesforceSystemSchema.safeParse({ type: 'salesforce', instanceUrl: 'http://acme.my.salesforce.com', accessToken: 'x' }).success, false);
  });

  it('the stand-in speaks Salesforce’s errors: 401 without a token, MALFORMED_QUERY for SOQL it does not parse, faults over HTTP', async () => {
    const unauthenticated = await fetch(`${sandbox.url}/services/data/v62.0/query?q=${encodeURIComponent('SELECT Id FROM User')}`);
    assert.equal(unauthenticated.status, 401);
    assert.deepEqual(await unauthenticated.json(), [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID', fields: [] }]);
    const headers = { authorization: `Bearer ${SANDBOX_SALESFORCE_TOKEN}` };
    const orQuery = await fetch(`${sandbox.url}/services/data/v62.0/query?q=${encodeURIComponent("SELECT Id FROM User WHERE Email = 'a' OR Email = 'b'")}`, { headers });
    assert.equal(orQuery.status, 400);
    assert.equal(((await orQuery.json()) as { errorCode: string }[])[0]?.errorCode, 'MALFORMED_QUERY');
    assert.match(orQuery.headers.get('sforce-limit-info') ?? '', /^api-usage=\d+\/15000$/);
    const oldVersion = await fetch(`${sandbox.url}/services/data/v50.0/query?q=x`, { headers });
    assert.equal(oldVersion.status, 404, 'a client left on jsforce’s default API version is noticed');

    const steer = await fetch(`${sandbox.url}/_sandbox/faults`, { method: 'POST', body: JSON.stringify({ tooManyRequests: { count: 1, retryAfterSeconds: 3 } }) });
    assert.equal(steer.status, 200);
    const limited = await fetch(`${sandbox.url}/services/data/v62.0/`, { headers });
    assert.deepEqual([limited.status, limited.headers.get('retry-after')], [429, '3']);
    const state = (await (await fetch(`${sandbox.url}/_sandbox/state`)).json()) as { records: { User: unknown[] } };
    assert.equal(state.records.User.length, sandbox.state.records.User.length);
  });
});
