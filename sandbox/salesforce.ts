/**
 * A local stand-in for a Salesforce org's REST API (v62.0), seeded from the sample organisation,
 * speaking the wire format jsforce expects: `GET /services/data/v62.0/query?q=<SOQL>`
 * (`{totalSize, done, records:[{attributes:{type,url}, ...}]}`), `GET|PATCH|DELETE
 * /services/data/v62.0/sobjects/<Type>/<Id>` (204 on success), `POST /services/oauth2/revoke`
 * (form `token=`, 200 or 400 `invalid_token`), errors as `[{message, errorCode, fields}]`, Bearer
 * auth (401 INVALID_SESSION_ID), and the `Sforce-Limit-Info: api-usage=n/limit` header. jsforce
 * with an instanceUrl and an access token calls nothing first (no identity or version lookup);
 * `GET /services/data` and `/services/data/v62.0` are served for people poking at it.
 *
 * OAuth client credentials flow (a Connected App / External Client App whose run-as user is the
 * integration user): `POST /services/oauth2/token`, form `grant_type=client_credentials` with
 * `client_id` and `client_secret` in the body or as HTTP Basic auth. 200 answers
 * `{access_token, signature, scope, instance_url, id, token_type:'Bearer', issued_at}` (issued_at in
 * epoch milliseconds as a string, id the identity URL `<instance>/id/<orgId>/<userId>`, signature
 * the base64 HMAC-SHA256 of id + issued_at keyed with the client secret; no refresh_token and no
 * expires_in, as Salesforce). 400 `{error, error_description}`: `unsupported_grant_type` "grant type
 * not supported" for any other grant, `invalid_client_id` "client identifier invalid" for an unknown
 * client id, `invalid_client` "invalid client credentials" for a wrong secret. A token issued so
 * carries the integration user's rights; its session times out after `sessionTimeoutMs` (default
 * 2 hours) without use, each use starting the countdown again, and is then answered like any bad
 * session (401 INVALID_SESSION_ID). `state.oauth` counts the tokens issued; a test shortens the
 * timeout with the start option or `state.oauth.sessionTimeoutMs`, or ends every issued session at
 * once with `expireSessions()` / `POST /_sandbox/expire-sessions`.
 * Checked against public sources: the success body's fields and issued_at in milliseconds
 * (Salesforce's own sample response), invalid_client_id's body (a captured Salesforce answer), the
 * idle-timeout semantics (Salesforce Stack Exchange), no expires_in. Not confirmed against
 * Salesforce documentation: the exact bodies of invalid_client and unsupported_grant_type, the
 * order in which Salesforce checks grant, client id and secret, which of Basic auth and body wins
 * when both are sent (the header, here), `invalid_request` "must use HTTP POST" for other methods,
 * and the response headers (only `Cache-Control: no-store` here).
 *
 * Modelled: User (IsActive; the Default Workflow User cannot be deactivated,
 * FIELD_INTEGRITY_EXCEPTION; reactivation needs a free licence, LICENSE_LIMIT_EXCEEDED), UserLogin
 * (IsFrozen), PermissionSet (profile-owned ones too) and PermissionSetAssignment (DELETE; a deleted
 * id answers 404 ENTITY_IS_DELETED, an unknown one 404 NOT_FOUND), OauthToken (query only, Id
 * always null as documented; rows disappear when their DeleteToken is revoked), AuthSession
 * (DELETE). Access tokens carry "Manage Users" / "Customize Application": without the first,
 * writes answer 403 INSUFFICIENT_ACCESS_OR_READONLY and UserLogin/AuthSession are not queryable;
 * without the second, OauthToken shows only the caller's own tokens (as in Salesforce).
 *
 * SOQL: only `SELECT f[, f] FROM Type [WHERE a = lit [AND b = lit]...] [LIMIT n]`, with one level
 * of relationship (`PermissionSet.Name`), string/null/true/false literals and Salesforce's escape
 * sequences. Anything else answers 400 MALFORMED_QUERY; unknown fields INVALID_FIELD.
 *
 * Not modelled: other API versions (404, so a client left on jsforce's 50.0 default shows up),
 * query paging (nextRecordsUrl; results here are small), OR/LIKE/IN/sub-queries, permission set
 * groups, record ownership, session parent/child families, deactivation ending sessions or
 * tokens, the concurrent long-request limit, the rolling window of the daily limit (usage only
 * grows until reset), OAuth grants other than client credentials, the run-as user missing
 * (`invalid_grant`), issued sessions as AuthSession rows, the userinfo and introspection
 * endpoints. Salesforce documents no 429 for the
 * REST API (its limits answer 403 REQUEST_LIMIT_EXCEEDED); the 429 fault stands for an edge
 * proxy's answer, with Retry-After, so that the connector's handling of it is exercised.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { SAMPLE_PEOPLE, type SamplePerson } from './org.js';

export const SALESFORCE_API_VERSION = '62.0';
/** The integration user's token: Manage Users and Customize Application. */
export const SANDBOX_SALESFORCE_TOKEN = '00DSANDBOX000001!offboard.integration';
/** A read-only auditor's token: no Manage Users, no Customize Application. */
export const SANDBOX_SALESFORCE_READONLY_TOKEN = '00DSANDBOX000001!readonly.auditor';
/**
 * The consumer key of the stand-in's Connected App, whose client credentials flow runs as the
 * integration user (fictitious, like every credential here).
 */
