/**
 * A local stand-in for an Okta org's Management API (`/api/v1`), seeded from the sample
 * organisation, speaking the wire format `@okta/okta-sdk-nodejs` expects: JSON bodies, `SSWS
 * <token>` authentication (401 `E0000011` "Invalid token provided" without a known one), errors as
 * `{errorCode, errorSummary, errorLink, errorId, errorCauses}`, the `X-Rate-Limit-Limit`,
 * `X-Rate-Limit-Remaining` and `X-Rate-Limit-Reset` (UTC epoch seconds) headers on every answer and
 * 429 `E0000047` when they run out (a window per API family, as Okta counts), and cursor pagination through `Link: <…>; rel="next"` (the
 * SDK's Collection follows it).
 *
 * Served (what the connector calls, as documented in Okta's Management API reference):
 * - `GET /api/v1/users?search=profile.<attr> eq "<v>" [or|and …]&limit=n`, `GET /api/v1/users/{id}`
 * - `POST /api/v1/users/{id}/lifecycle/suspend` (ACTIVE only), `…/unsuspend` (SUSPENDED only),
 *   `…/activate?sendEmail=false` (STAGED or DEPROVISIONED; returns the activation link)
 * - `DELETE /api/v1/users/{id}`: a user not yet DEPROVISIONED is deactivated (and deprovisioned from
 *   every app it was assigned, as Okta documents); a second DELETE deletes it
 * - `DELETE /api/v1/users/{id}/sessions?oauthTokens=true`: ends the user's Okta sessions (state
 *   only: Okta's API lists no sessions of a user) and, with `oauthTokens`, their refresh tokens
 * - `GET|DELETE /api/v1/users/{id}/grants`, `GET /api/v1/users/{id}/clients`,
 *   `GET|DELETE /api/v1/users/{id}/clients/{clientId}/tokens`
 * - `GET /api/v1/users/{id}/groups`, `DELETE /api/v1/groups/{gid}/users/{uid}` (OKTA_GROUP only)
 * - `GET /api/v1/apps?filter=user.id eq "{id}"&expand=user/{id}` (each app with the assignment in
 *   `_embedded.user`), `GET|DELETE /api/v1/apps/{aid}/users/{uid}`
 * - `GET /api/v1/users/{id}/roles`, `DELETE /api/v1/users/{id}/roles/{roleAssignmentId}`
 * - `GET /api/v1/users/{id}/factors`, `DELETE /api/v1/users/{id}/factors/{fid}` (not on a
 *   deactivated user)
 *
 * Tokens carry the admin role of the admin who created them, as Okta's API tokens do: the super
 * administrator's does everything; the organisation administrator's cannot remove admin roles
 * (403 `E0000006`); the read-only administrator's can only read.
 *
 * OAuth 2.0 for Okta APIs (a service app, private_key_jwt): `POST /oauth2/v1/token` with
 * `grant_type=client_credentials`, `scope`, and a `client_assertion` JWT (RS256, iss = sub = the
 * client id, aud = the token URL, exp) checked against the app's public key (a key pair made at
 * start, `servicePrivateKey`). It answers `{token_type: 'Bearer', expires_in: 3600, access_token,
 * scope}`; errors `{error, error_description}`: 401 `invalid_client` (bad assertion, wrong client),
 * 400 `invalid_scope` (a scope not granted to the app), 400 `unsupported_grant_type`. The DPoP
 * proof the SDK always sends is ignored (the app does not require DPoP). A Bearer token carries
 * its scopes and the app's admin role (super administrator); a call whose scope is not in the
 * token answers 403 `E0000006` with `WWW-Authenticate: Bearer … error="insufficient_scope"`.
 * `expireAccessTokens()` ends every issued token (then 401 `E0000011`).
 *
 * Checked against Okta's documentation: the paths and methods above, the lifecycle preconditions
 * (suspend ACTIVE only, unsuspend SUSPENDED only, activate STAGED/DEPROVISIONED, reactivate
 * PROVISIONED/RECOVERY only), delete-twice, deactivation deprovisioning apps, suspension keeping
 * group and app assignments, the error body's fields, E0000001/6/7/11/47, the rate-limit headers
 * (Reset in epoch seconds), OKTA_GROUP-only membership changes, "can't unenroll a factor from a
 * deactivated user", and that revoking sessions does not clear the sessions of web or native
 * apps. Not confirmed: the exact errorSummary and errorCauses texts of each refusal here, what
 * Okta answers to removing a non-member from a group (204 here) or a group-scoped app assignment
 * (400 here), whether suspension or deactivation ends existing Okta sessions (neither does here),
 * whether deactivation keeps group memberships (it does here), the page size limits.
 *
 * Not modelled: users in other statuses than the seed's (LOCKED_OUT, RECOVERY… can be set in the
 * state), Okta's search operators beyond `eq` joined by `and`/`or`, `filter` and `q` on users,
 * group rules, custom roles and role targets, app-level sessions, access tokens (only refresh
 * tokens), the concurrent-request limit, per-endpoint buckets (one bucket for everything here),
 * OAuth 2.0 service apps (only SSWS tokens), DPoP.
 */
import { generateKeyPairSync, randomBytes, verify, type KeyObject } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { SAMPLE_GROUPS, SAMPLE_PEOPLE } from './org.js';

