/**
 * A stand-in SCIM 2.0 service provider (RFC 7643/7644) seeded from the sample organisation, on
 * 127.0.0.1 and a free port, under a configurable base path (default `/scim/v2`). Several can
 * run at once, one per configured SCIM app.
 *
 * Served: `/Users` (GET with filter/startIndex/count, POST), `/Users/{id}` (GET, PATCH, PUT,
 * DELETE), `/Groups` (GET), `/Groups/{id}` (GET, PATCH), `/ServiceProviderConfig`; ETags
 * `W/"n"` on every resource with `If-Match` checked on writes (412); `application/scim+json`;
 * the Error schema with `scimType`; Bearer auth (401, and 403 for writes by a read-only token)
 * everywhere but `/ServiceProviderConfig` (RFC 7643 §5). Like many real servers, and unless
 * configured otherwise, Users do not carry `groups` and a DELETE leaves the user's id in groups.
 * Filters: `eq ne co sw ew pr` joined by `and`/`or`, attribute names case-insensitive, userName
 * and emails compared case-insensitively, ids and externalId case-exactly. PATCH: add, remove,
 * replace with simple paths and `attr[value eq "..."]` value filters; a filter that matches
 * nothing is 400 noTarget.
 *
 * Not modelled: `/Schemas`, `/ResourceTypes`, `/Bulk`, `/Me`, `.search` (POST), sorting,
 * `attributes`/`excludedAttributes` (full resources are always returned), parentheses, `not`
 * and `gt/ge/lt/le` in filters, nested groups (so no `indirect` memberships), the Enterprise
 * User extension, `If-None-Match`, and rate limits other than the injected ones.
 *
 * Seed: userName = the sample email, externalId = the employee id; groups Engineering, Finance
 * and App Admins (from engineering, finance, domain-admins); App Admins members hold the role
 * `admin`, Finance members the entitlement `invoices:approve`; E1040 is inactive; E1039's email
 * is also on a second user (`<uid>-admin`), so matching by email is ambiguous for them.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SAMPLE_PEOPLE } from './org.js';

export const SCIM_DEFAULT_TOKEN = 'scim-sandbox-token';
export const SCIM_DEFAULT_READ_ONLY_TOKEN = 'scim-sandbox-read-only-token';
/** The person whose email is on two users with different userNames. */
export const SCIM_SHARED_EMAIL_EMPLOYEE_ID = 'E1039';
/** The person whose user is inactive from the start. */
export const SCIM_INACTIVE_EMPLOYEE_ID = 'E1040';

const SCHEMA = {
  user: 'urn:ietf:params:scim:schemas:core:2.0:User',
  group: 'urn:ietf:params:scim:schemas:core:2.0:Group',
  list: 'urn:ietf:params:scim:api:messages:2.0:ListResponse',
  patch: 'urn:ietf:params:scim:api:messages:2.0:PatchOp',
  error: 'urn:ietf:params:scim:api:messages:2.0:Error',
  config: 'urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig',
};

export interface ScimValue {
  value: string;
  display?: string;
  type?: string;
  primary?: boolean;
}

export interface ScimUserRecord {
  id: string;
  userName: string;
  externalId?: string;
  displayName?: string;
  name?: { givenName?: string; familyName?: string; formatted?: string };
  emails: ScimValue[];
  active: boolean;
  roles: ScimValue[];
  entitlements: ScimValue[];
  version: number;
  created: string;
  lastModified: string;
}

export interface ScimGroupRecord {
  id: string;
  displayName: string;
  externalId?: string;
  members: { value: string; display?: string; type?: 'User' }[];
  version: number;
  created: string;
  lastModified: string;
}

export interface ScimSandboxState {
  users: ScimUserRecord[];
  groups: ScimGroupRecord[];
  /** Every API request (not /_sandbox), for tests that check headers such as If-Match. */
  requests: { method: string; path: string; ifMatch?: string; status: number }[];
}

export interface ScimFaults {
  /** Delay before every answer. */
  latencyMs?: number;
  /** Share of requests (0..1) answered with `serverErrorStatus`; deterministic, not random. */
  serverErrorRate?: number;
  serverErrorStatus?: number;
  /** The next `count` requests get 429 with `Retry-After` (seconds, or an HTTP date). */
  rateLimit?: { count: number; retryAfterSeconds: number; httpDate?: boolean };
  /** The next N requests have their connection destroyed without an answer. */
  resets?: number;
  /** The next N single-user GETs are followed by another client's write (the ETag moves on). */
  concurrentWrites?: number;
  /** PATCH and DELETE answer 204 and change nothing (an app that drops what it cannot apply). */
  ignoreWrites?: boolean;
}

