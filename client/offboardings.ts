/**
 * Listing offboardings, for the CLI and the API alike: a Temporal visibility query over offboard's
 * search attributes. Filter values are checked against closed alphabets (enums, the stage-name
 * pattern, employee ids) before they are quoted into the query, so no input can change its shape.
 */
import type { Client, WorkflowExecutionInfo, WorkflowExecutionStatusName } from '@temporalio/client';
import { z } from 'zod';
import { employeeIdSchema } from '../model/request.js';
import { OFFBOARDING_WORKFLOW_TYPE } from '../workflows/messages.js';
import { EffectiveAtKey, EmployeeIdKey, HeldKey, ModeKey, StageKey } from '../workflows/search-attributes.js';

export const EXECUTION_STATES = {
  running: 'Running',
  completed: 'Completed',
  failed: 'Failed',
  canceled: 'Canceled',
  terminated: 'Terminated',
  continued_as_new: 'ContinuedAsNew',
  timed_out: 'TimedOut',
} as const;
type State = keyof typeof EXECUTION_STATES;

export const listFiltersSchema = z
  .object({
    state: z.enum(Object.keys(EXECUTION_STATES) as [State, ...State[]]).optional(),
    /** A stage name (policy stage names) or a phase: planning, waiting, held, running, restoring, completed, cancelled. */
    stage: z
      .string()
      .regex(/^[a-z0-9-]{1,40}$/, 'a stage name or phase: lower-case letters, digits and "-"')
      .optional(),
    held: z.enum(['true', 'false']).optional(),
    mode: z.enum(['immediate', 'staged', 'pending']).optional(),
    employeeId: employeeIdSchema.optional(),
    limit: z
      .string()
      .regex(/^\d{1,4}$/, 'a number from 1 to 1000')
      .transform(Number)
      .pipe(z.number().int().min(1).max(1000))
      .optional(),
  })
  .strict();
export type ListFilters = z.infer<typeof listFiltersSchema>;

/** The phase (and stage attribute) of an offboarding that a cancel command ended. */
const CANCELLED_PHASE = 'cancelled';
const CANCELLED_STAGE = `OffboardingStage = "${CANCELLED_PHASE}"`;

/** Limits a list to these employees (a manager's reports). */
export interface ListScope {
  reports: Iterable<string>;
}

/**
 * The visibility query for validated filters; null when the caller may see nobody (a manager
 * without reports). Values are from closed alphabets, so quoting them is enough.
 */
export function visibilityQuery(filters: ListFilters, scope?: ListScope): string | null {
  const clauses = [`WorkflowType = "${OFFBOARDING_WORKFLOW_TYPE}"`];
  if (filters.state === 'canceled') {
    // A cancel command ends the run normally once it has re-enabled what it disabled: Temporal
    // says Completed, and the stage attribute says cancelled. A run cancelled through Temporal
    // itself (the UI's Cancel) is Canceled.
    clauses.push(`(ExecutionStatus = "Canceled" OR (ExecutionStatus = "Completed" AND ${CANCELLED_STAGE}))`);
  } else if (filters.state === 'completed') {
    clauses.push(`ExecutionStatus = "Completed" AND OffboardingStage != "${CANCELLED_PHASE}"`);
  } else if (filters.state) clauses.push(`ExecutionStatus = "${EXECUTION_STATES[filters.state]}"`);
  if (filters.stage) clauses.push(`OffboardingStage = "${filters.stage}"`);
  if (filters.held) clauses.push(`OffboardingHeld = ${filters.held}`);
  if (filters.mode) clauses.push(`OffboardingMode = "${filters.mode}"`);
  if (filters.employeeId) clauses.push(`OffboardingEmployeeId = "${filters.employeeId}"`);
  if (scope) {
    const reports = [...scope.reports].filter((id) => employeeIdSchema.safeParse(id).success);
    if (reports.length === 0) return null;
    clauses.push(`OffboardingEmployeeId IN (${reports.map((id) => `"${id}"`).join(', ')})`);
  }
  return clauses.join(' AND ');
}

export const stateOf = (name: WorkflowExecutionStatusName, stage?: string | null): string =>
  name === 'CANCELLED' || (name === 'COMPLETED' && stage === CANCELLED_PHASE) ? 'canceled' : name.toLowerCase();

export interface OffboardingSummary {
  workflowId: string;
  runId: string;
  employeeId: string | null;
  state: string;
  stage: string | null;
  mode: string | null;
  held: boolean | null;
  effectiveAt: string | null;
  startedAt: string;
  closedAt: string | null;
}

function summarise(info: WorkflowExecutionInfo): OffboardingSummary {
  const attributes = info.typedSearchAttributes;
  return {
    workflowId: info.workflowId,
    runId: info.runId,
    employeeId: attributes.get(EmployeeIdKey) ?? null,
    state: stateOf(info.status.name, attributes.get(StageKey)),
    stage: attributes.get(StageKey) ?? null,
    mode: attributes.get(ModeKey) ?? null,
    held: attributes.get(HeldKey) ?? null,
    effectiveAt: attributes.get(EffectiveAtKey)?.toISOString() ?? null,
    startedAt: info.startTime.toISOString(),
    closedAt: info.closeTime?.toISOString() ?? null,
  };
}

/** Newest first, at most `filters.limit` (100 by default). */
export async function listOffboardings(
  client: Client,
  filters: ListFilters,
  scope?: ListScope,
): Promise<OffboardingSummary[]> {
  const query = visibilityQuery(filters, scope);
  const limit = filters.limit ?? 100;
  const offboardings: OffboardingSummary[] = [];
  if (query === null) return offboardings;
  for await (const info of client.workflow.list({ query, pageSize: Math.min(limit, 1000) })) {
    offboardings.push(summarise(info));
    if (offboardings.length >= limit) break;
  }
  return offboardings;
}
