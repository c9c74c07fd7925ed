/**
 * Operator commands, as signals (Temporal UI, `temporal workflow signal`) and as Updates (CLI,
 * API), validated the same way. An Update returns its refusal to the caller; a refused signal
 * cannot answer, so its refusal goes to the log and the audit trail. Holds, expedite and cancel
 * act on the whole person: every system's pipeline re-evaluates its wait when one arrives.
 */
import { log, setHandler } from '@temporalio/workflow';
import type {
  CancelCommand,
  ExpediteCommand,
  HoldCommand,
  ReleaseCommand,
  RetryCommand,
  SkipCommand,
} from '../../model/commands.js';
import {
  cancelSignal,
  cancelUpdate,
  expediteSignal,
  expediteUpdate,
  holdSignal,
  holdUpdate,
  releaseSignal,
  releaseUpdate,
  retrySignal,
  retryUpdate,
  skipSignal,
  skipUpdate,
} from '../messages.js';
import type { Notifier } from './notifications.js';
import type { Recorder } from './recorder.js';
import { isFinished, nowIso, type OffboardingState } from './state.js';
import { publishSearchAttributes } from './visibility.js';

type CommandName = 'hold' | 'release' | 'expedite' | 'cancel' | 'retry' | 'skip';
type Untrusted = { by?: unknown } & Record<string, unknown>;

function refusal(state: OffboardingState, name: CommandName, command: Untrusted): string | undefined {
  const { status } = state;
  if (typeof command?.by !== 'string' || command.by.length === 0) return `${name}: "by" (who sends it) is required`;
  const needsReason = name === 'hold' || name === 'expedite' || name === 'cancel' || name === 'skip';
  if (needsReason && (typeof command.reason !== 'string' || command.reason.length === 0))
    return `${name}: "reason" is required`;
  if (isFinished(state) || status.cancelled)
    return `${name}: the offboarding has already ${status.cancelled ? 'been cancelled' : 'completed'}`;
  switch (name) {
    case 'hold':
      if (
        command.until !== undefined &&
        !(typeof command.until === 'string' && Date.parse(command.until) > Date.now())
      ) {
        return 'hold: "until" must be a time in the future (ISO 8601)';
      }
      return status.expedited ? 'hold: the offboarding was expedited; holds no longer apply' : undefined;
    case 'release':
      return status.holds.length === 0 ? 'release: there is no hold to release' : undefined;
    case 'expedite':
      return status.expedited ? 'expedite: already expedited' : undefined;
    case 'cancel':
      return undefined;
    case 'retry':
    case 'skip': {
      const id = String(command.actionId);
      if (status.manualTasks.some((t) => t.id === id && t.state === 'open')) return undefined;
      const open = status.manualTasks.filter((t) => t.state === 'open').map((t) => t.id);
      return `${name}: no open manual task "${id}" (open: ${open.join(', ') || 'none'})`;
    }
  }
}

export function registerCommands(state: OffboardingState, recorder: Recorder, notifier: Notifier): void {
  const { status } = state;
  const { audit } = recorder;
  const openTask = (id: string) => status.manualTasks.find((task) => task.id === id && task.state === 'open')!;

  const apply: { [K in CommandName]: (command: never) => string } = {
    hold: (command: HoldCommand) => {
      status.holds.push({ by: command.by, reason: command.reason, until: command.until, placedAt: nowIso() });
      audit({
        action: 'hold_placed',
        actor: command.by,
        details: { reason: command.reason, until: command.until ?? null },
      });
      notifier.tell(
        'held',
        `held by ${command.by}${command.until ? ` until ${command.until}` : ''}: ${command.reason}`,
      );
      return command.until ? `held until ${command.until}` : 'held until released';
    },
    release: (command: ReleaseCommand) => {
      const released = status.holds.length;
      status.holds = [];
      audit({
        action: 'hold_released',
        actor: command.by,
        details: { reason: command.reason ?? null, holdsReleased: released },
      });
      return 'released';
    },
    expedite: (command: ExpediteCommand) => {
      status.expedited = { by: command.by, reason: command.reason, at: nowIso() };
      const lifted = status.holds.length;
      status.holds = [];
      audit({ action: 'expedited', actor: command.by, details: { reason: command.reason, holdsLifted: lifted } });
      return 'expedited: every remaining stage runs now';
    },
    cancel: (command: CancelCommand) => {
      status.cancelled = { by: command.by, reason: command.reason, at: nowIso() };
      audit({ action: 'cancel_requested', actor: command.by, details: { reason: command.reason } });
      return 'cancelled: what was only disabled will be re-enabled';
    },
    retry: (command: RetryCommand) => {
      const task = openTask(command.actionId);
      task.state = 'retrying';
      task.resolvedBy = command.by;
      audit({ action: 'manual_task_retried', actor: command.by, system: task.system, details: { taskId: task.id } });
      return `retrying ${task.id}`;
    },
    skip: (command: SkipCommand) => {
      const task = openTask(command.actionId);
      task.state = 'skipped';
      task.resolvedBy = command.by;
      audit({
        action: 'manual_task_skipped',
        actor: command.by,
        system: task.system,
        details: { taskId: task.id, reason: command.reason },
      });
      return `skipped ${task.id}`;
    },
  };

  function run(name: CommandName, command: never): string {
    const result = apply[name](command);
    state.commandVersion += 1;
    publishSearchAttributes(state);
    return result;
  }

  const commands = [
    ['hold', holdSignal, holdUpdate],
    ['release', releaseSignal, releaseUpdate],
    ['expedite', expediteSignal, expediteUpdate],
    ['cancel', cancelSignal, cancelUpdate],
    ['retry', retrySignal, retryUpdate],
    ['skip', skipSignal, skipUpdate],
  ] as const;
  for (const [name, signal, update] of commands) {
    setHandler(signal, (command: Untrusted) => {
      const refused = refusal(state, name, command);
      if (refused) {
        log.warn('command refused', { command: name, refused });
        const actor = typeof command?.by === 'string' ? command.by : 'unknown';
        audit({ action: 'command_refused', actor, details: { command: name, reason: refused } });
        return;
      }
      run(name, command as never);
    });
    setHandler(update, (command: Untrusted) => run(name, command as never), {
      validator: (command: Untrusted) => {
        const refused = refusal(state, name, command);
        if (refused) throw new Error(refused);
      },
    });
  }
}
