/**
 * The Google Workspace connector (@googleapis/admin, a service account with domain-wide
 * delegation) against the local stand-in of the Admin SDK and Google's token endpoint: discovery
 * and identity resolution, each action and its idempotency, the Drive hand-over, cancel, and how
 * failures are classified — asserted in the stand-in's state.
 */
import assert from 'node:assert/strict';
import { sign } from 'node:crypto';
import { MockActivityEnvironment } from '@temporalio/testing';
import type { AuditStore } from '../activities/audit.js';
import { createActivities } from '../activities/index.js';
import {
  createGoogleWorkspaceConnector,
  googleWorkspaceConnector,
  googleWorkspaceSystemSchema,
} from '../activities/connectors/google-workspace.js';
import { ConnectorError, type ApplyContext, type Connector } from '../activities/connectors/types.js';
import type { Action, Entitlement } from '../model/plan.js';
import type { Policy } from '../model/policy.js';
import { samplePerson } from '../sandbox/org.js';
import {
  ALL_DELEGATED_SCOPES,
  GOOGLE_AMBIGUOUS_EMPLOYEE_ID,
  GOOGLE_MISSING_EMPLOYEE_ID,
  GOOGLE_SANDBOX_ADMIN,
  GOOGLE_SANDBOX_READONLY_ADMIN,
  GOOGLE_TOKEN_AUDIENCE,
  googleUserOf,
  startGoogleWorkspaceSandbox,
  type GoogleWorkspaceSandbox,
} from '../sandbox/google-workspace.js';

