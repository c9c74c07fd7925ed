/**
 * The HTTP API: the HR trigger (signed webhooks) and the operators', managers' and auditors'
 * interface, on Fastify. `buildApi(deps)` assembles the app; `startApi(deps)` listens on
 * OFFBOARD_API_HOST (127.0.0.1) : OFFBOARD_API_PORT (8080). Run directly
 * (`tsx client/http/server.ts`) it is the API process: config from OFFBOARD_CONFIG (its `api`
 * section), Temporal at TEMPORAL_ADDRESS, PostgreSQL at DATABASE_URL (else the embedded one).
 *
 * Every body is read as raw bytes (one catch-all content-type parser, `parseAs: 'buffer'`):
 * webhook signatures are checked over exactly the bytes received, and each route parses JSON
 * itself after its own checks. Logs are one line per request (method, route, status, time, the
 * token's subject): never a body, a header value, a token or an email.
 */
import { randomUUID } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import type { AddressInfo } from 'node:net';
import { Counter, Registry } from 'prom-client';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify';
import { isGrpcServiceError, ServiceError, type Client } from '@temporalio/client';
import type pg from 'pg';
import { createAuditStore } from '../../activities/audit.js';
import type { Policy } from '../../model/policy.js';
import { loadConfig, type OffboardConfig } from '../../workers/config.js';
import { createPool, databaseTarget, describeDatabase, migrate } from '../../workers/database.js';
import { logger } from '../../workers/logger.js';
import { connectClient } from '../temporal.js';
import { createAuthenticator, replyError, type ApiConfig } from './auth.js';
import { createHrEventsStore, HR_EVENTS_MIGRATIONS } from './hr-events-store.js';
import {
  registerHrWebhookRoutes,
  rejectDelivery,
  REJECTED_OFFBOARDING_ID,
  sourceOfRoute,
  WEBHOOK_BODY_LIMIT,
} from './hr-webhook.js';
import { createRejectionLedger } from './rejection-ledger.js';
import { buildOpenApi } from './openapi.js';
import { OPERATOR_BODY_LIMIT, registerOperatorRoutes } from './operators.js';
import { registerSharedSignalsRoutes, sharedSignalsOperations, type SharedSignalsApi } from './ssf.js';
import { sharedSignalsOf } from '../../workers/ssf-signing-key.js';

export interface ApiDeps {
  client: Client;
  pool: pg.Pool;
  config: ApiConfig;
  /**
   * The worker's policy, from the same config file the worker loads: a request the worker could
   * not plan (an unknown `newRole`) is refused with 400 before the 202.
   */
  policy: Policy;
  logger?: FastifyBaseLogger;
  /** Where offboardings start; default `offboarding`. */
  taskQueue?: string;
  /** false where the Temporal server lacks offboard's search attributes. */
  searchAttributes?: boolean;
  now?: () => number;
  /** Deadline for each Temporal call made for a request (default 15 s). */
  temporalTimeoutMs?: number;
  /** Audit rows of their own for refused HR deliveries, per sender and window (default 60 a minute). */
  rejectionAuditLimit?: { limit: number; windowMs: number };
  /** The Shared Signals transmitter's metadata and JWKS to publish (client/http/ssf.ts); none: not served. */
  sharedSignals?: SharedSignalsApi;
}

const registered = new WeakMap<FastifyInstance, string[]>();
/** `METHOD /path` of every route the app serves (HEAD twins left out); the OpenAPI test uses it. */
export const registeredRoutes = (app: FastifyInstance): string[] => registered.get(app) ?? [];

const GRPC_UNAVAILABLE = 14;
const GRPC_DEADLINE_EXCEEDED = 4;

