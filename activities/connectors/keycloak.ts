/**
 * Keycloak through its Admin REST API with `@keycloak/keycloak-admin-client`, authenticated as a
 * service-account client of the target realm (client credentials). That client's service account
 * needs these roles of the realm's `realm-management` client:
 *   - view-users:   find the person, list sessions, consents, groups, role mappings, identity links
 *   - manage-users: disable/enable, log out, revoke consents and offline tokens, leave groups,
 *                   unmap roles, unlink identity providers, delete
 * (query-users alone is not enough to read sessions). Nothing else: no realm-admin, no manage-realm.
 *
 * The person is found by a configurable field: a user attribute holding the HR id (employeeNumber
 * by default; the realm's user profile must declare it), the email, or the username (the HR id or
 * the email). More than one match is an `ambiguous_identity`, never a guess. Keycloak is an
 * identity provider: what it knows of the person (their email) correlates the other systems
 * (`providesIdentity`), as a directory's does.
 *
 * Action mapping (each one reads the user back first, so `already` means Keycloak agrees):
 * - disable_login: `PUT /users/{id}` with `enabled: false`. This alone ends nothing: the user's
 *   sessions stay listed and their refresh and offline tokens stay stored until the token endpoint
 *   next checks them, so revoke_sessions and revoke_tokens follow it in every playbook.
 * - revoke_sessions: `POST /users/{id}/logout`: removes every session of the user (with a
 *   back-channel logout to clients that have an admin URL), so the refresh tokens issued for them
 *   are refused (`invalid_grant`) for good, even if the user is enabled again. `already` when no
 *   session is listed.
 * - revoke_tokens: `DELETE /users/{id}/consents/{clientId}` for every client the user granted
 *   consent to or holds an offline token for (`GET /users/{id}/consents` lists both): revokes the
 *   consent and the client's offline sessions, so an offline token (scope offline_access) is
 *   refused whether or not the sessions were ended. Read back: no consent and no offline token left.
 * - remove_entitlement: groups (`DELETE /users/{id}/groups/{groupId}`), realm role mappings
 *   (`DELETE /users/{id}/role-mappings/realm`), client role mappings
 *   (`DELETE /users/{id}/role-mappings/clients/{client}`) and identity-provider links
 *   (`DELETE /users/{id}/federated-identity/{alias}`: the person can no longer sign in through that
 *   provider). Ids are readable and stable for policy lists: `group:/path`, `realm-role:name`,
 *   `client-role:clientId/name`, `idp-link:alias`. Roles a group or a composite grants are not
 *   listed: they go with the group or the direct mapping.
 * - delete_account: `DELETE /users/{id}` (credentials, consents and links go with the user).
 * - enable_login (cancel): `enabled: true`. Groups, roles and links removed are not restored.
 * - transfer_ownership: not applicable (Keycloak users own nothing others depend on).
 *
 * Errors: 429 (with Retry-After) and 5xx are retryable; 401 (the client's credentials) and 403 (a
 * missing role, named) go to an operator; 404 on the user in a write means it is gone (`already`).
 */
import KcAdminClient from '@keycloak/keycloak-admin-client';
import { z } from 'zod';
import type { Action, Credential, Discovery, Entitlement } from '../../model/plan.js';
import type { Subject } from '../../model/request.js';
import { defineConnector } from './descriptor.js';
import { ConnectorError, type ApplyResult, type Connector } from './types.js';

export const keycloakSystemSchema = z.object({
  type: z.literal('keycloak'),
  /** The server's base URL (https://sso.example.org), without /realms or /admin. */
  url: z.url(),
  /** The realm whose users are offboarded; the service-account client lives in it too. */
  realm: z.string().min(1),
  /** A confidential client of that realm with "Service accounts roles" on (client credentials). */
  clientId: z.string().min(1),
  clientSecret: z.string().min(1),
  /**
   * How the person is found: `attribute` (the HR id in a user attribute), `email`, or `username`
   * (`usernameIs` says whether the username is the HR id or the email).
   */
  findBy: z.enum(['attribute', 'email', 'username']).default('attribute'),
  attribute: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/, 'a user attribute name such as employeeNumber')
    .default('employeeNumber'),
  usernameIs: z.enum(['employeeId', 'email']).default('employeeId'),
  timeoutMs: z.number().int().positive().default(30_000),
});
export type KeycloakSystemConfig = z.infer<typeof keycloakSystemSchema>;

