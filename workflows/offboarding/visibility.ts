/**
 * The search attributes the Temporal UI filters on: identifiers only, never PII. A run started
 * without them (a server that lacks them, such as the time-skipping test server) keeps none.
 */
import { upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { EmployeeIdKey, HeldKey, ModeKey, StageKey } from '../search-attributes.js';
import type { OffboardingState } from './state.js';

export function publishSearchAttributes(state: OffboardingState): void {
  if (workflowInfo().typedSearchAttributes.get(EmployeeIdKey) === undefined) return;
  const { status } = state;
  const working = status.phase === 'running' || status.phase === 'restoring';
  upsertSearchAttributes([
    { key: StageKey, value: working ? (status.stage ?? status.phase) : status.phase },
    { key: HeldKey, value: status.holds.length > 0 },
    ...(status.mode ? [{ key: ModeKey, value: status.mode }] : []),
  ]);
}
