/**
 * The audit database: PostgreSQL at DATABASE_URL, or, when that is unset, the embedded
 * PostgreSQL (PGlite) that `npm start` serves on 127.0.0.1. PGlite is single-connection: its socket
 * server queues further connections, so every client here keeps at most one connection and hands
 * it back when idle. Transactions are therefore serial, which the audit chain relies on anyway.
 */
import { mkdirSync } from 'node:fs';
import pg from 'pg';
import { migrateAudit, type AuditMigrationResult } from '../activities/audit.js';

// Below 32768: Linux hands out 32768-60999 as the local ports of outgoing connections, and one of
// those (the dev server makes many) would make a listen there fail now and then.
export const EMBEDDED_DB_PORT_DEFAULT = 15432;

export function embeddedDatabaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  const port = env.OFFBOARD_EMBEDDED_DB_PORT ?? String(EMBEDDED_DB_PORT_DEFAULT);
  return `postgres://postgres@127.0.0.1:${port}/postgres`;
}

export function databaseTarget(env: NodeJS.ProcessEnv = process.env): { url: string; embedded: boolean } {
  if (env.DATABASE_URL) return { url: env.DATABASE_URL, embedded: env.OFFBOARD_DB_EMBEDDED === '1' };
  return { url: embeddedDatabaseUrl(env), embedded: true };
}

export function createPool(target: { url: string; embedded: boolean }): pg.Pool {
  const pool = new pg.Pool({
    connectionString: target.url,
    ...(target.embedded ? { max: 1, idleTimeoutMillis: 250 } : { max: 10 }),
    connectionTimeoutMillis: 30_000,
  });
  // An idle client's error (server restart) must not crash the process; the next query reconnects.
  pool.on('error', () => undefined);
  return pool;
}

/** The audit schema, and (as a superuser) its owner and writer roles: `activities/audit.ts` migrateAudit. */
export async function migrate(pool: pg.Pool): Promise<AuditMigrationResult> {
  return migrateAudit(pool);
}

/** Where the database is, for messages: the URL without its password. */
export function describeDatabase(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.password = parsed.password ? '***' : '';
    return parsed.toString();
  } catch {
    return '(unparseable DATABASE_URL)';
  }
}

/** Serves a PGlite database persisted under dataDir to `pg` clients on 127.0.0.1:port. */
export async function startEmbeddedDatabase(dataDir: string, port: number) {
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir);
  const server = new PGLiteSocketServer({ db, port, host: '127.0.0.1', connectionQueueTimeout: 60_000 });
  await server.start();
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}
