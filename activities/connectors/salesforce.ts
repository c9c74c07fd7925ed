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
 * Credentials: exactly one of
 * - `clientCredentials: { clientId, clientSecret }` (production): the Consumer Key and Consumer
 *   Secret of a Connected App (or External Client App) with the OAuth 2.0 client credentials flow
 *   enabled and a run-as user, the integration user. jsforce's OAuth2 requests a session at
 *   `<instanceUrl>/services/oauth2/token` (the org's My Domain: login.salesforce.com does not serve
 *   this flow) before the first call; when the session times out (2 hours without use by default,
 *   so between the stages of a long offboarding), the 401 INVALID_SESSION_ID makes the Connection's
 *   refreshFn request a new one and jsforce repeats the request. Data calls go to the instance_url
 *   the token endpoint answers (the same My Domain). A renewed session that is refused
 *   too is not renewed again in a loop: the call fails non-retryably. A wrong consumer key
 *   (`invalid_client_id`) or secret (`invalid_client`), a missing run-as user (`invalid_grant`) or
 *   a URL that does not serve the grant (`unsupported_grant_type`) fail non-retryably, saying what
 *   to fix, never with the secret; the token endpoint unreachable, 429 or 5xx is retryable.
 * - `accessToken` (kept for compatibility): a static OAuth access token of the integration user.
 *   It is never renewed: once Salesforce ends its session, every call fails non-retryably with
 *   INVALID_SESSION_ID until the secret is replaced.
 * The config schema stays a plain object (other files extend it); `salesforceAuthIssues` is the
 * "exactly one" refinement to apply after extending, and the connector refuses to start otherwise.
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
import { Connection, type TokenResponse } from 'jsforce';
import { z } from 'zod';
import type { Action, Credential, Discovery, Entitlement } from '../../model/plan.js';
import type { Subject } from '../../model/request.js';
import { defineConnector } from './descriptor.js';
import { ConnectorError, type ApplyResult, type Connector } from './types.js';

const isLocal = (url: URL) => url.hostname === '127.0.0.1' || url.hostname === 'localhost' || url.hostname === '[::1]';

export const salesforceSystemSchema = z.object({
  type: z.literal('salesforce'),
  /** `https://<mydomain>.my.salesforce.com` (plain http only for a local stand-in). */
  instanceUrl: z
    .url()
    .refine((value) => {
      const url = new URL(value);
      return url.protocol === 'https:' || isLocal(url);
    }, 'an https:// URL (http:// only for 127.0.0.1/localhost)')
    .transform((value) => value.replace(/\/+$/, '')),
  /**
   * A static OAuth access token of the integration user: a secret. It expires with its session and
   * is not renewed; prefer clientCredentials. Exactly one of the two (see salesforceAuthIssues).
   */
  accessToken: z.string().min(1).optional(),
  /** The Connected App's client credentials flow: sessions are requested and renewed as needed. */
  clientCredentials: z
    .object({
      /** The app's Consumer Key. */
      clientId: z.string().min(1),
      /** The app's Consumer Secret: a secret. */
      clientSecret: z.string().min(1),
    })
    .optional(),
  /** The REST API version; jsforce's own default (50.0) is too old for some fields used here. */
  apiVersion: z
    .string()
    .regex(/^\d{2,3}\.0$/, 'like 62.0')
    .default('62.0'),
  /** How long one HTTP request may take before it counts as a (retryable) failure. */
  timeoutMs: z.number().int().positive().default(30_000),
});
export type SalesforceSystemConfig = z.infer<typeof salesforceSystemSchema>;

export const salesforceConnector = defineConnector({
  type: 'salesforce',
  configSchema: salesforceSystemSchema,
  secretFields: ['accessToken', 'clientCredentials.clientSecret'],
  refine: salesforceAuthIssues,
  capabilities: {
    actions: ['disable_login', 'enable_login', 'revoke_sessions', 'revoke_tokens', 'remove_entitlement'],
    discover: true,
    verify: true,
    check: true,
  },
  create: (config, { system }) => createSalesforceConnector(system, config),
});

