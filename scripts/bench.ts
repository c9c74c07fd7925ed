/**
 * `npm run bench`: figures, not a test. Starts the real servers (the Temporal CLI's dev server,
 * slapd, a throwaway PostgreSQL for the audit log and the warehouse roles), the SaaS stand-ins
 * with 50 ms injected latency on every request, and one offboarding worker wired like `npm start`
 * (directory, warehouse, GitHub, Slack, Salesforce, SCIM wiki, Slack notifications), then:
 *   1. no faults: N sequential immediate involuntary terminations; HR event accepted →
 *      `logins_disabled` and → `revocation_verified` (p50/p99), against the longest chain of
 *      dependent calls × 50 ms seen in the stand-ins' requests;
 *   2. one system hanging (a TCP server that never answers, as the SCIM wiki) and one failing
 *      until an operator acts (GitHub answering 502 to everything): the healthy systems'
 *      `stage_verified` times against the no-fault ones;
 *   3. a burst of terminations at once, against a no-op baseline workflow with as many
 *      activities (scripts/bench/), on the same dev server: throughput ratio;
 *   4. BENCH_WAITING (10,000) offboardings due in 30 days, waiting: the resident memory of a worker
 *      process run as `npm start` runs it (target: under 1 GB), and a status query of evicted runs.
 * Each phase gets a fresh slapd, PostgreSQL and stand-ins (so every person starts with all their
 * access); the dev server and the workflow bundle are shared. docs/bench.md has the figures.
 * Settings: BENCH_RUNS (10), BENCH_FAULT_RUNS (5), BENCH_BURST (20), BENCH_LATENCY_MS (50),
 * BENCH_WAITING (10000), BENCH_PHASES (comma list of nofault,hang,fail,burst,waiting; all by default).
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { randomBytes, randomUUID } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus, loadavg, tmpdir } from 'node:os';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type pg from 'pg';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createAuditStore } from '../activities/audit.js';
import type { ChainedAuditEvent } from '../model/audit.js';
import type { OffboardingRequest } from '../model/request.js';
import { sendCommand, startOffboarding } from '../client/temporal.js';
import { bundleWorkflows } from '../workers/bundle.js';
import { parseConfig, type ConfigInput } from '../workers/config.js';
import { createOffboardingWorker } from '../workers/create-worker.js';
import { createPool, migrate } from '../workers/database.js';
import { startSaasSandboxes, type SaasSandboxes } from '../sandbox/index.js';
import { bucketOf } from '../sandbox/okta.js';
import { seedWarehouseRoles, WAREHOUSE_ARCHIVE_ROLE } from '../sandbox/postgres.js';
import { SLACK_SANDBOX_TOKENS } from '../sandbox/slack.js';
import { samplePerson } from '../sandbox/org.js';
import type { OffboardingStatus } from '../workflows/messages.js';
import {
  freePort,
  projectRoot,
  startPostgres,
  startSlapd,
  startTemporalDevServer,
  type PostgresInstance,
  type SlapdInstance,
} from './services.js';
import * as baselineActivities from './bench/baseline-activities.js';
import { measureWaiting } from './bench/waiting-scenario.js';
import { dataConverterFor, keyringFromEnv, PAYLOAD_KEYS_ENV } from '../workers/codec.js';

const env = process.env;
const RUNS = Number(env.BENCH_RUNS ?? 10);
const FAULT_RUNS = Number(env.BENCH_FAULT_RUNS ?? 5);
/** Hang runs whose HR event has no email: email-keyed systems then wait for every discovery. */
const HANG_NO_EMAIL_RUNS = Number(env.BENCH_HANG_NO_EMAIL_RUNS ?? 2);
const BURST = Number(env.BENCH_BURST ?? 20);
/** Of the burst, how many are security terminations, sent after the others (task-queue priority). */
const BURST_SECURITY = Math.min(Number(env.BENCH_BURST_SECURITY ?? 3), BURST - 1);
const LATENCY_MS = Number(env.BENCH_LATENCY_MS ?? 50);
const PHASES = new Set((env.BENCH_PHASES ?? 'nofault,hang,fail,burst,waiting').split(',').map((p) => p.trim()));
const TASK_QUEUE = 'offboarding';
const BASELINE_TASK_QUEUE = 'bench-baseline';
/** Free for the bench in the shared test slapd; the bench runs its own slapd, so the burst adds E1041-E1043. */
const people = (from: number, count: number) => Array.from({ length: count }, (_, i) => `E${from + i}`);

const say = (line: string) => process.stdout.write(`[bench] ${line}\n`);

// ---- Every request the in-process stand-ins serve, with its start and end -------------------

interface LoggedRequest {
  port: number;
  start: number;
  end: number;
  method: string;
  path: string;
  auth: string;
}
const requestLog: LoggedRequest[] = [];
const serverEmit = http.Server.prototype.emit;
http.Server.prototype.emit = function (this: http.Server, event: string | symbol, ...args: unknown[]): boolean {
  if (event === 'request') {
    const [req, res] = args as [IncomingMessage, ServerResponse];
    const entry: LoggedRequest = {
      port: (this.address() as AddressInfo | null)?.port ?? 0,
      start: Date.now(),
      end: 0,
      method: req.method ?? '',
      path: req.url ?? '',
      auth: req.headers.authorization ?? '',
    };
    const done = () => {
      if (entry.end) return;
      entry.end = Date.now();
      requestLog.push(entry);
    };
    res.once('finish', done);
    res.once('close', done);
  }
  return (serverEmit as (this: http.Server, event: string | symbol, ...rest: unknown[]) => boolean).call(
    this,
    event,
    ...args,
  );
} as typeof serverEmit;

