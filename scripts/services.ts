/**
 * Starts the local servers offboard runs against — slapd, a throwaway PostgreSQL cluster, the
 * Temporal dev server — each on a free 127.0.0.1 port, from the tools scripts/toolchain.sh
 * installed (and, for the Active Directory tests, a Samba AD DC, whose ports are fixed). Used by
 * `npm start` and by the tests.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Attribute, Change, Client as LdapClient } from 'ldapts';
import pg from 'pg';
import {
  AD_ACCOUNT_OPERATORS_DN,
  AD_BASE_DN,
  AD_DISABLED_OU,
  AD_DOMAIN,
  AD_GROUPS_BASE,
  AD_PEOPLE_BASE,
  AD_REALM,
  AD_SERVICE_DN,
  AD_USER_PASSWORD,
  sampleAdEntries,
} from '../sandbox/ad.js';
import {
  groupDn,
  LDAP_GROUPS_BASE,
  LDAP_PEOPLE_BASE,
  LDAP_POLICY_DN,
  LDAP_SERVICE_DN,
  sampleLdif,
} from '../sandbox/ldif.js';
import { SAMPLE_DOMAIN, SAMPLE_GROUPS } from '../sandbox/org.js';
import { SEARCH_ATTRIBUTES } from '../workflows/search-attributes.js';

export const projectRoot = fileURLToPath(new URL('..', import.meta.url));

export interface Toolchain {
  temporalCli: string;
  testServer: string;
  postgresBin: string;
  slapdBin: string;
  /** The venv's scim2-server script (installed by `toolchain.sh test`; empty or absent otherwise). */
  scim2Server?: string;
}

export function readToolchain(): Toolchain {
  const path = join(projectRoot, '.tools', 'toolchain.json');
  if (!existsSync(path))
    throw new Error(
      `${path} is missing: run \`bash scripts/toolchain.sh test\` (npm test and npm start do it for you)`,
    );
  return JSON.parse(readFileSync(path, 'utf8')) as Toolchain;
}

/**
 * A port nothing listens on, for a server started a moment later. Chosen below the kernel's
 * ephemeral range (32768-60999 on Linux), where the OS hands out ports to every outgoing
 * connection and to servers that ask for port 0 (the Temporal dev server's own services do): a
 * port from there can be taken between this answer and the bind, which failed a test now and then.
 */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < 50; tries += 1) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await canListen(port)) return port;
  }
  return listenOn(0);
}

function canListen(port: number): Promise<boolean> {
  return listenOn(port).then(
    () => true,
    () => false,
  );
}

