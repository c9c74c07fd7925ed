/**
 * The audit log: an append-only, hash-chained table in PostgreSQL. Each row's hash covers the
 * previous row's hash and every stored column, so editing, deleting or reordering any row breaks
 * every hash after it. `seq` and `prev_hash` are assigned under a lock inside the insert's
 * transaction: concurrent writers queue, and the primary key on seq stops a fork if one does not.
 *
 * The chain alone proves consistency, not completeness: whoever can rewrite the table can
 * recompute it. Completeness comes from outside the table: signed checkpoints
 * (`audit-checkpoints.ts`) and each workflow's own history of the rows it wrote (`audit-temporal.ts`).
 *
 * Hash formats, kept per row in `hash_version` so that rows written by older versions still verify:
 * - 1: sha256(prev_hash || canonical JSON of the event without recorded_at).
 * - 2: sha256(prev_hash || content digest), the digest being sha256 of the canonical JSON of every
 *   stored column (recorded_at and the version included). The digest lets an evidence report prove
 *   that its rows lead to a signed checkpoint by listing the digests of the rows in between,
 *   without carrying other people's data.
 * A row may not use an older format than the row before it (a downgrade would drop coverage).
 */
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import type pg from 'pg';
import { GENESIS_HASH, type AuditEvent, type ChainedAuditEvent } from '../model/audit.js';

export const CURRENT_HASH_VERSION = 2;
/** The role that owns the audit objects, and the one the application writes as (owns nothing). */
export const AUDIT_OWNER_ROLE = 'offboard_audit_owner';
export const AUDIT_WRITER_ROLE = 'offboard_audit_writer';
// Writers serialise on this advisory lock rather than LOCK TABLE, which would need UPDATE rights.
const APPEND_LOCK_KEY = 0x0ffb0a0d;

/** Statements any role that may act as the table's owner runs on every start (each idempotent). */
export const AUDIT_MIGRATIONS = [
  `CREATE TABLE IF NOT EXISTS audit_events (
     seq            bigint PRIMARY KEY,
     id             text NOT NULL UNIQUE,
     occurred_at    timestamptz NOT NULL,
     recorded_at    timestamptz NOT NULL DEFAULT now(),
     offboarding_id text NOT NULL,
     employee_id    text NOT NULL,
     system         text,
     action         text NOT NULL,
     outcome        text,
     actor          text NOT NULL,
     details        jsonb NOT NULL,
     prev_hash      text NOT NULL,
     hash           text NOT NULL
   )`,
  // Rows written before the version column existed are format 1.
  `ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS hash_version smallint NOT NULL DEFAULT 1`,
  `CREATE INDEX IF NOT EXISTS audit_events_offboarding ON audit_events (offboarding_id, seq)`,
  // Append-only: rows cannot be changed or removed through SQL, even by the application's role.
  `CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$`,
  `DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events`,
  `CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
   FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()`,
  // Row triggers do not fire on TRUNCATE: a statement trigger does.
  `DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events`,
  `CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
   FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only()`,
  // ALWAYS: they fire under session_replication_role = replica too.
  `ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_append_only`,
  `ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_no_truncate`,
];

/**
 * Run by a superuser only: the owner and writer roles. The table and its trigger function belong
 * to the owner (NOLOGIN), so no login but a superuser or the owner's members can disable the
 * triggers; the writer may SELECT and INSERT and nothing else. The migrating login is made a
 * member of the writer so that the store can `SET LOCAL ROLE` to it for every write.
 */
const ROLE_MIGRATIONS = [
  `DO $$ BEGIN
     IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${AUDIT_OWNER_ROLE}') THEN CREATE ROLE ${AUDIT_OWNER_ROLE} NOLOGIN; END IF;
     IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${AUDIT_WRITER_ROLE}') THEN CREATE ROLE ${AUDIT_WRITER_ROLE} NOLOGIN; END IF;
   END $$`,
  `ALTER TABLE audit_events OWNER TO ${AUDIT_OWNER_ROLE}`,
  `ALTER FUNCTION audit_events_append_only() OWNER TO ${AUDIT_OWNER_ROLE}`,
  `REVOKE ALL ON audit_events FROM PUBLIC`,
  `GRANT SELECT, INSERT ON audit_events TO ${AUDIT_WRITER_ROLE}`,
];

