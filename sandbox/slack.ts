/**
 * A stand-in for Slack's Web API on an Enterprise Grid org, seeded from the sample organisation:
 * one org with two workspaces, a user per sample person (id `W` + employee id), the sample emails,
 * user groups (@oncall, @platform, @finance-team, a single-member @release-captains, a disabled
 * @old-project), a bot user and one already deactivated person (E1040). The keeper (E1000) is the
 * primary owner, whom Slack refuses to remove, deactivate or sign out.
 *
 * Wire format as Slack documents it: `POST /api/<method>` with a form-encoded or JSON body (GET
 * with a query string also works), the token as `Authorization: Bearer xox…` (or a `token` form
 * field), HTTP 200 with `{ok:true,…}` / `{ok:false,error}` for every answer but rate limits
 * (HTTP 429 + `Retry-After` seconds, body `{ok:false,error:'ratelimited'}`), `missing_scope` with
 * `needed`/`provided`, `invalid_arguments` with `response_metadata.messages`, the
 * `missing_charset` warning in `response_metadata.warnings` for JSON bodies without a charset, and
 * the `x-oauth-scopes` / `x-accepted-oauth-scopes` headers. Slack answers a missing or unknown
 * token with HTTP 200 `not_authed` / `invalid_auth`, not 401, and so does this stand-in.
 *
 * Methods: users.lookupByEmail (deactivated users are `users_not_found`, as Slack documents),
 * users.info, usergroups.list, usergroups.users.list, usergroups.users.update (which answers
 * `failed_for_some_users`, its documented error, when a listed user is not in the group's
 * workspace, and then writes nothing), admin.teams.list and admin.users.list (cursor
 * pagination, `limit`/`cursor`/`response_metadata.next_cursor`), admin.users.remove,
 * admin.users.assign, admin.users.deactivate, admin.users.session.reset and chat.postMessage.
 * The second workspace has its own user group (@labs). Faults: latency, 503s, 429 bursts, reset
 * connections, and writes answered ok but not applied.
 *
 * Not modelled: Slack's per-method rate-limit tiers (429s come only from injected bursts),
 * pagination cursors beyond the admin list methods, SCIM, channels beyond two seeded ones, guests, shared channels, IDP-synced
 * groups, what Slack does to a deactivated or removed user's group memberships (they are kept
 * here), and the exact error names for cases the docs leave open (deactivating a user twice answers
 * `user_already_deactivated`, re-adding a deactivated user answers `user_not_found`, a missing
 * `team_id` with an org token answers `invalid_arguments`, and admin.users.list with
 * include_deactivated_user_workspaces counts the workspaces a user was removed from among their
 * `workspaces`).
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SAMPLE_PEOPLE } from './org.js';

export const SLACK_SANDBOX_ENTERPRISE_ID = 'E0EXAMPLE';
export const SLACK_SANDBOX_TEAM_ID = 'T0EXAMPLE1';
export const SLACK_SANDBOX_OTHER_TEAM_ID = 'T0EXAMPLE2';

/** Tokens the stand-in accepts. Fictitious; only the org admin token may do everything. */
export const SLACK_SANDBOX_TOKENS = {
  orgAdmin: 'xoxp-sandbox-org-admin',
  /** An org admin's token installed without admin.users:write or usergroups:write. */
  readOnly: 'xoxp-sandbox-read-only',
  /** A token of an ordinary member: every scope, but the admin methods answer not_an_admin. */
  member: 'xoxp-sandbox-member',
  bot: 'xoxb-sandbox-notifier',
} as const;

const ALL_SCOPES = [
  'users:read',
  'users:read.email',
  'usergroups:read',
  'usergroups:write',
  'admin.users:read',
  'admin.users:write',
  'admin.teams:read',
  'chat:write',
];

interface TokenGrant {
  userId: string;
  kind: 'user' | 'bot';
  admin: boolean;
  scopes: string[];
}

export const slackUserIdFor = (employeeId: string): string => `W${employeeId.toUpperCase()}`;
export const SLACK_SANDBOX_BOT_USER_ID = 'WBOTNOTIFIER';
const DEACTIVATED_EMPLOYEE = 'E1040';

