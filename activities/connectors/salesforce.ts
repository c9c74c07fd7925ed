/**
 * Salesforce connector (jsforce 3, REST API v62.0).
 *
 * The person is the `User` whose FederationIdentifier (the SAML/SSO id) is the HR employee id;
 * failing that, the one whose Email is the person's email. Two candidates, or an email match that
 * carries someone else's FederationIdentifier, stop with `ambiguous_identity`. The account id is
 * the User Id; it is `disabled` when the user is inactive or frozen (`UserLogin.IsFrozen`).
 *
 * Action mapping:
 * - disable_login: PATCH User `{IsActive:false}` (deactivation, which also frees the licence).
 *   Salesforce refuses to deactivate some users (the Default Workflow User, a default case or lead
 *   owner, an approver, a validation rule...): then the user is frozen instead
 *   (`UserLogin.IsFrozen = true`), outcome `done`, and the details say frozen, not deactivated,
 *   with Salesforce's reason, so that someone can remove the blocker and deactivate later.
 * - enable_login (cancel): reactivates an inactive user, or unfreezes an active frozen one —
 *   disable_login does exactly one of the two. A freeze found on an inactive user was not placed by
 *   disable_login and stays. No free licence: non-retryable, saying so.
 * - revoke_sessions: deletes every `AuthSession` of the user (supported by the API, Manage Users).
 * - revoke_tokens: every `OauthToken` of the user is revoked at `/services/oauth2/revoke` with its
 *   DeleteToken (OauthToken rows cannot be deleted through the API); `invalid_token` = already.
 * - remove_entitlement: deletes the user's `PermissionSetAssignment` of that permission set;
 *   profile-owned permission sets are never listed (they go with the profile, not removable).
 * - delete_account: not_applicable — Salesforce users cannot be deleted, only deactivated.
 * - transfer_ownership: not_applicable — records keep their (inactive) owner; mass transfer is an
 *   admin task in Setup.
 *
 * Entitlement ids are permission set API names (`Name`, or `ns__Name` for a managed package), not
 * assignment ids, so that the policy can name privileged sets (`Modify_All_Data_Admin`) and keep
 * those a new role grants; the assignment is looked up when it is removed.
 *
 * The integration user needs "Manage Users" (users, UserLogin, AuthSession, assignments) and
 * "Customize Application": without the latter the OauthToken query silently returns only the
 * integration user's own tokens, so other people's tokens would go unseen.
 *
 * Retries: jsforce retries GET/PUT/DELETE itself (5 times on 420/429/5xx and socket errors); here
 * every request is made once and Temporal's retry policy decides. The 24-hour org API limit
 * (REQUEST_LIMIT_EXCEEDED "TotalRequests") is not retried: hammering an exhausted quota helps no
 * one and competes with the org's other integrations; an operator retries the manual task once
 * the rolling window has room. The concurrent-request limit is retried after a short pause.
 */
import { createHash } from 'node:crypto';
import { Connection } from 'jsforce';
import { z } from 'zod';
import type { Action, Credential, Discovery, Entitlement } from '../../model/plan.js';
import type { Subject } from '../../model/request.js';
import { ConnectorError, type ApplyResult, type Connector } from './types.js';

const isLocal = (url: URL) => url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';

export const salesforceSystemSchema = z.object({
  type: z.literal('salesforce'),
  /** `https://<mydomain>.my.salesforce.com` (plain http only for a local stand-in). */
  instanceUrl: z
    .url()
    .refine((value) => { const url = new URL(value); return url.protocol === 'https:' || isLocal(url); }, 'an https:// URL (http:// only for 127.0.0.1/localhost)')
    .transform((value) => value.replace(/\/+$/, '')),
  /** An OAuth access token of the integration user: a secret. */
  accessToken: z.string().min(1),
  /** The REST API version; jsforce's own default (50.0) is too old for some fields used here. */
  apiVersion: z.string().regex(/^\d{2,3}\.0$/, 'like 62.0').default('62.0'),
  /** How long one HTTP request may take before it counts as a (retryable) failure. */
  timeoutMs: z.number().int().positive().default(30_000),
});
export type SalesforceSystemConfig = z.infer<typeof salesforceSystemSchema>;

