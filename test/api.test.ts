/**
 * The HTTP API on the Temporal dev server with a worker, real slapd and PostgreSQL: signed HR
 * deliveries start exactly one offboarding however often they are replayed, rejected ones leave
 * one audit row and nothing else, and every endpoint answers each role as the role matrix says.
 * Sample people: E1029 (replays), E1030 (rescinded), E1038 (holds), E1039 (BambooHR), E1040
 * (never offboarded: rejections, and the role matrix's "allowed but not found").
 */
import assert from 'node:assert/strict';
import { createHmac, generateKeyPairSync, randomBytes, randomUUID, sign as ed25519Sign } from 'node:crypto';
import { execFile } from 'node:child_process';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import type pg from 'pg';
import { pino } from 'pino';
import { Webhook } from 'standardwebhooks';
import { apiConfigSchema, type ApiConfigInput } from '../client/http/auth.js';
import { HR_EVENTS_MIGRATIONS } from '../client/http/hr-events-store.js';
import { buildApi, registeredRoutes, startApi, type RunningApi } from '../client/http/server.js';
import type { Policy } from '../model/policy.js';
import { createPool } from '../workers/database.js';
import { startTemporalDevServer, type TemporalDevServer } from '../scripts/services.js';
import { createOffboardingWorker } from '../workers/create-worker.js';
import type { OffboardingStatus } from '../workflows/messages.js';
import {
  canBind,
  directoryState,
  eventually,
  installRuntime,
  sharedPool,
  testConfig,
  workflowBundle,
} from './helpers/environment.js';

const whsec = () => `whsec_${randomBytes(32).toString('base64')}`;
const SECRET_CURRENT = whsec();
const SECRET_NEXT = whsec(); // being rotated in: both are accepted
const SECRET_UNKNOWN = whsec();
const SECRET_BARE = randomBytes(32).toString('base64'); // configured without the whsec_ prefix
// A sender that signs with ed25519 (v1a): the API holds only the public key.
const ED25519 = generateKeyPairSync('ed25519');
const ED25519_PUBLIC = `whpk_${Buffer.from(ED25519.publicKey.export({ format: 'jwk' }).x!, 'base64url').toString('base64')}`;
const signV1a = (id: string, timestamp: number, body: string) =>
  `v1a,${ed25519Sign(null, Buffer.from(`${id}.${timestamp}.${body}`), ED25519.privateKey).toString('base64')}`;
const BAMBOOHR_SECRET = randomBytes(24).toString('hex');
const TOKENS = {
  'hr-system': randomBytes(32).toString('base64url'),
  manager: randomBytes(32).toString('base64url'),
  security: randomBytes(32).toString('base64url'),
  auditor: randomBytes(32).toString('base64url'),
};
const API_CONFIG: ApiConfigInput = {
  tokens: [
    { subject: 'hr-bot', role: 'hr-system', token: TOKENS['hr-system'] },
    { subject: 'mgr-dana', role: 'manager', token: TOKENS.manager, reports: ['E1038', 'E1040'] },
    { subject: 'sec-oncall', role: 'security', token: TOKENS.security },
    { subject: 'audit-kim', role: 'auditor', token: TOKENS.auditor },
  ],
  webhookSecrets: [SECRET_CURRENT, SECRET_NEXT, SECRET_BARE],
  webhookPublicKeys: [ED25519_PUBLIC],
  bamboohrSecret: BAMBOOHR_SECRET,
};

const nowSeconds = () => Math.floor(Date.now() / 1000);
const sign = (secret: string, id: string, timestamp: number, body: string) =>
  new Webhook(secret).sign(id, new Date(timestamp * 1000), body);

/** Standard Webhooks headers for a body: signed with the current secret unless told otherwise. */
function signedHeaders(
  body: string,
  options: { id?: string; timestamp?: number; signature?: (id: string, ts: number) => string } = {},
) {
  const id = options.id ?? `msg_${randomUUID()}`;
  const timestamp = options.timestamp ?? nowSeconds();
  const signature = options.signature ? options.signature(id, timestamp) : sign(SECRET_CURRENT, id, timestamp, body);
  return {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': signature,
  } as Record<string, string>;
}

const hrEvent = (fields: Record<string, unknown>) =>
  JSON.stringify({ eventId: `hris-${randomUUID()}`, effectiveAt: new Date().toISOString(), ...fields });

