/**
 * Microsoft Entra ID through Microsoft Graph v1.0 with `@microsoft/microsoft-graph-client`,
 * authenticated by `@azure/identity`'s ClientSecretCredential (client credentials of an app
 * registration in the tenant). The app needs these application permissions, admin-consented:
 *   - User.ReadWrite.All: find and read users, enable/disable, delete
 *   - AuditLog.Read.All: signInActivity (when the person last signed in), which is how sessions are read back
 *   - User.RevokeSessions.All: revokeSignInSessions
 *   - GroupMember.ReadWrite.All: memberOf, leave groups
 *   - RoleManagement.ReadWrite.Directory: directory role assignments, and leaving role-assignable groups
 *   - AppRoleAssignment.ReadWrite.All: app role assignments
 *   - DelegatedPermissionGrant.ReadWrite.All: the person's delegated consents (oauth2PermissionGrants)
 *   - LicenseAssignment.ReadWrite.All: direct licences
 *   - UserAuthenticationMethod.ReadWrite.All: authentication methods, removed before deletion
 *   - Application.ReadWrite.All: ownedObjects, and owners of applications / service principals
 * A 403 (`Authorization_RequestDenied`) names the permission the call needed.
 *
 * The person is the user whose `employeeId` is the HR id (`$filter=employeeId eq '…'` with
 * `$count=true` and `ConsistencyLevel: eventual`: Graph's advanced query form, which every filter on
 * employeeId accepts); failing that, the one whose userPrincipalName, then mail, is the person's
 * email. Two users, or an email match carrying another employeeId, stop with `ambiguous_identity`.
 * Entra is an identity provider: its mail (or UPN) correlates the other systems (`providesIdentity`).
 *
 * Action mapping (each reads the user back, so `already` means Graph agrees):
 * - disable_login: `PATCH /users/{id}` `{accountEnabled:false}`: no new sign-in or token refresh.
 * - enable_login (cancel): `{accountEnabled:true}`. Nothing removed is restored.
 * - revoke_sessions: `POST /users/{id}/revokeSignInSessions`, which moves
 *   signInSessionsValidFromDateTime to now: every refresh token and session cookie issued before
 *   is refused (Graph says within a few minutes). Read back: valid-from is not earlier than the last
 *   sign-in (signInActivity, interactive or not). A session credential is listed while it is.
 * - revoke_tokens: `DELETE /oauth2PermissionGrants/{id}` for each delegated consent the person
 *   granted (`/users/{id}/oauth2PermissionGrants`): the apps can no longer get tokens on their behalf.
 * - remove_entitlement, by entitlement id:
 *   `group:{id}` → `DELETE /groups/{gid}/members/{uid}/$ref`. A dynamic group (groupTypes has
 *   DynamicMembership) or one synchronised from on-premises AD cannot be left that way: a
 *   non-retryable error naming the group and what to do instead (an operator task). A
 *   role-assignable group also needs RoleManagement.ReadWrite.Directory. Licences the group assigns
 *   go with the membership (group-based licensing) and are reported in the details.
 *   `app-role:{resourceId}/{appRoleId}` → `DELETE /users/{id}/appRoleAssignments/{assignmentId}`.
 *   `directory-role:{roleDefinitionId}[@scope]` → `DELETE /roleManagement/directory/roleAssignments/{id}`
 *   (direct assignments; those through a role-assignable group go with the group).
 *   `license:{skuId}` → `POST /users/{id}/assignLicense` with removeLicenses. Only direct
 *   assignments are listed: one through a group (`licenseAssignmentStates[].assignedByGroup`) goes
 *   with that group's membership.
 *   `owner:application/{id}`, `owner:servicePrincipal/{id}` → `DELETE /…/{id}/owners/{uid}/$ref` when
 *   another owner remains. The sole owner is an operator task: someone must take the app over
 *   (its credentials, consent, renewal), and removing the last owner would leave it to no one. The
 *   disabled account cannot use its ownership meanwhile.
 * - delete_account: the user's authentication methods other than the password
 *   (`DELETE /users/{id}/authentication/{type}Methods/{mid}`), so a restore from the recycle bin
 *   does not bring back their phone or authenticator, then `DELETE /users/{id}`.
 * - transfer_ownership: not applicable here; owned apps are entitlements (above).
 *
 * Errors: 429 (Retry-After) and 5xx/network are retryable; 401 and token failures (tenant, client
 * id, secret) and 403 (the permission, named) go to an operator; 404 on a write means it is gone.
 *
 * `authorityHost` other than Microsoft's clouds (an Azure Stack, the local stand-in) turns instance
 * discovery off, as @azure/identity asks for authorities login.microsoftonline.com does not know.
 * `caCertificates` adds CAs to trust (a TLS-inspecting proxy's, or the stand-in's) for both the
 * token endpoint and Graph; both must be https, the libraries refuse anything else.
 */
