/**
 * `npm start` as an operator runs it (scripts/start.ts in a process of its own, on free ports and
 * a data directory of its own): it survives a client that resets its audit-DB connection, stops
 * everything when one child dies, stops what a crashed run left behind, and stops quietly and
 * completely on Ctrl-C. Every wait polls for a condition with a generous limit.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePort, postgresAnswers, projectRoot, readToolchain } from '../scripts/services.js';

interface Run {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

const READY = 'Ctrl-C stops everything';

async function until(what: string, condition: () => boolean | Promise<boolean>, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what}: not so after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function startEnv(extra: NodeJS.ProcessEnv = {}): Promise<NodeJS.ProcessEnv> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const name of ['DATABASE_URL', 'OFFBOARD_CONFIG', 'OFFBOARD_AUDIT_DB', 'OFFBOARD_EMBEDDED_DB_PORT'])
    delete env[name];
  const ports = [
    'OFFBOARD_TEMPORAL_PORT',
    'OFFBOARD_TEMPORAL_UI_PORT',
    'OFFBOARD_CODEC_PORT',
    'OFFBOARD_API_PORT',
    'OFFBOARD_METRICS_PORT',
    'OFFBOARD_AUDIT_DB_PORT',
    'OFFBOARD_LDAP_PORT',
    'OFFBOARD_WAREHOUSE_PORT',
  ];
  for (const name of ports) env[name] = String(await freePort());
  env.OFFBOARD_DATA_DIR = mkdtempSync(join(tmpdir(), 'offboard-start-'));
  // As .data is: PostgreSQL runs as `postgres` (under root) and must reach its cluster inside.
  chmodSync(env.OFFBOARD_DATA_DIR, 0o755);
  return { ...env, ...extra };
}

function npmStart(env: NodeJS.ProcessEnv): Run {
  // Its own process group, as in a terminal: a signal to the group is what Ctrl-C sends.
  const child = spawn(process.execPath, ['--import', 'tsx', join(projectRoot, 'scripts', 'start.ts')], {
    env,
    cwd: projectRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => output, exited };
}

async function ready(run: Run) {
  await until(
    'npm start is ready',
    () => {
      if (run.child.exitCode !== null) throw new Error(`npm start exited (${run.child.exitCode}):\n${run.output()}`);
      return run.output().includes(READY);
    },
    300_000,
  );
}

interface Recorded {
  name: string;
  pid: number;
  startTime: string;
}

/** The processes npm start recorded under <data>/run, as it recorded them. */
function recorded(env: NodeJS.ProcessEnv): Recorded[] {
  const runDir = join(env.OFFBOARD_DATA_DIR!, 'run');
  return readdirSync(runDir)
    .filter((file) => file.endsWith('.pid'))
    .map((file) => ({ name: file.slice(0, -4), ...JSON.parse(readFileSync(join(runDir, file), 'utf8')) }));
}

/** Alive and still the same process (a pid reused since is not it). */
function stillRunning({ pid, startTime }: Recorded): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] === startTime;
  } catch {
    return false;
  }
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

async function nothingLeft(env: NodeJS.ProcessEnv, processes: Recorded[]) {
  await until('every recorded process has ended', () => !processes.some(stillRunning), 60_000);
  for (const name of Object.keys(env).filter((key) => /^OFFBOARD_.*_PORT$/.test(key)))
    assert.equal(await listening(Number(env[name])), false, `nothing listens on ${name}=${env[name]}`);
}

/** Issue 9's repro: a PostgreSQL startup packet, then a TCP reset. */
function resetAfterStartupPacket(port: number): Promise<void> {
  const body = Buffer.concat([Buffer.from([0, 3, 0, 0]), Buffer.from('user\0postgres\0database\0postgres\0\0')]);
  const length = Buffer.alloc(4);
  length.writeInt32BE(body.length + 4);
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () =>
      socket.write(Buffer.concat([length, body]), () => {
        socket.resetAndDestroy();
        resolve();
      }),
    );
    socket.once('error', reject);
  });
}

