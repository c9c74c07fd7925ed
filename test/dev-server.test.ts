/**
 * End to end on the Temporal CLI's dev server (the server `npm start` runs), with real slapd and
 * PostgreSQL: what an operator and an auditor would see.
 */
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { createAuditStore } from '../activities/audit.js';
import { InvalidRequestError, startOffboarding } from '../client/temporal.js';
import type { OffboardingRequest } from '../model/request.js';
import { projectRoot, startTemporalDevServer, type TemporalDevServer } from '../scripts/services.js';
import { createOffboardingWorker } from '../workers/create-worker.js';
import { createCheckpointer, fileCheckpointStore } from '../activities/audit-checkpoints.js';
import { seedWarehouseRoles, WAREHOUSE_ARCHIVE_ROLE } from '../sandbox/postgres.js';
import { startSaasSandboxes, type SaasSandboxes } from '../sandbox/index.js';
import { githubLoginFor } from '../sandbox/github.js';
import { slackUserIdFor } from '../sandbox/slack.js';
import { oktaUsersOf } from '../sandbox/okta.js';
import { entraUserIdFor } from '../sandbox/entra.js';
import { googleUserOf } from '../sandbox/google-workspace.js';
import { samplePerson } from '../sandbox/org.js';
import { addPerson, refresh, seedRealm, signIn, type SeededRealm } from '../sandbox/keycloak.js';
import { keycloakMissing, type KeycloakInstance } from '../scripts/keycloak.js';
import type { ConfigInput } from '../workers/config.js';
import type { OffboardingStatus } from '../workflows/messages.js';
import {
  canBind,
  directoryState,
  eventually,
  installRuntime,
  sharedKeycloak,
  sharedPool,
  sharedPostgres,
  testConfig,
  workflowBundle,
} from './helpers/environment.js';

// The audit checkpoints the worker signs, with a key of this test run's (the CLI checks them).
const signingKey = generateKeyPairSync('ed25519').privateKey;
const checkpointDir = mkdtempSync(join(tmpdir(), 'offboard-dev-checkpoints-'));
const checkpointsFile = join(checkpointDir, 'audit-checkpoints.jsonl');
const publicKeyFile = join(checkpointDir, 'public.pem');
writeFileSync(publicKeyFile, String(createPublicKey(signingKey).export({ type: 'spki', format: 'pem' })));

