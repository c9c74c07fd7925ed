/**
 * Servers shared by the whole test run, started on first use and stopped after the last test:
 * one slapd seeded with the sample organisation, one throwaway PostgreSQL cluster, one workflow
 * bundle. Each test offboards its own sample person, so tests do not see each other's changes.
 *
 * Who offboards whom in the shared slapd and PostgreSQL (pick a free one for a new test):
 *   workflow.test      E1001-E1010, E1020-E1023     dev-server.test  E1011-E1019, E1028, E1034, E1037
 *   ldap.test          E1031-E1034                  evidence.test    E1024-E1026, E1036
 *   codec.test         E1027                        api.test         E1029, E1030, E1038-E1040
 *   keycloak-workflow.test  E1041 (and in Keycloak, whose tests give each case a realm of its own)
 *   postgres.test      roles e1001-e1005            ui.test          E1035 (record-histories, in its own process with its own slapd, uses E1024-E1025, E1035-E1036)
 *   ssf.test           E1048
 * Stand-in tests (GitHub, Slack, Salesforce, SCIM) and the AD tests use servers of their own.
 * E1099 (in no directory) is workflow.test's skip test, with E1004's Slack email on a Slack stand-in of its own;
 * dev-server.test's queued run, E1098, is started where no worker listens.
 */
import { Runtime, DefaultLogger } from '@temporalio/worker';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { ConnectionOptions } from '@temporalio/client';
import type { DataConverter } from '@temporalio/common';
import type pg from 'pg';
import { Client as LdapClient, type Entry } from 'ldapts';
import {
  readToolchain,
  startPostgres,
  startSlapd,
  type PostgresInstance,
  type SlapdInstance,
} from '../../scripts/services.js';
import { startKeycloak, type KeycloakInstance } from '../../scripts/keycloak.js';
import { bundleWorkflows } from '../../workers/bundle.js';
import { parseConfig, type ConfigInput, type OffboardConfig } from '../../workers/config.js';
import type { PolicyInput } from '../../model/policy.js';
import { createPool, migrate } from '../../workers/database.js';
import { personDn } from '../../sandbox/ldif.js';
import type { LdapSystemConfig } from '../../activities/connectors/ldap.js';
import { samplePerson } from '../../sandbox/org.js';

let slapd: Promise<SlapdInstance> | undefined;
let postgres: Promise<PostgresInstance> | undefined;
let pool: Promise<pg.Pool> | undefined;
let bundle: Promise<{ code: string }> | undefined;
let keycloak: Promise<KeycloakInstance> | undefined;
let runtimeInstalled = false;

export const sharedSlapd = () => (slapd ??= startSlapd());
export const sharedPostgres = () => (postgres ??= startPostgres());
export const sharedPool = () =>
  (pool ??= sharedPostgres().then(async (pg) => {
    const created = createPool({ url: pg.url, embedded: false });
    await migrate(created);
    return created;
  }));
export const workflowBundle = () => (bundle ??= bundleWorkflows());
/** One Keycloak per test run (tens of seconds to start): each test seeds a realm of its own. */
export const sharedKeycloak = () => (keycloak ??= startKeycloak());

/**
 * Temporal's time-skipping test server (the toolchain's wrapper), with the shared servers ready.
 * The Java test server answers keepalive pings more often than every 5 minutes with GOAWAY
 * ("too many pings"), which can strand a call in flight; the SDK pings every 30 s by default.
 */
export async function timeSkippingEnvironment(
  client: { dataConverter?: DataConverter } = {},
): Promise<TestWorkflowEnvironment> {
  installRuntime();
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: readToolchain().testServer } },
    client,
    plugins: [
      {
        name: 'test-server-keepalive',
        configureConnection: (options: ConnectionOptions) => ({
          ...options,
          channelArgs: {
            ...options.channelArgs,
            'grpc.keepalive_time_ms': 6 * 60_000,
            'grpc.keepalive_permit_without_calls': 0,
          },
        }),
      },
    ],
  });
  await Promise.all([sharedSlapd(), sharedPool(), workflowBundle()]);
  return env;
}

/**
 * Skips the test server's clock ahead by `ms`, and fails with a reason instead of hanging. The
 * server skips time only while nothing is outstanding; a workflow task or activity that no worker
 * will ever pick up (its worker already stopped) holds that lock, and the sleep would then wait
 * `ms` in real time.
 */
