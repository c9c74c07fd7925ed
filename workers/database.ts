/**
 * The audit database: PostgreSQL at DATABASE_URL, or, when that is unset, the one `npm start`
 * serves on 127.0.0.1:15432 — a kept PostgreSQL cluster, or the embedded PGlite where no server
 * binaries exist. PGlite is single-connection: its socket server queues further connections, so
 * a client that may meet it keeps at most one connection and hands it back when idle.
 * Transactions are serial either way, which the audit chain relies on.
 */
import { mkdirSync } from 'node:fs';
import pg from 'pg';
import { migrateAudit, type AuditMigrationResult } from '../activities/audit.js';

// Below 32768: Linux hands out 32768-60999 as the local ports of outgoing connections, and one of
// those (the dev server makes many) would make a listen there fail now and then.
export const EMBEDDED_DB_PORT_DEFAULT = 15432;

export function embeddedDatabaseUrl(env: NodeJS.ProcessEnv = process.env): string {
  const port = env.OFFBOARD_AUDIT_DB_PORT ?? env.OFFBOARD_EMBEDDED_DB_PORT ?? String(EMBEDDED_DB_PORT_DEFAULT);
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

/** Any 64-bit number of our own: the advisory lock that lets one process migrate at a time. */
const MIGRATION_LOCK = 4_716_221_093;

/** The audit schema, and (as a superuser) its owner and writer roles: `activities/audit.ts` migrateAudit. */
export async function migrate(pool: pg.Pool): Promise<AuditMigrationResult> {
  // CREATE ... IF NOT EXISTS is not safe against itself: a worker and the API migrating a new
  // database at once fail with "duplicate key value violates unique constraint pg_type_typname_nsp_index".
  // One client for the lock and the statements: the embedded database's pool has one connection.
  const client = await pool.connect();
  try {
    await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    try {
      return await migrateAudit(client);
    } finally {
      await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]);
    }
  } finally {
    client.release();
  }
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

/**
 * Serves a PGlite database persisted under dataDir to `pg` clients on 127.0.0.1:port: the audit
 * database where no PostgreSQL server binaries are installed (npm start prefers a kept Debian
 * cluster, docs/design.md). `hardened: false` serves it as @electric-sql/pglite-socket ships it,
 * only so that scripts/measure-audit-db.ts can show the difference.
 */
export async function startEmbeddedDatabase(dataDir: string, port: number, options: { hardened?: boolean } = {}) {
  const { PGlite } = await import('@electric-sql/pglite');
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket');
  mkdirSync(dataDir, { recursive: true });
  const db = await PGlite.create(dataDir);
  if (options.hardened !== false) guardConnections(db);
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

/** A frontend message of the PostgreSQL wire protocol: type byte, length, body. */
function wireMessage(type: string, body: Buffer = Buffer.alloc(0)): Uint8Array {
  const message = Buffer.alloc(5 + body.length);
  message.write(type, 0, 'latin1');
  message.writeInt32BE(4 + body.length, 1);
  body.copy(message, 5);
  return message;
}

const SESSION_RESET = [
  'ROLLBACK',
  'CLOSE ALL',
  'DEALLOCATE ALL',
  'UNLISTEN *',
  'SELECT pg_advisory_unlock_all()',
  'DISCARD TEMP',
];

const simpleQuery = (sql: string) => wireMessage('Q', Buffer.from(`${sql}\0`));

/**
 * pglite-socket holds PGlite's exclusive lock for as long as a client is connected, as a promise
 * it rejects when the client's socket errors (a TCP reset, a client killed mid-query). Nothing
 * awaits that promise, so Node ends the process on the unhandled rejection, and with it npm start.
 * Here each hold is wrapped: its end, however it comes, is handled, and before the next client gets
 * the lock the session is put back to a fresh one, since PGlite has a single backend that every
 * client shares: without this, a client killed inside a transaction leaves it open (with the audit
 * table's lock) for whoever connects next, who would then run inside it.
 */
function guardConnections(db: {
  runExclusive<T>(fn: () => Promise<T>): Promise<T>;
  execProtocolRaw: (m: Uint8Array) => Promise<Uint8Array>;
}) {
  const runExclusive = db.runExclusive.bind(db);
  db.runExclusive = <T>(hold: () => Promise<T>) => {
    const held = runExclusive(async () => {
      try {
        return await hold();
      } finally {
        // Still inside the lock. Sync ends an extended-protocol exchange the client left halfway;
        // execProtocolRaw does not take the lock (pglite-socket calls it while holding it).
        // DISCARD ALL without its RESET ALL: PGlite's own session sets search_path, which RESET
        // would take back to pg_catalog (every table "does not exist" after that).
        for (const message of [wireMessage('S'), ...SESSION_RESET.map(simpleQuery)])
          await db.execProtocolRaw(message).catch(() => undefined);
      }
    });
    held.catch(() => undefined);
    return held;
  };
}