/**
 * The longest chain of calls one after another among a system's requests: the most requests of
 * which each began after the previous one ended (greedy by end time). With every call taking
 * ≥ the injected latency, this is the chain no orchestration can shorten.
 */
function longestChain(requests: LoggedRequest[]): number {
  let chain = 0;
  let lastEnd = -Infinity;
  for (const r of [...requests].sort((a, b) => a.end - b.end)) {
    if (r.start >= lastEnd) {
      chain += 1;
      lastEnd = r.end;
    }
  }
  return chain;
}

// ---- Figures --------------------------------------------------------------------------------

function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}
const ms = (value: number) => (Number.isFinite(value) ? `${Math.round(value)} ms` : 'n/a');
const sleep = (time: number) => new Promise((resolve) => setTimeout(resolve, time));

async function eventually<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  what: string,
  timeoutMs: number,
  everyMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ---- One phase's servers and worker ---------------------------------------------------------

interface Stack {
  pool: pg.Pool;
  saas: SaasSandboxes;
  systems: string[];
  /** stand-in port → system name */
  portSystem: Map<number, string>;
  stop(): Promise<void>;
}

interface Shared {
  /** The dev server's address, for a worker process of a phase's own. */
  address: string;
  client: Client;
  connection: NativeConnection;
  bundle: { code: string };
}

const example = parseYaml(readFileSync(join(projectRoot, 'config', 'offboard.example.yaml'), 'utf8')) as {
  policy: Record<string, unknown>;
};

/** The systems of the bench's config (as `npm start` has them), and the environment with their secrets. */
function benchSystems(slapd: SlapdInstance, postgres: PostgresInstance, saas: SaasSandboxes) {
  const systems: NonNullable<ConfigInput['systems']> = {
    directory: {
      type: 'ldap',
      url: slapd.url,
      bindDn: slapd.serviceDn,
      bindPassword: { env: 'BENCH_LDAP_PASSWORD' },
      peopleBase: slapd.peopleBase,
      groupsBase: slapd.groupsBase,
      employeeIdAttribute: 'employeeNumber',
    },
    warehouse: {
      type: 'postgres',
      url: { env: 'BENCH_WAREHOUSE_URL' },
      roleName: '{employeeId}',
      reassignOwnedTo: WAREHOUSE_ARCHIVE_ROLE,
    },
    ...saas.systems,
  };
  const systemsEnv: NodeJS.ProcessEnv = {
    ...saas.env,
    BENCH_LDAP_PASSWORD: slapd.servicePassword,
    BENCH_WAREHOUSE_URL: postgres.url,
  };
  return { systems, env: systemsEnv };
}

async function startStack(shared: Shared, fault: { hang?: 'wiki'; fail?: 'github' } = {}): Promise<Stack> {
  const [slapd, postgres, saas]: [SlapdInstance, PostgresInstance, SaasSandboxes] = await Promise.all([
    startSlapd(),
    startPostgres(),
    startSaasSandboxes(),
  ]);
  const pool = createPool({ url: postgres.url, embedded: false });
  await migrate(pool);
  await seedWarehouseRoles(pool);
  for (const server of Object.values(saas.servers)) server.inject({ latencyMs: LATENCY_MS });
  const portSystem = new Map<number, string>();
  for (const [name, server] of Object.entries(saas.servers)) portSystem.set(Number(new URL(server.url).port), name);

  const { systems, env: systemsEnv } = benchSystems(slapd, postgres, saas);
  // Hanging: a TCP server that accepts and never answers, in the wiki's place.
  const hung = new Set<Socket>();
  const hangServer = createTcpServer((socket) => {
    hung.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => hung.delete(socket));
  });
  if (fault.hang) {
    await new Promise<void>((resolve) => hangServer.listen(0, '127.0.0.1', resolve));
    const port = (hangServer.address() as AddressInfo).port;
    systems[fault.hang] = {
      ...(systems[fault.hang] as object),
      baseUrl: `http://127.0.0.1:${port}/scim/v2`,
    } as NonNullable<ConfigInput['systems']>[string];
  }
  // Failing until an operator acts: every GitHub request answers 502.
  if (fault.fail) saas.servers[fault.fail].inject({ latencyMs: LATENCY_MS, serverErrorRate: 1 });

  const config = parseConfig(
    {
      systems,
      // The example policy, with quick retries, so a failing system becomes a manual task in seconds.
      policy: { ...example.policy, retry: { initialInterval: '200ms', maximumInterval: '1s', maximumAttempts: 3 } },
      notifications: saas.notifications,
    },
    'the bench config',
    systemsEnv,
  );
  const worker = await createOffboardingWorker({
    connection: shared.connection,
    namespace: 'default',
    config,
    pool,
    taskQueue: TASK_QUEUE,
    workflowBundle: shared.bundle,
  });
  const running = worker.run();
  const started: string[] = [];
  return {
    pool,
    saas,
    systems: Object.keys(systems),
    portSystem,
    async stop() {
      // Open offboardings (later stages, hung systems) are ended, so the next phase starts afresh.
      const open = shared.client.workflow.list({
        query: `ExecutionStatus = "Running" AND TaskQueue = "${TASK_QUEUE}"`,
      });
      for await (const execution of open) {
        started.push(execution.workflowId);
        await shared.client.workflow
          .getHandle(execution.workflowId)
          .terminate('bench phase over')
          .catch(() => undefined);
      }
      for (const socket of hung) socket.destroy();
      hangServer.close();
      worker.shutdown();
      await Promise.race([running, sleep(20_000)]);
      await pool.end();
      await Promise.all([saas.stop(), slapd.stop(), postgres.stop()]);
    },
  };
}