export const SANDBOX_SALESFORCE_CLIENT_ID = '3MVG9SANDBOX.offboard.integration.app';
/** That app's consumer secret. */
export const SANDBOX_SALESFORCE_CLIENT_SECRET = 'SANDBOX0FFB0ARD5ECRET0000000000000000000000000000000000000000001';
/** Salesforce's default session timeout: an issued session unused this long is over. */
export const DEFAULT_SESSION_TIMEOUT_MS = 2 * 60 * 60 * 1000;
const ORG_ID = '00DSANDBOX000001AAA';

/** Process Automation Settings name this person's user: Salesforce refuses to deactivate it. */
export const DEFAULT_WORKFLOW_EMPLOYEE_ID = 'E1010';
/** Already deactivated before the offboarding starts. */
export const INACTIVE_EMPLOYEE_ID = 'E1036';
/** Has a user with the person's email whose FederationIdentifier is another system's id. */
export const FOREIGN_FEDERATION_EMPLOYEE_ID = 'E1037';
/** A user created before SSO: the right email, no FederationIdentifier. */
export const EMAIL_ONLY_EMPLOYEE_ID = 'E1039';
/** Two users (legacy and current) share the person's email and neither has a FederationIdentifier. */
export const DUPLICATE_EMAIL_EMPLOYEE_ID = 'E1040';

/** Permission set API names the policy treats as privileged. */
export const PRIVILEGED_PERMISSION_SETS = ['Modify_All_Data_Admin', 'View_All_Data'];

type FieldValue = string | number | boolean | null;
export type SalesforceRecord = Record<string, FieldValue>;

const SOBJECTS = {
  User: {
    prefix: '005',
    fields: ['Id', 'Username', 'Email', 'FirstName', 'LastName', 'FederationIdentifier', 'IsActive', 'ProfileId'],
    relationships: { Profile: ['ProfileId', 'Profile'] },
    updatable: ['IsActive'],
    deletable: false,
  },
  Profile: { prefix: '00e', fields: ['Id', 'Name'], relationships: {}, updatable: [], deletable: false },
  PermissionSet: {
    prefix: '0PS',
    fields: ['Id', 'Name', 'Label', 'NamespacePrefix', 'IsOwnedByProfile', 'ProfileId'],
    relationships: { Profile: ['ProfileId', 'Profile'] },
    updatable: [],
    deletable: false,
  },
  PermissionSetAssignment: {
    prefix: '0Pa',
    fields: ['Id', 'AssigneeId', 'PermissionSetId'],
    relationships: { Assignee: ['AssigneeId', 'User'], PermissionSet: ['PermissionSetId', 'PermissionSet'] },
    updatable: [],
    deletable: true,
  },
  UserLogin: {
    prefix: '060',
    fields: ['Id', 'UserId', 'IsFrozen', 'IsPasswordLocked'],
    relationships: { User: ['UserId', 'User'] },
    updatable: ['IsFrozen', 'IsPasswordLocked'],
    deletable: false,
  },
  OauthToken: {
    prefix: '',
    fields: ['Id', 'UserId', 'AppName', 'DeleteToken', 'CreatedDate', 'LastUsedDate', 'UseCount'],
    relationships: { User: ['UserId', 'User'] },
    updatable: [],
    deletable: false,
  },
  AuthSession: {
    prefix: '0Ak',
    fields: ['Id', 'UsersId', 'SessionType', 'LoginType', 'SourceIp', 'CreatedDate'],
    relationships: { Users: ['UsersId', 'User'] },
    updatable: [],
    deletable: true,
  },
} satisfies Record<
  string,
  {
    prefix: string;
    fields: string[];
    relationships: Record<string, [string, string]>;
    updatable: string[];
    deletable: boolean;
  }
>;
export type SObjectType = keyof typeof SOBJECTS;
const isSObjectType = (name: string): name is SObjectType => Object.hasOwn(SOBJECTS, name);
const relationshipsOf = (type: SObjectType): Record<string, [string, SObjectType]> =>
  SOBJECTS[type].relationships as Record<string, [string, SObjectType]>;

interface AccessToken {
  userId: string;
  manageUsers: boolean;
  customizeApplication: boolean;
  /** Tokens issued at /services/oauth2/token: the client, and when the session was last used (epoch ms). */
  clientId?: string;
  lastUsedAt?: number;
}

export interface SalesforceState {
  records: Record<SObjectType, SalesforceRecord[]>;
  /** Ids deleted so far: a second DELETE answers ENTITY_IS_DELETED rather than NOT_FOUND. */
  deletedIds: string[];
  defaultWorkflowUserId: string;
  licences: { total: number };
  api: { usage: number; limit: number };
  accessTokens: Record<string, AccessToken>;
  oauth: {
    /** An issued session unused for this long answers INVALID_SESSION_ID. */
    sessionTimeoutMs: number;
    /** Access tokens issued by the token endpoint so far. */
    tokensIssued: number;
  };
  /** `METHOD /path` of every request to /services, faults included: what the client really sent. */
  requests: string[];
}