/** The super administrator's API token (fictitious, like every credential here). */
export const SANDBOX_OKTA_TOKEN = '00SANDBOX-super-admin-offboard-token-000000000';
/** An organisation administrator's token: everything but admin roles. */
export const SANDBOX_OKTA_ORG_ADMIN_TOKEN = '00SANDBOX-org-admin-token-00000000000000000';
/** A read-only administrator's token. */
export const SANDBOX_OKTA_READONLY_TOKEN = '00SANDBOX-read-only-admin-token-000000000000';

/** The OAuth 2.0 service app of offboard (its private key is made at start: `servicePrivateKey`). */
export const SANDBOX_OKTA_SERVICE_APP = '0oaSANDBOXoffboardsvc';
/** The scopes granted to that app (an access token carries those it asked for). */
export const SANDBOX_OKTA_GRANTED_SCOPES = [
  'okta.users.read',
  'okta.users.manage',
  'okta.groups.read',
  'okta.groups.manage',
  'okta.apps.read',
  'okta.apps.manage',
  'okta.roles.read',
  'okta.roles.manage',
];

/** Two Okta users carry this person's employeeNumber (a re-hire never cleaned up). */
export const OKTA_DUPLICATE_EMPLOYEE_ID = 'E1033';
/** A user created before the HR id was mapped: no employeeNumber, found by login/email. */
export const OKTA_EMAIL_ONLY_EMPLOYEE_ID = 'E1039';
/** Already suspended before the offboarding starts. */
export const OKTA_SUSPENDED_EMPLOYEE_ID = 'E1036';
/** Group whose assignment grants the AWS app (assignment scope GROUP: it goes with the group). */
export const OKTA_AWS_GROUP = 'prod-access';

export type AdminRole = 'SUPER_ADMIN' | 'ORG_ADMIN' | 'READ_ONLY_ADMIN';
export type UserStatus =
  'STAGED' | 'PROVISIONED' | 'ACTIVE' | 'RECOVERY' | 'PASSWORD_EXPIRED' | 'LOCKED_OUT' | 'SUSPENDED' | 'DEPROVISIONED';

export interface OktaUser {
  id: string;
  status: UserStatus;
  created: string;
  activated: string | null;
  statusChanged: string | null;
  lastLogin: string | null;
  lastUpdated: string;
  passwordChanged: string | null;
  type: { id: string };
  profile: {
    firstName: string;
    lastName: string;
    email: string;
    login: string;
    employeeNumber?: string;
    mobilePhone: string | null;
    secondEmail: string | null;
  };
  credentials: { password?: Record<string, never>; provider: { type: 'OKTA'; name: 'OKTA' } };
}
export interface OktaGroup {
  id: string;
  type: 'OKTA_GROUP' | 'APP_GROUP' | 'BUILT_IN';
  profile: { name: string; description: string | null };
}
export interface OktaApp {
  id: string;
  name: string;
  label: string;
  status: 'ACTIVE';
  signOnMode: 'SAML_2_0' | 'OPENID_CONNECT';
}
export interface OktaAppUser {
  appId: string;
  userId: string;
  scope: 'USER' | 'GROUP';
  status: 'PROVISIONED' | 'ACTIVE';
}
export interface OktaRoleAssignment {
  id: string;
  userId: string;
  type: string;
  label: string;
  assignmentType: 'USER' | 'GROUP';
}
export interface OktaGrant {
  id: string;
  userId: string;
  clientId: string;
  scopeId: string;
  issuer: string;
}
export interface OktaRefreshToken {
  id: string;
  userId: string;
  clientId: string;
  issuer: string;
  scopes: string[];
}
export interface OktaFactor {
  id: string;
  userId: string;
  factorType: string;
  provider: string;
  vendorName: string;
}
/** An Okta session of a user: state only, since the API has no way to list them. */
export interface OktaSession {
  id: string;
  userId: string;
}

export interface OktaState {
  users: OktaUser[];
  groups: OktaGroup[];
  memberships: { groupId: string; userId: string }[];
  apps: OktaApp[];
  appUsers: OktaAppUser[];
  /** OAuth clients (OIDC apps) that hold grants or tokens: id → name. */
  clients: Record<string, string>;
  roles: OktaRoleAssignment[];
  grants: OktaGrant[];
  refreshTokens: OktaRefreshToken[];
  factors: OktaFactor[];
  sessions: OktaSession[];
  apiTokens: Record<string, AdminRole>;
  /** Access tokens the token endpoint issued: the app, its scopes, when it expires (epoch ms). */
  accessTokens: Record<string, { clientId: string; scopes: string[]; expiresAt: number }>;
  /**
   * Okta limits each API separately ("rate limits per API": /api/v1/users*, /api/v1/groups*,
   * /api/v1/apps*, …), a window a minute each; keyed by that family (`bucketOf`).
   */
  rateLimits: Record<string, { limit: number; remaining: number; resetAt: number }>;
  /** `METHOD /path?query` of every API request, faults included: what the client really sent. */
  requests: string[];
}

export const oktaFaultsSchema = z.object({
  latencyMs: z.number().int().min(0).optional(),
  /** Share of requests answered 500 E0000009, spread evenly by a counter (1 = all). */
  serverErrorRate: z.number().min(0).max(1).optional(),
  /** The next `count` requests answer 429 E0000047, the window resetting `resetSeconds` from now. */
  tooManyRequests: z.object({ count: z.number().int().min(0), resetSeconds: z.number().int().min(0) }).optional(),
  /** The next N requests have their connection destroyed without an answer. */
  connectionResets: z.number().int().min(0).optional(),
  /** Writes are answered as usual (204/200) and change nothing. */
  ignoreWrites: z.boolean().optional(),
});
export type OktaFaults = z.infer<typeof oktaFaultsSchema>;

