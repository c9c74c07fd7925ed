/**
 * The audit receipts each offboarding keeps in its own Temporal history: the results of its
 * `recordAudits` activities (id, seq and hash of every row it wrote). Read for
 * `offboard audit verify --against temporal`; the payloads are decoded with the client's data
 * converter (the payload codec included).
 */
import type { Client } from '@temporalio/client';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow/index.js';
import type { temporal } from '@temporalio/proto';
import type { AuditReceipt } from '../activities/audit.js';
import type { HistoryReceipts } from '../activities/audit-verification.js';
import { OFFBOARDING_WORKFLOW_TYPE } from '../workflows/messages.js';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

const isReceipt = (value: unknown): value is AuditReceipt =>
  typeof value === 'object' &&
  value !== null &&
  typeof (value as AuditReceipt).id === 'string' &&
  typeof (value as AuditReceipt).seq === 'number' &&
  typeof (value as AuditReceipt).hash === 'string';

/** The receipts in one history; `complete` is false when an audit activity returned none (older versions). */
export async function receiptsInHistory(
  client: Client,
  events: readonly HistoryEvent[],
): Promise<{ receipts: AuditReceipt[]; complete: boolean }> {
  const auditActivities = new Map<string, string>();
  for (const event of events) {
    const scheduled = event.activityTaskScheduledEventAttributes;
    const name = scheduled?.activityType?.name;
    if (name === 'recordAudits' || name === 'recordAudit') auditActivities.set(String(event.eventId), name);
  }
  const receipts: AuditReceipt[] = [];
  let complete = true;
  for (const event of events) {
    const completed = event.activityTaskCompletedEventAttributes;
    if (!completed) continue;
    const name = auditActivities.get(String(completed.scheduledEventId));
    if (!name) continue;
    const result = completed.result?.payloads?.length
      ? await decodeFromPayloadsAtIndex<unknown>(
          client.workflow.options.loadedDataConverter,
          0,
          completed.result.payloads,
        )
      : undefined;
    if (Array.isArray(result) && result.every(isReceipt)) receipts.push(...result);
    else complete = false;
  }
  return { receipts, complete };
}

/** Every offboarding run in the namespace (open or closed, until its retention ends), with its receipts. */
export async function historiesOfOffboardings(client: Client): Promise<HistoryReceipts[]> {
  const found: HistoryReceipts[] = [];
  for await (const info of client.workflow.list({ query: `WorkflowType = "${OFFBOARDING_WORKFLOW_TYPE}"` })) {
    const history = await client.workflow.getHandle(info.workflowId, info.runId).fetchHistory();
    const { receipts, complete } = await receiptsInHistory(client, history.events ?? []);
    found.push({
      workflowId: info.workflowId,
      runId: info.runId,
      receipts,
      complete,
      open: info.status.name === 'RUNNING',
    });
  }
  return found;
}