// ---- One offboarding, measured ---------------------------------------------------------------

interface Measured {
  employeeId: string;
  /** Figures the workflow wrote (millisecondsSinceReceived: since the run started). */
  loginsDisabledMs: number;
  revocationVerifiedMs: number;
  /** Per system: its last stage_verified row, ms after the run started. */
  stageVerifiedMs: Record<string, number>;
  /** Per stand-in: requests served, and the longest chain of them one after another. */
  calls: Record<string, { requests: number; chain: number }>;
  startTime: number;
  acceptedAt: number;
  rows: ChainedAuditEvent[];
}

function request(
  employeeId: string,
  withEmail: boolean,
  reason: 'involuntary' | 'security' = 'involuntary',
): OffboardingRequest {
  return {
    requestId: `bench-${randomUUID()}`,
    // As `offboard terminate --employee ID` sends it (no email) unless withEmail: HR's email too.
    subject: withEmail ? { employeeId, email: samplePerson(employeeId).email } : { employeeId },
    trigger: 'termination',
    reason,
    employmentType: 'employee',
    effectiveAt: new Date().toISOString(),
    requestedBy: 'bench',
  };
}

async function accept(
  shared: Shared,
  employeeId: string,
  withEmail = false,
  reason: 'involuntary' | 'security' = 'involuntary',
): Promise<{ workflowId: string; startTime: number; acceptedAt: number }> {
  const started = await startOffboarding(shared.client, request(employeeId, withEmail, reason), {
    taskQueue: TASK_QUEUE,
  });
  const acceptedAt = Date.now();
  if (!started.started)
    throw new Error(`${employeeId}: ${started.outcome}, not started (is an offboarding still open?)`);
  const startTime = (await shared.client.workflow.getHandle(started.workflowId).describe()).startTime.getTime();
  return { workflowId: started.workflowId, startTime, acceptedAt };
}

function measure(
  stack: Stack,
  employeeId: string,
  startTime: number,
  acceptedAt: number,
  rows: ChainedAuditEvent[],
  windowEnd: number,
): Measured {
  const detail = (action: string) =>
    Number(
      (rows.find((r) => r.action === action)?.details as { millisecondsSinceReceived?: number } | undefined)
        ?.millisecondsSinceReceived ?? NaN,
    );
  const stageVerifiedMs: Record<string, number> = {};
  for (const row of rows) {
    if (row.action !== 'stage_verified' || !row.system) continue;
    stageVerifiedMs[row.system] = Math.max(stageVerifiedMs[row.system] ?? 0, Date.parse(row.occurredAt) - startTime);
  }
  const calls: Measured['calls'] = {};
  // Notifications go to the Slack stand-in with the bot token: not part of any system's chain.
  const inWindow = requestLog.filter(
    (r) => r.start >= startTime - 5 && r.end <= windowEnd && r.auth !== `Bearer ${SLACK_SANDBOX_TOKENS.bot}`,
  );
  for (const [port, system] of stack.portSystem) {
    const mine = inWindow.filter((r) => r.port === port);
    calls[system] = { requests: mine.length, chain: longestChain(mine) };
  }
  return {
    employeeId,
    loginsDisabledMs: detail('logins_disabled'),
    revocationVerifiedMs: detail('revocation_verified'),
    stageVerifiedMs,
    calls,
    startTime,
    acceptedAt,
    rows,
  };
}

/** One offboarding, alone: waits until `done` holds for its audit rows. */
async function offboardOne(
  shared: Shared,
  stack: Stack,
  employeeId: string,
  done: (rows: ChainedAuditEvent[]) => boolean,
  withEmail = false,
  timeoutMs = 90_000,
): Promise<Measured> {
  const store = createAuditStore(stack.pool);
  const { workflowId, startTime, acceptedAt } = await accept(shared, employeeId, withEmail);
  const rows = await eventually(() => store.eventsFor(workflowId), done, `${employeeId}'s audit rows`, timeoutMs, 50);
  return measure(stack, employeeId, startTime, acceptedAt, rows, Date.now());
}

const has = (action: string) => (rows: ChainedAuditEvent[]) => rows.some((r) => r.action === action);
const verifiedIn = (systems: string[]) => (rows: ChainedAuditEvent[]) =>
  systems.every((s) => rows.some((r) => r.action === 'stage_verified' && r.system === s));

// ---- Phases ---------------------------------------------------------------------------------

interface Report {
  lines: string[];
  markdown: string[];
}
const report: Report = { lines: [], markdown: [] };
const out = (line: string, md = line) => {
  report.lines.push(line);
  report.markdown.push(md);
  process.stdout.write(`${line}\n`);
};

