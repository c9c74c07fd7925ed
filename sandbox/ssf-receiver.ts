/**
 * A Shared Signals receiver stand-in: an app's push endpoint (RFC 8935) that checks every SET the
 * way a receiver must (SSF 1.0 §4, §7.3; RFC 8417): the transmitter's metadata fetched from
 * `<issuer>/.well-known/ssf-configuration` and its `issuer` compared, the signature verified
 * against the key set at its `jwks_uri`, `typ` secevent+jwt, `iss`, `aud`, `iat`, `jti`, no `sub`
 * and no `exp`, one event with a `sub_id`. A `jti` seen before is acknowledged again (202) and
 * kept once: what a receiver that dedupes does, since RFC 8935 has no "already received" answer.
 * Refusals are 400 with `{err, description}` (RFC 8935 §2.3, §2.4).
 *
 * Faults, for tests: the next deliveries answered with a status (503, 429 with Retry-After), or
 * accepted with the answer lost (the connection closed before the 202 leaves).
 * `GET /_sandbox/state` shows what it holds.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import { SET_MEDIA_TYPE, SET_TYP, wellKnownPath } from '../model/shared-signals.js';

export interface ReceivedEvent {
  jti: string;
  eventType: string;
  event: Record<string, unknown>;
  subId: Record<string, unknown>;
  claims: JWTPayload;
  /** The JOSE header as sent. */
  header: { alg?: string; kid?: string; typ?: string };
}

export interface SsfReceiverState {
  /** Every POST that reached the endpoint, in order, with the jti when it could be read. */
  deliveries: { jti: string | null; status: number }[];
  /** Events accepted, once per jti. */
  accepted: ReceivedEvent[];
  /** jtis delivered again after they were accepted. */
  duplicates: string[];
  /** Refusals with their RFC 8935 error code. */
  rejected: { err: string; description: string }[];
}

export interface SsfReceiverOptions {
  /** The transmitter it trusts: its metadata is fetched from here. */
  issuer: string;
  /** What this receiver answers to as `aud`. */
  audience: string;
  /** The Authorization header value it requires, if any. */
  authorization?: string;
  port?: number;
}

export interface SsfReceiver {
  url: string;
  /** The push endpoint: `<url>/events`. */
  endpoint: string;
  state: SsfReceiverState;
  /** The next `count` deliveries answer `status` (with Retry-After seconds when given), untouched. */
  failNext(count: number, status: number, retryAfterSeconds?: number): void;
  /** The next delivery is accepted, but its connection is closed before the answer leaves. */
  loseNextAnswer(): void;
  reset(): void;
  stop(): Promise<void>;
}

class Refusal extends Error {
  constructor(
    readonly err: string,
    description: string,
  ) {
    super(description);
  }
}

const fresh = (): SsfReceiverState => ({ deliveries: [], accepted: [], duplicates: [], rejected: [] });