export interface SlackSandboxUser {
  id: string;
  name: string;
  realName: string;
  email?: string;
  deleted: boolean;
  isBot: boolean;
  isAdmin: boolean;
  isOwner: boolean;
  isPrimaryOwner: boolean;
  /** Workspaces of the org the user belongs to (enterprise_user.teams). */
  teams: string[];
  /**
   * Workspaces an admin removed the user from: admin.users.list shows them among the user's
   * `workspaces` with include_deactivated_user_workspaces (an assumption: Slack's docs say
   * "deactivated on them" without saying that a removal counts as that).
   */
  removedFrom: string[];
}

export interface SlackSandboxUsergroup {
  id: string;
  teamId: string;
  handle: string;
  name: string;
  description: string;
  users: string[];
  disabled: boolean;
  dateCreate: number;
  dateUpdate: number;
  updatedBy: string;
}

export interface SlackSandboxMessage {
  channel: string;
  text: string;
  ts: string;
  user: string;
}

export interface SlackSandboxState {
  enterpriseId: string;
  teams: { id: string; name: string }[];
  channels: { id: string; name: string; teamId: string }[];
  users: Record<string, SlackSandboxUser>;
  usergroups: Record<string, SlackSandboxUsergroup>;
  /** admin.users.session.reset calls per user id. */
  sessionResets: Record<string, number>;
  /** Users deactivated org-wide through admin.users.deactivate, in order. */
  deactivations: string[];
  /** admin.users.remove calls that took effect, in order. */
  workspaceRemovals: { userId: string; teamId: string }[];
  /** admin.users.assign calls that took effect, in order. */
  workspaceAssignments: { userId: string; teamId: string }[];
  messages: SlackSandboxMessage[];
  /** Every Web API method called, in order (including refused calls), for tests that check nothing was written. */
  calls: string[];
}

export interface SlackFaults {
  /** Delay before every Web API answer. */
  latencyMs?: number;
  /** Share (0..1) of Web API requests answered 503; deterministic: every 1/rate-th request. */
  errorRate?: number;
  /** The next `count` Web API requests get HTTP 429 with `Retry-After: retryAfterSeconds`. */
  rateLimit?: { count: number; retryAfterSeconds: number };
  /** The next `count` Web API requests have their connection destroyed without an answer. */
  resetConnections?: number;
  /**
   * The next N writes (methods that change state) answer ok but change nothing, as a read right
   * after a change Slack has not finished applying can find it.
   */
  unappliedWrites?: number;
}

const WRITES = new Set([
  'usergroups.users.update',
  'admin.users.remove',
  'admin.users.assign',
  'admin.users.deactivate',
  'admin.users.session.reset',
]);

export interface SlackSandbox {
  /** The server root, where `/_sandbox/state` and `/_sandbox/faults` live. */
  url: string;
  /** What the connector's `apiUrl` (the WebClient's slackApiUrl) points at. */
  apiUrl: string;
  state: SlackSandboxState;
  inject(faults: SlackFaults): void;
  reset(): void;
  stop(): Promise<void>;
}

const SEED_TIME = 1_700_000_000;