export const keycloakConnector = defineConnector({
  type: 'keycloak',
  configSchema: keycloakSystemSchema,
  secretFields: ['clientSecret'],
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
  create: (config, { system }) => createKeycloakConnector(system, config),
});

// ---- Keycloak's answers (only the fields relied on) -------------------------------------------

const userSchema = z.object({
  id: z.string(),
  username: z.string(),
  email: z.string().optional(),
  enabled: z.boolean(),
  attributes: z.record(z.string(), z.array(z.string())).optional(),
});
type KeycloakUser = z.infer<typeof userSchema>;

const consentSchema = z.object({
  clientId: z.string(),
  grantedClientScopes: z.array(z.string()).optional(),
  additionalGrants: z.array(z.object({ key: z.string() })).optional(),
});
const roleSchema = z.object({ id: z.string().optional(), name: z.string() });
const mappingsSchema = z.object({
  realmMappings: z.array(roleSchema).optional(),
  clientMappings: z
    .record(z.string(), z.object({ id: z.string(), client: z.string(), mappings: z.array(roleSchema) }))
    .optional(),
});
const groupSchema = z.object({ id: z.string(), name: z.string(), path: z.string() });
const linkSchema = z.object({ identityProvider: z.string(), userName: z.string().optional() });

function parseAnswer<T>(schema: z.ZodType<T>, value: unknown, doing: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new ConnectorError(
    `Keycloak ${doing} answered in an unexpected shape (${parsed.error.issues[0]?.message ?? 'invalid'}); check the url setting`,
    true,
    'keycloak_bad_answer',
  );
}

// ---- errors -----------------------------------------------------------------------------------

const DEFAULT_RETRY_AFTER_MS = 30_000;

interface HttpFailure {
  status: number;
  headers: Headers;
  body: unknown;
}

/** The admin client throws a NetworkError carrying the fetch Response and its parsed body. */
function httpFailureOf(err: unknown): HttpFailure | undefined {
  const candidate = err as { response?: unknown; responseData?: unknown };
  const response = candidate?.response;
  if (response instanceof Response)
    return { status: response.status, headers: response.headers, body: candidate.responseData };
  return undefined;
}

function retryAfterMs(headers: Headers): number {
  const value = headers.get('retry-after');
  if (!value) return DEFAULT_RETRY_AFTER_MS;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : DEFAULT_RETRY_AFTER_MS;
}

function describeBody(body: unknown): string {
  if (typeof body === 'object' && body !== null) {
    const fields = body as Record<string, unknown>;
    const text = [fields.error, fields.error_description, fields.errorMessage].filter((v) => typeof v === 'string');
    if (text.length) return text.join(': ');
  }
  return typeof body === 'string' && body ? body.slice(0, 200) : '';
}

/** What each call needs, named in a 403 so that the operator knows which role to add. */
type Role = 'view-users' | 'manage-users';

function classify(err: unknown, doing: string, role: Role, config: KeycloakSystemConfig): ConnectorError {
  if (err instanceof ConnectorError) return err;
  const failure = httpFailureOf(err);
  if (failure) {
    const said = describeBody(failure.body);
    const detail = said ? ` (${said})` : '';
    const { status } = failure;
    if (status === 429)
      return new ConnectorError(
        `Keycloak rate-limited ${doing}`,
        true,
        'keycloak_rate_limited',
        retryAfterMs(failure.headers),
      );
    if (status >= 500 || status === 408)
      return new ConnectorError(`Keycloak ${doing} failed: HTTP ${status}${detail}`, true, `keycloak_http_${status}`);
    if (status === 401)
      return new ConnectorError(
        `Keycloak ${doing} failed: HTTP 401${detail}: the service account's token was refused; check clientId and clientSecret of realm ${config.realm}`,
        false,
        'keycloak_unauthorized',
      );
    if (status === 403)
      return new ConnectorError(
        `Keycloak ${doing} failed: HTTP 403${detail}: the service account of client ${config.clientId} lacks the realm-management role ${role}; assign it (Clients → ${config.clientId} → Service accounts roles → Assign role → realm-management ${role})`,
        false,
        'keycloak_forbidden',
      );
    return new ConnectorError(`Keycloak ${doing} failed: HTTP ${status}${detail}`, false, `keycloak_http_${status}`);
  }
  // Socket errors and timeouts: Keycloak may be back in a moment.
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  const cause = (err as { cause?: { code?: string } })?.cause?.code;
  return new ConnectorError(`Keycloak ${doing} failed: ${cause ?? message}`, true, 'keycloak_unreachable');
}

