import assert from 'node:assert/strict';
import {
  actionsForStage,
  defaultPolicy,
  leftoversAfterStage,
  plan,
  policySchema,
  supersedingRequest,
  supersession,
  type Discovery,
  type OffboardingRequest,
} from '../model/index.js';
import { hrEventSchema, requestFromHrEvent } from '../model/hr-event.js';
import { offboardingRequestSchema } from '../model/request.js';
import { ConfigError, parseConfig } from '../workers/config.js';
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { projectRoot } from '../scripts/services.js';

const DAY = 86_400_000;
const effectiveAt = '2026-12-01T09:00:00.000Z';

function request(overrides: Partial<OffboardingRequest>): OffboardingRequest {
  return {
    requestId: 'hr-1',
    subject: { employeeId: 'E1' },
    trigger: 'termination',
    reason: 'voluntary',
    employmentType: 'employee',
    effectiveAt,
    requestedBy: 'hr',
    ...overrides,
  };
}

const offsets = (p: ReturnType<typeof plan>) =>
  p.stages.map((s) => [s.name, (Date.parse(s.dueAt) - Date.parse(effectiveAt)) / DAY]);
const kinds = (p: ReturnType<typeof plan>, stage: string) =>
  p.stages.find((s) => s.name === stage)!.steps.map((s) => ('scope' in s ? `${s.action}:${s.scope}` : s.action));

