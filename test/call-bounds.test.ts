/**
 * Bounded connector calls and per-system rate-limit pauses (activities/call-bounds.ts), through
 * the real activities in MockActivityEnvironment, with fake connectors and with the Slack
 * connector against its Web API stand-in (sandbox/slack.ts, fault injection). Waits are short
 * (a 300 ms bound, Retry-After of 300 ms or 1 s, Slack's smallest) and timing assertions generous.
 */
import assert from 'node:assert/strict';
import { ApplicationFailure, type Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger, type LogEntry } from '@temporalio/worker';
import { createActivities, type ActivityDeps } from '../activities/index.js';
import type { AuditStore } from '../activities/audit.js';
import { createSlackConnector, slackSystemSchema } from '../activities/connectors/slack.js';
import { ConnectorError, type ApplyResult, type Connector } from '../activities/connectors/types.js';
import type { Action, Discovery } from '../model/plan.js';
import type { Policy } from '../model/policy.js';
import { samplePerson } from '../sandbox/org.js';
import { SLACK_SANDBOX_TEAM_ID, SLACK_SANDBOX_TOKENS, startSlackSandbox, type SlackSandbox } from '../sandbox/slack.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const subject = (employeeId: string) => ({ employeeId, email: samplePerson(employeeId).email });
const none = (system: string): Discovery => ({ system, account: null, entitlements: [], credentials: [] });

function activitiesWith(
  connectors: Connector[],
  bounds: Partial<Pick<ActivityDeps, 'callTimeoutMs' | 'heartbeatEveryMs' | 'maxRateLimitWaitMs'>> = {},
) {
  return createActivities({
    // discover and applyAction use neither the policy nor the audit store.
    policy: {} as Policy,
    audit: {} as AuditStore,
    notify: async () => ({ delivered: [] }),
    connectors: new Map(connectors.map((connector) => [connector.system, connector])),
    callTimeoutMs: 300,
    heartbeatEveryMs: 50,
    ...bounds,
  });
}

/** An activity environment whose heartbeats and log lines are kept. */
function environment(info: Partial<Info> = {}) {
  const logs: LogEntry[] = [];
  const heartbeats: unknown[] = [];
  const env = new MockActivityEnvironment(info, { logger: new DefaultLogger('INFO', (entry) => logs.push(entry)) });
  env.on('heartbeat', (details: unknown) => heartbeats.push(details));
  return { env, logs, heartbeats };
}

function fakeConnector(system: string, discover: Connector['discover']): Connector {
  return {
    system,
    discover,
    apply: async () => ({ outcome: 'done', details: {} }),
    close: async () => undefined,
  };
}

const failsRetryably = (type: string, message: RegExp) => (err: unknown) => {
  assert.ok(err instanceof ApplicationFailure, `an ApplicationFailure, not ${String(err)}`);
  assert.equal(err.type, type);
  assert.equal(err.nonRetryable, false);
  assert.match(err.message, message);
  return true;
};

