/**
 * A local stand-in for one Microsoft Entra ID tenant: the Microsoft identity platform's token
 * endpoint and Microsoft Graph v1.0, seeded from the sample organisation, on one HTTPS server bound
 * to 127.0.0.1. HTTPS because the clients insist on it: @azure/identity refuses an `authorityHost`
 * that is not https ("The authorityHost address must use the 'https' protocol", and MSAL's
 * `authority_uri_insecure` below it), and the Graph client attaches the bearer token only to https
 * URLs. The certificate is made at start by `openssl` for 127.0.0.1 (`caCertificate` is the PEM to
 * trust); nothing is kept on disk.
 *
 * Identity platform: `GET /{tenant}/v2.0/.well-known/openid-configuration` (MSAL reads it when
 * instance discovery is off) and `POST /{tenant}/oauth2/v2.0/token` with `grant_type=client_credentials`,
 * `client_id`, `client_secret`, `scope={graph}/.default`. The access token is a JWT whose `roles`
 * claim holds the application permissions granted to the client, as a real tenant's does; Graph
 * here checks every call against those roles and answers 403 `Authorization_RequestDenied`
 * "Insufficient privileges to complete the operation." when none of the permissions the call
 * accepts is granted. Token errors are `{error, error_description: "AADSTS…", error_codes, timestamp,
 * trace_id, correlation_id}`: 400 invalid_tenant (AADSTS90002), 400 unauthorized_client (AADSTS700016,
 * unknown client), 401 invalid_client (AADSTS7000215, wrong secret).
 *
 * Graph (`/v1.0`): users (`$filter` on employeeId, mail or userPrincipalName with `eq`, `$select`,
 * `$count=true` only with `ConsistencyLevel: eventual`, as Graph's advanced queries require), PATCH
 * accountEnabled, revokeSignInSessions (sets signInSessionsValidFromDateTime), signInActivity (needs
 * AuditLog.Read.All), memberOf, `DELETE /groups/{id}/members/{id}/$ref` (refused for dynamic and
 * on-premises-synced groups; a role-assignable group also needs RoleManagement.ReadWrite.Directory),
 * appRoleAssignments, directory role assignments (`/roleManagement/directory/roleAssignments`,
 * `$filter=principalId eq`, `$expand=roleDefinition`), oauth2PermissionGrants, assignLicense
 * (a licence inherited from a group cannot be removed directly; leaving the group takes it, as
 * group-based licensing does), authentication methods, ownedObjects and application /
 * service-principal owners, DELETE user. Collections page with `@odata.nextLink` ($skiptoken) at
 * `pageSize` (100 unless the test sets it smaller). Errors are Graph's
 * `{error:{code, message, innerError:{date, "request-id", "client-request-id"}}}`.
 *
 * Faults (`inject()` or `POST /_sandbox/faults`): latency, the next N Graph requests answered 429
 * `TooManyRequests` with `Retry-After` seconds, or 503 `serviceNotAvailable`. `GET /_sandbox/state`
 * reads the tenant, `POST /_sandbox/reset` reseeds, `POST /_sandbox/users/{id}/sign-in` records a
 * sign-in (what a real sign-in leaves in signInActivity).
 *
 * Not modelled: delegated tokens, token signature validation by keys (the stand-in checks its own
 * HMAC), transitive memberships, administrative units, directory roles through memberOf, PIM
 * eligibility, the propagation delays Graph has (eventual consistency, "a few minutes" for
 * revoked sessions, the background processing of group-based licences: here all immediate),
 * conditions on privileged users (changing an admin's account needs a privileged role), the
 * recycle bin (deleted users are gone), and the exact error texts Microsoft does not document for
 * removing a member of a dynamic group and for removing a licence the user does not have.
 */
import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { SAMPLE_PEOPLE } from './org.js';

export const ENTRA_SANDBOX_TENANT_ID = '7f1c0d2a-5e3b-4c8d-9a61-0ffb0a4d0001';

/** Every application permission the connector uses (least privileged, docs/design.md). */
export const ENTRA_CONNECTOR_PERMISSIONS = [
  'User.ReadWrite.All',
  'User.RevokeSessions.All',
  'AuditLog.Read.All',
  'GroupMember.ReadWrite.All',
  'RoleManagement.ReadWrite.Directory',
  'AppRoleAssignment.ReadWrite.All',
  'DelegatedPermissionGrant.ReadWrite.All',
  'LicenseAssignment.ReadWrite.All',
  'UserAuthenticationMethod.ReadWrite.All',
  'Application.ReadWrite.All',
] as const;

/** App registrations that may request tokens; fictitious secrets. */
export const ENTRA_SANDBOX_CLIENTS = {
  offboard: {
    clientId: '0ffb0a4d-0000-4000-8000-000000000001',
    clientSecret: 'sandbox~offboard~full',
    roles: [...ENTRA_CONNECTOR_PERMISSIONS],
  },
  /** Consented to everything but RoleManagement.ReadWrite.Directory. */
  noRoleManagement: {
    clientId: '0ffb0a4d-0000-4000-8000-000000000002',
    clientSecret: 'sandbox~offboard~no-roles',
    roles: ENTRA_CONNECTOR_PERMISSIONS.filter((p) => p !== 'RoleManagement.ReadWrite.Directory'),
  },
  /** An auditor's app: reads only. */
  readOnly: {
    clientId: '0ffb0a4d-0000-4000-8000-000000000003',
    clientSecret: 'sandbox~auditor~read',
    roles: [
      'User.Read.All',
      'AuditLog.Read.All',
      'GroupMember.Read.All',
      'RoleManagement.Read.Directory',
      'Directory.Read.All',
      'UserAuthenticationMethod.Read.All',
    ],
  },
} as const;