/** A client in a process of its own, killed with SIGKILL inside a transaction holding the audit lock. */
async function killClientMidTransaction(url: string) {
  const script = `
    import pg from 'pg';
    const client = new pg.Client({ connectionString: ${JSON.stringify(url)} });
    await client.connect();
    await client.query('BEGIN');
    await client.query('LOCK TABLE audit_events IN EXCLUSIVE MODE');
    await client.query("CREATE TEMP TABLE dead_client_was_here (x int)");
    process.stdout.write('locked\\n');
    setInterval(() => undefined, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: projectRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  await until(
    'the client holds the audit lock',
    () => {
      if (child.exitCode !== null) throw new Error(`the locking client exited: ${output}`);
      return output.includes('locked');
    },
    60_000,
  );
  const gone = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await gone;
}

/** The audit-DB URL exactly as npm start printed it. */
function printedAuditUrl(run: Run): string {
  const url = /audit DB\s+(\S+)/.exec(run.output())?.[1];
  assert.ok(url, `npm start printed an audit DB URL:\n${run.output()}`);
  return url;
}

function psql(url: string, sql: string) {
  return spawnSync(join(readToolchain().postgresBin, 'psql'), [url, '-At', '-c', sql], {
    encoding: 'utf8',
    timeout: 60_000,
  });
}

describe('npm start (supervision, the audit database under a bad client)', function () {
  this.timeout(900_000);
  const dataDirs: string[] = [];
  const runs: Run[] = [];
  const launch = (env: NodeJS.ProcessEnv) => {
    dataDirs.push(env.OFFBOARD_DATA_DIR!);
    const run = npmStart(env);
    runs.push(run);
    return run;
  };

  afterEach(async function () {
    // Whatever a failed test left: the supervisor, then anything it recorded.
    for (const run of runs.splice(0)) if (run.child.exitCode === null) run.child.kill('SIGKILL');
    for (const dir of dataDirs.splice(0)) {
      try {
        for (const process_ of recorded({ OFFBOARD_DATA_DIR: dir }))
          if (stillRunning(process_)) process.kill(process_.pid, 'SIGKILL');
      } catch {
        // no run directory: nothing was started
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('survives TCP resets on the audit DB, prints a URL psql can use, and stops everything when one child dies', async function () {
    const env = await startEnv();
    const run = launch(env);
    await ready(run);
    const auditPort = Number(env.OFFBOARD_AUDIT_DB_PORT);
    for (let n = 0; n < 3; n++) await resetAfterStartupPacket(auditPort);
    await killClientMidTransaction(`postgres://postgres@127.0.0.1:${auditPort}/postgres`);
    const url = printedAuditUrl(run);
    await until('the audit database answers after the resets', () => postgresAnswers(url), 60_000);
    assert.equal(run.child.exitCode, null, `npm start is still running:\n${run.output()}`);
    const counted = psql(url, 'SELECT count(*) FROM audit_events');
    assert.equal(counted.status, 0, `psql with the printed URL: ${counted.stderr}`);
    assert.match(counted.stdout, /^\d+\n$/);

    const processes = recorded(env);
    const slapd = processes.find((p) => p.name === 'slapd');
    assert.ok(slapd, `slapd has a pid file: ${JSON.stringify(processes)}`);
    process.kill(slapd.pid, 'SIGKILL');
    assert.equal(await run.exited, 1);
    assert.match(run.output(), new RegExp(`slapd \\(pid ${slapd.pid}\\) was killed by SIGKILL; stopping everything`));
    await nothingLeft(env, processes);
  });

  it('stops what a crashed run left behind, then stops quietly and completely on Ctrl-C', async function () {
    const env = await startEnv();
    const crashed = launch(env);
    await ready(crashed);
    // The servers outlive a supervisor killed outright (they are in process groups of their own).
    const servers = ['temporal', 'audit-db', 'slapd', 'warehouse-pg'];
    const left = recorded(env).filter((p) => servers.includes(p.name));
    assert.equal(left.length, servers.length, JSON.stringify(recorded(env)));
    crashed.child.kill('SIGKILL');
    await crashed.exited;
    assert.ok(left.every(stillRunning), 'the crashed run left its servers running');

    const next = launch(env);
    await ready(next);
    for (const leftover of left)
      assert.match(next.output(), new RegExp(`stopped .*, pid ${leftover.pid}, left running by an earlier npm start`));
    assert.equal(left.some(stillRunning), false, 'the leftovers are gone');

    const processes = recorded(env);
    process.kill(-next.child.pid!, 'SIGINT'); // what Ctrl-C in its terminal sends
    assert.equal(await next.exited, 0);
    const afterCtrlC = next.output().slice(next.output().indexOf('stopping…'));
    assert.match(afterCtrlC, /\[offboard\] stopped\n/);
    assert.doesNotMatch(afterCtrlC, /Called end on pool|\n\s+at |Error|"level":50/, afterCtrlC);
    await nothingLeft(env, processes);
    assert.deepEqual(recorded(env), [], 'no pid file is left');
  });

  it('names the process that holds a port it needs, and starts nothing', async function () {
    const env = await startEnv();
    const squatter: Server = createServer();
    await new Promise<void>((resolve) => squatter.listen(Number(env.OFFBOARD_TEMPORAL_PORT), '127.0.0.1', resolve));
    try {
      const run = launch(env);
      assert.equal(await run.exited, 1);
      assert.match(
        run.output(),
        new RegExp(`port ${env.OFFBOARD_TEMPORAL_PORT} \\(for Temporal\\) is in use by pid ${process.pid} \\(.*node`),
      );
      assert.match(run.output(), /set OFFBOARD_TEMPORAL_PORT/);
    } finally {
      await new Promise((r) => squatter.close(r));
    }
  });

  it('with the embedded PGlite fallback: survives resets and a client killed mid-transaction, whose session the next client does not inherit', async function () {
    const env = await startEnv({ OFFBOARD_AUDIT_DB: 'pglite' });
    const run = launch(env);
    await ready(run);
    assert.match(run.output(), /embedded PGlite: OFFBOARD_AUDIT_DB/);
    const auditPort = Number(env.OFFBOARD_AUDIT_DB_PORT);
    const url = `postgres://postgres@127.0.0.1:${auditPort}/postgres`;
    for (let n = 0; n < 3; n++) await resetAfterStartupPacket(auditPort);
    await killClientMidTransaction(url);
    await until('the embedded database answers', () => postgresAnswers(url), 120_000);
    assert.equal(run.child.exitCode, null, `npm start is still running:\n${run.output()}`);
    const next = new pg.Client({ connectionString: url });
    await next.connect();
    try {
      const inherited = await next.query(
        "SELECT now() = statement_timestamp() AS fresh, to_regclass('pg_temp.dead_client_was_here') AS temp",
      );
      // A transaction left open would freeze now() at its start and keep the temp table.
      assert.deepEqual(inherited.rows[0], { fresh: true, temp: null });
    } finally {
      await next.end();
    }
    const counted = psql(printedAuditUrl(run), 'SELECT count(*) FROM audit_events');
    assert.equal(counted.status, 0, `psql with the printed URL: ${counted.stderr}`);
    process.kill(-run.child.pid!, 'SIGINT');
    assert.equal(await run.exited, 0);
  });
});
