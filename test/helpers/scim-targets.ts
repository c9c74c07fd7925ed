/**
 * The SCIM servers the SCIM connector's tests run against: our stand-in (sandbox/scim.ts) and
 * PyPI's scim2-server, an independent implementation, both holding the sample organisation. The
 * tests read each server's state back over HTTP with the server's own token, so the same
 * assertion holds for both; a server's ids are its own (scim2-server assigns them on POST).
 */
import { startScim2Server } from '../../scripts/services.js';
import { SCIM_DEFAULT_TOKEN, scimSeed, startScimSandbox, type ScimSandboxOptions } from '../../sandbox/scim.js';

const USER_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:User';
const GROUP_SCHEMA = 'urn:ietf:params:scim:schemas:core:2.0:Group';

export interface ScimResource {
  id: string;
  externalId?: string;
  userName?: string;
  active?: boolean;
  groups?: unknown[];
  roles?: { value: string }[];
  entitlements?: { value: string }[];
  members?: { value: string }[];
  displayName?: string;
}

export interface ScimTarget {
  name: 'stand-in' | 'scim2-server';
  /** The SCIM root. */
  url: string;
  token: string;
  /** A resource as the server holds it now (`undefined`: 404). */
  read(path: string): Promise<ScimResource | undefined>;
  userOf(employeeId: string): Promise<ScimResource | undefined>;
  groupNamed(displayName: string): Promise<ScimResource>;
  /** The display names of the groups whose `members` list this id, read from every group. */
  groupsListing(userId: string): Promise<string[]>;
  stop(): Promise<void>;
}

async function scimFetch(url: string, token: string, method = 'GET', body?: unknown): Promise<Response> {
  return fetch(url, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/scim+json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

function targetOn(name: ScimTarget['name'], url: string, token: string, stop: () => Promise<void>): ScimTarget {
  async function read(path: string): Promise<ScimResource | undefined> {
    const response = await scimFetch(`${url}${path}`, token);
    if (response.status === 404) return undefined;
    if (!response.ok) throw new Error(`${name}: GET ${path} answered ${response.status}: ${await response.text()}`);
    return (await response.json()) as ScimResource;
  }
  async function list(path: string): Promise<ScimResource[]> {
    const body = (await read(path)) as unknown as { Resources?: ScimResource[] };
    return body.Resources ?? [];
  }
  const filter = (text: string) => `filter=${encodeURIComponent(text)}`;
  return {
    name,
    url,
    token,
    read,
    async userOf(employeeId) {
      return (await list(`/Users?${filter(`externalId eq "${employeeId}"`)}`))[0];
    },
    async groupNamed(displayName) {
      const group = (await list(`/Groups?${filter(`displayName eq "${displayName}"`)}`))[0];
      if (!group) throw new Error(`${name}: no group ${displayName}`);
      return group;
    },
    async groupsListing(userId) {
      const groups = await list('/Groups?startIndex=1&count=1000');
      return groups
        .filter((g) => (g.members ?? []).some((m) => m.value === userId))
        .map((g) => g.displayName ?? g.id)
        .sort();
    },
    stop,
  };
}

export async function startStandInTarget(options: ScimSandboxOptions = {}): Promise<ScimTarget> {
  const sandbox = await startScimSandbox(options);
  return targetOn('stand-in', sandbox.url, SCIM_DEFAULT_TOKEN, () => sandbox.stop());
}

/** scim2-server, loaded with the stand-in's seed through its own API (POST /Users, POST /Groups). */
export async function startScim2Target(): Promise<ScimTarget> {
  const server = await startScim2Server();
  try {
    const seed = scimSeed();
    const ids = new Map<string, string>();
    for (const user of seed.users) {
      const response = await scimFetch(`${server.url}/Users`, server.token, 'POST', {
        schemas: [USER_SCHEMA],
        userName: user.userName,
        externalId: user.externalId,
        displayName: user.displayName,
        name: user.name,
        emails: user.emails,
        active: user.active,
        roles: user.roles.length ? user.roles : undefined,
        entitlements: user.entitlements.length ? user.entitlements : undefined,
      });
      if (response.status !== 201)
        throw new Error(`scim2-server: POST /Users ${response.status}: ${await response.text()}`);
      ids.set(user.id, ((await response.json()) as { id: string }).id);
    }
    for (const group of seed.groups) {
      const response = await scimFetch(`${server.url}/Groups`, server.token, 'POST', {
        schemas: [GROUP_SCHEMA],
        displayName: group.displayName,
        externalId: group.externalId,
        members: group.members.map((m) => ({ value: ids.get(m.value), display: m.display })),
      });
      if (response.status !== 201)
        throw new Error(`scim2-server: POST /Groups ${response.status}: ${await response.text()}`);
    }
  } catch (err) {
    await server.stop();
    throw err;
  }
  return targetOn('scim2-server', server.url, server.token, () => server.stop());
}

export const SCIM_TARGETS: { name: ScimTarget['name']; start: () => Promise<ScimTarget> }[] = [
  { name: 'stand-in', start: () => startStandInTarget() },
  { name: 'scim2-server', start: startScim2Target },
];