function perSystemTable(title: string, columns: { name: string; runs: Measured[] }[], systems: string[]) {
  out('');
  out(title, `### ${title}`);
  out('', '');
  const header = ['system', ...columns.flatMap((c) => [`${c.name} p50`, `${c.name} p99`])];
  out(header.map((h) => h.padEnd(20)).join(''), `| ${header.join(' | ')} |\n|${header.map(() => ' --- ').join('|')}|`);
  for (const system of systems) {
    const cells = columns.flatMap((c) => {
      const values = c.runs.map((r) => r.stageVerifiedMs[system]).filter((v): v is number => v !== undefined);
      return values.length ? [ms(percentile(values, 50)), ms(percentile(values, 99))] : ['not verified', ''];
    });
    out([system, ...cells].map((c) => c.padEnd(20)).join(''), `| ${[system, ...cells].join(' | ')} |`);
  }
}

async function noFaultPhase(
  shared: Shared,
): Promise<{ runs: Measured[]; activitiesPerRun: number; systems: string[] } | undefined> {
  say(`no faults: ${RUNS} sequential offboardings…`);
  const stack = await startStack(shared);
  try {
    const runs: Measured[] = [];
    for (const id of people(1044, RUNS)) {
      const run = await offboardOne(shared, stack, id, has('revocation_verified'));
      runs.push(run);
      say(`  ${id}: logins_disabled ${ms(run.loginsDisabledMs)}, revocation_verified ${ms(run.revocationVerifiedMs)}`);
    }
    // Activities one offboarding runs, for the baseline: from the first run's history, so far.
    const history = await shared.client.workflow.getHandle(`offboarding-${runs[0]!.employeeId}`).fetchHistory();
    const activitiesPerRun = (history.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes).length;

    const login = runs.map((r) => r.loginsDisabledMs);
    const verified = runs.map((r) => r.revocationVerifiedMs);
    const client = runs.map(
      (r) => Date.parse(r.rows.find((row) => row.action === 'revocation_verified')!.occurredAt) - r.acceptedAt,
    );
    // The bound: the slowest stand-in's chain of dependent calls, × the injected latency.
    const chains = Object.fromEntries(
      Object.keys(runs[0]!.calls).map((s) => [
        s,
        percentile(
          runs.map((r) => r.calls[s]!.chain),
          50,
        ),
      ]),
    );
    const requests = Object.fromEntries(
      Object.keys(runs[0]!.calls).map((s) => [
        s,
        percentile(
          runs.map((r) => r.calls[s]!.requests),
          50,
        ),
      ]),
    );
    const [boundSystem, boundChain] = Object.entries(chains).sort((a, b) => b[1] - a[1])[0]!;
    const bound = boundChain * LATENCY_MS;
    out('');
    out(
      `No faults: ${RUNS} sequential immediate involuntary terminations, ${stack.systems.length} systems (${stack.systems.join(', ')}), ${LATENCY_MS} ms per stand-in request`,
      `### No faults: ${RUNS} sequential immediate involuntary terminations\n\n${stack.systems.length} systems (${stack.systems.join(', ')}), ${LATENCY_MS} ms injected on every stand-in request.`,
    );
    out('', '');
    out(`${'figure'.padEnd(66)}${'p50'.padEnd(10)}p99`, '| figure | p50 | p99 |\n| --- | --- | --- |');
    const row = (name: string, values: number[]) =>
      out(
        `${name.padEnd(66)}${ms(percentile(values, 50)).padEnd(10)}${ms(percentile(values, 99))}`,
        `| ${name} | ${ms(percentile(values, 50))} | ${ms(percentile(values, 99))} |`,
      );
    row('(a) accepted → logins_disabled (millisecondsSinceReceived)', login);
    row('(b) accepted → revocation_verified (millisecondsSinceReceived)', verified);
    row("(b') startOffboarding returned → revocation_verified row", client);
    out('', '');
    out(
      `stand-in requests per offboarding (median) and longest chain of calls one after another: ${Object.keys(chains)
        .map((s) => `${s} ${requests[s]} req / chain ${chains[s]}`)
        .join(', ')}`,
      `Stand-in requests per offboarding (median) and the longest chain of calls one after another in them: ${Object.keys(
        chains,
      )
        .map((s) => `${s} ${requests[s]} requests, chain ${chains[s]}`)
        .join('; ')}. LDAP and PostgreSQL calls have no injected latency and are left out of the bound.`,
    );
    out(
      `lower bound = longest chain (${boundSystem}, ${boundChain} calls) × ${LATENCY_MS} ms = ${bound} ms; (b) p50 / bound = ${(percentile(verified, 50) / bound).toFixed(2)}, p99 / bound = ${(percentile(verified, 99) / bound).toFixed(2)}`,
      `Lower bound = longest chain (${boundSystem}, ${boundChain} calls) × ${LATENCY_MS} ms = **${bound} ms**; (b) p50 / bound = **${(percentile(verified, 50) / bound).toFixed(2)}**, p99 / bound = **${(percentile(verified, 99) / bound).toFixed(2)}**.`,
    );
    out(
      `activities per offboarding (first run's history at revocation_verified): ${activitiesPerRun}`,
      `Activities one offboarding ran by then (history): ${activitiesPerRun}.`,
    );
    return { runs, activitiesPerRun, systems: stack.systems };
  } finally {
    await stack.stop();
  }
}