function withTimeout<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export function buildApi(deps: ApiDeps): FastifyInstance {
  const log = deps.logger ?? logger.child({ component: 'api' });
  const now = deps.now ?? Date.now;
  const temporalTimeoutMs = deps.temporalTimeoutMs ?? 15_000;
  const app = Fastify({
    loggerInstance: log,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: OPERATOR_BODY_LIMIT,
    return503OnClosing: true,
  }) as unknown as FastifyInstance;

  const routes: string[] = [];
  registered.set(app, routes);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) if (method !== 'HEAD') routes.push(`${method} ${route.url}`);
  });

  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

  const audit = createAuditStore(deps.pool);
  const hrEvents = createHrEventsStore(deps.pool);
  const auth = createAuthenticator(deps.config.tokens);
  const rejections = createRejectionLedger({
    audit,
    log,
    now,
    offboardingId: REJECTED_OFFBOARDING_ID,
    ...deps.rejectionAuditLimit,
  });
  app.addHook('onClose', async () => rejections.close());
  const hrDeps = {
    client: deps.client,
    hrEvents,
    audit,
    rejections,
    config: deps.config,
    policy: deps.policy,
    log,
    taskQueue: deps.taskQueue,
    searchAttributes: deps.searchAttributes,
    now,
    temporalTimeoutMs,
  };

  // Prometheus: every answer by route and status, and HR deliveries by how they ended.
  const registry = new Registry();
  const requests = new Counter({
    name: 'offboard_api_requests_total',
    help: 'API answers by route and status',
    labelNames: ['route', 'status'],
    registers: [registry],
  });
  const hrDeliveries = new Counter({
    name: 'offboard_hr_events_total',
    help: 'HR deliveries: accepted (202) or rejected (4xx/5xx), by source route',
    labelNames: ['route', 'result'],
    registers: [registry],
  });
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    requests.inc({ route, status: String(reply.statusCode) });
    if (route.startsWith('/v1/hr/') && request.method === 'POST')
      hrDeliveries.inc({ route, result: reply.statusCode === 202 ? 'accepted' : 'rejected' });
  });
  app.get('/metrics', async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()));

  app.addHook('onResponse', async (request, reply) => {
    request.log.info(
      {
        method: request.method,
        route: request.routeOptions.url ?? null,
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
        subject: request.principal?.subject,
        role: request.principal?.role,
      },
      'request',
    );
  });

  app.setNotFoundHandler((_request, reply) =>
    replyError(reply, 404, 'not_found', 'no such endpoint; GET /openapi.json lists them'),
  );

  app.setErrorHandler(async (error: FastifyError, request, reply) => {
    const grpc: unknown = error;
    const unavailable =
      // Temporal: the SDK wraps transport failures (unavailable, deadline exceeded) in ServiceError.
      grpc instanceof ServiceError ||
      (isGrpcServiceError(grpc) && (grpc.code === GRPC_UNAVAILABLE || grpc.code === GRPC_DEADLINE_EXCEEDED)) ||
      // pg: the database refused or dropped the connection, or the pool timed out waiting for one.
      ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', '57P01', '57P03'].includes(String(error.code)) ||
      /timeout exceeded when trying to connect|Connection terminated/.test(error.message);
    const status =
      error.statusCode && error.statusCode >= 400 && error.statusCode < 600
        ? error.statusCode
        : unavailable
          ? 503
          : 500;
    const [code, detail] =
      status === 413
        ? [
            'payload_too_large',
            `the body is larger than ${request.routeOptions.bodyLimit ?? OPERATOR_BODY_LIMIT} bytes`,
          ]
        : status === 503
          ? ['unavailable', 'Temporal or the database did not answer; retry later']
          : status >= 500
            ? ['internal', 'the request failed; the API log has the reason']
            : ['bad_request', error.message];
    if (status >= 500)
      request.log.error(
        { route: request.routeOptions.url, error: error.name, reason: error.message },
        'request failed',
      );
    const source = sourceOfRoute(request.routeOptions.url);
    if (source) return rejectDelivery(hrDeps, request, reply, source, { status, error: code, detail });
    return replyError(reply, status, code, detail);
  });

  app.get('/healthz', async (_request, reply) => {
    const check = (work: () => Promise<unknown>) =>
      work().then(
        () => 'ok',
        (err: Error) => `unreachable: ${err.message}`,
      );
    const [temporal, database] = await Promise.all([
      check(() => deps.client.withDeadline(Date.now() + 3_000, () => deps.client.workflowService.getSystemInfo({}))),
      check(() => withTimeout(hrEvents.check(), 3_000, 'the database')),
    ]);
    const ok = temporal === 'ok' && database === 'ok';
    return reply.code(ok ? 200 : 503).send({ ok, temporal, database });
  });

  const openapi = buildOpenApi(deps.sharedSignals ? sharedSignalsOperations(deps.sharedSignals.issuer) : []);
  if (deps.sharedSignals) registerSharedSignalsRoutes(app, deps.sharedSignals);
  app.get('/openapi.json', async (_request, reply) => reply.send(openapi));

  registerHrWebhookRoutes(app, hrDeps);
  registerOperatorRoutes(app, { client: deps.client, audit, hrEvents, auth, temporalTimeoutMs });

  // Dedupe records past their retention go at start and then daily; the audit says how many.
  async function pruneHrEvents() {
    const before = new Date(now() - deps.config.hrEventsRetention);
    try {
      const deleted = await hrEvents.prune(before);
      if (deleted === 0) return;
      log.info({ deleted, before: before.toISOString() }, 'hr event records past their retention deleted');
      await audit.append({
        id: `${REJECTED_OFFBOARDING_ID}/${randomUUID()}`,
        occurredAt: new Date(now()).toISOString(),
        offboardingId: REJECTED_OFFBOARDING_ID,
        employeeId: 'unknown',
        system: null,
        action: 'hr_events_pruned',
        outcome: 'deleted',
        actor: 'hr-webhook',
        details: {
          deleted,
          receivedBefore: before.toISOString(),
          retentionDays: Math.round(deps.config.hrEventsRetention / 86_400_000),
        },
      });
    } catch (err) {
      log.error(
        { reason: (err as Error).message },
        'could not delete hr event records past their retention; retrying tomorrow',
      );
    }
  }
  let pruning: NodeJS.Timeout | undefined;
  app.addHook('onReady', async () => {
    await pruneHrEvents();
    pruning = setInterval(() => void pruneHrEvents(), 86_400_000);
    pruning.unref();
  });
  app.addHook('onClose', async () => clearInterval(pruning));
  return app;
}

