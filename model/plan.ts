import { z } from 'zod';
import {
  actionKindSchema,
  entitlementScopeSchema,
  playbookNameSchema,
  stepSchema,
  type Policy,
  type PlaybookName,
} from './policy.js';
import type { Leftover } from './leftovers.js';
import type { OffboardingRequest } from './request.js';

export const plannedStageSchema = z.object({
  name: z.string(),
  /** When the stage is due (ISO); a hold or an expedite moves the actual start. */
  dueAt: z.iso.datetime({ offset: true }),
  steps: z.array(stepSchema),
});
export type PlannedStage = z.infer<typeof plannedStageSchema>;

export const planSchema = z.object({
  playbook: playbookNameSchema,
  mode: z.enum(['immediate', 'staged']),
  effectiveAt: z.iso.datetime({ offset: true }),
  /** The deadline by which login must be disabled (or the plan finished), for the SLA report. */
  slaDeadline: z.iso.datetime({ offset: true }),
  stages: z.array(plannedStageSchema),
  retry: z.object({
    initialIntervalMs: z.number(),
    maximumIntervalMs: z.number(),
    backoffCoefficient: z.number(),
    maximumAttempts: z.number(),
  }),
  manualTasks: z.object({ remindEveryMs: z.number(), dueWithinMs: z.number() }),
  privileged: z.record(z.string(), z.array(z.string())),
  /** Entitlements the new role grants, per system (role change only). */
  keep: z.record(z.string(), z.array(z.string())),
});
export type Plan = z.infer<typeof planSchema>;

export function playbookFor(request: OffboardingRequest): PlaybookName {
  if (request.trigger === 'role_change') return 'role_change';
  if (request.trigger === 'contract_end') return 'contractor';
  // A termination: misconduct and security incidents revoke at once, whoever the person is.
  if (request.reason === 'security') return 'security';
  if (request.reason === 'involuntary') return 'involuntary';
  return request.employmentType === 'employee' ? 'voluntary' : 'contractor';
}

/**
 * Decides how one offboarding runs: its playbook, mode and the stages with their due times.
 * Pure: the same request and policy always give the same plan.
 */
export function plan(request: OffboardingRequest, policy: Policy): Plan {
  const playbookName = playbookFor(request);
  const playbook = policy.playbooks[playbookName];
  const effectiveMs = Date.parse(request.effectiveAt);
  const stages = [...playbook.stages]
    .sort((a, b) => a.after - b.after)
    .map((stage) => ({
      name: stage.name,
      dueAt: new Date(effectiveMs + stage.after).toISOString(),
      steps: stage.steps,
    }));
  const keep = request.newRole ? (policy.roles[request.newRole] ?? {}) : {};
  return {
    playbook: playbookName,
    mode: playbook.mode,
    effectiveAt: new Date(effectiveMs).toISOString(),
    slaDeadline: new Date(effectiveMs + playbook.sla).toISOString(),
    stages,
    ...planTimings(policy),
    privileged: policy.privileged,
    keep,
  };
}

export class UnplannableRequestError extends Error {}

/** A reason a request cannot be planned, named by the request field that causes it. */
export interface PlanningProblem {
  path: string;
  message: string;
}

/**
 * Every reason the worker's `makePlan` refuses a request under this policy. The API and the CLI
 * ask it before they answer 202 or exit 0, with the same policy the worker loads, so a request
 * that would fail in the workflow is refused at the door with the field named.
 */
export function planningProblems(request: OffboardingRequest, policy: Policy): PlanningProblem[] {
  const problems: PlanningProblem[] = [];
  // A role change to a role the policy does not know would remove everything: refuse it up front.
  if (request.trigger === 'role_change' && request.newRole && !(request.newRole in policy.roles)) {
    const known = Object.keys(policy.roles);
    problems.push({
      path: 'newRole',
      message:
        `"${request.newRole}" is not in policy.roles (known: ${known.length ? known.join(', ') : 'none'}); ` +
        'add it to the config so that its entitlements are kept',
    });
  }
  // A parsed policy has every playbook; one built in code (or an older config shape) may not.
  const playbookName = playbookFor(request);
  const playbook = (policy.playbooks as Partial<Policy['playbooks']>)[playbookName];
  if (!playbook || playbook.stages.length === 0)
    problems.push({
      path: 'trigger',
      message: `the policy has no stages for the ${playbookName} playbook this request needs (policy.playbooks.${playbookName})`,
    });
  return problems;
}

