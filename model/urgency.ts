/**
 * How urgent an offboarding is, as Temporal's task-queue priority (1 first … 5 last; 3 when
 * unset). In a burst every run shares one task queue, and without priority a security
 * termination's workflow and activity tasks wait behind everyone's in arrival order; with it the
 * matching service hands out a security termination's tasks before an involuntary one's, and
 * those before a resignation's.
 */
import type { PlaybookName } from './policy.js';
import type { OffboardingRequest } from './request.js';

export type PriorityKey = 1 | 2 | 3 | 4;

const BY_PLAYBOOK: Record<PlaybookName, PriorityKey> = {
  security: 1,
  involuntary: 2,
  voluntary: 3,
  contractor: 3,
  role_change: 4,
};

/** For the activities of a plan: a superseding event's plan brings its own priority. */
export const priorityKeyForPlaybook = (playbook: PlaybookName): PriorityKey => BY_PLAYBOOK[playbook];

/** For the run, at its start (its workflow tasks keep it: server 1.29 cannot change a run's priority). */
export function priorityKeyFor(request: Pick<OffboardingRequest, 'trigger' | 'reason'>): PriorityKey {
  if (request.trigger === 'role_change') return BY_PLAYBOOK.role_change;
  if (request.trigger === 'contract_end') return BY_PLAYBOOK.contractor;
  return BY_PLAYBOOK[request.reason ?? 'voluntary'];
}
