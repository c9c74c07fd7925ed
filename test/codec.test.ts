/**
 * Payload encryption: the AES-256-GCM codec and its keyring, the codec server the Temporal UI
 * calls over HTTP, and — end to end on the time-skipping test server against the real slapd —
 * that the history Temporal stores holds no name or email of the person offboarded.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { defaultPayloadConverter, type DataConverter, type Payload } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createCodecHandler, startCodecServer, type CodecServer } from '../client/codec-server.js';
import { sendCommand, startOffboarding } from '../client/temporal.js';
import type { OffboardingRequest } from '../model/request.js';
import { samplePerson } from '../sandbox/org.js';
import {
  createKeyring,
  dataConverterFor,
  EncryptionCodec,
  ENCRYPTED_ENCODING,
  keyringFromEnv,
  KEY_ID_METADATA,
  PayloadCodecError,
  type Keyring,
} from '../workers/codec.js';
import { createOffboardingWorker } from '../workers/create-worker.js';
import type { OffboardingStatus } from '../workflows/messages.js';
import type { offboarding } from '../workflows/offboarding.js';
import {
  directoryState,
  eventually,
  sharedPool,
  skipAhead,
  testConfig,
  timeSkippingEnvironment,
  workflowBundle,
} from './helpers/environment.js';

const text = (bytes: Uint8Array | null | undefined) => Buffer.from(bytes ?? new Uint8Array()).toString('utf8');
const newKey = (id: string) => ({ id, key: new Uint8Array(randomBytes(32)) });
const b64 = (key: Uint8Array) => Buffer.from(key).toString('base64');
const serialized = (payload: Payload) => Buffer.from(proto.temporal.api.common.v1.Payload.encode(payload).finish());

/** Whether `haystack` holds any of `needles`, ignoring case (names appear lower-cased in uids and DNs). */
function findAny(haystack: Uint8Array, needles: string[]): string | undefined {
  const lower = Buffer.from(haystack).toString('latin1').toLowerCase();
  return needles.find((needle) => lower.includes(needle.toLowerCase()));
}

const samples: unknown[] = [
  { employeeId: 'E1001', email: 'ada.lovelace.1@example.org', name: 'Ada Lovelace' },
  'Grace Hopper',
  42,
  null,
  [1, 'two', { three: 3 }],
];
const plainPayloads = () => samples.map((value) => defaultPayloadConverter.toPayload(value));

