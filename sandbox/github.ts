/**
 * A local stand-in for the GitHub REST API (api.github.com, version 2022-11-28), limited to the
 * calls the GitHub connector makes, in GitHub's wire format: the same paths and methods, JSON
 * bodies, `{ message, documentation_url }` errors, `Link` pagination (`per_page`, `page`) and the
 * `x-ratelimit-limit/-remaining/-reset/-used/-resource` headers on every answer. Routes are named
 * by the paths of GitHub's OpenAPI description, and their objects carry every field it requires:
 * test/github-openapi.test.ts validates each answer the connector gets against that description.
 *
 * Seeded from the sample organisation (sandbox/org.ts) as the organisation `example-org`:
 * - logins are the sample uids with dots turned into dashes (`ada.lovelace.1` → `ada-lovelace-1`);
 * - employees are members (E1001 is the one admin besides the keeper), contractors are outside
 *   collaborators on two repositories each;
 * - pending access, as `GET /orgs/{org}/invitations`, `GET /repos/{owner}/{repo}/invitations` and
 *   `GET /orgs/{org}/personal-access-token-requests` show it: E1037 is invited to the organisation
 *   by login (a pending membership, which is what such an invitation is), E1038 by email only
 *   (`login: null`), E1039 (not a member) to one repository, E1001 to administer `infra` and E1005
 *   (a contractor) to a third repository; E1001 and E1003 have fine-grained PAT requests waiting.
 *   Cancelling (`DELETE …/invitations/{id}`, 204, 404 when there is none) removes an invitation;
 *   reviewing a request (`POST …/personal-access-token-requests/{id}` `{action, reason}`, 204)
 *   takes it off the list, and approving it makes a grant;
 * - teams: platform (odd people), payments (even people), security (privileged people), whose
 *   membership is synchronized with an identity provider, so removing anyone from it answers 403;
 * - fine-grained PAT grants for every second member, SAML SSO credential authorizations (tokens
 *   and SSH keys) for two members in three;
 * - E9999 (the sandbox's duplicated employee id) maps to two logins, `twin-a` and `twin-b`.
 *
 * Requests need `authorization: token <t>` or `Bearer <t>` with a sandbox token (401 otherwise);
 * the read-only token answers 403 "Resource not accessible by integration" to every write.
 * GitHub App authentication: the stand-in is app `GITHUB_SANDBOX_APP.appId`, installed on the
 * organisation as installation `GITHUB_SANDBOX_APP.installationId`, with a key pair made at start
 * (`appPrivateKey`). `POST /app/installations/{id}/access_tokens` takes the app's RS256 JWT
 * (`iss` = app id, `exp` at most 10 minutes after `iat`, not expired) and answers 201 with an
 * installation token valid for one hour (`installationTokenTtlMs` shortens it for tests), which
 * then works like the read-write token; an expired one answers 401 "Bad credentials". JWT errors
 * use the messages GitHub is seen to send ("'Expiration time' claim ('exp') is too far in the
 * future", "… must be a numeric value representing the future time …", "A JSON web token could
 * not be decoded"); which one GitHub sends for a bad signature or an unknown app is assumed (the
 * last).
 * Faults (per test, or `POST /_sandbox/faults`): latency, a deterministic 5xx rate, a burst of
 * secondary-rate-limit answers (429 or 403 with `retry-after`), an exhausted primary limit (403,
 * remaining 0, `x-ratelimit-reset`), connection resets, and writes answered as usual but not yet
 * applied (what a read right after an asynchronous change finds). `GET /_sandbox/state` shows the
 * state.
 *
 * Not modelled: GraphQL; conditional requests (ETag/304); OAuth scopes beyond read/write; the
 * secondary limits' own triggers (concurrency, points per minute); the asynchronous processing of
 * PAT revocations (applied at once here); what happens to PAT grants and SSO authorizations when a
 * member leaves (kept here, so revoke_tokens still has work); re-instating a former member within
 * three months; owner-only rules such as refusing to remove the last owner; invitations' expiry
 * and failed invitations; repository invitations to an email; what removing a member does to
 * their pending repository invitations (kept here); team maintainers' rights; enterprise-managed
 * users.
 */
import { generateKeyPairSync, randomBytes, verify, type KeyObject } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { DUPLICATED_EMPLOYEE_ID } from './ldif.js';
import { SAMPLE_PEOPLE, type SamplePerson } from './org.js';

export const GITHUB_SANDBOX_ORG = 'example-org';
/** A GitHub App installation token with owner rights on the organisation. */
export const GITHUB_SANDBOX_TOKEN = 'ghs_sandboxInstallationTokenReadWrite0001';
/** An installation token whose app may read but not write: every write answers 403. */
export const GITHUB_SANDBOX_READ_ONLY_TOKEN = 'ghs_sandboxInstallationTokenReadOnly00001';
/** The GitHub App the stand-in knows, and its installation on the organisation. */
export const GITHUB_SANDBOX_APP = { appId: 424242, installationId: 1 } as const;
/** The team whose membership an identity provider owns (team synchronization). */
export const GITHUB_SYNCED_TEAM = 'security';
export const GITHUB_TWIN_LOGINS = ['twin-a', 'twin-b'];

const DOCS = 'https://docs.github.com/rest';
const RATE_LIMIT = 5000;

export const githubLoginFor = (person: SamplePerson): string => person.uid.replaceAll('.', '-');

/** The `logins` mapping a connector pointed at this stand-in is configured with. */
export function sampleGithubLogins(): Record<string, string | string[]> {
  const logins: Record<string, string | string[]> = {};
  for (const person of SAMPLE_PEOPLE) logins[person.employeeId] = githubLoginFor(person);
  logins[DUPLICATED_EMPLOYEE_ID] = [...GITHUB_TWIN_LOGINS];
  return logins;
}

