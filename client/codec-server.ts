/**
 * The codec server: lets the Temporal UI (and `temporal workflow show --codec-endpoint`) show
 * payloads that the encryption codec made unreadable to the Temporal server. It speaks Temporal's
 * remote codec protocol: `POST <base>/encode` and `POST <base>/decode`, both taking and answering
 * `{ "payloads": [{ "metadata": { "<key>": "<base64>" }, "data": "<base64>" }] }` (proto3 JSON, so
 * every bytes value, metadata included, is base64).
 *
 * Whoever can call /decode can read every name and email in the history, so every caller proves
 * who it is, and CORS names exactly the UI's origin (a browser request from any other origin is refused):
 *   - Temporal CLI and scripts: one of the HTTP API's bearer tokens (config `api.tokens`) whose
 *     role may read every offboarding (`security` or `auditor`; a manager reads only their reports,
 *     which a codec cannot tell apart): `temporal workflow show --codec-endpoint http://HOST:PORT/codec
 *     --codec-auth "Bearer $TOKEN"`.
 *   - Temporal UI with SSO: the UI forwards the signed-in user's access token only when told to
 *     (ui-server config `codec.passAccessToken: true`, env `TEMPORAL_CODEC_PASS_ACCESS_TOKEN=true`,
 *     or "Pass access token" in the UI's codec settings) and only to an https endpoint. That token
 *     is the user's OIDC token: pass `verify` to check it against your identity provider.
 *   - Temporal UI without a login (the dev server `npm start` runs): the browser has no token to
 *     forward, so the operator signs in once at `<base>/login` with an API token; the codec server
 *     sets an HttpOnly, SameSite=Strict session cookie, which the UI sends when "Include
 *     cross-origin credentials" is on in its codec settings (the UI and this server are the same
 *     site, so the cookie goes only with requests from it).
 * The X-Namespace header the UI sends is accepted and ignored: one keyring serves every namespace.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { z } from 'zod';
import { createAuthenticator } from './http/auth.js';
import type { ApiConfig, Role } from '../model/api-config.js';
import { PayloadCodecError } from '../workers/codec.js';

/** The API roles that may read every offboarding, and so may decode any payload. */
export const CODEC_ROLES: readonly Role[] = ['security', 'auditor'];

/** Who may call the codec endpoints; at least one of the two must be given. */
export interface CodecAuth {
  /** The HTTP API's tokens (config `api.tokens`); those with a role in `roles` may decode. */
  apiTokens?: ApiConfig['tokens'];
  /** Roles allowed among `apiTokens`. Default CODEC_ROLES. */
  roles?: readonly Role[];
  /** Your check of the access token the Temporal UI forwards (the signed-in user's OIDC token). */
  verify?: (bearerToken: string) => boolean | Promise<boolean>;
  /** How long a browser sign-in at `<base>/login` lasts. Default 8 hours. */
  sessionMs?: number;
}

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
// proto3 JSON leaves out an empty repeated field: the Temporal CLI sends `{}` for a query without arguments.
const requestSchema = z.object({ payloads: z.array(jsonPayloadSchema).nullish() });
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

const SESSION_COOKIE = 'offboard-codec-session';

