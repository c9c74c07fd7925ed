/**
 * One action in one system, with its status entry and audit row; and, after a cancel, the
 * logins this offboarding disabled enabled again.
 */
import { ActivityFailure } from '@temporalio/workflow';
import type { Action } from '../../model/plan.js';
import type { ActionStatus } from '../messages.js';
import { systemCalls } from './activities.js';
import type { Offboarding } from './context.js';
import { nowIso, trackCall } from './state.js';

const describe = (action: Action) => `${action.kind}${action.target ? ` ${action.target.id}` : ''} in ${action.system}`;

/** Runs an action; what retries cannot do becomes a manual task until retried or skipped. */
export async function runAction(
  { state, recorder, tasks }: Offboarding,
  action: Action,
  actor: string,
  ignoreCancel = false,
): Promise<ActionStatus> {
  const { status } = state;
  const entry: ActionStatus = status.actions.find((a) => a.id === action.id) ?? {
    ...action,
    state: 'pending',
    attempts: 0,
  };
  if (!status.actions.includes(entry)) status.actions.push(entry);
  entry.state = 'running';
  const base = { actionId: action.id, stage: action.stage, target: action.target?.id ?? null };
  const ref = { kind: 'action', actionId: action.id, stage: action.stage, system: action.system } as const;
  const spec = { ref, description: describe(action), ignoreCancel };
  const result = await tasks.withOperatorFallback(spec, async () => {
    try {
      const applied = await trackCall(state, action.system, action.kind, (id) =>
        systemCalls(state.plan, id).applyAction({ action, subject: state.subject }),
      );
      entry.attempts += applied.attempt;
      return applied;
    } catch (err) {
      const exhausted = err instanceof ActivityFailure && err.retryState === 'MAXIMUM_ATTEMPTS_REACHED';
      entry.attempts += exhausted ? state.plan.retry.maximumAttempts : 1;
      entry.state = 'failed';
      entry.lastError = err instanceof ActivityFailure ? (err.cause?.message ?? err.message) : String(err);
      const details = { ...base, error: entry.lastError, attempts: entry.attempts };
      recorder.audit({ action: action.kind, actor, system: action.system, outcome: 'failed', details });
      throw err;
    }
  });
  entry.completedAt = nowIso();
  if (result) {
    entry.state = result.outcome;
    const details = { ...base, attempts: entry.attempts, ...result.details };
    recorder.audit({ action: action.kind, actor, system: action.system, outcome: result.outcome, details });
  } else {
    entry.state = status.cancelled && !tasks.wasSkipped(action.id) ? 'cancelled' : 'skipped';
  }
  return entry;
}

/**
 * After a cancel: logins this offboarding disabled (outcome `done`, not `already`) are enabled
 * again, unless the account was deleted. Removed entitlements are not granted back: the audit
 * names them so that an owner can.
 */
export async function restoreDisabledLogins(ctx: Offboarding): Promise<void> {
  const { status } = ctx.state;
  const gone = (a: ActionStatus) => a.kind === 'delete_account' && (a.state === 'done' || a.state === 'already');
  const deleted = new Set(status.actions.filter(gone).map((a) => a.system));
  const disabledByUs = status.actions.filter(
    (a) => a.kind === 'disable_login' && a.state === 'done' && !deleted.has(a.system),
  );
  const actor = status.cancelled?.by ?? 'workflow';
  await Promise.all(
    disabledByUs.map(({ system, accountId }) => {
      const action: Action = {
        id: `cancel/${system}/enable_login`,
        stage: 'cancel',
        system,
        kind: 'enable_login',
        accountId,
      };
      return runAction(ctx, action, actor, true);
    }),
  );
}