/** An active membership; a pending one is an organisation invitation with a login. */
export interface GithubSandboxMembership {
  state: 'active';
  role: 'admin' | 'member';
}
/** A pending invitation to the organisation, to a login or (login null) to an email address. */
export interface GithubSandboxOrgInvitation {
  id: number;
  login: string | null;
  email: string | null;
  role: 'direct_member' | 'admin' | 'billing_manager';
  inviter: string;
  createdAt: string;
}
/** A pending invitation to collaborate on one repository (an outside collaborator's, for a non-member). */
export interface GithubSandboxRepoInvitation {
  id: number;
  repo: string;
  invitee: string;
  permissions: 'read' | 'write' | 'admin' | 'triage' | 'maintain';
  inviter: string;
  createdAt: string;
}
/** A fine-grained PAT's pending request for access to the organisation's resources. */
export interface GithubSandboxPatRequest {
  id: number;
  owner: string;
  reason: string | null;
  tokenId: number;
  tokenName: string;
  createdAt: string;
}
export interface GithubSandboxTeam {
  id: number;
  slug: string;
  name: string;
  synced: boolean;
  members: Record<string, 'member' | 'maintainer'>;
}
export interface GithubSandboxRepo {
  id: number;
  name: string;
  collaborators: string[];
}
export interface GithubSandboxPatGrant {
  id: number;
  owner: string;
  tokenId: number;
  tokenName: string;
  accessGrantedAt: string;
}
export interface GithubSandboxSsoAuthorization {
  credentialId: number;
  login: string;
  credentialType: 'personal access token' | 'SSH key';
  authorizedAt: string;
}

export interface GithubSandboxState {
  org: { login: string; id: number };
  /** Every known user: login → numeric id. */
  users: Record<string, number>;
  memberships: Record<string, GithubSandboxMembership>;
  teams: GithubSandboxTeam[];
  repos: GithubSandboxRepo[];
  patGrants: GithubSandboxPatGrant[];
  ssoAuthorizations: GithubSandboxSsoAuthorization[];
  orgInvitations: GithubSandboxOrgInvitation[];
  repoInvitations: GithubSandboxRepoInvitation[];
  /** Pending fine-grained PAT requests; a reviewed one leaves the list for `patRequestReviews`. */
  patRequests: GithubSandboxPatRequest[];
  patRequestReviews: { id: number; action: 'approve' | 'deny'; reason: string | null }[];
  /** Per token: requests used in the current window and when it resets (epoch seconds). */
  rateLimits: Record<string, { used: number; reset: number }>;
  requests: number;
  /** Installation tokens issued to the app (`token` → expiry, epoch ms). */
  installationTokens: Record<string, number>;
}

export interface GithubFaults {
  latencyMs?: number;
  /** Fraction (0..1) of requests answered 502, spread deterministically by a request counter. */
  serverErrorRate?: number;
  /** The next `count` requests hit a secondary rate limit, with `retry-after: retryAfterSeconds`. */
  rateLimitBurst?: { count: number; retryAfterSeconds: number; status?: 403 | 429 };
  /** Exhausts every token's primary limit until `resetInSeconds` from now (403, remaining 0). */
  primaryLimit?: { resetInSeconds: number };
  /** The next N requests have their connection destroyed without an answer. */
  connectionResets?: number;
  /**
   * The next N writes are answered as GitHub answers them but not applied yet, as a read right
   * after an asynchronously processed change (a PAT revocation answered 202) can find it.
   */
  unappliedWrites?: number;
}

/** One answer of a route, as sent: what the OpenAPI conformance test checks. */
export interface GithubExchange {
  /** `METHOD /path/{param}` as GitHub's OpenAPI description names the operation. */
  route: string;
  status: number;
  body: unknown;
}

export interface GithubSandbox {
  url: string;
  /** Calls `listener` with every answer a route gives (not the 401s and rate limits before routing). */
  onAnswer(listener: (exchange: GithubExchange) => void): () => void;
  /** The GitHub App's private key (PKCS#8 PEM), made when the stand-in starts. */
  appPrivateKey: string;
  readonly state: GithubSandboxState;
  inject(faults: GithubFaults): void;
  reset(): void;
  stop(): Promise<void>;
}

const lower = (login: string) => login.toLowerCase();
const isoDay = (day: number) => new Date(Date.UTC(2025, 0, 1 + day)).toISOString().replace('.000', '');

function seed(): GithubSandboxState {
  const state: GithubSandboxState = {
    org: { login: GITHUB_SANDBOX_ORG, id: 9_000_001 },
    users: {},
    memberships: {},
    teams: [
      { id: 301, slug: 'platform', name: 'Platform', synced: false, members: {} },
      { id: 302, slug: 'payments', name: 'Payments', synced: false, members: {} },
      { id: 303, slug: GITHUB_SYNCED_TEAM, name: 'Security', synced: true, members: {} },
    ],
    repos: ['api', 'web', 'infra', 'payments-service'].map((name, i) => ({ id: 401 + i, name, collaborators: [] })),
    patGrants: [],
    ssoAuthorizations: [],
    orgInvitations: [],
    repoInvitations: [],
    patRequests: [],
    patRequestReviews: [],
    rateLimits: {},
    requests: 0,
    installationTokens: {},
  };
  const team = (slug: string) => state.teams.find((t) => t.slug === slug)!;
  const addUser = (login: string) => {
    state.users[lower(login)] ??= 100_000 + Object.keys(state.users).length;
  };

  for (const [i, person] of SAMPLE_PEOPLE.entries()) {
    const login = githubLoginFor(person);
    addUser(login);
    if (person.employeeId === 'E1000') {
      state.memberships[login] = { state: 'active', role: 'admin' };
      for (const t of state.teams) t.members[login] = 'maintainer';
      continue;
    }
    const n = i - 1; // the sample's own index: E1001 is 0
    if (person.employmentType === 'contractor') {
      // Contractors work on a couple of repositories without joining the organisation.
      state.repos[n % state.repos.length]!.collaborators.push(login);
      state.repos[(n + 1) % state.repos.length]!.collaborators.push(login);
      continue;
    }
    if (person.employeeId === 'E1037') {
      inviteToOrg({ login, email: null });
      continue;
    }
    if (person.employeeId === 'E1038') {
      // Invited by email before anyone knew their login: GitHub shows such an invitation with login null.
      inviteToOrg({ login: null, email: person.email });
      continue;
    }
    if (person.employeeId === 'E1039') {
      // Invited to one repository without joining the organisation: an outside collaborator's invitation.
      inviteToRepo(login, 'web', 'write');
      continue;
    }
    state.memberships[login] = { state: 'active', role: person.employeeId === 'E1001' ? 'admin' : 'member' };
    team(n % 2 ? 'platform' : 'payments').members[login] = 'member';
    if (person.groups.includes('prod-access')) team(GITHUB_SYNCED_TEAM).members[login] = 'member';
    if (n % 2 === 0) {
      const grants = n % 6 === 0 ? 2 : 1;
      for (let g = 0; g < grants; g++) {
        const id = 5000 + state.patGrants.length + 1;
        state.patGrants.push({
          id,
          owner: login,
          tokenId: 70_000 + id,
          tokenName: `${login}-automation-${g + 1}`,
          accessGrantedAt: isoDay(n + g),
        });
      }
    }
    if (n % 3 !== 2) {
      state.ssoAuthorizations.push({
        credentialId: 8000 + state.ssoAuthorizations.length + 1,
        login,
        credentialType: 'personal access token',
        authorizedAt: isoDay(n),
      });
      if (n % 4 === 0)
        state.ssoAuthorizations.push({
          credentialId: 8000 + state.ssoAuthorizations.length + 1,
          login,
          credentialType: 'SSH key',
          authorizedAt: isoDay(n + 1),
        });
    }
  }
  for (const login of GITHUB_TWIN_LOGINS) {
    addUser(login);
    state.memberships[login] = { state: 'active', role: 'member' };
  }
  const loginOf = (employeeId: string) => githubLoginFor(SAMPLE_PEOPLE.find((p) => p.employeeId === employeeId)!);
  // An owner invited to administer a repository, a contractor invited to a third one.
  inviteToRepo(loginOf('E1001'), 'infra', 'admin');
  inviteToRepo(loginOf('E1005'), 'infra', 'write');
  // Fine-grained tokens waiting for an owner's approval: approved after the person left, they would work.
  for (const [employeeId, day] of [
    ['E1001', 40],
    ['E1003', 41],
  ] as const) {
    const id = 6000 + state.patRequests.length + 1;
    state.patRequests.push({
      id,
      owner: loginOf(employeeId),
      reason: 'deploy automation',
      tokenId: 80_000 + id,
      tokenName: `${loginOf(employeeId)}-requested`,
      createdAt: isoDay(day),
    });
  }
  return state;

  function inviteToOrg(invitee: { login: string | null; email: string | null }) {
    state.orgInvitations.push({
      id: 7000 + state.orgInvitations.length + 1,
      ...invitee,
      role: 'direct_member',
      inviter: 'keeper',
      createdAt: isoDay(30 + state.orgInvitations.length),
    });
  }
  function inviteToRepo(login: string, repo: string, permissions: GithubSandboxRepoInvitation['permissions']) {
    state.repoInvitations.push({
      id: 9100 + state.repoInvitations.length + 1,
      repo,
      invitee: login,
      permissions,
      inviter: 'keeper',
      createdAt: isoDay(35 + state.repoInvitations.length),
    });
  }
}

