/**
 * One system's own way through the plan. For each stage: wait until it is due (holds, expedite
 * and cancel act on the whole person) → map access there → disable login first → the rest in
 * parallel → read back and verify there → that system's manual tasks. A system that is slow,
 * failing, rate-limited or waiting for a person holds up only itself.
 */
import { condition } from '@temporalio/workflow';
import {
  actionsForStage,
  leftoversAfterStage,
  type Action,
  type Discovery,
  type PlannedStage,
} from '../../model/plan.js';
import { describeLeftover, sameLeftover, type Leftover } from '../../model/leftovers.js';
import { taskIdOf, verifyTaskError } from '../../model/manual-tasks.js';
import type { SystemStep } from '../messages.js';
import type { Offboarding } from './context.js';
import { mapAccess, readBack } from './identity.js';
import {
  markStageFinished,
  markStageStarted,
  nowIso,
  progressOf,
  refreshFinishedStages,
  refreshOverview,
  revokes,
  setStep,
} from './state.js';
import { runAction } from './system-actions.js';
import { reportStalled, STALLED_AFTER_MS } from './stall-watchdog.js';
import { oneStallWatchdog, skippedStaysSkipped } from './versions.js';
import { publishSearchAttributes } from './visibility.js';

export async function runPipeline(ctx: Offboarding, system: string): Promise<void> {
  const { state } = ctx;
  const started = new Set<string>();
  for (;;) {
    if (state.status.cancelled || !state.status.systems.includes(system)) break;
    const stage = state.plan.stages.find((s) => !started.has(s.name));
    if (!stage) break;
    const version = state.planVersion;
    await waitUntilDue(ctx, system, stage);
    if (state.status.cancelled) break;
    if (state.planVersion !== version) continue; // replaced while waiting: the new plan's stages are next
    started.add(stage.name);
    await runStage(ctx, system, stage, started);
  }
  const progress = progressOf(ctx.state, system);
  progress.nextStage = null;
  const removed = !state.status.systems.includes(system);
  setStep(state, system, removed ? 'removed' : state.status.cancelled ? 'cancelled' : 'done');
  if (removed) {
    // The others may have been waiting only for this one.
    refreshFinishedStages(state);
    announceMilestones(ctx);
  }
  publishSearchAttributes(state);
}

/** Waits until a stage is due and no hold is in force; expedite and cancel end the wait at once. */
async function waitUntilDue({ state, recorder }: Offboarding, system: string, stage: PlannedStage) {
  const { status } = state;
  const dueMs = Date.parse(stage.dueAt);
  const version = state.planVersion;
  const progress = progressOf(state, system);
  progress.nextStage = { name: stage.name, dueAt: stage.dueAt };
  for (;;) {
    if (status.cancelled || status.expedited || state.planVersion !== version) break;
    const nowMs = Date.now();
    const expired = status.holds.filter((hold) => hold.until && Date.parse(hold.until) <= nowMs);
    if (expired.length > 0) {
      status.holds = status.holds.filter((hold) => !expired.includes(hold));
      recorder.audit({ action: 'hold_expired', actor: 'workflow', details: { holdsExpired: expired.length } });
    }
    const held = status.holds.length > 0;
    if (!held && nowMs >= dueMs) break;
    setStep(state, system, held ? 'held' : 'waiting');
    publishSearchAttributes(state);
    const holdsEnd = Math.min(...status.holds.map((hold) => (hold.until ? Date.parse(hold.until) : Infinity)));
    const wakeAt = held ? holdsEnd : dueMs;
    const seen = state.commandVersion;
    await condition(
      () => state.commandVersion !== seen,
      Number.isFinite(wakeAt) ? Math.max(wakeAt - nowMs, 1) : undefined,
    );
  }
  progress.nextStage = null;
}

/**
 * Runs `work` as the system's current step; a step still running after STALLED_AFTER_MS (a
 * hung call, retries under a failing system) is audited and told to IT once (stall-watchdog.ts).
 */