import { AuthenticationError, ClientSecretCredential } from '@azure/identity';
import {
  AuthenticationHandler,
  Client,
  GraphError,
  HTTPMessageHandler,
  TelemetryHandler,
  type GraphRequest,
} from '@microsoft/microsoft-graph-client';
import type {
  AppRoleAssignment,
  AuthenticationMethod,
  DirectoryObject,
  Group,
  LicenseAssignmentState,
  OAuth2PermissionGrant,
  UnifiedRoleAssignment,
  User,
} from '@microsoft/microsoft-graph-types';
import { z } from 'zod';
import type { Action, Credential, Discovery, Entitlement } from '../../model/plan.js';
import type { Subject } from '../../model/request.js';
import { defineConnector } from './descriptor.js';
import { TrustedCaHttpHandler } from './graph-transport.js';
import { ConnectorError, type ApplyResult, type Connector } from './types.js';

const httpsUrl = (what: string) =>
  z
    .url()
    .refine(
      (value) => new URL(value).protocol === 'https:',
      `${what} must be https:// (the client libraries refuse http)`,
    )
    .transform((value) => value.replace(/\/+$/, ''));

export const entraSystemSchema = z.object({
  type: z.literal('entra'),
  /** The directory (tenant) id, a GUID, or its verified domain. */
  tenantId: z.string().min(1),
  /** The app registration's application (client) id. */
  clientId: z.string().min(1),
  /** A client secret of that app registration. */
  clientSecret: z.string().min(1),
  /** Graph's root with its version; national clouds have their own (graph.microsoft.us…). */
  graphBaseUrl: httpsUrl('graphBaseUrl').default('https://graph.microsoft.com/v1.0'),
  /** The Microsoft identity platform host that issues the tokens. */
  authorityHost: httpsUrl('authorityHost').default('https://login.microsoftonline.com'),
  /** Extra CA certificates to trust (PEM), for a TLS-inspecting proxy or a local stand-in. */
  caCertificates: z.string().includes('BEGIN CERTIFICATE', { message: 'PEM certificates' }).optional(),
  timeoutMs: z.number().int().positive().default(30_000),
});
export type EntraSystemConfig = z.infer<typeof entraSystemSchema>;

export const entraConnector = defineConnector({
  type: 'entra',
  configSchema: entraSystemSchema,
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
  create: (config, { system }) => createEntraConnector(system, config),
});

/** Microsoft's own authority hosts, which instance discovery knows (public, US Government, China). */
const MICROSOFT_AUTHORITY_HOSTS = new Set([
  'https://login.microsoftonline.com',
  'https://login.microsoftonline.us',
  'https://login.chinacloudapi.cn',
]);
const MICROSOFT_GRAPH_HOSTS = new Set([
  'graph.microsoft.com',
  'graph.microsoft.us',
  'dod-graph.microsoft.us',
  'microsoftgraph.chinacloudapi.cn',
]);

/** The application permission a call needs, named in a 403. */
type Permission =
  | 'User.Read.All'
  | 'User.ReadWrite.All'
  | 'AuditLog.Read.All'
  | 'User.RevokeSessions.All'
  | 'GroupMember.Read.All'
  | 'GroupMember.ReadWrite.All'
  | 'RoleManagement.Read.Directory'
  | 'RoleManagement.ReadWrite.Directory'
  | 'AppRoleAssignment.ReadWrite.All'
  | 'DelegatedPermissionGrant.ReadWrite.All'
  | 'LicenseAssignment.ReadWrite.All'
  | 'UserAuthenticationMethod.ReadWrite.All'
  | 'Application.ReadWrite.All';

// ---- errors -----------------------------------------------------------------------------------

const DEFAULT_RETRY_AFTER_MS = 30_000;

function retryAfterMs(headers: Headers | undefined): number {
  const value = headers?.get('retry-after');
  if (!value) return DEFAULT_RETRY_AFTER_MS;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : DEFAULT_RETRY_AFTER_MS;
}

