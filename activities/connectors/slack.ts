/**
 * Slack (Enterprise Grid) through the Web API with `@slack/web-api`'s WebClient and an org admin
 * user token (xoxp-). The person is found by email (`users.lookupByEmail`) and addressed by their
 * Slack user id.
 *
 * Scope: every workspace of the org (`workspaces: all`, the default, read from admin.teams.list)
 * or the workspaces listed. Which of them have the person comes from their user record
 * (users.info `enterprise_user.teams`): admin.users.list has no filter by user, so asking each
 * workspace would read every member of every workspace on each verification. The account is
 * disabled when no workspace in scope has them (workspace mode) or they are deactivated; a person
 * left in any workspace fails the verification sweep ("login still enabled"). Entitlements are
 * the user groups of every workspace in scope that list them, disabled ones included
 * (usergroups.list with include_disabled): enabled again, a disabled group includes its members
 * again. (The `teamId` setting of earlier configs named one workspace and left the person in the
 * others; it is still accepted, and check() makes sure it is a workspace of the org.)
 *
 * Why removal from each workspace rather than org-wide deactivation by default: both are
 * documented Admin API methods (admin.users.remove per workspace; admin.users.deactivate
 * "from an enterprise organization and all its workspaces"), but Slack's Web API cannot undo a
 * deactivation (only the admin console or SCIM can), while a removal is undone by
 * admin.users.assign — so a cancelled offboarding puts the person back where they were.
 * `mode: org` deactivates instead, for those who prefer the stronger, one-way step.
 *
 * Action mapping:
 * - disable_login: `mode: 'workspace'` removes the user from each workspace in scope that has them
 *   (`admin.users.remove`); `mode: 'org'` deactivates them in every workspace of the org
 *   (`admin.users.deactivate`, which the WebClient does not wrap: `apiCall`). Already when
 *   deactivated, or (workspace mode) in no workspace in scope. Read back with users.info: still
 *   there after an ok is a retryable `slack_still_present`.
 * - enable_login (cancel): workspace mode adds the user back (`admin.users.assign`) to each
 *   workspace in scope they were removed from — Slack's record of that is admin.users.list with
 *   include_deactivated_user_workspaces, read page by page (only on a cancel); their user groups
 *   are not restored. In org mode, and for anyone deactivated org-wide, Slack's Web API has no way
 *   to reactivate: a non-retryable error asks for the admin console.
 * - revoke_sessions: `admin.users.session.reset` (every device). Slack cannot list sessions, so
 *   discovery reports one `session` entry while the user may sign in, and the reset is `done`
 *   each time it runs on an active user (a reset with no sessions is harmless); `already` once the
 *   user is deactivated, since deactivation signs them out everywhere.
 * - remove_entitlement: `usergroups.users.update` takes the whole member list, so the list is read
 *   (`usergroups.users.list`, in the group's workspace), the user taken out, the rest written
 *   back, and the list read again. `failed_for_some_users` (documented: some users are not in the
 *   group's workspace, unnamed) is answered by asking users.info which members Slack no longer
 *   has there and writing the list again without them (they are named in the details: Slack
 *   would not keep them in the group anyway). Slack cannot leave a user group empty: for the last member this throws a
 *   non-retryable error instead of disabling the group, because disabling (`usergroups.disable`)
 *   silences the handle for everyone who mentions it (an @oncall page would reach nobody), which
 *   is the group owner's call. Slack has no conditional update: two writers changing one group at
 *   once can lose one change; the check after the write and the verification sweep after each
 *   stage catch a re-added member.
 * - delete_account: Slack never deletes users (their messages stay attributed): it makes sure the
 *   account is disabled as disable_login does, and says so in the details.
 * - revoke_tokens, transfer_ownership: not applicable. Slack has no admin API that lists a user's
 *   OAuth tokens; they stop working when the user is deactivated or removed.
 *
 * Deactivated users are not returned by users.lookupByEmail (`users_not_found`, as Slack
 * documents), so a deactivated person is discovered as having no account: they hold no access.
 * `user_not_found`, `user_already_deleted` / `already_deleted` and the like answer `already`;
 * `account_inactive` does not: Slack uses it for the *token's* deactivated user or workspace, so it
 * is a credential error (non-retryable), never proof that the person is gone.
 *
 * The WebClient's own retries and rate-limit pauses are off (`retryConfig: { retries: 0 }`,
 * `rejectRateLimitedCalls: true`): one HTTP attempt per activity attempt, and a 429 becomes a
 * retryable ConnectorError whose retryAfterMs comes from Retry-After, so Temporal does the waiting.
 */
