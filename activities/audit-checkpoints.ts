/**
 * Signed checkpoints of the audit chain: (seq, head hash, time), signed with an Ed25519 key that
 * the database does not hold, and kept outside the audit table (an append-only file of JSON lines
 * by default; `CheckpointStore` is the seam for an object store). Whoever rewrites the table
 * with superuser rights can recompute every hash, but cannot sign: a checkpoint whose seq now has
 * another hash (a rewrite) or no row at all (a truncated tail) names the attack.
 *
 * The worker writes one after every `everyRows` rows it appended and every `everyMs` while rows
 * keep coming (a quiet log needs no new checkpoint: the last one still covers its head).
 */
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  sign,
  verify,
  type KeyObject,
} from 'node:crypto';
import canonicalize from 'canonicalize';
import { databaseTarget } from '../workers/database.js';
import { z } from 'zod';

export const CHECKPOINT_FORMAT = 'offboard-audit-checkpoint/1';

export const checkpointSchema = z.object({
  format: z.literal(CHECKPOINT_FORMAT),
  seq: z.number().int().nonnegative(),
  headHash: z.string().regex(/^[0-9a-f]{64}$/),
  at: z.iso.datetime(),
  /** sha256 of the public key (SPKI DER), first 16 hex digits: which key signed it. */
  keyId: z.string(),
  /** Ed25519 over the canonical JSON of the other fields, base64. */
  signature: z.string(),
});
export type Checkpoint = z.infer<typeof checkpointSchema>;

const signedText = (c: Omit<Checkpoint, 'signature'>) =>
  Buffer.from(canonicalize({ format: c.format, seq: c.seq, headHash: c.headHash, at: c.at, keyId: c.keyId }) ?? '');

export function keyIdOf(publicKey: KeyObject): string {
  return createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex')
    .slice(0, 16);
}

export function signCheckpoint(privateKey: KeyObject, head: { seq: number; hash: string }, at: Date): Checkpoint {
  const unsigned = {
    format: CHECKPOINT_FORMAT,
    seq: head.seq,
    headHash: head.hash,
    at: at.toISOString(),
    keyId: keyIdOf(createPublicKey(privateKey)),
  } as const;
  return { ...unsigned, signature: sign(null, signedText(unsigned), privateKey).toString('base64') };
}

/** Whether the signature is the given key's over exactly these fields. */
export function checkpointSignatureValid(checkpoint: Checkpoint, publicKey: KeyObject): boolean {
  try {
    return verify(null, signedText(checkpoint), publicKey, Buffer.from(checkpoint.signature, 'base64'));
  } catch {
    return false;
  }
}

// ---- keys -----------------------------------------------------------------------------------

const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** `.data` of the checkout, as `npm start` uses; OFFBOARD_DATA_DIR moves it. */
export const dataDirFrom = (env: NodeJS.ProcessEnv = process.env) =>
  env.OFFBOARD_DATA_DIR ?? join(projectRoot, '.data');

export interface CheckpointSettings {
  /** PEM PKCS#8 Ed25519 private key (only the worker needs it). */
  signingKeyFile: string;
  /** PEM SPKI public key; else derived from the signing key when that is readable. */
  publicKeyFile: string | null;
  /** The JSON-lines file of checkpoints. */
  checkpointsFile: string;
  everyRows: number;
  everyMs: number;
  /** The key file was not configured: a dev default under the data dir, generated if absent. */
  devDefaultKey: boolean;
}

/**
 * The default file is per database (host, port, name; never the password), so that checkpoints of
 * one audit database are never checked against another (the embedded one, then a DATABASE_URL).
 */
function databaseSlug(env: NodeJS.ProcessEnv): string {
  const { url } = databaseTarget(env);
  try {
    const parsed = new URL(url);
    return `${parsed.hostname}_${parsed.port || '5432'}_${parsed.pathname.slice(1) || 'postgres'}`.replace(
      /[^A-Za-z0-9_.-]/g,
      '_',
    );
  } catch {
    return 'default';
  }
}

function positive(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`${name} must be a positive number (got "${raw}"); unset it for the default ${fallback}`);
  return value;
}

/**
 * OFFBOARD_AUDIT_SIGNING_KEY_FILE, OFFBOARD_AUDIT_PUBLIC_KEY_FILE, OFFBOARD_AUDIT_CHECKPOINTS_FILE,
 * OFFBOARD_AUDIT_CHECKPOINT_ROWS (default 100), OFFBOARD_AUDIT_CHECKPOINT_SECONDS (default 15; the
 * earlier OFFBOARD_AUDIT_CHECKPOINT_MINUTES is still read). Every 15 s while rows are written: an
 * offboarding's report verifies seconds after its last row, not minutes, and a busy day adds at most
 * 5,760 lines (about 2 MB) to the checkpoint file.
 */
export function checkpointSettings(env: NodeJS.ProcessEnv = process.env): CheckpointSettings {
  const dataDir = dataDirFrom(env);
  return {
    signingKeyFile: env.OFFBOARD_AUDIT_SIGNING_KEY_FILE ?? join(dataDir, 'audit-signing-key.pem'),
    publicKeyFile: env.OFFBOARD_AUDIT_PUBLIC_KEY_FILE ?? null,
    checkpointsFile:
      env.OFFBOARD_AUDIT_CHECKPOINTS_FILE ?? join(dataDir, `audit-checkpoints.${databaseSlug(env)}.jsonl`),
    everyRows: Math.round(positive(env, 'OFFBOARD_AUDIT_CHECKPOINT_ROWS', 100)),
    everyMs:
      env.OFFBOARD_AUDIT_CHECKPOINT_SECONDS === undefined && env.OFFBOARD_AUDIT_CHECKPOINT_MINUTES !== undefined
        ? positive(env, 'OFFBOARD_AUDIT_CHECKPOINT_MINUTES', 5) * 60_000
        : positive(env, 'OFFBOARD_AUDIT_CHECKPOINT_SECONDS', 15) * 1_000,
    devDefaultKey: env.OFFBOARD_AUDIT_SIGNING_KEY_FILE === undefined,
  };
}