describe('payload codec (AES-256-GCM)', () => {
  const keyring = createKeyring([newKey('k1')]);
  const codec = new EncryptionCodec(keyring);

  it('round-trips several payloads, metadata and all', async () => {
    const payloads = [...plainPayloads(), defaultPayloadConverter.toPayload(undefined)];
    const decoded = await codec.decode(await codec.encode(payloads));
    assert.equal(decoded.length, payloads.length);
    for (const [i, payload] of payloads.entries()) {
      assert.deepEqual(serialized(decoded[i]!), serialized(payload));
    }
    assert.deepEqual(
      decoded.slice(0, samples.length).map((p) => defaultPayloadConverter.fromPayload(p)),
      samples,
    );
  });

  it('marks encrypted payloads and leaves no plaintext, not even the original encoding', async () => {
    const [encrypted] = await codec.encode([defaultPayloadConverter.toPayload(samples[0])]);
    assert.equal(text(encrypted!.metadata?.encoding), ENCRYPTED_ENCODING);
    assert.equal(text(encrypted!.metadata?.[KEY_ID_METADATA]), 'k1');
    assert.deepEqual(Object.keys(encrypted!.metadata ?? {}).sort(), ['encoding', KEY_ID_METADATA].sort());
    assert.equal(findAny(serialized(encrypted!), ['ada.lovelace', 'Lovelace', 'E1001', 'json/plain']), undefined);
  });

  it('uses a fresh IV for every encode', async () => {
    const payload = defaultPayloadConverter.toPayload('same input');
    const [a, b] = await codec.encode([payload, payload]);
    const [c] = await codec.encode([payload]);
    const ivs = [a, b, c].map((p) => Buffer.from(p!.data!.subarray(0, 12)).toString('hex'));
    assert.equal(new Set(ivs).size, 3, 'three different IVs');
    assert.notDeepEqual(Buffer.from(a!.data!), Buffer.from(c!.data!));
  });

  it('refuses a payload that was altered, in the IV, the ciphertext or the tag', async () => {
    const [encrypted] = await codec.encode([defaultPayloadConverter.toPayload(samples[0])]);
    const length = encrypted!.data!.length;
    for (const index of [0, 20, length - 1]) {
      const data = Uint8Array.from(encrypted!.data!);
      data[index] = data[index]! ^ 0x01;
      await assert.rejects(codec.decode([{ ...encrypted!, data }]), (err: Error) => {
        assert.ok(err instanceof PayloadCodecError);
        assert.match(err.message, /key id "k1" failed authentication: either it was altered/);
        assert.ok(!err.message.includes(b64(keyring.current.key)), 'never the key');
        return true;
      });
    }
    await assert.rejects(codec.decode([{ ...encrypted!, data: encrypted!.data!.subarray(0, 20) }]), /truncated/);
  });

  it('rotates: the new key encrypts, the old key still decrypts what it wrote', async () => {
    const old = newKey('2025-01');
    const fresh = newKey('2025-06');
    const before = new EncryptionCodec(createKeyring([old]));
    const after = new EncryptionCodec(createKeyring([fresh, old]));
    const written = await before.encode(plainPayloads());
    assert.deepEqual(
      (await after.decode(written)).map((p) => defaultPayloadConverter.fromPayload(p)),
      samples,
    );

    const rewritten = await after.encode(plainPayloads());
    assert.ok(rewritten.every((p) => text(p.metadata?.[KEY_ID_METADATA]) === '2025-06'));
    // A key marked current wins over the order.
    const marked = new EncryptionCodec(createKeyring([old, { ...fresh, current: true }]));
    assert.equal(text((await marked.encode(plainPayloads()))[0]!.metadata?.[KEY_ID_METADATA]), '2025-06');
    // History written with both keys decodes in one batch.
    assert.equal((await after.decode([...written, ...rewritten])).length, 2 * samples.length);
  });

  it('names an unknown key id, and never a key', async () => {
    const other = newKey('retired-2023');
    const [foreign] = await new EncryptionCodec(createKeyring([other])).encode([
      defaultPayloadConverter.toPayload('x'),
    ]);
    await assert.rejects(codec.decode([foreign!]), (err: Error) => {
      assert.ok(err instanceof PayloadCodecError);
      assert.match(err.message, /key id "retired-2023", which is not in this keyring \(ids: "k1"\)/);
      assert.match(err.message, /OFFBOARD_PAYLOAD_KEYS/);
      assert.ok(!err.message.includes(b64(other.key)) && !err.message.includes(b64(keyring.current.key)));
      return true;
    });
  });

  it('passes unencrypted payloads (history from before encryption) through unchanged', async () => {
    const mixed = [...plainPayloads(), ...(await codec.encode(plainPayloads()))];
    const decoded = await codec.decode(mixed);
    for (let i = 0; i < samples.length; i++) assert.equal(decoded[i], mixed[i], 'the very same payload');
    assert.deepEqual(
      decoded.map((p) => defaultPayloadConverter.fromPayload(p)),
      [...samples, ...samples],
    );
  });

  it('builds the data converter only when there are keys', () => {
    assert.equal(dataConverterFor(undefined), undefined);
    const converter = dataConverterFor(keyring);
    assert.equal(converter?.payloadCodecs?.length, 1);
    assert.ok(converter?.payloadCodecs?.[0] instanceof EncryptionCodec);
  });
});