import {
  LogLevel,
  WebAPIHTTPError,
  WebAPIPlatformError,
  WebAPIRateLimitedError,
  WebAPIRequestError,
  WebClient,
} from '@slack/web-api';
import { z } from 'zod';
import type { Action, Discovery, Entitlement } from '../../model/plan.js';
import type { Subject } from '../../model/request.js';
import { defineConnector } from './descriptor.js';
import { ConnectorError, type ApplyResult, type Connector, type Outcome } from './types.js';

export const slackSystemSchema = z.object({
  type: z.literal('slack'),
  /** The Web API base: https://slack.com/api/ in production, the stand-in in tests. */
  apiUrl: z.url().default('https://slack.com/api/'),
  /** An org admin or owner's user token (xoxp-) from an app installed on the Enterprise Grid org: a secret. */
  token: z.string().regex(/^xoxp-/, 'an org admin user token (xoxp-…) from an app installed at the org level'),
  /**
   * The workspaces acted on: `all` (every workspace of the org, from admin.teams.list) or a list
   * of workspace ids. A person left in any workspace in scope fails verification.
   */
  workspaces: z
    .union([z.literal('all'), z.array(z.string().regex(/^T[A-Z0-9]+$/, 'a workspace id such as T0123ABCD')).min(1)])
    .default('all'),
  /**
   * Earlier configs named the one workspace acted on here, which left the person in the org's
   * other workspaces. Accepted so those configs still load; `check()` makes sure it is a workspace
   * of the org; the scope is `workspaces`.
   */
  teamId: z
    .string()
    .regex(/^T[A-Z0-9]+$/, 'a workspace id such as T0123ABCD')
    .optional(),
  /** workspace: remove the person from every workspace in scope; org: deactivate them org-wide. */
  mode: z.enum(['workspace', 'org']).default('workspace'),
  timeoutMs: z.number().int().positive().default(30_000),
});
export type SlackSystemConfig = z.infer<typeof slackSystemSchema>;

export const slackConnector = defineConnector({
  type: 'slack',
  configSchema: slackSystemSchema,
  secretFields: ['token'],
  capabilities: {
    actions: ['disable_login', 'enable_login', 'revoke_sessions', 'remove_entitlement', 'delete_account'],
    discover: true,
    verify: true,
    check: true,
  },
  create: (config, { system }) => createSlackConnector(system, config),
});

// Only the fields the connector relies on are parsed; Slack's objects carry many more.
const slackUserSchema = z.object({
  id: z.string(),
  deleted: z.boolean().optional(),
  team_id: z.string().optional(),
  enterprise_user: z.object({ teams: z.array(z.string()).optional() }).optional(),
});
type SlackUser = z.infer<typeof slackUserSchema>;

const usergroupSchema = z.object({
  id: z.string(),
  handle: z.string().optional(),
  users: z.array(z.string()).optional(),
  /** Non-zero once the group is disabled. */
  date_delete: z.number().optional(),
});

const cursorSchema = z.object({ next_cursor: z.string().optional() }).optional();
const teamsPageSchema = z.object({ teams: z.array(z.object({ id: z.string() })), response_metadata: cursorSchema });
const adminUsersPageSchema = z.object({
  users: z.array(z.object({ id: z.string(), workspaces: z.array(z.string()).optional() })),
  response_metadata: cursorSchema,
});

