/**
 * One termination through the real workflow and a worker, on a time-skipping test server of its
 * own: the scaffolding every connector's end-to-end test shares. The directory (the shared slapd)
 * is always configured, as `testConfig` does; `systems` adds the ones under test.
 */
import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle } from '@temporalio/client';
import type { StoredAuditEvent } from '../../activities/audit.js';
import { startOffboarding } from '../../client/temporal.js';
import type { OffboardingRequest } from '../../model/request.js';
import type { PolicyInput } from '../../model/policy.js';
import { createOffboardingWorker } from '../../workers/create-worker.js';
import type { ConfigInput } from '../../workers/config.js';
import type { OffboardingStatus } from '../../workflows/messages.js';
import type { offboarding } from '../../workflows/offboarding.js';
import { auditRowsOf } from './audit-rows.js';
import { eventually, sharedPool, testConfig, timeSkippingEnvironment, workflowBundle } from './environment.js';

export interface OffboardOnce {
  employeeId: string;
  systems: ConfigInput['systems'];
  env?: NodeJS.ProcessEnv;
  /** Playbooks instead of the defaults (a step added to a stage, say). */
  playbooks?: PolicyInput['playbooks'];
  /** false: no directory, so that another system must say who the person is. */
  directory?: boolean;
  /** The plan's retry policy, instead of the quick one (200 ms → 1 s, 3 attempts). */
  retry?: { initialInterval: string; maximumInterval: string; maximumAttempts: number };
  /** The HR event's subject beyond the id (an email, say) and its other fields. */
  request?: Partial<Omit<OffboardingRequest, 'subject'>> & { subject?: Partial<OffboardingRequest['subject']> };
  /**
   * What to wait for: `revoked` (the revoke stage finished; the default), `completed` (the
   * workflow's result: retention is skipped, so the account is deleted), or a predicate on status.
   */
  until?: 'revoked' | 'completed' | ((status: OffboardingStatus) => boolean);
  /**
   * Called with the status once the revoke stage has finished, before the run goes on to `until`:
   * for what the revoke stage left in a system, which the deletion after the retention takes away.
   */
  afterRevoke?: (status: OffboardingStatus) => void | Promise<void>;
  /** How long each wait (a stage, the audit rows) may take in real time. */
  timeoutMs?: number;
}

export interface OffboardedOnce {
  workflowId: string;
  /** The run's status once `until` held. */
  status: OffboardingStatus;
  /** This run's audit rows by then, in order. */
  events: StoredAuditEvent[];
}

const revokeFinished = (status: OffboardingStatus) =>
  status.stages.some((stage) => stage.name === 'revoke' && stage.finishedAt);

/** Runs one immediate involuntary termination and answers the run's status and audit rows at the end. */
export async function offboardOnce(options: OffboardOnce): Promise<OffboardedOnce> {
  const env: TestWorkflowEnvironment = await timeSkippingEnvironment();
  try {
    const taskQueue = `test-${randomUUID()}`;
    const pool = await sharedPool();
    const worker = await createOffboardingWorker({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      config: await testConfig({
        systems: options.systems,
        env: options.env,
        playbooks: options.playbooks,
        directory: options.directory,
        retry: options.retry,
      }),
      pool,
      taskQueue,
      workflowBundle: await workflowBundle(),
    });
    return await worker.runUntil(async () => {
      const { subject, ...rest } = options.request ?? {};
      const started = await startOffboarding(
        env.client,
        {
          requestId: `hr-${randomUUID()}`,
          trigger: 'termination',
          reason: 'involuntary',
          employmentType: 'employee',
          effectiveAt: new Date(await env.currentTimeMs()).toISOString(),
          requestedBy: 'hr-system',
          ...rest,
          subject: { ...subject, employeeId: options.employeeId },
        },
        { taskQueue, searchAttributes: false },
      );
      const { workflowId, runId } = started;
      const handle: WorkflowHandle<typeof offboarding> = env.client.workflow.getHandle(workflowId, runId);
      const status = () => handle.query<OffboardingStatus>('status');
      const waitFor = <T>(read: () => Promise<T>, done: (value: T) => boolean, what: string) =>
        eventually(read, done, `${workflowId}: ${what}`, options.timeoutMs ?? 120_000);

      if (options.afterRevoke) await options.afterRevoke(await waitFor(status, revokeFinished, 'the revoke stage'));
      const until = options.until ?? 'revoked';
      if (until === 'completed') await handle.result();
      const done =
        until === 'completed'
          ? await status()
          : until === 'revoked'
            ? await waitFor(status, revokeFinished, 'the revoke stage')
            : await waitFor(status, until, 'the expected status');
      const events = await auditRowsOf(handle, options.timeoutMs ?? 120_000);
      return { workflowId, status: done, events };
    });
  } finally {
    await env.teardown();
  }
}
