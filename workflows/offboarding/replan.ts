/**
 * Plans: the first one, and a later HR event for the same person that goes further or sooner
 * (`supersession()` in model/plan.ts). A replacement's stages take the place of those no system
 * has started; a stage name already used gets a suffix (`revoke-2`), so its action ids are new.
 * What ran stays done, and the new stages find it `already` gone.
 */
import { ApplicationFailure, condition, setHandler } from '@temporalio/workflow';
import type { SupersedeCommand } from '../../model/commands.js';
import { supersedingRequest, supersession, type Plan } from '../../model/plan.js';
import type { OffboardingRequest } from '../../model/request.js';
import { OFFBOARDING_CANCELLED, supersedeUpdate, type SupersedeResult } from '../messages.js';
import { setup } from './activities.js';
import type { Notifier } from './notifications.js';
import type { Recorder } from './recorder.js';
import { isFinished, nowIso, type OffboardingState } from './state.js';
import { publishSearchAttributes } from './visibility.js';

const stageList = (plan: Plan) => plan.stages.map((s) => ({ name: s.name, dueAt: s.dueAt }));

/** Makes the first plan and learns which systems this worker offboards from. */
export async function makeFirstPlan(state: OffboardingState, recorder: Recorder, notifier: Notifier): Promise<void> {
  const { request, status } = state;
  state.plan = await setup.makePlan(request);
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
