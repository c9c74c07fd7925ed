/**
 * The audit trail's completeness on a real PostgreSQL cluster: the seven attacks of issue 9, each
 * made with superuser rights (the insider the trail is for), each detected and named by the
 * checks that rest on records outside the table: the signed checkpoints and the receipts each
 * workflow keeps in its history (here: exactly what recordAudits returns, grouped by run as the
 * histories hold them; test/evidence.test.ts reads them from a real workflow's history).
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, createPublicKey } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import {
  chainHashV1,
  createAuditStore,
  rowHash,
  type AppendResult,
  type AuditStore,
  type StoredAuditEvent,
} from '../activities/audit.js';
import { createCheckpointer, fileCheckpointStore, type CheckpointStore } from '../activities/audit-checkpoints.js';
import {
  checkCheckpoints,
  compareWithHistories,
  NOTICE_KINDS,
  type Finding,
  type HistoryReceipts,
} from '../activities/audit-verification.js';
import { GENESIS_HASH, type AuditEvent } from '../model/audit.js';
import { createPool, migrate } from '../workers/database.js';
import { sharedPostgres } from './helpers/environment.js';

const RUNS = ['offboarding-A', 'offboarding-B', 'offboarding-C'];
const ROWS_PER_RUN = 40;

function event(offboardingId: string, n: number): AuditEvent {
  return {
    id: `${offboardingId}/run-1/${n}`,
    occurredAt: new Date(Date.UTC(2026, 10, 1, 9, 0, n)).toISOString(),
    offboardingId,
    employeeId: offboardingId.slice('offboarding-'.length),
    system: 'directory',
    action: 'remove_entitlement',
    outcome: 'done',
    actor: 'workflow',
    details: { group: `cn=g${n},ou=groups`, n },
  };
}

interface Log {
  pool: pg.Pool;
  store: AuditStore;
  checkpoints: CheckpointStore;
  publicKey: ReturnType<typeof createPublicKey>;
  histories: HistoryReceipts[];
  check(): Promise<Finding[]>;
}

describe('audit trail completeness: seven attacks by a database superuser, each detected and named', function () {
  let server: { url: string };
  let dir: string;
  let made = 0;
  const pools: pg.Pool[] = [];

  before(async () => {
    server = await sharedPostgres();
    dir = mkdtempSync(join(tmpdir(), 'offboard-attacks-'));
  });

  after(async () => {
    await Promise.all(pools.map((p) => p.end()));
    rmSync(dir, { recursive: true, force: true });
  });

  /** A database of its own with 120 rows of three offboardings, written in steps of 4, checkpointed every 25 rows and at the end. */
  async function freshLog(): Promise<Log> {
    made += 1;
    const database = `audit_attack_${process.pid}_${made}`;
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${database}`);
    await admin.end();
    const pool = createPool({ url: server.url.replace(/\/postgres$/, `/${database}`), embedded: false });
    pools.push(pool);
    assert.equal((await migrate(pool)).roles, 'created');
    const { privateKey } = generateKeyPairSync('ed25519');
    const checkpoints = fileCheckpointStore(join(dir, `${database}.jsonl`));
    const checkpointer = createCheckpointer({ store: checkpoints, key: privateKey, everyRows: 25, everyMs: 3_600_000 });
    const store = createAuditStore(pool, { onAppended: checkpointer.noteAppended });
    const receipts = new Map<string, AppendResult[]>(RUNS.map((run) => [run, []]));
    for (let step = 0; step < ROWS_PER_RUN / 4; step++) {
      for (const run of RUNS) {
        const written = await store.appendAll([1, 2, 3, 4].map((k) => event(run, step * 4 + k)));
        receipts.get(run)!.push(...written);
      }
    }
    await checkpointer.stop();
    const publicKey = createPublicKey(privateKey);
    const histories = RUNS.map((run) => ({
      workflowId: run,
      runId: 'run-1',
      receipts: receipts.get(run)!.map(({ id, seq, hash }) => ({ id, seq, hash })),
      complete: true,
    }));
    return {
      pool,
      store,
      checkpoints,
      publicKey,
      histories,
      async check() {
        const fromCheckpoints = await checkCheckpoints(store, checkpoints, publicKey);
        const fromTemporal = await compareWithHistories(store, histories);
        return [...fromCheckpoints.findings, ...fromTemporal.findings];
      },
    };
  }

  /** The attacker's session: a superuser with the append-only triggers switched off. */
  async function asAttacker(log: Log, work: (client: pg.PoolClient) => Promise<void>) {
    const client = await log.pool.connect();
    try {
      await client.query('BEGIN');
      await client.query('ALTER TABLE audit_events DISABLE TRIGGER ALL');
      await work(client);
      for (const trigger of ['audit_events_append_only', 'audit_events_no_truncate'])
        await client.query(`ALTER TABLE audit_events ENABLE ALWAYS TRIGGER ${trigger}`);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK');
      throw err;
    } finally {
      client.release();
    }
  }

  /** What an attacker who knows the algorithm does after a change: recompute every hash from `fromSeq` on. */
  async function rehashFrom(client: pg.PoolClient, fromSeq: number) {
    const { rows } = await client.query<{ seq: string; hash: string }>(
      'SELECT seq, hash FROM audit_events WHERE seq < $1 ORDER BY seq DESC LIMIT 1',
      [fromSeq],
    );
    let prev = rows[0]?.hash ?? GENESIS_HASH;
    const later = await client.query('SELECT * FROM audit_events WHERE seq >= $1 ORDER BY seq', [fromSeq]);
    for (const row of later.rows) {
      const stored = {
        seq: Number(row.seq),
        id: row.id,
        occurredAt: row.occurred_at.toISOString(),
        recordedAt: row.recorded_at.toISOString(),
        offboardingId: row.offboarding_id,
        employeeId: row.employee_id,
        system: row.system,
        action: row.action,
        outcome: row.outcome,
        actor: row.actor,
        details: row.details,
        hashVersion: row.hash_version,
      };
      const hash = rowHash(prev, stored)!;
      await client.query('UPDATE audit_events SET prev_hash = $1, hash = $2 WHERE seq = $3', [prev, hash, stored.seq]);
      prev = hash;
    }
  }

  /** The kinds of the failures found (notices such as rows after the last checkpoint left out). */
  const kinds = (findings: Finding[]) =>
    [...new Set(findings.filter((f) => !NOTICE_KINDS.has(f.kind)).map((f) => f.kind))].sort();

  it('untouched: the chain verifies, every checkpoint matches, every history agrees', async () => {
    const log = await freshLog();
    assert.deepEqual(await log.store.verify(), { ok: true, rows: 120 });
    const checked = await checkCheckpoints(log.store, log.checkpoints, log.publicKey);
    assert.equal(checked.latest?.seq, 120);
    assert.ok(checked.validSignatures >= 5, `every 25 rows and at the end (${checked.validSignatures})`);
    assert.deepEqual(await log.check(), []);
  });

  it('1. deleting the last 50 rows: named a truncated tail by the checkpoint and by the histories', async () => {
    const log = await freshLog();
    await asAttacker(log, (c) => c.query('DELETE FROM audit_events WHERE seq > 70').then(() => undefined));
    assert.equal((await log.store.verify()).ok, true, 'the chain alone does not notice');
    const findings = await log.check();
    assert.deepEqual(kinds(findings), ['truncated_tail']);
    assert.ok(
      findings.some((f) => /rows 71 to 120 are missing/.test(f.message)),
      JSON.stringify(findings),
    );
    assert.equal(findings.filter((f) => f.offboardingId !== undefined).length, 3, 'each run whose rows went is named');
  });

  it('2. TRUNCATE: refused by the statement trigger; with the triggers off, every offboarding is named deleted', async () => {
    const log = await freshLog();
    await assert.rejects(log.pool.query('TRUNCATE audit_events'), /append-only/);
    await asAttacker(log, (c) => c.query('TRUNCATE audit_events').then(() => undefined));
    const findings = await log.check();
    assert.deepEqual(kinds(findings), ['deleted_offboarding', 'truncated_tail']);
    assert.deepEqual(
      findings
        .filter((f) => f.kind === 'deleted_offboarding')
        .map((f) => f.offboardingId)
        .sort(),
      RUNS,
    );
  });

  it('3. deleting under session_replication_role = replica: the triggers fire anyway; with them off too, named', async () => {
    const log = await freshLog();
    const client = await log.pool.connect();
    try {
      await client.query('SET session_replication_role = replica');
      await assert.rejects(client.query('DELETE FROM audit_events WHERE seq > 100'), /append-only/);
      await client.query('RESET session_replication_role');
    } finally {
      client.release();
    }
    await asAttacker(log, async (c) => {
      await c.query('SET LOCAL session_replication_role = replica');
      await c.query('DELETE FROM audit_events WHERE seq > 100');
    });
    const findings = await log.check();
    assert.deepEqual(kinds(findings), ['truncated_tail']);
    assert.ok(findings.some((f) => /rows 101 to 120 are missing/.test(f.message)));
  });

  it('4. editing a row and recomputing every later hash: named rewritten, at the checkpoint and at the row', async () => {
    const log = await freshLog();
    const target = (await log.store.rowsBetween(30, 30))[0]!;
    await asAttacker(log, async (c) => {
      await c.query(`UPDATE audit_events SET outcome = 'failed' WHERE seq = 30`);
      await rehashFrom(c, 30);
    });
    assert.equal((await log.store.verify()).ok, true, 'the recomputed chain is consistent');
    const findings = await log.check();
    assert.deepEqual(kinds(findings), ['rewritten']);
    const atCheckpoint = findings.find((f) => f.offboardingId === undefined)!;
    const goodUpTo = Number(/rows after seq (\d+) were changed/.exec(atCheckpoint.message)?.[1]);
    assert.ok(goodUpTo < 30 && atCheckpoint.seq! >= 30, atCheckpoint.message);
    const inHistory = findings.find((f) => f.offboardingId === target.offboardingId)!;
    assert.ok(inHistory.message.includes(`the first, row ${target.id}, was seq 30`), inHistory.message);
  });

  it("5. deleting one offboarding's rows, renumbering and recomputing: named a rewrite and a deleted offboarding", async () => {
    const log = await freshLog();
    await asAttacker(log, async (c) => {
      await c.query(`DELETE FROM audit_events WHERE offboarding_id = 'offboarding-B'`);
      // Renumber without gaps: seq is the primary key, so shift through negatives.
      await c.query(
        `UPDATE audit_events SET seq = -n FROM (SELECT seq AS old, row_number() OVER (ORDER BY seq) AS n FROM audit_events) r WHERE seq = r.old`,
      );
      await c.query('UPDATE audit_events SET seq = -seq');
      await rehashFrom(c, 1);
    });
    assert.deepEqual(await log.store.verify(), { ok: true, rows: 80 }, 'consistent after the rewrite');
    const findings = await log.check();
    assert.ok(
      kinds(findings).includes('rewritten') && kinds(findings).includes('deleted_offboarding'),
      kinds(findings).join(),
    );
    const deleted = findings.filter((f) => f.kind === 'deleted_offboarding');
    assert.deepEqual(
      deleted.map((f) => f.offboardingId),
      ['offboarding-B'],
    );
    assert.match(deleted[0]!.message, /every one of the 40 rows offboarding-B/);
  });

  it('6. appending a forged row with a valid hash: named forged by the history of the run it claims', async () => {
    const log = await freshLog();
    // The attacker writes through the store itself: the hash is as valid as any.
    const forged = await log.store.append({ ...event('offboarding-A', 999), outcome: 'done', action: 'disable_login' });
    assert.equal((await log.store.verify()).ok, true);
    const findings = await log.check();
    assert.deepEqual(kinds(findings), ['forged_row']);
    assert.ok(
      findings.some((f) => f.kind === 'unanchored' && f.seq === forged.seq),
      'after the last checkpoint',
    );
    const named = findings.find((f) => f.kind === 'forged_row')!;
    assert.deepEqual([named.seq, named.offboardingId], [forged.seq, 'offboarding-A']);
  });

  it('7. editing recorded_at: the hash covers it (chain broken at that row); recomputed, the checkpoint names the rewrite', async () => {
    const log = await freshLog();
    await asAttacker(log, (c) =>
      c
        .query(`UPDATE audit_events SET recorded_at = recorded_at - interval '1 hour' WHERE seq = 60`)
        .then(() => undefined),
    );
    const chain = await log.store.verify();
    assert.equal(chain.ok, false);
    assert.equal(chain.firstBroken?.seq, 60);
    assert.match(chain.firstBroken!.problem, /hash does not match/);
    await asAttacker(log, (c) => rehashFrom(c, 60));
    assert.equal((await log.store.verify()).ok, true);
    assert.ok(kinds(await log.check()).includes('rewritten'));
  });

  it('rows of the older hash format (no recorded_at) still verify, and a downgrade after them is named', async () => {
    const log = await freshLog();
    // A fresh database with two format-1 rows, as the previous version wrote them, then format-2 appends.
    made += 1;
    const database = `audit_attack_${process.pid}_${made}`;
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${database}`);
    await admin.end();
    const pool = createPool({ url: server.url.replace(/\/postgres$/, `/${database}`), embedded: false });
    pools.push(pool);
    await pool.query(`CREATE TABLE audit_events (
      seq bigint PRIMARY KEY, id text NOT NULL UNIQUE, occurred_at timestamptz NOT NULL,
      recorded_at timestamptz NOT NULL DEFAULT now(), offboarding_id text NOT NULL, employee_id text NOT NULL,
      system text, action text NOT NULL, outcome text, actor text NOT NULL, details jsonb NOT NULL,
      prev_hash text NOT NULL, hash text NOT NULL)`);
    let prev = GENESIS_HASH;
    for (const seq of [1, 2]) {
      const old = event('offboarding-OLD', seq);
      const hash = chainHashV1(prev, { ...old, seq });
      await pool.query(
        `INSERT INTO audit_events (seq, id, occurred_at, offboarding_id, employee_id, system, action, outcome, actor, details, prev_hash, hash)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`,
        [
          seq,
          old.id,
          old.occurredAt,
          old.offboardingId,
          old.employeeId,
          old.system,
          old.action,
          old.outcome,
          old.actor,
          JSON.stringify(old.details),
          prev,
          hash,
        ],
      );
      prev = hash;
    }
    await migrate(pool);
    const store = createAuditStore(pool);
    await store.appendAll([event('offboarding-NEW', 1), event('offboarding-NEW', 2)]);
    const rows: StoredAuditEvent[] = await store.rowsBetween(1, 4);
    assert.deepEqual(
      rows.map((r) => r.hashVersion),
      [1, 1, 2, 2],
    );
    assert.deepEqual(await store.verify(), { ok: true, rows: 4 });
    await pool.query('ALTER TABLE audit_events DISABLE TRIGGER ALL');
    await pool.query('UPDATE audit_events SET hash_version = 1 WHERE seq = 4');
    const chain = await store.verify();
    assert.deepEqual([chain.ok, chain.firstBroken?.seq], [false, 4]);
    assert.match(chain.firstBroken!.problem, /downgrade/);
    void log;
  });

  it('a checkpoint edited in its file (seq moved back) is named: its signature no longer verifies', async () => {
    const log = await freshLog();
    const { checkpoints } = await log.checkpoints.readAll();
    await log.checkpoints.append({ ...checkpoints.at(-1)!, seq: 10 });
    const findings = (await checkCheckpoints(log.store, log.checkpoints, log.publicKey)).findings;
    assert.deepEqual(kinds(findings), ['checkpoint_signature_invalid']);
  });

  it('the application role owns nothing: as the writer it can insert and read, not truncate or disable triggers', async () => {
    const log = await freshLog();
    const client = await log.pool.connect();
    try {
      await client.query('SET ROLE offboard_audit_writer');
      assert.equal(Number((await client.query('SELECT count(*) FROM audit_events')).rows[0].count), 120);
      await assert.rejects(client.query('ALTER TABLE audit_events DISABLE TRIGGER ALL'), /must be owner/);
      await assert.rejects(client.query('TRUNCATE audit_events'), /permission denied/);
      await assert.rejects(client.query('DELETE FROM audit_events'), /permission denied/);
    } finally {
      await client.query('RESET ROLE');
      client.release();
    }
  });
});