export interface OktaSandbox {
  url: string;
  /** The service app's private key (PKCS#8 PEM), as its owner would keep it. */
  servicePrivateKey: string;
  state: OktaState;
  /** Ends every access token issued so far, as if each had expired. */
  expireAccessTokens(): void;
  inject(faults: OktaFaults): void;
  reset(): void;
  stop(): Promise<void>;
}

// ---- seed ------------------------------------------------------------------------------------

const CREATED = '2024-01-15T09:00:00.000Z';
const ISSUER = 'https://example.okta.com/oauth2/default';
const EXPENSES_CLIENT = '0oaSANDBOXexpenses01';
const CLI_CLIENT = '0oaSANDBOXdeploycli01';

function seed(): OktaState {
  let counter = 0;
  const newId = (prefix: string) => `${prefix}${String(++counter).padStart(6, '0')}SANDBOX${prefix.length}`;
  const state: OktaState = {
    users: [],
    groups: [
      {
        id: newId('00g'),
        type: 'BUILT_IN',
        profile: { name: 'Everyone', description: 'All users in your organization' },
      },
    ],
    memberships: [],
    apps: [],
    appUsers: [],
    clients: { [EXPENSES_CLIENT]: 'Expenses', [CLI_CLIENT]: 'Deploy CLI' },
    roles: [],
    grants: [],
    refreshTokens: [],
    factors: [],
    sessions: [],
    apiTokens: {
      [SANDBOX_OKTA_TOKEN]: 'SUPER_ADMIN',
      [SANDBOX_OKTA_ORG_ADMIN_TOKEN]: 'ORG_ADMIN',
      [SANDBOX_OKTA_READONLY_TOKEN]: 'READ_ONLY_ADMIN',
    },
    accessTokens: {},
    rateLimits: {},
    requests: [],
  };
  const groupIds = new Map<string, string>();
  for (const group of SAMPLE_GROUPS) {
    const id = newId('00g');
    groupIds.set(group.cn, id);
    state.groups.push({ id, type: 'OKTA_GROUP', profile: { name: group.cn, description: null } });
  }
  // Imported from a directory: Okta lets the directory, not the API, change its members.
  const imported = newId('00g');
  state.groups.push({ id: imported, type: 'APP_GROUP', profile: { name: 'Domain Users', description: 'AD import' } });
  const app = (name: string, label: string, signOnMode: OktaApp['signOnMode']) => {
    const id = newId('0oa');
    state.apps.push({ id, name, label, status: 'ACTIVE', signOnMode });
    return id;
  };
  const slack = app('slack', 'Slack', 'SAML_2_0');
  const github = app('githubcloud', 'GitHub Enterprise Cloud', 'SAML_2_0');
  const aws = app('amazon_aws', 'AWS', 'SAML_2_0');
  const expenses = app('oidc_client', 'Expenses', 'OPENID_CONNECT');

  SAMPLE_PEOPLE.forEach((person, index) => {
    const copies = person.employeeId === OKTA_DUPLICATE_EMPLOYEE_ID ? 2 : 1;
    for (let copy = 0; copy < copies; copy++) {
      const id = newId('00u');
      const login = copy === 0 ? person.email : person.email.replace('@', '.rehire@');
      state.users.push({
        id,
        status: person.employeeId === OKTA_SUSPENDED_EMPLOYEE_ID ? 'SUSPENDED' : 'ACTIVE',
        created: CREATED,
        activated: CREATED,
        statusChanged: CREATED,
        lastLogin: CREATED,
        lastUpdated: CREATED,
        passwordChanged: CREATED,
        type: { id: 'otySANDBOXdefault01' },
        profile: {
          firstName: person.givenName,
          lastName: person.sn,
          email: login,
          login,
          ...(person.employeeId === OKTA_EMAIL_ONLY_EMPLOYEE_ID ? {} : { employeeNumber: person.employeeId }),
          mobilePhone: null,
          secondEmail: null,
        },
        credentials: { password: {}, provider: { type: 'OKTA', name: 'OKTA' } },
      });
      state.memberships.push({ groupId: state.groups[0]!.id, userId: id }, { groupId: imported, userId: id });
      for (const cn of person.groups) state.memberships.push({ groupId: groupIds.get(cn)!, userId: id });
      state.appUsers.push(
        { appId: slack, userId: id, scope: 'USER', status: 'PROVISIONED' },
        { appId: expenses, userId: id, scope: 'USER', status: 'ACTIVE' },
      );
      if (index % 2 === 1) state.appUsers.push({ appId: github, userId: id, scope: 'USER', status: 'PROVISIONED' });
      if (person.groups.includes(OKTA_AWS_GROUP))
        state.appUsers.push({ appId: aws, userId: id, scope: 'GROUP', status: 'ACTIVE' });
      if (person.employeeId === 'E1000')
        state.roles.push({
          id: newId('ra1'),
          userId: id,
          type: 'SUPER_ADMIN',
          label: 'Super Administrator',
          assignmentType: 'USER',
        });
      else if (person.groups.includes('domain-admins'))
        state.roles.push({
          id: newId('ra1'),
          userId: id,
          type: 'APP_ADMIN',
          label: 'Application Administrator',
          assignmentType: 'USER',
        });
      state.grants.push({
        id: newId('oag'),
        userId: id,
        clientId: EXPENSES_CLIENT,
        scopeId: 'scpSANDBOXprofile',
        issuer: ISSUER,
      });
      state.refreshTokens.push({
        id: newId('oar'),
        userId: id,
        clientId: EXPENSES_CLIENT,
        issuer: ISSUER,
        scopes: ['openid', 'offline_access'],
      });
      if (index % 2 === 1)
        state.refreshTokens.push({
          id: newId('oar'),
          userId: id,
          clientId: CLI_CLIENT,
          issuer: ISSUER,
          scopes: ['openid', 'offline_access'],
        });
      state.factors.push(
        { id: newId('opf'), userId: id, factorType: 'push', provider: 'OKTA', vendorName: 'OKTA' },
        { id: newId('uft'), userId: id, factorType: 'token:software:totp', provider: 'GOOGLE', vendorName: 'GOOGLE' },
      );
      state.sessions.push({ id: newId('102'), userId: id });
    }
  });
  return state;
}

