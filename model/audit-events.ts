/**
 * The audit-event contract: one zod schema per `action`, shared by what writes the audit (the
 * workflow, the HR webhook) and what reads it (the evidence report, the metrics, the tests). A
 * renamed or retyped field fails the typecheck in every writer and reader instead of emptying a
 * report column.
 *
 * The store (`model/audit.ts`, `activities/audit.ts`) keeps `details` as jsonb and hashes it as
 * written; this module only reads it. Rows from older workflow versions stay readable: fields a
 * version did not write yet are optional, and a row this contract does not know (a newer writer,
 * a changed shape) parses as `{ kind: 'unknown', row }`, which readers list, never drop.
 */
import { z } from 'zod';
import { auditEventSchema, type AuditEvent } from './audit.js';
import { storedLeftoverSchema } from './leftovers.js';
import { taskRefSchema } from './manual-tasks.js';
import { actionKindSchema } from './policy.js';

// ---- details shared by several actions -----------------------------------------------------

const iso = z.string();
const stageRef = z.looseObject({ name: z.string(), dueAt: iso.nullable().optional() });
const requestRef = {
  requestId: z.string(),
  trigger: z.string(),
  reason: z.string().nullable().optional(),
  effectiveAt: iso.nullable().optional(),
};
const planFields = {
  playbook: z.string(),
  mode: z.string(),
  slaDeadline: iso.nullable().optional(),
  stages: z.array(stageRef),
  systems: z.array(z.string()).optional(),
};
const taskRef = { taskId: z.string() };

/** What a connector answered, for the revocation actions: the connector's own fields pass through. */
export const actionOutcomeSchema = z.enum(['done', 'already', 'not_applicable', 'failed']);
export const successOutcomeSchema = actionOutcomeSchema.exclude(['failed']);
const actionDetails = z.looseObject({
  actionId: z.string(),
  stage: z.string(),
  target: z.string().nullable().optional(),
  attempts: z.number().optional(),
  /** Only on a failed attempt's row. */
  error: z.string().optional(),
});
/** The keys the workflow itself writes on an action row; the rest came from the connector. */
export const ACTION_ROW_KEYS: ReadonlySet<string> = new Set(Object.keys(actionDetails.shape));

const verifyOutcomeSchema = z.enum(['clean', 'leftovers']);

// ---- one schema per action -----------------------------------------------------------------

/** The stored envelope with this action's details (and, where the workflow fixes them, system and outcome). */
function event<A extends string, D extends z.ZodType>(action: A, details: D) {
  return auditEventSchema.extend({ action: z.literal(action), details });
}

