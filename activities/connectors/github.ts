/**
 * GitHub organisation access as a target system, through @octokit/rest pointed at `baseUrl`
 * (https://api.github.com, a GitHub Enterprise Server's /api/v3, or the local stand-in).
 *
 * Identity: GitHub accounts belong to people, not to the company, so the HR person is correlated
 * by a configured mapping `logins: { <employeeId>: <login> }`. No mapping, or a mapped login with no
 * footprint in the organisation (no membership, invitation, repository, token grant or SSO
 * authorization) is `account: null`. A person mapped to several logins, or a login mapped to
 * several people (a shared account), is a non-retryable `ambiguous_identity`: removing it for one
 * person would cut off another. The account id is the login; `disabled` means "not an active
 * member and no pending invitation".
 *
 * Discovery: membership (`GET /orgs/{org}/memberships/{login}`: active/pending, admin/member);
 * teams (each of the org's teams is asked for the login's membership — one request per team, as
 * REST has no "teams of a user in an org"; GraphQL `teams(userLogins:)` would be one request);
 * outside-collaborator repositories (only for someone in `/outside_collaborators`, one check per
 * repository); fine-grained PAT grants (`?owner[]=login`; the endpoint accepts GitHub App tokens
 * only) and SAML SSO credential authorizations (GitHub Enterprise Cloud with SAML). Entitlements:
 * `org-role:admin` (org_role), `team:<slug>` (team), `repo:<owner>/<name>` (outside_collaborator).
 * Credentials: `pat:<grant id>` (token), `sso:<credential id>` (token, or key for an SSH key).
 *
 * Action mapping:
 * - disable_login: DELETE /orgs/{org}/memberships/{login}. Removes an active member — and with it
 *   their teams and repository access — or cancels a pending invitation; 404 = already.
 * - enable_login: refused (non-retryable) unless the person is still a member or invited
 *   (`already`): a removed member must be re-invited and accept, which no API can do for them.
 * - revoke_tokens: POST /orgs/{org}/personal-access-tokens {action: 'revoke', pat_ids} for every
 *   PAT grant (202), and DELETE /orgs/{org}/credential-authorizations/{id} for every SSO
 *   authorization (a classic PAT's or an SSH key's access to the org); nothing left = already.
 * - revoke_sessions: not_applicable. GitHub has no API that ends a person's web sessions (they
 *   belong to the personal account); what an org can take away — membership and the SSO
 *   authorizations of their tokens and keys — is done by disable_login and revoke_tokens, so
 *   counting the SSO deletion here again would report one removal twice.
 * - remove_entitlement:
 *   - team:<slug> → DELETE /orgs/{org}/teams/{slug}/memberships/{login}; 403 (a team synchronized
 *     with an identity-provider group, or a token without rights) is non-retryable, saying which.
 *   - repo:<owner>/<name> → DELETE /repos/{owner}/{repo}/collaborators/{login}, one repository at
 *     a time (the org-wide DELETE /orgs/{org}/outside_collaborators/{login} would also take the
 *     repositories a role change keeps); a member's repository access goes with membership.
 *   - org-role:admin → the owner role is removed by demoting: PUT /orgs/{org}/memberships/{login}
 *     {role: 'member'} for an active admin (so a staged playbook can drop privilege before the
 *     membership); no membership left = already. PUT invites a non-member, so membership is read
 *     first, and an invitation created by a race with a removal is cancelled at once.
 * - delete_account, transfer_ownership: not_applicable (personal accounts; repositories belong
 *   to the organisation).
 *
 * Credentials: a GitHub App (`app: { appId, installationId, privateKey }`, the production shape):
 * @octokit/auth-app signs a JWT with the app's key, exchanges it for an installation token
 * (valid one hour), caches it and mints a new one before it expires, so a staged offboarding days
 * long keeps working. Or a static `token`: an organisation owner's classic PAT with admin:org (an
 * installation token pasted into the config would stop working after an hour). Exactly one.
 *
 * Retries: Octokit core retries nothing by itself, and the retry and throttling plugins are not
 * loaded, so each activity attempt sends each request once and Temporal's retry policy stays in
 * charge. Rate limits become retryable ConnectorErrors with `retryAfterMs`: `retry-after` first,
 * then `x-ratelimit-remaining: 0` (wait until `x-ratelimit-reset`), then a "secondary rate limit"
 * message or a bare 429 (a minute, as GitHub advises). A 403 without those is a permission error.
 */