function seedState(): SlackSandboxState {
  const users: Record<string, SlackSandboxUser> = {};
  for (const [index, person] of SAMPLE_PEOPLE.entries()) {
    const id = slackUserIdFor(person.employeeId);
    const keeper = person.employeeId === 'E1000';
    users[id] = {
      id,
      name: person.uid,
      realName: `${person.givenName} ${person.sn}`,
      email: person.email,
      deleted: person.employeeId === DEACTIVATED_EMPLOYEE,
      isBot: false,
      isAdmin: keeper,
      isOwner: keeper,
      isPrimaryOwner: keeper,
      // Every fourth person also works in the second workspace, so org-wide and workspace removal differ.
      teams: index % 4 === 1 ? [SLACK_SANDBOX_TEAM_ID, SLACK_SANDBOX_OTHER_TEAM_ID] : [SLACK_SANDBOX_TEAM_ID],
      removedFrom: [],
    };
  }
  users[SLACK_SANDBOX_BOT_USER_ID] = {
    id: SLACK_SANDBOX_BOT_USER_ID,
    name: 'offboard',
    realName: 'offboard notifier',
    deleted: false,
    isBot: true,
    isAdmin: false,
    isOwner: false,
    isPrimaryOwner: false,
    teams: [SLACK_SANDBOX_TEAM_ID],
    removedFrom: [],
  };

  const inGroup = (cn: string) =>
    SAMPLE_PEOPLE.filter((p) => p.groups.includes(cn)).map((p) => slackUserIdFor(p.employeeId));
  const group = (
    id: string,
    handle: string,
    name: string,
    members: string[],
    disabled = false,
    teamId = SLACK_SANDBOX_TEAM_ID,
  ): SlackSandboxUsergroup => ({
    id,
    teamId,
    handle,
    name,
    description: `${name} (sample organisation)`,
    users: members,
    disabled,
    dateCreate: SEED_TIME,
    dateUpdate: SEED_TIME,
    updatedBy: slackUserIdFor('E1000'),
  });
  const usergroups = Object.fromEntries(
    [
      group('S0ONCALL', 'oncall', 'On-call', inGroup('domain-admins')),
      group('S0PLATFORM', 'platform', 'Platform', inGroup('engineering')),
      group('S0FINANCE', 'finance-team', 'Finance', inGroup('finance')),
      // One member only: Slack cannot leave a user group empty.
      group('S0RELEASE', 'release-captains', 'Release captains', [slackUserIdFor('E1004')]),
      // Disabled groups grant nothing and are not listed unless include_disabled is set.
      group('S0OLDPROJECT', 'old-project', 'Old project', [slackUserIdFor('E1000'), slackUserIdFor('E1002')], true),
      // The second workspace's own group, of the people who work there too.
      group(
        'S0LABS',
        'labs',
        'Labs',
        Object.values(users)
          .filter((u) => u.teams.includes(SLACK_SANDBOX_OTHER_TEAM_ID))
          .map((u) => u.id)
          .slice(0, 4),
        false,
        SLACK_SANDBOX_OTHER_TEAM_ID,
      ),
    ].map((g) => [g.id, g]),
  );

  return {
    enterpriseId: SLACK_SANDBOX_ENTERPRISE_ID,
    teams: [
      { id: SLACK_SANDBOX_TEAM_ID, name: 'Example' },
      { id: SLACK_SANDBOX_OTHER_TEAM_ID, name: 'Example Labs' },
    ],
    channels: [
      { id: 'C0OFFBOARD', name: 'offboarding', teamId: SLACK_SANDBOX_TEAM_ID },
      { id: 'C0SECURITY', name: 'security', teamId: SLACK_SANDBOX_TEAM_ID },
    ],
    users,
    usergroups,
    sessionResets: {},
    deactivations: [],
    workspaceRemovals: [],
    workspaceAssignments: [],
    messages: [],
    calls: [],
  };
}

const TOKENS: Record<string, TokenGrant> = {
  [SLACK_SANDBOX_TOKENS.orgAdmin]: { userId: slackUserIdFor('E1000'), kind: 'user', admin: true, scopes: ALL_SCOPES },
  [SLACK_SANDBOX_TOKENS.readOnly]: {
    userId: slackUserIdFor('E1000'),
    kind: 'user',
    admin: true,
    scopes: ['users:read', 'users:read.email', 'usergroups:read', 'admin.users:read', 'admin.teams:read'],
  },
  [SLACK_SANDBOX_TOKENS.member]: { userId: slackUserIdFor('E1002'), kind: 'user', admin: false, scopes: ALL_SCOPES },
  [SLACK_SANDBOX_TOKENS.bot]: {
    userId: SLACK_SANDBOX_BOT_USER_ID,
    kind: 'bot',
    admin: false,
    scopes: ['users:read', 'users:read.email', 'usergroups:read', 'chat:write'],
  },
};

