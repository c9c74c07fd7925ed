/**
 * Google Workspace through the Admin SDK (Directory API and Data Transfer API) with
 * `@googleapis/admin`, authenticated as a service account with domain-wide delegation: a JWT
 * whose `sub` is an admin user (`adminSubject`), exchanged at Google's token endpoint for an
 * access token acting as that admin. The service account's client id needs these scopes in the
 * Admin console (Security → Access and data control → API controls → Domain-wide delegation), and
 * the admin the privileges behind them:
 *   - admin.directory.user           find the person, suspend/unsuspend, delete
 *   - admin.directory.user.security  sign out, OAuth tokens, app passwords, backup codes
 *   - admin.directory.group          the person's groups, removal from them
 *   - admin.directory.rolemanagement admin role assignments, their removal
 *   - admin.datatransfer             Drive hand-over before deletion
 * Each scope gets a token of its own, so that a scope missing from the delegation refuses only
 * the calls that need it, with that scope named (Google refuses a token request naming a scope
 * the delegation lacks, `unauthorized_client`, whatever the other scopes are).
 *
 * The person is found by the HR id in the user's `externalIds` (`users.list` with
 * `query: externalId:E1`, then only exact matches count), or by their email (`users.get`, which
 * also resolves aliases). More than one match is an `ambiguous_identity`, never a guess. Google
 * Workspace is an identity provider: the primary email and the `manager` relation correlate
 * the other systems (`providesIdentity`).
 *
 * Action mapping (each reads Google back, so `already` means Google agrees):
 * - disable_login: `users.patch {suspended: true}`, read back with users.get.
 * - enable_login (cancel): `suspended: false`. Groups, roles, tokens and passwords removed stay removed.
 * - revoke_sessions: `users.signOut` (every web and device session; sign-in cookies reset). Google
 *   cannot list a user's sessions, so this cannot be read back: it is `done` each time it runs on
 *   an existing user, saying so in the details, and discovery reports one `session` entry while
 *   the account is not suspended (as the Slack connector does).
 * - revoke_tokens: every OAuth token (`tokens.delete` per clientId), every app-specific password
 *   (`asps.delete` per codeId) and the backup codes (`verificationCodes.invalidate`); read back:
 *   all three lists empty. The codes themselves never leave this file.
 * - remove_entitlement: groups (`members.delete`, read back with groups.list by userKey) and admin
 *   role assignments (`roleAssignments.delete` for every assignment of the role, read back). Ids
 *   are readable for policy lists: `group:<group email>`, `admin-role:<role name>`
 *   (`_SEED_ADMIN_ROLE` is super admin). Only direct group memberships are listed and removed.
 * - transfer_ownership: the person's Drive files (private and shared) go to their manager (the
 *   user's `manager` relation) or `transferFallbackOwner`, through the Data Transfer API: the Drive
 *   application id from `applications.list`, then `transfers.insert`, then `transfers.get` until
 *   `overallTransferStatusCode` is `completed` (for up to `transferWaitMs`; a transfer still
 *   running is a retryable error, and the retry waits for that same transfer rather than asking
 *   for another: transfers.list finds it). A completed transfer to the same owner, requested
 *   before this action was first scheduled, answers `already`.
 * - delete_account: `users.delete` (Google keeps a deleted user restorable for 20 days). Google
 *   deletes the user's Drive files with the user, so unless `transferBeforeDelete` is false, a
 *   user with no completed Drive transfer has it done first, whatever the playbook says.
 *
 * Errors (Google's shape `{error: {code, message, errors: [{domain, reason, message}], status}}`):
 * 404 on a write means the user or the thing removed is gone (`already`, when a read-back
 * agrees); 401 on an API call (a token Google issued and now refuses) is retried with a new token; 403 `forbidden` / `insufficientPermissions` and a refused token request go to an
 * operator naming the scope or privilege to grant; 403 `rateLimitExceeded` /
 * `userRateLimitExceeded` / `quotaExceeded` (domain `usageLimits`) and 429 are rate limits: Google
 * documents no Retry-After for the Admin SDK, only exponential backoff, so without the header the
 * connector waits `rateLimitWaitMs` (30 s by default: the documented quota is per minute);
 * 5xx and network errors are retryable. The client library's own retries are off (one HTTP
 * request per call): Temporal retries, and the call bounds wait out rate limits.
 *
 * The token endpoint: google-auth-library's JWT client posts to https://oauth2.googleapis.com/token,
 * a constant with no option to change it (the key's `token_uri` is ignored, and `universeDomain`
 * refuses domain-wide delegation), so `tokenUrl` is applied by a request interceptor on the
 * client's own transporter that replaces that one URL (the assertion's `aud` stays Google's).
 */
import { admin, type admin_datatransfer_v1, type admin_directory_v1, auth } from '@googleapis/admin';
import { z } from 'zod';
import type { Action, Credential, Discovery, Entitlement } from '../../model/plan.js';
import type { Subject } from '../../model/request.js';
import { defineConnector } from './descriptor.js';
import { ConnectorError, type ApplyContext, type ApplyResult, type Connector } from './types.js';

