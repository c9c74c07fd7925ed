/**
 * Payload encryption: names and emails travel in workflow inputs, activity results, signals,
 * queries and memos, and the Temporal server stores all of them for the retention period. This
 * codec encrypts every payload with AES-256-GCM before it leaves the process, so the server (and
 * anyone who reads its database) holds ciphertext only.
 *
 * Shared by the worker, the HTTP API, the CLI and the codec server (which lets the Temporal UI
 * show decoded payloads). Workflow code never imports it: payload codecs run outside the workflow
 * sandbox, and this module uses node:crypto.
 *
 * Not covered: workflow ids, search attributes and failure messages are stored in plain text even
 * with a codec. Keep them free of personal data (the model allows employee ids only there).
 *
 * Wire format of an encrypted payload:
 *   metadata  encoding = "binary/encrypted", encryption-key-id = <key id>
 *   data      IV (12 bytes) || ciphertext || GCM tag (16 bytes)
 * where the plaintext is the original Payload serialized as protobuf (metadata and all).
 */
import { fileURLToPath } from 'node:url';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import type { DataConverter, Payload, PayloadCodec } from '@temporalio/common';
import proto from '@temporalio/proto';
import { z } from 'zod';

const PayloadMessage = proto.temporal.api.common.v1.Payload;

export const ENCRYPTED_ENCODING = 'binary/encrypted';
export const KEY_ID_METADATA = 'encryption-key-id';
export const PAYLOAD_KEYS_ENV = 'OFFBOARD_PAYLOAD_KEYS';

const CIPHER = 'aes-256-gcm';
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

export interface PayloadKey {
  /** Stored in plain text next to each ciphertext, so it names the key and never describes its content. */
  id: string;
  /** 32 bytes. */
  key: Uint8Array;
}

export interface Keyring {
  /** Encrypts every new payload. */
  current: PayloadKey;
  /** Every key that may still be needed to read history, the current one included, by id. */
  byId: ReadonlyMap<string, PayloadKey>;
}

/** A payload could not be decrypted; the message names the key id and what to check, never a key. */
export class PayloadCodecError extends Error {
  override name = 'PayloadCodecError';
}

/** Key ids appear in metadata and error messages, so they are short and plain. */
const keyIdSchema = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/,
    'a key id must be 1-64 letters, digits, ".", "_" or "-" (e.g. "2025-01")',
  );

/**
 * Builds a keyring. The key marked `current`, or else the first, encrypts; all of them decrypt.
 * Rotation: put the new key first (or mark it current) and keep the old ones until no history
 * that was written with them is retained any more.
 */
export function createKeyring(keys: readonly (PayloadKey & { current?: boolean })[]): Keyring {
  if (keys.length === 0) throw new Error('a keyring needs at least one key');
  const byId = new Map<string, PayloadKey>();
  for (const [index, entry] of keys.entries()) {
    const id = keyIdSchema.safeParse(entry.id);
    if (!id.success) throw new Error(`payload key ${index + 1}: ${id.error.issues[0]?.message ?? 'invalid id'}`);
    if (entry.key.length !== KEY_BYTES)
      throw new Error(`payload key "${entry.id}" is ${entry.key.length} bytes; AES-256 needs exactly ${KEY_BYTES}`);
    if (byId.has(entry.id)) throw new Error(`payload key id "${entry.id}" appears twice; every key needs its own id`);
    byId.set(entry.id, { id: entry.id, key: Uint8Array.from(entry.key) });
  }
  const marked = keys.filter((k) => k.current);
  if (marked.length > 1)
    throw new Error(`several payload keys are marked current (${marked.map((k) => `"${k.id}"`).join(', ')}); mark one`);
  const current = byId.get((marked[0] ?? keys[0])!.id)!;
  return { current, byId };
}

const isEncrypted = (payload: Payload) => {
  const encoding = payload.metadata?.encoding;
  return encoding !== undefined && encoding !== null && fromUtf8.decode(encoding) === ENCRYPTED_ENCODING;
};

function encrypt(payload: Payload, { id, key }: PayloadKey): Payload {
  const plaintext = PayloadMessage.encode(payload).finish();
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(CIPHER, key, iv, { authTagLength: TAG_BYTES });
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return {
    metadata: { encoding: utf8.encode(ENCRYPTED_ENCODING), [KEY_ID_METADATA]: utf8.encode(id) },
    data: Buffer.concat([iv, ciphertext, cipher.getAuthTag()]),
  };
}

