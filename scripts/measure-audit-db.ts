/**
 * `npx tsx scripts/measure-audit-db.ts`: the figures behind the choice of the audit database that
 * `npm start` serves (docs/design.md, "The audit database under npm start"). For the embedded
 * PGlite server, as shipped and as hardened here, and for a kept Debian PostgreSQL cluster:
 *   - start time of a database that already exists (the second and later `npm start`),
 *   - survival of a client that sends a startup packet and resets the socket (issue 9's repro),
 *   - a client killed with SIGKILL inside a transaction holding the audit lock: does the server
 *     live, does the next client get in, does it see the dead client's uncommitted row,
 *   - audit appends per second with several writers (one connection each, as several workers).
 * Each database runs in its own child process, so a crash shows as that process exiting.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { createAuditStore } from '../activities/audit.js';
import { createPool, migrate, startEmbeddedDatabase } from '../workers/database.js';
import { freePort, projectRoot, startPostgres } from './services.js';

type Kind = 'pglite-as-shipped' | 'pglite-hardened' | 'postgres';

/** Child mode: serve one database until killed, print "ready <ms>" on stdout. */
async function serve(kind: Kind, dir: string, port: number) {
  const began = Date.now();
  if (kind === 'postgres') {
    const server = await startPostgres({ dir, port });
    process.on('SIGTERM', () => void server.stop().then(() => process.exit(0)));
  } else {
    const db = await startEmbeddedDatabase(dir, port, { hardened: kind === 'pglite-hardened' });
    process.on('SIGTERM', () => void db.stop().then(() => process.exit(0)));
  }
  process.stdout.write(`ready ${Date.now() - began}\n`);
}

/** Every server started, so that a measurement that fails part-way leaves none running. */
const servers = new Set<ChildProcess>();
process.on('exit', () => servers.forEach((server) => server.kill('SIGKILL')));

function startServer(kind: Kind, dir: string, port: number): Promise<{ child: ChildProcess; startMs: number }> {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(projectRoot, 'scripts', 'measure-audit-db.ts'), 'serve', kind, dir, String(port)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  servers.add(child);
  child.once('exit', () => servers.delete(child));
  child.stderr!.on('data', (chunk: Buffer) => process.stderr.write(`[${kind} server] ${chunk}`));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      const ready = /ready (\d+)/.exec(chunk.toString());
      if (ready) resolve({ child, startMs: Number(ready[1]) });
    });
    child.once('exit', (code) => reject(new Error(`${kind} exited (${code}) before it was ready`)));
  });
}

function startupPacket(): Buffer {
  const body = Buffer.concat([Buffer.from([0, 3, 0, 0]), Buffer.from('user\0postgres\0database\0postgres\0\0')]);
  const length = Buffer.alloc(4);
  length.writeInt32BE(body.length + 4);
  return Buffer.concat([length, body]);
}

async function resetRepro(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(startupPacket(), () => {
        socket.resetAndDestroy();
        resolve();
      });
    });
    socket.once('error', reject);
  });
}