/** Built-in role template ids (the same in every tenant). */
export const ENTRA_ROLES = {
  globalAdministrator: { id: '62e90394-69f5-4237-9190-012177145e10', displayName: 'Global Administrator' },
  userAdministrator: { id: 'fe930be7-5e62-47db-91af-98c3a49a38b1', displayName: 'User Administrator' },
  helpdeskAdministrator: { id: '729827e3-9c14-49f7-bb1b-9608f156bbb8', displayName: 'Helpdesk Administrator' },
} as const;

/** Licence SKUs seeded: E3 assigned directly, EMS E3 through the engineering group. */
export const ENTRA_SKUS = {
  officeE3: { skuId: '6fd2c87f-b296-42f0-b197-1e91e994b900', skuPartNumber: 'ENTERPRISEPACK' },
  emsE3: { skuId: 'efccb6f7-5641-4e0e-bd10-b4976e1bf68e', skuPartNumber: 'EMS' },
} as const;

const PASSWORD_METHOD_ID = '28c10230-6103-485e-b985-444c60001490';
/** Everyone but the keeper who has no sign-in recorded signed in at this time. */
const LAST_SIGN_IN = '2026-11-30T08:15:00Z';

/** A stable GUID for a seeded object, so that tests and configs can name it. */
export function entraIdFor(kind: string, key: string): string {
  const hex = createHash('sha256').update(`${kind}:${key}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
export const entraUserIdFor = (employeeId: string) => entraIdFor('user', employeeId);
export const entraGroupIdFor = (name: string) => entraIdFor('group', name);

export interface EntraUser {
  id: string;
  displayName: string;
  givenName: string;
  surname: string;
  userPrincipalName: string;
  mail: string | null;
  employeeId: string | null;
  employeeType: string | null;
  accountEnabled: boolean;
  signInSessionsValidFromDateTime: string;
  lastSignInDateTime: string | null;
  /** Directly assigned SKUs (group-based ones are added from the groups). */
  directLicenses: string[];
  authenticationMethods: { id: string; type: string }[];
}
export interface EntraGroup {
  id: string;
  displayName: string;
  groupTypes: string[];
  membershipRule: string | null;
  isAssignableToRole: boolean;
  onPremisesSyncEnabled: boolean | null;
  members: string[];
  /** SKUs the group assigns to its members (group-based licensing). */
  licenses: string[];
}
export interface EntraOwnedApp {
  id: string;
  appId: string;
  displayName: string;
  kind: 'application' | 'servicePrincipal';
  owners: string[];
}
export interface EntraTenant {
  users: EntraUser[];
  groups: EntraGroup[];
  appRoleAssignments: {
    id: string;
    principalId: string;
    principalDisplayName: string;
    resourceId: string;
    resourceDisplayName: string;
    appRoleId: string;
  }[];
  roleAssignments: { id: string; principalId: string; roleDefinitionId: string; directoryScopeId: string }[];
  oauth2PermissionGrants: {
    id: string;
    clientId: string;
    consentType: 'Principal';
    principalId: string;
    resourceId: string;
    scope: string;
  }[];
  apps: EntraOwnedApp[];
  /** `METHOD /path` of every Graph request, for tests. */
  requests: string[];
  /** Tokens issued by the token endpoint, by client id. */
  tokensIssued: Record<string, number>;
}

export const entraFaultsSchema = z.object({
  latencyMs: z.number().int().min(0).optional(),
  /** The next `count` Graph requests answer 429 TooManyRequests with `Retry-After: retryAfterSeconds`. */
  tooManyRequests: z.object({ count: z.number().int().min(0), retryAfterSeconds: z.number().int().min(0) }).optional(),
  /** The next N Graph requests answer 503 serviceNotAvailable. */
  serverErrors: z.number().int().min(0).optional(),
  /** Collections answer at most this many items a page (Graph's default is 100). */
  pageSize: z.number().int().min(1).optional(),
});
export type EntraFaults = z.infer<typeof entraFaultsSchema>;

export interface EntraSandbox {
  /** `https://127.0.0.1:<port>`: the authority host (login) and the Graph host both. */
  url: string;
  graphBaseUrl: string;
  authorityHost: string;
  tenantId: string;
  /** The PEM of the certificate the server presents, to trust (the connector's `caCertificates`). */
  caCertificate: string;
  state: EntraTenant;
  inject(faults: EntraFaults): void;
  /** Records a sign-in of the user now, as a real sign-in leaves in signInActivity. */
  signIn(userId: string): void;
  reset(): void;
  stop(): Promise<void>;
}

// ---- seed ------------------------------------------------------------------------------------

/** Employee ids the tests use for the cases the sample data does not otherwise have. */
export const ENTRA_DUPLICATE_EMPLOYEE_ID = 'E1040';
export const ENTRA_MISSING_EMPLOYEE_ID = 'E1059';
/** A contractor in the dynamic contractors group who also owns an app alone. */
export const ENTRA_SOLE_OWNER_EMPLOYEE_ID = 'E1005';

/**
 * The sample tenant. `awkwardCases` (on by default, for the connector's own tests) adds what Graph
 * cannot undo by removal: a dynamic contractors group, an AD-synced hr-records group and an app
 * E1005 owns alone, each of which becomes an operator task. `npm start` and the end-to-end tests
 * leave them out, so that every sample person's offboarding can end clean.
 */
function seed(awkwardCases: boolean): EntraTenant {
  const tenant: EntraTenant = {
    users: [],
    groups: [],
    appRoleAssignments: [],
    roleAssignments: [],
    oauth2PermissionGrants: [],
    apps: [],
    requests: [],
    tokensIssued: {},
  };
  const group = (displayName: string, extra: Partial<EntraGroup> = {}): EntraGroup => {
    const created: EntraGroup = {
      id: entraGroupIdFor(displayName),
      displayName,
      groupTypes: [],
      membershipRule: null,
      isAssignableToRole: false,
      onPremisesSyncEnabled: null,
      members: [],
      licenses: [],
      ...extra,
    };
    tenant.groups.push(created);
    return created;
  };
  const groups: Record<string, EntraGroup> = {
    engineering: group('engineering', { licenses: [ENTRA_SKUS.emsE3.skuId] }),
    finance: group('finance'),
    'vpn-users': group('vpn-users'),
    developers: group('developers'),
    'domain-admins': group('domain-admins', { isAssignableToRole: true }),
    'prod-access': group('prod-access'),
    sudoers: group('sudoers'),
    'hr-records': group('hr-records', awkwardCases ? { onPremisesSyncEnabled: true } : {}),
  };
  const contractors: EntraGroup = awkwardCases
    ? group('contractors', {
        groupTypes: ['DynamicMembership'],
        membershipRule: '(user.employeeType -eq "contractor")',
      })
    : group('contractors');
  const crm = { id: entraIdFor('sp', 'crm'), displayName: 'CRM' };
  const wiki = { id: entraIdFor('sp', 'wiki'), displayName: 'Wiki' };
  const ownApp = (displayName: string, owners: string[]) => {
    for (const kind of ['application', 'servicePrincipal'] as const)
      tenant.apps.push({
        id: entraIdFor(kind, displayName),
        appId: entraIdFor('appId', displayName),
        displayName,
        kind,
        owners: [...owners],
      });
  };

  SAMPLE_PEOPLE.forEach((person, i) => {
    if (person.employeeId === ENTRA_MISSING_EMPLOYEE_ID) return;
    const id = entraUserIdFor(person.employeeId);
    tenant.users.push({
      id,
      displayName: `${person.givenName} ${person.sn}`,
      givenName: person.givenName,
      surname: person.sn,
      userPrincipalName: person.email,
      mail: person.email,
      employeeId: person.employeeId,
      employeeType: person.employmentType === 'contractor' ? 'contractor' : 'employee',
      accountEnabled: true,
      signInSessionsValidFromDateTime: '2026-01-05T09:00:00Z',
      lastSignInDateTime: LAST_SIGN_IN,
      directLicenses: [ENTRA_SKUS.officeE3.skuId],
      authenticationMethods: [
        { id: PASSWORD_METHOD_ID, type: 'password' },
        { id: entraIdFor('authenticator', person.employeeId), type: 'microsoftAuthenticator' },
        { id: '3179e48a-750b-4051-897c-87b9720928f7', type: 'phone' },
      ],
    });
    for (const name of person.groups) groups[name]?.members.push(id);
    if (person.employmentType === 'contractor') contractors.members.push(id);
    if (person.employeeId === 'E1000') return;
    const name = `${person.givenName} ${person.sn}`;
    tenant.appRoleAssignments.push({
      id: entraIdFor('appRoleAssignment', `${person.employeeId}/crm`),
      principalId: id,
      principalDisplayName: name,
      resourceId: crm.id,
      resourceDisplayName: crm.displayName,
      appRoleId: '00000000-0000-0000-0000-000000000000',
    });
    tenant.oauth2PermissionGrants.push({
      id: entraIdFor('grant', person.employeeId),
      clientId: wiki.id,
      consentType: 'Principal',
      principalId: id,
      resourceId: entraIdFor('sp', 'graph'),
      scope: 'openid profile offline_access User.Read',
    });
    // Every third person administers users directly (not through a group).
    if (i % 3 === 1)
      tenant.roleAssignments.push({
        id: entraIdFor('roleAssignment', person.employeeId),
        principalId: id,
        roleDefinitionId: ENTRA_ROLES.userAdministrator.id,
        directoryScopeId: '/',
      });
  });
  // Two accounts carry the same employee id (a migration left a copy): an ambiguous identity.
  const duplicate = tenant.users.find((u) => u.employeeId === ENTRA_DUPLICATE_EMPLOYEE_ID)!;
  tenant.users.push({
    ...structuredClone(duplicate),
    id: entraIdFor('user', `${ENTRA_DUPLICATE_EMPLOYEE_ID}-copy`),
    userPrincipalName: `copy.${duplicate.userPrincipalName}`,
    mail: null,
  });
  const keeper = entraUserIdFor('E1000');
  if (awkwardCases) ownApp('Payroll export', [entraUserIdFor(ENTRA_SOLE_OWNER_EMPLOYEE_ID)]);
  ownApp('Build bot', [entraUserIdFor('E1046'), keeper]);
  return tenant;
}

// ---- certificate ------------------------------------------------------------------------------

/** A self-signed certificate for 127.0.0.1, made by openssl in a temporary directory it then removes. */
export function sandboxCertificate(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'entra-sandbox-'));
  try {
    const [key, cert] = [join(dir, 'key.pem'), join(dir, 'cert.pem')];
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        key,
        '-out',
        cert,
        '-days',
        '7',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'pipe' },
    );
    return { key: readFileSync(key, 'utf8'), cert: readFileSync(cert, 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- wire helpers -----------------------------------------------------------------------------

class GraphFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}
const notFound = (id: string) =>
  new GraphFailure(
    404,
    'Request_ResourceNotFound',
    `Resource '${id}' does not exist or one of its queried reference-property objects are not present.`,
  );
const denied = () =>
  new GraphFailure(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.');
const badRequest = (message: string) => new GraphFailure(400, 'Request_BadRequest', message);

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
function send(res: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  if (body === undefined) {
    res.writeHead(status, headers).end();
    return;
  }
  res
    .writeHead(status, { 'content-type': 'application/json;odata.metadata=minimal', ...headers })
    .end(JSON.stringify(body));
}
function sendGraphError(res: ServerResponse, req: IncomingMessage, failure: GraphFailure): void {
  const requestId = randomUUID();
  send(
    res,
    failure.status,
    {
      error: {
        code: failure.code,
        message: failure.message,
        innerError: {
          date: new Date().toISOString().slice(0, 19),
          'request-id': requestId,
          'client-request-id': String(req.headers['client-request-id'] ?? requestId),
        },
      },
    },
    { 'request-id': requestId, ...failure.headers },
  );
}
const b64url = (value: string | Buffer) => Buffer.from(value).toString('base64url');
const isoSeconds = (ms: number) => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');

// ---- the server -------------------------------------------------------------------------------

export async function startEntraSandbox(
  options: { port?: number; awkwardCases?: boolean } = {},
): Promise<EntraSandbox> {
  const state = seed(options.awkwardCases ?? true);
  const tokenKey = randomUUID();
  let faults: EntraFaults = {};
  const { key, cert } = sandboxCertificate();
  let origin = '';

  // ---- identity platform ----

  function tokenError(res: ServerResponse, status: number, error: string, aadsts: number, description: string) {
    send(
      res,
      status,
      {
        error,
        error_description: `AADSTS${aadsts}: ${description} Trace ID: ${randomUUID()} Correlation ID: ${randomUUID()} Timestamp: ${new Date().toISOString()}`,
        error_codes: [aadsts],
        timestamp: new Date().toISOString(),
        trace_id: randomUUID(),
        correlation_id: randomUUID(),
      },
      { 'cache-control': 'no-store' },
    );
  }

  function openidConfiguration(res: ServerResponse, tenant: string) {
    const base = `${origin}/${tenant}`;
    send(res, 200, {
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'client_secret_basic'],
      jwks_uri: `${origin}/${tenant}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: `${origin}/${ENTRA_SANDBOX_TENANT_ID}/v2.0`,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      tenant_region_scope: 'EU',
    });
  }

  async function token(req: IncomingMessage, res: ServerResponse, tenant: string) {
    const form = new URLSearchParams(await readBody(req));
    if (tenant !== ENTRA_SANDBOX_TENANT_ID)
      return tokenError(res, 400, 'invalid_tenant', 90002, `Tenant '${tenant}' not found.`);
    if (form.get('grant_type') !== 'client_credentials')
      return tokenError(res, 400, 'unsupported_grant_type', 70003, 'The app requested an unsupported grant type.');
    const clientId = form.get('client_id') ?? '';
    const client = Object.values(ENTRA_SANDBOX_CLIENTS).find((c) => c.clientId === clientId);
    if (!client)
      return tokenError(
        res,
        400,
        'unauthorized_client',
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${tenant}'.`,
      );
    const given = Buffer.from(form.get('client_secret') ?? '');
    const expected = Buffer.from(client.clientSecret);
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      return tokenError(
        res,
        401,
        'invalid_client',
        7000215,
        'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.',
      );
    const scope = form.get('scope') ?? '';
    if (scope !== `${origin}/.default`)
      return tokenError(res, 400, 'invalid_scope', 1002012, `The provided value for scope ${scope} is not valid.`);
    const now = Math.floor(Date.now() / 1000);
    const payload = {
      aud: origin,
      iss: `${origin}/${ENTRA_SANDBOX_TENANT_ID}/`,
      iat: now,
      nbf: now,
      exp: now + 3599,
      appid: client.clientId,
      idtyp: 'app',
      roles: [...client.roles],
      tid: ENTRA_SANDBOX_TENANT_ID,
    };
    const unsigned = `${b64url(JSON.stringify({ typ: 'JWT', alg: 'HS256' }))}.${b64url(JSON.stringify(payload))}`;
    const signature = createHmac('sha256', tokenKey).update(unsigned).digest('base64url');
    state.tokensIssued[client.clientId] = (state.tokensIssued[client.clientId] ?? 0) + 1;
    send(
      res,
      200,
      { token_type: 'Bearer', expires_in: 3599, ext_expires_in: 3599, access_token: `${unsigned}.${signature}` },
      { 'cache-control': 'no-store' },
    );
  }

  /** The roles of a valid bearer token, or a 401 as Graph answers it. */
  function rolesOf(req: IncomingMessage): string[] {
    const header = req.headers.authorization ?? '';
    if (!header.startsWith('Bearer '))
      throw new GraphFailure(401, 'InvalidAuthenticationToken', 'Access token is empty.');
    const [head, body, signature] = header.slice(7).split('.');
    const expected = createHmac('sha256', tokenKey).update(`${head}.${body}`).digest('base64url');
    if (!head || !body || signature !== expected)
      throw new GraphFailure(401, 'InvalidAuthenticationToken', 'IDX14100: JWT is not well formed.');
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as { exp: number; roles: string[] };
    if (claims.exp * 1000 < Date.now())
      throw new GraphFailure(401, 'InvalidAuthenticationToken', 'Lifetime validation failed, the token is expired.');
    return claims.roles;
  }

  // ---- Graph ----

  /** Throws 403 unless one of `accepted` is granted (a ReadWrite permission covers its Read). */
  function requireAny(roles: string[], ...accepted: string[]) {
    const covers = (granted: string, wanted: string) =>
      granted === wanted || granted === wanted.replace('.Read.', '.ReadWrite.');
    if (!accepted.some((wanted) => roles.some((granted) => covers(granted, wanted)))) throw denied();
  }

  function userById(id: string): EntraUser {
    const user = state.users.find((u) => u.id === id || u.userPrincipalName.toLowerCase() === id.toLowerCase());
    if (!user) throw notFound(id);
    return user;
  }

  function licenseStates(user: EntraUser) {
    const states = user.directLicenses.map((skuId) => ({
      assignedByGroup: null as string | null,
      state: 'Active',
      error: 'None',
      disabledPlans: [],
      skuId,
    }));
    for (const group of state.groups)
      if (group.members.includes(user.id))
        for (const skuId of group.licenses)
          states.push({ assignedByGroup: group.id, state: 'Active', error: 'None', disabledPlans: [], skuId });
    return states;
  }

  const DEFAULT_USER_FIELDS = [
    'businessPhones',
    'displayName',
    'givenName',
    'jobTitle',
    'mail',
    'mobilePhone',
    'officeLocation',
    'preferredLanguage',
    'surname',
    'userPrincipalName',
    'id',
  ];

  function userView(user: EntraUser, select: string | null, roles: string[]): Record<string, unknown> {
    const states = licenseStates(user);
    const full: Record<string, unknown> = {
      id: user.id,
      businessPhones: [],
      displayName: user.displayName,
      givenName: user.givenName,
      surname: user.surname,
      jobTitle: null,
      mail: user.mail,
      mobilePhone: null,
      officeLocation: null,
      preferredLanguage: null,
      userPrincipalName: user.userPrincipalName,
      accountEnabled: user.accountEnabled,
      employeeId: user.employeeId,
      employeeType: user.employeeType,
      signInSessionsValidFromDateTime: user.signInSessionsValidFromDateTime,
      assignedLicenses: [...new Set(states.map((s) => s.skuId))].map((skuId) => ({ disabledPlans: [], skuId })),
      licenseAssignmentStates: states,
      onPremisesSyncEnabled: null,
    };
    const fields = select ? select.split(',').map((f) => f.trim()) : DEFAULT_USER_FIELDS;
    const view: Record<string, unknown> = {};
    for (const field of fields) {
      if (field === 'signInActivity') {
        requireAny(roles, 'AuditLog.Read.All');
        view.signInActivity = {
          lastSignInDateTime: user.lastSignInDateTime,
          lastNonInteractiveSignInDateTime: user.lastSignInDateTime,
          lastSuccessfulSignInDateTime: user.lastSignInDateTime,
        };
      } else if (field in full) view[field] = full[field];
    }
    return view;
  }

  /** One page of `items` and the nextLink to the rest. */
  function page(url: URL, items: unknown[], extra: Record<string, unknown> = {}): Record<string, unknown> {
    const size = Math.min(Number(url.searchParams.get('$top') ?? 100), faults.pageSize ?? 100);
    const skip = Number(url.searchParams.get('$skiptoken') ?? '0');
    const slice = items.slice(skip, skip + size);
    const body: Record<string, unknown> = { '@odata.context': `${origin}/v1.0/$metadata`, ...extra, value: slice };
    if (skip + size < items.length) {
      const next = new URL(url.toString());
      next.searchParams.set('$skiptoken', String(skip + size));
      body['@odata.nextLink'] = `${origin}${next.pathname}${next.search}`;
    }
    return body;
  }

  /** `$filter=<field> eq '<value>'` on one of the fields given. */
  function eqFilter(url: URL, fields: string[]): { field: string; value: string } | undefined {
    const filter = url.searchParams.get('$filter');
    if (!filter) return undefined;
    const match = /^(\w+) eq '((?:[^']|'')*)'$/.exec(filter.trim());
    if (!match || !fields.includes(match[1]!))
      throw badRequest(`Unsupported or invalid query filter clause specified for property '${filter.split(' ')[0]}'.`);
    return { field: match[1]!, value: match[2]!.replace(/''/g, "'") };
  }

  function directoryObject(kind: 'group' | 'application' | 'servicePrincipal', fields: Record<string, unknown>) {
    return { '@odata.type': `#microsoft.graph.${kind}`, ...fields };
  }

  async function graph(req: IncomingMessage, res: ServerResponse, url: URL, path: string[]): Promise<void> {
    const roles = rolesOf(req);
    const method = req.method ?? 'GET';
    const text = method === 'GET' || method === 'DELETE' ? '' : await readBody(req);
    const body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    const [head, id, sub, subId, tail] = path;

    if (head === 'users' && id === undefined && method === 'GET') {
      requireAny(roles, 'User.Read.All', 'Directory.Read.All');
      const count = url.searchParams.get('$count') === 'true';
      if (count && req.headers['consistencylevel'] !== 'eventual')
        throw badRequest('$count is not currently supported.');
      const filter = eqFilter(url, ['employeeId', 'mail', 'userPrincipalName', 'id']);
      const matching = state.users.filter((user) => {
        if (!filter) return true;
        const value = (user as unknown as Record<string, unknown>)[filter.field];
        return typeof value === 'string' && value.toLowerCase() === filter.value.toLowerCase();
      });
      const select = url.searchParams.get('$select');
      return send(
        res,
        200,
        page(
          url,
          matching.map((u) => userView(u, select, roles)),
          count ? { '@odata.count': matching.length } : {},
        ),
      );
    }

    if (head === 'users' && id) {
      const user = userById(id);
      if (sub === undefined) {
        if (method === 'GET') {
          requireAny(roles, 'User.Read.All', 'Directory.Read.All');
          return send(res, 200, userView(user, url.searchParams.get('$select'), roles));
        }
        if (method === 'PATCH') {
          requireAny(roles, 'User.ReadWrite.All', 'User.EnableDisableAccount.All', 'Directory.ReadWrite.All');
          if ('accountEnabled' in body) user.accountEnabled = body.accountEnabled === true;
          return send(res, 204);
        }
        if (method === 'DELETE') {
          requireAny(roles, 'User.ReadWrite.All', 'Directory.ReadWrite.All');
          state.users = state.users.filter((u) => u !== user);
          for (const group of state.groups) group.members = group.members.filter((m) => m !== user.id);
          for (const app of state.apps) app.owners = app.owners.filter((o) => o !== user.id);
          state.appRoleAssignments = state.appRoleAssignments.filter((a) => a.principalId !== user.id);
          state.roleAssignments = state.roleAssignments.filter((a) => a.principalId !== user.id);
          state.oauth2PermissionGrants = state.oauth2PermissionGrants.filter((g) => g.principalId !== user.id);
          return send(res, 204);
        }
      }
      if (sub === 'revokeSignInSessions' && method === 'POST') {
        requireAny(roles, 'User.RevokeSessions.All', 'User.ReadWrite.All', 'Directory.ReadWrite.All');
        user.signInSessionsValidFromDateTime = isoSeconds(Date.now());
        return send(res, 200, { '@odata.context': `${origin}/v1.0/$metadata#Edm.Boolean`, value: true });
      }
      if (sub === 'memberOf' && method === 'GET') {
        requireAny(roles, 'GroupMember.Read.All', 'Group.Read.All', 'Directory.Read.All');
        const groups = state.groups
          .filter((g) => g.members.includes(user.id))
          .map((g) =>
            directoryObject('group', {
              id: g.id,
              displayName: g.displayName,
              groupTypes: g.groupTypes,
              membershipRule: g.membershipRule,
              isAssignableToRole: g.isAssignableToRole,
              onPremisesSyncEnabled: g.onPremisesSyncEnabled,
              securityEnabled: true,
              mailEnabled: false,
            }),
          );
        return send(res, 200, page(url, groups));
      }
      if (sub === 'appRoleAssignments') {
        if (method === 'GET') {
          requireAny(roles, 'AppRoleAssignment.Read.All', 'Directory.Read.All');
          const items = state.appRoleAssignments
            .filter((a) => a.principalId === user.id)
            .map((a) => ({
              ...a,
              principalType: 'User',
              createdDateTime: '2025-03-01T10:00:00Z',
              deletedDateTime: null,
            }));
          return send(res, 200, page(url, items));
        }
        if (method === 'DELETE' && subId) {
          requireAny(roles, 'AppRoleAssignment.ReadWrite.All', 'Directory.ReadWrite.All');
          const found = state.appRoleAssignments.find((a) => a.id === subId && a.principalId === user.id);
          if (!found) throw notFound(subId);
          state.appRoleAssignments = state.appRoleAssignments.filter((a) => a !== found);
          return send(res, 204);
        }
      }
      if (sub === 'oauth2PermissionGrants' && method === 'GET') {
        requireAny(roles, 'DelegatedPermissionGrant.Read.All', 'Directory.Read.All');
        return send(
          res,
          200,
          page(
            url,
            state.oauth2PermissionGrants.filter((g) => g.principalId === user.id),
          ),
        );
      }
      if (sub === 'assignLicense' && method === 'POST') {
        requireAny(roles, 'LicenseAssignment.ReadWrite.All', 'User.ReadWrite.All', 'Directory.ReadWrite.All');
        const remove = Array.isArray(body.removeLicenses) ? (body.removeLicenses as string[]) : [];
        const add = Array.isArray(body.addLicenses) ? (body.addLicenses as { skuId: string }[]) : [];
        const states = licenseStates(user);
        for (const skuId of remove) {
          if (user.directLicenses.includes(skuId)) continue;
          if (states.some((s) => s.skuId === skuId))
            throw badRequest(
              'User license is inherited from a group membership and it cannot be removed directly from the user.',
            );
          throw badRequest(`User does not have a corresponding license.`);
        }
        user.directLicenses = user.directLicenses.filter((s) => !remove.includes(s));
        for (const { skuId } of add) if (!user.directLicenses.includes(skuId)) user.directLicenses.push(skuId);
        return send(res, 200, userView(user, null, roles));
      }
      if (sub === 'authentication' && subId === 'methods' && method === 'GET') {
        requireAny(roles, 'UserAuthenticationMethod.Read.All');
        const items = user.authenticationMethods.map((m) => ({
          '@odata.type': `#microsoft.graph.${m.type}AuthenticationMethod`,
          id: m.id,
          ...(m.type === 'phone' ? { phoneNumber: '+1 5555550100', phoneType: 'mobile' } : {}),
          ...(m.type === 'microsoftAuthenticator' ? { displayName: 'Phone', deviceTag: 'SoftwareTokenActivated' } : {}),
        }));
        return send(res, 200, page(url, items));
      }
      if (sub === 'authentication' && subId?.endsWith('Methods') && tail && method === 'DELETE') {
        requireAny(roles, 'UserAuthenticationMethod.ReadWrite.All');
        const type = subId.slice(0, -'Methods'.length);
        if (type === 'password')
          throw new GraphFailure(405, 'methodNotAllowed', 'The password method cannot be deleted.');
        const found = user.authenticationMethods.find((m) => m.id === tail && m.type === type);
        if (!found) throw notFound(tail);
        user.authenticationMethods = user.authenticationMethods.filter((m) => m !== found);
        return send(res, 204);
      }
      if (sub === 'ownedObjects' && method === 'GET') {
        requireAny(roles, 'Application.Read.All', 'Directory.Read.All');
        const items = state.apps
          .filter((a) => a.owners.includes(user.id))
          .map((a) => directoryObject(a.kind, { id: a.id, appId: a.appId, displayName: a.displayName }));
        return send(res, 200, page(url, items));
      }
    }

    if (head === 'groups' && id && sub === 'members' && subId && tail === '$ref' && method === 'DELETE') {
      requireAny(roles, 'GroupMember.ReadWrite.All', 'Group.ReadWrite.All', 'Directory.ReadWrite.All');
      const group = state.groups.find((g) => g.id === id);
      if (!group) throw notFound(id);
      if (group.isAssignableToRole) requireAny(roles, 'RoleManagement.ReadWrite.Directory');
      if (group.onPremisesSyncEnabled)
        throw badRequest(
          'Unable to update the specified properties for on-premises mastered Directory Sync objects or objects currently undergoing migration.',
        );
      if (group.groupTypes.includes('DynamicMembership'))
        throw badRequest('Members of a group with dynamic membership cannot be removed.');
      if (!group.members.includes(subId)) throw notFound(subId);
      group.members = group.members.filter((m) => m !== subId);
      return send(res, 204);
    }

    if (head === 'oauth2PermissionGrants' && id && sub === undefined && method === 'DELETE') {
      requireAny(roles, 'DelegatedPermissionGrant.ReadWrite.All', 'Directory.ReadWrite.All');
      const found = state.oauth2PermissionGrants.find((g) => g.id === id);
      if (!found) throw notFound(id);
      state.oauth2PermissionGrants = state.oauth2PermissionGrants.filter((g) => g !== found);
      return send(res, 204);
    }

    if (head === 'roleManagement' && id === 'directory' && sub === 'roleAssignments') {
      if (method === 'GET' && subId === undefined) {
        requireAny(roles, 'RoleManagement.Read.Directory', 'Directory.Read.All');
        const filter = eqFilter(url, ['principalId']);
        const expand = url.searchParams.get('$expand') === 'roleDefinition';
        const items = state.roleAssignments
          .filter((a) => !filter || a.principalId === filter.value)
          .map((a) => {
            const definition = Object.values(ENTRA_ROLES).find((r) => r.id === a.roleDefinitionId);
            return {
              ...a,
              ...(expand && definition
                ? {
                    roleDefinition: {
                      id: definition.id,
                      displayName: definition.displayName,
                      templateId: definition.id,
                      isBuiltIn: true,
                    },
                  }
                : {}),
            };
          });
        return send(res, 200, page(url, items));
      }
      if (method === 'DELETE' && subId) {
        requireAny(roles, 'RoleManagement.ReadWrite.Directory');
        const found = state.roleAssignments.find((a) => a.id === subId);
        if (!found) throw notFound(subId);
        state.roleAssignments = state.roleAssignments.filter((a) => a !== found);
        return send(res, 204);
      }
    }

    if ((head === 'applications' || head === 'servicePrincipals') && id && sub === 'owners') {
      const kind = head === 'applications' ? 'application' : 'servicePrincipal';
      const app = state.apps.find((a) => a.kind === kind && a.id === id);
      if (!app) throw notFound(id);
      if (method === 'GET' && subId === undefined) {
        requireAny(roles, 'Application.Read.All', 'Directory.Read.All');
        const owners = app.owners.map((owner) => ({ '@odata.type': '#microsoft.graph.user', id: owner }));
        return send(res, 200, page(url, owners));
      }
      if (method === 'DELETE' && subId && tail === '$ref') {
        requireAny(roles, 'Application.ReadWrite.All', 'Directory.ReadWrite.All');
        if (!app.owners.includes(subId)) throw notFound(subId);
        app.owners = app.owners.filter((o) => o !== subId);
        return send(res, 204);
      }
    }

    throw new GraphFailure(400, 'BadRequest', `Resource not found for the segment '${path[path.length - 1] ?? ''}'.`);
  }

  // ---- dispatch ----

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', origin);
    const method = req.method ?? 'GET';
    if (url.pathname === '/_sandbox/state' && method === 'GET') return send(res, 200, state);
    if (url.pathname === '/_sandbox/faults' && method === 'POST') {
      const parsed = entraFaultsSchema.safeParse(JSON.parse((await readBody(req)) || '{}'));
      if (!parsed.success) return send(res, 400, { error: parsed.error.issues.map((i) => i.message).join('; ') });
      inject(parsed.data);
      return send(res, 200, faults);
    }
    if (url.pathname === '/_sandbox/reset' && method === 'POST') {
      reset();
      return send(res, 204);
    }
    const signInPath = /^\/_sandbox\/users\/([^/]+)\/sign-in$/.exec(url.pathname);
    if (signInPath && method === 'POST') {
      signIn(decodeURIComponent(signInPath[1]!));
      return send(res, 204);
    }

    const login = /^\/([^/]+)\/(v2\.0\/\.well-known\/openid-configuration|oauth2\/v2\.0\/token)$/.exec(url.pathname);
    if (login) {
      if (login[2] === 'oauth2/v2.0/token' && method === 'POST') return token(req, res, login[1]!);
      if (method === 'GET' && login[2]!.endsWith('openid-configuration')) {
        if (login[1] !== ENTRA_SANDBOX_TENANT_ID)
          return send(res, 400, {
            error: 'invalid_tenant',
            error_description: `AADSTS90002: Tenant '${login[1]}' not found.`,
          });
        return openidConfiguration(res, login[1]!);
      }
    }

    if (!url.pathname.startsWith('/v1.0/'))
      return sendGraphError(res, req, new GraphFailure(400, 'BadRequest', 'Invalid version.'));
    const path = url.pathname.slice('/v1.0/'.length).split('/').map(decodeURIComponent);
    state.requests.push(`${method} /${path.join('/')}`);
    if (faults.latencyMs) await sleep(faults.latencyMs);
    try {
      if (faults.tooManyRequests && faults.tooManyRequests.count > 0) {
        faults.tooManyRequests.count -= 1;
        throw new GraphFailure(429, 'TooManyRequests', 'Too many requests.', {
          'retry-after': String(faults.tooManyRequests.retryAfterSeconds),
        });
      }
      if (faults.serverErrors) {
        faults.serverErrors -= 1;
        throw new GraphFailure(503, 'serviceNotAvailable', 'Service is unavailable. Try again later.');
      }
      await graph(req, res, url, path);
    } catch (err) {
      if (err instanceof GraphFailure) return sendGraphError(res, req, err);
      sendGraphError(res, req, new GraphFailure(500, 'generalException', `stand-in error: ${(err as Error).message}`));
    }
  }

  function inject(next: EntraFaults): void {
    faults = structuredClone(entraFaultsSchema.parse(next));
  }
  function reset(): void {
    Object.assign(state, seed(options.awkwardCases ?? true));
    inject({});
  }
  function signIn(userId: string): void {
    const user = state.users.find((u) => u.id === userId);
    if (!user) throw new Error(`no user ${userId}`);
    // Graph's times have whole seconds: a sign-in after a revocation lands in a later second than it.
    const validFrom = Date.parse(user.signInSessionsValidFromDateTime);
    user.lastSignInDateTime = isoSeconds(Math.max(Date.now(), validFrom + 1000));
  }

  const server = https.createServer({ key, cert }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { error: { code: 'generalException', message: (err as Error).message } });
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: origin,
    graphBaseUrl: `${origin}/v1.0`,
    authorityHost: origin,
    tenantId: ENTRA_SANDBOX_TENANT_ID,
    caCertificate: cert,
    state,
    inject,
    signIn,
    reset,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** The sample domain's users as the stand-in holds them (for tests). */
export const entraUsersWithEmployeeId = (state: EntraTenant, employeeId: string) =>
  state.users.filter((u) => u.employeeId === employeeId);