// ---- HTTP plumbing ------------------------------------------------------------------------

interface Answer {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}
interface Context {
  url: URL;
  body: unknown;
  origin: string;
  /** `METHOD /openapi/path` of the route that answered, once one matched. */
  route?: string;
}
type Handler = (ctx: Context, params: string[]) => Answer;
interface Route {
  method: string;
  /** The path as GitHub's OpenAPI description writes it (`/orgs/{org}/invitations`). */
  path: string;
  docs: string;
  handle: Handler;
}

/** `/orgs/{org}/teams` → a pattern whose groups are the path's parameters, in order. */
const patternOf = (path: string) => new RegExp(`^${path.replace(/\{[^}]+\}/g, '([^/]+)')}$`);

const error = (status: number, message: string, docs = DOCS): Answer => ({
  status,
  body: { message, documentation_url: docs },
});
const notFound = (docs: string) => error(404, 'Not Found', docs);

/** GitHub's pagination: `per_page` (default 30, max 100), `page`, and a `Link` header. */
function paginate(ctx: Context, items: unknown[]): Answer {
  const perPage = Math.min(100, Math.max(1, Number(ctx.url.searchParams.get('per_page')) || 30));
  const page = Math.max(1, Number(ctx.url.searchParams.get('page')) || 1);
  const last = Math.max(1, Math.ceil(items.length / perPage));
  const link = (p: number, rel: string) => {
    const next = new URL(ctx.url.pathname + ctx.url.search, ctx.origin);
    next.searchParams.set('page', String(p));
    return `<${next.toString()}>; rel="${rel}"`;
  };
  const links: string[] = [];
  if (page < last) links.push(link(page + 1, 'next'), link(last, 'last'));
  if (page > 1) links.push(link(1, 'first'), link(page - 1, 'prev'));
  return {
    status: 200,
    body: items.slice((page - 1) * perPage, page * perPage),
    headers: links.length ? { link: links.join(', ') } : {},
  };
}

