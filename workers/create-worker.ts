import { NativeConnection, Worker } from '@temporalio/worker';
import type pg from 'pg';
import type { DataConverter } from '@temporalio/common';
import { createAuditStore } from '../activities/audit.js';
import type { Checkpointer } from '../activities/audit-checkpoints.js';
import { createConnector } from '../activities/connectors/registry.js';
import type { Connector } from '../activities/connectors/types.js';
import { createActivities } from '../activities/index.js';
import { createNotifier } from '../activities/notify.js';
import { logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { OFFBOARDING_TASK_QUEUE } from '../workflows/messages.js';
import { bundlerOptions, workflowsPath } from './bundle.js';
import type { OffboardConfig } from './config.js';
import { createSetSigner, sharedSignalsOf, type SetSigner } from './ssf-signing-key.js';

/**
 * The Shared Signals transmitter, when a system is a receiver: the config's `sharedSignals`, or
 * its defaults (a development key under the data directory, the local API as issuer).
 */
export function sharedSignalsSigner(config: OffboardConfig): SetSigner | undefined {
  const transmitter = sharedSignalsOf(config, { log: (message) => logger.warn(message) });
  if (!transmitter) return undefined;
  const { issuer, key } = transmitter;
  logger.info({ issuer, alg: key.alg, kid: key.kid, key: key.source }, 'shared signals transmitter');
  return createSetSigner(issuer, key);
}

export function createConnectors(config: OffboardConfig): Map<string, Connector> {
  const connectors = new Map<string, Connector>();
  const sharedSignals = sharedSignalsSigner(config);
  for (const [name, system] of Object.entries(config.systems)) {
    connectors.set(name, createConnector(name, system, { sharedSignals }));
  }
  return connectors;
}

export interface WorkerOptions {
  connection: NativeConnection;
  namespace: string;
  config: OffboardConfig;
  pool: pg.Pool;
  taskQueue?: string;
  /** Connectors built by the caller (the worker process checks them first); else from config. */
  connectors?: Map<string, Connector>;
  metrics?: Metrics;
  /** Payload encryption (workers/codec.ts dataConverterFor); undefined = no codec. */
  dataConverter?: DataConverter;
  /** A prebuilt bundle (tests bundle once); otherwise the worker bundles on start. */
  workflowBundle?: { code: string };
  /** Signs checkpoints of the audit chain as rows are appended (`activities/audit-checkpoints.ts`). */
  checkpointer?: Checkpointer;
}

export async function createOffboardingWorker(options: WorkerOptions): Promise<Worker> {
  const activities = createActivities({
    policy: options.config.policy,
    connectors: options.connectors ?? createConnectors(options.config),
    audit: createAuditStore(options.pool, { onAppended: options.checkpointer?.noteAppended }),
    notify: createNotifier(options.config.notifications, logger),
    observe: options.metrics?.observe,
  });
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue ?? OFFBOARDING_TASK_QUEUE,
    activities,
    dataConverter: options.dataConverter,
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath, bundlerOptions }),
  });
}