// ---- request parameters: form fields and JSON bodies arrive in different shapes ---------------

type Params = Record<string, unknown>;

const text = (params: Params, name: string): string | undefined => {
  const value = params[name];
  if (value === undefined || value === null || value === '') return undefined;
  return typeof value === 'string' ? value : String(value);
};
const flag = (params: Params, name: string): boolean => {
  const value = params[name];
  return value === true || value === 'true' || value === '1' || value === 1;
};
/** A list argument: a JSON array, a JSON-encoded array in a form field, or a comma-separated string. */
const list = (params: Params, name: string): string[] | undefined => {
  const value = params[name];
  if (value === undefined || value === null) return undefined;
  if (Array.isArray(value))
    return value
      .map(String)
      .map((v) => v.trim())
      .filter(Boolean);
  const raw = String(value).trim();
  if (raw.startsWith('[')) {
    try {
      const parsed: unknown = JSON.parse(raw);
      if (Array.isArray(parsed))
        return parsed
          .map(String)
          .map((v) => v.trim())
          .filter(Boolean);
    } catch {
      return undefined;
    }
  }
  return raw
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);
};

// ---- the Web API methods ------------------------------------------------------------------------

type Answer = Record<string, unknown> & { ok: boolean };
interface Call {
  params: Params;
  grant: TokenGrant;
  state: SlackSandboxState;
}
interface Method {
  scope: string;
  /** Admin API: user tokens of org admins only. */
  admin?: boolean;
  handle(call: Call): Answer;
}

const fail = (error: string, extra: Record<string, unknown> = {}): Answer => ({ ok: false, error, ...extra });
const missing = (field: string): Answer =>
  fail('invalid_arguments', { response_metadata: { messages: [`[ERROR] missing required field: ${field}`] } });

function renderUser(user: SlackSandboxUser, state: SlackSandboxState, withEmail: boolean) {
  return {
    id: user.id,
    team_id: user.teams[0] ?? SLACK_SANDBOX_TEAM_ID,
    name: user.name,
    deleted: user.deleted,
    real_name: user.realName,
    is_admin: user.isAdmin,
    is_owner: user.isOwner,
    is_primary_owner: user.isPrimaryOwner,
    is_restricted: false,
    is_ultra_restricted: false,
    is_bot: user.isBot,
    is_app_user: false,
    updated: SEED_TIME,
    profile: {
      real_name: user.realName,
      display_name: user.name,
      ...(withEmail && user.email ? { email: user.email } : {}),
    },
    enterprise_user: {
      id: user.id,
      enterprise_id: state.enterpriseId,
      enterprise_name: 'Example Org',
      is_admin: user.isAdmin,
      is_owner: user.isOwner,
      teams: [...user.teams],
    },
  };
}

function renderUsergroup(group: SlackSandboxUsergroup, withUsers: boolean) {
  return {
    id: group.id,
    team_id: group.teamId,
    is_usergroup: true,
    is_subteam: true,
    name: group.name,
    description: group.description,
    handle: group.handle,
    is_external: false,
    date_create: group.dateCreate,
    date_update: group.dateUpdate,
    date_delete: group.disabled ? group.dateUpdate : 0,
    auto_type: null,
    created_by: slackUserIdFor('E1000'),
    updated_by: group.updatedBy,
    deleted_by: group.disabled ? slackUserIdFor('E1000') : null,
    prefs: { channels: [], groups: [] },
    ...(withUsers ? { users: [...group.users] } : {}),
    user_count: group.users.length,
  };
}

/** A workspace-scoped method called with an org token needs team_id naming a workspace of the org. */
function workspaceOf(params: Params, state: SlackSandboxState): string | Answer {
  const teamId = text(params, 'team_id');
  if (!teamId) return missing('team_id');
  if (!state.teams.some((t) => t.id === teamId)) return fail('team_not_found');
  return teamId;
}

