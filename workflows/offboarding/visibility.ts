/**
 * The search attributes the Temporal UI filters on: identifiers only, never PII. A run started
 * without them (a server that lacks them, such as the time-skipping test server) keeps none.
 */
import { upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { EmployeeIdKey, HeldKey, ModeKey, StageKey } from '../search-attributes.js';
import type { OffboardingState } from './state.js';

/**
 * Upserts the attributes when they changed: every system's every step calls this, and each
 * upsert is a command in the history.
 */
export function publishSearchAttributes(state: OffboardingState): void {
  if (workflowInfo().typedSearchAttributes.get(EmployeeIdKey) === undefined) return;
  const { status } = state;
  const working = status.phase === 'running' || status.phase === 'restoring';
  const stage = working ? (status.stage ?? status.phase) : status.phase;
  const held = status.holds.length > 0;
  const published = `${stage}|${held}|${status.mode ?? ''}`;
  if (published === state.publishedSearchAttributes) return;
  state.publishedSearchAttributes = published;
  upsertSearchAttributes([
    { key: StageKey, value: stage },
    { key: HeldKey, value: held },
    ...(status.mode ? [{ key: ModeKey, value: status.mode }] : []),
  ]);
}
