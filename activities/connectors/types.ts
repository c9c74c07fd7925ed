import type { Action, Discovery } from '../../model/plan.js';
import type { Subject } from '../../model/request.js';

export type Outcome = 'done' | 'already' | 'not_applicable';

export interface ApplyResult {
  outcome: Outcome;
  /** Facts for the audit trail (DNs, ids, counts): never a secret. */
  details: Record<string, unknown>;
}

/**
 * Where an action runs, for connectors whose requests must be the same on every attempt (a
 * Security Event Token's `jti`): the offboarding's workflow and run, and the activity's attempt.
 */
export interface ApplyContext {
  offboardingId: string;
  runId: string;
  attempt: number;
  /** When the action's activity was first scheduled (ms): the same on every attempt. */
  firstScheduledAtMs: number;
}

/**
 * One target system. Every method is idempotent: activities run at least once, and an action
 * whose effect is already in place answers `already`.
 */
export interface Connector {
  readonly system: string;
  /** A directory: what it knows of the person (email, manager) correlates the other systems. */
  readonly providesIdentity?: boolean;
  discover(subject: Subject): Promise<Discovery>;
  apply(action: Action, subject: Subject, context?: ApplyContext): Promise<ApplyResult>;
  /** Reaches the system with the configured credentials and changes nothing (start-up report). */
  check?(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A failure a connector has classified. Retryable ones (network, busy, 5xx) are retried by
 * Temporal; one with `retryAfterMs` (429) pauses the system and is repeated within the attempt
 * (activities/call-bounds.ts); the others (credentials, permissions, configuration, an
 * ambiguous identity) go straight to an operator with `message` saying what to fix.
 */
export class ConnectorError extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
    readonly code: string,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ConnectorError';
  }
}
