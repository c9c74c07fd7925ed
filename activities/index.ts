/**
 * The activities the offboarding workflow calls, built from the worker's config (dependency
 * injection): connectors per system, the audit store and the policy.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { auditEventSchema, type AuditEvent } from '../model/audit.js';
import { checkRequestAgainstPolicy, plan, type Action, type Discovery, type Plan } from '../model/plan.js';
import type { Policy } from '../model/policy.js';
import type { OffboardingRequest, Subject } from '../model/request.js';
import type { AuditStore } from './audit.js';
import type { Notification } from './notify.js';
import { ConnectorError, type ApplyResult, type Connector } from './connectors/types.js';

export interface ActivityDeps {
  policy: Policy;
  connectors: Map<string, Connector>;
  audit: AuditStore;
  notify: (notification: Notification) => Promise<{ delivered: string[] }>;
  /** Counts what the audit records (Prometheus); optional. */
  observe?: (event: AuditEvent) => void;
}

/** Turns a connector's classified error into the failure Temporal retries, or does not. */
function toFailure(err: unknown): never {
  if (err instanceof ConnectorError) {
    throw ApplicationFailure.create({
      message: err.message,
      type: err.code,
      nonRetryable: !err.retryable,
      nextRetryDelay: err.retryAfterMs,
    });
  }
  throw err;
}

export function createActivities({ policy, connectors, audit, notify, observe }: ActivityDeps) {
  function connectorFor(system: string): Connector {
    const connector = connectors.get(system);
    if (!connector) {
      throw ApplicationFailure.nonRetryable(`system "${system}" is not configured on this worker (configured: ${[...connectors.keys()].join(', ') || 'none'})`, 'unknown_system');
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

    async discover({ system, subject }: { system: string; subject: Subject }): Promise<Discovery> {
      return connectorFor(system).discover(subject).catch(toFailure);
    },

    async applyAction({ action, subject }: { action: Action; subject: Subject }): Promise<ApplyResult & { attempt: number }> {
      const result = await connectorFor(action.system).apply(action, subject).catch(toFailure);
      return { ...result, attempt: Context.current().info.attempt };
    },

    async notify(notification: Notification): Promise<{ delivered: string[] }> {
      return notify(notification).catch(toFailure);
    },

    async recordAudit(event: AuditEvent): Promise<void> {
      const { inserted } = await audit.append(auditEventSchema.parse(event));
      // Counted once: a retried activity that finds its row already written is not counted again.
      if (inserted) observe?.(event);
    },

    /** The events of one workflow step, in order, in one transaction (one activity, not one per row). */
    async recordAudits(events: AuditEvent[]): Promise<void> {
      const results = await audit.appendAll(events.map((event) => auditEventSchema.parse(event)));
      results.forEach(({ inserted }, i) => {
        if (inserted) observe?.(events[i]!);
      });
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
