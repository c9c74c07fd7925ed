/**
 * The LDAP connector against a real slapd (ppolicy overlay, sample organisation): each action,
 * its idempotency, identity resolution and LDAP injection.
 */
import assert from 'node:assert/strict';
import { Attribute, Change, Client, type Entry } from 'ldapts';
import { createLdapConnector } from '../activities/connectors/ldap.js';
import { ConnectorError, type Connector } from '../activities/connectors/types.js';
import type { Action } from '../model/plan.js';
import { DUPLICATED_EMPLOYEE_ID } from '../sandbox/ldif.js';
import { samplePerson } from '../sandbox/org.js';
import { canBind, directoryConfig, directoryState, sharedSlapd } from './helpers/environment.js';

describe('LDAP connector (real slapd)', () => {
  let ldap: Connector;

  before(async () => {
    ldap = createLdapConnector('directory', await directoryConfig());
  });

  const action = (kind: Action['kind'], accountId: string, target?: Action['target']): Action => ({
    id: `t/${kind}`,
    stage: 't',
    system: 'directory',
    kind,
    accountId,
    target,
  });

  it('discovers the entry by employee id, its lock state and its groups of all three kinds', async () => {
    const found = await ldap.discover({ employeeId: 'E1031' });
    assert.match(found.account!.id, /^[0-9a-f-]{36}$/, 'addressed by entryUUID');
    assert.equal(found.account!.disabled, false);
    assert.deepEqual(found.entitlements.map((e) => e.kind).sort(), [
      'groupOfNames',
      'groupOfNames',
      'groupOfUniqueNames',
      'groupOfUniqueNames',
      'posixGroup',
      'posixGroup',
    ]);
    assert.deepEqual(found.entitlements.map((e) => e.name).sort(), (await directoryState('E1031')).groups);
    assert.deepEqual(
      found.identity,
      { email: samplePerson('E1031').email, managerEmail: samplePerson('E1000').email },
      'the manager attribute is followed to their mail',
    );
  });

  it('disable, remove each group, enable: done the first time, already the second', async () => {
    const found = await ldap.discover({ employeeId: 'E1032' });
    const id = found.account!.id;
    assert.equal((await ldap.apply(action('disable_login', id), { employeeId: 'E1032' })).outcome, 'done');
    assert.equal((await ldap.apply(action('disable_login', id), { employeeId: 'E1032' })).outcome, 'already');
    assert.equal(await canBind('E1032'), false);
    for (const group of found.entitlements) {
      assert.equal(
        (await ldap.apply(action('remove_entitlement', id, group), { employeeId: 'E1032' })).outcome,
        'done',
      );
      assert.equal(
        (await ldap.apply(action('remove_entitlement', id, group), { employeeId: 'E1032' })).outcome,
        'already',
      );
    }
    assert.deepEqual(await directoryState('E1032'), { exists: true, locked: true, groups: [] });
    assert.equal((await ldap.apply(action('revoke_sessions', id), { employeeId: 'E1032' })).outcome, 'not_applicable');
    assert.equal((await ldap.apply(action('enable_login', id), { employeeId: 'E1032' })).outcome, 'done');
    assert.equal((await ldap.apply(action('enable_login', id), { employeeId: 'E1032' })).outcome, 'already');
    assert.equal(await canBind('E1032'), true);
  });

  it('delete leaves no group naming the entry, and deleting again is already', async () => {
    const found = await ldap.discover({ employeeId: 'E1033' });
    assert.equal(
      (await ldap.apply(action('delete_account', found.account!.id), { employeeId: 'E1033' })).outcome,
      'done',
    );
    assert.deepEqual(await directoryState('E1033'), { exists: false, locked: false, groups: [] });
    assert.equal(
      (await ldap.apply(action('delete_account', found.account!.id), { employeeId: 'E1033' })).outcome,
      'already',
    );
    assert.deepEqual(await ldap.discover({ employeeId: 'E1033' }), {
      system: 'directory',
      account: null,
      entitlements: [],
      credentials: [],
    });
    await assert.rejects(
      ldap.apply(action('enable_login', found.account!.id), { employeeId: 'E1033' }),
      (err: ConnectorError) => !err.retryable && /no longer exists/.test(err.message),
    );
  });

  it('an id that matches several entries stops with a clear, non-retryable error', async () => {
    await assert.rejects(
      ldap.discover({ employeeId: DUPLICATED_EMPLOYEE_ID }),
      (err: ConnectorError) =>
        err instanceof ConnectorError &&
        !err.retryable &&
        err.code === 'ambiguous_identity' &&
        /matches several entries/.test(err.message),
    );
  });

  it('LDAP injection strings in identifiers match nothing and change no entry', async () => {
    const before = await snapshot();
    for (const evil of ['*', '*)(uid=*', 'E1034)(|(objectClass=*', 'E10*', '\\2a', 'E1034\u0000']) {
      const found = await ldap.discover({ employeeId: evil });
      assert.equal(found.account, null, `"${evil}" must not match any entry`);
      for (const kind of ['disable_login', 'delete_account', 'remove_entitlement'] as const) {
        const result = await ldap.apply(
          action(kind, evil, { id: 'cn=engineering,ou=groups,dc=example,dc=org', kind: 'groupOfNames' }),
          { employeeId: 'E1034' },
        );
        assert.equal(result.outcome, 'already', `${kind} with accountId "${evil}" must touch nothing`);
      }
    }
    assert.deepEqual(await snapshot(), before, 'every entry is exactly as it was');
  });

  it('wrong credentials are a configuration error, not retried', async () => {
    const wrong = createLdapConnector('directory', { ...(await directoryConfig()), bindPassword: 'not-the-password' });
    await assert.rejects(
      wrong.discover({ employeeId: 'E1031' }),
      (err: ConnectorError) => !err.retryable && /invalidCredentials: check the bind DN and password/.test(err.message),
    );
  });

  it('a lockout after failed binds (it expires) is not a disabled login: disable_login replaces it for good', async () => {
    const server = await sharedSlapd();
    const id = (await ldap.discover({ employeeId: 'E1031' })).account!.id;
    const admin = new Client({ url: server.url });
    await admin.bind(server.adminDn, server.adminPassword);
    const person = `uid=${samplePerson('E1031').uid},${server.peopleBase}`;
    const lockTime = async () =>
      (await admin.search(person, { scope: 'base', attributes: ['pwdAccountLockedTime'] })).searchEntries[0]
        ?.pwdAccountLockedTime;
    try {
      // What ppolicy writes when pwdMaxFailure is reached: the time of the lockout.
      await admin.modify(
        person,
        new Change({
          operation: 'replace',
          modification: new Attribute({ type: 'pwdAccountLockedTime', values: ['20261201120000Z'] }),
        }),
      );
      assert.equal((await ldap.discover({ employeeId: 'E1031' })).account?.disabled, false);
      assert.equal((await ldap.apply(action('disable_login', id), { employeeId: 'E1031' })).outcome, 'done');
      assert.equal(await lockTime(), '000001010000Z', 'locked until an administrator unlocks it');
      assert.equal((await ldap.apply(action('disable_login', id), { employeeId: 'E1031' })).outcome, 'already');
    } finally {
      await admin.modify(
        person,
        new Change({ operation: 'delete', modification: new Attribute({ type: 'pwdAccountLockedTime' }) }),
      );
      await admin.unbind();
    }
  });

  it('an unreachable directory is retryable', async () => {
    const down = createLdapConnector('directory', {
      ...(await directoryConfig()),
      url: 'ldap://127.0.0.1:1',
      timeoutMs: 1_000,
    });
    await assert.rejects(
      down.discover({ employeeId: 'E1031' }),
      (err: ConnectorError) => err.retryable && err.code === 'ldap_unreachable',
    );
  });
});

/** Every entry with its lock and memberships, read as the directory manager. */
async function snapshot(): Promise<Entry[]> {
  const server = await sharedSlapd();
  const client = new Client({ url: server.url });
  await client.bind(server.adminDn, server.adminPassword);
  const { searchEntries } = await client.search(server.baseDn, {
    scope: 'sub',
    attributes: ['*', 'pwdAccountLockedTime'],
  });
  await client.unbind();
  return searchEntries.sort((a, b) => a.dn.localeCompare(b.dn));
}