/**
 * The signing key. A configured file must exist; the dev default is generated on first use
 * (`generated` tells the caller to log it: production sets OFFBOARD_AUDIT_SIGNING_KEY_FILE to a
 * key kept away from the database's administrators).
 */
export function loadSigningKey(settings: CheckpointSettings): { key: KeyObject; generated: boolean } {
  const path = settings.signingKeyFile;
  if (!existsSync(path)) {
    if (!settings.devDefaultKey)
      throw new Error(
        `OFFBOARD_AUDIT_SIGNING_KEY_FILE is ${path}, which does not exist: create an Ed25519 key there (openssl genpkey -algorithm ed25519 -out ${path})`,
      );
    mkdirSync(dirname(path), { recursive: true });
    const { privateKey } = generateKeyPairSync('ed25519');
    writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
    return { key: privateKey, generated: true };
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(readFileSync(path));
  } catch (err) {
    throw new Error(
      `cannot read the audit signing key ${path}: ${(err as Error).message}; it must be a PEM private key`,
    );
  }
  if (key.asymmetricKeyType !== 'ed25519')
    throw new Error(`the audit signing key ${path} is ${key.asymmetricKeyType}, not Ed25519`);
  return { key, generated: false };
}

/** A public key from PEM (SPKI) or a private key's PEM (its public half). */
export function parsePublicKey(pem: string, from: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (err) {
    throw new Error(`${from} is not a PEM public key: ${(err as Error).message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') throw new Error(`${from} is ${key.asymmetricKeyType}, not Ed25519`);
  return key;
}

/** The public key verifiers use: the configured file, else the signing key's public half; null when neither exists. */
export function loadPublicKey(settings: CheckpointSettings, explicitFile?: string): KeyObject | null {
  const file = explicitFile ?? settings.publicKeyFile;
  if (file) return parsePublicKey(readFileSync(file, 'utf8'), file);
  if (!existsSync(settings.signingKeyFile)) return null;
  return parsePublicKey(readFileSync(settings.signingKeyFile, 'utf8'), settings.signingKeyFile);
}

export const publicKeyPem = (key: KeyObject) => String(key.export({ type: 'spki', format: 'pem' }));

// ---- where checkpoints are kept -------------------------------------------------------------

export interface CheckpointStore {
  /** Where, for messages. */
  readonly location: string;
  append(checkpoint: Checkpoint): Promise<void>;
  /** Every checkpoint kept, oldest first; lines that are not checkpoints are reported, not dropped. */
  readAll(): Promise<{ checkpoints: Checkpoint[]; unreadable: { line: number; reason: string }[] }>;
}

/** One JSON line per checkpoint, appended (O_APPEND: concurrent workers' lines do not interleave). */
export function fileCheckpointStore(path: string): CheckpointStore {
  return {
    location: path,
    async append(checkpoint) {
      await mkdir(dirname(path), { recursive: true });
      await appendFile(path, `${JSON.stringify(checkpoint)}\n`, { mode: 0o644 });
    },
    async readAll() {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { checkpoints: [], unreadable: [] };
        throw err;
      }
      const checkpoints: Checkpoint[] = [];
      const unreadable: { line: number; reason: string }[] = [];
      text.split('\n').forEach((line, index) => {
        if (line.trim() === '') return;
        try {
          const parsed = checkpointSchema.safeParse(JSON.parse(line));
          if (parsed.success) checkpoints.push(parsed.data);
          else unreadable.push({ line: index + 1, reason: parsed.error.issues[0]?.message ?? 'not a checkpoint' });
        } catch {
          unreadable.push({ line: index + 1, reason: 'not JSON' });
        }
      });
      return { checkpoints, unreadable };
    },
  };
}

// ---- writing them as rows come in -----------------------------------------------------------

export interface Checkpointer {
  /** Called with the chain's head after each commit that added rows. */
  noteAppended(head: { seq: number; hash: string }): void;
  /** Signs and stores the newest head seen now, if it is not signed yet. */
  flush(): Promise<Checkpoint | null>;
  stop(): Promise<void>;
}

export function createCheckpointer(options: {
  store: CheckpointStore;
  key: KeyObject;
  everyRows: number;
  everyMs: number;
  onError?: (err: Error) => void;
  now?: () => Date;
}): Checkpointer {
  const now = options.now ?? (() => new Date());
  let newest: { seq: number; hash: string } | null = null;
  let signedSeq = 0;
  let writing: Promise<Checkpoint | null> = Promise.resolve(null);

  const flush = () => {
    writing = writing.then(async () => {
      const head = newest;
      if (head === null || head.seq <= signedSeq) return null;
      const checkpoint = signCheckpoint(options.key, head, now());
      await options.store.append(checkpoint);
      signedSeq = Math.max(signedSeq, head.seq);
      return checkpoint;
    });
    return writing.catch((err: Error) => {
      options.onError?.(err);
      writing = Promise.resolve(null);
      return null;
    });
  };
  const timer = setInterval(() => void flush(), options.everyMs);
  timer.unref();
  return {
    noteAppended(head) {
      if (newest === null || head.seq > newest.seq) newest = head;
      if (newest.seq - signedSeq >= options.everyRows) void flush();
    },
    flush,
    async stop() {
      clearInterval(timer);
      await flush();
    },
  };
}
