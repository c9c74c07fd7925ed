/**
 * The evidence report: what an auditor reads to see that one person's access was removed, in
 * time, by whose decision. It is built from the hash-chained audit log alone, never from
 * Temporal: the log is the protected, attributable record (NIST AU-9/AU-10) and it outlives the
 * workflow's history retention. Every claim in the report names the audit row it rests on. Rows
 * are read through the audit-event contract (`model/audit-events.ts`); one it cannot read is listed
 * under "Unrecognised events", never left out.
 *
 * `buildEvidence(rows, chain)` folds one offboarding run's rows into an `Evidence` value
 * (`evidenceSchema`, so the API can publish it); `evidenceToJson`, `evidenceToCsv` and
 * `evidenceToHtml` render it.
 *
 * SLA rules
 * - The deadline is the plan's `slaDeadline` (plan_made): the effective time plus the playbook's SLA.
 * - The class is the tightest of `slaClasses` (default immediate ≤ 1 h, 4h, 24h) whose bound is at
 *   least deadline − effective time; a playbook looser than every class has none.
 * - Met when every `disable_login` action (recheck ones included) ended done, already or
 *   not_applicable before the deadline, and every "login still enabled" the verification sweep
 *   escalated was resolved before it too. An operator's skip (always with a reason) before the
 *   deadline counts as met *by operator*, and the verdict says so. Anything finished after the
 *   deadline, or unfinished once it passed, is missed; unfinished before it is pending.
 * - Not applicable: no plan, the offboarding was cancelled before every login was disabled, no
 *   account was found, or the playbook disables no login (a role change keeps the account).
 *
 * CSV layout: one RFC 4180 table, one row per action, no summary rows. Auditors sort and filter
 * samples in spreadsheets, where a summary row would be sorted in among the actions; so each row
 * carries the offboarding's context (ids, effective time, SLA class, deadline and verdict, final
 * state, chain verified) next to the action, and the audit row (seq, hash) it rests on. Holds,
 * manual tasks and the rest are in the JSON and HTML renderings. CRLF line ends, UTF-8 without a
 * BOM; a cell starting with =, +, -, @, tab or CR gets a leading apostrophe (formula injection).
 * Actions are listed by stage in plan order, then system, login first (the same in every rendering).
 */
import { z } from 'zod';
import type { VerifyResult } from '../activities/audit.js';
import type { ChainedAuditEvent } from '../model/audit.js';
import {
  ACTION_ROW_KEYS,
  eventsOf,
  firstOf,
  isActionKindEvent,
  isEvent,
  lastOf,
  parseAuditRows,
  successOutcomeSchema,
  type ActionKindEvent,
  type AuditAction,
  type KnownAuditRow,
  type ParsedAuditRow,
} from '../model/audit-events.js';
import { describeLeftover, leftoverSchema } from '../model/leftovers.js';
import { taskRefFromId, taskRefSchema, undoesCancel, type TaskRef } from '../model/manual-tasks.js';
import { actionKindSchema } from '../model/policy.js';

// ---- the SLA classes ------------------------------------------------------------------------

export const slaClassSchema = z.object({
  name: z.string().min(1),
  /** The longest time from the effective time to login disabled that the class allows. */
  withinMs: z.number().int().positive(),
  /** The rule the class stands for, printed next to the verdict. */
  basis: z.string().optional(),
});
export type SlaClass = z.infer<typeof slaClassSchema>;

const HOUR = 3_600_000;
export const DEFAULT_SLA_CLASSES: readonly SlaClass[] = [
  { name: 'immediate', withinMs: HOUR, basis: 'PCI DSS 8.2.5: access of terminated users revoked immediately' },
  { name: '4h', withinMs: 4 * HOUR, basis: 'NIST SP 800-53 PS-4 with the FedRAMP parameter: disabled within 4 hours' },
  { name: '24h', withinMs: 24 * HOUR, basis: "SOX ITGC: the company's own termination policy, commonly 24 hours" },
];

export interface EvidenceOptions {
  slaClasses?: readonly SlaClass[];
  /** Which run of the offboarding (a person can be offboarded again later); default the latest. */
  runId?: string;
  /** "Now" for pending-versus-missed and the report's date; default the current time. */
  now?: Date;
  /**
   * The outside record the report is checked against (`client/evidence-anchor.ts`): the
   * checkpoint check, and the proof that ties this report's rows to the checkpoint covering them.
   * Without it the report is not verified, and says so in its headline.
   */
  anchor?: EvidenceAnchorInput;
}

export interface EvidenceAnchorInput {
  /** Failures the checkpoint check found (named), and whether a key was there to check with. */
  failures: { kind: string; message: string }[];
  /** The checkpoint covering this report's last row, with the proof; null when none does yet. */
  proof: z.infer<typeof anchorProofSchema> | null;
  /** Why there is no proof, when there is none. */
  noProofReason?: string;
}

// ---- the Evidence shape ---------------------------------------------------------------------

const time = z.iso.datetime({ offset: true });
const actionOutcomeSchema = z.enum(['done', 'already', 'not_applicable', 'failed', 'skipped']);
const operatorDecisionSchema = z.object({ by: z.string(), at: time, reason: z.string().nullable() });

const evidenceActionSchema = z.object({
  id: z.string(),
  stage: z.string(),
  system: z.string(),
  kind: actionKindSchema,
  target: z.string().nullable(),
  /** When its stage started (the recheck, or the cancel, for the actions those added). */
  requestedAt: time.nullable(),
  /** When the system confirmed the outcome; null when it never did. */
  completedAt: time.nullable(),
  /** failed: no success recorded (see the manual task); skipped: an operator closed it with a reason. */
  outcome: actionOutcomeSchema,
  attempts: z.number(),
  actor: z.string(),
  failures: z.number(),
  lastError: z.string().nullable(),
  skipped: operatorDecisionSchema.nullable(),
  /** disable_login only: finished before the SLA deadline. */
  withinSla: z.boolean().nullable(),
  /** What the system reported, as recorded (e.g. the lock attribute written). */
  systemDetails: z.record(z.string(), z.unknown()),
  /** The audit row that records the outcome. */
  auditSeq: z.number(),
  auditHash: z.string(),
});

const slaStepSchema = z.object({
  system: z.string().nullable(),
  source: z.enum(['disable_login', 'verification']),
  /** The action id or manual task id. */
  reference: z.string(),
  outcome: actionOutcomeSchema,
  at: time.nullable(),
  by: z.string().nullable(),
  reason: z.string().nullable(),
  withinDeadline: z.boolean().nullable(),
});

/** A stored row as the proof carries it: enough to recompute its hash. */
export const proofRowSchema = z.object({
  seq: z.number(),
  id: z.string(),
  occurredAt: time,
  recordedAt: time,
  offboardingId: z.string(),
  employeeId: z.string(),
  system: z.string().nullable(),
  action: z.string(),
  outcome: z.string().nullable(),
  actor: z.string(),
  details: z.record(z.string(), z.unknown()),
  prevHash: z.string(),
  hash: z.string(),
  hashVersion: z.number(),
});

/**
 * What an auditor needs to check one report offline with the public key: the signed checkpoint
 * covering its rows, the rows themselves, and the content digest of every other row between its
 * first row and the checkpoint (other people's rows, as digests only).
 */
export const anchorProofSchema = z.object({
  checkpoint: z.object({
    format: z.string(),
    seq: z.number(),
    headHash: z.string(),
    at: time,
    keyId: z.string(),
    signature: z.string(),
  }),
  rows: z.array(proofRowSchema),
  links: z.array(z.object({ seq: z.number(), digest: z.string() })),
});

/** The report's headline, before the SLA: whether its record can be relied on at all. */
export const integrityVerdictSchema = z.enum(['verified', 'broken', 'unverifiable']);

export const slaVerdictSchema = z.enum(['met', 'met_by_operator', 'missed', 'pending', 'not_applicable']);

