/**
 * One run's audit rows, once the workflow has stored them. A status query sees the workflow's
 * state as soon as its task completes, while the audit rows of that task are written by a
 * `recordAudits` activity after it: so first wait until none is pending.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { createAuditStore, type StoredAuditEvent } from '../../activities/audit.js';
import { eventually, sharedPool } from './environment.js';

export async function auditRowsOf(handle: WorkflowHandle, timeoutMs = 30_000): Promise<StoredAuditEvent[]> {
  const { runId } = await eventually(
    () => handle.describe(),
    (d) => !(d.raw.pendingActivities ?? []).some((a) => a.activityType?.name === 'recordAudits'),
    `${handle.workflowId}: its audit rows written`,
    timeoutMs,
  );
  // A person may be offboarded by more than one test, each on its own server: this run's rows only.
  const events = await createAuditStore(await sharedPool()).eventsFor(handle.workflowId);
  return events.filter((e) => e.id.startsWith(`${handle.workflowId}/${runId}/`));
}
