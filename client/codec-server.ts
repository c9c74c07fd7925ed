/**
 * The codec server: lets the Temporal UI (and `temporal workflow show --codec-endpoint`) show
 * payloads that the encryption codec made unreadable to the Temporal server. It speaks Temporal's
 * remote codec protocol: `POST <base>/encode` and `POST <base>/decode`, both taking and answering
 * `{ "payloads": [{ "metadata": { "<key>": "<base64>" }, "data": "<base64>" }] }` (proto3 JSON, so
 * every bytes value, metadata included, is base64).
 *
 * Whoever can call /decode can read every name and email in the history, so:
 *   - CORS names exactly the UI's origin; a browser request from any other origin is refused.
 *   - A bearer token is required. Setting it up for operators:
 *       * Temporal CLI: `temporal workflow show --codec-endpoint http://HOST:PORT/codec --codec-auth "Bearer $TOKEN"`.
 *       * Temporal UI with SSO: the UI forwards the signed-in user's access token only when told
 *         to (ui-server config `codec.passAccessToken: true`, env `TEMPORAL_CODEC_PASS_ACCESS_TOKEN=true`,
 *         or "Pass access token" in the UI's codec settings). That token is the user's OIDC token,
 *         not a shared secret: pass `auth: { verify }` to check it against your identity provider.
 *         Cookies reach this server only with `codec.includeCredentials: true`.
 *       * A static token (`auth: { token }`) suits the CLI and scripts.
 *   - `auth: 'none'` exists for the local dev server, whose UI has no login and so has no token to
 *     forward. It must be passed deliberately, and `startCodecServer` accepts it on loopback only.
 * The X-Namespace header the UI sends is accepted and ignored: one keyring serves every namespace.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { z } from 'zod';
import { PayloadCodecError } from '../workers/codec.js';

export type CodecAuth =
  /** No authentication: only for a codec server bound to loopback in local development. */
  | 'none'
  /** A shared secret, sent as `Authorization: Bearer <token>`. */
  | { token: string }
  /** Your own check, e.g. of the OIDC access token the Temporal UI forwards. */
  | { verify: (bearerToken: string) => boolean | Promise<boolean> };

export interface CodecHandlerOptions {
  codec: PayloadCodec;
  /** The Temporal UI's origin(s), exactly as the browser sends them, e.g. `http://127.0.0.1:8233`. */
  allowedOrigin: string | readonly string[];
  auth: CodecAuth;
  /** The path the endpoints live under; the UI's codec endpoint is this URL. Default `/codec`. */
  basePath?: string;
  /** Request bodies beyond this are refused (413). Default 8 MiB: Temporal's own payload limit is 2 MiB. */
  maxBodyBytes?: number;
}

export type CodecHandler = (req: IncomingMessage, res: ServerResponse) => Promise<boolean>;

/** One JSON payload: base64 of the bytes, in either alphabet, padding optional (proto3 JSON accepts all). */
const base64Schema = z.string().regex(/^[A-Za-z0-9+/_-]*={0,2}$/, 'must be base64');
const jsonPayloadSchema = z.object({
  metadata: z.record(z.string(), base64Schema).nullish(),
  data: base64Schema.nullish(),
});
const requestSchema = z.object({ payloads: z.array(jsonPayloadSchema) });
type JSONPayload = z.infer<typeof jsonPayloadSchema>;

const toBytes = (base64: string) => new Uint8Array(Buffer.from(base64, 'base64'));
// Decoded payloads carry Buffers, Uint8Arrays or (from protobufjs) plain byte arrays: copy whichever it is.
const toBase64 = (bytes: Uint8Array | ArrayLike<number> | null | undefined) =>
  Buffer.from(Uint8Array.from(bytes ?? [])).toString('base64');

function fromJSON(json: JSONPayload): Payload {
  const metadata = Object.fromEntries(Object.entries(json.metadata ?? {}).map(([k, v]) => [k, toBytes(v)]));
  return { metadata, data: toBytes(json.data ?? '') };
}

function toJSON(payload: Payload): { metadata: Record<string, string>; data: string } {
  const metadata = Object.fromEntries(Object.entries(payload.metadata ?? {}).map(([k, v]) => [k, toBase64(v)]));
  return { metadata, data: toBase64(payload.data ?? new Uint8Array()) };
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

async function readBody(req: IncomingMessage, limit: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new HttpError(413, `request body exceeds ${limit} bytes; send fewer payloads per request`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Compares digests so that neither the content nor the length of the token leaks through timing. */
function sameSecret(given: string, expected: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

async function authorized(req: IncomingMessage, auth: CodecAuth): Promise<boolean> {
  if (auth === 'none') return true;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  if (!match) return false;
  const token = match[1]!;
  if ('token' in auth) return sameSecret(token, auth.token);
  try {
    return await auth.verify(token);
  } catch {
    return false;
  }
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = body === undefined ? '' : JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    ...(text ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) } : {}),
    'Cache-Control': 'no-store',
  });
  res.end(text);
}

/**
 * A request handler for the codec endpoints, framework-free so it can sit in front of any
 * `node:http` server (the operator API's, or `startCodecServer`'s). Resolves to false, having
 * written nothing, when the path is not one of its own.
 */