export const auditEventSchemas = {
  offboarding_started: event(
    'offboarding_started',
    z.object({
      ...requestRef,
      employmentType: z.string().optional(),
      newRole: z.string().nullable().optional(),
    }),
  ),
  plan_made: event('plan_made', z.object(planFields)),
  /** The worker could not plan the request (patch plan-failure-task); manual task `taskId` waits for retry or skip. */
  plan_failed: event('plan_failed', z.object({ requestId: z.string(), error: z.string(), taskId: z.string() })),
  plan_replaced: event('plan_replaced', z.object({ ...requestRef, why: z.string(), ...planFields })),
  hr_event_joined: event('hr_event_joined', z.object({ ...requestRef, why: z.string() })),
  /** Old rows: system null, one for the whole stage. Per-system pipelines: one per system. */
  stage_started: event(
    'stage_started',
    z.object({ stage: z.string(), dueAt: iso.nullable().optional(), expedited: z.boolean().optional() }),
  ),
  access_discovered: event(
    'access_discovered',
    z.object({
      stage: z.string(),
      account: z.looseObject({ id: z.string(), disabled: z.boolean().optional() }).nullable(),
      entitlements: z.array(z.looseObject({ id: z.string(), kind: z.string() })),
      credentials: z.number(),
    }),
  ).extend({ system: z.string() }),
  identity_correlated: event(
    'identity_correlated',
    z.object({
      field: z.string(),
      from: z.array(z.string()),
      /** Identity sources that had not answered when the wait for them ended (bounded-identity-wait). */
      notYetAnswered: z.array(z.string()).optional(),
      /** Set when a source answered later with another email than the one already used. */
      disagreeing: z.record(z.string(), z.string()).optional(),
    }),
  ),
  manager_unknown: event('manager_unknown', z.object({ reason: z.string(), unsent: z.array(z.string()) })),
  notification_failed: event(
    'notification_failed',
    z.object({ event: z.string(), audience: z.string().optional(), error: z.string() }),
  ),
  preflight_failed: event('preflight_failed', z.object({ error: z.string(), dueAt: iso.nullable().optional() })),
  /**
   * No system that answered has an account for the person: at pre-flight (`stage: 'preflight'`)
   * or as a stage begins. `unreachable`: systems that could not be asked.
   */
  person_not_found: event(
    'person_not_found',
    z.object({
      stage: z.string(),
      systems: z.array(z.string()),
      unreachable: z.array(z.string()),
      dueAt: iso.nullable().optional(),
    }),
  ),
  hold_placed: event('hold_placed', z.object({ reason: z.string(), until: iso.nullable().optional() })),
  hold_released: event(
    'hold_released',
    z.object({ reason: z.string().nullable().optional(), holdsReleased: z.number().optional() }),
  ),
  hold_expired: event('hold_expired', z.object({ holdsExpired: z.number() })),
  expedited: event('expedited', z.object({ reason: z.string(), holdsLifted: z.number().optional() })),
  cancel_requested: event('cancel_requested', z.object({ reason: z.string() })),
  command_refused: event('command_refused', z.object({ command: z.string(), reason: z.string() })),
  manual_task_opened: event(
    'manual_task_opened',
    z.object({
      ...taskRef,
      /** What the task is about; absent on rows from before it was written (`taskRefFromId`). */
      task: taskRefSchema.optional(),
      description: z.string(),
      error: z.string(),
      dueAt: iso.nullable().optional(),
    }),
  ),
  manual_task_reminder: event(
    'manual_task_reminder',
    z.object({ ...taskRef, reminders: z.number(), dueAt: iso.nullable().optional() }),
  ),
  manual_task_overdue: event(
    'manual_task_overdue',
    z.object({ ...taskRef, reminders: z.number(), dueAt: iso.nullable().optional() }),
  ),
  manual_task_retried: event('manual_task_retried', z.object(taskRef)),
  manual_task_skipped: event('manual_task_skipped', z.object({ ...taskRef, reason: z.string() })),
  manual_task_resolved: event('manual_task_resolved', z.object({ ...taskRef, how: z.literal('retried') })),
  /** The revocation actions (`model/policy.ts` actionKindSchema): one schema for every kind. */
  action: auditEventSchema.extend({
    action: actionKindSchema,
    system: z.string(),
    outcome: actionOutcomeSchema,
    details: actionDetails,
  }),
  /** Leftovers are typed values; older rows carry sentences, which parse to the same values. */
  stage_rechecked: event('stage_rechecked', z.object({ stage: z.string(), leftovers: z.array(storedLeftoverSchema) })),
  /**
   * Old rows: system null, the whole stage, with the seconds for the metrics. Per-system
   * pipelines: one row per system, without them (the milestones below carry the times).
   */
  stage_verified: event(
    'stage_verified',
    z.object({
      stage: z.string(),
      leftovers: z.array(storedLeftoverSchema),
      disablesLogin: z.boolean().optional(),
      lastRevokingStage: z.boolean().optional(),
      secondsSinceEffective: z.number().optional(),
      secondsSinceReceived: z.number().optional(),
    }),
  ).extend({ outcome: verifyOutcomeSchema }),
  /** A system's step ran past the stall threshold (once per step). */
  system_stalled: event(
    'system_stalled',
    z.object({ stage: z.string(), step: z.string(), since: iso, seconds: z.number() }),
  ).extend({ system: z.string() }),
  /** Once, when every system has verified its last stage that takes access away. */
  revocation_verified: event(
    'revocation_verified',
    z.object({
      millisecondsSinceReceived: z.number(),
      millisecondsSinceEffective: z.number(),
      systems: z.array(z.string()),
      leftovers: z.number(),
    }),
  ),
  /** Once, when every system's disable_login is done, already or not applicable. */
  logins_disabled: event(
    'logins_disabled',
    z.object({
      millisecondsSinceReceived: z.number(),
      /** The SLA's clock; optional: the first per-system runs did not write it. */
      millisecondsSinceEffective: z.number().optional(),
      systems: z.array(z.string()),
    }),
  ),
  offboarding_completed: event(
    'offboarding_completed',
    z.object({ actions: z.record(z.string(), z.number()), slaDeadline: iso.nullable().optional() }),
  ),
  offboarding_cancelled: event(
    'offboarding_cancelled',
    z.object({ actions: z.record(z.string(), z.number()), slaDeadline: iso.nullable().optional() }),
  ),
  /** HR webhook (offboarding id `hr-webhook`): one refused delivery, or a summary of those beyond the per-sender limit. */
  hr_event_rejected: event(
    'hr_event_rejected',
    z.looseObject({
      reason: z.string(),
      source: z.string(),
      webhookId: z.string().nullable().optional(),
      status: z.number().optional(),
      suppressed: z.number().optional(),
      statuses: z.record(z.string(), z.number()).optional(),
      remoteAddress: z.string().optional(),
      windowStart: iso.optional(),
      windowEnd: iso.optional(),
    }),
  ),
  hr_events_pruned: event(
    'hr_events_pruned',
    z.object({ deleted: z.number(), receivedBefore: iso, retentionDays: z.number() }),
  ),
} as const;

export const typedAuditEventSchema = z.discriminatedUnion(
  'action',
  Object.values(auditEventSchemas) as unknown as [
    (typeof auditEventSchemas)[keyof typeof auditEventSchemas],
    ...(typeof auditEventSchemas)[keyof typeof auditEventSchemas][],
  ],
);