export const evidenceSchema = z.object({
  reportVersion: z.literal(1),
  generatedAt: time,
  offboardingId: z.string(),
  runId: z.string(),
  employeeId: z.string(),
  request: z.object({
    requestId: z.string().nullable(),
    trigger: z.string().nullable(),
    reason: z.string().nullable(),
    employmentType: z.string().nullable(),
    newRole: z.string().nullable(),
    requestedBy: z.string().nullable(),
    effectiveAt: time.nullable(),
    /** When offboard recorded the request (the offboarding_started row). */
    receivedAt: time.nullable(),
    /** When access was first mapped (the first access_discovered row). */
    discoveredAt: time.nullable(),
  }),
  plan: z.object({
    playbook: z.string().nullable(),
    mode: z.string().nullable(),
    systems: z.array(z.string()),
    stages: z.array(
      z.object({
        name: z.string(),
        dueAt: time.nullable(),
        startedAt: time.nullable(),
        startedBy: z.string().nullable(),
        expedited: z.boolean(),
      }),
    ),
  }),
  sla: z.object({
    class: z.string().nullable(),
    classBasis: z.string().nullable(),
    /** Deadline − effective time, as the playbook set it. */
    windowMs: z.number().nullable(),
    deadline: time.nullable(),
    verdict: slaVerdictSchema,
    explanation: z.string(),
    /** When the last login was disabled (or confirmed by an operator); null until all were. */
    loginDisabledAt: time.nullable(),
    elapsedMs: z.object({
      fromEffective: z.number().nullable(),
      fromReceived: z.number().nullable(),
      fromDiscovered: z.number().nullable(),
    }),
    steps: z.array(slaStepSchema),
    notes: z.array(z.string()),
  }),
  accounts: z.array(
    z.object({
      system: z.string(),
      /** null: no account for this person was found there. */
      accountId: z.string().nullable(),
      disabledWhenFound: z.boolean().nullable(),
      firstFoundAt: time,
      firstFoundInStage: z.string().nullable(),
      entitlements: z.array(z.object({ id: z.string(), kind: z.string() })),
      credentials: z.number(),
      discoveries: z.number(),
    }),
  ),
  identityCorrelations: z.array(z.object({ at: time, field: z.string(), from: z.array(z.string()) })),
  actions: z.array(evidenceActionSchema),
  holds: z.array(
    z.object({
      placedBy: z.string(),
      placedAt: time,
      reason: z.string(),
      until: time.nullable(),
      ended: z
        .object({
          how: z.enum(['released', 'expired', 'lifted_by_expedite']),
          by: z.string(),
          at: time,
          reason: z.string().nullable(),
        })
        .nullable(),
      auditSeq: z.number(),
    }),
  ),
  expedite: z.object({ by: z.string(), at: time, reason: z.string(), holdsLifted: z.number() }).nullable(),
  /** HR events for this person after the one that started it: each replaced the plan or joined it. */
  laterRequests: z.array(
    z.object({
      requestId: z.string(),
      trigger: z.string(),
      reason: z.string().nullable(),
      effectiveAt: time.nullable(),
      at: time,
      by: z.string(),
      outcome: z.enum(['superseded', 'joined']),
      why: z.string(),
      auditSeq: z.number(),
    }),
  ),
  cancellation: z
    .object({
      by: z.string(),
      at: time,
      reason: z.string(),
      loginsReenabled: z.array(z.object({ system: z.string(), outcome: actionOutcomeSchema, at: time.nullable() })),
      /** Removed before the cancel and not granted back: their owners decide. */
      removedNotRestored: z.array(z.object({ system: z.string(), target: z.string().nullable() })),
    })
    .nullable(),
  manualTasks: z.array(
    z.object({
      id: z.string(),
      /** What the task is about (read from the id and error for rows from before it was written). */
      ref: taskRefSchema,
      system: z.string().nullable(),
      description: z.string(),
      lastError: z.string(),
      openedAt: time,
      timesOpened: z.number(),
      dueAt: time.nullable(),
      reminders: z.number(),
      overdueSince: time.nullable(),
      retries: z.array(z.object({ by: z.string(), at: time })),
      state: z.enum(['open', 'retrying', 'resolved', 'skipped', 'closed_by_cancel']),
      resolution: z
        .object({
          how: z.enum(['retried', 'skipped', 'cancelled']),
          by: z.string(),
          at: time,
          reason: z.string().nullable(),
        })
        .nullable(),
    }),
  ),
  verification: z.array(
    z.object({
      stage: z.string(),
      verifiedAt: time,
      outcome: z.string(),
      leftovers: z.array(leftoverSchema),
      recheck: z.object({ at: time, leftovers: z.array(leftoverSchema) }).nullable(),
      /** Each system's own verification of the stage (per-system pipelines); one row with system null for older runs. */
      systems: z.array(
        z.object({
          system: z.string().nullable(),
          verifiedAt: time,
          outcome: z.string(),
          leftovers: z.array(leftoverSchema),
          auditSeq: z.number(),
        }),
      ),
    }),
  ),
  /** When the last system still in the offboarding disabled login, and when every one verified its last revoking stage. */
  milestones: z.object({
    loginsDisabled: z
      .object({
        at: time,
        msSinceReceived: z.number(),
        msSinceEffective: z.number().nullable(),
        systems: z.array(z.string()),
        auditSeq: z.number(),
      })
      .nullable(),
    revocationVerified: z
      .object({
        at: time,
        msSinceReceived: z.number(),
        msSinceEffective: z.number(),
        systems: z.array(z.string()),
        leftovers: z.number(),
        auditSeq: z.number(),
      })
      .nullable(),
  }),
  /** A system's step that ran past the stall threshold: told to IT while the other systems went on. */
  stalls: z.array(
    z.object({ at: time, system: z.string(), stage: z.string(), step: z.string(), since: time, seconds: z.number() }),
  ),
  refusedCommands: z.array(z.object({ at: time, by: z.string(), command: z.string(), reason: z.string() })),
  notificationFailures: z.array(z.object({ at: time, event: z.string(), error: z.string() })),
  final: z.object({
    state: z.enum(['completed', 'cancelled', 'in_progress']),
    at: time.nullable(),
    by: z.string().nullable(),
    actionCounts: z.record(z.string(), z.number()),
    lastEventAt: time,
  }),
  auditTrail: z.object({
    rows: z.number(),
    firstSeq: z.number(),
    lastSeq: z.number(),
    firstHash: z.string(),
    lastHash: z.string(),
    /** Earlier or later runs for the same person, reported separately. */
    otherRuns: z.array(z.string()),
    /** Rows of a kind this report does not know: listed so that nothing is left out silently. */
    unrecognised: z.array(z.object({ seq: z.number(), action: z.string(), reason: z.string() })),
    chain: z.object({
      ok: z.boolean(),
      rowsVerified: z.number(),
      firstBroken: z.object({ seq: z.number(), id: z.string(), problem: z.string() }).nullable(),
      /** The verification reached every row of this report and found it intact. */
      coversThisReport: z.boolean(),
      statement: z.string(),
    }),
    /** Verified: the chain is intact, no checkpoint check failed, and a signed checkpoint covers this report. */
    integrity: z.object({ verdict: integrityVerdictSchema, statement: z.string(), problems: z.array(z.string()) }),
    anchor: anchorProofSchema.nullable(),
  }),
});
export type Evidence = z.infer<typeof evidenceSchema>;
export type EvidenceAction = Evidence['actions'][number];
type Row = ChainedAuditEvent;

// ---- reading rows ---------------------------------------------------------------------------

/** Each row as the audit-event contract reads it: typed by its action, or unknown (kept, listed). */
type Parsed = ParsedAuditRow<Row>;
type Of<A extends AuditAction> = Extract<KnownAuditRow<Row>, { action: A }>;
type ActionRow = Extract<KnownAuditRow<Row>, { action: ActionKindEvent['action'] }>;

const ms = (iso: string | null) => (iso === null ? null : Date.parse(iso));
/** A field the contract makes optional (older rows lack it) reads as null in the report. */
const orNull = <T>(value: T | null | undefined): T | null => value ?? null;

/** Audit ids are `<workflowId>/<runId>/<n>`: the run is the middle part. */
function runOf(row: Row): string {
  const prefix = `${row.offboardingId}/`;
  return row.id.startsWith(prefix) ? (row.id.slice(prefix.length).split('/')[0] ?? '') : '';
}
const rowOf = (event: Parsed): Row => (event.kind === 'unknown' ? event.row : event);

// ---- building -------------------------------------------------------------------------------