/** An answer without the fields relied on is not taken as "nothing there": it stops the action. */
function parseAnswer<T>(schema: z.ZodType<T>, value: unknown, doing: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new ConnectorError(
    `Slack ${doing} answered in an unexpected shape (${parsed.error.issues[0]?.message ?? 'invalid'}); check the apiUrl setting`,
    true,
    'slack_bad_answer',
  );
}

// ---- errors -----------------------------------------------------------------------------------

const DEFAULT_RETRY_AFTER_MS = 60_000;

// Platform errors that another attempt may get past.
const TRANSIENT = new Set([
  'internal_error',
  'fatal_error',
  'service_unavailable',
  'request_timeout',
  'team_added_to_org',
  'org_login_required',
  'user_session_reset_failed',
  'deactivation_failed',
  'failed_to_remove_user_from_workspace',
]);

function fixFor(error: string, teamId: string): string | undefined {
  switch (error) {
    case 'not_authed':
      return 'no token was sent: set the token setting to an org admin user token (xoxp-)';
    case 'invalid_auth':
      return 'the token is not valid (revoked, mistyped or from another org): issue a new org admin user token (xoxp-) and update the token setting';
    case 'token_revoked':
    case 'token_expired':
      return 'the token was revoked or has expired: reinstall the app on the org (or refresh the token) and update the token setting';
    case 'account_inactive':
      // This names the token's own user or workspace, never the person being offboarded.
      return "the token's user or workspace is deactivated: issue a token from an active org admin and update the token setting";
    case 'not_allowed_token_type':
      return 'the Admin API needs a user token (xoxp-) of an org admin or owner from an app installed at the org level, not a bot or workspace token';
    case 'not_an_admin':
    case 'invalid_permissions':
      return "the token's user is not an org admin or owner: issue the token from an org admin or owner";
    case 'access_denied':
    case 'no_permission':
    case 'permission_denied':
      return "Slack refused this for the token's user: use an org admin's token, and let admins manage user groups (Workspace settings → Permissions → User Groups)";
    case 'feature_not_enabled':
    case 'enterprise_is_restricted':
      return 'the Admin API is not available: it needs Enterprise Grid and an app installed on the org';
    case 'team_not_found':
      return `a workspace in scope (${teamId}) is not a workspace of this org: fix the workspaces (or teamId) setting`;
    case 'two_factor_setup_required':
      return "the token's user must set up two-factor authentication";
    case 'cannot_modify_primary_owner':
      return 'Slack never removes or deactivates the primary owner: transfer primary ownership first, or handle this person by hand';
    case 'cannot_reset_primary_owner':
      return "only the primary owner can reset the primary owner's sessions: ask them, or handle this person by hand";
    case 'cannot_reset_bot':
    case 'user_is_bot':
      return 'this is a bot user: manage it through its app, not as a person';
    default:
      return undefined;
  }
}