type Transport = Connection['_transport'];
type HttpResponse = Awaited<ReturnType<Transport['httpRequest']>>;

// Deactivation refusals that leave freezing as the way to stop the login now (the PATCH touches
// only IsActive, so a data error here is Salesforce saying "not this user, not yet").
const DEACTIVATION_REFUSED = new Set([
  'FIELD_INTEGRITY_EXCEPTION',
  'INACTIVE_OWNER_OR_USER',
  'CANNOT_INSERT_UPDATE_ACTIVATE_ENTITY',
  'FIELD_CUSTOM_VALIDATION_EXCEPTION',
  'CANNOT_UPDATE_CONVERTED_LEAD',
]);
const GONE = new Set(['NOT_FOUND', 'ENTITY_IS_DELETED']);
const CONCURRENT_LIMIT_PAUSE_MS = 30_000;
const DEFAULT_RETRY_AFTER_MS = 60_000;

interface SalesforceError {
  errorCode: string;
  message: string;
}

/** The first `{errorCode, message}` jsforce parsed from a REST error array, if any. */
function salesforceError(err: unknown): SalesforceError | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { errorCode, message, data } = err as { errorCode?: unknown; message?: unknown; data?: unknown };
  if (errorCode === 'MULTIPLE_API_ERRORS' && Array.isArray(data)) return salesforceError(data[0]);
  if (typeof errorCode === 'string' && typeof message === 'string') return { errorCode, message };
  return undefined;
}

