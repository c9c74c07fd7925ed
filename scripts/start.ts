/**
 * `npm start`: the whole service on this machine, on its embedded defaults.
 *   - Temporal dev server (state in .data/temporal.db), UI on http://127.0.0.1:8233
 *   - the audit database: embedded PostgreSQL (PGlite, .data/audit-db) unless DATABASE_URL is set
 *   - unless OFFBOARD_CONFIG is set: slapd seeded with the sample organisation (.data/slapd), a
 *     PostgreSQL "warehouse" with a login role per sample person (.data/warehouse-pg), and the
 *     GitHub, Slack, Salesforce and SCIM stand-ins (in memory: they start afresh each time)
 *   - the worker
 * Ctrl-C stops everything; the next `npm start` continues with the same state.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { parse as parseYaml } from 'yaml';
import { EMBEDDED_DB_PORT_DEFAULT, describeDatabase, startEmbeddedDatabase } from '../workers/database.js';
import pg from 'pg';
import {
  projectRoot,
  startPostgres,
  startSlapd,
  startTemporalDevServer,
  waitForPort,
  type PostgresInstance,
  type SlapdInstance,
} from './services.js';
import { seedWarehouseRoles, WAREHOUSE_ARCHIVE_ROLE } from '../sandbox/postgres.js';
import { startSaasSandboxes, type SaasSandboxes } from '../sandbox/index.js';
import { EncryptionCodec, keyringFromEnv, PAYLOAD_KEYS_ENV } from '../workers/codec.js';
import { startCodecServer } from '../client/codec-server.js';
import { loadConfig } from '../workers/config.js';
import { connect } from 'node:net';

const dataDir = join(projectRoot, '.data');
const env = process.env;
const temporalPort = Number(env.OFFBOARD_TEMPORAL_PORT ?? 7233);
const uiPort = Number(env.OFFBOARD_TEMPORAL_UI_PORT ?? 8233);
const ldapPort = Number(env.OFFBOARD_LDAP_PORT ?? 3389);
const warehousePort = Number(env.OFFBOARD_WAREHOUSE_PORT ?? 15433);
const dbPort = Number(env.OFFBOARD_EMBEDDED_DB_PORT ?? EMBEDDED_DB_PORT_DEFAULT);
const codecPort = Number(env.OFFBOARD_CODEC_PORT ?? 8081);
const apiPort = Number(env.OFFBOARD_API_PORT ?? 8080);

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

async function main() {
  mkdirSync(dataDir, { recursive: true });
  const stops: (() => Promise<void>)[] = [];
  let stopping = false;
  const stopAll = async (code: number) => {
    if (stopping) return;
    stopping = true;
    say('stopping…');
    // Last started, first stopped: the API and the worker go before the Temporal server and the
    // databases they need to shut down cleanly.
    for (const stop of stops.reverse()) await stop().catch((err: Error) => say(`while stopping: ${err.message}`));
    say('stopped');
    process.exit(code);
  };
  process.on('SIGINT', () => void stopAll(0));
  process.on('SIGTERM', () => void stopAll(0));

  try {
    for (const [port, what, variable] of [
      [temporalPort, 'Temporal', 'OFFBOARD_TEMPORAL_PORT'],
      [uiPort, 'the Temporal UI', 'OFFBOARD_TEMPORAL_UI_PORT'],
      [codecPort, 'the codec server', 'OFFBOARD_CODEC_PORT'],
      [apiPort, 'the HTTP API', 'OFFBOARD_API_PORT'],
    ] as const) {
      if (await portTaken(port))
        throw new Error(
          `port ${port} (for ${what}) is already in use — is another \`npm start\` running? Stop it, or set ${variable}.`,
        );
    }
    // Payloads (names, emails) are encrypted; the UI reads them through a local codec server.
    const payloadKeys = env[PAYLOAD_KEYS_ENV] ?? localPayloadKeys();
    const keyring = keyringFromEnv({ [PAYLOAD_KEYS_ENV]: payloadKeys });
    if (!keyring) throw new Error(`${PAYLOAD_KEYS_ENV} is empty`);
    // The codec server starts once the config (and so the API tokens it checks) is known; the UI
    // calls it only when a browser asks to decode, so its address can be named to Temporal now.
    const codecUrl = `http://127.0.0.1:${codecPort}/codec`;

    say('starting the Temporal dev server…');
    const temporal = await startTemporalDevServer({
      dbFile: join(dataDir, 'temporal.db'),
      port: temporalPort,
      uiPort,
      codecEndpoint: codecUrl,
    });
    stops.push(() => temporal.stop());

    const workerEnv: NodeJS.ProcessEnv = {
      ...env,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: env.TEMPORAL_NAMESPACE ?? 'default',
      [PAYLOAD_KEYS_ENV]: payloadKeys,
    };
    let databaseLine: string;
    if (env.DATABASE_URL) {
      databaseLine = describeDatabase(env.DATABASE_URL);
    } else {
      if (await portTaken(dbPort))
        throw new Error(`port ${dbPort} (for the embedded database) is already in use; set OFFBOARD_EMBEDDED_DB_PORT`);
      const db = await startEmbeddedDatabase(join(dataDir, 'audit-db'), dbPort);
      stops.push(() => db.stop());
      Object.assign(workerEnv, { DATABASE_URL: db.url, OFFBOARD_DB_EMBEDDED: '1' });
      databaseLine = `${db.url} (embedded PGlite, data in .data/audit-db)`;
    }

    let ldapLine = 'from OFFBOARD_CONFIG';
    let warehouseLine = 'from OFFBOARD_CONFIG';
    let saasLines: string[] = [];
    if (!env.OFFBOARD_CONFIG) {
      if (await portTaken(ldapPort))
        throw new Error(`port ${ldapPort} (for the sandbox slapd) is already in use; set OFFBOARD_LDAP_PORT`);
      const secrets = sandboxSecrets();
      const slapd = await startSlapd({ dir: join(dataDir, 'slapd'), port: ldapPort, ...secrets });
      stops.push(() => slapd.stop());
      if (await portTaken(warehousePort))
        throw new Error(
          `port ${warehousePort} (for the sample warehouse's PostgreSQL) is already in use; set OFFBOARD_WAREHOUSE_PORT`,
        );
      const warehouse = await startPostgres({ dir: join(dataDir, 'warehouse-pg'), port: warehousePort });
      stops.push(() => warehouse.stop());
      const admin = new pg.Client({ connectionString: warehouse.url });
      await admin.connect();
      try {
        await seedWarehouseRoles(admin); // only on first use: later starts keep what was offboarded
      } finally {
        await admin.end();
      }
      const saas = await startSaasSandboxes();
      stops.push(() => saas.stop());
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
          `${name.padEnd(11)}  ${server.url} (stand-in; ${server.url.replace(/\/scim\/v2$/, '')}/_sandbox/state shows its state)`,
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
      stops.push(() => codec.close());
      codecLine = `codec server at ${codec.url}: sign in at ${codec.url}/login with a security or auditor token`;
    } catch (err) {
      codecLine = `no codec server (${(err as Error).message}), so payloads show encrypted`;
    }

    say('starting the worker…');
    const worker: ChildProcess = spawn(
      process.execPath,
      // A heap limit makes V8 collect evicted runs' garbage instead of growing to 4 GiB, and sizes the
      // workflow cache with it (docs/bench.md: 600 waiting at about 600 MB, against 950 MB without).
      [
        `--max-old-space-size=${env.OFFBOARD_WORKER_HEAP_MB ?? 768}`,
        '--import',
        'tsx',
        join(projectRoot, 'workers', 'worker.ts'),
      ],
      { env: workerEnv, stdio: 'inherit' },
    );
    stops.push(
      () =>
        new Promise<void>((resolve) => {
          if (worker.exitCode !== null) return resolve();
          worker.once('exit', () => resolve());
          worker.kill('SIGTERM');
        }),
    );
    worker.once('exit', (code) => {
      if (!stopping) {
        say(`the worker exited (code ${code}); stopping`);
        void stopAll(1);
      }
    });
    // The HTTP API (HR webhook, operators) runs when the config has an `api` section.
    let apiLine = 'not started (no `api` section in OFFBOARD_CONFIG)';
    const config = parseYaml(
      readFileSync(String(workerEnv.OFFBOARD_CONFIG ?? join(projectRoot, 'offboard.config.yaml')), 'utf8'),
    ) as { api?: unknown } | null;
    if (config?.api) {
      const api: ChildProcess = spawn(
        process.execPath,
        ['--import', 'tsx', join(projectRoot, 'client', 'http', 'server.ts')],
        { env: { ...workerEnv, OFFBOARD_API_PORT: String(apiPort) }, stdio: 'inherit' },
      );
      stops.push(
        () =>
          new Promise<void>((resolve) => {
            if (api.exitCode !== null) return resolve();
            api.once('exit', () => resolve());
            api.kill('SIGTERM');
          }),
      );
      await waitForPort(apiPort, 'the HTTP API', 60_000, api);
      apiLine = `http://127.0.0.1:${apiPort} (OpenAPI at /openapi.json; sandbox tokens and webhook secret in .data/sandbox-secrets.json)`;
    }
    await waitForPort(temporalPort, 'Temporal');

    say('ready:');
    say(`  Temporal     ${temporal.address} (namespace ${workerEnv.TEMPORAL_NAMESPACE}, state in .data/temporal.db)`);
    say(`  Temporal UI  ${temporal.uiUrl} (${codecLine})`);
    say(`  audit DB     ${databaseLine}`);
    say(`  LDAP         ${ldapLine}`);
    say(`  warehouse    ${warehouseLine}`);
    for (const line of saasLines) say(`  ${line}`);
    say(`  HTTP API     ${apiLine}`);
    say('  try:         ./bin/offboard.js terminate --employee E1004 --reason involuntary');
    say('               ./bin/offboard.js status E1004');
    say('Ctrl-C stops everything; state is kept for the next npm start.');
  } catch (err) {
    say(`could not start: ${(err as Error).message}`);
    await stopAll(1);
  }
}

await main();