export interface ScimSandboxOptions {
  /** Default: a free port. */
  port?: number;
  /** Default `/scim/v2`. */
  basePath?: string;
  token?: string;
  /** A token that may read but not write (403 on writes). */
  readOnlyToken?: string;
  /**
   * Compute `groups` on User resources. Off by default: many servers (scim2-server among them)
   * never fill that read-only attribute, so a client must not count on it.
   */
  userGroupsAttribute?: boolean;
  /**
   * DELETE /Users/{id} also takes the user out of every group. Off by default: many servers
   * (scim2-server among them) keep listing a deleted user's id in the groups they were in.
   */
  deleteRemovesMemberships?: boolean;
  /**
   * How `GET /Groups?filter=members.value eq "..."` is answered: `supported` (default);
   * `refused` (400 invalidFilter); `ignored` (every group, as if there were no filter); `empty`
   * (no group at all) — each seen in real apps that cannot filter groups by member.
   */
  groupMembersFilter?: 'supported' | 'refused' | 'ignored' | 'empty';
  /** Attributes the app can filter Users on (lower-case paths); others answer 400 invalidFilter. */
  userFilterAttributes?: string[];
}

export interface ScimSandbox {
  /** The SCIM root: `http://127.0.0.1:PORT/scim/v2`. */
  url: string;
  state: ScimSandboxState;
  inject(faults: ScimFaults): void;
  reset(): void;
  stop(): Promise<void>;
}

const SEED_TIME = '2024-01-02T03:04:05.000Z';