async function step<T>(
  ctx: Offboarding,
  system: string,
  stage: PlannedStage,
  doing: SystemStep,
  work: () => Promise<T>,
): Promise<T> {
  const { state, recorder, notifier } = ctx;
  setStep(state, system, doing);
  publishSearchAttributes(state);
  if (oneStallWatchdog()) {
    const ended = ctx.stalls.watch({ system, stage: stage.name, doing });
    try {
      return await work();
    } finally {
      ended();
    }
  }
  // Runs from before the patch: a timer for each step.
  const since = nowIso();
  let finished = false;
  void condition(() => finished || progressOf(state, system).doing === 'awaiting_operator', STALLED_AFTER_MS).then(
    (settled) => {
      if (!settled) reportStalled(recorder, notifier, { system, stage: stage.name, doing, since });
    },
  );
  try {
    return await work();
  } finally {
    finished = true;
  }
}

async function runStage(ctx: Offboarding, system: string, stage: PlannedStage, started: Set<string>): Promise<void> {
  const { state, recorder, tasks } = ctx;
  const { status } = state;
  const plan = () => state.plan;
  markStageStarted(state, stage);
  progressOf(state, system).stage = stage.name;
  refreshOverview(state);
  const actor = status.expedited ? status.expedited.by : 'workflow';
  recorder.audit({
    action: 'stage_started',
    actor,
    system,
    details: { stage: stage.name, dueAt: stage.dueAt, expedited: status.expedited !== null },
  });
  const run = (actions: Action[]) => Promise.all(actions.map((action) => runAction(ctx, action, actor)));
  const disablesLogin = stage.steps.some((s) => s.action === 'disable_login');

  // Access found pre-flight lets the login be disabled at once, while access is mapped afresh.
  const known = state.preflight[system];
  const early =
    disablesLogin && known?.account && !known.account.disabled
      ? actionsForStage(stage, [known], plan()).filter((a) => a.kind === 'disable_login')
      : [];
  const disabledEarly =
    early.length > 0 ? step(ctx, system, stage, 'disabling', () => run(early)) : Promise.resolve([]);

  const before = await step(ctx, system, stage, 'discovering', () => mapAccess(ctx, system, stage));
  await disabledEarly;
  if (!before || status.cancelled) return;
  // Login first: nobody opens a new session after theirs were ended, and where disabling takes
  // everything with it (GitHub membership) the removals that follow find it gone.
  const ranEarly = new Set(early.map((a) => a.id));
  const actions = actionsForStage(stage, [before], plan()).filter((a) => !ranEarly.has(a.id));
  await step(ctx, system, stage, 'disabling', () => run(actions.filter((a) => a.kind === 'disable_login')));
  if (disablesLogin) noteLoginDisabled(ctx, system);
  await step(ctx, system, stage, 'revoking', () => run(actions.filter((a) => a.kind !== 'disable_login')));
  if (status.cancelled) return;

  // Verification: what the stage should have removed and is still there (a concurrent change, a
  // grant meanwhile) is revoked once more; what survives that too goes to a person.
  const skipped: string[] = [];
  const leftovers = await step(ctx, system, stage, 'verifying', async () => {
    const read = await readBack(ctx, system);
    if (!read) return undefined;
    const { checked, after } = withoutSkipped(ctx, stage, read, skipped);
    const first = leftoversAfterStage(checked, [after], plan());
    if (first.length === 0) return first;
    recorder.audit({
      action: 'stage_rechecked',
      actor: 'workflow',
      system,
      outcome: 'leftovers',
      details: { stage: stage.name, leftovers: first },
    });
    await run(actionsForStage({ ...checked, name: `${stage.name}-recheck` }, [after], plan()));
    const again = await readBack(ctx, system);
    return again ? leftoversNotSkipped(ctx, stage, again) : undefined;
  });
  if (!leftovers) return; // the system was taken out of the offboarding, or it was cancelled
  const outcome = leftovers.length ? 'leftovers' : 'clean';
  recorder.audit({
    action: 'stage_verified',
    actor: 'workflow',
    system,
    outcome,
    details: { stage: stage.name, leftovers, disablesLogin, ...(skipped.length ? { skippedByOperator: skipped } : {}) },
  });
  await Promise.all(
    leftovers.map(async (leftover, i) => {
      const ref = { kind: 'verify', stage: stage.name, system, n: i + 1, leftover } as const;
      const spec = { ref, description: `verification after stage ${stage.name}` };
      for (;;) {
        const decision = await tasks.awaitOperator(spec, verifyTaskError(describeLeftover(leftover)));
        if (decision !== 'retry') return;
        const now = await readBack(ctx, system);
        const still = now && leftoversNotSkipped(ctx, stage, now).some((l) => sameLeftover(l, leftover));
        if (!still) return tasks.resolve(taskIdOf(ref));
      }
    }),
  );
  markStageFinished(state, stage, system);
  const laterRevokes = state.plan.stages.some((s) => !started.has(s.name) && revokes(s));
  if (revokes(stage) && !laterRevokes) noteRevoked(ctx, system, leftovers.length);
}

