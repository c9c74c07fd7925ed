import { getHeapStatistics } from 'node:v8';
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
  /** Overrides config `worker.maxCachedWorkflows` and the default sized from the heap. */
  maxCachedWorkflows?: number;
}

/** Measured: a cached offboarding history with its workflow state holds about 2 MiB (docs/bench.md). */
const CACHED_RUN_MIB = 2;
/** The cache may use at most this much, or an eighth of the heap limit if that is less. */
const CACHE_BUDGET_MIB = 256;

/**
 * The workflow cache, sized from memory. The SDK's default fills 60 % of the heap (2,310 runs with
 * a 4 GiB heap), which keeps every waiting offboarding in memory: 2,000 of them took a worker
 * from 543 MB to 4.45 GB. Most runs wait for days between stages, and a run that is not cached is
 * replayed from its history when it wakes, so a small cache costs a replay per wake-up, not
 * correctness. The cache still holds the runs working right now (a burst of terminations).
 */
export function defaultMaxCachedWorkflows(heapLimitBytes = getHeapStatistics().heap_size_limit): number {
  const heapMiB = heapLimitBytes / 1024 / 1024;
  const budgetMiB = Math.min(CACHE_BUDGET_MIB, heapMiB / 8);
  return Math.max(20, Math.floor(budgetMiB / CACHED_RUN_MIB));
}

export async function createOffboardingWorker(options: WorkerOptions): Promise<Worker> {
  const activities = createActivities({
    policy: options.config.policy,
    connectors: options.connectors ?? createConnectors(options.config),
    audit: createAuditStore(options.pool, { onAppended: options.checkpointer?.noteAppended }),
    notify: createNotifier(options.config.notifications, logger),
    observe: options.metrics?.observe,
    anchorNow: options.checkpointer?.flush,
  });
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace,
    taskQueue: options.taskQueue ?? OFFBOARDING_TASK_QUEUE,
    activities,
    dataConverter: options.dataConverter,
    maxCachedWorkflows:
      options.maxCachedWorkflows ?? options.config.worker.maxCachedWorkflows ?? defaultMaxCachedWorkflows(),
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath, bundlerOptions }),
  });
}
