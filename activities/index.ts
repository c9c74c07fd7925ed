/**
 * The activities the offboarding workflow calls, built from the worker's config (dependency
 * injection): connectors per system, the audit store and the policy.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { auditEventSchema, type AuditEvent } from '../model/audit.js';
import { checkRequestAgainstPolicy, plan, type Action, type Discovery, type Plan } from '../model/plan.js';
import type { Policy } from '../model/policy.js';
import type { OffboardingRequest, Subject } from '../model/request.js';
import type { AuditReceipt, AuditStore } from './audit.js';
import type { Notification } from './notify.js';
import { boundedCall, DEFAULT_CALL_BOUNDS, SystemPauses, toFailure, type CallBounds } from './call-bounds.js';
import type { ApplyContext, ApplyResult, Connector } from './connectors/types.js';

export interface ActivityDeps {
  policy: Policy;
  connectors: Map<string, Connector>;
  audit: AuditStore;
  notify: (notification: Notification) => Promise<{ delivered: string[] }>;
  /** Counts what the audit records (Prometheus); optional. */
  observe?: (event: AuditEvent) => void;
  /**
   * Signs a checkpoint of the chain's head now (the checkpointer's flush). Called when an
   * offboarding's last row is written, so its evidence is anchored as soon as it ends rather than
   * at the next periodic checkpoint; optional.
   */
  anchorNow?: () => Promise<unknown>;
  /** How long one connector call (discover, apply) may take before it fails retryably; default 60 s. */
  callTimeoutMs?: number;
  /** How often a connector call heartbeats while it runs or waits for a rate limit; default 5 s. */
  heartbeatEveryMs?: number;
  /** How long after it began a connector call may wait out rate limits in one attempt; default 8 min. */
  maxRateLimitWaitMs?: number;
}

/** The rows that end an offboarding: its evidence is complete, so it is anchored at once. */
const ENDING_ACTIONS = new Set(['offboarding_completed', 'offboarding_cancelled']);

export function createActivities({ policy, connectors, audit, notify, observe, anchorNow, ...bounds }: ActivityDeps) {
  const callBounds: CallBounds = {
    callTimeoutMs: bounds.callTimeoutMs ?? DEFAULT_CALL_BOUNDS.callTimeoutMs,
    heartbeatEveryMs: bounds.heartbeatEveryMs ?? DEFAULT_CALL_BOUNDS.heartbeatEveryMs,
    maxRateLimitWaitMs: bounds.maxRateLimitWaitMs ?? DEFAULT_CALL_BOUNDS.maxRateLimitWaitMs,
  };
  // Rate-limit pauses per system, shared by every activity of this worker.
  const pauses = new SystemPauses();

  function connectorFor(system: string): Connector {
    const connector = connectors.get(system);
    if (!connector) {
      throw ApplicationFailure.nonRetryable(
        `system "${system}" is not configured on this worker (configured: ${[...connectors.keys()].join(', ') || 'none'})`,
        'unknown_system',
      );
    }
    return connector;
  }

  return {
    async makePlan(request: OffboardingRequest): Promise<Plan> {
      try {
        checkRequestAgainstPolicy(request, policy);
      } catch (err) {
        throw ApplicationFailure.nonRetryable((err as Error).message, 'invalid_request');
      }
      return plan(request, policy);
    },

    async configuredSystems(): Promise<string[]> {
      return [...connectors.keys()];
    },

    /** The systems whose answer correlates the others (directories): the email, the manager. */
    async identitySources(): Promise<string[]> {
      return [...connectors.values()].filter((c) => c.providesIdentity).map((c) => c.system);
    },

    async discover({ system, subject }: { system: string; subject: Subject }): Promise<Discovery> {
      const connector = connectorFor(system);
      return boundedCall({ system, call: 'discover' }, callBounds, pauses, () => connector.discover(subject));
    },

    async applyAction({
      action,
      subject,
    }: {
      action: Action;
      subject: Subject;
    }): Promise<ApplyResult & { attempt: number }> {
      const connector = connectorFor(action.system);
      const { info } = Context.current();
      const context: ApplyContext = {
        offboardingId: info.workflowExecution?.workflowId ?? info.activityId,
        runId: info.workflowExecution?.runId ?? info.activityId,
        attempt: info.attempt,
        firstScheduledAtMs: info.scheduledTimestampMs,
      };
      const result = await boundedCall(
        { system: action.system, call: `apply ${action.kind}` },
        callBounds,
        pauses,
        () => connector.apply(action, subject, context),
      );
      return { ...result, attempt: info.attempt };
    },

    async notify(notification: Notification): Promise<{ delivered: string[] }> {
      return notify(notification).catch((err: unknown) => {
        throw toFailure(err);
      });
    },

    async recordAudit(event: AuditEvent): Promise<void> {
      const { inserted } = await audit.append(auditEventSchema.parse(event));
      // Counted once: a retried activity that finds its row already written is not counted again.
      if (inserted) observe?.(event);
    },

    /**
     * The events of one workflow step, in order, in one transaction (one activity, not one per row).
     * Returns each row's seq and hash: the result is kept in the workflow's history, a record of
     * what it wrote that lies outside the audit database (`offboard audit verify --against temporal`).
     */
    async recordAudits(events: AuditEvent[]): Promise<AuditReceipt[]> {
      const results = await audit.appendAll(events.map((event) => auditEventSchema.parse(event)));
      results.forEach(({ inserted }, i) => {
        if (inserted) observe?.(events[i]!);
      });
      if (anchorNow && events.some((event) => ENDING_ACTIONS.has(event.action))) await anchorNow();
      return results.map(({ id, seq, hash }) => ({ id, seq, hash }));
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
