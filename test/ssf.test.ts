/**
 * The Shared Signals transmitter against a real receiver on 127.0.0.1 (sandbox/ssf-receiver.ts),
 * which verifies every SET the way a receiver must: the JWKS found through the API's
 * /.well-known/ssf-configuration, the signature, `iss`, `aud`, `jti` uniqueness, the event and
 * its subject. Then one offboarding end to end on the time-skipping server: the receiver hears
 * that the person's account is disabled and their sessions revoked, by the email the directory
 * holds. Sample person: E1048 (LDAP, shared slapd).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { pino } from 'pino';
import { createAuditStore } from '../activities/audit.js';
import { createConnector } from '../activities/connectors/registry.js';
import { createSsfConnector, ssfSystemSchema, type SsfSystemInput } from '../activities/connectors/ssf.js';
import { ConnectorError, type ApplyContext, type Connector } from '../activities/connectors/types.js';
import { HR_EVENTS_MIGRATIONS } from '../client/http/hr-events-store.js';
import { startApi, type RunningApi } from '../client/http/server.js';
import { sendCommand, startOffboarding } from '../client/temporal.js';
import { leftoversAfterStage, plan, type Action } from '../model/plan.js';
import { defaultPolicy, policySchema } from '../model/policy.js';
import { SSF_EVENT_TYPES, SSF_VERIFICATION_EVENT, sharedSignalsSchema } from '../model/shared-signals.js';
import { samplePerson } from '../sandbox/org.js';
import { startSsfReceiver, type SsfReceiver } from '../sandbox/ssf-receiver.js';
import { freePort } from '../scripts/services.js';
import { parseConfig } from '../workers/config.js';
import { createOffboardingWorker } from '../workers/create-worker.js';
import {
  createSetSigner,
  jwksOf,
  loadSigningKey,
  SigningKeyError,
  sharedSignalsOf,
  signingKeyFromPem,
  type SetSigner,
  type SigningKey,
} from '../workers/ssf-signing-key.js';
import type { OffboardingStatus } from '../workflows/messages.js';
import type { offboarding } from '../workflows/offboarding.js';
import { eventually, sharedPool, testConfig, timeSkippingEnvironment, workflowBundle } from './helpers/environment.js';

const AUDIENCE = 'https://crm.example.test';
const AUTHORIZATION = `Bearer ${randomUUID()}`;
const PERSON = { employeeId: 'E1001', email: 'Ada.Person@example.org' };

describe('Shared Signals transmitter (RFC 8935 push to a verifying receiver)', function () {
  this.timeout(60_000);
  let dataDir: string;
  let issuer: string;
  let key: SigningKey;
  let signer: SetSigner;
  let api: RunningApi;
  let receiver: SsfReceiver;

  const connect = (settings: Partial<SsfSystemInput> = {}, using: SetSigner = signer): Connector =>
    createSsfConnector(
      'crm',
      ssfSystemSchema.parse({
        type: 'ssf',
        endpoint: receiver.endpoint,
        audience: AUDIENCE,
        authorization: AUTHORIZATION,
        timeoutMs: 3_000,
        ...settings,
      }),
      using,
    );
  const action = (kind: Action['kind'], stage = 'revoke'): Action => ({
    id: `${stage}/crm/${kind}`,
    stage,
    system: 'crm',
    kind,
    accountId: 'ssf:crm',
  });
  const context = (overrides: Partial<ApplyContext> = {}): ApplyContext => ({
    offboardingId: 'offboarding-E1001',
    runId: randomUUID(),
    attempt: 1,
    firstScheduledAtMs: Date.now(),
    ...overrides,
  });
  const isConnectorError = (check: (err: ConnectorError) => boolean) => (err: unknown) =>
    err instanceof ConnectorError && check(err);

  before(async function () {
    this.timeout(120_000);
    dataDir = mkdtempSync(join(tmpdir(), 'offboard-ssf-'));
    const port = await freePort();
    issuer = `http://127.0.0.1:${port}`;
    key = loadSigningKey(sharedSignalsSchema.parse({ issuer }), { env: { OFFBOARD_DATA_DIR: dataDir } });
    signer = createSetSigner(issuer, key);
    const pool = await sharedPool();
    for (const statement of HR_EVENTS_MIGRATIONS) await pool.query(statement);
    // The metadata routes never reach Temporal: a lazy connection that is never used.
    const client = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) });
    api = await startApi(
      {
        client,
        pool,
        config: parseConfig({ api: {} }, 'the test').api!,
        policy: defaultPolicy(),
        sharedSignals: { issuer, jwks: jwksOf(key) },
        logger: pino({ level: 'silent' }),
      },
      { port },
    );
    receiver = await startSsfReceiver({ issuer, audience: AUDIENCE, authorization: AUTHORIZATION });
  });
  after(async () => {
    await receiver?.stop();
    await api?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });
  beforeEach(() => receiver.reset());

  describe('the transmitter metadata and key', () => {
    it('the API serves /.well-known/ssf-configuration and a JWKS holding the public key only', async () => {
      const response = await fetch(`${issuer}/.well-known/ssf-configuration`);
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
      const metadata = (await response.json()) as Record<string, unknown>;
      assert.deepEqual(metadata, {
        spec_version: '1_0',
        issuer,
        jwks_uri: `${issuer}/ssf/jwks.json`,
        delivery_methods_supported: ['urn:ietf:rfc:8935'],
      });
      const jwks = (await (await fetch(String(metadata.jwks_uri))).json()) as { keys: Record<string, unknown>[] };
      assert.equal(jwks.keys.length, 1);
      const [jwk] = jwks.keys;
      assert.deepEqual(
        { kty: jwk!.kty, crv: jwk!.crv, alg: jwk!.alg, use: jwk!.use, kid: jwk!.kid },
        { kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig', kid: key.kid },
      );
      assert.equal(jwk!.d, undefined, 'no private part');
      const openapi = (await (await fetch(`${issuer}/openapi.json`)).json()) as { paths: Record<string, unknown> };
      assert.ok(openapi.paths['/.well-known/ssf-configuration'] && openapi.paths['/ssf/jwks.json']);
    });

    it('an issuer with a path: the metadata is at /.well-known/ssf-configuration/<path> (SSF §7.2)', async () => {
      const { wellKnownPath, jwksUri } = await import('../model/shared-signals.js');
      assert.equal(wellKnownPath('https://tr.example.com/issuer1/'), '/.well-known/ssf-configuration/issuer1');
      assert.equal(jwksUri('https://tr.example.com/issuer1'), 'https://tr.example.com/issuer1/ssf/jwks.json');
      assert.throws(() => sharedSignalsSchema.parse({ issuer: 'http://offboard.example.com' }), /requires https/);
      assert.throws(() => sharedSignalsSchema.parse({ issuer: 'https://offboard.example.com/?a=1' }), /no query/);
      assert.throws(
        () => sharedSignalsSchema.parse({ issuer: 'https://offboard.example.com' }),
        /needs a signing key shared by the worker and the API/,
      );
      assert.equal(
        sharedSignalsSchema.parse({ issuer: 'https://offboard.example.com', signingKeyFile: '/run/secrets/k.pem' })
          .issuer,
        'https://offboard.example.com',
      );
    });

    it('the development key is made once under the data directory (mode 600) and read back after', () => {
      const path = join(dataDir, 'ssf-signing-key.pem');
      assert.equal(statSync(path).mode & 0o777, 0o600);
      const again = loadSigningKey(sharedSignalsSchema.parse({ issuer }), { env: { OFFBOARD_DATA_DIR: dataDir } });
      assert.equal(again.kid, key.kid);
      assert.equal(again.source, path);
    });

    it('a configured key is used with its algorithm; keys that cannot sign SETs are refused saying what to use', () => {
      // As an environment variable often carries it: newlines written as \n.
      const escaped = (pem: string) => pem.replace(/\n/g, '\\n');
      const ed25519 = () => escaped(pemOf(generateKeyPairSync('ed25519').privateKey));
      const rsa = (bits: number) => escaped(pemOf(generateKeyPairSync('rsa', { modulusLength: bits }).privateKey));
      const p384 = pemOf(generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey);
      assert.equal(signingKeyFromPem(ed25519(), 'env').alg, 'EdDSA');
      assert.equal(signingKeyFromPem(rsa(2048), 'env').alg, 'RS256');
      assert.equal(signingKeyFromPem(ed25519(), 'env', 'key-2026').kid, 'key-2026');
      assert.throws(() => signingKeyFromPem(rsa(1024), 'env'), /2048 bits or more/);
      assert.throws(
        () => signingKeyFromPem(p384, 'env'),
        (err: unknown) => err instanceof SigningKeyError && /P-256 \(ES256\)/.test(err.message),
      );
      assert.throws(() => signingKeyFromPem('not a key', 'sharedSignals.signingKey'), /not a PEM private key/);
    });

    it('rotation: additionalPublicKeys are published next to the signing key; a private key there is refused', () => {
      const next = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const nextPublic = next.publicKey.export({ format: 'pem', type: 'spki' }) as string;
      const transmitter = sharedSignalsOf(
        {
          systems: {},
          sharedSignals: sharedSignalsSchema.parse({
            issuer,
            signingKey: pemOf(key.privateKey),
            additionalPublicKeys: [nextPublic],
          }),
        },
        { env: { OFFBOARD_DATA_DIR: dataDir } },
      )!;
      const nextKid = signingKeyFromPem(pemOf(next.privateKey), 'next').kid;
      assert.deepEqual(
        transmitter.jwks.keys.map((k) => k.kid),
        [key.kid, nextKid],
      );
      assert.ok(transmitter.jwks.keys.every((k) => k.d === undefined));
      assert.throws(
        () =>
          sharedSignalsOf({
            systems: {},
            sharedSignals: sharedSignalsSchema.parse({ issuer, additionalPublicKeys: [pemOf(next.privateKey)] }),
          }),
        /additionalPublicKeys\[0\]: a private key; publish its public part/,
      );
      assert.equal(sharedSignalsOf({ systems: {} }), undefined, 'no receivers and no section: no transmitter');
    });
  });

  describe('delivery', () => {
    it('disable_login and revoke_sessions deliver RISC account-disabled and CAEP session-revoked, verified against the served JWKS', async () => {
      const crm = connect();
      const found = await crm.discover(PERSON);
      assert.deepEqual(found.account, { id: 'ssf:crm', disabled: false });
      assert.equal(found.unverifiable, true, 'verification cannot read a receiver back');
      const run = context();
      const disabled = await crm.apply(action('disable_login'), PERSON, run);
      const revoked = await crm.apply(action('revoke_sessions'), PERSON, run);
      assert.equal(disabled.outcome, 'done');
      assert.equal(revoked.outcome, 'done');

      const { accepted, rejected } = receiver.state;
      assert.deepEqual(rejected, []);
      assert.deepEqual(
        accepted.map((e) => e.eventType),
        [SSF_EVENT_TYPES['account-disabled'], SSF_EVENT_TYPES['session-revoked']],
      );
      for (const event of accepted) {
        assert.deepEqual(event.subId, { format: 'email', email: 'ada.person@example.org' });
        assert.equal(event.claims.iss, issuer);
        assert.equal(event.claims.aud, AUDIENCE);
        assert.equal(event.claims.txn, run.runId, 'one txn for every SET of one offboarding');
        assert.equal(event.header.kid, key.kid);
        assert.equal(event.claims.sub, undefined);
        assert.equal(event.claims.exp, undefined);
      }
      assert.notEqual(accepted[0]!.jti, accepted[1]!.jti);
      assert.deepEqual(accepted[0]!.event, {});
      assert.equal(accepted[1]!.event.initiating_entity, 'policy');
      assert.equal(disabled.details.jti, accepted[0]!.jti);
      assert.equal(disabled.details.status, 202);
      assert.equal(disabled.details.receiver, receiver.url);
      assert.equal(JSON.stringify(disabled.details).includes('example.org'), false, 'no email in the audit details');
    });

    it('the SET is explicitly typed secevent+jwt, signed with the key the JWKS names, iat from the first attempt', async () => {
      const firstScheduledAtMs = Date.parse('2026-12-01T10:00:00Z');
      await connect().apply(action('disable_login'), PERSON, context({ firstScheduledAtMs, attempt: 3 }));
      const [event] = receiver.state.accepted;
      assert.deepEqual(event?.header, { alg: 'ES256', kid: key.kid, typ: 'secevent+jwt' });
      assert.equal(event?.claims.iat, firstScheduledAtMs / 1000, 'the same on every attempt');
    });

    it('subject formats: iss_sub from a template, aliases (email and iss_sub), complex with a tenant', async () => {
      const iss = 'https://login.example.test';
      const run = context();
      await connect({ subject: { format: 'iss_sub', iss, sub: '{employeeId}' } }).apply(
        action('disable_login', 'a'),
        PERSON,
        run,
      );
      await connect({ subject: { format: 'aliases', iss, sub: '{emailLocalPart}' } }).apply(
        action('disable_login', 'b'),
        PERSON,
        run,
      );
      await connect({ subject: { format: 'complex', iss, tenant: 'acme' } }).apply(
        action('disable_login', 'c'),
        PERSON,
        run,
      );
      assert.deepEqual(
        receiver.state.accepted.map((e) => e.subId),
        [
          { format: 'iss_sub', iss, sub: 'E1001' },
          {
            format: 'aliases',
            identifiers: [
              { format: 'email', email: 'ada.person@example.org' },
              { format: 'iss_sub', iss, sub: 'ada.person' },
            ],
          },
          {
            format: 'complex',
            user: { format: 'iss_sub', iss, sub: 'E1001' },
            tenant: { format: 'opaque', id: 'acme' },
          },
        ],
      );
      assert.throws(
        () =>
          parseConfig(
            {
              systems: {
                crm: { type: 'ssf', endpoint: receiver.endpoint, audience: 'a', subject: { format: 'iss_sub' } },
              },
            },
            'x',
          ),
        /subject\.format iss_sub needs subject\.iss/,
      );
    });

    it('without an email: no account until one is known (the pipeline waits for the directories); iss_sub by employee id needs none', async () => {
      const noEmail = { employeeId: 'E1001' };
      assert.equal((await connect().discover(noEmail)).account, null);
      const byId = connect({ subject: { format: 'iss_sub', iss: 'https://login.example.test' } });
      assert.deepEqual((await byId.discover(noEmail)).account, { id: 'ssf:crm', disabled: false });
      await assert.rejects(
        connect().apply(action('disable_login'), noEmail, context()),
        isConnectorError((err) => !err.retryable && /no email is known/.test(err.message)),
      );
      assert.equal(receiver.state.deliveries.length, 0);
    });

    it('503 then 202: the retry sends the same jti, and the receiver accepts it once', async () => {
      receiver.failNext(1, 503, 2);
      const crm = connect();
      const first = context();
      await assert.rejects(
        crm.apply(action('disable_login'), PERSON, first),
        isConnectorError((err) => err.retryable && err.retryAfterMs === 2_000 && /HTTP 503/.test(err.message)),
      );
      const retried = await crm.apply(action('disable_login'), PERSON, { ...first, attempt: 2 });
      assert.equal(retried.outcome, 'done');
      const { deliveries, accepted } = receiver.state;
      assert.deepEqual(
        deliveries.map((d) => d.status),
        [503, 202],
      );
      assert.equal(deliveries[0]!.jti, deliveries[1]!.jti, 'the same SET both times');
      assert.equal(accepted.length, 1);
      assert.equal(accepted[0]!.jti, retried.details.jti);
    });

    it('a 202 lost on the way back: the retry re-sends the same jti, the receiver keeps the event once', async () => {
      receiver.loseNextAnswer();
      const crm = connect();
      const run = context();
      await assert.rejects(
        crm.apply(action('revoke_sessions'), PERSON, run),
        isConnectorError((err) => err.retryable && err.code === 'ssf_unreachable'),
      );
      assert.equal((await crm.apply(action('revoke_sessions'), PERSON, { ...run, attempt: 2 })).outcome, 'done');
      assert.equal(receiver.state.accepted.length, 1);
      assert.deepEqual(receiver.state.duplicates, [receiver.state.accepted[0]!.jti]);
      // Another offboarding run of the same person is another event: a new jti.
      await crm.apply(action('revoke_sessions'), PERSON, context());
      assert.equal(receiver.state.accepted.length, 2);
    });

    it('429 waits for Retry-After; 5xx and a receiver that is down are retryable', async () => {
      receiver.failNext(1, 429, 7);
      await assert.rejects(
        connect().apply(action('disable_login'), PERSON, context()),
        isConnectorError((err) => err.retryable && err.retryAfterMs === 7_000),
      );
      receiver.failNext(1, 502);
      await assert.rejects(
        connect().apply(action('disable_login'), PERSON, context()),
        isConnectorError((err) => err.retryable && err.retryAfterMs === undefined),
      );
      const down = connect({ endpoint: `http://127.0.0.1:${await freePort()}/events` });
      await assert.rejects(
        down.apply(action('disable_login'), PERSON, context()),
        isConnectorError((err) => err.retryable),
      );
      // A receiver that cannot fetch the transmitter's keys cannot verify: 503, retried.
      const blind = await startSsfReceiver({ issuer: `http://127.0.0.1:${await freePort()}`, audience: AUDIENCE });
      try {
        await assert.rejects(
          connect({ endpoint: blind.endpoint }).apply(action('disable_login'), PERSON, context()),
          isConnectorError((err) => err.retryable && /HTTP 503/.test(err.message)),
        );
        assert.equal(blind.state.accepted.length, 0);
      } finally {
        await blind.stop();
      }
    });

    it('400 invalid_audience, invalid_key, invalid_issuer and authentication_failed: not retried, and the error says what to fix', async () => {
      const cases: [string, Connector, RegExp][] = [
        [
          'invalid_audience',
          connect({ audience: 'https://someone-else.example.test' }),
          /set audience for systems\.crm to the value the receiver expects/,
        ],
        [
          'invalid_key',
          connect({}, createSetSigner(issuer, signingKeyFromPem(generatePem(), 'other'))),
          /fetch the transmitter's JWKS again/,
        ],
        ['invalid_issuer', connect({}, createSetSigner('https://impostor.example.test', key)), /sharedSignals\.issuer/],
        ['authentication_failed', connect({ authorization: 'Bearer wrong' }), /set authorization for systems\.crm/],
      ];
      for (const [err, crm, advice] of cases) {
        await assert.rejects(
          crm.apply(action('disable_login'), PERSON, context()),
          isConnectorError(
            (e) => !e.retryable && e.code === `ssf_${err}` && advice.test(e.message) && e.message.includes(err),
          ),
          err,
        );
      }
      assert.deepEqual(
        receiver.state.rejected.map((r) => r.err),
        cases.map(([err]) => err),
      );
      assert.equal(receiver.state.accepted.length, 0);
    });

    it('events the receiver does not take, and actions with no event, send nothing', async () => {
      const crm = connect({ events: ['account-disabled'] });
      assert.equal((await crm.apply(action('revoke_sessions'), PERSON, context())).outcome, 'not_applicable');
      assert.equal((await crm.apply(action('revoke_tokens'), PERSON, context())).outcome, 'not_applicable');
      assert.equal((await crm.apply(action('enable_login'), PERSON, context())).outcome, 'not_applicable');
      assert.equal(receiver.state.deliveries.length, 0);
      // Cancel and delete: account-enabled and account-purged.
      const all = connect();
      await all.apply(action('enable_login', 'cancel'), PERSON, context());
      await all.apply(action('delete_account', 'delete'), PERSON, context());
      assert.deepEqual(
        receiver.state.accepted.map((e) => e.eventType),
        [SSF_EVENT_TYPES['account-enabled'], SSF_EVENT_TYPES['account-purged']],
      );
    });

    it('verification leaves a receiver out: its presumed account is never a leftover', async () => {
      const offboardingPlan = plan(
        {
          requestId: 'r',
          subject: { employeeId: 'E1001' },
          trigger: 'termination',
          reason: 'involuntary',
          employmentType: 'employee',
          effectiveAt: new Date().toISOString(),
          requestedBy: 'hr',
        },
        policySchema.parse({}),
      );
      const revoke = offboardingPlan.stages[0]!;
      const found = await connect().discover(PERSON);
      assert.deepEqual(leftoversAfterStage(revoke, [found], offboardingPlan), []);
      // The same discovery from a system that can be read back would be a leftover.
      assert.notDeepEqual(leftoversAfterStage(revoke, [{ ...found, unverifiable: false }], offboardingPlan), []);
    });

    it('check() sends a verification event about the stream, which the receiver verifies', async () => {
      await connect({ streamId: 'stream-1' }).check!();
      const [event] = receiver.state.accepted;
      assert.equal(event?.eventType, SSF_VERIFICATION_EVENT);
      assert.deepEqual(event?.subId, { format: 'opaque', id: 'stream-1' });
      await assert.rejects(connect({ audience: 'nobody' }).check!(), /invalid_audience/);
    });
  });

  describe('an offboarding end to end (time-skipping server, real slapd)', () => {
    let env: TestWorkflowEnvironment;
    let worker: Worker | undefined;
    before(async function () {
      this.timeout(120_000);
      env = await timeSkippingEnvironment();
    });
    after(async function () {
      this.timeout(60_000);
      if (worker?.getState() === 'RUNNING') worker.shutdown();
      await env?.teardown();
    });

    it('the receiver hears account-disabled and session-revoked by the email the directory holds, each delivery audited, a 503 retried with the same jti; a cancel sends account-enabled', async function () {
      this.timeout(120_000);
      const employeeId = 'E1048';
      const config = await testConfig({
        systems: { crm: { type: 'ssf', endpoint: receiver.endpoint, audience: AUDIENCE } },
      });
      // The ssf system is built with the test's transmitter, not a development key in the working tree.
      const connectors = new Map<string, Connector>([
        ['directory', createConnector('directory', config.systems.directory!)],
        ['crm', connect()],
      ]);
      const taskQueue = `test-${randomUUID()}`;
      worker = await createOffboardingWorker({
        connection: env.nativeConnection,
        namespace: env.namespace ?? 'default',
        config,
        connectors,
        pool: await sharedPool(),
        taskQueue,
        workflowBundle: await workflowBundle(),
      });
      // The first delivery (account-disabled: the login goes first) meets a 503; Temporal retries it.
      receiver.failNext(1, 503);
      await worker.runUntil(async () => {
        const started = await startOffboarding(
          env.client,
          {
            requestId: `hr-${randomUUID()}`,
            subject: { employeeId }, // no email: the directory's is used
            trigger: 'termination',
            reason: 'involuntary',
            employmentType: 'employee',
            effectiveAt: new Date(await env.currentTimeMs()).toISOString(),
            requestedBy: 'hr-system',
          },
          { taskQueue, searchAttributes: false },
        );
        const handle = env.client.workflow.getHandle<typeof offboarding>(started.workflowId, started.runId);
        await eventually(
          () => handle.query<OffboardingStatus>('status'),
          (s) => s.stages.some((stage) => stage.name === 'revoke' && stage.finishedAt),
          'the revoke stage to finish',
          90_000,
        );
        const email = samplePerson(employeeId).email.toLowerCase();
        const forRun = receiver.state.accepted.filter((e) => e.claims.txn === started.runId);
        assert.deepEqual(
          forRun.map((e) => e.eventType).sort(),
          [SSF_EVENT_TYPES['account-disabled'], SSF_EVENT_TYPES['session-revoked']].sort(),
        );
        for (const event of forRun) assert.deepEqual(event.subId, { format: 'email', email });
        // The audit rows of a workflow step are written after it, in a batch: wait for the stage's last one.
        const audit = createAuditStore(await sharedPool());
        const rows = await eventually(
          async () =>
            (await audit.eventsFor(started.workflowId)).filter(
              (row) => row.id.startsWith(`${started.workflowId}/${started.runId}/`) && row.system === 'crm',
            ),
          (found) => found.some((row) => row.action === 'stage_verified'),
          "the receiver's stage_verified audit row",
        );
        const deliveries = rows.filter((row) => row.action === 'disable_login' || row.action === 'revoke_sessions');
        assert.deepEqual(
          deliveries.map((row) => [row.action, row.outcome, (row.details as { jti?: string }).jti]).sort(),
          forRun
            .map((e) => [
              e.eventType === SSF_EVENT_TYPES['account-disabled'] ? 'disable_login' : 'revoke_sessions',
              'done',
              e.jti,
            ])
            .sort(),
        );
        // The activity's retry sent the same SET: the same jti twice, accepted once, two attempts audited.
        const disabled = forRun.find((e) => e.eventType === SSF_EVENT_TYPES['account-disabled'])!;
        assert.deepEqual(
          receiver.state.deliveries.filter((d) => d.jti === disabled.jti).map((d) => d.status),
          [503, 202],
        );
        const disableRow = deliveries.find((row) => row.action === 'disable_login');
        assert.equal((disableRow?.details as { attempts?: number }).attempts, 2);
        const verified = rows.find((row) => row.action === 'stage_verified');
        assert.deepEqual((verified?.details as { leftovers?: string[] }).leftovers, []);
        // A rescinded termination: the receiver is told the account is enabled again, in the same txn.
        await sendCommand(env.client, employeeId, 'cancel', { by: 'hr-system', reason: 'termination rescinded' });
        await handle.result();
        const enabled = receiver.state.accepted.filter(
          (e) => e.claims.txn === started.runId && e.eventType === SSF_EVENT_TYPES['account-enabled'],
        );
        assert.equal(enabled.length, 1);
        assert.deepEqual(enabled[0]!.subId, { format: 'email', email });
      });
    });
  });
});

const pemOf = (privateKey: KeyObject): string => privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
const generatePem = (): string => pemOf(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