function targetUser(params: Params, state: SlackSandboxState, field = 'user_id'): SlackSandboxUser | Answer {
  const id = text(params, field);
  if (!id) return missing(field);
  return state.users[id] ?? fail('user_not_found');
}

const isAnswer = (value: unknown): value is Answer => typeof value === 'object' && value !== null && 'ok' in value;

/** Slack's cursor pagination: `limit` (1..1000 here, default 100) and an opaque `cursor`. */
function cursorPage<T>(params: Params, items: T[]): { items: T[]; nextCursor: string } | Answer {
  const limit = Number(text(params, 'limit') ?? 100);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) return fail('invalid_limit');
  const cursor = text(params, 'cursor');
  const start = cursor
    ? Number(
        Buffer.from(cursor, 'base64')
          .toString()
          .replace(/^offset:/, ''),
      )
    : 0;
  if (!Number.isInteger(start) || start < 0) return fail('invalid_cursor');
  const end = start + limit;
  return {
    items: items.slice(start, end),
    nextCursor: end < items.length ? Buffer.from(`offset:${end}`).toString('base64') : '',
  };
}

let tsCounter = 0;
const nextTs = () => `${Math.floor(Date.now() / 1000)}.${String(++tsCounter % 1_000_000).padStart(6, '0')}`;