function classify(err: unknown, doing: string, permission: Permission, config: EntraSystemConfig): ConnectorError {
  if (err instanceof ConnectorError) return err;
  if (err instanceof GraphError && err.statusCode > 0) {
    const { statusCode: status } = err;
    const said = err.code ? ` (${err.code}: ${err.message})` : err.message ? ` (${err.message})` : '';
    if (status === 429)
      return new ConnectorError(`Entra rate-limited ${doing}`, true, 'entra_rate_limited', retryAfterMs(err.headers));
    if (status >= 500 || status === 408)
      return new ConnectorError(`Entra ${doing} failed: HTTP ${status}${said}`, true, `entra_http_${status}`);
    if (status === 401)
      return new ConnectorError(
        `Entra ${doing} failed: HTTP 401${said}: Graph refused the app's token; check tenantId, clientId and graphBaseUrl`,
        false,
        'entra_unauthorized',
      );
    // signInActivity (how sessions are read back) is a premium feature: no permission grants it.
    if (status === 403 && err.code === 'Authentication_RequestFromNonPremiumTenantOrB2CTenant')
      return new ConnectorError(
        `Entra ${doing} failed: HTTP 403${said}: reading signInActivity needs a Microsoft Entra ID P1 or P2 licence in the tenant`,
        false,
        'entra_not_premium',
      );
    if (status === 403)
      return new ConnectorError(
        `Entra ${doing} failed: HTTP 403${said}: the app ${config.clientId} lacks the Microsoft Graph application permission ${permission}; add it (App registrations → API permissions → Microsoft Graph → Application permissions → ${permission}) and grant admin consent`,
        false,
        'entra_forbidden',
      );
    return new ConnectorError(`Entra ${doing} failed: HTTP ${status}${said}`, false, `entra_http_${status}`);
  }
  // Socket errors, timeouts (the signal's abort) and TLS failures: Graph may be back in a moment.
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  return new ConnectorError(`Entra ${doing} failed: ${message}`, true, 'entra_unreachable');
}

/** MSAL's server error (the token endpoint's answer), which @azure/identity wraps as the cause. */
interface MsalServerError {
  errorCode: string;
  errorMessage?: string;
  status?: number;
}
function msalServerError(err: unknown): MsalServerError | undefined {
  for (let at: unknown = err, depth = 0; at && depth < 3; at = (at as { cause?: unknown }).cause, depth++) {
    const candidate = at as Partial<MsalServerError> & { name?: string };
    if (candidate.name === 'ServerError' && typeof candidate.errorCode === 'string')
      return candidate as MsalServerError;
  }
  return undefined;
}

/** A token request's failure, as @azure/identity reports it: the settings, or the service away. */
function classifyToken(err: unknown, config: EntraSystemConfig): ConnectorError {
  const server = msalServerError(err);
  const status = err instanceof AuthenticationError ? err.statusCode : server?.status;
  const error = err instanceof AuthenticationError ? err.errorResponse.error : server?.errorCode;
  if (error && !(status === 429 || (status !== undefined && status >= 500))) {
    // The AADSTS line without its trace and correlation ids.
    const description = (
      server?.errorMessage ?? (err instanceof AuthenticationError ? err.errorResponse.errorDescription : '')
    )
      .split(' Trace ID:')[0]!
      .trim();
    const fix =
      error === 'invalid_tenant'
        ? 'fix tenantId (the directory id or a verified domain)'
        : error === 'unauthorized_client'
          ? `no app ${config.clientId} in tenant ${config.tenantId}: fix clientId`
          : error === 'invalid_client'
            ? `the client secret of app ${config.clientId} was refused (wrong or expired): put a current secret's value in the clientSecret variable`
            : 'check tenantId, clientId and clientSecret';
    return new ConnectorError(
      `Entra refused the app's credentials: ${error}${description ? ` (${description})` : ''}; ${fix}`,
      false,
      'entra_bad_credentials',
    );
  }
  const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  // MSAL reads the authority's OpenID configuration first; a wrong tenant and an unreachable host look the same.
  const hint = /endpoints_resolution_error/.test(message)
    ? `: could not read the OpenID configuration of ${config.authorityHost}/${config.tenantId} (a wrong tenantId, or the authority unreachable); check tenantId and authorityHost`
    : '';
  return new ConnectorError(`Entra token request failed: ${message}${hint}`, true, 'entra_token_unavailable');
}

const isNotFound = (err: unknown) => err instanceof GraphError && err.statusCode === 404;

// ---- entitlement and credential ids -----------------------------------------------------------

const GROUP = 'group:';
const APP_ROLE = 'app-role:';
const DIRECTORY_ROLE = 'directory-role:';
const LICENSE = 'license:';
const OWNER = 'owner:';
const SESSIONS = 'sign-in-sessions';
const GRANT = 'oauth2-grant:';

const PASSWORD_METHOD = '#microsoft.graph.passwordAuthenticationMethod';

type OwnedKind = 'application' | 'servicePrincipal';
const collectionOf = (kind: OwnedKind) => (kind === 'application' ? 'applications' : 'servicePrincipals');

interface Page<T> {
  value?: T[];
  '@odata.nextLink'?: string;
}

const quoted = (value: string) => `'${value.replace(/'/g, "''")}'`;

// ---- the connector ----------------------------------------------------------------------------

