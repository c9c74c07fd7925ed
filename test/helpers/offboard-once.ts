/**
 * One termination through the real workflow and a worker, on a time-skipping test server of its
 * own: the scaffolding every connector's end-to-end test shares. The directory (the shared slapd)
 * is always configured, as `testConfig` does; `systems` adds the ones under test.
 */
import { randomUUID } from 'node:crypto';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowHandle } from '@temporalio/client';
import { startOffboarding } from '../../client/temporal.js';
import type { OffboardingRequest } from '../../model/request.js';
import { createOffboardingWorker } from '../../workers/create-worker.js';
import type { ConfigInput } from '../../workers/config.js';
import type { OffboardingStatus } from '../../workflows/messages.js';
import type { offboarding } from '../../workflows/offboarding.js';
import { eventually, sharedPool, testConfig, timeSkippingEnvironment, workflowBundle } from './environment.js';

export interface OffboardOnce {
  employeeId: string;
  systems: ConfigInput['systems'];
  env?: NodeJS.ProcessEnv;
  /** The HR event's subject beyond the id (an email, say) and its other fields. */
  request?: Partial<Omit<OffboardingRequest, 'subject'>> & { subject?: Partial<OffboardingRequest['subject']> };
  /**
   * What to wait for: `revoked` (the revoke stage finished; the default), `completed` (the
   * workflow's result: retention is skipped, so the account is deleted), or a predicate on status.
   */
  until?: 'revoked' | 'completed' | ((status: OffboardingStatus) => boolean);
  timeoutMs?: number;
}

/** Runs one immediate involuntary termination and answers the run's status at the end. */
export async function offboardOnce(options: OffboardOnce): Promise<OffboardingStatus & { workflowId: string }> {
  const env: TestWorkflowEnvironment = await timeSkippingEnvironment();
  try {
    const taskQueue = `test-${randomUUID()}`;
    const worker = await createOffboardingWorker({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      config: await testConfig({ systems: options.systems, env: options.env }),
      pool: await sharedPool(),
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
      const handle: WorkflowHandle<typeof offboarding> = env.client.workflow.getHandle(
        started.workflowId,
        started.runId,
      );
      const status = () => handle.query<OffboardingStatus>('status');
      const until = options.until ?? 'revoked';
      if (until === 'completed') await handle.result();
      const done =
        until === 'completed'
          ? await status()
          : await eventually(
              status,
              until === 'revoked'
                ? (s) => s.stages.some((stage) => stage.name === 'revoke' && stage.finishedAt)
                : until,
              `${started.workflowId}: ${typeof until === 'string' ? `the ${until} stage` : 'the expected status'}`,
              options.timeoutMs ?? 120_000,
            );
      return { ...done, workflowId: started.workflowId };
    });
  } finally {
    await env.teardown();
  }
}