import { createAppAuth } from '@octokit/auth-app';
import { Octokit } from '@octokit/rest';
import { z } from 'zod';
import type { Action, Credential, Discovery, Entitlement } from '../../model/plan.js';
import type { Subject } from '../../model/request.js';
import { defineConnector } from './descriptor.js';
import { ConnectorError, type ApplyResult, type Connector } from './types.js';

/** GitHub's own rule for logins: alphanumerics and single inner hyphens, at most 39 characters. */
const loginSchema = z.string().regex(/^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$/, 'a GitHub login');

export const githubSystemSchema = z.object({
  type: z.literal('github'),
  baseUrl: z.url().default('https://api.github.com'),
  /** A static token: an organisation owner's classic PAT with admin:org (a secret). Or `app`. */
  token: z.string().min(1).optional(),
  /** A GitHub App installed on the organisation; the private key (PEM) is a secret. Or `token`. */
  app: z
    .object({
      appId: z.union([z.number().int().positive(), z.string().regex(/^\d+$/, 'the numeric App ID')]),
      installationId: z.number().int().positive(),
      privateKey: z.string().min(1),
    })
    .optional(),
  org: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9-]{0,38}$/, 'an organisation login'),
  /** Employee id → GitHub login. Several logins for one person are refused as ambiguous. */
  logins: z.record(z.string(), z.union([loginSchema, z.array(loginSchema).min(1)])).default({}),
  /** Fine-grained PAT grants (needs a GitHub App token with "Personal access tokens" read/write). */
  fineGrainedTokens: z.boolean().default(true),
  /** SAML SSO credential authorizations (GitHub Enterprise Cloud organisations with SAML). */
  samlSso: z.boolean().default(true),
  timeoutMs: z.number().int().positive().default(15_000),
});
export type GithubSystemConfig = z.infer<typeof githubSystemSchema>;

export const githubConnector = defineConnector({
  type: 'github',
  configSchema: githubSystemSchema,
  secretFields: ['token', 'app.privateKey'],
  refine: githubAuthIssues,
  capabilities: {
    actions: ['disable_login', 'enable_login', 'revoke_tokens', 'remove_entitlement'],
    discover: true,
    verify: true,
    check: true,
  },
  create: (config, { system }) => createGithubConnector(system, config),
});

const AUTH_CHOICE =
  "give either `app` (appId, installationId, privateKey: a GitHub App, recommended) or `token` (an owner's PAT with admin:org), not both";
/**
 * Exactly one of `app` and `token`. Kept out of the schema itself (which the config file extends,
 * and zod cannot extend a refined object): apply it with `.superRefine(githubAuthIssues)`.
 */
export function githubAuthIssues(config: { token?: unknown; app?: unknown }, ctx: z.RefinementCtx): void {
  if ((config.token === undefined) === (config.app === undefined))
    ctx.addIssue({ code: 'custom', path: ['token'], message: AUTH_CHOICE });
}

/** A PEM from an environment variable may arrive with its newlines written as `\n`. */
const pem = (key: string) => (key.includes('\\n') && !key.includes('\n') ? key.replaceAll('\\n', '\n') : key);

const API_VERSION = '2022-11-28';
const ADMIN_ROLE = 'org-role:admin';
const SECONDARY_LIMIT_WAIT_MS = 60_000;

const ssoAuthorizationSchema = z.object({
  login: z.string(),
  credential_id: z.number(),
  credential_type: z.string(),
});
type SsoAuthorization = z.infer<typeof ssoAuthorizationSchema>;

interface PatGrant {
  id: number;
  owner: { login: string };
}

