/**
 * The offboarding workflow on Temporal's time-skipping test server, with the real default
 * durations (days), against the real slapd and PostgreSQL: each test offboards its own sample
 * person and asserts what the directory and the audit log hold afterwards.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import type { WorkflowHandle } from '@temporalio/client';
import { formatStatus } from '../client/cli.js';
import { buildEvidence } from '../client/evidence.js';
import { sendCommand, startOffboarding, CommandRefusedError } from '../client/temporal.js';
import type { OffboardingRequest } from '../model/request.js';
import { freePort } from '../scripts/services.js';
import { createOffboardingWorker } from '../workers/create-worker.js';
import type { OffboardingStatus } from '../workflows/messages.js';
import type { offboarding } from '../workflows/offboarding.js';
import { auditRowsOf } from './helpers/audit-rows.js';
import {
  canBind,
  directoryState,
  eventually,
  sharedPool,
  sharedSlapd,
  skipAhead,
  testConfig,
  timeSkippingEnvironment,
  workflowBundle,
} from './helpers/environment.js';
import type { ConfigInput } from '../workers/config.js';
import { createMetrics, startMetricsServer, type Metrics } from '../workers/metrics.js';
import { slackUserIdFor, startSlackSandbox, SLACK_SANDBOX_TEAM_ID, SLACK_SANDBOX_TOKENS } from '../sandbox/slack.js';
import { samplePerson } from '../sandbox/org.js';

const DAY = 86_400_000;
const HOUR = 3_600_000;
const ALL_GROUPS_OF = (groups: string[]) => groups.length > 0;

describe('offboarding workflow (time-skipping server, real slapd and PostgreSQL)', function () {
  let env: TestWorkflowEnvironment;

  // A fresh test server for every test. The server stops skipping time while any workflow task
  // or activity is outstanding; a workflow left running by an earlier test, whose worker is gone,
  // would hold that lock the moment one of its timers fires and make every later sleep wait in
  // real time. One server per test (≈0.3 s to start) keeps the tests independent.
  beforeEach(async function () {
    this.timeout(120_000); // the first one also starts slapd and PostgreSQL and bundles the workflow
    env = await timeSkippingEnvironment();
  });

  // A test that failed or timed out may leave its worker polling; it must stop before the
  // connection it holds can close, or the teardown fails and mocha skips every later test.
  const running = new Set<Worker>();
  afterEach(async function () {
    this.timeout(60_000);
    for (const worker of running) if (worker.getState() === 'RUNNING') worker.shutdown();
    await eventually(
      async () => [...running].map((w) => w.getState()),
      (states) => states.every((state) => state === 'STOPPED' || state === 'FAILED'),
      'the workers to stop',
    );
    running.clear();
    await env?.teardown();
  });

  /** Runs `body` with a worker on its own task queue; `systems` adds systems to the test config. */
  async function withWorker<T>(
    body: (taskQueue: string) => Promise<T>,
    systems?: ConfigInput['systems'],
    extra: Omit<NonNullable<Parameters<typeof testConfig>[0]>, 'systems'> & { metrics?: Metrics } = {},
  ): Promise<T> {
    const taskQueue = `test-${randomUUID()}`;
    const worker: Worker = await createOffboardingWorker({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      config: await testConfig({ systems, ...extra }),
      metrics: extra.metrics,
      pool: await sharedPool(),
      taskQueue,
      workflowBundle: await workflowBundle(),
    });
    running.add(worker);
    const work = body(taskQueue);
    // A body that outlives its test (a timeout) fails later against a closed connection; that
    // failure belongs to the test already reported, not to whichever test runs then.
    work.catch(() => undefined);
    return worker.runUntil(work);
  }

  function request(employeeId: string, overrides: Partial<OffboardingRequest> = {}): OffboardingRequest {
    return {
      requestId: `hr-${randomUUID()}`,
      subject: { employeeId },
      trigger: 'termination',
      reason: 'involuntary',
      employmentType: 'employee',
      effectiveAt: new Date(Date.now()).toISOString(),
      requestedBy: 'hr-system',
      ...overrides,
    };
  }

  async function start(taskQueue: string, input: OffboardingRequest) {
    // Effective times are relative to the test server's clock, which skips ahead of the wall clock.
    const now = await env.currentTimeMs();
    const shifted = {
      ...input,
      effectiveAt: new Date(now + (Date.parse(input.effectiveAt) - Date.now())).toISOString(),
    };
    // The test server has no custom search attributes; the dev-server tests cover them.
    const started = await startOffboarding(env.client, shifted, { taskQueue, searchAttributes: false });
    return env.client.workflow.getHandle<typeof offboarding>(started.workflowId, started.runId);
  }

  const status = (handle: WorkflowHandle) => handle.query<OffboardingStatus>('status');
  const waitFor = (handle: WorkflowHandle, done: (s: OffboardingStatus) => boolean, what: string) =>
    eventually(() => status(handle), done, what);
  const stageFinished = (name: string) => (s: OffboardingStatus) =>
    s.stages.some((stage) => stage.name === name && stage.finishedAt);

  const auditActions = (handle: WorkflowHandle) => auditRowsOf(handle);

  it('immediate: locks the account and removes every group at the effective time, deletes after retention', async () => {
    await withWorker(async (taskQueue) => {
      assert.ok(ALL_GROUPS_OF((await directoryState('E1001')).groups));
      const handle = await start(taskQueue, request('E1001'));
      const afterRevoke = await waitFor(handle, stageFinished('revoke'), 'the revoke stage');
      assert.equal(afterRevoke.mode, 'immediate');
      assert.match(afterRevoke.accounts.directory ?? '', /^[0-9a-f-]{36}$/, 'the entry found, by entryUUID');
      assert.deepEqual(await directoryState('E1001'), { exists: true, locked: true, groups: [] });
      assert.equal(await canBind('E1001'), false, 'a locked person cannot log in');
      assert.ok(
        afterRevoke.actions.every((a) => ['done', 'not_applicable'].includes(a.state)),
        JSON.stringify(afterRevoke.actions),
      );

      const result = await handle.result(); // skips the 30-day retention
      assert.equal(result.phase, 'completed');
      assert.equal((await directoryState('E1001')).exists, false, 'the entry is deleted after retention');

      const events = await auditActions(handle);
      const removals = events.filter((e) => e.action === 'remove_entitlement');
      assert.equal(removals.length, 6, 'one audit row per group removed');
      assert.equal(new Set(events.map((e) => e.id)).size, events.length);
      assert.ok(events.some((e) => e.action === 'offboarding_completed'));
    });
  });

  it('staged (voluntary): disables at the effective time and removes groups a day later', async () => {
    await withWorker(async (taskQueue) => {
      const before = await directoryState('E1002');
      assert.equal(before.locked, false);
      const handle = await start(taskQueue, request('E1002', { reason: 'voluntary' }));
      await waitFor(handle, stageFinished('disable'), 'the disable stage');
      assert.deepEqual(await directoryState('E1002'), { ...before, locked: true }, 'groups stay until their stage');
      const waiting = await status(handle);
      assert.equal(waiting.nextStage?.name, 'remove-entitlements');

      await skipAhead(env, DAY + 60_000);
      await waitFor(handle, stageFinished('remove-entitlements'), 'the remove-entitlements stage');
      assert.deepEqual(await directoryState('E1002'), { exists: true, locked: true, groups: [] });
    });
  });

  it('a future-dated request waits durably until its effective time', async () => {
    await withWorker(async (taskQueue) => {
      const before = await directoryState('E1003');
      const handle = await start(
        taskQueue,
        request('E1003', { effectiveAt: new Date(Date.now() + 3 * DAY).toISOString() }),
      );
      await waitFor(handle, (s) => s.phase === 'waiting', 'waiting for the effective time');
      await skipAhead(env, 2 * DAY);
      assert.equal((await status(handle)).phase, 'waiting');
      assert.deepEqual(await directoryState('E1003'), before, 'nothing changes before the effective time');

      await skipAhead(env, DAY + 60_000);
      await waitFor(handle, stageFinished('revoke'), 'the revoke stage');
      assert.deepEqual(await directoryState('E1003'), { exists: true, locked: true, groups: [] });
    });
  });

  it('hold delays the next stage until release', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await start(taskQueue, request('E1004', { reason: 'voluntary' }));
      await waitFor(handle, stageFinished('disable'), 'the disable stage');
      const groups = (await directoryState('E1004')).groups;
      assert.match(
        await sendCommand(env.client, 'E1004', 'hold', { by: 'manager-7', reason: 'handover of the finance reports' }),
        /held/,
      );
      await skipAhead(env, 3 * DAY);
      const held = await status(handle);
      assert.equal(held.phase, 'held');
      assert.equal(held.holds[0]?.by, 'manager-7');
      assert.deepEqual((await directoryState('E1004')).groups, groups, 'no group is removed while held');

      await sendCommand(env.client, 'E1004', 'release', { by: 'manager-7', reason: 'handover done' });
      await waitFor(handle, stageFinished('remove-entitlements'), 'the stage after release');
      assert.deepEqual((await directoryState('E1004')).groups, []);
      const events = await auditActions(handle);
      assert.ok(
        events.some(
          (e) =>
            e.action === 'hold_placed' &&
            e.actor === 'manager-7' &&
            e.details.reason === 'handover of the finance reports',
        ),
      );
      assert.ok(events.some((e) => e.action === 'hold_released' && e.actor === 'manager-7'));
    });
  });

  it('a hold with `until` expires by itself', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await start(taskQueue, request('E1005', { reason: 'voluntary' }));
      await waitFor(handle, stageFinished('disable'), 'the disable stage');
      const until = new Date((await env.currentTimeMs()) + 3 * DAY).toISOString();
      await sendCommand(env.client, 'E1005', 'hold', { by: 'manager-2', reason: 'knowledge transfer', until });
      await skipAhead(env, 2 * DAY);
      assert.equal((await status(handle)).phase, 'held');
      assert.ok((await directoryState('E1005')).groups.length > 0);

      await skipAhead(env, DAY + 60_000);
      await waitFor(handle, stageFinished('remove-entitlements'), 'the stage after the hold expired');
      assert.deepEqual((await directoryState('E1005')).groups, []);
      assert.ok((await auditActions(handle)).some((e) => e.action === 'hold_expired'));
    });
  });

  it('expedite lifts holds and runs every remaining stage now', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await start(
        taskQueue,
        request('E1006', { reason: 'voluntary', effectiveAt: new Date(Date.now() + 5 * DAY).toISOString() }),
      );
      await waitFor(handle, (s) => s.phase === 'waiting', 'waiting');
      await sendCommand(env.client, 'E1006', 'hold', { by: 'manager-3', reason: 'pending review' });
      await sendCommand(env.client, 'E1006', 'expedite', {
        by: 'security-oncall',
        reason: 'credential misuse detected',
      });
      const final = await waitFor(handle, (s) => s.phase === 'completed', 'completion');
      assert.deepEqual(final.holds, []);
      assert.equal(final.expedited?.by, 'security-oncall');
      assert.equal((await directoryState('E1006')).exists, false, 'even the delete stage ran');
      const events = await auditActions(handle);
      assert.ok(events.some((e) => e.action === 'expedited' && e.details.holdsLifted === 1));
      assert.ok(events.filter((e) => e.action === 'stage_started').every((e) => e.actor === 'security-oncall'));
    });
  });

  it('cancel stops the offboarding and re-enables the login it disabled', async () => {
    await withWorker(async (taskQueue) => {
      const before = await directoryState('E1007');
      const handle = await start(taskQueue, request('E1007', { reason: 'voluntary' }));
      await waitFor(handle, stageFinished('disable'), 'the disable stage');
      assert.equal((await directoryState('E1007')).locked, true);
      await sendCommand(env.client, 'E1007', 'cancel', { by: 'hr-system', reason: 'termination rescinded' });
      const result = await handle.result();
      assert.equal(result.phase, 'cancelled');
      assert.deepEqual(await directoryState('E1007'), before, 'unlocked, and the groups were never removed');
      assert.equal(await canBind('E1007'), true);
      const events = await auditActions(handle);
      assert.ok(events.some((e) => e.action === 'enable_login' && e.outcome === 'done' && e.actor === 'hr-system'));
      assert.ok(events.some((e) => e.action === 'offboarding_cancelled'));
    });
  });

  it('a failure that retries cannot fix becomes a manual task; retry and skip resolve it', async () => {
    const unreachable = await freePort(); // nothing listens there: every attempt fails
    const ldap = await sharedSlapd();
    await withWorker(
      async (taskQueue) => {
        const handle = await start(taskQueue, request('E1008'));
        // 1. The legacy directory is down: three attempts, then a manual task; the operator skips it.
        const stuck = await waitFor(
          handle,
          (s) => s.manualTasks.some((t) => t.id === 'discover/legacy-directory' && t.state === 'open'),
          'a manual task for the unreachable system',
        );
        assert.match(
          stuck.manualTasks.find((t) => t.id === 'discover/legacy-directory')!.error,
          /LDAP discover failed/,
        );
        await sendCommand(env.client, 'E1008', 'skip', {
          by: 'it-operator',
          actionId: 'discover/legacy-directory',
          reason: 'decommissioned last quarter',
        });

        // 2. hr-records is managed by another team: removal is refused (not retryable), so a person does it.
        const actionId = 'revoke/directory/remove_entitlement/cn=hr-records,ou=groups,dc=example,dc=org';
        const refused = await waitFor(
          handle,
          (s) => s.manualTasks.some((t) => t.id === actionId && t.state === 'open'),
          'a manual task for hr-records',
        );
        assert.match(refused.manualTasks.find((t) => t.id === actionId)!.error, /insufficientAccessRights/);
        assert.deepEqual((await directoryState('E1008')).groups, ['hr-records']);
        await removeMemberAsAdmin(ldap, 'hr-records', 'E1008');
        assert.equal(
          await sendCommand(env.client, 'E1008', 'retry', { by: 'it-operator', actionId }),
          `retrying ${actionId}`,
        );
        const done = await waitFor(handle, stageFinished('revoke'), 'the revoke stage');
        assert.equal(done.actions.find((a) => a.id === actionId)?.state, 'already');
        assert.equal(done.manualTasks.find((t) => t.id === actionId)?.state, 'resolved');
        assert.deepEqual(done.systems, ['directory'], 'the skipped system is out of this offboarding');

        // The status can answer before the activation's audit batch is in the table.
        const events = await eventually(
          () => auditActions(handle),
          (rows) => rows.some((e) => e.action === 'manual_task_resolved'),
          'the manual_task_resolved row',
        );
        assert.ok(
          events.some(
            (e) =>
              e.action === 'manual_task_skipped' &&
              e.actor === 'it-operator' &&
              e.details.reason === 'decommissioned last quarter',
          ),
        );
        assert.ok(events.some((e) => e.action === 'manual_task_retried' && e.actor === 'it-operator'));
        assert.ok(
          events.some(
            (e) => e.action === 'remove_entitlement' && e.outcome === 'failed' && e.details.stage === 'revoke',
          ),
        );
        assert.deepEqual(
          events.filter((e) => e.action === 'manual_task_resolved').map((e) => e.details),
          [{ taskId: actionId, how: 'retried' }],
          'the retry that worked is on record',
        );
        const evidence = buildEvidence(events, { ok: true, rows: events.length });
        assert.deepEqual(evidence.manualTasks.find((t) => t.id === actionId)?.resolution?.how, 'retried');
        assert.equal(
          evidence.manualTasks.find((t) => t.id === actionId)?.resolution?.by,
          'it-operator',
          'the operator who retried',
        );
      },
      {
        'legacy-directory': {
          type: 'ldap',
          url: `ldap://127.0.0.1:${unreachable}`,
          bindDn: ldap.serviceDn,
          bindPassword: { env: 'TEST_LDAP_PASSWORD' },
          peopleBase: ldap.peopleBase,
          groupsBase: ldap.groupsBase,
          timeoutMs: 1_000,
        },
      },
    );
  });

  it('an app with no API becomes a task for its owner, with reminders, escalation when overdue, and confirmation by skip', async () => {
    await withWorker(
      async (taskQueue) => {
        const handle = await start(taskQueue, request('E1020'));
        const taskId = 'revoke/payroll/disable_login';
        const opened = await waitFor(
          handle,
          (s) => s.manualTasks.some((t) => t.id === taskId && t.state === 'open'),
          'the payroll task',
        );
        assert.match(
          opened.manualTasks.find((t) => t.id === taskId)!.error,
          /manual task for payroll-team: disable the login of E1020 in Legacy payroll/,
        );
        await eventually(
          () => directoryState('E1020'),
          (d) => d.locked && d.groups.length === 0,
          'the directory revoked meanwhile',
        );

        await skipAhead(env, DAY + 60_000);
        await waitFor(handle, (s) => s.manualTasks.find((t) => t.id === taskId)!.reminders === 1, 'one reminder');
        await skipAhead(env, 3 * DAY);
        await waitFor(
          handle,
          (s) => s.manualTasks.find((t) => t.id === taskId)!.reminders === 4,
          'reminders until overdue',
        );
        await sendCommand(env.client, 'E1020', 'skip', {
          by: 'it-operator',
          actionId: taskId,
          reason: 'payroll-team confirmed removal on ticket PAY-118',
        });
        const done = await waitFor(handle, stageFinished('revoke'), 'the revoke stage');
        assert.equal(done.actions.find((a) => a.id === taskId)?.state, 'skipped');

        const events = await auditActions(handle);
        assert.equal(
          events.filter((e) => e.action === 'manual_task_reminder').length,
          2,
          'reminders while within the 3-day window',
        );
        assert.ok(events.filter((e) => e.action === 'manual_task_overdue').length >= 1, 'escalated once overdue');
        assert.ok(
          events.some(
            (e) =>
              e.action === 'manual_task_skipped' &&
              e.details.reason === 'payroll-team confirmed removal on ticket PAY-118',
          ),
        );
        assert.equal(
          events.find((e) => e.action === 'stage_verified')?.outcome,
          'clean',
          'the manual system is left out of verification',
        );
      },
      { payroll: { type: 'manual', app: 'Legacy payroll', owner: 'payroll-team' } },
    );
  });

  it('the IT channel hears of the start, each manual task and the end, with identifiers only', async () => {
    const slack = await startSlackSandbox();
    try {
      await withWorker(
        async (taskQueue) => {
          const handle = await start(
            taskQueue,
            request('E1021', { subject: { employeeId: 'E1021', email: samplePerson('E1021').email } }),
          );
          await waitFor(handle, (s) => s.manualTasks.some((t) => t.state === 'open'), 'the payroll task');
          await sendCommand(env.client, 'E1021', 'skip', {
            by: 'it-operator',
            actionId: 'revoke/payroll/disable_login',
            reason: 'confirmed',
          });
          await sendCommand(env.client, 'E1021', 'expedite', { by: 'security', reason: 'finish now' });
          await waitFor(
            handle,
            (s) => s.manualTasks.some((t) => t.id === 'delete/payroll/delete_account' && t.state === 'open'),
            'the payroll delete task',
          );
          await sendCommand(env.client, 'E1021', 'skip', {
            by: 'it-operator',
            actionId: 'delete/payroll/delete_account',
            reason: 'confirmed',
          });
          await handle.result();
          const texts = await eventually(
            async () => slack.state.messages.filter((m) => m.channel === 'C0OFFBOARD').map((m) => m.text),
            (t) => t.some((x) => x.startsWith('[completed]')),
            'the completion message',
          );
          assert.match(texts[0]!, /^\[started\] offboarding-E1021: involuntary offboarding \(immediate\)/);
          assert.ok(
            texts.some((t) => /^\[manual_task\] offboarding-E1021: needs a person: disable_login in payroll/.test(t)),
            texts.join('\n'),
          );
          assert.ok(
            texts.every((t) => !t.includes(samplePerson('E1021').email) && !t.includes(samplePerson('E1021').sn)),
            'no email or name in any message',
          );

          // The manager the directory names (the keeper) hears of the start and the end by direct
          // message, and not of the tasks that are IT's work.
          const direct = slack.state.messages
            .filter((m) => m.channel === `D${slackUserIdFor('E1000')}`)
            .map((m) => m.text);
          assert.deepEqual(
            direct.map((t) => /^\[(\w+)\]/.exec(t)?.[1]),
            ['started', 'completed'],
            direct.join('\n'),
          );
          assert.ok(
            direct.every((t) => t.includes('offboarding-E1021') && !t.includes(samplePerson('E1021').email)),
            direct.join('\n'),
          );
          const events = await auditActions(handle);
          assert.deepEqual(
            events.find((e) => e.action === 'identity_correlated' && e.details.field === 'managerEmail')?.details.from,
            ['directory'],
          );
          assert.ok(!events.some((e) => e.action === 'notification_failed'), 'every notification delivered');
        },
        { payroll: { type: 'manual', app: 'Legacy payroll', owner: 'payroll-team' } },
        {
          notifications: {
            slack: { token: { env: 'TEST_SLACK_BOT_TOKEN' }, channel: '#offboarding', apiUrl: slack.apiUrl },
          },
          env: { TEST_SLACK_BOT_TOKEN: SLACK_SANDBOX_TOKENS.bot },
        },
      );
    } finally {
      await slack.stop();
    }
  });

  it('a task the operator skipped stays skipped through the recheck: the README example ends clean', async () => {
    const slack = await startSlackSandbox();
    try {
      await withWorker(
        async (taskQueue) => {
          // E1004's Slack account, the last member of @release-captains (Slack cannot leave a group
          // empty), under an employee id the directory does not know: E1004's directory entry is
          // the hold test's.
          const subject = { employeeId: 'E1099', email: samplePerson('E1004').email };
          const handle = await start(taskQueue, request('E1099', { subject }));
          const taskId = 'revoke/slack/remove_entitlement/S0RELEASE';
          await waitFor(
            handle,
            (s) => s.manualTasks.some((t) => t.id === taskId && t.state === 'open'),
            'the task for @release-captains',
          );
          await sendCommand(env.client, 'E1099', 'skip', {
            by: 'it-operator',
            actionId: taskId,
            reason: 'group disabled by its owner (IT-4471)',
          });
          const done = await waitFor(handle, stageFinished('revoke'), 'the revoke stage');
          assert.deepEqual(
            done.manualTasks.map((t) => [t.id, t.state]),
            [[taskId, 'skipped']],
            'the recheck opened no task of its own',
          );
          assert.ok(
            slack.state.usergroups.S0RELEASE!.users.includes(slackUserIdFor('E1004')),
            'still in the group, as the operator left it: the read-back saw it',
          );
          const events = await auditActions(handle);
          const verified = events.filter((e) => e.action === 'stage_verified' && e.system === 'slack');
          assert.deepEqual(
            verified.map((e) => [e.details.stage, e.outcome, e.details.skippedByOperator]),
            [['revoke', 'clean', [taskId]]],
          );
          assert.deepEqual(
            events.filter((e) => e.action === 'manual_task_opened').map((e) => e.details.taskId),
            [taskId],
          );
          assert.ok(!events.some((e) => e.action === 'remove_entitlement' && e.details.stage === 'revoke-recheck'));
        },
        ...slackSystem(slack),
      );
    } finally {
      await slack.stop();
    }
  });

  it('without an email from HR, the email the directory holds finds the Slack account', async () => {
    const slack = await startSlackSandbox();
    try {
      await withWorker(
        async (taskQueue) => {
          const handle = await start(taskQueue, request('E1022')); // no email in the request
          const done = await waitFor(handle, stageFinished('revoke'), 'the revoke stage');
          const userId = slackUserIdFor('E1022');
          assert.equal(done.accounts.slack, userId);
          assert.ok(
            slack.state.workspaceRemovals.some((r) => r.userId === userId),
            'removed from the workspace',
          );
          assert.ok(
            Object.values(slack.state.usergroups).every((g) => !g.users.includes(userId)),
            'out of every user group',
          );
          const events = await auditActions(handle);
          assert.deepEqual(
            events.find((e) => e.action === 'identity_correlated' && e.details.field === 'email')?.details,
            { field: 'email', from: ['directory'] },
          );
        },
        ...slackSystem(slack),
      );
    } finally {
      await slack.stop();
    }
  });

  it('Prometheus metrics count offboardings, outcomes per system, escalations and time to revocation', async () => {
    const metrics = createMetrics();
    const served = await startMetricsServer(metrics, 0);
    try {
      await withWorker(
        async (taskQueue) => {
          // HR reports the termination two hours ahead of its effective time.
          const handle = await start(
            taskQueue,
            request('E1023', { effectiveAt: new Date(Date.now() + 2 * HOUR).toISOString() }),
          );
          await skipAhead(env, 2 * HOUR + 60_000);
          await waitFor(handle, (s) => s.manualTasks.some((t) => t.state === 'open'), 'the payroll task');
          await sendCommand(env.client, 'E1023', 'skip', {
            by: 'it-operator',
            actionId: 'revoke/payroll/disable_login',
            reason: 'confirmed',
          });
          await waitFor(handle, stageFinished('revoke'), 'the revoke stage');
          const text = await eventually(
            async () => (await fetch(served.url)).text(),
            (t) => /offboard_hr_event_to_revocation_seconds_count 1/.test(t),
            'the histogram',
          );
          // From the HR event: the two hours' wait and the revocation; from the effective time: the revocation alone.
          const sum = (name: string) => Number(new RegExp(`^${name}_sum (\\S+)$`, 'm').exec(text)?.[1]);
          assert.ok(sum('offboard_hr_event_to_revocation_seconds') >= 2 * 3600, text);
          assert.ok(sum('offboard_effective_to_revocation_seconds') < 2 * 3600, text);
          assert.match(text, /offboard_effective_to_revocation_seconds_count 1/);
          assert.match(text, /offboard_offboardings_total\{state="started"\} 1/);
          assert.match(
            text,
            /offboard_action_outcomes_total\{system="directory",action="disable_login",outcome="done"\} 1/,
          );
          assert.match(
            text,
            /offboard_action_outcomes_total\{system="directory",action="remove_entitlement",outcome="done"\} [1-9]/,
          );
          assert.match(text, /offboard_escalations_total\{kind="opened"\} 1/, 'the payroll task');
          assert.equal((await fetch(served.url.replace('/metrics', '/other'))).status, 404);
        },
        { payroll: { type: 'manual', app: 'Legacy payroll', owner: 'payroll-team' } },
        { metrics },
      );
    } finally {
      served.server.close();
    }
  });

  it('a duplicate start joins the running offboarding', async () => {
    await withWorker(async (taskQueue) => {
      const first = request('E1009', { effectiveAt: new Date(Date.now() + 10 * DAY).toISOString() });
      const handle = await start(taskQueue, first);
      const again = await startOffboarding(
        env.client,
        { ...first, requestId: 'hr-resent' },
        { taskQueue, searchAttributes: false },
      );
      assert.equal(again.runId, (await handle.describe()).runId);
      assert.equal(again.started, false);
      assert.equal(again.startedBy, first.requestId);
      const described = await handle.describe();
      assert.equal(described.status.name, 'RUNNING');
      await sendCommand(env.client, 'E1009', 'cancel', { by: 'test', reason: 'clean up' });
      await handle.result();
    });
  });

  it('pre-flight: a future-dated offboarding maps access at once; what it cannot reach is reported ahead and holds nothing up', async () => {
    const unreachable = await freePort();
    const ldap = await sharedSlapd();
    await withWorker(
      async (taskQueue) => {
        // The keeper: never revoked here (it is due in ten days), and the one person with no manager.
        const handle = await start(
          taskQueue,
          request('E1000', { reason: 'voluntary', effectiveAt: new Date(Date.now() + 10 * DAY).toISOString() }),
        );
        // Three rows that no order binds: the start notice gives up on a manager once the
        // directory has answered, while the unreachable system is still being retried.
        const events = await eventually(
          () => auditActions(handle),
          (rows) =>
            rows.some((e) => e.action === 'manager_unknown') &&
            rows.some((e) => e.action === 'preflight_failed') &&
            rows.some((e) => e.action === 'access_discovered' && e.details.stage === 'preflight'),
          'the pre-flight discovery: the notice without a manager, the failure and what was found',
        );
        const waiting = await status(handle);
        assert.equal(waiting.phase, 'waiting');
        assert.match(waiting.accounts.directory ?? '', /^[0-9a-f-]{36}$/, 'the directory entry, found ten days ahead');
        assert.deepEqual(waiting.manualTasks, [], 'nothing waits for an operator yet');
        const failed = events.find((e) => e.action === 'preflight_failed');
        assert.equal(failed?.system, 'legacy-directory');
        assert.match(String(failed?.details.error), /LDAP discover failed/);
        assert.ok(
          events.some(
            (e) => e.action === 'access_discovered' && e.system === 'directory' && e.details.stage === 'preflight',
          ),
        );
        assert.deepEqual(
          events.find((e) => e.action === 'manager_unknown')?.details.unsent,
          ['started'],
          'no manager from HR or the directory: recorded once',
        );
        assert.equal((await directoryState('E1000')).locked, false, 'read-only');
        await sendCommand(env.client, 'E1000', 'cancel', { by: 'test', reason: 'clean up' });
        await handle.result();
      },
      {
        'legacy-directory': {
          type: 'ldap',
          url: `ldap://127.0.0.1:${unreachable}`,
          bindDn: ldap.serviceDn,
          bindPassword: { env: 'TEST_LDAP_PASSWORD' },
          peopleBase: ldap.peopleBase,
          groupsBase: ldap.groupsBase,
          timeoutMs: 1_000,
        },
      },
    );
  });

  it('pre-flight: an id found in no system is told to the IT channel and audited, days ahead', async () => {
    const slack = await startSlackSandbox();
    try {
      await withWorker(
        async (taskQueue) => {
          // A mistyped HR id: nobody in the directory (or anywhere) has it.
          const handle = await start(
            taskQueue,
            request('E7404', { reason: 'voluntary', effectiveAt: new Date(Date.now() + 10 * DAY).toISOString() }),
          );
          const events = await eventually(
            () => auditActions(handle),
            (rows) => rows.some((e) => e.action === 'person_not_found'),
            'the person_not_found row',
          );
          const notFound = events.find((e) => e.action === 'person_not_found')!;
          assert.equal(notFound.details.stage, 'preflight');
          assert.deepEqual(notFound.details.systems, ['directory']);
          assert.deepEqual(notFound.details.unreachable, []);
          const told = await eventually(
            async () => slack.state.messages.filter((m) => m.channel === 'C0OFFBOARD').map((m) => m.text),
            (texts) => texts.some((t) => t.startsWith('[not_found]')),
            'the IT channel message',
          );
          assert.match(
            told.find((t) => t.startsWith('[not_found]'))!,
            /^\[not_found\] offboarding-E7404: pre-flight: E7404 was found in no system \(directory\); check the employee id with HR before /,
          );
          const waiting = await status(handle);
          assert.equal(waiting.foundInNoSystem?.stage, 'preflight');
          assert.match(formatStatus(handle.workflowId, waiting), /FOUND IN NO SYSTEM \(directory\) at preflight/);
          assert.equal(waiting.phase, 'waiting', 'still scheduled: HR may correct it, or cancel');
          await sendCommand(env.client, 'E7404', 'cancel', { by: 'test', reason: 'clean up' });
          await handle.result();
        },
        undefined,
        {
          notifications: {
            slack: { token: { env: 'TEST_SLACK_BOT_TOKEN' }, channel: '#offboarding', apiUrl: slack.apiUrl },
          },
          env: { TEST_SLACK_BOT_TOKEN: SLACK_SANDBOX_TOKENS.bot },
        },
      );
    } finally {
      await slack.stop();
    }
  });

  it('a stage at which no system has an account for the person is audited, counted and shown, not a quiet success', async () => {
    const metrics = createMetrics();
    await withWorker(
      async (taskQueue) => {
        const handle = await start(taskQueue, request('E7405')); // immediate: no pre-flight
        const result = await handle.result();
        assert.deepEqual(result.actions, {}, 'nothing to revoke');
        const events = await eventually(
          () => auditActions(handle),
          (rows) => rows.some((e) => e.action === 'offboarding_completed'),
          'the end row',
        );
        const notFound = events.filter((e) => e.action === 'person_not_found');
        assert.deepEqual(
          notFound.map((e) => [e.details.stage, e.details.systems]),
          [
            ['revoke', ['directory']],
            ['delete', ['directory']],
          ],
        );
        assert.equal((await status(handle)).foundInNoSystem?.stage, 'delete');
        assert.match(await metrics.registry.metrics(), /offboard_person_not_found_total\{when="stage"\} 2/);
      },
      undefined,
      { metrics },
    );
  });

  it('a person found at pre-flight is not reported as found nowhere', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await start(
        taskQueue,
        request('E1008', { reason: 'voluntary', effectiveAt: new Date(Date.now() + 10 * DAY).toISOString() }),
      );
      const events = await eventually(
        () => auditActions(handle),
        (rows) => rows.some((e) => e.action === 'access_discovered' && e.details.stage === 'preflight'),
        'the pre-flight discovery',
      );
      assert.ok(!events.some((e) => e.action === 'person_not_found'));
      assert.equal((await status(handle)).foundInNoSystem ?? null, null);
      await sendCommand(env.client, 'E1008', 'cancel', { by: 'test', reason: 'clean up' });
      await handle.result();
    });
  });

  it('a plan the worker refuses becomes a manual task and an audit row, not a failed workflow', async () => {
    await withWorker(async (taskQueue) => {
      // Started past the API's check (as after a config change): a role the worker's policy lacks.
      const handle = await start(
        taskQueue,
        request('E1007', { trigger: 'role_change', reason: undefined, newRole: 'astronaut' }),
      );
      const waiting = await waitFor(
        handle,
        (s) => s.manualTasks.some((t) => t.id === 'plan' && t.state === 'open'),
        'the plan task',
      );
      assert.equal(waiting.phase, 'planning');
      assert.match(waiting.manualTasks[0]!.error, /newRole: "astronaut" is not in policy\.roles/);
      const events = await eventually(
        () => auditActions(handle),
        (rows) => rows.some((e) => e.action === 'manual_task_opened'),
        'the plan task rows',
      );
      const failed = events.find((e) => e.action === 'plan_failed');
      assert.equal(failed?.details.taskId, 'plan');
      assert.match(String(failed?.details.error), /astronaut/);
      assert.ok(events.some((e) => e.action === 'manual_task_opened' && e.details.taskId === 'plan'));
      assert.equal((await handle.describe()).status.name, 'RUNNING');

      await sendCommand(env.client, 'E1007', 'skip', {
        by: 'it-operator',
        actionId: 'plan',
        reason: 'HR sent the wrong role; a new event follows',
      });
      const result = await handle.result();
      assert.deepEqual(result.actions, {}, 'nothing was done');
      const ended = await eventually(
        () => auditActions(handle),
        (rows) => rows.some((e) => e.action === 'offboarding_completed'),
        'the end row',
      );
      assert.ok(ended.some((e) => e.action === 'manual_task_skipped' && e.details.taskId === 'plan'));
      assert.ok(ended.some((e) => e.action === 'offboarding_completed'));
      assert.equal((await directoryState('E1007')).locked, false, 'nothing revoked');
    });
  });

  it('the manager HR names hears of the start, a hold and the end by direct message', async () => {
    const slack = await startSlackSandbox();
    try {
      await withWorker(
        async (taskQueue) => {
          // Future-dated and cancelled before its effective time: the directory is never touched.
          const handle = await start(
            taskQueue,
            request('E1009', {
              effectiveAt: new Date(Date.now() + 10 * DAY).toISOString(),
              manager: { email: samplePerson('E1003').email },
            }),
          );
          await sendCommand(env.client, 'E1009', 'hold', { by: 'manager-e1003', reason: 'handover' });
          await sendCommand(env.client, 'E1009', 'cancel', { by: 'hr-system', reason: 'rescinded' });
          await handle.result();
          const direct = await eventually(
            async () =>
              slack.state.messages.filter((m) => m.channel === `D${slackUserIdFor('E1003')}`).map((m) => m.text),
            (texts) => texts.length >= 3,
            'three direct messages',
          );
          assert.deepEqual(
            direct.map((t) => /^\[(\w+)\]/.exec(t)?.[1]),
            ['started', 'held', 'cancelled'],
            direct.join('\n'),
          );
          assert.equal(
            slack.state.messages.filter((m) => m.channel === 'C0OFFBOARD').length,
            3,
            'the IT channel hears the same three',
          );
          assert.ok(!(await auditActions(handle)).some((e) => e.action === 'manager_unknown'));
        },
        undefined,
        {
          notifications: {
            slack: { token: { env: 'TEST_SLACK_BOT_TOKEN' }, channel: '#offboarding', apiUrl: slack.apiUrl },
          },
          env: { TEST_SLACK_BOT_TOKEN: SLACK_SANDBOX_TOKENS.bot },
        },
      );
    } finally {
      await slack.stop();
    }
  });

  it("a security termination during a voluntary one's notice period replaces the plan and revokes everything at once", async () => {
    await withWorker(async (taskQueue) => {
      const voluntary = request('E1009', { reason: 'voluntary' });
      const handle = await start(taskQueue, voluntary);
      await waitFor(handle, stageFinished('disable'), 'the disable stage');
      assert.ok((await directoryState('E1009')).groups.length > 0, "groups stay until the voluntary plan's second day");

      // The same person, now a security case: HR (or security) sends a second event.
      const now = new Date(await env.currentTimeMs()).toISOString();
      const escalated = await startOffboarding(
        env.client,
        { ...voluntary, requestId: 'hr-security-1', reason: 'security', effectiveAt: now },
        { taskQueue, searchAttributes: false },
      );
      assert.equal(escalated.outcome, 'superseded', escalated.detail ?? '');
      assert.match(escalated.detail ?? '', /a security termination supersedes the running voluntary termination/);
      const done = await waitFor(
        handle,
        stageFinished('revoke'),
        "the security plan's revoke stage, without waiting a day",
      );
      assert.deepEqual(await directoryState('E1009'), { exists: true, locked: true, groups: [] });
      assert.equal(done.mode, 'immediate');
      assert.deepEqual(
        done.stages.map((st) => st.name),
        ['disable', 'revoke', 'delete'],
        "the voluntary plan's later stages are gone",
      );
      assert.equal(done.laterRequests[0]?.outcome, 'superseded');

      // A milder event afterwards changes nothing, and says why.
      const milder = await startOffboarding(
        env.client,
        { ...voluntary, requestId: 'hr-voluntary-again' },
        { taskQueue, searchAttributes: false },
      );
      assert.deepEqual(
        [milder.outcome, milder.detail],
        ['joined', 'joined: a voluntary termination goes no further than the running security termination'],
      );
      const again = await startOffboarding(
        env.client,
        { ...voluntary, requestId: 'hr-voluntary-again' },
        { taskQueue, searchAttributes: false },
      );
      assert.match(again.detail ?? '', /request hr-voluntary-again is already part of this offboarding/);

      const events = await auditActions(handle);
      const replaced = events.find((e) => e.action === 'plan_replaced');
      assert.equal(replaced?.actor, 'hr-system');
      assert.deepEqual([replaced?.details.requestId, replaced?.details.playbook], ['hr-security-1', 'security']);
      assert.equal(events.filter((e) => e.action === 'hr_event_joined').length, 1);

      // The auditor's report: the plan in force is the security one, and both later events are in it.
      const evidence = buildEvidence(events, { ok: true, rows: events.length });
      assert.deepEqual([evidence.plan.playbook, evidence.plan.mode], ['security', 'immediate']);
      assert.deepEqual(
        evidence.plan.stages.map((st) => st.name),
        ['disable', 'revoke', 'delete'],
        'what ran, then what the plan in force has left',
      );
      assert.deepEqual(
        evidence.laterRequests.map((r) => [r.requestId, r.outcome]),
        [
          ['hr-security-1', 'superseded'],
          ['hr-voluntary-again', 'joined'],
        ],
      );
      assert.deepEqual(evidence.auditTrail.unrecognised, []);
    });
  });

  it('of two later events arriving together, the further-reaching one stands, whichever plan is made first', async () => {
    await withWorker(async (taskQueue) => {
      // Future-dated, so nothing is revoked meanwhile: only the plan is at stake.
      const voluntary = request('E1009', {
        reason: 'voluntary',
        effectiveAt: new Date(Date.now() + 10 * DAY).toISOString(),
      });
      const handle = await start(taskQueue, voluntary);
      const send = (requestId: string, reason: OffboardingRequest['reason']) =>
        startOffboarding(env.client, { ...voluntary, requestId, reason }, { taskQueue, searchAttributes: false });
      const answers = await Promise.all([
        send('hr-involuntary', 'involuntary'),
        send('hr-security', 'security'),
        send('hr-involuntary-2', 'involuntary'),
      ]);
      assert.equal(answers[1]!.outcome, 'superseded', answers[1]!.detail ?? '');
      const final = await status(handle);
      assert.equal(final.playbook, 'security', JSON.stringify(final.laterRequests));
      assert.equal(final.laterRequests.length, 3);
    });
  });

  it('a new termination right after a rescinded one starts a new run instead of joining the ending one', async () => {
    await withWorker(async (taskQueue) => {
      const first = request('E1009', {
        reason: 'voluntary',
        effectiveAt: new Date(Date.now() + 10 * DAY).toISOString(),
      });
      const handle = await start(taskQueue, first);
      const firstRun = (await handle.describe()).runId;
      await sendCommand(env.client, 'E1009', 'cancel', { by: 'hr-system', reason: 'termination rescinded' });
      const again = await startOffboarding(
        env.client,
        { ...first, requestId: 'hr-terminated-after-all', reason: 'involuntary' },
        { taskQueue, searchAttributes: false },
      );
      assert.equal(again.outcome, 'started', again.detail ?? '');
      assert.notEqual(again.runId, firstRun, 'a run of its own');
      assert.equal((await handle.result()).phase, 'cancelled');
    });
  });

  it('refused Updates return their reason, and change nothing', async () => {
    await withWorker(async (taskQueue) => {
      const handle = await start(
        taskQueue,
        request('E1010', { reason: 'voluntary', effectiveAt: new Date(Date.now() + 2 * DAY).toISOString() }),
      );
      await waitFor(handle, (s) => s.phase === 'waiting', 'waiting');
      await assert.rejects(
        sendCommand(env.client, 'E1010', 'release', { by: 'manager-1' }),
        (err: Error) => err instanceof CommandRefusedError && /no hold to release/.test(err.message),
      );
      await assert.rejects(
        sendCommand(env.client, 'E1010', 'hold', { by: 'manager-1', reason: '' }),
        /"reason" is required/,
      );
      await assert.rejects(
        sendCommand(env.client, 'E1010', 'retry', { by: 'op', actionId: 'nope' }),
        /no open manual task "nope"/,
      );
      await assert.rejects(
        sendCommand(env.client, 'E1010', 'hold', { by: 'manager-1', reason: 'x', until: '2001-01-01T00:00:00Z' }),
        /must be a time in the future/,
      );
      const unchanged = await status(handle);
      assert.deepEqual(unchanged.holds, []);

      await sendCommand(env.client, 'E1010', 'expedite', { by: 'security', reason: 'now' });
      await handle.result();
      await assert.rejects(
        sendCommand(env.client, 'E1010', 'expedite', { by: 'security', reason: 'again' }),
        (err: Error) => err instanceof CommandRefusedError && /already finished/.test(err.message),
      );
      await assert.rejects(
        sendCommand(env.client, 'E9876', 'hold', { by: 'm', reason: 'r' }),
        /no offboarding for E9876/,
      );
    });
  });

  // No system waits for another: each fault holds up only its own system. While the faulty
  // system is stuck, the healthy directory is already locked and stripped, read back in slapd.
  const faults: { fault: string; employeeId: string; make: () => Promise<Fault> }[] = [
    {
      fault: 'one system hangs (its server accepts connections and never answers)',
      employeeId: 'E1041',
      make: async () => {
        const silent = await listen(net.createServer(() => undefined));
        return { config: await ldapAt(silent.port), taskId: 'discover/faulty', resolve: 'skip', close: silent.close };
      },
    },
    {
      fault: 'one system is down until an operator retries',
      employeeId: 'E1042',
      make: async () => {
        const port = await freePort();
        let forwarder: Listening | undefined;
        const slapdPort = Number(new URL((await sharedSlapd()).url).port);
        return {
          config: await ldapAt(port),
          taskId: 'discover/faulty',
          resolve: 'retry',
          // The system comes back: a forwarder to the real slapd on the port it is configured with.
          fix: async () => {
            forwarder = await listen(
              net.createServer((socket) => socket.pipe(net.connect(slapdPort, '127.0.0.1')).pipe(socket)),
              port,
            );
          },
          close: () => forwarder?.close(),
        };
      },
    },
    {
      fault: 'one system waits for a person (an app with no API)',
      employeeId: 'E1043',
      make: async () => ({
        config: { type: 'manual', app: 'Legacy payroll', owner: 'payroll-team' },
        taskId: 'revoke/faulty/disable_login',
        resolve: 'skip',
        close: () => undefined,
      }),
    },
  ];
  for (const { fault, employeeId, make } of faults) {
    it(`${fault}: the other systems are revoked at their due time, and status shows the stuck one`, async () => {
      const faulty = await make();
      try {
        await withWorker(
          async (taskQueue) => {
            const handle = await start(taskQueue, request(employeeId));
            const stuckAndDone = (s: OffboardingStatus) =>
              s.manualTasks.some((t) => t.id === faulty.taskId && t.state === 'open') &&
              (s.pipelines?.directory?.stagesDone.includes('revoke') ?? false);
            await waitFor(handle, stuckAndDone, `the faulty system's task, and the directory's revoke stage done`);
            // The healthy system did not wait: locked, every group gone, verified clean.
            const healthy = await eventually(
              () => directoryState(employeeId),
              (d) => d.locked && d.groups.length === 0,
              'the directory revoked',
            );
            assert.deepEqual(healthy, { exists: true, locked: true, groups: [] });
            const now = await status(handle);
            assert.equal(now.pipelines?.faulty?.doing, 'awaiting_operator', 'status names the stuck system');
            assert.ok((now.manualTasks.find((t) => t.id === faulty.taskId)?.error ?? '').length > 0, 'and why');
            assert.ok(now.pipelines?.directory?.stagesDone.includes('revoke'), JSON.stringify(now.pipelines));
            const rows = await auditActions(handle);
            const verified = rows.filter((e) => e.action === 'stage_verified');
            assert.deepEqual(
              verified.map((e) => [e.system, e.outcome]),
              [['directory', 'clean']],
              'only the directory has verified so far',
            );

            await faulty.fix?.();
            const by = 'it-operator';
            if (faulty.resolve === 'retry')
              await sendCommand(env.client, employeeId, 'retry', { by, actionId: faulty.taskId });
            else
              await sendCommand(env.client, employeeId, 'skip', {
                by,
                actionId: faulty.taskId,
                reason: 'confirmed by the owner',
              });
            const done = await waitFor(handle, stageFinished('revoke'), 'the revoke stage in every system');
            assert.equal(
              done.manualTasks.find((t) => t.id === faulty.taskId)?.state,
              faulty.resolve === 'retry' ? 'resolved' : 'skipped',
            );
            if (faulty.resolve === 'retry') {
              // Back, the system reads the entry the directory already locked: "already", read back.
              assert.equal(done.actions.find((a) => a.id === 'revoke/faulty/disable_login')?.state, 'already');
            }
          },
          { faulty: faulty.config },
        );
      } finally {
        faulty.close();
      }
    });
  }

  it('one system is rate-limited: it waits out Retry-After without using attempts, and the others are revoked meanwhile', async () => {
    const slack = await startSlackSandbox();
    const employeeId = 'E1056';
    try {
      await withWorker(
        async (taskQueue) => {
          // Slack answers every request 429 (Retry-After: 1 s) until the test lifts it.
          slack.inject({ rateLimit: { count: 1_000_000, retryAfterSeconds: 1 } });
          const handle = await start(
            taskQueue,
            request(employeeId, { subject: { employeeId, email: samplePerson(employeeId).email } }),
          );
          const waiting = await waitFor(
            handle,
            (s) =>
              (s.pipelines?.directory?.stagesDone.includes('revoke') ?? false) &&
              (s.pipelines?.slack?.calls.length ?? 0) > 0,
            'the directory done while Slack waits',
          );
          assert.deepEqual(await directoryState(employeeId), { exists: true, locked: true, groups: [] });
          assert.equal(waiting.pipelines?.slack?.doing, 'discovering', 'status shows Slack still mapping access');
          assert.deepEqual(
            slack.state.workspaceRemovals.filter((r) => r.userId === slackUserIdFor(employeeId)),
            [],
          );
          assert.deepEqual(waiting.manualTasks, [], 'a rate limit is waited out, not escalated');

          slack.inject({});
          const done = await waitFor(handle, stageFinished('revoke'), 'the revoke stage in Slack too');
          assert.ok(
            slack.state.workspaceRemovals.some((r) => r.userId === slackUserIdFor(employeeId)),
            'removed from the workspace',
          );
          const slackActions = done.actions.filter((a) => a.system === 'slack');
          assert.ok(slackActions.length > 0);
          assert.deepEqual(
            slackActions.map((a) => a.attempts),
            slackActions.map(() => 1),
            'every Slack action in its first attempt',
          );
        },
        ...slackSystem(slack),
      );
    } finally {
      await slack.stop();
    }
  });

  it('a system still mapping access after 5 minutes is audited as stalled and told to IT; the others are done', async () => {
    // Every connection reset at once: retryable, and the backoff between attempts is time the
    // test server can skip, so the step runs past the threshold without a real five minutes.
    const resetting = await listen(net.createServer((socket) => socket.destroy()));
    const slack = await startSlackSandbox();
    const employeeId = 'E1057';
    try {
      await withWorker(
        async (taskQueue) => {
          const handle = await start(taskQueue, request(employeeId));
          await waitFor(
            handle,
            (s) => (s.pipelines?.directory?.stagesDone.includes('revoke') ?? false) && s.pipelines?.flaky !== undefined,
            'the directory done while the flaky system retries',
          );
          assert.deepEqual(await directoryState(employeeId), { exists: true, locked: true, groups: [] });
          await skipAhead(env, 6 * 60_000);
          const stalled = await eventually(
            async () => (await auditActions(handle)).filter((e) => e.action === 'system_stalled'),
            (rows) => rows.length > 0,
            'the system_stalled row',
          );
          assert.deepEqual(
            stalled.map((e) => [e.system, e.details.step, e.details.stage]),
            [['flaky', 'discovering', 'revoke']],
            'once, for the stuck system only',
          );
          assert.ok(Number(stalled[0]!.details.seconds) >= 300);
          const told = await eventually(
            async () => slack.state.messages.filter((m) => m.channel === 'C0OFFBOARD').map((m) => m.text),
            (texts) => texts.some((t) => t.startsWith('[stalled]')),
            'the IT channel told',
          );
          assert.match(
            told.find((t) => t.startsWith('[stalled]'))!,
            /flaky has been discovering in stage revoke/,
          );
          const status = await handle.query<OffboardingStatus>('status');
          assert.equal(status.pipelines?.flaky?.doing, 'discovering', 'status shows what it is stuck on');
          assert.ok(status.pipelines?.directory?.stagesDone.includes('revoke'));
          await handle.terminate('test done');
        },
        { flaky: await ldapAt(resetting.port) },
        {
          retry: { initialInterval: '2m', maximumInterval: '2m', maximumAttempts: 8 },
          notifications: {
            slack: { token: { env: 'TEST_SLACK_BOT_TOKEN' }, channel: '#offboarding', apiUrl: slack.apiUrl },
          },
          env: { TEST_SLACK_BOT_TOKEN: SLACK_SANDBOX_TOKENS.bot },
        },
      );
    } finally {
      resetting.close();
      await slack.stop();
    }
  });

  it('a burst under faults: every healthy system revokes every person, and every fault is a task someone sees', async () => {
    const silent = await listen(net.createServer(() => undefined));
    const people = ['E1050', 'E1051', 'E1052', 'E1053', 'E1054', 'E1055'];
    try {
      await withWorker(
        async (taskQueue) => {
          const handles = await Promise.all(people.map((id) => start(taskQueue, request(id))));
          const stuck = (s: OffboardingStatus) =>
            ['discover/hanging', 'revoke/payroll/disable_login'].every((id) =>
              s.manualTasks.some((t) => t.id === id && t.state === 'open'),
            ) &&
            (s.pipelines?.directory?.stagesDone.includes('revoke') ?? false);
          await Promise.all(
            handles.map((handle) =>
              waitFor(handle, stuck, `${handle.workflowId}: both faults as tasks, the directory done`),
            ),
          );
          for (const id of people)
            assert.deepEqual(await directoryState(id), { exists: true, locked: true, groups: [] }, id);
          for (const handle of handles) {
            const rows = await auditActions(handle);
            const opened = rows
              .filter((e) => e.action === 'manual_task_opened')
              .map((e) => e.system)
              .sort();
            assert.deepEqual(opened, ['hanging', 'payroll'], `${handle.workflowId}: every fault is on record`);
            assert.ok(
              rows.some((e) => e.action === 'stage_verified' && e.system === 'directory' && e.outcome === 'clean'),
            );
          }
          for (const id of people) {
            const by = 'it-operator';
            await sendCommand(env.client, id, 'skip', { by, actionId: 'discover/hanging', reason: 'decommissioned' });
            await sendCommand(env.client, id, 'skip', {
              by,
              actionId: 'revoke/payroll/disable_login',
              reason: 'done by payroll',
            });
          }
          await Promise.all(
            handles.map((handle) => waitFor(handle, stageFinished('revoke'), `${handle.workflowId}: the revoke stage`)),
          );
        },
        {
          hanging: await ldapAt(silent.port),
          payroll: { type: 'manual', app: 'Legacy payroll', owner: 'payroll-team' },
        },
      );
    } finally {
      silent.close();
    }
  });
});