/**
 * What an operator skipped in this stage stays skipped: the read-back still finds it (they dealt
 * with it by hand, or it cannot go, as the last member of a Slack group), so neither the recheck
 * nor a verification task may reopen it. Returns the stage without the skipped steps and the
 * discovery without the skipped entitlements, and adds the skipped action ids to `skipped`.
 */
function withoutSkipped(
  { state, tasks }: Offboarding,
  stage: PlannedStage,
  discovery: Discovery,
  skipped: string[] = [],
): { checked: PlannedStage; after: Discovery } {
  const actions = actionsForStage(stage, [discovery], state.plan).filter((action) => tasks.wasSkipped(action.id));
  // Asked only when something was skipped, so that other runs' histories carry no marker.
  if (actions.length === 0 || !skippedStaysSkipped()) return { checked: stage, after: discovery };
  for (const action of actions) if (!skipped.includes(action.id)) skipped.push(action.id);
  const kinds = new Set(actions.filter((a) => a.kind !== 'remove_entitlement').map((a) => a.kind));
  const entitlements = new Set(
    actions.flatMap((a) => (a.kind === 'remove_entitlement' && a.target ? [a.target.id] : [])),
  );
  return {
    checked: { ...stage, steps: stage.steps.filter((s) => !kinds.has(s.action)) },
    after: { ...discovery, entitlements: discovery.entitlements.filter((e) => !entitlements.has(e.id)) },
  };
}

function leftoversNotSkipped(ctx: Offboarding, stage: PlannedStage, discovery: Discovery): Leftover[] {
  const { checked, after } = withoutSkipped(ctx, stage, discovery);
  return leftoversAfterStage(checked, [after], ctx.state.plan);
}

/** Once every system's login is disabled: the figure from HR event to "nobody can log in". */
function noteLoginDisabled(ctx: Offboarding, system: string) {
  if (!ctx.state.loginDisabled.includes(system)) ctx.state.loginDisabled.push(system);
  announceMilestones(ctx);
}

/** Once every system has verified its last stage that takes access away. */
function noteRevoked(ctx: Offboarding, system: string, leftovers: number) {
  ctx.state.revoked[system] ??= leftovers;
  announceMilestones(ctx);
}

/** Records each milestone once, when the last system still in the offboarding reaches it. */
export function announceMilestones({ state, recorder }: Offboarding): void {
  const { systems } = state.status;
  const receivedMs = Date.now() - state.receivedAtMs;
  if (
    !state.announced.loginsDisabled &&
    systems.every((s) => state.loginDisabled.includes(s)) &&
    state.loginDisabled.length > 0
  ) {
    state.announced.loginsDisabled = true;
    const millisecondsSinceEffective = Date.now() - Date.parse(state.plan.effectiveAt);
    const details = {
      millisecondsSinceReceived: receivedMs,
      millisecondsSinceEffective,
      systems: [...state.loginDisabled],
    };
    recorder.audit({ action: 'logins_disabled', actor: 'workflow', details });
  }
  const revoked = Object.keys(state.revoked);
  if (!state.announced.revocationVerified && systems.every((s) => s in state.revoked) && revoked.length > 0) {
    state.announced.revocationVerified = true;
    recorder.audit({
      action: 'revocation_verified',
      actor: 'workflow',
      details: {
        millisecondsSinceReceived: receivedMs,
        millisecondsSinceEffective: Date.now() - Date.parse(state.plan.effectiveAt),
        systems: revoked,
        leftovers: Object.values(state.revoked).reduce((sum, n) => sum + n, 0),
      },
    });
  }
}