/** The stand-in's users of one sample person, by employeeNumber or by the person's email (login). */
export function oktaUsersOf(state: OktaState, employeeId: string): OktaUser[] {
  const person = SAMPLE_PEOPLE.find((p) => p.employeeId === employeeId);
  return state.users.filter(
    (u) => u.profile.employeeNumber === employeeId || (person && u.profile.login === person.email),
  );
}

// ---- wire format -----------------------------------------------------------------------------

class OktaFailure extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string,
    summary: string,
    readonly causes: string[] = [],
  ) {
    super(summary);
  }
}

/** Requests a minute in each API's window (Okta's published figure for /api/v1/users* and /api/v1/apps*). */
const RATE_LIMIT_PER_MINUTE = 600;

/** The API family whose window a request counts against: `/api/v1/users`, `/oauth2/v1/token`, … */
export function bucketOf(pathname: string): string {
  if (pathname === '/oauth2/v1/token') return pathname;
  return /^\/api\/v1\/[^/]+/.exec(pathname)?.[0] ?? pathname;
}

const notFound = (id: string, kind: string) =>
  new OktaFailure(404, 'E0000007', `Not found: Resource not found: ${id} (${kind})`);
const forbidden = () => new OktaFailure(403, 'E0000006', 'You do not have permission to perform the requested action');
const invalid = (operation: string, cause: string) =>
  new OktaFailure(400, 'E0000001', `Api validation failed: ${operation}`, [cause]);

/** A search (or filter) expression: `a.b eq "v"` terms joined by `and`/`or`, evaluated left to right as Okta's precedence (and before or). */
function parseExpression(expression: string): { path: string; value: string }[][] {
  const pattern = /\s*([A-Za-z_][\w.]*)\s+eq\s+"((?:\\.|[^"\\])*)"\s*(?:(and|or)\b|$)/iy;
  const disjunction: { path: string; value: string }[][] = [[]];
  while (pattern.lastIndex < expression.length) {
    const match = pattern.exec(expression);
    if (!match) throw new OktaFailure(400, 'E0000031', 'Invalid search criteria.');
    disjunction[disjunction.length - 1]!.push({ path: match[1]!, value: match[2]!.replace(/\\(.)/g, '$1') });
    if (match[3]?.toLowerCase() === 'or') disjunction.push([]);
    else if (!match[3]) break;
  }
  if (pattern.lastIndex < expression.length || disjunction.some((terms) => terms.length === 0))
    throw new OktaFailure(400, 'E0000031', 'Invalid search criteria.');
  return disjunction;
}

function valueAt(record: unknown, path: string): unknown {
  return path
    .split('.')
    .reduce<unknown>(
      (at, key) => (at && typeof at === 'object' ? (at as Record<string, unknown>)[key] : undefined),
      record,
    );
}

const userJson = (url: string, user: OktaUser) => ({
  ...user,
  _links: { self: { href: `${url}/api/v1/users/${user.id}` } },
});
const groupJson = (group: OktaGroup) => ({
  id: group.id,
  created: CREATED,
  lastUpdated: CREATED,
  lastMembershipUpdated: CREATED,
  objectClass: [group.type === 'APP_GROUP' ? 'okta:windows_security_principal' : 'okta:user_group'],
  type: group.type,
  profile: group.profile,
});
const appUserJson = (appUser: OktaAppUser) => ({
  id: appUser.userId,
  externalId: null,
  created: CREATED,
  lastUpdated: CREATED,
  scope: appUser.scope,
  status: appUser.status,
  statusChanged: CREATED,
  passwordChanged: null,
  syncState: 'DISABLED',
  credentials: { userName: appUser.userId },
  profile: {},
});

// ---- server ----------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The scope a Management API call needs (Okta's scope names). */
function scopeFor(method: string, path: string): string {
  const write = method !== 'GET';
  if (/^\/api\/v1\/users\/[^/]+\/roles/.test(path)) return write ? 'okta.roles.manage' : 'okta.roles.read';
  if (path.startsWith('/api/v1/groups')) return write ? 'okta.groups.manage' : 'okta.groups.read';
  if (path.startsWith('/api/v1/apps')) return write ? 'okta.apps.manage' : 'okta.apps.read';
  return write ? 'okta.users.manage' : 'okta.users.read';
}

const base64url = (part: string) => Buffer.from(part, 'base64url');

