/**
 * Okta through its Management API with `@okta/okta-sdk-nodejs` 8, authenticated in one of two ways
 * (exactly one, `oktaAuthIssues`):
 * - `apiToken` (`Authorization: SSWS <token>`): a token acts with the admin roles of the admin who
 *   created it, so offboard needs a dedicated admin with **Super Administrator** (only a super
 *   administrator may remove another admin's roles), or **Organization Administrator** where no
 *   admin roles are removed.
 * - `oauth` (production's preferred shape: no token bound to a person, none that expires unused):
 *   an API service app with private_key_jwt; the SDK signs a client assertion with `privateKey`
 *   and asks `/oauth2/v1/token` for the `scopes` (okta.users/groups/apps/roles .read and .manage
 *   by default), which the app must be granted, and the app needs the admin role as above. The SDK
 *   keeps the access token until a 401, then asks for a new one and repeats the request once.
 * A 403 names the admin role, or the scope, the refused call needs.
 *
 * The person is the user whose `profile.<employeeIdAttribute>` (employeeNumber by default) is the
 * HR id: `GET /api/v1/users?search=profile.employeeNumber eq "E1"`. Failing that, with an email
 * known (from HR or from a directory), the user whose login or primary email is it. Two
 * candidates, or an email match that carries someone else's HR id, stop with `ambiguous_identity`.
 * Okta is an identity provider: the user's email correlates the other systems (`providesIdentity`).
 *
 * Action mapping (each action reads the user first, so `already` means Okta agrees, and reads its
 * effect back after the write: a write answered with success that did not take is retryable):
 * - disable_login: `POST /users/{id}/lifecycle/suspend` (ACTIVE users only, Okta's rule). A
 *   suspended user cannot sign in and keeps its group and app assignments, so a cancel restores
 *   everything. Deactivation is not used here: it deprovisions every assigned app (Okta calls it
 *   destructive and unrecoverable: the app accounts and their data go), so it belongs to the
 *   delete path. A user in another status (RECOVERY, PASSWORD_EXPIRED, LOCKED_OUT, STAGED,
 *   PROVISIONED) cannot be suspended: a non-retryable error says so and what to do.
 * - revoke_sessions: `DELETE /users/{id}/sessions?oauthTokens=true`: every Okta session, and the
 *   OIDC/OAuth refresh and access tokens issued to the user. Okta's API has no way to list a
 *   user's sessions, so their end cannot be read back: the answer is `done` each time on an
 *   existing user, with `sessionsReadBack: false` in the details; the refresh tokens it also
 *   revokes are read back. Sessions that apps keep themselves are not Okta's (Okta says so).
 * - revoke_tokens: `DELETE /users/{id}/grants` (OAuth consent grants) and
 *   `DELETE /users/{id}/clients/{clientId}/tokens` for every client holding refresh tokens
 *   (`GET /users/{id}/clients`); read back until neither lists anything.
 * - remove_entitlement: groups (`DELETE /groups/{gid}/users/{uid}`; only OKTA_GROUP memberships are
 *   listed: Everyone cannot be left and a directory-imported APP_GROUP is changed in the directory),
 *   direct app assignments (`DELETE /apps/{aid}/users/{uid}`; assignments through a group go with
 *   the group, so only scope USER is listed) and admin roles assigned to the user
 *   (`DELETE /users/{id}/roles/{roleAssignmentId}`; those through a group go with the group). Ids
 *   readable in policy lists: `group:<name>`, `app:<appId>`, `admin-role:<type>` (custom roles:
 *   `admin-role:<label>`).
 * - delete_account: unenrols every factor (`DELETE /users/{id}/factors/{fid}`: Okta refuses it on a
 *   deactivated user, and a user deactivated but not deleted could be activated with them), then
 *   `DELETE /users/{id}` twice, as Okta documents: the first deactivates (deprovisioning every
 *   app), the second deletes. Each step is read back, so a retry resumes where one stopped.
 * - enable_login (cancel): `POST /users/{id}/lifecycle/unsuspend`. A user found DEPROVISIONED
 *   (deactivated since) is activated (`POST /lifecycle/activate?sendEmail=false`; Okta's
 *   `reactivate` serves only PROVISIONED and RECOVERY users): it is ACTIVE again if it has a
 *   password, else PROVISIONED until it follows an activation link an admin sends; the app
 *   assignments deactivation deprovisioned come back only through groups. Removed groups, apps and
 *   roles are never restored.
 * - transfer_ownership: not applicable (an Okta user owns nothing others depend on).
 *
 * Factors are authenticators, not access: they are not listed as credentials, since a
 * revoke_tokens verification would then demand their removal at once and a cancel would cost the
 * person their MFA enrolments. delete_account names what it unenrolled.
 *
 * Errors: Okta's `{errorCode, errorSummary, errorCauses}`. 429 (`E0000047`) waits until
 * `X-Rate-Limit-Reset` (epoch seconds, against the answer's Date); the SDK's own 429 retries are
 * off, so the wait pauses the whole system (activities/call-bounds.ts). 5xx and network errors
 * are retryable; 401 (`E0000011`, the token) and 403 (`E0000006`, the admin role, named) are not.
 * The SDK's response cache is off: a read-back must reach Okta.
 */
