/**
 * The HR deliveries already acted on, so that a sender retrying for days (Standard Webhooks
 * senders do) starts exactly one offboarding. One row per HR event: unique by the delivery's
 * `webhook-id` and by the HR system's `eventId`, so the same event under a new webhook-id is a
 * duplicate too. Rows hold identifiers only (no names, emails or bodies) and are kept for
 * `api.hrEventsRetention` (400 days by default), far longer than any sender retries; the API
 * deletes older ones at start and daily, and says so in the audit.
 *
 * `claim` inserts the row and runs the start (or cancel) inside one transaction. A concurrent
 * duplicate's insert waits on the unique index until that transaction ends: after a commit it
 * reads the row (a duplicate, same workflow id); after a rollback (the start failed) it inserts
 * and tries itself. So a thousand simultaneous replays resolve to one row and one start, and a
 * failed start leaves nothing behind for the sender's retry to trip over.
 */
import type pg from 'pg';

export const HR_EVENTS_MIGRATIONS = [
  `CREATE TABLE IF NOT EXISTS hr_events (
     webhook_id  text PRIMARY KEY,
     event_id    text NOT NULL UNIQUE,
     source      text NOT NULL,
     event_type  text NOT NULL,
     employee_id text NOT NULL,
     received_at timestamptz NOT NULL DEFAULT now(),
     workflow_id text NOT NULL,
     outcome     text NOT NULL,
     detail      text
   )`,
  `CREATE INDEX IF NOT EXISTS hr_events_employee ON hr_events (employee_id, received_at)`,
];

/** started: a new offboarding; joined: one was already running for the person; cancelled / nothing_running: a rescinded termination. */
export type HrOutcome = 'started' | 'joined' | 'superseded' | 'cancelled' | 'nothing_running';

export interface HrDelivery {
  webhookId: string;
  eventId: string;
  source: 'standard-webhooks' | 'bamboohr';
  eventType: string;
  employeeId: string;
  workflowId: string;
}

export interface HrEventRecord extends HrDelivery {
  receivedAt: string;
  outcome: HrOutcome;
  detail: string | null;
}

interface Row {
  webhook_id: string;
  event_id: string;
  source: HrDelivery['source'];
  event_type: string;
  employee_id: string;
  received_at: Date;
  workflow_id: string;
  outcome: HrOutcome;
  detail: string | null;
}

const fromRow = (row: Row): HrEventRecord => ({
  webhookId: row.webhook_id,
  eventId: row.event_id,
  source: row.source,
  eventType: row.event_type,
  employeeId: row.employee_id,
  receivedAt: row.received_at.toISOString(),
  workflowId: row.workflow_id,
  outcome: row.outcome,
  detail: row.detail,
});

export type ClaimResult =
  | { kind: 'new'; record: HrEventRecord }
  | { kind: 'duplicate'; record: HrEventRecord }
  /** The webhook-id or event id was already used for a different event (another person or type). */
  | { kind: 'conflict'; record: HrEventRecord };

export function createHrEventsStore(pool: pg.Pool) {
  return {
    /**
     * Acts on a delivery once: the first caller runs `act` (start or cancel) with the row
     * inserted but not yet committed; every later or concurrent caller gets that row back.
     * If `act` throws, nothing is kept and the error propagates.
     */
    async claim(
      delivery: HrDelivery,
      act: () => Promise<{ outcome: HrOutcome; detail?: string | null }>,
    ): Promise<ClaimResult> {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const inserted = await client.query<Row>(
          `INSERT INTO hr_events (webhook_id, event_id, source, event_type, employee_id, workflow_id, outcome)
           VALUES ($1, $2, $3, $4, $5, $6, 'pending')
           ON CONFLICT DO NOTHING
           RETURNING *`,
          [
            delivery.webhookId,
            delivery.eventId,
            delivery.source,
            delivery.eventType,
            delivery.employeeId,
            delivery.workflowId,
          ],
        );
        if (inserted.rows[0]) {
          let result: { outcome: HrOutcome; detail?: string | null };
          try {
            result = await act();
          } catch (err) {
            await client.query('ROLLBACK');
            throw err;
          }
          const updated = await client.query<Row>(
            'UPDATE hr_events SET outcome = $2, detail = $3 WHERE webhook_id = $1 RETURNING *',
            [delivery.webhookId, result.outcome, result.detail ?? null],
          );
          await client.query('COMMIT');
          return { kind: 'new', record: fromRow(updated.rows[0]!) };
        }
        // Read committed: this statement sees the row whose commit the insert waited for.
        const existing = await client.query<Row>(
          'SELECT * FROM hr_events WHERE webhook_id = $1 OR event_id = $2 ORDER BY received_at',
          [delivery.webhookId, delivery.eventId],
        );
        await client.query('COMMIT');
        const records = existing.rows.map(fromRow);
        const first = records[0];
        if (!first) throw new Error('hr_events: a conflicting row vanished; retry the delivery');
        const different = records.find(
          (r) =>
            r.eventId !== delivery.eventId ||
            r.employeeId !== delivery.employeeId ||
            r.eventType !== delivery.eventType,
        );
        return different ? { kind: 'conflict', record: different } : { kind: 'duplicate', record: first };
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      } finally {
        client.release();
      }
    },

    async find(webhookId: string): Promise<HrEventRecord | null> {
      const { rows } = await pool.query<Row>('SELECT * FROM hr_events WHERE webhook_id = $1', [webhookId]);
      return rows[0] ? fromRow(rows[0]) : null;
    },

    /** Whether the table is there and the database answers (for /healthz). */
    /** Deletes the records received before `before`; returns how many. */
    async prune(before: Date): Promise<number> {
      const result = await pool.query('DELETE FROM hr_events WHERE received_at < $1', [before]);
      return result.rowCount ?? 0;
    },
    async check(): Promise<void> {
      await pool.query('SELECT 1 FROM hr_events LIMIT 0');
    },
  };
}
export type HrEventsStore = ReturnType<typeof createHrEventsStore>;
