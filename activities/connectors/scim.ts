/**
 * Any SCIM 2.0 service provider (RFC 7643 schema, RFC 7644 protocol), through Node's fetch.
 * Several apps can be configured, each its own system with its own base URL and token.
 *
 * The person is found with `GET /Users?filter=<attr> eq "<value>"` on `userName`, `externalId`
 * or `emails.value` (the value is a JSON string literal, so `"` and `\` are escaped) and then
 * addressed by the SCIM `id`. No match is "no account"; more than one is `ambiguous_identity`.
 *
 * Actions:
 * Group memberships come from the User's `groups` attribute when the app's User resources carry
 * it, and from /Groups otherwise (`members.value eq "<id>"`, or, where the server refuses or
 * ignores that filter — found out, not assumed — every group read with its members).
 *
 * Every write is read back, and `already` is said only when a read shows the effect in place:
 * - disable_login: `PATCH /Users/{id}` PatchOp `replace active false`, with `If-Match` set to the
 *   ETag of the GET just before; a 412 re-reads and tries once more within the call.
 * - enable_login: the same with `active true`; a user who was deleted cannot be re-enabled.
 * - remove_entitlement: a group → read the group; not listed (or gone) is `already`; otherwise
 *   `PATCH /Groups/{groupId}` `remove members[value eq "<id>"]` (then the `members` + value form)
 *   and read the group back: still listed fails. A role or entitlement value →
 *   `PATCH /Users/{id}` `remove roles[value eq "..."]` / `entitlements[value eq "..."]`.
 * - delete_account: `DELETE /Users/{id}` (204; 404 = already) and read back, or only
 *   deactivation when `deleteOnDelete` is false (apps whose DELETE is irreversible or not allowed).
 * - check: authenticated reads of /Users and /Groups (not /ServiceProviderConfig, which RFC 7643
 *   §5 has served without authentication), and one read of /Users without a token, which must
 *   be refused: an app that answers it checks no token at all.
 * - revoke_sessions, revoke_tokens, transfer_ownership: not_applicable. SCIM has no session or
 *   token resource; whether deactivation ends live sessions is up to each app.
 *
 * Errors follow RFC 7644 §3.12 (`urn:ietf:params:scim:api:messages:2.0:Error` with `status`,
 * `scimType`, `detail`). 429 and 5xx (but 501) are retryable with `Retry-After` (seconds or an
 * HTTP date); 400, 401, 403, 409 and 501 are not. Each request is one attempt: Temporal retries.
 */
import { z } from 'zod';
import type { Action, Discovery, Entitlement } from '../../model/plan.js';
import type { Subject } from '../../model/request.js';
import { defineConnector } from './descriptor.js';
import { ConnectorError, type ApplyResult, type Connector } from './types.js';

export const scimSystemSchema = z.object({
  type: z.literal('scim'),
  /** The SCIM root, e.g. `https://app.example.com/scim/v2` (no trailing `/Users`). */
  baseUrl: z
    .string()
    .regex(/^https?:\/\/[^/]+/, 'an http(s):// URL of the SCIM root, e.g. https://app.example.com/scim/v2'),
  /** The app's SCIM bearer token: a secret. */
  bearerToken: z.string().min(1),
  /** Which User attribute identifies the person. */
  matchBy: z.enum(['userName', 'externalId', 'email']).default('userName'),
  /**
   * What it is compared with: `{email}`, `{emailLocalPart}` and `{employeeId}` are filled in.
   * Defaults to `{employeeId}` for externalId and `{email}` otherwise.
   */
  matchValue: z.string().min(1).optional(),
  /**
   * Where group memberships are read. `auto`: from the User's `groups` attribute when the app's
   * User resources carry it, from /Groups when they do not (told by each resource, not assumed).
   * `groups`: always from /Groups (apps whose `groups` on Users is stale or partial).
   */
  groupsFrom: z.enum(['auto', 'groups']).default('auto'),
  /** false: delete_account only deactivates (apps where DELETE is refused or irreversible). */
  deleteOnDelete: z.boolean().default(true),
  timeoutMs: z.number().int().positive().default(15_000),
});
export type ScimSystemConfig = z.infer<typeof scimSystemSchema>;