/** Where google-auth-library's JWT client always asks for tokens. */
const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';

export const googleWorkspaceSystemSchema = z.object({
  type: z.literal('google_workspace'),
  /** The Google Workspace account: `my_customer` (the admin's own) or its customer id (C0…). */
  customer: z.string().min(1).default('my_customer'),
  /** Only users of this domain are searched (the account may have several); all of them when left out. */
  domain: z.string().min(1).optional(),
  /** The admin user the service account acts as (domain-wide delegation's `sub`). */
  adminSubject: z.email(),
  /** The service account's JSON key (as downloaded from Google Cloud), whole. */
  serviceAccountKey: z.string().min(1),
  rootUrl: z.url().default('https://admin.googleapis.com/'),
  tokenUrl: z.url().default(GOOGLE_TOKEN_URL),
  /** How the person is found: the HR id in `externalIds`, or the email HR or the directory gave. */
  findBy: z.enum(['externalId', 'email']).default('externalId'),
  /** Receives the Drive files of a person without a `manager` relation. */
  transferFallbackOwner: z.email().optional(),
  /** delete_account hands the Drive files over first when no transfer has completed. */
  transferBeforeDelete: z.boolean().default(true),
  /** How long one attempt watches a Drive transfer before leaving it to the retry. */
  transferWaitMs: z.number().int().min(0).default(40_000),
  /** How long a rate limit pauses the system when Google gives no Retry-After (it documents none). */
  rateLimitWaitMs: z.number().int().min(0).default(30_000),
  timeoutMs: z.number().int().positive().default(30_000),
});
export type GoogleWorkspaceSystemConfig = z.infer<typeof googleWorkspaceSystemSchema>;

const keySchema = z.object({
  client_email: z.string().min(1),
  private_key: z.string().min(1),
  private_key_id: z.string().optional(),
  client_id: z.string().optional(),
});

export const googleWorkspaceConnector = defineConnector({
  type: 'google_workspace',
  configSchema: googleWorkspaceSystemSchema,
  secretFields: ['serviceAccountKey'],
  refine(config, ctx) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(config.serviceAccountKey);
    } catch {
      parsed = undefined;
    }
    if (!keySchema.safeParse(parsed).success)
      ctx.addIssue({
        code: 'custom',
        path: ['serviceAccountKey'],
        message:
          "is not a service account's JSON key (client_email and private_key): give the whole key file's content",
      });
  },
  capabilities: {
    actions: [
      'disable_login',
      'enable_login',
      'revoke_sessions',
      'revoke_tokens',
      'remove_entitlement',
      'transfer_ownership',
      'delete_account',
    ],
    discover: true,
    verify: true,
    check: true,
  },
  create: (config, { system }) => createGoogleWorkspaceConnector(system, config),
});

// ---- scopes -----------------------------------------------------------------------------------

export const GOOGLE_SCOPES = {
  user: 'https://www.googleapis.com/auth/admin.directory.user',
  security: 'https://www.googleapis.com/auth/admin.directory.user.security',
  group: 'https://www.googleapis.com/auth/admin.directory.group',
  roles: 'https://www.googleapis.com/auth/admin.directory.rolemanagement',
  transfer: 'https://www.googleapis.com/auth/admin.datatransfer',
} as const;
type Scope = keyof typeof GOOGLE_SCOPES;

/** The admin privilege each scope's calls need, for a 403 `forbidden`. */
const PRIVILEGE: Record<Scope, string> = {
  user: 'Users (Read, Update, Delete)',
  security: 'Users → Security settings (Manage user security)',
  group: 'Groups (Read, Update)',
  roles: 'Admin roles (Manage roles; only a super admin can unassign the super admin role)',
  transfer: 'Data transfer',
};

// ---- Google's answers (only the fields relied on) ---------------------------------------------

const userSchema = z.object({
  id: z.string(),
  primaryEmail: z.string(),
  suspended: z.boolean().optional(),
  aliases: z.array(z.string()).optional(),
  externalIds: z.array(z.object({ value: z.string(), type: z.string().optional() })).optional(),
  relations: z.array(z.object({ value: z.string(), type: z.string().optional() })).optional(),
});
type GoogleUser = z.infer<typeof userSchema>;

const groupSchema = z.object({ id: z.string(), email: z.string(), name: z.string().optional() });
const assignmentSchema = z.object({ roleAssignmentId: z.string(), roleId: z.string() });
const tokenSchema = z.object({ clientId: z.string(), displayText: z.string().optional() });
const aspSchema = z.object({ codeId: z.number(), name: z.string().optional() });
const transferSchema = z.object({
  id: z.string(),
  oldOwnerUserId: z.string(),
  newOwnerUserId: z.string(),
  overallTransferStatusCode: z.string().optional(),
  requestTime: z.string().optional(),
  applicationDataTransfers: z.array(z.object({ applicationId: z.string() })).optional(),
});
type Transfer = z.infer<typeof transferSchema>;

