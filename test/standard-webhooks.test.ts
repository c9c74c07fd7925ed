/**
 * Standard Webhooks verification (client/http/hr-webhook.ts) against the specification's own
 * test vectors. The vectors are copied from the reference libraries' tests in
 * github.com/standard-webhooks/standard-webhooks (libraries/go/webhook_symmetric_test.go and
 * libraries/go/webhook_asymmetric_test.go, `TestSymmetricWebhookSign` / `TestAsymmetricWebhookSign`
 * and the cases of `TestSymmetricWebhook` / `TestAsymmetricWebhook`): same message id, timestamp,
 * payload, keys and expected signatures.
 */
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, sign } from 'node:crypto';
import { apiConfigSchema } from '../client/http/auth.js';
import { verifyStandardWebhook, webhookKeysFrom } from '../client/http/hr-webhook.js';

const MSG_ID = 'msg_p5jXN8AQM9LWM0D4loKWxJek';
const TIMESTAMP = 1614265330;
const PAYLOAD = Buffer.from('{"test": 2432232314}');
const SYMMETRIC_SECRET = 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
const SYMMETRIC_SIGNATURE = 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=';
/** The ed25519 seed (private key) of the asymmetric vector; its public key is derived below. */
const ASYMMETRIC_SEED = 'VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=';
const ASYMMETRIC_SIGNATURE =
  'v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag==';
/** A 32-byte signature the vectors use as "invalid". */
const INVALID = 'Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=';

// PKCS#8 wrapping of a raw ed25519 seed (RFC 8410): the fixed prefix, then the 32 bytes.
const privateKey = createPrivateKey({
  key: Buffer.concat([Buffer.from('302e020100300506032b657004220420', 'hex'), Buffer.from(ASYMMETRIC_SEED, 'base64')]),
  format: 'der',
  type: 'pkcs8',
});
const PUBLIC_KEY = Buffer.from(createPublicKey(privateKey).export({ format: 'jwk' }).x!, 'base64url').toString(
  'base64',
);

const keysFor = (config: { webhookSecrets?: string[]; webhookPublicKeys?: string[] }) =>
  webhookKeysFrom(apiConfigSchema.parse(config));
const headers = (signature: string, timestamp = TIMESTAMP, id = MSG_ID) => ({
  'webhook-id': id,
  'webhook-timestamp': String(timestamp),
  'webhook-signature': signature,
});
const at = (seconds: number) => seconds * 1000;
const check = (
  signature: string,
  keys: ReturnType<typeof keysFor>,
  options: { payload?: Buffer; timestamp?: number; now?: number } = {},
) =>
  verifyStandardWebhook(
    options.payload ?? PAYLOAD,
    headers(signature, options.timestamp),
    keys,
    at(options.now ?? TIMESTAMP),
  );

describe('Standard Webhooks: the specification test vectors', () => {
  const symmetric = {
    prefixed: keysFor({ webhookSecrets: [`whsec_${SYMMETRIC_SECRET}`] }),
    bare: keysFor({ webhookSecrets: [SYMMETRIC_SECRET] }),
  };
  const asymmetric = {
    prefixed: keysFor({ webhookPublicKeys: [`whpk_${PUBLIC_KEY}`] }),
    bare: keysFor({ webhookPublicKeys: [PUBLIC_KEY] }),
  };

  it('v1: the symmetric vector verifies under the secret with and without the whsec_ prefix', () => {
    assert.deepEqual(check(SYMMETRIC_SIGNATURE, symmetric.prefixed), { ok: true });
    assert.deepEqual(check(SYMMETRIC_SIGNATURE, symmetric.bare), { ok: true });
  });

  it('v1a: the asymmetric vector verifies under the public key with and without the whpk_ prefix', () => {
    assert.deepEqual(check(ASYMMETRIC_SIGNATURE, asymmetric.prefixed), { ok: true });
    assert.deepEqual(check(ASYMMETRIC_SIGNATURE, asymmetric.bare), { ok: true });
    // ed25519 is deterministic: signing the same content with the vector's seed gives its signature,
    // so what is verified is exactly `${id}.${timestamp}.${payload}`.
    const content = Buffer.concat([Buffer.from(`${MSG_ID}.${TIMESTAMP}.`), PAYLOAD]);
    assert.equal(`v1a,${sign(null, content, privateKey).toString('base64')}`, ASYMMETRIC_SIGNATURE);
  });

  it('the vectors refuse what the specification refuses', () => {
    for (const [keys, version, valid] of [
      [symmetric.bare, 'v1', SYMMETRIC_SIGNATURE],
      [asymmetric.bare, 'v1a', ASYMMETRIC_SIGNATURE],
    ] as const) {
      assert.equal(check(`${version},${INVALID}`, keys).ok, false, `${version}: invalid signature`);
      assert.equal(check(`${version},`, keys).ok, false, `${version}: partial signature`);
      assert.equal(check(valid, keys, { payload: Buffer.from('{"test": 2432232315}') }).ok, false, `${version}: body`);
      assert.equal(check(valid, keys, { now: TIMESTAMP + 5 * 60 + 1 }).ok, false, `${version}: old timestamp`);
      assert.equal(check(valid, keys, { now: TIMESTAMP - 5 * 60 - 1 }).ok, false, `${version}: new timestamp`);
      const multi = [`v1,${INVALID}`, `v2,${INVALID}`, valid, `v1,${INVALID}`].join(' ');
      assert.deepEqual(check(multi, keys), { ok: true }, `${version}: valid multi sig`);
    }
    // A v1a signature is not taken for an HMAC, nor a v1 for an ed25519 signature.
    assert.equal(check(ASYMMETRIC_SIGNATURE, symmetric.bare).ok, false);
    assert.equal(check(SYMMETRIC_SIGNATURE, asymmetric.bare).ok, false);
    // Secrets and public keys together: either kind of signature passes.
    const both = keysFor({ webhookSecrets: [SYMMETRIC_SECRET], webhookPublicKeys: [PUBLIC_KEY] });
    assert.deepEqual(check(SYMMETRIC_SIGNATURE, both), { ok: true });
    assert.deepEqual(check(ASYMMETRIC_SIGNATURE, both), { ok: true });
  });

  it('config: a public key must be 32 bytes of base64, a secret at least 16 bytes', () => {
    const refused = (config: Record<string, unknown>) => apiConfigSchema.safeParse(config).success === false;
    assert.ok(refused({ webhookPublicKeys: [`whpk_${Buffer.alloc(31).toString('base64')}`] }));
    assert.ok(refused({ webhookPublicKeys: ['whsk_' + PUBLIC_KEY] }), 'a private key is not a public key');
    assert.ok(refused({ webhookSecrets: [Buffer.alloc(15).toString('base64')] }));
    assert.ok(!refused({ webhookSecrets: [SYMMETRIC_SECRET], webhookPublicKeys: [PUBLIC_KEY] }));
  });
});