/** One stored audit event, typed by its action. */
export type TypedAuditEvent = z.infer<(typeof auditEventSchemas)[keyof typeof auditEventSchemas]>;
export type AuditAction = TypedAuditEvent['action'];
export type AuditEventOf<A extends AuditAction> = Extract<TypedAuditEvent, { action: A }>;
export type AuditDetailsOf<A extends AuditAction> = AuditEventOf<A>['details'];
export type ActionKindEvent = z.infer<(typeof auditEventSchemas)['action']>;

// ---- writing -------------------------------------------------------------------------------

type Envelope = 'id' | 'occurredAt' | 'offboardingId' | 'employeeId';
/** Keys that accept null may be left out (the recorder writes null). */
type NullableOptional<T> = { [K in keyof T as null extends T[K] ? K : never]?: T[K] } & {
  [K in keyof T as null extends T[K] ? never : K]: T[K];
};
type EntryOf<E> = E extends unknown ? NullableOptional<Omit<E, Envelope>> : never;

/**
 * What a writer hands the recorder: one event without the envelope the recorder fills in (id,
 * time, offboarding, employee); system and outcome may be left out where they may be null.
 * `audit({ action: 'stage_verified', ... })` checks the details against the contract.
 */
export type AuditEntry = EntryOf<z.input<(typeof auditEventSchemas)[keyof typeof auditEventSchemas]>>;
export type AuditEntryOf<A extends AuditAction> = Extract<AuditEntry, { action: A }>;

// ---- reading -------------------------------------------------------------------------------

/** A row this contract does not know (an unknown action, or details of another shape): shown, never dropped. */
export interface UnknownAuditRow<R extends AuditEvent = AuditEvent> {
  kind: 'unknown';
  row: R;
  /** Why it did not parse, for the report. */
  reason: string;
}
/** A parsed row: the typed event, with what the store added to it (seq, hash) kept. */
export type KnownAuditRow<R extends AuditEvent = AuditEvent> = TypedAuditEvent &
  Omit<R, keyof AuditEvent> & { kind: 'known' };
export type ParsedAuditRow<R extends AuditEvent = AuditEvent> = KnownAuditRow<R> | UnknownAuditRow<R>;

const KNOWN_ACTIONS: ReadonlySet<string> = new Set([
  ...Object.keys(auditEventSchemas).filter((key) => key !== 'action'),
  ...actionKindSchema.options,
]);

export function isKnownAction(action: string): action is AuditAction {
  return KNOWN_ACTIONS.has(action);
}

export function parseAuditRow<R extends AuditEvent>(row: R): ParsedAuditRow<R> {
  if (!isKnownAction(row.action)) return { kind: 'unknown', row, reason: `no schema for action "${row.action}"` };
  const parsed = typedAuditEventSchema.safeParse(row);
  if (!parsed.success) {
    const issues = parsed.error.issues
      .map((issue) => `${issue.path.join('.') || '(row)'}: ${issue.message}`)
      .join('; ');
    return { kind: 'unknown', row, reason: `${row.action} does not match its schema (${issues})` };
  }
  return { ...row, ...parsed.data, kind: 'known' } as KnownAuditRow<R>;
}

export function parseAuditRows<R extends AuditEvent>(rows: readonly R[]): ParsedAuditRow<R>[] {
  return rows.map(parseAuditRow);
}

/** Narrows a parsed row to one action. */
export function isEvent<A extends AuditAction, E extends { kind: string; action?: unknown }>(
  event: E,
  action: A,
): event is Extract<E, { kind: 'known'; action: A }> {
  return event.kind === 'known' && event.action === action;
}

/** Narrows a parsed row to one of the revocation actions (disable_login, remove_entitlement, ...). */
export function isActionKindEvent<E extends { kind: string; action?: unknown }>(
  event: E,
): event is Extract<E, { kind: 'known'; action: ActionKindEvent['action'] }> {
  return event.kind === 'known' && actionKindSchema.safeParse(event.action).success;
}

/** The rows of the given actions, typed. */
export function eventsOf<R extends AuditEvent, A extends AuditAction>(
  events: readonly ParsedAuditRow<R>[],
  ...actions: A[]
): Extract<KnownAuditRow<R>, { action: A }>[] {
  const wanted = new Set<string>(actions);
  return events.filter(
    (e): e is Extract<KnownAuditRow<R>, { action: A }> => e.kind === 'known' && wanted.has(e.action),
  );
}

export function firstOf<R extends AuditEvent, A extends AuditAction>(
  events: readonly ParsedAuditRow<R>[],
  action: A,
): Extract<KnownAuditRow<R>, { action: A }> | undefined {
  return eventsOf(events, action)[0];
}

export function lastOf<R extends AuditEvent, A extends AuditAction>(
  events: readonly ParsedAuditRow<R>[],
  ...actions: A[]
): Extract<KnownAuditRow<R>, { action: A }> | undefined {
  return eventsOf(events, ...actions).at(-1);
}
