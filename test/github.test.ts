/**
 * The GitHub connector through @octokit/rest against the GitHub stand-in (sandbox/github.ts):
 * discovery, each action and its idempotency, rate limits, failures and identity resolution.
 * Outcomes are checked in the stand-in's state, not only in what the connector returns.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import {
  createGithubConnector,
  GITHUB_EMAIL_INVITEE,
  githubAuthIssues,
  githubSystemSchema,
} from '../activities/connectors/github.js';
import { ConnectorError, type Connector } from '../activities/connectors/types.js';
import { describeLeftover } from '../model/leftovers.js';
import { leftoversAfterStage, type Action, type Discovery, type Plan } from '../model/plan.js';
import {
  GITHUB_SANDBOX_APP,
  GITHUB_SANDBOX_ORG,
  GITHUB_SANDBOX_READ_ONLY_TOKEN,
  GITHUB_SANDBOX_TOKEN,
  githubLoginFor,
  sampleGithubLogins,
  startGithubSandbox,
  type GithubSandbox,
} from '../sandbox/github.js';
import { DUPLICATED_EMPLOYEE_ID } from '../sandbox/ldif.js';
import { samplePerson } from '../sandbox/org.js';

describe('GitHub connector (stand-in)', () => {
  let sandbox: GithubSandbox;
  let github: Connector;

  const connector = (overrides: Record<string, unknown> = {}) =>
    createGithubConnector(
      'github',
      githubSystemSchema.parse({
        type: 'github',
        baseUrl: sandbox.url,
        token: GITHUB_SANDBOX_TOKEN,
        org: GITHUB_SANDBOX_ORG,
        logins: sampleGithubLogins(),
        ...overrides,
      }),
    );
  const action = (kind: Action['kind'], accountId: string, target?: Action['target']): Action => ({
    id: `t/${kind}`,
    stage: 't',
    system: 'github',
    kind,
    accountId,
    target,
  });
  const loginOf = (employeeId: string) => githubLoginFor(samplePerson(employeeId));
  const subject = (employeeId: string) => ({ employeeId });
  const withEmail = (employeeId: string) => ({ employeeId, email: samplePerson(employeeId).email });
  /** What a full offboarding stage would still find (the workflow's verification rule). */
  const leftovers = (found: Discovery) =>
    leftoversAfterStage(
      {
        name: 'revoke',
        dueAt: new Date().toISOString(),
        steps: [
          { action: 'disable_login' },
          { action: 'revoke_tokens' },
          { action: 'remove_entitlement', scope: 'all' },
        ],
      },
      [found],
      { privileged: {}, keep: {} } as unknown as Plan,
    ).map(describeLeftover);
  /** Every action discovery calls for, login first, as the workflow runs them. */
  async function offboard(connector: Connector, who: { employeeId: string; email?: string }) {
    const found = await connector.discover(who);
    const accountId = found.account!.id;
    const results = [
      await connector.apply(action('disable_login', accountId), who),
      await connector.apply(action('revoke_tokens', accountId), who),
    ];
    for (const target of found.entitlements)
      results.push(await connector.apply(action('remove_entitlement', accountId, target), who));
    return { found, results };
  }
  const teamsOf = (login: string) => sandbox.state.teams.filter((t) => login in t.members).map((t) => t.slug);
  const reposOf = (login: string) =>
    sandbox.state.repos.filter((r) => r.collaborators.includes(login)).map((r) => r.name);
  const failsWith =
    (expected: { retryable: boolean; code: string; message?: RegExp; retryAfterMs?: (ms: number) => boolean }) =>
    (err: unknown) => {
      assert.ok(err instanceof ConnectorError, `a ConnectorError, got ${String(err)}`);
      assert.equal(err.code, expected.code, err.message);
      assert.equal(err.retryable, expected.retryable, err.message);
      if (expected.message) assert.match(err.message, expected.message);
      if (expected.retryAfterMs)
        assert.ok(expected.retryAfterMs(err.retryAfterMs ?? -1), `retryAfterMs ${err.retryAfterMs}`);
      assert.doesNotMatch(err.message, /ghs_/, 'no token in the message');
      return true;
    };

  before(async () => {
    sandbox = await startGithubSandbox();
    github = connector();
  });
  beforeEach(() => sandbox.reset());
  after(async () => {
    await sandbox?.stop();
  });

  it('discovers a member: the owner role, teams, fine-grained PAT grants and SSO authorizations', async () => {
    const login = loginOf('E1001');
    const found = await github.discover(subject('E1001'));
    assert.deepEqual(found.account, { id: login, disabled: false });
    assert.deepEqual(found.entitlements.map((e) => `${e.kind} ${e.id}`).sort(), [
      'org_role org-role:admin',
      `pat_request pat-request:${sandbox.state.patRequests.find((r) => r.owner === login)!.id}`,
      `repository_invitation repo-invitation:${GITHUB_SANDBOX_ORG}/infra/${sandbox.state.repoInvitations.find((i) => i.invitee === login)!.id}`,
      'team team:payments',
      'team team:security',
    ]);
    const grants = sandbox.state.patGrants
      .filter((g) => g.owner === login)
      .map((g) => ({ id: `pat:${g.id}`, kind: 'token' }));
    const sso = sandbox.state.ssoAuthorizations
      .filter((a) => a.login === login)
      .map((a) => ({ id: `sso:${a.credentialId}`, kind: a.credentialType === 'SSH key' ? 'key' : 'token' }));
    assert.ok(
      grants.length === 2 && sso.some((c) => c.kind === 'key'),
      'the sample gives E1001 two grants and an SSH key',
    );
    assert.deepEqual(found.credentials, [...grants, ...sso]);
  });

  it('discovers a contractor as an outside collaborator: no membership, one entitlement per repository', async () => {
    const login = loginOf('E1005');
    const found = await github.discover(subject('E1005'));
    assert.deepEqual(found.account, { id: login, disabled: true });
    assert.deepEqual(
      found.entitlements.filter((e) => e.kind === 'outside_collaborator'),
      reposOf(login).map((name) => ({
        id: `repo:${GITHUB_SANDBOX_ORG}/${name}`,
        kind: 'outside_collaborator',
        name: `${GITHUB_SANDBOX_ORG}/${name}`,
      })),
    );
    assert.equal(reposOf(login).length, 2);
    const invitation = sandbox.state.repoInvitations.find((i) => i.invitee === login)!;
    assert.deepEqual(
      found.entitlements.filter((e) => e.kind !== 'outside_collaborator'),
      [
        {
          id: `repo-invitation:${GITHUB_SANDBOX_ORG}/infra/${invitation.id}`,
          kind: 'outside_collaborator_invitation',
          name: `pending invitation to ${GITHUB_SANDBOX_ORG}/infra (write)`,
        },
      ],
      'the pending invitation to a third repository',
    );
  });

  it('disable_login removes the member with their teams; again is already; enable_login refuses and says to re-invite', async () => {
    const login = loginOf('E1002');
    assert.deepEqual(teamsOf(login), ['platform']);
    const result = await github.apply(action('disable_login', login), subject('E1002'));
    assert.equal(result.outcome, 'done');
    assert.equal(result.details.previousState, 'active');
    assert.equal(sandbox.state.memberships[login], undefined, 'the membership is gone');
    assert.deepEqual(teamsOf(login), [], 'the teams went with it');
    assert.equal((await github.apply(action('disable_login', login), subject('E1002'))).outcome, 'already');
    // Its SSO authorization is still there until revoke_tokens: the account shows as disabled, not gone.
    assert.deepEqual((await github.discover(subject('E1002'))).account, { id: login, disabled: true });
    await assert.rejects(
      github.apply(action('enable_login', login), subject('E1002')),
      failsWith({
        retryable: false,
        code: 'github_cannot_restore',
        message: /^GitHub membership cannot be restored automatically: re-invite alan-hopper-2 to example-org/,
      }),
    );
  });

  it('enable_login for someone who is still a member is already', async () => {
    const login = loginOf('E1004');
    assert.equal((await github.apply(action('enable_login', login), subject('E1004'))).outcome, 'already');
    assert.equal(sandbox.state.memberships[login]?.state, 'active');
  });

  it('a pending invitation counts as membership, and disable_login cancels it', async () => {
    const login = loginOf('E1037');
    const invitationsOf = () => sandbox.state.orgInvitations.filter((i) => i.login === login);
    assert.equal(invitationsOf().length, 1);
    assert.deepEqual((await github.discover(subject('E1037'))).account, { id: login, disabled: false });
    assert.equal((await github.apply(action('disable_login', login), subject('E1037'))).outcome, 'done');
    assert.deepEqual(invitationsOf(), [], 'the invitation is cancelled');
    assert.equal((await github.apply(action('disable_login', login), subject('E1037'))).outcome, 'already');
    assert.equal((await github.discover(subject('E1037'))).account, null, 'nothing of theirs is left in the org');
  });

  it('revoke_tokens revokes every PAT grant and SSO authorization of the person only; again is already', async () => {
    const login = loginOf('E1001');
    const othersBefore = {
      grants: sandbox.state.patGrants.filter((g) => g.owner !== login).length,
      sso: sandbox.state.ssoAuthorizations.filter((a) => a.login !== login).length,
    };
    const result = await github.apply(action('revoke_tokens', login), subject('E1001'));
    assert.equal(result.outcome, 'done');
    assert.deepEqual(result.details.patGrantIds, [5001, 5002]);
    assert.equal(sandbox.state.patGrants.filter((g) => g.owner === login).length, 0);
    assert.equal(sandbox.state.ssoAuthorizations.filter((a) => a.login === login).length, 0);
    assert.deepEqual(
      { grants: sandbox.state.patGrants.length, sso: sandbox.state.ssoAuthorizations.length },
      othersBefore,
      "nobody else's tokens were touched",
    );
    assert.equal((await github.apply(action('revoke_tokens', login), subject('E1001'))).outcome, 'already');
    assert.deepEqual((await github.discover(subject('E1001'))).credentials, []);
  });

  it('revoke_sessions, delete_account and transfer_ownership are not applicable and change nothing', async () => {
    const login = loginOf('E1003');
    for (const kind of ['revoke_sessions', 'delete_account', 'transfer_ownership'] as const) {
      const result = await github.apply(action(kind, login), subject('E1003'));
      assert.equal(result.outcome, 'not_applicable', kind);
      assert.equal(typeof result.details.reason, 'string');
    }
    assert.equal(sandbox.state.memberships[login]?.state, 'active');
  });

  it('remove_entitlement takes the person off a team, and demotes an owner to member; again is already', async () => {
    const login = loginOf('E1001');
    const team = { id: 'team:payments', kind: 'team' };
    assert.equal((await github.apply(action('remove_entitlement', login, team), subject('E1001'))).outcome, 'done');
    assert.deepEqual(teamsOf(login), ['security']);
    assert.equal((await github.apply(action('remove_entitlement', login, team), subject('E1001'))).outcome, 'already');
    const owner = { id: 'org-role:admin', kind: 'org_role' };
    assert.equal((await github.apply(action('remove_entitlement', login, owner), subject('E1001'))).outcome, 'done');
    assert.deepEqual(
      sandbox.state.memberships[login],
      { state: 'active', role: 'member' },
      'still a member, no longer an owner',
    );
    assert.equal((await github.apply(action('remove_entitlement', login, owner), subject('E1001'))).outcome, 'already');
  });

  it('the owner role of someone no longer a member is already gone, and no invitation is sent', async () => {
    const login = loginOf('E1001');
    await github.apply(action('disable_login', login), subject('E1001'));
    assert.equal(
      (
        await github.apply(
          action('remove_entitlement', login, { id: 'org-role:admin', kind: 'org_role' }),
          subject('E1001'),
        )
      ).outcome,
      'already',
    );
    assert.equal(sandbox.state.memberships[login], undefined);
  });

  it('a team synchronized with an identity provider refuses removal: not retried, and the message points at the IdP group', async () => {
    const login = loginOf('E1001');
    await assert.rejects(
      github.apply(action('remove_entitlement', login, { id: 'team:security', kind: 'team' }), subject('E1001')),
      failsWith({
        retryable: false,
        code: 'github_team_forbidden',
        message: /team security .*identity-provider group/,
      }),
    );
    assert.ok(teamsOf(login).includes('security'), 'still in the team');
  });

  it('an outside collaborator loses one repository per action, so a role change can keep the others', async () => {
    const login = loginOf('E1005');
    const [first, second] = (await github.discover(subject('E1005'))).entitlements.filter(
      (e) => e.kind === 'outside_collaborator',
    );
    assert.equal((await github.apply(action('remove_entitlement', login, first), subject('E1005'))).outcome, 'done');
    assert.deepEqual(reposOf(login), [second!.id.split('/')[1]], 'only the first repository is gone');
    assert.equal((await github.apply(action('remove_entitlement', login, first), subject('E1005'))).outcome, 'already');
    assert.equal((await github.apply(action('remove_entitlement', login, second), subject('E1005'))).outcome, 'done');
    assert.deepEqual(reposOf(login), []);
    assert.deepEqual(
      (await github.discover(subject('E1005'))).entitlements.map((e) => e.kind),
      ['outside_collaborator_invitation'],
      'only the pending invitation is left',
    );
  });

  it('an entitlement that discovery never reports is refused rather than guessed at', async () => {
    await assert.rejects(
      github.apply(
        action('remove_entitlement', loginOf('E1002'), { id: 'cn=engineering', kind: 'groupOfNames' }),
        subject('E1002'),
      ),
      failsWith({ retryable: false, code: 'bad_action' }),
    );
    await assert.rejects(
      github.apply(action('disable_login', '../../orgs/example-org'), subject('E1002')),
      failsWith({ retryable: false, code: 'bad_action' }),
    );
  });

  it('a secondary rate limit (429 or 403 with Retry-After) is retryable after its delay, and the call then succeeds', async () => {
    sandbox.inject({ rateLimitBurst: { count: 1, retryAfterSeconds: 7 } });
    await assert.rejects(
      github.discover(subject('E1003')),
      failsWith({ retryable: true, code: 'github_secondary_rate_limit', retryAfterMs: (ms) => ms === 7000 }),
    );
    assert.equal((await github.discover(subject('E1003'))).account?.id, loginOf('E1003'));

    const login = loginOf('E1003');
    sandbox.inject({ rateLimitBurst: { count: 1, retryAfterSeconds: 3, status: 403 } });
    await assert.rejects(
      github.apply(action('disable_login', login), subject('E1003')),
      failsWith({ retryable: true, code: 'github_secondary_rate_limit', retryAfterMs: (ms) => ms === 3000 }),
    );
    assert.equal(sandbox.state.memberships[login]?.state, 'active', 'nothing changed');
    assert.equal((await github.apply(action('disable_login', login), subject('E1003'))).outcome, 'done');
  });

  it('the primary rate limit (403, remaining 0) waits until x-ratelimit-reset', async () => {
    sandbox.inject({ primaryLimit: { resetInSeconds: 2 } });
    let waitMs = 0;
    await assert.rejects(
      github.discover(subject('E1003')),
      failsWith({
        retryable: true,
        code: 'github_rate_limited',
        message: /primary rate limit/,
        retryAfterMs: (ms) => {
          waitMs = ms;
          return ms >= 1000 && ms <= 3000;
        },
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, waitMs));
    assert.equal((await github.discover(subject('E1003'))).account?.id, loginOf('E1003'));
  });

  it('a 5xx, a reset connection and a timeout are retryable', async () => {
    sandbox.inject({ serverErrorRate: 1 });
    await assert.rejects(github.discover(subject('E1003')), failsWith({ retryable: true, code: 'github_502' }));
    sandbox.inject({ connectionResets: 1 });
    await assert.rejects(github.discover(subject('E1003')), failsWith({ retryable: true, code: 'github_unreachable' }));
    sandbox.inject({ latencyMs: 400 });
    await assert.rejects(
      connector({ timeoutMs: 100 }).discover(subject('E1003')),
      failsWith({ retryable: true, code: 'github_unreachable' }),
    );
    sandbox.inject({});
    assert.equal((await github.discover(subject('E1003'))).account?.id, loginOf('E1003'));
  });

  it('bad credentials (401) are not retried, and the message says to fix the token without showing it', async () => {
    await assert.rejects(
      connector({ token: 'ghs_notTheRightToken' }).discover(subject('E1001')),
      failsWith({
        retryable: false,
        code: 'github_401',
        message:
          /Bad credentials: the credentials were refused — check the GitHub App's ID, installation ID and private key .* or the owner's token/,
      }),
    );
  });

  it('as a GitHub App: the client signs a JWT, gets an installation token, reuses it for reads and writes', async () => {
    const app = connector({
      token: undefined,
      app: {
        appId: GITHUB_SANDBOX_APP.appId,
        installationId: GITHUB_SANDBOX_APP.installationId,
        privateKey: sandbox.appPrivateKey,
      },
    });
    const login = loginOf('E1004');
    const found = await app.discover(subject('E1004'));
    assert.equal(found.account?.id, login);
    assert.equal((await app.apply(action('disable_login', login), subject('E1004'))).outcome, 'done');
    assert.equal(sandbox.state.memberships[login], undefined, 'removed with the installation token');
    assert.equal(
      Object.keys(sandbox.state.installationTokens).length,
      1,
      'one installation token, cached across calls',
    );
  });

  it('as a GitHub App: a private key written with \\n in an environment variable works; a wrong key is refused without retrying', async () => {
    const escaped = sandbox.appPrivateKey.trim().replaceAll('\n', '\\n');
    const fromEnv = connector({
      token: undefined,
      app: {
        appId: String(GITHUB_SANDBOX_APP.appId),
        installationId: GITHUB_SANDBOX_APP.installationId,
        privateKey: escaped,
      },
    });
    assert.equal((await fromEnv.discover(subject('E1005'))).account?.id, loginOf('E1005'));

    const otherKey = generateKeyPairSync('rsa', { modulusLength: 2048 })
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    const wrong = connector({
      token: undefined,
      app: { appId: GITHUB_SANDBOX_APP.appId, installationId: GITHUB_SANDBOX_APP.installationId, privateKey: otherKey },
    });
    await assert.rejects(
      wrong.discover(subject('E1005')),
      failsWith({
        retryable: false,
        code: 'github_401',
        message: /JSON web token could not be decoded: .*GitHub App's ID, installation ID and private key/,
      }),
    );
    assert.ok(!JSON.stringify(sandbox.state).includes(otherKey.slice(40, 80)), 'the key never leaves the client');
  });

  it('takes exactly one of app and token, and says so', () => {
    const base = { type: 'github', baseUrl: sandbox.url, org: GITHUB_SANDBOX_ORG };
    const neither = githubSystemSchema.superRefine(githubAuthIssues).safeParse(base);
    const both = githubSystemSchema
      .superRefine(githubAuthIssues)
      .safeParse({ ...base, token: 't', app: { appId: 1, installationId: 1, privateKey: 'k' } });
    for (const result of [neither, both])
      assert.match(result.error?.issues[0]?.message ?? '', /give either `app` .* or `token`/);
  });

  it('a token that may not write gets a non-retryable permission error (403 without rate-limit signs)', async () => {
    const login = loginOf('E1004');
    await assert.rejects(
      connector({ token: GITHUB_SANDBOX_READ_ONLY_TOKEN }).apply(action('disable_login', login), subject('E1004')),
      failsWith({
        retryable: false,
        code: 'github_403',
        message: /Resource not accessible by integration: the token lacks permission/,
      }),
    );
    assert.equal(sandbox.state.memberships[login]?.state, 'active');
  });

  it('a person with no login mapped, or whose login has nothing in the org, has no account', async () => {
    assert.deepEqual(await github.discover(subject('E9876')), {
      system: 'github',
      account: null,
      entitlements: [],
      credentials: [],
    });
    assert.equal((await connector({ logins: { E5555: 'nobody-here' } }).discover(subject('E5555'))).account, null);
  });

  it('two logins for one person, or one login for two people, is ambiguous_identity', async () => {
    await assert.rejects(
      github.discover(subject(DUPLICATED_EMPLOYEE_ID)),
      failsWith({ retryable: false, code: 'ambiguous_identity', message: /several logins \(twin-a, twin-b\)/ }),
    );
    const shared = connector({ logins: { E1002: loginOf('E1002'), E1003: loginOf('E1002').toUpperCase() } });
    await assert.rejects(
      shared.discover(subject('E1002')),
      failsWith({ retryable: false, code: 'ambiguous_identity', message: /shared account/ }),
    );
  });

  it('a misspelt org is a configuration error, not "nobody is a member"', async () => {
    const wrong = connector({ org: 'exampel-org' });
    await assert.rejects(
      wrong.discover(subject('E1002')),
      failsWith({ retryable: false, code: 'github_org_not_found', message: /check `org`/ }),
    );
    await assert.rejects(
      wrong.apply(action('disable_login', loginOf('E1002')), subject('E1002')),
      failsWith({ retryable: false, code: 'github_org_not_found' }),
    );
  });

  it('an offboarding cancels the pending repository invitation and denies the pending PAT request: nothing is left to accept or approve', async () => {
    const login = loginOf('E1001');
    const repoInvitation = sandbox.state.repoInvitations.find((i) => i.invitee === login)!;
    const patRequest = sandbox.state.patRequests.find((r) => r.owner === login)!;
    const grantsBefore = sandbox.state.patGrants.length;
    const { found, results } = await offboard(github, withEmail('E1001'));
    assert.ok(found.entitlements.some((e) => e.id.endsWith(`/${repoInvitation.id}`)));
    assert.ok(results.every((r) => r.outcome === 'done' || r.outcome === 'already'));
    assert.deepEqual(
      sandbox.state.repoInvitations.filter((i) => i.invitee === login),
      [],
      'the repository invitation is deleted',
    );
    assert.deepEqual(
      sandbox.state.patRequests.filter((r) => r.owner === login),
      [],
      'the PAT request is reviewed',
    );
    assert.deepEqual(
      sandbox.state.patRequestReviews.map((r) => [r.id, r.action]),
      [[patRequest.id, 'deny']],
      'denied, not approved',
    );
    assert.ok(
      sandbox.state.patGrants.length < grantsBefore,
      'no grant was created by the review (the old ones were revoked)',
    );
    assert.ok(
      sandbox.state.repoInvitations.length > 0 && sandbox.state.patRequests.length > 0,
      "other people's are untouched",
    );
    const after = await github.discover(withEmail('E1001'));
    assert.deepEqual(leftovers(after), []);
    // Again: every removal reads first, and says already.
    const again = await offboard(connector(), withEmail('E1005'));
    assert.ok(again.results.some((r) => r.outcome === 'done'));
    for (const target of again.found.entitlements) {
      const repeated = await github.apply(action('remove_entitlement', loginOf('E1005'), target), withEmail('E1005'));
      assert.equal(repeated.outcome, 'already', target.id);
    }
  });

  it('an invitation sent to the email (login null) is found, keeps the login enabled, and disable_login cancels it', async () => {
    const person = samplePerson('E1038');
    const invitation = sandbox.state.orgInvitations.find((i) => i.email === person.email)!;
    assert.equal(invitation.login, null, 'GitHub shows an invitation to an email with login null');
    assert.equal(
      (await github.discover(subject('E1038'))).account,
      null,
      'without the email nothing in the org is theirs',
    );
    const found = await github.discover(withEmail('E1038'));
    assert.deepEqual(found.account, { id: loginOf('E1038'), disabled: false });
    assert.deepEqual(found.entitlements, [
      {
        id: `org-invitation:${invitation.id}`,
        kind: 'org_invitation',
        name: `pending invitation to ${GITHUB_SANDBOX_ORG} as direct_member, sent to their email`,
      },
    ]);
    assert.deepEqual(leftovers(found), [
      'github: login still enabled',
      `github: still in org_invitation org-invitation:${invitation.id}`,
    ]);
    const disabled = await github.apply(action('disable_login', loginOf('E1038')), withEmail('E1038'));
    assert.equal(disabled.outcome, 'done');
    assert.deepEqual(disabled.details.cancelledInvitationIds, [invitation.id]);
    assert.equal(
      sandbox.state.orgInvitations.some((i) => i.id === invitation.id),
      false,
      'the invitation is cancelled in GitHub',
    );
    assert.equal(
      (await github.apply(action('disable_login', loginOf('E1038')), withEmail('E1038'))).outcome,
      'already',
    );
    assert.equal((await github.discover(withEmail('E1038'))).account, null);
  });

  it('someone with no login mapped but an invitation to their email is found and uninvited', async () => {
    const unmapped = connector({ logins: {} });
    const found = await unmapped.discover(withEmail('E1038'));
    assert.deepEqual(found.account, { id: GITHUB_EMAIL_INVITEE, disabled: false });
    const [invitation] = found.entitlements;
    const removed = await unmapped.apply(
      action('remove_entitlement', GITHUB_EMAIL_INVITEE, invitation),
      withEmail('E1038'),
    );
    assert.equal(removed.outcome, 'done');
    assert.equal(sandbox.state.orgInvitations.filter((i) => i.email === samplePerson('E1038').email).length, 0);
    assert.equal(
      (await unmapped.apply(action('disable_login', GITHUB_EMAIL_INVITEE), withEmail('E1038'))).outcome,
      'already',
    );
    assert.equal((await unmapped.discover(withEmail('E1038'))).account, null);
    await assert.rejects(
      unmapped.apply(action('disable_login', GITHUB_EMAIL_INVITEE), subject('E1038')),
      failsWith({ retryable: false, code: 'bad_action', message: /carries none/ }),
    );
  });

  it("an invitation id that is not the person's is never cancelled: already, and theirs stays", async () => {
    const other = sandbox.state.orgInvitations.find((i) => i.login === loginOf('E1037'))!;
    const result = await github.apply(
      action('remove_entitlement', loginOf('E1038'), { id: `org-invitation:${other.id}`, kind: 'org_invitation' }),
      withEmail('E1038'),
    );
    assert.equal(result.outcome, 'already');
    assert.ok(sandbox.state.orgInvitations.some((i) => i.id === other.id));
  });

  it("a non-member's invitation to a repository is an outside-collaborator invitation, and removing it deletes it", async () => {
    const login = loginOf('E1039');
    const found = await github.discover(withEmail('E1039'));
    const invitation = sandbox.state.repoInvitations.find((i) => i.invitee === login)!;
    assert.deepEqual(found.account, { id: login, disabled: true }, 'not a member: nothing to sign in to yet');
    assert.deepEqual(found.entitlements, [
      {
        id: `repo-invitation:${GITHUB_SANDBOX_ORG}/web/${invitation.id}`,
        kind: 'outside_collaborator_invitation',
        name: `pending invitation to ${GITHUB_SANDBOX_ORG}/web (write)`,
      },
    ]);
    assert.equal(
      (await github.apply(action('remove_entitlement', login, found.entitlements[0]), withEmail('E1039'))).outcome,
      'done',
    );
    assert.equal(
      sandbox.state.repoInvitations.some((i) => i.id === invitation.id),
      false,
    );
    assert.equal((await github.discover(withEmail('E1039'))).account, null);
  });

  it('a removal GitHub answers 2xx but has not applied is retried, never reported done', async () => {
    const login = loginOf('E1001');
    const target = (await github.discover(withEmail('E1001'))).entitlements.find((e) => e.kind === 'pat_request')!;
    sandbox.inject({ unappliedWrites: 1 });
    await assert.rejects(
      github.apply(action('remove_entitlement', login, target), withEmail('E1001')),
      failsWith({ retryable: true, code: 'github_still_present', message: /still finds it/ }),
    );
    assert.equal(sandbox.state.patRequests.filter((r) => r.owner === login).length, 1, 'still pending');
    assert.equal((await github.apply(action('remove_entitlement', login, target), withEmail('E1001'))).outcome, 'done');

    sandbox.inject({ unappliedWrites: 1 });
    await assert.rejects(
      github.apply(action('revoke_tokens', login), withEmail('E1001')),
      failsWith({ retryable: true, code: 'github_still_present' }),
    );
    sandbox.inject({ unappliedWrites: 1 });
    await assert.rejects(
      github.apply(action('remove_entitlement', login, { id: 'team:payments', kind: 'team' }), withEmail('E1001')),
      failsWith({ retryable: true, code: 'github_still_present' }),
    );
    assert.ok(teamsOf(login).includes('payments'));
    sandbox.inject({ unappliedWrites: 1 });
    await assert.rejects(
      github.apply(action('disable_login', login), withEmail('E1001')),
      failsWith({ retryable: true, code: 'github_still_present' }),
    );
    assert.equal(sandbox.state.memberships[login]?.state, 'active');
  });

  it('check() exercises the credentials: a wrong token fails it, the right one passes', async () => {
    await github.check!();
    await assert.rejects(
      connector({ token: 'ghs_notTheRightToken' }).check!(),
      failsWith({ retryable: false, code: 'github_401' }),
    );
  });

  it('the stand-in answers like GitHub and can be inspected and steered over HTTP', async () => {
    const unauthenticated = await fetch(`${sandbox.url}/orgs/${GITHUB_SANDBOX_ORG}/memberships/keeper`);
    assert.equal(unauthenticated.status, 401);
    assert.equal(unauthenticated.headers.get('x-ratelimit-limit'), '60');
    assert.deepEqual(Object.keys((await unauthenticated.json()) as object).sort(), ['documentation_url', 'message']);

    const state = (await (await fetch(`${sandbox.url}/_sandbox/state`)).json()) as { org: { login: string } };
    assert.equal(state.org.login, GITHUB_SANDBOX_ORG);
    await fetch(`${sandbox.url}/_sandbox/faults`, {
      method: 'POST',
      body: JSON.stringify({ rateLimitBurst: { count: 1, retryAfterSeconds: 5 } }),
    });
    const limited = await fetch(`${sandbox.url}/orgs/${GITHUB_SANDBOX_ORG}/teams?per_page=2`, {
      headers: { authorization: `Bearer ${GITHUB_SANDBOX_TOKEN}` },
    });
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '5');
    const page = await fetch(`${sandbox.url}/orgs/${GITHUB_SANDBOX_ORG}/teams?per_page=2`, {
      headers: { authorization: `token ${GITHUB_SANDBOX_TOKEN}` },
    });
    assert.equal(((await page.json()) as unknown[]).length, 2);
    assert.match(page.headers.get('link') ?? '', /[?&]page=2>; rel="next"/);
    assert.ok(Number(page.headers.get('x-ratelimit-remaining')) < 5000);
  });
});