describe('offboarding on the Temporal dev server (real slapd and PostgreSQL)', function () {
  let server: TemporalDevServer;
  let client: Client;
  let nativeConnection: NativeConnection;
  let worker: Worker;
  let running: Promise<void>;
  let saas: SaasSandboxes;
  /** Keycloak (a real one) as the system `sso`, with E1028 in its realm, where Java 21+ is installed. */
  let sso: { seeded: SeededRealm; keycloak: KeycloakInstance; userId: string; tokens: string[] } | undefined;
  // This dev server is the test's own: the worker takes the default queue, as the CLI expects.
  const taskQueue = 'offboarding';

  before(async function () {
    installRuntime();
    server = await startTemporalDevServer({ headless: true });
    client = new Client({ connection: await Connection.connect({ address: server.address }) });
    nativeConnection = await NativeConnection.connect({ address: server.address });
    const pool = await sharedPool();
    await seedWarehouseRoles(pool);
    // Every system at once: slapd, PostgreSQL roles and the SaaS stand-ins.
    saas = await startSaasSandboxes();
    const keycloakSystems: NonNullable<ConfigInput['systems']> = {};
    const keycloakEnv: NodeJS.ProcessEnv = {};
    if (!keycloakMissing()) {
      this.timeout(600_000);
      const keycloak = await sharedKeycloak();
      const seeded = await seedRealm(keycloak, `offboard-dev-server-${process.pid}`);
      const person = samplePerson('E1028');
      const userId = await addPerson(seeded, person);
      const online = await signIn(keycloak, seeded.realm, person.uid);
      const offline = await signIn(keycloak, seeded.realm, person.uid, { offline: true });
      sso = { seeded, keycloak, userId, tokens: [online.refreshToken, offline.refreshToken] };
      keycloakSystems.sso = {
        type: 'keycloak',
        url: keycloak.url,
        realm: seeded.realm,
        clientId: seeded.clientId,
        clientSecret: { env: 'TEST_KEYCLOAK_SECRET' },
      };
      keycloakEnv.TEST_KEYCLOAK_SECRET = seeded.clientSecret;
    }
    const config = await testConfig({
      systems: {
        ...keycloakSystems,
        warehouse: {
          type: 'postgres',
          url: { env: 'TEST_WAREHOUSE_URL' },
          roleName: '{employeeId}',
          reassignOwnedTo: WAREHOUSE_ARCHIVE_ROLE,
        },
        ...saas.systems,
      },
      notifications: saas.notifications,
      env: { TEST_WAREHOUSE_URL: (await sharedPostgres()).url, ...saas.env, ...keycloakEnv },
    });
    worker = await createOffboardingWorker({
      connection: nativeConnection,
      namespace: 'default',
      config,
      pool,
      taskQueue,
      workflowBundle: await workflowBundle(),
      // A checkpoint after every commit, so that the CLI's evidence report is covered at once.
      checkpointer: createCheckpointer({
        store: fileCheckpointStore(checkpointsFile),
        key: signingKey,
        everyRows: 1,
        everyMs: 3_600_000,
      }),
    });
    running = worker.run();
  });

  after(async function () {
    worker?.shutdown();
    await running;
    await nativeConnection?.close();
    await client?.connection.close();
    await server?.stop();
    await saas?.stop();
    rmSync(checkpointDir, { recursive: true, force: true });
  });

  const request = (employeeId: string): OffboardingRequest => ({
    requestId: `hr-${randomUUID()}`,
    subject: { employeeId },
    trigger: 'termination',
    reason: 'involuntary',
    employmentType: 'employee',
    effectiveAt: new Date().toISOString(),
    requestedBy: 'hr-system',
  });

  const revoked = (employeeId: string) =>
    eventually(
      () => client.workflow.getHandle(`offboarding-${employeeId}`).query<OffboardingStatus>('status'),
      (s) => s.stages[0]?.finishedAt !== undefined,
      `${employeeId}'s revoke stage`,
      60_000,
    );

  async function warehouseState(role: string) {
    const pool = await sharedPool();
    const login = await pool.query<{ rolcanlogin: boolean }>('SELECT rolcanlogin FROM pg_roles WHERE rolname = $1', [
      role,
    ]);
    const groups = await pool.query(
      'SELECT 1 FROM pg_auth_members m JOIN pg_roles u ON u.oid = m.member WHERE u.rolname = $1',
      [role],
    );
    const sessions = await pool.query('SELECT 1 FROM pg_stat_activity WHERE usename = $1', [role]);
    return { login: login.rows[0]?.rolcanlogin, groups: groups.rowCount, sessions: sessions.rowCount };
  }

  it('locks a seeded person and removes every group in every system; the audit has each row once and the chain verifies', async () => {
    assert.equal(await canBind('E1011'), true);
    const session = new pg.Client({ connectionString: (await sharedPostgres()).url.replace('postgres@', 'e1011@') });
    session.on('error', () => undefined);
    await session.connect();
    assert.deepEqual(await warehouseState('e1011'), { login: true, groups: 1, sessions: 1 });
    const started = await startOffboarding(client, request('E1011'), { taskQueue });
    assert.equal(started.workflowId, 'offboarding-E1011');
    const status = await revoked('E1011');

    assert.deepEqual(await directoryState('E1011'), { exists: true, locked: true, groups: [] });
    assert.equal(await canBind('E1011'), false);
    assert.deepEqual(
      await warehouseState('e1011'),
      { login: false, groups: 0, sessions: 0 },
      'no login, no membership, no open session',
    );
    await assert.rejects(session.query('SELECT 1'));

    const store = createAuditStore(await sharedPool());
    const events = await eventually(
      () => store.eventsFor(started.workflowId),
      (rows) => rows.some((r) => r.action === 'stage_verified'),
      'the verification row',
    );
    assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'no event recorded twice');
    const actionRows = events.filter((e) => e.details.actionId !== undefined);
    assert.deepEqual(
      actionRows.map((e) => e.details.actionId).sort(),
      status.actions.map((a) => a.id).sort(),
      'one row per action',
    );
    assert.ok(events.find((e) => e.action === 'stage_verified')?.outcome === 'clean');
    assert.equal((await store.verify()).ok, true);
  });

  it('one person with access in every system is offboarded at once: no access, session or token is left anywhere', async () => {
    const id = 'E1028'; // an employee with privileged access (every third sample person)
    const person = samplePerson(id);
    const login = githubLoginFor(person);
    const slackId = slackUserIdFor(id);
    const { github, slack, salesforce, wiki } = saas.servers;
    const sfUser = salesforce.state.records.User.find((u) => u.FederationIdentifier === id)!;
    // The SCIM stand-in replaces a user's record on every PATCH: always read the current one.
    const wikiUserNow = () => wiki.state.users.find((u) => u.externalId === id)!;
    const wikiUser = wikiUserNow();
    const githubAccess = () => ({
      member: login in github.state.memberships,
      teams: github.state.teams.filter((t) => login in t.members).length,
      repos: github.state.repos.filter((r) => r.collaborators.includes(login)).length,
      pats: github.state.patGrants.filter((g) => g.owner === login).length,
      sso: github.state.ssoAuthorizations.filter((a) => a.login === login).length,
    });
    const slackGroups = () => Object.values(slack.state.usergroups).filter((g) => g.users.includes(slackId)).length;
    const profileSets = new Set(
      salesforce.state.records.PermissionSet.filter((p) => p.IsOwnedByProfile).map((p) => String(p.Id)),
    );
    const sfAccess = () => ({
      active: sfUser.IsActive,
      frozen: salesforce.state.records.UserLogin.find((l) => l.UserId === sfUser.Id)?.IsFrozen ?? false,
      // A profile's own permission set is part of the licence, not an entitlement to revoke.
      permissionSets: salesforce.state.records.PermissionSetAssignment.filter(
        (a) => a.AssigneeId === sfUser.Id && !profileSets.has(String(a.PermissionSetId)),
      ).length,
      tokens: salesforce.state.records.OauthToken.filter((t) => t.UserId === sfUser.Id).length,
      sessions: salesforce.state.records.AuthSession.filter((a) => a.UsersId === sfUser.Id).length,
    });
    const wikiGroups = () => wiki.state.groups.filter((g) => g.members.some((m) => m.value === wikiUser.id)).length;
    // The identity providers, where the person's SSO sessions and tokens into every other app live.
    const { okta, entra, workspace } = saas.servers;
    const [oktaUser] = oktaUsersOf(okta.state, id);
    const ownsOkta = (r: { userId: string }) => r.userId === oktaUser!.id;
    const oktaAccess = () => ({
      status: okta.state.users.find((u) => u.id === oktaUser!.id)?.status,
      sessions: okta.state.sessions.filter(ownsOkta).length,
      refreshTokens: okta.state.refreshTokens.filter(ownsOkta).length,
      grants: okta.state.grants.filter(ownsOkta).length,
      roles: okta.state.roles.filter(ownsOkta).length,
      directApps: okta.state.appUsers.filter(ownsOkta).filter((a) => a.scope === 'USER').length,
    });
    const entraId = entraUserIdFor(id);
    const entraAccess = () => {
      const user = entra.state.users.find((u) => u.id === entraId)!;
      return {
        enabled: user.accountEnabled,
        liveSessions: Date.parse(user.signInSessionsValidFromDateTime) < Date.parse(user.lastSignInDateTime ?? ''),
        consents: entra.state.oauth2PermissionGrants.filter((g) => g.principalId === entraId).length,
        groups: entra.state.groups.filter((g) => g.members.includes(entraId)).length,
        appRoles: entra.state.appRoleAssignments.filter((a) => a.principalId === entraId).length,
      };
    };
    const googleUser = googleUserOf(workspace.state, id)!;
    const googleAccess = () => ({
      suspended: workspace.state.users[googleUser.id]?.suspended ?? 'deleted',
      tokens: workspace.state.tokens[googleUser.id]?.length ?? 0,
      appPasswords: workspace.state.asps[googleUser.id]?.length ?? 0,
      backupCodes: workspace.state.backupCodes[googleUser.id]?.length ?? 0,
      groups: Object.values(workspace.state.groups).filter((g) => g.members.includes(googleUser.id)).length,
    });

    // Before: access everywhere (otherwise this test would prove nothing).
    assert.equal(githubAccess().member, true);
    assert.ok(slackGroups() > 0);
    assert.equal(sfAccess().active, true);
    assert.ok(sfAccess().permissionSets > 0);
    assert.equal(wikiUserNow().active, true);
    assert.ok(wikiGroups() > 0);
    assert.equal(oktaAccess().status, 'ACTIVE');
    assert.ok(oktaAccess().sessions > 0 && oktaAccess().refreshTokens > 0);
    assert.equal(entraAccess().enabled, true);
    assert.ok(entraAccess().groups > 0);
    assert.equal(googleAccess().suspended, false);
    assert.ok(googleAccess().groups > 0);

    const started = await startOffboarding(
      client,
      { ...request(id), subject: { employeeId: id, email: person.email } },
      { taskQueue },
    );
    const status = await revoked(id);

    assert.deepEqual(await directoryState(id), { exists: true, locked: true, groups: [] });
    assert.deepEqual(await warehouseState(id.toLowerCase()), { login: false, groups: 0, sessions: 0 });
    assert.deepEqual(githubAccess(), { member: false, teams: 0, repos: 0, pats: 0, sso: 0 });
    assert.ok(
      slack.state.workspaceRemovals.some((r) => r.userId === slackId),
      'removed from the Slack workspace',
    );
    assert.equal(slackGroups(), 0);
    assert.ok((slack.state.sessionResets[slackId] ?? 0) > 0, 'Slack sessions reset');
    const sf = sfAccess();
    assert.ok(!sf.active || sf.frozen, 'Salesforce user deactivated or frozen');
    assert.deepEqual(
      { permissionSets: sf.permissionSets, tokens: sf.tokens, sessions: sf.sessions },
      { permissionSets: 0, tokens: 0, sessions: 0 },
    );
    assert.equal(wikiUserNow().active, false);
    assert.equal(wikiGroups(), 0);
    assert.deepEqual(oktaAccess(), {
      status: 'SUSPENDED',
      sessions: 0,
      refreshTokens: 0,
      grants: 0,
      roles: 0,
      directApps: 0,
    });
    assert.deepEqual(entraAccess(), { enabled: false, liveSessions: false, consents: 0, groups: 0, appRoles: 0 });
    assert.deepEqual(googleAccess(), { suspended: true, tokens: 0, appPasswords: 0, backupCodes: 0, groups: 0 });
    assert.ok((workspace.state.signOuts[googleUser.id] ?? 0) > 0, 'signed out of Google everywhere');
    if (sso) {
      // Keycloak, for real: the refresh and offline tokens issued before are refused now.
      const { admin, realm } = sso.seeded;
      assert.equal((await admin.users.findOne({ realm, id: sso.userId }))?.enabled, false);
      assert.deepEqual(await admin.users.listSessions({ realm, id: sso.userId }), []);
      for (const token of sso.tokens)
        assert.equal((await refresh(sso.keycloak, realm, token)).body.error, 'invalid_grant');
    }

    assert.deepEqual(Object.keys(status.accounts).sort(), [
      'directory',
      'entra',
      'github',
      'okta',
      'salesforce',
      'slack',
      ...(sso ? ['sso'] : []),
      'warehouse',
      'wiki',
      'workspace',
    ]);
    assert.ok(
      Object.values(status.accounts).every((account) => account !== null),
      'an account was found in every system',
    );
    assert.ok(
      status.actions.every((a) => ['done', 'already', 'not_applicable'].includes(a.state)),
      JSON.stringify(status.actions.filter((a) => !['done', 'already', 'not_applicable'].includes(a.state))),
    );
    assert.deepEqual(status.manualTasks, [], 'the verification sweep found nothing left');

    // The status can answer before the last activation's audit batch is in the table.
    const store = createAuditStore(await sharedPool());
    const rowsOfActions = async () =>
      (await store.eventsFor(started.workflowId)).filter((e) => e.details.actionId !== undefined);
    const actionRows = await eventually(
      rowsOfActions,
      (rows) => rows.length >= status.actions.length,
      'a row for every action',
    );
    assert.deepEqual(
      actionRows.map((e) => e.details.actionId).sort(),
      status.actions.map((a) => a.id).sort(),
      'one audit row per action',
    );
    assert.ok(
      slack.state.messages.some((m) => m.text.startsWith(`[started] offboarding-${id}`)),
      'the IT channel was told',
    );
  });

  it('shows the offboarding with its search attributes, which filter the list', async () => {
    const handle = client.workflow.getHandle('offboarding-E1011');
    const description = await handle.describe();
    const attributes = description.searchAttributes as Record<string, unknown[]>;
    assert.deepEqual(attributes.OffboardingEmployeeId, ['E1011']);
    assert.deepEqual(attributes.OffboardingMode, ['immediate']);
    assert.deepEqual(attributes.OffboardingStage, ['waiting'], 'waiting for the delete stage');
    assert.deepEqual(attributes.OffboardingHeld, [false]);
    assert.ok(attributes.OffboardingEffectiveAt);
    const listed = await eventually(
      async () => {
        const ids: string[] = [];
        for await (const workflow of client.workflow.list({
          query: `OffboardingEmployeeId = "E1011" AND OffboardingMode = "immediate"`,
        }))
          ids.push(workflow.workflowId);
        return ids;
      },
      (ids) => ids.length === 1,
      'the visibility query',
    );
    assert.deepEqual(listed, ['offboarding-E1011']);
    const summary = await client.workflowService.describeWorkflowExecution({
      namespace: 'default',
      execution: { workflowId: 'offboarding-E1011' },
    });
    assert.ok(summary.executionConfig?.userMetadata?.summary, 'a static summary is set');
    // An involuntary termination: served before resignations in a burst (model/urgency.ts).
    assert.equal(summary.workflowExecutionInfo?.priority?.priorityKey, 2, 'the run carries its urgency');
  });

  it('each run carries its urgency; a superseding security termination sends its calls to the head of the queue', async () => {
    const id = 'E1044';
    const inAWeek = new Date(Date.now() + 7 * 86_400_000).toISOString();
    const resignation = { ...request(id), reason: 'voluntary' as const, effectiveAt: inAWeek };
    await startOffboarding(client, resignation, { taskQueue });
    const workflowId = `offboarding-${id}`;
    const described = await client.workflowService.describeWorkflowExecution({
      namespace: 'default',
      execution: { workflowId },
    });
    assert.equal(described.workflowExecutionInfo?.priority?.priorityKey, 3, 'a resignation: the default priority');
    const security = await startOffboarding(client, { ...request(id), reason: 'security' }, { taskQueue });
    assert.equal(security.outcome, 'superseded');
    await revoked(id);
    assert.deepEqual(await directoryState(id), { exists: true, locked: true, groups: [] });
    const history = await client.workflow.getHandle(workflowId).fetchHistory();
    const calls = (history.events ?? [])
      .map((e) => e.activityTaskScheduledEventAttributes)
      .filter((a) => a?.activityId?.startsWith('directory:'));
    assert.ok(calls.length > 0, 'the directory was called');
    assert.deepEqual(
      [...new Set(calls.map((a) => a!.priority?.priorityKey))],
      [1],
      "every call of the security termination's plan is at priority 1",
    );
  });

  it('concurrent offboardings do not fork the audit chain', async () => {
    const people = ['E1012', 'E1013', 'E1014', 'E1015', 'E1016', 'E1017'];
    await Promise.all(people.map((id) => startOffboarding(client, request(id), { taskQueue })));
    await Promise.all(people.map(revoked));
    for (const id of people) assert.deepEqual(await directoryState(id), { exists: true, locked: true, groups: [] });
    const pool = await sharedPool();
    const { rows } = await pool.query<{ seq: string; prev_hash: string }>(
      'SELECT seq, prev_hash FROM audit_events ORDER BY seq',
    );
    assert.deepEqual(
      rows.map((r) => Number(r.seq)),
      rows.map((_, i) => i + 1),
    );
    assert.equal(new Set(rows.map((r) => r.prev_hash)).size, rows.length, 'no two rows share a predecessor');
    assert.equal((await createAuditStore(pool).verify()).ok, true);
  });

  it('refuses LDAP injection strings as identifiers before anything starts', async () => {
    const before = await directoryState('E1018');
    for (const evil of ['*', '*)(uid=*', 'E1018)(|(objectClass=*']) {
      await assert.rejects(
        startOffboarding(client, { ...request('E1018'), subject: { employeeId: evil } }, { taskQueue }),
        (err: Error) => err instanceof InvalidRequestError && /subject\.employeeId/.test(err.message),
      );
    }
    await assert.rejects(
      startOffboarding(
        client,
        { ...request('E1018'), subject: { employeeId: 'E1018', email: '*)(mail=*' } },
        { taskQueue },
      ),
      /subject\.email/,
    );
    assert.deepEqual(await directoryState('E1018'), before);
    await assert.rejects(client.workflow.getHandle('offboarding-E1018').describe(), /not found/i);
  });

  it('the offboard CLI: each verb, its output and its exit code', async () => {
    const databaseUrl = (await sharedPostgres()).url;
    // Asynchronous on purpose: this process hosts the worker, which must keep running meanwhile.
    const run = (env: NodeJS.ProcessEnv, args: string[]) =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        execFile(
          process.execPath,
          [`${projectRoot}/bin/offboard.js`, ...args],
          { env: { ...process.env, ...env } },
          (error, out, err) => {
            resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, out, err });
          },
        );
      });
    const cli = (...args: string[]) =>
      run(
        {
          TEMPORAL_ADDRESS: server.address,
          DATABASE_URL: databaseUrl,
          OFFBOARD_OPERATOR: 'it-oncall',
          OFFBOARD_AUDIT_CHECKPOINTS_FILE: checkpointsFile,
          OFFBOARD_AUDIT_PUBLIC_KEY_FILE: publicKeyFile,
        },
        args,
      );
    const started = await cli('terminate', '--employee', 'E1019', '--reason', 'voluntary', '--json');
    assert.equal(started.code, 0, started.err);
    assert.equal(JSON.parse(started.out).workflowId, 'offboarding-E1019');
    assert.match(
      (await cli('terminate', '--employee', 'E1019', '--reason', 'voluntary')).out,
      /joined offboarding-E1019/,
    );
    await eventually(
      () => directoryState('E1019'),
      (s) => s.locked,
      'E1019 locked',
    );

    assert.deepEqual(await cli('hold', 'E1019', '--reason', 'handover to the new lead'), {
      code: 0,
      out: 'offboarding-E1019: held until released\n',
      err: '',
    });
    const status = await cli('status', 'E1019');
    assert.equal(status.code, 0);
    assert.match(status.out, /offboarding-E1019: held \(voluntary, staged\)/);
    assert.match(status.out, /holds\s+it-oncall: handover to the new lead/);
    assert.match(status.out, /done\s+disable\s+directory\s+disable_login/);
    assert.equal(JSON.parse((await cli('status', 'E1019', '--json')).out).holds[0].by, 'it-oncall');
    assert.equal((await cli('release', 'E1019')).code, 0);
    const again = await cli('release', 'E1019');
    assert.deepEqual([again.code, again.err], [1, 'offboard: release: there is no hold to release\n']);

    assert.equal((await cli('status', 'E4040')).code, 1);
    assert.match((await cli('status', 'E4040')).err, /no offboarding for E4040/);
    const invalid = await cli('terminate', '--employee', 'x)(uid=*', '--reason', 'voluntary', '--effective', 'soon');
    assert.equal(invalid.code, 1);
    assert.match(invalid.err, /subject\.employeeId: must be/);
    assert.match(invalid.err, /effectiveAt: Invalid ISO datetime/);
    assert.equal((await cli('terminate', '--employee', 'E1019')).code, 2, 'a missing option is a usage error');
    // Checked against the worker's policy (the same config file; here the defaults: no roles) before
    // anything starts, so it is refused with exit 1 instead of failing in the workflow.
    const unknownRole = await cli('role-change', '--employee', 'E1019', '--new-role', 'astronaut');
    assert.equal(unknownRole.code, 1);
    assert.match(unknownRole.err, /newRole: "astronaut" is not in policy\.roles \(known: none\)/);
    assert.equal(
      JSON.parse((await cli('status', 'E1019', '--json')).out).laterRequests.length,
      1,
      'nothing reached it',
    );
    // One person, one id: the lower-case id is the same offboarding.
    const lower = await cli('status', 'e1019');
    assert.equal(lower.code, 0, lower.err);
    assert.match(lower.out, /^offboarding-E1019: /);
    const evidence = await cli('evidence', 'E1019', '--format', 'csv');
    assert.equal(evidence.code, 0, evidence.err);
    assert.match(evidence.out.split('\r\n')[0]!, /offboarding/i, 'a CSV with a header row');
    assert.ok(evidence.out.includes('disable_login'));
    assert.match((await cli('evidence', 'E1019')).out, /^<!DOCTYPE html>/i);
    assert.equal((await cli('evidence', 'E4040')).code, 1);
    const verified = await cli('audit', 'verify');
    assert.deepEqual([verified.code, /audit chain intact: \d+ rows verified/.test(verified.out)], [0, true]);
    // Every offboarding's history on this server against the table, and the checkpoints the worker signed.
    const against = await cli('audit', 'verify', '--against', 'temporal', '--json');
    const report = JSON.parse(against.out);
    assert.equal(against.code, 0, against.out);
    assert.ok(
      report.temporal.runsChecked >= 1 && report.temporal.receiptsChecked > 10,
      JSON.stringify(report.temporal),
    );
    assert.ok(report.checkpoints.validSignatures >= 1 && report.checkpoints.latest !== null);
    const listed = await cli('list', '--state', 'running', '--json');
    assert.equal(listed.code, 0, listed.err);
    assert.ok((JSON.parse(listed.out) as { workflowId: string }[]).some((r) => r.workflowId === 'offboarding-E1019'));
    assert.match(
      (await cli('list', '--stage', "x' OR 1=1")).err,
      /stage: a stage name or phase: lower-case letters/,
      'filters cannot inject into the visibility query',
    );

    // Bulk: a CSV with a new person, the same person again, a bad row and a second new person.
    const csv = join(mkdtempSync(join(tmpdir(), 'offboard-bulk-')), 'terminations.csv');
    writeFileSync(
      csv,
      'employee_id,reason,effective_at,request_id\nE1034,involuntary,,\nE1034,involuntary,,\n*bad*,fired,,\nE1037,voluntary,2030-01-01T00:00:00Z,hr-bulk-e1037\n',
    );
    const bulk = await cli('terminate', '--file', csv);
    assert.equal(bulk.code, 1, 'a failed row makes the exit code non-zero');
    assert.match(
      bulk.out,
      /^2 started, 1 joined \(already running\), 0 duplicate \(this request started it already\), 0 superseded a running plan, 1 failed$/m,
    );
    assert.match(bulk.out, /row 4 \(\*bad\*\): subject\.employeeId: must be .*reason: Invalid option/);
    assert.match(bulk.err, /\[#+\] 4\/4/, 'progress is shown');
    assert.equal((await client.workflow.getHandle('offboarding-E1037').describe()).status.name, 'RUNNING');
    // The same file again: nothing starts. A row with its own request id is that request again.
    const rerunOut = await cli('terminate', '--file', csv, '--json');
    const rerun = JSON.parse(rerunOut.out) as {
      started: number;
      joined: number;
      duplicate: number;
      results: unknown[];
    };
    assert.deepEqual([rerun.started, rerun.joined, rerun.duplicate], [0, 2, 1], rerunOut.out);
    assert.ok(
      rerun.results.some(
        (r) => JSON.stringify(r).includes('"outcome":"duplicate"') && JSON.stringify(r).includes('E1037'),
      ),
    );

    // Plain status of a run due in 2030 shows what pre-flight found, before any stage.
    const directoryEntry = await eventually(
      () => client.workflow.getHandle('offboarding-E1037').query<OffboardingStatus>('status'),
      (s) => typeof s.accounts.directory === 'string' && 'warehouse' in s.accounts,
      "E1037's pre-flight",
    );
    const waiting = await cli('status', 'E1037');
    assert.equal(waiting.code, 0, waiting.err);
    assert.match(waiting.out, /accounts\s+found ahead of time \(pre-flight\), before the first stage:/);
    assert.match(waiting.out, new RegExp(`\\n\\s+directory\\s+${directoryEntry.accounts.directory}\\n`));
    for (const [system, account] of Object.entries(directoryEntry.accounts))
      assert.match(waiting.out, new RegExp(`\\n\\s+${system}\\s+${account ?? 'none found'}\\n`), system);

    // Cancelled by the cancel command: the run ends normally (Completed) in the phase cancelled.
    assert.equal((await cli('cancel', 'E1037', '--reason', 'rescinded')).code, 0);
    await client.workflow.getHandle('offboarding-E1037').result();
    const canceled = await eventually(
      async () =>
        JSON.parse((await cli('list', '--state', 'canceled', '--json')).out) as { workflowId: string; state: string }[],
      (rows) => rows.some((r) => r.workflowId === 'offboarding-E1037'),
      'E1037 in list --state canceled',
    );
    assert.equal(canceled.find((r) => r.workflowId === 'offboarding-E1037')?.state, 'canceled');
    const completed = JSON.parse((await cli('list', '--state', 'completed', '--json')).out) as { workflowId: string }[];
    assert.ok(
      !completed.some((r) => r.workflowId === 'offboarding-E1037'),
      'a cancelled run is not listed as completed',
    );

    // A run that no worker has taken up answers "queued" at once, rather than a query timing out.
    const queued = await startOffboarding(client, request('E1098'), { taskQueue: `nobody-listens-${randomUUID()}` });
    try {
      const began = Date.now();
      const shown = await cli('status', 'E1098');
      assert.equal(shown.code, 0, shown.err);
      assert.match(shown.out, /^offboarding-E1098: queued \(started \S+ by request hr-/);
      assert.match(shown.out, /no worker has run it yet/);
      assert.ok(Date.now() - began < 15_000, 'no query waited for a worker');
      assert.equal(JSON.parse((await cli('status', 'E1098', '--json')).out).phase, 'queued');
    } finally {
      await client.workflow.getHandle(queued.workflowId).terminate('test over');
    }

    const unreachable = await run({ TEMPORAL_ADDRESS: '127.0.0.1:1' }, ['status', 'E1019']);
    assert.equal(unreachable.code, 3);
    assert.match(unreachable.err, /cannot reach Temporal at 127\.0\.0\.1:1/);
  });
});