function parseAnswer<T>(schema: z.ZodType<T>, value: unknown, doing: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new ConnectorError(
    `Google ${doing} answered in an unexpected shape (${parsed.error.issues[0]?.message ?? 'invalid'}); check the rootUrl setting`,
    true,
    'google_bad_answer',
  );
}

// ---- errors -----------------------------------------------------------------------------------

/** gaxios's error, as far as it is read here. */
interface HeaderReader {
  get(name: string): string | null;
}

interface HttpFailure {
  status: number;
  headers?: HeaderReader;
  data: unknown;
  url?: string;
}

function httpFailureOf(err: unknown): HttpFailure | undefined {
  const candidate = err as {
    status?: unknown;
    response?: { status?: unknown; headers?: unknown; data?: unknown };
    config?: { url?: unknown };
  };
  const status = candidate?.response?.status ?? candidate?.status;
  if (typeof status !== 'number' || !candidate.response) return undefined;
  // gaxios's Headers may come from another fetch implementation than the global one: duck-typed.
  const given = candidate.response.headers as { get?: unknown } | undefined;
  const headers = typeof given?.get === 'function' ? (given as HeaderReader) : undefined;
  const url = candidate.config?.url;
  return { status, headers, data: candidate.response.data, url: url === undefined ? undefined : String(url) };
}

/** Google's API error body: `{error: {code, message, errors: [{domain, reason}], status}}`. */
function googleReasonOf(data: unknown): { reason?: string; message?: string } {
  const error = (data as { error?: unknown } | undefined)?.error;
  if (typeof error !== 'object' || error === null) return {};
  const fields = error as { message?: unknown; errors?: { reason?: unknown }[] };
  const reason = fields.errors?.find((e) => typeof e.reason === 'string')?.reason;
  return {
    reason: typeof reason === 'string' ? reason : undefined,
    message: typeof fields.message === 'string' ? fields.message : undefined,
  };
}

const RATE_LIMIT_REASONS = new Set(['rateLimitExceeded', 'userRateLimitExceeded', 'quotaExceeded']);

function retryAfterMs(headers: HeaderReader | undefined, fallbackMs: number): number {
  const value = headers?.get('retry-after');
  if (!value) return fallbackMs;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : fallbackMs;
}

const isNotFound = (err: unknown) => httpFailureOf(err)?.status === 404;

// ---- entitlement and credential ids -----------------------------------------------------------

const GROUP = 'group:';
const ADMIN_ROLE = 'admin-role:';
/** The Drive and Docs application of the Data Transfer API, by name as applications.list gives it. */
const DRIVE_APPLICATION = /drive/i;
const TRANSFER_DONE = 'completed';

const sameEmail = (a: string | undefined, b: string | undefined) =>
  a !== undefined && b !== undefined && a.toLowerCase() === b.toLowerCase();

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---- the connector ----------------------------------------------------------------------------

