/**
 * GitHub organisation access as a target system, through @octokit/rest pointed at `baseUrl`
 * (https://api.github.com, a GitHub Enterprise Server's /api/v3, or the local stand-in).
 *
 * Identity: GitHub accounts belong to people, not to the company, so the HR person is correlated
 * by a configured mapping `logins: { <employeeId>: <login> }`. No mapping, or a mapped login with no
 * footprint in the organisation (no membership, invitation, repository, token grant or SSO
 * authorization) is `account: null`. A person mapped to several logins, or a login mapped to
 * several people (a shared account), is a non-retryable `ambiguous_identity`: removing it for one
 * person would cut off another. The request's email finds the organisation invitations sent to
 * it (GitHub shows those with `login: null`), so someone with no login mapped who was invited by
 * email is found too, with the account id `(invited by email)`. The account id is otherwise the
 * login; `disabled` means "not a member and no pending invitation to the organisation" (an
 * invitation is a way in: accepted after the person left, it would make them a member).
 *
 * Discovery: membership (`GET /orgs/{org}/memberships/{login}`: active/pending, admin/member);
 * teams (each of the org's teams is asked for the login's membership — one request per team, as
 * REST has no "teams of a user in an org"; GraphQL `teams(userLogins:)` would be one request);
 * outside-collaborator repositories (only for someone in `/outside_collaborators`, one check per
 * repository); fine-grained PAT grants (`?owner[]=login`; the endpoint accepts GitHub App tokens
 * only) and SAML SSO credential authorizations (GitHub Enterprise Cloud with SAML). Pending
 * access, which could still be accepted or approved after the person left: organisation
 * invitations (`GET /orgs/{org}/invitations`, matched by login or email), repository invitations
 * (`GET /repos/{owner}/{repo}/invitations` for every repository of the organisation: GitHub has no
 * org-wide listing; `repositoryInvitations: false` turns this off) and fine-grained PAT requests
 * (`GET /orgs/{org}/personal-access-token-requests?owner[]=login`). Entitlements: `org-role:admin`
 * (org_role), `team:<slug>` (team), `repo:<owner>/<name>` (outside_collaborator),
 * `org-invitation:<id>` (org_invitation), `repo-invitation:<owner>/<name>/<id>`
 * (repository_invitation, or outside_collaborator_invitation for someone not a member),
 * `pat-request:<id>` (pat_request). Credentials: `pat:<grant id>` (token), `sso:<credential id>`
 * (token, or key for an SSH key).
 *
 * Every removal reads its target first (`already` only when it is not there) and reads it back
 * after: GitHub answers some removals 204 whether or not anything was removed, and applies a PAT
 * revocation after answering 202, so a target still there after a 2xx is a retryable
 * `github_still_present`, never `done`.
 *
 * Action mapping:
 * - disable_login: DELETE /orgs/{org}/memberships/{login}. Removes an active member — and with it
 *   their teams and repository access — or cancels a pending invitation to the login; then
 *   DELETE /orgs/{org}/invitations/{id} for every invitation left (to their email). Nothing there
 *   = already.
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
 *   - org-invitation:<id> → DELETE /orgs/{org}/invitations/{id}, only while the invitation is
 *     still one of the person's (by login or email): an id alone could name someone else's.
 *   - repo-invitation:<owner>/<name>/<id> → DELETE /repos/{owner}/{repo}/invitations/{id}.
 *   - pat-request:<id> → POST /orgs/{org}/personal-access-token-requests/{id} {action: 'deny'}
 *     (204); the bulk endpoint answers 202 and decides later, this one decides.
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
  /**
   * Pending repository invitations, read from every repository of the organisation (GitHub has no
   * organisation-wide listing): one request per repository. Turn off only where that is too many.
   */
  repositoryInvitations: z.boolean().default(true),
  timeoutMs: z.number().int().positive().default(15_000),
});
export type GithubSystemConfig = z.infer<typeof githubSystemSchema>;

