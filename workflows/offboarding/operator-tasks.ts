/**
 * Manual tasks: what retries could not do waits for a person, visibly. A task reminds the IT
 * channel every `remindEvery`, is escalated once past `dueWithin` (the manager hears of that
 * once), and ends with an operator's `retry` or `skip`. Nothing is dropped silently.
 */
import { ActivityFailure, condition, log } from '@temporalio/workflow';
import { taskIdOf, type TaskRef } from '../../model/manual-tasks.js';
import type { ManualTask, SystemStep } from '../messages.js';
import type { Notifier } from './notifications.js';
import type { Recorder } from './recorder.js';
import { nowIso, progressOf, setStep, type OffboardingState } from './state.js';

export type Decision = 'retry' | 'skip' | 'cancelled';

export interface TaskSpec {
  /** What the task is about; its id (what `retry` and `skip` name) is made from it. */
  ref: TaskRef;
  description: string;
  /** A cancel ends the wait unless the task is part of undoing the offboarding itself. */
  ignoreCancel?: boolean;
}

export interface OperatorTasks {
  /** Opens (or reopens) a task and waits for a person's decision. */
  awaitOperator(task: TaskSpec, error: string): Promise<Decision>;
  /**
   * Runs one unit of work; when it fails for good (retries exhausted or not retryable), opens a
   * task and waits for retry or skip. Returns undefined when skipped or cancelled.
   */
  withOperatorFallback<T>(task: TaskSpec, work: () => Promise<T>): Promise<T | undefined>;
  /** Marks a retried task resolved, once the retried work succeeded. */
  resolve(taskId: string): void;
  wasSkipped(taskId: string): boolean;
}

export function createOperatorTasks(state: OffboardingState, recorder: Recorder, notifier: Notifier): OperatorTasks {
  const { status } = state;
  // What a system was doing before its first open task, to return to once none is open.
  const resumeStep = new Map<string, SystemStep>();

  async function awaitOperator(spec: TaskSpec, error: string): Promise<Decision> {
    const { remindEveryMs, dueWithinMs } = state.plan.manualTasks;
    const fields = {
      error,
      openedAt: nowIso(),
      dueAt: new Date(Date.now() + dueWithinMs).toISOString(),
      reminders: 0,
      state: 'open' as const,
    };
    const taskId = taskIdOf(spec.ref);
    const { system } = spec.ref;
    const { description } = spec;
    const existing = status.manualTasks.find((t) => t.id === taskId);
    const task: ManualTask = existing
      ? Object.assign(existing, fields)
      : { id: taskId, ref: spec.ref, system, description, ...fields };
    if (!existing) status.manualTasks.push(task);
    recorder.audit({
      action: 'manual_task_opened',
      actor: 'workflow',
      system,
      outcome: 'escalated',
      details: { taskId, task: spec.ref, description, error, dueAt: task.dueAt },
    });
    notifier.tell('manual_task', `needs a person: ${description} — ${error} (resolve with retry or skip ${taskId})`);
    log.warn('manual task opened', { taskId, system });

    if (system && progressOf(state, system).doing !== 'awaiting_operator') {
      resumeStep.set(system, progressOf(state, system).doing);
      setStep(state, system, 'awaiting_operator');
    }
    const settled = () => task.state !== 'open' || (!spec.ignoreCancel && status.cancelled !== null);
    while (!(await condition(settled, remindEveryMs))) {
      task.reminders += 1;
      const overdue = Date.now() >= Date.parse(task.dueAt);
      recorder.audit({
        action: overdue ? 'manual_task_overdue' : 'manual_task_reminder',
        actor: 'workflow',
        system,
        outcome: 'escalated',
        details: { taskId, reminders: task.reminders, dueAt: task.dueAt },
      });
      // The manager hears of a task once, when it goes overdue: the escalation, not every reminder.
      const firstOverdue = overdue && Date.now() - remindEveryMs < Date.parse(task.dueAt);
      const said = overdue ? `OVERDUE since ${task.dueAt}` : 'still open';
      notifier.tell(overdue ? 'overdue' : 'reminder', `${said}: ${description} (task ${taskId})`, firstOverdue);
    }
    const othersOpen = status.manualTasks.some((t) => t.system === system && t.state === 'open');
    const resume = system ? resumeStep.get(system) : undefined;
    if (system && resume && !othersOpen) setStep(state, system, resume);
    if (task.state === 'skipped') return 'skip';
    return task.state === 'retrying' ? 'retry' : 'cancelled';
  }

  function resolve(taskId: string) {
    const task = status.manualTasks.find((t) => t.id === taskId && t.state === 'retrying');
    if (!task) return;
    task.state = 'resolved';
    recorder.audit({
      action: 'manual_task_resolved',
      actor: 'workflow',
      system: task.system,
      outcome: 'resolved',
      details: { taskId, how: 'retried' },
    });
  }

  return {
    awaitOperator,
    resolve,
    async withOperatorFallback(spec, work) {
      for (;;) {
        try {
          const result = await work();
          resolve(taskIdOf(spec.ref));
          return result;
        } catch (err) {
          if (!(err instanceof ActivityFailure)) throw err;
          const decision = await awaitOperator(spec, err.cause?.message ?? err.message);
          if (decision !== 'retry') return undefined;
        }
      }
    },
    wasSkipped: (taskId) => status.manualTasks.some((t) => t.id === taskId && t.state === 'skipped'),
  };
}
