/**
 * The hash-chained audit log on a real PostgreSQL cluster, and on the embedded PGlite that
 * `npm start` uses when DATABASE_URL is unset.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { generateKeyPairSync } from 'node:crypto';
import { createAuditStore } from '../activities/audit.js';
import { checkpointSettings, createCheckpointer, fileCheckpointStore } from '../activities/audit-checkpoints.js';
import { createActivities } from '../activities/index.js';
import { defaultPolicy } from '../model/policy.js';
import type { AuditEvent } from '../model/audit.js';
import { freePort } from '../scripts/services.js';
import { createPool, migrate, startEmbeddedDatabase } from '../workers/database.js';
import { sharedPostgres } from './helpers/environment.js';

function event(offboardingId: string, n: number, extra: Partial<AuditEvent> = {}): AuditEvent {
  return {
    id: `${offboardingId}/run/${n}`,
    occurredAt: new Date(Date.UTC(2026, 10, 1, 9, 0, 0, n)).toISOString(),
    offboardingId,
    employeeId: offboardingId.replace('offboarding-', ''),
    system: 'directory',
    action: 'remove_entitlement',
    outcome: 'done',
    actor: 'workflow',
    details: { group: `cn=g${n},ou=groups`, nested: { b: 2, a: [1, 'x'] }, unicode: 'Zoë ✓' },
    ...extra,
  };
}

describe('audit log (PostgreSQL)', () => {
  let pool: pg.Pool;
  let database: string;

  before(async () => {
    // A database of its own, so that tampering here cannot break the chain other tests verify.
    const server = await sharedPostgres();
    database = `audit_test_${process.pid}`;
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${database}`);
    await admin.end();
    pool = createPool({ url: server.url.replace(/\/postgres$/, `/${database}`), embedded: false });
    await migrate(pool);
    await migrate(pool); // migrations are idempotent
  });

  after(async () => {
    await pool?.end();
  });

  it('a retried append inserts once, and the chain verifies', async () => {
    const store = createAuditStore(pool);
    const first = await store.append(event('offboarding-A1', 1));
    const again = await store.append(event('offboarding-A1', 1));
    assert.equal(first.inserted, true);
    assert.deepEqual(again, { id: first.id, seq: first.seq, hash: first.hash, inserted: false });
    const rows = await store.eventsFor('offboarding-A1');
    assert.equal(rows.length, 1);
    assert.deepEqual(rows[0]!.details, event('offboarding-A1', 1).details);
    assert.deepEqual(await store.verify(), { ok: true, rows: 1 });
  });

  it('concurrent writers on many connections do not fork the chain', async () => {
    const store = createAuditStore(pool);
    const writers = Array.from({ length: 8 }, (_, w) =>
      (async () => {
        for (let n = 0; n < 25; n++) await store.append(event(`offboarding-C${w}`, n));
      })(),
    );
    await Promise.all(writers);
    const { rows } = await pool.query<{ seq: string; prev_hash: string }>(
      'SELECT seq, prev_hash FROM audit_events ORDER BY seq',
    );
    assert.equal(rows.length, 1 + 8 * 25);
    assert.deepEqual(
      rows.map((r) => Number(r.seq)),
      rows.map((_, i) => i + 1),
      'seq has no gaps or duplicates',
    );
    assert.equal(new Set(rows.map((r) => r.prev_hash)).size, rows.length, 'no two rows share a predecessor');
    assert.deepEqual(await store.verify(50), { ok: true, rows: rows.length });
  });

  it('rows cannot be updated or deleted through SQL', async () => {
    await assert.rejects(pool.query(`UPDATE audit_events SET actor = 'mallory' WHERE seq = 1`), /append-only/);
    await assert.rejects(pool.query('DELETE FROM audit_events WHERE seq = 1'), /append-only/);
  });

  it('verify names the first broken row when a superuser alters one', async () => {
    const store = createAuditStore(pool);
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only');
      const target = await client.query<{ id: string }>(
        `UPDATE audit_events SET outcome = 'skipped' WHERE seq = 42 RETURNING id`,
      );
      const result = await verifyOn(client);
      assert.equal(result.ok, false);
      assert.equal(result.firstBroken?.seq, 42);
      assert.equal(result.firstBroken?.id, target.rows[0]!.id);
      assert.match(result.firstBroken!.problem, /hash does not match/);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    assert.equal((await store.verify()).ok, true, 'the rolled-back edit leaves the chain intact');
  });

  /** verify() on one connection, so it sees the uncommitted tampering. */
  function verifyOn(client: pg.PoolClient) {
    const single = {
      query: client.query.bind(client),
      connect: async () => ({ ...client, release: () => undefined }),
    } as unknown as pg.Pool;
    return createAuditStore(single).verify(10);
  }

  it("an offboarding's last row is anchored by a signed checkpoint at once, not at the next periodic one", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'offboard-anchor-'));
    try {
      const checkpoints = fileCheckpointStore(join(dir, 'checkpoints.jsonl'));
      // Periodic checkpoints far apart, so that only the end of the run can have signed one.
      const checkpointer = createCheckpointer({
        store: checkpoints,
        key: generateKeyPairSync('ed25519').privateKey,
        everyRows: 1_000,
        everyMs: 3_600_000,
      });
      const audit = createAuditStore(pool, { onAppended: checkpointer.noteAppended });
      const { recordAudits } = createActivities({
        policy: defaultPolicy(),
        connectors: new Map(),
        audit,
        notify: async () => ({ delivered: [] }),
        anchorNow: checkpointer.flush,
      });
      const run = 'offboarding-ANCHOR1';
      const midway = await recordAudits([event(run, 1), event(run, 2)]);
      assert.deepEqual(
        (await checkpoints.readAll()).checkpoints,
        [],
        'a run still going is left to the periodic checkpoint',
      );
      const ending = event(run, 3, {
        action: 'offboarding_completed',
        system: null,
        outcome: null,
        details: { actions: { done: 2 }, slaDeadline: null },
      });
      const last = await recordAudits([ending]);
      const { checkpoints: signed } = await checkpoints.readAll();
      assert.equal(signed.length, 1);
      assert.ok(signed[0]!.seq >= last[0]!.seq && last[0]!.seq > midway[1]!.seq, 'the checkpoint covers the last row');
      await checkpointer.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('embedded database (PGlite served to pg)', () => {
  it('serves one connection at a time: concurrent appends queue, transactions stay serial, the chain holds', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'offboard-pglite-'));
    const port = await freePort();
    const embedded = await startEmbeddedDatabase(dir, port);
    const pools = [
      createPool({ url: embedded.url, embedded: true }),
      createPool({ url: embedded.url, embedded: true }),
    ];
    try {
      // PGlite has one superuser login: the roles are created there as on PostgreSQL.
      assert.equal((await migrate(pools[0]!)).roles, 'created');
      // Two processes' worth of clients: while one holds a transaction open, the other waits.
      const holder = await pools[0]!.connect();
      await holder.query('BEGIN');
      await holder.query(`INSERT INTO audit_events (seq, id, occurred_at, offboarding_id, employee_id, action, actor, details, prev_hash, hash)
                          VALUES (1000000, 'probe', now(), 'p', 'p', 'probe', 'test', '{}', '', '')`);
      let otherFinished = false;
      const other = pools[1]!.query('SELECT count(*) FROM audit_events').then((r) => {
        otherFinished = true;
        return r;
      });
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(otherFinished, false, 'the second connection waits while the first is in a transaction');
      await holder.query('ROLLBACK');
      holder.release();
      const counted = await other;
      assert.equal(
        Number(counted.rows[0].count),
        0,
        'it saw the state after the rollback, never the middle of the transaction',
      );

      const stores = pools.map((p) => createAuditStore(p));
      await Promise.all(Array.from({ length: 20 }, (_, n) => stores[n % 2]!.append(event(`offboarding-P${n % 3}`, n))));
      assert.deepEqual(await stores[0]!.verify(), { ok: true, rows: 20 });
    } finally {
      await Promise.all(pools.map((p) => p.end()));
      await embedded.stop();
    }
    // Persisted: a second start over the same directory keeps the rows.
    const reopened = await startEmbeddedDatabase(dir, port);
    const pool = createPool({ url: reopened.url, embedded: true });
    try {
      assert.deepEqual(await createAuditStore(pool).verify(), { ok: true, rows: 20 });
    } finally {
      await pool.end();
      await reopened.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('audit checkpoint settings', () => {
  it('every 100 rows and 15 s by default; seconds, or the earlier minutes, from the environment; nonsense refused', () => {
    assert.deepEqual([checkpointSettings({}).everyRows, checkpointSettings({}).everyMs], [100, 15_000]);
    assert.equal(checkpointSettings({ OFFBOARD_AUDIT_CHECKPOINT_SECONDS: '2' }).everyMs, 2_000);
    assert.equal(checkpointSettings({ OFFBOARD_AUDIT_CHECKPOINT_MINUTES: '5' }).everyMs, 300_000);
    assert.throws(
      () => checkpointSettings({ OFFBOARD_AUDIT_CHECKPOINT_SECONDS: 'soon' }),
      /OFFBOARD_AUDIT_CHECKPOINT_SECONDS must be a positive number \(got "soon"\)/,
    );
  });
});
