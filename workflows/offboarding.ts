/**
 * The offboarding workflow, one per person (workflow id `offboarding-<employeeId>`), as its
 * policy:
 *
 * 1. Record the HR event, make the plan (in an activity: the worker owns the policy config) and
 *    tell IT and the manager.
 * 2. Due more than an hour ahead: map access now, read-only (pre-flight), so that what cannot be
 *    reached is known days ahead and an immediate stage can disable at once.
 * 3. Every system runs its own pipeline through the plan's stages (offboarding/pipeline.ts): a
 *    system that is slow, failing, rate-limited or waiting for a person holds up only itself.
 *    Holds, expedite and cancel act on the whole person (offboarding/commands.ts); a later HR
 *    event that goes further replaces the stages not started (offboarding/replan.ts).
 * 4. On cancel, enable again the logins this offboarding disabled.
 * 5. Record the end, tell IT and the manager, and return the counts.
 *
 * Deterministic code only: all I/O is in activities. offboarding/versions.ts says what each
 * patch gates.
 */
import { allHandlersFinished, condition, setHandler } from '@temporalio/workflow';
import type { OffboardingRequest } from '../model/request.js';
import { statusQuery, type OffboardingResult } from './messages.js';
import { registerCommands } from './offboarding/commands.js';
import type { Offboarding } from './offboarding/context.js';
import { preflight } from './offboarding/identity.js';
import { createNotifier } from './offboarding/notifications.js';
import { createOperatorTasks } from './offboarding/operator-tasks.js';
import { runPipeline } from './offboarding/pipeline.js';
import { createRecorder } from './offboarding/recorder.js';
import { makeFirstPlan, registerSupersede } from './offboarding/replan.js';
import { createStallWatchdog } from './offboarding/stall-watchdog.js';
import { createState, refreshOverview } from './offboarding/state.js';
import { restoreDisabledLogins } from './offboarding/system-actions.js';
import { refuseRetiredVersion } from './offboarding/versions.js';
import { publishSearchAttributes } from './offboarding/visibility.js';

/** An offboarding due further ahead than this maps access at once (pre-flight). */
const PREFLIGHT_MIN_LEAD_MS = 60 * 60 * 1000;

export async function offboarding(request: OffboardingRequest): Promise<OffboardingResult> {
  refuseRetiredVersion();

  const state = createState(request);
  const recorder = createRecorder(state);
  const notifier = createNotifier(state, recorder);
  const ctx: Offboarding = {
    state,
    recorder,
    notifier,
    tasks: createOperatorTasks(state, recorder, notifier),
    stalls: createStallWatchdog(state, recorder, notifier),
  };
  const { status } = state;
  registerCommands(state, recorder, notifier);
  registerSupersede(state, recorder, notifier);
  setHandler(statusQuery, () => status);

  // 1. The HR event and the plan.
  const { requestId, trigger, employmentType, effectiveAt } = request;
  const started = {
    requestId,
    trigger,
    reason: request.reason ?? null,
    employmentType,
    effectiveAt,
    newRole: request.newRole ?? null,
  };
  recorder.audit({ action: 'offboarding_started', actor: request.requestedBy, details: started });
  await makeFirstPlan(state, recorder, notifier, ctx.tasks);
  status.phase = 'waiting';

  // 2. Pre-flight.
  const firstDue = state.plan.stages[0] ? Date.parse(state.plan.stages[0].dueAt) : Date.now();
  if (firstDue - Date.now() > PREFLIGHT_MIN_LEAD_MS) await preflight(ctx);

  // 3. One pipeline per system.
  await Promise.all(status.systems.map((system) => runPipeline(ctx, system)));

  // 4. Cancelled: undo what was only disabled.
  if (status.cancelled) {
    status.phase = 'restoring';
    publishSearchAttributes(state);
    await restoreDisabledLogins(ctx);
  }

  // 5. The end.
  status.phase = status.cancelled ? 'cancelled' : 'completed';
  refreshOverview(state);
  status.stage = null;
  status.nextStage = null;
  publishSearchAttributes(state);
  const counts: Record<string, number> = {};
  for (const action of status.actions) counts[action.state] = (counts[action.state] ?? 0) + 1;
  const ended = status.phase === 'cancelled' ? 'offboarding_cancelled' : 'offboarding_completed';
  const details = { actions: counts, slaDeadline: state.plan.slaDeadline };
  recorder.audit({ action: ended, actor: status.cancelled?.by ?? 'workflow', outcome: status.phase, details });
  const summary =
    Object.entries(counts)
      .map(([s, n]) => `${n} ${s}`)
      .join(', ') || 'no actions';
  notifier.tell(status.phase, `${status.phase}: ${summary}`);
  notifier.finish();
  await condition(allHandlersFinished);
  await recorder.drain();
  const manualTasksSkipped = status.manualTasks.filter((t) => t.state === 'skipped').length;
  return { phase: status.phase, actions: counts, manualTasksSkipped };
}