// ---- Failures ----------------------------------------------------------------------------

interface HttpFailure {
  status: number;
  message: string;
  response?: { headers: Record<string, unknown>; data?: unknown };
}

function asHttpFailure(err: unknown): HttpFailure | undefined {
  if (typeof err !== 'object' || err === null || typeof (err as { status?: unknown }).status !== 'number')
    return undefined;
  return err as HttpFailure;
}

const statusOf = (err: unknown) => asHttpFailure(err)?.status;

/** GitHub's `{ message }`, without the documentation link Octokit appends to its own message. */
function apiMessage(failure: HttpFailure): string {
  const data = failure.response?.data;
  if (typeof data === 'object' && data !== null && typeof (data as { message?: unknown }).message === 'string')
    return (data as { message: string }).message;
  return failure.message;
}

/** How long GitHub asks us to wait, if this answer is a rate limit (GitHub's documented order). */
function rateLimitWait(failure: HttpFailure): { ms: number; kind: 'primary' | 'secondary' } | undefined {
  if (failure.status !== 403 && failure.status !== 429) return undefined;
  const headers = failure.response?.headers ?? {};
  const retryAfter = headers['retry-after'];
  if (retryAfter !== undefined) {
    const seconds = Number(retryAfter);
    const ms = Number.isFinite(seconds) ? seconds * 1000 : Date.parse(String(retryAfter)) - Date.now();
    return { ms: Math.max(1000, Number.isFinite(ms) ? ms : SECONDARY_LIMIT_WAIT_MS), kind: 'secondary' };
  }
  if (String(headers['x-ratelimit-remaining']) === '0') {
    const reset = Number(headers['x-ratelimit-reset']);
    const ms = Number.isFinite(reset) ? reset * 1000 - Date.now() : SECONDARY_LIMIT_WAIT_MS;
    return { ms: Math.max(1000, ms), kind: 'primary' };
  }
  if (failure.status === 429 || /secondary rate limit/i.test(apiMessage(failure)))
    return { ms: SECONDARY_LIMIT_WAIT_MS, kind: 'secondary' };
  return undefined;
}

function classify(err: unknown, doing: string): ConnectorError {
  if (err instanceof ConnectorError) return err;
  const failure = asHttpFailure(err);
  const message = err instanceof Error ? err.message : String(err);
  // No answer at all (refused, reset, timed out): Octokit reports these as status 500 without a response.
  if (!failure?.response)
    return new ConnectorError(
      `GitHub ${doing} failed: no answer from the API (${message})`,
      true,
      'github_unreachable',
    );
  const said = apiMessage(failure);
  const wait = rateLimitWait(failure);
  if (wait) {
    const seconds = Math.ceil(wait.ms / 1000);
    return new ConnectorError(
      `GitHub ${doing} hit the ${wait.kind} rate limit (${failure.status} ${said}); retry in ${seconds} s`,
      true,
      wait.kind === 'primary' ? 'github_rate_limited' : 'github_secondary_rate_limit',
      wait.ms,
    );
  }
  const { status } = failure;
  if (status === 401) {
    return new ConnectorError(
      `GitHub ${doing} failed: 401 ${said}: the credentials were refused — check the GitHub App's ID, installation ID and private key (and that the clock is right), or the owner's token`,
      false,
      'github_401',
    );
  }
  if (status === 403) {
    return new ConnectorError(
      `GitHub ${doing} was refused: 403 ${said}: the token lacks permission — it needs organisation owner rights (GitHub App: Members read/write, Administration read, Personal access tokens read/write)`,
      false,
      'github_403',
    );
  }
  if (status >= 500)
    return new ConnectorError(
      `GitHub ${doing} failed: ${status} ${said}; GitHub may be having trouble`,
      true,
      `github_${status}`,
    );
  return new ConnectorError(`GitHub ${doing} failed: ${status} ${said}`, false, `github_${status}`);
}

const sameLogin = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
const loginsOf = (value: string | string[]) => [
  ...new Set((Array.isArray(value) ? value : [value]).map((l) => l.toLowerCase())),
];