export const githubConnector = defineConnector({
  type: 'github',
  configSchema: githubSystemSchema,
  secretFields: ['token', 'app.privateKey'],
  personalFields: ['logins'],
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
/**
 * The account id of someone GitHub knows only by a pending invitation to their email (no login
 * mapped): not a valid login, so it can never be mistaken for one.
 */
export const GITHUB_EMAIL_INVITEE = '(invited by email)';
const ORG_INVITATION = 'org-invitation:';
const REPO_INVITATION = 'repo-invitation:';
const PAT_REQUEST = 'pat-request:';
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
interface PatRequest {
  id: number;
  owner: { login: string };
  token_name: string;
}
/** Whom an action is about: the mapped login, their email (for invitations sent to it), or both. */
interface Person {
  login: string | null;
  email: string | null;
}
interface OrgInvitation {
  id: number;
  login: string | null;
  email: string | null;
  role: string;
}
interface RepoInvitation {
  id: number;
  repository: string;
  invitee: string;
  permissions: string;
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

  const orgRepositories = () => octokit.paginate(octokit.rest.repos.listForOrg, { org, type: 'all', per_page: 100 });
  type OrgRepository = Awaited<ReturnType<typeof orgRepositories>>[number];

  async function outsideCollaboratorRepos(login: string, repos: OrgRepository[]): Promise<Entitlement[]> {
    if (!(await isOutsideCollaborator(login))) return [];
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

  /**
   * Pending invitations to the organisation that would let the person in: to their login, or to
   * their email (GitHub shows those with `login: null` until accepted).
   */
  async function orgInvitations(person: Person): Promise<OrgInvitation[]> {
    const pending = await octokit.paginate(octokit.rest.orgs.listPendingInvitations, { org, per_page: 100 });
    return pending
      .filter(
        (i) =>
          (person.login !== null && i.login !== null && sameLogin(i.login, person.login)) ||
          (person.email !== null && i.email !== null && i.email.toLowerCase() === person.email),
      )
      .map((i) => ({ id: i.id, login: i.login, email: i.email, role: i.role }));
  }

  /** Pending invitations to one repository for the login (an outside collaborator's, for a non-member). */
  async function repoInvitationsIn(owner: string, repo: string, login: string): Promise<RepoInvitation[]> {
    const pending = await octokit.paginate(octokit.rest.repos.listInvitations, { owner, repo, per_page: 100 });
    return pending
      .filter((i) => i.invitee !== null && sameLogin(i.invitee.login, login))
      .map((i) => ({ id: i.id, repository: `${owner}/${repo}`, invitee: login, permissions: i.permissions }));
  }

  async function repoInvitations(login: string, repos: OrgRepository[]): Promise<RepoInvitation[]> {
    if (!config.repositoryInvitations) return [];
    const found: RepoInvitation[] = [];
    // Serially, as GitHub asks: one request per repository.
    for (const repo of repos) found.push(...(await repoInvitationsIn(repo.owner.login, repo.name, login)));
    return found;
  }

  /** Fails the way the fine-grained PAT endpoints fail without a GitHub App token, saying what to do. */
  function fineGrainedFailure(err: unknown, doing: string): ConnectorError {
    const failure = classify(err, doing);
    if (failure.code === 'github_403' || failure.code === 'github_404') {
      return new ConnectorError(
        `${failure.message}. ${doing[0]!.toUpperCase()}${doing.slice(1)} needs a GitHub App installation token with the "Personal access tokens" organisation permission; use one, or set fineGrainedTokens: false`,
        false,
        failure.code,
      );
    }
    return failure;
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
      throw fineGrainedFailure(err, 'listing fine-grained PAT grants');
    }
  }

  /** Fine-grained PATs waiting for an owner's approval: approved after the person left, they would work. */
  async function patRequests(login: string): Promise<PatRequest[]> {
    if (!config.fineGrainedTokens) return [];
    try {
      const route: string = 'GET /orgs/{org}/personal-access-token-requests';
      const requests = await octokit.paginate<PatRequest>(route, { org, 'owner[]': login, per_page: 100 });
      return requests.filter((request) => sameLogin(request.owner.login, login));
    } catch (err) {
      throw fineGrainedFailure(err, 'listing fine-grained PAT requests');
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

  /** A write GitHub answered 2xx while the read-back still finds its target: retried, never reported done. */
  function stillThere(what: string): ConnectorError {
    return new ConnectorError(
      `GitHub accepted the removal of ${what}, but reading it back still finds it (GitHub may still be processing it); the retry reads it again`,
      true,
      'github_still_present',
    );
  }

  // ---- Actions ---------------------------------------------------------------------------

  async function cancelOrgInvitations(invitations: OrgInvitation[]): Promise<number[]> {
    for (const invitation of invitations) {
      // 404: cancelled meanwhile; the read-back below decides.
      await orNull(octokit.rest.orgs.cancelInvitation({ org, invitation_id: invitation.id }));
    }
    return invitations.map((i) => i.id);
  }

  /** Membership and every pending invitation to the organisation: the ways in. */
  async function removeMembership(person: Person): Promise<ApplyResult> {
    const { login } = person;
    const before = login ? await membership(login) : null;
    const invitations = await orgInvitations(person);
    const details = { org, ...(login ? { login } : {}) };
    if (!before && invitations.length === 0)
      return { outcome: 'already', details: { ...details, note: 'not a member and not invited' } };
    // One call for both: it removes an active member and cancels an invitation to the login.
    if (before && login) await orNull(octokit.rest.orgs.removeMembershipForUser({ org, username: login }));
    // What is left: invitations to their email, or sent meanwhile.
    const cancelled = await cancelOrgInvitations(await orgInvitations(person));
    if (login && (await membership(login))) throw stillThere(`${login}'s membership of ${org}`);
    if ((await orgInvitations(person)).length > 0) throw stillThere(`the pending invitations to ${org}`);
    return {
      outcome: 'done',
      details: {
        ...details,
        ...(before ? { previousState: before.data.state, previousRole: before.data.role } : {}),
        cancelledInvitationIds: [...new Set([...invitations.map((i) => i.id), ...cancelled])],
      },
    };
  }

  async function restoreMembership(person: Person): Promise<ApplyResult> {
    const { login } = person;
    const current = login ? await membership(login) : null;
    if (current)
      return { outcome: 'already', details: { org, login, state: current.data.state, role: current.data.role } };
    throw new ConnectorError(
      `GitHub membership cannot be restored automatically: re-invite ${login ?? 'the person'} to ${org} (and add them back to their teams)`,
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
    // GitHub answers the revocation 202 and applies it later: done only once it is no longer listed.
    const left = (await patGrants(login)).filter((g) => patGrantIds.includes(g.id));
    if (left.length > 0) throw stillThere(`fine-grained PAT grants ${left.map((g) => g.id).join(', ')}`);
    if ((await ssoAuthorizations(login)).length > 0) throw stillThere(`${login}'s SSO credential authorizations`);
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
    const teamMembership = () =>
      orNull(octokit.rest.teams.getMembershipForUserInOrg({ org, team_slug: slug, username: login }));
    const current = await teamMembership();
    if (!current) return { outcome: 'already', details: { org, login, team: slug } };
    try {
      await octokit.rest.teams.removeMembershipForUserInOrg({ org, team_slug: slug, username: login });
    } catch (err) {
      if (statusOf(err) === 404 && !(await teamMembership()))
        return { outcome: 'already', details: { org, login, team: slug } };
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
    if (await teamMembership()) throw stillThere(`${login}'s membership of team ${slug}`);
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
    const collaborates = () => orNull(octokit.rest.repos.checkCollaborator({ owner, repo, username: login }));
    if (!(await collaborates())) return { outcome: 'already', details: { org, login, repository } };
    // GitHub answers this 204 whether or not anything was removed: only the read-back says.
    await orNull(octokit.rest.repos.removeCollaborator({ owner, repo, username: login }));
    if (await collaborates()) throw stillThere(`${login}'s access to ${repository}`);
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
    if ((await membership(login))?.data.role === 'admin') throw stillThere(`${login}'s owner role in ${org}`);
    return { outcome: 'done', details: { org, login, previousRole: 'admin', role: 'member' } };
  }

  async function cancelOrgInvitation(person: Person, id: number): Promise<ApplyResult> {
    const details = { org, invitationId: id };
    // Only an invitation that is still the person's: an id alone could name someone else's.
    const theirs = async () => (await orgInvitations(person)).some((i) => i.id === id);
    if (!(await theirs())) return { outcome: 'already', details };
    await orNull(octokit.rest.orgs.cancelInvitation({ org, invitation_id: id }));
    if (await theirs()) throw stillThere(`invitation ${id} to ${org}`);
    return { outcome: 'done', details };
  }

  async function deleteRepoInvitation(login: string, repository: string, id: number): Promise<ApplyResult> {
    const [owner, repo] = repository.split('/') as [string, string];
    const details = { org, login, repository, invitationId: id };
    const theirs = async () => {
      const found = await orNull(repoInvitationsIn(owner, repo, login));
      return found?.some((i) => i.id === id) ?? false;
    };
    if (!(await theirs())) return { outcome: 'already', details };
    await orNull(octokit.rest.repos.deleteInvitation({ owner, repo, invitation_id: id }));
    if (await theirs()) throw stillThere(`invitation ${id} to ${repository}`);
    return { outcome: 'done', details };
  }

  async function denyPatRequest(login: string, id: number): Promise<ApplyResult> {
    const details = { org, login, patRequestId: id };
    const pending = async () => (await patRequests(login)).some((r) => r.id === id);
    if (!(await pending())) return { outcome: 'already', details };
    try {
      await orNull(
        octokit.rest.orgs.reviewPatGrantRequest({
          org,
          pat_request_id: id,
          action: 'deny',
          reason: 'The owner of this token has left the organisation (offboard).',
        }),
      );
    } catch (err) {
      throw fineGrainedFailure(err, 'denying a fine-grained PAT request');
    }
    if (await pending()) throw stillThere(`fine-grained PAT request ${id}`);
    return { outcome: 'done', details: { ...details, review: 'deny' } };
  }

  async function removeEntitlement(person: Person, target: Entitlement | undefined): Promise<ApplyResult> {
    const id = target?.id ?? '';
    const numeric = (rest: string) => (/^\d+$/.test(rest) ? Number(rest) : undefined);
    if (target?.kind === 'org_invitation' && id.startsWith(ORG_INVITATION)) {
      const invitationId = numeric(id.slice(ORG_INVITATION.length));
      if (invitationId !== undefined) return cancelOrgInvitation(person, invitationId);
    }
    const { login } = person;
    if (login) {
      if (target?.kind === 'team' && id.startsWith('team:')) return removeTeam(login, id.slice('team:'.length));
      if (target?.kind === 'outside_collaborator' && id.startsWith('repo:'))
        return removeOutsideCollaborator(login, id.slice('repo:'.length));
      if (target?.kind === 'org_role' && id === ADMIN_ROLE) return demoteAdmin(login);
      const repoInvitation = /^([^/]+\/[^/]+)\/(\d+)$/.exec(id.slice(REPO_INVITATION.length));
      if (
        (target?.kind === 'repository_invitation' || target?.kind === 'outside_collaborator_invitation') &&
        id.startsWith(REPO_INVITATION) &&
        repoInvitation
      )
        return deleteRepoInvitation(login, repoInvitation[1]!, Number(repoInvitation[2]));
      const patRequestId = numeric(id.slice(PAT_REQUEST.length));
      if (target?.kind === 'pat_request' && id.startsWith(PAT_REQUEST) && patRequestId !== undefined)
        return denyPatRequest(login, patRequestId);
    }
    throw new ConnectorError(
      `GitHub: cannot remove entitlement ${target ? `${target.kind} ${target.id}` : '(none given)'}${login ? '' : ' for someone known only by an email invitation'}; expected team:<slug>, repo:<owner>/<name>, ${ADMIN_ROLE}, ${ORG_INVITATION}<id>, ${REPO_INVITATION}<owner>/<name>/<id> or ${PAT_REQUEST}<id> from discovery`,
      false,
      'bad_action',
    );
  }

  function personOf(accountId: string, subject: Subject): Person {
    const email = subject.email?.toLowerCase() ?? null;
    if (accountId === GITHUB_EMAIL_INVITEE) {
      if (!email)
        throw new ConnectorError(
          `GitHub: account "${GITHUB_EMAIL_INVITEE}" stands for invitations to the person's email, and this request carries none`,
          false,
          'bad_action',
        );
      return { login: null, email };
    }
    const login = loginSchema.safeParse(accountId);
    if (!login.success)
      throw new ConnectorError(`GitHub: account id "${accountId}" is not a GitHub login`, false, 'bad_action');
    return { login: login.data, email };
  }

  async function apply(action: Action, subject: Subject): Promise<ApplyResult> {
    const person = personOf(action.accountId, subject);
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
          return removeMembership(person);
        case 'enable_login':
          return restoreMembership(person);
        case 'revoke_tokens':
          return person.login
            ? revokeTokens(person.login)
            : { outcome: 'already', details: { org, note: 'no login: no tokens can be theirs' } };
        case 'remove_entitlement':
          return removeEntitlement(person, action.target);
        default:
          throw new ConnectorError(`GitHub: unsupported action ${action.kind}`, false, 'bad_action');
      }
    });
  }

  async function discover(subject: Subject): Promise<Discovery> {
    const none: Discovery = { system, account: null, entitlements: [], credentials: [] };
    const person: Person = { login: loginFor(subject), email: subject.email?.toLowerCase() ?? null };
    if (!person.login && !person.email) return none;
    return call('discover', async () => {
      await checkOrg();
      const { login } = person;
      const member = login ? await membership(login) : null;
      const invitations = await orgInvitations(person);
      const entitlements: Entitlement[] = invitations.map((i) => ({
        id: `${ORG_INVITATION}${i.id}`,
        kind: 'org_invitation',
        name: `pending invitation to ${org} as ${i.role}${i.login === null ? ', sent to their email' : ''}`,
      }));
      const credentials: Credential[] = [];
      if (login) {
        if (member) {
          if (member.data.role === 'admin')
            entitlements.push({ id: ADMIN_ROLE, kind: 'org_role', name: 'organisation owner' });
          entitlements.push(...(await teamMemberships(login)));
        }
        const repos = await orgRepositories();
        // Outside collaborators are by definition not members.
        if (!member) entitlements.push(...(await outsideCollaboratorRepos(login, repos)));
        for (const i of await repoInvitations(login, repos)) {
          entitlements.push({
            id: `${REPO_INVITATION}${i.repository}/${i.id}`,
            // For someone outside the organisation, accepting it makes them an outside collaborator.
            kind: member?.data.state === 'active' ? 'repository_invitation' : 'outside_collaborator_invitation',
            name: `pending invitation to ${i.repository} (${i.permissions})`,
          });
        }
        for (const r of await patRequests(login)) {
          entitlements.push({
            id: `${PAT_REQUEST}${r.id}`,
            kind: 'pat_request',
            name: `fine-grained token "${r.token_name}" awaiting approval`,
          });
        }
        credentials.push(
          ...(await patGrants(login)).map((g) => ({ id: `pat:${g.id}`, kind: 'token' as const })),
          ...(await ssoAuthorizations(login)).map((a) => ({
            id: `sso:${a.credential_id}`,
            kind: /ssh/i.test(a.credential_type) ? ('key' as const) : ('token' as const),
          })),
        );
      }
      if (!member && entitlements.length === 0 && credentials.length === 0) return none;
      return {
        system,
        // A pending invitation is a way in, as membership is: the login is disabled only without either.
        account: { id: login ?? GITHUB_EMAIL_INVITEE, disabled: !member && invitations.length === 0 },
        entitlements,
        credentials,
      };
    });
  }

  /**
   * Exercises the credentials as the actions will: the organisation, its pending invitations (owner
   * rights), and the fine-grained PAT and SSO listings when configured (a GitHub App's permissions).
   */
  async function check(): Promise<void> {
    await checkOrg();
    await octokit.rest.orgs.listPendingInvitations({ org, per_page: 1 });
    if (config.fineGrainedTokens) {
      try {
        await octokit.request('GET /orgs/{org}/personal-access-tokens', { org, per_page: 1 });
        await octokit.request('GET /orgs/{org}/personal-access-token-requests', { org, per_page: 1 });
      } catch (err) {
        throw fineGrainedFailure(err, 'listing fine-grained PAT grants');
      }
    }
    if (config.samlSso) {
      try {
        await octokit.request('GET /orgs/{org}/credential-authorizations', { org, per_page: 1 });
      } catch (err) {
        const failure = classify(err, 'listing SAML SSO credential authorizations');
        throw new ConnectorError(
          `${failure.message}; SSO credential authorizations need a GitHub Enterprise Cloud organisation with SAML SSO and owner rights, or set samlSso: false`,
          failure.retryable,
          failure.code,
        );
      }
    }
  }

  return {
    system,
    discover,
    apply,
    check: () => call('check', check),
    async close() {},
  };
}
