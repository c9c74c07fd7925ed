/**
 * The Shared Signals transmitter's signing key: loaded from the config (`sharedSignals.signingKey`
 * from the environment, or `signingKeyFile`), or for development generated once under the data
 * directory and kept there (mode 600) so that the worker and the API, and every restart, use the
 * same one. The worker signs SETs with it; the API publishes its public part as a JWKS.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { SignJWT, type JWK, type JWTPayload } from 'jose';
import { SET_TYP, sharedSignalsSchema, type SharedSignalsConfig } from '../model/shared-signals.js';

export type SigningAlgorithm = 'ES256' | 'EdDSA' | 'RS256';

export interface SigningKey {
  alg: SigningAlgorithm;
  kid: string;
  privateKey: KeyObject;
  /** The public JWK with `kid`, `alg` and `use: sig`: what the JWKS serves. */
  publicJwk: JWK;
  /** Where it came from, for the log: `env`, the file path, or `generated <path>`. */
  source: string;
}

export class SigningKeyError extends Error {}

/** The development key's path: OFFBOARD_DATA_DIR (default ./.data) / ssf-signing-key.pem. */
export const devKeyPath = (env: NodeJS.ProcessEnv = process.env): string =>
  join(resolve(env.OFFBOARD_DATA_DIR ?? '.data'), 'ssf-signing-key.pem');

function algorithmOf(key: KeyObject, where: string): SigningAlgorithm {
  const details = key.asymmetricKeyDetails ?? {};
  if (key.asymmetricKeyType === 'ec' && details.namedCurve === 'prime256v1') return 'ES256';
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'rsa') {
    if ((details.modulusLength ?? 0) < 2048)
      throw new SigningKeyError(`${where}: an RSA key of ${details.modulusLength} bits; use 2048 bits or more`);
    return 'RS256';
  }
  throw new SigningKeyError(
    `${where}: a ${key.asymmetricKeyType}${details.namedCurve ? ` ${details.namedCurve}` : ''} key cannot sign SETs here; use EC P-256 (ES256), Ed25519 (EdDSA) or RSA ≥ 2048 bits (RS256), e.g. \`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256\``,
  );
}

/** RFC 7638: SHA-256 over the required members, in lexicographic order, base64url. */
export function jwkThumbprint(jwk: JWK): string {
  const required: Record<string, string[]> = {
    EC: ['crv', 'kty', 'x', 'y'],
    OKP: ['crv', 'kty', 'x'],
    RSA: ['e', 'kty', 'n'],
  };
  const members = required[jwk.kty ?? ''];
  if (!members) throw new SigningKeyError(`no thumbprint for key type ${jwk.kty}`);
  const canonical = `{${members.map((m) => `${JSON.stringify(m)}:${JSON.stringify((jwk as Record<string, unknown>)[m])}`).join(',')}}`;
  return createHash('sha256').update(canonical).digest('base64url');
}

export function signingKeyFromPem(pem: string, source: string, keyId?: string): SigningKey {
  let privateKey: KeyObject;
  try {
    // Environment variables often carry a PEM with its newlines written as \n.
    privateKey = createPrivateKey(pem.includes('\\n') ? pem.replace(/\\n/g, '\n') : pem);
  } catch (err) {
    throw new SigningKeyError(`${source}: not a PEM private key (${(err as Error).message}); give a PKCS#8 PEM`);
  }
  if (privateKey.type !== 'private') throw new SigningKeyError(`${source}: a public key; give the private key`);
  const alg = algorithmOf(privateKey, source);
  const exported = createPublicKey(privateKey).export({ format: 'jwk' }) as JWK;
  const kid = keyId ?? jwkThumbprint(exported);
  return { alg, kid, privateKey, publicJwk: { ...exported, kid, alg, use: 'sig' }, source };
}

/**
 * Reads the development key, or makes one (ES256). Made under a temporary name and linked into
 * place, so that a worker and an API starting together end up with the same key.
 */