import okta from '@okta/okta-sdk-nodejs';
import { z } from 'zod';
import type { Action, Credential, Discovery, Entitlement } from '../../model/plan.js';
import type { Subject } from '../../model/request.js';
import { defineConnector } from './descriptor.js';
import { SharedReads } from './shared-reads.js';
import { ConnectorError, type ApplyResult, type Connector } from './types.js';

const isLocal = (url: URL) => url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';

export const oktaSystemSchema = z.object({
  type: z.literal('okta'),
  /** `https://<org>.okta.com` (plain http only for a local stand-in: the token travels in every request). */
  orgUrl: z
    .url()
    .refine((value) => {
      const url = new URL(value);
      return url.protocol === 'https:' || (url.protocol === 'http:' && isLocal(url));
    }, 'an https:// URL (http:// only for 127.0.0.1/localhost)')
    .transform((value) => value.replace(/\/+$/, '')),
  /** An API token of the offboarding admin (Security → API → Tokens): a secret. */
  apiToken: z.string().min(1).optional(),
  /** An API service app (OAuth 2.0 client credentials with private_key_jwt). */
  oauth: z
    .object({
      /** The service app's client id. */
      clientId: z.string().min(1),
      /** Its private key, PEM or JWK JSON: a secret. */
      privateKey: z.string().min(1),
      /** The key's id in the app (the assertion's `kid`), when the app has several keys. */
      keyId: z.string().min(1).optional(),
      scopes: z
        .array(z.string().regex(/^okta\.[a-zA-Z.]+$/, 'an Okta API scope such as okta.users.manage'))
        .min(1)
        .default([
          'okta.users.read',
          'okta.users.manage',
          'okta.groups.read',
          'okta.groups.manage',
          'okta.apps.read',
          'okta.apps.manage',
          'okta.roles.read',
          'okta.roles.manage',
        ]),
    })
    .optional(),
  /** The user profile attribute holding the HR id (a base or custom attribute). */
  employeeIdAttribute: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/, 'a user profile attribute name such as employeeNumber')
    .default('employeeNumber'),
  /** With no user holding the HR id, look for one whose login or email is the person's email. */
  matchByEmail: z.boolean().default(true),
  timeoutMs: z.number().int().positive().default(30_000),
});
export type OktaSystemConfig = z.infer<typeof oktaSystemSchema>;

/**
 * Exactly one of `apiToken` and `oauth`. The schema stays a plain object (zod cannot extend a
 * refined one): the registry applies this after wrapping the secrets, and the factory checks too.
 */
export function oktaAuthIssues(config: { apiToken?: unknown; oauth?: unknown }, ctx: z.RefinementCtx): void {
  const problem = authProblem(config);
  if (problem) ctx.addIssue({ code: 'custom', path: ['apiToken'], message: problem });
}
function authProblem(config: { apiToken?: unknown; oauth?: unknown }): string | undefined {
  if (config.apiToken !== undefined && config.oauth !== undefined)
    return 'give either apiToken or oauth (a service app), not both';
  if (config.apiToken === undefined && config.oauth === undefined)
    return 'an apiToken (SSWS) or oauth (a service app with clientId and privateKey) is required';
  return undefined;
}

export const oktaConnector = defineConnector({
  type: 'okta',
  configSchema: oktaSystemSchema,
  secretFields: ['apiToken', 'oauth.privateKey'],
  refine: oktaAuthIssues,
  capabilities: {
    actions: [
      'disable_login',
      'enable_login',
      'revoke_sessions',
      'revoke_tokens',
      'remove_entitlement',
      'delete_account',
    ],
    discover: true,
    verify: true,
    check: true,
  },
  create: (config, { system }) => createOktaConnector(system, config),
});

// ---- Okta's answers (only the fields relied on) -----------------------------------------------

const userSchema = z.object({
  id: z.string(),
  status: z.string(),
  profile: z.looseObject({ login: z.string(), email: z.string().nullish() }),
});
type OktaUser = z.infer<typeof userSchema>;
const groupSchema = z.object({ id: z.string(), type: z.string(), profile: z.object({ name: z.string() }) });
const appSchema = z.object({
  id: z.string(),
  label: z.string(),
  _embedded: z.object({ user: z.object({ scope: z.string() }) }).optional(),
});
const roleSchema = z.object({
  id: z.string(),
  type: z.string(),
  label: z.string().optional(),
  assignmentType: z.string().optional(),
});
const grantSchema = z.object({ id: z.string(), clientId: z.string().optional(), status: z.string().optional() });
const clientSchema = z.object({ client_id: z.string(), client_name: z.string().optional() });
const tokenSchema = z.object({ id: z.string(), status: z.string().optional() });
const factorSchema = z.object({ id: z.string(), factorType: z.string().optional(), status: z.string().optional() });

