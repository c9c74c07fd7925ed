/**
 * The workflow cache is sized from memory, not from the number of runs: waiting offboardings are
 * evicted and replayed when they wake (docs/bench.md, `npm run bench:waiting`).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { createOffboardingWorker, defaultMaxCachedWorkflows } from '../workers/create-worker.js';
import { parseConfig } from '../workers/config.js';
import { sharedPool, testConfig, timeSkippingEnvironment, workflowBundle } from './helpers/environment.js';

const MiB = 1024 * 1024;

describe("the worker's workflow cache", function () {
  let env: TestWorkflowEnvironment;
  before(async function () {
    this.timeout(120_000);
    env = await timeSkippingEnvironment();
  });
  after(async () => {
    await env?.teardown();
  });

  it('defaults to 256 MiB at 2 MiB a run, or an eighth of the heap if less, never under 20 runs', () => {
    assert.equal(defaultMaxCachedWorkflows(4144 * MiB), 128, "Node's default heap here: the SDK would cache 2,310");
    assert.equal(defaultMaxCachedWorkflows(1024 * MiB), 64);
    assert.equal(defaultMaxCachedWorkflows(256 * MiB), 20);
  });

  it('takes worker.maxCachedWorkflows from the config, else the default', async () => {
    const base = await testConfig();
    const make = async (maxCachedWorkflows?: number) => {
      const config = maxCachedWorkflows === undefined ? base : { ...base, worker: { maxCachedWorkflows } };
      const worker = await createOffboardingWorker({
        connection: env.nativeConnection,
        namespace: env.namespace ?? 'default',
        config,
        pool: await sharedPool(),
        taskQueue: `cache-size-test-${randomUUID()}`,
        workflowBundle: await workflowBundle(),
      });
      const size = worker.options.maxCachedWorkflows;
      // Run and stopped at once: a worker that never ran would keep the connection referenced.
      await worker.runUntil(Promise.resolve());
      return size;
    };
    assert.equal(await make(300), 300);
    assert.equal(await make(), defaultMaxCachedWorkflows());
  });

  it('refuses a cache too small for a task in flight, naming the setting', () => {
    assert.throws(
      () => parseConfig({ worker: { maxCachedWorkflows: 1 } }, 'test'),
      /worker\.maxCachedWorkflows: at least 2/,
    );
  });
});