export function buildEvidence(
  rowsIn: ChainedAuditEvent[],
  chain: VerifyResult,
  options: EvidenceOptions = {},
): Evidence {
  if (rowsIn.length === 0)
    throw new Error(
      'no audit rows for this offboarding: check its id (offboarding-<employeeId>) and the database the report reads',
    );
  const sorted = [...rowsIn].sort((a, b) => a.seq - b.seq);
  const offboardingId = sorted[0]!.offboardingId;
  if (sorted.some((row) => row.offboardingId !== offboardingId))
    throw new Error("rows of several offboardings were passed: pass one offboarding's rows (eventsFor(offboardingId))");
  const runs = [...new Set(sorted.map(runOf))];
  const all = parseAuditRows(sorted);
  const latestRun = runOf(lastOf(all, 'offboarding_started') ?? sorted.at(-1)!);
  const runId = options.runId ?? latestRun;
  if (!runs.includes(runId))
    throw new Error(`${offboardingId} has no run ${runId} in the audit log (runs: ${runs.join(', ')})`);
  const events = all.filter((event) => runOf(rowOf(event)) === runId);
  const rows = events.map(rowOf);
  const now = options.now ?? new Date();

  const request = requestFrom(events);
  const plan = planFrom(events);
  const cancelRow = firstOf(events, 'cancel_requested');
  const cancel = cancelRow ? { by: cancelRow.actor, at: cancelRow.occurredAt, reason: cancelRow.details.reason } : null;
  const actions = inReadingOrder(
    actionsFrom(events),
    plan.stages.map((stage) => stage.name),
  );
  const manualTasks = manualTasksFrom(events, actions, cancel);
  const accounts = accountsFrom(events);
  const finalState = finalFrom(events, rows);
  const loginsDisabledRow = firstOf(events, 'logins_disabled');
  const sla = slaFrom({
    loginsDisabled: loginsDisabledRow
      ? { at: loginsDisabledRow.occurredAt, msSinceEffective: loginsDisabledRow.details.millisecondsSinceEffective }
      : undefined,
    request,
    plan,
    actions,
    manualTasks,
    accounts,
    cancel,
    started: firstOf(events, 'stage_started') !== undefined,
    now,
    classes: options.slaClasses ?? DEFAULT_SLA_CLASSES,
  });
  for (const action of actions) {
    action.withinSla =
      sla.steps.find((step) => step.source === 'disable_login' && step.reference === action.id)?.withinDeadline ?? null;
  }
  const expediteRow = firstOf(events, 'expedited');
  const loginsDisabled = firstOf(events, 'logins_disabled');
  const revocationVerified = firstOf(events, 'revocation_verified');

  return evidenceSchema.parse({
    reportVersion: 1,
    generatedAt: now.toISOString(),
    offboardingId,
    runId,
    employeeId: rows[0]!.employeeId,
    request,
    plan,
    sla,
    accounts,
    identityCorrelations: eventsOf(events, 'identity_correlated').map((row) => ({
      at: row.occurredAt,
      field: row.details.field,
      from: row.details.from,
    })),
    actions,
    holds: holdsFrom(events),
    laterRequests: eventsOf(events, 'plan_replaced', 'hr_event_joined').map((row) => ({
      requestId: row.details.requestId,
      trigger: row.details.trigger,
      reason: orNull(row.details.reason),
      effectiveAt: orNull(row.details.effectiveAt),
      at: row.occurredAt,
      by: row.actor,
      outcome: isEvent(row, 'plan_replaced') ? ('superseded' as const) : ('joined' as const),
      why: row.details.why,
      auditSeq: row.seq,
    })),
    expedite: expediteRow
      ? {
          by: expediteRow.actor,
          at: expediteRow.occurredAt,
          reason: expediteRow.details.reason,
          holdsLifted: expediteRow.details.holdsLifted ?? 0,
        }
      : null,
    cancellation: cancel
      ? {
          ...cancel,
          loginsReenabled: actions
            .filter((a) => a.kind === 'enable_login')
            .map((a) => ({ system: a.system, outcome: a.outcome, at: a.completedAt })),
          removedNotRestored: actions
            .filter((a) => a.kind === 'remove_entitlement' && a.outcome === 'done')
            .map((a) => ({ system: a.system, target: a.target })),
        }
      : null,
    manualTasks,
    verification: verificationFrom(events),
    milestones: {
      loginsDisabled: loginsDisabled
        ? {
            at: loginsDisabled.occurredAt,
            msSinceReceived: loginsDisabled.details.millisecondsSinceReceived,
            msSinceEffective: orNull(loginsDisabled.details.millisecondsSinceEffective),
            systems: loginsDisabled.details.systems,
            auditSeq: loginsDisabled.seq,
          }
        : null,
      revocationVerified: revocationVerified
        ? {
            at: revocationVerified.occurredAt,
            msSinceReceived: revocationVerified.details.millisecondsSinceReceived,
            msSinceEffective: revocationVerified.details.millisecondsSinceEffective,
            systems: revocationVerified.details.systems,
            leftovers: revocationVerified.details.leftovers,
            auditSeq: revocationVerified.seq,
          }
        : null,
    },
    stalls: eventsOf(events, 'system_stalled').map((row) => ({
      at: row.occurredAt,
      system: row.system,
      stage: row.details.stage,
      step: row.details.step,
      since: row.details.since,
      seconds: row.details.seconds,
    })),
    refusedCommands: eventsOf(events, 'command_refused').map((row) => ({
      at: row.occurredAt,
      by: row.actor,
      command: row.details.command,
      reason: row.details.reason,
    })),
    notificationFailures: eventsOf(events, 'notification_failed').map((row) => ({
      at: row.occurredAt,
      event: row.details.event,
      error: row.details.error,
    })),
    final: finalState,
    auditTrail: auditTrailFrom(
      events,
      rows,
      runs.filter((run) => run !== runId),
      chain,
      options.anchor,
    ),
  } satisfies Evidence);
}

function requestFrom(events: Parsed[]): Evidence['request'] {
  const started = firstOf(events, 'offboarding_started');
  const details = started?.details;
  return {
    requestId: orNull(details?.requestId),
    trigger: orNull(details?.trigger),
    reason: orNull(details?.reason),
    employmentType: orNull(details?.employmentType),
    newRole: orNull(details?.newRole),
    requestedBy: started?.actor ?? null,
    effectiveAt: orNull(details?.effectiveAt),
    receivedAt: started?.occurredAt ?? null,
    discoveredAt: firstOf(events, 'access_discovered')?.occurredAt ?? null,
  };
}

type PlanEvidence = Evidence['plan'] & { slaDeadline: string | null };

/** The plan in force at the end: the first one, or the last that replaced it (a later HR event); stages of every one. */
function planFrom(events: Parsed[]): PlanEvidence {
  const plans = eventsOf(events, 'plan_made', 'plan_replaced');
  const planned = plans.at(-1);
  // Old rows: one per stage; per-system pipelines: one per system, the first dates the stage.
  const stageRows = eventsOf(events, 'stage_started');
  // Later plans first, so that a stage name is dated by the plan that ran it.
  const plannedStages = [...plans].reverse().flatMap((row) => row.details.stages);
  // The stages that ran, in order, then those the plan in force has yet to run (a replaced plan's
  // unstarted stages never run, so they are not listed).
  const inForce = planned?.details.stages ?? [];
  const names = [...new Set([...stageRows.map((row) => row.details.stage), ...inForce.map((s) => s.name)])];
  return {
    playbook: orNull(planned?.details.playbook),
    mode: orNull(planned?.details.mode),
    slaDeadline: orNull(planned?.details.slaDeadline),
    systems: planned?.details.systems ?? [],
    stages: names.map((name) => {
      const due = plannedStages.find((s) => s.name === name);
      const startedRow = stageRows.find((row) => row.details.stage === name);
      return {
        name,
        dueAt: orNull(due?.dueAt),
        startedAt: startedRow?.occurredAt ?? null,
        startedBy: startedRow?.actor ?? null,
        expedited: startedRow?.details.expedited === true,
      };
    }),
  };
}

/**
 * When each stage's actions were requested: the stage's start, its recheck, or the cancel. Keyed
 * by system and stage (per-system rows) and by stage alone (old stage-wide rows, and a fallback).
 */
function requestTimes(events: Parsed[]): (system: string, stage: string) => string | null {
  const times = new Map<string, string>();
  const note = (key: string, at: string) => {
    if (!times.has(key)) times.set(key, at);
  };
  for (const event of events) {
    if (event.kind !== 'known') continue;
    switch (event.action) {
      case 'stage_started':
      case 'stage_rechecked': {
        const stage = event.action === 'stage_rechecked' ? `${event.details.stage}-recheck` : event.details.stage;
        if (event.system !== null) note(`${event.system}\u0000${stage}`, event.occurredAt);
        note(stage, event.occurredAt);
        break;
      }
      case 'cancel_requested':
        note('cancel', event.occurredAt);
        break;
      default:
        break;
    }
  }
  return (system, stage) => times.get(`${system}\u0000${stage}`) ?? times.get(stage) ?? null;
}

function actionsFrom(events: Parsed[]): EvidenceAction[] {
  const requestedAt = requestTimes(events);
  const histories = new Map<string, ActionRow[]>();
  for (const event of events) {
    if (!isActionKindEvent(event)) continue;
    const id = event.details.actionId;
    histories.set(id, [...(histories.get(id) ?? []), event]);
  }
  const skips = new Map(eventsOf(events, 'manual_task_skipped').map((row) => [row.details.taskId, row]));
  return [...histories].map(([id, history]) => {
    const settled = history.findLast((row) => successOutcomeSchema.safeParse(row.outcome).success);
    const failures = history.filter((row) => row.outcome === 'failed');
    const skip = settled ? undefined : skips.get(id);
    const recordedBy = settled ?? skip ?? history.at(-1)!;
    const stage = settled?.details.stage ?? id.split('/')[0] ?? '';
    const first = history[0]!;
    return {
      id,
      stage,
      system: first.system,
      kind: first.action,
      target: orNull(first.details.target),
      requestedAt: requestedAt(first.system, stage),
      completedAt: settled?.occurredAt ?? null,
      outcome: settled ? successOutcomeSchema.parse(settled.outcome) : skip ? 'skipped' : 'failed',
      attempts: Math.max(0, ...history.map((row) => row.details.attempts ?? 0)),
      actor: (settled ?? history.at(-1)!).actor,
      failures: failures.length,
      lastError: orNull(failures.at(-1)?.details.error),
      skipped: skip ? { by: skip.actor, at: skip.occurredAt, reason: skip.details.reason } : null,
      withinSla: null,
      systemDetails: settled
        ? Object.fromEntries(Object.entries(settled.details).filter(([key]) => !ACTION_ROW_KEYS.has(key)))
        : {},
      auditSeq: recordedBy.seq,
      auditHash: recordedBy.hash,
    };
  });
}

/**
 * Grouped as a reader expects: by stage in plan order (a recheck after its stage, the cancel's
 * re-enabling last), then by system, login first; otherwise in the order the log recorded them.
 */
function inReadingOrder(actions: EvidenceAction[], stageNames: string[]): EvidenceAction[] {
  const stageRank = (stage: string) => {
    const recheckOf = stage.endsWith('-recheck') ? stageNames.indexOf(stage.slice(0, -'-recheck'.length)) : -1;
    if (recheckOf >= 0) return recheckOf + 0.5;
    const index = stageNames.indexOf(stage);
    return index >= 0 ? index : stageNames.length;
  };
  return [...actions].sort(
    (a, b) =>
      stageRank(a.stage) - stageRank(b.stage) ||
      a.system.localeCompare(b.system) ||
      Number(b.kind === 'disable_login') - Number(a.kind === 'disable_login') ||
      a.auditSeq - b.auditSeq,
  );
}

function accountsFrom(events: Parsed[]): Evidence['accounts'] {
  const accounts = new Map<string, Evidence['accounts'][number]>();
  for (const row of eventsOf(events, 'access_discovered')) {
    const { account } = row.details;
    const accountId = account?.id ?? null;
    const key = `${row.system}\u0000${accountId}`;
    const entry = accounts.get(key) ?? {
      system: row.system,
      accountId,
      disabledWhenFound: account?.disabled ?? null,
      firstFoundAt: row.occurredAt,
      firstFoundInStage: row.details.stage,
      entitlements: [],
      credentials: 0,
      discoveries: 0,
    };
    entry.discoveries += 1;
    entry.credentials = Math.max(entry.credentials, row.details.credentials);
    for (const found of row.details.entitlements) {
      if (!entry.entitlements.some((e) => e.id === found.id))
        entry.entitlements.push({ id: found.id, kind: found.kind });
    }
    accounts.set(key, entry);
  }
  return [...accounts.values()];
}

