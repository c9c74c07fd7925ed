/**
 * The audit-event contract (model/audit-events.ts) and its readers, on rows built by hand: old
 * rows still read, unknown ones are kept, per-system verification rows add up to the stage's
 * verdict, and the metrics read the milestones.
 */
import assert from 'node:assert/strict';
import { buildEvidence, evidenceToHtml } from '../client/evidence.js';
import type { ChainedAuditEvent } from '../model/audit.js';
import { isEvent, parseAuditRow, type AuditEntry } from '../model/audit-events.js';
import type { Leftover } from '../model/leftovers.js';
import { createMetrics } from '../workers/metrics.js';

const WORKFLOW = 'offboarding-E9001';
const RUN = 'run-1';
const T0 = Date.parse('2025-03-01T09:00:00.000Z');

/** Rows of one run, in order, as the store returns them (the hashes are placeholders: no chain is checked here). */
function rowsOf(entries: AuditEntry[]): ChainedAuditEvent[] {
  return entries.map((entry, i) => ({
    seq: i + 1,
    id: `${WORKFLOW}/${RUN}/${i + 1}`,
    occurredAt: new Date(T0 + i * 1000).toISOString(),
    offboardingId: WORKFLOW,
    employeeId: 'E9001',
    system: entry.system ?? null,
    outcome: entry.outcome ?? null,
    action: entry.action,
    actor: entry.actor,
    details: entry.details,
    prevHash: 'p'.repeat(64),
    hash: `${i + 1}`.padStart(64, '0'),
  }));
}

const started: AuditEntry = {
  action: 'offboarding_started',
  actor: 'hr-system',
  details: {
    requestId: 'hr-1',
    trigger: 'termination',
    reason: 'involuntary',
    employmentType: 'employee',
    effectiveAt: new Date(T0).toISOString(),
    newRole: null,
  },
};
const planMade: AuditEntry = {
  action: 'plan_made',
  actor: 'workflow',
  details: {
    playbook: 'involuntary',
    mode: 'immediate',
    slaDeadline: new Date(T0 + 3_600_000).toISOString(),
    stages: [{ name: 'revoke', dueAt: new Date(T0).toISOString() }],
    systems: ['directory', 'github'],
  },
};
const verifiedIn = (system: string, leftovers: Leftover[]): AuditEntry => ({
  action: 'stage_verified',
  actor: 'workflow',
  system,
  outcome: leftovers.length ? 'leftovers' : 'clean',
  details: { stage: 'revoke', leftovers, disablesLogin: true },
});