describe('keyringFromEnv (OFFBOARD_PAYLOAD_KEYS)', () => {
  const k1 = randomBytes(32).toString('base64');
  const k2 = randomBytes(32).toString('base64');
  const short = randomBytes(16).toString('base64');
  const parse = (value: string | undefined) =>
    keyringFromEnv(value === undefined ? {} : { OFFBOARD_PAYLOAD_KEYS: value });

  /** Asserts the error matches `pattern` and shows none of the key material. */
  const refuses = (value: string, pattern: RegExp) =>
    assert.throws(
      () => parse(value),
      (err: Error) => {
        assert.match(err.message, pattern);
        for (const secret of [k1, k2, short])
          assert.ok(!err.message.includes(secret), `the error shows a key: ${err.message}`);
        return true;
      },
    );

  it('is undefined (no encryption) when unset or blank', () => {
    assert.equal(parse(undefined), undefined);
    assert.equal(parse('  '), undefined);
  });

  it('reads id:base64key entries, the first one current', () => {
    const keyring = parse(` new:${k2} , old:${k1}`) as Keyring;
    assert.equal(keyring.current.id, 'new');
    assert.deepEqual([...keyring.byId.keys()], ['new', 'old']);
    assert.deepEqual(Buffer.from(keyring.byId.get('old')!.key), Buffer.from(k1, 'base64'));
    // URL-safe base64 (no padding) is accepted too.
    assert.equal(parse(`u:${Buffer.from(k1, 'base64').toString('base64url')}`)?.current.id, 'u');
  });

  it('says what is wrong with each entry, without printing a key', () => {
    refuses(k1, /entry 1: is not "id:base64key"/);
    refuses(
      `a:${k1},b:${short}`,
      /entry 2: key "b" is 16 bytes; AES-256 needs exactly 32 bytes — make one with `openssl rand -base64 32`/,
    );
    refuses(`a:${k1},a:${k2}`, /key id "a" appears twice/);
    refuses(`a:not base64!`, /entry 1: key "a" is not base64/);
    refuses(`bad id:${k1}`, /entry 1: a key id must be 1-64 letters/);
    refuses(`a:${k1},`, /entry 2: is not "id:base64key"/);
    refuses(`a:${k1},b:${short}`, /^OFFBOARD_PAYLOAD_KEYS is invalid/);
  });

  it('createKeyring refuses wrong lengths, duplicate ids and two current keys', () => {
    assert.throws(() => createKeyring([]), /at least one key/);
    assert.throws(
      () => createKeyring([{ id: 'a', key: new Uint8Array(16) }]),
      /"a" is 16 bytes; AES-256 needs exactly 32/,
    );
    assert.throws(() => createKeyring([newKey('a'), newKey('a')]), /"a" appears twice/);
    assert.throws(
      () =>
        createKeyring([
          { ...newKey('a'), current: true },
          { ...newKey('b'), current: true },
        ]),
      /several payload keys are marked current/,
    );
  });
});

