/**
 * The audit recorder: one event per step, with an id that is the same on every replay
 * (`<workflowId>/<runId>/<n>`), so a retried activity inserts once. Events written in one
 * workflow activation go to the store together, in order, in one activity.
 */
import type { AuditEvent } from '../../model/audit.js';
import type { AuditEntry } from '../../model/audit-events.js';
import { recordAudits } from './activities.js';
import { nowIso, type OffboardingState } from './state.js';

export type { AuditEntry };

export interface Recorder {
  audit(entry: AuditEntry): void;
  /** Waits for work (a notification) that may still add events. */
  track(work: Promise<void>): void;
  /** Resolves once every event, including those added while waiting, is stored. */
  drain(): Promise<void>;
}

export function createRecorder(state: OffboardingState): Recorder {
  let step = 0;
  let batch: AuditEvent[] = [];
  const pending: Promise<void>[] = [];

  function flush() {
    const events = batch;
    batch = [];
    // The receipts (seq, hash per row) are kept in history as the activity's result; nothing here reads them.
    pending.push(recordAudits(events).then(() => undefined));
  }

  return {
    audit(entry) {
      step += 1;
      if (batch.length === 0) void Promise.resolve().then(flush);
      batch.push({
        id: `${state.workflowId}/${state.runId}/${step}`,
        occurredAt: nowIso(),
        offboardingId: state.workflowId,
        employeeId: state.request.subject.employeeId,
        system: entry.system ?? null,
        outcome: entry.outcome ?? null,
        action: entry.action,
        actor: entry.actor,
        details: entry.details,
      });
    },
    track(work) {
      pending.push(work);
    },
    async drain() {
      while (pending.length > 0 || batch.length > 0) {
        await Promise.resolve();
        await Promise.all(pending.splice(0));
      }
    },
  };
}