const alive = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A client in its own process that takes the audit lock, inserts a row and waits to be killed. */
function lockingClient(url: string): Promise<ChildProcess> {
  const script = `
    import pg from 'pg';
    const client = new pg.Client({ connectionString: ${JSON.stringify(url)} });
    await client.connect();
    await client.query('BEGIN');
    await client.query('LOCK TABLE audit_events IN EXCLUSIVE MODE');
    await client.query("INSERT INTO audit_events (seq, id, occurred_at, offboarding_id, employee_id, action, actor, details, prev_hash, hash) VALUES (999999, 'uncommitted', now(), 'x', 'x', 'x', 'x', '{}', '', '')");
    process.stdout.write('locked\\n');
    setInterval(() => undefined, 1000);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    cwd: projectRoot,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('locked') && resolve(child));
    child.once('exit', (code) => reject(new Error(`locking client exited (${code})`)));
  });
}

function event(writer: number, n: number) {
  return {
    id: `measure/${writer}/${n}/${Date.now()}`,
    occurredAt: new Date().toISOString(),
    offboardingId: `offboarding-M${writer}`,
    employeeId: `M${writer}`,
    system: 'directory',
    action: 'remove_entitlement' as const,
    outcome: 'done' as const,
    actor: 'workflow',
    details: { group: `cn=g${n},ou=groups` },
  };
}

async function measure(kind: Kind) {
  const dir = mkdtempSync(join(tmpdir(), `offboard-measure-${kind}-`));
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const embedded = kind !== 'postgres';
  const row: Record<string, string | number> = { kind };
  try {
    // First start creates the database; the figure that matters is the second (kept data).
    let server = await startServer(kind, dir, port);
    row.firstStartMs = server.startMs;
    const setup = createPool({ url, embedded });
    await migrate(setup);
    await setup.end();
    server.child.kill('SIGTERM');
    await new Promise((r) => server.child.once('exit', r));
    server = await startServer(kind, dir, port);
    row.keptStartMs = server.startMs;

    await resetRepro(port);
    await sleep(1000);
    row.survivesReset = alive(server.child) ? 'yes' : `no (exit ${server.child.exitCode})`;
    if (!alive(server.child)) server = await startServer(kind, dir, port);

    const locker = await lockingClient(url);
    locker.kill('SIGKILL');
    await new Promise((r) => locker.once('exit', r));
    await sleep(1000);
    row.survivesKill9 = alive(server.child) ? 'yes' : `no (exit ${server.child.exitCode})`;
    if (!alive(server.child)) server = await startServer(kind, dir, port);
    const after = new pg.Client({ connectionString: url, connectionTimeoutMillis: 10_000 });
    try {
      await after.connect();
      after.on('error', () => undefined);
      const seen = await Promise.race([
        after.query("SELECT count(*)::int AS n FROM audit_events WHERE id = 'uncommitted'"),
        sleep(10_000).then(() => null),
      ]);
      row.nextClientAfterKill9 = seen
        ? seen.rows[0].n === 0
          ? 'served, clean'
          : 'served INSIDE the dead client transaction (sees its uncommitted row)'
        : 'blocked > 10 s';
    } catch (err) {
      row.nextClientAfterKill9 = `refused: ${(err as Error).message}`;
    } finally {
      await after.end().catch(() => undefined);
    }
    // Any local process that connects and says nothing: does everyone else wait for it?
    const idle = new pg.Client({ connectionString: url });
    await idle.connect();
    idle.on('error', () => undefined);
    const probe = new pg.Client({ connectionString: url });
    probe.on('error', () => undefined);
    const probeBegan = Date.now();
    const answered = await Promise.race([
      probe.connect().then(() => probe.query('SELECT 1')),
      sleep(5_000).then(() => null),
    ]);
    row.otherClientWhileOneIdles = answered ? `answered in ${Date.now() - probeBegan} ms` : 'blocked > 5 s';
    await idle.end().catch(() => undefined);
    await probe.end().catch(() => undefined);
    // Restart clean for the throughput figure (a poisoned embedded session would skew it).
    server.child.kill('SIGTERM');
    await new Promise((r) => server.child.once('exit', r));
    server = await startServer(kind, dir, port);
    const clean = createPool({ url, embedded });
    await clean.query("DELETE FROM audit_events WHERE id = 'uncommitted'").catch(() => undefined);
    await clean.end();

    const writers = 4;
    const perWriter = 100;
    const pools = Array.from({ length: writers }, () => createPool({ url, embedded }));
    const began = Date.now();
    await Promise.all(
      pools.map(async (pool, w) => {
        const store = createAuditStore(pool);
        for (let n = 0; n < perWriter; n++) await store.append(event(w, n));
      }),
    );
    const seconds = (Date.now() - began) / 1000;
    row.appendsPerSecond4Writers = Math.round((writers * perWriter) / seconds);
    const verified = await createAuditStore(pools[0]!).verify();
    row.chainAfter = verified.ok ? `ok (${verified.rows} rows)` : 'BROKEN';
    await Promise.all(pools.map((p) => p.end()));
    server.child.kill('SIGTERM');
    await new Promise((r) => server.child.once('exit', r));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return row;
}

if (process.argv[2] === 'serve') {
  await serve(process.argv[3] as Kind, process.argv[4]!, Number(process.argv[5]));
} else {
  const kinds = (
    process.argv.slice(2).length ? process.argv.slice(2) : ['pglite-as-shipped', 'pglite-hardened', 'postgres']
  ) as Kind[];
  for (const kind of kinds) console.log(JSON.stringify(await measure(kind)));
}