describe('plan()', () => {
  const policy = defaultPolicy();

  for (const employmentType of ['employee', 'contractor', 'vendor'] as const) {
    for (const reason of ['involuntary', 'security'] as const) {
      it(`${reason === 'involuntary' ? 'an' : 'a'} ${reason} termination of ${employmentType === 'employee' ? 'an' : 'a'} ${employmentType} is immediate: everything at the effective time, delete after 30 days`, () => {
        const p = plan(request({ reason, employmentType }), policy);
        assert.equal(p.mode, 'immediate');
        assert.equal(p.playbook, reason);
        assert.deepEqual(offsets(p), [
          ['revoke', 0],
          ['delete', 30],
        ]);
        assert.deepEqual(kinds(p, 'revoke'), [
          'disable_login',
          'revoke_sessions',
          'revoke_tokens',
          'remove_entitlement:all',
        ]);
        assert.equal(p.slaDeadline, '2026-12-01T10:00:00.000Z');
      });
    }
  }

  it('a voluntary employee is disabled at the effective time, loses entitlements a day later, is deleted after retention', () => {
    const p = plan(request({ reason: 'voluntary' }), policy);
    assert.equal(p.mode, 'staged');
    assert.deepEqual(offsets(p), [
      ['disable', 0],
      ['remove-entitlements', 1],
      ['delete', 30],
    ]);
    assert.deepEqual(kinds(p, 'disable'), ['disable_login', 'revoke_sessions', 'revoke_tokens']);
  });

  for (const employmentType of ['contractor', 'vendor'] as const) {
    it(`a ${employmentType}'s voluntary leave or contract end drops privileged access two days early`, () => {
      for (const r of [
        request({ reason: 'voluntary', employmentType }),
        request({ trigger: 'contract_end', reason: undefined, employmentType }),
      ]) {
        const p = plan(r, policy);
        assert.equal(p.playbook, 'contractor');
        assert.equal(p.mode, 'staged');
        assert.deepEqual(offsets(p), [
          ['drop-privileged', -2],
          ['disable', 0],
          ['delete', 30],
        ]);
        assert.deepEqual(kinds(p, 'drop-privileged'), ['remove_entitlement:privileged']);
      }
    });
  }

  it('a contract end of an employee (fixed-term) is staged like a contractor', () => {
    assert.equal(plan(request({ trigger: 'contract_end', reason: undefined }), policy).playbook, 'contractor');
  });

  it('a role change removes only what the new role does not grant, after the transition window, and keeps the account', () => {
    const custom = policySchema.parse({
      roles: { engineer: { directory: ['CN=Engineering,ou=groups'] } },
      privileged: { directory: ['cn=admins,ou=groups'] },
    });
    const p = plan(request({ trigger: 'role_change', reason: undefined, newRole: 'engineer' }), custom);
    assert.equal(p.playbook, 'role_change');
    assert.deepEqual(offsets(p), [['transition', 14]]);
    const found: Discovery = {
      system: 'directory',
      account: { id: 'uuid-1', disabled: false },
      entitlements: [
        { id: 'cn=engineering,ou=groups', kind: 'groupOfNames' },
        { id: 'cn=finance,ou=groups', kind: 'groupOfNames' },
        { id: 'cn=admins,ou=groups', kind: 'groupOfNames' },
      ],
      credentials: [],
    };
    const actions = actionsForStage(p.stages[0]!, [found], p);
    assert.deepEqual(
      actions.map((a) => `${a.kind} ${a.target?.id}`),
      ['remove_entitlement cn=finance,ou=groups', 'remove_entitlement cn=admins,ou=groups'],
      "the new role's group stays (compared case-insensitively)",
    );
    assert.ok(!actions.some((a) => a.kind === 'disable_login' || a.kind === 'delete_account'));
  });

  it('privileged scope takes only the configured privileged entitlements', () => {
    const custom = policySchema.parse({ privileged: { directory: ['cn=admins,ou=groups'] } });
    const p = plan(request({ trigger: 'contract_end', reason: undefined, employmentType: 'contractor' }), custom);
    const found: Discovery = {
      system: 'directory',
      account: { id: 'u', disabled: false },
      entitlements: [
        { id: 'cn=admins,ou=groups', kind: 'g' },
        { id: 'cn=staff,ou=groups', kind: 'g' },
      ],
      credentials: [],
    };
    assert.deepEqual(
      actionsForStage(p.stages[0]!, [found], p).map((a) => a.target?.id),
      ['cn=admins,ou=groups'],
    );
    assert.deepEqual(leftoversAfterStage(p.stages[0]!, [found], p), [
      { what: 'entitlement', system: 'directory', entitlement: { kind: 'g', id: 'cn=admins,ou=groups' } },
    ]);
  });

  it('after delete, a disabled account counts as gone where accounts cannot be deleted, and nowhere else', () => {
    const p = plan(request({ reason: 'involuntary' }), policy);
    const deleteStage = p.stages.find((s) => s.name === 'delete')!;
    const slack: Discovery = {
      system: 'slack',
      account: { id: 'W1', disabled: true },
      entitlements: [],
      credentials: [],
      permanentAccounts: true,
    };
    const ldap: Discovery = {
      system: 'directory',
      account: { id: 'u', disabled: true },
      entitlements: [],
      credentials: [],
    };
    assert.deepEqual(leftoversAfterStage(deleteStage, [slack, ldap], p), [{ what: 'account', system: 'directory' }]);
    assert.deepEqual(leftoversAfterStage(deleteStage, [{ ...slack, account: { id: 'W1', disabled: false } }], p), [
      { what: 'account', system: 'slack' },
    ]);
  });

  it('is pure: the same request and policy give the same plan', () => {
    assert.deepEqual(plan(request({}), policy), plan(request({}), policy));
  });

  it('stages come out in time order whatever order the config lists them in', () => {
    const custom = policySchema.parse({
      playbooks: {
        voluntary: {
          mode: 'staged',
          sla: '1d',
          stages: [
            { name: 'late', after: '7d', steps: [{ action: 'delete_account' }] },
            { name: 'early', after: '0s', steps: [{ action: 'disable_login' }] },
          ],
        },
      },
    });
    assert.deepEqual(
      plan(request({}), custom).stages.map((s) => s.name),
      ['early', 'late'],
    );
  });
});

