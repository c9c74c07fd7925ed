/**
 * The PostgreSQL roles connector against a real PostgreSQL cluster seeded with the sample
 * organisation's warehouse roles: live sessions, memberships, ownership and idempotency.
 */
import assert from 'node:assert/strict';
import pg from 'pg';
import { createPostgresConnector } from '../activities/connectors/postgres.js';
import { ConnectorError, type Connector } from '../activities/connectors/types.js';
import type { Action } from '../model/plan.js';
import { seedWarehouseRoles, WAREHOUSE_ARCHIVE_ROLE } from '../sandbox/postgres.js';
import { sharedPostgres } from './helpers/environment.js';

describe('PostgreSQL roles connector (real PostgreSQL)', () => {
  let admin: pg.Client;
  let connector: Connector;
  let url: string;

  before(async () => {
    url = (await sharedPostgres()).url;
    admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await seedWarehouseRoles(admin);
    connector = createPostgresConnector('warehouse', {
      type: 'postgres',
      url,
      roleName: '{employeeId}',
      reassignOwnedTo: WAREHOUSE_ARCHIVE_ROLE,
      databases: [],
    });
  });

  after(async () => {
    await admin?.end();
  });

  const action = (kind: Action['kind'], accountId: string, target?: Action['target']): Action => ({
    id: `t/${kind}`,
    stage: 't',
    system: 'warehouse',
    kind,
    accountId,
    target,
  });
  const subject = (employeeId: string) => ({ employeeId });
  const loginAs = async (role: string) => {
    const client = new pg.Client({ connectionString: url.replace('postgres@', `${role}@`) });
    client.on('error', () => undefined);
    await client.connect();
    return client;
  };
  const roleState = async (role: string) => {
    const { rows } = await admin.query<{ rolcanlogin: boolean }>(
      'SELECT rolcanlogin FROM pg_roles WHERE rolname = $1',
      [role],
    );
    const groups = await admin.query<{ rolname: string }>(
      'SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1 ORDER BY 1',
      [role],
    );
    const sessions = await admin.query('SELECT 1 FROM pg_stat_activity WHERE usename = $1', [role]);
    return {
      exists: rows.length === 1,
      login: rows[0]?.rolcanlogin ?? false,
      groups: groups.rows.map((r) => r.rolname),
      sessions: sessions.rowCount,
    };
  };

  it('discovers the role, its memberships and its live sessions', async () => {
    const session = await loginAs('e1001');
    try {
      const found = await connector.discover(subject('E1001'));
      assert.deepEqual(found.account, { id: 'e1001', disabled: false });
      assert.deepEqual(
        found.entitlements.map((e) => e.id),
        ['finance_readers', 'pii_readers', 'warehouse_admins'],
      );
      assert.equal(found.credentials.filter((c) => c.kind === 'session').length, 1);
      assert.deepEqual(await connector.discover(subject('E9876')), {
        system: 'warehouse',
        account: null,
        entitlements: [],
        credentials: [],
      });
    } finally {
      await session.end().catch(() => undefined);
    }
  });

  it('NOLOGIN, sessions terminated, memberships revoked: done once, already after', async () => {
    const session = await loginAs('e1002');
    for (const kind of ['disable_login', 'revoke_sessions'] as const) {
      assert.equal((await connector.apply(action(kind, 'e1002'), subject('E1002'))).outcome, 'done', kind);
      assert.equal((await connector.apply(action(kind, 'e1002'), subject('E1002'))).outcome, 'already', kind);
    }
    await assert.rejects(session.query('SELECT 1'), 'the open session was terminated');
    await assert.rejects(loginAs('e1002'), /not permitted to log in/);
    const found = await connector.discover(subject('E1002'));
    for (const group of found.entitlements) {
      assert.equal(
        (await connector.apply(action('remove_entitlement', 'e1002', group), subject('E1002'))).outcome,
        'done',
      );
      assert.equal(
        (await connector.apply(action('remove_entitlement', 'e1002', group), subject('E1002'))).outcome,
        'already',
      );
    }
    assert.deepEqual(await roleState('e1002'), { exists: true, login: false, groups: [], sessions: 0 });
    assert.equal((await connector.apply(action('enable_login', 'e1002'), subject('E1002'))).outcome, 'done');
    assert.equal((await roleState('e1002')).login, true);
  });

  it('delete reassigns what the role owned, then drops it; deleting again is already', async () => {
    const session = await loginAs('e1003');
    await admin.query('GRANT CREATE ON SCHEMA public TO e1003');
    await session.query('CREATE TABLE e1003_quarterly_report (id int)');
    await session.end();
    assert.equal((await connector.apply(action('delete_account', 'e1003'), subject('E1003'))).outcome, 'done');
    assert.equal((await roleState('e1003')).exists, false);
    const owner = await admin.query<{ tableowner: string }>(
      `SELECT tableowner FROM pg_tables WHERE tablename = 'e1003_quarterly_report'`,
    );
    assert.equal(owner.rows[0]?.tableowner, WAREHOUSE_ARCHIVE_ROLE, 'the data stays, owned by the archive role');
    assert.equal((await connector.apply(action('delete_account', 'e1003'), subject('E1003'))).outcome, 'already');
    await assert.rejects(
      connector.apply(action('enable_login', 'e1003'), subject('E1003')),
      (err: ConnectorError) => !err.retryable && /no longer exists/.test(err.message),
    );
  });

  it('quotes identifiers: a hostile role name is a name, not SQL', async () => {
    const evil = 'x"; drop role analysts; --';
    await admin.query(`CREATE ROLE ${admin.escapeIdentifier(evil)} LOGIN IN ROLE analysts`);
    const evilConnector = createPostgresConnector('warehouse', {
      type: 'postgres',
      url,
      roleName: evil,
      reassignOwnedTo: WAREHOUSE_ARCHIVE_ROLE,
      databases: [],
    });
    const found = await evilConnector.discover(subject('E1004'));
    assert.equal(found.account?.id, evil);
    assert.equal(
      (await evilConnector.apply(action('delete_account', found.account!.id), subject('E1004'))).outcome,
      'done',
    );
    assert.equal((await roleState('analysts')).exists, true, 'the injected DROP ROLE did not run');
  });

  it('a connector role without privileges gets a non-retryable error that says what to grant', async () => {
    await admin.query('CREATE ROLE offboard_weak LOGIN');
    const weak = createPostgresConnector('warehouse', {
      type: 'postgres',
      url: url.replace('postgres@', 'offboard_weak@'),
      roleName: '{employeeId}',
      reassignOwnedTo: WAREHOUSE_ARCHIVE_ROLE,
      databases: [],
    });
    await assert.rejects(
      weak.apply(action('disable_login', 'e1005'), subject('E1005')),
      (err: ConnectorError) =>
        !err.retryable && /insufficient privilege: the connector role needs CREATEROLE/.test(err.message),
    );
    assert.equal((await roleState('e1005')).login, true, 'nothing changed');
    // The start-up check finds it out before any offboarding does.
    await connector.check!();
    await assert.rejects(
      weak.check!(),
      (err: ConnectorError) =>
        !err.retryable &&
        err.code === 'pg_privileges' &&
        /offboard_weak lacks CREATEROLE and membership of pg_signal_backend/.test(err.message),
    );
  });

  it('an unreachable server is retryable', async () => {
    const down = createPostgresConnector('warehouse', {
      type: 'postgres',
      url: 'postgres://postgres@127.0.0.1:1/postgres',
      roleName: '{employeeId}',
      reassignOwnedTo: WAREHOUSE_ARCHIVE_ROLE,
      databases: [],
    });
    await assert.rejects(down.discover(subject('E1001')), (err: ConnectorError) => err.retryable);
  });
});