describe('codec server (HTTP on 127.0.0.1)', () => {
  const UI = 'http://127.0.0.1:8233';
  const TOKEN = randomBytes(32).toString('base64url');
  const AUDITOR_TOKEN = randomBytes(32).toString('base64url');
  const MANAGER_TOKEN = randomBytes(32).toString('base64url');
  const HR_TOKEN = randomBytes(32).toString('base64url');
  // The API's own token list (config api.tokens): the codec server checks the same tokens and roles.
  const apiTokens = [
    { subject: 'it-operator', role: 'security' as const, token: TOKEN },
    { subject: 'auditor-1', role: 'auditor' as const, token: AUDITOR_TOKEN },
    { subject: 'manager-1', role: 'manager' as const, token: MANAGER_TOKEN, reports: ['E1001'] },
    { subject: 'hr', role: 'hr-system' as const, token: HR_TOKEN },
  ];
  const codec = new EncryptionCodec(createKeyring([newKey('k1')]));
  let server: CodecServer;

  interface Answer {
    status: number;
    headers: Record<string, string | string[] | undefined>;
    body: string;
  }

  function call(
    target: CodecServer,
    method: string,
    path: string,
    headers: Record<string, string> = {},
    body?: unknown,
  ): Promise<Answer> {
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port: target.port,
          method,
          path,
          headers: { ...(payload ? { 'Content-Type': 'application/json' } : {}), ...headers },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () =>
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: Buffer.concat(chunks).toString('utf8'),
            }),
          );
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  const asJSON = (payload: Payload) => ({
    metadata: Object.fromEntries(
      Object.entries(payload.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
    ),
    data: Buffer.from(payload.data ?? new Uint8Array()).toString('base64'),
  });
  const auth = { Authorization: `Bearer ${TOKEN}` };

  before(async () => {
    server = await startCodecServer({ codec, allowedOrigin: UI, auth: { apiTokens }, port: 0 });
  });
  after(async () => {
    await server?.close();
  });

  it('encodes and decodes the JSON payloads the UI sends', async () => {
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/codec$/);
    const payloads = plainPayloads().map(asJSON);
    const encoded = await call(server, 'POST', '/codec/encode', { ...auth, 'X-Namespace': 'default' }, { payloads });
    assert.equal(encoded.status, 200, encoded.body);
    const encrypted = (JSON.parse(encoded.body) as { payloads: { metadata: Record<string, string>; data: string }[] })
      .payloads;
    assert.equal(encrypted.length, payloads.length);
    assert.ok(
      encrypted.every((p) => Buffer.from(p.metadata.encoding!, 'base64').toString() === ENCRYPTED_ENCODING),
      'metadata values are base64',
    );
    assert.ok(!encoded.body.includes(payloads[0]!.data), 'no plaintext');

    const decoded = await call(server, 'POST', '/codec/decode', auth, { payloads: encrypted });
    assert.equal(decoded.status, 200, decoded.body);
    assert.deepEqual(JSON.parse(decoded.body), { payloads });
    assert.equal(decoded.headers['content-type'], 'application/json');
  });

  it('refuses every caller without credentials, with or without an Origin', async () => {
    const attempts: Record<string, string>[] = [
      {},
      { Origin: UI },
      { Authorization: 'Bearer wrong-token' },
      { Authorization: `Basic ${TOKEN}` },
      { Cookie: 'offboard-codec-session=made-up' },
    ];
    const [secret] = await codec.encode([defaultPayloadConverter.toPayload({ email: 'ada.lovelace.1@example.org' })]);
    for (const headers of attempts) {
      for (const operation of ['decode', 'encode']) {
        const answer = await call(server, 'POST', `/codec/${operation}`, headers, { payloads: [asJSON(secret!)] });
        assert.equal(answer.status, 401, `${operation} ${JSON.stringify(headers)}`);
        assert.match(String(answer.headers['www-authenticate']), /^Bearer realm="offboard-codec"/);
        assert.ok(!answer.body.includes('payloads'), 'nothing decoded');
      }
    }
  });

  it('refuses an API token whose role may not read every offboarding; security and auditor pass', async () => {
    for (const token of [MANAGER_TOKEN, HR_TOKEN]) {
      const answer = await call(
        server,
        'POST',
        '/codec/decode',
        { Authorization: `Bearer ${token}` },
        { payloads: [] },
      );
      assert.equal(answer.status, 403);
      assert.match(answer.body, /role may not decode payloads.*security or auditor/);
    }
    for (const token of [TOKEN, AUDITOR_TOKEN])
      assert.equal(
        (await call(server, 'POST', '/codec/decode', { Authorization: `Bearer ${token}` }, { payloads: [] })).status,
        200,
      );
    assert.throws(
      () => createCodecHandler({ codec, allowedOrigin: UI, auth: { apiTokens: [apiTokens[2]!] } }),
      /needs credentials to check/,
    );
    assert.throws(() => createCodecHandler({ codec, allowedOrigin: UI, auth: {} }), /needs credentials to check/);
  });

  it('accepts the empty payload list in every shape the CLI and UI send it', async () => {
    // `temporal workflow query` without --input sends `{}`: proto3 JSON leaves an empty list out.
    for (const body of [{}, { payloads: [] }, { payloads: null }]) {
      const answer = await call(server, 'POST', '/codec/decode', auth, body);
      assert.equal(answer.status, 200, `${JSON.stringify(body)}: ${answer.body}`);
      assert.deepEqual(JSON.parse(answer.body), { payloads: [] });
    }
    // A payload with no metadata or no data (proto3 JSON leaves those out too) passes through.
    const answer = await call(server, 'POST', '/codec/decode', auth, { payloads: [{}, { metadata: {} }] });
    assert.equal(answer.status, 200, answer.body);
    assert.deepEqual(JSON.parse(answer.body), {
      payloads: [
        { metadata: {}, data: '' },
        { metadata: {}, data: '' },
      ],
    });
  });

  it('signs a browser in with an API token: a session cookie the UI sends with its calls', async () => {
    const form = await call(server, 'GET', '/codec/login');
    assert.equal(form.status, 200);
    assert.match(form.body, /<form method="post">/);
    const post = (token: string, headers: Record<string, string> = {}) =>
      call(
        server,
        'POST',
        '/codec/login',
        { 'Content-Type': 'application/x-www-form-urlencoded', ...headers },
        new URLSearchParams({ token }).toString(),
      );
    const wrong = await post('not-a-token');
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers['set-cookie'], undefined);
    const manager = await post(MANAGER_TOKEN);
    assert.equal(manager.status, 403);
    assert.equal(manager.headers['set-cookie'], undefined);
    // A form posted from another site (login CSRF) is refused.
    assert.equal((await post(TOKEN, { Origin: 'http://evil.example' })).status, 403);

    const signedIn = await post(TOKEN, { Origin: `http://127.0.0.1:${server.port}` });
    assert.equal(signedIn.status, 200, signedIn.body);
    const cookie = String(signedIn.headers['set-cookie']);
    assert.match(
      cookie,
      /^offboard-codec-session=[A-Za-z0-9_-]{43}; Path=\/codec; HttpOnly; SameSite=Strict; Max-Age=28800$/,
    );
    const session = cookie.split(';')[0]!;
    const [encrypted] = await codec.encode([defaultPayloadConverter.toPayload('Grace Hopper')]);
    const decoded = await call(
      server,
      'POST',
      '/codec/decode',
      { Origin: UI, Cookie: session },
      { payloads: [asJSON(encrypted!)] },
    );
    assert.equal(decoded.status, 200, decoded.body);
    assert.equal(decoded.headers['access-control-allow-origin'], UI);
    assert.equal(decoded.headers['access-control-allow-credentials'], 'true');
    assert.deepEqual(JSON.parse(decoded.body), {
      payloads: [asJSON(defaultPayloadConverter.toPayload('Grace Hopper'))],
    });
    // The same cookie from a page on another origin is refused before anything is decoded.
    const elsewhere = await call(
      server,
      'POST',
      '/codec/decode',
      { Origin: 'http://evil.example', Cookie: session },
      { payloads: [asJSON(encrypted!)] },
    );
    assert.equal(elsewhere.status, 403);
  });

  it('checks a forwarded access token with the verify hook', async () => {
    const verifying = await startCodecServer({
      codec,
      allowedOrigin: UI,
      auth: { verify: async (token) => token === 'user-access-token', apiTokens },
    });
    try {
      assert.equal(
        (
          await call(
            verifying,
            'POST',
            '/codec/decode',
            { Authorization: 'Bearer user-access-token' },
            { payloads: [] },
          )
        ).status,
        200,
      );
      assert.equal(
        (await call(verifying, 'POST', '/codec/decode', { Authorization: 'Bearer someone-else' }, { payloads: [] }))
          .status,
        401,
      );
    } finally {
      await verifying.close();
    }
    // Without API tokens, the verify hook alone suffices (a UI behind SSO).
    const uiOnly = await startCodecServer({
      codec,
      allowedOrigin: UI,
      auth: { verify: (t) => t === 'user-access-token' },
    });
    try {
      const headers = { Authorization: 'Bearer user-access-token' };
      assert.equal((await call(uiOnly, 'POST', '/codec/decode', headers, { payloads: [] })).status, 200);
      assert.equal((await call(uiOnly, 'POST', '/codec/decode', {}, { payloads: [] })).status, 401);
    } finally {
      await uiOnly.close();
    }
  });

  it('answers the CORS preflight for the UI origin, and names the origin on answers', async () => {
    const preflight = await call(server, 'OPTIONS', '/codec/decode', {
      Origin: UI,
      'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'content-type,authorization,x-namespace',
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers['access-control-allow-origin'], UI);
    assert.equal(preflight.headers['access-control-allow-credentials'], 'true');
    assert.equal(preflight.headers['access-control-allow-headers'], 'Content-Type, Authorization, X-Namespace');
    assert.match(String(preflight.headers['access-control-allow-methods']), /POST/);

    const answer = await call(server, 'POST', '/codec/decode', { Origin: UI, ...auth }, { payloads: [] });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers['access-control-allow-origin'], UI);
    const refused = await call(server, 'POST', '/codec/decode', { Origin: UI }, { payloads: [] });
    assert.equal(refused.status, 401);
    assert.equal(refused.headers['access-control-allow-origin'], UI, 'the UI can read why it was refused');
  });

  it('gives another origin no allow-origin header', async () => {
    for (const method of ['OPTIONS', 'POST']) {
      const answer = await call(
        server,
        method,
        '/codec/decode',
        { Origin: 'http://evil.example', ...auth },
        method === 'POST' ? { payloads: [] } : undefined,
      );
      assert.equal(answer.status, 403);
      assert.equal(answer.headers['access-control-allow-origin'], undefined);
    }
  });

  it('answers 404 for other paths, 405 for other methods, 400 for bad bodies, 422 for undecryptable payloads', async () => {
    for (const path of ['/', '/codec', '/codec/encode/x', '/decode'])
      assert.equal((await call(server, 'POST', path, auth, { payloads: [] })).status, 404, path);
    assert.equal((await call(server, 'GET', '/codec/decode', auth)).status, 405);
    assert.equal((await call(server, 'POST', '/codec/decode', auth, 'not json')).status, 400);
    const badShape = await call(server, 'POST', '/codec/decode', auth, { payloads: [{ data: '%%%' }] });
    assert.equal(badShape.status, 400);
    assert.match(badShape.body, /payloads\.0\.data: must be base64/);

    const [foreign] = await new EncryptionCodec(createKeyring([newKey('other')])).encode([
      defaultPayloadConverter.toPayload('x'),
    ]);
    const unknown = await call(server, 'POST', '/codec/decode', auth, { payloads: [asJSON(foreign!)] });
    assert.equal(unknown.status, 422);
    assert.match(unknown.body, /key id \\"other\\"/);
  });

  it('refuses a wildcard or path as the UI origin', async () => {
    await assert.rejects(startCodecServer({ codec, allowedOrigin: '*', auth: { apiTokens } }), /exact origin/);
    await assert.rejects(
      startCodecServer({ codec, allowedOrigin: 'http://127.0.0.1:8233/ui', auth: { apiTokens } }),
      /exact origin/,
    );
  });
});