describe('config validation', () => {
  const env = { LDAP_PW: 'secret' };
  const ldap = {
    type: 'ldap',
    url: 'ldap://127.0.0.1:389',
    bindDn: 'cn=x',
    bindPassword: { env: 'LDAP_PW' },
    peopleBase: 'ou=p',
    groupsBase: 'ou=g',
  };
  const problem = (raw: unknown) => {
    try {
      parseConfig(raw, 'offboard.config.yaml', env);
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.message;
    }
    assert.fail('expected the config to be refused');
  };

  it('accepts an empty config (all defaults) and a full one', () => {
    assert.equal(parseConfig({}, 'x', env).policy.retry.maximumAttempts, 8);
    const config = parseConfig({ systems: { directory: ldap }, policy: { retry: { maximumAttempts: 4 } } }, 'x', env);
    const directory = config.systems.directory;
    assert.equal(directory?.type === 'ldap' && directory.bindPassword, 'secret');
    assert.equal(config.policy.retry.maximumAttempts, 4);
    assert.equal(config.policy.playbooks.involuntary.stages[1]!.after, 30 * DAY);
  });

  it('names the field and the fix for every kind of mistake', () => {
    assert.match(
      problem({ systems: { directory: { ...ldap, url: 'http://x' } } }),
      /systems\.directory\.url: an ldap:\/\/ or ldaps:\/\/ URL/,
    );
    assert.match(
      problem({ systems: { directory: { ...ldap, bindPassword: 'hunter2' } } }),
      /systems\.directory\.bindPassword: write secrets as \{ env: VARIABLE_NAME \}/,
    );
    assert.match(
      problem({ systems: { directory: { ...ldap, bindPassword: { env: 'MISSING_PW' } } } }),
      /systems\.directory\.bindPassword: environment variable MISSING_PW is not set/,
    );
    assert.match(problem({ systems: { directory: { ...ldap, type: 'ldapp' } } }), /systems\.directory\.type/);
    assert.match(
      problem({
        policy: {
          playbooks: {
            voluntary: {
              mode: 'staged',
              sla: '1d',
              stages: [{ name: 'x', after: 'tomorrow', steps: [{ action: 'disable_login' }] }],
            },
          },
        },
      }),
      /policy\.playbooks\.voluntary\.stages\.0\.after: "tomorrow" is not a duration/,
    );
    assert.match(
      problem({
        policy: {
          playbooks: {
            voluntary: {
              mode: 'staged',
              sla: '1d',
              stages: [{ name: 'verify', after: '0s', steps: [{ action: 'disable_login' }] }],
            },
          },
        },
      }),
      /policy\.playbooks\.voluntary\.stages\.0\.name: "discover", "verify" and "cancel" name kinds of manual task/,
    );
    assert.match(problem({ policy: { retry: { maximumAttempts: 0 } } }), /policy\.retry\.maximumAttempts/);
    assert.match(problem({ polcy: {} }), /polcy/);
    assert.match(
      problem({
        policy: {
          playbooks: {
            voluntary: {
              mode: 'staged',
              sla: '1d',
              stages: [{ name: 'x', after: '1d', steps: [{ action: 'drop_tables' }] }],
            },
          },
        },
      }),
      /policy\.playbooks\.voluntary\.stages\.0\.steps\.0/,
    );
  });

  it('an invalid config file stops the worker at start-up, naming the file and the field', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'offboard-config-')), 'offboard.config.yaml');
    writeFileSync(path, 'policy:\n  retry:\n    maximumAttempts: many\n');
    const result = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        ['--import', 'tsx', join(projectRoot, 'workers', 'worker.ts')],
        { env: { ...process.env, OFFBOARD_CONFIG: path, TEMPORAL_ADDRESS: '127.0.0.1:1' } },
        (error, _out, stderr) => resolve({ code: error && typeof error.code === 'number' ? error.code : 0, stderr }),
      );
    });
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`invalid config in ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    assert.match(result.stderr, /policy\.retry\.maximumAttempts/);
  });
});

describe('HR event → offboarding request', () => {
  const event = {
    eventId: 'hris-42',
    type: 'termination',
    employeeId: 'E1040',
    reason: 'voluntary',
    effectiveAt: '2030-01-01T17:00:00+01:00',
  };

  it('carries the manager HR names (either field), and leaves manager out when HR names none', () => {
    const withManager = hrEventSchema.parse({
      ...event,
      managerEmployeeId: 'E1000',
      managerEmail: 'keeper@example.org',
    });
    assert.deepEqual(requestFromHrEvent(withManager, 'hr-system')?.manager, {
      employeeId: 'E1000',
      email: 'keeper@example.org',
    });
    const emailOnly = hrEventSchema.parse({ ...event, managerEmail: 'keeper@example.org' });
    assert.deepEqual(requestFromHrEvent(emailOnly, 'hr-system')?.manager, { email: 'keeper@example.org' });
    const request = requestFromHrEvent(hrEventSchema.parse(event), 'hr-system');
    assert.equal(request && 'manager' in request, false);
    assert.ok(offboardingRequestSchema.safeParse(requestFromHrEvent(withManager, 'hr-system')).success);
  });

  it('refuses a manager that is neither an id nor an email, naming the field', () => {
    const bad = hrEventSchema.safeParse({ ...event, managerEmail: 'the boss', managerEmployeeId: 'Jane Doe' });
    assert.deepEqual(bad.error?.issues.map((i) => i.path.join('.')).sort(), ['managerEmail', 'managerEmployeeId']);
    const empty = offboardingRequestSchema.safeParse({
      ...requestFromHrEvent(hrEventSchema.parse(event), 'hr-system'),
      manager: {},
    });
    assert.match(empty.error?.issues[0]?.message ?? '', /give the manager's employeeId or email/);
  });
});

describe('supersession(): what a second HR event does to a running offboarding', () => {
  const base: OffboardingRequest = {
    requestId: 'hr-1',
    subject: { employeeId: 'E1040' },
    trigger: 'termination',
    reason: 'voluntary',
    employmentType: 'employee',
    effectiveAt: '2030-01-15T17:00:00Z',
    requestedBy: 'hr-system',
  };
  const next = (overrides: Partial<OffboardingRequest>): OffboardingRequest => ({
    ...base,
    requestId: 'hr-2',
    ...overrides,
  });

  it('replaces the plan when the event goes further, sooner, or to another role', () => {
    assert.equal(supersession(base, next({ reason: 'security' })).supersedes, true);
    assert.equal(supersession(base, next({ reason: 'involuntary' })).supersedes, true);
    assert.equal(
      supersession(next({ trigger: 'role_change', reason: undefined, newRole: 'sales' }), base).supersedes,
      true,
      'a termination during a role change',
    );
    assert.deepEqual(supersession(base, next({ effectiveAt: '2030-01-10T17:00:00Z' })), {
      supersedes: true,
      why: 'the effective time moves earlier, to 2030-01-10T17:00:00Z',
    });
    const roleChange = next({ trigger: 'role_change', reason: undefined, newRole: 'sales' });
    assert.equal(supersession(roleChange, { ...roleChange, requestId: 'hr-3', newRole: 'support' }).supersedes, true);
  });

  it('never delays or softens: a milder event or a later date leaves the plan as it is', () => {
    assert.equal(supersession(next({ reason: 'security' }), base).supersedes, false);
    assert.equal(
      supersession(base, next({ trigger: 'role_change', reason: undefined, newRole: 'sales' })).supersedes,
      false,
    );
    assert.match(
      supersession(base, next({ effectiveAt: '2030-02-01T17:00:00Z' })).why,
      /does not delay an offboarding: hold it instead/,
    );
    assert.equal(
      supersession(next({ trigger: 'contract_end', reason: undefined }), base).supersedes,
      false,
      'a voluntary termination goes less far than a contract end',
    );
    assert.equal(
      supersession(base, next({ trigger: 'contract_end', reason: undefined })).supersedes,
      true,
      'and a contract end further than a voluntary termination',
    );
  });

  it('plans the superseding event from the earlier of the two effective times, with what both know of the person', () => {
    const merged = supersedingRequest(
      { ...base, subject: { employeeId: 'E1040', email: 'p@example.org' } },
      next({ reason: 'security', effectiveAt: '2030-03-01T00:00:00Z' }),
    );
    assert.equal(merged.effectiveAt, base.effectiveAt);
    assert.equal(merged.subject.email, 'p@example.org');
    assert.equal(merged.reason, 'security');
  });
});