export async function startGithubSandbox(
  options: { port?: number; installationTokenTtlMs?: number } = {},
): Promise<GithubSandbox> {
  let state = seed();
  const appKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const appPrivateKey = appKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const appPublicKey: KeyObject = appKeys.publicKey;
  const installationTokenTtlMs = options.installationTokenTtlMs ?? 3600_000;
  let faults: GithubFaults = {};
  let faultCounter = 0;
  const listeners = new Set<(exchange: GithubExchange) => void>();

  // GitHub's objects in full (the fields its OpenAPI description requires), test/github-openapi.test.ts checks them.
  const user = (ctx: Context, login: string) => {
    const id = state.users[lower(login)] ?? 0;
    const api = `${ctx.origin}/users/${login}`;
    return {
      login,
      id,
      node_id: `U_${id}`,
      avatar_url: `https://avatars.githubusercontent.com/u/${id}?v=4`,
      gravatar_id: '',
      url: api,
      html_url: `https://github.com/${login}`,
      followers_url: `${api}/followers`,
      following_url: `${api}/following{/other_user}`,
      gists_url: `${api}/gists{/gist_id}`,
      starred_url: `${api}/starred{/owner}{/repo}`,
      subscriptions_url: `${api}/subscriptions`,
      organizations_url: `${api}/orgs`,
      repos_url: `${api}/repos`,
      events_url: `${api}/events{/privacy}`,
      received_events_url: `${api}/received_events`,
      type: 'User',
      user_view_type: 'public',
      site_admin: false,
    };
  };
  const orgSimple = (ctx: Context) => {
    const api = `${ctx.origin}/orgs/${state.org.login}`;
    return {
      login: state.org.login,
      id: state.org.id,
      node_id: `O_${state.org.id}`,
      url: api,
      repos_url: `${api}/repos`,
      events_url: `${api}/events`,
      hooks_url: `${api}/hooks`,
      issues_url: `${api}/issues`,
      members_url: `${api}/members{/member}`,
      public_members_url: `${api}/public_members{/member}`,
      avatar_url: `https://avatars.githubusercontent.com/u/${state.org.id}?v=4`,
      description: 'Sample organisation',
    };
  };
  const orgJson = (ctx: Context) => ({
    ...orgSimple(ctx),
    name: 'Example Org',
    html_url: `https://github.com/${state.org.login}`,
    has_organization_projects: true,
    has_repository_projects: true,
    public_repos: 0,
    public_gists: 0,
    followers: 0,
    following: 0,
    type: 'Organization',
    created_at: isoDay(-400),
    updated_at: isoDay(0),
    archived_at: null,
  });
  const repoJson = (ctx: Context, repo: GithubSandboxRepo) => {
    const fullName = `${state.org.login}/${repo.name}`;
    const api = `${ctx.origin}/repos/${fullName}`;
    const owner = {
      ...user(ctx, state.org.login),
      id: state.org.id,
      node_id: `O_${state.org.id}`,
      type: 'Organization',
    };
    const templated = (name: string, suffix: string) => [`${name}_url`, `${api}/${name.replace(/_/g, '/')}${suffix}`];
    return {
      id: repo.id,
      node_id: `R_${repo.id}`,
      name: repo.name,
      full_name: fullName,
      owner,
      private: true,
      html_url: `https://github.com/${fullName}`,
      description: null,
      fork: false,
      url: api,
      ...Object.fromEntries(
        [
          ['archive', '/{archive_format}{/ref}'],
          ['assignees', '{/user}'],
          ['blobs', '{/sha}'],
          ['branches', '{/branch}'],
          ['collaborators', '{/collaborator}'],
          ['comments', '{/number}'],
          ['commits', '{/sha}'],
          ['compare', '/{base}...{head}'],
          ['contents', '/{+path}'],
          ['contributors', ''],
          ['deployments', ''],
          ['downloads', ''],
          ['events', ''],
          ['forks', ''],
          ['git_commits', '{/sha}'],
          ['git_refs', '{/sha}'],
          ['git_tags', '{/sha}'],
          ['hooks', ''],
          ['issue_comment', '{/number}'],
          ['issue_events', '{/number}'],
          ['issues', '{/number}'],
          ['keys', '{/key_id}'],
          ['labels', '{/name}'],
          ['languages', ''],
          ['merges', ''],
          ['milestones', '{/number}'],
          ['notifications', '{?since,all,participating}'],
          ['pulls', '{/number}'],
          ['releases', '{/id}'],
          ['stargazers', ''],
          ['statuses', '/{sha}'],
          ['subscribers', ''],
          ['subscription', ''],
          ['tags', ''],
          ['teams', ''],
          ['trees', '{/sha}'],
        ].map(([name, suffix]) => templated(name!, suffix!)),
      ),
      visibility: 'private',
    };
  };
  const knownLogin = (login: string) => Object.keys(state.users).find((l) => l === lower(login));
  const sameOrg = (org: string) => lower(org) === lower(state.org.login);
  const isActiveMember = (login: string) => state.memberships[lower(login)]?.state === 'active';
  const isOutsideCollaborator = (login: string) =>
    !isActiveMember(login) && state.repos.some((r) => r.collaborators.includes(lower(login)));
  const outsideCollaborators = () => Object.keys(state.users).filter(isOutsideCollaborator);
  const teamBySlug = (slug: string) => state.teams.find((t) => t.slug === lower(slug));
  const membershipJson = (
    ctx: Context,
    login: string,
    m: { state: 'active' | 'pending'; role: 'admin' | 'member' },
  ) => ({
    url: `${ctx.origin}/orgs/${state.org.login}/memberships/${login}`,
    state: m.state,
    role: m.role,
    organization_url: `${ctx.origin}/orgs/${state.org.login}`,
    organization: orgSimple(ctx),
    user: user(ctx, login),
  });
  /** An active membership, or the pending one an invitation to the login stands for. */
  const membershipOf = (login: string) => {
    const key = lower(login);
    const active = state.memberships[key];
    if (active) return { key, state: 'active' as const, role: active.role };
    const invitation = state.orgInvitations.find((i) => i.login !== null && lower(i.login) === key);
    if (invitation)
      return {
        key,
        state: 'pending' as const,
        role: invitation.role === 'admin' ? ('admin' as const) : ('member' as const),
      };
    return undefined;
  };
  const orgInvitationJson = (ctx: Context, i: GithubSandboxOrgInvitation) => ({
    id: i.id,
    node_id: `OI_${i.id}`,
    login: i.login,
    email: i.email,
    role: i.role,
    created_at: i.createdAt,
    failed_at: null,
    failed_reason: null,
    inviter: user(ctx, i.inviter),
    team_count: 0,
    invitation_teams_url: `${ctx.origin}/organizations/${state.org.id}/invitations/${i.id}/teams`,
    invitation_source: 'member',
  });
  const repoInvitationJson = (ctx: Context, i: GithubSandboxRepoInvitation) => {
    const repo = state.repos.find((r) => r.name === i.repo)!;
    return {
      id: i.id,
      node_id: `RI_${i.id}`,
      repository: repoJson(ctx, repo),
      invitee: user(ctx, i.invitee),
      inviter: user(ctx, i.inviter),
      permissions: i.permissions,
      created_at: i.createdAt,
      expired: false,
      url: `${ctx.origin}/user/repository_invitations/${i.id}`,
      html_url: `https://github.com/${state.org.login}/${i.repo}/invitations`,
    };
  };

  /** The `owner[]` filter of the fine-grained PAT listings (Rails-style array; a plain `owner` too). */
  const ownersFilter = (ctx: Context) =>
    [...ctx.url.searchParams.getAll('owner[]'), ...ctx.url.searchParams.getAll('owner')]
      .flatMap((o) => o.split(','))
      .map(lower);

  const MEMBERS_DOCS = `${DOCS}/orgs/members`;
  const TEAMS_DOCS = `${DOCS}/teams/members`;
  const PAT_DOCS = `${DOCS}/orgs/personal-access-tokens`;
  const SSO_DOCS =
    'https://docs.github.com/enterprise-cloud@latest/rest/orgs/orgs#list-saml-sso-authorizations-for-an-organization';

  const routes: Route[] = [
    {
      method: 'GET',
      path: '/orgs/{org}',
      docs: `${DOCS}/orgs/orgs#get-an-organization`,
      handle: (ctx, [org]) =>
        sameOrg(org!) ? { status: 200, body: orgJson(ctx) } : notFound(`${DOCS}/orgs/orgs#get-an-organization`),
    },
    {
      method: 'GET',
      path: '/orgs/{org}/memberships/{username}',
      docs: `${MEMBERS_DOCS}#get-organization-membership-for-a-user`,
      handle: (ctx, [org, login]) => {
        const found = sameOrg(org!) ? membershipOf(login!) : undefined;
        return found
          ? { status: 200, body: membershipJson(ctx, found.key, found) }
          : notFound(`${MEMBERS_DOCS}#get-organization-membership-for-a-user`);
      },
    },
    {
      // Adds a member or changes a member's role; for someone who is not a member it sends an invitation.
      method: 'PUT',
      path: '/orgs/{org}/memberships/{username}',
      docs: `${MEMBERS_DOCS}#set-organization-membership-for-a-user`,
      handle: (ctx, [org, login]) => {
        if (!sameOrg(org!) || !knownLogin(login!))
          return notFound(`${MEMBERS_DOCS}#set-organization-membership-for-a-user`);
        const role = (ctx.body as { role?: unknown } | undefined)?.role ?? 'member';
        if (role !== 'admin' && role !== 'member')
          return error(422, 'Validation Failed', `${MEMBERS_DOCS}#set-organization-membership-for-a-user`);
        const key = lower(login!);
        const current = state.memberships[key];
        if (current) current.role = role;
        else {
          // Someone who is not a member is invited (or their invitation's role changed).
          const invitationRole = role === 'admin' ? 'admin' : 'direct_member';
          const invitation = state.orgInvitations.find((i) => i.login !== null && lower(i.login) === key);
          if (invitation) invitation.role = invitationRole;
          else
            state.orgInvitations.push({
              id: 7000 + state.orgInvitations.length + 100,
              login: key,
              email: null,
              role: invitationRole,
              inviter: 'keeper',
              createdAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
            });
        }
        return { status: 200, body: membershipJson(ctx, key, membershipOf(key)!) };
      },
    },
    {
      // Removes an active member (with their teams and repository access) or cancels an invitation.
      method: 'DELETE',
      path: '/orgs/{org}/memberships/{username}',
      docs: `${MEMBERS_DOCS}#remove-organization-membership-for-a-user`,
      handle: (_ctx, [org, login]) => {
        const found = sameOrg(org!) ? membershipOf(login!) : undefined;
        if (!found) return notFound(`${MEMBERS_DOCS}#remove-organization-membership-for-a-user`);
        const key = found.key;
        // A pending membership is an invitation: removing it cancels the invitation.
        state.orgInvitations = state.orgInvitations.filter((i) => i.login === null || lower(i.login) !== key);
        delete state.memberships[key];
        for (const team of state.teams) delete team.members[key];
        for (const repo of state.repos) repo.collaborators = repo.collaborators.filter((l) => l !== key);
        return { status: 204 };
      },
    },
    {
      method: 'GET',
      path: '/orgs/{org}/teams',
      docs: `${DOCS}/teams/teams#list-teams`,
      handle: (ctx, [org]) => {
        if (!sameOrg(org!)) return notFound(`${DOCS}/teams/teams#list-teams`);
        return paginate(
          ctx,
          state.teams.map((t) => ({
            id: t.id,
            node_id: `T_${t.id}`,
            name: t.name,
            slug: t.slug,
            description: '',
            privacy: 'closed',
            notification_setting: 'notifications_enabled',
            permission: 'pull',
            url: `${ctx.origin}/organizations/${state.org.id}/team/${t.id}`,
            html_url: `https://github.com/orgs/${state.org.login}/teams/${t.slug}`,
            members_url: `${ctx.origin}/organizations/${state.org.id}/team/${t.id}/members{/member}`,
            repositories_url: `${ctx.origin}/organizations/${state.org.id}/team/${t.id}/repos`,
            parent: null,
            type: 'organization',
            organization_id: state.org.id,
          })),
        );
      },
    },
    {
      method: 'GET',
      path: '/orgs/{org}/teams/{team_slug}/memberships/{username}',
      docs: `${TEAMS_DOCS}#get-team-membership-for-a-user`,
      handle: (ctx, [org, slug, login]) => {
        const team = sameOrg(org!) ? teamBySlug(slug!) : undefined;
        const role = team?.members[lower(login!)];
        if (!team || !role) return notFound(`${TEAMS_DOCS}#get-team-membership-for-a-user`);
        const pending = membershipOf(login!)?.state === 'pending';
        return {
          status: 200,
          body: {
            url: `${ctx.origin}/organizations/${state.org.id}/team/${team.id}/memberships/${login}`,
            role,
            state: pending ? 'pending' : 'active',
          },
        };
      },
    },
    {
      method: 'DELETE',
      path: '/orgs/{org}/teams/{team_slug}/memberships/{username}',
      docs: `${TEAMS_DOCS}#remove-team-membership-for-a-user`,
      handle: (_ctx, [org, slug, login]) => {
        const docs = `${TEAMS_DOCS}#remove-team-membership-for-a-user`;
        const team = sameOrg(org!) ? teamBySlug(slug!) : undefined;
        if (!team) return notFound(docs);
        if (team.synced)
          return error(
            403,
            'This team is synchronized with an identity provider group; change its membership in the identity provider.',
            docs,
          );
        delete team.members[lower(login!)];
        return { status: 204 };
      },
    },
    {
      method: 'GET',
      path: '/orgs/{org}/outside_collaborators',
      docs: `${DOCS}/orgs/outside-collaborators#list-outside-collaborators-for-an-organization`,
      handle: (ctx, [org]) =>
        sameOrg(org!)
          ? paginate(
              ctx,
              outsideCollaborators().map((l) => user(ctx, l)),
            )
          : notFound(`${DOCS}/orgs/outside-collaborators`),
    },
    {
      method: 'DELETE',
      path: '/orgs/{org}/outside_collaborators/{username}',
      docs: `${DOCS}/orgs/outside-collaborators#remove-outside-collaborator-from-an-organization`,
      handle: (_ctx, [org, login]) => {
        const docs = `${DOCS}/orgs/outside-collaborators#remove-outside-collaborator-from-an-organization`;
        if (!sameOrg(org!)) return notFound(docs);
        if (isActiveMember(login!))
          return error(422, 'You cannot specify an organization member to remove as an outside collaborator.', docs);
        for (const repo of state.repos) repo.collaborators = repo.collaborators.filter((l) => l !== lower(login!));
        return { status: 204 };
      },
    },
    {
      method: 'GET',
      path: '/orgs/{org}/repos',
      docs: `${DOCS}/repos/repos#list-organization-repositories`,
      handle: (ctx, [org]) => {
        if (!sameOrg(org!)) return notFound(`${DOCS}/repos/repos#list-organization-repositories`);
        return paginate(
          ctx,
          state.repos.map((r) => repoJson(ctx, r)),
        );
      },
    },
    {
      method: 'GET',
      path: '/orgs/{org}/invitations',
      docs: `${MEMBERS_DOCS}#list-pending-organization-invitations`,
      handle: (ctx, [org]) => {
        if (!sameOrg(org!)) return notFound(`${MEMBERS_DOCS}#list-pending-organization-invitations`);
        const role = ctx.url.searchParams.get('role');
        const roleOf = (i: GithubSandboxOrgInvitation) => (i.role === 'direct_member' ? 'direct_member' : i.role);
        return paginate(
          ctx,
          state.orgInvitations
            .filter((i) => !role || role === 'all' || roleOf(i) === role)
            .map((i) => orgInvitationJson(ctx, i)),
        );
      },
    },
    {
      method: 'DELETE',
      path: '/orgs/{org}/invitations/{invitation_id}',
      docs: `${MEMBERS_DOCS}#cancel-an-organization-invitation`,
      handle: (_ctx, [org, id]) => {
        const docs = `${MEMBERS_DOCS}#cancel-an-organization-invitation`;
        const before = state.orgInvitations.length;
        if (sameOrg(org!)) state.orgInvitations = state.orgInvitations.filter((i) => String(i.id) !== id);
        return state.orgInvitations.length < before ? { status: 204 } : notFound(docs);
      },
    },
    {
      method: 'GET',
      path: '/repos/{owner}/{repo}/invitations',
      docs: `${DOCS}/collaborators/invitations#list-repository-invitations`,
      handle: (ctx, [owner, name]) => {
        const repo = sameOrg(owner!) ? state.repos.find((r) => r.name === lower(name!)) : undefined;
        if (!repo) return notFound(`${DOCS}/collaborators/invitations#list-repository-invitations`);
        return paginate(
          ctx,
          state.repoInvitations.filter((i) => i.repo === repo.name).map((i) => repoInvitationJson(ctx, i)),
        );
      },
    },
    {
      method: 'DELETE',
      path: '/repos/{owner}/{repo}/invitations/{invitation_id}',
      docs: `${DOCS}/collaborators/invitations#delete-a-repository-invitation`,
      handle: (_ctx, [owner, name, id]) => {
        const docs = `${DOCS}/collaborators/invitations#delete-a-repository-invitation`;
        const repo = sameOrg(owner!) ? state.repos.find((r) => r.name === lower(name!)) : undefined;
        const invitation = repo && state.repoInvitations.find((i) => i.repo === repo.name && String(i.id) === id);
        if (!invitation) return notFound(docs);
        state.repoInvitations = state.repoInvitations.filter((i) => i !== invitation);
        return { status: 204 };
      },
    },
    {
      method: 'GET',
      path: '/orgs/{org}/personal-access-token-requests',
      docs: `${PAT_DOCS}#list-requests-to-access-organization-resources-with-fine-grained-personal-access-tokens`,
      handle: (ctx, [org]) => {
        if (!sameOrg(org!)) return notFound(PAT_DOCS);
        const owners = ownersFilter(ctx);
        return paginate(
          ctx,
          state.patRequests
            .filter((r) => owners.length === 0 || owners.includes(r.owner))
            .map((r) => ({
              id: r.id,
              reason: r.reason,
              owner: user(ctx, r.owner),
              repository_selection: 'subset',
              repositories_url: `${ctx.origin}/organizations/${state.org.id}/personal-access-token-requests/${r.id}/repositories`,
              permissions: { organization: {}, repository: { contents: 'write', metadata: 'read' }, other: {} },
              created_at: r.createdAt,
              token_id: r.tokenId,
              token_name: r.tokenName,
              token_expired: false,
              token_expires_at: null,
              token_last_used_at: null,
            })),
        );
      },
    },
    {
      method: 'POST',
      path: '/orgs/{org}/personal-access-token-requests/{pat_request_id}',
      docs: `${PAT_DOCS}#review-a-request-to-access-organization-resources-with-a-fine-grained-personal-access-token`,
      handle: (ctx, [org, id]) => {
        const docs = `${PAT_DOCS}#review-a-request-to-access-organization-resources-with-a-fine-grained-personal-access-token`;
        const request = sameOrg(org!) ? state.patRequests.find((r) => String(r.id) === id) : undefined;
        if (!request) return notFound(docs);
        const body = ctx.body as { action?: unknown; reason?: unknown } | undefined;
        const reason = body?.reason ?? null;
        if (
          (body?.action !== 'approve' && body?.action !== 'deny') ||
          (reason !== null && (typeof reason !== 'string' || reason.length > 1024))
        )
          return error(422, 'Validation Failed', docs);
        state.patRequests = state.patRequests.filter((r) => r !== request);
        state.patRequestReviews.push({ id: request.id, action: body.action, reason });
        if (body.action === 'approve')
          state.patGrants.push({
            id: 5000 + state.patGrants.length + 500,
            owner: request.owner,
            tokenId: request.tokenId,
            tokenName: request.tokenName,
            accessGrantedAt: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
          });
        return { status: 204 };
      },
    },
    {
      method: 'GET',
      path: '/repos/{owner}/{repo}/collaborators/{username}',
      docs: `${DOCS}/collaborators/collaborators#check-if-a-user-is-a-repository-collaborator`,
      handle: (_ctx, [owner, name, login]) => {
        const repo = sameOrg(owner!) ? state.repos.find((r) => r.name === lower(name!)) : undefined;
        const key = lower(login!);
        // Members reach every repository here (base permission read); outside collaborators only theirs.
        const access = repo && (isActiveMember(key) || repo.collaborators.includes(key));
        return access
          ? { status: 204 }
          : notFound(`${DOCS}/collaborators/collaborators#check-if-a-user-is-a-repository-collaborator`);
      },
    },
    {
      method: 'DELETE',
      path: '/repos/{owner}/{repo}/collaborators/{username}',
      docs: `${DOCS}/collaborators/collaborators#remove-a-repository-collaborator`,
      handle: (_ctx, [owner, name, login]) => {
        const repo = sameOrg(owner!) ? state.repos.find((r) => r.name === lower(name!)) : undefined;
        if (!repo) return notFound(`${DOCS}/collaborators/collaborators#remove-a-repository-collaborator`);
        // Documented: 204 whether or not the user was a collaborator.
        repo.collaborators = repo.collaborators.filter((l) => l !== lower(login!));
        return { status: 204 };
      },
    },
    {
      method: 'GET',
      path: '/orgs/{org}/personal-access-tokens',
      docs: `${PAT_DOCS}#list-fine-grained-personal-access-tokens-with-access-to-organization-resources`,
      handle: (ctx, [org]) => {
        if (!sameOrg(org!)) return notFound(PAT_DOCS);
        const owners = ownersFilter(ctx);
        const grants = state.patGrants.filter((g) => owners.length === 0 || owners.includes(g.owner));
        return paginate(
          ctx,
          grants.map((g) => ({
            id: g.id,
            owner: user(ctx, g.owner),
            repository_selection: 'subset',
            repositories_url: `${ctx.origin}/organizations/${state.org.id}/personal-access-tokens/${g.id}/repositories`,
            permissions: { organization: {}, repository: { contents: 'read', metadata: 'read' }, other: {} },
            access_granted_at: g.accessGrantedAt,
            token_id: g.tokenId,
            token_name: g.tokenName,
            token_expired: false,
            token_expires_at: null,
            token_last_used_at: null,
          })),
        );
      },
    },
    {
      method: 'POST',
      path: '/orgs/{org}/personal-access-tokens',
      docs: `${PAT_DOCS}#update-the-access-to-organization-resources-via-fine-grained-personal-access-tokens`,
      handle: (ctx, [org]) => {
        const docs = `${PAT_DOCS}#update-the-access-to-organization-resources-via-fine-grained-personal-access-tokens`;
        if (!sameOrg(org!)) return notFound(docs);
        const body = ctx.body as { action?: unknown; pat_ids?: unknown } | undefined;
        const ids = body?.pat_ids;
        if (
          body?.action !== 'revoke' ||
          !Array.isArray(ids) ||
          ids.length === 0 ||
          ids.length > 100 ||
          !ids.every(Number.isInteger)
        ) {
          return error(422, 'Validation Failed', docs);
        }
        if (!ids.every((id) => state.patGrants.some((g) => g.id === id))) return notFound(docs);
        state.patGrants = state.patGrants.filter((g) => !ids.includes(g.id));
        return { status: 202, body: {} };
      },
    },
    {
      method: 'GET',
      path: '/orgs/{org}/credential-authorizations',
      docs: SSO_DOCS,
      handle: (ctx, [org]) => {
        if (!sameOrg(org!)) return notFound(SSO_DOCS);
        const login = ctx.url.searchParams.get('login');
        const found = state.ssoAuthorizations.filter((a) => !login || a.login === lower(login));
        return paginate(
          ctx,
          found.map((a) => ({
            login: a.login,
            credential_id: a.credentialId,
            credential_type: a.credentialType,
            credential_authorized_at: a.authorizedAt,
            credential_accessed_at: null,
            authorized_credential_id: a.credentialId + 1_000_000,
            authorized_credential_title: a.credentialType === 'SSH key' ? `${a.login} laptop` : null,
            authorized_credential_note: null,
            authorized_credential_expires_at: null,
            ...(a.credentialType === 'SSH key'
              ? { fingerprint: `SHA256:sandbox${a.credentialId}` }
              : { token_last_eight: String(a.credentialId).padStart(8, '0'), scopes: ['repo', 'read:org'] }),
          })),
        );
      },
    },
    {
      method: 'DELETE',
      path: '/orgs/{org}/credential-authorizations/{credential_id}',
      docs: SSO_DOCS,
      handle: (_ctx, [org, id]) => {
        const before = state.ssoAuthorizations.length;
        if (sameOrg(org!))
          state.ssoAuthorizations = state.ssoAuthorizations.filter((a) => String(a.credentialId) !== id);
        return state.ssoAuthorizations.length < before ? { status: 204 } : notFound(SSO_DOCS);
      },
    },
  ];

  const tokenOf = (authorization: string | undefined) => /^(?:token|bearer)\s+(\S+)$/i.exec(authorization ?? '')?.[1];
  const isInstallationToken = (token: string | undefined) =>
    token !== undefined && (state.installationTokens[token] ?? 0) > Date.now();
  const isSandboxToken = (token: string | undefined): token is string =>
    token === GITHUB_SANDBOX_TOKEN || token === GITHUB_SANDBOX_READ_ONLY_TOKEN || isInstallationToken(token);
  /** May write: the read-write token, or a live installation token of the app. */
  const mayWrite = (token: string | undefined) => token === GITHUB_SANDBOX_TOKEN || isInstallationToken(token);

  const APP_DOCS = `${DOCS}/apps/apps#create-an-installation-access-token-for-an-app`;
  /** `POST /app/installations/{id}/access_tokens`, authenticated by the app's JWT. */
  function createInstallationToken(authorization: string | undefined, installationId: string): Answer {
    const jwt = /^bearer\s+(\S+)$/i.exec(authorization ?? '')?.[1];
    if (!jwt) return error(401, 'A JSON web token could not be decoded', APP_DOCS);
    const [header, payload, signature] = jwt.split('.');
    let claims: { iss?: unknown; iat?: unknown; exp?: unknown };
    try {
      const alg = (JSON.parse(Buffer.from(header ?? '', 'base64url').toString()) as { alg?: string }).alg;
      const signed = verify(
        'RSA-SHA256',
        Buffer.from(`${header}.${payload}`),
        appPublicKey,
        Buffer.from(signature ?? '', 'base64url'),
      );
      if (alg !== 'RS256' || !signed) throw new Error('not signed by the app');
      claims = JSON.parse(Buffer.from(payload ?? '', 'base64url').toString()) as typeof claims;
    } catch {
      return error(401, 'A JSON web token could not be decoded', APP_DOCS);
    }
    const nowSeconds = Math.floor(Date.now() / 1000);
    if (String(claims.iss) !== String(GITHUB_SANDBOX_APP.appId))
      return error(401, 'A JSON web token could not be decoded', APP_DOCS);
    if (typeof claims.exp !== 'number' || claims.exp <= nowSeconds) {
      return error(
        401,
        "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires",
        APP_DOCS,
      );
    }
    if (typeof claims.iat !== 'number' || claims.iat > nowSeconds + 60)
      return error(
        401,
        "'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued",
        APP_DOCS,
      );
    if (claims.exp - Math.max(claims.iat, nowSeconds - 60) > 600 || claims.exp > nowSeconds + 600)
      return error(401, "'Expiration time' claim ('exp') is too far in the future", APP_DOCS);
    if (installationId !== String(GITHUB_SANDBOX_APP.installationId)) return notFound(APP_DOCS);
    const token = `ghs_${randomBytes(18).toString('hex')}`;
    const expiresAt = Date.now() + installationTokenTtlMs;
    state.installationTokens[token] = expiresAt;
    return {
      status: 201,
      body: {
        token,
        expires_at: new Date(expiresAt).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        permissions: {
          members: 'write',
          organization_administration: 'read',
          organization_personal_access_tokens: 'write',
        },
        repository_selection: 'all',
      },
    };
  }

  /** The primary limit's window for a token (unauthenticated callers share one, of 60). */
  function bucketFor(key: string) {
    const now = Date.now();
    const bucket = (state.rateLimits[key] ??= { used: 0, reset: Math.floor(now / 1000) + 3600 });
    if (bucket.reset * 1000 <= now) Object.assign(bucket, { used: 0, reset: Math.floor(now / 1000) + 3600 });
    return { bucket, limit: key === 'anonymous' ? 60 : RATE_LIMIT };
  }

  function rateLimitHeaders(key: string): Record<string, string> {
    const { bucket, limit } = bucketFor(key);
    return {
      'x-ratelimit-limit': String(limit),
      'x-ratelimit-remaining': String(Math.max(0, limit - bucket.used)),
      'x-ratelimit-reset': String(bucket.reset),
      'x-ratelimit-used': String(bucket.used),
      'x-ratelimit-resource': 'core',
    };
  }

  function answerApi(ctx: Context, method: string, authorization: string | undefined): Answer {
    const app = /^\/app\/installations\/([^/]+)\/access_tokens$/.exec(ctx.url.pathname);
    if (app && method === 'POST') {
      ctx.route = 'POST /app/installations/{installation_id}/access_tokens';
      return createInstallationToken(authorization, decodeURIComponent(app[1]!));
    }
    const token = tokenOf(authorization);
    const { bucket, limit } = bucketFor(isSandboxToken(token) ? token : 'anonymous');
    if (bucket.used >= limit) {
      return error(
        403,
        `API rate limit exceeded for ${isSandboxToken(token) ? 'installation ID 1' : '127.0.0.1'}.`,
        `${DOCS}/using-the-rest-api/rate-limits-for-the-rest-api#about-primary-rate-limits`,
      );
    }
    bucket.used += 1;
    if (!authorization) return error(401, 'Requires authentication');
    if (!isSandboxToken(token)) return error(401, 'Bad credentials');

    const burst = faults.rateLimitBurst;
    if (burst && burst.count > 0) {
      burst.count -= 1;
      return {
        ...error(
          burst.status ?? 429,
          'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.',
          `${DOCS}/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits`,
        ),
        headers: { 'retry-after': String(burst.retryAfterSeconds) },
      };
    }
    const path = ctx.url.pathname;
    const route = routes.find((r) => r.method === method && patternOf(r.path).test(path));
    if (!route) return notFound(DOCS);
    ctx.route = `${method} ${route.path}`;
    if (method !== 'GET' && !mayWrite(token)) return error(403, 'Resource not accessible by integration', route.docs);
    const params = (patternOf(route.path).exec(path) ?? []).slice(1).map(decodeURIComponent);
    if (method !== 'GET' && faults.unappliedWrites && faults.unappliedWrites > 0) {
      faults.unappliedWrites -= 1;
      const before = structuredClone(state);
      const answer = route.handle(ctx, params);
      state = before;
      return answer;
    }
    return route.handle(ctx, params);
  }

  async function readBody(req: http.IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  function send(res: http.ServerResponse, answer: Answer, headers: Record<string, string>) {
    const body = answer.body === undefined ? '' : JSON.stringify(answer.body);
    res.writeHead(answer.status, {
      ...headers,
      ...(answer.body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8' }),
      'x-github-api-version-selected': '2022-11-28',
      'x-github-request-id': `SANDBOX:${state.requests}`,
      ...answer.headers,
    });
    res.end(body);
  }

  const server = http.createServer((req, res) => {
    void (async () => {
      const origin = `http://${req.headers.host ?? '127.0.0.1'}`;
      const url = new URL(req.url ?? '/', origin);
      const method = req.method ?? 'GET';
      const raw = await readBody(req);

      if (url.pathname === '/_sandbox/state' && method === 'GET') return send(res, { status: 200, body: state }, {});
      if (url.pathname === '/_sandbox/faults' && method === 'POST') {
        try {
          inject(raw ? (JSON.parse(raw) as GithubFaults) : {});
          return send(res, { status: 200, body: faults }, {});
        } catch {
          return send(res, error(400, 'Problems parsing JSON'), {});
        }
      }
      if (url.pathname === '/_sandbox/reset' && method === 'POST') {
        reset();
        return send(res, { status: 204 }, {});
      }

      state.requests += 1;
      if (faults.latencyMs) await new Promise((resolve) => setTimeout(resolve, faults.latencyMs));
      if (faults.connectionResets && faults.connectionResets > 0) {
        faults.connectionResets -= 1;
        req.socket.destroy();
        return;
      }
      const rate = faults.serverErrorRate ?? 0;
      faultCounter += 1;
      // Deterministic: the n-th request fails when the running total of `rate` crosses an integer.
      if (rate > 0 && Math.floor(faultCounter * rate) > Math.floor((faultCounter - 1) * rate)) {
        return send(res, { status: 502, body: { message: 'Server Error' } }, {});
      }
      if (faults.primaryLimit) {
        const reset = Math.floor(Date.now() / 1000) + faults.primaryLimit.resetInSeconds;
        for (const token of [GITHUB_SANDBOX_TOKEN, GITHUB_SANDBOX_READ_ONLY_TOKEN])
          state.rateLimits[token] = { used: RATE_LIMIT, reset };
        delete faults.primaryLimit;
      }

      let body: unknown;
      if (raw) {
        try {
          body = JSON.parse(raw);
        } catch {
          return send(res, error(400, 'Problems parsing JSON'), {});
        }
      }
      const authorization = req.headers.authorization;
      const ctx: Context = { url, body, origin };
      const answer = answerApi(ctx, method, authorization);
      const token = tokenOf(authorization);
      send(res, answer, rateLimitHeaders(isSandboxToken(token) ? token : 'anonymous'));
      if (ctx.route)
        for (const listener of listeners) listener({ route: ctx.route, status: answer.status, body: answer.body });
    })().catch((err: unknown) => {
      if (!res.headersSent)
        send(res, error(500, `sandbox failure: ${err instanceof Error ? err.message : String(err)}`), {});
    });
  });

  function inject(next: GithubFaults) {
    // Copied, so that counting down a burst does not change the caller's object.
    faults = { ...next, rateLimitBurst: next.rateLimitBurst ? { ...next.rateLimitBurst } : undefined };
    faultCounter = 0;
  }

  function reset() {
    state = seed();
    faults = {};
    faultCounter = 0;
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    appPrivateKey,
    onAnswer(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    get state() {
      return state;
    },
    inject,
    reset,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
