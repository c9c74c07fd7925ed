/**
 * `npm start`: the whole service on this machine, on its embedded defaults.
 *   - Temporal dev server (state in .data/temporal.db), UI on http://127.0.0.1:8233
 *   - the audit database: embedded PostgreSQL (PGlite, .data/audit-db) unless DATABASE_URL is set
 *   - unless OFFBOARD_CONFIG is set: slapd seeded with the sample organisation (.data/slapd), a
 *     PostgreSQL "warehouse" with a login role per sample person (.data/warehouse-pg), and the
 *     GitHub, Slack, Salesforce and SCIM stand-ins (in memory: they start afresh each time)
 *   - the worker
 * It supervises: each server counts as up when it answers (a query, a bind, a health check), a
 * child that dies stops everything with the reason printed, pid files under .data/run let the next
 * start stop what a crashed run left behind, and Ctrl-C stops everything in order. The next
 * `npm start` continues with the same state (OFFBOARD_DATA_DIR moves it from .data).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { parse as parseYaml } from 'yaml';
import { EMBEDDED_DB_PORT_DEFAULT, describeDatabase, startEmbeddedDatabase } from '../workers/database.js';
import pg from 'pg';
import {
  httpAnswers,
  projectRoot,
  readToolchain,
  startPostgres,
  startSlapd,
  startTemporalDevServer,
  waitUntilAnswers,
  type PostgresInstance,
  type SlapdInstance,
  type Supervised,
} from './services.js';
import { forgetProcess, recordProcess, runningSupervisor, stopLeftovers, whoListens } from './leftovers.js';
import { seedWarehouseRoles, WAREHOUSE_ARCHIVE_ROLE } from '../sandbox/postgres.js';
import { startSaasSandboxes, type SaasSandboxes } from '../sandbox/index.js';
import { EncryptionCodec, keyringFromEnv, PAYLOAD_KEYS_ENV } from '../workers/codec.js';
import { startCodecServer } from '../client/codec-server.js';
import { loadConfig } from '../workers/config.js';
import { connect } from 'node:net';
import { keycloakWanted, startSandboxKeycloak } from './keycloak-sandbox.js';

const dataDir = process.env.OFFBOARD_DATA_DIR ? resolve(process.env.OFFBOARD_DATA_DIR) : join(projectRoot, '.data');
const runDir = join(dataDir, 'run');
const env = process.env;
const temporalPort = Number(env.OFFBOARD_TEMPORAL_PORT ?? 7233);
const uiPort = Number(env.OFFBOARD_TEMPORAL_UI_PORT ?? 8233);
const ldapPort = Number(env.OFFBOARD_LDAP_PORT ?? 3389);
const warehousePort = Number(env.OFFBOARD_WAREHOUSE_PORT ?? 15433);
const dbPort = Number(env.OFFBOARD_AUDIT_DB_PORT ?? env.OFFBOARD_EMBEDDED_DB_PORT ?? EMBEDDED_DB_PORT_DEFAULT);
const codecPort = Number(env.OFFBOARD_CODEC_PORT ?? 8081);
const apiPort = Number(env.OFFBOARD_API_PORT ?? 8080);
const keycloakPort = Number(env.OFFBOARD_KEYCLOAK_PORT ?? 8180);

/** The local API, as the issuer of the Security Event Tokens sent to the sandbox receiver. */
const sharedSignalsIssuer = `http://127.0.0.1:${apiPort}`;
const metricsPort = Number(env.OFFBOARD_METRICS_PORT ?? 9464);

const say = (line: string) => process.stdout.write(`[offboard] ${line}\n`);