export interface AuditMigrationResult {
  /** Owner and writer roles set up (needs a superuser; otherwise a DBA does it, see the README). */
  roles: 'created' | 'kept' | 'skipped';
  reason?: string;
}

/**
 * Brings the audit schema up to date. A login that cannot act as the table's owner (the
 * application's writer login in production) changes nothing and only checks that the schema is
 * current, so that running the worker as the writer works once a DBA has migrated.
 */
export async function migrateAudit(pool: Pick<pg.Pool, 'query'>): Promise<AuditMigrationResult> {
  const who = await pool.query<{ superuser: boolean; owner: string | null; may_own: boolean | null }>(
    `SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
            (SELECT tableowner FROM pg_tables WHERE tablename = 'audit_events' AND schemaname = current_schema()) AS owner,
            (SELECT pg_has_role(current_user, tableowner, 'USAGE') FROM pg_tables
              WHERE tablename = 'audit_events' AND schemaname = current_schema()) AS may_own`,
  );
  const { superuser, owner, may_own: mayOwn } = who.rows[0]!;
  if (owner !== null && !superuser && !mayOwn) {
    const current = await pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_trigger WHERE tgrelid = 'audit_events'::regclass AND tgname = 'audit_events_no_truncate'`,
    );
    if (Number(current.rows[0]!.n) === 0)
      throw new Error(
        `the audit schema is out of date and this login cannot change it (the table belongs to ${owner}): run the worker once with a superuser DATABASE_URL, or apply the migrations as the owner`,
      );
    return { roles: 'kept' };
  }
  for (const statement of AUDIT_MIGRATIONS) await pool.query(statement);
  if (!superuser) return { roles: 'skipped', reason: 'the migrating login is not a superuser' };
  try {
    for (const statement of ROLE_MIGRATIONS) await pool.query(statement);
    await pool.query(`GRANT ${AUDIT_WRITER_ROLE} TO CURRENT_USER`);
  } catch (err) {
    // PGlite has a single user and may refuse parts of this; the checkpoints do not rely on roles.
    return { roles: 'skipped', reason: (err as Error).message };
  }
  return { roles: 'created' };
}

interface HashedFields extends AuditEvent {
  seq: number;
  recordedAt: string;
  hashVersion: number;
}

/** Format 2's content digest: every stored column but the hashes, in canonical JSON. */
export function contentDigest(event: HashedFields): string {
  const canonical = canonicalize({
    v: event.hashVersion,
    seq: event.seq,
    id: event.id,
    occurredAt: event.occurredAt,
    recordedAt: event.recordedAt,
    offboardingId: event.offboardingId,
    employeeId: event.employeeId,
    system: event.system,
    action: event.action,
    outcome: event.outcome,
    actor: event.actor,
    details: event.details,
  });
  return createHash('sha256')
    .update(canonical ?? '')
    .digest('hex');
}

/** Format 2: the row's hash from its predecessor's and its content digest. */
export const linkHash = (prevHash: string, digest: string) =>
  createHash('sha256').update(prevHash).update(digest).digest('hex');

/** Format 1 (rows from before hash_version): sha256 over the previous hash and the event, recorded_at not covered. */
export function chainHashV1(prevHash: string, event: AuditEvent & { seq: number }): string {
  const canonical = canonicalize({
    seq: event.seq,
    id: event.id,
    occurredAt: event.occurredAt,
    offboardingId: event.offboardingId,
    employeeId: event.employeeId,
    system: event.system,
    action: event.action,
    outcome: event.outcome,
    actor: event.actor,
    details: event.details,
  });
  return createHash('sha256')
    .update(prevHash)
    .update(canonical ?? '')
    .digest('hex');
}

/** The hash a row should have, in its own format; null for a format this code does not know. */
export function rowHash(prevHash: string, event: HashedFields): string | null {
  if (event.hashVersion === 1) return chainHashV1(prevHash, event);
  if (event.hashVersion === 2) return linkHash(prevHash, contentDigest(event));
  return null;
}

interface AuditRow {
  seq: string;
  id: string;
  occurred_at: Date;
  recorded_at: Date;
  offboarding_id: string;
  employee_id: string;
  system: string | null;
  action: string;
  outcome: string | null;
  actor: string;
  details: Record<string, unknown>;
  prev_hash: string;
  hash: string;
  hash_version: number;
}

export interface StoredAuditEvent extends ChainedAuditEvent {
  recordedAt: string;
  hashVersion: number;
}

const fromRow = (row: AuditRow): StoredAuditEvent => ({
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
  prevHash: row.prev_hash,
  hash: row.hash,
  hashVersion: row.hash_version,
});

export interface VerifyResult {
  ok: boolean;
  rows: number;
  /** The first row whose hash or link does not match, and why. */
  firstBroken?: { seq: number; id: string; problem: string };
}

/** What a writer learns of each row it appended (or found already stored): kept in the workflow's history. */
export interface AuditReceipt {
  id: string;
  seq: number;
  hash: string;
}
export interface AppendResult extends AuditReceipt {
  inserted: boolean;
}

export interface AuditStoreOptions {
  /** Told the chain's head after every commit that added rows (the checkpointer). */
  onAppended?: (head: { seq: number; hash: string }) => void;
}

export function createAuditStore(pool: pg.Pool, options: AuditStoreOptions = {}) {
  // Whether this login may write as the writer role (the roles exist and it is a member): checked once.
  let writerRole: Promise<boolean> | undefined;
  const mayWriteAsWriter = () =>
    (writerRole ??= pool
      .query<{ member: boolean | null }>(
        `SELECT pg_has_role(current_user, oid, 'MEMBER') AS member FROM pg_roles WHERE rolname = $1`,
        [AUDIT_WRITER_ROLE],
      )
      .then((r) => r.rows[0]?.member === true)
      .catch(() => false));

  return {
    /** Appends one event; a second append of the same id is a no-op (activities run at least once). */
    async append(event: AuditEvent): Promise<AppendResult> {
      const [result] = await this.appendAll([event]);
      return result!;
    },

    /**
     * Appends events in order in one transaction, as the writer role where it exists; an id
     * already stored is skipped, so a retried batch inserts each row once.
     */
    async appendAll(events: AuditEvent[]): Promise<AppendResult[]> {
      const asWriter = await mayWriteAsWriter();
      const client = await pool.connect();
      let head: { seq: number; hash: string } | undefined;
      try {
        await client.query('BEGIN');
        if (asWriter) await client.query(`SET LOCAL ROLE ${AUDIT_WRITER_ROLE}`);
        await client.query('SELECT pg_advisory_xact_lock($1)', [APPEND_LOCK_KEY]);
        const ids = events.map((event) => event.id);
        const stored = await client.query<{ id: string; seq: string; hash: string }>(
          'SELECT id, seq, hash FROM audit_events WHERE id = ANY($1)',
          [ids],
        );
        const existing = new Map(stored.rows.map((row) => [row.id, { seq: Number(row.seq), hash: row.hash }]));
        const last = await client.query<{ seq: string; hash: string }>(
          'SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1',
        );
        let seq = last.rows[0] ? Number(last.rows[0].seq) : 0;
        let prevHash = last.rows[0]?.hash ?? GENESIS_HASH;
        const results: AppendResult[] = [];
        // Millisecond precision, as the timestamps are hashed: verify re-reads the same text.
        const recordedAt = new Date().toISOString();
        for (const event of events) {
          const known = existing.get(event.id);
          if (known !== undefined) {
            results.push({ id: event.id, ...known, inserted: false });
            continue;
          }
          seq += 1;
          const occurredAt = new Date(event.occurredAt).toISOString();
          const fields = { ...event, occurredAt, recordedAt, seq, hashVersion: CURRENT_HASH_VERSION };
          const hash = linkHash(prevHash, contentDigest(fields));
          await client.query(
            `INSERT INTO audit_events (seq, id, occurred_at, recorded_at, offboarding_id, employee_id, system, action, outcome, actor, details, prev_hash, hash, hash_version)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
            [
              seq,
              event.id,
              occurredAt,
              recordedAt,
              event.offboardingId,
              event.employeeId,
              event.system,
              event.action,
              event.outcome,
              event.actor,
              JSON.stringify(event.details),
              prevHash,
              hash,
              CURRENT_HASH_VERSION,
            ],
          );
          existing.set(event.id, { seq, hash });
          prevHash = hash;
          head = { seq, hash };
          results.push({ id: event.id, seq, hash, inserted: true });
        }
        await client.query('COMMIT');
        if (head) options.onAppended?.(head);
        return results;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },

    async eventsFor(offboardingId: string): Promise<StoredAuditEvent[]> {
      const { rows } = await pool.query<AuditRow>('SELECT * FROM audit_events WHERE offboarding_id = $1 ORDER BY seq', [
        offboardingId,
      ]);
      return rows.map(fromRow);
    },

    /** The rows from `fromSeq` to `toSeq`, in order (for proofs and checks). */
    async rowsBetween(fromSeq: number, toSeq: number): Promise<StoredAuditEvent[]> {
      const { rows } = await pool.query<AuditRow>(
        'SELECT * FROM audit_events WHERE seq >= $1 AND seq <= $2 ORDER BY seq',
        [fromSeq, toSeq],
      );
      return rows.map(fromRow);
    },

    /** The last row's seq and hash; null for an empty log. */
    async head(): Promise<{ seq: number; hash: string } | null> {
      const { rows } = await pool.query<{ seq: string; hash: string }>(
        'SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1',
      );
      return rows[0] ? { seq: Number(rows[0].seq), hash: rows[0].hash } : null;
    },

    /** Every row's id, seq and hash, in pages (the check against Temporal's histories). */
    async *receipts(pageSize = 10_000): AsyncGenerator<AuditReceipt & { offboardingId: string }> {
      let after = 0;
      for (;;) {
        const page = await pool.query<{ id: string; seq: string; hash: string; offboarding_id: string }>(
          'SELECT id, seq, hash, offboarding_id FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2',
          [after, pageSize],
        );
        for (const row of page.rows)
          yield { id: row.id, seq: Number(row.seq), hash: row.hash, offboardingId: row.offboarding_id };
        if (page.rows.length < pageSize) return;
        after = Number(page.rows.at(-1)!.seq);
      }
    },

    /** Recomputes the whole chain in pages, so a long log never has to fit in memory. */
    async verify(pageSize = 5_000): Promise<VerifyResult> {
      let prevHash = GENESIS_HASH;
      let prevVersion = 1;
      let expectedSeq = 1;
      let rows = 0;
      for (;;) {
        const page = await pool.query<AuditRow>('SELECT * FROM audit_events WHERE seq >= $1 ORDER BY seq LIMIT $2', [
          expectedSeq,
          pageSize,
        ]);
        for (const row of page.rows) {
          const event = fromRow(row);
          const broken = (problem: string): VerifyResult => ({
            ok: false,
            rows,
            firstBroken: { seq: event.seq, id: event.id, problem },
          });
          if (event.seq !== expectedSeq) return broken(`expected seq ${expectedSeq}: rows are missing before this one`);
          if (event.prevHash !== prevHash) return broken("prev_hash does not match the previous row's hash");
          if (event.hashVersion < prevVersion)
            return broken(`hash format ${event.hashVersion} after a row of format ${prevVersion}: a downgrade`);
          const expected = rowHash(prevHash, event);
          if (expected === null) return broken(`unknown hash format ${event.hashVersion}`);
          if (expected !== event.hash) return broken("hash does not match the row's contents: the row was altered");
          prevHash = event.hash;
          prevVersion = event.hashVersion;
          expectedSeq += 1;
          rows += 1;
        }
        if (page.rows.length < pageSize) return { ok: true, rows };
      }
    },
  };
}
export type AuditStore = ReturnType<typeof createAuditStore>;