const METHODS: Record<string, Method> = {
  // Needs no scope: it answers who the token belongs to (offboard calls it at start-up).
  'auth.test': {
    scope: '',
    handle({ state, grant }) {
      const team = state.teams[0]!;
      return {
        ok: true,
        url: `https://${team.id.toLowerCase()}.slack.com/`,
        team: team.id,
        user: grant.userId,
        team_id: team.id,
        user_id: grant.userId,
        enterprise_id: state.enterpriseId,
      };
    },
  },
  'users.lookupByEmail': {
    scope: 'users:read.email',
    handle({ params, state }) {
      const email = text(params, 'email');
      if (!email) return missing('email');
      // Slack does not return deactivated users here: users_not_found, as for an unknown address.
      const user = Object.values(state.users).find((u) => !u.deleted && u.email?.toLowerCase() === email.toLowerCase());
      return user ? { ok: true, user: renderUser(user, state, true) } : fail('users_not_found');
    },
  },
  'users.info': {
    scope: 'users:read',
    handle({ params, state, grant }) {
      const user = targetUser(params, state, 'user');
      if (isAnswer(user)) return user;
      return { ok: true, user: renderUser(user, state, grant.scopes.includes('users:read.email')) };
    },
  },
  'usergroups.list': {
    scope: 'usergroups:read',
    handle({ params, state }) {
      const teamId = workspaceOf(params, state);
      if (isAnswer(teamId)) return teamId;
      const groups = Object.values(state.usergroups).filter(
        (g) => g.teamId === teamId && (!g.disabled || flag(params, 'include_disabled')),
      );
      return { ok: true, usergroups: groups.map((g) => renderUsergroup(g, flag(params, 'include_users'))) };
    },
  },
  'usergroups.users.list': {
    scope: 'usergroups:read',
    handle({ params, state }) {
      const teamId = workspaceOf(params, state);
      if (isAnswer(teamId)) return teamId;
      const id = text(params, 'usergroup');
      if (!id) return missing('usergroup');
      const group = state.usergroups[id];
      if (!group || group.teamId !== teamId || (group.disabled && !flag(params, 'include_disabled')))
        return fail('no_such_subteam');
      return { ok: true, users: [...group.users] };
    },
  },
  'usergroups.users.update': {
    scope: 'usergroups:write',
    handle({ params, state, grant }) {
      const teamId = workspaceOf(params, state);
      if (isAnswer(teamId)) return teamId;
      const id = text(params, 'usergroup');
      if (!id) return missing('usergroup');
      const group = state.usergroups[id];
      if (!group || group.teamId !== teamId) return fail('no_such_subteam');
      const users = list(params, 'users');
      // The whole list is replaced; an empty list is refused (usergroups.disable exists for that).
      if (!users || users.length === 0) return fail('no_users_provided');
      const unknown = users.filter((u) => !state.users[u]);
      if (unknown.length > 0) return fail('invalid_users');
      if (users.some((u) => state.users[u]?.isBot)) return fail('invalid_user');
      // Documented: "User(s) are not in the workspace where this usergroup exists". Slack does not
      // say which, nor whether the others were written; here nothing is.
      if (users.some((u) => !state.users[u]!.teams.includes(group.teamId))) return fail('failed_for_some_users');
      group.users = [...new Set(users)];
      group.dateUpdate = Math.floor(Date.now() / 1000);
      group.updatedBy = grant.userId;
      return { ok: true, usergroup: renderUsergroup(group, true) };
    },
  },
  'admin.users.remove': {
    scope: 'admin.users:write',
    admin: true,
    handle({ params, state }) {
      const teamId = workspaceOf(params, state);
      if (isAnswer(teamId)) return teamId;
      const user = targetUser(params, state);
      if (isAnswer(user)) return user;
      if (user.isPrimaryOwner) return fail('cannot_modify_primary_owner');
      if (user.deleted) return fail('user_already_deleted');
      if (!user.teams.includes(teamId)) return fail('user_not_found');
      user.teams = user.teams.filter((t) => t !== teamId);
      user.removedFrom = [...new Set([...user.removedFrom, teamId])];
      state.workspaceRemovals.push({ userId: user.id, teamId });
      return { ok: true };
    },
  },
  'admin.users.assign': {
    scope: 'admin.users:write',
    admin: true,
    handle({ params, state }) {
      const teamId = workspaceOf(params, state);
      if (isAnswer(teamId)) return teamId;
      const user = targetUser(params, state);
      if (isAnswer(user)) return user;
      if (user.isBot) return fail('user_is_bot');
      if (user.deleted) return fail('user_not_found');
      if (user.teams.includes(teamId)) return fail('user_already_team_member');
      user.teams = [...user.teams, teamId];
      user.removedFrom = user.removedFrom.filter((t) => t !== teamId);
      state.workspaceAssignments.push({ userId: user.id, teamId });
      return { ok: true };
    },
  },
  'admin.teams.list': {
    scope: 'admin.teams:read',
    admin: true,
    handle({ params, state }) {
      const page = cursorPage(params, state.teams);
      if (isAnswer(page)) return page;
      return {
        ok: true,
        teams: page.items.map((t) => ({
          id: t.id,
          name: t.name,
          discoverability: 'invite_only',
          primary_owner: { user_id: slackUserIdFor('E1000'), email: 'keeper@example.org' },
          team_url: `https://${t.id.toLowerCase()}.enterprise.slack.com/`,
        })),
        response_metadata: { next_cursor: page.nextCursor },
      };
    },
  },
  'admin.users.list': {
    scope: 'admin.users:read',
    admin: true,
    handle({ params, state }) {
      const teamId = text(params, 'team_id');
      if (teamId && !state.teams.some((t) => t.id === teamId)) return fail('team_not_found');
      // Default is_active=true: active users only; false: only deactivated ones.
      const active = params.is_active === undefined || flag(params, 'is_active');
      const withRemoved = !teamId && flag(params, 'include_deactivated_user_workspaces');
      const users = Object.values(state.users).filter(
        (u) => !u.isBot && u.deleted !== active && (!teamId || u.teams.includes(teamId)),
      );
      const page = cursorPage(params, users);
      if (isAnswer(page)) return page;
      return {
        ok: true,
        users: page.items.map((u) => ({
          id: u.id,
          email: u.email ?? '',
          is_admin: u.isAdmin,
          is_owner: u.isOwner,
          is_primary_owner: u.isPrimaryOwner,
          is_restricted: false,
          is_ultra_restricted: false,
          is_bot: u.isBot,
          username: u.name,
          full_name: u.realName,
          is_active: !u.deleted,
          date_created: SEED_TIME,
          ...(teamId ? {} : { workspaces: withRemoved ? [...u.teams, ...u.removedFrom] : [...u.teams] }),
        })),
        response_metadata: { next_cursor: page.nextCursor },
      };
    },
  },
  'admin.users.deactivate': {
    scope: 'admin.users:write',
    admin: true,
    handle({ params, state }) {
      const user = targetUser(params, state);
      if (isAnswer(user)) return user;
      if (user.isPrimaryOwner) return fail('cannot_modify_primary_owner');
      if (user.isBot) return fail('user_is_bot');
      if (user.deleted) return fail('user_already_deactivated');
      user.deleted = true;
      state.deactivations.push(user.id);
      return { ok: true };
    },
  },
  'admin.users.session.reset': {
    scope: 'admin.users:write',
    admin: true,
    handle({ params, state }) {
      const user = targetUser(params, state);
      if (isAnswer(user)) return user;
      if (user.isBot) return fail('cannot_reset_bot');
      if (user.isPrimaryOwner) return fail('cannot_reset_primary_owner');
      state.sessionResets[user.id] = (state.sessionResets[user.id] ?? 0) + 1;
      return { ok: true };
    },
  },
  'chat.postMessage': {
    scope: 'chat:write',
    handle({ params, state, grant }) {
      const target = text(params, 'channel');
      if (!target) return fail('channel_not_found');
      const channel = state.channels.find((c) => c.id === target || `#${c.name}` === target || c.name === target);
      // A user id opens (or reuses) the direct message with that user.
      const direct = !channel && state.users[target] && !state.users[target].deleted ? `D${target}` : undefined;
      const channelId = channel?.id ?? direct;
      if (!channelId) return fail('channel_not_found');
      const body = text(params, 'text');
      if (!body && !params.blocks && !params.attachments) return fail('no_text');
      const message = { channel: channelId, text: body ?? '', ts: nextTs(), user: grant.userId };
      state.messages.push(message);
      return {
        ok: true,
        channel: channelId,
        ts: message.ts,
        message: { type: 'message', text: message.text, user: grant.userId, ts: message.ts },
      };
    },
  },
};