describe('HTTP API: HR webhooks and the operator interface (Temporal dev server, slapd, PostgreSQL)', function () {
  this.timeout(60_000);
  let server: TemporalDevServer;
  let client: Client;
  let nativeConnection: NativeConnection;
  let worker: Worker;
  let running: Promise<void>;
  let pool: pg.Pool;
  let api: RunningApi;
  let e1029WebhookId: string;
  let policy: Policy;

  before(async function () {
    this.timeout(120_000);
    installRuntime();
    const started = await Promise.all([
      startTemporalDevServer({ headless: true }),
      sharedPool(),
      workflowBundle(),
      testConfig(),
    ]);
    [server, pool] = started;
    policy = started[3].policy;
    for (const statement of HR_EVENTS_MIGRATIONS) await pool.query(statement);
    client = new Client({ connection: await Connection.connect({ address: server.address }) });
    nativeConnection = await NativeConnection.connect({ address: server.address });
    // A private dev server: the worker takes the default queue, where the API starts offboardings.
    worker = await createOffboardingWorker({
      connection: nativeConnection,
      namespace: 'default',
      config: started[3],
      pool,
      taskQueue: 'offboarding',
      workflowBundle: started[2],
    });
    running = worker.run();
    api = await startApi(
      { client, pool, config: apiConfigSchema.parse(API_CONFIG), policy, logger: pino({ level: 'silent' }) },
      { host: '127.0.0.1', port: 0 },
    );
  });

  after(async function () {
    await api?.close();
    worker?.shutdown();
    await running;
    await nativeConnection?.close();
    await client?.connection.close();
    await server?.stop();
  });

  async function call(
    method: string,
    path: string,
    options: { headers?: Record<string, string>; body?: string | Buffer; token?: string } = {},
  ) {
    const headers = { ...options.headers, ...(options.token ? { authorization: `Bearer ${options.token}` } : {}) };
    const response = await fetch(`${api.url}${path}`, { method, headers, body: options.body });
    const text = await response.text();
    return {
      status: response.status,
      headers: response.headers,
      body: (text ? JSON.parse(text) : null) as Record<string, unknown> & {
        errors?: { path: string; message: string }[];
      },
    };
  }
  const deliver = (body: string | Buffer, headers: Record<string, string>) =>
    call('POST', '/v1/hr/events', { body, headers });
  const command = (token: string, employeeId: string, name: string, body: unknown) =>
    call('POST', `/v1/offboardings/${employeeId}/${name}`, {
      token,
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    });

  const rejectionsFor = async (webhookId: string) =>
    (
      await pool.query<{
        employee_id: string;
        offboarding_id: string;
        actor: string;
        details: Record<string, unknown>;
      }>(
        `SELECT employee_id, offboarding_id, actor, details FROM audit_events WHERE action = 'hr_event_rejected' AND details->>'webhookId' = $1`,
        [webhookId],
      )
    ).rows;
  const hrRows = async (where: string, value: string) =>
    (await pool.query(`SELECT * FROM hr_events WHERE ${where} = $1`, [value])).rows;
  const noWorkflowFor = (employeeId: string) =>
    assert.rejects(
      client.workflow.getHandle(`offboarding-${employeeId}`).describe(),
      /not found/i,
      `no offboarding for ${employeeId}`,
    );
  const runsOf = async (workflowId: string) => {
    const runs: string[] = [];
    for await (const execution of client.workflow.list({ query: `WorkflowId = "${workflowId}"` }))
      runs.push(execution.runId);
    return runs;
  };
  const statusOf = (employeeId: string) =>
    client.workflow.getHandle(`offboarding-${employeeId}`).query<OffboardingStatus>('status');

  it('one delivery replayed 1,000 times, and the same event under a new webhook-id, start exactly one offboarding', async () => {
    const body = hrEvent({ type: 'termination', employeeId: 'E1029', reason: 'involuntary' });
    const { eventId } = JSON.parse(body) as { eventId: string };
    const headers = signedHeaders(body);
    e1029WebhookId = headers['webhook-id']!;

    const answers: Awaited<ReturnType<typeof deliver>>[] = [];
    for (let batch = 0; batch < 10; batch += 1)
      answers.push(...(await Promise.all(Array.from({ length: 100 }, () => deliver(body, headers)))));
    assert.deepEqual([...new Set(answers.map((a) => a.status))], [202]);
    assert.deepEqual([...new Set(answers.map((a) => a.body.workflowId))], ['offboarding-E1029']);
    assert.equal(answers.filter((a) => a.body.duplicate === false).length, 1, 'one delivery started it');
    assert.equal(answers.find((a) => a.body.duplicate === false)?.body.outcome, 'started');

    const resent = await deliver(body, signedHeaders(body));
    assert.deepEqual(
      [resent.status, resent.body.duplicate, resent.body.workflowId, resent.body.outcome],
      [202, true, 'offboarding-E1029', 'started'],
    );

    assert.equal((await hrRows('event_id', eventId)).length, 1);
    assert.equal((await hrRows('employee_id', 'E1029')).length, 1);
    assert.equal(
      (
        await eventually(
          () => runsOf('offboarding-E1029'),
          (runs) => runs.length > 0,
          'the visibility record',
        )
      ).length,
      1,
      'one run in Temporal',
    );
    await eventually(
      () => statusOf('E1029'),
      (s) => s.stages[0]?.finishedAt !== undefined,
      "E1029's revoke stage",
    );
    assert.equal(await canBind('E1029'), false, 'E1029 can no longer log in');
    assert.deepEqual((await directoryState('E1029')).groups, []);
    const started = (
      await pool.query(
        `SELECT 1 FROM audit_events WHERE offboarding_id = 'offboarding-E1029' AND action = 'offboarding_started'`,
      )
    ).rowCount;
    assert.equal(started, 1);
  });

  it('rejects bad signatures (tampered, wrong secret, stale, future, missing, re-serialised) with 401, one audit row each and nothing started', async () => {
    const event = {
      eventId: `hris-${randomUUID()}`,
      type: 'termination',
      employeeId: 'E1040',
      reason: 'involuntary',
      effectiveAt: new Date().toISOString(),
    };
    const body = JSON.stringify(event);
    const vectors: [string, () => { body: string; headers: Record<string, string> }][] = [
      ['tampered body', () => ({ body: body.replace('involuntary', 'security'), headers: signedHeaders(body) })],
      [
        'wrong secret',
        () => ({ body, headers: signedHeaders(body, { signature: (id, ts) => sign(SECRET_UNKNOWN, id, ts, body) }) }),
      ],
      ['timestamp 301 s old', () => ({ body, headers: signedHeaders(body, { timestamp: nowSeconds() - 301 }) })],
      ['timestamp 301 s ahead', () => ({ body, headers: signedHeaders(body, { timestamp: nowSeconds() + 301 }) })],
      [
        'missing webhook-signature',
        () => {
          const headers = signedHeaders(body);
          delete headers['webhook-signature'];
          return { body, headers };
        },
      ],
      [
        'missing webhook-timestamp',
        () => {
          const headers = signedHeaders(body);
          delete headers['webhook-timestamp'];
          return { body, headers };
        },
      ],
      [
        'the same JSON re-serialised (other bytes)',
        () => ({ body: JSON.stringify(event, null, 2), headers: signedHeaders(body) }),
      ],
      [
        'a signature for another webhook-id',
        () => ({
          body,
          headers: signedHeaders(body, { signature: (_id, ts) => sign(SECRET_CURRENT, 'msg_other', ts, body) }),
        }),
      ],
      [
        'a v1a signature over another body',
        () => ({ body, headers: signedHeaders(body, { signature: (id, ts) => signV1a(id, ts, `${body} `) }) }),
      ],
      [
        'an unknown signature version',
        () => ({
          body,
          headers: signedHeaders(body, {
            signature: (id, ts) => sign(SECRET_CURRENT, id, ts, body).replace(/^v1,/, 'v1a,'),
          }),
        }),
      ],
    ];
    for (const [name, make] of vectors) {
      const { body: sent, headers } = make();
      const answer = await deliver(sent, headers);
      assert.equal(answer.status, 401, name);
      assert.equal(answer.body.error, 'unauthorized', name);
      const rows = await rejectionsFor(headers['webhook-id']!);
      assert.equal(rows.length, 1, `${name}: one hr_event_rejected row`);
      assert.deepEqual(
        [rows[0]!.offboarding_id, rows[0]!.employee_id, rows[0]!.details.status],
        ['hr-webhook', 'E1040', 401],
        name,
      );
      const recorded = JSON.stringify(rows[0]);
      assert.ok(
        !recorded.includes(event.eventId) && !recorded.includes(headers['webhook-signature']?.slice(3) ?? '\u0000'),
        `${name}: neither body nor signature in the audit`,
      );
    }
    const missingIdBefore = (
      await pool.query(
        `SELECT 1 FROM audit_events WHERE action = 'hr_event_rejected' AND details->>'webhookId' IS NULL`,
      )
    ).rowCount!;
    const withoutId = signedHeaders(body);
    delete withoutId['webhook-id'];
    assert.equal((await deliver(body, withoutId)).status, 401, 'missing webhook-id');
    assert.equal(
      (
        await pool.query(
          `SELECT 1 FROM audit_events WHERE action = 'hr_event_rejected' AND details->>'webhookId' IS NULL`,
        )
      ).rowCount,
      missingIdBefore + 1,
    );
    assert.equal((await hrRows('employee_id', 'E1040')).length, 0);
    await noWorkflowFor('E1040');
  });

  it('accepts any one valid signature under any configured secret (rotation) and ±299 s of skew; a rescinded termination with nothing running starts nothing', async () => {
    const rescind = () => hrEvent({ type: 'termination_rescinded', employeeId: 'E1040' });
    const accepted: [string, (body: string) => Record<string, string>][] = [
      ['the current secret', (body) => signedHeaders(body)],
      [
        'the secret being rotated in',
        (body) => signedHeaders(body, { signature: (id, ts) => sign(SECRET_NEXT, id, ts, body) }),
      ],
      [
        'one valid among several',
        (body) =>
          signedHeaders(body, {
            signature: (id, ts) =>
              [
                `v1,${randomBytes(32).toString('base64')}`,
                sign(SECRET_UNKNOWN, id, ts, body),
                sign(SECRET_NEXT, id, ts, body),
                'v2,whatever',
              ].join(' '),
          }),
      ],
      [
        'a secret configured without the whsec_ prefix',
        (body) => signedHeaders(body, { signature: (id, ts) => sign(SECRET_BARE, id, ts, body) }),
      ],
      [
        'a v1a (ed25519) signature under the configured public key',
        (body) => signedHeaders(body, { signature: (id, ts) => signV1a(id, ts, body) }),
      ],
      [
        'v1a beside an unknown v1',
        (body) =>
          signedHeaders(body, {
            signature: (id, ts) => `${sign(SECRET_UNKNOWN, id, ts, body)} ${signV1a(id, ts, body)}`,
          }),
      ],
      ['a timestamp 299 s old', (body) => signedHeaders(body, { timestamp: nowSeconds() - 299 })],
      ['a timestamp 299 s ahead', (body) => signedHeaders(body, { timestamp: nowSeconds() + 299 })],
    ];
    for (const [name, headersFor] of accepted) {
      const body = rescind();
      const answer = await deliver(body, headersFor(body));
      assert.equal(answer.status, 202, `${name}: ${JSON.stringify(answer.body)}`);
      assert.deepEqual(
        [answer.body.workflowId, answer.body.duplicate, answer.body.outcome],
        ['offboarding-E1040', false, 'nothing_running'],
        name,
      );
      assert.match(String(answer.body.detail), /no offboarding for E1040/);
    }
    await noWorkflowFor('E1040');
  });

  it("the README's curl + openssl example is accepted", async () => {
    const body = hrEvent({ type: 'termination_rescinded', employeeId: 'E1040' });
    const script = [
      'set -euo pipefail',
      'ID="msg_$(openssl rand -hex 12)"',
      'TS=$(date +%s)',
      "KEY=$(printf '%s' \"${SECRET#whsec_}\" | base64 -d | od -An -v -tx1 | tr -d ' \\n')",
      'SIG=$(printf \'%s.%s.%s\' "$ID" "$TS" "$BODY" | openssl dgst -sha256 -mac HMAC -macopt "hexkey:$KEY" -binary | base64)',
      'curl -sS -X POST "$URL/v1/hr/events" -H \'content-type: application/json\' -H "webhook-id: $ID" -H "webhook-timestamp: $TS" -H "webhook-signature: v1,$SIG" --data-binary "$BODY"',
    ].join('\n');
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        'bash',
        ['-c', script],
        { env: { ...process.env, SECRET: SECRET_NEXT, BODY: body, URL: api.url } },
        (err, stdout, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve(stdout)),
      ),
    );
    assert.deepEqual(JSON.parse(out), {
      workflowId: 'offboarding-E1040',
      duplicate: false,
      outcome: 'nothing_running',
      detail: 'no offboarding for E1040 (workflow offboarding-E1040 not found)',
    });
  });

  it('lists every invalid field in one 400; refuses bad JSON, 413 and 415; each rejection is one audit row and starts nothing', async () => {
    const cases: {
      name: string;
      body: string | Buffer;
      contentType?: string;
      status: number;
      employeeId: string;
      paths?: string[];
    }[] = [
      {
        name: 'every field wrong',
        body: JSON.stringify({
          eventId: '',
          type: 'fired',
          employeeId: 'E1040)(uid=*',
          email: 'not-an-email',
          effectiveAt: 'tomorrow',
          employmentType: 'intern',
          managerEmail: 'the boss',
        }),
        status: 400,
        employeeId: 'unknown',
        paths: ['effectiveAt', 'email', 'employeeId', 'employmentType', 'eventId', 'managerEmail', 'type'],
      },
      {
        name: 'a termination without a reason, and no time zone',
        body: JSON.stringify({
          eventId: 'hris-x1',
          type: 'termination',
          employeeId: 'E1040',
          effectiveAt: '2030-01-01T00:00:00',
        }),
        status: 400,
        employeeId: 'E1040',
        paths: ['effectiveAt', 'reason'],
      },
      { name: 'not JSON', body: '{"employeeId": "E1040",', status: 400, employeeId: 'unknown', paths: ['(root)'] },
      {
        name: 'over 256 KiB',
        body: JSON.stringify({ employeeId: 'E1040', pad: 'x'.repeat(256 * 1024) }),
        status: 413,
        employeeId: 'unknown',
      },
      {
        name: 'not application/json',
        body: JSON.stringify({ employeeId: 'E1040' }),
        contentType: 'text/plain',
        status: 415,
        employeeId: 'E1040',
      },
    ];
    for (const c of cases) {
      const headers = signedHeaders(c.body.toString());
      if (c.contentType) headers['content-type'] = c.contentType;
      const answer = await deliver(c.body, headers);
      assert.equal(answer.status, c.status, `${c.name}: ${JSON.stringify(answer.body)}`);
      assert.equal(typeof answer.body.error, 'string');
      assert.equal(typeof answer.body.detail, 'string');
      if (c.paths) assert.deepEqual(answer.body.errors!.map((e) => e.path).sort(), c.paths, c.name);
      const rows = await rejectionsFor(headers['webhook-id']!);
      assert.equal(rows.length, 1, `${c.name}: one hr_event_rejected row`);
      assert.deepEqual([rows[0]!.employee_id, rows[0]!.details.status], [c.employeeId, c.status], c.name);
      assert.ok(!JSON.stringify(rows[0]!.details).includes('not-an-email'), 'no body content in the audit');
      assert.equal((await hrRows('webhook_id', headers['webhook-id']!)).length, 0);
    }
    await noWorkflowFor('E1040');
  });

  it('a rescinded termination cancels the running offboarding and re-enables the login; replaying it cancels nothing twice', async () => {
    const groupsBefore = (await directoryState('E1030')).groups;
    assert.equal(await canBind('E1030'), true);
    const termination = hrEvent({ type: 'termination', employeeId: 'E1030', reason: 'voluntary' });
    assert.equal((await deliver(termination, signedHeaders(termination))).body.outcome, 'started');
    await eventually(
      () => canBind('E1030'),
      (can) => !can,
      'E1030 disabled (bind fails)',
    );

    const rescind = hrEvent({ type: 'termination_rescinded', employeeId: 'E1030' });
    const headers = signedHeaders(rescind);
    const answer = await deliver(rescind, headers);
    assert.deepEqual(
      [answer.status, answer.body.workflowId, answer.body.duplicate, answer.body.outcome],
      [202, 'offboarding-E1030', false, 'cancelled'],
    );
    const replay = await deliver(rescind, headers);
    assert.deepEqual([replay.status, replay.body.duplicate, replay.body.outcome], [202, true, 'cancelled']);

    await eventually(
      () => canBind('E1030'),
      (can) => can,
      'E1030 enabled again (bind succeeds)',
    );
    assert.deepEqual((await directoryState('E1030')).groups, groupsBefore, 'groups untouched');
    const status = await eventually(
      () => statusOf('E1030'),
      (s) => s.phase === 'cancelled',
      'the cancelled phase',
    );
    assert.equal(status.cancelled?.by, 'hr-system');
    const cancels = await pool.query(
      `SELECT actor FROM audit_events WHERE offboarding_id = 'offboarding-E1030' AND action = 'cancel_requested'`,
    );
    assert.deepEqual(cancels.rows, [{ actor: 'hr-system' }]);
  });

  it("one person, one id: a delivery for e1021 joins E1021's offboarding, is read and listed under E1021, and its rescind cancels it", async () => {
    // Future-dated: pre-flight only reads, so the sample person is left as it was.
    const effectiveAt = new Date(Date.now() + 10 * 86_400_000).toISOString();
    const first = hrEvent({ type: 'termination', employeeId: 'E1021', reason: 'voluntary', effectiveAt });
    const started = await deliver(first, signedHeaders(first));
    assert.deepEqual(
      [started.status, started.body.workflowId, started.body.outcome],
      [202, 'offboarding-E1021', 'started'],
    );

    const lower = hrEvent({ type: 'termination', employeeId: 'e1021', reason: 'voluntary', effectiveAt });
    const joined = await deliver(lower, signedHeaders(lower));
    assert.deepEqual(
      [joined.status, joined.body.workflowId, joined.body.outcome],
      [202, 'offboarding-E1021', 'joined'],
    );
    await noWorkflowFor('e1021');
    const { eventId: lowerEventId } = JSON.parse(lower) as { eventId: string };
    assert.deepEqual(
      (await hrRows('event_id', lowerEventId)).map((row: { employee_id: string }) => row.employee_id),
      ['E1021'],
      'the dedupe record carries the canonical id',
    );
    const status = await eventually(
      () => statusOf('E1021'),
      (s) => s.laterRequests.length === 1,
      'the joined event in the status',
    );
    assert.equal(status.employeeId, 'E1021');
    assert.equal(status.laterRequests[0]!.outcome, 'joined');

    // The operator's paths and the manager's reports take either case too.
    const read = await call('GET', '/v1/offboardings/e1021', { token: TOKENS.security });
    assert.deepEqual([read.status, read.body.workflowId], [200, 'offboarding-E1021']);
    const listed = await eventually(
      () => call('GET', '/v1/offboardings?employeeId=e1021', { token: TOKENS.security }),
      (answer) => (answer.body.offboardings as unknown[] | undefined)?.length === 1,
      'the search attribute in the list',
    );
    assert.deepEqual(
      (listed.body.offboardings as { workflowId: string; employeeId: string }[]).map((o) => [
        o.workflowId,
        o.employeeId,
      ]),
      [['offboarding-E1021', 'E1021']],
    );

    const rescind = hrEvent({ type: 'termination_rescinded', employeeId: 'e1021' });
    const cancelled = await deliver(rescind, signedHeaders(rescind));
    assert.deepEqual(
      [cancelled.status, cancelled.body.workflowId, cancelled.body.outcome],
      [202, 'offboarding-E1021', 'cancelled'],
    );
    await eventually(
      () => statusOf('E1021'),
      (s) => s.phase === 'cancelled',
      'the cancelled offboarding',
    );
  });

  it("a role change to a role the worker's policy does not know is refused with 400 naming newRole, and starts nothing", async () => {
    const body = hrEvent({ type: 'role_change', employeeId: 'E1040', newRole: 'astronaut' });
    const headers = signedHeaders(body);
    const answer = await deliver(body, headers);
    assert.equal(answer.status, 400);
    assert.equal(answer.body.error, 'invalid_event');
    assert.deepEqual(
      answer.body.errors?.map((e) => e.path),
      ['newRole'],
    );
    assert.match(answer.body.errors![0]!.message, /"astronaut" is not in policy\.roles \(known: engineer\)/);
    const rows = await rejectionsFor(headers['webhook-id']!);
    assert.deepEqual(
      rows.map((r) => [r.employee_id, r.details.status]),
      [['E1040', 400]],
    );
    const { eventId } = JSON.parse(body) as { eventId: string };
    assert.equal((await hrRows('event_id', eventId)).length, 0, 'no dedupe record: a corrected event is acted on');
    assert.equal((await hrRows('webhook_id', headers['webhook-id']!)).length, 0);
    await noWorkflowFor('E1040');
  });

  it('BambooHR: a signed employee.updated with a termination field starts a voluntary offboarding once; other changes are ignored', async () => {
    const payload = (changedFields: string[]) =>
      JSON.stringify({
        type: 'employee.updated',
        timestamp: new Date().toISOString().replace(/\.\d{3}Z$/, '+0000'),
        data: { companyId: '12345', employeeId: 'E1039', changedFields },
      });
    const bamboo = (body: string, secret = BAMBOOHR_SECRET) => {
      const timestamp = String(nowSeconds());
      const signature = createHmac('sha256', secret)
        .update(body + timestamp)
        .digest('hex');
      return call('POST', '/v1/hr/bamboohr', {
        body,
        headers: {
          'content-type': 'application/json',
          'x-bamboohr-timestamp': timestamp,
          'x-bamboohr-signature': signature,
        },
      });
    };
    const ignored = await bamboo(payload(['firstName', 'jobTitle']));
    assert.deepEqual([ignored.status, ignored.body.outcome, ignored.body.workflowId], [202, 'ignored', null]);
    await noWorkflowFor('E1039');

    const body = payload(['status', 'firstName']);
    const forged = await bamboo(body, 'not-the-key');
    assert.equal(forged.status, 401);
    const answer = await bamboo(body);
    assert.deepEqual(
      [answer.status, answer.body.workflowId, answer.body.duplicate, answer.body.outcome],
      [202, 'offboarding-E1039', false, 'started'],
    );
    const retried = await bamboo(body); // BambooHR's retry: same body, a new timestamp and signature
    assert.deepEqual([retried.status, retried.body.duplicate], [202, true]);
    assert.equal((await hrRows('employee_id', 'E1039')).length, 1);
    const status = await eventually(
      () => statusOf('E1039'),
      (s) => s.playbook !== null,
      'the plan',
    );
    assert.equal(status.playbook, 'voluntary');
    const started = await pool.query(
      `SELECT actor, details FROM audit_events WHERE offboarding_id = 'offboarding-E1039' AND action = 'offboarding_started'`,
    );
    assert.equal(started.rows[0].actor, 'hr-system:bamboohr');
    assert.equal(started.rows[0].details.reason, 'voluntary');
  });

  it("a manager holds and releases a report, is refused for anyone else; every command is attributed to the token's subject", async () => {
    const future = new Date(Date.now() + 24 * 3600_000).toISOString();
    const body = hrEvent({ type: 'termination', employeeId: 'E1038', reason: 'voluntary', effectiveAt: future });
    assert.equal(
      (await deliver(body, signedHeaders(body))).body.outcome,
      'started',
      'a future-dated event just starts',
    );
    await eventually(
      () => statusOf('E1038'),
      (s) => s.phase === 'waiting',
      'E1038 waiting for its effective time',
    );
    // HR moves the last day an hour earlier: a new event, which replaces the running plan.
    const sooner = hrEvent({
      type: 'termination',
      employeeId: 'E1038',
      reason: 'voluntary',
      effectiveAt: new Date(Date.parse(future) - 3600_000).toISOString(),
    });
    const moved = await deliver(sooner, signedHeaders(sooner));
    assert.deepEqual(
      [moved.status, moved.body.workflowId, moved.body.outcome],
      [202, 'offboarding-E1038', 'superseded'],
    );
    assert.match(String(moved.body.detail), /the effective time moves earlier/);
    assert.equal((await statusOf('E1038')).effectiveAt, JSON.parse(sooner).effectiveAt);

    const held = await command(TOKENS.manager, 'E1038', 'hold', { reason: 'handover to the new lead' });
    assert.deepEqual([held.status, held.body.by, held.body.result], [200, 'mgr-dana', 'held until released']);
    assert.equal((await statusOf('E1038')).holds[0]?.by, 'mgr-dana');
    const spoofed = await command(TOKENS.manager, 'E1038', 'hold', { reason: 'x', by: 'sec-oncall' });
    assert.equal(spoofed.status, 400, '`by` comes from the token only');
    assert.equal((await command(TOKENS.manager, 'E1039', 'hold', { reason: 'not my report' })).status, 403);
    assert.equal((await command(TOKENS.manager, 'E1038', 'expedite', { reason: 'no' })).status, 403);

    const managerList = await call('GET', '/v1/offboardings', { token: TOKENS.manager });
    assert.deepEqual(
      (managerList.body.offboardings as { employeeId: string }[]).map((o) => o.employeeId),
      ['E1038'],
      'a manager lists their reports only',
    );
    const heldList = await eventually(
      () => call('GET', '/v1/offboardings?held=true&state=running', { token: TOKENS.auditor }),
      (r) => (r.body.offboardings as unknown[]).length > 0,
      'the held filter',
    );
    assert.deepEqual(
      (heldList.body.offboardings as { workflowId: string; held: boolean }[]).map((o) => [o.workflowId, o.held]),
      [['offboarding-E1038', true]],
    );

    assert.equal((await command(TOKENS.manager, 'E1038', 'release', {})).status, 200);
    const again = await command(TOKENS.manager, 'E1038', 'release', {});
    assert.deepEqual([again.status, again.body.detail], [409, 'release: there is no hold to release']);

    const cancelled = await command(TOKENS.security, 'E1038', 'cancel', { reason: 'HR withdrew the notice by phone' });
    assert.deepEqual([cancelled.status, cancelled.body.by], [200, 'sec-oncall']);
    assert.equal((await command(TOKENS.security, 'E1038', 'hold', { reason: 'too late' })).status, 409);

    // The audit row of a command is written by an activity just after the Update answers.
    const commandRows = (body: Record<string, unknown>) =>
      (body.audit as { action: string; actor: string }[])
        .filter((e) => ['hold_placed', 'hold_released', 'cancel_requested'].includes(e.action))
        .map((e) => [e.action, e.actor]);
    const detail = await eventually(
      () => call('GET', '/v1/offboardings/E1038', { token: TOKENS.auditor }),
      (d) => d.status === 200 && commandRows(d.body).length === 3,
      'the cancel_requested audit row',
    );
    assert.deepEqual(commandRows(detail.body), [
      ['hold_placed', 'mgr-dana'],
      ['hold_released', 'mgr-dana'],
      ['cancel_requested', 'sec-oncall'],
    ]);
    assert.equal((detail.body.status as OffboardingStatus).cancelled?.by, 'sec-oncall');

    // The auditor's evidence report, from the audit log.
    const html = await fetch(`${api.url}/v1/offboardings/E1038/evidence?format=html`, {
      headers: { authorization: `Bearer ${TOKENS.auditor}` },
    });
    assert.equal(html.status, 200);
    assert.match(html.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await html.text(), /sec-oncall/);
    const csv = await fetch(`${api.url}/v1/offboardings/E1038/evidence?format=csv`, {
      headers: { authorization: `Bearer ${TOKENS.auditor}` },
    });
    assert.match(csv.headers.get('content-type') ?? '', /text\/csv/);
    const json = await call('GET', '/v1/offboardings/E1038/evidence', { token: TOKENS.auditor });
    assert.equal((json.body.cancellation as { by?: string } | null)?.by, 'sec-oncall');
  });

  it('validates list filters strictly, so nothing reaches the visibility query unchecked', async () => {
    for (const query of [
      'stage=waiting%22%20OR%20WorkflowType%20!%3D%20%22x',
      'held=yes',
      'mode=IMMEDIATE',
      'state=Running',
      'employeeId=*',
      'limit=0',
      'stage=a&stage=b',
      'orderBy=StartTime',
    ]) {
      const answer = await call('GET', `/v1/offboardings?${query}`, { token: TOKENS.security });
      assert.equal(answer.status, 400, query);
      assert.ok(Array.isArray(answer.body.errors), query);
    }
    const immediate = await eventually(
      () => call('GET', '/v1/offboardings?mode=immediate&state=running&stage=waiting', { token: TOKENS.security }),
      (r) => (r.body.offboardings as unknown[]).length > 0,
      'the E1029 listing',
    );
    assert.deepEqual(
      (immediate.body.offboardings as { employeeId: string }[]).map((o) => o.employeeId),
      ['E1029'],
    );
  });

  it('answers every role on every endpoint as the role matrix says', async () => {
    // Columns: no token, an unknown token, hr-system, manager (reports E1038, E1040), security, auditor.
    // E1040 has no offboarding: a role that may act gets 404, one that may not gets 403.
    const matrix: [string, string, unknown, number[]][] = [
      ['GET', '/healthz', undefined, [200, 200, 200, 200, 200, 200]],
      ['GET', '/openapi.json', undefined, [200, 200, 200, 200, 200, 200]],
      ['GET', '/v1/offboardings', undefined, [401, 401, 403, 200, 200, 200]],
      ['GET', '/v1/offboardings/E1040', undefined, [401, 401, 403, 404, 404, 404]],
      ['GET', '/v1/offboardings/E1039', undefined, [401, 401, 403, 403, 200, 200]],
      ['POST', '/v1/offboardings/E1040/hold', { reason: 'r' }, [401, 401, 403, 404, 404, 403]],
      ['POST', '/v1/offboardings/E1040/release', {}, [401, 401, 403, 404, 404, 403]],
      ['POST', '/v1/offboardings/E1040/expedite', { reason: 'r' }, [401, 401, 403, 403, 404, 403]],
      ['POST', '/v1/offboardings/E1040/cancel', { reason: 'r' }, [401, 401, 403, 403, 404, 403]],
      ['POST', '/v1/offboardings/E1040/retry', { actionId: 'a' }, [401, 401, 403, 403, 404, 403]],
      ['POST', '/v1/offboardings/E1040/skip', { actionId: 'a', reason: 'r' }, [401, 401, 403, 403, 404, 403]],
      ['GET', '/v1/offboardings/E1040/evidence', undefined, [401, 401, 403, 403, 404, 404]],
      ['GET', '/v1/audit/verify', undefined, [401, 401, 403, 403, 200, 200]],
      ['GET', `/v1/hr/events/${encodeURIComponent(e1029WebhookId)}`, undefined, [401, 401, 200, 403, 200, 200]],
      ['POST', '/v1/hr/events', { employeeId: 'E1040' }, [401, 401, 401, 401, 401, 401]], // signed deliveries only
    ];
    const callers: (string | undefined)[] = [
      undefined,
      randomBytes(32).toString('base64url'),
      TOKENS['hr-system'],
      TOKENS.manager,
      TOKENS.security,
      TOKENS.auditor,
    ];
    const failures: string[] = [];
    for (const [method, path, body, expected] of matrix) {
      for (const [i, token] of callers.entries()) {
        const answer = await call(method, path, {
          token,
          ...(body === undefined
            ? {}
            : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
        });
        if (answer.status !== expected[i])
          failures.push(
            `${method} ${path} as caller ${i}: ${answer.status}, expected ${expected[i]} (${JSON.stringify(answer.body)})`,
          );
        if (
          answer.status === 401 &&
          !path.startsWith('/v1/hr/events') &&
          !/^Bearer realm="offboard"/.test(answer.headers.get('www-authenticate') ?? '')
        )
          failures.push(`${method} ${path}: 401 without WWW-Authenticate: Bearer`);
        if (answer.status >= 400 && (typeof answer.body.error !== 'string' || typeof answer.body.detail !== 'string'))
          failures.push(`${method} ${path}: error body is not { error, detail }`);
      }
    }
    assert.deepEqual(failures, []);
    const verify = await call('GET', '/v1/audit/verify', { token: TOKENS.auditor });
    assert.equal(verify.body.ok, true, 'the audit chain, rejections included, verifies');
  });

  it("with Temporal away a delivery is refused with 503 and nothing is kept, so the sender's retry is acted on", async () => {
    const deadClient = new Client({ connection: Connection.lazy({ address: '127.0.0.1:1', connectTimeout: '1s' }) });
    const dead = buildApi({
      client: deadClient,
      pool,
      config: apiConfigSchema.parse(API_CONFIG),
      policy,
      logger: pino({ level: 'silent' }),
      temporalTimeoutMs: 1_000,
    });
    try {
      const body = hrEvent({ type: 'termination_rescinded', employeeId: 'E1040' });
      const headers = signedHeaders(body);
      const refused = await dead.inject({ method: 'POST', url: '/v1/hr/events', payload: body, headers });
      assert.equal(refused.statusCode, 503, refused.body);
      assert.equal((await hrRows('webhook_id', headers['webhook-id']!)).length, 0, 'nothing kept');
      assert.deepEqual(
        (await rejectionsFor(headers['webhook-id']!)).map((r) => r.details.status),
        [503],
      );
      const command = await dead.inject({
        method: 'POST',
        url: '/v1/offboardings/E1038/hold',
        payload: '{"reason":"r"}',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TOKENS.security}` },
      });
      assert.equal(command.statusCode, 503, 'not a 404 while Temporal is away');

      const retried = await deliver(body, headers); // the same delivery, once Temporal answers again
      assert.deepEqual([retried.status, retried.body.duplicate, retried.body.outcome], [202, false, 'nothing_running']);
    } finally {
      await dead.close();
      await deadClient.connection.close();
    }
  });

  it('refusals beyond the per-sender limit are counted into one summary row, so the append-only audit cannot be flooded', async () => {
    const since = new Date();
    const bounded = buildApi({
      client,
      pool,
      config: apiConfigSchema.parse(API_CONFIG),
      policy,
      logger: pino({ level: 'silent' }),
      rejectionAuditLimit: { limit: 3, windowMs: 500 },
    });
    const forged = async (n: number) => {
      const ids: string[] = [];
      for (let i = 0; i < n; i += 1) {
        const body = hrEvent({ type: 'termination', employeeId: 'E1040', reason: 'security' });
        const headers = signedHeaders(body, { signature: () => 'v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' });
        const answer = await bounded.inject({ method: 'POST', url: '/v1/hr/events', payload: body, headers });
        assert.equal(answer.statusCode, 401, 'every refusal is answered the same, counted or not');
        ids.push(headers['webhook-id']!);
      }
      return ids;
    };
    const summaries = async () =>
      (
        await pool.query<{ details: Record<string, unknown> }>(
          `SELECT details FROM audit_events WHERE action = 'hr_event_rejected' AND details ? 'suppressed' AND occurred_at >= $1 ORDER BY seq`,
          [since],
        )
      ).rows.map((r) => r.details);
    try {
      const first = await forged(10);
      assert.deepEqual(
        await Promise.all(first.map(async (id) => (await rejectionsFor(id)).length)),
        [1, 1, 1, 0, 0, 0, 0, 0, 0, 0],
        'three rows of their own',
      );
      const [summary] = await eventually(
        summaries,
        (rows) => rows.length === 1,
        'the summary row when the window ends',
      );
      assert.deepEqual([summary!.suppressed, summary!.statuses, summary!.remoteAddress], [7, { 401: 7 }, '127.0.0.1']);

      await forged(5); // a new window: three rows, two counted, written when the server closes
    } finally {
      await bounded.close();
    }
    assert.deepEqual(
      (await summaries()).map((row) => row.suppressed),
      [7, 2],
      'nothing counted is lost at shutdown',
    );
    await noWorkflowFor('E1040');
  });

  it('dedupe records past their retention are deleted at start, recorded in the audit; newer ones stay', async () => {
    const insert = (webhookId: string, receivedAt: Date) =>
      pool.query(
        `INSERT INTO hr_events (webhook_id, event_id, source, event_type, employee_id, received_at, workflow_id, outcome) VALUES ($1, $1, 'standard-webhooks', 'termination', 'E1040', $2, 'offboarding-E1040', 'started')`,
        [webhookId, receivedAt],
      );
    const old = `msg_old_${randomUUID()}`;
    const recent = `msg_recent_${randomUUID()}`;
    await insert(old, new Date(Date.now() - 500 * 86_400_000));
    await insert(recent, new Date(Date.now() - 300 * 86_400_000));
    const app = buildApi({
      client,
      pool,
      config: apiConfigSchema.parse(API_CONFIG),
      policy,
      logger: pino({ level: 'silent' }),
    });
    try {
      await app.ready();
      assert.deepEqual(
        [(await hrRows('webhook_id', old)).length, (await hrRows('webhook_id', recent)).length],
        [0, 1],
        'the default retention is 400 days',
      );
      const pruned = await pool.query<{ details: Record<string, unknown> }>(
        `SELECT details FROM audit_events WHERE action = 'hr_events_pruned' ORDER BY seq DESC LIMIT 1`,
      );
      assert.equal(pruned.rows[0]?.details.retentionDays, 400);
      assert.ok(Number(pruned.rows[0]?.details.deleted) >= 1);
    } finally {
      await app.close();
      await pool.query('DELETE FROM hr_events WHERE webhook_id = $1', [recent]);
    }
    assert.throws(() => apiConfigSchema.parse({ ...API_CONFIG, hrEventsRetention: '2d' }), /at least 7d/);
  });

  it('/openapi.json describes every route the server serves, with its security and schemas', async () => {
    const doc = (await call('GET', '/openapi.json')).body as {
      openapi: string;
      paths: Record<
        string,
        Record<string, { security: unknown[]; requestBody?: unknown; responses: Record<string, unknown> }>
      >;
    };
    assert.equal(doc.openapi, '3.1.0');
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();
    const served = registeredRoutes(api.app)
      .map((route) => route.replace(/:(\w+)/g, '{$1}'))
      .sort();
    assert.deepEqual(documented, served);
    assert.deepEqual(doc.paths['/v1/offboardings/{employeeId}/hold']!.post!.security, [{ bearer: [] }]);
    assert.ok(doc.paths['/v1/offboardings/{employeeId}/hold']!.post!.requestBody);
    assert.deepEqual(doc.paths['/v1/hr/events']!.post!.security, [{ standardWebhooks: [] }]);
    assert.deepEqual(doc.paths['/healthz']!.get!.security, []);
    assert.ok(doc.paths['/v1/hr/events']!.post!.responses['202']);
  });

  it('/metrics counts HR deliveries accepted and rejected, and answers by route', async () => {
    const text = await (await fetch(`${api.url}/metrics`)).text();
    assert.match(text, /offboard_hr_events_total\{route="\/v1\/hr\/events",result="accepted"\} [1-9]/);
    assert.match(text, /offboard_hr_events_total\{route="\/v1\/hr\/events",result="rejected"\} [1-9]/);
    assert.match(
      text,
      /offboard_api_requests_total\{route="\/v1\/offboardings\/:employeeId\/:command",status="409"\} [1-9]|offboard_api_requests_total\{route="[^"]+",status="409"\} [1-9]/,
    );
  });

  it('/healthz says which dependency does not answer', async () => {
    assert.deepEqual((await call('GET', '/healthz')).body, { ok: true, temporal: 'ok', database: 'ok' });
    const deadPool = createPool({ url: 'postgres://postgres@127.0.0.1:1/postgres', embedded: false });
    const app = buildApi({
      client,
      pool: deadPool,
      config: apiConfigSchema.parse(API_CONFIG),
      policy,
      logger: pino({ level: 'silent' }),
    });
    try {
      const answer = await app.inject({ method: 'GET', url: '/healthz' });
      assert.equal(answer.statusCode, 503);
      const health = answer.json() as { ok: boolean; temporal: string; database: string };
      assert.deepEqual([health.ok, health.temporal], [false, 'ok']);
      assert.match(health.database, /^unreachable/);
    } finally {
      await app.close();
      await deadPool.end();
    }
  });
});
