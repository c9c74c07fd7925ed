/**
 * A local stand-in for a Google Workspace account's Admin SDK, seeded from the sample
 * organisation, speaking the wire format `@googleapis/admin` expects:
 *
 * - Google's OAuth token endpoint for service accounts (`POST /token`, form
 *   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<JWT>`): the RS256 signature
 *   is checked against the stand-in's service account key, `aud` must be
 *   https://oauth2.googleapis.com/token, the token short-lived (exp − iat ≤ 1 hour), `sub` an
 *   active user (400 `invalid_grant` "Invalid email or User ID" otherwise) and every requested
 *   scope granted to the client's domain-wide delegation (401 `unauthorized_client`
 *   "Client is unauthorized to retrieve access tokens using this method, or client not authorized
 *   for any of the scopes requested." otherwise, as a real account answers). 200 answers
 *   `{access_token, expires_in: 3599, token_type: 'Bearer'}`.
 * - Directory API under `/admin/directory/v1`: users (list with `query` `externalId:` / `email:`,
 *   get by id, primary email or alias, patch, delete, signOut), tokens, asps, verificationCodes
 *   (list, invalidate), groups (list by userKey), members.delete, roleAssignments (list by
 *   userKey, delete), roles.get. Data Transfer API under `/admin/datatransfer/v1`: applications
 *   (Drive and Docs 55656082996, Calendar 435070579839, with their documented parameters),
 *   transfers insert / get / list. Empty lists are left out of answers, as Google does.
 * - Errors as `{error: {code, message, errors: [{message, domain, reason}], status}}`: 404
 *   "Resource Not Found: userKey" (notFound), 401 authError without a valid token, 403
 *   `insufficientPermissions` ("Request had insufficient authentication scopes.") when the token
 *   lacks the call's scope, 403 `forbidden` ("Not Authorized to access this resource/api") when the
 *   acting admin may only read, and, as faults, 403 `rateLimitExceeded` / `userRateLimitExceeded`
 *   (domain usageLimits) or 429 — Google documents no Retry-After for the Admin SDK, so the fault
 *   sends one only when asked to — and 503 `backendError`.
 *
 * A Drive transfer answers `inProgress` when inserted and is carried out at its next read (get or
 * list): the files of the privacy levels asked for (SHARED when none is given, as documented) change
 * owner. The `holdTransfers` fault keeps transfers in progress until it is lifted.
 *
 * Checked against Google's documentation: the paths and methods, signOut's effect and scope,
 * Drive's application id and PRIVACY_LEVEL parameter (SHARED by default), the DataTransfer fields,
 * the quota errors (403 userRateLimitExceeded / quotaExceeded, exponential backoff, no Retry-After).
 * Not confirmed: the exact token-endpoint messages (taken from widely reported answers), the
 * overallTransferStatusCode values other than `completed` (`inProgress`, `failed` here), whether
 * Google answers 404 for a member or token that is not there (it does here), and that
 * verificationCodes.list is empty after invalidate. Not modelled: nested groups, aliases'
 * own listing, org units, users.undelete, other applications' transfers (Calendar is listed only).
 */