export function createCodecHandler(options: CodecHandlerOptions): CodecHandler {
  const { codec, auth, maxBodyBytes = 8 * 1024 * 1024 } = options;
  if (auth !== 'none' && 'token' in auth && auth.token.length < 16) {
    throw new Error(
      'the codec server token is shorter than 16 characters; use a random one, e.g. `openssl rand -base64 32`',
    );
  }
  const origins = new Set(typeof options.allowedOrigin === 'string' ? [options.allowedOrigin] : options.allowedOrigin);
  for (const origin of origins) {
    if (origin === '*' || !/^https?:\/\/[^/]+$/.test(origin)) {
      throw new Error(
        `allowedOrigin "${origin}" must be the UI's exact origin (scheme://host[:port], no path, no "*"), e.g. http://127.0.0.1:8233`,
      );
    }
  }
  const basePath = (options.basePath ?? '/codec').replace(/\/+$/, '');
  const routes = new Map<string, 'encode' | 'decode'>([
    [`${basePath}/encode`, 'encode'],
    [`${basePath}/decode`, 'decode'],
  ]);

  return async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://codec.invalid').pathname;
    const operation = routes.get(path);
    if (!operation) return false;

    const origin = req.headers.origin;
    const cors: Record<string, string> = { Vary: 'Origin' };
    try {
      // Browsers always send Origin on cross-origin calls; the CLI and scripts send none.
      if (origin !== undefined) {
        if (!origins.has(origin))
          throw new HttpError(
            403,
            `origin ${origin} may not use this codec server; it serves ${[...origins].join(', ')}`,
          );
        Object.assign(cors, {
          'Access-Control-Allow-Origin': origin,
          'Access-Control-Allow-Credentials': 'true',
          'Access-Control-Allow-Headers': 'Content-Type, Authorization, X-Namespace',
          'Access-Control-Allow-Methods': 'POST, OPTIONS',
          'Access-Control-Max-Age': '600',
        });
      }
      if (req.method === 'OPTIONS') {
        send(res, 204, undefined, cors);
        return true;
      }
      if (req.method !== 'POST') throw new HttpError(405, `use POST ${path}`, { Allow: 'POST, OPTIONS' });
      if (!(await authorized(req, auth))) {
        throw new HttpError(401, 'a valid "Authorization: Bearer <token>" header is required', {
          'WWW-Authenticate': 'Bearer realm="offboard-codec"',
        });
      }
      let body: unknown;
      try {
        body = JSON.parse(await readBody(req, maxBodyBytes));
      } catch (err) {
        if (err instanceof HttpError) throw err;
        throw new HttpError(400, 'the body is not JSON; send {"payloads": [...]}');
      }
      const parsed = requestSchema.safeParse(body);
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        throw new HttpError(
          400,
          `the body must be {"payloads": [{"metadata": {key: base64}, "data": base64}]}: ${issue ? `${issue.path.join('.') || '(root)'}: ${issue.message}` : 'invalid'}`,
        );
      }
      const payloads = parsed.data.payloads.map(fromJSON);
      let result: Payload[];
      try {
        result = operation === 'encode' ? await codec.encode(payloads) : await codec.decode(payloads);
      } catch (err) {
        // Decryption errors name the key id and what to check; anything else stays on this side.
        if (err instanceof PayloadCodecError) throw new HttpError(422, err.message);
        throw new HttpError(500, `the codec failed to ${operation} the payloads`);
      }
      send(res, 200, { payloads: result.map(toJSON) }, cors);
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      // The CORS headers (when the origin is allowed) go on errors too, so that the UI can show why it was refused.
      send(res, err.status, { error: err.message }, { ...cors, ...err.headers });
    }
    return true;
  };
}

export interface CodecServer {
  /** The codec endpoint to configure in the UI, e.g. `http://127.0.0.1:8081/codec`. */
  url: string;
  port: number;
  server: Server;
  close(): Promise<void>;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/**
 * A server for the codec endpoints alone, e.g. for `npm start` to name in
 * `temporal server start-dev --ui-codec-endpoint <url>`. Every other path answers 404.
 */
export async function startCodecServer(
  options: CodecHandlerOptions & { port?: number; host?: string },
): Promise<CodecServer> {
  const { port = 0, host = '127.0.0.1', ...handlerOptions } = options;
  if (handlerOptions.auth === 'none' && !LOOPBACK.has(host)) {
    throw new Error(
      `the codec server may run without authentication only on loopback (127.0.0.1, ::1, localhost), not on ${host}: configure a token`,
    );
  }
  const handle = createCodecHandler(handlerOptions);
  const server = createServer((req, res) => {
    handle(req, res)
      .then((handled) => {
        if (!handled)
          send(res, 404, {
            error: `not found; the codec endpoints are ${handlerOptions.basePath ?? '/codec'}/encode and /decode`,
          });
      })
      .catch(() => {
        if (!res.headersSent) send(res, 500, { error: 'the codec server failed' });
        else res.destroy();
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const actual = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${actual}${(handlerOptions.basePath ?? '/codec').replace(/\/+$/, '')}`,
    port: actual,
    server,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}