// ---- HTTP ----------------------------------------------------------------------------------------

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

interface Parsed {
  params: Params;
  bodyToken?: string;
  warnings: string[];
  error?: string;
}

function parseRequest(req: IncomingMessage, url: URL, body: string): Parsed {
  const params: Params = Object.fromEntries(url.searchParams);
  const warnings: string[] = [];
  const contentType = (req.headers['content-type'] ?? '').toLowerCase();
  if (body.length === 0) return { params, bodyToken: text(params, 'token'), warnings };
  if (contentType.startsWith('application/json')) {
    if (!contentType.includes('charset')) warnings.push('missing_charset');
    try {
      const parsed: unknown = JSON.parse(body);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        return { params, warnings, error: 'invalid_json' };
      // A token inside a JSON body is not read: JSON callers must send the Authorization header.
      return { params: { ...params, ...(parsed as Params) }, warnings };
    } catch {
      return { params, warnings, error: 'invalid_json' };
    }
  }
  if (contentType === '') return { params, warnings, error: 'missing_post_type' };
  if (contentType.startsWith('application/x-www-form-urlencoded')) {
    const form = Object.fromEntries(new URLSearchParams(body));
    return { params: { ...params, ...form }, bodyToken: form.token ?? text(params, 'token'), warnings };
  }
  return { params, warnings, error: 'invalid_post_type' };
}