function parseAnswer<T>(schema: z.ZodType<T>, value: unknown, doing: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new ConnectorError(
    `Okta ${doing} answered in an unexpected shape (${parsed.error.issues[0]?.message ?? 'invalid'}); check the orgUrl setting`,
    true,
    'okta_bad_answer',
  );
}

/** Every item of an SDK Collection (it follows Okta's `Link: rel="next"` pages), up to `max`. */
async function collect(collection: AsyncIterable<unknown>, max = 5_000): Promise<unknown[]> {
  const items: unknown[] = [];
  for await (const item of collection) {
    if (item === null || item === undefined) continue;
    items.push(item);
    if (items.length >= max) break;
  }
  return items;
}

// ---- errors -----------------------------------------------------------------------------------

const DEFAULT_RETRY_AFTER_MS = 60_000;

interface HttpFailure {
  status: number;
  errorCode?: string;
  summary: string;
  header(name: string): string | null;
}

/** The SDK throws OktaApiError (a JSON error body) or HttpError, both with status and headers. */
function httpFailureOf(err: unknown): HttpFailure | undefined {
  const candidate = err as {
    status?: unknown;
    errorCode?: unknown;
    errorSummary?: unknown;
    errorCauses?: { errorSummary?: string }[];
    headers?: { get?: (name: string) => string | null };
  };
  if (typeof candidate?.status !== 'number') return undefined;
  const causes = (candidate.errorCauses ?? []).map((c) => c.errorSummary).filter(Boolean);
  const summary = [typeof candidate.errorSummary === 'string' ? candidate.errorSummary : '', ...causes]
    .filter(Boolean)
    .join(': ');
  return {
    status: candidate.status,
    errorCode: typeof candidate.errorCode === 'string' ? candidate.errorCode : undefined,
    summary,
    header: (name) => candidate.headers?.get?.(name) ?? null,
  };
}

/** Until X-Rate-Limit-Reset (epoch seconds), measured against the answer's own clock. */
function retryAfterMs(failure: HttpFailure): number {
  const reset = Number(failure.header('x-rate-limit-reset'));
  if (!Number.isFinite(reset) || reset <= 0) return DEFAULT_RETRY_AFTER_MS;
  const date = Date.parse(failure.header('date') ?? '');
  const now = Number.isFinite(date) ? date : Date.now();
  return Math.max(1_000, reset * 1000 - now + 1_000);
}

/** What each call needs, named in a 403: the admin role for API tokens. */
type Permission = 'read' | 'users' | 'groups' | 'apps' | 'roles';
const NEEDS: Record<Permission, string> = {
  read: 'Read-only Administrator (or any role that can view users)',
  users:
    'Organization Administrator (or Group Administrator over the user: lifecycle, sessions, grants, tokens, factors)',
  groups: 'Organization Administrator (or Group Membership Administrator over the group)',
  apps: 'Organization Administrator (or Application Administrator over the app)',
  roles: 'Super Administrator (only a super administrator can remove admin roles)',
};

const TOKEN_PATH = '/oauth2/v1/token';

/**
 * The SDK's request executor, but a refused token request fails as what it is. SDK 8.1.0 does not
 * check the token endpoint's answer (its `Http.errorFilter` is looked up on the module, where it is
 * undefined): an `invalid_client` body would become the access token, every call would then carry
 * `Bearer undefined`, and Okta's 401 would hide the real reason.
 */
class TokenCheckingExecutor extends okta.DefaultRequestExecutor {
  override async fetch(request: Parameters<okta.DefaultRequestExecutor['fetch']>[0]) {
    const response = await super.fetch(request);
    const answer = response as { ok: boolean; status: number; clone(): { json(): Promise<unknown> } };
    if (answer.ok || !request.url?.split('?')[0]!.endsWith(TOKEN_PATH)) return response;
    const body = (await answer
      .clone()
      .json()
      .catch(() => ({}))) as { error?: unknown; error_description?: unknown };
    throw tokenRefusal(answer.status, body, (name) => (response as { headers: Headers }).headers.get(name));
  }
}

function tokenRefusal(
  status: number,
  body: { error?: unknown; error_description?: unknown },
  header: (name: string) => string | null,
): ConnectorError {
  const said = [body.error, body.error_description].filter((v) => typeof v === 'string').join(': ');
  const detail = `HTTP ${status}${said ? ` (${said})` : ''}`;
  if (status === 429)
    return new ConnectorError(
      `Okta rate-limited the token request: ${detail}`,
      true,
      'okta_rate_limited',
      retryAfterMs({ status, summary: said, header }),
    );
  if (status >= 500) return new ConnectorError(`Okta's token endpoint failed: ${detail}`, true, `okta_http_${status}`);
  if (body.error === 'invalid_scope')
    return new ConnectorError(
      `Okta refused the service app's token request: ${detail}; grant the scope to the app (its Okta API Scopes) or drop it from oauth.scopes`,
      false,
      'okta_bad_credentials',
    );
  return new ConnectorError(
    `Okta refused the service app's client assertion: ${detail}; check oauth.clientId, oauth.privateKey (the key registered on the app, PEM or JWK) and oauth.keyId`,
    false,
    'okta_bad_credentials',
  );
}

