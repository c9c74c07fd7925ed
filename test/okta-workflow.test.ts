/**
 * One person in the directory (the shared slapd) and in Okta (the Management API stand-in),
 * offboarded through the workflow on Temporal's time-skipping server: at the effective time the
 * directory bind fails and the Okta user is suspended with no session, token, grant, group, app
 * or admin role left, verified clean; after the retention the user is deleted.
 */
import assert from 'node:assert/strict';
import { samplePerson } from '../sandbox/org.js';
import { SANDBOX_OKTA_SERVICE_APP, oktaUsersOf, startOktaSandbox, type OktaSandbox } from '../sandbox/okta.js';
import { SLACK_SANDBOX_TEAM_ID, SLACK_SANDBOX_TOKENS, slackUserIdFor, startSlackSandbox } from '../sandbox/slack.js';
import { canBind } from './helpers/environment.js';
import { offboardOnce } from './helpers/offboard-once.js';

/** Reserved for this test: Dorothy Lamarr, a contractor in finance, vpn-users and developers. */
const EMPLOYEE_ID = 'E1045';

describe('offboarding workflow with Okta (Management API stand-in, real slapd)', function () {
  this.timeout(300_000);
  let okta: OktaSandbox | undefined;

  afterEach(async () => {
    await okta?.stop();
  });

  it('an immediate offboarding suspends the Okta user and leaves no session, token or entitlement, verified clean; deleted after retention', async () => {
    okta = await startOktaSandbox();
    const sandbox = okta;
    const [user] = oktaUsersOf(sandbox.state, EMPLOYEE_ID);
    assert.ok(user, 'seeded from the sample organisation');
    const mine = (r: { userId: string }) => r.userId === user.id;
    assert.ok(
      sandbox.state.sessions.some(mine) && sandbox.state.refreshTokens.some(mine) && sandbox.state.grants.some(mine),
    );
    assert.equal(await canBind(EMPLOYEE_ID), true);

    const { events } = await offboardOnce({
      employeeId: EMPLOYEE_ID,
      // As an API service app, the production shape: the private key comes from the environment.
      systems: {
        sso: {
          type: 'okta',
          orgUrl: sandbox.url,
          oauth: { clientId: SANDBOX_OKTA_SERVICE_APP, privateKey: { env: 'TEST_OKTA_SERVICE_KEY' } },
        },
      },
      env: { TEST_OKTA_SERVICE_KEY: sandbox.servicePrivateKey },
      // No email from HR: the Okta user is found by employeeNumber.
      request: { employmentType: samplePerson(EMPLOYEE_ID).employmentType },
      timeoutMs: 240_000,
      afterRevoke: async (revoked) => {
        assert.equal(revoked.accounts.sso, user.id);
        assert.deepEqual(revoked.manualTasks, [], JSON.stringify(revoked.manualTasks));
        const oktaActions = revoked.actions.filter((a) => a.system === 'sso');
        assert.ok(oktaActions.length >= 6, JSON.stringify(oktaActions));
        assert.ok(
          oktaActions.every((a) => a.state === 'done'),
          JSON.stringify(oktaActions.map((a) => [a.id, a.state])),
        );

        assert.equal(await canBind(EMPLOYEE_ID), false);
        const after = sandbox.state.users.find((u) => u.id === user.id)!;
        assert.equal(after.status, 'SUSPENDED');
        assert.deepEqual(sandbox.state.sessions.filter(mine), []);
        assert.deepEqual(sandbox.state.refreshTokens.filter(mine), []);
        assert.deepEqual(sandbox.state.grants.filter(mine), []);
        assert.deepEqual(sandbox.state.roles.filter(mine), []);
        const groups = sandbox.state.memberships
          .filter(mine)
          .map((m) => sandbox.state.groups.find((g) => g.id === m.groupId)!)
          .map((g) => `${g.profile.name}/${g.type}`)
          .sort();
        assert.deepEqual(
          groups,
          ['Domain Users/APP_GROUP', 'Everyone/BUILT_IN'],
          'only the groups the API may not change',
        );
        assert.deepEqual(
          sandbox.state.appUsers.filter(mine).filter((a) => a.scope === 'USER'),
          [],
          'no direct app assignment',
        );
      },
      // The retention is skipped by the time-skipping server: the delete stage deactivates, then deletes.
      until: 'completed',
    });

    const verified = events.find((e) => e.action === 'stage_verified' && e.system === 'sso');
    assert.deepEqual([verified?.details.stage, verified?.outcome], ['revoke', 'clean']);
    assert.equal(
      sandbox.state.users.some((u) => u.id === user.id),
      false,
      'the Okta user is deleted',
    );
    assert.equal(sandbox.state.factors.some(mine), false);
    assert.ok(Object.keys(sandbox.state.accessTokens).length >= 1, 'through the service app');
  });
  it('with no directory and no email from HR, the email Okta holds finds the Slack account, which is revoked', async () => {
    const id = 'E1048';
    okta = await startOktaSandbox();
    const slack = await startSlackSandbox();
    try {
      const { status, events } = await offboardOnce({
        employeeId: id,
        directory: false,
        systems: {
          sso: {
            type: 'okta',
            orgUrl: okta.url,
            oauth: { clientId: SANDBOX_OKTA_SERVICE_APP, privateKey: { env: 'TEST_OKTA_SERVICE_KEY' } },
          },
          slack: {
            type: 'slack',
            apiUrl: slack.apiUrl,
            token: { env: 'TEST_SLACK_TOKEN' },
            teamId: SLACK_SANDBOX_TEAM_ID,
          },
        },
        env: { TEST_OKTA_SERVICE_KEY: okta.servicePrivateKey, TEST_SLACK_TOKEN: SLACK_SANDBOX_TOKENS.orgAdmin },
        request: { employmentType: samplePerson(id).employmentType },
      });
      const slackId = slackUserIdFor(id);
      assert.equal(status.accounts.slack, slackId, 'found by the email Okta gave');
      assert.ok(
        slack.state.workspaceRemovals.some((r) => r.userId === slackId),
        'removed from the workspace',
      );
      assert.deepEqual(events.find((e) => e.action === 'identity_correlated' && e.details.field === 'email')?.details, {
        field: 'email',
        from: ['sso'],
      });
    } finally {
      await slack.stop();
    }
  });
  it("a failing identity provider holds the email-keyed systems a minute at most: Slack is revoked by the directory's email while Okta still retries", async () => {
    const id = 'E1049';
    okta = await startOktaSandbox();
    okta.inject({ serverErrorRate: 1 });
    const slack = await startSlackSandbox();
    try {
      const { status, events } = await offboardOnce({
        employeeId: id,
        systems: {
          sso: {
            type: 'okta',
            orgUrl: okta.url,
            oauth: { clientId: SANDBOX_OKTA_SERVICE_APP, privateKey: { env: 'TEST_OKTA_SERVICE_KEY' } },
          },
          slack: {
            type: 'slack',
            apiUrl: slack.apiUrl,
            token: { env: 'TEST_SLACK_TOKEN' },
            teamId: SLACK_SANDBOX_TEAM_ID,
          },
        },
        env: { TEST_OKTA_SERVICE_KEY: okta.servicePrivateKey, TEST_SLACK_TOKEN: SLACK_SANDBOX_TOKENS.orgAdmin },
        // No email from HR; Okta's retries 2 minutes apart (the test server skips them) outlast the wait.
        request: { employmentType: samplePerson(id).employmentType },
        retry: { initialInterval: '2m', maximumInterval: '2m', maximumAttempts: 20 },
        until: (s) => s.pipelines?.slack?.stagesDone.includes('revoke') === true,
        // The minute's wait runs in real time here (the test server does not skip it while Okta's
        // calls are retried); without the bound, Slack would wait for 20 attempts and this times out.
        timeoutMs: 240_000,
      });
      const slackId = slackUserIdFor(id);
      assert.equal(status.accounts.slack, slackId, "found by the directory's email");
      assert.ok(
        slack.state.workspaceRemovals.some((r) => r.userId === slackId),
        'removed from the workspace',
      );
      assert.equal(status.pipelines?.sso?.doing, 'discovering', 'Okta is still being retried, not given up on');
      assert.deepEqual(events.find((e) => e.action === 'identity_correlated' && e.details.field === 'email')?.details, {
        field: 'email',
        from: ['directory'],
        notYetAnswered: ['sso'],
      });
    } finally {
      await slack.stop();
    }
  });
});
