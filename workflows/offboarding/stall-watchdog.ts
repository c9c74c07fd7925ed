/**
 * Tells IT of a system's step still running after STALLED_AFTER_MS (a hung call, retries under a
 * failing system), once per step. Time spent waiting for a person is not "stuck": a step whose
 * system awaits an operator when its time is up is not told (the task has reminders of its own).
 *
 * One timer serves every step of the run (patch `one-stall-watchdog`): it is set for the earliest
 * running step's deadline, cancelled when no step is running, and when it fires it tells what is
 * overdue and is set again for the next. Before, each step had a timer of its own, started and
 * then cancelled when the step ended: about 50 a person in 9 systems, each two commands and two
 * history events, for a warning that is almost never due.
 */
import { condition } from '@temporalio/workflow';
import type { SystemStep } from '../messages.js';
import type { Notifier } from './notifications.js';
import type { Recorder } from './recorder.js';
import { nowIso, progressOf, type OffboardingState } from './state.js';

/** A step that takes longer than this is told to the IT channel as stuck (once per step). */
export const STALLED_AFTER_MS = 5 * 60 * 1000;

export interface WatchedStep {
  system: string;
  stage: string;
  doing: SystemStep;
  /** When the step began (workflow time, ISO). */
  since: string;
}

export interface StallWatchdog {
  /** Watches `step` until the returned function is called (when the step ends). */
  watch(step: Omit<WatchedStep, 'since'>): () => void;
}

/** Audits and tells IT that `step` has been running past STALLED_AFTER_MS. */
export function reportStalled(recorder: Recorder, notifier: Notifier, step: WatchedStep): void {
  const { system, stage, doing, since } = step;
  const seconds = Math.round((Date.now() - Date.parse(since)) / 1000);
  recorder.audit({
    action: 'system_stalled',
    actor: 'workflow',
    system,
    outcome: 'escalated',
    details: { stage, step: doing, since, seconds },
  });
  notifier.tell(
    'stalled',
    `${system} has been ${doing} in stage ${stage} for ${seconds} s (since ${since}); the other systems go on`,
  );
}

export function createStallWatchdog(state: OffboardingState, recorder: Recorder, notifier: Notifier): StallWatchdog {
  const running = new Set<WatchedStep>();
  let watching = false;
  const deadlineOf = (step: WatchedStep) => Date.parse(step.since) + STALLED_AFTER_MS;

  async function watchAll(): Promise<void> {
    for (;;) {
      await condition(() => running.size > 0);
      const earliest = Math.min(...[...running].map(deadlineOf));
      if (await condition(() => running.size === 0, Math.max(earliest - Date.now(), 1))) continue;
      for (const step of [...running]) {
        if (deadlineOf(step) > Date.now()) continue;
        running.delete(step);
        if (progressOf(state, step.system).doing !== 'awaiting_operator') reportStalled(recorder, notifier, step);
      }
    }
  }

  return {
    watch(step) {
      const watched = { ...step, since: nowIso() };
      running.add(watched);
      if (!watching) {
        watching = true;
        void watchAll();
      }
      return () => running.delete(watched);
    },
  };
}