function holdsFrom(events: Parsed[]): Evidence['holds'] {
  const holds: Evidence['holds'] = [];
  let active: Evidence['holds'] = [];
  for (const row of events) {
    if (row.kind !== 'known') continue;
    switch (row.action) {
      case 'hold_placed': {
        const hold = {
          placedBy: row.actor,
          placedAt: row.occurredAt,
          reason: row.details.reason,
          until: orNull(row.details.until),
          ended: null,
          auditSeq: row.seq,
        };
        holds.push(hold);
        active.push(hold);
        break;
      }
      case 'hold_released':
      case 'expedited': {
        // A release ends every hold in force; an expedite lifts them all.
        const how = row.action === 'expedited' ? 'lifted_by_expedite' : 'released';
        for (const hold of active)
          hold.ended = { how, by: row.actor, at: row.occurredAt, reason: orNull(row.details.reason) };
        active = [];
        break;
      }
      case 'hold_expired': {
        const expired = active
          .filter((hold) => hold.until !== null && Date.parse(hold.until) <= Date.parse(row.occurredAt))
          .sort((a, b) => Date.parse(a.until!) - Date.parse(b.until!))
          .slice(0, row.details.holdsExpired);
        for (const hold of expired)
          hold.ended = { how: 'expired', by: row.actor, at: row.occurredAt, reason: `its time (${hold.until}) passed` };
        active = active.filter((hold) => !expired.includes(hold));
        break;
      }
      default:
        break;
    }
  }
  return holds;
}

function manualTasksFrom(
  events: Parsed[],
  actions: EvidenceAction[],
  cancel: { by: string; at: string; reason: string } | null,
): Evidence['manualTasks'] {
  const tasks = new Map<string, Evidence['manualTasks'][number]>();
  for (const row of eventsOf(
    events,
    'manual_task_opened',
    'manual_task_reminder',
    'manual_task_overdue',
    'manual_task_retried',
    'manual_task_resolved',
    'manual_task_skipped',
  )) {
    const id = row.details.taskId;
    const task = tasks.get(id);
    if (row.action === 'manual_task_opened') {
      const reopened = task ?? {
        id,
        ref: row.details.task ?? taskRefFromId(id, row.details.error),
        system: row.system,
        description: row.details.description,
        lastError: '',
        openedAt: row.occurredAt,
        timesOpened: 0,
        dueAt: null,
        reminders: 0,
        overdueSince: null,
        retries: [],
        state: 'open' as const,
        resolution: null,
      };
      Object.assign(reopened, {
        lastError: row.details.error,
        dueAt: orNull(row.details.dueAt),
        timesOpened: reopened.timesOpened + 1,
        state: 'open',
        resolution: null,
      });
      tasks.set(id, reopened);
      continue;
    }
    if (!task) continue; // a reminder without its opening row cannot be placed; the chain check covers missing rows
    switch (row.action) {
      case 'manual_task_reminder':
      case 'manual_task_overdue':
        task.reminders += 1;
        if (row.action === 'manual_task_overdue') task.overdueSince ??= row.occurredAt;
        break;
      case 'manual_task_retried':
        task.retries.push({ by: row.actor, at: row.occurredAt });
        task.state = 'retrying';
        break;
      case 'manual_task_resolved': {
        const lastRetry = task.retries.at(-1);
        task.state = 'resolved';
        task.resolution = { how: 'retried', by: lastRetry?.by ?? row.actor, at: row.occurredAt, reason: null };
        break;
      }
      case 'manual_task_skipped':
        task.state = 'skipped';
        task.resolution = { how: 'skipped', by: row.actor, at: row.occurredAt, reason: row.details.reason };
        break;
    }
  }
  for (const task of tasks.values()) {
    const lastRetry = task.retries.at(-1);
    if (task.state === 'retrying' && lastRetry && retrySucceeded(task.ref, lastRetry.at, events, actions)) {
      task.state = 'resolved';
      task.resolution = { how: 'retried', by: lastRetry.by, at: lastRetry.at, reason: null };
    }
    // A cancel ends the wait for a person (except for the re-enabling the cancel itself asks for).
    if (
      task.state === 'open' &&
      cancel &&
      !undoesCancel(task.ref) &&
      Date.parse(task.openedAt) <= Date.parse(cancel.at)
    ) {
      task.state = 'closed_by_cancel';
      task.resolution = { how: 'cancelled', by: cancel.by, at: cancel.at, reason: cancel.reason };
    }
  }
  return [...tasks.values()];
}

/**
 * For histories from before `manual_task_resolved` was audited: a retry's success is read from its
 * effect: the action's success row, a discovery in the system, or (for a verification task) the
 * offboarding moving on to a later stage or its end.
 */
function retrySucceeded(ref: TaskRef, retriedAt: string, events: Parsed[], actions: EvidenceAction[]): boolean {
  const later = events.filter((event) => Date.parse(rowOf(event).occurredAt) >= Date.parse(retriedAt));
  const action = ref.kind === 'action' ? actions.find((a) => a.id === ref.actionId) : undefined;
  if (action) return action.completedAt !== null && Date.parse(action.completedAt) >= Date.parse(retriedAt);
  if (ref.kind === 'discover') return eventsOf(later, 'access_discovered').some((row) => row.system === ref.system);
  return eventsOf(later, 'stage_started', 'offboarding_completed', 'offboarding_cancelled').length > 0;
}

/**
 * One entry per stage. Old rows verify the whole stage at once; per-system pipelines write one
 * row per system, and the stage is clean only when every system's row is: the leftovers are all
 * of theirs, and each system's result is listed.
 */
export function verificationFrom(events: Parsed[]): Evidence['verification'] {
  const byStage = new Map<string, Of<'stage_verified'>[]>();
  for (const row of eventsOf(events, 'stage_verified'))
    byStage.set(row.details.stage, [...(byStage.get(row.details.stage) ?? []), row]);
  const rechecks = eventsOf(events, 'stage_rechecked');
  return [...byStage].map(([stage, verified]) => {
    const recheck = rechecks.filter((r) => r.details.stage === stage);
    const outcome = verified.every((row) => row.outcome === 'clean') ? 'clean' : 'leftovers';
    return {
      stage,
      verifiedAt: verified.at(-1)!.occurredAt,
      outcome,
      leftovers: verified.flatMap((row) => row.details.leftovers),
      recheck: recheck.length
        ? { at: recheck[0]!.occurredAt, leftovers: recheck.flatMap((r) => r.details.leftovers) }
        : null,
      systems: verified.map((row) => ({
        system: row.system,
        verifiedAt: row.occurredAt,
        outcome: row.outcome,
        leftovers: row.details.leftovers,
        auditSeq: row.seq,
      })),
    };
  });
}

function finalFrom(events: Parsed[], rows: Row[]): Evidence['final'] {
  const end = lastOf(events, 'offboarding_completed', 'offboarding_cancelled');
  return {
    state: end ? (isEvent(end, 'offboarding_cancelled') ? 'cancelled' : 'completed') : 'in_progress',
    at: end?.occurredAt ?? null,
    by: end?.actor ?? null,
    actionCounts: end?.details.actions ?? {},
    lastEventAt: rows.at(-1)!.occurredAt,
  };
}

// ---- the SLA --------------------------------------------------------------------------------

interface SlaInput {
  request: Evidence['request'];
  plan: PlanEvidence;
  actions: EvidenceAction[];
  manualTasks: Evidence['manualTasks'];
  accounts: Evidence['accounts'];
  cancel: { by: string; at: string; reason: string } | null;
  started: boolean;
  now: Date;
  classes: readonly SlaClass[];
  /** The workflow's own milestone, when it wrote one: the time logins were disabled everywhere. */
  loginsDisabled?: { at: string; msSinceEffective?: number };
}

export function slaClassFor(windowMs: number, classes: readonly SlaClass[] = DEFAULT_SLA_CLASSES): SlaClass | null {
  return [...classes].sort((a, b) => a.withinMs - b.withinMs).find((c) => c.withinMs >= windowMs) ?? null;
}

/** What must be true for login to count as disabled: each disable_login action and each escalated "login still enabled". */
function slaSteps(
  actions: EvidenceAction[],
  manualTasks: Evidence['manualTasks'],
  deadlineMs: number | null,
): Evidence['sla']['steps'] {
  const within = (at: string | null) => (at === null || deadlineMs === null ? null : Date.parse(at) <= deadlineMs);
  const fromActions = actions
    .filter((a) => a.kind === 'disable_login')
    .map((a) => {
      const at = a.completedAt ?? a.skipped?.at ?? null;
      return {
        system: a.system,
        source: 'disable_login' as const,
        reference: a.id,
        outcome: a.outcome,
        at,
        by: a.skipped?.by ?? (a.completedAt ? a.actor : null),
        reason: a.skipped?.reason ?? null,
        withinDeadline: within(at),
      };
    });
  const fromVerification = manualTasks
    .filter((t) => t.ref.kind === 'verify' && t.ref.leftover.what === 'login')
    .map((t) => {
      const done = t.state === 'resolved' || t.state === 'skipped';
      const at = done ? t.resolution!.at : null;
      return {
        system: t.system,
        source: 'verification' as const,
        reference: t.id,
        outcome: t.state === 'skipped' ? ('skipped' as const) : done ? ('done' as const) : ('failed' as const),
        at,
        by: done ? t.resolution!.by : null,
        reason: t.resolution?.reason ?? null,
        withinDeadline: within(at),
      };
    });
  return [...fromActions, ...fromVerification];
}

