/**
 * The worker process: polls the `offboarding` task queue and runs the workflow and its
 * activities against the configured systems. Settings: TEMPORAL_ADDRESS (127.0.0.1:7233),
 * TEMPORAL_NAMESPACE (default), DATABASE_URL (else the embedded database), OFFBOARD_CONFIG.
 * SIGINT/SIGTERM stop it gracefully: running activities finish, then it exits.
 */
import { DefaultLogger, NativeConnection, Runtime, type LogLevel } from '@temporalio/worker';
import { ConfigError, loadConfig } from './config.js';
import { createConnectors, createOffboardingWorker } from './create-worker.js';
import { checkSystems, logReachability } from './reachability.js';
import { createMetrics, startMetricsServer } from './metrics.js';
import { dataConverterFor, keyringFromEnv } from './codec.js';
import { createPool, databaseTarget, describeDatabase, migrate } from './database.js';
import { logger } from './logger.js';
import { redactSecrets } from '../activities/connectors/registry.js';
import {
  checkpointSettings,
  createCheckpointer,
  fileCheckpointStore,
  keyIdOf,
  loadSigningKey,
  publicKeyPem,
} from '../activities/audit-checkpoints.js';
import { createPublicKey } from 'node:crypto';

async function main() {
  Runtime.install({
    logger: new DefaultLogger((process.env.TEMPORAL_LOG_LEVEL ?? 'WARN') as LogLevel, (entry) => {
      const level =
        entry.level === 'TRACE' ? 'trace' : (entry.level.toLowerCase() as 'debug' | 'info' | 'warn' | 'error');
      logger[level]({ ...entry.meta, source: 'temporal' }, entry.message);
    }),
  });
  const config = loadConfig();
  // Read the keys first: a malformed key stops start-up with a message that names the problem.
  const keyring = keyringFromEnv();
  const address = process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233';
  const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';

  // The checkpoint key before anything else that could fail: a missing key is the operator's to fix.
  const checkpointing = checkpointSettings();
  const signing = loadSigningKey(checkpointing);
  const publicKey = createPublicKey(signing.key);
  if (signing.generated)
    logger.warn(
      { signingKeyFile: checkpointing.signingKeyFile, keyId: keyIdOf(publicKey), publicKey: publicKeyPem(publicKey) },
      'generated a development audit signing key; in production set OFFBOARD_AUDIT_SIGNING_KEY_FILE to a key the database administrators cannot read',
    );
  const checkpoints = fileCheckpointStore(checkpointing.checkpointsFile);
  const checkpointer = createCheckpointer({
    store: checkpoints,
    key: signing.key,
    everyRows: checkpointing.everyRows,
    everyMs: checkpointing.everyMs,
    onError: (err) =>
      logger.error({ reason: err.message, file: checkpoints.location }, 'cannot write an audit checkpoint'),
  });

  const target = databaseTarget();
  const pool = createPool(target);
  try {
    const migrated = await migrate(pool);
    if (migrated.roles === 'skipped')
      logger.info({ reason: migrated.reason }, 'audit owner/writer roles not set up by this login');
  } catch (err) {
    throw new Error(
      `cannot reach the audit database at ${describeDatabase(target.url)}: ${(err as Error).message}. Set DATABASE_URL, or run \`npm start\`, which serves an embedded one.`,
    );
  }

  let connection: NativeConnection;
  try {
    connection = await NativeConnection.connect({ address });
  } catch (err) {
    throw new Error(
      `cannot reach Temporal at ${address}: ${(err as Error).message}. Set TEMPORAL_ADDRESS, or run \`npm start\`, which starts a dev server.`,
    );
  }
  const connectors = createConnectors(config);
  logReachability(await checkSystems(connectors), logger);
  const metrics = createMetrics();
  const metricsPort = Number(process.env.OFFBOARD_METRICS_PORT ?? 9464);
  const served = await startMetricsServer(metrics, metricsPort, process.env.OFFBOARD_METRICS_HOST ?? '127.0.0.1').catch(
    (err: Error) => {
      throw new Error(
        `cannot serve metrics on port ${metricsPort}: ${err.message}. Set OFFBOARD_METRICS_PORT to a free port.`,
      );
    },
  );
  const worker = await createOffboardingWorker({
    connection,
    namespace,
    config,
    pool,
    connectors,
    metrics,
    dataConverter: dataConverterFor(keyring),
    checkpointer,
  });
  logger.info(
    {
      temporal: address,
      namespace,
      taskQueue: 'offboarding',
      systems: Object.keys(config.systems),
      database: describeDatabase(target.url),
      metrics: served.url,
      payloadEncryption: keyring ? `key ${keyring.current.id}` : 'off',
      auditCheckpoints: { file: checkpoints.location, keyId: keyIdOf(publicKey) },
    },
    'worker started',
  );
  // What each system is configured with, so an operator can check it; secret fields are hidden.
  for (const [name, system] of Object.entries(config.systems))
    logger.info({ system: name, config: redactSecrets(system) }, 'system configured');
  // Runtime.install handles SIGINT/SIGTERM by shutting the worker down; run() resolves after that.
  await worker.run();
  await checkpointer.stop();
  await connection.close();
  await pool.end();
  served.server.close();
  logger.info('worker stopped');
}

main().catch((err: unknown) => {
  // Start-up problems are the operator's to fix: the message says what and how, no stack needed.
  logger.error(
    { reason: err instanceof Error ? err.message : String(err) },
    err instanceof ConfigError ? 'invalid configuration' : 'worker failed to start',
  );
  process.exit(1);
});
