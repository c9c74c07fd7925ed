/**
 * PostgreSQL roles as a target system (a warehouse, an application database). The person's role
 * name comes from a template over their identifiers (`{employeeId}`, `{emailLocalPart}`), lower-
 * cased. Login is disabled with NOLOGIN, live sessions are terminated, memberships revoked and
 * checked in pg_auth_members (a REVOKE can succeed with only a warning under PostgreSQL 16's
 * grantor rules), and after retention the role's objects are reassigned, its privileges dropped
 * in every configured database, and the role dropped.
 *
 * DDL takes no bind parameters, so every identifier is quoted with escapeIdentifier.
 */
import pg from 'pg';
import { z } from 'zod';
import type { Action, Discovery } from '../../model/plan.js';
import type { Subject } from '../../model/request.js';
import { defineConnector } from './descriptor.js';
import { ConnectorError, type ApplyResult, type Connector } from './types.js';

export const postgresSystemSchema = z.object({
  type: z.literal('postgres'),
  /** A connection URL for a role with CREATEROLE (and pg_signal_backend); it holds a password, so it is a secret. */
  url: z.string().regex(/^postgres(ql)?:\/\//, 'a postgres:// URL'),
  /** How the person's role is named: `{employeeId}` and `{emailLocalPart}` are filled in, lower-cased. */
  roleName: z.string().min(1).default('{employeeId}'),
  /** Who receives the objects a deleted role owned. */
  reassignOwnedTo: z.string().min(1),
  /** Databases to clean with REASSIGN OWNED / DROP OWNED before DROP ROLE; default the URL's. */
  databases: z.array(z.string().min(1)).default([]),
});
export type PostgresSystemConfig = z.infer<typeof postgresSystemSchema>;

export const postgresConnector = defineConnector({
  type: 'postgres',
  configSchema: postgresSystemSchema,
  // The URL carries the connector role's password.
  secretFields: ['url'],
  capabilities: {
    actions: ['disable_login', 'enable_login', 'revoke_sessions', 'remove_entitlement', 'delete_account'],
    discover: true,
    verify: true,
    check: true,
  },
  create: (config, { system }) => createPostgresConnector(system, config),
});

// SQLSTATEs whose retry cannot help: privileges, dependencies, objects in use.
const PERMANENT: Record<string, string> = {
  '42501':
    'insufficient privilege: the connector role needs CREATEROLE and pg_signal_backend (and ownership rights for REASSIGN OWNED)',
  '2BP01': 'the role still has dependent objects: add their databases to `databases` so that they are reassigned first',
  '55006': 'the object is in use',
  '28P01': 'password authentication failed: check the connection URL',
  '28000': 'the connector role may not connect: check pg_hba.conf and the URL',
  '3D000': 'database does not exist: check `databases` and the URL',
};

function classify(err: unknown, doing: string): ConnectorError {
  if (err instanceof ConnectorError) return err;
  const code = (err as { code?: string }).code;
  const message = err instanceof Error ? err.message : String(err);
  if (code && PERMANENT[code])
    return new ConnectorError(
      `PostgreSQL ${doing} failed: ${PERMANENT[code]} (${code}: ${message})`,
      false,
      `pg_${code}`,
    );
  if (code && /^(42|22|23|0A)/.test(code))
    return new ConnectorError(`PostgreSQL ${doing} failed: ${code}: ${message}`, false, `pg_${code}`);
  return new ConnectorError(`PostgreSQL ${doing} failed: ${message}`, true, code ? `pg_${code}` : 'pg_unreachable');
}

function roleNameFor(template: string, subject: Subject): string {
  const localPart = subject.email?.split('@')[0];
  return template
    .replaceAll('{employeeId}', subject.employeeId)
    .replaceAll('{emailLocalPart}', localPart ?? '')
    .toLowerCase();
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${encodeURIComponent(database)}`;
  return parsed.toString();
}

export function createPostgresConnector(system: string, config: PostgresSystemConfig): Connector {
  const defaultDatabase = decodeURIComponent(new URL(config.url).pathname.slice(1)) || 'postgres';
  const databases = config.databases.length > 0 ? config.databases : [defaultDatabase];

  async function withClient<T>(doing: string, work: (client: pg.Client) => Promise<T>, url = config.url): Promise<T> {
    // Bounded below the activity's 60 s call bound, so the connector's own classified error comes first.
    const client = new pg.Client({
      connectionString: url,
      connectionTimeoutMillis: 10_000,
      statement_timeout: 45_000,
      query_timeout: 50_000,
    });
    try {
      await client.connect();
      return await work(client);
    } catch (err) {
      throw classify(err, doing);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  const quote = (client: pg.Client, identifier: string) => client.escapeIdentifier(identifier);

  async function role(client: pg.Client, name: string) {
    const { rows } = await client.query<{ oid: number; rolcanlogin: boolean }>(
      'SELECT oid, rolcanlogin FROM pg_roles WHERE rolname = $1',
      [name],
    );
    return rows[0];
  }

  async function memberships(client: pg.Client, name: string): Promise<string[]> {
    const { rows } = await client.query<{ rolname: string }>(
      `SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
       WHERE u.rolname = $1 ORDER BY g.rolname`,
      [name],
    );
    return [...new Set(rows.map((r) => r.rolname))];
  }

  async function sessions(client: pg.Client, name: string): Promise<number[]> {
    const { rows } = await client.query<{ pid: number }>(
      'SELECT pid FROM pg_stat_activity WHERE usename = $1 AND pid <> pg_backend_pid()',
      [name],
    );
    return rows.map((r) => r.pid);
  }

  async function apply(action: Action): Promise<ApplyResult> {
    // The account id is the role name found by discover.
    const name = action.accountId;
    if (action.kind === 'delete_account') return deleteRole(name);
    return withClient(action.kind, async (client) => {
      const found = await role(client, name);
      if (!found) {
        if (action.kind === 'enable_login')
          throw new ConnectorError(
            `PostgreSQL: role ${name} no longer exists; it cannot be re-enabled`,
            false,
            'account_gone',
          );
        return { outcome: 'already', details: { role: name, note: 'role does not exist' } };
      }
      switch (action.kind) {
        case 'disable_login':
          if (!found.rolcanlogin) return { outcome: 'already', details: { role: name } };
          await client.query(`ALTER ROLE ${quote(client, name)} NOLOGIN`);
          return { outcome: 'done', details: { role: name } };
        case 'enable_login':
          if (found.rolcanlogin) return { outcome: 'already', details: { role: name } };
          await client.query(`ALTER ROLE ${quote(client, name)} LOGIN`);
          return { outcome: 'done', details: { role: name } };
        case 'revoke_sessions': {
          const pids = await sessions(client, name);
          if (pids.length === 0) return { outcome: 'already', details: { role: name, sessions: 0 } };
          // NOLOGIN does not end sessions that are already open: they are terminated one by one.
          // pg_terminate_backend answers false (with a warning) for a session it could not end;
          // since PostgreSQL 14 it can wait for the end, so the read-back below is not a race.
          const waits = Number((await client.query<{ v: string }>('SHOW server_version_num')).rows[0]?.v) >= 140000;
          await client.query(`SELECT pg_terminate_backend(pid${waits ? ', 5000' : ''}) FROM unnest($1::int[]) AS pid`, [
            pids,
          ]);
          const left = (await sessions(client, name)).filter((pid) => pids.includes(pid));
          if (waits && left.length > 0) {
            throw new ConnectorError(
              `PostgreSQL: ${left.length} session(s) of ${name} were still open after pg_terminate_backend (pid ${left.join(', ')}); give the connector role pg_signal_backend (a superuser's sessions need a superuser), then retry`,
              false,
              'pg_terminate_ineffective',
            );
          }
          return { outcome: 'done', details: { role: name, sessionsTerminated: pids.length - left.length } };
        }
        case 'remove_entitlement': {
          const group = action.target?.id;
          if (!group) throw new ConnectorError('remove_entitlement without a target role', false, 'bad_action');
          if (!(await memberships(client, name)).includes(group))
            return { outcome: 'already', details: { role: name, group } };
          await client.query(`REVOKE ${quote(client, group)} FROM ${quote(client, name)}`);
          if ((await memberships(client, name)).includes(group)) {
            throw new ConnectorError(
              `PostgreSQL: REVOKE ${group} FROM ${name} did not take effect (PostgreSQL 16 grantor rules): revoke it as the role that granted it, or as a superuser, then retry`,
              false,
              'pg_revoke_ineffective',
            );
          }
          return { outcome: 'done', details: { role: name, group } };
        }
        case 'revoke_tokens':
        case 'transfer_ownership':
          return {
            outcome: 'not_applicable',
            details: { reason: 'PostgreSQL roles hold no tokens; ownership moves with delete_account' },
          };
      }
      throw new ConnectorError(`unsupported action ${action.kind}`, false, 'bad_action');
    });
  }

  async function deleteRole(name: string): Promise<ApplyResult> {
    const exists = await withClient('delete_account', async (client) => (await role(client, name)) !== undefined);
    if (!exists) return { outcome: 'already', details: { role: name } };
    // Ownership and privileges are per database: each one is cleaned before the role can go.
    for (const database of databases) {
      await withClient(
        `delete_account (cleaning ${database})`,
        async (client) => {
          await client.query(`REASSIGN OWNED BY ${quote(client, name)} TO ${quote(client, config.reassignOwnedTo)}`);
          await client.query(`DROP OWNED BY ${quote(client, name)}`);
        },
        withDatabase(config.url, database),
      );
    }
    return withClient('delete_account', async (client) => {
      try {
        await client.query(`DROP ROLE ${quote(client, name)}`);
      } catch (err) {
        if ((err as { code?: string }).code === '42704') return { outcome: 'already', details: { role: name } };
        throw err;
      }
      return { outcome: 'done', details: { role: name, objectsReassignedTo: config.reassignOwnedTo, databases } };
    });
  }

  return {
    system,
    async discover(subject: Subject): Promise<Discovery> {
      const name = roleNameFor(config.roleName, subject);
      return withClient('discover', async (client) => {
        const found = await role(client, name);
        if (!found) return { system, account: null, entitlements: [], credentials: [] };
        return {
          system,
          account: { id: name, disabled: !found.rolcanlogin },
          entitlements: (await memberships(client, name)).map((group) => ({ id: group, kind: 'role', name: group })),
          credentials: (await sessions(client, name)).map((pid) => ({ id: String(pid), kind: 'session' as const })),
        };
      });
    },
    apply,
    /** Connects as the configured role and reads its own privileges: what the actions need, not only a login. */
    async check() {
      await withClient('check', async (client) => {
        const { rows } = await client.query<{ name: string; createrole: boolean; signal: boolean }>(
          `SELECT current_user AS name, rolsuper OR rolcreaterole AS createrole,
                  rolsuper OR pg_has_role(current_user, 'pg_signal_backend', 'USAGE') AS signal
           FROM pg_roles WHERE rolname = current_user`,
        );
        const self = rows[0];
        const missing = [
          ...(self?.createrole ? [] : ['CREATEROLE']),
          ...(self?.signal ? [] : ['membership of pg_signal_backend']),
        ];
        if (missing.length > 0) {
          throw new ConnectorError(
            `PostgreSQL: the connector role ${self?.name ?? '(unknown)'} lacks ${missing.join(' and ')}, which disabling logins, revoking memberships and ending sessions need: ALTER ROLE ... CREATEROLE and GRANT pg_signal_backend TO it`,
            false,
            'pg_privileges',
          );
        }
      });
    },
    async close() {},
  };
}