export function createGoogleWorkspaceConnector(system: string, config: GoogleWorkspaceSystemConfig): Connector {
  const key = keySchema.parse(JSON.parse(config.serviceAccountKey));
  const clients = Object.fromEntries(
    (Object.keys(GOOGLE_SCOPES) as Scope[]).map((scope) => [scope, jwtFor(GOOGLE_SCOPES[scope])]),
  ) as Record<Scope, InstanceType<typeof auth.JWT>>;
  // The library's retries are off: one HTTP request per call, Temporal and the call bounds retry.
  const globalOptions = { rootUrl: config.rootUrl, timeout: config.timeoutMs, retry: false };
  const directory = admin({ version: 'directory_v1', ...globalOptions });
  const datatransfer = admin({ version: 'datatransfer_v1', ...globalOptions });

  function jwtFor(scope: string) {
    const jwt = new auth.JWT({
      email: key.client_email,
      key: key.private_key,
      keyId: key.private_key_id,
      scopes: [scope],
      subject: config.adminSubject,
    });
    jwt.transporter.interceptors.request.add({
      resolved: async (request) => {
        if (String(request.url) !== GOOGLE_TOKEN_URL) return request;
        // One token request per call too (gtoken asks gaxios to retry it on 429 and 5xx otherwise),
        // bounded like the API calls (the global options do not reach the token request, and
        // gaxios has turned `timeout` into the signal before interceptors run).
        const bound = AbortSignal.timeout(config.timeoutMs);
        return {
          ...request,
          url: new URL(config.tokenUrl),
          signal: request.signal ? AbortSignal.any([request.signal, bound]) : bound,
          retryConfig: { ...request.retryConfig, retry: 0 },
        };
      },
    });
    return jwt;
  }

  function classify(err: unknown, doing: string, scope: Scope): ConnectorError {
    if (err instanceof ConnectorError) return err;
    const failure = httpFailureOf(err);
    if (failure) {
      const tokenRequest = failure.url !== undefined && sameUrl(failure.url, config.tokenUrl);
      if (tokenRequest) return classifyTokenFailure(failure, doing, scope);
      const { reason, message } = googleReasonOf(failure.data);
      const said = message ? ` (${message})` : '';
      const { status } = failure;
      if (status === 429 || (status === 403 && reason && RATE_LIMIT_REASONS.has(reason)))
        return new ConnectorError(
          `Google rate-limited ${doing}: HTTP ${status} ${reason ?? ''}`.trim(),
          true,
          'google_rate_limited',
          retryAfterMs(failure.headers, config.rateLimitWaitMs),
        );
      if (status >= 500 || status === 408)
        return new ConnectorError(`Google ${doing} failed: HTTP ${status}${said}`, true, `google_http_${status}`);
      if (status === 401) {
        // A token Google issued and now refuses (revoked, or issued before a reset): the retry
        // asks for a new one. A key or delegation that is wrong fails at the token endpoint instead.
        clients[scope].credentials = { refresh_token: 'jwt-placeholder', expiry_date: 1 };
        return new ConnectorError(
          `Google ${doing} failed: HTTP 401${said}: the access token was refused; the retry requests a new one`,
          true,
          'google_token_refused',
        );
      }
      if (status === 403 && reason === 'insufficientPermissions')
        return new ConnectorError(
          `Google ${doing} failed: HTTP 403 insufficientPermissions${said}: the token lacks the scope ${GOOGLE_SCOPES[scope]}; add it to the service account's domain-wide delegation (Admin console → Security → API controls → Domain-wide delegation, client ${key.client_id ?? key.client_email})`,
          false,
          'google_missing_scope',
        );
      if (status === 403)
        return new ConnectorError(
          `Google ${doing} failed: HTTP 403 ${reason ?? 'forbidden'}${said}: the admin ${config.adminSubject} lacks the privilege ${PRIVILEGE[scope]}; give that admin a role with it (Admin console → Account → Admin roles), or set adminSubject to an admin who has it`,
          false,
          'google_forbidden',
        );
      return new ConnectorError(`Google ${doing} failed: HTTP ${status}${said}`, false, `google_http_${status}`);
    }
    // Socket errors and timeouts: Google may answer in a moment.
    const code = (err as { code?: unknown })?.code;
    const text = typeof code === 'string' ? code : err instanceof Error ? err.name : String(err);
    return new ConnectorError(`Google ${doing} failed: ${text}`, true, 'google_unreachable');
  }

  /** A refused token request: the delegation, the admin or the key is wrong, or Google is away. */
  function classifyTokenFailure(failure: HttpFailure, doing: string, scope: Scope): ConnectorError {
    const body = (failure.data ?? {}) as { error?: unknown; error_description?: unknown };
    const error = typeof body.error === 'string' ? body.error : '';
    const description = typeof body.error_description === 'string' ? body.error_description : '';
    const said = [error, description].filter(Boolean).join(': ');
    if (failure.status === 429 || failure.status >= 500)
      return new ConnectorError(
        `Google's token endpoint failed for ${doing}: HTTP ${failure.status}`,
        true,
        failure.status === 429 ? 'google_rate_limited' : `google_http_${failure.status}`,
        failure.status === 429 ? retryAfterMs(failure.headers, config.rateLimitWaitMs) : undefined,
      );
    if (error === 'unauthorized_client')
      return new ConnectorError(
        `Google refused a token for ${doing} (${said}): the service account's domain-wide delegation lacks the scope ${GOOGLE_SCOPES[scope]}; add it (Admin console → Security → API controls → Domain-wide delegation, client ${key.client_id ?? key.client_email})`,
        false,
        'google_missing_scope',
      );
    if (error === 'invalid_grant' && /email|user/i.test(description))
      return new ConnectorError(
        `Google refused a token for ${doing} (${said}): adminSubject ${config.adminSubject} is not a user of the account; set it to an active admin`,
        false,
        'google_bad_subject',
      );
    return new ConnectorError(
      `Google refused a token for ${doing} (HTTP ${failure.status}${said ? `, ${said}` : ''}): check the service account key (is it current, not deleted?)`,
      false,
      'google_bad_credentials',
    );
  }

  async function call<T>(doing: string, scope: Scope, work: (scope: Scope) => Promise<{ data: T }>): Promise<T> {
    try {
      return (await work(scope)).data;
    } catch (err) {
      throw classify(err, doing, scope);
    }
  }

  /** A write on the user: a 404 means the user (or the thing removed) is already gone. */
  async function write(doing: string, scope: Scope, work: () => Promise<unknown>): Promise<'done' | 'already'> {
    try {
      await work();
      return 'done';
    } catch (err) {
      if (isNotFound(err)) return 'already';
      throw classify(err, doing, scope);
    }
  }

  const as = (scope: Scope) => clients[scope];

  async function userByKey(userKey: string): Promise<GoogleUser | undefined> {
    try {
      const { data } = await directory.users.get({ userKey, auth: as('user') });
      return parseAnswer(userSchema, data, 'users.get');
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw classify(err, 'users.get', 'user');
    }
  }

  async function findUser(subject: Subject): Promise<GoogleUser | undefined> {
    if (config.findBy === 'email') {
      if (!subject.email) return undefined;
      const user = await userByKey(subject.email);
      if (!user) return undefined;
      const addresses = [user.primaryEmail, ...(user.aliases ?? [])];
      return addresses.some((a) => sameEmail(a, subject.email)) ? user : undefined;
    }
    const where = config.domain ? { domain: config.domain } : { customer: config.customer };
    const answer = await call('users.list', 'user', (scope) =>
      directory.users.list({ ...where, query: `externalId:${subject.employeeId}`, maxResults: 10, auth: as(scope) }),
    );
    // Google's search can match more loosely than asked: only an exact external id counts.
    const users = parseAnswer(z.array(userSchema), answer.users ?? [], 'users.list').filter((u) =>
      (u.externalIds ?? []).some((e) => e.value.toLowerCase() === subject.employeeId.toLowerCase()),
    );
    if (users.length > 1)
      throw new ConnectorError(
        `Google Workspace: ${users.length} users carry external id ${subject.employeeId} (${users.map((u) => u.primaryEmail).join(', ')}); keep it on one user, then retry`,
        false,
        'ambiguous_identity',
      );
    return users[0];
  }

  async function groupsOf(userKey: string): Promise<z.infer<typeof groupSchema>[]> {
    const groups: z.infer<typeof groupSchema>[] = [];
    let pageToken: string | undefined;
    do {
      const page: admin_directory_v1.Schema$Groups = await call('groups.list', 'group', (scope) =>
        directory.groups.list({ userKey, maxResults: 200, pageToken, auth: as(scope) }),
      );
      groups.push(...parseAnswer(z.array(groupSchema), page.groups ?? [], 'groups.list'));
      pageToken = page.nextPageToken ?? undefined;
    } while (pageToken);
    return groups;
  }

  async function assignmentsOf(userKey: string): Promise<z.infer<typeof assignmentSchema>[]> {
    const assignments: z.infer<typeof assignmentSchema>[] = [];
    let pageToken: string | undefined;
    do {
      const page: admin_directory_v1.Schema$RoleAssignments = await call('roleAssignments.list', 'roles', (scope) =>
        directory.roleAssignments.list({
          customer: config.customer,
          userKey,
          maxResults: 100,
          pageToken,
          auth: as(scope),
        }),
      );
      assignments.push(...parseAnswer(z.array(assignmentSchema), page.items ?? [], 'roleAssignments.list'));
      pageToken = page.nextPageToken ?? undefined;
    } while (pageToken);
    return assignments;
  }

  const roleNames = new Map<string, string>();
  async function roleName(roleId: string): Promise<string> {
    const known = roleNames.get(roleId);
    if (known) return known;
    const role = await call('roles.get', 'roles', (scope) =>
      directory.roles.get({ customer: config.customer, roleId, auth: as(scope) }),
    );
    const name = parseAnswer(z.object({ roleName: z.string() }), role, 'roles.get').roleName;
    roleNames.set(roleId, name);
    return name;
  }

  const tokensOf = async (userKey: string) =>
    parseAnswer(
      z.array(tokenSchema),
      (await call('tokens.list', 'security', (scope) => directory.tokens.list({ userKey, auth: as(scope) }))).items ??
        [],
      'tokens.list',
    );
  const aspsOf = async (userKey: string) =>
    parseAnswer(
      z.array(aspSchema),
      (await call('asps.list', 'security', (scope) => directory.asps.list({ userKey, auth: as(scope) }))).items ?? [],
      'asps.list',
    );
  /** How many valid backup codes the user has (the codes themselves are not kept). */
  const backupCodesOf = async (userKey: string) =>
    (
      await call('verificationCodes.list', 'security', (scope) =>
        directory.verificationCodes.list({ userKey, auth: as(scope) }),
      )
    ).items?.length ?? 0;

  async function entitlementsOf(userId: string): Promise<Entitlement[]> {
    const [groups, assignments] = await Promise.all([groupsOf(userId), assignmentsOf(userId)]);
    const entitlements: Entitlement[] = groups.map((g) => ({
      id: `${GROUP}${g.email.toLowerCase()}`,
      kind: 'group',
      ...(g.name ? { name: g.name } : {}),
    }));
    const roles = new Set<string>();
    for (const assignment of assignments) roles.add(await roleName(assignment.roleId));
    for (const name of roles) entitlements.push({ id: `${ADMIN_ROLE}${name}`, kind: 'admin_role', name });
    return entitlements;
  }

  // ---- actions --------------------------------------------------------------------------------

  async function setSuspended(userId: string, suspended: boolean): Promise<ApplyResult> {
    const user = await userByKey(userId);
    if (!user) {
      if (suspended) return { outcome: 'already', details: { userId, note: 'no such user' } };
      throw new ConnectorError(
        `Google Workspace: user ${userId} no longer exists; restore it (users.undelete, within 20 days of deletion) before it can be unsuspended`,
        false,
        'account_gone',
      );
    }
    if ((user.suspended ?? false) === suspended) return { outcome: 'already', details: { userId, suspended } };
    await call('users.patch', 'user', (scope) =>
      directory.users.patch({ userKey: userId, requestBody: { suspended }, auth: as(scope) }),
    );
    const after = await userByKey(userId);
    if (!after || (after.suspended ?? false) !== suspended)
      throw new ConnectorError(
        `Google Workspace: user ${userId} still has suspended=${after?.suspended ?? false} after the update (a concurrent change?); retrying reads it again`,
        true,
        'google_not_applied',
      );
    return { outcome: 'done', details: { userId, suspended } };
  }

  async function signOut(userId: string): Promise<ApplyResult> {
    const outcome = await write('users.signOut', 'security', () =>
      directory.users.signOut({ userKey: userId, auth: as('security') }),
    );
    if (outcome === 'already') return { outcome, details: { userId, note: 'no such user' } };
    return {
      outcome,
      details: {
        userId,
        note: 'Google cannot list sessions, so this cannot be read back: users.signOut ended every web and device session and reset the sign-in cookies',
      },
    };
  }

  async function revokeTokens(userId: string): Promise<ApplyResult> {
    if (!(await userByKey(userId))) return { outcome: 'already', details: { userId, note: 'no such user' } };
    const [tokens, asps, backupCodes] = await Promise.all([tokensOf(userId), aspsOf(userId), backupCodesOf(userId)]);
    const details = {
      userId,
      oauthClients: tokens.map((t) => t.clientId),
      appPasswords: asps.map((a) => a.codeId),
      backupCodesInvalidated: backupCodes > 0,
    };
    if (tokens.length === 0 && asps.length === 0 && backupCodes === 0) return { outcome: 'already', details };
    for (const token of tokens)
      await write('tokens.delete', 'security', () =>
        directory.tokens.delete({ userKey: userId, clientId: token.clientId, auth: as('security') }),
      );
    for (const asp of asps)
      await write('asps.delete', 'security', () =>
        directory.asps.delete({ userKey: userId, codeId: asp.codeId, auth: as('security') }),
      );
    if (backupCodes > 0)
      await write('verificationCodes.invalidate', 'security', () =>
        directory.verificationCodes.invalidate({ userKey: userId, auth: as('security') }),
      );
    const [tokensLeft, aspsLeft, codesLeft] = await Promise.all([
      tokensOf(userId),
      aspsOf(userId),
      backupCodesOf(userId),
    ]);
    if (tokensLeft.length || aspsLeft.length || codesLeft)
      throw new ConnectorError(
        `Google Workspace: user ${userId} still holds ${tokensLeft.length} OAuth token(s), ${aspsLeft.length} app password(s) and ${codesLeft} backup code(s) after revocation (a new grant meanwhile?); retrying revokes them again`,
        true,
        'google_not_applied',
      );
    return { outcome: 'done', details };
  }

  async function removeEntitlement(userId: string, target: Entitlement): Promise<ApplyResult> {
    const details = { userId, entitlement: target.id };
    if (!(await userByKey(userId))) return { outcome: 'already', details: { ...details, note: 'no such user' } };
    if (target.id.startsWith(GROUP)) {
      const email = target.id.slice(GROUP.length);
      const isMember = async () => (await groupsOf(userId)).some((g) => sameEmail(g.email, email));
      if (!(await isMember())) return { outcome: 'already', details };
      const outcome = await write('members.delete', 'group', () =>
        directory.members.delete({ groupKey: email, memberKey: userId, auth: as('group') }),
      );
      if (await isMember())
        throw new ConnectorError(
          `Google Workspace: user ${userId} is still a member of ${email} after members.delete; retrying removes it again`,
          true,
          'google_not_applied',
        );
      return { outcome, details };
    }
    if (target.id.startsWith(ADMIN_ROLE)) {
      const name = target.id.slice(ADMIN_ROLE.length);
      const assignmentsOfRole = async () => {
        const matching: z.infer<typeof assignmentSchema>[] = [];
        for (const assignment of await assignmentsOf(userId))
          if ((await roleName(assignment.roleId)) === name) matching.push(assignment);
        return matching;
      };
      const assignments = await assignmentsOfRole();
      if (assignments.length === 0) return { outcome: 'already', details };
      for (const assignment of assignments)
        await write('roleAssignments.delete', 'roles', () =>
          directory.roleAssignments.delete({
            customer: config.customer,
            roleAssignmentId: assignment.roleAssignmentId,
            auth: as('roles'),
          }),
        );
      if ((await assignmentsOfRole()).length)
        throw new ConnectorError(
          `Google Workspace: user ${userId} still holds admin role ${name} after roleAssignments.delete; retrying removes it again`,
          true,
          'google_not_applied',
        );
      return {
        outcome: 'done',
        details: { ...details, roleAssignments: assignments.map((a) => a.roleAssignmentId) },
      };
    }
    throw new ConnectorError(
      `Google Workspace: entitlement ${target.id} is not a group: or admin-role: id`,
      false,
      'bad_action',
    );
  }

  async function driveApplicationId(): Promise<string> {
    const answer: admin_datatransfer_v1.Schema$ApplicationsListResponse = await call(
      'applications.list',
      'transfer',
      (scope) => datatransfer.applications.list({ auth: as(scope) }),
    );
    const applications = parseAnswer(
      z.array(z.object({ id: z.union([z.string(), z.number()]).transform(String), name: z.string() })),
      answer.applications ?? [],
      'applications.list',
    );
    const drive = applications.find((a) => DRIVE_APPLICATION.test(a.name));
    if (!drive)
      throw new ConnectorError(
        `Google's Data Transfer API lists no Drive application (${applications.map((a) => a.name).join(', ') || 'none'}); is Drive enabled for the account?`,
        false,
        'google_no_drive_application',
      );
    return drive.id;
  }

  async function transfersFrom(oldOwnerUserId: string, newOwnerUserId: string | undefined): Promise<Transfer[]> {
    const answer: admin_datatransfer_v1.Schema$DataTransfersListResponse = await call(
      'transfers.list',
      'transfer',
      (scope) => datatransfer.transfers.list({ oldOwnerUserId, newOwnerUserId, auth: as(scope) }),
    );
    return parseAnswer(z.array(transferSchema), answer.dataTransfers ?? [], 'transfers.list');
  }

  const ofDrive = (transfer: Transfer, applicationId: string) =>
    (transfer.applicationDataTransfers ?? []).some((a) => a.applicationId === applicationId);

  /** The person's manager (their `manager` relation) or the configured fallback: who gets the files. */
  async function recipientOf(user: GoogleUser): Promise<GoogleUser> {
    const manager = user.relations?.find((r) => r.type === 'manager')?.value;
    const candidates = [manager, config.transferFallbackOwner].filter((e): e is string => Boolean(e));
    for (const email of candidates) {
      const recipient = await userByKey(email);
      if (recipient && !recipient.suspended && recipient.id !== user.id) return recipient;
    }
    throw new ConnectorError(
      `Google Workspace: no one to receive the Drive files of ${user.primaryEmail}: ${
        candidates.length
          ? `${candidates.join(' and ')} ${candidates.length > 1 ? 'are' : 'is'} not an active user`
          : 'the user has no manager relation'
      }; set the manager in the Admin console or transferFallbackOwner in the config`,
      false,
      'google_no_transfer_recipient',
    );
  }

  async function transferDrive(userId: string, context?: ApplyContext): Promise<ApplyResult> {
    const user = await userByKey(userId);
    if (!user)
      return {
        outcome: 'already',
        details: { userId, note: 'no such user: its files went with it, or were transferred before' },
      };
    const recipient = await recipientOf(user);
    const applicationId = await driveApplicationId();
    const details = { userId, application: 'drive', newOwner: recipient.primaryEmail, newOwnerUserId: recipient.id };
    const earlier = (await transfersFrom(user.id, recipient.id)).filter((t) => ofDrive(t, applicationId));
    const completed = earlier.find((t) => t.overallTransferStatusCode === TRANSFER_DONE);
    const running = earlier.find((t) => t.overallTransferStatusCode !== TRANSFER_DONE && !isFailed(t));
    if (completed && !running) {
      // Requested by an earlier attempt of this very action (done), or before it (already).
      const requested = Date.parse(completed.requestTime ?? '');
      const before = context && Number.isFinite(requested) && requested < context.firstScheduledAtMs;
      return { outcome: before ? 'already' : 'done', details: { ...details, transferId: completed.id } };
    }
    let transfer = running;
    if (!transfer) {
      const inserted = await call('transfers.insert', 'transfer', (scope) =>
        datatransfer.transfers.insert({
          requestBody: {
            oldOwnerUserId: user.id,
            newOwnerUserId: recipient.id,
            applicationDataTransfers: [
              {
                applicationId,
                // Both, or Google transfers only shared files.
                applicationTransferParams: [{ key: 'PRIVACY_LEVEL', value: ['PRIVATE', 'SHARED'] }],
              },
            ],
          },
          auth: as(scope),
        }),
      );
      transfer = parseAnswer(transferSchema, inserted, 'transfers.insert');
    }
    const deadline = Date.now() + config.transferWaitMs;
    for (;;) {
      const read = parseAnswer(
        transferSchema,
        await call('transfers.get', 'transfer', (scope) =>
          datatransfer.transfers.get({ dataTransferId: transfer.id, auth: as(scope) }),
        ),
        'transfers.get',
      );
      if (read.overallTransferStatusCode === TRANSFER_DONE)
        return { outcome: 'done', details: { ...details, transferId: read.id } };
      if (isFailed(read))
        throw new ConnectorError(
          `Google Workspace: the Drive transfer ${read.id} from ${user.primaryEmail} to ${recipient.primaryEmail} failed; retrying asks for a new one`,
          true,
          'google_transfer_failed',
        );
      if (Date.now() >= deadline)
        throw new ConnectorError(
          `Google Workspace: the Drive transfer ${read.id} from ${user.primaryEmail} to ${recipient.primaryEmail} is still ${read.overallTransferStatusCode ?? 'running'}; the retry waits for it (no second transfer is asked for)`,
          true,
          'google_transfer_in_progress',
        );
      await pause(Math.min(2_000, Math.max(0, deadline - Date.now())));
    }
  }

  async function deleteUser(userId: string, context?: ApplyContext): Promise<ApplyResult> {
    const user = await userByKey(userId);
    if (!user) return { outcome: 'already', details: { userId } };
    let transferred: ApplyResult | undefined;
    if (config.transferBeforeDelete) {
      const applicationId = await driveApplicationId();
      const done = (await transfersFrom(user.id, undefined)).some(
        (t) => ofDrive(t, applicationId) && t.overallTransferStatusCode === TRANSFER_DONE,
      );
      // Google deletes the user's files with the user: they are handed over first.
      if (!done) transferred = await transferDrive(userId, context);
    }
    const outcome = await write('users.delete', 'user', () =>
      directory.users.delete({ userKey: userId, auth: as('user') }),
    );
    if (await userByKey(userId))
      throw new ConnectorError(
        `Google Workspace: user ${userId} still exists after users.delete; retrying deletes it again`,
        true,
        'google_not_applied',
      );
    return {
      outcome,
      details: {
        userId,
        note: 'Google keeps a deleted user restorable for 20 days',
        ...(transferred ? { driveTransfer: transferred.details } : {}),
      },
    };
  }

  async function apply(action: Action, _subject: Subject, context?: ApplyContext): Promise<ApplyResult> {
    const id = action.accountId;
    switch (action.kind) {
      case 'disable_login':
        return setSuspended(id, true);
      case 'enable_login':
        return setSuspended(id, false);
      case 'revoke_sessions':
        return signOut(id);
      case 'revoke_tokens':
        return revokeTokens(id);
      case 'remove_entitlement':
        if (!action.target) throw new ConnectorError('remove_entitlement without a target', false, 'bad_action');
        return removeEntitlement(id, action.target);
      case 'transfer_ownership':
        return transferDrive(id, context);
      case 'delete_account':
        return deleteUser(id, context);
    }
    throw new ConnectorError(`unsupported action ${String(action.kind)}`, false, 'bad_action');
  }

  return {
    system,
    providesIdentity: true,
    async discover(subject: Subject): Promise<Discovery> {
      const user = await findUser(subject);
      if (!user) return { system, account: null, entitlements: [], credentials: [] };
      const suspended = user.suspended ?? false;
      const [entitlements, tokens, asps, backupCodes] = await Promise.all([
        entitlementsOf(user.id),
        tokensOf(user.id),
        aspsOf(user.id),
        backupCodesOf(user.id),
      ]);
      const credentials: Credential[] = [
        // Google cannot list sessions: one entry stands for "may have sessions" while the user can sign in.
        ...(suspended ? [] : [{ id: `${user.id}/sessions`, kind: 'session' as const }]),
        ...tokens.map((t) => ({ id: `oauth-token:${t.clientId}`, kind: 'token' as const })),
        ...asps.map((a) => ({ id: `app-password:${a.codeId}`, kind: 'key' as const })),
        ...(backupCodes > 0 ? [{ id: `${user.id}/backup-codes`, kind: 'key' as const }] : []),
      ];
      const managerEmail = user.relations?.find((r) => r.type === 'manager')?.value;
      return {
        system,
        account: { id: user.id, disabled: suspended },
        entitlements,
        credentials,
        identity: { email: user.primaryEmail, ...(managerEmail ? { managerEmail } : {}) },
      };
    },
    apply,
    async check() {
      // One user read proves the key, the delegation of the user scope and the admin; the rest show at use.
      await call('users.list', 'user', (scope) =>
        directory.users.list({ customer: config.customer, maxResults: 1, auth: as(scope) }),
      );
    },
    async close() {},
  };
}

const isFailed = (transfer: Transfer) => /fail|error/i.test(transfer.overallTransferStatusCode ?? '');

function sameUrl(a: string, b: string): boolean {
  try {
    return new URL(a).href === new URL(b).href;
  } catch {
    return a === b;
  }
}