/** The Slack stand-in as the test config's `slack` system, with its org-admin token. */
function slackSystem(slack: { apiUrl: string }): [ConfigInput['systems'], { env: NodeJS.ProcessEnv }] {
  return [
    {
      slack: { type: 'slack', apiUrl: slack.apiUrl, token: { env: 'TEST_SLACK_TOKEN' }, teamId: SLACK_SANDBOX_TEAM_ID },
    },
    { env: { TEST_SLACK_TOKEN: SLACK_SANDBOX_TOKENS.orgAdmin } },
  ];
}

interface Listening {
  port: number;
  close: () => void;
}

interface Fault {
  config: NonNullable<ConfigInput['systems']>[string];
  taskId: string;
  resolve: 'retry' | 'skip';
  fix?: () => Promise<void>;
  close: () => void;
}

/** Listens on 127.0.0.1 (a given port or any); close() also ends the connections it accepted. */
async function listen(server: net.Server, port = 0): Promise<Listening> {
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const close = () => {
    for (const socket of sockets) socket.destroy();
    server.close();
  };
  return { port: (server.address() as net.AddressInfo).port, close };
}

/** A second LDAP system for the same people, reached at a port of the test's choosing. */
async function ldapAt(port: number): Promise<Fault['config']> {
  const ldap = await sharedSlapd();
  return {
    type: 'ldap',
    url: `ldap://127.0.0.1:${port}`,
    bindDn: ldap.serviceDn,
    bindPassword: { env: 'TEST_LDAP_PASSWORD' },
    peopleBase: ldap.peopleBase,
    groupsBase: ldap.groupsBase,
    timeoutMs: 1_000,
  };
}

async function removeMemberAsAdmin(ldap: Awaited<ReturnType<typeof sharedSlapd>>, group: string, employeeId: string) {
  const { Client, Change, Attribute } = await import('ldapts');
  const { personDn, groupDn } = await import('../sandbox/ldif.js');
  const { samplePerson } = await import('../sandbox/org.js');
  const client = new Client({ url: ldap.url });
  await client.bind(ldap.adminDn, ldap.adminPassword);
  await client.modify(
    groupDn(group),
    new Change({
      operation: 'delete',
      modification: new Attribute({ type: 'member', values: [personDn(samplePerson(employeeId).uid)] }),
    }),
  );
  await client.unbind();
}