export const salesforceFaultsSchema = z.object({
  latencyMs: z.number().int().min(0).optional(),
  /** Share of requests answered 503 SERVER_UNAVAILABLE, spread evenly by a counter (1 = all). */
  serverErrorRate: z.number().min(0).max(1).optional(),
  /** The next `count` requests answer 429 with `Retry-After: retryAfterSeconds`. */
  tooManyRequests: z.object({ count: z.number().int().min(0), retryAfterSeconds: z.number().int().min(0) }).optional(),
  /** The next N requests have their connection destroyed without an answer. */
  connectionResets: z.number().int().min(0).optional(),
  /** Every data request answers 403 REQUEST_LIMIT_EXCEEDED (TotalRequests), as when the org's 24-hour quota is gone. */
  apiLimitExhausted: z.boolean().optional(),
  /** `POST /services/oauth2/revoke` answers 200 and revokes nothing (RFC 7009 §2.2 lets a server answer 200 for a token it did not revoke). */
  revocationsIgnored: z.boolean().optional(),
});
export type SalesforceFaults = z.infer<typeof salesforceFaultsSchema>;

export interface SalesforceSandbox {
  url: string;
  state: SalesforceState;
  inject(faults: SalesforceFaults): void;
  /** Ends every session issued by the token endpoint, as if each had timed out. */
  expireSessions(): void;
  reset(): void;
  stop(): Promise<void>;
}

// ---- seed ------------------------------------------------------------------------------------

const CREATED = '2024-01-15T09:00:00.000+0000';

function seed(sessionTimeoutMs: number): SalesforceState {
  const counters = new Map<string, number>();
  const newId = (type: SObjectType) => {
    const prefix = SOBJECTS[type].prefix;
    const n = (counters.get(prefix) ?? 0) + 1;
    counters.set(prefix, n);
    return `${prefix}Dn${String(n).padStart(10, '0')}AAA`;
  };
  const records: Record<SObjectType, SalesforceRecord[]> = {
    User: [],
    Profile: [],
    PermissionSet: [],
    PermissionSetAssignment: [],
    UserLogin: [],
    OauthToken: [],
    AuthSession: [],
  };
  const add = (type: SObjectType, fields: SalesforceRecord): string => {
    const Id = type === 'OauthToken' ? null : newId(type);
    records[type].push({ Id, ...fields });
    return Id ?? '';
  };

  const profiles = {
    admin: add('Profile', { Name: 'System Administrator' }),
    standard: add('Profile', { Name: 'Standard User' }),
  };
  // Every profile owns a permission set that carries its permissions; each user is assigned it.
  const profileSets = {
    [profiles.admin]: add('PermissionSet', {
      Name: `X${profiles.admin}_128_09_04_12_1`,
      Label: `${profiles.admin}_128_09_04_12_1`,
      NamespacePrefix: null,
      IsOwnedByProfile: true,
      ProfileId: profiles.admin,
    }),
    [profiles.standard]: add('PermissionSet', {
      Name: `X${profiles.standard}_128_09_04_12_1`,
      Label: `${profiles.standard}_128_09_04_12_1`,
      NamespacePrefix: null,
      IsOwnedByProfile: true,
      ProfileId: profiles.standard,
    }),
  };
  const permissionSet = (Name: string, Label: string, NamespacePrefix: string | null = null) =>
    add('PermissionSet', { Name, Label, NamespacePrefix, IsOwnedByProfile: false, ProfileId: null });
  // The sample organisation's groups, as the permission sets that grant the same access here.
  const setForGroup: Record<string, string> = {
    finance: permissionSet('Finance_Reports', 'Finance Reports'),
    engineering: permissionSet('Developer_Tools', 'Developer Tools'),
    developers: permissionSet('API_Enabled', 'API Enabled'),
    'vpn-users': permissionSet('SteelBrickCPQUser', 'Salesforce CPQ User', 'SBQQ'),
    'domain-admins': permissionSet('Modify_All_Data_Admin', 'Modify All Data (Admin)'),
    'prod-access': permissionSet('View_All_Data', 'View All Data'),
    'hr-records': permissionSet('HR_Records', 'HR Records'),
  };

  const addUser = (fields: {
    Username: string;
    Email: string;
    FirstName: string;
    LastName: string;
    FederationIdentifier: string | null;
    IsActive: boolean;
    ProfileId: string;
  }) => {
    const userId = add('User', fields);
    add('UserLogin', { UserId: userId, IsFrozen: false, IsPasswordLocked: false });
    add('PermissionSetAssignment', { AssigneeId: userId, PermissionSetId: profileSets[fields.ProfileId] ?? null });
    return userId;
  };
  const deleteToken = (employeeId: string, app: string) =>
    `5Aep861${createHash('sha256').update(`${employeeId}/${app}`).digest('base64url').slice(0, 40)}`;

  const integrationUser = addUser({
    Username: 'offboard.integration@example.org',
    Email: 'offboard.integration@example.org',
    FirstName: 'Offboard',
    LastName: 'Integration',
    FederationIdentifier: null,
    IsActive: true,
    ProfileId: profiles.admin,
  });
  const auditorUser = addUser({
    Username: 'auditor@example.org',
    Email: 'auditor@example.org',
    FirstName: 'Read',
    LastName: 'Only',
    FederationIdentifier: null,
    IsActive: true,
    ProfileId: profiles.standard,
  });

  let defaultWorkflowUserId = '';
  SAMPLE_PEOPLE.forEach((person: SamplePerson, index) => {
    const privileged = person.groups.some((g) => g === 'domain-admins' || g === 'prod-access');
    const base = {
      FirstName: person.givenName,
      LastName: person.sn,
      Email: person.email,
      IsActive: person.employeeId !== INACTIVE_EMPLOYEE_ID,
      ProfileId: privileged ? profiles.admin : profiles.standard,
    };
    let userIds: string[];
    if (person.employeeId === DUPLICATE_EMAIL_EMPLOYEE_ID) {
      userIds = [
        addUser({ ...base, Username: `${person.uid}.legacy@example.org`, FederationIdentifier: null }),
        addUser({ ...base, Username: `${person.uid}@example.org`, FederationIdentifier: null }),
      ];
    } else {
      const federation =
        person.employeeId === EMAIL_ONLY_EMPLOYEE_ID
          ? null
          : person.employeeId === FOREIGN_FEDERATION_EMPLOYEE_ID
            ? `C-${person.employeeId.slice(1)}`
            : person.employeeId;
      userIds = [addUser({ ...base, Username: `${person.uid}@example.org`, FederationIdentifier: federation })];
    }
    for (const userId of userIds) {
      for (const group of person.groups) {
        const set = setForGroup[group];
        if (set) add('PermissionSetAssignment', { AssigneeId: userId, PermissionSetId: set });
      }
      const apps = index % 2 === 1 ? ['Salesforce for Outlook', 'Dataloader Bulk'] : ['Salesforce for Outlook'];
      for (const app of apps) {
        add('OauthToken', {
          UserId: userId,
          AppName: app,
          DeleteToken: deleteToken(`${person.employeeId}/${userId}`, app),
          CreatedDate: CREATED,
          LastUsedDate: CREATED,
          UseCount: 12 + index,
        });
      }
      add('AuthSession', {
        UsersId: userId,
        SessionType: 'UI',
        LoginType: 'SAML Sfdc Initiated SSO',
        SourceIp: `10.0.${index}.10`,
        CreatedDate: CREATED,
      });
      if (index % 3 === 0)
        add('AuthSession', {
          UsersId: userId,
          SessionType: 'Oauth2',
          LoginType: 'Remote Access 2.0',
          SourceIp: `10.0.${index}.11`,
          CreatedDate: CREATED,
        });
    }
    if (person.employeeId === DEFAULT_WORKFLOW_EMPLOYEE_ID) defaultWorkflowUserId = userIds[0]!;
  });

  const active = records.User.filter((u) => u.IsActive).length;
  return {
    records,
    deletedIds: [],
    defaultWorkflowUserId,
    licences: { total: active + 2 },
    api: { usage: 0, limit: 15_000 },
    accessTokens: {
      [SANDBOX_SALESFORCE_TOKEN]: { userId: integrationUser, manageUsers: true, customizeApplication: true },
      [SANDBOX_SALESFORCE_READONLY_TOKEN]: { userId: auditorUser, manageUsers: false, customizeApplication: false },
    },
    oauth: { sessionTimeoutMs, tokensIssued: 0 },
    requests: [],
  };
}

