/**
 * Plans: the first one, and a later HR event for the same person that goes further or sooner
 * (`supersession()` in model/plan.ts). A replacement's stages take the place of those no system
 * has started; a stage name already used gets a suffix (`revoke-2`), so its action ids are new.
 * What ran stays done, and the new stages find it `already` gone.
 */
import { ActivityFailure, ApplicationFailure, condition, patched, setHandler } from '@temporalio/workflow';
import type { SupersedeCommand } from '../../model/commands.js';
import { PLAN_TASK_ID } from '../../model/manual-tasks.js';
import { planTimings, playbookFor, supersedingRequest, supersession, type Plan } from '../../model/plan.js';
import { defaultPolicy } from '../../model/policy.js';
import type { OffboardingRequest } from '../../model/request.js';
import { OFFBOARDING_CANCELLED, supersedeUpdate, type SupersedeResult } from '../messages.js';
import { setup } from './activities.js';
import type { Notifier } from './notifications.js';
import type { OperatorTasks } from './operator-tasks.js';
import type { Recorder } from './recorder.js';
import { isFinished, nowIso, type OffboardingState } from './state.js';
import { PATCHES } from './versions.js';
import { publishSearchAttributes } from './visibility.js';

const stageList = (plan: Plan) => plan.stages.map((s) => ({ name: s.name, dueAt: s.dueAt }));

/**
 * A plan with nothing in it: what a refused first plan stands on while its task waits (manual
 * tasks read their reminder timings from the plan: the policy's defaults here, since the worker's
 * own could not be had), and what a skipped or cancelled one ends with.
 */
function emptyPlan(request: OffboardingRequest): Plan {
  const policy = defaultPolicy();
  return {
    playbook: playbookFor(request),
    mode: 'staged',
    effectiveAt: request.effectiveAt,
    slaDeadline: request.effectiveAt,
    stages: [],
    ...planTimings(policy),
    privileged: {},
    keep: {},
  };
}

/**
 * The first plan from the worker. When it refuses (the config changed after the API checked the
 * request, or a client did not check), the refusal is audited (`plan_failed`), told to IT, and
 * waits as manual task `plan`: `retry` asks again (after the config is fixed), `skip` or a cancel
 * ends the offboarding with nothing planned. Undefined then. Before patch plan-failure-task the
 * refusal failed the workflow with nothing recorded.
 */
async function firstPlanOrTask(
  state: OffboardingState,
  recorder: Recorder,
  notifier: Notifier,
  tasks: OperatorTasks | undefined,
): Promise<Plan | undefined> {
  const { request } = state;
  for (let refusals = 0; ; refusals += 1) {
    try {
      const made = await setup.makePlan(request);
      if (refusals > 0) tasks?.resolve(PLAN_TASK_ID);
      return made;
    } catch (err) {
      if (!(err instanceof ActivityFailure) || !tasks || !patched(PATCHES.planFailureTask)) throw err;
      const error = err.cause?.message ?? err.message;
      state.plan = emptyPlan(request);
      recorder.audit({
        action: 'plan_failed',
        actor: 'workflow',
        outcome: 'failed',
        details: { requestId: request.requestId, error, taskId: PLAN_TASK_ID },
      });
      // What IT hears first (the task's message waits for a start); the manager hears of it once planned.
      if (refusals === 0)
        notifier.tell('started', `${request.trigger} received, but the worker cannot plan it: ${error}`, false);
      const decision = await tasks.awaitOperator(
        { ref: { kind: 'plan', system: null }, description: 'plan this offboarding (fix the policy, then retry)' },
        error,
      );
      if (decision !== 'retry') return undefined;
    }
  }
}

/** Makes the first plan and learns which systems this worker offboards from. */
export async function makeFirstPlan(
  state: OffboardingState,
  recorder: Recorder,
  notifier: Notifier,
  tasks?: OperatorTasks,
): Promise<void> {
  const { request, status } = state;
  const made = await firstPlanOrTask(state, recorder, notifier, tasks);
  if (!made) {
    // Skipped or cancelled without a plan: no system runs, and the end is recorded as usual.
    state.plan = emptyPlan(request);
    state.planned = true;
    return;
  }
  state.plan = made;
  status.playbook = state.plan.playbook;
  status.mode = state.plan.mode;
  status.slaDeadline = state.plan.slaDeadline;
  status.stages = stageList(state.plan);
  status.systems = await setup.configuredSystems();
  state.identitySources = await setup.identitySources();
  const { playbook, mode, effectiveAt, slaDeadline } = state.plan;
  notifier.tell(
    'started',
    `${playbook} offboarding (${mode}), effective ${effectiveAt}, requested by ${request.requestedBy}`,
  );
  recorder.audit({
    action: 'plan_made',
    actor: 'workflow',
    details: { playbook, mode, slaDeadline, stages: status.stages, systems: status.systems },
  });
  state.planned = true;
}