function slaFrom(input: SlaInput): Evidence['sla'] {
  const { request, plan, cancel, now } = input;
  const deadline = plan.slaDeadline;
  const deadlineMs = ms(deadline);
  const effectiveMs = ms(request.effectiveAt);
  const windowMs = deadlineMs !== null && effectiveMs !== null ? deadlineMs - effectiveMs : null;
  const slaClass = windowMs === null ? null : slaClassFor(windowMs, input.classes);
  const steps = slaSteps(input.actions, input.manualTasks, deadlineMs);
  const finished = steps.filter((step) => step.at !== null && step.outcome !== 'failed');
  const allFinished = steps.length > 0 && finished.length === steps.length;
  // The logins_disabled milestone is the workflow's own record of the moment the last login went;
  // the latest step is not (a recheck's "already", or an operator closing a verification task
  // later, would date it by that instead). The steps date it only for runs without the milestone.
  const latestStep = finished
    .map((s) => s.at!)
    .sort()
    .at(-1);
  const loginDisabledAt = allFinished ? (input.loginsDisabled?.at ?? latestStep!) : null;
  const since = (from: string | null) =>
    loginDisabledAt === null || from === null ? null : Date.parse(loginDisabledAt) - Date.parse(from);
  const notes: string[] = [];
  const receivedMs = ms(request.receivedAt);
  if (receivedMs !== null && effectiveMs !== null && receivedMs > effectiveMs + 60_000) {
    notes.push(
      `HR reported this ${duration(receivedMs - effectiveMs)} after the effective time; the deadline still counts from the effective time.`,
    );
  }
  if (slaClass === null && windowMs !== null)
    notes.push(`The playbook allows ${duration(windowMs)}, more than any SLA class.`);
  if (cancel) {
    const reenabled = input.actions
      .filter((a) => a.kind === 'enable_login' && a.outcome === 'done')
      .map((a) => a.system);
    notes.push(
      `The offboarding was cancelled by ${cancel.by} at ${formatTime(cancel.at)} ("${cancel.reason}")${reenabled.length ? `; the login was re-enabled in ${reenabled.join(', ')}` : ''}. The verdict is about disabling, before that.`,
    );
  }
  const systems = (list: typeof steps) => [...new Set(list.map((s) => s.system ?? 'unknown system'))].join(', ');

  const verdict = ((): { verdict: z.infer<typeof slaVerdictSchema>; explanation: string } => {
    if (deadline === null || deadlineMs === null)
      return {
        verdict: 'not_applicable',
        explanation: 'No plan was recorded, so there is no deadline to measure against.',
      };
    const deadlineText = `the deadline (${formatTime(deadline)})`;
    if (steps.length === 0) {
      if (cancel && Date.parse(cancel.at) <= deadlineMs)
        return { verdict: 'not_applicable', explanation: `Cancelled by ${cancel.by} before any login was disabled.` };
      if (!input.started) {
        return now.getTime() > deadlineMs
          ? { verdict: 'missed', explanation: `No stage had started by ${deadlineText}.` }
          : { verdict: 'pending', explanation: `Waiting for the first stage; ${deadlineText} has not passed.` };
      }
      // "Found in no system" only when every system was mapped and none has an account; a task
      // waiting for a person, or a system not mapped yet, blocks the offboarding instead.
      const blocking = input.manualTasks.filter((t) => t.state === 'open' || t.state === 'retrying');
      const mapped = new Set(input.accounts.map((a) => a.system));
      const unmapped = plan.systems.filter((system) => !mapped.has(system));
      const late = now.getTime() > deadlineMs;
      if (blocking.length > 0 || unmapped.length > 0) {
        const by = [
          ...blocking.map(
            (t) => `${t.description} (task ${t.id}, open since ${formatTime(t.openedAt)}: ${t.lastError})`,
          ),
          ...(unmapped.length ? [`access in ${unmapped.join(', ')} not mapped yet`] : []),
        ].join('; ');
        return {
          verdict: late ? 'missed' : 'pending',
          explanation: `The offboarding is blocked by ${by}; no login was disabled${late ? ` by ${deadlineText}` : ' yet'}.`,
        };
      }
      if (input.accounts.length > 0 && input.accounts.every((a) => a.accountId === null))
        return {
          verdict: 'not_applicable',
          explanation: `No account for this person was found in any system (${[...mapped].join(', ')}): there was no login to disable.`,
        };
      return {
        verdict: 'not_applicable',
        explanation: `The ${plan.playbook ?? 'chosen'} playbook disables no login (the account stays); the actions below show what was removed.`,
      };
    }
    const late = finished.filter((step) => step.withinDeadline === false);
    if (allFinished && late.length === 0) {
      const byOperator = steps.filter((step) => step.outcome === 'skipped');
      const when = `by ${formatTime(loginDisabledAt)}, ${duration(since(request.effectiveAt) ?? 0)} after the effective time and ${duration(deadlineMs - Date.parse(loginDisabledAt!))} before the deadline`;
      if (byOperator.length === 0)
        return { verdict: 'met', explanation: `Login was disabled in every system (${systems(steps)}) ${when}.` };
      return {
        verdict: 'met_by_operator',
        explanation: `Login was disabled in every system ${when}; in ${systems(byOperator)} an operator confirmed it instead of the system (${byOperator.map((s) => `${s.by}: "${s.reason ?? ''}"`).join('; ')}).`,
      };
    }
    if (late.length > 0)
      return {
        verdict: 'missed',
        explanation: `Login was disabled after the deadline in ${late.map((s) => `${s.system} (${duration(Date.parse(s.at!) - deadlineMs)} late)`).join(', ')}.`,
      };
    const open = steps.filter((step) => !finished.includes(step));
    if (cancel && Date.parse(cancel.at) <= deadlineMs)
      return {
        verdict: 'not_applicable',
        explanation: `Cancelled by ${cancel.by} before login was disabled in ${systems(open)}.`,
      };
    if (now.getTime() > deadlineMs)
      return { verdict: 'missed', explanation: `Login was still not disabled at ${deadlineText} in ${systems(open)}.` };
    return {
      verdict: 'pending',
      explanation: `Login is not yet disabled in ${systems(open)}; ${deadlineText} has not passed.`,
    };
  })();

  return {
    class: slaClass?.name ?? null,
    classBasis: slaClass?.basis ?? null,
    windowMs,
    deadline,
    ...verdict,
    loginDisabledAt,
    elapsedMs: {
      fromEffective: since(request.effectiveAt),
      fromReceived: since(request.receivedAt),
      fromDiscovered: since(request.discoveredAt),
    },
    steps,
    notes,
  };
}

function auditTrailFrom(
  events: Parsed[],
  rows: Row[],
  otherRuns: string[],
  chain: VerifyResult,
  anchor: EvidenceAnchorInput | undefined,
): Evidence['auditTrail'] {
  const firstRow = rows[0]!;
  const lastRow = rows.at(-1)!;
  const broken = chain.firstBroken ?? null;
  const covers = chain.ok ? lastRow.seq <= chain.rows : broken !== null && broken.seq > lastRow.seq;
  const range = `seq ${firstRow.seq} to ${lastRow.seq}`;
  const statement = chain.ok
    ? covers
      ? `The whole audit log (${chain.rows} rows) was recomputed and every hash matches; the ${rows.length} rows of this report (${range}) are part of it.`
      : `The audit log verified (${chain.rows} rows) ends before this report's last row (seq ${lastRow.seq}): verify again, then rebuild the report.`
    : covers
      ? `The audit log is broken at seq ${broken!.seq} (${broken!.problem}), after this report's rows (${range}), which lie in the intact part.`
      : `The audit log is broken at seq ${broken?.seq ?? '?'} (${broken?.problem ?? 'unknown'}): this report's rows (${range}) from there on cannot be relied on.`;
  return {
    rows: rows.length,
    firstSeq: firstRow.seq,
    lastSeq: lastRow.seq,
    firstHash: firstRow.hash,
    lastHash: lastRow.hash,
    otherRuns,
    unrecognised: events.flatMap((event) =>
      event.kind === 'unknown' ? [{ seq: event.row.seq, action: event.row.action, reason: event.reason }] : [],
    ),
    chain: { ok: chain.ok, rowsVerified: chain.rows, firstBroken: broken, coversThisReport: covers, statement },
    integrity: integrityOf(chain, covers, statement, anchor),
    anchor: anchor?.proof ?? null,
  };
}

/** The headline: broken when anything failed, unverifiable without a signed checkpoint covering the report. */
function integrityOf(
  chain: VerifyResult,
  covers: boolean,
  chainStatement: string,
  anchor: EvidenceAnchorInput | undefined,
): Evidence['auditTrail']['integrity'] {
  const problems = [...(chain.ok ? [] : [chainStatement]), ...(anchor?.failures.map((f) => f.message) ?? [])];
  if (problems.length > 0)
    return {
      verdict: 'broken',
      statement:
        'The audit log fails its checks: nothing in this report can be relied on until the problems below are explained.',
      problems,
    };
  if (!covers) return { verdict: 'unverifiable', statement: chainStatement, problems };
  if (!anchor)
    return {
      verdict: 'unverifiable',
      statement:
        'The chain is intact, but the report was built without the signed checkpoints, so its completeness is not shown.',
      problems,
    };
  if (!anchor.proof)
    return {
      verdict: 'unverifiable',
      statement: `The chain is intact, but no signed checkpoint covers this report yet${anchor.noProofReason ? ` (${anchor.noProofReason})` : ''}.`,
      problems,
    };
  return {
    verdict: 'verified',
    statement: `The chain is intact and the checkpoint signed at ${formatTime(anchor.proof.checkpoint.at)} by key ${anchor.proof.checkpoint.keyId} covers this report (seq ${anchor.proof.checkpoint.seq}); the report carries the proof (offboard evidence verify).`,
    problems,
  };
}