function cookieValue(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

const LOGIN_FORM = `<form method="post"><label>API token (security or auditor role)
<input type="password" name="token" autocomplete="off" size="50"></label> <button>Sign in</button></form>`;

function sendPage(res: ServerResponse, status: number, body: string) {
  const html = `<!doctype html><title>offboard codec server</title>${body}`;
  res.writeHead(status, {
    'Content-Type': 'text/html; charset=utf-8',
    'Content-Length': Buffer.byteLength(html),
    'Cache-Control': 'no-store',
    'Content-Security-Policy': "default-src 'none'; form-action 'self'",
    'X-Frame-Options': 'DENY',
  });
  res.end(html);
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
  if (!auth.verify && !(auth.apiTokens ?? []).some((entry) => (auth.roles ?? CODEC_ROLES).includes(entry.role))) {
    throw new Error(
      `the codec server needs credentials to check: API tokens (config api.tokens) with a role of ${(auth.roles ?? CODEC_ROLES).join(' or ')}, ` +
        'or a verify hook for the access token the Temporal UI forwards',
    );
  }
  const authenticator = createAuthenticator(auth.apiTokens ?? []);
  const roles = new Set(auth.roles ?? CODEC_ROLES);
  const sessionMs = auth.sessionMs ?? 8 * 3_600_000;
  /** Browser sign-ins: session id → expiry (ms). In memory: a restart signs everyone out. */
  const sessions = new Map<string, number>();

  /** Throws 401/403 unless the request carries an allowed token, a verified UI token or a live session. */
  const requireCaller = async (req: IncomingMessage) => {
    const header = req.headers.authorization;
    const challenge = {
      'WWW-Authenticate': `Bearer realm="offboard-codec"${header === undefined ? '' : ', error="invalid_token"'}`,
    };
    if (header !== undefined) {
      const principal = authenticator.authenticate(header);
      if (principal) {
        if (roles.has(principal.role)) return;
        throw new HttpError(
          403,
          `the ${principal.role} role may not decode payloads (a codec cannot limit what it decodes to one person's offboarding); use a token with a role of ${[...roles].join(' or ')}`,
        );
      }
      const bearer = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
      if (bearer && auth.verify && (await Promise.resolve(auth.verify(bearer)).catch(() => false))) return;
      throw new HttpError(401, 'the bearer token is not valid for this codec server', challenge);
    }
    const session = cookieValue(req, SESSION_COOKIE);
    if (session && (sessions.get(session) ?? 0) > Date.now()) return;
    throw new HttpError(
      401,
      `send "Authorization: Bearer <token>" (an API token with a role of ${[...roles].join(' or ')}), or sign in at ${basePath}/login and turn on "Include cross-origin credentials" in the UI's codec settings`,
      challenge,
    );
  };
  const origins = new Set(typeof options.allowedOrigin === 'string' ? [options.allowedOrigin] : options.allowedOrigin);
  for (const origin of origins) {
    if (origin === '*' || !/^https?:\/\/[^/]+$/.test(origin)) {
      throw new Error(
        `allowedOrigin "${origin}" must be the UI's exact origin (scheme://host[:port], no path, no "*"), e.g. http://127.0.0.1:8233`,
      );
    }
  }
  const basePath = (options.basePath ?? '/codec').replace(/\/+$/, '');
  const routes = new Map<string, 'encode' | 'decode' | 'login'>([
    [`${basePath}/encode`, 'encode'],
    [`${basePath}/decode`, 'decode'],
    [`${basePath}/login`, 'login'],
  ]);

  /** The browser sign-in: a form for an API token, answered with a session cookie. */
  const login = async (req: IncomingMessage, res: ServerResponse) => {
    if (req.method === 'GET') return sendPage(res, 200, LOGIN_FORM);
    if (req.method !== 'POST') throw new HttpError(405, `use GET or POST ${basePath}/login`, { Allow: 'GET, POST' });
    const token = new URLSearchParams(await readBody(req, 4096)).get('token')?.trim() ?? '';
    const principal = authenticator.authenticate(`Bearer ${token}`);
    if (!principal || !roles.has(principal.role))
      return sendPage(
        res,
        principal ? 403 : 401,
        `<p>${principal ? `The ${principal.role} role may not decode payloads.` : 'That token is not valid.'} <a href="login">Try again</a>.</p>`,
      );
    const now = Date.now();
    for (const [id, expiry] of sessions) if (expiry <= now) sessions.delete(id);
    const id = randomBytes(32).toString('base64url');
    sessions.set(id, now + sessionMs);
    res.setHeader(
      'Set-Cookie',
      `${SESSION_COOKIE}=${id}; Path=${basePath}; HttpOnly; SameSite=Strict; Max-Age=${Math.floor(sessionMs / 1000)}`,
    );
    sendPage(
      res,
      200,
      '<p>Signed in. In the Temporal UI, open the codec server settings and turn on "Include cross-origin credentials"; payloads then show decoded.</p>',
    );
  };

  return async (req, res) => {
    const path = new URL(req.url ?? '/', 'http://codec.invalid').pathname;
    const operation = routes.get(path);
    if (!operation) return false;

    const origin = req.headers.origin;
    const cors: Record<string, string> = { Vary: 'Origin' };
    try {
      // The sign-in page is this server's own, not the UI's: a form posted from elsewhere is refused.
      if (operation === 'login') {
        if (origin !== undefined && origin !== `http://${req.headers.host}` && origin !== `https://${req.headers.host}`)
          throw new HttpError(403, `sign in from ${basePath}/login on this server itself`);
        await login(req, res);
        return true;
      }
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
      await requireCaller(req);
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
      const payloads = (parsed.data.payloads ?? []).map(fromJSON);
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

/**
 * A server for the codec endpoints alone, e.g. for `npm start` to name in
 * `temporal server start-dev --ui-codec-endpoint <url>`. Every other path answers 404.
 */
export async function startCodecServer(
  options: CodecHandlerOptions & { port?: number; host?: string },
): Promise<CodecServer> {
  const { port = 0, host = '127.0.0.1', ...handlerOptions } = options;
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