function decrypt(payload: Payload, keyring: Keyring): Payload {
  const rawId = payload.metadata?.[KEY_ID_METADATA];
  if (!rawId)
    throw new PayloadCodecError(
      `an encrypted payload has no "${KEY_ID_METADATA}" metadata, so no key can be chosen to decrypt it; it was not written by this codec`,
    );
  const id = fromUtf8.decode(rawId);
  const entry = keyring.byId.get(id);
  if (!entry) {
    throw new PayloadCodecError(
      `payload was encrypted with key id "${id}", which is not in this keyring (ids: ${[...keyring.byId.keys()].map((k) => `"${k}"`).join(', ')}); ` +
        `add that key to ${PAYLOAD_KEYS_ENV} (after the current one) wherever payloads are decoded`,
    );
  }
  const data = payload.data ?? new Uint8Array();
  if (data.length < IV_BYTES + TAG_BYTES) {
    throw new PayloadCodecError(
      `payload encrypted with key id "${id}" is truncated (${data.length} bytes, at least ${IV_BYTES + TAG_BYTES} expected)`,
    );
  }
  const iv = data.subarray(0, IV_BYTES);
  const tag = data.subarray(data.length - TAG_BYTES);
  const decipher = createDecipheriv(CIPHER, entry.key, iv, { authTagLength: TAG_BYTES });
  decipher.setAuthTag(tag);
  let plaintext: Buffer;
  try {
    plaintext = Buffer.concat([decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new PayloadCodecError(
      `payload encrypted with key id "${id}" failed authentication: either it was altered after encryption, or the key stored under "${id}" ` +
        `here differs from the one that encrypted it; check that ${PAYLOAD_KEYS_ENV} holds the same key for "${id}" on every worker, client and codec server`,
    );
  }
  // A plain object, not the protobufjs instance: the SDK serializes it again with its own copy of protobufjs.
  const original = PayloadMessage.decode(plaintext);
  return {
    metadata: { ...original.metadata },
    data: original.data,
    ...(original.externalPayloads.length > 0 ? { externalPayloads: original.externalPayloads } : {}),
  };
}

export class EncryptionCodec implements PayloadCodec {
  constructor(private readonly keyring: Keyring) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => encrypt(payload, this.keyring.current));
  }

  /** Payloads that are not encrypted pass through: history written before encryption was switched on stays readable. */
  async decode(payloads: Payload[]): Promise<Payload[]> {
    return payloads.map((payload) => (isEncrypted(payload) ? decrypt(payload, this.keyring) : payload));
  }
}

const HOW_TO_MAKE_A_KEY = 'make one with `openssl rand -base64 32`';

/** One `id:base64key` entry; messages name the entry and id, never the key material. */
const keyEntrySchema = z.string().transform((entry, ctx) => {
  const colon = entry.indexOf(':');
  if (colon < 0) {
    ctx.addIssue({ code: 'custom', message: `is not "id:base64key" (no ":" found)` });
    return z.NEVER;
  }
  const id = entry.slice(0, colon).trim();
  const encoded = entry.slice(colon + 1).trim();
  const idCheck = keyIdSchema.safeParse(id);
  if (!idCheck.success) {
    ctx.addIssue({ code: 'custom', message: idCheck.error.issues[0]?.message ?? 'invalid key id' });
    return z.NEVER;
  }
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(encoded)) {
    ctx.addIssue({ code: 'custom', message: `key "${id}" is not base64; ${HOW_TO_MAKE_A_KEY}` });
    return z.NEVER;
  }
  // Node's base64 decoder also accepts the URL-safe alphabet.
  const key = Buffer.from(encoded, 'base64');
  if (key.length !== KEY_BYTES) {
    ctx.addIssue({
      code: 'custom',
      message: `key "${id}" is ${key.length} bytes; AES-256 needs exactly ${KEY_BYTES} bytes — ${HOW_TO_MAKE_A_KEY}`,
    });
    return z.NEVER;
  }
  return { id, key: new Uint8Array(key) };
});

const keyListSchema = z
  .array(keyEntrySchema)
  .min(1)
  .superRefine((keys, ctx) => {
    const seen = new Set<string>();
    for (const { id } of keys) {
      if (seen.has(id))
        ctx.addIssue({ code: 'custom', message: `key id "${id}" appears twice; every key needs its own id` });
      seen.add(id);
    }
  });

/**
 * Reads the keyring from OFFBOARD_PAYLOAD_KEYS: comma-separated `id:base64key` entries, the first
 * encrypts (e.g. `2025-06:<new key>,2025-01:<old key>`). Unset or blank: `undefined`, no encryption.
 * Every process that reads or writes offboarding payloads needs the same list.
 */
export function keyringFromEnv(env: NodeJS.ProcessEnv = process.env): Keyring | undefined {
  const raw = env[PAYLOAD_KEYS_ENV];
  if (raw === undefined || raw.trim() === '') return undefined;
  const entries = raw.split(',').map((entry) => entry.trim());
  const parsed = keyListSchema.safeParse(entries);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const index = typeof issue.path[0] === 'number' ? issue.path[0] : undefined;
      return index === undefined ? issue.message : `entry ${index + 1}: ${issue.message}`;
    });
    throw new Error(
      `${PAYLOAD_KEYS_ENV} is invalid (expected comma-separated "id:base64key", 32-byte keys, the current key first):\n${problems.join('\n')}`,
    );
  }
  return createKeyring(parsed.data);
}

/** The module whose failure converter encodes failure messages (workflow bundles must use it too). */
export const FAILURE_CONVERTER_PATH = fileURLToPath(new URL('./failure-converter.cjs', import.meta.url));

/**
 * The data converter for clients and workers: the encryption codec and a failure converter that
 * sends failure messages through it, or undefined (the SDK default) without keys.
 */
export function dataConverterFor(keyring: Keyring | undefined): DataConverter | undefined {
  return keyring
    ? { payloadCodecs: [new EncryptionCodec(keyring)], failureConverterPath: FAILURE_CONVERTER_PATH }
    : undefined;
}
