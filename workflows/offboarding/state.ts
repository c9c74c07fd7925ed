/**
 * The state one offboarding holds, in one object passed explicitly to every concern: the status
 * operators query, the plan in force, the person as the systems know them, and what each
 * system's pipeline has seen. Nothing here does I/O.
 */
import { workflowInfo } from '@temporalio/workflow';
import type { Discovery, Plan, PlannedStage } from '../../model/plan.js';
import type { OffboardingRequest, Subject } from '../../model/request.js';
import type { OffboardingStatus, SystemProgress, SystemStep } from '../messages.js';

export interface OffboardingState {
  readonly request: OffboardingRequest;
  readonly workflowId: string;
  readonly runId: string;
  /** When the HR event was accepted: the workflow's start. */
  readonly receivedAtMs: number;
  status: OffboardingStatus;
  /** The plan in force; set once `planned`. */
  plan: Plan;
  planned: boolean;
  /** The request the plan was made from (a superseding event replaces it). */
  planRequest: OffboardingRequest;
  /** Bumped when a plan is replaced, so that a wait for a stage of the old plan ends. */
  planVersion: number;
  /** Bumped by every command, so that waits re-evaluate holds, expedite and cancel. */
  commandVersion: number;
  /** The person as the systems know them; the email may be learnt from a directory. */
  subject: Subject;
  /** The systems (directories) whose answers identify the person to the others. */
  identitySources: string[];
  /** What the pre-flight found per system, so an immediate stage can disable at once. */
  preflight: Record<string, Discovery>;
  /** Set once the directories have answered and what they know was learnt. */
  learnt: boolean;
  /** The email was taken from the sources that answered within the bounded wait, before all had. */
  emailLearntEarly?: boolean;
  /** Per stage, per system mapped as it began: an account found, none, or a manual app (cannot tell). */
  foundAtStage: Record<string, Record<string, 'found' | 'none' | 'cannot_tell'>>;
  /** The latest discovery per system, for correlating identity across systems. */
  discoveries: Record<string, Discovery | null>;
  /** Per stage name, the systems that finished it. */
  finishedStage: Record<string, string[]>;
  /** Systems whose login is disabled, and whose last revoking stage is verified. */
  loginDisabled: string[];
  /** Per system, the leftovers at its last revoking stage's verification. */
  revoked: Record<string, number>;
  announced: { loginsDisabled: boolean; revocationVerified: boolean };
  /** The search attributes last upserted (stage|held|mode), so an unchanged set is not sent again. */
  publishedSearchAttributes: string | null;
  /** Counts calls into target systems, for activity ids that are unique and the same on replay. */
  calls: number;
}

export const nowIso = (): string => new Date(Date.now()).toISOString();

export function createState(request: OffboardingRequest): OffboardingState {
  const info = workflowInfo();
  return {
    request,
    workflowId: info.workflowId,
    runId: info.runId,
    receivedAtMs: info.startTime.getTime(),
    status: {
      employeeId: request.subject.employeeId,
      requestId: request.requestId,
      laterRequests: [],
      phase: 'planning',
      playbook: null,
      mode: null,
      effectiveAt: request.effectiveAt,
      slaDeadline: null,
      stage: null,
      nextStage: null,
      stages: [],
      holds: [],
      expedited: null,
      cancelled: null,
      systems: [],
      accounts: {},
      actions: [],
      manualTasks: [],
      pipelines: {},
    },
    // Read only after `planned`; the first plan is made before any pipeline starts.
    plan: undefined as unknown as Plan,
    planned: false,
    planRequest: request,
    planVersion: 0,
    commandVersion: 0,
    subject: request.subject,
    identitySources: [],
    preflight: {},
    learnt: false,
    foundAtStage: {},
    discoveries: {},
    finishedStage: {},
    loginDisabled: [],
    revoked: {},
    announced: { loginsDisabled: false, revocationVerified: false },
    publishedSearchAttributes: null,
    calls: 0,
  };
}

export const isFinished = (state: OffboardingState): boolean =>
  state.status.phase === 'completed' || state.status.phase === 'cancelled';

export function progressOf(state: OffboardingState, system: string): SystemProgress {
  const pipelines = (state.status.pipelines ??= {});
  pipelines[system] ??= { stage: null, doing: 'waiting', since: nowIso(), calls: [], nextStage: null, stagesDone: [] };
  return pipelines[system];
}

/** Moves a system to its next step, and the offboarding's phase and stage with it. */
export function setStep(state: OffboardingState, system: string, doing: SystemStep): void {
  const progress = progressOf(state, system);
  if (progress.doing !== doing) {
    progress.doing = doing;
    progress.since = nowIso();
  }
  refreshOverview(state);
}

const ACTIVE: ReadonlySet<SystemStep> = new Set([
  'discovering',
  'disabling',
  'revoking',
  'verifying',
  'awaiting_operator',
]);

/**
 * The whole-person view the status and search attributes show: running while any system works,
 * held or waiting otherwise; the earliest stage in progress, and the earliest one due next.
 */
export function refreshOverview(state: OffboardingState): void {
  const { status } = state;
  if (status.phase === 'planning' || status.phase === 'restoring' || isFinished(state)) return;
  const pipelines = Object.values(status.pipelines ?? {});
  const active = pipelines.filter((p) => ACTIVE.has(p.doing));
  status.phase = active.length > 0 ? 'running' : pipelines.some((p) => p.doing === 'held') ? 'held' : 'waiting';
  const order = status.stages.map((stage) => stage.name);
  status.stage =
    active
      .map((p) => p.stage)
      .filter((s): s is string => s !== null)
      .sort((a, b) => order.indexOf(a) - order.indexOf(b))[0] ?? null;
  const next = pipelines.map((p) => p.nextStage).filter((n) => n !== null);
  status.nextStage = next.sort((a, b) => Date.parse(a.dueAt) - Date.parse(b.dueAt))[0] ?? null;
}

export function markStageStarted(state: OffboardingState, stage: PlannedStage): void {
  const entry = state.status.stages.find((st) => st.name === stage.name);
  if (entry && !entry.startedAt) entry.startedAt = nowIso();
}

/** A stage is finished once every system still in the offboarding has finished it. */
export function markStageFinished(state: OffboardingState, stage: PlannedStage, system: string): void {
  const done = (state.finishedStage[stage.name] ??= []);
  if (!done.includes(system)) done.push(system);
  progressOf(state, system).stagesDone.push(stage.name);
  refreshFinishedStages(state);
}

/** Also after a system leaves the offboarding: the others may have been waiting only for it. */
export function refreshFinishedStages(state: OffboardingState): void {
  for (const entry of state.status.stages) {
    const done = state.finishedStage[entry.name];
    if (done && !entry.finishedAt && state.status.systems.every((s) => done.includes(s))) entry.finishedAt = nowIso();
  }
}

/** A stage that takes access away (a later one may only delete what is already disabled). */
export const revokes = (stage: PlannedStage): boolean => stage.steps.some((step) => step.action !== 'delete_account');

/**
 * Runs one call into a system under its own activity id, listed in the system's status while it
 * runs. The id names the system and the call only: activity ids are stored in plain text.
 */
export async function trackCall<T>(
  state: OffboardingState,
  system: string,
  call: string,
  run: (activityId: string) => Promise<T>,
): Promise<T> {
  state.calls += 1;
  const activityId = `${system}:${call}:${state.calls}`;
  const progress = progressOf(state, system);
  progress.calls.push({ activityId, call, since: nowIso() });
  try {
    return await run(activityId);
  } finally {
    progress.calls = progress.calls.filter((c) => c.activityId !== activityId);
  }
}