/** Throws what `planningProblems` finds, as `field: problem` lines. */
export function checkRequestAgainstPolicy(request: OffboardingRequest, policy: Policy): void {
  const problems = planningProblems(request, policy);
  if (problems.length > 0) throw new UnplannableRequestError(problems.map((p) => `${p.path}: ${p.message}`).join('\n'));
}

// ---- Access found in a system, and the concrete actions a stage takes there ----------------

export const entitlementSchema = z.object({
  /** Stable id in the system (an LDAP group DN, a GitHub team slug). */
  id: z.string(),
  kind: z.string(),
  name: z.string().optional(),
});
export type Entitlement = z.infer<typeof entitlementSchema>;

export const credentialSchema = z.object({ id: z.string(), kind: z.enum(['session', 'token', 'key']) });
export type Credential = z.infer<typeof credentialSchema>;

export const discoverySchema = z.object({
  system: z.string(),
  account: z.object({ id: z.string(), disabled: z.boolean() }).nullable(),
  entitlements: z.array(entitlementSchema),
  credentials: z.array(credentialSchema),
  /** A system with no API: its actions are tasks for a person, and discovery cannot verify them. */
  manual: z.boolean().optional(),
  /** Discovery cannot read the actions' effect back (a push-only Shared Signals receiver): verification leaves it out. */
  unverifiable: z.boolean().optional(),
  /** What this system knows of the person (a directory knows their email), for correlation elsewhere. */
  identity: z.object({ email: z.string().optional(), managerEmail: z.string().optional() }).optional(),
  /** Accounts there cannot be deleted (Slack, Salesforce): after delete_account, disabled suffices. */
  permanentAccounts: z.boolean().optional(),
});
export type Discovery = z.infer<typeof discoverySchema>;

export const actionSchema = z.object({
  /** Unique within the offboarding and stable across replays: stage/system/kind[/target]. */
  id: z.string(),
  stage: z.string(),
  system: z.string(),
  kind: actionKindSchema,
  accountId: z.string(),
  target: entitlementSchema.optional(),
});
export type Action = z.infer<typeof actionSchema>;

const sameId = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();

function inScope(
  entitlement: Entitlement,
  system: string,
  scope: z.infer<typeof entitlementScopeSchema>,
  currentPlan: Plan,
): boolean {
  if (scope === 'all') return true;
  if (scope === 'privileged') return (currentPlan.privileged[system] ?? []).some((id) => sameId(id, entitlement.id));
  return !(currentPlan.keep[system] ?? []).some((id) => sameId(id, entitlement.id));
}

/** The concrete actions of one stage, given what discovery found in each system just before it. */
export function actionsForStage(stage: PlannedStage, discoveries: Discovery[], currentPlan: Plan): Action[] {
  const actions: Action[] = [];
  for (const discovery of discoveries) {
    const account = discovery.account;
    if (!account) continue;
    for (const step of stage.steps) {
      const base = { stage: stage.name, system: discovery.system, accountId: account.id };
      if (step.action === 'remove_entitlement') {
        for (const entitlement of discovery.entitlements) {
          if (!inScope(entitlement, discovery.system, step.scope, currentPlan)) continue;
          actions.push({
            ...base,
            id: `${stage.name}/${discovery.system}/remove_entitlement/${entitlement.id}`,
            kind: 'remove_entitlement',
            target: entitlement,
          });
        }
      } else {
        actions.push({ ...base, id: `${stage.name}/${discovery.system}/${step.action}`, kind: step.action });
      }
    }
  }
  return actions;
}