const present = (value: unknown) => value !== undefined && value !== null && value !== '';

/** What is wrong with a config's credentials (not exactly one of the two), or undefined. */
function authProblem(config: { accessToken?: unknown; clientCredentials?: unknown }): string | undefined {
  const token = present(config.accessToken);
  const client = present(config.clientCredentials);
  if (token && client)
    return 'give either clientCredentials or accessToken, not both: with client credentials, remove accessToken';
  if (!token && !client) {
    return 'no credentials: give clientCredentials ({ clientId, clientSecret }: the Consumer Key and Secret of a Connected App with the client credentials flow and a run-as user; sessions are renewed automatically), or an accessToken (static, not renewed when it expires)';
  }
  return undefined;
}

/**
 * The refinement a Salesforce system's config needs: exactly one of `accessToken` and
 * `clientCredentials`; otherwise an issue at path `['accessToken']` saying what to give. It is not
 * on salesforceSystemSchema itself, which stays a plain object because zod 4 refuses `.extend()` on
 * a refined object: extend first, then `.superRefine(salesforceAuthIssues)`.
 */
export function salesforceAuthIssues(
  config: { accessToken?: unknown; clientCredentials?: unknown },
  ctx: z.RefinementCtx,
): void {
  const problem = authProblem(config);
  if (problem) ctx.addIssue({ code: 'custom', path: ['accessToken'], message: problem });
}

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
    // The OAuth endpoints answer `{error, error_description}`.
    const { error, error_description: description } = (first ?? {}) as { error?: unknown; error_description?: unknown };
    if (typeof error === 'string') return typeof description === 'string' ? `${error}: ${description}` : error;
  } catch {
    // not JSON: a proxy's page; its status says enough
  }
  return 'no error details';
}

/** 429 and 5xx are classified here, where status and headers are still known. */
function transientFailure(response: HttpResponse): ConnectorError | undefined {
  const status = response.statusCode;
  if (status === 429) {
    return new ConnectorError(
      `rate limited (429, ${messageIn(response.body)}); retried after Retry-After`,
      true,
      'salesforce_429',
      retryAfterMs(response.headers['retry-after']),
    );
  }
  if (status >= 500) {
    const after = response.headers['retry-after'];
    return new ConnectorError(
      `answered ${status} (${messageIn(response.body)}); retried`,
      true,
      `salesforce_${status}`,
      after ? retryAfterMs(after) : undefined,
    );
  }
  return undefined;
}

/**
 * Wraps jsforce's transport so that each request is sent exactly once (no built-in retries), with
 * a timeout, and so that 429/5xx surface with their Retry-After.
 */
function oneAttemptTransport(inner: Transport, timeoutMs: number, onResponse?: (status: number) => void): Transport {
  return {
    getRequestStreamCreator: () => inner.getRequestStreamCreator(),
    httpRequest(request, options = {}) {
      const pending = inner.httpRequest(request, {
        ...options,
        timeout: timeoutMs,
        retry: { maxRetries: 0, methods: [], statusCodes: [], errorCodes: [] },
      });
      const checked = pending.then((response) => {
        onResponse?.(response.statusCode);
        const failure = transientFailure(response);
        if (failure) throw failure;
        return response;
      });
      return Object.assign(checked, { stream: () => pending.stream() });
    },
  };
}

/** Why a request got no answer (socket errors, timeouts); the URL, which carries SOQL and so an email, stays out. */
function networkReason(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  // jsforce aborts a request that outlives its timeout (AbortError), or reports 'Request Timeout'.
  const timedOut = err instanceof Error && (err.name === 'AbortError' || err.message === 'Request Timeout');
  return timedOut ? 'no answer within the timeout' : typeof code === 'string' ? code : 'network error';
}