describe('connector calls: bounds and shared rate limits', () => {
  let sandbox: SlackSandbox;

  before(async () => {
    sandbox = await startSlackSandbox();
  });
  after(async () => {
    await sandbox?.stop();
  });
  beforeEach(() => sandbox.reset());

  const slack = () =>
    createSlackConnector(
      'slack',
      slackSystemSchema.parse({
        type: 'slack',
        apiUrl: sandbox.apiUrl,
        token: SLACK_SANDBOX_TOKENS.orgAdmin,
        teamId: SLACK_SANDBOX_TEAM_ID,
      }),
    );

  it('a discover that never answers fails retryably within the bound, naming the system, the call and the attempt, and heartbeats meanwhile', async () => {
    const { env, heartbeats } = environment({ attempt: 2 });
    const activities = activitiesWith([fakeConnector('slack', () => new Promise<never>(() => undefined))]);
    const started = Date.now();
    await assert.rejects(
      env.run(activities.discover, { system: 'slack', subject: subject('E1001') }),
      failsRetryably('call_timeout', /^slack: discover did not answer within 0\.3 s \(attempt 2\); retrying$/),
    );
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 5_000, `failed after ${took} ms, expected about 300`);
    assert.ok(heartbeats.length >= 2, `heartbeats while the call ran: ${heartbeats.length}`);
    assert.deepEqual(Object.keys(heartbeats[0] as object).sort(), ['call', 'since', 'system']);
    assert.equal((heartbeats[0] as { call: string }).call, 'discover');
    assert.equal((heartbeats[0] as { system: string }).system, 'slack');
  });

  it('the Slack stand-in answering too slowly: discover fails retryably within the bound instead of waiting for the client timeout', async () => {
    // A stand-in of its own: the abandoned request (the connector ignores the signal) must not land in the shared one's log.
    const slow = await startSlackSandbox();
    try {
      slow.inject({ latencyMs: 3_000 });
      const connector = createSlackConnector(
        'slack',
        slackSystemSchema.parse({
          type: 'slack',
          apiUrl: slow.apiUrl,
          token: SLACK_SANDBOX_TOKENS.orgAdmin,
          teamId: SLACK_SANDBOX_TEAM_ID,
        }),
      );
      const { env } = environment();
      const started = Date.now();
      await assert.rejects(
        env.run(activitiesWith([connector]).discover, { system: 'slack', subject: subject('E1001') }),
        failsRetryably('call_timeout', /^slack: discover did not answer within 0\.3 s \(attempt 1\); retrying$/),
      );
      assert.ok(Date.now() - started < 2_500, 'well before the stand-in answered');
    } finally {
      await slow.stop();
    }
  });

  it('a 429 with Retry-After from the Slack stand-in is waited out within the attempt, and the result returned', async () => {
    sandbox.inject({ rateLimit: { count: 1, retryAfterSeconds: 1 } });
    const { env, logs } = environment();
    const activities = activitiesWith([slack()], { callTimeoutMs: 10_000 });
    const started = Date.now();
    const found = (await env.run(activities.discover, { system: 'slack', subject: subject('E1001') })) as Discovery;
    const took = Date.now() - started;
    assert.deepEqual(found.account, { id: 'WE1001', disabled: false });
    assert.equal(env.context.info.attempt, 1, 'no new attempt');
    assert.ok(took >= 900 && took < 10_000, `answered after ${took} ms, expected the 1 s Retry-After first`);
    assert.equal(sandbox.state.calls[0], 'users.lookupByEmail', 'the refused request is not in the log; the repeat is');
    const paused = logs.find((entry) => entry.message.startsWith('system rate-limited'));
    assert.ok(paused, 'the pause is logged');
    assert.equal(paused.meta?.system, 'slack');
    assert.equal(paused.meta?.call, 'discover');
    assert.equal(paused.meta?.waitMs, 1_000);
    assert.ok(!JSON.stringify(paused.meta).includes(samplePerson('E1001').email!), 'no email in the log line');

    // applyAction reports the attempt it ran in: still the first.
    sandbox.inject({ rateLimit: { count: 1, retryAfterSeconds: 1 } });
    const revoke: Action = {
      id: 't/slack/revoke_sessions',
      stage: 't',
      system: 'slack',
      kind: 'revoke_sessions',
      accountId: 'WE1001',
    };
    const reset = (await environment().env.run(activities.applyAction, {
      action: revoke,
      subject: subject('E1001'),
    })) as ApplyResult & { attempt: number };
    assert.equal(reset.outcome, 'done');
    assert.equal(reset.attempt, 1);
    assert.equal(sandbox.state.sessionResets.WE1001, 1);
  });

  it('a fake connector rate-limited twice (300 ms each): one attempt, two pauses, the result', async () => {
    const calls: number[] = [];
    const connector = fakeConnector('wiki', async () => {
      calls.push(Date.now());
      if (calls.length <= 2) throw new ConnectorError('wiki rate-limited', true, 'scim_429', 300);
      return none('wiki');
    });
    const { env } = environment();
    assert.deepEqual(
      await env.run(activitiesWith([connector]).discover, { system: 'wiki', subject: subject('E1001') }),
      none('wiki'),
    );
    assert.equal(calls.length, 3);
    assert.ok(
      calls[1]! - calls[0]! >= 250 && calls[2]! - calls[1]! >= 250,
      `calls at ${calls.map((t) => t - calls[0]!).join(', ')} ms`,
    );
    assert.equal(env.context.info.attempt, 1);
  });

  it("a second activity for the same system, started during the first one's Retry-After, does not reach the Slack stand-in until the pause is over", async () => {
    sandbox.inject({ rateLimit: { count: 1, retryAfterSeconds: 1 } });
    // The real Slack connector, with the times its calls began and the time of the 429.
    const inner = slack();
    const began: { employeeId: string; at: number }[] = [];
    let refusedAt: number | undefined;
    const connector: Connector = {
      ...inner,
      system: inner.system,
      async discover(s) {
        began.push({ employeeId: s.employeeId, at: Date.now() });
        try {
          return await inner.discover(s);
        } catch (err) {
          refusedAt ??= Date.now();
          throw err;
        }
      },
    };
    const activities = activitiesWith([connector], { callTimeoutMs: 10_000 });
    const { env: first } = environment();
    const { env: second, logs: secondLogs } = environment();

    const firstDone = first.run(activities.discover, { system: 'slack', subject: subject('E1001') });
    for (let i = 0; refusedAt === undefined && i < 200; i += 1) await sleep(10);
    assert.ok(refusedAt !== undefined, 'the first call was rate-limited');
    const secondDone = second.run(activities.discover, { system: 'slack', subject: subject('E1002') });

    await sleep(400);
    assert.deepEqual(sandbox.state.calls, [], 'nothing reached the stand-in during the pause');
    assert.deepEqual(
      began.map((b) => b.employeeId),
      ['E1001'],
      'the second activity has not called the connector yet',
    );

    const [one, two] = (await Promise.all([firstDone, secondDone])) as [Discovery, Discovery];
    assert.equal(one.account?.id, 'WE1001');
    assert.equal(two.account?.id, 'WE1002');
    const secondBegan = began.find((b) => b.employeeId === 'E1002')!.at;
    assert.ok(
      secondBegan >= refusedAt + 900,
      `the second call began ${secondBegan - refusedAt} ms after the 429 (Retry-After 1 s)`,
    );
    assert.deepEqual(sandbox.state.calls.filter((c) => c === 'users.lookupByEmail').length, 2);
    assert.equal(first.context.info.attempt, 1);
    assert.equal(second.context.info.attempt, 1);
    assert.ok(
      secondLogs.some((entry) => entry.message.startsWith('waiting for the system') && entry.meta?.system === 'slack'),
      'the wait is logged',
    );
  });

  it('a pause longer than one attempt may wait fails retryably with nextRetryDelay, without calling again', async () => {
    let calls = 0;
    const connector = fakeConnector('github', async () => {
      calls += 1;
      throw new ConnectorError('GitHub rate limit', true, 'github_rate_limited', 60_000);
    });
    const { env } = environment();
    await assert.rejects(
      env.run(activitiesWith([connector], { maxRateLimitWaitMs: 1_000 }).discover, {
        system: 'github',
        subject: subject('E1001'),
      }),
      (err: unknown) => {
        failsRetryably(
          'github_rate_limited',
          /^github: discover is rate-limited for another [\d.]+ s, beyond the 1 s one attempt may wait \(attempt 1\); retrying after the pause$/,
        )(err);
        const delay = Number((err as ApplicationFailure).nextRetryDelay);
        assert.ok(delay > 55_000 && delay <= 60_000, `nextRetryDelay ${delay}`);
        return true;
      },
    );
    assert.equal(calls, 1);
  });

  it('errors the connector classified keep their kind: non-retryable stays non-retryable', async () => {
    const connector = fakeConnector('slack', async () => {
      throw new ConnectorError('Slack auth.test failed: invalid_auth', false, 'slack_invalid_auth');
    });
    await assert.rejects(
      environment().env.run(activitiesWith([connector]).discover, { system: 'slack', subject: subject('E1001') }),
      (err: unknown) => {
        assert.ok(err instanceof ApplicationFailure);
        assert.equal(err.nonRetryable, true);
        assert.equal(err.type, 'slack_invalid_auth');
        return true;
      },
    );
  });
});