async function faultPhase(
  shared: Shared,
  kind: 'hang' | 'fail',
  baseline: Measured[],
  allSystems: string[],
): Promise<void> {
  const faulty = kind === 'hang' ? 'wiki' : 'github';
  say(
    `${kind}: ${faulty} ${kind === 'hang' ? 'never answers' : 'answers 502 until an operator acts'}; ${FAULT_RUNS} sequential offboardings…`,
  );
  const stack = await startStack(shared, kind === 'hang' ? { hang: 'wiki' } : { fail: 'github' });
  const healthy = allSystems.filter((s) => s !== faulty);
  try {
    const runs: Measured[] = [];
    const noEmailRuns: Measured[] = [];
    const operator: number[] = [];
    const plan =
      kind === 'hang'
        ? [
            ...people(1044, FAULT_RUNS).map((id) => ({ id, withEmail: true })),
            ...people(1044 + FAULT_RUNS, HANG_NO_EMAIL_RUNS).map((id) => ({ id, withEmail: false })),
          ]
        : people(1050, FAULT_RUNS).map((id) => ({ id, withEmail: false }));
    for (const { id, withEmail } of plan) {
      const run = await offboardOne(shared, stack, id, verifiedIn(healthy), withEmail);
      (withEmail || kind === 'fail' ? runs : noEmailRuns).push(run);
      const slowest = Math.max(...healthy.map((s) => run.stageVerifiedMs[s] ?? NaN));
      say(
        `  ${id}${kind === 'hang' ? (withEmail ? ' (email in the HR event)' : ' (no email in the HR event)') : ''}: healthy systems verified within ${ms(slowest)}; ${faulty}: ${run.stageVerifiedMs[faulty] === undefined ? 'not verified' : ms(run.stageVerifiedMs[faulty])}`,
      );
      if (kind === 'fail') {
        // The operator: once GitHub's failure is a manual task, fix the cause and retry it.
        const handle = shared.client.workflow.getHandle(`offboarding-${id}`);
        try {
          const status = await eventually(
            () => handle.query<OffboardingStatus>('status'),
            (s) => s.manualTasks.some((t) => t.system === faulty && t.state === 'open'),
            `${id}'s manual task`,
            30_000,
            200,
          );
          stack.saas.servers.github.inject({ latencyMs: LATENCY_MS });
          const acted = Date.now();
          for (const task of status.manualTasks.filter((t) => t.system === faulty && t.state === 'open')) {
            await sendCommand(shared.client, id, 'retry', { by: 'bench-operator', actionId: task.id });
          }
          const store = createAuditStore(stack.pool);
          const rows = await eventually(
            () => store.eventsFor(`offboarding-${id}`),
            has('revocation_verified'),
            `${id}'s revocation after the retry`,
            30_000,
            50,
          );
          operator.push(Date.parse(rows.find((r) => r.action === 'revocation_verified')!.occurredAt) - acted);
        } catch (err) {
          say(`  ${id}: operator step not measured: ${(err as Error).message}`);
        } finally {
          stack.saas.servers.github.inject({ latencyMs: LATENCY_MS, serverErrorRate: 1 });
        }
      }
    }
    perSystemTable(
      kind === 'hang'
        ? `One system hanging (wiki → a TCP server that never answers; SCIM timeout 15 s, 3 attempts): stage_verified per system, ms after the run started; hang = ${FAULT_RUNS} runs with the email in the HR event, hang-noemail = ${noEmailRuns.length} without`
        : `One system failing until an operator acts (GitHub answers 502; 3 quick attempts, then a manual task): stage_verified per system, ${FAULT_RUNS} runs vs no faults`,
      [
        { name: 'no faults', runs: baseline },
        { name: kind, runs },
        ...(noEmailRuns.length ? [{ name: 'hang-noemail', runs: noEmailRuns }] : []),
      ],
      allSystems,
    );
    if (kind === 'fail' && operator.length)
      out(
        `operator's retry (fault cleared) → revocation_verified: p50 ${ms(percentile(operator, 50))}, p99 ${ms(percentile(operator, 99))} (${operator.length} runs)`,
        `\nOperator's retry (fault cleared first) → \`revocation_verified\`: p50 ${ms(percentile(operator, 50))}, p99 ${ms(percentile(operator, 99))} (${operator.length} runs).`,
      );
  } finally {
    await stack.stop();
  }
}

/** What a run that did not finish is waiting for, from its status: open tasks, or each unfinished system's step. */
async function whyStuck(shared: Shared, workflowId: string): Promise<string> {
  const status = await shared.client.workflow
    .getHandle(workflowId)
    .query<OffboardingStatus>('status')
    .catch((err: Error) => err);
  if (status instanceof Error) return `its status could not be read: ${status.message}`;
  const open = status.manualTasks.filter((t) => t.state === 'open').map((t) => `task ${t.id}: ${t.error}`);
  if (open.length) return open.join('; ');
  const steps = Object.entries(status.pipelines ?? {}).map(([system, p]) => `${system} ${p.doing}`);
  return steps.join(', ') || 'no pipeline yet';
}