function classify(err: unknown, doing: string, needs: Permission, oauth: boolean): ConnectorError {
  if (err instanceof ConnectorError) return err;
  const failure = httpFailureOf(err);
  if (failure) {
    const code = failure.errorCode ? `${failure.errorCode} ` : '';
    const said = `HTTP ${failure.status}${failure.summary || code ? ` (${code}${failure.summary})` : ''}`.replace(
      ' )',
      ')',
    );
    const { status } = failure;
    if (status === 429)
      return new ConnectorError(
        `Okta rate-limited ${doing}: ${said}`,
        true,
        'okta_rate_limited',
        retryAfterMs(failure),
      );
    if (status >= 500 || status === 408)
      return new ConnectorError(`Okta ${doing} failed: ${said}`, true, `okta_http_${status}`);
    if (status === 401)
      return new ConnectorError(
        oauth
          ? `Okta ${doing} failed: ${said}: a fresh access token of the service app was refused too; check that the app is active and still granted its scopes`
          : `Okta ${doing} failed: ${said}: the API token was refused; check apiToken (a token unused for 30 days expires, and one is revoked with its admin)`,
        false,
        'okta_unauthorized',
      );
    if (status === 403) {
      const scope = /error="insufficient_scope"/.test(failure.header('www-authenticate') ?? '')
        ? (/scope="([^"]+)"/.exec(failure.header('www-authenticate') ?? '')?.[1] ?? 'the scope it needs')
        : undefined;
      if (scope)
        return new ConnectorError(
          `Okta ${doing} failed: ${said}: the service app's access token lacks ${scope}; grant it to the app (Okta API Scopes) and list it in oauth.scopes`,
          false,
          'okta_forbidden',
        );
      return new ConnectorError(
        oauth
          ? `Okta ${doing} failed: ${said}: the service app lacks the admin right; assign the app ${NEEDS[needs]} (Admin roles of the app)`
          : `Okta ${doing} failed: ${said}: the API token acts with the admin roles of the admin who created it, and that admin lacks the right; give that admin ${NEEDS[needs]}, or create the token as an admin who has it`,
        false,
        'okta_forbidden',
      );
    }
    return new ConnectorError(`Okta ${doing} failed: ${said}`, false, `okta_http_${status}`);
  }
  // Socket errors and timeouts: Okta may be back in a moment. node-fetch's message holds the URL,
  // whose search names the person: only its code or type is kept.
  const candidate = err as { type?: string; code?: string; message?: string; name?: string };
  const reason =
    candidate?.type === 'request-timeout'
      ? `no answer within the timeout`
      : (candidate?.code ??
        (candidate?.name === 'FetchError' ? candidate.type : `${candidate?.name}: ${candidate?.message}`));
  return new ConnectorError(`Okta ${doing} failed: ${reason}`, true, 'okta_unreachable');
}

const isNotFound = (err: unknown) => httpFailureOf(err)?.status === 404;

// ---- entitlement ids --------------------------------------------------------------------------

const GROUP = 'group:';
const APP = 'app:';
const ADMIN_ROLE = 'admin-role:';

const roleKey = (role: z.infer<typeof roleSchema>) => (role.type === 'CUSTOM' ? (role.label ?? role.id) : role.type);

