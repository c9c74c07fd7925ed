/**
 * Who hears what. The IT channel hears every event; the manager hears of the start, holds, a
 * later HR event, a task gone overdue, and the end, by direct message. Each audience's messages
 * go one after another, so nobody reads "held" before "started"; a failed notification is
 * audited and never holds the offboarding up. The manager's email comes from HR or, failing
 * that, from the directories once every system has been mapped: what is said before then waits.
 */
import type { ActivityFailure } from '@temporalio/workflow';
import type { Notification } from '../../activities/notify.js';
import type { Discovery } from '../../model/plan.js';
import { notify } from './activities.js';
import type { Recorder } from './recorder.js';
import type { OffboardingState } from './state.js';

type Event = Notification['event'];

const FOR_THE_MANAGER: ReadonlySet<Event> = new Set(['started', 'held', 'superseded', 'completed', 'cancelled']);

export interface Notifier {
  /** Tells the IT channel, and the manager too for the events that concern them. */
  tell(event: Event, text: string, alsoManager?: boolean): void;
  /** Takes the manager's email from the directories (when they agree on one), then says what waited. */
  learnManager(found: Discovery[]): void;
  /** HR named the manager in a later event: what waited goes to them at once. */
  managerNamed(email: string): void;
  /** The offboarding ends: a manager still unknown is recorded once. */
  finish(): void;
}

export function createNotifier(state: OffboardingState, recorder: Recorder): Notifier {
  const manager = { email: state.request.manager?.email, lookedUp: state.request.manager?.email !== undefined };
  const waitingForManager: [Event, string][] = [];
  const beforeStart: [Event, string, boolean][] = [];
  let startTold = false;
  const delivered: Record<'it' | 'manager', Promise<void>> = { it: Promise.resolve(), manager: Promise.resolve() };

  function send(event: Event, text: string, managerEmail?: string) {
    const audience = managerEmail ? 'manager' : 'it';
    const notification: Notification = {
      event,
      employeeId: state.request.subject.employeeId,
      workflowId: state.workflowId,
      text: `${state.workflowId}: ${text}`,
      audience,
      ...(managerEmail ? { managerEmail } : {}),
    };
    const deliver = () =>
      notify(notification).then(
        () => undefined,
        (err: ActivityFailure) =>
          recorder.audit({
            action: 'notification_failed',
            actor: 'workflow',
            outcome: 'failed',
            details: { event, audience, error: err.cause?.message ?? err.message },
          }),
      );
    delivered[audience] = delivered[audience].then(deliver);
    recorder.track(delivered[audience]);
  }

  function tellManager(event: Event, text: string) {
    if (manager.email) send(event, text, manager.email);
    else if (!manager.lookedUp) waitingForManager.push([event, text]);
  }

  function sayWhatWaited() {
    const waiting = waitingForManager.splice(0);
    if (manager.email) {
      for (const [event, text] of waiting) send(event, text, manager.email);
      return;
    }
    recorder.audit({
      action: 'manager_unknown',
      actor: 'workflow',
      outcome: 'failed',
      details: {
        reason: 'HR sent no manager email and no directory names a manager with one: the manager is not notified',
        unsent: waiting.map(([event]) => event),
      },
    });
  }

  const notifier: Notifier = {
    tell(event, text, alsoManager = FOR_THE_MANAGER.has(event)) {
      // A command that arrives while the plan is still being made is told after the start.
      if (!startTold && event !== 'started') {
        beforeStart.push([event, text, alsoManager]);
        return;
      }
      send(event, text);
      if (alsoManager) tellManager(event, text);
      if (event === 'started') {
        startTold = true;
        for (const told of beforeStart.splice(0)) notifier.tell(...told);
      }
    },
    learnManager(found) {
      if (manager.lookedUp) return;
      manager.lookedUp = true;
      const emails = [
        ...new Set(found.map((d) => d.identity?.managerEmail?.toLowerCase()).filter((e): e is string => Boolean(e))),
      ];
      if (emails.length === 1) {
        manager.email = emails[0];
        const from = found.filter((d) => d.identity?.managerEmail).map((d) => d.system);
        recorder.audit({ action: 'identity_correlated', actor: 'workflow', details: { field: 'managerEmail', from } });
      }
      sayWhatWaited();
    },
    managerNamed(email) {
      if (manager.email) return;
      manager.email = email;
      manager.lookedUp = true;
      sayWhatWaited();
    },
    finish() {
      // Cancelled before anything was mapped: nobody learnt the manager's email.
      if (manager.lookedUp) return;
      manager.lookedUp = true;
      sayWhatWaited();
    },
  };
  return notifier;
}