/** The sandbox's users of one sample person (two for the duplicated email). */
export function salesforceUsersOf(state: SalesforceState, employeeId: string): SalesforceRecord[] {
  const person = SAMPLE_PEOPLE.find((p) => p.employeeId === employeeId);
  return state.records.User.filter(
    (u) => u.FederationIdentifier === employeeId || (person !== undefined && u.Email === person.email),
  );
}

// ---- wire format -----------------------------------------------------------------------------

class SalesforceFailure extends Error {
  constructor(
    readonly status: number,
    readonly errorCode: string,
    message: string,
    readonly fields: string[] = [],
  ) {
    super(message);
  }
}

const dataPath = `/services/data/v${SALESFORCE_API_VERSION}`;
const recordUrl = (type: string, id: FieldValue) => `${dataPath}/sobjects/${type}/${String(id)}`;

// ---- SOQL ------------------------------------------------------------------------------------

interface Condition {
  path: string[];
  value: FieldValue;
}
interface SoqlQuery {
  fields: string[][];
  type: SObjectType;
  where: Condition[];
  limit: number | undefined;
}

const malformed = (detail: string) => new SalesforceFailure(400, 'MALFORMED_QUERY', detail);
const ESCAPES: Record<string, string> = { n: '\n', r: '\r', t: '\t', b: '\b', f: '\f', '"': '"', "'": "'", '\\': '\\' };

function tokenize(soql: string): string[] {
  const tokens: string[] = [];
  const pattern = /\s+|'(?:\\.|[^'\\])*'|[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?|\d+|,|=/y;
  while (pattern.lastIndex < soql.length) {
    const start = pattern.lastIndex;
    const match = pattern.exec(soql);
    if (!match) throw malformed(`unexpected token: '${soql.slice(start, start + 20)}'`);
    if (!/^\s+$/.test(match[0])) tokens.push(match[0]);
  }
  return tokens;
}

