/**
 * OpenID Shared Signals (SSF 1.0) vocabulary shared by the transmitter (activities/connectors/ssf.ts),
 * the API that publishes its metadata (client/http/ssf.ts) and the config loader: the event type
 * URIs (RISC 1.0, CAEP 1.0), the delivery method, and the `sharedSignals` config section. Pure.
 */
import { z } from 'zod';
import type { SecretWrap } from './api-config.js';

const RISC = 'https://schemas.openid.net/secevent/risc/event-type/';
const CAEP = 'https://schemas.openid.net/secevent/caep/event-type/';

/** The events offboard sends, by their short name in the config (`events:`). */
export const SSF_EVENT_TYPES = {
  /** RISC: the account has been disabled (it may be enabled again). */
  'account-disabled': `${RISC}account-disabled`,
  /** CAEP: the subject's sessions have been revoked (SSF 1.0 replaces RISC's deprecated sessions-revoked with it). */
  'session-revoked': `${CAEP}session-revoked`,
  /** RISC: the account has been enabled (a cancelled offboarding). */
  'account-enabled': `${RISC}account-enabled`,
  /** RISC: the account has been permanently deleted. */
  'account-purged': `${RISC}account-purged`,
} as const;
export type SsfEventName = keyof typeof SSF_EVENT_TYPES;
export const ssfEventNames = Object.keys(SSF_EVENT_TYPES) as [SsfEventName, ...SsfEventName[]];

/** SSF §8.1.4: sent by `check()` to confirm end-to-end delivery, signature included. */
export const SSF_VERIFICATION_EVENT = 'https://schemas.openid.net/secevent/ssf/event-type/verification';
/** SSF §6.1.1: push delivery, RFC 8935. */
export const PUSH_DELIVERY_METHOD = 'urn:ietf:rfc:8935';
/** RFC 8417 §2.3: the media type of a SET, and (explicit typing) its `typ` header. */
export const SET_MEDIA_TYPE = 'application/secevent+jwt';
export const SET_TYP = 'secevent+jwt';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);
const isLoopback = (issuer: string): boolean => {
  try {
    return LOOPBACK.has(new URL(issuer).hostname);
  } catch {
    return false;
  }
};

/**
 * SSF §7.1: the issuer is an https URL with no query or fragment, identical to every SET's `iss`.
 * Plain http is accepted on loopback only, for a transmitter and receivers on one machine.
 */
export const issuerSchema = z.string().superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({
      code: 'custom',
      message: 'an https:// URL (the API as receivers reach it), e.g. https://offboard.example.com',
    });
    return;
  }
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.has(url.hostname)))
    ctx.addIssue({ code: 'custom', message: 'SSF requires https (plain http only on 127.0.0.1, localhost or [::1])' });
  if (url.search || url.hash || value.includes('?') || value.includes('#'))
    ctx.addIssue({ code: 'custom', message: 'the issuer must have no query or fragment' });
});

/** SSF §7.2: the metadata is at /.well-known/ssf-configuration followed by the issuer's path, if any. */
export function wellKnownPath(issuer: string): string {
  const path = new URL(issuer).pathname.replace(/\/+$/, '');
  return `/.well-known/ssf-configuration${path}`;
}

/** Where the JWKS is published: under the issuer, so that one origin serves both. */
export function jwksPath(issuer: string): string {
  return `${new URL(issuer).pathname.replace(/\/+$/, '')}/ssf/jwks.json`;
}

export const jwksUri = (issuer: string): string => new URL(jwksPath(issuer), issuer).href;

/**
 * The `sharedSignals` section: the transmitter's issuer and signing key, shared by every `ssf`
 * receiver and by the API that publishes the public key. Without a key (development), one is
 * generated under the data directory (workers/ssf-signing-key.ts).
 */
export function sharedSignalsSchemaWith(wrap: SecretWrap) {
  return z
    .object({
      /** The API's public URL as receivers reach it: every SET's `iss`, and where the metadata is. */
      issuer: issuerSchema.default('http://127.0.0.1:8080'),
      /** A PKCS#8 PEM private key: EC P-256 (ES256), Ed25519 (EdDSA) or RSA of 2048 bits or more (RS256). */
      signingKey: wrap(z.string().min(1)).optional(),
      /** The same, read from a file (a mounted secret); one of signingKey and signingKeyFile. */
      signingKeyFile: z.string().min(1).optional(),
      /** The JWK `kid`; default the key's RFC 7638 thumbprint, so a new key gets a new kid. */
      keyId: z.string().min(1).optional(),
      /**
       * Public keys (PEM) published in the JWKS besides the signing key's: the next key before a
       * rotation (receivers then know it when SETs signed with it arrive), the previous one after.
       */
      additionalPublicKeys: z.array(z.string().min(1)).default([]),
    })
    .strict()
    .superRefine((section, ctx) => {
      if (section.signingKey !== undefined && section.signingKeyFile !== undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['signingKeyFile'],
          message: 'give signingKey or signingKeyFile, not both',
        });
      // A key made on each machine would differ between the worker that signs and the API that publishes.
      if (section.signingKey === undefined && section.signingKeyFile === undefined && !isLoopback(section.issuer))
        ctx.addIssue({
          code: 'custom',
          path: ['signingKey'],
          message:
            'an issuer receivers reach over the network needs a signing key shared by the worker and the API: set signingKey ({ env: NAME }) or signingKeyFile (the development key is for a loopback issuer only)',
        });
    });
}
export const sharedSignalsSchema = sharedSignalsSchemaWith((plain) => plain);
export type SharedSignalsConfig = z.output<typeof sharedSignalsSchema>;

/** The transmitter metadata (SSF §7.1) for the issuer: push delivery only, no stream management API. */
export function transmitterMetadata(issuer: string): Record<string, unknown> {
  return {
    spec_version: '1_0',
    issuer,
    jwks_uri: jwksUri(issuer),
    delivery_methods_supported: [PUSH_DELIVERY_METHOD],
  };
}