type AuthMode = 'accessToken' | 'clientCredentials';

function classify(err: unknown, doing: string, auth: AuthMode = 'accessToken'): ConnectorError {
  const prefix = `Salesforce ${doing}`;
  if (err instanceof ConnectorError)
    return new ConnectorError(`${prefix}: ${err.message}`, err.retryable, err.code, err.retryAfterMs);
  const sf = salesforceError(err);
  if (!sf)
    return new ConnectorError(
      `${prefix} failed: ${networkReason(err)}; Salesforce may be unreachable`,
      true,
      'salesforce_unreachable',
    );
  const { errorCode, message } = sf;
  const code = `salesforce_${errorCode.toLowerCase()}`;
  if (errorCode === 'INVALID_SESSION_ID' && auth === 'clientCredentials') {
    // jsforce renews on a 401 except for the answers it knows a new session would not cure.
    return new ConnectorError(
      `${prefix} failed: Salesforce refused the session issued to the Connected App (INVALID_SESSION_ID: ${message}): check the app's OAuth scopes (it needs "api"), its session and IP policies, and that its run-as user may use the API`,
      false,
      code,
    );
  }
  if (errorCode === 'INVALID_SESSION_ID') {
    return new ConnectorError(
      `${prefix} failed: the access token expired or is invalid (INVALID_SESSION_ID): issue a new token for the integration user and update the accessToken secret, or configure clientCredentials so that sessions are renewed automatically`,
      false,
      code,
    );
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
    return new ConnectorError(
      `${prefix} failed: ${message} — the integration user needs "Manage Users" to read UserLogin and AuthSession; give it that permission, then retry`,
      false,
      code,
    );
  }
  if (errorCode === 'REQUEST_LIMIT_EXCEEDED') {
    if (/concurrent/i.test(message)) {
      return new ConnectorError(
        `${prefix}: too many concurrent long-running requests in the org (${message}); retried shortly`,
        true,
        'salesforce_concurrent_limit',
        CONCURRENT_LIMIT_PAUSE_MS,
      );
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
    return new ConnectorError(
      `${prefix} failed: no free Salesforce licence to reactivate the user (${message}): free or buy a licence, then retry`,
      false,
      code,
    );
  }
  return new ConnectorError(`${prefix} failed: ${errorCode}: ${message}`, false, code);
}

const RUN_AS_USER =
  'the app needs "Enable Client Credentials Flow" on, with a run-as user: the integration user (active, API Enabled, with "Manage Users" and "Customize Application")';

/**
 * A failed session request of the client credentials flow, classified. jsforce's OAuth2 throws the
 * token endpoint's `{error, error_description}` as an Error named after `error` (ERROR_HTTP_<status>
 * when the body is not JSON); 429/5xx arrive already classified by the transport; anything else
 * got no answer. The secret never reaches the message, even if an odd answer echoed it.
 */
function sessionFailure(
  err: unknown,
  client: { clientId: string; clientSecret: string },
  tokenUrl: string,
): ConnectorError {
  const redact = (text: string) => text.split(client.clientSecret).join('[redacted]').slice(0, 500);
  const doing = 'getting a session (OAuth client credentials flow)';
  if (err instanceof ConnectorError)
    return new ConnectorError(redact(`${doing}: ${err.message}`), err.retryable, err.code, err.retryAfterMs);
  const name = err instanceof Error ? err.name : '';
  if (!/^[a-z]+(?:_[a-z]+)*$/.test(name) && !/^ERROR_HTTP_\d{3}$/.test(name)) {
    return new ConnectorError(
      `${doing} failed: ${networkReason(err)}; the token endpoint ${tokenUrl} may be unreachable`,
      true,
      'salesforce_unreachable',
    );
  }
  const refusal = redact(`${name}: ${(err as Error).message}`);
  const fail = (what: string) =>
    new ConnectorError(`${doing} failed: ${what}`, false, `salesforce_${name.toLowerCase()}`);
  switch (name) {
    case 'invalid_client_id':
      return fail(
        `the org does not know clientCredentials.clientId "${client.clientId}" (${refusal}): set it to the Consumer Key of the Connected App (or External Client App) in this org; ${RUN_AS_USER}`,
      );
    case 'invalid_client':
      return fail(
        `the Consumer Secret was refused for clientCredentials.clientId "${client.clientId}" (${refusal}): set clientCredentials.clientSecret to the app's current Consumer Secret (Manage Consumer Details; update it here after a rotation); ${RUN_AS_USER}`,
      );
    case 'invalid_grant':
      return fail(
        `Salesforce refused the client credentials grant (${refusal}): ${RUN_AS_USER}; set it in the app's OAuth policies`,
      );
    case 'unsupported_grant_type':
      return fail(
        `${tokenUrl} does not accept the client credentials grant (${refusal}): instanceUrl must be the org's My Domain URL (https://<mydomain>.my.salesforce.com), and ${RUN_AS_USER}`,
      );
    case 'inactive_user':
      return fail(
        `the app's run-as user is inactive (${refusal}): reactivate it or choose another run-as user in the app's OAuth policies`,
      );
    case 'inactive_org':
      return fail(`the org is inactive or locked (${refusal}): check instanceUrl and the org's status`);
    case 'rate_limit_exceeded':
      return new ConnectorError(
        `${doing}: too many session requests (${refusal}); retried later`,
        true,
        'salesforce_rate_limit_exceeded',
        DEFAULT_RETRY_AFTER_MS,
      );
    default:
      return fail(`${refusal}; check clientCredentials and the app's OAuth policies (${RUN_AS_USER})`);
  }
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
  if (!SALESFORCE_ID.test(id))
    throw new ConnectorError(`Salesforce: ${what} "${id}" is not a Salesforce record id`, false, 'bad_action');
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
  const problem = authProblem(config);
  if (problem) throw new Error(`Salesforce system "${system}": ${problem}`);
  const client = config.clientCredentials;
  const auth: AuthMode = client ? 'clientCredentials' : 'accessToken';

  // Client credentials: one session for every call, requested when first needed, renewed on expiry.
  let firstSession: Promise<void> | undefined;
  /** Sessions issued by renewal since a data request last succeeded: one more 401 means the new session is refused too. */
  let renewalsUnproven = 0;
  /** jsforce wraps a refreshFn's error in a plain Error; this is the classified original. */
  let lastSessionFailure: ConnectorError | undefined;

  // The token and revoke endpoints are the org's own (My Domain), not login.salesforce.com.
  const conn = client
    ? new Connection({
        instanceUrl: config.instanceUrl,
        loginUrl: config.instanceUrl,
        version: config.apiVersion,
        oauth2: { clientId: client.clientId, clientSecret: client.clientSecret, loginUrl: config.instanceUrl },
        // Called by jsforce on a 401 INVALID_SESSION_ID; it then repeats the request with the new session.
        refreshFn: (_conn, callback) => renewSession(callback),
      })
    : new Connection({
        instanceUrl: config.instanceUrl,
        loginUrl: config.instanceUrl,
        accessToken: config.accessToken,
        version: config.apiVersion,
      });
  // A data answer other than 401 proves the current session works.
  conn._transport = oneAttemptTransport(conn._transport, config.timeoutMs, (status) => {
    if (status !== 401) renewalsUnproven = 0;
  });
  conn.oauth2._transport = oneAttemptTransport(conn.oauth2._transport, config.timeoutMs);

  async function requestSession(): Promise<string> {
    try {
      await conn.authorize({ grant_type: 'client_credentials' });
    } catch (err) {
      lastSessionFailure = sessionFailure(err, client!, conn.oauth2.tokenServiceUrl);
      throw lastSessionFailure;
    }
    if (!conn.accessToken) {
      lastSessionFailure = new ConnectorError(
        'getting a session (OAuth client credentials flow) failed: the token endpoint answered no access_token',
        false,
        'salesforce_no_access_token',
      );
      throw lastSessionFailure;
    }
    return conn.accessToken;
  }

  function renewSession(callback: (err: Error | null, accessToken?: string, response?: TokenResponse) => void): void {
    if (renewalsUnproven > 0) {
      // The session just issued was refused as well: another one would be too, and jsforce would loop.
      renewalsUnproven = 0;
      lastSessionFailure = new ConnectorError(
        'a newly issued session was refused as well (INVALID_SESSION_ID): check the Connected App\'s OAuth scopes (it needs "api"), its session and IP policies, and that its run-as user is active and API Enabled',
        false,
        'salesforce_session_refused',
      );
      callback(lastSessionFailure);
      return;
    }
    requestSession().then(
      (accessToken) => {
        renewalsUnproven += 1; // until a data request with it succeeds
        callback(null, accessToken);
      },
      (err: unknown) => callback(err as Error),
    );
  }

  async function ensureSession(): Promise<void> {
    if (!client || conn.accessToken) return;
    firstSession ??= requestSession()
      .then(() => undefined)
      .finally(() => {
        firstSession = undefined;
      });
    await firstSession;
  }

  /** A session failure that reached us through jsforce's renewal, as classified here. */
  function sessionFailureIn(err: unknown): ConnectorError | undefined {
    if (!lastSessionFailure || err instanceof ConnectorError || !(err instanceof Error)) return undefined;
    return err.message.includes(lastSessionFailure.message) ? lastSessionFailure : undefined;
  }

  async function guarded<T>(doing: string, work: () => Promise<T>): Promise<T> {
    try {
      await ensureSession();
      return await work();
    } catch (err) {
      throw classify(sessionFailureIn(err) ?? err, doing, auth);
    }
  }

  async function query<T extends Record<string, unknown>>(soql: string): Promise<T[]> {
    const result = await conn.query<T>(soql, { autoFetch: true, maxFetch: 10_000 });
    return result.records;
  }

  async function findUser(subject: Subject): Promise<UserRow | undefined> {
    const fields = 'SELECT Id, IsActive, FederationIdentifier FROM User';
    const byFederation = await query<UserRow>(
      `${fields} WHERE FederationIdentifier = ${soqlString(subject.employeeId)} LIMIT 2`,
    );
    if (byFederation.length > 1) {
      throw new ConnectorError(
        `Salesforce: ${byFederation.length} users have FederationIdentifier ${subject.employeeId} (${byFederation.map((u) => u.Id).join(', ')}); refusing to guess — make it unique`,
        false,
        'ambiguous_identity',
      );
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
  const loginOf = async (userId: string) =>
    (await query<UserLoginRow>(`SELECT Id, IsFrozen FROM UserLogin WHERE UserId = ${soqlString(userId)}`))[0];
  const tokensOf = (userId: string) =>
    query<TokenRow>(`SELECT AppName, DeleteToken FROM OauthToken WHERE UserId = ${soqlString(userId)}`);
  const sessionsOf = (userId: string) =>
    query<SessionRow>(`SELECT Id, SessionType FROM AuthSession WHERE UsersId = ${soqlString(userId)}`);

  async function userById(userId: string): Promise<UserRow> {
    const [user] = await query<UserRow>(
      `SELECT Id, IsActive, FederationIdentifier FROM User WHERE Id = ${soqlString(userId)}`,
    );
    if (!user) {
      // Users are never deleted in Salesforce: a missing one means another org, not "already gone".
      throw new ConnectorError(
        `Salesforce: user ${userId} does not exist in this org; users cannot be deleted, so check that instanceUrl points at the org discover used`,
        false,
        'account_not_found',
      );
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
      if (!login)
        throw new ConnectorError(
          `Salesforce refused to deactivate user ${userId} (${refusal.errorCode}: ${refusal.message}) and it has no UserLogin to freeze; deactivate it by hand`,
          false,
          'salesforce_cannot_disable',
        );
      const details = {
        userId,
        deactivated: false,
        frozen: true,
        deactivationRefused: `${refusal.errorCode}: ${refusal.message}`,
        note: 'frozen, not deactivated: the licence stays in use until the blocker is removed and the user deactivated',
      };
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
      return {
        outcome: 'done',
        details: {
          userId,
          reactivated: true,
          ...(login?.IsFrozen ? { stillFrozen: true, note: 'a freeze placed by someone else stays' } : {}),
        },
      };
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
    return {
      outcome: ended > 0 ? 'done' : 'already',
      details: { userId, sessionsEnded: ended, sessionsFound: sessions.length },
    };
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
        else
          throw new ConnectorError(
            `revoking an OAuth token of ${token.AppName ?? 'an app'} was refused (${refusal}); revoke it in Setup > Connected Apps OAuth Usage`,
            false,
            'salesforce_revoke_refused',
          );
      }
    }
    const apps = [...new Set(tokens.map((t) => t.AppName ?? 'unknown app'))];
    // An OAuth revocation endpoint may answer 200 for a token it did not revoke (RFC 7009 §2.2):
    // the OauthToken rows, read back, say whether the grants went.
    const left = (await tokensOf(userId)).filter((row) => tokens.some((t) => t.Id === row.Id));
    if (left.length > 0) {
      throw new ConnectorError(
        `Salesforce accepted revoking ${left.length} OAuth token(s) of user ${userId} (${[...new Set(left.map((t) => t.AppName ?? 'unknown app'))].join(', ')}) but they are still listed; revoke them in Setup > Connected Apps OAuth Usage`,
        false,
        'salesforce_revoke_ineffective',
      );
    }
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
    return {
      outcome: removed.length > 0 ? 'done' : 'already',
      details: { userId, permissionSet: target.id, assignmentsRemoved: removed },
    };
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
        return {
          outcome: 'not_applicable',
          details: {
            userId,
            reason:
              'Salesforce users cannot be deleted, only deactivated (disable_login); the record stays for the audit history',
          },
        };
      case 'transfer_ownership':
        return {
          outcome: 'not_applicable',
          details: {
            userId,
            reason: 'records keep their inactive owner; reassign them with Mass Transfer in Setup if needed',
          },
        };
    }
  }

  return {
    system,
    async discover(subject: Subject): Promise<Discovery> {
      return guarded('discover', async () => {
        const user = await findUser(subject);
        if (!user) return { system, account: null, entitlements: [], credentials: [] };
        const [assignments, login, tokens, sessions] = await Promise.all([
          assignmentsOf(user.Id),
          loginOf(user.Id),
          tokensOf(user.Id),
          sessionsOf(user.Id),
        ]);
        const entitlements: Entitlement[] = assignments.map((a) => ({
          id: qualifiedName(a.PermissionSet.Name, a.PermissionSet.NamespacePrefix),
          kind: 'permission_set',
          name: a.PermissionSet.Label,
        }));
        const credentials: Credential[] = [
          ...sessions.map((s) => ({ id: s.Id, kind: 'session' as const })),
          ...tokens.map((t) => ({
            id: tokenCredentialId(t.AppName ?? 'unknown app', t.DeleteToken),
            kind: 'token' as const,
          })),
        ];
        // Salesforce users cannot be deleted: deactivated (or frozen) is as gone as they get.
        return {
          system,
          account: { id: user.Id, disabled: !user.IsActive || Boolean(login?.IsFrozen) },
          entitlements,
          credentials,
          permanentAccounts: true,
        };
      });
    },
    apply,
    async check() {
      // Any authenticated read proves the URL, the API version and the token.
      await guarded('check', async () => {
        await conn.query("SELECT Id FROM User WHERE Id = '005000000000000AAA' LIMIT 1");
      });
    },
    async close() {},
  };
}
