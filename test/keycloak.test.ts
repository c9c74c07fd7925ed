/**
 * The Keycloak connector against a real Keycloak (the toolchain's Quarkus distribution in dev
 * mode), started once per test run (sharedKeycloak) with a realm per test. Revocation is proven the
 * way an attacker holding the tokens would see it: refresh and offline tokens obtained through the
 * real token endpoint before the offboarding are replayed there afterwards.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  createKeycloakConnector,
  keycloakSystemSchema,
  type KeycloakSystemConfig,
} from '../activities/connectors/keycloak.js';
import { ConnectorError, type Connector } from '../activities/connectors/types.js';
import type { Action, Entitlement } from '../model/plan.js';
import { keycloakMissing, type KeycloakInstance } from '../scripts/keycloak.js';
import { KEYCLOAK_IDP_ALIAS, addPerson, refresh, seedRealm, signIn, type SeededRealm } from '../sandbox/keycloak.js';
import { samplePerson } from '../sandbox/org.js';
import { sharedKeycloak } from './helpers/environment.js';

describe('Keycloak connector (a real Keycloak)', function () {
  // Keycloak's start (once per run) is slow on a busy machine; each test then takes a second or two.
  this.timeout(240_000);
  let keycloak: KeycloakInstance;
  let realmCount = 0;

  before(async function () {
    const missing = keycloakMissing();
    if (missing) {
      console.log(`      (skipped: ${missing})`);
      this.skip();
    }
    keycloak = await sharedKeycloak();
    console.log(`      (Keycloak answered ${keycloak.startedInMs} ms after its start)`);
  });

  async function realm(options: { serviceRoles?: string[] } = {}): Promise<SeededRealm> {
    realmCount += 1;
    return seedRealm(keycloak, `offboard-test-${process.pid}-${realmCount}`, options);
  }

  const connect = (seeded: SeededRealm, overrides: Partial<KeycloakSystemConfig> = {}): Connector =>
    createKeycloakConnector(
      'keycloak',
      keycloakSystemSchema.parse({
        type: 'keycloak',
        url: keycloak.url,
        realm: seeded.realm,
        clientId: seeded.clientId,
        clientSecret: seeded.clientSecret,
        ...overrides,
      }),
    );
  const subject = (employeeId: string) => ({ employeeId, email: samplePerson(employeeId).email });
  const action = (kind: Action['kind'], accountId: string, target?: Entitlement): Action => ({
    id: `t/keycloak/${kind}${target ? `/${target.id}` : ''}`,
    stage: 't',
    system: 'keycloak',
    kind,
    accountId,
    target,
  });
  const rejectsWith = (check: (err: ConnectorError) => boolean) => (err: unknown) =>
    err instanceof ConnectorError && check(err);
  const userOf = (seeded: SeededRealm, id: string) => seeded.admin.users.findOne({ realm: seeded.realm, id });

  it('discovers the user by employeeNumber: groups, roles, identity-provider link, sessions, offline grant, email', async () => {
    const seeded = await realm();
    const person = samplePerson('E1002');
    const id = await addPerson(seeded, person);
    await signIn(keycloak, seeded.realm, person.uid);
    await signIn(keycloak, seeded.realm, person.uid, { offline: true });

    const found = await connect(seeded).discover(subject('E1002'));
    assert.deepEqual(found.account, { id, disabled: false });
    assert.deepEqual(found.identity, { email: person.email });
    assert.deepEqual(
      found.entitlements.map((e) => e.id).sort(),
      [
        ...person.groups.map((cn) => `group:/${cn}`),
        'client-role:sample-app/approver',
        `idp-link:${KEYCLOAK_IDP_ALIAS}`,
        'realm-role:auditor',
        'realm-role:default-roles-' + seeded.realm,
      ].sort(),
    );
    // The offline session is not among the sessions: it shows as the client's grant.
    assert.equal(found.credentials.filter((c) => c.kind === 'session').length, 1);
    assert.deepEqual(
      found.credentials.filter((c) => c.kind === 'token').map((c) => c.id),
      ['grant:sample-app'],
    );
  });

  it('refuses at the real token endpoint the refresh and offline tokens issued before the offboarding', async () => {
    const seeded = await realm();
    const person = samplePerson('E1003');
    const id = await addPerson(seeded, person);
    const online = await signIn(keycloak, seeded.realm, person.uid);
    const offline = await signIn(keycloak, seeded.realm, person.uid, { offline: true });
    // Before: both tokens work (so the refusals below are the offboarding's doing).
    assert.equal((await refresh(keycloak, seeded.realm, online.refreshToken)).status, 200);
    assert.equal((await refresh(keycloak, seeded.realm, offline.refreshToken)).status, 200);

    const connector = connect(seeded);
    for (const kind of ['disable_login', 'revoke_sessions', 'revoke_tokens'] as const)
      assert.equal((await connector.apply(action(kind, id), subject('E1003'))).outcome, 'done', kind);

    for (const token of [online.refreshToken, offline.refreshToken]) {
      const replay = await refresh(keycloak, seeded.realm, token);
      assert.equal(replay.status, 400);
      assert.equal(replay.body.error, 'invalid_grant');
    }
    const after = await connector.discover(subject('E1003'));
    assert.deepEqual(after.account, { id, disabled: true });
    assert.deepEqual(after.credentials, []);
    assert.deepEqual(await seeded.admin.users.listSessions({ realm: seeded.realm, id }), []);
    assert.deepEqual(await seeded.admin.users.listConsents({ realm: seeded.realm, id }), []);
  });

  it('disable alone leaves the sessions listed; logout ends them and refuses their refresh token; repeat = already', async () => {
    const seeded = await realm();
    const person = samplePerson('E1004');
    const id = await addPerson(seeded, person);
    const online = await signIn(keycloak, seeded.realm, person.uid);
    const connector = connect(seeded);

    assert.equal((await connector.apply(action('disable_login', id), subject('E1004'))).outcome, 'done');
    assert.equal((await userOf(seeded, id))?.enabled, false);
    assert.equal((await connector.apply(action('disable_login', id), subject('E1004'))).outcome, 'already');
    assert.equal((await seeded.admin.users.listSessions({ realm: seeded.realm, id })).length, 1);

    const logout = await connector.apply(action('revoke_sessions', id), subject('E1004'));
    assert.deepEqual(logout, { outcome: 'done', details: { userId: id, sessionsEnded: 1 } });
    assert.deepEqual(await seeded.admin.users.listSessions({ realm: seeded.realm, id }), []);
    assert.equal((await connector.apply(action('revoke_sessions', id), subject('E1004'))).outcome, 'already');
    assert.equal((await refresh(keycloak, seeded.realm, online.refreshToken)).body.error, 'invalid_grant');
  });

  it('revoke_tokens alone refuses the offline token and leaves the online session; repeat = already; logout then ends that', async () => {
    const seeded = await realm();
    const person = samplePerson('E1005');
    const id = await addPerson(seeded, person);
    const online = await signIn(keycloak, seeded.realm, person.uid);
    const offline = await signIn(keycloak, seeded.realm, person.uid, { offline: true });
    const connector = connect(seeded);

    const revoked = await connector.apply(action('revoke_tokens', id), subject('E1005'));
    assert.deepEqual(revoked, { outcome: 'done', details: { userId: id, clients: ['sample-app'] } });
    assert.equal((await refresh(keycloak, seeded.realm, offline.refreshToken)).body.error, 'invalid_grant');
    assert.equal((await refresh(keycloak, seeded.realm, online.refreshToken)).status, 200);
    assert.equal((await connector.apply(action('revoke_tokens', id), subject('E1005'))).outcome, 'already');
    // Logout ends the online session for good, the user still enabled (no disable behind it).
    assert.equal((await connector.apply(action('revoke_sessions', id), subject('E1005'))).outcome, 'done');
    assert.equal((await userOf(seeded, id))?.enabled, true);
    assert.equal((await refresh(keycloak, seeded.realm, online.refreshToken)).body.error, 'invalid_grant');
  });

  it('removes groups, realm and client role mappings and identity-provider links, each read back; repeat = already', async () => {
    const seeded = await realm();
    const person = samplePerson('E1006');
    const id = await addPerson(seeded, person);
    const connector = connect(seeded);
    const before = await connector.discover(subject('E1006'));
    const removable = before.entitlements.filter((e) => !e.id.startsWith('realm-role:default-roles-'));
    assert.equal(removable.length, person.groups.length + 3);

    for (const entitlement of removable) {
      assert.equal(
        (await connector.apply(action('remove_entitlement', id, entitlement), subject('E1006'))).outcome,
        'done',
        entitlement.id,
      );
      assert.equal(
        (await connector.apply(action('remove_entitlement', id, entitlement), subject('E1006'))).outcome,
        'already',
        entitlement.id,
      );
    }
    const { realm: name, admin } = seeded;
    assert.deepEqual(await admin.users.listGroups({ realm: name, id }), []);
    const mappings = await admin.users.listRoleMappings({ realm: name, id });
    assert.deepEqual(
      mappings.realmMappings?.map((r) => r.name),
      [`default-roles-${name}`],
    );
    assert.equal(mappings.clientMappings, undefined);
    assert.deepEqual(await admin.users.listFederatedIdentities({ realm: name, id }), []);
  });

  it('cancel re-enables the login (sign-in works again); repeat = already', async () => {
    const seeded = await realm();
    const person = samplePerson('E1007');
    const id = await addPerson(seeded, person);
    const connector = connect(seeded);
    await connector.apply(action('disable_login', id), subject('E1007'));
    await assert.rejects(signIn(keycloak, seeded.realm, person.uid), /invalid_grant/);

    assert.equal((await connector.apply(action('enable_login', id), subject('E1007'))).outcome, 'done');
    assert.equal((await userOf(seeded, id))?.enabled, true);
    // The employeeNumber survives the update (the full representation went back).
    assert.deepEqual((await userOf(seeded, id))?.attributes?.employeeNumber, ['E1007']);
    assert.equal((await connector.apply(action('enable_login', id), subject('E1007'))).outcome, 'already');
    await signIn(keycloak, seeded.realm, person.uid);
  });

  it('deletes the user after retention; repeat = already', async () => {
    const seeded = await realm();
    const id = await addPerson(seeded, samplePerson('E1008'));
    const connector = connect(seeded);
    assert.equal((await connector.apply(action('delete_account', id), subject('E1008'))).outcome, 'done');
    assert.equal((await userOf(seeded, id)) ?? undefined, undefined);
    assert.equal((await connector.apply(action('delete_account', id), subject('E1008'))).outcome, 'already');
    assert.equal((await connector.discover(subject('E1008'))).account, null);
  });

  it('reports a missing person as no account, finds by email or username, and refuses an ambiguous one', async () => {
    const seeded = await realm();
    const id = await addPerson(seeded, samplePerson('E1009'));
    assert.equal((await connect(seeded).discover(subject('E1010'))).account, null);
    assert.equal((await connect(seeded, { findBy: 'email' }).discover(subject('E1009'))).account?.id, id);
    assert.equal(
      (await connect(seeded, { findBy: 'username', usernameIs: 'email' }).discover(subject('E1009'))).account,
      null,
    );
    // A second user with the same employeeNumber (a re-hire created twice, a test account).
    await seeded.admin.users.create({
      realm: seeded.realm,
      username: 'e1009-duplicate',
      enabled: true,
      attributes: { employeeNumber: ['E1009'] },
    });
    await assert.rejects(
      connect(seeded).discover(subject('E1009')),
      rejectsWith(
        (err) =>
          err.code === 'ambiguous_identity' && !err.retryable && /2 users match employeeNumber/.test(err.message),
      ),
    );
  });

  it('escalates a missing role, naming it, and refused client credentials, changing nothing', async () => {
    const readOnly = await realm({ serviceRoles: ['view-users'] });
    const id = await addPerson(readOnly, samplePerson('E1011'));
    const found = await connect(readOnly).discover(subject('E1011'));
    assert.equal(found.account?.id, id);
    await assert.rejects(
      connect(readOnly).apply(action('disable_login', id), subject('E1011')),
      rejectsWith(
        (err) =>
          err.code === 'keycloak_forbidden' && !err.retryable && /realm-management role manage-users/.test(err.message),
      ),
    );
    assert.equal((await userOf(readOnly, id))?.enabled, true);

    const none = await realm({ serviceRoles: [] });
    await addPerson(none, samplePerson('E1012'));
    await assert.rejects(
      connect(none).discover(subject('E1012')),
      rejectsWith((err) => err.code === 'keycloak_forbidden' && /view-users/.test(err.message)),
    );
    await assert.rejects(
      connect(none, { clientSecret: 'not-the-secret' }).discover(subject('E1012')),
      rejectsWith(
        (err) => err.code === 'keycloak_bad_credentials' && !err.retryable && /clientSecret/.test(err.message),
      ),
    );
    await assert.rejects(
      connect(none, { realm: 'no-such-realm' }).discover(subject('E1012')),
      rejectsWith((err) => err.code === 'keycloak_no_realm' && !err.retryable),
    );
  });

  describe('busy or failing Keycloak (a proxy in front of the real one)', () => {
    let proxy: Server;
    let answerWith: { status: number; headers?: Record<string, string> } | undefined;
    let proxyUrl: string;

    before(async () => {
      // Forwards to Keycloak, except for admin API calls while `answerWith` is set.
      proxy = createServer((req, res) => {
        void (async () => {
          if (answerWith && req.url?.startsWith('/admin/')) {
            res.writeHead(answerWith.status, { 'content-type': 'application/json', ...answerWith.headers });
            res.end(JSON.stringify({ error: 'busy' }));
            return;
          }
          const chunks: Buffer[] = [];
          for await (const chunk of req) chunks.push(chunk as Buffer);
          const headers = Object.fromEntries(
            Object.entries(req.headers).filter(([name]) => !['host', 'connection', 'content-length'].includes(name)),
          ) as Record<string, string>;
          const answer = await fetch(`${keycloak.url}${req.url}`, {
            method: req.method,
            headers,
            body: chunks.length ? Buffer.concat(chunks) : undefined,
          });
          res.writeHead(answer.status, { 'content-type': answer.headers.get('content-type') ?? 'application/json' });
          res.end(Buffer.from(await answer.arrayBuffer()));
        })();
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      proxyUrl = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
    });
    after(() => new Promise<void>((resolve) => proxy.close(() => resolve())));

    it('429 is retryable after Retry-After, 503 retryable; the call succeeds once Keycloak answers again', async () => {
      const seeded = await realm();
      const id = await addPerson(seeded, samplePerson('E1013'));
      const connector = connect(seeded, { url: proxyUrl });
      answerWith = { status: 429, headers: { 'retry-after': '7' } };
      await assert.rejects(
        connector.apply(action('disable_login', id), subject('E1013')),
        rejectsWith((err) => err.code === 'keycloak_rate_limited' && err.retryable && err.retryAfterMs === 7000),
      );
      answerWith = { status: 503 };
      await assert.rejects(
        connector.apply(action('disable_login', id), subject('E1013')),
        rejectsWith((err) => err.code === 'keycloak_http_503' && err.retryable),
      );
      assert.equal((await userOf(seeded, id))?.enabled, true);
      answerWith = undefined;
      assert.equal((await connector.apply(action('disable_login', id), subject('E1013'))).outcome, 'done');
      assert.equal((await userOf(seeded, id))?.enabled, false);
    });
  });
});
