/**
 * The audit log: an append-only, hash-chained table in PostgreSQL. Each row's hash covers the
 * previous row's hash and the event in canonical JSON (RFC 8785), so editing, deleting or
 * reordering any row breaks every hash after it. `seq` and `prev_hash` are assigned under a table
 * lock inside the insert's transaction: concurrent writers queue, and the chain never forks.
 */
import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';
import type pg from 'pg';
import { GENESIS_HASH, type AuditEvent, type ChainedAuditEvent } from '../model/audit.js';

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
  `CREATE INDEX IF NOT EXISTS audit_events_offboarding ON audit_events (offboarding_id, seq)`,
  // Append-only: rows cannot be changed or removed through SQL, even by the application's role.
  `CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
   BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$`,
  `DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events`,
  `CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
   FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()`,
];

/** The hash of one row: sha256 over the previous hash and the canonical JSON of the event. */
export function chainHash(prevHash: string, event: AuditEvent & { seq: number }): string {
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

interface AuditRow {
  seq: string;
  id: string;
  occurred_at: Date;
  offboarding_id: string;
  employee_id: string;
  system: string | null;
  action: string;
  outcome: string | null;
  actor: string;
  details: Record<string, unknown>;
  prev_hash: string;
  hash: string;
}

const fromRow = (row: AuditRow): ChainedAuditEvent => ({
  seq: Number(row.seq),
  id: row.id,
  occurredAt: row.occurred_at.toISOString(),
  offboardingId: row.offboarding_id,
  employeeId: row.employee_id,
  system: row.system,
  action: row.action,
  outcome: row.outcome,
  actor: row.actor,
  details: row.details,
  prevHash: row.prev_hash,
  hash: row.hash,
});

export interface VerifyResult {
  ok: boolean;
  rows: number;
  /** The first row whose hash or link does not match, and why. */
  firstBroken?: { seq: number; id: string; problem: string };
}

export function createAuditStore(pool: pg.Pool) {
  return {
    /** Appends one event; a second append of the same id is a no-op (activities run at least once). */
    async append(event: AuditEvent): Promise<{ seq: number; inserted: boolean }> {
      const [result] = await this.appendAll([event]);
      return result!;
    },

    /**
     * Appends events in order in one transaction; an id already stored is skipped, so a retried
     * batch inserts each row once.
     */
    async appendAll(events: AuditEvent[]): Promise<{ seq: number; inserted: boolean }[]> {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        await client.query('LOCK TABLE audit_events IN EXCLUSIVE MODE');
        const ids = events.map((event) => event.id);
        const stored = await client.query<{ id: string; seq: string }>(
          'SELECT id, seq FROM audit_events WHERE id = ANY($1)',
          [ids],
        );
        const existing = new Map(stored.rows.map((row) => [row.id, Number(row.seq)]));
        const last = await client.query<{ seq: string; hash: string }>(
          'SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1',
        );
        let seq = last.rows[0] ? Number(last.rows[0].seq) : 0;
        let prevHash = last.rows[0]?.hash ?? GENESIS_HASH;
        const results: { seq: number; inserted: boolean }[] = [];
        for (const event of events) {
          const known = existing.get(event.id);
          if (known !== undefined) {
            results.push({ seq: known, inserted: false });
            continue;
          }
          seq += 1;
          // Stored and hashed with the same millisecond precision, so verify recomputes the same text.
          const occurredAt = new Date(event.occurredAt).toISOString();
          const hash = chainHash(prevHash, { ...event, occurredAt, seq });
          await client.query(
            `INSERT INTO audit_events (seq, id, occurred_at, offboarding_id, employee_id, system, action, outcome, actor, details, prev_hash, hash)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
            [
              seq,
              event.id,
              occurredAt,
              event.offboardingId,
              event.employeeId,
              event.system,
              event.action,
              event.outcome,
              event.actor,
              JSON.stringify(event.details),
              prevHash,
              hash,
            ],
          );
          existing.set(event.id, seq);
          prevHash = hash;
          results.push({ seq, inserted: true });
        }
        await client.query('COMMIT');
        return results;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },

    async eventsFor(offboardingId: string): Promise<ChainedAuditEvent[]> {
      const { rows } = await pool.query<AuditRow>('SELECT * FROM audit_events WHERE offboarding_id = $1 ORDER BY seq', [
        offboardingId,
      ]);
      return rows.map(fromRow);
    },

    /** Recomputes the whole chain in pages, so a long log never has to fit in memory. */
    async verify(pageSize = 5_000): Promise<VerifyResult> {
      let prevHash = GENESIS_HASH;
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
          if (chainHash(prevHash, event) !== event.hash)
            return broken("hash does not match the row's contents: the row was altered");
          prevHash = event.hash;
          expectedSeq += 1;
          rows += 1;
        }
        if (page.rows.length < pageSize) return { ok: true, rows };
      }
    },
  };
}
export type AuditStore = ReturnType<typeof createAuditStore>;
