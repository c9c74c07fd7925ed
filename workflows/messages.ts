import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type {
  CancelCommand,
  ExpediteCommand,
  HoldCommand,
  ReleaseCommand,
  RetryCommand,
  SkipCommand,
  SupersedeCommand,
} from '../model/commands.js';
import type { Action, Plan } from '../model/plan.js';
import type { TaskRef } from '../model/manual-tasks.js';

export const OFFBOARDING_TASK_QUEUE = 'offboarding';
export const OFFBOARDING_WORKFLOW_TYPE = 'offboarding';

export type ActionState =
  'pending' | 'running' | 'done' | 'already' | 'not_applicable' | 'failed' | 'skipped' | 'cancelled';

export interface ActionStatus extends Action {
  state: ActionState;
  attempts: number;
  lastError?: string;
  completedAt?: string;
}

export interface ManualTask {
  /** The action id (or verify/discover task id) that `retry` and `skip` name. */
  id: string;
  /** What the task is about (absent in runs from before tasks carried it: `taskRefFromId`). */
  ref?: TaskRef;
  system: string | null;
  description: string;
  error: string;
  openedAt: string;
  /** After this the task is overdue: reminders say so and it is escalated. */
  dueAt: string;
  reminders: number;
  state: 'open' | 'retrying' | 'skipped' | 'resolved';
  resolvedBy?: string;
}

export interface Hold {
  by: string;
  reason: string;
  until?: string;
  placedAt: string;
}

/** What one system's pipeline is doing now. */
export type SystemStep =
  | 'waiting'
  | 'held'
  | 'discovering'
  | 'disabling'
  | 'revoking'
  | 'verifying'
  | 'awaiting_operator'
  | 'done'
  | 'restoring'
  | 'cancelled'
  | 'removed';

/** One system's own way through the plan: no system waits for another. */
export interface SystemProgress {
  /** The stage it is in, or last finished. */
  stage: string | null;
  doing: SystemStep;
  /** When it began doing that (ISO). */
  since: string;
  /** The calls in flight; a client adds each one's attempt from Temporal by its activity id. */
  calls: { activityId: string; call: string; since: string }[];
  nextStage: { name: string; dueAt: string } | null;
  stagesDone: string[];
}

export interface OffboardingResult {
  phase: 'completed' | 'cancelled';
  actions: Record<string, number>;
  manualTasksSkipped: number;
}

export type Phase = 'planning' | 'waiting' | 'held' | 'running' | 'restoring' | 'completed' | 'cancelled';

export interface OffboardingStatus {
  employeeId: string;
  requestId: string;
  /** Later HR events for this person, and what each did to the plan. */
  laterRequests: {
    requestId: string;
    trigger: string;
    reason: string | null;
    effectiveAt: string;
    receivedAt: string;
    outcome: 'superseded' | 'joined';
    why: string;
  }[];
  phase: Phase;
  playbook: Plan['playbook'] | null;
  mode: Plan['mode'] | null;
  effectiveAt: string;
  slaDeadline: string | null;
  stage: string | null;
  nextStage: { name: string; dueAt: string } | null;
  stages: { name: string; dueAt: string; startedAt?: string; finishedAt?: string }[];
  holds: Hold[];
  expedited: { by: string; reason: string; at: string } | null;
  cancelled: { by: string; reason: string; at: string } | null;
  systems: string[];
  /** Per system, the account found for this person at the last discovery, or null: none found. */
  accounts: Record<string, string | null>;
  /**
   * Set when no system that answered has an account for the person (at pre-flight, or as a stage
   * began): a mistyped HR id, or someone never provisioned. Cleared when a later mapping finds one.
   */
  foundInNoSystem?: { stage: string; since: string; systems: string[]; unreachable: string[] } | null;
  actions: ActionStatus[];
  manualTasks: ManualTask[];
  /** Per system, its pipeline (absent in runs started before per-system pipelines). */
  pipelines?: Record<string, SystemProgress>;
}

export const holdSignal = defineSignal<[HoldCommand]>('hold');
export const releaseSignal = defineSignal<[ReleaseCommand]>('release');
export const expediteSignal = defineSignal<[ExpediteCommand]>('expedite');
export const cancelSignal = defineSignal<[CancelCommand]>('cancel');
export const retrySignal = defineSignal<[RetryCommand]>('retry');
export const skipSignal = defineSignal<[SkipCommand]>('skip');

// Updates carry the same commands; their validators refuse what the state does not allow.
export const holdUpdate = defineUpdate<string, [HoldCommand]>('hold');
export const releaseUpdate = defineUpdate<string, [ReleaseCommand]>('release');
export const expediteUpdate = defineUpdate<string, [ExpediteCommand]>('expedite');
export const cancelUpdate = defineUpdate<string, [CancelCommand]>('cancel');
export const retryUpdate = defineUpdate<string, [RetryCommand]>('retry');
export const skipUpdate = defineUpdate<string, [SkipCommand]>('skip');
/** What a later HR event did to the running offboarding. */
export interface SupersedeResult {
  outcome: 'superseded' | 'joined';
  why: string;
}
/** The Update's refusal when the offboarding was cancelled (ApplicationFailure type). */
export const OFFBOARDING_CANCELLED = 'offboarding_cancelled';
/**
 * A later HR event: replaces the plan when it goes further or sooner, else is recorded as joined.
 * Runs started before per-system pipelines answer with a string ("superseded: …", "joined: …").
 */
export const supersedeUpdate = defineUpdate<SupersedeResult | string, [SupersedeCommand]>('supersede');

export const statusQuery = defineQuery<OffboardingStatus>('status');