function send(res: ServerResponse, status: number, answer: unknown, headers: Record<string, string> = {}) {
  const body = JSON.stringify(answer);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startSlackSandbox(options: { port?: number } = {}): Promise<SlackSandbox> {
  let state = seedState();
  let faults: SlackFaults = {};
  let errorCredit = 0;

  const sandbox: SlackSandbox = {
    url: '',
    apiUrl: '',
    get state() {
      return state;
    },
    inject(next: SlackFaults) {
      faults = { ...next, ...(next.rateLimit ? { rateLimit: { ...next.rateLimit } } : {}) };
      errorCredit = 0;
    },
    reset() {
      state = seedState();
      faults = {};
      errorCredit = 0;
    },
    stop: async () => undefined,
  };

  async function handleApi(req: IncomingMessage, res: ServerResponse, url: URL, method: string) {
    const body = await readBody(req);
    if (faults.latencyMs) await sleep(faults.latencyMs);
    if (faults.resetConnections && faults.resetConnections > 0) {
      faults.resetConnections -= 1;
      req.socket.destroy();
      return;
    }
    if (faults.rateLimit && faults.rateLimit.count > 0) {
      faults.rateLimit.count -= 1;
      return send(
        res,
        429,
        { ok: false, error: 'ratelimited' },
        { 'retry-after': String(faults.rateLimit.retryAfterSeconds) },
      );
    }
    if (faults.errorRate && faults.errorRate > 0) {
      errorCredit += faults.errorRate;
      if (errorCredit >= 1) {
        errorCredit -= 1;
        return send(res, 503, { ok: false, error: 'service_unavailable' });
      }
    }

    state.calls.push(method);
    const parsed = parseRequest(req, url, body);
    if (parsed.error) return send(res, 200, fail(parsed.error));
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
    const token = bearer ?? parsed.bodyToken;
    if (!token) return send(res, 200, fail('not_authed'));
    const grant = TOKENS[token];
    if (!grant) return send(res, 200, fail('invalid_auth'));
    const definition = METHODS[method];
    if (!definition) return send(res, 200, fail('unknown_method', { req_method: method }));

    const scopeHeaders = { 'x-oauth-scopes': grant.scopes.join(','), 'x-accepted-oauth-scopes': definition.scope };
    if (definition.admin && grant.kind !== 'user') return send(res, 200, fail('not_allowed_token_type'), scopeHeaders);
    if (definition.scope && !grant.scopes.includes(definition.scope)) {
      return send(
        res,
        200,
        fail('missing_scope', { needed: definition.scope, provided: grant.scopes.join(',') }),
        scopeHeaders,
      );
    }
    if (definition.admin && !grant.admin) return send(res, 200, fail('not_an_admin'), scopeHeaders);

    const unapplied = WRITES.has(method) && (faults.unappliedWrites ?? 0) > 0;
    if (unapplied) faults.unappliedWrites! -= 1;
    const before = unapplied ? structuredClone(state) : undefined;
    const answer = definition.handle({ params: parsed.params, grant, state });
    if (before) state = { ...before, calls: state.calls };
    if (parsed.warnings.length > 0) {
      Object.assign(answer, {
        warning: parsed.warnings.join(','),
        response_metadata: { ...((answer.response_metadata as object | undefined) ?? {}), warnings: parsed.warnings },
      });
    }
    send(res, 200, answer, scopeHeaders);
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? '/', 'http://sandbox');
    if (url.pathname === '/_sandbox/state' && req.method === 'GET') return send(res, 200, state);
    if (url.pathname === '/_sandbox/faults' && req.method === 'POST') {
      try {
        sandbox.inject(JSON.parse((await readBody(req)) || '{}') as SlackFaults);
        return send(res, 200, { ok: true, faults });
      } catch {
        return send(res, 400, { ok: false, error: 'faults must be a JSON object' });
      }
    }
    if (url.pathname === '/_sandbox/reset' && req.method === 'POST') {
      sandbox.reset();
      return send(res, 200, { ok: true });
    }
    const method = /^\/api\/([A-Za-z0-9._]+)$/.exec(url.pathname)?.[1];
    if (!method || (req.method !== 'POST' && req.method !== 'GET'))
      return send(res, 404, { ok: false, error: 'unknown_method' });
    return handleApi(req, res, url, method);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent)
        send(res, 500, {
          ok: false,
          error: 'internal_error',
          detail: err instanceof Error ? err.message : String(err),
        });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  sandbox.url = `http://127.0.0.1:${port}`;
  sandbox.apiUrl = `${sandbox.url}/api/`;
  sandbox.stop = () =>
    new Promise<void>((resolve, reject) => {
      server.closeAllConnections();
      server.close((err) => (err ? reject(err) : resolve()));
    });
  return sandbox;
}