export function createEntraConnector(system: string, config: EntraSystemConfig): Connector {
  const graphUrl = new URL(config.graphBaseUrl);
  const version = graphUrl.pathname.replace(/^\/+|\/+$/g, '') || 'v1.0';
  const scope = `${graphUrl.origin}/.default`;
  const credential = new ClientSecretCredential(config.tenantId, config.clientId, config.clientSecret, {
    authorityHost: config.authorityHost,
    disableInstanceDiscovery: !MICROSOFT_AUTHORITY_HOSTS.has(config.authorityHost),
    // Temporal retries; a token request repeated inside the call would outlast its bound.
    retryOptions: { maxRetries: 0 },
    ...(config.caCertificates ? { tlsOptions: { ca: [config.caCertificates] } } : {}),
  });
  const authProvider = {
    // MSAL caches the token until shortly before it expires: this is a lookup, not a request.
    getAccessToken: async () => (await credential.getToken(scope)).token,
  };
  // The default chain without its RetryHandler: a 429 becomes a ConnectorError with Retry-After,
  // which pauses the system for every offboarding (call-bounds.ts) instead of sleeping in one call.
  const transport = config.caCertificates ? new TrustedCaHttpHandler(config.caCertificates) : undefined;
  const client = Client.initWithMiddleware({
    baseUrl: `${graphUrl.origin}/`,
    defaultVersion: version,
    middleware: [
      new AuthenticationHandler(authProvider),
      new TelemetryHandler(),
      transport ?? new HTTPMessageHandler(),
    ],
    ...(MICROSOFT_GRAPH_HOSTS.has(graphUrl.hostname) ? {} : { customHosts: new Set([graphUrl.hostname]) }),
  });

  async function ensureToken(): Promise<void> {
    try {
      await credential.getToken(scope, { abortSignal: AbortSignal.timeout(config.timeoutMs) });
    } catch (err) {
      throw classifyToken(err, config);
    }
  }

  const api = (path: string): GraphRequest => client.api(path).option('signal', AbortSignal.timeout(config.timeoutMs));

  async function call<T>(doing: string, permission: Permission, work: () => Promise<T>): Promise<T> {
    await ensureToken();
    try {
      return await work();
    } catch (err) {
      throw classify(err, doing, permission, config);
    }
  }

  /** A write: a 404 means what it removes (or the user) is already gone. */
  async function write(
    doing: string,
    permission: Permission,
    work: () => Promise<unknown>,
  ): Promise<'done' | 'already'> {
    await ensureToken();
    try {
      await work();
      return 'done';
    } catch (err) {
      if (isNotFound(err)) return 'already';
      throw classify(err, doing, permission, config);
    }
  }

  /** Every item of a collection, following `@odata.nextLink`. */
  async function all<T>(doing: string, permission: Permission, first: () => GraphRequest): Promise<T[]> {
    const items: T[] = [];
    let page = await call(doing, permission, () => first().get() as Promise<Page<T>>);
    for (;;) {
      items.push(...(page.value ?? []));
      const next = page['@odata.nextLink'];
      if (!next) return items;
      page = await call(doing, permission, () => api(next).get() as Promise<Page<T>>);
    }
  }

  const USER_FIELDS = 'id,userPrincipalName,mail,employeeId,accountEnabled,signInSessionsValidFromDateTime';

  async function userById(id: string, fields = USER_FIELDS): Promise<User | undefined> {
    await ensureToken();
    try {
      return (await api(`/users/${encodeURIComponent(id)}`)
        .select(fields)
        .get()) as User;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw classify(
        err,
        'GET user',
        fields.includes('signInActivity') ? 'AuditLog.Read.All' : 'User.Read.All',
        config,
      );
    }
  }

  async function usersWhere(field: 'employeeId' | 'userPrincipalName' | 'mail', value: string): Promise<User[]> {
    return all<User>(`user search by ${field}`, 'User.Read.All', () =>
      api('/users')
        .header('ConsistencyLevel', 'eventual')
        .filter(`${field} eq ${quoted(value)}`)
        .count(true)
        .select(USER_FIELDS)
        .top(10),
    );
  }

  function ambiguous(subject: Subject, users: User[], why: string): ConnectorError {
    return new ConnectorError(
      `Entra tenant ${config.tenantId}: ${why} for employee ${subject.employeeId} (${users.map((u) => `${u.userPrincipalName} ${u.id}`).join(', ')}); make employeeId unique (or set it on the right user), then retry`,
      false,
      'ambiguous_identity',
    );
  }

  async function findUser(subject: Subject): Promise<User | undefined> {
    const byId = await usersWhere('employeeId', subject.employeeId);
    if (byId.length > 1) throw ambiguous(subject, byId, `${byId.length} users carry employeeId ${subject.employeeId}`);
    if (byId[0]) return byId[0];
    if (!subject.email) return undefined;
    for (const field of ['userPrincipalName', 'mail'] as const) {
      const found = await usersWhere(field, subject.email);
      if (found.length > 1) throw ambiguous(subject, found, `${found.length} users have ${field} ${subject.email}`);
      const user = found[0];
      if (!user) continue;
      if (user.employeeId && user.employeeId.toLowerCase() !== subject.employeeId.toLowerCase())
        throw ambiguous(
          subject,
          found,
          `the user with ${field} ${subject.email} carries another employeeId (${user.employeeId})`,
        );
      return user;
    }
    return undefined;
  }

  // ---- what the user holds ----

  /** Sessions live: a sign-in (interactive or not) later than signInSessionsValidFromDateTime. */
  async function liveSessions(
    id: string,
  ): Promise<{ live: boolean; validFrom?: string; lastSignIn?: string } | undefined> {
    const user = await userById(id, 'id,signInSessionsValidFromDateTime,signInActivity');
    if (!user) return undefined;
    const activity = user.signInActivity;
    const times = [activity?.lastSignInDateTime, activity?.lastNonInteractiveSignInDateTime]
      .filter((t): t is string => typeof t === 'string')
      .map((t) => Date.parse(t));
    const validFrom = user.signInSessionsValidFromDateTime ?? undefined;
    if (times.length === 0) return { live: false, ...(validFrom ? { validFrom } : {}) };
    const last = Math.max(...times);
    // Whole seconds on both sides: a sign-in in the very second of the revocation counts as revoked.
    const live = !validFrom || Date.parse(validFrom) < last;
    return { live, ...(validFrom ? { validFrom } : {}), lastSignIn: new Date(last).toISOString() };
  }

  const groupsOf = async (id: string) =>
    (
      await all<DirectoryObject & Group>('GET user memberOf', 'GroupMember.Read.All', () =>
        api(`/users/${id}/memberOf`).select(
          'id,displayName,groupTypes,membershipRule,isAssignableToRole,onPremisesSyncEnabled',
        ),
      )
    ).filter((o) => (o as { '@odata.type'?: string })['@odata.type'] === '#microsoft.graph.group');

  const appRolesOf = (id: string) =>
    all<AppRoleAssignment>('GET user appRoleAssignments', 'AppRoleAssignment.ReadWrite.All', () =>
      api(`/users/${id}/appRoleAssignments`),
    );

  const directoryRolesOf = (id: string) =>
    all<UnifiedRoleAssignment>('GET directory role assignments', 'RoleManagement.Read.Directory', () =>
      api('/roleManagement/directory/roleAssignments')
        .filter(`principalId eq ${quoted(id)}`)
        .expand('roleDefinition'),
    );

  const grantsOf = (id: string) =>
    all<OAuth2PermissionGrant>('GET user oauth2PermissionGrants', 'DelegatedPermissionGrant.ReadWrite.All', () =>
      api(`/users/${id}/oauth2PermissionGrants`),
    );

  const ownedOf = async (id: string) =>
    (
      await all<DirectoryObject & { displayName?: string }>('GET user ownedObjects', 'Application.ReadWrite.All', () =>
        api(`/users/${id}/ownedObjects`),
      )
    ).flatMap((o) => {
      const type = (o as { '@odata.type'?: string })['@odata.type'];
      const kind: OwnedKind | undefined =
        type === '#microsoft.graph.application'
          ? 'application'
          : type === '#microsoft.graph.servicePrincipal'
            ? 'servicePrincipal'
            : undefined;
      return kind && o.id ? [{ kind, id: o.id, displayName: o.displayName ?? o.id }] : [];
    });

  async function licenseStatesOf(id: string): Promise<LicenseAssignmentState[] | undefined> {
    const user = await userById(id, 'id,licenseAssignmentStates');
    return user ? (user.licenseAssignmentStates ?? []) : undefined;
  }

  const directoryRoleId = (a: UnifiedRoleAssignment) =>
    `${DIRECTORY_ROLE}${a.roleDefinitionId}${a.directoryScopeId && a.directoryScopeId !== '/' ? `@${a.directoryScopeId}` : ''}`;

  async function entitlementsOf(id: string): Promise<Entitlement[]> {
    const [groups, appRoles, roles, licenses, owned] = await Promise.all([
      groupsOf(id),
      appRolesOf(id),
      directoryRolesOf(id),
      licenseStatesOf(id),
      ownedOf(id),
    ]);
    const entitlements: Entitlement[] = [];
    for (const group of groups)
      entitlements.push({ id: `${GROUP}${group.id}`, kind: 'group', name: group.displayName ?? undefined });
    for (const a of appRoles)
      entitlements.push({
        id: `${APP_ROLE}${a.resourceId}/${a.appRoleId}`,
        kind: 'app_role',
        name: a.resourceDisplayName ?? undefined,
      });
    for (const a of roles)
      entitlements.push({
        id: directoryRoleId(a),
        kind: 'directory_role',
        name: a.roleDefinition?.displayName ?? undefined,
      });
    const direct = new Set((licenses ?? []).filter((s) => !s.assignedByGroup && s.skuId).map((s) => s.skuId!));
    for (const skuId of direct) entitlements.push({ id: `${LICENSE}${skuId}`, kind: 'license' });
    for (const o of owned)
      entitlements.push({ id: `${OWNER}${o.kind}/${o.id}`, kind: `${o.kind}_owner`, name: o.displayName });
    return entitlements;
  }

  // ---- actions ----

  async function setEnabled(id: string, enabled: boolean): Promise<ApplyResult> {
    const user = await userById(id);
    if (!user) {
      if (!enabled) return { outcome: 'already', details: { userId: id, note: 'no such user' } };
      throw new ConnectorError(`Entra: user ${id} no longer exists; it cannot be re-enabled`, false, 'account_gone');
    }
    if (user.accountEnabled === enabled)
      return { outcome: 'already', details: { userId: id, accountEnabled: enabled } };
    await call('PATCH user accountEnabled', 'User.ReadWrite.All', () =>
      api(`/users/${id}`).patch({ accountEnabled: enabled }),
    );
    const after = await userById(id);
    if (after && after.accountEnabled !== enabled)
      throw new ConnectorError(
        `Entra: user ${id} still has accountEnabled=${after.accountEnabled} after the update; retrying reads it again`,
        true,
        'entra_not_applied',
      );
    return { outcome: 'done', details: { userId: id, accountEnabled: enabled } };
  }

  async function revokeSessions(id: string): Promise<ApplyResult> {
    const before = await liveSessions(id);
    if (!before) return { outcome: 'already', details: { userId: id, note: 'no such user' } };
    if (!before.live) return { outcome: 'already', details: { userId: id, ...before } };
    const outcome = await write('POST revokeSignInSessions', 'User.RevokeSessions.All', () =>
      api(`/users/${id}/revokeSignInSessions`).post({}),
    );
    const after = await liveSessions(id);
    if (after?.live)
      throw new ConnectorError(
        `Entra: user ${id} signed in at ${after.lastSignIn} after signInSessionsValidFromDateTime ${after.validFrom ?? '(none)'}; retrying revokes again`,
        true,
        'entra_not_applied',
      );
    return {
      outcome,
      details: {
        userId: id,
        signInSessionsValidFromDateTime: after?.validFrom,
        note: 'refresh tokens and session cookies issued before this time are refused; Graph says within a few minutes',
      },
    };
  }

  async function revokeTokens(id: string): Promise<ApplyResult> {
    if (!(await userById(id))) return { outcome: 'already', details: { userId: id, note: 'no such user' } };
    const grants = await grantsOf(id);
    if (grants.length === 0) return { outcome: 'already', details: { userId: id, grants: [] } };
    for (const grant of grants)
      await write('DELETE oauth2PermissionGrant', 'DelegatedPermissionGrant.ReadWrite.All', () =>
        api(`/oauth2PermissionGrants/${grant.id}`).delete(),
      );
    const left = await grantsOf(id);
    if (left.length)
      throw new ConnectorError(
        `Entra: user ${id} still has ${left.length} delegated permission grant(s) after revocation; retrying revokes them again`,
        true,
        'entra_not_applied',
      );
    return {
      outcome: 'done',
      details: { userId: id, grants: grants.map((g) => ({ id: g.id, clientId: g.clientId, scope: g.scope })) },
    };
  }

  async function leaveGroup(id: string, groupId: string, details: Record<string, unknown>): Promise<ApplyResult> {
    const group = (await groupsOf(id)).find((g) => g.id === groupId);
    if (!group) return { outcome: 'already', details };
    const name = `${group.displayName ?? groupId} (${groupId})`;
    if (group.groupTypes?.includes('DynamicMembership'))
      throw new ConnectorError(
        `Entra: group ${name} has dynamic membership (rule ${group.membershipRule ?? 'unknown'}): a member cannot be removed, the rule decides. Change the user attribute the rule reads (or the rule) in Entra, then retry; or skip if the disabled account is enough`,
        false,
        'entra_dynamic_group',
      );
    if (group.onPremisesSyncEnabled)
      throw new ConnectorError(
        `Entra: group ${name} is synchronised from on-premises Active Directory: its members can only be changed there. Remove the person from the group in AD (the AD system's offboarding does, if it is configured), wait for the next sync, then retry`,
        false,
        'entra_synced_group',
      );
    const licenses = ((await licenseStatesOf(id)) ?? [])
      .filter((s) => s.assignedByGroup === groupId)
      .map((s) => s.skuId);
    const permission: Permission = group.isAssignableToRole
      ? 'RoleManagement.ReadWrite.Directory'
      : 'GroupMember.ReadWrite.All';
    const outcome = await write(
      group.isAssignableToRole ? 'DELETE member of role-assignable group' : 'DELETE group member',
      permission,
      () => api(`/groups/${groupId}/members/${id}/$ref`).delete(),
    );
    if ((await groupsOf(id)).some((g) => g.id === groupId))
      throw new ConnectorError(
        `Entra: user ${id} is still in group ${name} after removal; retrying`,
        true,
        'entra_not_applied',
      );
    return {
      outcome,
      details: {
        ...details,
        group: group.displayName,
        ...(licenses.length ? { licensesAssignedByGroup: licenses } : {}),
      },
    };
  }

  async function removeAppRole(id: string, target: string, details: Record<string, unknown>): Promise<ApplyResult> {
    const [resourceId, appRoleId] = target.split('/');
    const matching = (list: AppRoleAssignment[]) =>
      list.filter((a) => a.resourceId === resourceId && a.appRoleId === appRoleId);
    const found = matching(await appRolesOf(id));
    if (found.length === 0) return { outcome: 'already', details };
    for (const a of found)
      await write('DELETE appRoleAssignment', 'AppRoleAssignment.ReadWrite.All', () =>
        api(`/users/${id}/appRoleAssignments/${a.id}`).delete(),
      );
    if (matching(await appRolesOf(id)).length)
      throw new ConnectorError(
        `Entra: app role assignment ${target} of user ${id} still listed; retrying`,
        true,
        'entra_not_applied',
      );
    return { outcome: 'done', details: { ...details, resource: found[0]?.resourceDisplayName } };
  }

  async function removeDirectoryRole(
    id: string,
    entitlementId: string,
    details: Record<string, unknown>,
  ): Promise<ApplyResult> {
    const matching = (list: UnifiedRoleAssignment[]) => list.filter((a) => directoryRoleId(a) === entitlementId);
    const found = matching(await directoryRolesOf(id));
    if (found.length === 0) return { outcome: 'already', details };
    for (const a of found)
      await write('DELETE directory role assignment', 'RoleManagement.ReadWrite.Directory', () =>
        api(`/roleManagement/directory/roleAssignments/${a.id}`).delete(),
      );
    if (matching(await directoryRolesOf(id)).length)
      throw new ConnectorError(
        `Entra: directory role ${entitlementId} of user ${id} still assigned; retrying`,
        true,
        'entra_not_applied',
      );
    return { outcome: 'done', details: { ...details, role: found[0]?.roleDefinition?.displayName } };
  }

  async function removeLicense(id: string, skuId: string, details: Record<string, unknown>): Promise<ApplyResult> {
    const states = await licenseStatesOf(id);
    const direct = (list: LicenseAssignmentState[]) => list.some((s) => s.skuId === skuId && !s.assignedByGroup);
    const viaGroups = (states ?? [])
      .filter((s) => s.skuId === skuId && s.assignedByGroup)
      .map((s) => s.assignedByGroup);
    const report = viaGroups.length ? { alsoAssignedByGroups: viaGroups } : {};
    if (!states || !direct(states)) return { outcome: 'already', details: { ...details, ...report } };
    await call('POST assignLicense', 'LicenseAssignment.ReadWrite.All', () =>
      api(`/users/${id}/assignLicense`).post({ addLicenses: [], removeLicenses: [skuId] }),
    );
    if (direct((await licenseStatesOf(id)) ?? []))
      throw new ConnectorError(
        `Entra: licence ${skuId} still assigned directly to user ${id}; retrying`,
        true,
        'entra_not_applied',
      );
    return { outcome: 'done', details: { ...details, ...report } };
  }

  async function removeOwnership(id: string, target: string, details: Record<string, unknown>): Promise<ApplyResult> {
    const [kind, objectId] = target.split('/') as [OwnedKind, string];
    if (kind !== 'application' && kind !== 'servicePrincipal')
      throw new ConnectorError(
        `Entra: owner entitlement ${target} is not application/ or servicePrincipal/`,
        false,
        'bad_action',
      );
    const path = `/${collectionOf(kind)}/${objectId}`;
    const ownersOf = async () => {
      await ensureToken();
      try {
        return await all<DirectoryObject>(`GET ${kind} owners`, 'Application.ReadWrite.All', () =>
          api(`${path}/owners`),
        );
      } catch (err) {
        if (err instanceof ConnectorError && err.code === 'entra_http_404') return [];
        throw err;
      }
    };
    const owners = await ownersOf();
    if (!owners.some((o) => o.id === id)) return { outcome: 'already', details };
    const owned = (await ownedOf(id)).find((o) => o.id === objectId);
    const name = `${kind} ${owned?.displayName ?? objectId} (${objectId})`;
    if (owners.length === 1)
      throw new ConnectorError(
        `Entra: the person is the only owner of ${name}. Someone must take it over: add a new owner (Entra admin center → ${kind === 'application' ? 'App registrations' : 'Enterprise applications'} → ${owned?.displayName ?? objectId} → Owners), then retry, which removes the person; or skip to leave them as owner of record (their account is disabled)`,
        false,
        'entra_sole_owner',
      );
    const outcome = await write(`DELETE ${kind} owner`, 'Application.ReadWrite.All', () =>
      api(`${path}/owners/${id}/$ref`).delete(),
    );
    if ((await ownersOf()).some((o) => o.id === id))
      throw new ConnectorError(`Entra: user ${id} is still an owner of ${name}; retrying`, true, 'entra_not_applied');
    return { outcome, details: { ...details, owned: owned?.displayName, ownersLeft: owners.length - 1 } };
  }

  async function removeEntitlement(id: string, target: Entitlement): Promise<ApplyResult> {
    const details = { userId: id, entitlement: target.id };
    if (!(await userById(id, 'id'))) return { outcome: 'already', details: { ...details, note: 'no such user' } };
    if (target.id.startsWith(GROUP)) return leaveGroup(id, target.id.slice(GROUP.length), details);
    if (target.id.startsWith(APP_ROLE)) return removeAppRole(id, target.id.slice(APP_ROLE.length), details);
    if (target.id.startsWith(DIRECTORY_ROLE)) return removeDirectoryRole(id, target.id, details);
    if (target.id.startsWith(LICENSE)) return removeLicense(id, target.id.slice(LICENSE.length), details);
    if (target.id.startsWith(OWNER)) return removeOwnership(id, target.id.slice(OWNER.length), details);
    throw new ConnectorError(
      `Entra: entitlement ${target.id} is not a group:, app-role:, directory-role:, license: or owner: id`,
      false,
      'bad_action',
    );
  }

  async function deleteUser(id: string): Promise<ApplyResult> {
    if (!(await userById(id, 'id'))) return { outcome: 'already', details: { userId: id } };
    const methods = await all<AuthenticationMethod & { '@odata.type'?: string }>(
      'GET authentication methods',
      'UserAuthenticationMethod.ReadWrite.All',
      () => api(`/users/${id}/authentication/methods`),
    );
    const removed: string[] = [];
    for (const method of methods) {
      const type = method['@odata.type'] ?? '';
      const match = /^#microsoft\.graph\.(\w+)AuthenticationMethod$/.exec(type);
      // The password cannot be deleted (it goes with the user); an unknown type is left to the deletion.
      if (!match || type === PASSWORD_METHOD || !method.id) continue;
      await write(`DELETE ${match[1]} authentication method`, 'UserAuthenticationMethod.ReadWrite.All', () =>
        api(`/users/${id}/authentication/${match[1]}Methods/${method.id}`).delete(),
      );
      removed.push(match[1]!);
    }
    const owned = await ownedOf(id);
    const outcome = await write('DELETE user', 'User.ReadWrite.All', () => api(`/users/${id}`).delete());
    if (await userById(id, 'id'))
      throw new ConnectorError(
        `Entra: user ${id} still exists after DELETE; retrying deletes it again`,
        true,
        'entra_not_applied',
      );
    return {
      outcome,
      details: {
        userId: id,
        authenticationMethodsRemoved: removed,
        ...(owned.length ? { ownerOf: owned.map((o) => `${o.kind} ${o.displayName}`) } : {}),
        note: 'the user is in the recycle bin for 30 days; memberships, role and app assignments went with it',
      },
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
          details: { reason: 'apps the person owns are owner: entitlements, handed over through remove_entitlement' },
        };
    }
    throw new ConnectorError(`unsupported action ${String(action.kind)}`, false, 'bad_action');
  }

  return {
    system,
    providesIdentity: true,
    async discover(subject: Subject): Promise<Discovery> {
      const user = await findUser(subject);
      if (!user?.id) return { system, account: null, entitlements: [], credentials: [] };
      const id = user.id;
      const [sessions, grants, entitlements] = await Promise.all([liveSessions(id), grantsOf(id), entitlementsOf(id)]);
      const credentials: Credential[] = [
        ...(sessions?.live ? [{ id: SESSIONS, kind: 'session' as const }] : []),
        ...grants.map((g) => ({ id: `${GRANT}${g.id}`, kind: 'token' as const })),
      ];
      const email = user.mail ?? user.userPrincipalName ?? undefined;
      return {
        system,
        account: { id, disabled: user.accountEnabled === false },
        entitlements,
        credentials,
        ...(email ? { identity: { email } } : {}),
      };
    },
    apply,
    async check() {
      // The token proves tenant, client id and secret; one user read proves User.Read.All.
      await call('user list', 'User.Read.All', () => api('/users').select('id').top(1).get());
    },
    async close() {
      transport?.close();
    },
  };
}