export const scimConnector = defineConnector({
  type: 'scim',
  configSchema: scimSystemSchema,
  secretFields: ['bearerToken'],
  capabilities: {
    actions: ['disable_login', 'enable_login', 'remove_entitlement', 'delete_account'],
    discover: true,
    verify: true,
    check: true,
  },
  create: (config, { system }) => createScimConnector(system, config),
});
export type ScimSystemInput = z.input<typeof scimSystemSchema>;

const PATCH_OP = 'urn:ietf:params:scim:api:messages:2.0:PatchOp';
const MEDIA_TYPE = 'application/scim+json';

const multiValueSchema = z.looseObject({
  value: z.coerce.string(),
  display: z.string().optional(),
  type: z.string().optional(),
});
const userSchema = z.looseObject({
  id: z.string().min(1),
  userName: z.string().optional(),
  externalId: z.string().optional(),
  active: z.boolean().optional(),
  emails: z.array(z.looseObject({ value: z.string() })).optional(),
  groups: z.array(multiValueSchema).optional(),
  roles: z.array(multiValueSchema).optional(),
  entitlements: z.array(multiValueSchema).optional(),
  meta: z.looseObject({ version: z.string().optional() }).optional(),
});
type ScimUser = z.infer<typeof userSchema>;
const listSchema = <T extends z.ZodType>(resource: T) =>
  z.looseObject({
    totalResults: z.number().int().nonnegative(),
    Resources: z.array(resource).optional(),
  });
const groupSchema = z.looseObject({
  id: z.string().min(1),
  displayName: z.string().optional(),
  members: z.array(multiValueSchema).optional(),
});
type ScimGroup = z.infer<typeof groupSchema>;

/** An RFC 7644 filter value: a JSON string literal, so `"` and `\` (and controls) are escaped. */
export const scimString = (value: string): string => JSON.stringify(value);

const FILTER_ATTRIBUTE = { userName: 'userName', externalId: 'externalId', email: 'emails.value' } as const;
const USER_ATTRIBUTE_KINDS = { role: 'roles', entitlement: 'entitlements' } as const;

/** Milliseconds to wait, from `Retry-After` (seconds or an HTTP date) or `X-RateLimit-Reset`. */
export function retryAfterMs(headers: Headers, now = Date.now()): number | undefined {
  const retryAfter = headers.get('retry-after')?.trim();
  if (retryAfter) {
    if (/^\d+$/.test(retryAfter)) return Number(retryAfter) * 1000;
    const at = Date.parse(retryAfter);
    if (!Number.isNaN(at)) return Math.max(0, at - now);
  }
  const reset = headers.get('x-ratelimit-reset')?.trim();
  if (reset && /^\d+$/.test(reset)) {
    const value = Number(reset);
    // Some apps send epoch seconds, others seconds to wait.
    return value > 1_000_000_000 ? Math.max(0, value * 1000 - now) : value * 1000;
  }
  return undefined;
}

interface ScimErrorBody {
  status?: string;
  scimType?: string;
  detail?: string;
}

function errorBody(text: string): ScimErrorBody {
  try {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    const pick = (key: string) =>
      typeof parsed[key] === 'string' || typeof parsed[key] === 'number' ? String(parsed[key]) : undefined;
    return { status: pick('status'), scimType: pick('scimType'), detail: pick('detail') ?? pick('message') };
  } catch {
    // Not SCIM JSON (a proxy's HTML page, plain text): keep a short excerpt for the operator.
    const excerpt = text.replace(/\s+/g, ' ').trim().slice(0, 200);
    return { detail: excerpt || undefined };
  }
}

const SCIM_TYPE_ADVICE: Record<string, string> = {
  invalidFilter: 'the app does not support this filter: choose another matchBy for this system',
  invalidPath: 'the app does not support this PATCH path',
  invalidValue: 'the app refused the value',
  mutability: 'the app does not allow this attribute to be changed over SCIM: change it in the app by hand',
  uniqueness: 'another resource already holds this value',
  tooMany: 'the filter matched more resources than the app will return: choose a more specific matchBy',
  noTarget: 'the path matched nothing',
  invalidSyntax: 'the app could not parse the request',
  invalidVers: 'the resource version (ETag) did not match',
};

