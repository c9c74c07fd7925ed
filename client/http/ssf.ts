/**
 * The Shared Signals transmitter's public face (SSF 1.0 §7): the Transmitter Configuration
 * Metadata at /.well-known/ssf-configuration (followed by the issuer's path, if any) and the JWKS
 * it names, with the public part of the signing key only. Receivers verify every SET against it.
 * No authentication: SSF asks that the metadata be reachable without it, and it holds no secret.
 */
import type { FastifyInstance } from 'fastify';
import type { JWK } from 'jose';
import { jwksPath, transmitterMetadata, wellKnownPath } from '../../model/shared-signals.js';
import type { Operation } from './openapi.js';

export interface SharedSignalsApi {
  issuer: string;
  jwks: { keys: JWK[] };
}

/** Receivers cache the key set; a new key is picked up within this time (or at once on an unknown kid). */
const JWKS_MAX_AGE_S = 300;

export function registerSharedSignalsRoutes(app: FastifyInstance, ssf: SharedSignalsApi): void {
  const metadata = transmitterMetadata(ssf.issuer);
  app.get(wellKnownPath(ssf.issuer), async (_request, reply) =>
    reply.type('application/json').header('cache-control', `max-age=${JWKS_MAX_AGE_S}`).send(metadata),
  );
  app.get(jwksPath(ssf.issuer), async (_request, reply) =>
    reply.type('application/jwk-set+json').header('cache-control', `max-age=${JWKS_MAX_AGE_S}`).send(ssf.jwks),
  );
}

/** The two routes for the OpenAPI document, at the paths the issuer gives them. */
export function sharedSignalsOperations(issuer: string): Operation[] {
  return [
    {
      method: 'get',
      path: wellKnownPath(issuer),
      summary: 'Shared Signals transmitter metadata (SSF 1.0 §7.1): issuer, jwks_uri, push delivery',
      tags: ['shared-signals'],
      auth: 'none',
      responses: { 200: { description: 'application/json' } },
    },
    {
      method: 'get',
      path: jwksPath(issuer),
      summary: "The transmitter's JWKS: the public key every Security Event Token is signed with",
      tags: ['shared-signals'],
      auth: 'none',
      responses: { 200: { description: 'application/jwk-set+json' } },
    },
  ];
}