export async function skipAhead(env: TestWorkflowEnvironment, ms: number, realTimeLimitMs = 60_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `the test server did not skip ${ms} ms ahead within ${realTimeLimitMs / 1000} s of real time: a workflow task or activity no worker polls for holds its time-skipping lock`,
          ),
        ),
      realTimeLimitMs,
    );
  });
  try {
    await Promise.race([env.sleep(ms), stuck]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runtime.install may run once per process; keep the SDK's own logs to errors (expected failures would flood the output). */
export function installRuntime() {
  if (runtimeInstalled) return;
  Runtime.install({ logger: new DefaultLogger('ERROR') });
  runtimeInstalled = true;
}

/** A worker config pointing the `directory` system at the shared slapd, with fast retries. */
export async function testConfig(
  extra: {
    systems?: ConfigInput['systems'];
    notifications?: ConfigInput['notifications'];
    env?: NodeJS.ProcessEnv;
    /** The plan's retry policy, instead of the quick one (200 ms → 1 s, 3 attempts). */
    retry?: { initialInterval: string; maximumInterval: string; maximumAttempts: number };
    /** Playbooks instead of the defaults (docs/policy.md). */
    playbooks?: PolicyInput['playbooks'];
    /** false: no `directory` system (another system is then the source of identity). */
    directory?: boolean;
  } = {},
): Promise<OffboardConfig> {
  const ldap = await sharedSlapd();
  const withDirectory = extra.directory ?? true;
  return parseConfig(
    {
      systems: {
        ...(withDirectory && {
          directory: {
            type: 'ldap',
            url: ldap.url,
            bindDn: ldap.serviceDn,
            bindPassword: { env: 'TEST_LDAP_PASSWORD' },
            peopleBase: ldap.peopleBase,
            groupsBase: ldap.groupsBase,
            timeoutMs: 3_000,
          },
        }),
        ...extra.systems,
      },
      policy: {
        playbooks: extra.playbooks,
        retry: extra.retry ?? { initialInterval: '200ms', maximumInterval: '1s', maximumAttempts: 3 },
        ...(withDirectory && directoryPolicy),
      },
      notifications: extra.notifications,
    },
    'the test config',
    { TEST_LDAP_PASSWORD: ldap.servicePassword, ...extra.env },
  );
}

/** The test config's privileged groups and role entitlements in the directory. */
const directoryPolicy = {
  privileged: {
    directory: [
      'cn=domain-admins,ou=groups,dc=example,dc=org',
      'cn=prod-access,ou=groups,dc=example,dc=org',
      'cn=sudoers,ou=groups,dc=example,dc=org',
    ],
  },
  roles: {
    engineer: {
      directory: [
        'cn=engineering,ou=groups,dc=example,dc=org',
        'cn=developers,ou=groups,dc=example,dc=org',
        'cn=vpn-users,ou=groups,dc=example,dc=org',
      ],
    },
  },
};

/** The test config's `directory` system (the shared slapd), typed as the LDAP settings it is. */
export async function directoryConfig(): Promise<LdapSystemConfig> {
  const system = (await testConfig()).systems.directory;
  if (system?.type !== 'ldap') throw new Error('the test config has no LDAP directory');
  return system;
}

export interface DirectoryState {
  exists: boolean;
  locked: boolean;
  groups: string[];
}

/** What slapd holds for a sample person, read as the directory manager. */
export async function directoryState(employeeId: string): Promise<DirectoryState> {
  const ldap = await sharedSlapd();
  const person = samplePerson(employeeId);
  const dn = personDn(person.uid);
  const client = new LdapClient({ url: ldap.url });
  try {
    await client.bind(ldap.adminDn, ldap.adminPassword);
    const self = await client
      .search(dn, { scope: 'base', attributes: ['pwdAccountLockedTime'] })
      .catch(() => ({ searchEntries: [] as Entry[] }));
    const { searchEntries } = await client.search(ldap.groupsBase, {
      scope: 'one',
      filter: `(|(member=${dn})(uniqueMember=${dn})(memberUid=${person.uid}))`,
      attributes: ['cn'],
    });
    return {
      exists: self.searchEntries.length === 1,
      // ldapts gives [] for a requested attribute the entry does not have.
      locked: [self.searchEntries[0]?.pwdAccountLockedTime ?? []].flat().length > 0,
      groups: searchEntries.map((g) => String(g.cn)).sort(),
    };
  } finally {
    await client.unbind();
  }
}

/** Whether the person can still log in (bind) with their password. */
export async function canBind(employeeId: string): Promise<boolean> {
  const ldap = await sharedSlapd();
  const client = new LdapClient({ url: ldap.url });
  try {
    await client.bind(personDn(samplePerson(employeeId).uid), 'sandbox-user-password');
    return true;
  } catch {
    return false;
  } finally {
    await client.unbind().catch(() => undefined);
  }
}

/**
 * Each one on its own: a server that failed to start (or a pool whose migration failed) must not
 * leave the others running after the test process exits.
 */
export async function stopSharedServers() {
  const settled = <T>(p: Promise<T> | undefined): Promise<T | undefined> =>
    p ? p.catch(() => undefined) : Promise.resolve(undefined);
  await (await settled(pool))?.end();
  await Promise.all([
    settled(postgres).then((server) => server?.stop()),
    settled(slapd).then((server) => server?.stop()),
    settled(keycloak).then((server) => server?.stop()),
  ]);
}

/** Polls `read` until `done` holds, in real time; fails with the last value seen. */
export async function eventually<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  what: string,
  timeoutMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await read();
    if (done(last)) return last;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
