/**
 * The Slack connector through the real @slack/web-api WebClient against the Web API stand-in
 * (sandbox/slack.ts), seeded with the sample organisation. Outcomes are checked in the stand-in's
 * state. Slack emails are unique within an org, so there is no ambiguous identity to test here.
 */
import assert from 'node:assert/strict';
import { WebClient } from '@slack/web-api';
import { createSlackConnector, slackSystemSchema, type SlackSystemConfig } from '../activities/connectors/slack.js';
import { ConnectorError, type Connector } from '../activities/connectors/types.js';
import { describeLeftover } from '../model/leftovers.js';
import { leftoversAfterStage, type Action, type Discovery, type Entitlement, type Plan } from '../model/plan.js';
import { samplePerson } from '../sandbox/org.js';
import {
  SLACK_SANDBOX_OTHER_TEAM_ID,
  SLACK_SANDBOX_TEAM_ID,
  SLACK_SANDBOX_TOKENS,
  slackUserIdFor,
  startSlackSandbox,
  type SlackSandbox,
} from '../sandbox/slack.js';

describe('Slack connector (Web API stand-in)', () => {
  let sandbox: SlackSandbox;

  before(async () => {
    sandbox = await startSlackSandbox();
  });
  after(async () => {
    await sandbox?.stop();
  });
  beforeEach(() => sandbox.reset());

  const connect = (overrides: Partial<SlackSystemConfig> = {}): Connector =>
    createSlackConnector(
      'slack',
      slackSystemSchema.parse({
        type: 'slack',
        apiUrl: sandbox.apiUrl,
        token: SLACK_SANDBOX_TOKENS.orgAdmin,
        teamId: SLACK_SANDBOX_TEAM_ID,
        ...overrides,
      }),
    );
  const subject = (employeeId: string) => ({ employeeId, email: samplePerson(employeeId).email });
  const action = (kind: Action['kind'], accountId: string, target?: Entitlement): Action => ({
    id: `t/slack/${kind}`,
    stage: 't',
    system: 'slack',
    kind,
    accountId,
    target,
  });
  const user = (employeeId: string) => sandbox.state.users[slackUserIdFor(employeeId)]!;
  const members = (usergroup: string) => [...sandbox.state.usergroups[usergroup]!.users];
  const rejectsWith = (check: (err: ConnectorError) => boolean) => (err: unknown) =>
    err instanceof ConnectorError && check(err);

  /** What a stage that disables the login and removes every entitlement would still find. */
  const leftovers = (found: Discovery) =>
    leftoversAfterStage(
      {
        name: 'revoke',
        dueAt: new Date().toISOString(),
        steps: [{ action: 'disable_login' }, { action: 'remove_entitlement', scope: 'all' }],
      },
      [found],
      { privileged: {}, keep: {} } as unknown as Plan,
    ).map(describeLeftover);
  const workspacesOf = (employeeId: string) => [...user(employeeId).teams].sort();

  it('discovers the user by email, the user groups that list them in every workspace, disabled ones too, and one session entry', async () => {
    const found = await connect().discover(subject('E1001'));
    assert.deepEqual(found.account, { id: 'WE1001', disabled: false });
    assert.deepEqual(found.entitlements, [
      { id: 'S0ONCALL', kind: 'usergroup', name: '@oncall' },
      { id: 'S0FINANCE', kind: 'usergroup', name: '@finance-team' },
      { id: 'S0LABS', kind: 'usergroup', name: '@labs' },
    ]);
    assert.equal(
      sandbox.state.usergroups.S0LABS!.teamId,
      SLACK_SANDBOX_OTHER_TEAM_ID,
      'a group of the second workspace',
    );
    assert.deepEqual(found.credentials, [{ id: 'WE1001/sessions', kind: 'session' }]);
    const inDisabledGroup = await connect().discover(subject('E1002'));
    assert.deepEqual(
      inDisabledGroup.entitlements,
      [
        { id: 'S0PLATFORM', kind: 'usergroup', name: '@platform' },
        { id: 'S0OLDPROJECT', kind: 'usergroup', name: '@old-project (disabled)' },
      ],
      'a disabled user group is listed: enabled again, it would include them again',
    );
  });

  it('by default the person leaves every workspace of the org; again is already; cancelling puts them back in each', async () => {
    const connector = connect();
    assert.deepEqual(workspacesOf('E1001'), [SLACK_SANDBOX_TEAM_ID, SLACK_SANDBOX_OTHER_TEAM_ID].sort());
    const disabled = await connector.apply(action('disable_login', 'WE1001'), subject('E1001'));
    assert.equal(disabled.outcome, 'done');
    assert.deepEqual(workspacesOf('E1001'), [], 'the second workspace is left too');
    assert.deepEqual(
      sandbox.state.workspaceRemovals.map((r) => r.teamId).sort(),
      [SLACK_SANDBOX_TEAM_ID, SLACK_SANDBOX_OTHER_TEAM_ID].sort(),
    );
    const after = await connector.discover(subject('E1001'));
    assert.deepEqual(after.account, { id: 'WE1001', disabled: true });
    assert.deepEqual(after.credentials, []);
    assert.equal((await connector.apply(action('disable_login', 'WE1001'), subject('E1001'))).outcome, 'already');
    assert.equal(sandbox.state.workspaceRemovals.length, 2);

    const enabled = await connector.apply(action('enable_login', 'WE1001'), subject('E1001'));
    assert.equal(enabled.outcome, 'done');
    assert.deepEqual(workspacesOf('E1001'), [SLACK_SANDBOX_TEAM_ID, SLACK_SANDBOX_OTHER_TEAM_ID].sort());
    assert.equal((await connector.apply(action('enable_login', 'WE1001'), subject('E1001'))).outcome, 'already');
    // Someone who only ever worked in one workspace gets that one back, and no other.
    await connector.apply(action('disable_login', 'WE1003'), subject('E1003'));
    await connector.apply(action('enable_login', 'WE1003'), subject('E1003'));
    assert.deepEqual(workspacesOf('E1003'), [SLACK_SANDBOX_TEAM_ID]);
  });

  it('verification fails while any workspace still has the person', async () => {
    const firstOnly = connect({ workspaces: [SLACK_SANDBOX_TEAM_ID] });
    assert.equal((await firstOnly.apply(action('disable_login', 'WE1001'), subject('E1001'))).outcome, 'done');
    assert.deepEqual(workspacesOf('E1001'), [SLACK_SANDBOX_OTHER_TEAM_ID]);
    const found = await connect().discover(subject('E1001'));
    assert.deepEqual(found.account, { id: 'WE1001', disabled: false });
    assert.ok(leftovers(found).includes('slack: login still enabled'), leftovers(found).join('; '));
    // The default connector finishes the job, and then nothing is left.
    const connector = connect();
    assert.equal((await connector.apply(action('disable_login', 'WE1001'), subject('E1001'))).outcome, 'done');
    for (const target of found.entitlements)
      assert.equal(
        (await connector.apply(action('remove_entitlement', 'WE1001', target), subject('E1001'))).outcome,
        'done',
      );
    assert.deepEqual(leftovers(await connector.discover(subject('E1001'))), []);
    assert.ok(Object.values(sandbox.state.usergroups).every((g) => !g.users.includes('WE1001')));
  });

  it('a membership of a disabled user group is removed', async () => {
    const connector = connect();
    const [old] = (await connector.discover(subject('E1002'))).entitlements.filter((e) => e.id === 'S0OLDPROJECT');
    assert.equal(
      (await connector.apply(action('remove_entitlement', 'WE1002', old), subject('E1002'))).outcome,
      'done',
    );
    assert.deepEqual(members('S0OLDPROJECT'), [slackUserIdFor('E1000')]);
    assert.equal(sandbox.state.usergroups.S0OLDPROJECT!.disabled, true, "still disabled: that is its owner's call");
  });

  it('failed_for_some_users: the members Slack no longer has in the workspace are left out, and the update is made', async () => {
    // E1005 was removed from the workspace earlier; Slack keeps them listed in @finance-team.
    await connect().apply(action('disable_login', 'WE1005'), subject('E1005'));
    assert.ok(members('S0FINANCE').includes('WE1005'));
    const before = members('S0FINANCE');
    sandbox.state.calls.length = 0;
    const removed = await connect().apply(
      action('remove_entitlement', 'WE1001', { id: 'S0FINANCE', kind: 'usergroup' }),
      subject('E1001'),
    );
    assert.equal(removed.outcome, 'done');
    assert.deepEqual(removed.details.droppedNotInWorkspace, ['WE1005']);
    assert.deepEqual(
      members('S0FINANCE'),
      before.filter((id) => id !== 'WE1001' && id !== 'WE1005'),
    );
    assert.equal(
      sandbox.state.calls.filter((c) => c === 'usergroups.users.update').length,
      2,
      'refused once, then written',
    );
  });

  it('the stand-in answers failed_for_some_users and changes nothing', async () => {
    sandbox.state.users.WE1003!.teams = [];
    const answer = await fetch(`${sandbox.apiUrl}usergroups.users.update`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Bearer ${SLACK_SANDBOX_TOKENS.orgAdmin}`,
      },
      body: `usergroup=S0FINANCE&team_id=${SLACK_SANDBOX_TEAM_ID}&users=WE1001,WE1003`,
    });
    assert.deepEqual(await answer.json(), { ok: false, error: 'failed_for_some_users' });
    assert.ok(members('S0FINANCE').length > 2);
  });

  it('a write Slack answers ok but has not applied is retried, never reported done', async () => {
    const connector = connect();
    sandbox.inject({ unappliedWrites: 1 });
    await assert.rejects(
      connector.apply(action('disable_login', 'WE1003'), subject('E1003')),
      rejectsWith((err) => err.retryable && err.code === 'slack_still_present'),
    );
    assert.deepEqual(workspacesOf('E1003'), [SLACK_SANDBOX_TEAM_ID]);
    sandbox.inject({ unappliedWrites: 1 });
    await assert.rejects(
      connector.apply(action('remove_entitlement', 'WE1001', { id: 'S0FINANCE', kind: 'usergroup' }), subject('E1001')),
      rejectsWith((err) => err.retryable && err.code === 'slack_still_present'),
    );
    assert.ok(members('S0FINANCE').includes('WE1001'));
    sandbox.inject({});
    assert.equal((await connector.apply(action('disable_login', 'WE1003'), subject('E1003'))).outcome, 'done');
  });

  it('check() exercises the admin credentials and the configured workspaces, not only the token', async () => {
    await connect().check!();
    await connect({ teamId: SLACK_SANDBOX_TEAM_ID, workspaces: [SLACK_SANDBOX_OTHER_TEAM_ID] }).check!();
    const failures: [Partial<SlackSystemConfig>, RegExp][] = [
      [{ token: SLACK_SANDBOX_TOKENS.member }, /not_an_admin/],
      [{ token: 'xoxp-not-a-real-token' }, /invalid_auth/],
      [{ workspaces: ['T0NOTOURS'] }, /T0NOTOURS is not a workspace of this org/],
    ];
    for (const [overrides, expected] of failures)
      await assert.rejects(
        connect(overrides).check!(),
        rejectsWith((err) => !err.retryable && expected.test(err.message)),
        expected.source,
      );
    // auth.test alone would have let a member's token through.
    const authTest = await new WebClient(SLACK_SANDBOX_TOKENS.member, { slackApiUrl: sandbox.apiUrl }).auth.test();
    assert.equal(authTest.ok, true);
  });

  it('no account: an unknown email, no email at all, or a person Slack already deactivated', async () => {
    const connector = connect();
    const none = { system: 'slack', account: null, entitlements: [], credentials: [] };
    assert.deepEqual(await connector.discover({ employeeId: 'E9999', email: 'nobody@example.org' }), none);
    assert.deepEqual(await connector.discover({ employeeId: 'E1001' }), none);
    assert.equal(user('E1040').deleted, true);
    assert.deepEqual(
      await connector.discover(subject('E1040')),
      none,
      'users.lookupByEmail answers users_not_found for deactivated users',
    );
  });

  it('workspaces limited to one: disable removes the user from that workspace only; again is already; enable_login adds them back', async () => {
    const connector = connect({ mode: 'workspace', workspaces: [SLACK_SANDBOX_TEAM_ID] });
    const disabled = await connector.apply(action('disable_login', 'WE1001'), subject('E1001'));
    assert.equal(disabled.outcome, 'done');
    assert.deepEqual(user('E1001').teams, [SLACK_SANDBOX_OTHER_TEAM_ID], 'still in the other workspace of the org');
    assert.equal(user('E1001').deleted, false);
    assert.deepEqual(sandbox.state.workspaceRemovals, [{ userId: 'WE1001', teamId: SLACK_SANDBOX_TEAM_ID }]);
    const after = await connector.discover(subject('E1001'));
    assert.deepEqual(after.account, { id: 'WE1001', disabled: true });
    assert.deepEqual(after.credentials, []);
    assert.equal((await connector.apply(action('disable_login', 'WE1001'), subject('E1001'))).outcome, 'already');
    assert.equal(sandbox.state.workspaceRemovals.length, 1);

    assert.equal((await connector.apply(action('enable_login', 'WE1001'), subject('E1001'))).outcome, 'done');
    assert.deepEqual([...user('E1001').teams].sort(), [SLACK_SANDBOX_TEAM_ID, SLACK_SANDBOX_OTHER_TEAM_ID].sort());
    assert.equal((await connector.apply(action('enable_login', 'WE1001'), subject('E1001'))).outcome, 'already');
    assert.deepEqual((await connector.discover(subject('E1001'))).account, { id: 'WE1001', disabled: false });
  });

  it('org mode: disable deactivates org-wide; again is already; cancel refuses and names the admin console', async () => {
    const connector = connect({ mode: 'org' });
    assert.equal((await connector.apply(action('disable_login', 'WE1003'), subject('E1003'))).outcome, 'done');
    assert.equal(user('E1003').deleted, true);
    assert.deepEqual(sandbox.state.deactivations, ['WE1003']);
    assert.equal((await connector.discover(subject('E1003'))).account, null);
    assert.equal((await connector.apply(action('disable_login', 'WE1003'), subject('E1003'))).outcome, 'already');
    assert.deepEqual(sandbox.state.deactivations, ['WE1003']);

    for (const mode of ['org', 'workspace'] as const) {
      await assert.rejects(
        connect({ mode }).apply(action('enable_login', 'WE1003'), subject('E1003')),
        rejectsWith(
          (err) =>
            !err.retryable &&
            err.code === 'slack_cannot_reactivate' &&
            /reactivate WE1003 in the Slack admin console/.test(err.message),
        ),
        mode,
      );
    }
    assert.equal(user('E1003').deleted, true);
    assert.equal(
      (await connect({ mode: 'org' }).apply(action('enable_login', 'WE1002'), subject('E1002'))).outcome,
      'already',
      'an active user needs nothing',
    );
  });

  it('revoke_sessions resets every session each time (Slack cannot list them); once deactivated it is already', async () => {
    const connector = connect({ mode: 'org' });
    const first = await connector.apply(action('revoke_sessions', 'WE1005'), subject('E1005'));
    assert.equal(first.outcome, 'done');
    assert.match(String(first.details.note), /cannot list sessions/);
    assert.equal(sandbox.state.sessionResets.WE1005, 1);
    assert.equal((await connector.apply(action('revoke_sessions', 'WE1005'), subject('E1005'))).outcome, 'done');
    assert.equal(sandbox.state.sessionResets.WE1005, 2);
    await connector.apply(action('disable_login', 'WE1005'), subject('E1005'));
    assert.equal((await connector.apply(action('revoke_sessions', 'WE1005'), subject('E1005'))).outcome, 'already');
    assert.equal(sandbox.state.sessionResets.WE1005, 2, 'no reset for a deactivated user');
  });

  it('remove_entitlement writes back the whole group without the user and nobody else; again is already', async () => {
    const connector = connect();
    const before = members('S0FINANCE');
    const [finance] = (await connector.discover(subject('E1001'))).entitlements.filter((e) => e.id === 'S0FINANCE');
    const removed = await connector.apply(action('remove_entitlement', 'WE1001', finance), subject('E1001'));
    assert.equal(removed.outcome, 'done');
    assert.deepEqual(
      members('S0FINANCE'),
      before.filter((id) => id !== 'WE1001'),
    );
    assert.equal(
      (await connector.apply(action('remove_entitlement', 'WE1001', finance), subject('E1001'))).outcome,
      'already',
    );
    assert.deepEqual(
      (await connector.discover(subject('E1001'))).entitlements.map((e) => e.id),
      ['S0ONCALL', 'S0LABS'],
    );
    assert.equal(
      (
        await connector.apply(
          action('remove_entitlement', 'WE1001', { id: 'S0GONE', kind: 'usergroup' }),
          subject('E1001'),
        )
      ).outcome,
      'already',
      'a deleted group',
    );
  });

  it('the last member of a user group is not removed: non-retryable, and nothing is written', async () => {
    const connector = connect();
    const release = (await connector.discover(subject('E1004'))).entitlements.find((e) => e.id === 'S0RELEASE');
    assert.ok(release);
    await assert.rejects(
      connector.apply(action('remove_entitlement', 'WE1004', release), subject('E1004')),
      rejectsWith(
        (err) =>
          !err.retryable &&
          err.code === 'slack_last_member' &&
          /add another member or disable the group/.test(err.message),
      ),
    );
    assert.deepEqual(members('S0RELEASE'), ['WE1004']);
    assert.ok(!sandbox.state.calls.includes('usergroups.users.update'));
  });

  it('delete_account leaves the account disabled (Slack never deletes users); tokens and ownership are not applicable', async () => {
    const connector = connect({ mode: 'workspace' });
    const deleted = await connector.apply(action('delete_account', 'WE1002'), subject('E1002'));
    assert.equal(deleted.outcome, 'done');
    assert.match(String(deleted.details.note), /does not delete users/);
    assert.ok(!user('E1002').teams.includes(SLACK_SANDBOX_TEAM_ID));
    assert.equal((await connector.apply(action('delete_account', 'WE1002'), subject('E1002'))).outcome, 'already');
    assert.equal(
      (await connector.apply(action('revoke_tokens', 'WE1002'), subject('E1002'))).outcome,
      'not_applicable',
    );
    assert.equal(
      (await connector.apply(action('transfer_ownership', 'WE1002'), subject('E1002'))).outcome,
      'not_applicable',
    );
  });

  it('a 429 burst: retryable with retryAfterMs from Retry-After and no waiting in the client; then the same call succeeds', async () => {
    const connector = connect();
    sandbox.inject({ rateLimit: { count: 1, retryAfterSeconds: 7 } });
    const started = Date.now();
    await assert.rejects(
      connector.discover(subject('E1001')),
      rejectsWith((err) => err.retryable && err.code === 'slack_ratelimited' && err.retryAfterMs === 7000),
    );
    assert.ok(Date.now() - started < 2000, 'the WebClient did not pause for Retry-After');
    assert.equal((await connector.discover(subject('E1001'))).account?.id, 'WE1001');

    sandbox.inject({ rateLimit: { count: 1, retryAfterSeconds: 30 } });
    await assert.rejects(
      connector.apply(action('disable_login', 'WE1001'), subject('E1001')),
      rejectsWith((err) => err.retryable && err.retryAfterMs === 30_000),
    );
    assert.ok(user('E1001').teams.includes(SLACK_SANDBOX_TEAM_ID), 'nothing changed while rate-limited');
    assert.equal((await connector.apply(action('disable_login', 'WE1001'), subject('E1001'))).outcome, 'done');
  });

  it('5xx answers, dropped connections and timeouts are retryable', async () => {
    const connector = connect();
    sandbox.inject({ errorRate: 1 });
    await assert.rejects(
      connector.discover(subject('E1001')),
      rejectsWith((err) => err.retryable && err.code === 'slack_http_503'),
    );
    sandbox.inject({ resetConnections: 1 });
    await assert.rejects(
      connector.discover(subject('E1001')),
      rejectsWith((err) => err.retryable && err.code === 'slack_unreachable'),
    );
    sandbox.inject({ latencyMs: 400 });
    await assert.rejects(
      connect({ timeoutMs: 100 }).discover(subject('E1001')),
      rejectsWith((err) => err.retryable && /no answer within timeoutMs/.test(err.message)),
    );
    sandbox.inject({});
    assert.equal((await connector.discover(subject('E1001'))).account?.id, 'WE1001');
  });

  it('credential and permission problems are non-retryable, say what to fix, and change nothing', async () => {
    const cases: { token: string; expect: RegExp }[] = [
      { token: SLACK_SANDBOX_TOKENS.readOnly, expect: /the token lacks scope admin\.users:write/ },
      { token: SLACK_SANDBOX_TOKENS.member, expect: /not_an_admin: the token's user is not an org admin or owner/ },
      { token: 'xoxp-not-a-real-token', expect: /invalid_auth: .*issue a new org admin user token/ },
    ];
    for (const { token, expect } of cases) {
      await assert.rejects(
        connect({ token }).apply(action('disable_login', 'WE1001'), subject('E1001')),
        rejectsWith((err) => !err.retryable && expect.test(err.message) && !err.message.includes(token)),
        token,
      );
    }
    const noToken = createSlackConnector('slack', {
      type: 'slack',
      apiUrl: sandbox.apiUrl,
      token: '',
      workspaces: 'all',
      mode: 'workspace',
      timeoutMs: 5000,
    });
    await assert.rejects(
      noToken.discover(subject('E1001')),
      rejectsWith((err) => !err.retryable && err.code === 'slack_not_authed'),
    );
    await assert.rejects(
      connect({ mode: 'org' }).apply(action('disable_login', 'WE1000'), subject('E1000')),
      rejectsWith(
        (err) => !err.retryable && /cannot_modify_primary_owner: .*transfer primary ownership/.test(err.message),
      ),
    );
    assert.ok(user('E1001').teams.includes(SLACK_SANDBOX_TEAM_ID));
    assert.equal(user('E1000').deleted, false);
    assert.throws(
      () => slackSystemSchema.parse({ type: 'slack', token: 'xoxb-bot', teamId: SLACK_SANDBOX_TEAM_ID }),
      /org admin user token/,
    );
  });

  it('the stand-in speaks the Web API wire format and can be inspected and steered over HTTP', async () => {
    const post = (method: string, body: string, headers: Record<string, string>) =>
      fetch(`${sandbox.apiUrl}${method}`, { method: 'POST', body, headers });
    const json = async (response: Response) => (await response.json()) as Record<string, unknown>;

    const unauthenticated = await post('users.lookupByEmail', 'email=ada.lovelace.1%40example.org', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    assert.equal(unauthenticated.status, 200);
    assert.deepEqual(await json(unauthenticated), { ok: false, error: 'not_authed' });
    const byForm = await json(
      await post('users.lookupByEmail', `token=${SLACK_SANDBOX_TOKENS.orgAdmin}&email=ada.lovelace.1%40example.org`, {
        'content-type': 'application/x-www-form-urlencoded',
      }),
    );
    assert.equal((byForm.user as { id: string }).id, 'WE1001');
    const byJson = await json(
      await post('users.lookupByEmail', JSON.stringify({ email: 'ada.lovelace.1@example.org' }), {
        'content-type': 'application/json',
        authorization: `Bearer ${SLACK_SANDBOX_TOKENS.orgAdmin}`,
      }),
    );
    assert.equal(byJson.ok, true);
    assert.deepEqual(byJson.response_metadata, { warnings: ['missing_charset'] });
    const invalid = await json(
      await post('users.lookupByEmail', '{}', {
        'content-type': 'application/json; charset=utf-8',
        authorization: `Bearer ${SLACK_SANDBOX_TOKENS.orgAdmin}`,
      }),
    );
    assert.deepEqual(invalid, {
      ok: false,
      error: 'invalid_arguments',
      response_metadata: { messages: ['[ERROR] missing required field: email'] },
    });

    // offboard will send its notifications through chat.postMessage.
    const bot = new WebClient(SLACK_SANDBOX_TOKENS.bot, { slackApiUrl: sandbox.apiUrl, retryConfig: { retries: 0 } });
    const posted = await bot.chat.postMessage({ channel: '#offboarding', text: 'Offboarding E1001 started' });
    assert.equal(posted.channel, 'C0OFFBOARD');
    assert.deepEqual(
      sandbox.state.messages.map((m) => [m.channel, m.text]),
      [['C0OFFBOARD', 'Offboarding E1001 started']],
    );

    const state = await json(await fetch(`${sandbox.url}/_sandbox/state`));
    assert.equal((state.messages as unknown[]).length, 1);
    await fetch(`${sandbox.url}/_sandbox/faults`, {
      method: 'POST',
      body: JSON.stringify({ rateLimit: { count: 1, retryAfterSeconds: 3 } }),
    });
    const limited = await post('users.info', 'user=WE1001', {
      'content-type': 'application/x-www-form-urlencoded',
      authorization: `Bearer ${SLACK_SANDBOX_TOKENS.orgAdmin}`,
    });
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '3');
    assert.deepEqual(await json(limited), { ok: false, error: 'ratelimited' });
  });
});