/** The claims of an RS256 client assertion signed with the key of `publicKey`, or why it is refused. */
function verifyAssertion(assertion: string, publicKey: KeyObject): Record<string, unknown> | string {
  const parts = assertion.split('.');
  if (parts.length !== 3) return 'The client_assertion is not a valid JWT.';
  try {
    const header = JSON.parse(base64url(parts[0]!).toString('utf8')) as { alg?: string };
    if (header.alg !== 'RS256') return 'The client_assertion signature algorithm is not supported.';
    if (!verify('sha256', Buffer.from(`${parts[0]}.${parts[1]}`), publicKey, base64url(parts[2]!)))
      return 'The client_assertion signature is invalid.';
    return JSON.parse(base64url(parts[1]!).toString('utf8')) as Record<string, unknown>;
  } catch {
    return 'The client_assertion is not a valid JWT.';
  }
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export async function startOktaSandbox(options: { port?: number } = {}): Promise<OktaSandbox> {
  const state = seed();
  const serviceKeys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const servicePrivateKey = serviceKeys.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  let faults: OktaFaults = {};
  let served = 0;
  let url = '';

  function rateLimitOf(pathname: string) {
    const bucket = bucketOf(pathname);
    const now = Math.floor(Date.now() / 1000);
    const window = (state.rateLimits[bucket] ??= { limit: RATE_LIMIT_PER_MINUTE, remaining: 0, resetAt: 0 });
    if (window.resetAt <= now) {
      window.resetAt = now + 60;
      window.remaining = window.limit;
    }
    return window;
  }

  function rateLimitHeaders(window: OktaState['rateLimits'][string]): Record<string, string> {
    return {
      'x-rate-limit-limit': String(window.limit),
      'x-rate-limit-remaining': String(Math.max(0, window.remaining)),
      'x-rate-limit-reset': String(window.resetAt),
    };
  }

  function send(res: http.ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}) {
    const all = { 'x-okta-request-id': randomBytes(12).toString('base64url'), ...headers };
    if (body === undefined) res.writeHead(status, all).end();
    else res.writeHead(status, { 'content-type': 'application/json', ...all }).end(JSON.stringify(body));
  }
  function sendFailure(res: http.ServerResponse, failure: OktaFailure, headers: Record<string, string> = {}) {
    send(
      res,
      failure.status,
      {
        errorCode: failure.errorCode,
        errorSummary: failure.message,
        errorLink: failure.errorCode,
        errorId: `oae${randomBytes(11).toString('base64url')}`,
        errorCauses: failure.causes.map((errorSummary) => ({ errorSummary })),
      },
      headers,
    );
  }

  /** One page of `items`, with the `Link` headers Okta sends (self, and next while more remain). */
  function page<T>(
    res: http.ServerResponse,
    requestUrl: URL,
    items: T[],
    idOf: (item: T) => string,
    headers: Record<string, string>,
  ) {
    const limit = Math.min(Number(requestUrl.searchParams.get('limit') ?? 200) || 200, 200);
    const after = requestUrl.searchParams.get('after');
    const start = after ? items.findIndex((item) => idOf(item) === after) + 1 : 0;
    const slice = items.slice(start, start + limit);
    const self = new URL(requestUrl.pathname + requestUrl.search, url);
    const links = [`<${self.href}>; rel="self"`];
    if (start + limit < items.length) {
      const next = new URL(self);
      next.searchParams.set('after', idOf(slice[slice.length - 1]!));
      next.searchParams.set('limit', String(limit));
      links.push(`<${next.href}>; rel="next"`);
    }
    send(res, 200, slice, { ...headers, link: links.join(', ') });
  }

  function userById(idOrLogin: string): OktaUser {
    const user = state.users.find(
      (u) => u.id === idOrLogin || u.profile.login.toLowerCase() === idOrLogin.toLowerCase(),
    );
    if (!user) throw notFound(idOrLogin, 'User');
    return user;
  }
  const touch = (user: OktaUser, status: UserStatus) => {
    if (faults.ignoreWrites) return;
    user.status = status;
    user.statusChanged = user.lastUpdated = new Date().toISOString();
  };
  const write = (change: () => void) => {
    if (!faults.ignoreWrites) change();
  };

  async function token(req: http.IncomingMessage, res: http.ServerResponse, headers: Record<string, string>) {
    const refuse = (status: number, error: string, description: string) =>
      send(res, status, { error, error_description: description }, { ...headers, 'cache-control': 'no-store' });
    if (req.method !== 'POST') return refuse(405, 'invalid_request', 'The token endpoint accepts POST only.');
    const form = new URLSearchParams(await readBody(req));
    if (form.get('grant_type') !== 'client_credentials')
      return refuse(
        400,
        'unsupported_grant_type',
        'The authorization grant type is not supported by the authorization server.',
      );
    if (form.get('client_assertion_type') !== 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer')
      return refuse(401, 'invalid_client', 'Client authentication failed.');
    const claims = verifyAssertion(form.get('client_assertion') ?? '', serviceKeys.publicKey);
    if (typeof claims === 'string') return refuse(401, 'invalid_client', claims);
    const now = Math.floor(Date.now() / 1000);
    if (claims.iss !== SANDBOX_OKTA_SERVICE_APP || claims.sub !== SANDBOX_OKTA_SERVICE_APP)
      return refuse(401, 'invalid_client', 'The client_assertion token has an invalid issuer or subject.');
    if (claims.aud !== `${url}/oauth2/v1/token`)
      return refuse(
        401,
        'invalid_client',
        'The audience claim for client_assertion must be the endpoint invoked for the request.',
      );
    if (typeof claims.exp !== 'number' || claims.exp <= now)
      return refuse(401, 'invalid_client', 'The client_assertion token is expired.');
    const scopes = (form.get('scope') ?? '').split(' ').filter(Boolean);
    const refused = scopes.filter((scope) => !SANDBOX_OKTA_GRANTED_SCOPES.includes(scope));
    if (scopes.length === 0 || refused.length)
      return refuse(
        400,
        'invalid_scope',
        `The following scopes are not allowed: ${refused.join(', ') || '(none requested)'}`,
      );
    const accessToken = randomBytes(32).toString('base64url');
    state.accessTokens[accessToken] = { clientId: SANDBOX_OKTA_SERVICE_APP, scopes, expiresAt: Date.now() + 3_600_000 };
    send(
      res,
      200,
      { token_type: 'Bearer', expires_in: 3600, access_token: accessToken, scope: scopes.join(' ') },
      { ...headers, 'cache-control': 'no-store' },
    );
  }

  /** The admin role of the caller, and the scopes of an OAuth access token (none: an API token). */
  function callerOf(req: http.IncomingMessage): { role: AdminRole; scopes?: string[] } {
    const authorization = req.headers.authorization ?? '';
    const ssws = /^SSWS (.+)$/.exec(authorization)?.[1];
    const role = ssws !== undefined && Object.hasOwn(state.apiTokens, ssws) ? state.apiTokens[ssws] : undefined;
    if (role) return { role };
    const bearer = /^Bearer (.+)$/.exec(authorization)?.[1];
    const issued =
      bearer !== undefined && Object.hasOwn(state.accessTokens, bearer) ? state.accessTokens[bearer] : undefined;
    // The service app holds the super administrator role.
    if (issued && issued.expiresAt > Date.now()) return { role: 'SUPER_ADMIN', scopes: issued.scopes };
    throw new OktaFailure(401, 'E0000011', 'Invalid token provided');
  }

  async function api(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    requestUrl: URL,
    headers: Record<string, string>,
  ) {
    const { role, scopes } = callerOf(req);
    const method = req.method ?? 'GET';
    const path = requestUrl.pathname.replace(/\/+$/, '');
    const needed = scopeFor(method, path);
    if (scopes && !scopes.includes(needed)) {
      headers['www-authenticate'] =
        `Bearer authorization_uri="${url}/oauth2/v1/authorize", realm="${url}", scope="${needed}", error="insufficient_scope", error_description="The access token provided does not contain the required scopes.", resource="${path}"`;
      throw forbidden();
    }
    if (method !== 'GET' && role === 'READ_ONLY_ADMIN') throw forbidden();
    const query = requestUrl.searchParams;
    const ok = (body?: unknown) => send(res, body === undefined ? 204 : 200, body, headers);
    let m: RegExpExecArray | null;

    if (path === '/api/v1/users' && method === 'GET') {
      const search = query.get('search');
      let users = state.users;
      if (search) {
        const disjunction = parseExpression(search);
        users = users.filter((u) =>
          disjunction.some((terms) => terms.every((t) => String(valueAt(u, t.path) ?? '') === t.value)),
        );
      }
      return page(
        res,
        requestUrl,
        users.map((u) => userJson(url, u)),
        (u) => u.id,
        headers,
      );
    }
    if ((m = /^\/api\/v1\/users\/([^/]+)$/.exec(path))) {
      const user = userById(decodeURIComponent(m[1]!));
      if (method === 'GET') return ok(userJson(url, user));
      if (method === 'DELETE') {
        if (user.status !== 'DEPROVISIONED') {
          touch(user, 'DEPROVISIONED');
          // Documented: a deactivated user is deprovisioned from every app it was assigned.
          write(() => (state.appUsers = state.appUsers.filter((a) => a.userId !== user.id)));
        } else {
          write(() => {
            const gone = (r: { userId: string }) => r.userId !== user.id;
            state.users = state.users.filter((u) => u !== user);
            state.memberships = state.memberships.filter(gone);
            state.appUsers = state.appUsers.filter(gone);
            state.roles = state.roles.filter(gone);
            state.grants = state.grants.filter(gone);
            state.refreshTokens = state.refreshTokens.filter(gone);
            state.factors = state.factors.filter(gone);
            state.sessions = state.sessions.filter(gone);
          });
        }
        return ok();
      }
    }
    if ((m = /^\/api\/v1\/users\/([^/]+)\/lifecycle\/(suspend|unsuspend|activate)$/.exec(path)) && method === 'POST') {
      const user = userById(decodeURIComponent(m[1]!));
      const operation = m[2]!;
      if (operation === 'suspend') {
        if (user.status !== 'ACTIVE') throw invalid('suspendUser', 'Cannot suspend a user that is not active');
        touch(user, 'SUSPENDED');
        return send(res, 200, {}, headers);
      }
      if (operation === 'unsuspend') {
        if (user.status !== 'SUSPENDED')
          throw invalid('unsuspendUser', 'Cannot unsuspend a user that is not suspended');
        touch(user, 'ACTIVE');
        return send(res, 200, {}, headers);
      }
      if (user.status !== 'STAGED' && user.status !== 'DEPROVISIONED')
        throw new OktaFailure(403, 'E0000016', 'Activation failed because the user is already active');
      touch(user, user.credentials.password ? 'ACTIVE' : 'PROVISIONED');
      if (query.get('sendEmail') === 'false') {
        const token = randomBytes(15).toString('base64url');
        return ok({ activationUrl: `${url}/welcome/${token}`, activationToken: token });
      }
      return ok({});
    }
    if ((m = /^\/api\/v1\/users\/([^/]+)\/sessions$/.exec(path)) && method === 'DELETE') {
      const user = userById(decodeURIComponent(m[1]!));
      write(() => {
        state.sessions = state.sessions.filter((s) => s.userId !== user.id);
        if (query.get('oauthTokens') === 'true')
          state.refreshTokens = state.refreshTokens.filter((t) => t.userId !== user.id);
      });
      return ok();
    }
    if ((m = /^\/api\/v1\/users\/([^/]+)\/grants$/.exec(path))) {
      const user = userById(decodeURIComponent(m[1]!));
      if (method === 'DELETE') {
        write(() => (state.grants = state.grants.filter((g) => g.userId !== user.id)));
        return ok();
      }
      if (method === 'GET') {
        const grants = state.grants
          .filter((g) => g.userId === user.id)
          .map((g) => ({ ...g, status: 'ACTIVE', source: 'END_USER', created: CREATED, lastUpdated: CREATED }));
        return page(res, requestUrl, grants, (g) => g.id, headers);
      }
    }
    if ((m = /^\/api\/v1\/users\/([^/]+)\/clients$/.exec(path)) && method === 'GET') {
      const user = userById(decodeURIComponent(m[1]!));
      const ids = new Set(
        [...state.grants, ...state.refreshTokens].filter((r) => r.userId === user.id).map((r) => r.clientId),
      );
      return ok([...ids].map((client_id) => ({ client_id, client_name: state.clients[client_id] ?? client_id })));
    }
    if ((m = /^\/api\/v1\/users\/([^/]+)\/clients\/([^/]+)\/tokens$/.exec(path))) {
      const user = userById(decodeURIComponent(m[1]!));
      const clientId = decodeURIComponent(m[2]!);
      const mine = (t: OktaRefreshToken) => t.userId === user.id && t.clientId === clientId;
      if (method === 'DELETE') {
        write(() => (state.refreshTokens = state.refreshTokens.filter((t) => !mine(t))));
        return ok();
      }
      if (method === 'GET') {
        const tokens = state.refreshTokens.filter(mine).map((t) => ({
          ...t,
          status: 'ACTIVE',
          created: CREATED,
          lastUpdated: CREATED,
          expiresAt: '2099-01-01T00:00:00.000Z',
        }));
        return page(res, requestUrl, tokens, (t) => t.id, headers);
      }
    }
    if ((m = /^\/api\/v1\/users\/([^/]+)\/groups$/.exec(path)) && method === 'GET') {
      const user = userById(decodeURIComponent(m[1]!));
      const groups = state.groups.filter((g) =>
        state.memberships.some((x) => x.groupId === g.id && x.userId === user.id),
      );
      return page(res, requestUrl, groups.map(groupJson), (g) => g.id, headers);
    }
    if ((m = /^\/api\/v1\/groups\/([^/]+)\/users\/([^/]+)$/.exec(path)) && method === 'DELETE') {
      const group = state.groups.find((g) => g.id === m![1]);
      if (!group) throw notFound(m[1]!, 'UserGroup');
      const user = userById(decodeURIComponent(m[2]!));
      if (group.type !== 'OKTA_GROUP') throw forbidden();
      write(
        () => (state.memberships = state.memberships.filter((x) => !(x.groupId === group.id && x.userId === user.id))),
      );
      return ok();
    }
    if (path === '/api/v1/apps' && method === 'GET') {
      const filter = query.get('filter');
      if (!filter) return page(res, requestUrl, state.apps, (a) => a.id, headers);
      const terms = parseExpression(filter);
      const userId =
        terms.length === 1 && terms[0]!.length === 1 && terms[0]![0]!.path === 'user.id'
          ? terms[0]![0]!.value
          : undefined;
      if (!userId) throw new OktaFailure(400, 'E0000031', 'Invalid search criteria.');
      const expand = query.get('expand') === `user/${userId}`;
      const apps = state.apps.flatMap((a) => {
        const assignment = state.appUsers.find((x) => x.appId === a.id && x.userId === userId);
        if (!assignment) return [];
        return [
          {
            ...a,
            created: CREATED,
            lastUpdated: CREATED,
            ...(expand ? { _embedded: { user: appUserJson(assignment) } } : {}),
          },
        ];
      });
      return page(res, requestUrl, apps, (a) => a.id, headers);
    }
    if ((m = /^\/api\/v1\/apps\/([^/]+)\/users\/([^/]+)$/.exec(path))) {
      const app = state.apps.find((a) => a.id === m![1]);
      if (!app) throw notFound(m[1]!, 'Application');
      const assignment = state.appUsers.find((x) => x.appId === app.id && x.userId === m![2]);
      if (!assignment) throw notFound(m[2]!, 'AppUser');
      if (method === 'GET') return ok(appUserJson(assignment));
      if (method === 'DELETE') {
        if (assignment.scope === 'GROUP')
          throw invalid(
            'unassignUserFromApplication',
            'The user is assigned to this app through a group; remove the group assignment instead',
          );
        write(() => (state.appUsers = state.appUsers.filter((x) => x !== assignment)));
        return ok();
      }
    }
    if ((m = /^\/api\/v1\/users\/([^/]+)\/roles(?:\/([^/]+))?$/.exec(path))) {
      const user = userById(decodeURIComponent(m[1]!));
      const roleId = m[2];
      if (!roleId && method === 'GET') {
        const roles = state.roles
          .filter((r) => r.userId === user.id)
          .map((r) => ({
            id: r.id,
            label: r.label,
            type: r.type,
            status: 'ACTIVE',
            created: CREATED,
            lastUpdated: CREATED,
            assignmentType: r.assignmentType,
          }));
        return ok(roles);
      }
      if (roleId && method === 'DELETE') {
        if (role !== 'SUPER_ADMIN') throw forbidden();
        const assignment = state.roles.find((r) => r.userId === user.id && r.id === roleId);
        if (!assignment) throw notFound(roleId, 'RoleAssignment');
        write(() => (state.roles = state.roles.filter((r) => r !== assignment)));
        return ok();
      }
    }
    if ((m = /^\/api\/v1\/users\/([^/]+)\/factors(?:\/([^/]+))?$/.exec(path))) {
      const user = userById(decodeURIComponent(m[1]!));
      const factorId = m[2];
      if (!factorId && method === 'GET') {
        const factors = state.factors
          .filter((f) => f.userId === user.id)
          .map((f) => ({
            id: f.id,
            factorType: f.factorType,
            provider: f.provider,
            vendorName: f.vendorName,
            status: 'ACTIVE',
            created: CREATED,
            lastUpdated: CREATED,
            profile: {},
          }));
        return ok(factors);
      }
      if (factorId && method === 'DELETE') {
        const factor = state.factors.find((f) => f.userId === user.id && f.id === factorId);
        if (!factor) throw notFound(factorId, 'UserFactor');
        if (user.status === 'DEPROVISIONED')
          throw invalid('unenrollFactor', 'Cannot unenroll a factor from a deactivated user');
        write(() => (state.factors = state.factors.filter((f) => f !== factor)));
        return ok();
      }
    }
    throw new OktaFailure(404, 'E0000022', 'The endpoint does not support the provided HTTP method');
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const requestUrl = new URL(req.url ?? '/', url);
    const method = req.method ?? 'GET';
    if (requestUrl.pathname === '/_sandbox/state' && method === 'GET') return send(res, 200, state);
    if (requestUrl.pathname === '/_sandbox/faults' && method === 'POST') {
      const parsed = oktaFaultsSchema.safeParse(JSON.parse((await readBody(req)) || '{}'));
      if (!parsed.success)
        return send(res, 400, {
          error: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
        });
      inject(parsed.data);
      return send(res, 200, faults);
    }
    if (requestUrl.pathname === '/_sandbox/reset' && method === 'POST') {
      reset();
      return send(res, 204);
    }
    if (!requestUrl.pathname.startsWith('/api/v1/') && requestUrl.pathname !== '/oauth2/v1/token')
      return sendFailure(
        res,
        new OktaFailure(404, 'E0000022', 'The endpoint does not support the provided HTTP method'),
      );

    state.requests.push(`${method} ${requestUrl.pathname}${requestUrl.search}`);
    if (faults.latencyMs) await sleep(faults.latencyMs);
    if (faults.connectionResets) {
      faults.connectionResets -= 1;
      req.socket.destroy();
      return;
    }
    const window = rateLimitOf(requestUrl.pathname);
    if (faults.tooManyRequests && faults.tooManyRequests.count > 0) {
      faults.tooManyRequests.count -= 1;
      window.remaining = 0;
      window.resetAt = Math.floor(Date.now() / 1000) + faults.tooManyRequests.resetSeconds;
      return sendFailure(
        res,
        new OktaFailure(429, 'E0000047', 'API call exceeded rate limit due to too many requests.'),
        rateLimitHeaders(window),
      );
    }
    if (window.remaining <= 0)
      return sendFailure(
        res,
        new OktaFailure(429, 'E0000047', 'API call exceeded rate limit due to too many requests.'),
        rateLimitHeaders(window),
      );
    window.remaining -= 1;
    const headers = rateLimitHeaders(window);
    if (faults.serverErrorRate) {
      served += 1;
      if (Math.floor(served * faults.serverErrorRate) > Math.floor((served - 1) * faults.serverErrorRate))
        return sendFailure(res, new OktaFailure(500, 'E0000009', 'Internal Server Error'), headers);
    }
    try {
      if (requestUrl.pathname === '/oauth2/v1/token') await token(req, res, headers);
      else await api(req, res, requestUrl, headers);
    } catch (err) {
      if (err instanceof OktaFailure) return sendFailure(res, err, headers);
      sendFailure(
        res,
        new OktaFailure(500, 'E0000009', `Internal Server Error (stand-in: ${(err as Error).message})`),
        headers,
      );
    }
  }

  function inject(next: OktaFaults): void {
    faults = structuredClone(oktaFaultsSchema.parse(next));
    served = 0;
  }
  function reset(): void {
    Object.assign(state, seed());
    inject({});
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent)
        sendFailure(
          res,
          new OktaFailure(500, 'E0000009', `Internal Server Error (stand-in: ${(err as Error).message})`),
        );
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    servicePrivateKey,
    state,
    expireAccessTokens: () => {
      for (const issued of Object.values(state.accessTokens)) issued.expiresAt = 0;
    },
    inject,
    reset,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