function developmentKey(path: string, log: (message: string) => void): { pem: string; generated: boolean } {
  try {
    return { pem: readFileSync(path, 'utf8'), generated: false };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  mkdirSync(dirname(path), { recursive: true });
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  try {
    linkSync(temporary, path);
    log(
      `generated a development Shared Signals signing key (ES256) at ${path}; set sharedSignals.signingKey in production`,
    );
    return { pem: readFileSync(path, 'utf8'), generated: true };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return { pem: readFileSync(path, 'utf8'), generated: false }; // another process made it first
  } finally {
    rmSync(temporary, { force: true });
  }
}

/** The key the config names, or the development key. */
export function loadSigningKey(
  config: SharedSignalsConfig,
  options: { env?: NodeJS.ProcessEnv; log?: (message: string) => void } = {},
): SigningKey {
  if (config.signingKey !== undefined)
    return signingKeyFromPem(config.signingKey, 'sharedSignals.signingKey', config.keyId);
  if (config.signingKeyFile !== undefined) {
    let pem: string;
    try {
      pem = readFileSync(config.signingKeyFile, 'utf8');
    } catch (err) {
      throw new SigningKeyError(
        `sharedSignals.signingKeyFile: cannot read ${config.signingKeyFile}: ${(err as Error).message}`,
      );
    }
    return signingKeyFromPem(pem, config.signingKeyFile, config.keyId);
  }
  const path = devKeyPath(options.env);
  const { pem, generated } = developmentKey(path, options.log ?? (() => undefined));
  return signingKeyFromPem(pem, generated ? `generated ${path}` : path, config.keyId);
}

/** A public key to publish (`additionalPublicKeys`); a private key is refused, since the config file is no place for it. */
export function publicJwkFromPem(pem: string, where: string): JWK {
  let key: KeyObject;
  const text = pem.includes('\\n') ? pem.replace(/\\n/g, '\n') : pem;
  if (/PRIVATE KEY/.test(text))
    throw new SigningKeyError(`${where}: a private key; publish its public part (\`openssl pkey -pubout\`)`);
  try {
    key = createPublicKey(text);
  } catch (err) {
    throw new SigningKeyError(`${where}: not a PEM public key (${(err as Error).message})`);
  }
  const alg = algorithmOf(key, where);
  const jwk = key.export({ format: 'jwk' }) as JWK;
  return { ...jwk, kid: jwkThumbprint(jwk), alg, use: 'sig' };
}

/** The JWKS document (RFC 7517): public keys only, the signing key's first. */
export const jwksOf = (key: SigningKey, additional: JWK[] = []): { keys: JWK[] } => ({
  keys: [key.publicJwk, ...additional.filter((jwk) => jwk.kid !== key.kid)],
});

/** Signs SETs as the transmitter: `iss` is the issuer, the JOSE header is explicitly typed (SSF §4.1.1). */
export interface SetSigner {
  readonly issuer: string;
  readonly alg: SigningAlgorithm;
  readonly kid: string;
  sign(claims: Omit<JWTPayload, 'iss'>): Promise<string>;
}

export function createSetSigner(issuer: string, key: SigningKey): SetSigner {
  return {
    issuer,
    alg: key.alg,
    kid: key.kid,
    sign: (claims) =>
      new SignJWT({ ...claims, iss: issuer })
        .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: SET_TYP })
        .sign(key.privateKey),
  };
}

/**
 * The transmitter both the worker and the API use, when the config has receivers (`type: ssf`)
 * or a `sharedSignals` section: its issuer and key, defaults filled in.
 */
export function sharedSignalsOf(
  config: { systems: Record<string, { type: string }>; sharedSignals?: SharedSignalsConfig },
  options: { env?: NodeJS.ProcessEnv; log?: (message: string) => void } = {},
): { issuer: string; key: SigningKey; jwks: { keys: JWK[] } } | undefined {
  const receivers = Object.values(config.systems).some((system) => system.type === 'ssf');
  if (!receivers && !config.sharedSignals) return undefined;
  const section = config.sharedSignals ?? sharedSignalsSchema.parse({});
  const key = loadSigningKey(section, options);
  const additional = section.additionalPublicKeys.map((pem, i) =>
    publicJwkFromPem(pem, `sharedSignals.additionalPublicKeys[${i}]`),
  );
  return { issuer: section.issuer, key, jwks: jwksOf(key, additional) };
}