export interface RunningApi {
  app: FastifyInstance;
  /** e.g. http://127.0.0.1:8080 */
  url: string;
  close(): Promise<void>;
}

/** Builds the app and listens on options, else OFFBOARD_API_HOST : OFFBOARD_API_PORT, else 127.0.0.1:8080. */
export async function startApi(
  deps: ApiDeps,
  options: { host?: string; port?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunningApi> {
  const env = options.env ?? process.env;
  const host = options.host ?? env.OFFBOARD_API_HOST ?? '127.0.0.1';
  const port = options.port ?? Number(env.OFFBOARD_API_PORT ?? 8080);
  if (!Number.isInteger(port) || port < 0 || port > 65_535)
    throw new Error(`OFFBOARD_API_PORT must be a port number, not ${env.OFFBOARD_API_PORT}`);
  const app = buildApi(deps);
  await app.listen({ host, port });
  const address = app.server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return { app, url: `http://${shownHost}:${address.port}`, close: () => app.close() };
}

/** The API process: config, database, Temporal, then listen until SIGINT/SIGTERM. */
async function main() {
  const config: OffboardConfig & { api?: ApiConfig } = loadConfig();
  if (!config.api)
    throw new Error('the config has no `api` section: add api.tokens and api.webhookSecrets (see README, "HTTP API")');
  const target = databaseTarget();
  const pool = createPool(target);
  try {
    await migrate(pool);
    for (const statement of HR_EVENTS_MIGRATIONS) await pool.query(statement);
  } catch (err) {
    throw new Error(`cannot reach the database at ${describeDatabase(target.url)}: ${(err as Error).message}`);
  }
  const transmitter = sharedSignalsOf(config, { log: (message) => logger.warn(message) });
  const sharedSignals = transmitter && { issuer: transmitter.issuer, jwks: transmitter.jwks };
  const client = await connectClient();
  const api = await startApi({ client, pool, config: config.api, sharedSignals, policy: config.policy });
  logger.info(
    {
      url: api.url,
      tokens: config.api.tokens.length,
      webhookSecrets: config.api.webhookSecrets.length,
      webhookPublicKeys: config.api.webhookPublicKeys.length,
      bamboohr: Boolean(config.api.bamboohrSecret),
      webhookBodyLimit: WEBHOOK_BODY_LIMIT,
      sharedSignals: sharedSignals ? { issuer: sharedSignals.issuer, kid: transmitter!.key.kid } : false,
    },
    'api listening',
  );
  // Once, whichever signal comes first: a Ctrl-C in a terminal also sends SIGINT to the whole
  // process group, and npm start's SIGTERM can follow it (a second pool.end() throws).
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      await api.close();
      await client.connection.close();
      await pool.end();
      logger.info('api stopped');
    })());
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    logger.error({ reason: err instanceof Error ? err.message : String(err) }, 'api failed to start');
    process.exit(1);
  });
}
