/**
 * The LDAP connector in Active Directory mode against a real Samba AD DC (seeded with the sample
 * organisation): each action and its idempotency, the disabled OU, identity resolution by
 * employeeID and objectGUID, LDAP injection, and how configuration errors are reported.
 */
import assert from 'node:assert/strict';
import { Attribute, Change, Client, EqualityFilter, ExtensibleFilter, ResultCodeError, type Entry } from 'ldapts';
import { ldapSystemSchema, createLdapConnector, type LdapSystemConfig } from '../activities/connectors/ldap.js';
import { ConnectorError, type Connector } from '../activities/connectors/types.js';
import type { Action } from '../model/plan.js';
import { adAccountName, adPersonDn } from '../sandbox/ad.js';
import { DUPLICATED_EMPLOYEE_ID } from '../sandbox/ldif.js';
import { samplePerson } from '../sandbox/org.js';
import { startSambaAd, type SambaAdInstance } from '../scripts/services.js';

describe('LDAP connector, Active Directory mode (real Samba AD DC)', function () {
  let dc: SambaAdInstance;
  let ad: Connector;
  let adWithDisabledOu: Connector;
  let config: LdapSystemConfig;

  before(async function () {
    // Samba binds the privileged ports 389/636 and runs as root only.
    if (process.getuid?.() !== 0) this.skip();
    this.timeout(90_000);
    dc = await startSambaAd();
    config = ldapSystemSchema.parse({
      type: 'ldap',
      mode: 'ad',
      url: dc.url,
      bindDn: dc.serviceDn,
      bindPassword: dc.servicePassword,
      peopleBase: dc.peopleBase,
      groupsBase: dc.groupsBase,
      tlsRejectUnauthorized: false, // the test DC's certificate is self-signed
      timeoutMs: 5_000,
    });
    ad = createLdapConnector('ad', config);
    adWithDisabledOu = createLdapConnector('ad', { ...config, disabledOu: dc.disabledOu });
  });

  after(async () => {
    await dc?.stop();
  });

  const action = (kind: Action['kind'], accountId: string, target?: Action['target']): Action => ({
    id: `t/${kind}`,
    stage: 't',
    system: 'ad',
    kind,
    accountId,
    target,
  });
  const apply = async (connector: Connector, kind: Action['kind'], employeeId: string, target?: Action['target']) => {
    const found = await connector.discover({ employeeId });
    return connector.apply(action(kind, found.account!.id, target), { employeeId });
  };

  async function asAdmin<T>(work: (client: Client) => Promise<T>): Promise<T> {
    const client = new Client({ url: dc.url, tlsOptions: { rejectUnauthorized: false } });
    try {
      await client.bind(dc.adminDn, dc.adminPassword);
      return await work(client);
    } finally {
      await client.unbind();
    }
  }

  /** What the DC holds for a sample person, read as the domain administrator. */
  async function adState(employeeId: string) {
    return asAdmin(async (client) => {
      const { searchEntries } = await client.search(dc.baseDn, {
        scope: 'sub',
        filter: new EqualityFilter({ attribute: 'employeeID', value: employeeId }),
        attributes: ['userAccountControl', 'adminDescription', 'memberOf'],
      });
      const user = searchEntries[0];
      if (!user)
        return {
          exists: false,
          dn: '',
          disabled: false,
          mark: undefined,
          groups: [] as string[],
          memberOf: [] as string[],
        };
      const groups = await client.search(dc.groupsBase, {
        scope: 'sub',
        filter: new EqualityFilter({ attribute: 'member', value: user.dn }),
        attributes: ['cn'],
      });
      return {
        exists: true,
        dn: user.dn,
        disabled: (Number(user.userAccountControl) & 2) !== 0,
        mark: user.adminDescription === undefined ? undefined : String(user.adminDescription),
        groups: groups.searchEntries.map((g) => String(g.cn)).sort(),
        memberOf: ([] as string[]).concat((user.memberOf as string[] | string) ?? []),
      };
    });
  }

  /** Binds as the person (by UPN, which survives a move): true, or the LDAP result code. */
  async function bindAs(employeeId: string): Promise<true | { code: number; message: string }> {
    const client = new Client({ url: dc.url, tlsOptions: { rejectUnauthorized: false } });
    try {
      await client.bind(`${adAccountName(samplePerson(employeeId).uid)}@${dc.realm.toLowerCase()}`, dc.userPassword);
      return true;
    } catch (err) {
      if (err instanceof ResultCodeError) return { code: err.code, message: err.message };
      throw err;
    } finally {
      await client.unbind().catch(() => undefined);
    }
  }

  it('discovers the user by employeeID, addressed by its objectGUID, with its groups read on the group side', async () => {
    const found = await ad.discover({ employeeId: 'E1031' });
    assert.match(found.account!.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    assert.equal(found.account!.disabled, false);
    assert.deepEqual(
      found.identity,
      { email: samplePerson('E1031').email, managerEmail: samplePerson('E1000').email },
      'the manager attribute is followed to their mail',
    );
    assert.ok(found.entitlements.every((e) => e.kind === 'group'));
    assert.deepEqual(found.entitlements.map((e) => e.name).sort(), [...samplePerson('E1031').groups].sort());
    // The id is AD's own string form of the GUID: the DC resolves it as <GUID=...> to the same user.
    const byGuid = await asAdmin((client) =>
      client.search(`<GUID=${found.account!.id}>`, { scope: 'base', attributes: ['employeeID'] }),
    );
    assert.equal(byGuid.searchEntries[0]?.employeeID, 'E1031');
  });

  it('a person with no account is account: null; an employeeID on two accounts stops with ambiguous_identity', async () => {
    assert.deepEqual(await ad.discover({ employeeId: 'E7777' }), {
      system: 'ad',
      account: null,
      entitlements: [],
      credentials: [],
    });
    await assert.rejects(
      ad.discover({ employeeId: DUPLICATED_EMPLOYEE_ID }),
      (err: ConnectorError) =>
        err instanceof ConnectorError &&
        !err.retryable &&
        err.code === 'ambiguous_identity' &&
        /matches several user objects/.test(err.message),
    );
  });

  it('disable sets ACCOUNTDISABLE so the user cannot bind (49); enable clears it and the bind works again', async () => {
    assert.equal(await bindAs('E1032'), true);
    assert.equal((await apply(ad, 'disable_login', 'E1032')).outcome, 'done');
    assert.equal((await apply(ad, 'disable_login', 'E1032')).outcome, 'already');
    assert.equal((await ad.discover({ employeeId: 'E1032' })).account!.disabled, true);
    const refused = await bindAs('E1032');
    assert.ok(refused !== true && refused.code === 49 && /data 533/.test(refused.message), 'AD says: account disabled');
    // The flag is what AD tools query with the bitwise matching rule.
    const disabled = await asAdmin((client) =>
      client.search(dc.peopleBase, {
        scope: 'sub',
        filter: new ExtensibleFilter({ matchType: 'userAccountControl', rule: '1.2.840.113556.1.4.803', value: '2' }),
        attributes: ['employeeID'],
      }),
    );
    assert.ok(disabled.searchEntries.some((e) => e.employeeID === 'E1032'));
    for (const kind of ['revoke_sessions', 'revoke_tokens'] as const)
      assert.equal((await apply(ad, kind, 'E1032')).outcome, 'not_applicable');
    assert.equal((await apply(ad, 'enable_login', 'E1032')).outcome, 'done');
    assert.equal((await apply(ad, 'enable_login', 'E1032')).outcome, 'already');
    assert.equal(await bindAs('E1032'), true);
    assert.equal((await adState('E1032')).disabled, false);
  });

  it('removing each group deletes the member value (memberOf follows); a second removal is already', async () => {
    const found = await ad.discover({ employeeId: 'E1034' });
    assert.ok(found.entitlements.length >= 3);
    for (const group of found.entitlements) {
      assert.equal(
        (await ad.apply(action('remove_entitlement', found.account!.id, group), { employeeId: 'E1034' })).outcome,
        'done',
      );
      assert.equal(
        (await ad.apply(action('remove_entitlement', found.account!.id, group), { employeeId: 'E1034' })).outcome,
        'already',
      );
    }
    const state = await adState('E1034');
    assert.deepEqual([state.groups, state.memberOf], [[], []]);
    const gone = { id: 'CN=no-such-group,OU=Groups,DC=example,DC=test', kind: 'group' };
    assert.equal(
      (await ad.apply(action('remove_entitlement', found.account!.id, gone), { employeeId: 'E1034' })).outcome,
      'already',
    );
  });

  it('with disabledOu, disable moves the user there and enable moves it back to its own OU', async () => {
    const before = await adState('E1035');
    const id = (await adWithDisabledOu.discover({ employeeId: 'E1035' })).account!.id;
    const disabled = await adWithDisabledOu.apply(action('disable_login', id), { employeeId: 'E1035' });
    assert.equal(disabled.outcome, 'done');
    assert.equal(disabled.details.movedFrom, dc.peopleBase);
    const moved = await adState('E1035');
    assert.equal(moved.dn, `CN=${samplePerson('E1035').uid},${dc.disabledOu}`);
    assert.equal(moved.mark, `offboard: moved from ${dc.peopleBase}`);
    assert.deepEqual(moved.groups, before.groups, 'a move keeps the memberships');
    // Still found, and still the same account, in its new place.
    assert.deepEqual((await adWithDisabledOu.discover({ employeeId: 'E1035' })).account, { id, disabled: true });
    assert.equal(
      (await adWithDisabledOu.apply(action('disable_login', id), { employeeId: 'E1035' })).outcome,
      'already',
    );
    assert.notEqual(await bindAs('E1035'), true);
    assert.equal((await adWithDisabledOu.apply(action('enable_login', id), { employeeId: 'E1035' })).outcome, 'done');
    assert.equal(
      (await adWithDisabledOu.apply(action('enable_login', id), { employeeId: 'E1035' })).outcome,
      'already',
    );
    assert.deepEqual(await adState('E1035'), before);
    assert.equal(await bindAs('E1035'), true);
  });

  it('disabledOu: an interrupted disable finishes the move; an account disabled by someone else or with a foreign mark is not moved', async () => {
    const modify = (employeeId: string, changes: Change[]) =>
      asAdmin((client) => client.modify(adPersonDn(samplePerson(employeeId).uid), changes));
    const set = (type: string, value: string) =>
      new Change({ operation: 'replace', modification: new Attribute({ type, values: [value] }) });
    // Crashed after the modify, before the move: the retry completes the move and reports done.
    await modify('E1036', [
      set('userAccountControl', '514'),
      set('adminDescription', `offboard: moved from ${dc.peopleBase}`),
    ]);
    assert.equal((await apply(adWithDisabledOu, 'disable_login', 'E1036')).outcome, 'done');
    assert.equal((await adState('E1036')).dn, `CN=${samplePerson('E1036').uid},${dc.disabledOu}`);
    // Disabled by an administrator: already, left where it is (and enable_login will not be asked).
    await modify('E1037', [set('userAccountControl', '514')]);
    assert.equal((await apply(adWithDisabledOu, 'disable_login', 'E1037')).outcome, 'already');
    assert.equal((await adState('E1037')).dn, adPersonDn(samplePerson('E1037').uid));
    // The mark attribute holds someone's note: disabled, not moved, the note kept.
    await modify('E1038', [set('adminDescription', 'ticket HR-12')]);
    const result = await apply(adWithDisabledOu, 'disable_login', 'E1038');
    assert.equal(result.outcome, 'done');
    assert.match(String(result.details.notMoved), /adminDescription already holds other text/);
    assert.deepEqual(await adState('E1038').then((s) => [s.disabled, s.dn, s.mark]), [
      true,
      adPersonDn(samplePerson('E1038').uid),
      'ticket HR-12',
    ]);
  });

  it('delete removes the user object and its memberships; repeating is already; enable then refuses', async () => {
    const found = await ad.discover({ employeeId: 'E1033' });
    const deleted = await ad.apply(action('delete_account', found.account!.id), { employeeId: 'E1033' });
    assert.equal(deleted.outcome, 'done');
    assert.deepEqual((deleted.details.groupsLeft as string[]).length, found.entitlements.length);
    assert.deepEqual(await adState('E1033'), {
      exists: false,
      dn: '',
      disabled: false,
      mark: undefined,
      groups: [],
      memberOf: [],
    });
    const stillListed = await asAdmin((client) =>
      client.search(dc.groupsBase, {
        scope: 'sub',
        filter: new EqualityFilter({ attribute: 'member', value: adPersonDn(samplePerson('E1033').uid) }),
      }),
    );
    assert.deepEqual(stillListed.searchEntries, [], 'no group names the deleted user');
    assert.equal(
      (await ad.apply(action('delete_account', found.account!.id), { employeeId: 'E1033' })).outcome,
      'already',
    );
    assert.equal((await ad.discover({ employeeId: 'E1033' })).account, null);
    await assert.rejects(
      ad.apply(action('enable_login', found.account!.id), { employeeId: 'E1033' }),
      (err: ConnectorError) => !err.retryable && err.code === 'account_gone',
    );
  });

  it('LDAP injection strings in identifiers match nothing and change no entry', async () => {
    const before = await snapshot();
    const group = { id: `CN=engineering,${dc.groupsBase}`, kind: 'group' };
    for (const evil of [
      '*',
      '*)(employeeID=*',
      'E1039)(|(objectClass=*',
      'E10*',
      '\\2a',
      'E1039\u0000',
      '00000000-0000-0000-0000-000000000000',
    ]) {
      assert.equal((await ad.discover({ employeeId: evil })).account, null, `"${evil}" must not match any user`);
      for (const kind of ['disable_login', 'delete_account', 'remove_entitlement'] as const) {
        const result = await adWithDisabledOu.apply(action(kind, evil, group), { employeeId: 'E1039' });
        assert.equal(result.outcome, 'already', `${kind} with accountId "${evil}" must touch nothing`);
      }
    }
    assert.deepEqual(await snapshot(), before, 'no entry changed (uSNChanged is unchanged everywhere)');
  });

  it('ldap:// is upgraded with StartTLS, since AD refuses simple binds in clear text', async () => {
    const startTls = createLdapConnector('ad', { ...config, url: `ldap://${dc.address}:389` });
    assert.equal((await startTls.discover({ employeeId: 'E1040' })).account?.disabled, false);
  });

  it('a wrong password, or an untrusted certificate, is a non-retryable error that says what to fix', async () => {
    const wrong = createLdapConnector('ad', { ...config, bindPassword: 'not-the-password' });
    await assert.rejects(
      wrong.discover({ employeeId: 'E1031' }),
      (err: ConnectorError) =>
        !err.retryable && /the password is wrong: check bindDn and bindPassword/.test(err.message),
    );
    const strict = createLdapConnector('ad', { ...config, tlsRejectUnauthorized: true });
    await assert.rejects(
      strict.discover({ employeeId: 'E1031' }),
      (err: ConnectorError) =>
        !err.retryable && err.code === 'ad_tls_untrusted' && /NODE_EXTRA_CA_CERTS/.test(err.message),
    );
  });

  /** Every person and group with its update sequence number, which any change would raise. */
  async function snapshot(): Promise<Entry[]> {
    return asAdmin(async (client) => {
      const entries: Entry[] = [];
      for (const base of [dc.peopleBase, dc.groupsBase, dc.disabledOu]) {
        entries.push(...(await client.search(base, { scope: 'sub', attributes: ['uSNChanged'] })).searchEntries);
      }
      return entries.sort((a, b) => a.dn.localeCompare(b.dn));
    });
  }
});
