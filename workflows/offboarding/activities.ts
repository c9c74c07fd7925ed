/**
 * The activities the offboarding calls, with the options each is sized to. Types only: no I/O
 * code enters the workflow bundle.
 */
import { proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import type { Activities } from '../../activities/index.js';
import type { Plan } from '../../model/plan.js';
import { priorityKeyForPlaybook } from '../../model/urgency.js';

export const setup = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 10, maximumInterval: '1 minute' },
});

// The audit log must not lose an event: keep retrying for as long as the database is away.
export const { recordAudits } = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', maximumInterval: '1 minute' },
});

// Notifications must not hold the offboarding up: a failed one is recorded and the work goes on.
export const { notify } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 5, maximumInterval: '1 minute' },
});

// Read-only mapping ahead of the effective time: three quick attempts, and no task if it fails.
export const { discover: discoverAhead } = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 3, initialInterval: '2 seconds' },
});

/**
 * The calls into a target system, with the plan's retry policy. Each call has its own activity
 * id, named in the system's status, so a client can show its attempt and last failure.
 * Every call inside is bounded (activities/), so one attempt ends well within startToClose.
 */
export function systemCalls(plan: Plan, activityId: string) {
  const options: ActivityOptions = {
    activityId,
    // A call is bounded at 60 s and a Retry-After is waited out inside the attempt (up to 8
    // minutes), heartbeating every 5 s: a worker that died is noticed in 30 s, not 10 minutes.
    startToCloseTimeout: '10 minutes',
    heartbeatTimeout: '30 seconds',
    // A superseding security termination's calls go ahead of a burst's resignations.
    priority: { priorityKey: priorityKeyForPlaybook(plan.playbook) },
    retry: {
      initialInterval: plan.retry.initialIntervalMs,
      maximumInterval: plan.retry.maximumIntervalMs,
      backoffCoefficient: plan.retry.backoffCoefficient,
      maximumAttempts: plan.retry.maximumAttempts,
    },
  };
  return proxyActivities<Activities>(options);
}