describe('Google Workspace connector (@googleapis/admin against the Admin SDK stand-in)', () => {
  let sandbox: GoogleWorkspaceSandbox;
  let google: Connector;
  const connectorWith = (settings: Record<string, unknown> = {}) =>
    createGoogleWorkspaceConnector(
      'google',
      googleWorkspaceSystemSchema.parse({
        type: 'google_workspace',
        adminSubject: GOOGLE_SANDBOX_ADMIN,
        serviceAccountKey: sandbox.serviceAccountKey,
        rootUrl: sandbox.url,
        tokenUrl: sandbox.tokenUrl,
        transferWaitMs: 0,
        ...settings,
      }),
    );

  before(async () => {
    sandbox = await startGoogleWorkspaceSandbox();
    google = connectorWith();
  });
  after(async () => {
    await sandbox?.stop();
  });
  beforeEach(() => sandbox.reset());

  const subject = (employeeId: string) => ({ employeeId, email: samplePerson(employeeId).email });
  const action = (kind: Action['kind'], accountId: string, target?: Entitlement): Action => ({
    id: `t/${kind}`,
    stage: 't',
    system: 'google',
    kind,
    accountId,
    ...(target ? { target } : {}),
  });
  const userOf = (employeeId: string) => googleUserOf(sandbox.state, employeeId)!;
  const idOf = (employeeId: string) => userOf(employeeId).id;
  const groupsOf = (userId: string) =>
    Object.values(sandbox.state.groups)
      .filter((g) => g.members.includes(userId))
      .map((g) => g.email);
  const rolesOf = (userId: string) =>
    Object.values(sandbox.state.roleAssignments)
      .filter((a) => a.assignedTo === userId)
      .map((a) => sandbox.state.roles[a.roleId]!.roleName);
  const filesOwnedBy = (userId: string) => sandbox.state.driveFiles.filter((f) => f.ownerId === userId);
  const failsWith = (check: (err: ConnectorError) => boolean) => (err: unknown) =>
    err instanceof ConnectorError && check(err);
  /** As the worker gives it: the action was first scheduled now. */
  const context = (): ApplyContext => ({
    offboardingId: 'offboarding-test',
    runId: 'run',
    attempt: 1,
    firstScheduledAtMs: Date.now(),
  });

  it('discovers the user by external id: groups, admin roles, a session entry, OAuth tokens, app passwords, backup codes, email and manager', async () => {
    const userId = idOf('E1001');
    const found = await google.discover(subject('E1001'));
    assert.deepEqual(found.account, { id: userId, disabled: false });
    assert.deepEqual(found.entitlements.map((e) => e.id).sort(), [
      'admin-role:_GROUPS_ADMIN_ROLE',
      'group:developers@example.org',
      'group:domain-admins@example.org',
      'group:finance@example.org',
      'group:prod-access@example.org',
      'group:sudoers@example.org',
      'group:vpn-users@example.org',
    ]);
    assert.deepEqual(found.credentials.map((c) => [c.id, c.kind]).sort(), [
      [`${userId}/backup-codes`, 'key'],
      [`${userId}/sessions`, 'session'],
      ['app-password:101', 'key'],
      ['oauth-token:292824132082.apps.googleusercontent.com', 'token'],
    ]);
    assert.deepEqual(found.identity, { email: samplePerson('E1001').email, managerEmail: 'keeper@example.org' });
    const codes = sandbox.state.backupCodes[userId]!;
    assert.ok(codes.length > 0);
    assert.ok(!codes.some((code) => JSON.stringify(found).includes(code)), 'no backup code leaves the connector');
    assert.equal(google.providesIdentity, true);
  });

  it('a person with no Google user is account: null; by email, an alias finds the user too', async () => {
    const none = await google.discover(subject(GOOGLE_MISSING_EMPLOYEE_ID));
    assert.deepEqual([none.account, none.entitlements, none.credentials], [null, [], []]);

    const byEmail = connectorWith({ findBy: 'email' });
    assert.equal((await byEmail.discover(subject('E1002'))).account?.id, idOf('E1002'));
    userOf('E1003').aliases = ['old.name@example.org'];
    assert.equal(
      (await byEmail.discover({ employeeId: 'E1003', email: 'old.name@example.org' })).account?.id,
      idOf('E1003'),
    );
    assert.equal((await byEmail.discover({ employeeId: 'E1003' })).account, null, 'no email: nothing to look up');
  });

  it('two users carrying one external id is ambiguous_identity, naming both, never a guess', async () => {
    await assert.rejects(
      google.discover(subject(GOOGLE_AMBIGUOUS_EMPLOYEE_ID)),
      failsWith(
        (err) =>
          !err.retryable &&
          err.code === 'ambiguous_identity' &&
          err.message.includes(samplePerson(GOOGLE_AMBIGUOUS_EMPLOYEE_ID).email) &&
          err.message.includes('.old@example.org'),
      ),
    );
  });

  it('disable_login suspends the user; again is already; enable_login (cancel) unsuspends it; again is already', async () => {
    const userId = idOf('E1002');
    const disabled = await google.apply(action('disable_login', userId), subject('E1002'));
    assert.equal(disabled.outcome, 'done');
    assert.equal(userOf('E1002').suspended, true);
    assert.equal((await google.apply(action('disable_login', userId), subject('E1002'))).outcome, 'already');
    assert.equal((await google.discover(subject('E1002'))).account?.disabled, true);

    assert.equal((await google.apply(action('enable_login', userId), subject('E1002'))).outcome, 'done');
    assert.equal(userOf('E1002').suspended, false);
    assert.equal((await google.apply(action('enable_login', userId), subject('E1002'))).outcome, 'already');
  });

  it('revoke_sessions signs the user out and says that Google cannot read it back; a suspended user has no session entry', async () => {
    const userId = idOf('E1002');
    const first = await google.apply(action('revoke_sessions', userId), subject('E1002'));
    assert.equal(first.outcome, 'done');
    assert.match(String(first.details.note), /cannot be read back/);
    assert.equal(sandbox.state.signOuts[userId], 1);
    // Nothing to read back: a repeat signs out again (harmless) and says so again.
    assert.equal((await google.apply(action('revoke_sessions', userId), subject('E1002'))).outcome, 'done');
    assert.equal(sandbox.state.signOuts[userId], 2);

    await google.apply(action('disable_login', userId), subject('E1002'));
    const after = await google.discover(subject('E1002'));
    assert.deepEqual(
      after.credentials.filter((c) => c.kind === 'session'),
      [],
    );
  });

  it('revoke_tokens deletes OAuth tokens and app passwords and invalidates backup codes; again is already', async () => {
    const userId = idOf('E1004');
    const result = await google.apply(action('revoke_tokens', userId), subject('E1004'));
    assert.equal(result.outcome, 'done');
    assert.deepEqual(result.details, {
      userId,
      oauthClients: ['292824132082.apps.googleusercontent.com'],
      appPasswords: [104],
      backupCodesInvalidated: true,
    });
    assert.deepEqual(
      [sandbox.state.tokens[userId], sandbox.state.asps[userId], sandbox.state.backupCodes[userId]],
      [[], [], []],
    );
    assert.equal(sandbox.state.tokens[idOf('E1003')]!.length, 1, 'other people’s tokens stay');
    assert.equal((await google.apply(action('revoke_tokens', userId), subject('E1004'))).outcome, 'already');
    assert.deepEqual(
      (await google.discover(subject('E1004'))).credentials.filter((c) => c.kind !== 'session'),
      [],
    );
  });

  it('remove_entitlement takes the user out of a group and off an admin role; again is already', async () => {
    const userId = idOf('E1001');
    const group = { id: 'group:domain-admins@example.org', kind: 'group' };
    assert.equal((await google.apply(action('remove_entitlement', userId, group), subject('E1001'))).outcome, 'done');
    assert.ok(!groupsOf(userId).includes('domain-admins@example.org'));
    assert.ok(groupsOf(userId).includes('finance@example.org'), 'the other groups stay');
    assert.equal(
      (await google.apply(action('remove_entitlement', userId, group), subject('E1001'))).outcome,
      'already',
    );

    const role = { id: 'admin-role:_GROUPS_ADMIN_ROLE', kind: 'admin_role' };
    assert.deepEqual(rolesOf(userId), ['_GROUPS_ADMIN_ROLE']);
    assert.equal((await google.apply(action('remove_entitlement', userId, role), subject('E1001'))).outcome, 'done');
    assert.deepEqual(rolesOf(userId), []);
    assert.equal((await google.apply(action('remove_entitlement', userId, role), subject('E1001'))).outcome, 'already');
    assert.deepEqual(rolesOf(idOf('E1004')), ['_GROUPS_ADMIN_ROLE'], 'other people’s roles stay');
  });

  it('transfer_ownership hands every Drive file to the manager through the Data Transfer API; again is already', async () => {
    const userId = idOf('E1002');
    const keeper = idOf('E1000');
    assert.equal(filesOwnedBy(userId).length, 2);
    const result = await google.apply(action('transfer_ownership', userId), subject('E1002'), context());
    assert.equal(result.outcome, 'done');
    assert.equal(result.details.newOwner, 'keeper@example.org');
    assert.deepEqual(filesOwnedBy(userId), [], 'private and shared files both');
    const transfers = Object.values(sandbox.state.transfers);
    assert.deepEqual(
      transfers.map((t) => [t.oldOwnerUserId, t.newOwnerUserId, t.applicationDataTransfers[0]!.applicationId]),
      [[userId, keeper, '55656082996']],
    );
    assert.equal(transfers[0]!.overallTransferStatusCode, 'completed');

    const again = await google.apply(action('transfer_ownership', userId), subject('E1002'), context());
    assert.equal(again.outcome, 'already');
    assert.equal(Object.keys(sandbox.state.transfers).length, 1, 'no second transfer');
  });

  it('a transfer still in progress is retryable and the retry waits for the same transfer; done once it completes', async () => {
    const userId = idOf('E1002');
    const scheduled = context();
    sandbox.inject({ holdTransfers: true });
    for (let attempt = 1; attempt <= 2; attempt++)
      await assert.rejects(
        google.apply(action('transfer_ownership', userId), subject('E1002'), { ...scheduled, attempt }),
        failsWith((err) => err.retryable && err.code === 'google_transfer_in_progress'),
      );
    assert.equal(Object.keys(sandbox.state.transfers).length, 1, 'one transfer, however many attempts');
    assert.equal(filesOwnedBy(userId).length, 2);
    sandbox.inject({});
    const done = await google.apply(action('transfer_ownership', userId), subject('E1002'), {
      ...scheduled,
      attempt: 3,
    });
    assert.equal(done.outcome, 'done', 'the transfer this action asked for');
    assert.deepEqual(filesOwnedBy(userId), []);
  });

  it('without a manager relation the files go to transferFallbackOwner; with neither, an operator is asked', async () => {
    const userId = idOf('E1002');
    delete userOf('E1002').relations;
    await assert.rejects(
      google.apply(action('transfer_ownership', userId), subject('E1002'), context()),
      failsWith(
        (err) =>
          !err.retryable && err.code === 'google_no_transfer_recipient' && /transferFallbackOwner/.test(err.message),
      ),
    );
    const withFallback = connectorWith({ transferFallbackOwner: samplePerson('E1003').email });
    const result = await withFallback.apply(action('transfer_ownership', userId), subject('E1002'), context());
    assert.equal(result.outcome, 'done');
    assert.equal(filesOwnedBy(idOf('E1003')).length, 4);
  });

  it('delete_account hands the Drive files over first, then deletes the user; again is already', async () => {
    const userId = idOf('E1002');
    const deleted = await google.apply(action('delete_account', userId), subject('E1002'), context());
    assert.equal(deleted.outcome, 'done');
    assert.ok(deleted.details.driveTransfer, 'the transfer the deletion needed');
    assert.equal(sandbox.state.users[userId], undefined);
    assert.ok(sandbox.state.deletedUsers[userId]);
    assert.equal(filesOwnedBy(idOf('E1000')).length, 4, 'the keeper’s own two and the person’s two');
    assert.equal((await google.apply(action('delete_account', userId), subject('E1002'))).outcome, 'already');
    assert.equal((await google.discover(subject('E1002'))).account, null);

    // Once transferred, deletion asks for no second transfer.
    const other = idOf('E1003');
    await google.apply(action('transfer_ownership', other), subject('E1003'), context());
    const second = await google.apply(action('delete_account', other), subject('E1003'), context());
    assert.equal(second.details.driveTransfer, undefined);
    assert.equal(Object.keys(sandbox.state.transfers).length, 2);
  });

  it('enable_login of a deleted user fails non-retryably, saying how to restore it', async () => {
    const userId = idOf('E1002');
    await google.apply(action('delete_account', userId), subject('E1002'), context());
    await assert.rejects(
      google.apply(action('enable_login', userId), subject('E1002')),
      failsWith((err) => !err.retryable && err.code === 'account_gone' && /undelete/.test(err.message)),
    );
  });

  it('rate limits: a 429 with Retry-After waits that long; without one (Google sends none) and a 403 userRateLimitExceeded wait rateLimitWaitMs', async () => {
    sandbox.inject({ rateLimited: { count: 1, status: 429, retryAfterSeconds: 7 } });
    await assert.rejects(
      google.discover(subject('E1002')),
      failsWith((err) => err.retryable && err.code === 'google_rate_limited' && err.retryAfterMs === 7000),
    );
    sandbox.inject({ rateLimited: { count: 1, status: 429 } });
    await assert.rejects(
      google.discover(subject('E1002')),
      failsWith((err) => err.retryable && err.code === 'google_rate_limited' && err.retryAfterMs === 30_000),
    );
    sandbox.inject({ rateLimited: { count: 2, status: 403, reason: 'userRateLimitExceeded' } });
    const quick = connectorWith({ rateLimitWaitMs: 1_500 });
    for (let i = 0; i < 2; i++)
      await assert.rejects(
        quick.apply(action('disable_login', idOf('E1002')), subject('E1002')),
        failsWith((err) => err.retryable && err.code === 'google_rate_limited' && err.retryAfterMs === 1_500),
      );
    // After the burst the same call succeeds: nothing was changed by the refused ones.
    assert.equal(userOf('E1002').suspended, false);
    assert.equal((await quick.apply(action('disable_login', idOf('E1002')), subject('E1002'))).outcome, 'done');
    assert.equal(userOf('E1002').suspended, true);
  });

  it('429s without Retry-After are waited out within one activity attempt (rateLimitWaitMs each), and the action done', async () => {
    const quick = connectorWith({ rateLimitWaitMs: 300 });
    const activities = createActivities({
      // applyAction uses neither the policy nor the audit store.
      policy: {} as Policy,
      audit: {} as AuditStore,
      notify: async () => ({ delivered: [] }),
      connectors: new Map([['google', quick]]),
      callTimeoutMs: 10_000,
      heartbeatEveryMs: 50,
    });
    const userId = idOf('E1002');
    await quick.discover(subject('E1002')); // tokens first, so that the faults hit the API calls
    sandbox.inject({ rateLimited: { count: 2, status: 429 } });
    const env = new MockActivityEnvironment();
    const started = Date.now();
    const result = (await env.run(activities.applyAction, {
      action: action('disable_login', userId),
      subject: subject('E1002'),
    })) as { outcome: string; attempt: number };
    const took = Date.now() - started;
    assert.deepEqual([result.outcome, result.attempt], ['done', 1]);
    assert.ok(took >= 500 && took < 10_000, `answered after ${took} ms, expected two 300 ms pauses first`);
    assert.equal(userOf('E1002').suspended, true);
  });

  it('the client library does not retry by itself: one request per call, a 5xx and a reset connection are retryable', async () => {
    sandbox.inject({ serverErrorRate: 1 });
    const before = sandbox.state.requests.length;
    await assert.rejects(
      google.apply(action('disable_login', idOf('E1002')), subject('E1002')),
      failsWith((err) => err.retryable && err.code === 'google_http_503'),
    );
    assert.equal(sandbox.state.requests.length - before, 1, 'one GET, not retried inside gaxios');
    sandbox.inject({ connectionResets: 1 });
    await assert.rejects(
      google.discover(subject('E1002')),
      failsWith((err) => err.retryable && err.code === 'google_unreachable'),
    );
    // A slow answer is cut off by timeoutMs, retryably (the first discover gets the tokens before the fault).
    const impatient = connectorWith({ timeoutMs: 200 });
    await impatient.discover(subject('E1002'));
    sandbox.inject({ latencyMs: 1_000 });
    await assert.rejects(
      impatient.discover(subject('E1002')),
      failsWith((err) => err.retryable && err.code === 'google_unreachable'),
    );
    // The token request is bounded too: the API is never asked.
    const sent = sandbox.state.requests.length;
    await assert.rejects(
      connectorWith({ timeoutMs: 200 }).discover(subject('E1002')),
      failsWith((err) => err.retryable && err.code === 'google_unreachable'),
    );
    assert.deepEqual(sandbox.state.requests.slice(sent), ['POST /token']);
  });

  it('the stand-in’s control endpoints: faults over HTTP answer in Google’s error shape, state is readable', async () => {
    const injected = await fetch(`${sandbox.url}_sandbox/faults`, {
      method: 'POST',
      body: JSON.stringify({ rateLimited: { count: 1, status: 429 } }),
    });
    assert.equal(injected.status, 200);
    const limited = await fetch(`${sandbox.url}admin/directory/v1/users?customer=my_customer`);
    const body = (await limited.json()) as { error: { code: number; errors: { domain: string; reason: string }[] } };
    assert.deepEqual(
      [limited.status, limited.headers.get('retry-after'), body.error.code, body.error.errors[0]],
      [429, null, 429, { message: 'Rate Limit Exceeded', domain: 'usageLimits', reason: 'rateLimitExceeded' }],
    );
    const unauthenticated = await fetch(`${sandbox.url}admin/directory/v1/users?customer=my_customer`);
    assert.equal(unauthenticated.status, 401);
    const read = (await (await fetch(`${sandbox.url}_sandbox/state`)).json()) as { customerId: string };
    assert.equal(read.customerId, sandbox.state.customerId);
    assert.equal(
      (await fetch(`${sandbox.url}_sandbox/faults`, { method: 'POST', body: '{"latencyMs":-1}' })).status,
      400,
    );
  });

  it('a scope missing from the delegation is refused at the token endpoint: non-retryable, naming the scope; nothing changes', async () => {
    const security = 'https://www.googleapis.com/auth/admin.directory.user.security';
    sandbox.state.delegatedScopes = ALL_DELEGATED_SCOPES.filter((s) => s !== security);
    const fresh = connectorWith();
    const userId = idOf('E1002');
    await assert.rejects(
      fresh.apply(action('revoke_tokens', userId), subject('E1002')),
      failsWith(
        (err) =>
          !err.retryable &&
          err.code === 'google_missing_scope' &&
          err.message.includes(security) &&
          err.message.includes('Domain-wide delegation'),
      ),
    );
    assert.equal(sandbox.state.tokens[userId]!.length, 1);
    // The other scopes still work: suspension needs only admin.directory.user.
    assert.equal((await fresh.apply(action('disable_login', userId), subject('E1002'))).outcome, 'done');
  });

  it('an admin who may only read gets 403 forbidden: non-retryable, naming the privilege; nothing changes', async () => {
    const auditor = connectorWith({ adminSubject: GOOGLE_SANDBOX_READONLY_ADMIN });
    const userId = idOf('E1002');
    assert.equal((await auditor.discover(subject('E1002'))).account?.id, userId, 'reading is allowed');
    await assert.rejects(
      auditor.apply(action('disable_login', userId), subject('E1002')),
      failsWith(
        (err) =>
          !err.retryable &&
          err.code === 'google_forbidden' &&
          err.message.includes(GOOGLE_SANDBOX_READONLY_ADMIN) &&
          /Users \(Read, Update, Delete\)/.test(err.message),
      ),
    );
    assert.equal(userOf('E1002').suspended, false);
  });

  it('an adminSubject that is no user, or a wrong key, is refused non-retryably without the key in the message', async () => {
    const nobody = connectorWith({ adminSubject: 'nobody@example.org' });
    await assert.rejects(
      nobody.discover(subject('E1002')),
      failsWith((err) => !err.retryable && err.code === 'google_bad_subject' && /nobody@example.org/.test(err.message)),
    );
    const key = JSON.parse(sandbox.serviceAccountKey) as Record<string, string>;
    const other = await startGoogleWorkspaceSandbox();
    try {
      const wrongKey = connectorWith({
        serviceAccountKey: JSON.stringify({ ...key, private_key: JSON.parse(other.serviceAccountKey).private_key }),
      });
      await assert.rejects(
        wrongKey.discover(subject('E1002')),
        failsWith(
          (err) =>
            !err.retryable &&
            err.code === 'google_bad_credentials' &&
            !err.message.includes('PRIVATE KEY') &&
            /Invalid JWT Signature/.test(err.message),
        ),
      );
    } finally {
      await other.stop();
    }
  });

  it('an issued token Google stops accepting is retryable, and the next call gets a new one', async () => {
    const userId = idOf('E1002');
    await google.discover(subject('E1002'));
    for (const token of Object.keys(sandbox.state.accessTokens)) delete sandbox.state.accessTokens[token];
    await assert.rejects(
      google.apply(action('disable_login', userId), subject('E1002')),
      failsWith((err) => err.retryable && err.code === 'google_token_refused'),
    );
    assert.equal((await google.apply(action('disable_login', userId), subject('E1002'))).outcome, 'done');
  });

  it('config: the key must be a service account JSON key; rootUrl and the token URL default to Google’s', () => {
    const checked = googleWorkspaceSystemSchema.superRefine(googleWorkspaceConnector.refine!);
    const base = { type: 'google_workspace', adminSubject: GOOGLE_SANDBOX_ADMIN };
    const refused = checked.safeParse({ ...base, serviceAccountKey: 'not json' });
    assert.equal(refused.success, false);
    assert.match(refused.error!.issues[0]!.message, /service account's JSON key/);
    const parsed = checked.parse({ ...base, serviceAccountKey: sandbox.serviceAccountKey });
    assert.deepEqual(
      [parsed.customer, parsed.rootUrl, parsed.tokenUrl, parsed.findBy],
      ['my_customer', 'https://admin.googleapis.com/', GOOGLE_TOKEN_AUDIENCE, 'externalId'],
    );
    assert.deepEqual(googleWorkspaceConnector.secretFields, ['serviceAccountKey']);
  });

  it('the stand-in’s token endpoint checks the assertion as Google does: signature, audience, sub and delegated scopes', async () => {
    const key = JSON.parse(sandbox.serviceAccountKey) as { client_email: string; private_key: string };
    const assertion = (claims: Record<string, unknown>) => {
      const now = Math.floor(Date.now() / 1000);
      const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const body = `${part({ alg: 'RS256', typ: 'JWT' })}.${part({
        iss: key.client_email,
        aud: GOOGLE_TOKEN_AUDIENCE,
        sub: GOOGLE_SANDBOX_ADMIN,
        scope: ALL_DELEGATED_SCOPES[0],
        iat: now,
        exp: now + 3600,
        ...claims,
      })}`;
      return `${body}.${sign('RSA-SHA256', Buffer.from(body), key.private_key).toString('base64url')}`;
    };
    const exchange = async (claims: Record<string, unknown>) => {
      const response = await fetch(sandbox.tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'urn:ietf:params:oauth:grant-type:jwt-bearer',
          assertion: assertion(claims),
        }),
      });
      return [response.status, (await response.json()) as Record<string, unknown>] as const;
    };
    const [ok, issued] = await exchange({});
    assert.deepEqual([ok, issued.token_type, issued.expires_in], [200, 'Bearer', 3599]);
    assert.deepEqual((await exchange({ sub: 'nobody@example.org' }))[1].error_description, 'Invalid email or User ID');
    const [status, refused] = await exchange({
      scope: 'https://www.googleapis.com/auth/admin.directory.device.chromeos',
    });
    assert.deepEqual([status, refused.error], [401, 'unauthorized_client']);
    assert.equal((await exchange({ aud: 'https://example.org/token' }))[1].error, 'invalid_grant');

    const api = await fetch(`${sandbox.url}admin/directory/v1/users/${GOOGLE_SANDBOX_ADMIN}/tokens`, {
      headers: { authorization: `Bearer ${String(issued.access_token)}` },
    });
    const body = (await api.json()) as { error: { code: number; errors: { reason: string }[]; status: string } };
    assert.deepEqual(
      [api.status, body.error.code, body.error.errors[0]!.reason, body.error.status],
      [403, 403, 'insufficientPermissions', 'PERMISSION_DENIED'],
      'a token for the user scope cannot read tokens (user.security)',
    );
    const missing = await fetch(`${sandbox.url}admin/directory/v1/users/nobody@example.org`, {
      headers: { authorization: `Bearer ${String(issued.access_token)}` },
    });
    assert.deepEqual(
      [missing.status, ((await missing.json()) as { error: { message: string } }).error.message],
      [404, 'Resource Not Found: userKey'],
    );
  });
});
