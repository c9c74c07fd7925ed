import { NativeConnection, Worker } from '@temporalio/worker';
import type pg from 'pg';
import type { DataConverter } from '@temporalio/common';
import { createAuditStore } from '../activities/audit.js';
import { createLdapConnector } from '../activities/connectors/ldap.js';
import { createPostgresConnector } from '../activities/connectors/postgres.js';
import { createManualConnector } from '../activities/connectors/manual.js';
import { createScimConnector } from '../activities/connectors/scim.js';
import { createSlackConnector } from '../activities/connectors/slack.js';
import { createGithubConnector } from '../activities/connectors/github.js';
import { createSalesforceConnector } from '../activities/connectors/salesforce.js';
import type { Connector } from '../activities/connectors/types.js';
import { createActivities } from '../activities/index.js';
import { createNotifier } from '../activities/notify.js';
import { logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { OFFBOARDING_TASK_QUEUE } from '../workflows/messages.js';
import { bundlerOptions, workflowsPath } from './bundle.js';
import type { OffboardConfig } from './config.js';

export function createConnectors(config: OffboardConfig): Map<string, Connector> {
  const connectors = new Map<string, Connector>();
  for (const [name, system] of Object.entries(config.systems)) {
    switch (system.type) {
      case 'ldap':
        connectors.set(name, createLdapConnector(name, system));
        break;
      case 'postgres':
        connectors.set(name, createPostgresConnector(name, system));
        break;
      case 'manual':
        connectors.set(name, createManualConnector(name, system));
        break;
      case 'scim':
        connectors.set(name, createScimConnector(name, system));
        break;
      case 'slack':
        connectors.set(name, createSlackConnector(name, system));
        break;
      case 'github':
        connectors.set(name, createGithubConnector(name, system));
        break;
      case 'salesforce':
        connectors.set(name, createSalesforceConnector(name, system));
        break;
    }
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
}

export async function createOffboardingWorker(options: WorkerOptions): Promise<Worker> {
  const activities = createActivities({
    policy: options.config.policy,
    connectors: options.connectors ?? createConnectors(options.config),
    audit: createAuditStore(options.pool),
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