function literal(token: string): FieldValue {
  if (token.startsWith("'")) {
    return token.slice(1, -1).replace(/\\(.)/g, (_, c: string) => {
      const replacement = ESCAPES[c];
      if (replacement === undefined)
        throw malformed(`Invalid string literal '${token}'. Illegal character sequence '\\${c}' in string literal.`);
      return replacement;
    });
  }
  const word = token.toLowerCase();
  if (word === 'null') return null;
  if (word === 'true' || word === 'false') return word === 'true';
  throw malformed(`unexpected token: '${token}'`);
}

function parseSoql(soql: string): SoqlQuery {
  const tokens = tokenize(soql);
  let at = 0;
  const peek = () => tokens[at];
  const next = () => {
    const token = tokens[at++];
    if (token === undefined) throw malformed('unexpected end of query');
    return token;
  };
  const keyword = (word: string) => {
    const token = next();
    if (token.toUpperCase() !== word) throw malformed(`unexpected token: '${token}', expected ${word}`);
  };
  const identifier = () => {
    const token = next();
    if (!/^[A-Za-z_]/.test(token)) throw malformed(`unexpected token: '${token}'`);
    return token;
  };

  keyword('SELECT');
  const fields = [identifier().split('.')];
  while (peek() === ',') {
    next();
    fields.push(identifier().split('.'));
  }
  keyword('FROM');
  const typeName = identifier();
  if (!isSObjectType(typeName))
    throw new SalesforceFailure(400, 'INVALID_TYPE', `sObject type '${typeName}' is not supported.`);
  const where: Condition[] = [];
  if (peek()?.toUpperCase() === 'WHERE') {
    next();
    do {
      const path = identifier().split('.');
      if (next() !== '=') throw malformed('only "field = value" conditions joined by AND are understood here');
      where.push({ path, value: literal(next()) });
    } while (peek()?.toUpperCase() === 'AND' && next());
  }
  let limit: number | undefined;
  if (peek()?.toUpperCase() === 'LIMIT') {
    next();
    const n = next();
    if (!/^\d+$/.test(n)) throw malformed(`unexpected token: '${n}'`);
    limit = Number(n);
  }
  if (at < tokens.length) throw malformed(`unexpected token: '${tokens[at]}'`);
  const query = { fields, type: typeName, where, limit };
  for (const path of [...fields, ...where.map((c) => c.path)]) resolvePath(query.type, path);
  return query;
}

/** Checks a field path against the schema: the type it ends on and the field there. */
function resolvePath(type: SObjectType, path: string[]): { relationship?: [string, SObjectType]; field: string } {
  const [first, second] = path;
  if (second === undefined) {
    if (!SOBJECTS[type].fields.includes(first!))
      throw new SalesforceFailure(400, 'INVALID_FIELD', `No such column '${first}' on entity '${type}'.`);
    return { field: first! };
  }
  const relationship = relationshipsOf(type)[first!];
  if (!relationship)
    throw new SalesforceFailure(400, 'INVALID_FIELD', `Didn't understand relationship '${first}' in field path.`);
  if (!SOBJECTS[relationship[1]].fields.includes(second))
    throw new SalesforceFailure(400, 'INVALID_FIELD', `No such column '${second}' on entity '${relationship[1]}'.`);
  return { relationship, field: second };
}

function runQuery(state: SalesforceState, query: SoqlQuery, caller: AccessToken) {
  const related = (record: SalesforceRecord, [key, type]: [string, SObjectType]) =>
    state.records[type].find((r) => r.Id !== null && r.Id === record[key]);
  const valueAt = (record: SalesforceRecord, path: string[]): FieldValue => {
    const { relationship, field } = resolvePath(query.type, path);
    const holder = relationship ? related(record, relationship) : record;
    return holder ? (holder[field] ?? null) : null;
  };
  // Ids compare exactly; other text as Salesforce does, case-insensitively.
  const same = (field: string, a: FieldValue, b: FieldValue) =>
    typeof a === 'string' && typeof b === 'string' && !field.endsWith('Id')
      ? a.toLowerCase() === b.toLowerCase()
      : a === b;

  let rows = state.records[query.type].filter((record) =>
    query.where.every((c) => same(c.path[c.path.length - 1]!, valueAt(record, c.path), c.value)),
  );
  if (query.type === 'OauthToken' && !caller.customizeApplication)
    rows = rows.filter((r) => r.UserId === caller.userId);
  if (query.limit !== undefined) rows = rows.slice(0, query.limit);

  const shape = (type: SObjectType, record: SalesforceRecord) => ({
    type,
    ...(record.Id ? { url: recordUrl(type, record.Id) } : {}),
  });
  const records = rows.map((record) => {
    const out: Record<string, unknown> = { attributes: shape(query.type, record) };
    for (const path of query.fields) {
      const { relationship, field } = resolvePath(query.type, path);
      if (!relationship) {
        out[field] = record[field] ?? null;
        continue;
      }
      const target = related(record, relationship);
      if (!target) {
        out[path[0]!] = null;
        continue;
      }
      const nested = (out[path[0]!] ??= { attributes: shape(relationship[1], target) }) as Record<string, unknown>;
      nested[field] = target[field] ?? null;
    }
    return out;
  });
  return { totalSize: records.length, done: true, records };
}

// ---- records ---------------------------------------------------------------------------------