describe('audit-event contract', () => {
  it('an old stage-wide row (system null, whole seconds) parses with its fields typed', () => {
    const [row] = rowsOf([
      {
        action: 'stage_verified',
        actor: 'workflow',
        outcome: 'clean',
        details: {
          stage: 'revoke',
          leftovers: [],
          disablesLogin: true,
          lastRevokingStage: true,
          secondsSinceEffective: 4,
          secondsSinceReceived: 7,
        },
      },
    ]);
    const parsed = parseAuditRow(row!);
    assert.equal(parsed.kind, 'known');
    assert.ok(isEvent(parsed, 'stage_verified'));
    assert.equal(parsed.system, null);
    assert.equal(parsed.details.secondsSinceReceived, 7);
    assert.equal(parsed.seq, 1, 'what the store added is kept');
  });

  it("an old action row from before a field existed, and a connector's own details, parse", () => {
    const [row] = rowsOf([
      {
        action: 'disable_login',
        actor: 'workflow',
        system: 'directory',
        outcome: 'done',
        details: {
          actionId: 'revoke/directory/disable_login',
          stage: 'revoke',
          target: null,
          pwdAccountLockedTime: '000001010000Z',
        },
      },
    ]);
    const parsed = parseAuditRow(row!);
    assert.ok(parsed.kind === 'known' && parsed.action === 'disable_login');
    assert.equal(parsed.details.attempts, undefined);
    assert.equal(parsed.details.pwdAccountLockedTime, '000001010000Z');
  });

  it('an unknown action, or a known one of another shape, is kept as unknown with the row and why', () => {
    const row = { ...rowsOf([started])[0]!, action: 'quantum_entangled', details: { spin: 'up' } };
    const parsed = parseAuditRow(row);
    assert.equal(parsed.kind, 'unknown');
    assert.ok(parsed.kind === 'unknown' && parsed.row === row && /quantum_entangled/.test(parsed.reason));

    const misshapen = parseAuditRow({ ...rowsOf([started])[0]!, action: 'hold_placed', details: { why: 'renamed' } });
    assert.ok(misshapen.kind === 'unknown' && /details\.reason/.test(misshapen.reason), 'reason names the field');
  });

  it('the evidence report lists unknown rows instead of dropping them', () => {
    const rows = rowsOf([started, planMade]);
    rows.push({ ...rows[1]!, seq: 3, id: `${WORKFLOW}/${RUN}/3`, action: 'quantum_entangled', details: {} });
    const evidence = buildEvidence(rows, { ok: true, rows: 3 });
    assert.deepEqual(
      evidence.auditTrail.unrecognised.map((u) => [u.seq, u.action]),
      [[3, 'quantum_entangled']],
    );
    assert.match(evidenceToHtml(evidence), /Unrecognised events[\s\S]*quantum_entangled/);
  });

  it("per-system stage_verified rows: the stage is clean only when every system's row is", () => {
    const leftover: Leftover = {
      what: 'entitlement',
      system: 'github',
      entitlement: { kind: 'team', id: 'octo/admins' },
    };
    const rows = rowsOf([
      started,
      planMade,
      {
        action: 'stage_started',
        actor: 'workflow',
        system: 'directory',
        details: { stage: 'revoke', dueAt: new Date(T0).toISOString(), expedited: false },
      },
      {
        action: 'stage_started',
        actor: 'workflow',
        system: 'github',
        details: { stage: 'revoke', dueAt: new Date(T0).toISOString(), expedited: false },
      },
      verifiedIn('directory', []),
      verifiedIn('github', [leftover]),
    ]);
    const evidence = buildEvidence(rows, { ok: true, rows: rows.length });
    assert.equal(evidence.verification.length, 1, 'one entry per stage');
    const [revoke] = evidence.verification;
    assert.equal(revoke!.outcome, 'leftovers', "one system's leftover keeps the stage from being clean");
    assert.deepEqual(revoke!.leftovers, [leftover]);
    assert.deepEqual(
      revoke!.systems.map((s) => [s.system, s.outcome]),
      [
        ['directory', 'clean'],
        ['github', 'leftovers'],
      ],
    );
    assert.equal(evidence.plan.stages[0]!.startedAt, rows[2]!.occurredAt, 'the stage is dated by its first system');

    const clean = buildEvidence(rowsOf([started, planMade, verifiedIn('directory', []), verifiedIn('github', [])]), {
      ok: true,
      rows: 4,
    });
    assert.equal(clean.verification[0]!.outcome, 'clean');
  });

  it('old stage-wide and new per-system verification read the same way side by side', () => {
    const evidence = buildEvidence(
      rowsOf([
        started,
        planMade,
        {
          action: 'stage_verified',
          actor: 'workflow',
          outcome: 'clean',
          details: {
            stage: 'revoke',
            leftovers: [],
            lastRevokingStage: true,
            secondsSinceEffective: 1,
            secondsSinceReceived: 1,
          },
        },
      ]),
      { ok: true, rows: 3 },
    );
    assert.deepEqual(
      evidence.verification.map((v) => [v.stage, v.outcome, v.systems.map((s) => s.system)]),
      [['revoke', 'clean', [null]]],
    );
    assert.deepEqual(evidence.auditTrail.unrecognised, []);
  });

  it('the milestones are in the report and in the metrics, in fractions of a second', async () => {
    const metrics = createMetrics();
    const rows = rowsOf([
      started,
      planMade,
      {
        action: 'logins_disabled',
        actor: 'workflow',
        details: { millisecondsSinceReceived: 420, millisecondsSinceEffective: 400, systems: ['directory', 'github'] },
      },
      verifiedIn('directory', []),
      {
        action: 'revocation_verified',
        actor: 'workflow',
        details: {
          millisecondsSinceReceived: 2_750,
          millisecondsSinceEffective: 2_700,
          systems: ['directory', 'github'],
          leftovers: 0,
        },
      },
      // An old run's stage-wide row counts too, through the old fields.
      {
        action: 'stage_verified',
        actor: 'workflow',
        outcome: 'clean',
        details: {
          stage: 'revoke',
          leftovers: [],
          disablesLogin: true,
          lastRevokingStage: true,
          secondsSinceEffective: 3,
          secondsSinceReceived: 9,
        },
      },
      {
        action: 'disable_login',
        actor: 'workflow',
        system: 'directory',
        outcome: 'done',
        details: { actionId: 'revoke/directory/disable_login', stage: 'revoke', target: null, attempts: 1 },
      },
    ]);
    for (const row of rows) metrics.observe(row);
    const text = await metrics.registry.metrics();
    assert.match(text, /offboard_hr_event_to_logins_disabled_seconds_bucket\{le="0.5"\} 1/);
    assert.match(text, /offboard_hr_event_to_logins_disabled_seconds_bucket\{le="0.25"\} 0/);
    assert.match(text, /offboard_hr_event_to_revocation_seconds_bucket\{le="3"\} 1/, 'revocation_verified: 2.75 s');
    assert.match(text, /offboard_hr_event_to_revocation_seconds_bucket\{le="13"\} 2/, "and the old row's 9 s");
    assert.match(text, /offboard_hr_event_to_revocation_seconds_count 2/);
    assert.match(
      text,
      /offboard_effective_to_revocation_seconds_count 2/,
      'logins_disabled (0.4 s) and the old row (3 s)',
    );
    assert.match(text, /offboard_effective_to_revocation_seconds_bucket\{le="1"\} 1/);
    assert.match(text, /offboard_action_outcomes_total\{system="directory",action="disable_login",outcome="done"\} 1/);

    const evidence = buildEvidence(rows, { ok: true, rows: rows.length });
    assert.equal(evidence.milestones.loginsDisabled?.msSinceReceived, 420);
    assert.equal(evidence.milestones.revocationVerified?.systems.length, 2);
  });

  it('rows from before leftovers and tasks were typed read as the same typed values', () => {
    const rows = rowsOf([
      started,
      planMade,
      {
        action: 'stage_verified',
        actor: 'workflow',
        system: 'github',
        outcome: 'leftovers',
        details: { stage: 'revoke', leftovers: ['github: login still enabled', 'github: still in team octo/admins'] },
      },
      {
        action: 'manual_task_opened',
        actor: 'workflow',
        system: 'github',
        outcome: 'escalated',
        details: {
          taskId: 'verify/revoke/github/1',
          description: 'verification after stage revoke',
          error: 'still present: github: login still enabled',
        },
      },
      {
        action: 'manual_task_opened',
        actor: 'workflow',
        system: 'slack',
        outcome: 'escalated',
        details: { taskId: 'discover/slack', description: 'map access in slack', error: 'slack: invalid_auth' },
      },
    ]);
    const evidence = buildEvidence(rows, { ok: true, rows: rows.length });
    assert.deepEqual(evidence.verification[0]!.leftovers, [
      { what: 'login', system: 'github' },
      { what: 'entitlement', system: 'github', entitlement: { kind: 'team', id: 'octo/admins' } },
    ]);
    assert.deepEqual(
      evidence.manualTasks.map((t) => t.ref),
      [
        { kind: 'verify', stage: 'revoke', system: 'github', n: 1, leftover: { what: 'login', system: 'github' } },
        { kind: 'discover', system: 'slack' },
      ],
    );
    assert.deepEqual(
      evidence.sla.steps.filter((s) => s.source === 'verification').map((s) => [s.system, s.reference, s.outcome]),
      [['github', 'verify/revoke/github/1', 'failed']],
      'an open "login still enabled" task keeps the login step unproven',
    );
  });

  it("a writer's entry is checked against the contract at compile time", () => {
    // prettier-ignore
    // @ts-expect-error: stage_verified has `leftovers`, not `leftover`
    const renamed: AuditEntry = { action: 'stage_verified', actor: 'workflow', outcome: 'clean', details: { stage: 'revoke', leftover: [] } };
    // @ts-expect-error: no such action
    const unknown: AuditEntry = { action: 'stage_verifyed', actor: 'workflow', details: {} };
    assert.ok(renamed && unknown);
  });
});