function classify(err: unknown, doing: string, teamId: string): ConnectorError {
  if (err instanceof ConnectorError) return err;
  if (err instanceof WebAPIRateLimitedError) {
    return new ConnectorError(
      `Slack rate-limited ${doing}: retry after ${err.retryAfter}s`,
      true,
      'slack_ratelimited',
      err.retryAfter * 1000,
    );
  }
  if (err instanceof WebAPIPlatformError) {
    const data = err.data as WebAPIPlatformError['data'] & { needed?: string; provided?: string };
    const error = data.error;
    const code = `slack_${error}`;
    if (error === 'ratelimited') {
      const seconds = data.response_metadata?.retryAfter;
      return new ConnectorError(
        `Slack rate-limited ${doing}`,
        true,
        code,
        seconds !== undefined ? seconds * 1000 : DEFAULT_RETRY_AFTER_MS,
      );
    }
    if (error === 'missing_scope') {
      const granted = data.provided ? ` (it has: ${data.provided})` : '';
      return new ConnectorError(
        `Slack ${doing} failed: the token lacks scope ${data.needed ?? '(not named)'}${granted}; add the scope to the app, reinstall it on the org and update the token setting`,
        false,
        code,
      );
    }
    if (TRANSIENT.has(error))
      return new ConnectorError(`Slack ${doing} failed: ${error} (a transient Slack error)`, true, code);
    const fix = fixFor(error, teamId);
    if (fix) return new ConnectorError(`Slack ${doing} failed: ${error}: ${fix}`, false, code);
    const messages = data.response_metadata?.messages?.length ? ` (${data.response_metadata.messages.join('; ')})` : '';
    if (/^(cant|cannot)_/.test(error))
      return new ConnectorError(
        `Slack ${doing} refused: ${error}${messages}; this needs a person in the Slack admin console`,
        false,
        code,
      );
    return new ConnectorError(`Slack ${doing} failed: ${error}${messages}`, false, code);
  }
  if (err instanceof WebAPIHTTPError) {
    const retryable = err.statusCode >= 500 || err.statusCode === 408;
    const hint = retryable ? 'Slack is having trouble' : 'check the apiUrl setting';
    return new ConnectorError(
      `Slack ${doing} failed: HTTP ${err.statusCode} ${err.statusMessage} (${hint})`,
      retryable,
      `slack_http_${err.statusCode}`,
    );
  }
  if (err instanceof WebAPIRequestError) {
    const original = err.original;
    const cause = (original as { cause?: { code?: string; message?: string } }).cause;
    const what =
      original.name === 'TimeoutError'
        ? 'no answer within timeoutMs'
        : (cause?.code ?? cause?.message ?? original.message);
    return new ConnectorError(`Slack ${doing} failed: ${what}`, true, 'slack_unreachable');
  }
  // A 429 without a usable Retry-After reaches here as a plain Error from the WebClient.
  const message = err instanceof Error ? err.message : String(err);
  return new ConnectorError(`Slack ${doing} failed: ${message}`, true, 'slack_unknown');
}

const platformErrorOf = (err: unknown): string | undefined =>
  err instanceof WebAPIPlatformError ? err.data.error : undefined;

// ---- the connector ----------------------------------------------------------------------------