function adviceFor(status: number, scimType: string | undefined): string {
  if (status === 401)
    return 'the bearer token is wrong, expired or revoked: issue a new SCIM token in the app and update bearerToken';
  if (status === 403)
    return 'the bearer token lacks rights for this operation: give the SCIM client write access to Users and Groups';
  if (status === 404) return 'not found: check that baseUrl is the SCIM root (e.g. https://app.example.com/scim/v2)';
  if (status === 409)
    return scimType ? (SCIM_TYPE_ADVICE[scimType] ?? 'conflict') : "conflict with the resource's current state";
  if (status === 501) return 'the app does not implement this SCIM operation: handle this action by hand for this app';
  if (status === 429) return 'rate limited: retry after the delay';
  if (status >= 500) return 'the app failed or is unavailable: retry later';
  return (scimType && SCIM_TYPE_ADVICE[scimType]) ?? 'the app refused the request';
}

interface ScimResponse {
  status: number;
  body: unknown;
  etag: string | undefined;
  error: ScimErrorBody;
}

interface CallOptions {
  body?: unknown;
  ifMatch?: string;
  /** Statuses the caller interprets itself instead of failing (404, 412, 400 noTarget...). */
  accept?: number[];
}

export function createScimConnector(system: string, config: ScimSystemConfig): Connector {
  const root = config.baseUrl.replace(/\/+$/, '');
  const label = `SCIM (${system})`;

  function failure(doing: string, status: number, error: ScimErrorBody, headers: Headers): ConnectorError {
    const what = [error.scimType, error.detail].filter(Boolean).join(': ');
    const message = `${label} ${doing} failed: HTTP ${status}${what ? ` ${what}` : ''} — ${adviceFor(status, error.scimType)}`;
    const retryable = status === 429 || (status >= 500 && status !== 501);
    return new ConnectorError(message, retryable, `scim_${status}`, retryable ? retryAfterMs(headers) : undefined);
  }

  async function call(method: string, path: string, doing: string, options: CallOptions = {}): Promise<ScimResponse> {
    const headers: Record<string, string> = {
      authorization: `Bearer ${config.bearerToken}`,
      accept: `${MEDIA_TYPE}, application/json`,
    };
    if (options.body !== undefined) headers['content-type'] = MEDIA_TYPE;
    if (options.ifMatch) headers['if-match'] = options.ifMatch;
    let response: Response;
    let text: string;
    try {
      response = await fetch(`${root}${path}`, {
        method,
        headers,
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: AbortSignal.timeout(config.timeoutMs),
      });
      text = await response.text();
    } catch (err) {
      throw unreachable(err, doing);
    }
    const error = response.ok ? {} : errorBody(text);
    if (!response.ok && !options.accept?.includes(response.status))
      throw failure(doing, response.status, error, response.headers);
    let body: unknown;
    if (response.ok && text.trim()) {
      try {
        body = JSON.parse(text);
      } catch {
        throw new ConnectorError(
          `${label} ${doing}: the answer (HTTP ${response.status}) is not SCIM JSON — check that baseUrl is the SCIM root (e.g. https://app.example.com/scim/v2)`,
          false,
          'scim_not_json',
        );
      }
    }
    return { status: response.status, body, etag: response.headers.get('etag') ?? undefined, error };
  }

  function unreachable(err: unknown, doing: string): ConnectorError {
    const name = (err as { name?: string }).name;
    if (name === 'TimeoutError' || name === 'AbortError') {
      return new ConnectorError(
        `${label} ${doing}: no answer within ${config.timeoutMs} ms; retry later or raise timeoutMs`,
        true,
        'scim_timeout',
      );
    }
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const reason = cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
    return new ConnectorError(
      `${label} ${doing}: cannot reach ${new URL(root).host} (${reason}); retry later, or check baseUrl`,
      true,
      'scim_unreachable',
    );
  }

  function parse<T extends z.ZodType>(schema: T, value: unknown, doing: string): z.infer<T> {
    const result = schema.safeParse(value);
    if (!result.success) {
      throw new ConnectorError(
        `${label} ${doing}: the answer is not a SCIM resource as RFC 7643 defines it (${result.error.issues[0]?.message ?? 'invalid'} at ${result.error.issues[0]?.path.join('.') ?? '?'}) — check baseUrl`,
        false,
        'scim_bad_response',
      );
    }
    return result.data;
  }

  const userPath = (id: string) => `/Users/${encodeURIComponent(id)}`;
  const groupPath = (id: string) => `/Groups/${encodeURIComponent(id)}`;
  const patchOp = (operations: object[]) => ({ schemas: [PATCH_OP], Operations: operations });

  async function getUser(id: string, doing: string): Promise<{ user: ScimUser; etag: string | undefined } | undefined> {
    const response = await call('GET', userPath(id), doing, { accept: [404] });
    if (response.status === 404) return undefined;
    const user = parse(userSchema, response.body, doing);
    return { user, etag: response.etag ?? user.meta?.version };
  }

  function matchValueFor(subject: Subject): string {
    const template = config.matchValue ?? (config.matchBy === 'externalId' ? '{employeeId}' : '{email}');
    if (template.includes('{email') && !subject.email) {
      throw new ConnectorError(
        `${label}: ${subject.employeeId} has no email, but this system matches ${config.matchBy} on "${template}"; send the email with the request, or set matchBy: externalId`,
        false,
        'missing_identifier',
      );
    }
    return template
      .replaceAll('{employeeId}', subject.employeeId)
      .replaceAll('{email}', subject.email ?? '')
      .replaceAll('{emailLocalPart}', subject.email?.split('@')[0] ?? '');
  }

  /** A guard against apps that ignore `filter` and list everyone: each answer must really match. */
  function matches(user: ScimUser, value: string): boolean {
    const same = (a: string | undefined) => a !== undefined && a.toLowerCase() === value.toLowerCase();
    if (config.matchBy === 'userName') return same(user.userName);
    if (config.matchBy === 'externalId') return user.externalId === value;
    return (user.emails ?? []).some((email) => same(email.value));
  }

  async function findUser(subject: Subject): Promise<ScimUser | undefined> {
    const value = matchValueFor(subject);
    const attribute = FILTER_ATTRIBUTE[config.matchBy];
    const filter = `${attribute} eq ${scimString(value)}`;
    const doing = `discover (${attribute} of ${subject.employeeId})`;
    // count=2 is enough to tell one match from several.
    const response = await call('GET', `/Users?filter=${encodeURIComponent(filter)}&startIndex=1&count=2`, doing);
    const list = parse(listSchema(userSchema), response.body, doing);
    const found = list.Resources ?? [];
    if (found.some((user) => !matches(user, value))) {
      throw new ConnectorError(
        `${label} ${doing}: the app answered users whose ${attribute} does not match — it seems to ignore the filter; choose another matchBy or handle this app by hand`,
        false,
        'scim_filter_ignored',
      );
    }
    if (list.totalResults > 1 || found.length > 1) {
      throw new ConnectorError(
        `${label}: ${list.totalResults} users match ${attribute} of ${subject.employeeId}; refusing to guess — make the ${attribute} unique in the app, or set matchBy to another attribute`,
        false,
        'ambiguous_identity',
      );
    }
    if (list.totalResults === 1 && found.length === 0) {
      throw new ConnectorError(
        `${label} ${doing}: totalResults is 1 but no resource was returned; the app's ListResponse is malformed`,
        false,
        'scim_bad_response',
      );
    }
    return found[0];
  }

  /**
   * A user's direct group memberships. A User resource that carries `groups` answers it (RFC 7643
   * makes it a read-only attribute the server computes); one that does not — servers that do not
   * compute it, or leave it out — is answered from /Groups, which holds the truth either way.
   */
  async function groupsOf(user: ScimUser, doing: string): Promise<Entitlement[]> {
    if (config.groupsFrom === 'auto' && user.groups !== undefined) {
      // Indirect memberships (through a nested group) end when the direct one is removed.
      return (user.groups ?? [])
        .filter((group) => group.type?.toLowerCase() !== 'indirect')
        .map((group) => ({ id: group.value, kind: 'group', name: group.display }));
    }
    const groups = await groupsListingMember(user.id, doing);
    return groups.map((group) => ({ id: group.id, kind: 'group', name: group.displayName }));
  }

  /**
   * Whether `GET /Groups?filter=members.value eq "<id>"` is answered truthfully here: learnt from
   * the server (a 400/501, groups returned that do not list the member, or an empty answer for a
   * member the server shows in a group), never assumed; kept for the connector's lifetime.
   */
  let membersFilter: 'unknown' | 'supported' | 'unsupported' = 'unknown';

  /** Every page of a /Groups listing; `undefined` when the server refuses the filter (400, 501). */
  async function listGroups(filter: string | undefined, doing: string): Promise<ScimGroup[] | undefined> {
    const groups: ScimGroup[] = [];
    const query = filter === undefined ? '' : `filter=${encodeURIComponent(filter)}&`;
    for (let startIndex = 1; ;) {
      const response = await call('GET', `/Groups?${query}startIndex=${startIndex}&count=100`, doing, {
        accept: filter === undefined ? [] : [400, 501],
      });
      if (response.status === 400 || response.status === 501) return undefined;
      const page = parse(listSchema(groupSchema), response.body, doing);
      const resources = page.Resources ?? [];
      groups.push(...resources);
      startIndex += resources.length;
      if (resources.length === 0 || groups.length >= page.totalResults) return groups;
    }
  }

  const lists = (group: ScimGroup, userId: string) => (group.members ?? []).some((m) => m.value === userId);

  async function groupsListingMember(userId: string, doing: string): Promise<ScimGroup[]> {
    if (membersFilter !== 'unsupported') {
      const found = await listGroups(`members.value eq ${scimString(userId)}`, doing);
      // A group returned with its members that does not list this one: the filter was ignored.
      const truthful = found?.every((group) => group.members === undefined || lists(group, userId));
      if (found && truthful && (found.length > 0 || membersFilter === 'supported')) {
        membersFilter = 'supported';
        return found;
      }
      if (!found || !truthful) membersFilter = 'unsupported';
      else membersFilter = (await membersFilterAnswersTruthfully(doing)) ?? 'unknown';
      if (membersFilter === 'supported') return [];
    }
    // The fallback: every group, read with its members (from the listing, or one by one).
    const memberOf: ScimGroup[] = [];
    for (const group of (await listGroups(undefined, doing)) ?? []) {
      const members = group.members !== undefined ? group : await readGroup(group.id, doing);
      if (members && lists(members, userId)) memberOf.push(group);
    }
    return memberOf;
  }

  /**
   * An empty answer to the members filter is "in no group" only if the server answers that filter
   * for a member it does show in a group. `undefined`: no group with members to ask about.
   */
  async function membersFilterAnswersTruthfully(doing: string): Promise<'supported' | 'unsupported' | undefined> {
    const response = await call('GET', '/Groups?startIndex=1&count=20', doing);
    const sample = (parse(listSchema(groupSchema), response.body, doing).Resources ?? []).find(
      (group) => (group.members ?? []).length > 0,
    );
    if (!sample) return undefined;
    const member = sample.members![0]!.value;
    const found = await listGroups(`members.value eq ${scimString(member)}`, doing);
    return found?.some((group) => group.id === sample.id) ? 'supported' : 'unsupported';
  }

  /** A group as the server holds it now; `undefined` when it is gone (404). */
  async function readGroup(groupId: string, doing: string): Promise<ScimGroup | undefined> {
    const response = await call('GET', groupPath(groupId), doing, { accept: [404] });
    if (response.status === 404) return undefined;
    return parse(groupSchema, response.body, doing);
  }

  function attributeEntitlements(user: ScimUser): Entitlement[] {
    return (
      Object.entries(USER_ATTRIBUTE_KINDS) as [keyof typeof USER_ATTRIBUTE_KINDS, 'roles' | 'entitlements'][]
    ).flatMap(([kind, attribute]) =>
      (user[attribute] ?? []).map((item) => ({ id: item.value, kind, name: item.display ?? item.value })),
    );
  }

  /**
   * Reads the user, asks `decide` for the operations, and PATCHes them with If-Match. On 412
   * (someone else changed the user meanwhile) it reads again and decides again, once. A 2xx is
   * not taken on trust: the user is read back (from the answer when it has one) and must agree.
   */
  async function patchUser(
    id: string,
    doing: string,
    decide: (user: ScimUser) => object[] | undefined,
    verify: (user: ScimUser) => boolean,
  ): Promise<'done' | 'already' | 'gone'> {
    for (let attempt = 1; attempt <= 2; attempt++) {
      const found = await getUser(id, doing);
      if (!found) return 'gone';
      const operations = decide(found.user);
      if (!operations) return 'already';
      const response = await call('PATCH', userPath(id), doing, {
        body: patchOp(operations),
        ifMatch: found.etag,
        accept: [400, 404, 412],
      });
      if (response.status === 404) return 'gone';
      if (response.status === 412) continue;
      if (response.status === 400 && response.error.scimType !== 'noTarget')
        throw failure(doing, 400, response.error, new Headers());
      // 204 (no body) or 400 noTarget (someone else made the change meanwhile): read it back.
      const returned = response.status === 200 ? userSchema.safeParse(response.body) : undefined;
      const after = returned?.success ? returned.data : (await getUser(id, doing))?.user;
      if (!after) return 'gone';
      if (!verify(after)) {
        throw new ConnectorError(
          `${label} ${doing}: the app answered HTTP ${response.status} to the PATCH but the user, read back, is unchanged; it may not support this change over SCIM — make it by hand`,
          false,
          'scim_patch_ignored',
        );
      }
      return response.status === 400 ? 'already' : 'done';
    }
    throw new ConnectorError(
      `${label} ${doing}: the user changed twice while being updated (412 Precondition Failed after re-reading); retry later`,
      true,
      'scim_412',
    );
  }

  const isActive = (user: ScimUser) => user.active !== false;
  const setActive = (id: string, active: boolean, doing: string) =>
    patchUser(
      id,
      doing,
      (user) => (isActive(user) === active ? undefined : [{ op: 'replace', path: 'active', value: active }]),
      (user) => isActive(user) === active,
    );

  /**
   * Membership is read on the Group, which holds it (RFC 7643 §4.2), before and after the PATCH:
   * a server may answer 204 to removing a member that is not there (scim2-server does) or 400
   * noTarget (others do; RFC 7644 allows both), so neither answer says what is true. A group
   * without `members` has none (RFC 7643 §2.5: unassigned and empty are the same). The user need
   * not exist any more: a server that does not cascade a DELETE keeps listing the deleted id.
   */
  async function removeFromGroup(userId: string, groupId: string, doing: string): Promise<'done' | 'already'> {
    const before = await readGroup(groupId, doing);
    if (!before || !lists(before, userId)) return 'already';
    // No If-Match: removing one member commutes with any other change to the group. The second
    // form (the value in the body, path `members`) is the one some apps accept instead.
    const forms = [
      { op: 'remove', path: `members[value eq ${scimString(userId)}]` },
      { op: 'remove', path: 'members', value: [{ value: userId }] },
    ];
    let answered = 0;
    for (const operation of forms) {
      const response = await call('PATCH', groupPath(groupId), doing, {
        body: patchOp([operation]),
        accept: [400, 404],
      });
      // The group went meanwhile, and the membership with it: not this call's doing.
      if (response.status === 404) return 'already';
      if (response.status === 400 && response.error.scimType !== 'noTarget') {
        if (operation === forms[0]) continue;
        throw failure(doing, 400, response.error, new Headers());
      }
      answered = response.status;
      const after = await readGroup(groupId, doing);
      if (!after || !lists(after, userId)) return 'done';
    }
    throw new ConnectorError(
      `${label} ${doing}: the app answered HTTP ${answered} to removing the member, but group ${groupId}, read back, still lists user ${userId}; remove them in the app by hand`,
      false,
      'scim_removal_ignored',
    );
  }

  async function apply(action: Action): Promise<ApplyResult> {
    const id = action.accountId;
    const doing = `${action.kind} (user ${id})`;
    switch (action.kind) {
      case 'disable_login': {
        const outcome = await setActive(id, false, doing);
        if (outcome === 'gone') return { outcome: 'already', details: { userId: id, note: 'user does not exist' } };
        return { outcome, details: { userId: id, active: false } };
      }
      case 'enable_login': {
        const outcome = await setActive(id, true, doing);
        if (outcome === 'gone')
          throw new ConnectorError(
            `${label}: user ${id} was deleted; it cannot be re-enabled — recreate it in the app if needed`,
            false,
            'account_gone',
          );
        return { outcome, details: { userId: id, active: true } };
      }
      case 'remove_entitlement': {
        const target = action.target;
        if (!target) throw new ConnectorError('remove_entitlement without a target', false, 'bad_action');
        if (target.kind === 'role' || target.kind === 'entitlement') {
          const attribute = USER_ATTRIBUTE_KINDS[target.kind];
          const holds = (user: ScimUser) => (user[attribute] ?? []).some((item) => item.value === target.id);
          const outcome = await patchUser(
            id,
            doing,
            (user) =>
              holds(user) ? [{ op: 'remove', path: `${attribute}[value eq ${scimString(target.id)}]` }] : undefined,
            (user) => !holds(user),
          );
          return {
            outcome: outcome === 'gone' ? 'already' : outcome,
            details: { userId: id, [target.kind]: target.id },
          };
        }
        const outcome = await removeFromGroup(id, target.id, doing);
        return { outcome, details: { userId: id, groupId: target.id, group: target.name } };
      }
      case 'delete_account': {
        if (!config.deleteOnDelete) {
          const outcome = await setActive(id, false, doing);
          return {
            outcome: outcome === 'gone' ? 'already' : outcome,
            details: { userId: id, deleted: false, active: false, note: 'deleteOnDelete is false: deactivated only' },
          };
        }
        const response = await call('DELETE', userPath(id), doing, { accept: [404] });
        if (response.status === 404)
          return { outcome: 'already', details: { userId: id, note: 'user does not exist' } };
        // Read back: an app that keeps the user after a 2xx has deleted nothing.
        const left = await getUser(id, doing);
        if (left && isActive(left.user)) {
          throw new ConnectorError(
            `${label} ${doing}: the app answered HTTP ${response.status} to DELETE but the user, read back, still exists and is active; delete or deactivate them in the app by hand`,
            false,
            'scim_delete_ignored',
          );
        }
        if (left)
          return {
            outcome: 'done',
            details: { userId: id, deleted: false, active: false, note: 'the app keeps deleted users, inactive' },
          };
        return { outcome: 'done', details: { userId: id, deleted: true } };
      }
      case 'revoke_sessions':
      case 'revoke_tokens':
      case 'transfer_ownership':
        return {
          outcome: 'not_applicable',
          details: {
            reason:
              'SCIM 2.0 has no session, token or ownership resources; whether deactivation ends live sessions is up to the app',
          },
        };
    }
  }

  return {
    system,
    async discover(subject: Subject): Promise<Discovery> {
      const user = await findUser(subject);
      if (!user) return { system, account: null, entitlements: [], credentials: [] };
      return {
        system,
        account: { id: user.id, disabled: user.active === false },
        entitlements: [...(await groupsOf(user, `discover (groups of ${user.id})`)), ...attributeEntitlements(user)],
        // SCIM has no sessions or tokens to list.
        credentials: [],
      };
    },
    apply,
    async check() {
      // Not /ServiceProviderConfig: RFC 7643 §5 has it served without authentication, so it
      // proves nothing about the token. These are the reads discovery makes.
      for (const collection of ['Users', 'Groups']) {
        const doing = `check (an authenticated read of /${collection})`;
        const response = await call('GET', `/${collection}?startIndex=1&count=1`, doing);
        parse(listSchema(z.looseObject({ id: z.string() })), response.body, doing);
      }
      // A server that answers without any token has not checked this one either: say so, since
      // then anyone who can reach it can read and change its users.
      const open = await fetch(`${root}/Users?startIndex=1&count=1`, {
        headers: { accept: `${MEDIA_TYPE}, application/json` },
        signal: AbortSignal.timeout(config.timeoutMs),
      }).catch((err: unknown) => {
        throw unreachable(err, 'check (a read of /Users without a token)');
      });
      await open.body?.cancel();
      if (open.ok) {
        throw new ConnectorError(
          `${label} check: the app answered GET /Users without any bearer token (HTTP ${open.status}), so the configured token was never checked and anyone who reaches ${new URL(root).host} can read and change its users — turn on authentication in the app`,
          false,
          'scim_unauthenticated',
        );
      }
    },
    async close() {},
  };
}
