/**
 * One person in the directory (the shared slapd) and in Keycloak (the shared real Keycloak, a
 * realm of this test's own), offboarded through the workflow on Temporal's time-skipping server:
 * afterwards the directory bind fails, and the refresh and offline tokens the person's app held
 * are refused by Keycloak's real token endpoint.
 */
import assert from 'node:assert/strict';
import { addPerson, refresh, seedRealm, signIn } from '../sandbox/keycloak.js';
import { samplePerson } from '../sandbox/org.js';
import { keycloakMissing } from '../scripts/keycloak.js';
import { canBind, sharedKeycloak } from './helpers/environment.js';
import { offboardOnce } from './helpers/offboard-once.js';

describe('offboarding workflow with Keycloak (real Keycloak, real slapd)', function () {
  this.timeout(300_000);

  it('an immediate offboarding disables the directory login and leaves no Keycloak session or token', async function () {
    const missing = keycloakMissing();
    if (missing) {
      console.log(`      (skipped: ${missing})`);
      this.skip();
    }
    const keycloak = await sharedKeycloak();
    const seeded = await seedRealm(keycloak, `offboard-workflow-${process.pid}`);
    const person = samplePerson('E1041');
    const userId = await addPerson(seeded, person);
    const online = await signIn(keycloak, seeded.realm, person.uid);
    const offline = await signIn(keycloak, seeded.realm, person.uid, { offline: true });
    assert.equal(await canBind('E1041'), true);

    const { status } = await offboardOnce({
      employeeId: 'E1041',
      systems: {
        sso: {
          type: 'keycloak',
          url: keycloak.url,
          realm: seeded.realm,
          clientId: seeded.clientId,
          clientSecret: { env: 'TEST_KEYCLOAK_SECRET' },
        },
      },
      env: { TEST_KEYCLOAK_SECRET: seeded.clientSecret },
      timeoutMs: 240_000,
    });

    assert.equal(status.accounts.sso, userId);
    assert.equal(await canBind('E1041'), false);
    const { admin, realm } = seeded;
    assert.equal((await admin.users.findOne({ realm, id: userId }))?.enabled, false);
    assert.deepEqual(await admin.users.listSessions({ realm, id: userId }), []);
    assert.deepEqual(await admin.users.listConsents({ realm, id: userId }), []);
    assert.deepEqual(await admin.users.listGroups({ realm, id: userId }), []);
    for (const token of [online.refreshToken, offline.refreshToken])
      assert.equal((await refresh(keycloak, realm, token)).body.error, 'invalid_grant');
  });
});