// ---- words shared by the renderings ---------------------------------------------------------

/** "2025-03-01 09:30:00 UTC": one zone for every time, so the report compares at a glance. */
export function formatTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const parsed = new Date(iso);
  return Number.isNaN(parsed.getTime()) ? iso : `${parsed.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

/** "3 d 4 h", "2 min 5 s", "under 1 s". */
export function duration(milliseconds: number): string {
  const sign = milliseconds < 0 ? '−' : '';
  let rest = Math.round(Math.abs(milliseconds) / 1000);
  if (rest === 0) return 'under 1 s';
  const parts: string[] = [];
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3_600],
    ['min', 60],
    ['s', 1],
  ] as const) {
    if (rest >= size) parts.push(`${Math.floor(rest / size)} ${unit}`);
    rest %= size;
  }
  return sign + parts.slice(0, 2).join(' ');
}

const ACTION_WORDS: Record<EvidenceAction['kind'], string> = {
  disable_login: 'Disable login',
  revoke_sessions: 'End active sessions',
  revoke_tokens: 'Revoke tokens and keys',
  remove_entitlement: 'Remove access right',
  transfer_ownership: 'Transfer ownership',
  delete_account: 'Delete account',
  enable_login: 'Re-enable login (cancellation)',
};

const OUTCOME_WORDS: Record<EvidenceAction['outcome'], string> = {
  done: 'Done',
  already: 'Already so',
  not_applicable: 'Not applicable',
  failed: 'NOT DONE',
  skipped: 'Skipped by operator',
};

const VERDICT_WORDS: Record<Evidence['sla']['verdict'], string> = {
  met: 'SLA MET',
  met_by_operator: 'SLA MET (confirmed by an operator)',
  missed: 'SLA MISSED',
  pending: 'SLA PENDING (deadline not reached)',
  not_applicable: 'SLA NOT APPLICABLE',
};

export const INTEGRITY_WORDS: Record<Evidence['auditTrail']['integrity']['verdict'], string> = {
  verified: 'AUDIT TRAIL VERIFIED',
  broken: 'AUDIT TRAIL BROKEN: THIS REPORT CANNOT BE RELIED ON',
  unverifiable: 'AUDIT TRAIL NOT VERIFIED',
};

const FINAL_WORDS: Record<Evidence['final']['state'], string> = {
  completed: 'Completed',
  cancelled: 'Cancelled',
  in_progress: 'In progress',
};

const actorWords = (actor: string | null) => (actor === null ? '—' : actor === 'workflow' ? 'automatic' : actor);

// ---- JSON -----------------------------------------------------------------------------------

export function evidenceToJson(evidence: Evidence): string {
  return `${JSON.stringify(evidence, null, 2)}\n`;
}

// ---- CSV ------------------------------------------------------------------------------------

type CsvValue = string | number | boolean | null;
const yesNo = (value: boolean | null) => (value === null ? '' : value ? 'yes' : 'no');

const CSV_COLUMNS: [string, (action: EvidenceAction, evidence: Evidence) => CsvValue][] = [
  ['offboarding_id', (_, e) => e.offboardingId],
  ['run_id', (_, e) => e.runId],
  ['employee_id', (_, e) => e.employeeId],
  ['hr_request_id', (_, e) => e.request.requestId],
  ['playbook', (_, e) => e.plan.playbook],
  ['effective_at', (_, e) => e.request.effectiveAt],
  ['sla_class', (_, e) => e.sla.class],
  ['sla_deadline', (_, e) => e.sla.deadline],
  ['sla_verdict', (_, e) => e.sla.verdict],
  ['final_state', (_, e) => e.final.state],
  ['chain_verified', (_, e) => yesNo(e.auditTrail.chain.coversThisReport)],
  ['audit_integrity', (_, e) => e.auditTrail.integrity.verdict],
  ['stage', (a) => a.stage],
  ['system', (a) => a.system],
  ['action', (a) => a.kind],
  ['target', (a) => a.target],
  ['requested_at', (a) => a.requestedAt],
  ['completed_at', (a) => a.completedAt],
  ['outcome', (a) => a.outcome],
  ['within_sla', (a) => yesNo(a.withinSla)],
  ['attempts', (a) => a.attempts],
  ['actor', (a) => a.actor],
  ['failures', (a) => a.failures],
  ['last_error', (a) => a.lastError],
  ['skipped_by', (a) => a.skipped?.by ?? null],
  ['skipped_at', (a) => a.skipped?.at ?? null],
  ['skip_reason', (a) => a.skipped?.reason ?? null],
  ['audit_seq', (a) => a.auditSeq],
  ['audit_hash', (a) => a.auditHash],
];

/**
 * One cell, RFC 4180 quoted. A cell a spreadsheet would run as a formula (leading =, +, -, @,
 * or tab/CR, which some spreadsheets strip first) gets a leading apostrophe (OWASP's advice).
 */
export function csvCell(value: CsvValue): string {
  let cell = value === null ? '' : String(value);
  if (/^[=+\-@\t\r]/.test(cell)) cell = `'${cell}`;
  return /[",\r\n]/.test(cell) ? `"${cell.replaceAll('"', '""')}"` : cell;
}

export function evidenceToCsv(evidence: Evidence): string {
  const lines = [
    CSV_COLUMNS.map(([header]) => header),
    ...evidence.actions.map((action) => CSV_COLUMNS.map(([, read]) => read(action, evidence))),
  ];
  return lines.map((cells) => cells.map(csvCell).join(',')).join('\r\n') + '\r\n';
}

// ---- HTML -----------------------------------------------------------------------------------

const escapeHtml = (value: string) =>
  value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** Table cells are text (escaped here) or markup built by this module from escaped parts. */
type Cell = string | number | null | { html: string };
const cellHtml = (cell: Cell) =>
  cell !== null && typeof cell === 'object' ? cell.html : escapeHtml(cell === null ? '—' : String(cell));
/** Identifiers in monospace; a DN may wrap after each comma, never inside a name. */
const small = (value: string) => ({ html: `<span class="code">${escapeHtml(value).replaceAll(',', ',<wbr>')}</span>` });
const lines = (...parts: (string | null | undefined)[]) => ({
  html: parts
    .filter((p): p is string => Boolean(p))
    .map(escapeHtml)
    .join('<br>'),
});