function replacePlan(state: OffboardingState, notifier: Notifier, next: OffboardingRequest, replacement: Plan) {
  const { status } = state;
  const used = new Set(status.stages.filter((st) => st.startedAt).map((st) => st.name));
  const stages = replacement.stages.map((st) => {
    if (!used.has(st.name)) return st;
    let n = 2;
    while (used.has(`${st.name}-${n}`)) n += 1;
    return { ...st, name: `${st.name}-${n}` };
  });
  // The tighter deadline holds: a replan never loosens the SLA already promised.
  const current = state.plan.slaDeadline;
  const slaDeadline = Date.parse(current) < Date.parse(replacement.slaDeadline) ? current : replacement.slaDeadline;
  state.plan = { ...replacement, slaDeadline, stages };
  state.planRequest = next;
  if (next.subject.email && !state.subject.email) state.subject = { ...state.subject, email: next.subject.email };
  if (next.manager?.email) notifier.managerNamed(next.manager.email);
  status.playbook = state.plan.playbook;
  status.mode = state.plan.mode;
  status.slaDeadline = slaDeadline;
  status.effectiveAt = state.plan.effectiveAt;
  status.stages = [...status.stages.filter((st) => st.startedAt), ...stageList(state.plan)];
  state.planVersion += 1;
  state.commandVersion += 1; // wakes every pipeline waiting for a stage of the old plan
  publishSearchAttributes(state);
}

export function registerSupersede(state: OffboardingState, recorder: Recorder, notifier: Notifier): void {
  const { request, status } = state;
  setHandler(
    supersedeUpdate,
    async (command: SupersedeCommand): Promise<SupersedeResult> => {
      await condition(() => state.planned); // an event arriving while the first plan is made waits for it
      const { supersedes, why } = supersession(state.planRequest, command.request);
      const { requestId, trigger, effectiveAt } = command.request;
      const reason = command.request.reason ?? null;
      const record = { requestId, trigger, reason, effectiveAt, receivedAt: nowIso(), why };
      /** Records the event as joined, with why it changes nothing. */
      const joined = (because: string): SupersedeResult => {
        status.laterRequests.push({ ...record, outcome: 'joined', why: because });
        const details = { requestId, trigger, reason, effectiveAt, why: because };
        recorder.audit({ action: 'hr_event_joined', actor: command.by, outcome: 'no_change', details });
        return { outcome: 'joined', why: because };
      };
      const ended = () => isFinished(state) || status.cancelled !== null;
      if (ended()) return joined('the offboarding has already ended');
      if (!supersedes) return joined(why);
      const next = supersedingRequest(state.planRequest, command.request);
      const replacement = await setup.makePlan(next);
      if (ended()) return joined(`${why}, but the offboarding ended while the new plan was made`);
      // Another event may have replaced the plan meanwhile: of two arriving together, the
      // further-reaching one stands.
      const again = supersession(state.planRequest, command.request);
      if (!again.supersedes) return joined(again.why);
      replacePlan(state, notifier, next, replacement);
      status.laterRequests.push({ ...record, outcome: 'superseded' });
      const { playbook, mode, slaDeadline } = state.plan;
      recorder.audit({
        action: 'plan_replaced',
        actor: command.by,
        details: {
          requestId: next.requestId,
          trigger: next.trigger,
          reason: next.reason ?? null,
          effectiveAt: next.effectiveAt,
          why,
          playbook,
          mode,
          slaDeadline,
          stages: stageList(state.plan),
          systems: status.systems,
        },
      });
      const first = state.plan.stages[0];
      notifier.tell(
        'superseded',
        `${why}: now ${playbook} (${mode}), next ${first ? `${first.name} due ${first.dueAt}` : 'nothing'}`,
      );
      return { outcome: 'superseded', why };
    },
    {
      validator: (command: SupersedeCommand) => {
        if (typeof command?.by !== 'string' || command.by.length === 0)
          throw new Error('supersede: "by" (who sends it) is required');
        const forWhom = command.request?.subject?.employeeId;
        if (forWhom !== request.subject.employeeId) {
          throw new Error(`supersede: the request is for ${String(forWhom)}, not ${request.subject.employeeId}`);
        }
        const seen = [request.requestId, ...status.laterRequests.map((r) => r.requestId)];
        if (seen.includes(command.request.requestId))
          throw new Error(`supersede: request ${command.request.requestId} is already part of this offboarding`);
        if (status.cancelled)
          throw ApplicationFailure.create({
            type: OFFBOARDING_CANCELLED,
            message: 'supersede: the offboarding has already been cancelled',
          });
        if (isFinished(state)) throw new Error('supersede: the offboarding has already completed');
      },
    },
  );
}