/** A token request's failure: the credentials or the realm are wrong, or Keycloak is away. */
function classifyAuth(err: unknown, config: KeycloakSystemConfig): ConnectorError {
  const failure = httpFailureOf(err);
  if (!failure || failure.status === 429 || failure.status >= 500)
    return classify(err, 'token request', 'view-users', config);
  const said = describeBody(failure.body);
  const detail = said ? ` (${said})` : '';
  if (failure.status === 404)
    return new ConnectorError(
      `Keycloak has no realm ${config.realm}${detail}: fix the realm setting`,
      false,
      'keycloak_no_realm',
    );
  return new ConnectorError(
    `Keycloak refused the client credentials of ${config.clientId} in realm ${config.realm}: HTTP ${failure.status}${detail}; check clientId and clientSecret, that the client is confidential and has "Service accounts roles" enabled`,
    false,
    'keycloak_bad_credentials',
  );
}

const isNotFound = (err: unknown) => httpFailureOf(err)?.status === 404;

// ---- entitlement ids --------------------------------------------------------------------------

const GROUP = 'group:';
const REALM_ROLE = 'realm-role:';
const CLIENT_ROLE = 'client-role:';
const IDP_LINK = 'idp-link:';

// ---- the connector ----------------------------------------------------------------------------

/** A token is renewed when it has less than this left (a call may queue behind a 429 pause). */
const TOKEN_MARGIN_MS = 30_000;