/** The retry policy and manual-task timings a plan carries from the policy it was made with. */
export function planTimings(policy: Policy): Pick<Plan, 'retry' | 'manualTasks'> {
  return {
    retry: {
      initialIntervalMs: policy.retry.initialInterval,
      maximumIntervalMs: policy.retry.maximumInterval,
      backoffCoefficient: policy.retry.backoffCoefficient,
      maximumAttempts: policy.retry.maximumAttempts,
    },
    manualTasks: { remindEveryMs: policy.manualTasks.remindEvery, dueWithinMs: policy.manualTasks.dueWithin },
  };
}

/** What a stage should have removed but discovery still finds afterwards. */
export function leftoversAfterStage(stage: PlannedStage, discoveries: Discovery[], currentPlan: Plan): Leftover[] {
  const leftovers: Leftover[] = [];
  for (const discovery of discoveries) {
    const { account, system } = discovery;
    if (!account || discovery.manual || discovery.unverifiable) continue;
    for (const step of stage.steps) {
      if (step.action === 'delete_account' && !(discovery.permanentAccounts && account.disabled))
        leftovers.push({ what: 'account', system });
      if (step.action === 'disable_login' && !account.disabled) leftovers.push({ what: 'login', system });
      if (step.action === 'revoke_sessions' && discovery.credentials.some((c) => c.kind === 'session'))
        leftovers.push({ what: 'sessions', system });
      if (step.action === 'revoke_tokens' && discovery.credentials.some((c) => c.kind !== 'session'))
        leftovers.push({ what: 'tokens', system });
      if (step.action === 'remove_entitlement') {
        for (const entitlement of discovery.entitlements) {
          if (inScope(entitlement, system, step.scope, currentPlan))
            leftovers.push({
              what: 'entitlement',
              system,
              entitlement: { kind: entitlement.kind, id: entitlement.id },
            });
        }
      }
    }
  }
  return leftovers;
}

/** How far a request goes (DESIGN.md): role change < voluntary < contract end < involuntary < security. */
function severity(request: OffboardingRequest): number {
  if (request.trigger === 'role_change') return 0;
  if (request.trigger === 'contract_end') return 2;
  return { voluntary: 1, involuntary: 3, security: 4 }[request.reason ?? 'voluntary'];
}

const describeRequest = (request: OffboardingRequest) =>
  request.trigger === 'termination'
    ? `${request.reason} termination`
    : request.trigger === 'role_change'
      ? `role change to ${request.newRole}`
      : 'contract end';

/**
 * Whether a second HR event for a person whose offboarding is running replaces its plan. It does
 * when it goes further (a security termination during a voluntary one's notice period, a
 * termination during a role change), when it moves the same kind of offboarding earlier, or when a
 * role change names another role. It never delays: a later effective time, or a milder event,
 * leaves the running plan as it is (a hold is how an offboarding is delayed).
 */
export function supersession(
  current: OffboardingRequest,
  next: OffboardingRequest,
): { supersedes: boolean; why: string } {
  const [was, now] = [severity(current), severity(next)];
  if (now > was)
    return { supersedes: true, why: `a ${describeRequest(next)} supersedes the running ${describeRequest(current)}` };
  if (now < was)
    return {
      supersedes: false,
      why: `a ${describeRequest(next)} goes no further than the running ${describeRequest(current)}`,
    };
  if (next.trigger === 'role_change' && next.newRole !== current.newRole) {
    return { supersedes: true, why: `a ${describeRequest(next)} replaces the running ${describeRequest(current)}` };
  }
  if (Date.parse(next.effectiveAt) < Date.parse(current.effectiveAt)) {
    return { supersedes: true, why: `the effective time moves earlier, to ${next.effectiveAt}` };
  }
  return {
    supersedes: false,
    why: `the running ${describeRequest(current)} already covers it (a later effective time does not delay an offboarding: hold it instead)`,
  };
}

/** The request a superseding event is planned from: its own, but never effective later than the running one. */
export function supersedingRequest(current: OffboardingRequest, next: OffboardingRequest): OffboardingRequest {
  const effectiveAt =
    Date.parse(next.effectiveAt) <= Date.parse(current.effectiveAt) ? next.effectiveAt : current.effectiveAt;
  return { ...next, effectiveAt, subject: { ...current.subject, ...next.subject } };
}
