/**
 * The Salesforce connector (jsforce) against the local stand-in of the REST API: discovery and
 * identity resolution, each action and its idempotency, the freeze fallback, cancel, and how
 * failures are classified; the OAuth client credentials flow, its session renewal and its
 * configuration — asserted in the stand-in's state and in the requests it received.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createSalesforceConnector,
  salesforceAuthIssues,
  salesforceSystemSchema,
} from '../activities/connectors/salesforce.js';
import { ConnectorError, type Connector } from '../activities/connectors/types.js';
import type { Action } from '../model/plan.js';
import { samplePerson } from '../sandbox/org.js';
import {
  DEFAULT_WORKFLOW_EMPLOYEE_ID,
  DUPLICATE_EMAIL_EMPLOYEE_ID,
  EMAIL_ONLY_EMPLOYEE_ID,
  FOREIGN_FEDERATION_EMPLOYEE_ID,
  INACTIVE_EMPLOYEE_ID,
  SANDBOX_SALESFORCE_CLIENT_ID,
  SANDBOX_SALESFORCE_CLIENT_SECRET,
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
    createSalesforceConnector(
      'salesforce',
      salesforceSystemSchema.parse({
        type: 'salesforce',
        instanceUrl: sandbox.url,
        accessToken: SANDBOX_SALESFORCE_TOKEN,
        ...settings,
      }),
    );
  /** As the worker's config would have it: the schema with the credentials refinement. */
  const checkedSchema = salesforceSystemSchema.superRefine(salesforceAuthIssues);
  const clientCredentialsConnector = (
    clientSecret = SANDBOX_SALESFORCE_CLIENT_SECRET,
    clientId = SANDBOX_SALESFORCE_CLIENT_ID,
  ) =>
    createSalesforceConnector(
      'salesforce',
      checkedSchema.parse({
        type: 'salesforce',
        instanceUrl: sandbox.url,
        clientCredentials: { clientId, clientSecret },
      }),
    );
  const issuedSessions = () => Object.values(sandbox.state.accessTokens).filter((t) => t.clientId !== undefined);

  before(async () => {
    sandbox = await startSalesforceSandbox();
    salesforce = connectorWith();
  });
  after(async () => {
    await sandbox?.stop();
  });
  beforeEach(() => sandbox.reset());

  const subject = (employeeId: string) => ({ employeeId, email: samplePerson(employeeId).email });
  const action = (kind: Action['kind'], accountId: string, target?: Action['target']): Action => ({
    id: `t/${kind}`,
    stage: 't',
    system: 'salesforce',
    kind,
    accountId,
    target,
  });
  const userOf = (employeeId: string) => salesforceUsersOf(sandbox.state, employeeId)[0]!;
  const userIdOf = (employeeId: string) => String(userOf(employeeId).Id);
  const loginOf = (userId: string) => sandbox.state.records.UserLogin.find((l) => l.UserId === userId)!;
  const permissionSetsOf = (userId: string) =>
    sandbox.state.records.PermissionSetAssignment.filter((a) => a.AssigneeId === userId)
      .map((a) => sandbox.state.records.PermissionSet.find((p) => p.Id === a.PermissionSetId)!)
      .map((p) => ({ name: String(p.Name), ownedByProfile: p.IsOwnedByProfile }));
  const tokensOf = (userId: string) => sandbox.state.records.OauthToken.filter((t) => t.UserId === userId);
  const sessionsOf = (userId: string) => sandbox.state.records.AuthSession.filter((s) => s.UsersId === userId);
  const failsWith = (check: (err: ConnectorError) => boolean) => (err: unknown) =>
    err instanceof ConnectorError && check(err);

  it('discovers the user by FederationIdentifier with its permission sets (not the profile’s), sessions and OAuth grants', async () => {
    const userId = userIdOf('E1001');
    const found = await salesforce.discover(subject('E1001'));
    assert.deepEqual(found.account, { id: userId, disabled: false });
    assert.deepEqual(found.entitlements.map((e) => e.id).sort(), [
      'API_Enabled',
      'Finance_Reports',
      'Modify_All_Data_Admin',
      'SBQQ__SteelBrickCPQUser',
      'View_All_Data',
    ]);
    assert.ok(found.entitlements.every((e) => e.kind === 'permission_set' && e.name));
    assert.equal(
      permissionSetsOf(userId).filter((p) => p.ownedByProfile).length,
      1,
      'the profile’s own assignment exists but is not listed',
    );
    assert.deepEqual(
      found.credentials
        .filter((c) => c.kind === 'session')
        .map((c) => c.id)
        .sort(),
      sessionsOf(userId)
        .map((s) => String(s.Id))
        .sort(),
    );
    const tokens = found.credentials.filter((c) => c.kind === 'token');
    assert.equal(tokens.length, tokensOf(userId).length);
    assert.match(tokens[0]!.id, /^oauth:Salesforce for Outlook:[0-9a-f]{16}$/);
    assert.ok(
      !JSON.stringify(found).includes(String(tokensOf(userId)[0]!.DeleteToken)),
      'no DeleteToken in the discovery',
    );
    assert.ok(
      sandbox.state.requests.every((r) => r === 'GET /services/data/v62.0/query'),
      'only SOQL queries, on API v62.0',
    );
  });

  it('a person without a user is account: null; a pre-SSO user is found by email', async () => {
    assert.deepEqual(await salesforce.discover({ employeeId: 'E9999', email: 'nobody@example.org' }), {
      system: 'salesforce',
      account: null,
      entitlements: [],
      credentials: [],
    });
    const found = await salesforce.discover(subject(EMAIL_ONLY_EMPLOYEE_ID));
    assert.equal(found.account?.id, userIdOf(EMAIL_ONLY_EMPLOYEE_ID));
    assert.equal(
      (await salesforce.discover({ employeeId: EMAIL_ONLY_EMPLOYEE_ID })).account,
      null,
      'no email, no fallback',
    );
    assert.equal((await salesforce.discover(subject(INACTIVE_EMPLOYEE_ID))).account?.disabled, true);
  });

  it('two users with the person’s email, or an email match carrying another FederationIdentifier, is ambiguous', async () => {
    await assert.rejects(
      salesforce.discover(subject(DUPLICATE_EMAIL_EMPLOYEE_ID)),
      failsWith((err) => !err.retryable && err.code === 'ambiguous_identity' && /several users/.test(err.message)),
    );
    await assert.rejects(
      salesforce.discover(subject(FOREIGN_FEDERATION_EMPLOYEE_ID)),
      failsWith(
        (err) =>
          !err.retryable && err.code === 'ambiguous_identity' && /FederationIdentifier "C-1037"/.test(err.message),
      ),
    );
  });

  it('escapes SOQL literals: quotes and backslashes in an email are matched literally', async () => {
    const quoted = "o'brien\\x@example.org";
    sandbox.state.records.User.push({
      Id: '005Dn9999999999AAA',
      Username: 'obrien@example.org',
      Email: quoted,
      FirstName: 'Pat',
      LastName: "O'Brien",
      FederationIdentifier: null,
      IsActive: true,
      ProfileId: null,
    });
    assert.equal((await salesforce.discover({ employeeId: 'E9997', email: quoted })).account?.id, '005Dn9999999999AAA');
    const injection = "x' OR Email != 'y";
    assert.equal(
      (await salesforce.discover({ employeeId: "E9996' OR IsActive = true OR Email = 'z", email: injection })).account,
      null,
    );
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
    assert.match(
      String(result.details.deactivationRefused),
      /FIELD_INTEGRITY_EXCEPTION: You cannot deactivate the Default Workflow User/,
    );
    assert.deepEqual([userOf(DEFAULT_WORKFLOW_EMPLOYEE_ID).IsActive, loginOf(userId).IsFrozen], [true, true]);
    assert.equal(
      (await salesforce.apply(action('disable_login', userId), subject(DEFAULT_WORKFLOW_EMPLOYEE_ID))).outcome,
      'already',
    );
    assert.equal((await salesforce.discover(subject(DEFAULT_WORKFLOW_EMPLOYEE_ID))).account?.disabled, true);

    const enabled = await salesforce.apply(action('enable_login', userId), subject(DEFAULT_WORKFLOW_EMPLOYEE_ID));
    assert.deepEqual([enabled.outcome, enabled.details.unfrozen], ['done', true]);
    assert.deepEqual([userOf(DEFAULT_WORKFLOW_EMPLOYEE_ID).IsActive, loginOf(userId).IsFrozen], [true, false]);
    assert.equal(
      (await salesforce.apply(action('enable_login', userId), subject(DEFAULT_WORKFLOW_EMPLOYEE_ID))).outcome,
      'already',
    );
  });

  it('cancel cannot reactivate without a free licence: non-retryable, saying so; a freeze placed by someone else stays', async () => {
    const userId = userIdOf('E1004');
    assert.equal((await salesforce.apply(action('disable_login', userId), subject('E1004'))).outcome, 'done');
    sandbox.state.licences.total = sandbox.state.records.User.filter((u) => u.IsActive).length; // the freed licence went to someone else
    await assert.rejects(
      salesforce.apply(action('enable_login', userId), subject('E1004')),
      failsWith((err) => !err.retryable && /no free Salesforce licence/.test(err.message)),
    );
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
    assert.ok(
      deleteTokens.every((token) => !JSON.stringify(result.details).includes(token)),
      'no token in the audit details',
    );
    assert.equal(tokensOf(userId).length, 0);
    assert.equal(sandbox.state.requests.filter((r) => r === 'POST /services/oauth2/revoke').length, 2);
    assert.equal((await salesforce.apply(action('revoke_tokens', userId), subject('E1001'))).outcome, 'already');
    assert.deepEqual(
      (await salesforce.discover(subject('E1001'))).credentials.filter((c) => c.kind === 'token'),
      [],
    );
  });

  it('a revocation answered 200 that revoked nothing fails, read back in OauthToken', async () => {
    const userId = userIdOf('E1001');
    sandbox.inject({ revocationsIgnored: true });
    await assert.rejects(
      salesforce.apply(action('revoke_tokens', userId), subject('E1001')),
      failsWith(
        (err) =>
          !err.retryable && err.code === 'salesforce_revoke_ineffective' && /2 OAuth token\(s\)/.test(err.message),
      ),
    );
    assert.equal(tokensOf(userId).length, 2, 'the grants are still there');
  });

  it('two racing revoke_tokens attempts revoke each grant once: the loser counts invalid_token as already', async () => {
    const userId = userIdOf('E1003');
    assert.equal(tokensOf(userId).length, 2);
    sandbox.inject({ latencyMs: 50 }); // both attempts list the grants before either revokes one
    const results = await Promise.all(
      [1, 2].map(() => salesforce.apply(action('revoke_tokens', userId), subject('E1003'))),
    );
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
      assert.equal(
        (await salesforce.apply(action('remove_entitlement', userId, entitlement), subject('E1001'))).outcome,
        'already',
        entitlement.id,
      );
    }
    assert.deepEqual(
      permissionSetsOf(userId).map((p) => p.ownedByProfile),
      [true],
    );
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
    assert.equal(
      (await salesforce.apply(action('transfer_ownership', userId), subject('E1003'))).outcome,
      'not_applicable',
    );
    assert.deepEqual(sandbox.state.requests, []);
    assert.equal(userOf('E1003').IsActive, true);
  });

  it('a burst of 429s: each call fails once, retryable with Retry-After as retryAfterMs; after the burst it succeeds', async () => {
    sandbox.inject({ tooManyRequests: { count: 2, retryAfterSeconds: 7 } });
    for (let i = 1; i <= 2; i++) {
      await assert.rejects(
        salesforce.discover(subject('E1002')),
        failsWith((err) => err.retryable && err.code === 'salesforce_429' && err.retryAfterMs === 7000),
      );
      assert.equal(sandbox.state.requests.length, i, 'jsforce sent the request once, without retrying by itself');
    }
    assert.equal((await salesforce.discover(subject('E1002'))).account?.id, userIdOf('E1002'));
  });

  it('a 5xx is retryable, and a failed DELETE is not retried inside jsforce', async () => {
    sandbox.inject({ serverErrorRate: 1 });
    await assert.rejects(
      salesforce.discover(subject('E1002')),
      failsWith((err) => err.retryable && err.code === 'salesforce_503' && /SERVER_UNAVAILABLE/.test(err.message)),
    );
    assert.equal(sandbox.state.requests.length, 1);

    sandbox.reset();
    sandbox.inject({ serverErrorRate: 0.5 }); // the query passes, the first DELETE fails
    const userId = userIdOf('E1001');
    await assert.rejects(
      salesforce.apply(action('revoke_sessions', userId), subject('E1001')),
      failsWith((err) => err.retryable && err.code === 'salesforce_503'),
    );
    assert.deepEqual(
      sandbox.state.requests.map((r) => r.split(' ')[0]),
      ['GET', 'DELETE'],
    );
    sandbox.inject({});
    assert.equal((await salesforce.apply(action('revoke_sessions', userId), subject('E1001'))).outcome, 'done');
  });

  it('a reset connection or a slow answer is retryable, and the message carries no query (nor its email)', async () => {
    sandbox.inject({ connectionResets: 1 });
    await assert.rejects(
      salesforce.discover(subject('E1002')),
      failsWith(
        (err) => err.retryable && err.code === 'salesforce_unreachable' && !err.message.includes('example.org'),
      ),
    );
    assert.equal(sandbox.state.requests.length, 1);
    assert.equal((await salesforce.discover(subject('E1002'))).account?.id, userIdOf('E1002'));

    sandbox.inject({ latencyMs: 400 });
    await assert.rejects(
      connectorWith({ timeoutMs: 100 }).discover(subject('E1002')),
      failsWith((err) => err.retryable && /no answer within the timeout/.test(err.message)),
    );
  });

  it('an expired or invalid access token is non-retryable and says to issue a new one', async () => {
    const stale = connectorWith({ accessToken: '00DSANDBOX000001!stale-token-123' });
    await assert.rejects(
      stale.discover(subject('E1002')),
      failsWith(
        (err) =>
          !err.retryable &&
          /access token expired or is invalid/.test(err.message) &&
          !err.message.includes('stale-token-123'),
      ),
    );
  });

  it('an integration user without Manage Users gets a non-retryable error naming the permission; nothing changes', async () => {
    const readonly = connectorWith({ accessToken: SANDBOX_SALESFORCE_READONLY_TOKEN });
    const userId = userIdOf('E1005');
    await assert.rejects(
      readonly.apply(action('disable_login', userId), subject('E1005')),
      failsWith(
        (err) =>
          !err.retryable && /INSUFFICIENT_ACCESS_OR_READONLY/.test(err.message) && /"Manage Users"/.test(err.message),
      ),
    );
    await assert.rejects(
      readonly.discover(subject('E1005')),
      failsWith((err) => !err.retryable && /"Manage Users"/.test(err.message)),
    );
    assert.equal(userOf('E1005').IsActive, true);
  });

  it('the exhausted 24-hour API limit is not hot-retried: non-retryable, saying when to retry', async () => {
    sandbox.inject({ apiLimitExhausted: true });
    await assert.rejects(
      salesforce.discover(subject('E1002')),
      failsWith(
        (err) =>
          !err.retryable &&
          err.code === 'salesforce_daily_limit' &&
          /TotalRequests/.test(err.message) &&
          /within 24 hours/.test(err.message),
      ),
    );
  });

  it('settings: the API version defaults to 62.0; plain http is refused except to a local stand-in', () => {
    const parsed = salesforceSystemSchema.parse({
      type: 'salesforce',
      instanceUrl: 'https://acme.my.salesforce.com/',
      accessToken: 'x',
    });
    assert.deepEqual([parsed.apiVersion, parsed.instanceUrl], ['62.0', 'https://acme.my.salesforce.com']);
    assert.equal(
      salesforceSystemSchema.safeParse({
        type: 'salesforce',
        instanceUrl: 'http://acme.my.salesforce.com',
        accessToken: 'x',
      }).success,
      false,
    );
  });

  it('the stand-in speaks Salesforce’s errors: 401 without a token, MALFORMED_QUERY for SOQL it does not parse, faults over HTTP', async () => {
    const unauthenticated = await fetch(
      `${sandbox.url}/services/data/v62.0/query?q=${encodeURIComponent('SELECT Id FROM User')}`,
    );
    assert.equal(unauthenticated.status, 401);
    assert.deepEqual(await unauthenticated.json(), [
      { message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID', fields: [] },
    ]);
    const headers = { authorization: `Bearer ${SANDBOX_SALESFORCE_TOKEN}` };
    const orQuery = await fetch(
      `${sandbox.url}/services/data/v62.0/query?q=${encodeURIComponent("SELECT Id FROM User WHERE Email = 'a' OR Email = 'b'")}`,
      { headers },
    );
    assert.equal(orQuery.status, 400);
    assert.equal(((await orQuery.json()) as { errorCode: string }[])[0]?.errorCode, 'MALFORMED_QUERY');
    assert.match(orQuery.headers.get('sforce-limit-info') ?? '', /^api-usage=\d+\/15000$/);
    const oldVersion = await fetch(`${sandbox.url}/services/data/v50.0/query?q=x`, { headers });
    assert.equal(oldVersion.status, 404, 'a client left on jsforce’s default API version is noticed');

    const steer = await fetch(`${sandbox.url}/_sandbox/faults`, {
      method: 'POST',
      body: JSON.stringify({ tooManyRequests: { count: 1, retryAfterSeconds: 3 } }),
    });
    assert.equal(steer.status, 200);
    const limited = await fetch(`${sandbox.url}/services/data/v62.0/`, { headers });
    assert.deepEqual([limited.status, limited.headers.get('retry-after')], [429, '3']);
    const state = (await (await fetch(`${sandbox.url}/_sandbox/state`)).json()) as { records: { User: unknown[] } };
    assert.equal(state.records.User.length, sandbox.state.records.User.length);
  });

  describe('OAuth client credentials flow', () => {
    const TOKEN_REQUEST = 'POST /services/oauth2/token';
    const QUERY = 'GET /services/data/v62.0/query';

    it('discovers and revokes a person’s access with client credentials only, on one session', async () => {
      const salesforceApp = clientCredentialsConnector();
      const userId = userIdOf('E1003');
      const found = await salesforceApp.discover(subject('E1003'));
      assert.deepEqual(found.account, { id: userId, disabled: false });
      assert.ok(found.entitlements.length > 0 && found.credentials.length > 0);

      const applied = [
        await salesforceApp.apply(action('disable_login', userId), subject('E1003')),
        await salesforceApp.apply(action('revoke_sessions', userId), subject('E1003')),
        await salesforceApp.apply(action('revoke_tokens', userId), subject('E1003')),
      ];
      for (const entitlement of found.entitlements)
        applied.push(await salesforceApp.apply(action('remove_entitlement', userId, entitlement), subject('E1003')));
      assert.ok(
        applied.every((r) => r.outcome === 'done'),
        JSON.stringify(applied.map((r) => r.outcome)),
      );

      assert.equal(userOf('E1003').IsActive, false);
      assert.deepEqual([sessionsOf(userId).length, tokensOf(userId).length], [0, 0]);
      assert.deepEqual(
        permissionSetsOf(userId).map((p) => p.ownedByProfile),
        [true],
        'only the profile’s own assignment is left',
      );
      assert.equal(sandbox.state.oauth.tokensIssued, 1, 'one session served every call');
      assert.equal(sandbox.state.requests[0], TOKEN_REQUEST, 'the session was requested before the first call');
      assert.deepEqual(
        issuedSessions().map((t) => t.clientId),
        [SANDBOX_SALESFORCE_CLIENT_ID],
      );
      assert.deepEqual((await salesforceApp.discover(subject('E1003'))).account, { id: userId, disabled: true });
    });

    it('a session that expires between two calls is renewed and the call succeeds', async () => {
      const salesforceApp = clientCredentialsConnector();
      const userId = userIdOf('E1002');
      assert.equal((await salesforceApp.discover(subject('E1002'))).account?.id, userId);
      assert.equal(sandbox.state.oauth.tokensIssued, 1);
      const [first] = Object.keys(sandbox.state.accessTokens).filter(
        (key) => sandbox.state.accessTokens[key]!.clientId,
      );

      sandbox.expireSessions(); // the days between two stages of an offboarding
      const before = sandbox.state.requests.length;
      const disabled = await salesforceApp.apply(action('disable_login', userId), subject('E1002'));
      assert.deepEqual([disabled.outcome, disabled.details.deactivated], ['done', true]);
      assert.equal(userOf('E1002').IsActive, false);
      assert.equal(sandbox.state.oauth.tokensIssued, 2, 'a second session was issued');
      assert.deepEqual(
        sandbox.state.requests.slice(before),
        [QUERY, TOKEN_REQUEST, QUERY, `PATCH /services/data/v62.0/sobjects/User/${userId}`],
        'refused once, renewed, repeated by jsforce',
      );
      assert.equal(issuedSessions().length, 1);
      assert.ok(!Object.hasOwn(sandbox.state.accessTokens, first!), 'the expired session is gone');

      sandbox.expireSessions();
      const found = await Promise.all(['E1004', 'E1005'].map((id) => salesforceApp.discover(subject(id))));
      assert.deepEqual(
        found.map((d) => d.account?.id),
        [userIdOf('E1004'), userIdOf('E1005')],
      );
      assert.equal(sandbox.state.oauth.tokensIssued, 3, 'calls refused at the same time share one renewal');
    });

    it('a renewed session that is refused too fails non-retryably instead of renewing in a loop; the next call renews again', async () => {
      const salesforceApp = clientCredentialsConnector();
      sandbox.state.oauth.sessionTimeoutMs = 0; // every session is over as soon as it is issued
      await assert.rejects(
        salesforceApp.discover(subject('E1002')),
        failsWith(
          (err) =>
            !err.retryable &&
            err.code === 'salesforce_session_refused' &&
            /refused as well/.test(err.message) &&
            /run-as user/.test(err.message),
        ),
      );
      assert.equal(sandbox.state.oauth.tokensIssued, 2, 'the first session and one renewal, no more');
      assert.deepEqual(sandbox.state.requests, [TOKEN_REQUEST, QUERY, TOKEN_REQUEST, QUERY]);

      sandbox.state.oauth.sessionTimeoutMs = 60_000;
      assert.equal((await salesforceApp.discover(subject('E1002'))).account?.id, userIdOf('E1002'));
      assert.equal(sandbox.state.oauth.tokensIssued, 3);
    });

    it('a wrong client secret or id fails non-retryably, saying what to fix, without the secret', async () => {
      const wrongSecret = 'wrong-consumer-secret-7c1e9a';
      await assert.rejects(
        clientCredentialsConnector(wrongSecret).discover(subject('E1002')),
        failsWith(
          (err) =>
            !err.retryable &&
            err.code === 'salesforce_invalid_client' &&
            /clientCredentials\.clientSecret/.test(err.message) &&
            /Consumer Secret/.test(err.message) &&
            /run-as user/.test(err.message) &&
            !err.message.includes(wrongSecret) &&
            !err.message.includes(SANDBOX_SALESFORCE_CLIENT_SECRET),
        ),
      );
      assert.deepEqual(sandbox.state.requests, [TOKEN_REQUEST], 'no API call without a session');
      assert.equal(sandbox.state.oauth.tokensIssued, 0);

      await assert.rejects(
        clientCredentialsConnector(SANDBOX_SALESFORCE_CLIENT_SECRET, '3MVG9NOT.A.KNOWN.APP').discover(subject('E1002')),
        failsWith(
          (err) =>
            !err.retryable &&
            err.code === 'salesforce_invalid_client_id' &&
            /Consumer Key/.test(err.message) &&
            /run-as user/.test(err.message) &&
            !err.message.includes(SANDBOX_SALESFORCE_CLIENT_SECRET),
        ),
      );
      assert.equal(userOf('E1002').IsActive, true);
    });

    it('the token endpoint unreachable or answering 5xx is retryable, for the first session and for a renewal', async () => {
      const salesforceApp = clientCredentialsConnector();
      sandbox.inject({ serverErrorRate: 1 });
      await assert.rejects(
        salesforceApp.discover(subject('E1002')),
        failsWith((err) => err.retryable && err.code === 'salesforce_503' && /getting a session/.test(err.message)),
      );
      sandbox.inject({ connectionResets: 1 });
      await assert.rejects(
        salesforceApp.discover(subject('E1002')),
        failsWith(
          (err) => err.retryable && err.code === 'salesforce_unreachable' && /token endpoint/.test(err.message),
        ),
      );
      assert.deepEqual(sandbox.state.requests, [TOKEN_REQUEST, TOKEN_REQUEST]);
      assert.equal((await salesforceApp.discover(subject('E1002'))).account?.id, userIdOf('E1002'));

      sandbox.expireSessions();
      sandbox.inject({ serverErrorRate: 0.5 }); // the refused query passes, the renewal gets the 503
      const before = sandbox.state.requests.length;
      await assert.rejects(
        salesforceApp.discover(subject('E1002')),
        failsWith((err) => err.retryable && err.code === 'salesforce_503' && /getting a session/.test(err.message)),
      );
      assert.deepEqual(sandbox.state.requests.slice(before), [QUERY, TOKEN_REQUEST]);
      sandbox.inject({});
      assert.equal((await salesforceApp.discover(subject('E1002'))).account?.id, userIdOf('E1002'));
    });

    it('config: exactly one of accessToken and clientCredentials, refused with a clear message otherwise', () => {
      const base = { type: 'salesforce', instanceUrl: 'https://acme.my.salesforce.com' };
      const clientCredentials = { clientId: '3MVG9abc', clientSecret: 's3cr3t' };
      const issuesOf = (input: Record<string, unknown>) =>
        checkedSchema.safeParse(input).error?.issues.map((i) => ({ path: i.path, message: i.message }));

      const neither = issuesOf(base);
      assert.equal(neither?.length, 1);
      assert.deepEqual(neither[0]!.path, ['accessToken']);
      assert.match(
        neither[0]!.message,
        /no credentials: give clientCredentials \(\{ clientId, clientSecret \}.*or an accessToken/,
      );
      const both = issuesOf({ ...base, accessToken: 'x', clientCredentials });
      assert.deepEqual(
        both?.map((i) => i.path),
        [['accessToken']],
      );
      assert.match(both[0]!.message, /either clientCredentials or accessToken, not both/);
      assert.deepEqual(checkedSchema.parse({ ...base, clientCredentials }).clientCredentials, clientCredentials);
      assert.equal(checkedSchema.parse({ ...base, accessToken: 'x' }).accessToken, 'x');
      assert.equal(
        checkedSchema.safeParse({ ...base, clientCredentials: { clientId: '3MVG9abc', clientSecret: '' } }).success,
        false,
      );

      // The connector refuses too, and the plain schema can still be extended (the worker's config does).
      assert.throws(
        () => createSalesforceConnector('crm', salesforceSystemSchema.parse(base)),
        /Salesforce system "crm": no credentials/,
      );
      assert.throws(
        () =>
          createSalesforceConnector(
            'crm',
            salesforceSystemSchema.parse({ ...base, accessToken: 'x', clientCredentials }),
          ),
        /not both/,
      );
      assert.doesNotThrow(() =>
        salesforceSystemSchema
          .extend({ accessToken: salesforceSystemSchema.shape.accessToken })
          .superRefine(salesforceAuthIssues),
      );
    });

    it('the stand-in’s token endpoint speaks Salesforce’s format: form or Basic auth, its errors, sessions that time out', async () => {
      const tokenRequest = (form: Record<string, string>, headers: Record<string, string> = {}) =>
        fetch(`${sandbox.url}/services/oauth2/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
          body: new URLSearchParams(form),
        });
      const query = (accessToken: string) =>
        fetch(`${sandbox.url}/services/data/v62.0/query?q=${encodeURIComponent('SELECT Id FROM User LIMIT 1')}`, {
          headers: { authorization: `Bearer ${accessToken}` },
        });

      const issued = await tokenRequest({
        grant_type: 'client_credentials',
        client_id: SANDBOX_SALESFORCE_CLIENT_ID,
        client_secret: SANDBOX_SALESFORCE_CLIENT_SECRET,
      });
      assert.equal(issued.status, 200);
      const body = (await issued.json()) as Record<string, string>;
      assert.deepEqual(Object.keys(body).sort(), [
        'access_token',
        'id',
        'instance_url',
        'issued_at',
        'scope',
        'signature',
        'token_type',
      ]);
      assert.equal(body.token_type, 'Bearer');
      assert.equal(body.instance_url, sandbox.url);
      const integrationUserId = sandbox.state.accessTokens[SANDBOX_SALESFORCE_TOKEN]!.userId;
      assert.match(body.id!, new RegExp(`^${sandbox.url}/id/00D\\w+/${integrationUserId}$`));
      assert.ok(Math.abs(Number(body.issued_at) - Date.now()) < 60_000, 'issued_at in epoch milliseconds');
      assert.equal((await query(body.access_token!)).status, 200);

      const basic = `Basic ${Buffer.from(`${SANDBOX_SALESFORCE_CLIENT_ID}:${SANDBOX_SALESFORCE_CLIENT_SECRET}`).toString('base64')}`;
      assert.equal((await tokenRequest({ grant_type: 'client_credentials' }, { authorization: basic })).status, 200);
      assert.equal(sandbox.state.oauth.tokensIssued, 2);

      const refusals = [
        [
          {
            grant_type: 'password',
            client_id: SANDBOX_SALESFORCE_CLIENT_ID,
            client_secret: SANDBOX_SALESFORCE_CLIENT_SECRET,
          },
          { error: 'unsupported_grant_type', error_description: 'grant type not supported' },
        ],
        [
          { grant_type: 'client_credentials', client_id: 'nobody', client_secret: SANDBOX_SALESFORCE_CLIENT_SECRET },
          { error: 'invalid_client_id', error_description: 'client identifier invalid' },
        ],
        [
          { grant_type: 'client_credentials', client_id: SANDBOX_SALESFORCE_CLIENT_ID, client_secret: 'nope' },
          { error: 'invalid_client', error_description: 'invalid client credentials' },
        ],
      ] as const;
      for (const [form, expected] of refusals) {
        const refused = await tokenRequest(form);
        assert.deepEqual([refused.status, await refused.json()], [400, expected]);
      }
      assert.equal(sandbox.state.oauth.tokensIssued, 2);

      // Sessions time out without use; an expired one is answered like any bad session.
      const expiredAnswer = [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID', fields: [] }];
      sandbox.state.oauth.sessionTimeoutMs = 40;
      await sleep(80);
      const expired = await query(body.access_token!);
      assert.deepEqual([expired.status, await expired.json()], [401, expiredAnswer]);
      assert.equal((await query(SANDBOX_SALESFORCE_TOKEN)).status, 200, 'the seeded tokens do not expire');

      sandbox.state.oauth.sessionTimeoutMs = 60_000;
      const fresh = (
        (await (await tokenRequest({ grant_type: 'client_credentials' }, { authorization: basic })).json()) as {
          access_token: string;
        }
      ).access_token;
      assert.equal((await fetch(`${sandbox.url}/_sandbox/expire-sessions`, { method: 'POST' })).status, 204);
      const ended = await query(fresh);
      assert.deepEqual([ended.status, await ended.json()], [401, expiredAnswer]);
    });

    it('the stand-in’s session timeout is a start option, 2 hours by default', async () => {
      assert.equal(sandbox.state.oauth.sessionTimeoutMs, 2 * 60 * 60 * 1000);
      const short = await startSalesforceSandbox({ sessionTimeoutMs: 250 }); // far above the gaps between one discovery's requests
      try {
        const salesforceApp = createSalesforceConnector(
          'salesforce',
          checkedSchema.parse({
            type: 'salesforce',
            instanceUrl: short.url,
            clientCredentials: {
              clientId: SANDBOX_SALESFORCE_CLIENT_ID,
              clientSecret: SANDBOX_SALESFORCE_CLIENT_SECRET,
            },
          }),
        );
        assert.equal((await salesforceApp.discover(subject('E1002'))).account !== null, true);
        await sleep(400);
        assert.equal((await salesforceApp.discover(subject('E1002'))).account !== null, true);
        assert.equal(short.state.oauth.tokensIssued, 2);
        short.reset();
        assert.equal(short.state.oauth.sessionTimeoutMs, 250, 'reset keeps the option');
      } finally {
        await short.stop();
      }
    });
  });
});