async function burstPhase(shared: Shared, activitiesPerRun: number, lanes: number): Promise<void> {
  say(`burst: ${BURST} terminations at once…`);
  const stack = await startStack(shared);
  const ids = people(1041, BURST);
  let offboardingSeconds = NaN;
  let offboardingLatencies: number[] = [];
  /** Per system, ms from each run's start to its last stage_verified row: what a burst waits for. */
  const systemMs = new Map<string, number[]>();
  let oktaRequests: Record<string, number> = {};
  try {
    const store = createAuditStore(stack.pool);
    const t0 = Date.now();
    // The last few are security terminations, sent after everyone else: priority should serve
    // them ahead of the burst they arrive behind.
    const involuntary = ids.slice(0, ids.length - BURST_SECURITY);
    const accepted = await Promise.all(involuntary.map((id) => accept(shared, id)));
    accepted.push(
      ...(await Promise.all(ids.slice(involuntary.length).map((id) => accept(shared, id, false, 'security')))),
    );
    const firstStart = Math.min(...accepted.map((a) => a.startTime));
    const rows = await Promise.all(
      accepted.map((a) =>
        eventually(
          () => store.eventsFor(a.workflowId),
          has('revocation_verified'),
          `${a.workflowId}'s revocation`,
          180_000,
          250,
        ).catch(async (err: Error) => {
          throw new Error(`${err.message} (${await whyStuck(shared, a.workflowId)})`);
        }),
      ),
    );
    rows.forEach((run, i) => {
      const last = new Map<string, number>();
      for (const row of run)
        if (row.action === 'stage_verified' && row.system)
          last.set(
            row.system,
            Math.max(last.get(row.system) ?? 0, Date.parse(row.occurredAt) - accepted[i]!.startTime),
          );
      for (const [system, ms] of last) systemMs.set(system, [...(systemMs.get(system) ?? []), ms]);
    });
    // Okta counts each API family in a window a minute: what the burst asked of each.
    oktaRequests = {};
    for (const request of stack.saas.servers.okta.state.requests) {
      const family = bucketOf(new URL(request.split(' ')[1]!, 'http://okta').pathname);
      oktaRequests[family] = (oktaRequests[family] ?? 0) + 1;
    }
    const ends = rows.map((r) => Date.parse(r.find((row) => row.action === 'revocation_verified')!.occurredAt));
    offboardingSeconds = (Math.max(...ends) - Math.min(firstStart, t0)) / 1000;
    offboardingLatencies = rows.map((r) =>
      Number(
        (r.find((row) => row.action === 'revocation_verified')!.details as { millisecondsSinceReceived: number })
          .millisecondsSinceReceived,
      ),
    );
  } finally {
    await stack.stop();
  }

  say(`baseline: ${BURST} no-op workflows of ${activitiesPerRun} activities in ${lanes} lanes at once…`);
  const bundle = await bundleWorkflowCode({
    workflowsPath: fileURLToPath(new URL('./bench/baseline-workflow.ts', import.meta.url)),
    webpackConfigHook: (config) => ({
      ...config,
      resolve: { ...config.resolve, extensionAlias: { '.js': ['.ts', '.js'] } },
    }),
  });
  const worker = await Worker.create({
    connection: shared.connection,
    namespace: 'default',
    taskQueue: BASELINE_TASK_QUEUE,
    workflowBundle: bundle,
    activities: baselineActivities,
  });
  const running = worker.run();
  let baselineSeconds = NaN;
  const baselineLatencies: number[] = [];
  try {
    const t0 = Date.now();
    const handles = await Promise.all(
      ids.map((id) =>
        shared.client.workflow.start('benchBaseline', {
          taskQueue: BASELINE_TASK_QUEUE,
          workflowId: `bench-baseline-${id}-${randomUUID()}`,
          args: [{ activities: activitiesPerRun, lanes }],
        }),
      ),
    );
    await Promise.all(
      handles.map(async (h) => {
        await h.result();
        baselineLatencies.push(Date.now() - t0);
      }),
    );
    baselineSeconds = (Date.now() - t0) / 1000;
  } finally {
    worker.shutdown();
    await running;
  }
  const byReason = (security: boolean) =>
    offboardingLatencies.filter((_, i) => security === i >= offboardingLatencies.length - BURST_SECURITY);
  const offboardingRate = BURST / offboardingSeconds;
  const baselineRate = BURST / baselineSeconds;
  out('');
  out(
    `Burst: ${BURST} immediate terminations started at once (all systems, ${LATENCY_MS} ms per stand-in request) vs ${BURST} no-op workflows of ${activitiesPerRun} activities in ${lanes} lanes`,
    `### Burst: ${BURST} terminations at once vs a no-op baseline\n\n${BURST} immediate terminations started at once (all systems, ${LATENCY_MS} ms per stand-in request) against ${BURST} no-op workflows of ${activitiesPerRun} activities in ${lanes} concurrent lanes (scripts/bench/baseline-workflow.ts, own bundle and task queue), one worker each, same dev server.`,
  );
  out('', '');
  out(
    `${'workload'.padEnd(26)}${'all done'.padEnd(12)}${'per second'.padEnd(14)}${'p50 each'.padEnd(12)}p99 each`,
    '| workload | all done | workflows/s | p50 each | p99 each |\n| --- | --- | --- | --- | --- |',
  );
  out(
    `${'offboardings'.padEnd(26)}${`${offboardingSeconds.toFixed(1)} s`.padEnd(12)}${offboardingRate.toFixed(2).padEnd(14)}${ms(percentile(offboardingLatencies, 50)).padEnd(12)}${ms(percentile(offboardingLatencies, 99))}`,
    `| offboardings (to revocation_verified) | ${offboardingSeconds.toFixed(1)} s | ${offboardingRate.toFixed(2)} | ${ms(percentile(offboardingLatencies, 50))} | ${ms(percentile(offboardingLatencies, 99))} |`,
  );
  out(
    `${'no-op baseline'.padEnd(26)}${`${baselineSeconds.toFixed(1)} s`.padEnd(12)}${baselineRate.toFixed(2).padEnd(14)}${ms(percentile(baselineLatencies, 50)).padEnd(12)}${ms(percentile(baselineLatencies, 99))}`,
    `| no-op baseline (to completion) | ${baselineSeconds.toFixed(1)} s | ${baselineRate.toFixed(2)} | ${ms(percentile(baselineLatencies, 50))} | ${ms(percentile(baselineLatencies, 99))} |`,
  );
  out(
    `revocation p50: ${BURST_SECURITY} security terminations sent last ${ms(percentile(byReason(true), 50))}, the ${BURST - BURST_SECURITY} involuntary ones ${ms(percentile(byReason(false), 50))}`,
    `\nRevocation p50 (to \`revocation_verified\`): the ${BURST_SECURITY} security terminations sent last ${ms(percentile(byReason(true), 50))}, the ${BURST - BURST_SECURITY} involuntary ones sent first ${ms(percentile(byReason(false), 50))}.`,
  );
  const slowest = [...systemMs]
    .map(([system, all]) => ({ system, p50: percentile(all, 50), max: Math.max(...all) }))
    .sort((a, b) => b.max - a.max);
  out(
    `stage_verified per system in the burst (p50 / max): ${slowest.map((s) => `${s.system} ${ms(s.p50)} / ${ms(s.max)}`).join(', ')}`,
    `\nEach system's \`stage_verified\` in the burst, p50 / max: ${slowest.map((s) => `${s.system} ${ms(s.p50)} / ${ms(s.max)}`).join(', ')}.`,
  );
  const families = Object.entries(oktaRequests)
    .map(([family, n]) => `${family} ${n}`)
    .join(', ');
  out(
    `okta requests in the burst by API family (a window of 600 a minute each): ${families}`,
    `\nOkta requests in the burst by API family (a window of 600 a minute each): ${families}.`,
  );
  out(
    `throughput ratio offboarding / baseline = ${(offboardingRate / baselineRate).toFixed(2)}`,
    `\nThroughput ratio offboarding / baseline = **${(offboardingRate / baselineRate).toFixed(2)}**.`,
  );
}