function listenOn(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

export async function waitForPort(port: number, what: string, timeoutMs = 30_000, child?: ChildProcess): Promise<void> {
  await waitUntilAnswers(what, () => portOpen(port), timeoutMs, child, `listened on 127.0.0.1:${port}`);
}

function portOpen(port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

const exitedHow = (child: ChildProcess) =>
  child.signalCode ? `was killed by ${child.signalCode}` : `exited with code ${child.exitCode}`;

/**
 * Polls `answers` until it says yes. A port that accepts connections is not a server that answers
 * (PostgreSQL refuses with "the database system is starting up" for a while), so each server is
 * asked the way its clients will ask it.
 */
export async function waitUntilAnswers(
  what: string,
  answers: () => Promise<boolean>,
  timeoutMs: number,
  child?: ChildProcess,
  condition = 'answered',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child && (child.exitCode !== null || child.signalCode !== null))
      throw new Error(`${what} ${exitedHow(child)} before it ${condition}`);
    if (await answers().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} had not ${condition} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** PostgreSQL answers a query (what pg_isready checks, and then some). */
export async function postgresAnswers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** slapd accepts a simple bind. */
export async function ldapBinds(url: string, dn: string, password: string): Promise<boolean> {
  const client = new LdapClient({ url, connectTimeout: 3_000, timeout: 3_000 });
  try {
    await client.bind(dn, password);
    return true;
  } catch {
    return false;
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

/** The Temporal frontend's gRPC health service reports the workflow service SERVING. */
export async function temporalServing(address: string): Promise<boolean> {
  const { Connection } = await import('@temporalio/client');
  const connection = await Connection.connect({ address, connectTimeout: 3_000 });
  try {
    const { status } = await connection.withDeadline(Date.now() + 3_000, () =>
      connection.healthService.check({ service: 'temporal.api.workflowservice.v1.WorkflowService' }),
    );
    return status === 1; // SERVING
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/**
 * An HTTP server answers (any status below 500). Asked on a connection of its own that is closed
 * after the answer: a kept-alive probe connection would hold the server's graceful close open.
 */
export function httpAnswers(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const request = httpGet(url, { agent: false, headers: { connection: 'close' }, timeout: 3_000 }, (response) => {
      response.resume();
      resolve((response.statusCode ?? 500) < 500);
    });
    request.once('timeout', () => request.destroy());
    request.once('error', () => resolve(false));
  });
}

/**
 * What a supervisor needs of a server it started: its pid (for the pid file that finds leftovers),
 * the signal that stops it quickly and cleanly, and a call when it ends without being asked to.
 */
export interface Supervised {
  pid: number | undefined;
  stopSignal: NodeJS.Signals;
  onUnexpectedExit(listener: (reason: string) => void): void;
}

/** Watches `current()` (slapd's child changes on pause/resume) for exits nobody asked for. */
function supervision(
  what: string,
  current: () => ChildProcess | undefined,
  stopSignal: NodeJS.Signals = 'SIGTERM',
): Supervised & { watch(child: ChildProcess, stderrTail: () => string): void; expectExit(): void } {
  const listeners: ((reason: string) => void)[] = [];
  let expected = false;
  return {
    get pid() {
      return current()?.pid;
    },
    stopSignal,
    onUnexpectedExit: (listener) => void listeners.push(listener),
    expectExit: () => {
      expected = true;
    },
    watch(child, stderrTail) {
      expected = false;
      child.once('exit', () => {
        if (expected) return;
        const tail = stderrTail().trim().split('\n').slice(-5).join('\n');
        for (const listener of listeners)
          listener(`${what} (pid ${child.pid}) ${exitedHow(child)}${tail ? `; its last output:\n${tail}` : ''}`);
      });
    },
  };
}

function run(command: string, args: string[], what: string) {
  const result = spawnSync(command, args, { encoding: 'utf8' });
  if (result.status !== 0)
    throw new Error(
      `${what} failed (${command} ${args.join(' ')}): ${result.stderr || result.stdout || result.error?.message}`,
    );
}

/**
 * Starts a server in the foreground and waits until it answers; a failure carries its stderr.
 * `detached` puts it in its own process group, so that a Ctrl-C in the terminal reaches only the
 * supervisor (npm start), which then stops everything in order.
 */
async function spawnServer(options: {
  command: string;
  args: string[];
  what: string;
  ready: () => Promise<boolean>;
  timeoutMs: number;
  uid?: number;
  detached?: boolean;
}): Promise<{ child: ChildProcess; stderrTail: () => string }> {
  const child = spawn(options.command, options.args, {
    stdio: ['ignore', 'ignore', 'pipe'],
    uid: options.uid,
    detached: options.detached,
  });
  // The whole start-up output for a start-up failure; afterwards only a tail, to say why it died.
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-20_000);
  });
  try {
    await waitUntilAnswers(options.what, options.ready, options.timeoutMs, child);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n${stderr}`);
  }
  return { child, stderrTail: () => stderr.slice(-2_000) };
}

function stopChild(child: ChildProcess, timeoutMs = 10_000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill(signal);
  });
}

// ---- slapd -------------------------------------------------------------------------------

export interface SlapdInstance {
  url: string;
  port: number;
  baseDn: string;
  peopleBase: string;
  groupsBase: string;
  /** The directory manager (rootdn), for test set-up and inspection. */
  adminDn: string;
  adminPassword: string;
  /** The service account offboard binds as; it can write people and groups, nothing else. */
  serviceDn: string;
  servicePassword: string;
  stop(): Promise<void>;
  /** Stops and starts the same directory (tests use it to make slapd unreachable for a while). */
  pause(): Promise<void>;
  resume(): Promise<void>;
  /** For a supervisor: the pid, and a call when slapd ends without stop() or pause(). */
  process: Supervised;
}

/**
 * A slapd with the ppolicy overlay (default policy pwdLockout: TRUE) and the sample organisation,
 * in `dir` (created and seeded when empty, reused as it is otherwise).
 */
export async function startSlapd(
  options: { dir?: string; port?: number; adminPassword?: string; servicePassword?: string; detached?: boolean } = {},
): Promise<SlapdInstance> {
  const tools = readToolchain();
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'offboard-slapd-'));
  const temporary = !options.dir;
  mkdirSync(dir, { recursive: true });
  const port = options.port ?? (await freePort());
  const adminPassword = options.adminPassword ?? 'sandbox-admin-password';
  const servicePassword = options.servicePassword ?? 'sandbox-service-password';
  const baseDn = SAMPLE_DOMAIN.baseDn;
  const dataDir = join(dir, 'data');
  const conf = join(dir, 'slapd.conf');
  const schema = '/etc/ldap/schema';
  writeFileSync(
    conf,
    [
      ...['core', 'cosine', 'nis', 'inetorgperson'].map((name) => `include ${schema}/${name}.schema`),
      'modulepath /usr/lib/ldap',
      'moduleload back_mdb',
      'moduleload ppolicy',
      `pidfile ${join(dir, 'slapd.pid')}`,
      'database mdb',
      `suffix "${baseDn}"`,
      `rootdn "cn=admin,${baseDn}"`,
      `rootpw ${adminPassword}`,
      `directory ${dataDir}`,
      'maxsize 268435456',
      'index objectClass,entryUUID,employeeNumber,uid,member,uniqueMember,memberUid eq',
      // The service account manages people and groups; people may bind (so a lock can be proven).
      `access to attrs=userPassword by dn.exact="${LDAP_SERVICE_DN}" read by self write by anonymous auth by * none`,
      `access to dn.subtree="${LDAP_PEOPLE_BASE}" by dn.exact="${LDAP_SERVICE_DN}" manage by users read by * none`,
      ...SAMPLE_GROUPS.filter((g) => g.restricted).map(
        (g) => `access to dn.subtree="${groupDn(g.cn)}" by users read by * none`,
      ),
      `access to dn.subtree="${LDAP_GROUPS_BASE}" by dn.exact="${LDAP_SERVICE_DN}" write by users read by * none`,
      'access to * by users read by * none',
      'overlay ppolicy',
      `ppolicy_default "${LDAP_POLICY_DN}"`,
      'ppolicy_use_lockout',
      '',
    ].join('\n'),
  );
  if (!existsSync(join(dataDir, 'data.mdb'))) {
    mkdirSync(dataDir, { recursive: true });
    const ldif = join(dir, 'seed.ldif');
    writeFileSync(ldif, sampleLdif(servicePassword));
    run(join(tools.slapdBin, 'slapadd'), ['-f', conf, '-l', ldif], 'seeding slapd');
  }
  const slapd = join(tools.slapdBin, 'slapd');
  let child: ChildProcess | undefined;
  const supervised = supervision('slapd', () => child);
  const url = `ldap://127.0.0.1:${port}`;
  const launch = async () => {
    // -d 0 keeps slapd in the foreground, so it can be stopped by pid.
    const started = await spawnServer({
      command: slapd,
      args: ['-f', conf, '-h', `ldap://127.0.0.1:${port}/`, '-d', '0'],
      what: 'slapd',
      // Ready when the directory manager can bind: the database is open, not only the port.
      ready: () => ldapBinds(url, `cn=admin,${baseDn}`, adminPassword),
      timeoutMs: 30_000,
      detached: options.detached,
    });
    child = started.child;
    supervised.watch(started.child, started.stderrTail);
  };
  await launch();
  return {
    url,
    port,
    baseDn,
    peopleBase: LDAP_PEOPLE_BASE,
    groupsBase: LDAP_GROUPS_BASE,
    adminDn: `cn=admin,${baseDn}`,
    adminPassword,
    serviceDn: LDAP_SERVICE_DN,
    servicePassword,
    process: supervised,
    async pause() {
      supervised.expectExit();
      if (child) await stopChild(child);
    },
    async resume() {
      await launch();
    },
    async stop() {
      supervised.expectExit();
      if (child) await stopChild(child);
      if (temporary) rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---- Samba AD DC -------------------------------------------------------------------------

const SAMBA = '/usr/sbin/samba';
const SAMBA_TOOL = '/usr/bin/samba-tool';
/** Samba's LDAP server has no port settings: it always listens on these (and only "cldap port" moves). */
const SAMBA_LDAP_PORTS = [389, 636, 3268, 3269];
/** Any 127.x.y.z reaches this machine on Linux, so a second DC can run on its own loopback address. */
const LOOPBACK_CANDIDATES = Array.from({ length: 16 }, (_, i) => `127.0.0.${i + 1}`);

export interface SambaAdInstance {
  /** ldaps:// — AD refuses simple binds without TLS. The certificate is self-signed. */
  url: string;
  address: string;
  realm: string;
  baseDn: string;
  peopleBase: string;
  groupsBase: string;
  disabledOu: string;
  /** For set-up and inspection; a UPN, which AD accepts as a bind name. */
  adminDn: string;
  adminPassword: string;
  /** The account offboard binds as: a member of Account Operators, not of Domain Admins. */
  serviceDn: string;
  servicePassword: string;
  /** Every sample person's password, to prove that a disabled account cannot bind. */
  userPassword: string;
  stop(): Promise<void>;
}

function runAsync(command: string, args: string[], what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${what} failed (exit ${code}): ${output}`)),
    );
  });
}

async function portsFree(address: string, ports: number[]): Promise<boolean> {
  for (const port of ports) {
    const free = await new Promise<boolean>((resolve) => {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen(port, address, () => server.close(() => resolve(true)));
    });
    if (!free) return false;
  }
  return true;
}

/**
 * Waits until the DC answering on `address` is this one (its rootDSE names our host), or until it
 * says its ports were taken: a DC that another run started between our check and our start must
 * never be mistaken for ours.
 */
async function waitForOwnDc(
  address: string,
  hostName: string,
  child: ChildProcess,
  output: () => string,
  timeoutMs: number,
): Promise<'ready' | 'ports_taken'> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (output().includes('Failed to startup ldap server task')) return 'ports_taken';
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(
        `samba exited (${child.exitCode ?? child.signalCode}) before it served LDAP on ${address}:\n${output()}`,
      );
    const client = new LdapClient({
      url: `ldaps://${address}:636`,
      tlsOptions: { rejectUnauthorized: false },
      connectTimeout: 1_000,
      timeout: 2_000,
    });
    const dnsHostName = await client
      .search('', { scope: 'base', attributes: ['dnsHostName'] })
      .then(({ searchEntries }) => String(searchEntries[0]?.dnsHostName ?? ''))
      .catch(() => '')
      .finally(() => client.unbind().catch(() => undefined));
    if (dnsHostName.toLowerCase().startsWith(`${hostName}.`)) return 'ready';
    if (Date.now() > deadline)
      throw new Error(`samba did not serve LDAPS on ${address}:636 within ${timeoutMs} ms:\n${output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function seedSambaAd(
  url: string,
  adminDn: string,
  adminPassword: string,
  servicePassword: string,
): Promise<void> {
  const client = new LdapClient({ url, tlsOptions: { rejectUnauthorized: false }, timeout: 30_000 });
  try {
    await client.bind(adminDn, adminPassword);
    for (const entry of sampleAdEntries(servicePassword)) {
      const attributes = Object.entries(entry.attributes).map(
        ([type, value]) => new Attribute({ type, values: Array.isArray(value) ? value : [value] }),
      );
      // unicodePwd is the password in UTF-16LE between double quotes.
      if (entry.password)
        attributes.push(new Attribute({ type: 'unicodePwd', values: [Buffer.from(`"${entry.password}"`, 'utf16le')] }));
      await client.add(entry.dn, attributes);
    }
    await client.modify(
      AD_ACCOUNT_OPERATORS_DN,
      new Change({ operation: 'add', modification: new Attribute({ type: 'member', values: [AD_SERVICE_DN] }) }),
    );
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

/**
 * A throwaway Samba AD domain controller (EXAMPLE.TEST) seeded with the sample organisation, in a
 * temp dir. Only the LDAP service runs (no SMB, DNS or KDC). Samba's LDAP ports are fixed at
 * 389/636 (plus 3268/3269 for the global catalog), so the DC binds them on the first loopback
 * address where they are free, 127.0.0.1 first. Needs root: the ports are privileged and samba
 * refuses to run as another user. Provisioning takes about 5 s, the start about 1.5 s.
 */
export async function startSambaAd(
  options: { adminPassword?: string; servicePassword?: string } = {},
): Promise<SambaAdInstance> {
  if (!existsSync(SAMBA) || !existsSync(SAMBA_TOOL))
    throw new Error('Samba AD DC is not installed: run `bash scripts/toolchain.sh test`');
  if (process.getuid?.() !== 0)
    throw new Error('a Samba AD DC must run as root (it binds the fixed, privileged ports 389 and 636)');
  const adminPassword = options.adminPassword ?? 'Sandbox-Admin-Password-1';
  const servicePassword = options.servicePassword ?? 'Sandbox-Service-Password-1';
  const dir = mkdtempSync(join(tmpdir(), 'offboard-samba-'));
  // A name of our own (NetBIOS: at most 15 characters), so that waitForOwnDc can tell our DC apart.
  const hostName = `ob${randomBytes(4).toString('hex')}`;
  const run = join(dir, 'run');
  mkdirSync(run);
  let child: ChildProcess | undefined;
  const stop = async () => {
    // Everything is thrown away, so there is nothing to flush: no need to wait for a clean stop.
    if (child) await stopChild(child, 500);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await runAsync(
      SAMBA_TOOL,
      [
        'domain',
        'provision',
        `--targetdir=${dir}`,
        `--realm=${AD_REALM}`,
        `--domain=${AD_DOMAIN}`,
        '--server-role=dc',
        '--dns-backend=NONE',
        `--host-name=${hostName}`,
        `--adminpass=${adminPassword}`,
        '--option=server services = ldap',
        // Samba's defaults put these under /run/samba, shared with any other instance on the machine.
        `--option=pid directory = ${run}`,
        `--option=ncalrpc dir = ${join(run, 'ncalrpc')}`,
        `--option=winbindd socket directory = ${join(run, 'winbindd')}`,
        `--option=log file = ${join(dir, 'log.%m')}`,
      ],
      'samba-tool domain provision',
    );
    for (const address of LOOPBACK_CANDIDATES) {
      if (!(await portsFree(address, SAMBA_LDAP_PORTS))) continue;
      let output = '';
      // "a.b.c.d/8" makes samba bind that address even where it is not configured on lo.
      const started = spawn(
        SAMBA,
        [
          '-s',
          join(dir, 'etc', 'smb.conf'),
          '-i',
          '-M',
          'single',
          `--option=interfaces = ${address}/8`,
          '--option=bind interfaces only = yes',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const keep = (chunk: Buffer) => {
        if (output.length < 20_000) output += chunk.toString();
      };
      started.stdout?.on('data', keep);
      started.stderr?.on('data', keep);
      child = started;
      if ((await waitForOwnDc(address, hostName, started, () => output, 30_000)) === 'ports_taken') {
        await stopChild(started, 500);
        child = undefined;
        continue;
      }
      const url = `ldaps://${address}:636`;
      const adminDn = `Administrator@${AD_REALM.toLowerCase()}`;
      await seedSambaAd(url, adminDn, adminPassword, servicePassword);
      return {
        url,
        address,
        realm: AD_REALM,
        baseDn: AD_BASE_DN,
        peopleBase: AD_PEOPLE_BASE,
        groupsBase: AD_GROUPS_BASE,
        disabledOu: AD_DISABLED_OU,
        adminDn,
        adminPassword,
        serviceDn: AD_SERVICE_DN,
        servicePassword,
        userPassword: AD_USER_PASSWORD,
        stop,
      };
    }
    throw new Error(
      `no loopback address from ${LOOPBACK_CANDIDATES[0]} to ${LOOPBACK_CANDIDATES.at(-1)} has ports ${SAMBA_LDAP_PORTS.join(', ')} free for samba`,
    );
  } catch (err) {
    await stop();
    throw err;
  }
}

// ---- PostgreSQL --------------------------------------------------------------------------

export interface PostgresInstance {
  url: string;
  port: number;
  stop(): Promise<void>;
  /** For a supervisor: the postmaster's pid, and a call when it ends without stop(). */
  process: Supervised;
}

/**
 * A PostgreSQL cluster on loopback (root runs it as `postgres`). By default a throwaway one in a
 * temp dir on a free port, removed on stop; with `dir`, a kept one there (made on first use,
 * reused after), on `port`, without a Unix socket.
 */
export async function startPostgres(
  options: { dir?: string; port?: number; detached?: boolean; what?: string } = {},
): Promise<PostgresInstance> {
  const tools = readToolchain();
  if (!tools.postgresBin) throw new Error('PostgreSQL is not installed: run `bash scripts/toolchain.sh test`');
  const kept = options.dir !== undefined;
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'offboard-pg-'));
  mkdirSync(dir, { recursive: true });
  const port = options.port ?? (await freePort());
  const asRoot = process.getuid?.() === 0;
  let uid: number | undefined;
  if (asRoot) {
    // PostgreSQL refuses to run as root; Debian's package creates the `postgres` user.
    const id = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    uid = Number(id.stdout.trim());
    const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    chownSync(dir, uid, gid);
  }
  const dataDir = join(dir, 'data');
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    const initdb = spawnSync(
      join(tools.postgresBin, 'initdb'),
      ['-D', dataDir, '-U', 'postgres', '-A', 'trust', '--no-sync', '-E', 'UTF8', '--locale=C'],
      { encoding: 'utf8', uid },
    );
    if (initdb.status !== 0) throw new Error(`initdb failed: ${initdb.stderr}`);
  }
  // A throwaway cluster need not survive a crash; a kept one keeps fsync on.
  const durability = kept ? [] : ['-c', 'fsync=off', '-c', 'full_page_writes=off'];
  const args = [
    '-D',
    dataDir,
    '-p',
    String(port),
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    kept ? 'unix_socket_directories=' : `unix_socket_directories=${dir}`,
    // A client killed mid-query is noticed within a second, not when the query ends: until then
    // its backend keeps every lock it took (for the audit table, every writer waits).
    '-c',
    'client_connection_check_interval=1000',
    ...durability,
  ];
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  const what = options.what ?? 'postgres';
  const { child, stderrTail } = await spawnServer({
    command: join(tools.postgresBin, 'postgres'),
    args,
    what,
    // Not the port: PostgreSQL listens before it accepts ("the database system is starting up").
    ready: () => postgresAnswers(url),
    // A kept cluster after a crash replays its WAL first, which on a loaded machine takes a while.
    timeoutMs: 120_000,
    uid,
    detached: options.detached,
  });
  // SIGINT is PostgreSQL's fast shutdown: it does not wait for clients (a psql left open) to leave.
  const supervised = supervision(what, () => child, 'SIGINT');
  supervised.watch(child, stderrTail);
  return {
    url,
    port,
    process: supervised,
    async stop() {
      supervised.expectExit();
      await stopChild(child, 30_000, 'SIGINT');
      if (!kept) rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---- scim2-server (an independent SCIM 2.0 server) ---------------------------------------

export interface Scim2ServerInstance {
  /** The SCIM root: `http://127.0.0.1:PORT/v2`. */
  url: string;
  /** The one bearer token it accepts (any other request is answered 401), unless started unauthenticated. */
  token: string;
  stop(): Promise<void>;
}

/**
 * PyPI's scim2-server, empty, in memory, on a free 127.0.0.1 port, accepting one static bearer
 * token. Ready once it answers an authenticated read, not merely once its port is open.
 */
export async function startScim2Server(
  options: { token?: string; unauthenticated?: boolean } = {},
): Promise<Scim2ServerInstance> {
  const command = readToolchain().scim2Server;
  if (!command || !existsSync(command))
    throw new Error('scim2-server is not installed: run `bash scripts/toolchain.sh test`');
  const port = await freePort();
  const token = options.token ?? `scim2-${randomBytes(12).toString('hex')}`;
  const url = `http://127.0.0.1:${port}/v2`;
  const answersRead = () =>
    fetch(`${url}/Users?count=0`, {
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(5_000),
    })
      .then((response) => response.status === 200)
      .catch(() => false);
  const { child } = await spawnServer({
    command,
    // Without --bearer-token it accepts every request, token or not (for the test that check() sees it).
    args: [
      '--hostname',
      '127.0.0.1',
      '--port',
      String(port),
      ...(options.unauthenticated ? [] : ['--bearer-token', token]),
    ],
    what: 'scim2-server',
    ready: answersRead,
    timeoutMs: 30_000,
  });
  return { url, token, stop: () => stopChild(child, 5_000) };
}

// ---- Temporal dev server -----------------------------------------------------------------

export interface TemporalDevServer {
  address: string;
  uiUrl: string | null;
  stop(): Promise<void>;
  /** For a supervisor; absent for the SDK-downloaded server, which the SDK runs itself. */
  process?: Supervised;
}

/** `temporal server start-dev` with offboard's search attributes registered. */
export async function startTemporalDevServer(
  options: {
    dbFile?: string;
    port?: number;
    uiPort?: number;
    headless?: boolean;
    codecEndpoint?: string;
    log?: (line: string) => void;
    detached?: boolean;
  } = {},
): Promise<TemporalDevServer> {
  const tools = readToolchain();
  if (!tools.temporalCli) return startDownloadedDevServer(options);
  const port = options.port ?? (await freePort());
  const uiPort = options.headless ? undefined : (options.uiPort ?? (await freePort()));
  const args = ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--log-level', 'warn'];
  args.push(...Object.entries(SEARCH_ATTRIBUTES).flatMap(([name, type]) => ['--search-attribute', `${name}=${type}`]));
  // Write-ahead logging without a sync per commit: the bench measured the default journal at
  // 2.2× the cost, the machine idle on fsync a third of the time. A crash loses at most the last
  // commits of a dev server's history, never its consistency.
  if (options.dbFile)
    args.push(
      '--db-filename',
      options.dbFile,
      '--sqlite-pragma',
      'journal_mode=wal',
      '--sqlite-pragma',
      'synchronous=normal',
    );
  // Task-queue priority (model/urgency.ts) needs the new matcher, which server 1.29 leaves off.
  args.push('--dynamic-config-value', 'matching.useNewMatcher=true');
  // The UI asks this endpoint to decrypt payloads in the operator's browser session.
  if (options.codecEndpoint) args.push('--ui-codec-endpoint', options.codecEndpoint);
  if (uiPort) args.push('--ui-port', String(uiPort), '--ui-ip', '127.0.0.1');
  else args.push('--headless');
  const child = spawn(tools.temporalCli, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: options.detached });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-20_000);
    options.log?.(chunk.toString());
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  try {
    // Asked through gRPC health, as the worker and the CLI will ask it; an open port is not enough.
    await waitUntilAnswers('the Temporal dev server', () => temporalServing(`127.0.0.1:${port}`), 120_000, child);
    if (uiPort)
      await waitUntilAnswers('the Temporal UI', () => httpAnswers(`http://127.0.0.1:${uiPort}/`), 60_000, child);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n${output.slice(-2000)}`);
  }
  const supervised = supervision('the Temporal dev server', () => child);
  supervised.watch(child, () => output.slice(-2_000));
  return {
    address: `127.0.0.1:${port}`,
    uiUrl: uiPort ? `http://127.0.0.1:${uiPort}` : null,
    process: supervised,
    stop: () => {
      supervised.expectExit();
      return stopChild(child, 15_000);
    },
  };
}

/**
 * Without Go the Temporal CLI cannot be built here; the SDK then downloads its own CLI (which
 * needs access to Temporal's download site) and runs the same dev server.
 */
async function startDownloadedDevServer(options: {
  dbFile?: string;
  port?: number;
  uiPort?: number;
  headless?: boolean;
}): Promise<TemporalDevServer> {
  const { TestWorkflowEnvironment } = await import('@temporalio/testing');
  const { EmployeeIdKey, StageKey, ModeKey, HeldKey, EffectiveAtKey } =
    await import('../workflows/search-attributes.js');
  const port = options.port ?? (await freePort());
  const uiPort = options.headless ? undefined : (options.uiPort ?? (await freePort()));
  const env = await TestWorkflowEnvironment.createLocal({
    server: {
      ip: '127.0.0.1',
      port,
      dbFilename: options.dbFile,
      ui: uiPort !== undefined,
      uiPort,
      searchAttributes: [EmployeeIdKey, StageKey, ModeKey, HeldKey, EffectiveAtKey],
    },
  });
  return {
    address: `127.0.0.1:${port}`,
    uiUrl: uiPort ? `http://127.0.0.1:${uiPort}` : null,
    stop: () => env.teardown(),
  };
}