function findRecord(state: SalesforceState, type: SObjectType, id: string): SalesforceRecord {
  const record = state.records[type].find((r) => r.Id === id);
  if (record) return record;
  if (state.deletedIds.includes(id)) throw new SalesforceFailure(404, 'ENTITY_IS_DELETED', 'entity is deleted');
  throw new SalesforceFailure(404, 'NOT_FOUND', 'The requested resource does not exist');
}

function updateRecord(
  state: SalesforceState,
  type: SObjectType,
  record: SalesforceRecord,
  changes: Record<string, unknown>,
): void {
  const { updatable } = SOBJECTS[type];
  if (updatable.length === 0)
    throw new SalesforceFailure(400, 'INVALID_TYPE_FOR_OPERATION', 'entity type cannot be updated');
  for (const [field, value] of Object.entries(changes)) {
    if (!SOBJECTS[type].fields.includes(field))
      throw new SalesforceFailure(400, 'INVALID_FIELD', `No such column '${field}' on sobject of type ${type}`);
    if (!(updatable as string[]).includes(field))
      throw new SalesforceFailure(
        400,
        'INVALID_FIELD_FOR_INSERT_UPDATE',
        `Unable to create/update fields: ${field}. Please check the security settings of this field and verify that it is read/write for your profile or permission set.`,
        [field],
      );
    if (typeof value !== 'boolean')
      throw new SalesforceFailure(
        400,
        'JSON_PARSER_ERROR',
        `Cannot deserialize instance of boolean from ${JSON.stringify(value)} value for field ${field}`,
      );
  }
  if (type === 'User' && changes.IsActive === false && record.IsActive && record.Id === state.defaultWorkflowUserId) {
    throw new SalesforceFailure(
      400,
      'FIELD_INTEGRITY_EXCEPTION',
      'You cannot deactivate the Default Workflow User. Choose another user in Setup > Process Automation Settings first.',
      ['IsActive'],
    );
  }
  if (type === 'User' && changes.IsActive === true && !record.IsActive) {
    const active = state.records.User.filter((u) => u.IsActive).length;
    if (active >= state.licences.total)
      throw new SalesforceFailure(400, 'LICENSE_LIMIT_EXCEEDED', 'License Limit Exceeded', ['IsActive']);
  }
  if (type === 'UserLogin' && changes.IsPasswordLocked === true) {
    throw new SalesforceFailure(400, 'FIELD_INTEGRITY_EXCEPTION', 'IsPasswordLocked can only be set to false', [
      'IsPasswordLocked',
    ]);
  }
  Object.assign(record, changes);
}

function deleteRecord(state: SalesforceState, type: SObjectType, id: string): void {
  if (!SOBJECTS[type].deletable)
    throw new SalesforceFailure(400, 'INVALID_TYPE_FOR_OPERATION', 'entity type cannot be deleted');
  const record = findRecord(state, type, id);
  if (type === 'PermissionSetAssignment') {
    const set = state.records.PermissionSet.find((p) => p.Id === record.PermissionSetId);
    if (set?.IsOwnedByProfile)
      throw new SalesforceFailure(
        400,
        'DELETE_FAILED',
        "You can't delete a profile's permission set assignment: change the user's profile instead.",
      );
  }
  state.records[type] = state.records[type].filter((r) => r !== record);
  state.deletedIds.push(id);
}

// ---- server ----------------------------------------------------------------------------------

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}): void {
  if (body === undefined) {
    res.writeHead(status, headers).end();
    return;
  }
  res.writeHead(status, { 'content-type': 'application/json;charset=UTF-8', ...headers }).end(JSON.stringify(body));
}
const sendError = (res: http.ServerResponse, failure: SalesforceFailure, headers: Record<string, string> = {}) =>
  send(
    res,
    failure.status,
    [{ message: failure.message, errorCode: failure.errorCode, fields: failure.fields }],
    headers,
  );

/** Connected Apps with the client credentials flow on: secret, and whose rights (a seeded token's) their sessions get. */
const CLIENTS: Record<string, { secret: string; runAs: string }> = {
  [SANDBOX_SALESFORCE_CLIENT_ID]: { secret: SANDBOX_SALESFORCE_CLIENT_SECRET, runAs: SANDBOX_SALESFORCE_TOKEN },
};

const sameSecret = (given: string, expected: string) => {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
};