describe('encrypted history (time-skipping server, real slapd)', function () {
  // A person no other test offboards: their name and email must not reach Temporal's history.
  const person = samplePerson('E1027');
  const keyring = createKeyring([newKey('test-current'), newKey('test-old')]);
  const dataConverter = dataConverterFor(keyring) as DataConverter;
  let env: TestWorkflowEnvironment;

  before(async function () {
    env = await timeSkippingEnvironment({ dataConverter });
  });

  after(async () => {
    await env?.teardown();
  });

  /** Every Payload in a history response (message fields set on the object), with the path it was found at. */
  function payloadsIn(value: unknown, path = ''): { path: string; payload: Payload }[] {
    if (value === null || typeof value !== 'object' || value instanceof Uint8Array) return [];
    if (Array.isArray(value)) return value.flatMap((item, i) => payloadsIn(item, `${path}[${i}]`));
    const record = value as Record<string, unknown>;
    const metadata = record.metadata as Record<string, unknown> | undefined;
    if (metadata && typeof metadata === 'object' && metadata.encoding instanceof Uint8Array)
      return [{ path, payload: record as Payload }];
    return Object.entries(record).flatMap(([key, child]) => payloadsIn(child, `${path}.${key}`));
  }

  it('stores no name or email in the history; the codec client still reads the request', async () => {
    // An app with no API makes every action fail into a manual task: its failure messages must
    // be stored encrypted too.
    const config = await testConfig({
      systems: { payroll: { type: 'manual', app: 'Legacy payroll', owner: 'payroll-team' } },
    });
    const taskQueue = `test-${randomUUID()}`;
    const worker = await createOffboardingWorker({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      config,
      pool: await sharedPool(),
      taskQueue,
      workflowBundle: await workflowBundle(),
      dataConverter,
    });

    const request: OffboardingRequest = {
      requestId: `hr-${randomUUID()}`,
      subject: { employeeId: person.employeeId, email: person.email },
      trigger: 'termination',
      reason: 'involuntary',
      employmentType: 'employee',
      effectiveAt: new Date(await env.currentTimeMs()).toISOString(),
      requestedBy: 'hr-system',
    };

    const { workflowId, runId } = await worker.runUntil(async () => {
      const started = await startOffboarding(env.client, request, { taskQueue, searchAttributes: false });
      const handle = env.client.workflow.getHandle<typeof offboarding>(started.workflowId, started.runId);
      // The status query's answer is encrypted by the worker and decrypted by this client.
      const skipWhenOpen = async (taskId: string) => {
        await eventually(
          () => handle.query<OffboardingStatus>('status'),
          (s) => s.manualTasks.some((t) => t.id === taskId && t.state === 'open'),
          taskId,
        );
        await sendCommand(env.client, person.employeeId, 'skip', {
          by: 'it-operator',
          actionId: taskId,
          reason: 'payroll-team confirmed',
        });
      };
      await skipWhenOpen('revoke/payroll/disable_login');
      const revoked = await eventually(
        () => handle.query<OffboardingStatus>('status'),
        (s) => s.stages.some((stage) => stage.name === 'revoke' && stage.finishedAt),
        'the revoke stage',
      );
      assert.match(revoked.accounts.directory ?? '', /^[0-9a-f-]{36}$/);
      assert.deepEqual(await directoryState(person.employeeId), { exists: true, locked: true, groups: [] });
      await skipAhead(env, 31 * 86_400_000); // the retention period: delete_account runs, and payroll's becomes a task
      await skipWhenOpen('delete/payroll/delete_account');
      assert.equal((await handle.result()).phase, 'completed');
      return started;
    });
    assert.equal((await directoryState(person.employeeId)).exists, false);

    // The history as Temporal stores it, read without the codec.
    const pages: proto.temporal.api.workflowservice.v1.GetWorkflowExecutionHistoryResponse[] = [];
    let nextPageToken: Uint8Array | undefined;
    do {
      const page = await env.connection.workflowService.getWorkflowExecutionHistory({
        namespace: env.namespace ?? 'default',
        execution: { workflowId, runId },
        ...(nextPageToken ? { nextPageToken } : {}),
      });
      pages.push(page);
      nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
    } while (nextPageToken);
    const events = pages.flatMap((page) => page.history?.events ?? []);
    assert.ok(events.length > 20, `a full offboarding's history (${events.length} events)`);

    const secrets = [person.email, person.uid, person.givenName, person.sn, 'Legacy payroll'];
    const raw = Buffer.concat(
      pages.map((page) =>
        proto.temporal.api.workflowservice.v1.GetWorkflowExecutionHistoryResponse.encode(page).finish(),
      ),
    );
    assert.equal(findAny(raw, secrets), undefined, 'no name or email anywhere in the stored history');

    const stored = pages.flatMap((page) => payloadsIn(page.history));
    assert.ok(stored.length > 10, `payloads found (${stored.length})`);
    // The SDK writes patch markers (the workflow's `patched()` ids, also listed in the built-in
    // TemporalChangeVersion search attribute) without the codec: they hold
    // the patch id and nothing of the person, which the check below makes sure of.
    const patchMarker = (path: string) => /markerRecordedEventAttributes\.details\.patch-data\./.test(path);
    for (const { payload } of stored.filter(({ path }) => patchMarker(path))) {
      assert.deepEqual(Object.keys(JSON.parse(Buffer.from(payload.data!).toString())).sort(), ['deprecated', 'id']);
    }
    const plain = stored.filter(
      ({ path, payload }) =>
        text(payload.metadata?.encoding) !== ENCRYPTED_ENCODING &&
        !path.includes('searchAttributes') &&
        !patchMarker(path),
    );
    assert.deepEqual(
      plain.map((p) => p.path),
      [],
      'every payload is encrypted',
    );
    const keyIds = new Set(
      stored
        .filter(({ path }) => !patchMarker(path) && !path.includes('searchAttributes'))
        .map(({ payload }) => text(payload.metadata?.[KEY_ID_METADATA])),
    );
    assert.deepEqual([...keyIds], ['test-current']);

    // Control: decrypted, the same history does hold them, so the search above can see them.
    const decrypted = await new EncryptionCodec(keyring).decode(stored.map((s) => s.payload));
    const clear = Buffer.concat(decrypted.map(serialized));
    assert.equal(findAny(clear, [person.email]), person.email);
    assert.equal(findAny(clear, [person.uid]), person.uid, 'the DN (with the name) is in activity results');
    assert.equal(
      findAny(clear, ['Legacy payroll']),
      'Legacy payroll',
      "the manual task's failure message is among the encrypted payloads",
    );

    // The codec client reads the input back as the request that was sent.
    const startedEvent = events[0]?.workflowExecutionStartedEventAttributes;
    const [input] = await new EncryptionCodec(keyring).decode(startedEvent?.input?.payloads ?? []);
    assert.deepEqual(defaultPayloadConverter.fromPayload(input!), request);
    const description = await env.client.workflow.getHandle(workflowId, runId).describe();
    assert.deepEqual(description.memo, { requestId: request.requestId }, 'the memo decodes through the client');
  });
});