/** A value inside an Okta search expression's double quotes. */
const quoted = (value: string) => `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;

const DISABLED = new Set(['SUSPENDED', 'DEPROVISIONED']);

const CANNOT_SUSPEND: Record<string, string> = {
  RECOVERY: 'a password reset is pending: the person could finish it',
  PASSWORD_EXPIRED: 'the person could set a new password at the next sign-in',
  LOCKED_OUT: 'the lockout ends on its own or by an unlock',
  STAGED: 'the account was never activated, but an admin can still activate it',
  PROVISIONED: 'an activation link is outstanding: the person could still follow it',
};

// ---- the connector ----------------------------------------------------------------------------

export function createOktaConnector(system: string, config: OktaSystemConfig): Connector {
  const problem = authProblem(config);
  if (problem) throw new Error(`system ${system}: ${problem}`);
  const oauth = config.oauth !== undefined;
  const client = new okta.Client({
    orgUrl: config.orgUrl,
    ...(config.oauth
      ? {
          authorizationMode: 'PrivateKey',
          clientId: config.oauth.clientId,
          scopes: config.oauth.scopes,
          privateKey: config.oauth.privateKey,
          // Given even when unset: the SDK would otherwise take OKTA_CLIENT_KEYID or an okta.yaml's.
          keyId: config.oauth.keyId ?? '',
        }
      : { authorizationMode: 'SSWS', token: config.apiToken }),
    // Read-backs must reach Okta: the default cache would answer a GET of the user from memory.
    cacheMiddleware: null,
    // No retries inside the SDK: a 429 becomes a ConnectorError whose wait pauses the whole system.
    requestExecutor: new TokenCheckingExecutor({ maxRetries: 0, requestTimeout: config.timeoutMs }),
  });

  async function call<T>(doing: string, needs: Permission, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw classify(err, doing, needs, oauth);
    }
  }

  // Removals running side by side share their reads of the user's lists (shared-reads.ts).
  const reads = new SharedReads();

  /** Undefined when Okta answers 404: the user (whose list this is) no longer exists. */
  async function untilGone<T>(read: () => Promise<T>): Promise<T | undefined> {
    try {
      return await read();
    } catch (err) {
      if (err instanceof ConnectorError && err.code === 'okta_http_404') return undefined;
      throw err;
    }
  }

  /** A read of the user that answers undefined once it no longer exists. */
  async function userById(id: string): Promise<OktaUser | undefined> {
    try {
      return parseAnswer(userSchema, await client.userApi.getUser({ userId: id }), 'GET user');
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw classify(err, 'GET user', 'read', oauth);
    }
  }

  async function search(expression: string): Promise<OktaUser[]> {
    const found = await call('user search', 'read', async () =>
      collect(await client.userApi.listUsers({ search: expression, limit: 10 }), 10),
    );
    return parseAnswer(z.array(userSchema), found, 'user search');
  }

  const employeeIdOf = (user: OktaUser) => {
    const value = user.profile[config.employeeIdAttribute];
    return typeof value === 'string' && value ? value : undefined;
  };

  async function findUser(subject: Subject): Promise<OktaUser | undefined> {
    const attribute = `profile.${config.employeeIdAttribute}`;
    const byId = await search(`${attribute} eq ${quoted(subject.employeeId)}`);
    const ambiguous = (users: OktaUser[], by: string) =>
      new ConnectorError(
        `Okta: ${users.length} users match ${by} of employee ${subject.employeeId} (${users.map((u) => u.profile.login).join(', ')}); make it unique (deactivate or fix the stale user), then retry`,
        false,
        'ambiguous_identity',
      );
    if (byId.length > 1) throw ambiguous(byId, attribute);
    if (byId[0] || !config.matchByEmail || !subject.email) return byId[0];
    const email = subject.email;
    const byEmail = await search(`profile.login eq ${quoted(email)} or profile.email eq ${quoted(email)}`);
    if (byEmail.length > 1) throw ambiguous(byEmail, 'login or email');
    const user = byEmail[0];
    const other = user && employeeIdOf(user);
    if (user && other && other.toLowerCase() !== subject.employeeId.toLowerCase())
      throw new ConnectorError(
        `Okta: the user with login or email of employee ${subject.employeeId} (${user.profile.login}) carries ${attribute} "${other}", another person's HR id; correct one of them, then retry`,
        false,
        'ambiguous_identity',
      );
    return user;
  }

  // ---- reads ----------------------------------------------------------------------------------

  async function groupsOf(id: string) {
    const groups = await call('GET user groups', 'read', async () =>
      collect(await client.userApi.listUserGroups({ userId: id })),
    );
    // Everyone (BUILT_IN) cannot be left; an APP_GROUP's members are its directory's to change.
    return parseAnswer(z.array(groupSchema), groups, 'GET user groups').filter((g) => g.type === 'OKTA_GROUP');
  }

  async function directAppsOf(id: string) {
    const apps = await call('GET apps of user', 'read', async () =>
      collect(
        await client.applicationApi.listApplications({
          filter: `user.id eq ${quoted(id)}`,
          expand: `user/${id}`,
          limit: 200,
        }),
      ),
    );
    // An assignment through a group (scope GROUP) goes with the group.
    return parseAnswer(z.array(appSchema), apps, 'GET apps of user').filter((a) => a._embedded?.user.scope === 'USER');
  }

  async function directRolesOf(id: string) {
    const roles = await call('GET user roles', 'read', async () =>
      collect(await client.roleAssignmentApi.listAssignedRolesForUser({ userId: id })),
    );
    return parseAnswer(z.array(roleSchema), roles, 'GET user roles').filter(
      (r) => (r.assignmentType ?? 'USER') === 'USER',
    );
  }

  async function grantsOf(id: string) {
    const grants = await call('GET user grants', 'read', async () =>
      collect(await client.userApi.listUserGrants({ userId: id })),
    );
    return parseAnswer(z.array(grantSchema), grants, 'GET user grants').filter(
      (g) => (g.status ?? 'ACTIVE') === 'ACTIVE',
    );
  }

  /** Clients holding refresh tokens of the user, with those tokens' ids. */
  async function refreshTokensOf(id: string): Promise<{ clientId: string; tokens: string[] }[]> {
    const clients = parseAnswer(
      z.array(clientSchema),
      await call('GET user clients', 'read', async () => collect(await client.userApi.listUserClients({ userId: id }))),
      'GET user clients',
    );
    const held = await Promise.all(
      clients.map(async ({ client_id: clientId }) => {
        const tokens = parseAnswer(
          z.array(tokenSchema),
          await call('GET user refresh tokens', 'read', async () =>
            collect(await client.userApi.listRefreshTokensForUserAndClient({ userId: id, clientId })),
          ),
          'GET user refresh tokens',
        );
        return { clientId, tokens: tokens.filter((t) => (t.status ?? 'ACTIVE') === 'ACTIVE').map((t) => t.id) };
      }),
    );
    return held.filter((h) => h.tokens.length > 0);
  }

  async function factorsOf(id: string) {
    const factors = await call('GET user factors', 'read', async () =>
      collect(await client.userFactorApi.listFactors({ userId: id })),
    );
    return parseAnswer(z.array(factorSchema), factors, 'GET user factors');
  }

  // ---- actions --------------------------------------------------------------------------------

  const notApplied = (what: string) =>
    new ConnectorError(`Okta: ${what} (a concurrent change?); retrying reads it again`, true, 'okta_not_applied');

  async function disable(id: string): Promise<ApplyResult> {
    const user = await userById(id);
    if (!user) return { outcome: 'already', details: { userId: id, note: 'no such user' } };
    if (DISABLED.has(user.status)) return { outcome: 'already', details: { userId: id, status: user.status } };
    if (user.status !== 'ACTIVE')
      throw new ConnectorError(
        `Okta suspends only ACTIVE users, and user ${id} is ${user.status} (${CANNOT_SUSPEND[user.status] ?? 'a status offboard does not handle'}); offboard does not deactivate it, since that deprovisions every app: deactivate it in the Admin Console, or skip with a reason`,
        false,
        'okta_cannot_suspend',
      );
    await call('POST user suspend', 'users', () => client.userApi.suspendUser({ userId: id }));
    const after = await userById(id);
    if (after?.status !== 'SUSPENDED') throw notApplied(`user ${id} is ${after?.status ?? 'gone'} after the suspend`);
    return { outcome: 'done', details: { userId: id, status: 'SUSPENDED', from: user.status } };
  }

  async function enable(id: string): Promise<ApplyResult> {
    const user = await userById(id);
    if (!user)
      throw new ConnectorError(`Okta: user ${id} no longer exists; it cannot be re-enabled`, false, 'account_gone');
    if (user.status === 'SUSPENDED') {
      await call('POST user unsuspend', 'users', () => client.userApi.unsuspendUser({ userId: id }));
      const after = await userById(id);
      if (after?.status !== 'ACTIVE') throw notApplied(`user ${id} is ${after?.status ?? 'gone'} after the unsuspend`);
      return { outcome: 'done', details: { userId: id, status: 'ACTIVE' } };
    }
    if (user.status === 'DEPROVISIONED') {
      // The answer carries an activation link: it is not kept (it would let anyone holding it in).
      await call('POST user activate', 'users', () => client.userApi.activateUser({ userId: id, sendEmail: false }));
      const after = await userById(id);
      if (after?.status !== 'ACTIVE' && after?.status !== 'PROVISIONED')
        throw notApplied(`user ${id} is ${after?.status ?? 'gone'} after the activation`);
      return {
        outcome: 'done',
        details: {
          userId: id,
          status: after.status,
          note:
            after.status === 'PROVISIONED'
              ? 'activated from DEPROVISIONED without a password: the person signs in after an admin sends an activation link; apps deprovisioned by the deactivation come back only through groups'
              : 'activated from DEPROVISIONED: apps deprovisioned by the deactivation come back only through groups',
        },
      };
    }
    return { outcome: 'already', details: { userId: id, status: user.status } };
  }

  const noSuchUser = (id: string): ApplyResult => ({
    outcome: 'already',
    details: { userId: id, note: 'no such user' },
  });

  // Neither revocation reads the user first: Okta answers 404 for a deleted user's sessions and lists.
  async function revokeSessions(id: string): Promise<ApplyResult> {
    const left = await untilGone(() =>
      reads.afterWrite(
        `refresh-tokens:${id}`,
        () =>
          call('DELETE user sessions', 'users', () =>
            client.userApi.revokeUserSessions({ userId: id, oauthTokens: true }),
          ),
        () => refreshTokensOf(id),
      ),
    );
    if (!left) return noSuchUser(id);
    if (left.length)
      throw notApplied(
        `refresh tokens of user ${id} for ${left.map((l) => l.clientId).join(', ')} remain after the session revocation`,
      );
    return {
      outcome: 'done',
      details: {
        userId: id,
        oauthTokens: true,
        sessionsReadBack: false,
        note: "Okta's API lists no sessions of a user: the revocation was accepted and cannot be read back; no refresh token is left",
      },
    };
  }

  async function revokeTokens(id: string): Promise<ApplyResult> {
    const held = await untilGone(() =>
      Promise.all([
        reads.current(`grants:${id}`, () => grantsOf(id)),
        reads.current(`refresh-tokens:${id}`, () => refreshTokensOf(id)),
      ]),
    );
    if (!held) return noSuchUser(id);
    const [grants, tokens] = held;
    if (grants.length === 0 && tokens.length === 0)
      return { outcome: 'already', details: { userId: id, grants: 0, clients: [] } };
    // Each list is read back only if it was written, from a request begun after the write; the
    // refresh tokens' read-back is shared with revoke_sessions' when both end together.
    const [grantsLeft, tokensLeft] = await Promise.all([
      grants.length
        ? reads.afterWrite(
            `grants:${id}`,
            () => call('DELETE user grants', 'users', () => client.userApi.revokeUserGrants({ userId: id })),
            () => grantsOf(id),
          )
        : [],
      tokens.length
        ? reads.afterWrite(
            `refresh-tokens:${id}`,
            async () => {
              for (const { clientId } of tokens)
                await call('DELETE user refresh tokens', 'users', () =>
                  client.userApi.revokeTokensForUserAndClient({ userId: id, clientId }),
                );
            },
            () => refreshTokensOf(id),
          )
        : [],
    ]);
    if (grantsLeft.length || tokensLeft.length)
      throw notApplied(
        `user ${id} still holds ${grantsLeft.length} grant(s) and refresh tokens for ${tokensLeft.length} client(s) after revocation`,
      );
    return {
      outcome: 'done',
      details: { userId: id, grants: grants.length, clients: tokens.map((t) => t.clientId) },
    };
  }

  /**
   * The user's memberships of one kind, read before a removal (shared with the removals running
   * beside it) or undefined once the user is gone: Okta answers 404 for a deleted user's lists.
   */
  async function currentList<T>(key: string, id: string, read: (id: string) => Promise<T>): Promise<T | undefined> {
    return untilGone(() => reads.current(`${key}:${id}`, () => read(id)));
  }

  /** Removes one membership, then reads the list again from a request begun after the removal. */
  async function removeThenList<T>(
    key: string,
    id: string,
    remove: () => Promise<unknown>,
    read: (id: string) => Promise<T>,
  ) {
    // Only the read-back's 404 means the user is gone; a 404 of the removal itself stays an error.
    return reads.afterWrite(`${key}:${id}`, remove, () => untilGone(() => read(id)));
  }

  async function removeEntitlement(id: string, target: Entitlement): Promise<ApplyResult> {
    const details = { userId: id, entitlement: target.id };
    const noUser = { outcome: 'already' as const, details: { ...details, note: 'no such user' } };
    if (target.id.startsWith(GROUP)) {
      const name = target.id.slice(GROUP.length);
      const groups = await currentList('groups', id, groupsOf);
      if (!groups) return noUser;
      const group = groups.find((g) => g.profile.name === name);
      if (!group) return { outcome: 'already', details };
      const left = await removeThenList(
        'groups',
        id,
        () =>
          call('DELETE group member', 'groups', () =>
            client.groupApi.unassignUserFromGroup({ groupId: group.id, userId: id }),
          ),
        groupsOf,
      );
      if (left?.some((g) => g.id === group.id))
        throw notApplied(`user ${id} is still in group ${name} after the removal`);
      return { outcome: 'done', details: { ...details, groupId: group.id } };
    }
    if (target.id.startsWith(APP)) {
      const appId = target.id.slice(APP.length);
      const apps = await currentList('apps', id, directAppsOf);
      if (!apps) return noUser;
      if (!apps.some((a) => a.id === appId)) return { outcome: 'already', details };
      const left = await removeThenList(
        'apps',
        id,
        () =>
          call('DELETE app user', 'apps', () =>
            client.applicationApi.unassignUserFromApplication({ appId, userId: id, sendEmail: false }),
          ),
        directAppsOf,
      );
      if (left?.some((a) => a.id === appId))
        throw notApplied(`user ${id} is still assigned app ${appId} after the removal`);
      return { outcome: 'done', details };
    }
    if (target.id.startsWith(ADMIN_ROLE)) {
      const key = target.id.slice(ADMIN_ROLE.length);
      const roles = await currentList('roles', id, directRolesOf);
      if (!roles) return noUser;
      const role = roles.find((r) => roleKey(r) === key);
      if (!role) return { outcome: 'already', details };
      const left = await removeThenList(
        'roles',
        id,
        () =>
          call('DELETE user role', 'roles', () =>
            client.roleAssignmentApi.unassignRoleFromUser({ userId: id, roleId: role.id }),
          ),
        directRolesOf,
      );
      if (left?.some((r) => r.id === role.id))
        throw notApplied(`user ${id} still has admin role ${key} after the removal`);
      return { outcome: 'done', details: { ...details, roleAssignmentId: role.id } };
    }
    throw new ConnectorError(
      `Okta: entitlement ${target.id} is not a group:, app: or admin-role: id`,
      false,
      'bad_action',
    );
  }

  async function deleteUser(id: string): Promise<ApplyResult> {
    const user = await userById(id);
    if (!user) return { outcome: 'already', details: { userId: id } };
    const factorsRemoved: string[] = [];
    if (user.status !== 'DEPROVISIONED') {
      for (const factor of await factorsOf(id)) {
        try {
          await client.userFactorApi.unenrollFactor({ userId: id, factorId: factor.id });
        } catch (err) {
          if (!isNotFound(err)) throw classify(err, 'DELETE user factor', 'users', oauth);
        }
        factorsRemoved.push(factor.factorType ?? factor.id);
      }
      const left = await factorsOf(id);
      if (left.length)
        throw notApplied(`user ${id} still has ${left.length} factor(s) enrolled after unenrolling them`);
      // The first DELETE of a user not yet deactivated deactivates it (documented).
      await call('DELETE user (deactivate)', 'users', () =>
        client.userApi.deleteUser({ userId: id, sendEmail: false }),
      );
      const deactivated = await userById(id);
      if (deactivated && deactivated.status !== 'DEPROVISIONED')
        throw notApplied(`user ${id} is ${deactivated.status} after the deactivating DELETE`);
    }
    try {
      await client.userApi.deleteUser({ userId: id, sendEmail: false });
    } catch (err) {
      if (!isNotFound(err)) throw classify(err, 'DELETE user', 'users', oauth);
    }
    if (await userById(id)) throw notApplied(`user ${id} still exists after the second DELETE`);
    return {
      outcome: 'done',
      details: {
        userId: id,
        factorsRemoved,
        deactivated: user.status !== 'DEPROVISIONED',
        note: 'deactivated (every app deprovisioned), then deleted with its groups, roles, grants and tokens',
      },
    };
  }

  async function apply(action: Action): Promise<ApplyResult> {
    const id = action.accountId;
    switch (action.kind) {
      case 'disable_login':
        return disable(id);
      case 'enable_login':
        return enable(id);
      case 'revoke_sessions':
        return revokeSessions(id);
      case 'revoke_tokens':
        return revokeTokens(id);
      case 'remove_entitlement':
        if (!action.target) throw new ConnectorError('remove_entitlement without a target', false, 'bad_action');
        return removeEntitlement(id, action.target);
      case 'delete_account':
        return deleteUser(id);
      case 'transfer_ownership':
        return { outcome: 'not_applicable', details: { reason: 'an Okta user owns nothing that others depend on' } };
    }
    throw new ConnectorError(`unsupported action ${String(action.kind)}`, false, 'bad_action');
  }

  return {
    system,
    providesIdentity: true,
    async discover(subject: Subject): Promise<Discovery> {
      const user = await findUser(subject);
      if (!user) return { system, account: null, entitlements: [], credentials: [] };
      const [groups, apps, roles, grants, tokens] = await Promise.all([
        groupsOf(user.id),
        directAppsOf(user.id),
        directRolesOf(user.id),
        grantsOf(user.id),
        refreshTokensOf(user.id),
      ]);
      const entitlements: Entitlement[] = [
        ...groups.map((g) => ({ id: `${GROUP}${g.profile.name}`, kind: 'group', name: g.profile.name })),
        ...apps.map((a) => ({ id: `${APP}${a.id}`, kind: 'app_assignment', name: a.label })),
        ...roles.map((r) => ({ id: `${ADMIN_ROLE}${roleKey(r)}`, kind: 'admin_role', name: r.label ?? r.type })),
      ];
      const disabled = DISABLED.has(user.status);
      const credentials: Credential[] = [
        // Okta lists no sessions of a user: one entry stands for "may have sessions" while the user can sign in.
        ...(disabled ? [] : [{ id: 'okta-sessions', kind: 'session' as const }]),
        ...grants.map((g) => ({ id: `grant:${g.id}`, kind: 'token' as const })),
        ...tokens.map((t) => ({ id: `refresh-tokens:${t.clientId}`, kind: 'token' as const })),
      ];
      const email = user.profile.email ?? undefined;
      return {
        system,
        account: { id: user.id, disabled },
        entitlements,
        credentials,
        ...(email ? { identity: { email } } : {}),
      };
    },
    apply,
    async check() {
      // Listing one user proves the org URL and the token; the write rights show at the first write.
      await call('user listing', 'read', async () => collect(await client.userApi.listUsers({ limit: 1 }), 1));
    },
    async close() {},
  };
}
