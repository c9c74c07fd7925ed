/**
 * The evidence report's verdict before any login was disabled: "found in no system" only when
 * every system was mapped and none has an account; a system whose access could not be mapped (a
 * task waiting for a person) is an offboarding blocked, by what, since when. Built from audit rows
 * as the workflow writes them (client/evidence.ts reads the audit log alone).
 */
import assert from 'node:assert/strict';
import type { VerifyResult } from '../activities/audit.js';
import { buildEvidence } from '../client/evidence.js';
import type { ChainedAuditEvent } from '../model/audit.js';

const OFFBOARDING = 'offboarding-E7001';
const CHAIN: VerifyResult = { ok: true, rows: 0 };
const T0 = Date.parse('2026-12-01T09:00:00Z');

function rows(
  ...events: Omit<
    ChainedAuditEvent,
    'id' | 'seq' | 'prevHash' | 'hash' | 'offboardingId' | 'employeeId' | 'occurredAt'
  >[]
) {
  return events.map((event, i) => ({
    ...event,
    id: `${OFFBOARDING}/run-1/${i + 1}`,
    seq: i + 1,
    prevHash: '0'.repeat(64),
    hash: String(i).padStart(64, '0'),
    offboardingId: OFFBOARDING,
    employeeId: 'E7001',
    occurredAt: new Date(T0 + i * 1000).toISOString(),
  }));
}

const start = [
  {
    action: 'offboarding_started',
    actor: 'hr-system',
    system: null,
    outcome: null,
    details: {
      requestId: 'hr-1',
      trigger: 'termination',
      reason: 'involuntary',
      effectiveAt: new Date(T0).toISOString(),
    },
  },
  {
    action: 'plan_made',
    actor: 'workflow',
    system: null,
    outcome: null,
    details: {
      playbook: 'involuntary',
      mode: 'immediate',
      slaDeadline: new Date(T0 + 3_600_000).toISOString(),
      stages: [{ name: 'revoke', dueAt: new Date(T0).toISOString() }],
      systems: ['directory', 'slack'],
    },
  },
  { action: 'stage_started', actor: 'workflow', system: 'directory', outcome: null, details: { stage: 'revoke' } },
  { action: 'stage_started', actor: 'workflow', system: 'slack', outcome: null, details: { stage: 'revoke' } },
];
const noneIn = (system: string) => ({
  action: 'access_discovered',
  actor: 'workflow',
  system,
  outcome: null,
  details: { stage: 'revoke', account: null, entitlements: [], credentials: 0 },
});

describe('evidence: blocked is not "found in no system"', () => {
  const now = new Date(T0 + 60_000);

  it('a system whose access could not be mapped blocks the offboarding: by what, since when', () => {
    const evidence = buildEvidence(
      rows(...start, noneIn('directory'), {
        action: 'manual_task_opened',
        actor: 'workflow',
        system: 'slack',
        outcome: 'escalated',
        details: {
          taskId: 'discover/slack',
          description: 'map access in slack',
          error: 'invalid_auth',
          dueAt: new Date(T0 + 3 * 86_400_000).toISOString(),
        },
      }),
      CHAIN,
      { now },
    );
    assert.equal(evidence.sla.verdict, 'pending');
    assert.match(
      evidence.sla.explanation,
      /^The offboarding is blocked by map access in slack \(task discover\/slack, open since .+: invalid_auth\)/,
    );
    assert.doesNotMatch(evidence.sla.explanation, /no account/i);
  });

  it('a system not mapped at all (still running) is said, not taken for "no account"', () => {
    const evidence = buildEvidence(rows(...start, noneIn('directory')), CHAIN, { now });
    assert.equal(evidence.sla.verdict, 'pending');
    assert.match(evidence.sla.explanation, /blocked by access in slack not mapped yet/);
  });

  it('every system mapped and none has an account: found in no system, naming them', () => {
    const evidence = buildEvidence(rows(...start, noneIn('directory'), noneIn('slack')), CHAIN, { now });
    assert.equal(evidence.sla.verdict, 'not_applicable');
    assert.match(evidence.sla.explanation, /^No account for this person was found in any system \(directory, slack\)/);
  });
});