export function createKeycloakConnector(system: string, config: KeycloakSystemConfig): Connector {
  const client = new KcAdminClient({ baseUrl: config.url, realmName: config.realm, timeout: config.timeoutMs });
  const tokenUrl = `${config.url.replace(/\/+$/, '')}/realms/${encodeURIComponent(config.realm)}/protocol/openid-connect/token`;
  let token: { value: string; expiresAt: number } | undefined;
  let requesting: Promise<string> | undefined;

  // The client-credentials grant gives no refresh token, and the admin client would try one when
  // its token expires: offboard asks for a new token itself.
  async function requestToken(): Promise<string> {
    let response: Response;
    try {
      response = await fetch(tokenUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: config.clientId,
          client_secret: config.clientSecret,
        }),
        signal: AbortSignal.timeout(config.timeoutMs),
      });
    } catch (err) {
      throw classify(err, 'token request', 'view-users', config);
    }
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON: kept as text for the message.
    }
    if (!response.ok)
      throw classifyAuth(Object.assign(new Error('token request'), { response, responseData: body }), config);
    const answer = parseAnswer(z.object({ access_token: z.string(), expires_in: z.number() }), body, 'token request');
    token = { value: answer.access_token, expiresAt: Date.now() + answer.expires_in * 1000 };
    return answer.access_token;
  }

  async function authenticate(): Promise<string> {
    if (token && token.expiresAt - Date.now() > TOKEN_MARGIN_MS) return token.value;
    requesting ??= requestToken().finally(() => {
      requesting = undefined;
    });
    return requesting;
  }
  client.registerTokenProvider({ getAccessToken: authenticate });

  async function call<T>(doing: string, role: Role, work: () => Promise<T>): Promise<T> {
    await authenticate();
    try {
      return await work();
    } catch (err) {
      throw classify(err, doing, role, config);
    }
  }

  /** A write on the user: a 404 means the user (or the thing removed) is already gone. */
  async function write(doing: string, work: () => Promise<unknown>): Promise<'done' | 'already'> {
    await authenticate();
    try {
      await work();
      return 'done';
    } catch (err) {
      if (isNotFound(err)) return 'already';
      throw classify(err, doing, 'manage-users', config);
    }
  }

  async function userById(id: string): Promise<KeycloakUser | undefined> {
    const user = await call('GET user', 'view-users', () => client.users.findOne({ id }));
    return user ? parseAnswer(userSchema, user, 'GET user') : undefined;
  }

  function lookupQuery(
    subject: Subject,
  ): { query: Record<string, string | boolean>; matches: (u: KeycloakUser) => boolean } | undefined {
    const same = (a: string | undefined, b: string) => a !== undefined && a.toLowerCase() === b.toLowerCase();
    if (config.findBy === 'email') {
      if (!subject.email) return undefined;
      const email = subject.email;
      return { query: { email, exact: true }, matches: (u) => same(u.email, email) };
    }
    if (config.findBy === 'username') {
      const username = config.usernameIs === 'email' ? subject.email : subject.employeeId;
      if (!username) return undefined;
      return { query: { username, exact: true }, matches: (u) => same(u.username, username) };
    }
    const value = subject.employeeId;
    return {
      query: { q: `${config.attribute}:${value}`, exact: true },
      matches: (u) => (u.attributes?.[config.attribute] ?? []).includes(value),
    };
  }

  async function findUser(subject: Subject): Promise<KeycloakUser | undefined> {
    const lookup = lookupQuery(subject);
    if (!lookup) return undefined;
    const found = await call('user search', 'view-users', () => client.users.find({ ...lookup.query, max: 10 }));
    // Keycloak's search can match more loosely than asked (case, prefixes): only exact matches count.
    const users = parseAnswer(z.array(userSchema), found, 'user search').filter(lookup.matches);
    if (users.length > 1) {
      throw new ConnectorError(
        `Keycloak realm ${config.realm}: ${users.length} users match ${config.findBy === 'attribute' ? config.attribute : config.findBy} of employee ${subject.employeeId} (${users.map((u) => u.username).join(', ')}); make the ${config.findBy === 'attribute' ? 'attribute' : config.findBy} unique, then retry`,
        false,
        'ambiguous_identity',
      );
    }
    return users[0];
  }

  async function sessionsOf(id: string): Promise<string[]> {
    const sessions = await call('GET user sessions', 'view-users', () => client.users.listSessions({ id }));
    return parseAnswer(z.array(z.object({ id: z.string() })), sessions, 'GET user sessions').map((s) => s.id);
  }

  /** The clients holding a consent or an offline token of the user. */
  async function grantsOf(id: string): Promise<z.infer<typeof consentSchema>[]> {
    const consents = await call('GET user consents', 'view-users', () => client.users.listConsents({ id }));
    return parseAnswer(z.array(consentSchema), consents, 'GET user consents');
  }

  async function entitlementsOf(id: string): Promise<Entitlement[]> {
    const [groups, mappings, links] = await Promise.all([
      call('GET user groups', 'view-users', () =>
        client.users.listGroups({ id, briefRepresentation: true, max: 1000 }),
      ),
      call('GET user role mappings', 'view-users', () => client.users.listRoleMappings({ id })),
      call('GET user identity-provider links', 'view-users', () => client.users.listFederatedIdentities({ id })),
    ]);
    const entitlements: Entitlement[] = [];
    for (const group of parseAnswer(z.array(groupSchema), groups, 'GET user groups'))
      entitlements.push({ id: `${GROUP}${group.path}`, kind: 'group', name: group.name });
    const roles = parseAnswer(mappingsSchema, mappings, 'GET user role mappings');
    for (const role of roles.realmMappings ?? [])
      entitlements.push({ id: `${REALM_ROLE}${role.name}`, kind: 'realm_role', name: role.name });
    for (const mapping of Object.values(roles.clientMappings ?? {}))
      for (const role of mapping.mappings)
        entitlements.push({
          id: `${CLIENT_ROLE}${mapping.client}/${role.name}`,
          kind: 'client_role',
          name: `${mapping.client} ${role.name}`,
        });
    for (const link of parseAnswer(z.array(linkSchema), links, 'GET user identity-provider links'))
      entitlements.push({ id: `${IDP_LINK}${link.identityProvider}`, kind: 'identity_provider_link' });
    return entitlements;
  }

  // ---- actions --------------------------------------------------------------------------------

  async function setEnabled(id: string, enabled: boolean): Promise<ApplyResult> {
    const user = await userById(id);
    if (!user) {
      if (!enabled) return { outcome: 'already', details: { userId: id, note: 'no such user' } };
      throw new ConnectorError(`Keycloak: user ${id} no longer exists; it cannot be re-enabled`, false, 'account_gone');
    }
    if (user.enabled === enabled) return { outcome: 'already', details: { userId: id, enabled } };
    // The full representation goes back: a partial one can clear attributes the user profile manages.
    const representation = await call('GET user', 'view-users', () => client.users.findOne({ id }));
    await call('PUT user', 'manage-users', () => client.users.update({ id }, { ...representation, enabled }));
    const after = await userById(id);
    if (after && after.enabled !== enabled)
      throw new ConnectorError(
        `Keycloak: user ${id} still has enabled=${after.enabled} after the update (a concurrent change?); retrying reads it again`,
        true,
        'keycloak_not_applied',
      );
    return { outcome: 'done', details: { userId: id, enabled } };
  }

  async function revokeSessions(id: string): Promise<ApplyResult> {
    const sessions = await sessionsOf(id).catch((err: unknown) => {
      if (err instanceof ConnectorError && err.code === 'keycloak_http_404') return undefined;
      throw err;
    });
    if (sessions === undefined) return { outcome: 'already', details: { userId: id, note: 'no such user' } };
    if (sessions.length === 0) return { outcome: 'already', details: { userId: id, sessions: 0 } };
    const outcome = await write('POST user logout', () => client.users.logout({ id }));
    const left = outcome === 'done' ? await sessionsOf(id) : [];
    if (left.length)
      throw new ConnectorError(
        `Keycloak: ${left.length} session(s) of user ${id} still listed after logout (a new sign-in?); retrying logs out again`,
        true,
        'keycloak_not_applied',
      );
    return { outcome, details: { userId: id, sessionsEnded: sessions.length } };
  }

  async function revokeTokens(id: string): Promise<ApplyResult> {
    let grants: z.infer<typeof consentSchema>[];
    try {
      grants = await grantsOf(id);
    } catch (err) {
      if (err instanceof ConnectorError && err.code === 'keycloak_http_404')
        return { outcome: 'already', details: { userId: id, note: 'no such user' } };
      throw err;
    }
    if (grants.length === 0) return { outcome: 'already', details: { userId: id, clients: [] } };
    for (const grant of grants)
      await write('DELETE user consent', () => client.users.revokeConsent({ id, clientId: grant.clientId }));
    const left = await grantsOf(id);
    if (left.length)
      throw new ConnectorError(
        `Keycloak: user ${id} still holds consents or offline tokens for ${left.map((g) => g.clientId).join(', ')} after revocation; retrying revokes them again`,
        true,
        'keycloak_not_applied',
      );
    return { outcome: 'done', details: { userId: id, clients: grants.map((g) => g.clientId) } };
  }

  async function removeEntitlement(id: string, target: Entitlement): Promise<ApplyResult> {
    const details = { userId: id, entitlement: target.id };
    if (!(await userById(id))) return { outcome: 'already', details: { ...details, note: 'no such user' } };
    if (target.id.startsWith(GROUP)) {
      const path = target.id.slice(GROUP.length);
      const groups = parseAnswer(
        z.array(groupSchema),
        await call('GET user groups', 'view-users', () =>
          client.users.listGroups({ id, briefRepresentation: true, max: 1000 }),
        ),
        'GET user groups',
      );
      const group = groups.find((g) => g.path === path);
      if (!group) return { outcome: 'already', details };
      return {
        outcome: await write('DELETE user group', () => client.users.delFromGroup({ id, groupId: group.id })),
        details,
      };
    }
    if (target.id.startsWith(REALM_ROLE) || target.id.startsWith(CLIENT_ROLE)) {
      const mappings = parseAnswer(
        mappingsSchema,
        await call('GET user role mappings', 'view-users', () => client.users.listRoleMappings({ id })),
        'GET user role mappings',
      );
      if (target.id.startsWith(REALM_ROLE)) {
        const name = target.id.slice(REALM_ROLE.length);
        const role = mappings.realmMappings?.find((r) => r.name === name);
        if (!role?.id) return { outcome: 'already', details };
        const outcome = await write('DELETE user realm role mapping', () =>
          client.users.delRealmRoleMappings({ id, roles: [{ id: role.id!, name: role.name }] }),
        );
        return { outcome, details };
      }
      const rest = target.id.slice(CLIENT_ROLE.length);
      const slash = rest.lastIndexOf('/');
      const [clientName, roleName] = [rest.slice(0, slash), rest.slice(slash + 1)];
      const mapping = Object.values(mappings.clientMappings ?? {}).find((m) => m.client === clientName);
      const role = mapping?.mappings.find((r) => r.name === roleName);
      if (!mapping || !role?.id) return { outcome: 'already', details };
      const outcome = await write('DELETE user client role mapping', () =>
        client.users.delClientRoleMappings({
          id,
          clientUniqueId: mapping.id,
          roles: [{ id: role.id!, name: role.name }],
        }),
      );
      return { outcome, details };
    }
    if (target.id.startsWith(IDP_LINK)) {
      const alias = target.id.slice(IDP_LINK.length);
      const links = parseAnswer(
        z.array(linkSchema),
        await call('GET user identity-provider links', 'view-users', () =>
          client.users.listFederatedIdentities({ id }),
        ),
        'GET user identity-provider links',
      );
      if (!links.some((l) => l.identityProvider === alias)) return { outcome: 'already', details };
      const outcome = await write('DELETE user identity-provider link', () =>
        client.users.delFromFederatedIdentity({ id, federatedIdentityId: alias }),
      );
      return { outcome, details };
    }
    throw new ConnectorError(
      `Keycloak: entitlement ${target.id} is not a group:, realm-role:, client-role: or idp-link: id`,
      false,
      'bad_action',
    );
  }

  async function deleteUser(id: string): Promise<ApplyResult> {
    if (!(await userById(id))) return { outcome: 'already', details: { userId: id } };
    const outcome = await write('DELETE user', () => client.users.del({ id }));
    if (await userById(id))
      throw new ConnectorError(
        `Keycloak: user ${id} still exists after DELETE; retrying deletes it again`,
        true,
        'keycloak_not_applied',
      );
    return {
      outcome,
      details: { userId: id, note: 'credentials, consents and identity-provider links went with the user' },
    };
  }

  async function apply(action: Action): Promise<ApplyResult> {
    const id = action.accountId;
    switch (action.kind) {
      case 'disable_login':
        return setEnabled(id, false);
      case 'enable_login':
        return setEnabled(id, true);
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
        return {
          outcome: 'not_applicable',
          details: { reason: 'a Keycloak user owns nothing that others depend on' },
        };
    }
    throw new ConnectorError(`unsupported action ${String(action.kind)}`, false, 'bad_action');
  }

  return {
    system,
    providesIdentity: true,
    async discover(subject: Subject): Promise<Discovery> {
      const user = await findUser(subject);
      if (!user) return { system, account: null, entitlements: [], credentials: [] };
      const [sessions, grants, entitlements] = await Promise.all([
        sessionsOf(user.id),
        grantsOf(user.id),
        entitlementsOf(user.id),
      ]);
      const credentials: Credential[] = [
        ...sessions.map((sessionId) => ({ id: `session:${sessionId}`, kind: 'session' as const })),
        // One entry per client: its consent and its offline tokens are revoked together.
        ...grants.map((grant) => ({ id: `grant:${grant.clientId}`, kind: 'token' as const })),
      ];
      return {
        system,
        account: { id: user.id, disabled: !user.enabled },
        entitlements,
        credentials,
        ...(user.email ? { identity: { email: user.email } } : {}),
      };
    },
    apply,
    async check() {
      // Reading one user proves the credentials and view-users; manage-users shows at the first write.
      await call('user search', 'view-users', () => client.users.find({ max: 1, briefRepresentation: true }));
    },
    async close() {},
  };
}