function retryAfterMs(header: string | undefined): number {
  if (!header) return DEFAULT_RETRY_AFTER_MS;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.ceil(seconds * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? DEFAULT_RETRY_AFTER_MS : Math.max(0, at - Date.now());
}

function messageIn(body: string): string {
  try {
    const parsed: unknown = JSON.parse(body);
    const first = Array.isArray(parsed) ? parsed[0] : parsed;
    const found = salesforceError(first);
    if (found) return `${found.errorCode}: ${found.message}`;
  } catch {
    // not JSON: a proxy's page; its status says enough
  }
  return 'no error details';
}

/** 429 and 5xx are classified here, where status and headers are still known. */
function transientFailure(response: HttpResponse): ConnectorError | undefined {
  const status = response.statusCode;
  if (status === 429) {
    return new ConnectorError(`rate limited (429, ${messageIn(response.body)}); retried after Retry-After`, true, 'salesforce_429', retryAfterMs(response.headers['retry-after']));
  }
  if (status >= 500) {
    const after = response.headers['retry-after'];
    return new ConnectorError(`answered ${status} (${messageIn(response.body)}); retried`, true, `salesforce_${status}`, after ? retryAfterMs(after) : undefined);
  }
  return undefined;
}

/**
 * Wraps jsforce's transport so that each request is sent exactly once (no built-in retries), with
 * a timeout, and so that 429/5xx surface with their Retry-After.
 */
function oneAttemptTransport(inner: Transport, timeoutMs: number): Transport {
  return {
    getRequestStreamCreator: () => inner.getRequestStreamCreator(),
    httpRequest(request, options = {}) {
      const pending = inner.httpRequest(request, { ...options, timeout: timeoutMs, retry: { maxRetries: 0, methods: [], statusCodes: [], errorCodes: [] } });
      const checked = pending.then((response) => {
        const failure = transientFailure(response);
        if (failure) throw failure;
        return response;
      });
      return Object.assign(checked, { stream: () => pending.stream() });
    },
  };
}

function classify(err: unknown, doing: string): ConnectorError {
  const prefix = `Salesforce ${doing}`;
  if (err instanceof ConnectorError) return new ConnectorError(`${prefix}: ${err.message}`, err.retryable, err.code, err.retryAfterMs);
  const sf = salesforceError(err);
  if (!sf) {
    // Socket errors and timeouts. The URL (which carries the SOQL, and so an email) stays out.
    const code = (err as { code?: unknown }).code;
    // jsforce aborts a request that outlives its timeout (AbortError), or reports 'Request Timeout'.
    const timedOut = err instanceof Error && (err.name === 'AbortError' || err.message === 'Request Timeout');
    const reason = timedOut ? 'no answer within the timeout' : typeof code === 'string' ? code : 'network error';
    return new ConnectorError(`${prefix} failed: ${reason}; Salesforce may be unreachable`, true, 'salesforce_unreachable');
  }
  const { errorCode, message } = sf;
  const code = `salesforce_${errorCode.toLowerCase()}`;
  if (errorCode === 'INVALID_SESSION_ID') {
    return new ConnectorError(`${prefix} failed: the access token expired or is invalid (INVALID_SESSION_ID): issue a new token for the integration user and update the accessToken secret`, false, code);
  }
  if (errorCode.startsWith('INSUFFICIENT_ACCESS')) {
    return new ConnectorError(
      `${prefix} failed: the integration user lacks a permission (${errorCode}: ${message}): give it "Manage Users" (and "Customize Application" to see other users' OAuth tokens), then retry`,
      false,
      code,
    );
  }
  if (errorCode === 'INVALID_TYPE' && /UserLogin|AuthSession|OauthToken/.test(message)) {
    // These objects are hidden from users without the permission, rather than refused.
    return new ConnectorError(`${prefix} failed: ${message} — the integration user needs "Manage Users" to read UserLogin and AuthSession; give it that permission, then retry`, false, code);
  }
  if (errorCode === 'REQUEST_LIMIT_EXCEEDED') {
    if (/concurrent/i.test(message)) {
      return new ConnectorError(`${prefix}: too many concurrent long-running requests in the org (${message}); retried shortly`, true, 'salesforce_concurrent_limit', CONCURRENT_LIMIT_PAUSE_MS);
    }
    return new ConnectorError(
      `${prefix} failed: the org's API request limit for the rolling 24 hours is used up (${message}). Not retried automatically: retry once usage has fallen below the limit ` +
        '(Setup > Company Information shows it; calls age out of the 24-hour window, so within 24 hours at the latest), or raise the limit or pause other integrations',
      false,
      'salesforce_daily_limit',
    );
  }
  if (errorCode === 'SERVER_UNAVAILABLE' || errorCode === 'UNABLE_TO_LOCK_ROW') {
    return new ConnectorError(`${prefix}: ${errorCode}: ${message}; retried`, true, code);
  }
  if (errorCode === 'LICENSE_LIMIT_EXCEEDED') {
    return new ConnectorError(`${prefix} failed: no free Salesforce licence to reactivate the user (${message}): free or buy a licence, then retry`, false, code);
  }
  return new ConnectorError(`${prefix} failed: ${errorCode}: ${message}`, false, code);
}

/**
 * The OAuth error of a refused revocation (`invalid_token`, `unsupported_token_type`...), or
 * undefined for anything else. jsforce reads the error body as a form; when Salesforce answers
 * JSON, the error is named ERROR_HTTP_400 and the body is its message, so both are read.
 */
function oauthRefusal(err: unknown): string | undefined {
  if (!(err instanceof Error) || err instanceof ConnectorError) return undefined;
  const fromJson = /"error"\s*:\s*"([a-z_]+)"/.exec(err.message)?.[1];
  if (/^ERROR_HTTP_4\d\d$/.test(err.name)) return fromJson ?? err.name;
  return /^[a-z]+(?:_[a-z]+)*$/.test(err.name) ? err.name : undefined;
}

/** A SOQL string literal: backslashes and quotes escaped, so a value can never end the literal. */
function soqlString(value: string): string {
  const escaped = value
    .replace(/\\/g, '\\\\')
    .replace(/'/g, "\\'")
    .replace(/\n/g, '\\n')
    .replace(/\r/g, '\\r')
    .replace(/\t/g, '\\t');
  return `'${escaped}'`;
}

const SALESFORCE_ID = /^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$/;
function recordId(id: string, what: string): string {
  if (!SALESFORCE_ID.test(id)) throw new ConnectorError(`Salesforce: ${what} "${id}" is not a Salesforce record id`, false, 'bad_action');
  return id;
}

/** `Name`, or `ns__Name` for a managed package's permission set (the name as Setup shows it). */
function qualifiedName(name: string, namespace: string | null): string {
  return namespace ? `${namespace}__${name}` : name;
}
function splitQualifiedName(id: string): { name: string; namespace: string | null } {
  const at = id.indexOf('__');
  return at > 0 ? { namespace: id.slice(0, at), name: id.slice(at + 2) } : { namespace: null, name: id };
}

/** A stable, non-secret id for an OAuth grant: OauthToken.Id is always null, DeleteToken is a secret. */
function tokenCredentialId(appName: string, deleteToken: string): string {
  return `oauth:${appName}:${createHash('sha256').update(deleteToken).digest('hex').slice(0, 16)}`;
}

interface UserRow {
  Id: string;
  IsActive: boolean;
  FederationIdentifier: string | null;
  [field: string]: unknown;
}
interface AssignmentRow {
  Id: string;
  PermissionSet: { Name: string; Label: string; NamespacePrefix: string | null };
  [field: string]: unknown;
}
interface UserLoginRow {
  Id: string;
  IsFrozen: boolean;
  [field: string]: unknown;
}
interface TokenRow {
  AppName: string | null;
  DeleteToken: string;
  [field: string]: unknown;
}
interface SessionRow {
  Id: string;
  SessionType: string | null;
  [field: string]: unknown;
}

export function createSalesforceConnector(system: string, config: SalesforceSystemConfig): Connector {
  // The revoke endpoint is the org's own (My Domain), not login.salesforce.com.
  const conn = new Connection({ instanceUrl: config.instanceUrl, loginUrl: config.instanceUrl, accessToken: config.accessToken, version: config.apiVersion });
  conn._transport = oneAttemptTransport(conn._transport, config.timeoutMs);
  conn.oauth2._transport = oneAttemptTransport(conn.oauth2._transport, config.timeoutMs);

  async function guarded<T>(doing: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw classify(err, doing);
    }
  }

  async function query<T extends Record<string, unknown>>(soql: string): Promise<T[]> {
    const result = await conn.query<T>(soql, { autoFetch: true, maxFetch: 10_000 });
    return result.records;
  }

  async function findUser(subject: Subject): Promise<UserRow | undefined> {
    const fields = 'SELECT Id, IsActive, FederationIdentifier FROM User';
    const byFederation = await query<UserRow>(`${fields} WHERE FederationIdentifier = ${soqlString(subject.employeeId)} LIMIT 2`);
    if (byFederation.length > 1) {
      throw new ConnectorError(`Salesforce: ${byFederation.length} users have FederationIdentifier ${subject.employeeId} (${byFederation.map((u) => u.Id).join(', ')}); refusing to guess — make it unique`, false, 'ambiguous_identity');
    }
    if (byFederation[0] || !subject.email) return byFederation[0];
    const byEmail = await query<UserRow>(`${fields} WHERE Email = ${soqlString(subject.email)} LIMIT 2`);
    if (byEmail.length > 1) {
      throw new ConnectorError(
        `Salesforce: several users (${byEmail.map((u) => u.Id).join(', ')}) have the person's email and none has FederationIdentifier ${subject.employeeId}; refusing to guess — set FederationIdentifier on the right user`,
        false,
        'ambiguous_identity',
      );
    }
    const user = byEmail[0];
    const federation = user?.FederationIdentifier;
    // An email match that names another person in its FederationIdentifier may not be this person.
    if (user && federation && federation.toLowerCase() !== subject.email.toLowerCase()) {
      throw new ConnectorError(
        `Salesforce: user ${user.Id} has the person's email but FederationIdentifier "${federation}", not ${subject.employeeId}; refusing to guess — correct the FederationIdentifier or the email`,
        false,
        'ambiguous_identity',
      );
    }
    return user;
  }

  const assignmentsOf = (userId: string, permissionSet?: string) => {
    let soql =
      'SELECT Id, PermissionSet.Name, PermissionSet.Label, PermissionSet.NamespacePrefix FROM PermissionSetAssignment ' +
      `WHERE AssigneeId = ${soqlString(userId)} AND PermissionSet.IsOwnedByProfile = false`;
    if (permissionSet !== undefined) {
      const { name, namespace } = splitQualifiedName(permissionSet);
      soql += ` AND PermissionSet.Name = ${soqlString(name)} AND PermissionSet.NamespacePrefix = ${namespace === null ? 'null' : soqlString(namespace)}`;
    }
    return query<AssignmentRow>(soql);
  };
  const loginOf = async (userId: string) => (await query<UserLoginRow>(`SELECT Id, IsFrozen FROM UserLogin WHERE UserId = ${soqlString(userId)}`))[0];
  const tokensOf = (userId: string) => query<TokenRow>(`SELECT AppName, DeleteToken FROM OauthToken WHERE UserId = ${soqlString(userId)}`);
  const sessionsOf = (userId: string) => query<SessionRow>(`SELECT Id, SessionType FROM AuthSession WHERE UsersId = ${soqlString(userId)}`);

  async function userById(userId: string): Promise<UserRow> {
    const [user] = await query<UserRow>(`SELECT Id, IsActive, FederationIdentifier FROM User WHERE Id = ${soqlString(userId)}`);
    if (!user) {
      // Users are never deleted in Salesforce: a missing one means another org, not "already gone".
      throw new ConnectorError(`Salesforce: user ${userId} does not exist in this org; users cannot be deleted, so check that instanceUrl points at the org discover used`, false, 'account_not_found');
    }
    return user;
  }

  async function setFrozen(login: UserLoginRow, frozen: boolean): Promise<void> {
    await conn.sobject('UserLogin').update({ Id: login.Id, IsFrozen: frozen });
  }

  async function disableLogin(userId: string): Promise<ApplyResult> {
    const user = await userById(userId);
    if (!user.IsActive) return { outcome: 'already', details: { userId, state: 'inactive' } };
    try {
      await conn.sobject('User').update({ Id: userId, IsActive: false });
      return { outcome: 'done', details: { userId, deactivated: true } };
    } catch (err) {
      const refusal = salesforceError(err);
      if (!refusal || !DEACTIVATION_REFUSED.has(refusal.errorCode)) throw err;
      const login = await loginOf(userId);
      if (!login) throw new ConnectorError(`Salesforce refused to deactivate user ${userId} (${refusal.errorCode}: ${refusal.message}) and it has no UserLogin to freeze; deactivate it by hand`, false, 'salesforce_cannot_disable');
      const details = { userId, deactivated: false, frozen: true, deactivationRefused: `${refusal.errorCode}: ${refusal.message}`, note: 'frozen, not deactivated: the licence stays in use until the blocker is removed and the user deactivated' };
      if (login.IsFrozen) return { outcome: 'already', details };
      await setFrozen(login, true);
      return { outcome: 'done', details };
    }
  }

  async function enableLogin(userId: string): Promise<ApplyResult> {
    const user = await userById(userId);
    const login = await loginOf(userId);
    if (!user.IsActive) {
      await conn.sobject('User').update({ Id: userId, IsActive: true });
      // A freeze on an inactive user was not placed by disable_login (it deactivates or freezes).
      return { outcome: 'done', details: { userId, reactivated: true, ...(login?.IsFrozen ? { stillFrozen: true, note: 'a freeze placed by someone else stays' } : {}) } };
    }
    if (login?.IsFrozen) {
      await setFrozen(login, false);
      return { outcome: 'done', details: { userId, unfrozen: true } };
    }
    return { outcome: 'already', details: { userId, state: 'active, not frozen' } };
  }

  async function revokeSessions(userId: string): Promise<ApplyResult> {
    const sessions = await sessionsOf(userId);
    let ended = 0;
    for (const session of sessions) {
      try {
        await conn.sobject('AuthSession').destroy(session.Id);
        ended += 1;
      } catch (err) {
        // Ended meanwhile (logout, expiry, or a parent session taking its children along).
        if (!GONE.has(salesforceError(err)?.errorCode ?? '')) throw err;
      }
    }
    return { outcome: ended > 0 ? 'done' : 'already', details: { userId, sessionsEnded: ended, sessionsFound: sessions.length } };
  }

  async function revokeTokens(userId: string): Promise<ApplyResult> {
    const tokens = await tokensOf(userId);
    let revoked = 0;
    let alreadyRevoked = 0;
    for (const token of tokens) {
      try {
        await conn.oauth2.revokeToken(token.DeleteToken);
        revoked += 1;
      } catch (err) {
        const refusal = oauthRefusal(err);
        if (refusal === undefined) throw err; // network, 429, 5xx: classified by guarded()
        if (refusal === 'invalid_token') alreadyRevoked += 1;
        else throw new ConnectorError(`revoking an OAuth token of ${token.AppName ?? 'an app'} was refused (${refusal}); revoke it in Setup > Connected Apps OAuth Usage`, false, 'salesforce_revoke_refused');
      }
    }
    const apps = [...new Set(tokens.map((t) => t.AppName ?? 'unknown app'))];
    return { outcome: revoked > 0 ? 'done' : 'already', details: { userId, apps, revoked, alreadyRevoked } };
  }

  async function removeEntitlement(userId: string, target: Entitlement | undefined): Promise<ApplyResult> {
    if (!target) throw new ConnectorError('remove_entitlement without a target permission set', false, 'bad_action');
    const removed: string[] = [];
    for (const assignment of await assignmentsOf(userId, target.id)) {
      try {
        await conn.sobject('PermissionSetAssignment').destroy(assignment.Id);
        removed.push(assignment.Id);
      } catch (err) {
        if (!GONE.has(salesforceError(err)?.errorCode ?? '')) throw err;
      }
    }
    return { outcome: removed.length > 0 ? 'done' : 'already', details: { userId, permissionSet: target.id, assignmentsRemoved: removed } };
  }

  async function apply(action: Action): Promise<ApplyResult> {
    const userId = recordId(action.accountId, 'account id');
    switch (action.kind) {
      case 'disable_login':
        return guarded(action.kind, () => disableLogin(userId));
      case 'enable_login':
        return guarded(action.kind, () => enableLogin(userId));
      case 'revoke_sessions':
        return guarded(action.kind, () => revokeSessions(userId));
      case 'revoke_tokens':
        return guarded(action.kind, () => revokeTokens(userId));
      case 'remove_entitlement':
        return guarded(action.kind, () => removeEntitlement(userId, action.target));
      case 'delete_account':
        return { outcome: 'not_applicable', details: { userId, reason: 'Salesforce users cannot be deleted, only deactivated (disable_login); the record stays for the audit history' } };
      case 'transfer_ownership':
        return { outcome: 'not_applicable', details: { userId, reason: 'records keep their inactive owner; reassign them with Mass Transfer in Setup if needed' } };
    }
  }

  return {
    system,
    async discover(subject: Subject): Promise<Discovery> {
      return guarded('discover', async () => {
        const user = await findUser(subject);
        if (!user) return { system, account: null, entitlements: [], credentials: [] };
        const [assignments, login, tokens, sessions] = await Promise.all([assignmentsOf(user.Id), loginOf(user.Id), tokensOf(user.Id), sessionsOf(user.Id)]);
        const entitlements: Entitlement[] = assignments.map((a) => ({
          id: qualifiedName(a.PermissionSet.Name, a.PermissionSet.NamespacePrefix),
          kind: 'permission_set',
          name: a.PermissionSet.Label,
        }));
        const credentials: Credential[] = [
          ...sessions.map((s) => ({ id: s.Id, kind: 'session' as const })),
          ...tokens.map((t) => ({ id: tokenCredentialId(t.AppName ?? 'unknown app', t.DeleteToken), kind: 'token' as const })),
        ];
        // Salesforce users cannot be deleted: deactivated (or frozen) is as gone as they get.
        return { system, account: { id: user.Id, disabled: !user.IsActive || Boolean(login?.IsFrozen) }, entitlements, credentials, permanentAccounts: true };
      });
    },
    apply,
    async check() {
      // Any authenticated read proves the URL, the API version and the token.
      await guarded('check', async () => { await conn.query("SELECT Id FROM User WHERE Id = '005000000000000AAA' LIMIT 1"); });
    },
    async close() {},
  };
}