async function portTaken(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

interface SandboxSecrets {
  adminPassword: string;
  servicePassword: string;
  /** Standard Webhooks secret for the HR webhook. */
  webhookSecret: string;
  /** A bearer token per API role, for trying the API locally. */
  apiTokens: Record<'security' | 'manager' | 'auditor' | 'hrSystem', string>;
}

/** Sandbox secrets are made once and kept under .data (mode 600), so a restart can bind again. */
function sandboxSecrets(): SandboxSecrets {
  const path = join(dataDir, 'sandbox-secrets.json');
  const random = (bytes: number) => randomBytes(bytes).toString('base64url');
  const kept = (existsSync(path) ? JSON.parse(readFileSync(path, 'utf8')) : {}) as Partial<SandboxSecrets>;
  // Fields added in later versions are filled in without replacing the ones already in use.
  const secrets: SandboxSecrets = {
    adminPassword: kept.adminPassword ?? random(18),
    servicePassword: kept.servicePassword ?? random(18),
    webhookSecret: kept.webhookSecret ?? `whsec_${randomBytes(32).toString('base64')}`,
    apiTokens: kept.apiTokens ?? {
      security: random(32),
      manager: random(32),
      auditor: random(32),
      hrSystem: random(32),
    },
  };
  writeFileSync(path, JSON.stringify(secrets, null, 2), { mode: 0o600 });
  return secrets;
}

/**
 * The local payload key, made once and kept in .data (mode 600) so that restarts, and the CLI in
 * another shell, read what earlier runs wrote. Production sets OFFBOARD_PAYLOAD_KEYS instead.
 */
function localPayloadKeys(): string {
  const path = join(dataDir, 'payload-keys');
  if (!existsSync(path)) writeFileSync(path, `local-1:${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  return readFileSync(path, 'utf8').trim();
}

/** The sandbox config: the example policy, the directory at the local slapd, SaaS at the stand-ins. */
function writeSandboxConfig(slapd: SlapdInstance, warehouse: PostgresInstance, saas: SaasSandboxes): string {
  const token = (name: string) => ({ env: `OFFBOARD_SANDBOX_API_TOKEN_${name}` });
  const example = parseYaml(readFileSync(join(projectRoot, 'config', 'offboard.example.yaml'), 'utf8')) as {
    policy: unknown;
  };
  const config = {
    systems: {
      directory: {
        type: 'ldap',
        url: slapd.url,
        bindDn: slapd.serviceDn,
        bindPassword: { env: 'OFFBOARD_SANDBOX_LDAP_PASSWORD' },
        peopleBase: slapd.peopleBase,
        groupsBase: slapd.groupsBase,
        employeeIdAttribute: 'employeeNumber',
      },
      // A local cluster on loopback with trust auth: its superuser URL holds no password.
      warehouse: {
        type: 'postgres',
        url: { env: 'OFFBOARD_SANDBOX_WAREHOUSE_URL' },
        roleName: '{employeeId}',
        reassignOwnedTo: WAREHOUSE_ARCHIVE_ROLE,
      },
      ...saas.systems,
    },
    policy: example.policy,
    notifications: saas.notifications,
    // The local API is the Shared Signals transmitter; its development key is made in .data.
    sharedSignals: { issuer: sharedSignalsIssuer },
    api: {
      tokens: [
        { subject: 'sandbox-security', role: 'security', token: token('SECURITY') },
        {
          subject: 'sandbox-manager',
          role: 'manager',
          token: token('MANAGER'),
          reports: ['E1001', 'E1002', 'E1003', 'E1004', 'E1005'],
        },
        { subject: 'sandbox-auditor', role: 'auditor', token: token('AUDITOR') },
        { subject: 'sandbox-hris', role: 'hr-system', token: token('HR_SYSTEM') },
      ],
      webhookSecrets: [{ env: 'OFFBOARD_SANDBOX_WEBHOOK_SECRET' }],
    },
  };
  const path = join(dataDir, 'offboard.sandbox.yaml');
  writeFileSync(
    path,
    `# Written by npm start for the local sandbox; edit config/offboard.example.yaml instead.\n${stringify(config)}`,
  );
  return path;
}

/** A refusal to start that names what is wrong and what to do; printed without a stack. */
class StartRefused extends Error {}

/** Refuses a port something else holds, naming the holder when `ss` can. */
async function ensurePortFree(port: number, what: string, variable: string) {
  if (!(await portTaken(port))) return;
  const holder = whoListens(port);
  throw new StartRefused(
    `port ${port} (for ${what}) is in use${holder ? ` by ${holder}` : ''}, which this checkout's npm start did not start. Stop it, or set ${variable} to a free port.`,
  );
}

/**
 * Where the audit trail lives: a kept PostgreSQL cluster (.data/audit-pg) wherever the server
 * binaries are installed, else the embedded PGlite (.data/audit-db). A checkout whose trail is
 * already in PGlite keeps it there rather than start a second, empty one. OFFBOARD_AUDIT_DB
 * (postgres | pglite) decides instead.
 */
function auditDatabaseKind(): { kind: 'postgres' | 'pglite'; why: string } {
  const chosen = env.OFFBOARD_AUDIT_DB;
  if (chosen === 'postgres' || chosen === 'pglite') return { kind: chosen, why: 'OFFBOARD_AUDIT_DB' };
  if (chosen) throw new StartRefused(`OFFBOARD_AUDIT_DB is "${chosen}": set it to postgres or pglite, or unset it`);
  if (existsSync(join(dataDir, 'audit-db')) && !existsSync(join(dataDir, 'audit-pg')))
    return {
      kind: 'pglite',
      why: 'the audit trail of earlier runs is in .data/audit-db; OFFBOARD_AUDIT_DB=postgres starts a new one in PostgreSQL',
    };
  const postgresBin = readToolchain().postgresBin;
  if (postgresBin && existsSync(join(postgresBin, 'postgres'))) return { kind: 'postgres', why: 'default' };
  return { kind: 'pglite', why: 'no PostgreSQL server binaries installed' };
}

async function main() {
  mkdirSync(dataDir, { recursive: true });
  const stops: { what: string; stop: () => Promise<void> }[] = [];
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    say('stopping…');
    // Last started, first stopped: the API and the worker go before the Temporal server and the
    // databases they need to shut down cleanly.
    for (const { what, stop } of stops.reverse())
      await stop().catch((err: Error) => say(`while stopping ${what}: ${err.message}`));
    forgetProcess(runDir, 'npm-start');
    say('stopped');
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));
  process.on('SIGHUP', () => void stopAll(0));
  // Whatever goes wrong in this process, the servers it started are stopped, not orphaned.
  const internalError = (err: unknown) => {
    say(`internal error: ${err instanceof Error ? err.message : String(err)}; stopping everything`);
    void stopAll(1);
  };
  process.on('uncaughtException', internalError);
  process.on('unhandledRejection', internalError);

  /** Keeps a pid file for a child while it runs, and stops everything when it dies unasked. */
  const supervise = (name: string, what: string, child: Supervised, stop: () => Promise<void>) => {
    if (child.pid) recordProcess(runDir, name, what, child.pid, child.stopSignal);
    child.onUnexpectedExit((reason) => {
      if (stopping) return;
      say(`${reason}; stopping everything`);
      void stopAll(1);
    });
    stops.push({
      what,
      stop: async () => {
        await stop();
        forgetProcess(runDir, name);
      },
    });
  };

  /** The worker and the API: Node children in their own process group, stopped with SIGTERM. */
  const spawnNode = (
    name: string,
    what: string,
    script: string,
    childEnv: NodeJS.ProcessEnv,
    readyLine: string,
    nodeOptions: string[] = [],
  ) => {
    const args = [...nodeOptions, '--import', 'tsx', join(projectRoot, ...script.split('/'))];
    const child: ChildProcess = spawn(process.execPath, args, {
      env: childEnv,
      stdio: ['ignore', 'inherit', 'pipe'],
      detached: true,
    });
    // Its log (stderr) is passed through; the line that says it is serving is watched for.
    let seen = '';
    let ready = false;
    let tail = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      tail = (tail + chunk.toString()).slice(-2_000);
      if (!ready) {
        seen = (seen + chunk.toString()).slice(-4_000);
        ready = seen.includes(`"msg":"${readyLine}"`);
      }
    });
    let expected = false;
    const listeners: ((reason: string) => void)[] = [];
    child.once('exit', (code, signal) => {
      if (expected) return;
      const reason = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      for (const listener of listeners) listener(`${what} (pid ${child.pid}) ${reason}`);
    });
    supervise(
      name,
      what,
      { pid: child.pid, stopSignal: 'SIGTERM', onUnexpectedExit: (listener) => void listeners.push(listener) },
      () =>
        new Promise<void>((resolve) => {
          expected = true;
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    );
    return {
      child,
      tail: () => tail,
      waitReady: (timeoutMs: number) => waitUntilAnswers(what, async () => ready, timeoutMs, child),
    };
  };

  try {
    const earlier = runningSupervisor(runDir);
    if (earlier)
      throw new StartRefused(
        `another npm start (pid ${earlier.pid}) is running over ${dataDir}: stop it with Ctrl-C in its terminal (or kill ${earlier.pid}), or set OFFBOARD_DATA_DIR for a second one`,
      );
    for (const leftover of await stopLeftovers(runDir))
      say(`stopped ${leftover} left running by an earlier npm start that did not stop cleanly`);
    recordProcess(runDir, 'npm-start', 'npm start', process.pid, 'SIGTERM');

    const audit = env.DATABASE_URL ? undefined : auditDatabaseKind();
    const ports: [number, string, string][] = [
      [temporalPort, 'Temporal', 'OFFBOARD_TEMPORAL_PORT'],
      [uiPort, 'the Temporal UI', 'OFFBOARD_TEMPORAL_UI_PORT'],
      [codecPort, 'the codec server', 'OFFBOARD_CODEC_PORT'],
      [apiPort, 'the HTTP API', 'OFFBOARD_API_PORT'],
      [metricsPort, "the worker's metrics", 'OFFBOARD_METRICS_PORT'],
    ];
    if (audit) ports.push([dbPort, 'the audit database', 'OFFBOARD_AUDIT_DB_PORT']);
    if (!env.OFFBOARD_CONFIG)
      ports.push(
        [ldapPort, 'the sandbox slapd', 'OFFBOARD_LDAP_PORT'],
        [warehousePort, "the sample warehouse's PostgreSQL", 'OFFBOARD_WAREHOUSE_PORT'],
      );
    for (const [port, what, variable] of ports) await ensurePortFree(port, what, variable);

    // Payloads (names, emails) are encrypted; the UI reads them through a local codec server.
    const payloadKeys = env[PAYLOAD_KEYS_ENV] ?? localPayloadKeys();
    const keyring = keyringFromEnv({ [PAYLOAD_KEYS_ENV]: payloadKeys });
    if (!keyring) throw new StartRefused(`${PAYLOAD_KEYS_ENV} is empty`);
    // The codec server starts once the config (and so the API tokens it checks) is known; the UI
    // calls it only when a browser asks to decode, so its address can be named to Temporal now.
    const codecUrl = `http://127.0.0.1:${codecPort}/codec`;

    say('starting the Temporal dev server…');
    const temporal = await startTemporalDevServer({
      dbFile: join(dataDir, 'temporal.db'),
      port: temporalPort,
      uiPort,
      codecEndpoint: codecUrl,
      detached: true,
    });
    if (temporal.process) supervise('temporal', 'the Temporal dev server', temporal.process, () => temporal.stop());
    else stops.push({ what: 'the Temporal dev server', stop: () => temporal.stop() });

    const workerEnv: NodeJS.ProcessEnv = {
      ...env,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: env.TEMPORAL_NAMESPACE ?? 'default',
      OFFBOARD_METRICS_PORT: String(metricsPort),
      [PAYLOAD_KEYS_ENV]: payloadKeys,
      // Where the worker and the API keep development keys (the Shared Signals signing key).
      OFFBOARD_DATA_DIR: env.OFFBOARD_DATA_DIR ?? dataDir,
    };
    let databaseLine: string;
    if (!audit) {
      databaseLine = describeDatabase(env.DATABASE_URL!);
    } else if (audit.kind === 'postgres') {
      say('starting the audit database…');
      const db = await startPostgres({
        dir: join(dataDir, 'audit-pg'),
        port: dbPort,
        detached: true,
        what: 'the audit database (PostgreSQL)',
      });
      supervise('audit-db', 'the audit database (PostgreSQL)', db.process, () => db.stop());
      Object.assign(workerEnv, { DATABASE_URL: db.url, OFFBOARD_DB_EMBEDDED: '0' });
      databaseLine = `${db.url} (PostgreSQL: ${audit.why === 'default' ? 'a kept cluster' : audit.why}; data in ${join(dataDir, 'audit-pg')})`;
    } else {
      const db = await startEmbeddedDatabase(join(dataDir, 'audit-db'), dbPort);
      stops.push({ what: 'the embedded audit database', stop: () => db.stop() });
      Object.assign(workerEnv, { DATABASE_URL: db.url, OFFBOARD_DB_EMBEDDED: '1' });
      // As psql can use it: psql asks for TLS first, which PGlite's socket server answers with
      // nonsense, and PGlite asks for a password (any will do), which psql would prompt for.
      const psqlUrl = `${db.url.replace('postgres@', 'postgres:postgres@')}?sslmode=disable`;
      databaseLine = `${psqlUrl} (embedded PGlite: ${audit.why}; data in ${join(dataDir, 'audit-db')})`;
    }

    let ldapLine = 'from OFFBOARD_CONFIG';
    let warehouseLine = 'from OFFBOARD_CONFIG';
    let saasLines: string[] = [];
    let keycloakLine = env.OFFBOARD_CONFIG
      ? 'from OFFBOARD_CONFIG (--with-keycloak applies to the sandbox only)'
      : 'not started (npm start -- --with-keycloak starts one)';
    if (!env.OFFBOARD_CONFIG) {
      const secrets = sandboxSecrets();
      say('starting the sandbox directory and warehouse…');
      const slapd = await startSlapd({ dir: join(dataDir, 'slapd'), port: ldapPort, detached: true, ...secrets });
      supervise('slapd', 'slapd', slapd.process, () => slapd.stop());
      const warehouse = await startPostgres({
        dir: join(dataDir, 'warehouse-pg'),
        port: warehousePort,
        detached: true,
        what: "the sample warehouse's PostgreSQL",
      });
      supervise('warehouse-pg', "the sample warehouse's PostgreSQL", warehouse.process, () => warehouse.stop());
      const admin = new pg.Client({ connectionString: warehouse.url });
      await admin.connect();
      try {
        await seedWarehouseRoles(admin); // only on first use: later starts keep what was offboarded
      } finally {
        await admin.end();
      }
      const saas = await startSaasSandboxes({}, { sharedSignalsIssuer });
      stops.push({ what: 'the SaaS stand-ins', stop: () => saas.stop() });
      // Keycloak only when asked for (--with-keycloak, OFFBOARD_WITH_KEYCLOAK=1): it takes half a minute.
      if (keycloakWanted()) {
        if (await portTaken(keycloakPort))
          throw new Error(
            `port ${keycloakPort} (for the sandbox Keycloak) is already in use; set OFFBOARD_KEYCLOAK_PORT`,
          );
        say('starting Keycloak (--with-keycloak; half a minute or more)…');
        const keycloak = await startSandboxKeycloak(keycloakPort);
        stops.push({ what: 'Keycloak', stop: () => keycloak.stop() });
        Object.assign(saas.systems, keycloak.systems);
        Object.assign(saas.env, keycloak.env);
        keycloakLine = keycloak.line;
      }
      Object.assign(workerEnv, saas.env, {
        OFFBOARD_CONFIG: writeSandboxConfig(slapd, warehouse, saas),
        OFFBOARD_SANDBOX_WAREHOUSE_URL: warehouse.url,
        OFFBOARD_SANDBOX_LDAP_PASSWORD: secrets.servicePassword,
        OFFBOARD_SANDBOX_WEBHOOK_SECRET: secrets.webhookSecret,
        OFFBOARD_SANDBOX_API_TOKEN_SECURITY: secrets.apiTokens.security,
        OFFBOARD_SANDBOX_API_TOKEN_MANAGER: secrets.apiTokens.manager,
        OFFBOARD_SANDBOX_API_TOKEN_AUDITOR: secrets.apiTokens.auditor,
        OFFBOARD_SANDBOX_API_TOKEN_HR_SYSTEM: secrets.apiTokens.hrSystem,
      });
      ldapLine = `${slapd.url} (sandbox slapd, sample organisation, data in .data/slapd)`;
      warehouseLine = `${warehouse.url} (sample warehouse: a login role per person, e.g. e1004; data in .data/warehouse-pg)`;
      saasLines = Object.entries(saas.servers).map(
        ([name, server]) =>
          `${name.padEnd(11)}  ${server.url} (stand-in; ${server.url.replace(/(\/scim\/v2)?\/?$/, '')}/_sandbox/state shows its state${server.url.startsWith('https:') ? '; its certificate is self-signed: curl -k' : ''})`,
      );
      if (saas.ssfReceiver)
        saasLines.push(
          `${'partner-app'.padEnd(11)}  ${saas.ssfReceiver.endpoint} (Shared Signals receiver stand-in; ${saas.ssfReceiver.url}/_sandbox/state shows the SETs it verified; transmitter metadata at ${sharedSignalsIssuer}/.well-known/ssf-configuration)`,
        );
    }

    // Every caller of the codec server proves who it is: an API token with a role that reads
    // everything (the CLI's --codec-auth), or a browser session signed in with one (the dev UI).
    const codecTokens = loadConfig(workerEnv).api?.tokens ?? [];
    let codecLine: string;
    try {
      const codec = await startCodecServer({
        codec: new EncryptionCodec(keyring),
        allowedOrigin: [`http://127.0.0.1:${uiPort}`, `http://localhost:${uiPort}`],
        auth: { apiTokens: codecTokens },
        port: codecPort,
      });
      stops.push({ what: 'the codec server', stop: () => codec.close() });
      codecLine = `codec server at ${codec.url}: sign in at ${codec.url}/login with a security or auditor token`;
    } catch (err) {
      codecLine = `no codec server (${(err as Error).message}), so payloads show encrypted`;
    }

    say('starting the worker…');
    // A heap limit makes V8 collect evicted runs' garbage instead of growing to 4 GiB, and sizes the
    // workflow cache with it (docs/bench.md: 600 waiting at about 600 MB, against 950 MB without).
    const worker = spawnNode('worker', 'the worker', 'workers/worker.ts', workerEnv, 'worker started', [
      `--max-old-space-size=${env.OFFBOARD_WORKER_HEAP_MB ?? 768}`,
    ]);
    // The HTTP API (HR webhook, operators) runs when the config has an `api` section.
    let apiLine = 'not started (no `api` section in OFFBOARD_CONFIG)';
    const config = parseYaml(
      readFileSync(String(workerEnv.OFFBOARD_CONFIG ?? join(projectRoot, 'offboard.config.yaml')), 'utf8'),
    ) as { api?: unknown } | null;
    if (config?.api) {
      const api = spawnNode(
        'api',
        'the HTTP API',
        'client/http/server.ts',
        { ...workerEnv, OFFBOARD_API_PORT: String(apiPort) },
        'api listening',
      );
      await api.waitReady(120_000);
      await waitUntilAnswers(
        'the HTTP API',
        () => httpAnswers(`http://127.0.0.1:${apiPort}/openapi.json`),
        30_000,
        api.child,
      );
      apiLine = `http://127.0.0.1:${apiPort} (OpenAPI at /openapi.json; sandbox tokens and webhook secret in .data/sandbox-secrets.json)`;
    }
    // The worker is up when it polls: after its migrations, its connection to Temporal and its
    // reachability checks of every system.
    await worker.waitReady(180_000);
    if (stopping) return;

    say('ready:');
    say(`  Temporal     ${temporal.address} (namespace ${workerEnv.TEMPORAL_NAMESPACE}, state in .data/temporal.db)`);
    say(`  Temporal UI  ${temporal.uiUrl} (${codecLine})`);
    say(`  audit DB     ${databaseLine}`);
    say(`  LDAP         ${ldapLine}`);
    say(`  warehouse    ${warehouseLine}`);
    for (const line of saasLines) say(`  ${line}`);
    say(`  Keycloak     ${keycloakLine}`);
    say(`  HTTP API     ${apiLine}`);
    say('  try:         ./bin/offboard.js terminate --employee E1004 --reason involuntary');
    say('               ./bin/offboard.js status E1004');
    say('Ctrl-C stops everything; state is kept for the next npm start.');
  } catch (err) {
    if (stopping) return;
    say(`could not start: ${(err as Error).message}`);
    await stopAll(1);
  }
}

await main();