function table(headers: string[], rows: Cell[][], empty: string): string {
  if (rows.length === 0) return `<p class="empty">${escapeHtml(empty)}</p>`;
  return `<table><thead><tr>${headers.map((h) => `<th>${escapeHtml(h)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((row) => `<tr>${row.map((cell) => `<td>${cellHtml(cell)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

const section = (title: string, intro: string, body: string) =>
  `<section><h2>${escapeHtml(title)}</h2>${intro ? `<p class="intro">${escapeHtml(intro)}</p>` : ''}${body}</section>`;

function facts(pairs: [string, Cell][]): string {
  return `<dl>${pairs.map(([term, value]) => `<dt>${escapeHtml(term)}</dt><dd>${cellHtml(value)}</dd>`).join('')}</dl>`;
}

const outcomeCell = (outcome: EvidenceAction['outcome']) => ({
  html: `<span class="outcome ${outcome}">${escapeHtml(OUTCOME_WORDS[outcome])}</span>`,
});

const STYLE = `
  :root { color-scheme: light; }
  * { box-sizing: border-box; }
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #1a1a1a; margin: 0; background: #fff; }
  main { max-width: 1120px; margin: 0 auto; padding: 24px 28px 48px; }
  h1 { font-size: 24px; margin: 0 0 4px; }
  h2 { font-size: 17px; margin: 28px 0 6px; padding-bottom: 3px; border-bottom: 1px solid #c8c8c8; break-after: avoid; }
  p { margin: 6px 0; }
  .sub, .intro, .empty { color: #555; }
  .empty { font-style: italic; }
  .code { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12px; }
  dd .code { overflow-wrap: anywhere; }
  .verdict { border: 3px solid #555; border-radius: 6px; padding: 14px 18px; margin: 18px 0; break-inside: avoid; }
  .verdict.met, .verdict.met_by_operator { border-color: #1b7a36; background: #eef8f0; }
  .verdict.missed, .verdict.record-broken { border-color: #b3261e; background: #fdeeed; }
  .verdict.record-unverifiable { border-color: #a56a00; background: #fff6e5; }
  .verdict.record-broken .label { color: #b3261e; }
  .verdict.record-unverifiable .label { color: #8a5800; }
  .verdict.pending { border-color: #a56a00; background: #fff6e5; }
  .verdict .label { font-size: 20px; font-weight: 700; letter-spacing: .02em; }
  .verdict.met .label, .verdict.met_by_operator .label { color: #1b7a36; }
  .verdict.missed .label { color: #b3261e; }
  .verdict.pending .label { color: #8a5800; }
  dl { display: grid; grid-template-columns: max-content 1fr; gap: 3px 18px; margin: 12px 0 0; }
  dt { color: #555; }
  dd { margin: 0; overflow-wrap: break-word; }
  table { width: 100%; border-collapse: collapse; margin: 8px 0; font-size: 13px; }
  th, td { border: 1px solid #cfcfcf; padding: 4px 6px; text-align: left; vertical-align: top; overflow-wrap: break-word; }
  th { background: #f0f0f0; font-weight: 600; }
  tbody tr:nth-child(even) td { background: #fafafa; }
  .outcome { font-weight: 600; white-space: nowrap; }
  .outcome.failed { color: #b3261e; }
  .outcome.skipped { color: #8a5800; }
  .chain-ok { color: #1b7a36; font-weight: 700; }
  .chain-bad { color: #b3261e; font-weight: 700; }
  footer { margin-top: 32px; color: #555; font-size: 12px; }
  @page { size: A4 landscape; margin: 12mm; }
  @media print {
    body { font-size: 11px; }
    main { max-width: none; padding: 0; }
    table { font-size: 10px; }
    .code { font-size: 9.5px; }
    thead { display: table-header-group; }
    tr, .verdict, dl { break-inside: avoid; }
    section { break-inside: auto; }
    * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  }
`;

/** Whether a stage started when due, and if not, the likely reason the log shows. */
function stageTiming(stage: Evidence['plan']['stages'][number], evidence: Evidence): string {
  if (!stage.startedAt)
    return evidence.final.state === 'cancelled'
      ? 'not run: cancelled'
      : evidence.final.state === 'completed'
        ? 'not run'
        : 'not yet run';
  if (!stage.dueAt) return '—';
  const late = Date.parse(stage.startedAt) - Date.parse(stage.dueAt);
  if (stage.expedited) return late < 0 ? `${duration(-late)} early: expedited` : 'expedited';
  if (late <= 60_000) return 'on time';
  const held = evidence.holds.some(
    (hold) =>
      Date.parse(hold.placedAt) <= Date.parse(stage.startedAt!) &&
      (hold.ended === null || Date.parse(hold.ended.at) >= Date.parse(stage.dueAt!)),
  );
  return `${duration(late)} after due${held ? ': on hold (see 5)' : ''}`;
}

export function evidenceToHtml(evidence: Evidence): string {
  const { request, plan, sla, final, auditTrail } = evidence;
  const title = `Offboarding evidence: ${evidence.employeeId}`;
  const chainCell = {
    html: auditTrail.chain.coversThisReport
      ? `<span class="chain-ok">Intact</span> ${escapeHtml(auditTrail.chain.statement)}`
      : `<span class="chain-bad">NOT VERIFIED</span> ${escapeHtml(auditTrail.chain.statement)}`,
  };

  // Not verified: the record's state is the headline and the SLA verdict is shown as what the rows claim.
  const integrity = auditTrail.integrity;
  const headline =
    integrity.verdict === 'verified'
      ? `<div class="label">${escapeHtml(VERDICT_WORDS[sla.verdict])}</div>`
      : `<div class="label">${escapeHtml(INTEGRITY_WORDS[integrity.verdict])}</div><p><strong>${escapeHtml(integrity.statement)}</strong></p>${integrity.problems.map((problem) => `<p>${escapeHtml(problem)}</p>`).join('')}<p>What the rows claim, unconfirmed: ${escapeHtml(VERDICT_WORDS[sla.verdict])}.</p>`;
  const verdictClass = integrity.verdict === 'verified' ? sla.verdict : `record-${integrity.verdict}`;
  const summary = `<div class="verdict ${verdictClass}">${headline}<p>${escapeHtml(sla.explanation)}</p>${facts([
    ['Employee (HR id)', evidence.employeeId],
    ['HR request', request.requestId],
    ['Trigger / reason', [request.trigger, request.reason].filter(Boolean).join(' / ') || null],
    ['Employment type', request.employmentType],
    ...(request.newRole ? [['New role', request.newRole] as [string, Cell]] : []),
    ['Requested by', request.requestedBy],
    ['Effective', formatTime(request.effectiveAt)],
    ['Received by offboard', formatTime(request.receivedAt)],
    ['Access first mapped', formatTime(request.discoveredAt)],
    ['Playbook / mode', [plan.playbook, plan.mode].filter(Boolean).join(' / ') || null],
    [
      'SLA class',
      sla.class
        ? lines(`${sla.class} (playbook allows ${duration(sla.windowMs ?? 0)})`, sla.classBasis)
        : `none (playbook allows ${sla.windowMs === null ? '—' : duration(sla.windowMs)})`,
    ],
    ['Deadline', formatTime(sla.deadline)],
    [
      'Login disabled in every system',
      sla.loginDisabledAt
        ? lines(
            formatTime(sla.loginDisabledAt),
            `${duration(sla.elapsedMs.fromEffective ?? 0)} after the effective time; ${duration(sla.elapsedMs.fromDiscovered ?? 0)} after access was mapped`,
          )
        : 'not (yet) everywhere',
    ],
    [
      'Outcome',
      `${FINAL_WORDS[final.state]}${final.at ? ` at ${formatTime(final.at)}` : ''}${final.by && final.by !== 'workflow' ? ` by ${final.by}` : ''}${evidence.cancellation ? `: ${evidence.cancellation.reason}` : ''}`,
    ],
    ['Audit chain', chainCell],
    ['Audit trail', `${INTEGRITY_WORDS[integrity.verdict]}: ${integrity.statement}`],
  ])}${sla.notes.map((note) => `<p><strong>Note:</strong> ${escapeHtml(note)}</p>`).join('')}</div>`;

  const slaSection = section(
    '1. SLA: when login was disabled',
    'Each login this offboarding had to disable, and when the system (or an operator) confirmed it.',
    table(
      ['System', 'What', 'Result', 'When', 'By', 'Before the deadline?'],
      sla.steps.map((step) => [
        step.system,
        step.source === 'disable_login' ? 'Disable login' : 'Login found still enabled by verification',
        outcomeCell(step.outcome),
        formatTime(step.at),
        lines(actorWords(step.by), step.reason ? `reason: ${step.reason}` : null),
        step.withinDeadline === null ? '—' : step.withinDeadline ? 'yes' : 'NO',
      ]),
      'No login had to be disabled.',
    ),
  );

  const stagesSection = section(
    '2. Stages',
    "The plan's stages, when each was due and when it actually started.",
    table(
      ['Stage', 'Due', 'Started', 'Started by', 'Timing'],
      plan.stages.map((stage) => [
        stage.name,
        formatTime(stage.dueAt),
        stage.startedAt ? formatTime(stage.startedAt) : 'not started',
        actorWords(stage.startedBy),
        stageTiming(stage, evidence),
      ]),
      'No stage was planned.',
    ),
  );

  const accountsSection = section(
    '3. Accounts found',
    `Access mapped in each system before each stage (systems in the plan: ${plan.systems.join(', ') || 'none recorded'}).`,
    table(
      ['System', 'Account', 'First found', 'Login already disabled?', 'Access rights found', 'Sessions / tokens'],
      evidence.accounts.map((a) => [
        a.system,
        a.accountId === null ? 'no account found' : small(a.accountId),
        lines(formatTime(a.firstFoundAt), a.firstFoundInStage ? `stage ${a.firstFoundInStage}` : null),
        a.disabledWhenFound === null ? '—' : a.disabledWhenFound ? 'yes' : 'no',
        a.entitlements.length === 0
          ? 'none'
          : {
              html: a.entitlements
                .map((e) => `${escapeHtml(e.kind)}: <span class="code">${escapeHtml(e.id)}</span>`)
                .join('<br>'),
            },
        a.credentials,
      ]),
      'No access was mapped.',
    ),
  );

  const actionsSection = section(
    '4. Actions taken',
    '"Requested" is when the action\'s stage started; "Completed" is when the system confirmed the result. The audit row is the log entry this line rests on.',
    table(
      ['Stage', 'System', 'Action', 'Target', 'Requested', 'Completed', 'Result', 'Attempts', 'By', 'Audit row'],
      evidence.actions.map((a) => [
        a.stage,
        a.system,
        ACTION_WORDS[a.kind],
        a.target === null ? '—' : small(a.target),
        formatTime(a.requestedAt),
        a.skipped ? lines(formatTime(a.skipped.at), '(skipped)') : formatTime(a.completedAt),
        {
          html: `${outcomeCell(a.outcome).html}${a.skipped ? `<br>${escapeHtml(`reason: ${a.skipped.reason ?? ''}`)}` : ''}${a.failures > 0 ? `<br>${escapeHtml(`handed to a person${a.failures > 1 ? ` ${a.failures} times` : ''} (see 6)`)}` : ''}`,
        },
        a.attempts,
        a.skipped ? `${a.skipped.by} (closed it)` : actorWords(a.actor),
        a.auditSeq,
      ]),
      'No action was taken.',
    ),
  );

  const interventions = [
    table(
      ['Hold placed', 'By', 'Reason', 'Until', 'Ended'],
      evidence.holds.map((h) => [
        formatTime(h.placedAt),
        h.placedBy,
        h.reason,
        h.until ? formatTime(h.until) : 'until released',
        h.ended
          ? lines(
              `${h.ended.how === 'released' ? 'Released' : h.ended.how === 'expired' ? 'Expired' : 'Lifted by expedite'} at ${formatTime(h.ended.at)}`,
              h.ended.how === 'expired'
                ? 'by itself (its time passed)'
                : `by ${h.ended.by}${h.ended.reason ? `: ${h.ended.reason}` : ''}`,
            )
          : 'still in force',
      ]),
      'No hold was placed.',
    ),
    evidence.laterRequests.length
      ? table(
          ['Later HR event', 'Received', 'From', 'Effect'],
          evidence.laterRequests.map((r) => [
            lines(
              r.requestId,
              `${r.trigger}${r.reason ? ` (${r.reason})` : ''}${r.effectiveAt ? `, effective ${formatTime(r.effectiveAt)}` : ''}`,
            ),
            formatTime(r.at),
            r.by,
            lines(r.outcome === 'superseded' ? 'Replaced the plan' : 'Joined: no change', r.why),
          ]),
          '',
        )
      : '',
    evidence.expedite
      ? facts([
          ['Expedited', `${formatTime(evidence.expedite.at)} by ${evidence.expedite.by}`],
          ['Why', evidence.expedite.reason],
          ['Holds lifted', evidence.expedite.holdsLifted],
        ])
      : '<p class="empty">Not expedited.</p>',
    evidence.cancellation
      ? facts([
          ['Cancelled', `${formatTime(evidence.cancellation.at)} by ${evidence.cancellation.by}`],
          ['Why', evidence.cancellation.reason],
          [
            'Logins re-enabled',
            evidence.cancellation.loginsReenabled.length === 0
              ? 'none (no login had been disabled by this offboarding)'
              : lines(
                  ...evidence.cancellation.loginsReenabled.map(
                    (r) =>
                      `${r.system}: ${r.outcome === 'done' ? `re-enabled at ${formatTime(r.at)}` : r.outcome === 'already' ? 'was already enabled' : `NOT re-enabled (${OUTCOME_WORDS[r.outcome]}; see manual tasks)`}`,
                  ),
                ),
          ],
          [
            'Removed, not restored',
            evidence.cancellation.removedNotRestored.length === 0
              ? 'nothing'
              : lines(...evidence.cancellation.removedNotRestored.map((r) => `${r.system}: ${r.target ?? ''}`)),
          ],
        ])
      : '<p class="empty">Not cancelled.</p>',
  ].join('');
  const interventionsSection = section(
    '5. Holds, later HR events, expedite and cancellation',
    'Every decision to pause, escalate, hurry or stop this offboarding, with who and why.',
    interventions,
  );

  const tasksSection = section(
    '6. Manual tasks',
    'Work that needed a person: an action that failed after its retries, an app with no API, or something verification still found.',
    table(
      ['Task', 'System', 'Opened', 'Reminders', 'State', 'Resolved'],
      evidence.manualTasks.map((t) => [
        lines(t.description, t.lastError),
        t.system,
        lines(
          formatTime(t.openedAt),
          t.timesOpened > 1 ? `opened ${t.timesOpened} times` : null,
          t.dueAt ? `due ${formatTime(t.dueAt)}` : null,
        ),
        `${t.reminders}${t.overdueSince ? `, overdue since ${formatTime(t.overdueSince)}` : ''}`,
        t.state.replaceAll('_', ' '),
        t.resolution
          ? lines(
              `${t.resolution.how} by ${t.resolution.by} at ${formatTime(t.resolution.at)}`,
              t.resolution.reason ? `reason: ${t.resolution.reason}` : null,
            )
          : '—',
      ]),
      'No manual task was needed.',
    ),
  );

  const verificationSection = section(
    '7. Verification',
    'After each stage every system is mapped again; anything the stage should have removed but still finds is removed once more and, if still there, escalated to a person.',
    table(
      ['Stage', 'Checked', 'Result', 'Found on first check', 'Still present after recheck'],
      evidence.verification.map((v) => [
        v.systems.some((s) => s.system !== null)
          ? lines(v.stage, ...v.systems.map((s) => `${s.system ?? 'all systems'}: ${s.outcome}`))
          : v.stage,
        formatTime(v.verifiedAt),
        v.outcome === 'clean' ? 'clean: nothing left' : v.outcome,
        v.recheck ? lines(...v.recheck.leftovers.map(describeLeftover)) : 'nothing',
        v.leftovers.length ? lines(...v.leftovers.map(describeLeftover)) : 'nothing',
      ]),
      'No stage has been verified yet.',
    ),
  );

  const other = [
    table(
      ['When', 'Identity correlation'],
      evidence.identityCorrelations.map((c) => [
        formatTime(c.at),
        c.field === 'managerEmail'
          ? `HR named no manager's email; the one ${c.from.join(', ')} holds for the person's manager (not shown here) was used to notify them`
          : `HR sent no ${c.field}; the one ${c.from.join(', ')} holds (not shown here) was used to find the person's accounts in the other systems`,
      ]),
      'No identity correlation.',
    ),
    evidence.refusedCommands.length
      ? table(
          ['When', 'Refused command', 'By', 'Why refused'],
          evidence.refusedCommands.map((c) => [formatTime(c.at), c.command, c.by, c.reason]),
          '',
        )
      : '',
    evidence.notificationFailures.length
      ? table(
          ['When', 'Notification not delivered', 'Error'],
          evidence.notificationFailures.map((n) => [formatTime(n.at), n.event, n.error]),
          '',
        )
      : '',
    evidence.milestones.loginsDisabled || evidence.milestones.revocationVerified
      ? facts([
          ...(evidence.milestones.loginsDisabled
            ? [
                [
                  'Login disabled in every system',
                  lines(
                    formatTime(evidence.milestones.loginsDisabled.at),
                    `${duration(evidence.milestones.loginsDisabled.msSinceReceived)} after offboard received the request`,
                  ),
                ] as [string, Cell],
              ]
            : []),
          ...(evidence.milestones.revocationVerified
            ? [
                [
                  'Access removed and verified in every system',
                  lines(
                    formatTime(evidence.milestones.revocationVerified.at),
                    `${duration(evidence.milestones.revocationVerified.msSinceReceived)} after the request was received`,
                    `${evidence.milestones.revocationVerified.leftovers} leftover(s) handed to a person`,
                  ),
                ] as [string, Cell],
              ]
            : []),
        ])
      : '',
    evidence.stalls.length
      ? table(
          ['When', 'System', 'Stuck at', 'For'],
          evidence.stalls.map((st) => [
            formatTime(st.at),
            st.system,
            `${st.step} in stage ${st.stage}`,
            `${duration(st.seconds * 1000)} (since ${formatTime(st.since)})`,
          ]),
          '',
        )
      : '',
  ].join('');
  const otherSection = section('8. Other recorded events', '', other);

  const chainSection = section(
    '9. Audit log',
    'Each audit row holds the hash of the row before it, so changing, removing or reordering any row breaks every hash after it. These values tie this report to the log.',
    `${facts([
      ['Chain check', chainCell],
      ['Rows verified', auditTrail.chain.rowsVerified],
      ...(auditTrail.chain.firstBroken
        ? [
            [
              'First broken row',
              `seq ${auditTrail.chain.firstBroken.seq} (${auditTrail.chain.firstBroken.id}): ${auditTrail.chain.firstBroken.problem}`,
            ] as [string, Cell],
          ]
        : []),
      [
        'Rows in this report',
        `${auditTrail.rows} (seq ${auditTrail.firstSeq} to ${auditTrail.lastSeq}${auditTrail.lastSeq - auditTrail.firstSeq + 1 > auditTrail.rows ? '; rows of other offboardings lie in between' : ''})`,
      ],
      ['First row hash', small(auditTrail.firstHash)],
      ['Last row hash', small(auditTrail.lastHash)],
      [
        'Signed checkpoint',
        auditTrail.anchor
          ? lines(
              `seq ${auditTrail.anchor.checkpoint.seq}, signed ${formatTime(auditTrail.anchor.checkpoint.at)} by key ${auditTrail.anchor.checkpoint.keyId}`,
              `head hash ${auditTrail.anchor.checkpoint.headHash}`,
              `signature ${auditTrail.anchor.checkpoint.signature}`,
            )
          : 'none covers this report',
      ],
      ['Offboarding / run', small(`${evidence.offboardingId} / ${evidence.runId}`)],
      ...(auditTrail.otherRuns.length
        ? [['Other runs for this person', small(auditTrail.otherRuns.join(', '))] as [string, Cell]]
        : []),
      ...(auditTrail.unrecognised.length
        ? [['Rows of unknown kind', `${auditTrail.unrecognised.length} (listed below)`] as [string, Cell]]
        : []),
    ])}${
      auditTrail.unrecognised.length
        ? `<h3>Unrecognised events</h3>${table(
            ['Audit row', 'Action', 'Why this report cannot read it'],
            auditTrail.unrecognised.map((u) => [u.seq, u.action, u.reason]),
            '',
          )}`
        : ''
    }`,
  );

  const glossary = section(
    'How to read this report',
    '',
    `<dl>
    <dt>Done</dt><dd>offboard made the change and the system confirmed it.</dd>
    <dt>Already so</dt><dd>the system was already in that state (for example the person had already left the group); nothing was left to remove.</dd>
    <dt>Not applicable</dt><dd>the system has nothing of that kind (for example a directory keeps no sessions).</dd>
    <dt>Skipped by operator</dt><dd>a person closed the task with a written reason, typically confirming they did it by hand.</dd>
    <dt>NOT DONE</dt><dd>no success was recorded; see the manual tasks.</dd>
    <dt>automatic</dt><dd>done by offboard on the plan's schedule (recorded as "workflow" in the log); any other name is the person or system that decided.</dd>
    <dt>Times</dt><dd>all in UTC, as recorded in the audit log.</dd>
  </dl>`,
  );

  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<h1>${escapeHtml(title)}</h1>
<p class="sub">Built from the audit log alone on ${escapeHtml(formatTime(evidence.generatedAt))} · offboarding <span class="code">${escapeHtml(evidence.offboardingId)}</span> · HR request <span class="code">${escapeHtml(request.requestId ?? '—')}</span></p>
${summary}
${slaSection}
${stagesSection}
${accountsSection}
${actionsSection}
${interventionsSection}
${tasksSection}
${verificationSection}
${otherSection}
${chainSection}
${glossary}
<footer>Evidence report version ${evidence.reportVersion}. The same content is available as JSON and, one row per action, as CSV.</footer>
</main>
</body>
</html>
`;
}