// ---- Waiting: the worker's memory with many future-dated offboardings ----------------------

/**
 * A worker process wired like `npm start`'s (its heap limit, payload encryption, the PostgreSQL
 * audit database, every sandbox system), measured by VmRSS while
 * BENCH_WAITING (10,000) offboardings due in 30 days wait (scripts/bench/waiting-scenario.ts).
 * The last phase: its runs stay until the dev server stops with the bench.
 */
async function waitingPhase(shared: Shared): Promise<void> {
  const count = Number(env.BENCH_WAITING ?? 10_000);
  const heapMb = Number(env.OFFBOARD_WORKER_HEAP_MB ?? 768);
  const [slapd, postgres, saas] = await Promise.all([startSlapd(), startPostgres(), startSaasSandboxes()]);
  const dir = mkdtempSync(join(tmpdir(), 'offboard-bench-waiting-'));
  const payloadKeys = `bench:${randomBytes(32).toString('base64')}`;
  let worker: ChildProcess | undefined;
  try {
    const { systems, env: systemsEnv } = benchSystems(slapd, postgres, saas);
    const configFile = join(dir, 'offboard.config.yaml');
    writeFileSync(configFile, stringifyYaml({ systems, policy: example.policy, notifications: saas.notifications }));
    const workerEnv: NodeJS.ProcessEnv = {
      ...process.env,
      ...systemsEnv,
      TEMPORAL_ADDRESS: shared.address,
      DATABASE_URL: postgres.url,
      OFFBOARD_DB_EMBEDDED: '0',
      OFFBOARD_CONFIG: configFile,
      OFFBOARD_DATA_DIR: dir,
      OFFBOARD_METRICS_PORT: String(await freePort()),
      [PAYLOAD_KEYS_ENV]: payloadKeys,
    };
    const child = spawn(
      process.execPath,
      [`--max-old-space-size=${heapMb}`, '--import', 'tsx', join(projectRoot, 'workers', 'worker.ts')],
      { env: workerEnv, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    worker = child;
    let log = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      log = (log + chunk.toString()).slice(-8_000);
    });
    await eventually(
      async () => {
        if (child.exitCode !== null) throw new Error(`the worker exited (${child.exitCode}): ${log.slice(-2_000)}`);
        return log.includes('"msg":"worker started"');
      },
      Boolean,
      'the waiting phase worker to start',
      180_000,
      200,
    );
    const keyring = keyringFromEnv({ [PAYLOAD_KEYS_ENV]: payloadKeys });
    const client = new Client({ connection: shared.client.connection, dataConverter: dataConverterFor(keyring) });
    say(`waiting: ${count} offboardings due in 30 days, a worker process with a ${heapMb} MB heap`);
    const figures = await measureWaiting({
      client,
      workerPid: child.pid!,
      count,
      days: 30,
      prefix: `W${Date.now().toString(36).toUpperCase()}`,
      say: (line) => say(`waiting: ${line}`),
    });
    const mb = (value: number) => `${Math.round(value)} MB`;
    out('');
    out(
      `waiting offboardings (${figures.count}, a worker process with a ${heapMb} MB heap, as npm start runs it)`,
      `### Waiting offboardings (${figures.count}; the worker process as \`npm start\` runs it, ${heapMb} MB heap)\n\n` +
        '| waiting | worker VmRSS |\n| --- | --- |',
    );
    for (const sample of figures.samples)
      out(
        `  ${String(sample.waiting).padStart(6)} waiting  ${mb(sample.rssMb)}`,
        `| ${sample.waiting} | ${mb(sample.rssMb)} |`,
      );
    out(
      `worker before ${mb(figures.beforeMb)}, all waiting ${mb(figures.afterMb)}, peak ${mb(figures.peakMb)}; ` +
        `${figures.slopeKbPerRun.toFixed(0)} KB a run once the cache was full`,
      `\nWorker before ${mb(figures.beforeMb)}, all ${figures.count} waiting **${mb(figures.afterMb)}**, peak ${mb(figures.peakMb)}; ` +
        `${figures.slopeKbPerRun.toFixed(0)} KB a run once the cache was full.`,
    );
    out(
      `started in ${figures.startedSeconds.toFixed(0)} s, all waiting after ${figures.allWaitingSeconds.toFixed(0)} s; ` +
        `20 evicted runs replayed for their query: p50 ${figures.replayP50Ms} ms, max ${figures.replayMaxMs} ms`,
      `Started in ${figures.startedSeconds.toFixed(0)} s, all waiting after ${figures.allWaitingSeconds.toFixed(0)} s; ` +
        `20 evicted runs replayed for their query: p50 ${figures.replayP50Ms} ms, max ${figures.replayMaxMs} ms.`,
    );
    const verdict =
      figures.count >= 10_000 ? `${mb(figures.afterMb)} measured` : `≈ ${mb(figures.at10kMb)} extrapolated`;
    out(
      `10,000 waiting: ${verdict}, target < 1,024 MB: ${figures.at10kMb < 1024 ? 'met' : 'NOT met'}`,
      `10,000 waiting: ${verdict}, target < 1,024 MB: **${figures.at10kMb < 1024 ? 'met' : 'not met'}**.`,
    );
  } finally {
    if (worker && worker.exitCode === null) {
      const exited = new Promise((resolve) => worker!.once('exit', resolve));
      worker.kill('SIGTERM');
      await Promise.race([exited, sleep(30_000)]);
      if (worker.exitCode === null) worker.kill('SIGKILL');
    }
    await Promise.all([saas.stop(), slapd.stop(), postgres.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const began = Date.now();
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  const machine = `nproc ${cpus().length}, load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')} at start`;
  say(`machine: ${machine}`);
  say('starting the Temporal dev server and bundling the workflows…');
  const [server, bundle] = await Promise.all([startTemporalDevServer({ headless: true }), bundleWorkflows()]);
  const connection = await NativeConnection.connect({ address: server.address });
  const client = new Client({ connection: await Connection.connect({ address: server.address }) });
  const shared: Shared = { client, connection, bundle, address: server.address };
  const missing: string[] = [];
  try {
    let baseline: Awaited<ReturnType<typeof noFaultPhase>>;
    // The fault and burst phases compare against the no-fault figures; the waiting phase needs none.
    if (['nofault', 'hang', 'fail', 'burst'].some((phase) => PHASES.has(phase)))
      try {
        baseline = await noFaultPhase(shared);
      } catch (err) {
        missing.push(`no-fault phase failed: ${(err as Error).message}`);
      }
    for (const kind of ['hang', 'fail'] as const) {
      if (!PHASES.has(kind)) continue;
      if (!baseline) {
        missing.push(`${kind}: needs the no-fault figures`);
        continue;
      }
      await faultPhase(shared, kind, baseline.runs, baseline.systems).catch((err: Error) =>
        missing.push(`${kind} phase failed: ${err.message}`),
      );
    }
    if (PHASES.has('burst')) {
      if (!baseline) missing.push('burst: needs the activity count from the no-fault phase');
      else
        await burstPhase(shared, baseline.activitiesPerRun, baseline.systems.length).catch((err: Error) =>
          missing.push(`burst phase failed: ${err.message}`),
        );
    }
    if (PHASES.has('waiting'))
      await waitingPhase(shared).catch((err: Error) => missing.push(`waiting phase failed: ${err.message}`));
  } finally {
    await connection.close();
    await client.connection.close();
    await server.stop();
  }
  out('');
  out(
    `machine: ${machine}; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} at end; bench took ${((Date.now() - began) / 1000).toFixed(0)} s`,
    `Machine: ${machine}; ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')} at the end; the bench took ${((Date.now() - began) / 1000).toFixed(0)} s.`,
  );
  for (const line of missing) out(`MISSING: ${line}`, `Missing: ${line}`);
  if (env.BENCH_MARKDOWN) process.stdout.write(`\n----- markdown -----\n${report.markdown.join('\n')}\n`);
  process.exit(missing.length ? 1 : 0);
}

await main();