/** The client's id and secret from HTTP Basic auth (form-encoded, RFC 6749 2.3.1) or else the form. */
function clientOf(req: http.IncomingMessage, form: URLSearchParams): { id: string | null; secret: string | null } {
  const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
  if (basic) {
    const decoded = Buffer.from(basic[1]!, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const decode = (part: string) => {
      try {
        return decodeURIComponent(part.replace(/\+/g, ' '));
      } catch {
        return part;
      }
    };
    return colon < 0
      ? { id: decode(decoded), secret: null }
      : { id: decode(decoded.slice(0, colon)), secret: decode(decoded.slice(colon + 1)) };
  }
  return { id: form.get('client_id'), secret: form.get('client_secret') };
}

/**
 * `sessionTimeoutMs`: how long a session issued by the token endpoint lasts without use (default
 * 2 hours, Salesforce's default); `state.oauth.sessionTimeoutMs` changes it while running.
 */
export async function startSalesforceSandbox(
  options: { port?: number; sessionTimeoutMs?: number } = {},
): Promise<SalesforceSandbox> {
  const sessionTimeoutMs = options.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS;
  const state = seed(sessionTimeoutMs);
  let faults: SalesforceFaults = {};
  let served = 0;
  let instanceUrl = '';

  /** Answers for the faults in force; true when the request has been answered (or dropped). */
  async function injectFaults(req: http.IncomingMessage, res: http.ServerResponse): Promise<boolean> {
    if (faults.latencyMs) await sleep(faults.latencyMs);
    if (faults.connectionResets) {
      faults.connectionResets -= 1;
      req.socket.destroy();
      return true;
    }
    if (faults.tooManyRequests && faults.tooManyRequests.count > 0) {
      faults.tooManyRequests.count -= 1;
      const seconds = faults.tooManyRequests.retryAfterSeconds;
      send(
        res,
        429,
        [{ message: `Too many requests: retry after ${seconds} seconds`, errorCode: 'TOO_MANY_REQUESTS', fields: [] }],
        { 'retry-after': String(seconds) },
      );
      return true;
    }
    if (faults.serverErrorRate) {
      served += 1;
      if (Math.floor(served * faults.serverErrorRate) > Math.floor((served - 1) * faults.serverErrorRate)) {
        sendError(res, new SalesforceFailure(503, 'SERVER_UNAVAILABLE', 'Server is unavailable: try again later'));
        return true;
      }
    }
    return false;
  }

  async function revoke(req: http.IncomingMessage, res: http.ServerResponse, url: URL): Promise<void> {
    const form = req.method === 'POST' ? new URLSearchParams(await readBody(req)) : url.searchParams;
    const token = form.get('token');
    if (!token) {
      send(res, 400, { error: 'unsupported_token_type', error_description: 'Token type not supported' });
      return;
    }
    if (faults.revocationsIgnored) {
      send(res, 200);
      return;
    }
    const before = state.records.OauthToken.length;
    state.records.OauthToken = state.records.OauthToken.filter((t) => t.DeleteToken !== token);
    if (state.records.OauthToken.length === before) {
      send(res, 400, { error: 'invalid_token', error_description: 'Token was invalid' });
      return;
    }
    send(res, 200);
  }

  async function token(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const refuse = (error: string, description: string) =>
      send(res, 400, { error, error_description: description }, { 'cache-control': 'no-store' });
    if (req.method !== 'POST') return refuse('invalid_request', 'must use HTTP POST');
    const form = new URLSearchParams(await readBody(req));
    if (form.get('grant_type') !== 'client_credentials')
      return refuse('unsupported_grant_type', 'grant type not supported');
    const { id, secret } = clientOf(req, form);
    const client = id ? CLIENTS[id] : undefined;
    if (!id || !client) return refuse('invalid_client_id', 'client identifier invalid');
    if (secret === null || !sameSecret(secret, client.secret))
      return refuse('invalid_client', 'invalid client credentials');
    const runAs = state.accessTokens[client.runAs];
    if (!runAs) throw new Error(`no seeded token ${client.runAs} to run as`);

    const now = Date.now();
    const accessToken = `${ORG_ID.slice(0, 15)}!${randomBytes(48).toString('base64url')}`;
    state.accessTokens[accessToken] = {
      userId: runAs.userId,
      manageUsers: runAs.manageUsers,
      customizeApplication: runAs.customizeApplication,
      clientId: id,
      lastUsedAt: now,
    };
    state.oauth.tokensIssued += 1;
    const identity = `${instanceUrl}/id/${ORG_ID}/${runAs.userId}`;
    const issuedAt = String(now);
    send(
      res,
      200,
      {
        access_token: accessToken,
        signature: createHmac('sha256', client.secret)
          .update(identity + issuedAt)
          .digest('base64'),
        scope: 'api',
        instance_url: instanceUrl,
        id: identity,
        token_type: 'Bearer',
        issued_at: issuedAt,
      },
      { 'cache-control': 'no-store' },
    );
  }

  /** The caller of a data request: a seeded token, or an issued one whose session has not timed out. */
  function callerOf(req: http.IncomingMessage): AccessToken | undefined {
    const match = /^(?:Bearer|OAuth) (.+)$/.exec(req.headers.authorization ?? '');
    if (!match) return undefined;
    const key = match[1]!;
    const caller = Object.hasOwn(state.accessTokens, key) ? state.accessTokens[key] : undefined;
    if (!caller || caller.lastUsedAt === undefined) return caller;
    const now = Date.now();
    if (now - caller.lastUsedAt >= state.oauth.sessionTimeoutMs) {
      delete state.accessTokens[key];
      return undefined;
    }
    caller.lastUsedAt = now;
    return caller;
  }

  async function data(req: http.IncomingMessage, res: http.ServerResponse, url: URL, rest: string): Promise<void> {
    const caller = callerOf(req);
    if (!caller) {
      sendError(res, new SalesforceFailure(401, 'INVALID_SESSION_ID', 'Session expired or invalid'));
      return;
    }
    if (faults.apiLimitExhausted || state.api.usage >= state.api.limit) {
      sendError(res, new SalesforceFailure(403, 'REQUEST_LIMIT_EXCEEDED', 'TotalRequests Limit exceeded.'), {
        'sforce-limit-info': `api-usage=${state.api.limit}/${state.api.limit}`,
      });
      return;
    }
    state.api.usage += 1;
    // On every answer from here on, errors included, as Salesforce does.
    res.setHeader('sforce-limit-info', `api-usage=${state.api.usage}/${state.api.limit}`);
    const method = req.method ?? 'GET';
    const requireManageUsers = () => {
      if (!caller.manageUsers)
        throw new SalesforceFailure(403, 'INSUFFICIENT_ACCESS_OR_READONLY', 'insufficient access rights on object id');
    };

    if ((rest === '' || rest === '/') && method === 'GET') {
      send(res, 200, { sobjects: `${dataPath}/sobjects`, query: `${dataPath}/query`, limits: `${dataPath}/limits` });
      return;
    }
    if (rest === '/limits' && method === 'GET') {
      send(res, 200, { DailyApiRequests: { Max: state.api.limit, Remaining: state.api.limit - state.api.usage } });
      return;
    }
    if ((rest === '/query' || rest === '/query/') && method === 'GET') {
      const query = parseSoql(url.searchParams.get('q') ?? '');
      if ((query.type === 'UserLogin' || query.type === 'AuthSession') && !caller.manageUsers) {
        throw new SalesforceFailure(400, 'INVALID_TYPE', `sObject type '${query.type}' is not supported.`);
      }
      send(res, 200, runQuery(state, query, caller));
      return;
    }
    const row = /^\/sobjects\/([A-Za-z]+)\/([A-Za-z0-9]+)$/.exec(rest);
    if (row && isSObjectType(row[1]!)) {
      const type = row[1] as SObjectType;
      const id = row[2]!;
      if (method === 'GET') {
        const record = findRecord(state, type, id);
        send(res, 200, { attributes: { type, url: recordUrl(type, id) }, ...record });
      } else if (method === 'PATCH') {
        requireManageUsers();
        let changes: unknown;
        try {
          changes = JSON.parse(await readBody(req));
        } catch {
          throw new SalesforceFailure(400, 'JSON_PARSER_ERROR', 'The request body is not valid JSON');
        }
        if (typeof changes !== 'object' || changes === null || Array.isArray(changes))
          throw new SalesforceFailure(400, 'JSON_PARSER_ERROR', 'Expected a JSON object');
        updateRecord(state, type, findRecord(state, type, id), changes as Record<string, unknown>);
        send(res, 204, undefined);
      } else if (method === 'DELETE') {
        requireManageUsers();
        deleteRecord(state, type, id);
        send(res, 204, undefined);
      } else {
        sendError(
          res,
          new SalesforceFailure(
            405,
            'METHOD_NOT_ALLOWED',
            `HTTP Method '${method}' not allowed. Allowed are GET,PATCH,DELETE`,
          ),
        );
      }
      return;
    }
    throw new SalesforceFailure(404, 'NOT_FOUND', 'The requested resource does not exist');
  }

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sandbox');
    const method = req.method ?? 'GET';
    if (url.pathname === '/_sandbox/state' && method === 'GET') return send(res, 200, state);
    if (url.pathname === '/_sandbox/faults' && method === 'POST') {
      const parsed = salesforceFaultsSchema.safeParse(JSON.parse((await readBody(req)) || '{}'));
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
    if (url.pathname === '/_sandbox/expire-sessions' && method === 'POST') {
      expireSessions();
      return send(res, 204);
    }
    if (!url.pathname.startsWith('/services/'))
      return sendError(res, new SalesforceFailure(404, 'NOT_FOUND', 'The requested resource does not exist'));

    state.requests.push(`${method} ${url.pathname}`);
    if (await injectFaults(req, res)) return;
    try {
      if (url.pathname === '/services/oauth2/revoke') return await revoke(req, res, url);
      if (url.pathname === '/services/oauth2/token') return await token(req, res);
      if (url.pathname === '/services/data' || url.pathname === '/services/data/') {
        return send(res, 200, [{ label: "Summer '24", url: dataPath, version: SALESFORCE_API_VERSION }]);
      }
      if (url.pathname === dataPath || url.pathname.startsWith(`${dataPath}/`))
        return await data(req, res, url, url.pathname.slice(dataPath.length));
      throw new SalesforceFailure(404, 'NOT_FOUND', 'The requested resource does not exist');
    } catch (err) {
      if (err instanceof SalesforceFailure) return sendError(res, err);
      sendError(res, new SalesforceFailure(500, 'UNKNOWN_EXCEPTION', `stand-in error: ${(err as Error).message}`));
    }
  }

  function inject(next: SalesforceFaults): void {
    faults = structuredClone(salesforceFaultsSchema.parse(next));
    served = 0;
  }
  function reset(): void {
    Object.assign(state, seed(sessionTimeoutMs));
    inject({});
  }
  function expireSessions(): void {
    for (const [key, token] of Object.entries(state.accessTokens)) {
      if (token.lastUsedAt !== undefined) delete state.accessTokens[key];
    }
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent)
        sendError(res, new SalesforceFailure(500, 'UNKNOWN_EXCEPTION', `stand-in error: ${(err as Error).message}`));
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  instanceUrl = `http://127.0.0.1:${port}`;

  return {
    url: instanceUrl,
    state,
    inject,
    expireSessions,
    reset,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