// ---- The connector -----------------------------------------------------------------------

export function createGithubConnector(system: string, config: GithubSystemConfig): Connector {
  const { org } = config;
  if ((config.token === undefined) === (config.app === undefined))
    throw new Error(`GitHub system ${system}: ${AUTH_CHOICE}`);
  const octokit = new Octokit({
    ...(config.app
      ? {
          authStrategy: createAppAuth,
          auth: {
            appId: config.app.appId,
            installationId: config.app.installationId,
            privateKey: pem(config.app.privateKey),
          },
        }
      : { auth: config.token }),
    baseUrl: config.baseUrl.replace(/\/+$/, ''),
    userAgent: 'offboard',
    // Failures surface as ConnectorErrors; Octokit's own error log would repeat every expected 404.
    log: {
      debug: () => undefined,
      info: () => undefined,
      warn: (text: string) => console.warn(text),
      error: () => undefined,
    },
    request: {
      fetch: (url: string, init: RequestInit) => fetch(url, { ...init, signal: AbortSignal.timeout(config.timeoutMs) }),
    },
  });
  octokit.hook.before('request', (options) => {
    options.headers['x-github-api-version'] = API_VERSION;
  });

  async function call<T>(doing: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw classify(err, doing);
    }
  }

  /** A 404 as `null` ("not there"), every other failure as it was. */
  async function orNull<T>(request: Promise<T>): Promise<T | null> {
    try {
      return await request;
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw err;
    }
  }

  // A misspelt org answers 404 to every membership question, which would read as "nobody is a
  // member" and offboard nothing: the org is checked once before anything else.
  let orgChecked: Promise<void> | undefined;
  function checkOrg(): Promise<void> {
    orgChecked ??= (async () => {
      const found = await orNull(octokit.rest.orgs.get({ org }));
      if (!found)
        throw new ConnectorError(
          `GitHub organisation "${org}" does not exist or the token cannot see it: check \`org\`, and that the GitHub App is installed on it`,
          false,
          'github_org_not_found',
        );
    })().catch((err: unknown) => {
      orgChecked = undefined;
      throw err;
    });
    return orgChecked;
  }

  function loginFor(subject: Subject): string | null {
    const mapped = config.logins[subject.employeeId];
    if (mapped === undefined) return null;
    const candidates = loginsOf(mapped);
    if (candidates.length > 1) {
      throw new ConnectorError(
        `GitHub: employee ${subject.employeeId} maps to several logins (${candidates.join(', ')}) in \`logins\`; refusing to guess — keep the one account that is theirs`,
        false,
        'ambiguous_identity',
      );
    }
    const login = candidates[0]!;
    const sharers = Object.entries(config.logins)
      .filter(([id, value]) => id !== subject.employeeId && loginsOf(value).includes(login))
      .map(([id]) => id);
    if (sharers.length > 0) {
      throw new ConnectorError(
        `GitHub: login ${login} is mapped to employees ${[subject.employeeId, ...sharers].join(', ')} in \`logins\`; a shared account cannot be offboarded for one person — fix the mapping`,
        false,
        'ambiguous_identity',
      );
    }
    return login;
  }

  const membership = (login: string) => orNull(octokit.rest.orgs.getMembershipForUser({ org, username: login }));

  async function teamMemberships(login: string): Promise<Entitlement[]> {
    const teams = await octokit.paginate(octokit.rest.teams.list, { org, per_page: 100 });
    const found: Entitlement[] = [];
    // One team at a time: GitHub asks for serial requests to avoid secondary rate limits.
    for (const team of teams) {
      if (await orNull(octokit.rest.teams.getMembershipForUserInOrg({ org, team_slug: team.slug, username: login }))) {
        found.push({ id: `team:${team.slug}`, kind: 'team', name: team.name });
      }
    }
    return found;
  }

  async function isOutsideCollaborator(login: string): Promise<boolean> {
    const outside = await octokit.paginate(octokit.rest.orgs.listOutsideCollaborators, { org, per_page: 100 });
    return outside.some((user) => sameLogin(user.login, login));
  }

  async function outsideCollaboratorRepos(login: string): Promise<Entitlement[]> {
    if (!(await isOutsideCollaborator(login))) return [];
    const repos = await octokit.paginate(octokit.rest.repos.listForOrg, { org, type: 'all', per_page: 100 });
    const found: Entitlement[] = [];
    for (const repo of repos) {
      if (
        await orNull(
          octokit.rest.repos.checkCollaborator({ owner: repo.owner.login, repo: repo.name, username: login }),
        )
      ) {
        found.push({ id: `repo:${repo.full_name}`, kind: 'outside_collaborator', name: repo.full_name });
      }
    }
    return found;
  }

  async function patGrants(login: string): Promise<PatGrant[]> {
    if (!config.fineGrainedTokens) return [];
    try {
      // GitHub reads the owner filter as a Rails-style array (`owner[]=`); the owners are checked
      // again here, so a filter the server ignored cannot revoke someone else's token.
      // Octokit's typed route would send `owner=` (its array form), so the route is passed untyped.
      const route: string = 'GET /orgs/{org}/personal-access-tokens';
      const grants = await octokit.paginate<PatGrant>(route, { org, 'owner[]': login, per_page: 100 });
      return grants.filter((grant) => sameLogin(grant.owner.login, login));
    } catch (err) {
      const failure = classify(err, 'listing fine-grained PAT grants');
      if (failure.code === 'github_403' || failure.code === 'github_404') {
        throw new ConnectorError(
          `${failure.message}. Listing fine-grained PAT grants needs a GitHub App installation token with the "Personal access tokens" organisation permission; use one, or set fineGrainedTokens: false`,
          false,
          failure.code,
        );
      }
      throw failure;
    }
  }

  async function ssoAuthorizations(login: string): Promise<SsoAuthorization[]> {
    if (!config.samlSso) return [];
    try {
      // Not in Octokit's route table (GHEC only), hence a plain request, parsed here.
      const raw = await octokit.paginate<unknown>('GET /orgs/{org}/credential-authorizations', {
        org,
        login,
        per_page: 100,
      });
      return z
        .array(ssoAuthorizationSchema)
        .parse(raw)
        .filter((a) => sameLogin(a.login, login));
    } catch (err) {
      if (err instanceof z.ZodError)
        throw new ConnectorError(
          `GitHub answered SSO credential authorizations in an unexpected shape: ${err.issues[0]?.message ?? 'invalid'}`,
          false,
          'github_unexpected_answer',
        );
      const failure = classify(err, 'listing SAML SSO credential authorizations');
      if (failure.code === 'github_404' || failure.code === 'github_403') {
        throw new ConnectorError(
          `${failure.message}. SSO credential authorizations exist only for GitHub Enterprise Cloud organisations with SAML SSO and need owner rights; fix the token, or set samlSso: false`,
          false,
          failure.code,
        );
      }
      throw failure;
    }
  }

  // ---- Actions ---------------------------------------------------------------------------

  async function removeMembership(login: string): Promise<ApplyResult> {
    const before = await membership(login);
    if (!before) return { outcome: 'already', details: { org, login, note: 'not a member and not invited' } };
    // One call for both: it removes an active member and cancels a pending invitation.
    const removed = await orNull(octokit.rest.orgs.removeMembershipForUser({ org, username: login }));
    if (!removed) return { outcome: 'already', details: { org, login, note: 'removed meanwhile' } };
    return {
      outcome: 'done',
      details: { org, login, previousState: before.data.state, previousRole: before.data.role },
    };
  }

  async function restoreMembership(login: string): Promise<ApplyResult> {
    const current = await membership(login);
    if (current)
      return { outcome: 'already', details: { org, login, state: current.data.state, role: current.data.role } };
    throw new ConnectorError(
      `GitHub membership cannot be restored automatically: re-invite ${login} to ${org} (and add them back to their teams)`,
      false,
      'github_cannot_restore',
    );
  }

  async function revokeTokens(login: string): Promise<ApplyResult> {
    const grants = await patGrants(login);
    const authorizations = await ssoAuthorizations(login);
    if (grants.length === 0 && authorizations.length === 0)
      return { outcome: 'already', details: { org, login, patGrants: 0, ssoAuthorizations: 0 } };
    const patGrantIds = grants.map((g) => g.id);
    await revokeGrants(login, patGrantIds);
    for (const authorization of authorizations) {
      await orNull(
        octokit.request('DELETE /orgs/{org}/credential-authorizations/{credential_id}', {
          org,
          credential_id: authorization.credential_id,
        }),
      );
    }
    return {
      outcome: 'done',
      details: { org, login, patGrantIds, ssoCredentialIds: authorizations.map((a) => a.credential_id) },
    };
  }

  async function revokeGrants(login: string, ids: number[]): Promise<void> {
    // At most 100 ids per request, as GitHub documents.
    for (let i = 0; i < ids.length; i += 100) {
      const batch = ids.slice(i, i + 100);
      const revoked = await orNull(octokit.rest.orgs.updatePatAccesses({ org, action: 'revoke', pat_ids: batch }));
      if (revoked) continue;
      // 404: some grant vanished meanwhile (its token expired or was revoked); revoke the rest.
      const remaining = (await patGrants(login)).map((g) => g.id).filter((id) => batch.includes(id));
      if (remaining.length > 0)
        await octokit.rest.orgs.updatePatAccesses({ org, action: 'revoke', pat_ids: remaining });
    }
  }

  async function removeTeam(login: string, slug: string): Promise<ApplyResult> {
    const current = await orNull(
      octokit.rest.teams.getMembershipForUserInOrg({ org, team_slug: slug, username: login }),
    );
    if (!current) return { outcome: 'already', details: { org, login, team: slug } };
    try {
      await octokit.rest.teams.removeMembershipForUserInOrg({ org, team_slug: slug, username: login });
    } catch (err) {
      if (statusOf(err) === 404) return { outcome: 'already', details: { org, login, team: slug } };
      const failure = classify(err, `removing ${login} from team ${slug}`);
      if (failure.code === 'github_403') {
        throw new ConnectorError(
          `GitHub refused to remove ${login} from team ${slug} (${failure.message.replace(/^.*?403 /, '403 ')}). If the team is synchronized with an identity-provider group (team sync), remove the person from that group in the IdP; otherwise give the token admin rights on the team, then retry`,
          false,
          'github_team_forbidden',
        );
      }
      throw failure;
    }
    return { outcome: 'done', details: { org, login, team: slug, previousRole: current.data.role } };
  }

  async function removeOutsideCollaborator(login: string, repository: string): Promise<ApplyResult> {
    // One repository at a time: the org-wide removal would also take repositories a role change keeps.
    const [owner, repo] = repository.split('/') as [string, string];
    if (!(await isOutsideCollaborator(login)))
      return {
        outcome: 'already',
        details: { org, login, repository, note: 'not an outside collaborator of the organisation' },
      };
    if (!(await orNull(octokit.rest.repos.checkCollaborator({ owner, repo, username: login })))) {
      return { outcome: 'already', details: { org, login, repository } };
    }
    try {
      await octokit.rest.repos.removeCollaborator({ owner, repo, username: login });
    } catch (err) {
      if (statusOf(err) === 404) return { outcome: 'already', details: { org, login, repository } };
      throw err;
    }
    return { outcome: 'done', details: { org, login, repository } };
  }

  async function demoteAdmin(login: string): Promise<ApplyResult> {
    const current = await membership(login);
    if (!current)
      return {
        outcome: 'already',
        details: { org, login, note: 'no longer a member; the owner role went with the membership' },
      };
    if (current.data.role !== 'admin') return { outcome: 'already', details: { org, login, role: current.data.role } };
    if (current.data.state !== 'active') {
      throw new ConnectorError(
        `GitHub: ${login} has a pending invitation to ${org} as an owner; cancel it with disable_login (or re-invite them as a member), then retry`,
        false,
        'github_pending_admin',
      );
    }
    const updated = await octokit.rest.orgs.setMembershipForUser({ org, username: login, role: 'member' });
    if (updated.data.state === 'pending') {
      // The membership was removed between the read and the PUT, so the PUT sent an invitation.
      await orNull(octokit.rest.orgs.removeMembershipForUser({ org, username: login }));
      return {
        outcome: 'already',
        details: {
          org,
          login,
          note: 'membership removed meanwhile; the invitation the demotion created was cancelled',
        },
      };
    }
    return { outcome: 'done', details: { org, login, previousRole: 'admin', role: 'member' } };
  }

  async function removeEntitlement(login: string, target: Entitlement | undefined): Promise<ApplyResult> {
    if (target?.kind === 'team' && target.id.startsWith('team:'))
      return removeTeam(login, target.id.slice('team:'.length));
    if (target?.kind === 'outside_collaborator' && target.id.startsWith('repo:'))
      return removeOutsideCollaborator(login, target.id.slice('repo:'.length));
    if (target?.kind === 'org_role' && target.id === ADMIN_ROLE) return demoteAdmin(login);
    throw new ConnectorError(
      `GitHub: cannot remove entitlement ${target ? `${target.kind} ${target.id}` : '(none given)'}; expected team:<slug>, repo:<owner>/<name> or ${ADMIN_ROLE} from discovery`,
      false,
      'bad_action',
    );
  }

  async function apply(action: Action): Promise<ApplyResult> {
    const login = loginSchema.safeParse(action.accountId);
    if (!login.success)
      throw new ConnectorError(`GitHub: account id "${action.accountId}" is not a GitHub login`, false, 'bad_action');
    const username = login.data;
    switch (action.kind) {
      case 'revoke_sessions':
        return {
          outcome: 'not_applicable',
          details: {
            reason:
              'GitHub has no API to end web sessions; membership removal (disable_login) and SSO authorization revocation (revoke_tokens) end the organisation access',
          },
        };
      case 'delete_account':
      case 'transfer_ownership':
        return {
          outcome: 'not_applicable',
          details: { reason: 'GitHub accounts are personal and repositories belong to the organisation' },
        };
    }
    return call(action.kind, async () => {
      await checkOrg();
      switch (action.kind) {
        case 'disable_login':
          return removeMembership(username);
        case 'enable_login':
          return restoreMembership(username);
        case 'revoke_tokens':
          return revokeTokens(username);
        case 'remove_entitlement':
          return removeEntitlement(username, action.target);
        default:
          throw new ConnectorError(`GitHub: unsupported action ${action.kind}`, false, 'bad_action');
      }
    });
  }

  async function discover(subject: Subject): Promise<Discovery> {
    const none: Discovery = { system, account: null, entitlements: [], credentials: [] };
    const login = loginFor(subject);
    if (!login) return none;
    return call('discover', async () => {
      await checkOrg();
      const member = await membership(login);
      const entitlements: Entitlement[] = [];
      if (member) {
        if (member.data.role === 'admin')
          entitlements.push({ id: ADMIN_ROLE, kind: 'org_role', name: 'organisation owner' });
        entitlements.push(...(await teamMemberships(login)));
      } else {
        // Outside collaborators are by definition not members.
        entitlements.push(...(await outsideCollaboratorRepos(login)));
      }
      const credentials: Credential[] = [
        ...(await patGrants(login)).map((g) => ({ id: `pat:${g.id}`, kind: 'token' as const })),
        ...(await ssoAuthorizations(login)).map((a) => ({
          id: `sso:${a.credential_id}`,
          kind: /ssh/i.test(a.credential_type) ? ('key' as const) : ('token' as const),
        })),
      ];
      if (!member && entitlements.length === 0 && credentials.length === 0) return none;
      return { system, account: { id: login, disabled: !member }, entitlements, credentials };
    });
  }

  return {
    system,
    discover,
    apply,
    check: () => call('check', checkOrg),
    async close() {},
  };
}