export async function startSsfReceiver(options: SsfReceiverOptions): Promise<SsfReceiver> {
  let state = fresh();
  const faults: { status: number; retryAfterSeconds?: number }[] = [];
  let loseAnswer = false;
  let keys: { jwks: JWTVerifyGetKey; issuer: string } | undefined;

  /** SSF §7.2-7.3: the metadata from the issuer's well-known URL, its issuer identical, then its JWKS. */
  async function transmitterKeys() {
    if (keys) return keys;
    const response = await fetch(new URL(wellKnownPath(options.issuer), options.issuer));
    if (!response.ok) throw new Error(`the transmitter's metadata answered HTTP ${response.status}`);
    const metadata = (await response.json()) as { issuer?: string; jwks_uri?: string };
    if (metadata.issuer !== options.issuer)
      throw new Error(`the metadata names issuer ${metadata.issuer}, not ${options.issuer}`);
    if (!metadata.jwks_uri) throw new Error('the metadata has no jwks_uri');
    keys = { jwks: createRemoteJWKSet(new URL(metadata.jwks_uri)), issuer: metadata.issuer };
    return keys;
  }

  async function verify(token: string): Promise<ReceivedEvent> {
    const { jwks, issuer } = await transmitterKeys();
    let verified: Awaited<ReturnType<typeof jwtVerify>>;
    try {
      verified = await jwtVerify(token, jwks, { typ: SET_TYP, algorithms: ['ES256', 'EdDSA', 'RS256'] });
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWSSignatureVerificationFailed)
        throw new Refusal('invalid_key', "the SET is not signed by a key in the transmitter's JWKS");
      // The key set could not be fetched: nothing is known about the SET yet (answered 503).
      if (!(err instanceof errors.JOSEError) || err instanceof errors.JWKSTimeout) throw err;
      throw new Refusal('invalid_request', `not a valid SET: ${(err as Error).message}`);
    }
    const { payload, protectedHeader } = verified;
    if (payload.iss !== issuer)
      throw new Refusal('invalid_issuer', `iss ${payload.iss} is not the trusted transmitter`);
    const audiences = [payload.aud ?? []].flat();
    if (!audiences.includes(options.audience))
      throw new Refusal('invalid_audience', `aud ${JSON.stringify(payload.aud)} does not name this receiver`);
    if (payload.sub !== undefined) throw new Refusal('invalid_request', 'an SSF SET must not have a sub claim');
    if (payload.exp !== undefined) throw new Refusal('invalid_request', 'an SSF SET must not have an exp claim');
    if (typeof payload.jti !== 'string' || !payload.jti) throw new Refusal('invalid_request', 'no jti');
    if (typeof payload.iat !== 'number') throw new Refusal('invalid_request', 'no iat');
    const subId = payload.sub_id as Record<string, unknown> | undefined;
    if (!subId || typeof subId.format !== 'string') throw new Refusal('invalid_request', 'no sub_id');
    const events = payload.events as Record<string, Record<string, unknown>> | undefined;
    const types = Object.keys(events ?? {});
    if (types.length !== 1) throw new Refusal('invalid_request', `expected one event, found ${types.length}`);
    return {
      jti: payload.jti,
      eventType: types[0]!,
      event: events![types[0]!]!,
      subId,
      claims: payload,
      header: { alg: protectedHeader.alg, kid: protectedHeader.kid, typ: protectedHeader.typ },
    };
  }

  async function read(request: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString('utf8');
  }

  function answer(response: ServerResponse, status: number, body?: unknown, headers: Record<string, string> = {}) {
    response.writeHead(status, body === undefined ? headers : { 'content-type': 'application/json', ...headers });
    response.end(body === undefined ? undefined : JSON.stringify(body));
  }

  async function receive(request: IncomingMessage, response: ServerResponse) {
    const body = await read(request);
    const jtiOf = () => {
      try {
        const claims = JSON.parse(Buffer.from(body.split('.')[1] ?? '', 'base64url').toString('utf8')) as JWTPayload;
        return typeof claims.jti === 'string' ? claims.jti : null;
      } catch {
        return null;
      }
    };
    const fault = faults.shift();
    if (fault) {
      state.deliveries.push({ jti: jtiOf(), status: fault.status });
      const headers: Record<string, string> =
        fault.retryAfterSeconds !== undefined ? { 'retry-after': String(fault.retryAfterSeconds) } : {};
      return answer(response, fault.status, { err: 'unavailable', description: 'the receiver is busy' }, headers);
    }
    try {
      if (options.authorization && request.headers.authorization !== options.authorization)
        throw new Refusal('authentication_failed', 'the Authorization header is missing or wrong');
      if (request.headers['content-type']?.split(';')[0]?.trim() !== SET_MEDIA_TYPE)
        throw new Refusal('invalid_request', `the body must be ${SET_MEDIA_TYPE}`);
      const received = await verify(body.trim());
      if (state.accepted.some((event) => event.jti === received.jti)) state.duplicates.push(received.jti);
      else state.accepted.push(received);
      state.deliveries.push({ jti: received.jti, status: 202 });
      if (loseAnswer) {
        loseAnswer = false;
        request.socket.destroy();
        return;
      }
      return answer(response, 202);
    } catch (err) {
      if (!(err instanceof Refusal)) {
        // A receiver that cannot reach the transmitter's metadata or keys cannot verify: try later.
        state.deliveries.push({ jti: jtiOf(), status: 503 });
        const description = `cannot verify the SET now: ${(err as Error).message}`;
        return answer(response, 503, { err: 'unavailable', description });
      }
      state.deliveries.push({ jti: jtiOf(), status: 400 });
      state.rejected.push({ err: err.err, description: err.message });
      return answer(response, 400, { err: err.err, description: err.message });
    }
  }

  const server = createServer((request, response) => {
    const path = new URL(request.url ?? '/', 'http://receiver').pathname;
    const handle =
      request.method === 'POST' && path === '/events'
        ? receive(request, response)
        : request.method === 'GET' && path === '/_sandbox/state'
          ? Promise.resolve(answer(response, 200, state))
          : Promise.resolve(answer(response, 404, { err: 'not_found', description: 'POST /events' }));
    handle.catch((err: Error) => answer(response, 500, { err: 'internal', description: err.message }));
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    endpoint: `${url}/events`,
    get state() {
      return state;
    },
    failNext(count, status, retryAfterSeconds) {
      for (let i = 0; i < count; i++) faults.push({ status, retryAfterSeconds });
    },
    loseNextAnswer() {
      loseAnswer = true;
    },
    reset() {
      state = fresh();
      faults.length = 0;
      loseAnswer = false;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