import { createVerify, generateKeyPairSync, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { SAMPLE_DOMAIN, SAMPLE_PEOPLE, type SamplePerson } from './org.js';

export const GOOGLE_TOKEN_AUDIENCE = 'https://oauth2.googleapis.com/token';
export const GOOGLE_SANDBOX_CUSTOMER_ID = 'C0sandbox1';
/** The super admin the service account acts as. */
export const GOOGLE_SANDBOX_ADMIN = `offboard-admin@${SAMPLE_DOMAIN.emailDomain}`;
/** An admin who may read users, groups and roles but change nothing. */
export const GOOGLE_SANDBOX_READONLY_ADMIN = `auditor@${SAMPLE_DOMAIN.emailDomain}`;
export const GOOGLE_SANDBOX_CLIENT_ID = '104200000000000000001';
export const DRIVE_APPLICATION_ID = '55656082996';
const CALENDAR_APPLICATION_ID = '435070579839';

/** Two users carry this person's external id (a re-hire's old account kept; the same person as in the Okta stand-in). */
export const GOOGLE_AMBIGUOUS_EMPLOYEE_ID = 'E1033';
/** This person has no Google account. */
export const GOOGLE_MISSING_EMPLOYEE_ID = 'E1046';

const SCOPE = 'https://www.googleapis.com/auth/';
export const ALL_DELEGATED_SCOPES = [
  `${SCOPE}admin.directory.user`,
  `${SCOPE}admin.directory.user.security`,
  `${SCOPE}admin.directory.group`,
  `${SCOPE}admin.directory.rolemanagement`,
  `${SCOPE}admin.datatransfer`,
];

export interface GoogleUserRecord {
  kind: 'admin#directory#user';
  id: string;
  primaryEmail: string;
  name: { givenName: string; familyName: string; fullName: string };
  isAdmin: boolean;
  suspended: boolean;
  suspensionReason?: string;
  aliases?: string[];
  externalIds?: { value: string; type: string }[];
  relations?: { value: string; type: string }[];
  orgUnitPath: string;
  customerId: string;
  creationTime: string;
  /** Stand-in only (not in answers): what the acting admin may do. */
  adminAccess?: 'all' | 'read';
}

export interface GoogleWorkspaceState {
  customerId: string;
  users: Record<string, GoogleUserRecord>;
  groups: Record<string, { id: string; email: string; name: string; members: string[] }>;
  roles: Record<string, { roleId: string; roleName: string; isSuperAdminRole: boolean }>;
  roleAssignments: Record<string, { roleAssignmentId: string; roleId: string; assignedTo: string; scopeType: string }>;
  /** OAuth tokens per user id. */
  tokens: Record<string, { clientId: string; displayText: string; scopes: string[]; nativeApp: boolean }[]>;
  /** App-specific passwords per user id. */
  asps: Record<string, { codeId: number; name: string; creationTime: string }[]>;
  /** Valid backup verification codes per user id. */
  backupCodes: Record<string, string[]>;
  driveFiles: { id: string; name: string; ownerId: string; shared: boolean }[];
  transfers: Record<string, TransferRecord>;
  /** users.signOut calls per user id (Google shows no sessions: this is what a test can check). */
  signOuts: Record<string, number>;
  deletedUsers: Record<string, GoogleUserRecord>;
  /** The scopes the service account's client may have tokens for (domain-wide delegation). */
  delegatedScopes: string[];
  accessTokens: Record<string, { subject: string; scopes: string[]; expiresAt: number }>;
  /** `METHOD /path` of every request, faults included. */
  requests: string[];
}

interface TransferRecord {
  kind: 'admin#datatransfer#DataTransfer';
  id: string;
  oldOwnerUserId: string;
  newOwnerUserId: string;
  applicationDataTransfers: {
    applicationId: string;
    applicationTransferParams?: { key: string; value: string[] }[];
    applicationTransferStatus: string;
  }[];
  overallTransferStatusCode: string;
  requestTime: string;
}

export const googleFaultsSchema = z.object({
  latencyMs: z.number().int().min(0).optional(),
  /** Share of API requests answered 503 backendError, spread evenly by a counter (1 = all). */
  serverErrorRate: z.number().min(0).max(1).optional(),
  /** The next `count` API requests are refused as over quota: 403 (usageLimits) or 429. */
  rateLimited: z
    .object({
      count: z.number().int().min(0),
      status: z.union([z.literal(403), z.literal(429)]).default(403),
      reason: z.enum(['rateLimitExceeded', 'userRateLimitExceeded', 'quotaExceeded']).default('userRateLimitExceeded'),
      /** Google documents none; sent only when given. */
      retryAfterSeconds: z.number().int().min(0).optional(),
    })
    .optional(),
  /** The next N API requests have their connection destroyed without an answer. */
  connectionResets: z.number().int().min(0).optional(),
  /** Drive transfers stay in progress while this is set. */
  holdTransfers: z.boolean().optional(),
});
export type GoogleFaults = z.input<typeof googleFaultsSchema>;

export interface GoogleWorkspaceSandbox {
  url: string;
  tokenUrl: string;
  /** The service account's JSON key, as Google Cloud hands it out (its token_uri points here). */
  serviceAccountKey: string;
  state: GoogleWorkspaceState;
  inject(faults: GoogleFaults): void;
  reset(): void;
  stop(): Promise<void>;
}

// ---- seed ------------------------------------------------------------------------------------

const CREATED = '2024-01-15T09:00:00.000Z';
const SYSTEM_ROLES = [
  { roleName: '_SEED_ADMIN_ROLE', isSuperAdminRole: true },
  { roleName: '_GROUPS_ADMIN_ROLE', isSuperAdminRole: false },
  { roleName: '_USER_MANAGEMENT_ADMIN_ROLE', isSuperAdminRole: false },
  { roleName: '_HELP_DESK_ADMIN_ROLE', isSuperAdminRole: false },
];

const userIdOf = (n: number) => `1${String(n).padStart(20, '0')}`;

function userRecord(id: string, email: string, person?: SamplePerson): GoogleUserRecord {
  const [givenName, familyName] = person ? [person.givenName, person.sn] : [email.split('@')[0]!, 'Admin'];
  return {
    kind: 'admin#directory#user',
    id,
    primaryEmail: email,
    name: { givenName, familyName, fullName: `${givenName} ${familyName}` },
    isAdmin: false,
    suspended: false,
    orgUnitPath: '/',
    customerId: GOOGLE_SANDBOX_CUSTOMER_ID,
    creationTime: CREATED,
  };
}

function seed(): GoogleWorkspaceState {
  const state: GoogleWorkspaceState = {
    customerId: GOOGLE_SANDBOX_CUSTOMER_ID,
    users: {},
    groups: {},
    roles: {},
    roleAssignments: {},
    tokens: {},
    asps: {},
    backupCodes: {},
    driveFiles: [],
    transfers: {},
    signOuts: {},
    deletedUsers: {},
    delegatedScopes: [...ALL_DELEGATED_SCOPES],
    accessTokens: {},
    requests: [],
  };
  SYSTEM_ROLES.forEach((role, i) => {
    const roleId = `91705169967841${10 + i}`;
    state.roles[roleId] = { roleId, ...role };
  });
  const roleId = (name: string) => Object.values(state.roles).find((r) => r.roleName === name)!.roleId;
  let assignments = 0;
  const assign = (userId: string, name: string) => {
    const roleAssignmentId = `917051699678${String(++assignments).padStart(4, '0')}`;
    state.roleAssignments[roleAssignmentId] = {
      roleAssignmentId,
      roleId: roleId(name),
      assignedTo: userId,
      scopeType: 'CUSTOMER',
    };
    if (state.roles[roleId(name)]!.isSuperAdminRole) state.users[userId]!.isAdmin = true;
  };
  const admin = userRecord(userIdOf(1), GOOGLE_SANDBOX_ADMIN);
  admin.adminAccess = 'all';
  const auditor = userRecord(userIdOf(2), GOOGLE_SANDBOX_READONLY_ADMIN);
  auditor.adminAccess = 'read';
  state.users[admin.id] = admin;
  state.users[auditor.id] = auditor;
  assign(admin.id, '_SEED_ADMIN_ROLE');
  assign(auditor.id, '_HELP_DESK_ADMIN_ROLE');

  const groupEmail = (cn: string) => `${cn}@${SAMPLE_DOMAIN.emailDomain}`;
  let files = 0;
  SAMPLE_PEOPLE.forEach((person, i) => {
    if (person.employeeId === GOOGLE_MISSING_EMPLOYEE_ID) return;
    const id = userIdOf(1000 + i);
    const user = userRecord(id, person.email, person);
    user.externalIds = [{ value: person.employeeId, type: 'organization' }];
    if (person.managerEmployeeId) {
      const manager = SAMPLE_PEOPLE.find((p) => p.employeeId === person.managerEmployeeId);
      if (manager) user.relations = [{ value: manager.email, type: 'manager' }];
    }
    state.users[id] = user;
    for (const cn of person.groups) {
      const email = groupEmail(cn);
      const group = (state.groups[email] ??= {
        id: `03x${randomHex(6)}${cn.length}`,
        email,
        name: cn,
        members: [],
      });
      group.members.push(id);
    }
    if (person.groups.includes('domain-admins')) assign(id, '_GROUPS_ADMIN_ROLE');
    if (person.employeeId === 'E1000') assign(id, '_SEED_ADMIN_ROLE');
    state.tokens[id] = [
      {
        clientId: '292824132082.apps.googleusercontent.com',
        displayText: 'Sample Notes',
        scopes: ['https://www.googleapis.com/auth/drive.file'],
        nativeApp: false,
      },
    ];
    state.asps[id] = i % 3 === 1 ? [{ codeId: 100 + i, name: 'Mail on old phone', creationTime: '1705309200000' }] : [];
    state.backupCodes[id] = Array.from({ length: 10 }, () => String(10000000 + (parseInt(randomHex(3), 16) % 9e7)));
    state.driveFiles.push(
      { id: `file-${++files}`, name: `${person.uid} notes`, ownerId: id, shared: false },
      { id: `file-${++files}`, name: `${person.uid} team plan`, ownerId: id, shared: true },
    );
  });
  // A re-hire's old account still carries the person's external id.
  const ambiguous = SAMPLE_PEOPLE.find((p) => p.employeeId === GOOGLE_AMBIGUOUS_EMPLOYEE_ID)!;
  const legacy = userRecord(userIdOf(900), `${ambiguous.uid}.old@${SAMPLE_DOMAIN.emailDomain}`, ambiguous);
  legacy.externalIds = [{ value: ambiguous.employeeId, type: 'organization' }];
  state.users[legacy.id] = legacy;
  return state;
}

const randomHex = (bytes: number) => randomBytes(bytes).toString('hex');

// ---- wire helpers ----------------------------------------------------------------------------

class GoogleFailure extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly status: string,
    readonly domain = 'global',
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const notFound = (what: string) => new GoogleFailure(404, 'notFound', `Resource Not Found: ${what}`, 'NOT_FOUND');
const forbidden = () =>
  new GoogleFailure(403, 'forbidden', 'Not Authorized to access this resource/api', 'PERMISSION_DENIED');
const badRequest = (message: string) => new GoogleFailure(400, 'invalid', message, 'INVALID_ARGUMENT');

function send(res: http.ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  if (body === undefined) {
    res.writeHead(status, headers);
    res.end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', ...headers });
  res.end(JSON.stringify(body));
}

function sendFailure(res: http.ServerResponse, failure: GoogleFailure): void {
  send(
    res,
    failure.code,
    {
      error: {
        code: failure.code,
        message: failure.message,
        errors: [{ message: failure.message, domain: failure.domain, reason: failure.reason }],
        status: failure.status,
      },
    },
    failure.headers,
  );
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Google leaves empty lists out of its answers. */
const withList = (body: Record<string, unknown>, key: string, items: unknown[]) =>
  items.length ? { ...body, [key]: items } : body;

function page<T>(items: T[], url: URL, max: number): { items: T[]; nextPageToken?: string } {
  const size = Math.min(Number(url.searchParams.get('maxResults') ?? max) || max, max);
  const start = Number(url.searchParams.get('pageToken') ?? 0) || 0;
  const slice = items.slice(start, start + size);
  return start + size < items.length ? { items: slice, nextPageToken: String(start + size) } : { items: slice };
}

/** The user as Google shows it: without the stand-in's own `adminAccess`. */
const publicUser = (user: GoogleUserRecord): Omit<GoogleUserRecord, 'adminAccess'> => {
  const shown: Partial<GoogleUserRecord> = { ...user };
  delete shown.adminAccess;
  return shown as Omit<GoogleUserRecord, 'adminAccess'>;
};

// ---- the server ------------------------------------------------------------------------------

export async function startGoogleWorkspaceSandbox(options: { port?: number } = {}): Promise<GoogleWorkspaceSandbox> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const keyId = randomHex(20);
  const clientEmail = `offboard@offboard-sandbox.iam.gserviceaccount.com`;
  const verifyKey = publicKey;
  const state = seed();
  let faults: z.output<typeof googleFaultsSchema> = {};
  let served = 0;
  let baseUrl = '';

  function userByKey(key: string): GoogleUserRecord | undefined {
    const lower = key.toLowerCase();
    return (
      state.users[key] ??
      Object.values(state.users).find(
        (u) => u.primaryEmail.toLowerCase() === lower || (u.aliases ?? []).some((a) => a.toLowerCase() === lower),
      )
    );
  }
  const requireUser = (key: string, what = 'userKey') => {
    const user = userByKey(key);
    if (!user) throw notFound(what);
    return user;
  };

  // ---- token endpoint ----

  function tokenError(res: http.ServerResponse, status: number, error: string, description: string): void {
    send(res, status, { error, error_description: description }, { 'cache-control': 'no-store' });
  }

  async function token(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const form = new URLSearchParams(await readBody(req));
    const grant = form.get('grant_type');
    if (grant !== 'urn:ietf:params:oauth:grant-type:jwt-bearer')
      return tokenError(res, 400, 'unsupported_grant_type', `Invalid grant_type: ${grant ?? ''}`);
    const [header, payload, signature] = (form.get('assertion') ?? '').split('.');
    if (!header || !payload || !signature) return tokenError(res, 400, 'invalid_grant', 'Invalid JWT Signature.');
    let claims: { iss?: string; sub?: string; aud?: string; scope?: string; iat?: number; exp?: number };
    try {
      const alg = (JSON.parse(Buffer.from(header, 'base64url').toString()) as { alg?: string }).alg;
      claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as typeof claims;
      const verifier = createVerify('RSA-SHA256').update(`${header}.${payload}`);
      if (alg !== 'RS256' || !verifier.verify(verifyKey, Buffer.from(signature, 'base64url'))) throw new Error();
    } catch {
      return tokenError(res, 400, 'invalid_grant', 'Invalid JWT Signature.');
    }
    if (claims.iss !== clientEmail) return tokenError(res, 401, 'invalid_client', 'The OAuth client was not found.');
    if (claims.aud !== GOOGLE_TOKEN_AUDIENCE)
      return tokenError(res, 400, 'invalid_grant', 'Invalid JWT: Failed audience check.');
    const now = Date.now() / 1000;
    if (
      !claims.iat ||
      !claims.exp ||
      claims.exp - claims.iat > 3600 ||
      claims.exp < now - 300 ||
      claims.iat > now + 300
    )
      return tokenError(
        res,
        400,
        'invalid_grant',
        'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.',
      );
    const subject = claims.sub ? userByKey(claims.sub) : undefined;
    if (!subject || subject.suspended) return tokenError(res, 400, 'invalid_grant', 'Invalid email or User ID');
    const scopes = (claims.scope ?? '').split(' ').filter(Boolean);
    if (scopes.length === 0 || scopes.some((s) => !state.delegatedScopes.includes(s)))
      return tokenError(
        res,
        401,
        'unauthorized_client',
        'Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.',
      );
    const accessToken = `ya29.sandbox-${randomHex(24)}`;
    state.accessTokens[accessToken] = { subject: subject.id, scopes, expiresAt: Date.now() + 3599_000 };
    send(
      res,
      200,
      { access_token: accessToken, expires_in: 3599, token_type: 'Bearer' },
      { 'cache-control': 'no-store' },
    );
  }

  // ---- API authorisation ----

  interface Caller {
    admin: GoogleUserRecord;
    scopes: string[];
  }

  function callerOf(req: http.IncomingMessage): Caller {
    const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    const grant = bearer ? state.accessTokens[bearer] : undefined;
    const admin = grant && grant.expiresAt > Date.now() ? state.users[grant.subject] : undefined;
    if (!grant || !admin)
      throw new GoogleFailure(
        401,
        'authError',
        'Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.',
        'UNAUTHENTICATED',
      );
    return { admin, scopes: grant.scopes };
  }

  /** The call needs one of `scopes` (a read-only variant counts for reads) and, to write, full admin access. */
  function authorise(caller: Caller, scopes: string[], writes: boolean): void {
    const accepted = writes ? scopes : scopes.flatMap((s) => [s, `${s}.readonly`]);
    if (!caller.scopes.some((s) => accepted.includes(s)))
      throw new GoogleFailure(
        403,
        'insufficientPermissions',
        'Request had insufficient authentication scopes.',
        'PERMISSION_DENIED',
      );
    if (!caller.admin.adminAccess || (writes && caller.admin.adminAccess !== 'all')) throw forbidden();
  }

  // ---- Directory API ----

  function removeUserEverywhere(user: GoogleUserRecord): void {
    delete state.users[user.id];
    state.deletedUsers[user.id] = user;
    for (const group of Object.values(state.groups)) group.members = group.members.filter((m) => m !== user.id);
    for (const [id, assignment] of Object.entries(state.roleAssignments))
      if (assignment.assignedTo === user.id) delete state.roleAssignments[id];
    delete state.tokens[user.id];
    delete state.asps[user.id];
    delete state.backupCodes[user.id];
  }

  async function directory(req: http.IncomingMessage, res: http.ServerResponse, url: URL, path: string[]) {
    const method = req.method ?? 'GET';
    const caller = callerOf(req);
    const s = (name: string) => `${SCOPE}admin.directory.${name}`;
    const [resource, key, sub, subKey] = path;

    if (resource === 'users' && key === undefined && method === 'GET') {
      authorise(caller, [s('user')], false);
      const customer = url.searchParams.get('customer');
      const domain = url.searchParams.get('domain');
      if (!customer && !domain) throw badRequest('Bad Request');
      if (customer && customer !== 'my_customer' && customer !== state.customerId) throw notFound('customer');
      const query = url.searchParams.get('query');
      let users = Object.values(state.users);
      if (domain) users = users.filter((u) => u.primaryEmail.toLowerCase().endsWith(`@${domain.toLowerCase()}`));
      if (query) {
        const match = /^(externalId|email)[:=](.+)$/.exec(query.trim());
        if (!match) throw badRequest('Invalid Input');
        const value = match[2]!.replace(/^'|'$/g, '').toLowerCase();
        users = users.filter((u) =>
          match[1] === 'externalId'
            ? (u.externalIds ?? []).some((e) => e.value.toLowerCase() === value)
            : u.primaryEmail.toLowerCase() === value,
        );
      }
      const shown = page(users.map(publicUser), url, 500);
      return send(
        res,
        200,
        withList(
          { kind: 'admin#directory#users', ...(shown.nextPageToken ? { nextPageToken: shown.nextPageToken } : {}) },
          'users',
          shown.items,
        ),
      );
    }
    if (resource === 'users' && key) {
      const userKeyed = () => requireUser(decodeURIComponent(key));
      if (sub === undefined) {
        if (method === 'GET') {
          authorise(caller, [s('user')], false);
          return send(res, 200, publicUser(userKeyed()));
        }
        if (method === 'PATCH' || method === 'PUT') {
          authorise(caller, [s('user')], true);
          const user = userKeyed();
          const body = JSON.parse((await readBody(req)) || '{}') as Partial<GoogleUserRecord>;
          if (typeof body.suspended === 'boolean') {
            user.suspended = body.suspended;
            if (body.suspended) user.suspensionReason = 'ADMIN';
            else delete user.suspensionReason;
          }
          return send(res, 200, publicUser(user));
        }
        if (method === 'DELETE') {
          authorise(caller, [s('user')], true);
          removeUserEverywhere(userKeyed());
          return send(res, 204);
        }
      }
      if (sub === 'signOut' && method === 'POST') {
        authorise(caller, [s('user.security')], true);
        const user = userKeyed();
        state.signOuts[user.id] = (state.signOuts[user.id] ?? 0) + 1;
        return send(res, 204);
      }
      if (sub === 'tokens') {
        authorise(caller, [s('user.security')], method !== 'GET');
        const user = userKeyed();
        const tokens = state.tokens[user.id] ?? [];
        if (method === 'GET' && subKey === undefined)
          return send(
            res,
            200,
            withList(
              { kind: 'admin#directory#tokenList' },
              'items',
              tokens.map((t) => ({ kind: 'admin#directory#token', ...t, anonymous: false, userKey: user.id })),
            ),
          );
        if (method === 'DELETE' && subKey) {
          const clientId = decodeURIComponent(subKey);
          if (!tokens.some((t) => t.clientId === clientId)) throw notFound('clientId');
          state.tokens[user.id] = tokens.filter((t) => t.clientId !== clientId);
          return send(res, 204);
        }
      }
      if (sub === 'asps') {
        authorise(caller, [s('user.security')], method !== 'GET');
        const user = userKeyed();
        const asps = state.asps[user.id] ?? [];
        if (method === 'GET' && subKey === undefined)
          return send(
            res,
            200,
            withList(
              { kind: 'admin#directory#asps' },
              'items',
              asps.map((a) => ({ kind: 'admin#directory#asp', ...a, lastTimeUsed: '0', userKey: user.id })),
            ),
          );
        if (method === 'DELETE' && subKey) {
          const codeId = Number(subKey);
          if (!asps.some((a) => a.codeId === codeId)) throw notFound('codeId');
          state.asps[user.id] = asps.filter((a) => a.codeId !== codeId);
          return send(res, 204);
        }
      }
      if (sub === 'verificationCodes') {
        authorise(caller, [s('user.security')], method !== 'GET');
        const user = userKeyed();
        if (method === 'GET' && subKey === undefined)
          return send(
            res,
            200,
            withList(
              { kind: 'admin#directory#verificationCodesList' },
              'items',
              (state.backupCodes[user.id] ?? []).map((code) => ({
                kind: 'admin#directory#verificationCode',
                userId: user.id,
                verificationCode: code,
              })),
            ),
          );
        if (method === 'POST' && subKey === 'invalidate') {
          state.backupCodes[user.id] = [];
          return send(res, 204);
        }
      }
    }
    if (resource === 'groups' && key === undefined && method === 'GET') {
      authorise(caller, [s('group'), s('group.member')], false);
      const userKey = url.searchParams.get('userKey');
      if (!userKey) throw badRequest('Bad Request');
      const user = requireUser(userKey);
      const groups = Object.values(state.groups)
        .filter((g) => g.members.includes(user.id))
        .map((g) => ({
          kind: 'admin#directory#group',
          id: g.id,
          email: g.email,
          name: g.name,
          directMembersCount: String(g.members.length),
          adminCreated: true,
        }));
      const shown = page(groups, url, 200);
      return send(
        res,
        200,
        withList(
          { kind: 'admin#directory#groups', ...(shown.nextPageToken ? { nextPageToken: shown.nextPageToken } : {}) },
          'groups',
          shown.items,
        ),
      );
    }
    if (resource === 'groups' && key && sub === 'members' && subKey && method === 'DELETE') {
      authorise(caller, [s('group'), s('group.member')], true);
      const groupKey = decodeURIComponent(key).toLowerCase();
      const group = Object.values(state.groups).find((g) => g.id === groupKey || g.email.toLowerCase() === groupKey);
      if (!group) throw notFound('groupKey');
      const member = userByKey(decodeURIComponent(subKey));
      if (!member || !group.members.includes(member.id)) throw notFound('memberKey');
      group.members = group.members.filter((m) => m !== member.id);
      return send(res, 204);
    }
    if (resource === 'customer' && key) {
      if (key !== 'my_customer' && key !== state.customerId) throw notFound('customer');
      authorise(caller, [s('rolemanagement')], method !== 'GET');
      if (sub === 'roleassignments' && subKey === undefined && method === 'GET') {
        const userKey = url.searchParams.get('userKey');
        const user = userKey ? requireUser(userKey) : undefined;
        const items = Object.values(state.roleAssignments)
          .filter((a) => !user || a.assignedTo === user.id)
          .map((a) => ({ kind: 'admin#directory#roleAssignment', ...a, assigneeType: 'user' }));
        const shown = page(items, url, 200);
        return send(
          res,
          200,
          withList(
            {
              kind: 'admin#directory#roleAssignments',
              ...(shown.nextPageToken ? { nextPageToken: shown.nextPageToken } : {}),
            },
            'items',
            shown.items,
          ),
        );
      }
      if (sub === 'roleassignments' && subKey && method === 'DELETE') {
        if (!state.roleAssignments[subKey]) throw notFound('roleAssignmentId');
        const assignment = state.roleAssignments[subKey];
        delete state.roleAssignments[subKey];
        const user = state.users[assignment.assignedTo];
        if (user && state.roles[assignment.roleId]?.isSuperAdminRole) user.isAdmin = false;
        return send(res, 204);
      }
      if (sub === 'roles' && subKey && method === 'GET') {
        const role = state.roles[subKey];
        if (!role) throw notFound('roleId');
        return send(res, 200, { kind: 'admin#directory#role', ...role, isSystemRole: true });
      }
    }
    throw notFound('method');
  }

  // ---- Data Transfer API ----

  const APPLICATIONS = [
    {
      kind: 'admin#datatransfer#ApplicationResource',
      id: DRIVE_APPLICATION_ID,
      name: 'Drive and Docs',
      transferParams: [{ key: 'PRIVACY_LEVEL', value: ['PRIVATE', 'SHARED'] }],
    },
    {
      kind: 'admin#datatransfer#ApplicationResource',
      id: CALENDAR_APPLICATION_ID,
      name: 'Calendar',
      transferParams: [{ key: 'RELEASE_RESOURCES', value: ['TRUE'] }],
    },
  ];

  /** Carries out a transfer at its first read while transfers are not held. */
  function progress(transfer: TransferRecord): TransferRecord {
    if (transfer.overallTransferStatusCode !== 'inProgress' || faults.holdTransfers) return transfer;
    for (const app of transfer.applicationDataTransfers) {
      if (app.applicationId === DRIVE_APPLICATION_ID) {
        const levels = app.applicationTransferParams?.find((p) => p.key === 'PRIVACY_LEVEL')?.value ?? ['SHARED'];
        for (const file of state.driveFiles)
          if (file.ownerId === transfer.oldOwnerUserId && levels.includes(file.shared ? 'SHARED' : 'PRIVATE'))
            file.ownerId = transfer.newOwnerUserId;
      }
      app.applicationTransferStatus = 'completed';
    }
    transfer.overallTransferStatusCode = 'completed';
    return transfer;
  }

  async function datatransfer(req: http.IncomingMessage, res: http.ServerResponse, url: URL, path: string[]) {
    const method = req.method ?? 'GET';
    const caller = callerOf(req);
    const scope = `${SCOPE}admin.datatransfer`;
    const [resource, id] = path;
    if (resource === 'applications' && id === undefined && method === 'GET') {
      authorise(caller, [scope], false);
      return send(res, 200, { kind: 'admin#datatransfer#applicationsList', applications: APPLICATIONS });
    }
    if (resource === 'transfers' && id === undefined && method === 'POST') {
      authorise(caller, [scope], true);
      const body = JSON.parse((await readBody(req)) || '{}') as Partial<TransferRecord>;
      if (!body.oldOwnerUserId || !state.users[body.oldOwnerUserId]) throw notFound('oldOwnerUserId');
      if (!body.newOwnerUserId || !state.users[body.newOwnerUserId]) throw notFound('newOwnerUserId');
      const apps = body.applicationDataTransfers ?? [];
      if (apps.length === 0 || apps.some((a) => !APPLICATIONS.some((known) => known.id === String(a.applicationId))))
        throw badRequest('Invalid application ID');
      const transfer: TransferRecord = {
        kind: 'admin#datatransfer#DataTransfer',
        id: `AKrEtIb${randomHex(12)}`,
        oldOwnerUserId: body.oldOwnerUserId,
        newOwnerUserId: body.newOwnerUserId,
        applicationDataTransfers: apps.map((a) => ({
          applicationId: String(a.applicationId),
          ...(a.applicationTransferParams ? { applicationTransferParams: a.applicationTransferParams } : {}),
          applicationTransferStatus: 'pending',
        })),
        overallTransferStatusCode: 'inProgress',
        requestTime: new Date().toISOString(),
      };
      state.transfers[transfer.id] = transfer;
      return send(res, 200, transfer);
    }
    if (resource === 'transfers' && id && method === 'GET') {
      authorise(caller, [scope], false);
      const transfer = state.transfers[decodeURIComponent(id)];
      if (!transfer) throw notFound('dataTransferId');
      return send(res, 200, progress(transfer));
    }
    if (resource === 'transfers' && id === undefined && method === 'GET') {
      authorise(caller, [scope], false);
      const [oldOwner, newOwner, status] = ['oldOwnerUserId', 'newOwnerUserId', 'status'].map((k) =>
        url.searchParams.get(k),
      );
      const transfers = Object.values(state.transfers)
        .map(progress)
        .filter(
          (t) =>
            (!oldOwner || t.oldOwnerUserId === oldOwner) &&
            (!newOwner || t.newOwnerUserId === newOwner) &&
            (!status || t.overallTransferStatusCode === status),
        );
      return send(res, 200, withList({ kind: 'admin#datatransfer#dataTransfersList' }, 'dataTransfers', transfers));
    }
    throw notFound('method');
  }

  // ---- faults and dispatch ----

  async function injectFaults(req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> {
    if (faults.connectionResets) {
      faults.connectionResets -= 1;
      req.socket.destroy();
      return true;
    }
    if (faults.rateLimited && faults.rateLimited.count > 0) {
      faults.rateLimited.count -= 1;
      const { status, reason, retryAfterSeconds } = faults.rateLimited;
      const headers: Record<string, string> =
        retryAfterSeconds === undefined ? {} : { 'retry-after': String(retryAfterSeconds) };
      const message = status === 429 ? 'Rate Limit Exceeded' : 'User Rate Limit Exceeded';
      sendFailure(
        res,
        new GoogleFailure(
          status,
          status === 429 ? 'rateLimitExceeded' : reason,
          message,
          'RESOURCE_EXHAUSTED',
          'usageLimits',
          headers,
        ),
      );
      return true;
    }
    if (faults.serverErrorRate) {
      served += 1;
      if (Math.floor(served * faults.serverErrorRate) > Math.floor((served - 1) * faults.serverErrorRate)) {
        sendFailure(res, new GoogleFailure(503, 'backendError', 'Backend Error', 'UNAVAILABLE'));
        return true;
      }
    }
    return false;
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sandbox');
    const method = req.method ?? 'GET';
    if (url.pathname === '/_sandbox/state' && method === 'GET') return send(res, 200, state);
    if (url.pathname === '/_sandbox/faults' && method === 'POST') {
      const parsed = googleFaultsSchema.safeParse(JSON.parse((await readBody(req)) || '{}'));
      if (!parsed.success)
        return send(res, 400, {
          error: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
        });
      inject(parsed.data);
      return send(res, 200, faults);
    }
    if (url.pathname === '/_sandbox/reset' && method === 'POST') {
      reset();
      return send(res, 204);
    }
    state.requests.push(`${method} ${url.pathname}`);
    // Latency slows the token endpoint too; the other faults are the APIs' own.
    if (faults.latencyMs) await sleep(faults.latencyMs);
    if (url.pathname === '/token' && method === 'POST') return token(req, res);
    if (await injectFaults(req, res)) return;
    const segments = url.pathname.split('/').filter(Boolean);
    try {
      if (segments[0] === 'admin' && segments[1] === 'directory' && segments[2] === 'v1')
        return await directory(req, res, url, segments.slice(3));
      if (segments[0] === 'admin' && segments[1] === 'datatransfer' && segments[2] === 'v1')
        return await datatransfer(req, res, url, segments.slice(3));
      throw notFound('method');
    } catch (err) {
      if (err instanceof GoogleFailure) return sendFailure(res, err);
      sendFailure(res, new GoogleFailure(500, 'backendError', `stand-in error: ${(err as Error).message}`, 'INTERNAL'));
    }
  }

  function inject(next: GoogleFaults): void {
    faults = structuredClone(googleFaultsSchema.parse(next));
    served = 0;
  }
  function reset(): void {
    // The same object stays in place, so that `sandbox.state` held by a test follows the reset.
    // Tokens already issued stay valid: a reset restores the account's data, not the client's session.
    const fresh = { ...seed(), accessTokens: state.accessTokens };
    for (const field of Object.keys(state) as (keyof GoogleWorkspaceState)[]) delete state[field];
    Object.assign(state, fresh);
    inject({});
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent)
        sendFailure(
          res,
          new GoogleFailure(500, 'backendError', `stand-in error: ${(err as Error).message}`, 'INTERNAL'),
        );
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  baseUrl = `http://127.0.0.1:${port}`;
  const tokenUrl = `${baseUrl}/token`;
  const serviceAccountKey = JSON.stringify({
    type: 'service_account',
    project_id: 'offboard-sandbox',
    private_key_id: keyId,
    private_key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    client_email: clientEmail,
    client_id: GOOGLE_SANDBOX_CLIENT_ID,
    auth_uri: 'https://accounts.google.com/o/oauth2/auth',
    token_uri: tokenUrl,
  });
  return {
    url: `${baseUrl}/`,
    tokenUrl,
    serviceAccountKey,
    state,
    inject,
    reset,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** The sample person's user in the stand-in (by external id), if any. */
export function googleUserOf(state: GoogleWorkspaceState, employeeId: string): GoogleUserRecord | undefined {
  return Object.values(state.users).find(
    (u) => (u.externalIds ?? []).some((e) => e.value === employeeId) && !u.primaryEmail.includes('.old@'),
  );
}