export function createSlackConnector(system: string, config: SlackSystemConfig): Connector {
  const client = new WebClient(config.token, {
    slackApiUrl: config.apiUrl,
    // One attempt per activity attempt: Temporal's retry policy owns retries and waiting.
    rejectRateLimitedCalls: true,
    retryConfig: { retries: 0 },
    timeout: config.timeoutMs,
    logLevel: LogLevel.ERROR,
  });
  // Named in error messages (team_not_found): the configured workspaces, or the legacy teamId.
  const configuredTeams = config.workspaces === 'all' ? (config.teamId ?? 'all') : config.workspaces.join(', ');

  async function slack<T>(doing: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw classify(err, doing, configuredTeams);
    }
  }

  /** Runs a write; the platform errors named in `alreadyOn` mean its effect is in place. */
  async function write(doing: string, work: () => Promise<unknown>, alreadyOn: string[]): Promise<Outcome> {
    try {
      await work();
      return 'done';
    } catch (err) {
      const error = platformErrorOf(err);
      if (error && alreadyOn.includes(error)) return 'already';
      throw classify(err, doing, configuredTeams);
    }
  }

  /** A write Slack answered ok while the read-back still finds its target: retried, never reported done. */
  const stillThere = (what: string) =>
    new ConnectorError(
      `Slack answered ok, but reading back still finds ${what}; the retry reads it again`,
      true,
      'slack_still_present',
    );

  /** Every page of a cursor-paginated admin method. */
  async function allPages<T>(method: string, args: Record<string, unknown>, page: (answer: unknown) => T[]) {
    const items: T[] = [];
    let cursor: string | undefined;
    do {
      const answer = await slack(method, () =>
        client.apiCall(method, { ...args, limit: 100, ...(cursor ? { cursor } : {}) }),
      );
      items.push(...page(answer));
      cursor = (answer.response_metadata as { next_cursor?: string } | undefined)?.next_cursor || undefined;
    } while (cursor);
    return items;
  }

  /** The workspaces in scope: the configured list, or every workspace of the org. */
  async function workspacesInScope(): Promise<string[]> {
    if (config.workspaces !== 'all') return config.workspaces;
    return allPages('admin.teams.list', {}, (answer) =>
      parseAnswer(teamsPageSchema, answer, 'admin.teams.list').teams.map((t) => t.id),
    );
  }

  async function userById(userId: string): Promise<SlackUser | undefined> {
    try {
      const { user } = await client.users.info({ user: userId });
      return parseAnswer(slackUserSchema, user, 'users.info');
    } catch (err) {
      if (platformErrorOf(err) === 'user_not_found') return undefined;
      throw classify(err, 'users.info', configuredTeams);
    }
  }

  // Outside Enterprise Grid there is no enterprise_user: the user's own workspace is the only one.
  const workspacesOf = (user: SlackUser) => user.enterprise_user?.teams ?? (user.team_id ? [user.team_id] : []);
  const inScope = (user: SlackUser, scope: string[]) => workspacesOf(user).filter((t) => scope.includes(t));
  const isDisabled = (user: SlackUser, scope: string[]) =>
    user.deleted === true || (config.mode === 'workspace' && inScope(user, scope).length === 0);

  async function disable(userId: string): Promise<ApplyResult> {
    const user = await userById(userId);
    const details = { userId, mode: config.mode };
    if (!user) return { outcome: 'already', details: { ...details, note: 'no such user' } };
    if (user.deleted) return { outcome: 'already', details: { ...details, deactivated: true } };
    if (config.mode === 'org') {
      const outcome = await write(
        'admin.users.deactivate',
        () => client.apiCall('admin.users.deactivate', { user_id: userId }),
        ['user_not_found', 'user_already_deactivated', 'user_already_deleted', 'already_deleted'],
      );
      const after = await userById(userId);
      if (after && !after.deleted) throw stillThere(`${userId} active in the org`);
      return { outcome, details };
    }
    const scope = await workspacesInScope();
    const workspaces = inScope(user, scope);
    if (workspaces.length === 0) return { outcome: 'already', details: { ...details, workspaces: [] } };
    const removedFrom: string[] = [];
    for (const teamId of workspaces) {
      const outcome = await write(
        'admin.users.remove',
        () => client.admin.users.remove({ team_id: teamId, user_id: userId }),
        ['user_not_found', 'user_already_deleted', 'already_deleted'],
      );
      if (outcome === 'done') removedFrom.push(teamId);
    }
    const after = await userById(userId);
    const left = after && !after.deleted ? inScope(after, scope) : [];
    if (left.length > 0) throw stillThere(`${userId} in workspace ${left.join(', ')}`);
    return { outcome: removedFrom.length > 0 ? 'done' : 'already', details: { ...details, removedFrom } };
  }

  /**
   * The workspaces the user was removed from, as Slack records them: admin.users.list lists each
   * member's `workspaces`, with include_deactivated_user_workspaces the ones they were taken off
   * too. It has no filter by user, so the org's members are read page by page (only on a cancel).
   */
  async function formerWorkspaces(userId: string): Promise<string[] | undefined> {
    const users = await allPages(
      'admin.users.list',
      { include_deactivated_user_workspaces: true },
      (answer) => parseAnswer(adminUsersPageSchema, answer, 'admin.users.list').users,
    );
    return users.find((u) => u.id === userId)?.workspaces;
  }

  async function enable(userId: string): Promise<ApplyResult> {
    const user = await userById(userId);
    if (!user)
      throw new ConnectorError(
        `Slack: user ${userId} no longer exists; it cannot be re-enabled`,
        false,
        'account_gone',
      );
    if (config.mode === 'org' || user.deleted) {
      if (!user.deleted) return { outcome: 'already', details: { userId, mode: config.mode } };
      throw new ConnectorError(
        `Slack: user ${userId} is deactivated org-wide and Slack's Web API cannot reactivate users: reactivate ${userId} in the Slack admin console (Manage members), or through SCIM (PATCH active:true)`,
        false,
        'slack_cannot_reactivate',
      );
    }
    const scope = await workspacesInScope();
    const current = inScope(user, scope);
    const former = ((await formerWorkspaces(userId)) ?? []).filter((t) => scope.includes(t) && !current.includes(t));
    if (former.length === 0) {
      if (current.length > 0) return { outcome: 'already', details: { userId, workspaces: current } };
      throw new ConnectorError(
        `Slack: ${userId} is in no workspace and Slack does not say which ones they left: add them back in the Slack admin console (Manage members)`,
        false,
        'slack_cannot_restore',
      );
    }
    for (const teamId of former) {
      await write('admin.users.assign', () => client.admin.users.assign({ team_id: teamId, user_id: userId }), [
        'user_already_team_member',
      ]);
    }
    const after = await userById(userId);
    const missing = former.filter((t) => !(after ? workspacesOf(after) : []).includes(t));
    if (missing.length > 0)
      throw new ConnectorError(
        `Slack answered ok, but ${userId} is still not in workspace ${missing.join(', ')}; the retry adds them again`,
        true,
        'slack_not_restored',
      );
    return { outcome: 'done', details: { userId, assignedTo: former, note: 'user groups are not restored' } };
  }

  async function revokeSessions(userId: string): Promise<ApplyResult> {
    const user = await userById(userId);
    if (!user) return { outcome: 'already', details: { userId, note: 'no such user' } };
    if (user.deleted)
      return { outcome: 'already', details: { userId, note: 'deactivated users are signed out everywhere' } };
    const outcome = await write(
      'admin.users.session.reset',
      () => client.admin.users.session.reset({ user_id: userId }),
      ['user_not_found'],
    );
    return { outcome, details: { userId, note: 'Slack cannot list sessions: every session of the user was reset' } };
  }

  // usergroups.users.update replaces the whole list, so two removals from one group at once would
  // write back each other's user. Within this worker they take turns; across workers, the
  // workflow's verification sweep finds and repeats what a race undid.
  const groupTurns = new Map<string, Promise<unknown>>();
  function inTurn<T>(usergroup: string, work: () => Promise<T>): Promise<T> {
    const previous = groupTurns.get(usergroup) ?? Promise.resolve();
    const mine = previous.then(work, work);
    const settled = mine.catch(() => undefined);
    groupTurns.set(usergroup, settled);
    void settled.then(() => {
      if (groupTurns.get(usergroup) === settled) groupTurns.delete(usergroup);
    });
    return mine;
  }

  interface Usergroup {
    id: string;
    teamId: string;
    handle?: string;
    users: string[];
    disabled: boolean;
  }

  /** User groups of the workspaces in scope, disabled ones too (re-enabled, they would grant again). */
  async function usergroupsIn(scope: string[]): Promise<Usergroup[]> {
    const groups: Usergroup[] = [];
    for (const teamId of scope) {
      const { usergroups } = await slack('usergroups.list', () =>
        client.usergroups.list({ team_id: teamId, include_users: true, include_disabled: true }),
      );
      for (const group of parseAnswer(z.array(usergroupSchema), usergroups, 'usergroups.list')) {
        groupWorkspace.set(group.id, teamId);
        groups.push({
          id: group.id,
          teamId,
          handle: group.handle,
          users: group.users ?? [],
          disabled: (group.date_delete ?? 0) > 0,
        });
      }
    }
    return groups;
  }

  // Which workspace holds a user group (its id alone does not say, and every call needs team_id):
  // learnt by discovery, looked up again when this worker has not seen the group.
  const groupWorkspace = new Map<string, string>();
  async function workspaceOfGroup(usergroup: string): Promise<string | undefined> {
    const known = groupWorkspace.get(usergroup);
    if (known) return known;
    await usergroupsIn(await workspacesInScope());
    return groupWorkspace.get(usergroup);
  }

  function removeFromGroup(userId: string, target: Entitlement): Promise<ApplyResult> {
    return inTurn(target.id, () => removeFromGroupNow(userId, target));
  }

  async function removeFromGroupNow(userId: string, target: Entitlement): Promise<ApplyResult> {
    const usergroup = target.id;
    const details = { userId, usergroup, ...(target.name ? { name: target.name } : {}) };
    const gone = { outcome: 'already' as const, details: { ...details, note: 'the user group no longer exists' } };
    const teamId = await workspaceOfGroup(usergroup);
    if (!teamId) return gone;
    const membersNow = async (): Promise<string[] | undefined> => {
      try {
        const answer = await client.usergroups.users.list({ usergroup, team_id: teamId, include_disabled: true });
        return parseAnswer(z.array(z.string()), answer.users, 'usergroups.users.list');
      } catch (err) {
        if (platformErrorOf(err) === 'no_such_subteam') return undefined;
        throw classify(err, 'usergroups.users.list', configuredTeams);
      }
    };
    const members = await membersNow();
    if (!members) return gone;
    if (!members.includes(userId)) return { outcome: 'already', details: { ...details, teamId } };
    let rest = members.filter((member) => member !== userId);
    const lastMember = () =>
      new ConnectorError(
        `Slack: ${userId} is the last member of user group ${target.name ?? usergroup} (${usergroup}) and Slack cannot leave a user group empty: add another member or disable the group in Slack, then retry`,
        false,
        'slack_last_member',
      );
    if (rest.length === 0) throw lastMember();
    const update = () => client.usergroups.users.update({ usergroup, team_id: teamId, users: rest.join(',') });
    let dropped: string[] = [];
    try {
      await update();
    } catch (err) {
      if (platformErrorOf(err) !== 'failed_for_some_users')
        throw classify(err, 'usergroups.users.update', configuredTeams);
      // Documented: some of the users are not in the group's workspace. Slack does not say which,
      // and would not keep them in the group anyway: the list is written again without them.
      dropped = await notInWorkspace(rest, teamId);
      rest = rest.filter((member) => !dropped.includes(member));
      if (dropped.length === 0)
        throw new ConnectorError(
          `Slack refused to update user group ${usergroup} with failed_for_some_users, yet every remaining member is in workspace ${teamId}; retrying reads the group again`,
          true,
          'slack_failed_for_some_users',
        );
      if (rest.length === 0) throw lastMember();
      try {
        await update();
      } catch (again) {
        // Another offboarding took a member out of the workspace meanwhile (a burst of leavers
        // in one group): the next attempt reads the group afresh.
        if (platformErrorOf(again) !== 'failed_for_some_users')
          throw classify(again, 'usergroups.users.update', configuredTeams);
        throw new ConnectorError(
          `Slack refused user group ${usergroup} twice with failed_for_some_users (its members are changing); retrying reads the group again`,
          true,
          'slack_failed_for_some_users',
        );
      }
    }
    // The update answers with the group, but only the list read back says what Slack kept.
    const after = await membersNow();
    if (after?.includes(userId)) throw stillThere(`${userId} in user group ${usergroup} (a concurrent change?)`);
    return {
      outcome: 'done',
      details: {
        ...details,
        teamId,
        membersLeft: rest.length,
        ...(dropped.length > 0 ? { droppedNotInWorkspace: dropped } : {}),
      },
    };
  }

  /** Which of these users Slack has outside the workspace (removed from it, or deactivated). */
  async function notInWorkspace(userIds: string[], teamId: string): Promise<string[]> {
    const outside: string[] = [];
    for (const id of userIds) {
      const user = await userById(id);
      if (!user || user.deleted || !workspacesOf(user).includes(teamId)) outside.push(id);
    }
    return outside;
  }

  async function apply(action: Action): Promise<ApplyResult> {
    const userId = action.accountId;
    switch (action.kind) {
      case 'disable_login':
        return disable(userId);
      case 'enable_login':
        return enable(userId);
      case 'revoke_sessions':
        return revokeSessions(userId);
      case 'remove_entitlement':
        if (!action.target)
          throw new ConnectorError('remove_entitlement without a target user group', false, 'bad_action');
        return removeFromGroup(userId, action.target);
      case 'delete_account': {
        const result = await disable(userId);
        return {
          ...result,
          details: {
            ...result.details,
            note: 'Slack does not delete users: the account stays deactivated (or out of every workspace)',
          },
        };
      }
      case 'revoke_tokens':
        return {
          outcome: 'not_applicable',
          details: {
            reason:
              "Slack has no admin API listing a user's tokens; they stop working when the user is deactivated or removed",
          },
        };
      case 'transfer_ownership':
        return {
          outcome: 'not_applicable',
          details: {
            reason: "Slack keeps a departed user's messages, files and channels in place; nothing they own has to move",
          },
        };
    }
    throw new ConnectorError(`unsupported action ${String(action.kind)}`, false, 'bad_action');
  }

  async function lookup(email: string): Promise<SlackUser | undefined> {
    try {
      const { user } = await client.users.lookupByEmail({ email });
      return parseAnswer(slackUserSchema, user, 'users.lookupByEmail');
    } catch (err) {
      if (platformErrorOf(err) === 'users_not_found') return undefined;
      throw classify(err, 'users.lookupByEmail', configuredTeams);
    }
  }

  return {
    system,
    async discover(subject: Subject): Promise<Discovery> {
      const none: Discovery = { system, account: null, entitlements: [], credentials: [] };
      // Slack accounts are found by email; without one there is nothing to look up.
      if (!subject.email) return none;
      const user = await lookup(subject.email);
      if (!user) return none;
      const scope = await workspacesInScope();
      const disabled = isDisabled(user, scope);
      const groups = (await usergroupsIn(scope)).filter((group) => group.users.includes(user.id));
      return {
        system,
        account: { id: user.id, disabled },
        entitlements: groups.map((group) => ({
          id: group.id,
          kind: 'usergroup',
          ...(group.handle ? { name: `@${group.handle}${group.disabled ? ' (disabled)' : ''}` } : {}),
        })),
        // Slack has no API listing sessions: one entry stands for "may have sessions" while the user can sign in.
        credentials: disabled ? [] : [{ id: `${user.id}/sessions`, kind: 'session' }],
        // Slack never deletes users: deactivated is as gone as a Slack account gets.
        permanentAccounts: true,
      };
    },
    apply,
    /**
     * auth.test accepts any valid token; admin.teams.list needs an org admin's token with the
     * admin scopes, as the actions do, and says which workspaces there are to check the config.
     */
    async check() {
      await slack('auth.test', () => client.auth.test());
      const teams = await allPages('admin.teams.list', {}, (answer) =>
        parseAnswer(teamsPageSchema, answer, 'admin.teams.list').teams.map((t) => t.id),
      );
      const configured = [
        ...(config.workspaces === 'all' ? [] : config.workspaces),
        ...(config.teamId ? [config.teamId] : []),
      ];
      const unknown = configured.filter((t) => !teams.includes(t));
      if (unknown.length > 0)
        throw new ConnectorError(
          `Slack: ${unknown.join(', ')} ${unknown.length > 1 ? 'are not workspaces' : 'is not a workspace'} of this org (it has ${teams.join(', ')}): fix the workspaces (or teamId) setting`,
          false,
          'slack_team_not_found',
        );
    },
    async close() {},
  };
}