/** Deterministic opaque ids in UUID form, as most apps hand out. */
function idFor(kind: string, key: string): string {
  const hex = createHash('sha256').update(`${kind}:${key}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

const SEED_GROUPS: { displayName: string; from: string }[] = [
  { displayName: 'Engineering', from: 'engineering' },
  { displayName: 'Finance', from: 'finance' },
  { displayName: 'App Admins', from: 'domain-admins' },
];

/** The sample organisation as SCIM records: what the stand-in starts with, and what tests load into other servers. */
export function scimSeed(): Pick<ScimSandboxState, 'users' | 'groups'> {
  const users: ScimUserRecord[] = SAMPLE_PEOPLE.map((person) => ({
    id: idFor('user', person.employeeId),
    userName: person.email,
    externalId: person.employeeId,
    displayName: `${person.givenName} ${person.sn}`,
    name: { givenName: person.givenName, familyName: person.sn, formatted: `${person.givenName} ${person.sn}` },
    emails: [{ value: person.email, type: 'work', primary: true }],
    active: person.employeeId !== SCIM_INACTIVE_EMPLOYEE_ID,
    roles: person.groups.includes('domain-admins') ? [{ value: 'admin', display: 'Administrator', primary: true }] : [],
    entitlements: person.groups.includes('finance') ? [{ value: 'invoices:approve', display: 'Approve invoices' }] : [],
    version: 1,
    created: SEED_TIME,
    lastModified: SEED_TIME,
  }));
  const shared = SAMPLE_PEOPLE.find((p) => p.employeeId === SCIM_SHARED_EMAIL_EMPLOYEE_ID);
  if (shared) {
    users.push({
      id: idFor('user', `${shared.employeeId}-admin`),
      userName: `${shared.uid}-admin`,
      displayName: `${shared.givenName} ${shared.sn} (admin account)`,
      emails: [{ value: shared.email, type: 'work', primary: true }],
      active: true,
      roles: [],
      entitlements: [],
      version: 1,
      created: SEED_TIME,
      lastModified: SEED_TIME,
    });
  }
  const groups: ScimGroupRecord[] = SEED_GROUPS.map((group) => ({
    id: idFor('group', group.from),
    displayName: group.displayName,
    externalId: group.from,
    members: SAMPLE_PEOPLE.filter((p) => p.groups.includes(group.from)).map((p) => ({
      value: idFor('user', p.employeeId),
      display: `${p.givenName} ${p.sn}`,
      type: 'User' as const,
    })),
    version: 1,
    created: SEED_TIME,
    lastModified: SEED_TIME,
  }));
  return { users, groups };
}

// ---- Errors -----------------------------------------------------------------------------------

class ScimProblem extends Error {
  constructor(
    readonly status: number,
    readonly detail: string,
    readonly scimType?: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
  }
}
const invalid = (scimType: string, detail: string) => new ScimProblem(400, detail, scimType);

// ---- Filters (RFC 7644 §3.4.2.2, the subset above) -------------------------------------------

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
type Comparison = { attribute: string; op: string; value?: Json };
/** Or of ands of comparisons. */
type Filter = Comparison[][];

const OPERATORS = new Set(['eq', 'ne', 'co', 'sw', 'ew', 'pr', 'gt', 'ge', 'lt', 'le']);
const CASE_EXACT = new Set([
  'id',
  'externalid',
  'members.value',
  'groups.value',
  'roles.value',
  'entitlements.value',
  'value',
]);

function tokenize(text: string): string[] {
  const tokens: string[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i]!;
    if (/\s/.test(ch)) {
      i++;
    } else if (ch === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      if (j >= text.length) throw invalid('invalidFilter', `unterminated string in filter: ${text}`);
      tokens.push(text.slice(i, j + 1));
      i = j + 1;
    } else if ('()[]'.includes(ch)) {
      tokens.push(ch);
      i++;
    } else {
      let j = i;
      while (j < text.length && !/[\s()[\]"]/.test(text[j]!)) j++;
      tokens.push(text.slice(i, j));
      i = j;
    }
  }
  return tokens;
}

const CORE_PREFIX = /^urn:ietf:params:scim:schemas:core:2\.0:(user|group):/i;

function parseFilter(text: string): Filter {
  const tokens = tokenize(text);
  const filter: Filter = [[]];
  let i = 0;
  while (i < tokens.length) {
    const attributeToken = tokens[i++]!;
    if (['(', ')', '[', ']', 'not'].includes(attributeToken.toLowerCase()))
      throw invalid('invalidFilter', `"${attributeToken}" is not supported by this service provider`);
    const attribute = attributeToken.replace(CORE_PREFIX, '').toLowerCase();
    if (!/^[a-z$][\w$.-]*$/.test(attribute))
      throw invalid('invalidFilter', `invalid attribute path "${attributeToken}"`);
    const op = tokens[i++]?.toLowerCase();
    if (!op || !OPERATORS.has(op))
      throw invalid('invalidFilter', `expected a comparison operator after ${attributeToken}`);
    if (['gt', 'ge', 'lt', 'le'].includes(op))
      throw invalid('invalidFilter', `operator ${op} is not supported by this service provider`);
    const comparison: Comparison = { attribute, op };
    if (op !== 'pr') {
      const literal = tokens[i++];
      if (literal === undefined) throw invalid('invalidFilter', `missing value after ${attributeToken} ${op}`);
      try {
        const value = JSON.parse(literal) as Json;
        if (typeof value === 'object' && value !== null) throw new Error('not a scalar');
        comparison.value = value;
      } catch {
        throw invalid(
          'invalidFilter',
          `invalid comparison value ${literal}: strings are JSON string literals in double quotes`,
        );
      }
    }
    filter[filter.length - 1]!.push(comparison);
    const joiner = tokens[i]?.toLowerCase();
    if (joiner === undefined) break;
    i++;
    if (joiner === 'or') filter.push([]);
    else if (joiner !== 'and') throw invalid('invalidFilter', `expected "and" or "or", got "${tokens[i - 1]}"`);
    if (i >= tokens.length) throw invalid('invalidFilter', `filter ends after "${joiner}"`);
  }
  return filter;
}

/** All values at a dotted path, flattening multi-valued attributes; attribute names ignore case. */
function valuesAt(resource: Json, path: string[]): Json[] {
  if (path.length === 0) return Array.isArray(resource) ? resource : [resource];
  if (Array.isArray(resource)) return resource.flatMap((item) => valuesAt(item, path));
  if (resource === null || typeof resource !== 'object') return [];
  const key = Object.keys(resource).find((k) => k.toLowerCase() === path[0]);
  if (key === undefined) return [];
  const next = resource[key]!;
  // A multi-valued attribute of complex values compares on its `value` sub-attribute.
  if (
    path.length === 1 &&
    Array.isArray(next) &&
    next.every((v) => v !== null && typeof v === 'object' && !Array.isArray(v))
  ) {
    return next.map((v) => (v as Record<string, Json>).value ?? null);
  }
  return valuesAt(next, path.slice(1));
}

function compare(comparison: Comparison, actual: Json): boolean {
  if (comparison.op === 'pr') return actual !== null && actual !== '';
  const expected = comparison.value;
  if (typeof actual === 'string' && typeof expected === 'string') {
    const exact = CASE_EXACT.has(comparison.attribute);
    const a = exact ? actual : actual.toLowerCase();
    const e = exact ? expected : expected.toLowerCase();
    switch (comparison.op) {
      case 'eq':
        return a === e;
      case 'ne':
        return a !== e;
      case 'co':
        return a.includes(e);
      case 'sw':
        return a.startsWith(e);
      case 'ew':
        return a.endsWith(e);
    }
    return false;
  }
  if (comparison.op === 'eq') return actual === expected;
  if (comparison.op === 'ne') return actual !== expected;
  return false;
}

function matchesFilter(resource: Json, filter: Filter): boolean {
  return filter.some((all) =>
    all.every((comparison) => {
      const values = valuesAt(resource, comparison.attribute.split('.'));
      if (comparison.op === 'ne') return values.length === 0 || values.every((v) => compare(comparison, v));
      return values.some((v) => compare(comparison, v));
    }),
  );
}

// ---- PATCH paths ------------------------------------------------------------------------------

interface PatchPath {
  attribute: string;
  sub?: string;
  valueFilter?: Filter;
}

function parsePath(path: string): PatchPath {
  const match = /^([A-Za-z$][\w$-]*)(?:\[(.+)\])?(?:\.([A-Za-z$][\w$-]*))?$/.exec(path.replace(CORE_PREFIX, ''));
  if (!match) throw invalid('invalidPath', `invalid path "${path}"`);
  return {
    attribute: match[1]!.toLowerCase(),
    valueFilter: match[2] ? parseFilter(match[2]) : undefined,
    sub: match[3]?.toLowerCase(),
  };
}

interface PatchOperation {
  op: string;
  path?: string;
  value?: Json;
}

function readOperations(body: Json): PatchOperation[] {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    throw invalid('invalidSyntax', 'the body must be a PatchOp object');
  const schemas = body.schemas;
  if (!Array.isArray(schemas) || !schemas.includes(SCHEMA.patch))
    throw invalid('invalidSyntax', `schemas must contain ${SCHEMA.patch}`);
  const operations = body.Operations;
  if (!Array.isArray(operations) || operations.length === 0)
    throw invalid('invalidSyntax', 'Operations must be a non-empty array');
  return operations.map((raw) => {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
      throw invalid('invalidSyntax', 'each operation must be an object');
    const op = typeof raw.op === 'string' ? raw.op.toLowerCase() : '';
    if (!['add', 'remove', 'replace'].includes(op))
      throw invalid('invalidSyntax', `op must be add, remove or replace, not ${JSON.stringify(raw.op)}`);
    if (raw.path !== undefined && typeof raw.path !== 'string') throw invalid('invalidPath', 'path must be a string');
    return { op, path: raw.path as string | undefined, value: raw.value };
  });
}

const asValues = (value: Json | undefined, attribute: string): ScimValue[] => {
  const list = Array.isArray(value) ? value : [value];
  return list.map((item) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item) || typeof item.value !== 'string')
      throw invalid('invalidValue', `${attribute} values must be objects with a string "value"`);
    return { ...(item as Record<string, Json>), value: item.value } as ScimValue;
  });
};

/** Removes the values a `[filter]` selects; noTarget when it selects none (RFC 7644 §3.5.2.2). */
function removeMatching<T extends { value: string }>(list: T[], filter: Filter, path: string): T[] {
  const kept = list.filter((item) => !matchesFilter(item as unknown as Json, filter));
  if (kept.length === list.length) throw invalid('noTarget', `no value of ${path} matched`);
  return kept;
}

const USER_STRINGS: Record<string, 'userName' | 'externalId' | 'displayName'> = {
  username: 'userName',
  externalid: 'externalId',
  displayname: 'displayName',
};
const USER_LISTS: Record<string, 'emails' | 'roles' | 'entitlements'> = {
  emails: 'emails',
  roles: 'roles',
  entitlements: 'entitlements',
};
const READ_ONLY = new Set(['id', 'meta', 'groups', 'schemas']);

function patchUserRecord(user: ScimUserRecord, operation: PatchOperation, users: ScimUserRecord[]): void {
  if (!operation.path) {
    if (operation.op === 'remove') throw invalid('noTarget', 'remove needs a path');
    const value = operation.value;
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      throw invalid('invalidValue', 'without a path, value must be an object of attributes');
    for (const [key, attributeValue] of Object.entries(value))
      patchUserRecord(user, { op: operation.op, path: key, value: attributeValue }, users);
    return;
  }
  const path = parsePath(operation.path);
  const { attribute } = path;
  if (READ_ONLY.has(attribute)) {
    throw invalid(
      'mutability',
      attribute === 'groups'
        ? 'groups is read-only on User: change membership through /Groups'
        : `${attribute} is read-only`,
    );
  }
  if (attribute === 'active') {
    if (operation.op === 'remove') throw invalid('mutability', 'active cannot be removed');
    if (typeof operation.value !== 'boolean')
      throw invalid('invalidValue', `active must be a boolean, not ${JSON.stringify(operation.value)}`);
    user.active = operation.value;
    return;
  }
  const stringAttribute = USER_STRINGS[attribute];
  if (stringAttribute) {
    if (operation.op === 'remove') {
      if (stringAttribute === 'userName') throw invalid('mutability', 'userName is required');
      delete user[stringAttribute];
      return;
    }
    if (typeof operation.value !== 'string' || !operation.value)
      throw invalid('invalidValue', `${stringAttribute} must be a non-empty string`);
    if (
      stringAttribute === 'userName' &&
      users.some((u) => u !== user && u.userName.toLowerCase() === (operation.value as string).toLowerCase())
    ) {
      throw new ScimProblem(409, `userName ${operation.value} is already taken`, 'uniqueness');
    }
    user[stringAttribute] = operation.value;
    return;
  }
  if (attribute === 'name') {
    const name = (user.name ??= {});
    const sub = path.sub as 'givenname' | 'familyname' | 'formatted' | undefined;
    const key = sub && ({ givenname: 'givenName', familyname: 'familyName', formatted: 'formatted' } as const)[sub];
    if (operation.op === 'remove') {
      if (key) delete name[key];
      else delete user.name;
    } else if (key && typeof operation.value === 'string') {
      name[key] = operation.value;
    } else if (!sub && operation.value && typeof operation.value === 'object' && !Array.isArray(operation.value)) {
      Object.assign(name, operation.value);
    } else {
      throw invalid('invalidValue', 'name values must be strings');
    }
    return;
  }
  const listAttribute = USER_LISTS[attribute];
  if (listAttribute) {
    if (operation.op === 'remove') {
      if (path.valueFilter) user[listAttribute] = removeMatching(user[listAttribute], path.valueFilter, operation.path);
      else if (operation.value !== undefined) {
        const remove = new Set(asValues(operation.value, listAttribute).map((v) => v.value));
        user[listAttribute] = user[listAttribute].filter((v) => !remove.has(v.value));
      } else user[listAttribute] = [];
      return;
    }
    if (path.valueFilter)
      throw invalid('invalidPath', 'this service provider supports value filters only in remove operations');
    const values = asValues(operation.value, listAttribute);
    if (operation.op === 'replace') user[listAttribute] = values;
    else
      user[listAttribute] = [...user[listAttribute].filter((v) => !values.some((n) => n.value === v.value)), ...values];
    return;
  }
  throw invalid('invalidPath', `unknown attribute "${operation.path}"`);
}

function patchGroupRecord(group: ScimGroupRecord, operation: PatchOperation, users: ScimUserRecord[]): void {
  if (!operation.path) {
    if (operation.op === 'remove') throw invalid('noTarget', 'remove needs a path');
    const value = operation.value;
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      throw invalid('invalidValue', 'without a path, value must be an object of attributes');
    for (const [key, attributeValue] of Object.entries(value))
      patchGroupRecord(group, { op: operation.op, path: key, value: attributeValue }, users);
    return;
  }
  const path = parsePath(operation.path);
  if (READ_ONLY.has(path.attribute)) throw invalid('mutability', `${path.attribute} is read-only`);
  if (path.attribute === 'displayname') {
    if (operation.op === 'remove' || typeof operation.value !== 'string' || !operation.value)
      throw invalid('invalidValue', 'displayName must be a non-empty string');
    group.displayName = operation.value;
    return;
  }
  if (path.attribute !== 'members') throw invalid('invalidPath', `unknown attribute "${operation.path}"`);
  if (operation.op === 'remove') {
    if (path.valueFilter) group.members = removeMatching(group.members, path.valueFilter, operation.path);
    else if (operation.value !== undefined) {
      // The form some clients send: path "members" with the values to remove.
      const remove = new Set(asValues(operation.value, 'members').map((v) => v.value));
      group.members = group.members.filter((m) => !remove.has(m.value));
    } else group.members = [];
    return;
  }
  if (path.valueFilter)
    throw invalid('invalidPath', 'this service provider supports value filters only in remove operations');
  const members = asValues(operation.value, 'members').map((v) => {
    const user = users.find((u) => u.id === v.value);
    if (!user) throw invalid('invalidValue', `no user with id ${v.value}`);
    return { value: user.id, display: user.displayName, type: 'User' as const };
  });
  if (operation.op === 'replace') group.members = members;
  else group.members = [...group.members.filter((m) => !members.some((n) => n.value === m.value)), ...members];
}

// ---- The server -------------------------------------------------------------------------------

const etagOf = (record: { version: number }) => `W/"${record.version}"`;
const sameTag = (a: string, b: string) => a.replace(/^W\//, '') === b.replace(/^W\//, '');

export async function startScimSandbox(options: ScimSandboxOptions = {}): Promise<ScimSandbox> {
  const basePath = `/${(options.basePath ?? '/scim/v2').replace(/^\/+|\/+$/g, '')}`.replace(/^\/$/, '');
  const token = options.token ?? SCIM_DEFAULT_TOKEN;
  const readOnlyToken = options.readOnlyToken ?? SCIM_DEFAULT_READ_ONLY_TOKEN;
  const userGroupsAttribute = options.userGroupsAttribute ?? false;
  const deleteRemovesMemberships = options.deleteRemovesMemberships ?? false;
  const groupMembersFilter = options.groupMembersFilter ?? 'supported';
  const filterable = options.userFilterAttributes?.map((a) => a.toLowerCase());

  const state: ScimSandboxState = { ...scimSeed(), requests: [] };
  let faults: ScimFaults = {};
  let errorCredit = 0;
  let origin = '';

  const now = () => new Date().toISOString();
  const touch = (record: { version: number; lastModified: string }) => {
    record.version++;
    record.lastModified = now();
  };

  function renderUser(user: ScimUserRecord): Json {
    const resource: Record<string, unknown> = {
      schemas: [SCHEMA.user],
      id: user.id,
      externalId: user.externalId,
      userName: user.userName,
      displayName: user.displayName,
      name: user.name,
      emails: user.emails,
      active: user.active,
      roles: user.roles,
      entitlements: user.entitlements,
    };
    if (userGroupsAttribute) {
      resource.groups = state.groups
        .filter((g) => g.members.some((m) => m.value === user.id))
        .map((g) => ({
          value: g.id,
          display: g.displayName,
          $ref: `${origin}${basePath}/Groups/${g.id}`,
          type: 'direct',
        }));
    }
    resource.meta = {
      resourceType: 'User',
      created: user.created,
      lastModified: user.lastModified,
      location: `${origin}${basePath}/Users/${user.id}`,
      version: etagOf(user),
    };
    return JSON.parse(JSON.stringify(resource)) as Json;
  }

  function renderGroup(group: ScimGroupRecord): Json {
    return JSON.parse(
      JSON.stringify({
        schemas: [SCHEMA.group],
        id: group.id,
        externalId: group.externalId,
        displayName: group.displayName,
        members: group.members.map((m) => ({ ...m, $ref: `${origin}${basePath}/Users/${m.value}` })),
        meta: {
          resourceType: 'Group',
          created: group.created,
          lastModified: group.lastModified,
          location: `${origin}${basePath}/Groups/${group.id}`,
          version: etagOf(group),
        },
      }),
    ) as Json;
  }

  function list(resources: Json[], query: URLSearchParams): Json {
    const startIndex = Math.max(1, Number.parseInt(query.get('startIndex') ?? '1', 10) || 1);
    const countParam = query.get('count');
    const count = countParam === null ? 100 : Math.max(0, Math.min(200, Number.parseInt(countParam, 10) || 0));
    const page = resources.slice(startIndex - 1, startIndex - 1 + count);
    return {
      schemas: [SCHEMA.list],
      totalResults: resources.length,
      startIndex,
      itemsPerPage: page.length,
      Resources: page,
    };
  }

  function filtered(resources: Json[], query: URLSearchParams, allowed?: string[]): Json[] {
    const text = query.get('filter');
    if (!text) return resources;
    const filter = parseFilter(text);
    if (allowed) {
      const refused = filter.flat().find((c) => !allowed.includes(c.attribute));
      if (refused)
        throw invalid(
          'invalidFilter',
          `filtering on ${refused.attribute} is not supported; supported: ${allowed.join(', ')}`,
        );
    }
    return resources.filter((resource) => matchesFilter(resource, filter));
  }

  function checkIfMatch(request: IncomingMessage, record: { version: number }) {
    const ifMatch = request.headers['if-match'];
    if (ifMatch === undefined || ifMatch.trim() === '*') return;
    const tags = ifMatch.split(',').map((t) => t.trim());
    if (!tags.some((t) => sameTag(t, etagOf(record)))) {
      throw new ScimProblem(
        412,
        `resource has changed: its version is ${etagOf(record)}, not ${ifMatch}; read it again`,
      );
    }
  }

  const findUser = (id: string) => {
    const user = state.users.find((u) => u.id === id);
    if (!user) throw new ScimProblem(404, `Resource ${id} not found`);
    return user;
  };
  const findGroup = (id: string) => {
    const group = state.groups.find((g) => g.id === id);
    if (!group) throw new ScimProblem(404, `Resource ${id} not found`);
    return group;
  };

  function userFromBody(body: Json, id: string, existing?: ScimUserRecord): ScimUserRecord {
    if (body === null || typeof body !== 'object' || Array.isArray(body))
      throw invalid('invalidSyntax', 'the body must be a User resource');
    if (typeof body.userName !== 'string' || !body.userName) throw invalid('invalidValue', 'userName is required');
    const userName = body.userName;
    if (state.users.some((u) => u.id !== id && u.userName.toLowerCase() === userName.toLowerCase())) {
      throw new ScimProblem(409, `userName ${userName} is already taken`, 'uniqueness');
    }
    if (body.active !== undefined && typeof body.active !== 'boolean')
      throw invalid('invalidValue', 'active must be a boolean');
    const stamp = now();
    return {
      id,
      userName,
      externalId: typeof body.externalId === 'string' ? body.externalId : undefined,
      displayName: typeof body.displayName === 'string' ? body.displayName : undefined,
      name:
        body.name && typeof body.name === 'object' && !Array.isArray(body.name)
          ? (body.name as ScimUserRecord['name'])
          : undefined,
      emails: body.emails === undefined ? [] : asValues(body.emails, 'emails'),
      active: body.active ?? true,
      roles: body.roles === undefined ? [] : asValues(body.roles, 'roles'),
      entitlements: body.entitlements === undefined ? [] : asValues(body.entitlements, 'entitlements'),
      version: existing ? existing.version + 1 : 1,
      created: existing?.created ?? stamp,
      lastModified: stamp,
    };
  }

  interface Answer {
    status: number;
    body?: Json;
    etag?: string;
    headers?: Record<string, string>;
  }

  function route(
    method: string,
    segments: string[],
    query: URLSearchParams,
    body: Json,
    request: IncomingMessage,
  ): Answer {
    const [collection, id, ...rest] = segments;
    if (rest.length > 0) throw new ScimProblem(404, `no endpoint ${segments.join('/')}`);
    if (collection === 'ServiceProviderConfig' && !id && method === 'GET') {
      return {
        status: 200,
        body: {
          schemas: [SCHEMA.config],
          documentationUri: 'https://datatracker.ietf.org/doc/html/rfc7644',
          patch: { supported: true },
          bulk: { supported: false, maxOperations: 0, maxPayloadSize: 0 },
          filter: { supported: true, maxResults: 200 },
          changePassword: { supported: false },
          sort: { supported: false },
          etag: { supported: true },
          authenticationSchemes: [
            {
              type: 'oauthbearertoken',
              name: 'OAuth Bearer Token',
              description: 'Authentication with a bearer token',
              primary: true,
            },
          ],
          meta: { resourceType: 'ServiceProviderConfig', location: `${origin}${basePath}/ServiceProviderConfig` },
        },
      };
    }
    if (collection === 'Users') {
      if (!id) {
        if (method === 'GET')
          return { status: 200, body: list(filtered(state.users.map(renderUser), query, filterable), query) };
        if (method === 'POST') {
          const user = userFromBody(body, idFor('user', `created:${state.users.length}:${now()}:${Math.random()}`));
          state.users.push(user);
          return {
            status: 201,
            body: renderUser(user),
            etag: etagOf(user),
            headers: { location: `${origin}${basePath}/Users/${user.id}` },
          };
        }
      } else {
        const user = findUser(id);
        if (method === 'GET') {
          const answer = { status: 200, body: renderUser(user), etag: etagOf(user) };
          if ((faults.concurrentWrites ?? 0) > 0) {
            faults.concurrentWrites!--;
            touch(user);
          }
          return answer;
        }
        if (method === 'PATCH' || method === 'PUT') {
          checkIfMatch(request, user);
          if (faults.ignoreWrites && method === 'PATCH') return { status: 204 };
          let updated: ScimUserRecord;
          if (method === 'PUT') {
            updated = userFromBody(body, user.id, user);
          } else {
            updated = structuredClone(user);
            for (const operation of readOperations(body)) patchUserRecord(updated, operation, state.users);
            touch(updated);
          }
          state.users[state.users.indexOf(user)] = updated;
          return { status: 200, body: renderUser(updated), etag: etagOf(updated) };
        }
        if (method === 'DELETE') {
          checkIfMatch(request, user);
          if (faults.ignoreWrites) return { status: 204 };
          state.users.splice(state.users.indexOf(user), 1);
          if (!deleteRemovesMemberships) return { status: 204 };
          for (const group of state.groups) {
            if (group.members.some((m) => m.value === user.id)) {
              group.members = group.members.filter((m) => m.value !== user.id);
              touch(group);
            }
          }
          return { status: 204 };
        }
      }
    }
    if (collection === 'Groups') {
      if (!id) {
        if (method === 'GET') {
          const all = state.groups.map(renderGroup);
          const byMember = /members/i.test(query.get('filter') ?? '');
          if (byMember && groupMembersFilter === 'refused')
            throw invalid('invalidFilter', 'filtering groups on members is not supported');
          if (byMember && groupMembersFilter !== 'supported')
            return { status: 200, body: list(groupMembersFilter === 'ignored' ? all : [], query) };
          return { status: 200, body: list(filtered(all, query), query) };
        }
      } else {
        const group = findGroup(id);
        if (method === 'GET') return { status: 200, body: renderGroup(group), etag: etagOf(group) };
        if (method === 'PATCH') {
          checkIfMatch(request, group);
          if (faults.ignoreWrites) return { status: 204 };
          const updated = structuredClone(group);
          for (const operation of readOperations(body)) patchGroupRecord(updated, operation, state.users);
          touch(updated);
          state.groups[state.groups.indexOf(group)] = updated;
          return { status: 200, body: renderGroup(updated), etag: etagOf(updated) };
        }
      }
    }
    throw new ScimProblem(
      collection && ['Users', 'Groups', 'ServiceProviderConfig'].includes(collection) ? 405 : 404,
      `${method} ${segments.join('/')} is not supported`,
    );
  }

  function send(response: ServerResponse, answer: Answer) {
    const headers: Record<string, string> = { ...answer.headers };
    if (answer.etag) headers.etag = answer.etag;
    if (answer.body === undefined) {
      response.writeHead(answer.status, headers).end();
      return;
    }
    headers['content-type'] = 'application/scim+json; charset=utf-8';
    response.writeHead(answer.status, headers).end(JSON.stringify(answer.body));
  }

  const problem = (p: ScimProblem): Answer => ({
    status: p.status,
    headers: p.headers,
    body: {
      schemas: [SCHEMA.error],
      status: String(p.status),
      ...(p.scimType ? { scimType: p.scimType } : {}),
      detail: p.detail,
    },
  });

  async function readBody(request: IncomingMessage): Promise<Json> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    if (!text.trim()) return null;
    try {
      return JSON.parse(text) as Json;
    } catch {
      throw invalid('invalidSyntax', 'the body is not valid JSON');
    }
  }

  /** The next injected fault for an API request, if any (resets are handled by the caller). */
  function injectedFault(): ScimProblem | undefined {
    const limit = faults.rateLimit;
    if (limit && limit.count > 0) {
      limit.count--;
      const retryAfter = limit.httpDate
        ? new Date(Date.now() + limit.retryAfterSeconds * 1000).toUTCString()
        : String(limit.retryAfterSeconds);
      return new ScimProblem(429, 'Too many requests: slow down', undefined, { 'retry-after': retryAfter });
    }
    if (faults.serverErrorRate) {
      errorCredit += faults.serverErrorRate;
      if (errorCredit >= 1) {
        errorCredit -= 1;
        const status = faults.serverErrorStatus ?? 503;
        return new ScimProblem(status, status === 503 ? 'Service temporarily unavailable' : 'Internal server error');
      }
    }
    return undefined;
  }

  async function handle(request: IncomingMessage, response: ServerResponse) {
    const url = new URL(request.url ?? '/', origin);
    const method = request.method ?? 'GET';
    if (url.pathname === '/_sandbox/state' && method === 'GET')
      return send(response, { status: 200, body: JSON.parse(JSON.stringify(state)) as Json });
    if (url.pathname === '/_sandbox/faults' && method === 'POST') {
      const body = await readBody(request).catch(() => null);
      inject((body ?? {}) as ScimFaults);
      return send(response, { status: 200, body: JSON.parse(JSON.stringify(faults)) as Json });
    }
    if (url.pathname === '/_sandbox/reset' && method === 'POST') {
      reset();
      return send(response, { status: 204 });
    }

    if ((faults.resets ?? 0) > 0) {
      faults.resets!--;
      request.socket.destroy();
      return;
    }
    if (faults.latencyMs) await new Promise((resolve) => setTimeout(resolve, faults.latencyMs));

    let answer: Answer;
    try {
      const auth = request.headers.authorization ?? '';
      const presented = /^Bearer\s+(.+)$/i.exec(auth)?.[1];
      // RFC 7643 §5: the service provider's configuration is served without authentication.
      const open = method === 'GET' && url.pathname === `${basePath}/ServiceProviderConfig`;
      if (!open && presented !== token && presented !== readOnlyToken) {
        throw new ScimProblem(401, 'Authentication failed: a valid bearer token is required', undefined, {
          'www-authenticate': 'Bearer realm="scim"',
        });
      }
      const fault = injectedFault();
      if (fault) throw fault;
      if (!url.pathname.startsWith(`${basePath}/`))
        throw new ScimProblem(404, `no endpoint ${url.pathname}; the SCIM root is ${basePath}`);
      if (method !== 'GET' && presented === readOnlyToken)
        throw new ScimProblem(403, 'the token is read-only: it may not change resources');
      const segments = url.pathname
        .slice(basePath.length + 1)
        .split('/')
        .filter(Boolean)
        .map(decodeURIComponent);
      const body = ['POST', 'PUT', 'PATCH'].includes(method) ? await readBody(request) : null;
      answer = route(method, segments, url.searchParams, body, request);
    } catch (err) {
      if (!(err instanceof ScimProblem)) throw err;
      answer = problem(err);
    }
    state.requests.push({
      method,
      path: `${url.pathname}${url.search}`,
      ifMatch: request.headers['if-match'],
      status: answer.status,
    });
    if (state.requests.length > 1000) state.requests.shift();
    send(response, answer);
  }

  function inject(next: ScimFaults) {
    faults = structuredClone(next);
    errorCredit = 0;
  }

  function reset() {
    const fresh = scimSeed();
    state.users.splice(0, state.users.length, ...fresh.users);
    state.groups.splice(0, state.groups.length, ...fresh.groups);
    state.requests.length = 0;
    inject({});
  }

  const server = createServer((request, response) => {
    handle(request, response).catch((err: unknown) => {
      if (!response.headersSent)
        send(response, problem(new ScimProblem(500, `stand-in failure: ${(err as Error).message}`)));
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url: `${origin}${basePath}`,
    state,
    inject,
    reset,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
